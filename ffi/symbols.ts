/**
 * The Lua C API as Deno sees it: symbol tables, each entry commented with its C signature. The
 * first, {@linkcode LUA_SYMBOLS}, is bound when the library opens; the others on first use.
 *
 * Symbols whose signature differs between Lua versions appear once per signature under distinct
 * keys (the `name` field holds the real C name) and are marked optional; `ffi/lua_api.ts` picks the
 * right one for the loaded library. Nothing here knows about safety: that lives in `lua/`.
 *
 * @module
 */

/** Symbols shared by every supported Lua (5.1, LuaJIT 2.1, 5.2, 5.3, 5.4) with one signature. */
export const LUA_SYMBOLS = {
  // lua_State *luaL_newstate(void)
  luaL_newstate: { parameters: [], result: "pointer" },
  // lua_State *lua_newstate(lua_Alloc f, void *ud)
  lua_newstate: { parameters: ["pointer", "pointer"], result: "pointer" },
  // void lua_close(lua_State *L)
  lua_close: { parameters: ["pointer"], result: "void" },
  // void luaL_openlibs(lua_State *L)
  luaL_openlibs: { parameters: ["pointer"], result: "void" },
  // int lua_gettop(lua_State *L)
  lua_gettop: { parameters: ["pointer"], result: "i32" },
  // void lua_settop(lua_State *L, int idx)
  lua_settop: { parameters: ["pointer", "i32"], result: "void" },
  // void lua_pushvalue(lua_State *L, int idx)
  lua_pushvalue: { parameters: ["pointer", "i32"], result: "void" },
  // int lua_checkstack(lua_State *L, int n)
  lua_checkstack: { parameters: ["pointer", "i32"], result: "i32" },
  // int lua_type(lua_State *L, int idx)
  lua_type: { parameters: ["pointer", "i32"], result: "i32" },
  // int lua_toboolean(lua_State *L, int idx)
  lua_toboolean: { parameters: ["pointer", "i32"], result: "i32" },
  // const char *lua_tolstring(lua_State *L, int idx, size_t *len)
  lua_tolstring: { parameters: ["pointer", "i32", "buffer"], result: "pointer" },
  // int lua_rawequal(lua_State *L, int idx1, int idx2)
  lua_rawequal: { parameters: ["pointer", "i32", "i32"], result: "i32" },
  // void lua_pushnil(lua_State *L)
  lua_pushnil: { parameters: ["pointer"], result: "void" },
  // void lua_pushnumber(lua_State *L, lua_Number n)
  lua_pushnumber: { parameters: ["pointer", "f64"], result: "void" },
  // const char *lua_pushlstring(lua_State *L, const char *s, size_t len)  (void in 5.1)
  lua_pushlstring: { parameters: ["pointer", "buffer", "usize"], result: "void" },
  // const char *lua_pushstring(lua_State *L, const char *s)  (void in 5.1)
  lua_pushstring: { parameters: ["pointer", "buffer"], result: "void" },
  // void lua_pushboolean(lua_State *L, int b)
  lua_pushboolean: { parameters: ["pointer", "i32"], result: "void" },
  // void lua_pushlightuserdata(lua_State *L, void *p)
  lua_pushlightuserdata: { parameters: ["pointer", "pointer"], result: "void" },
  // void lua_pushcclosure(lua_State *L, lua_CFunction fn, int n)
  lua_pushcclosure: { parameters: ["pointer", "function", "i32"], result: "void" },
  // int lua_rawget(lua_State *L, int idx)  (void in 5.1 and 5.2: the result is then ignored)
  lua_rawget: { parameters: ["pointer", "i32"], result: "i32" },
  // void lua_rawset(lua_State *L, int idx)
  lua_rawset: { parameters: ["pointer", "i32"], result: "void" },
  // void lua_setfield(lua_State *L, int idx, const char *k)  (int result in 5.4 is ignored)
  lua_setfield: { parameters: ["pointer", "i32", "buffer"], result: "void" },
  // void lua_createtable(lua_State *L, int narr, int nrec)
  lua_createtable: { parameters: ["pointer", "i32", "i32"], result: "void" },
  // int lua_getmetatable(lua_State *L, int idx)
  lua_getmetatable: { parameters: ["pointer", "i32"], result: "i32" },
  // int lua_setmetatable(lua_State *L, int idx)
  lua_setmetatable: { parameters: ["pointer", "i32"], result: "i32" },
  // int lua_next(lua_State *L, int idx)
  lua_next: { parameters: ["pointer", "i32"], result: "i32" },
  // int lua_gc(lua_State *L, int what, ...)  (5.4 is variadic; integer arguments pass alike on x86-64 and arm64)
  lua_gc: { parameters: ["pointer", "i32", "i32"], result: "i32" },
  // int luaL_ref(lua_State *L, int t)
  luaL_ref: { parameters: ["pointer", "i32"], result: "i32" },
  // void luaL_unref(lua_State *L, int t, int ref)
  luaL_unref: { parameters: ["pointer", "i32", "i32"], result: "void" },

  // ---- 5.2 and later ----
  // void lua_copy(lua_State *L, int fromidx, int toidx)
  lua_copy: { parameters: ["pointer", "i32", "i32"], result: "void", optional: true },
  // lua_Number lua_tonumberx(lua_State *L, int idx, int *isnum)
  lua_tonumberx: { parameters: ["pointer", "i32", "pointer"], result: "f64", optional: true },
  // lua_Integer lua_tointegerx(lua_State *L, int idx, int *isnum)
  lua_tointegerx: { parameters: ["pointer", "i32", "pointer"], result: "i64", optional: true },
  // void lua_pushinteger(lua_State *L, lua_Integer n)  (ptrdiff_t in 5.1: the same register)
  lua_pushinteger: { parameters: ["pointer", "i64"], result: "void" },
  // int lua_pcallk(lua_State *L, int nargs, int nresults, int msgh, lua_KContext ctx, lua_KFunction k)
  lua_pcallk: {
    parameters: ["pointer", "i32", "i32", "i32", "isize", "pointer"],
    result: "i32",
    optional: true,
  },
  // int luaL_loadbufferx(lua_State *L, const char *buff, size_t sz, const char *name, const char *mode)
  luaL_loadbufferx: {
    parameters: ["pointer", "buffer", "usize", "buffer", "buffer"],
    result: "i32",
    optional: true,
  },

  // void luaL_requiref(lua_State *L, const char *modname, lua_CFunction openf, int glb)
  luaL_requiref: { parameters: ["pointer", "buffer", "pointer", "i32"], result: "void", optional: true },
  // int luaopen_base(lua_State *L)  (and the other standard libraries below, used as lua_CFunction pointers)
  luaopen_base: { type: "pointer", optional: true },
  luaopen_coroutine: { type: "pointer", optional: true },
  luaopen_table: { type: "pointer", optional: true },
  luaopen_string: { type: "pointer", optional: true },
  luaopen_utf8: { type: "pointer", optional: true },
  luaopen_math: { type: "pointer", optional: true },
  luaopen_os: { type: "pointer", optional: true },
  luaopen_debug: { type: "pointer", optional: true },

  // ---- 5.3 and later ----
  // void lua_rotate(lua_State *L, int idx, int n)
  lua_rotate: { parameters: ["pointer", "i32", "i32"], result: "void", optional: true },
  // int lua_isinteger(lua_State *L, int idx)
  lua_isinteger: { parameters: ["pointer", "i32"], result: "i32", optional: true },
  // int lua_rawgeti(lua_State *L, int idx, lua_Integer n)
  lua_rawgeti: { parameters: ["pointer", "i32", "i64"], result: "i32", optional: true },
  // void lua_rawseti(lua_State *L, int idx, lua_Integer n)
  lua_rawseti: { parameters: ["pointer", "i32", "i64"], result: "void", optional: true },
  // void *lua_newuserdata(lua_State *L, size_t size)  (5.1 to 5.3)
  lua_newuserdata: { parameters: ["pointer", "usize"], result: "pointer", optional: true },

  // ---- 5.4 ----
  // void *lua_newuserdatauv(lua_State *L, size_t size, int nuvalue)
  lua_newuserdatauv: { parameters: ["pointer", "usize", "i32"], result: "pointer", optional: true },

  // ---- 5.1 and LuaJIT ----
  // void lua_insert(lua_State *L, int idx)
  lua_insert: { parameters: ["pointer", "i32"], result: "void", optional: true },
  // void lua_remove(lua_State *L, int idx)
  lua_remove: { parameters: ["pointer", "i32"], result: "void", optional: true },
  // void lua_replace(lua_State *L, int idx)
  lua_replace: { parameters: ["pointer", "i32"], result: "void", optional: true },
  // lua_Number lua_tonumber(lua_State *L, int idx)
  lua_tonumber: { parameters: ["pointer", "i32"], result: "f64", optional: true },
  // int lua_pcall(lua_State *L, int nargs, int nresults, int errfunc)
  lua_pcall: { parameters: ["pointer", "i32", "i32", "i32"], result: "i32", optional: true },
  // int luaL_loadbuffer(lua_State *L, const char *buff, size_t sz, const char *name)
  luaL_loadbuffer: { parameters: ["pointer", "buffer", "usize", "buffer"], result: "i32", optional: true },
  // int luaJIT_setmode(lua_State *L, int idx, int mode)  (LuaJIT only: its presence identifies LuaJIT)
  address_luaJIT_setmode: { name: "luaJIT_setmode", type: "pointer", optional: true },
  // extern const char lua_ident[]  (every PUC Lua: "$LuaVersion: Lua 5.4.4 ...")
  lua_ident: { type: "pointer", optional: true },
  // The addresses of the functions ffi/data_builder.c, ffi/call_runner.c and ffi/fast_lane.c call (a static of type
  // "pointer" is the symbol's address). Their 5.3/5.4 signatures are the ones spelled out above. lua_callk's
  // presence also tells 5.2 from 5.1.
  address_lua_checkstack: { name: "lua_checkstack", type: "pointer", optional: true },
  address_lua_createtable: { name: "lua_createtable", type: "pointer", optional: true },
  address_lua_pushlstring: { name: "lua_pushlstring", type: "pointer", optional: true },
  address_lua_pushinteger: { name: "lua_pushinteger", type: "pointer", optional: true },
  address_lua_pushnumber: { name: "lua_pushnumber", type: "pointer", optional: true },
  address_lua_pushboolean: { name: "lua_pushboolean", type: "pointer", optional: true },
  address_lua_rawset: { name: "lua_rawset", type: "pointer", optional: true },
  address_lua_rawseti: { name: "lua_rawseti", type: "pointer", optional: true },
  address_lua_rawgeti: { name: "lua_rawgeti", type: "pointer", optional: true },
  address_lua_pushvalue: { name: "lua_pushvalue", type: "pointer", optional: true },
  address_lua_settop: { name: "lua_settop", type: "pointer", optional: true },
  address_lua_type: { name: "lua_type", type: "pointer", optional: true },
  address_lua_gettop: { name: "lua_gettop", type: "pointer", optional: true },
  address_lua_pushnil: { name: "lua_pushnil", type: "pointer", optional: true },
  address_lua_pushcclosure: { name: "lua_pushcclosure", type: "pointer", optional: true },
  address_lua_pcallk: { name: "lua_pcallk", type: "pointer", optional: true },
  address_lua_toboolean: { name: "lua_toboolean", type: "pointer", optional: true },
  address_lua_tonumberx: { name: "lua_tonumberx", type: "pointer", optional: true },
  address_lua_tointegerx: { name: "lua_tointegerx", type: "pointer", optional: true },
  address_lua_isinteger: { name: "lua_isinteger", type: "pointer", optional: true },
  address_lua_rawlen: { name: "lua_rawlen", type: "pointer", optional: true },
  address_lua_touserdata: { name: "lua_touserdata", type: "pointer", optional: true },
  address_lua_rawget: { name: "lua_rawget", type: "pointer", optional: true },
  address_lua_getmetatable: { name: "lua_getmetatable", type: "pointer", optional: true },
  address_lua_callk: { name: "lua_callk", type: "pointer", optional: true },
  address_lua_rotate: { name: "lua_rotate", type: "pointer", optional: true },
  address_lua_setmetatable: { name: "lua_setmetatable", type: "pointer", optional: true },
  address_lua_getstack: { name: "lua_getstack", type: "pointer", optional: true },
  address_lua_getinfo: { name: "lua_getinfo", type: "pointer", optional: true },
  address_lua_next: { name: "lua_next", type: "pointer", optional: true },
  address_lua_tolstring: { name: "lua_tolstring", type: "pointer", optional: true },
  address_lua_copy: { name: "lua_copy", type: "pointer", optional: true },
  address_lua_concat: { name: "lua_concat", type: "pointer", optional: true },
  address_lua_iscfunction: { name: "lua_iscfunction", type: "pointer", optional: true },
  address_lua_getupvalue: { name: "lua_getupvalue", type: "pointer", optional: true },
  // void lua_sethook(lua_State *L, lua_Hook f, int mask, int count)
  address_lua_sethook: { name: "lua_sethook", type: "pointer", optional: true },
  address_lua_rawgetp: { name: "lua_rawgetp", type: "pointer", optional: true },
  address_lua_rawsetp: { name: "lua_rawsetp", type: "pointer", optional: true },
  address_lua_gc: { name: "lua_gc", type: "pointer", optional: true },
  address_lua_tothread: { name: "lua_tothread", type: "pointer", optional: true },
  // const char *lua_setupvalue(lua_State *L, int funcindex, int n)
  address_lua_setupvalue: { name: "lua_setupvalue", type: "pointer", optional: true },
  // int lua_rawequal(lua_State *L, int idx1, int idx2)
  address_lua_rawequal: { name: "lua_rawequal", type: "pointer", optional: true },
} as const satisfies Deno.ForeignLibraryInterface;

/** The opened Lua library: every symbol of {@linkcode LUA_SYMBOLS}, optional ones possibly `null`. */
export type LuaSymbols = Deno.DynamicLibrary<typeof LUA_SYMBOLS>["symbols"];

/**
 * The functions only the trusted bridge calls: its coroutine handles, the length of a table
 * handle and the globals of a chunk it runs again. Bound on first use (`LuaLibrary.bridgeSymbols`
 * in `library.ts`): `Deno.dlopen` compiles a trampoline for every function it binds, about 0.28 ms
 * apiece, and a process that runs only sandboxes never calls these.
 */
export const LUA_BRIDGE_SYMBOLS = {
  // lua_State *lua_newthread(lua_State *L)
  lua_newthread: { parameters: ["pointer"], result: "pointer" },
  // void lua_xmove(lua_State *from, lua_State *to, int n)
  lua_xmove: { parameters: ["pointer", "pointer", "i32"], result: "void" },
  // lua_State *lua_tothread(lua_State *L, int idx)
  lua_tothread: { parameters: ["pointer", "i32"], result: "pointer" },
  // int lua_pushthread(lua_State *L)
  lua_pushthread: { parameters: ["pointer"], result: "i32" },
  // int lua_status(lua_State *L)
  lua_status: { parameters: ["pointer"], result: "i32" },
  // size_t lua_rawlen(lua_State *L, int idx)  (5.2 and later; lua_Unsigned in 5.4)
  lua_rawlen: { parameters: ["pointer", "i32"], result: "u64", optional: true },
  // size_t lua_objlen(lua_State *L, int idx)  (5.1 and LuaJIT)
  lua_objlen: { parameters: ["pointer", "i32"], result: "u64", optional: true },
  // int lua_resume(lua_State *L, int narg)  (5.1 and LuaJIT)
  lua_resume51: { name: "lua_resume", parameters: ["pointer", "i32"], result: "i32", optional: true },
  // int lua_resume(lua_State *L, lua_State *from, int nargs)  (5.2, 5.3)
  lua_resume53: {
    name: "lua_resume",
    parameters: ["pointer", "pointer", "i32"],
    result: "i32",
    optional: true,
  },
  // int lua_resume(lua_State *L, lua_State *from, int nargs, int *nresults)
  lua_resume54: {
    name: "lua_resume",
    parameters: ["pointer", "pointer", "i32", "buffer"],
    result: "i32",
    optional: true,
  },
  // const char *lua_setupvalue(lua_State *L, int funcindex, int n)
  lua_setupvalue: { parameters: ["pointer", "i32", "i32"], result: "pointer" },
  // int lua_resetthread(lua_State *L)  (5.4.0 to 5.4.5; lua_closethread replaces it in 5.4.6)
  lua_resetthread: { parameters: ["pointer"], result: "i32", optional: true },
  // int lua_closethread(lua_State *L, lua_State *from)  (5.4.6 and later)
  lua_closethread: { parameters: ["pointer", "pointer"], result: "i32", optional: true },
} as const satisfies Deno.ForeignLibraryInterface;

/** The functions of {@linkcode LUA_BRIDGE_SYMBOLS}, optional ones possibly `null`. */
export type LuaBridgeSymbols = Deno.DynamicLibrary<typeof LUA_BRIDGE_SYMBOLS>["symbols"];

/**
 * `lua_rawgeti` and `lua_rawseti` under their signatures before 5.3 (an `int` index, no result):
 * the C names of the 5.3 ones in {@linkcode LUA_SYMBOLS}, so bound only for a library that has
 * them with these signatures (5.1, LuaJIT, 5.2).
 */
export const LUA_LEGACY_SYMBOLS = {
  // void lua_rawgeti(lua_State *L, int idx, int n)
  lua_rawgeti51: {
    name: "lua_rawgeti",
    parameters: ["pointer", "i32", "i32"],
    result: "void",
    optional: true,
  },
  // void lua_rawseti(lua_State *L, int idx, int n)
  lua_rawseti51: {
    name: "lua_rawseti",
    parameters: ["pointer", "i32", "i32"],
    result: "void",
    optional: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The functions of {@linkcode LUA_LEGACY_SYMBOLS}. */
export type LuaLegacySymbols = Deno.DynamicLibrary<typeof LUA_LEGACY_SYMBOLS>["symbols"];
