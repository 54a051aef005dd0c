/**
 * The C API macros of `lua.h` redone in TypeScript, specialised once for the loaded library's
 * version so that no call branches on the version. Thin: every function here maps to one or two
 * C calls and holds no safety logic (that lives in `lua/`).
 *
 * @module
 */

import type { LuaLibrary, LuaVersion } from "./library.ts";
import type { LuaBridgeSymbols, LuaSymbols } from "./symbols.ts";

/** Lua type tags (`LUA_T*`). */
export const LuaType = {
  NONE: -1,
  NIL: 0,
  BOOLEAN: 1,
  LIGHTUSERDATA: 2,
  NUMBER: 3,
  STRING: 4,
  TABLE: 5,
  FUNCTION: 6,
  USERDATA: 7,
  THREAD: 8,
} as const;

/** Status codes (`LUA_OK`, `LUA_YIELD`, `LUA_ERR*`); `ERRERR` differs by version, see {@linkcode LuaApi}. */
export const LuaStatus = { OK: 0, YIELD: 1, ERRRUN: 2, ERRSYNTAX: 3, ERRMEM: 4 } as const;

/** `lua_gc` requests shared by every version. */
export const LuaGC = { STOP: 0, RESTART: 1, COLLECT: 2, COUNT: 3, COUNTB: 4, STEP: 5 } as const;

/** `LUA_MULTRET`. */
export const MULTRET = -1;

/** A `lua_State *` (never null once created). */
export type LuaState = Deno.PointerObject;

const SMALL_BIGINTS: bigint[] = Array.from({ length: 1024 }, (_, i) => BigInt(i));

/** A JS number as the `bigint` a 64-bit FFI parameter wants, without allocating for small values. */
export function int64(n: number): bigint {
  return n >= 0 && n < 1024 ? SMALL_BIGINTS[n] : BigInt(n);
}

const INT64_BOUND = 2 ** 63;

/**
 * Whether a JS number goes to Lua as an integer: a whole number a 64-bit Lua integer holds (every
 * such double, beyond 2^53 too). Any other number goes as a float.
 *
 * @example Usage
 * ```ts
 * import { isLuaInteger } from "./lua_api.ts";
 * console.log(isLuaInteger(2 ** 62), isLuaInteger(2 ** 63), isLuaInteger(0.5)); // true false false
 * ```
 */
export function isLuaInteger(value: number): boolean {
  return Number.isInteger(value) && value >= -INT64_BOUND && value < INT64_BOUND;
}

/** The raw symbols plus the version-specialised macros. */
export interface LuaApi {
  /** The library this API drives. */
  readonly library: LuaLibrary;
  /** The raw symbols (version-specific ones may be null). */
  readonly sym: LuaSymbols;
  /** The functions only the trusted bridge calls, bound on first use (version-specific ones may be null). */
  bridge(): LuaBridgeSymbols;
  /** The language version. */
  readonly version: LuaVersion;
  /** `LUA_REGISTRYINDEX`. */
  readonly registryIndex: number;
  /** `LUA_ERRERR` for this version. */
  readonly errErr: number;
  /** `lua_upvalueindex(i)`. */
  upvalueIndex(i: number): number;
  /** `lua_pop(L, n)`. */
  pop(L: LuaState, n: number): void;
  /** `lua_insert(L, idx)`. */
  insert(L: LuaState, idx: number): void;
  /** `lua_remove(L, idx)`. */
  remove(L: LuaState, idx: number): void;
  /** `lua_replace(L, idx)`. */
  replace(L: LuaState, idx: number): void;
  /** `lua_absindex(L, idx)`, computed in JS (a call into C only for a relative index). */
  absIndex(L: LuaState, idx: number): number;
  /** `lua_pcall(L, nargs, nresults, msgh)`. */
  pcall(L: LuaState, nargs: number, nresults: number, msgh: number): number;
  /** `luaL_loadbufferx(L, code, size, name, mode)`; `mode` is ignored before 5.2 (checked by the caller). */
  loadBuffer(L: LuaState, code: Uint8Array, size: number, name: Uint8Array, mode: Uint8Array | null): number;
  /** `lua_tonumber(L, idx)`. */
  toNumber(L: LuaState, idx: number): number;
  /** `lua_tointeger(L, idx)` as a bigint. */
  toInteger(L: LuaState, idx: number): bigint;
  /** `lua_isinteger(L, idx)`: always false before 5.3. */
  isInteger(L: LuaState, idx: number): boolean;
  /** `lua_pushinteger(L, n)` for a safe-integer JS number. */
  pushInteger(L: LuaState, n: number): void;
  /** `lua_rawlen(L, idx)` (`lua_objlen` in 5.1). */
  rawLen(L: LuaState, idx: number): number;
  /** `lua_rawgeti(L, idx, n)`; returns the value's type. */
  rawGetI(L: LuaState, idx: number, n: number): number;
  /** `lua_rawseti(L, idx, n)`. */
  rawSetI(L: LuaState, idx: number, n: number): void;
  /** `lua_newuserdatauv(L, size, 1)` / `lua_newuserdata(L, size)`. */
  newUserdata(L: LuaState, size: number): Deno.PointerValue;
  /** `lua_resume`: returns the status; the number of results is `L`'s top for < 5.4, else `nresults[0]`. */
  resume(L: LuaState, from: LuaState, nargs: number): number;
  /** After {@linkcode LuaApi.resume}: how many values the coroutine returned or yielded. */
  resumeResults(L: LuaState): number;
  /** `lua_pushglobaltable(L)`. */
  pushGlobalTable(L: LuaState): void;
  /** `lua_newtable(L)`. */
  newTable(L: LuaState): void;
  /** Resets a dead or errored coroutine when the version can (5.4), returning whether it did. */
  closeThread(L: LuaState, from: LuaState): boolean;
  /** `lua_gc(L, what, data)`. */
  gc(L: LuaState, what: number, data: number): number;
}

function required<T>(value: T | null, name: string, version: string): T {
  if (value === null) throw new Error(`Lua ${version} library lacks ${name}`);
  return value;
}

/**
 * Builds the macro layer for an opened library.
 *
 * @example
 * ```ts
 * import { openLuaLibrary } from "./library.ts";
 * import { createLuaApi } from "./lua_api.ts";
 * const api = createLuaApi(openLuaLibrary());
 * const L = api.sym.luaL_newstate()!;
 * api.sym.lua_close(L);
 * ```
 */
export function createLuaApi(library: LuaLibrary): LuaApi {
  const s = library.symbols;
  const v = library.version;
  const modern = v !== "5.1";
  const registryIndex = modern ? -1001000 : -10000;
  const { lua_settop, lua_gc } = s;
  const nresults = new Int32Array(1);
  const nresultsBytes = new Uint8Array(nresults.buffer);

  let insert: LuaApi["insert"];
  let remove: LuaApi["remove"];
  let replace: LuaApi["replace"];
  if (s.lua_rotate !== null) {
    const rotate = s.lua_rotate;
    const copy = required(s.lua_copy, "lua_copy", v);
    insert = (L, idx) => rotate(L, idx, 1);
    remove = (L, idx) => {
      rotate(L, idx, -1);
      lua_settop(L, -2);
    };
    replace = (L, idx) => {
      copy(L, -1, idx);
      lua_settop(L, -2);
    };
  } else {
    insert = required(s.lua_insert, "lua_insert", v);
    remove = required(s.lua_remove, "lua_remove", v);
    replace = required(s.lua_replace, "lua_replace", v);
  }

  const pcallk = s.lua_pcallk;
  const pcall51 = s.lua_pcall;
  const pcall: LuaApi["pcall"] = pcallk !== null
    ? (L, nargs, nres, msgh) => pcallk(L, nargs, nres, msgh, 0n, null)
    : required(pcall51, "lua_pcall", v);

  const loadx = s.luaL_loadbufferx;
  const load51 = s.luaL_loadbuffer;
  const loadBuffer: LuaApi["loadBuffer"] = loadx !== null
    ? (L, code, size, name, mode) => loadx(L, code, int64(size), name, mode)
    : (L, code, size, name) => required(load51, "luaL_loadbuffer", v)(L, code, int64(size), name);

  const tonumberx = s.lua_tonumberx;
  const tonumber51 = s.lua_tonumber;
  const toNumber: LuaApi["toNumber"] = tonumberx !== null
    ? (L, idx) => tonumberx(L, idx, null)
    : required(tonumber51, "lua_tonumber", v);

  const tointegerx = s.lua_tointegerx;
  const toInteger: LuaApi["toInteger"] = tointegerx !== null
    ? (L, idx) => BigInt(tointegerx(L, idx, null))
    : (L, idx) => BigInt(Math.trunc(toNumber(L, idx)));

  const isint = s.lua_isinteger;
  const isInteger: LuaApi["isInteger"] = isint !== null ? (L, idx) => isint(L, idx) !== 0 : () => false;

  const pushinteger = s.lua_pushinteger;
  const pushnumber = s.lua_pushnumber;
  const pushInteger: LuaApi["pushInteger"] = v === "5.1" || v === "5.2"
    ? pushnumber
    : (L, n) => pushinteger(L, int64(n));

  const bridge = library.bridgeSymbols;
  const rawLen: LuaApi["rawLen"] = (L, idx) => {
    const b = bridge();
    return Number(required(b.lua_rawlen ?? b.lua_objlen, "lua_rawlen", v)(L, idx));
  };

  // The same C names exist before 5.3 with `void` results and `int` indexes (5.1, 5.2, LuaJIT): only
  // 5.3+ may use the lua_Integer signature, whose `int` result would be garbage there.
  const integerIndexes = v === "5.3" || v === "5.4";
  const rawgeti = integerIndexes ? s.lua_rawgeti : null;
  const rawseti = integerIndexes ? s.lua_rawseti : null;
  const legacy = integerIndexes ? null : library.legacySymbols();
  const rawgeti51 = legacy?.lua_rawgeti51 ?? null;
  const rawseti51 = legacy?.lua_rawseti51 ?? null;
  const lua_type = s.lua_type;
  const rawGetI: LuaApi["rawGetI"] = rawgeti !== null
    ? (L, idx, n) => rawgeti(L, idx, int64(n))
    : (L, idx, n) => {
      required(rawgeti51, "lua_rawgeti", v)(L, idx, n);
      return lua_type(L, -1);
    };
  const rawSetI: LuaApi["rawSetI"] = rawseti !== null
    ? (L, idx, n) => rawseti(L, idx, int64(n))
    : (L, idx, n) => required(rawseti51, "lua_rawseti", v)(L, idx, n);

  const newuserdatauv = s.lua_newuserdatauv;
  const newuserdata = s.lua_newuserdata;
  const newUserdata: LuaApi["newUserdata"] = newuserdatauv !== null
    ? (L, size) => newuserdatauv(L, int64(size), 1)
    : (L, size) => required(newuserdata, "lua_newuserdata", v)(L, int64(size));

  const gettop = s.lua_gettop;
  let resume: LuaApi["resume"];
  let resumeResults: LuaApi["resumeResults"];
  if (v === "5.4") {
    resume = (L, from, nargs) =>
      required(bridge().lua_resume54, "lua_resume", v)(L, from, nargs, nresultsBytes);
    resumeResults = () => nresults[0];
  } else if (v === "5.3" || v === "5.2") {
    resume = (L, from, nargs) => required(bridge().lua_resume53, "lua_resume", v)(L, from, nargs);
    resumeResults = (L) => gettop(L);
  } else {
    resume = (L, _from, nargs) => required(bridge().lua_resume51, "lua_resume", v)(L, nargs);
    resumeResults = (L) => gettop(L);
  }

  const closeThread: LuaApi["closeThread"] = (L, from) => {
    const { lua_closethread, lua_resetthread } = bridge();
    if (lua_closethread !== null) lua_closethread(L, from);
    else if (lua_resetthread !== null) lua_resetthread(L);
    else return false;
    return true;
  };

  const pushvalue = s.lua_pushvalue;
  const pushGlobalTable: LuaApi["pushGlobalTable"] = modern
    ? (L) => void rawGetI(L, registryIndex, 2)
    : (L) => pushvalue(L, -10002);

  const createtable = s.lua_createtable;
  // computed here: an absolute or pseudo index, the common case, needs no call into C
  const absIndex: LuaApi["absIndex"] = (
    L,
    idx,
  ) => (idx > 0 || idx <= registryIndex ? idx : gettop(L) + idx + 1);

  return {
    library,
    sym: s,
    bridge,
    version: v,
    registryIndex,
    errErr: v === "5.4" || v === "5.1" ? 5 : 6,
    // 5.1 and LuaJIT count upvalues down from LUA_GLOBALSINDEX (-10002), later versions from the registry.
    upvalueIndex: (i) => (modern ? registryIndex : -10002) - i,
    pop: (L, n) => lua_settop(L, -n - 1),
    insert,
    remove,
    replace,
    absIndex,
    pcall,
    loadBuffer,
    toNumber,
    toInteger,
    isInteger,
    pushInteger,
    rawLen,
    rawGetI,
    rawSetI,
    newUserdata,
    resume,
    resumeResults,
    pushGlobalTable,
    newTable: (L) => createtable(L, 0, 0),
    closeThread,
    gc: (L, what, data) => lua_gc(L, what, data),
  };
}
