/**
 * Cost of the capped allocator on allocation-heavy Lua: Lua's own allocator (luaL_newstate) versus
 * the native capped allocator versus the JS (Deno.UnsafeCallback) allocator.
 *
 *   .tools/bin/deno bench --allow-ffi --allow-env --allow-read bench/allocator_bench.ts
 *
 * @module
 */

import { type AllocatorHandle, createAllocator, nativeAllocatorSupported } from "../ffi/allocator.ts";

const LUA_SYMBOLS = {
  /** `lua_State *lua_newstate(lua_Alloc f, void *ud);` */
  lua_newstate: { parameters: ["function", "pointer"], result: "pointer" },
  /** `lua_State *luaL_newstate(void);` */
  luaL_newstate: { parameters: [], result: "pointer" },
  /** `void luaL_openlibs(lua_State *L);` */
  luaL_openlibs: { parameters: ["pointer"], result: "void" },
  /** `int luaL_loadstring(lua_State *L, const char *s);` */
  luaL_loadstring: { parameters: ["pointer", "buffer"], result: "i32" },
  /** `int lua_pcallk(lua_State *L, int nargs, int nresults, int msgh, lua_KContext ctx, lua_KFunction k);` */
  lua_pcallk: { parameters: ["pointer", "i32", "i32", "i32", "isize", "pointer"], result: "i32" },
  /** `void lua_settop(lua_State *L, int idx);` */
  lua_settop: { parameters: ["pointer", "i32"], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

const lua = Deno.dlopen("liblua5.4.so.0", LUA_SYMBOLS).symbols;

/** 200k small tables (two allocations each) plus the growing array, per run. */
const WORKLOAD = new TextEncoder().encode("local t = {} for i = 1, 2e5 do t[i] = {i} end\0");

function open(alloc?: AllocatorHandle): Deno.PointerObject {
  const L = alloc ? lua.lua_newstate(alloc.pointer, alloc.state) : lua.luaL_newstate();
  if (L === null) throw new Error("cannot create a Lua state");
  lua.luaL_openlibs(L);
  return L;
}

function work(L: Deno.PointerObject): void {
  if (lua.luaL_loadstring(L, WORKLOAD) !== 0 || lua.lua_pcallk(L, 0, 0, 0, 0n, null) !== 0) {
    lua.lua_settop(L, 0);
    throw new Error("workload failed");
  }
}

// States live for the whole process: the bench runner gives no teardown hook.
const plain = open();
const nativeAlloc = nativeAllocatorSupported() ? createAllocator({ native: true }) : undefined;
const native = nativeAlloc ? open(nativeAlloc) : undefined;
const jsAlloc = createAllocator({ native: false });
const js = open(jsAlloc);
// A generous cap, so that the capped allocators do their bookkeeping without refusing anything.
nativeAlloc?.setLimit(1024 * 1024 * 1024);
jsAlloc.setLimit(1024 * 1024 * 1024);

Deno.bench("Lua's allocator (luaL_newstate)", { group: "alloc-heavy", baseline: true }, () => work(plain));
Deno.bench("native capped allocator", { group: "alloc-heavy", ignore: !native }, () => work(native!));
Deno.bench("JS capped allocator (UnsafeCallback)", { group: "alloc-heavy" }, () => work(js));
