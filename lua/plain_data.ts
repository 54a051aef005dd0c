/**
 * Plain data across the boundary, copied rather than shared: JS objects, arrays and Maps become
 * fresh Lua tables; Lua tables come back as arrays or null-prototype objects. Depth and size are
 * bounded and cycles are refused in both directions, so a hostile value can neither exhaust the
 * host nor smuggle a live reference across.
 *
 * @module
 */

import type { LuaState } from "../ffi/lua_api.ts";
import { LuaType } from "../ffi/lua_api.ts";
import { handleInfoOf, type LuaCore } from "./core.ts";
import { LuaError, LuaMemoryError } from "./errors.ts";
import { LuaTable, LuaUserdata } from "./handles.ts";
import { writeUtf8 } from "../ffi/strings.ts";

/** Bounds on a copy. */
export interface PlainDataLimits {
  /** Deepest nesting of tables/objects (default 64). */
  maxDepth: number;
  /** Most entries over the whole copy (default 1,000,000). */
  maxEntries: number;
}

/** The default bounds. */
export const DEFAULT_PLAIN_LIMITS: PlainDataLimits = Object.freeze({ maxDepth: 64, maxEntries: 1_000_000 });

/** Objects a caller pushes its own way instead of copying them (the sandbox's host objects). */
export interface ObjectHook {
  /** Whether `object` is pushed by {@linkcode ObjectHook.push} rather than copied. */
  claims(object: object): boolean;
  /** Pushes a claimed object. Uses 1 slot. */
  push(core: LuaCore, L: LuaState, object: object): void;
}

// Cycles are caught by the depth bound: a cyclic value nests without end.
interface PushState {
  limits: PlainDataLimits;
  entries: number;
  hook: ObjectHook | undefined;
}

// NUL-terminated keys for lua_setfield, one pair of FFI calls fewer per field than push + rawset.
const keyCache = new Map<string, Uint8Array>();
const KEY_CACHE_LIMIT = 4096;
const keyEncoder = new TextEncoder();

function cKey(key: string): Uint8Array | undefined {
  let bytes = keyCache.get(key);
  if (bytes !== undefined) return bytes;
  if (key.includes("\0")) return undefined;
  const encoded = keyEncoder.encode(key);
  bytes = new Uint8Array(encoded.length + 1);
  bytes.set(encoded);
  if (keyCache.size < KEY_CACHE_LIMIT) keyCache.set(key, bytes);
  return bytes;
}

// Short strings recur across inputs ("read", "admin", ids): pushed from a stable C buffer, Lua finds
// them in its pointer-keyed string cache instead of encoding and hashing them again.
function pushScalar(core: LuaCore, L: LuaState, value: unknown): boolean {
  switch (typeof value) {
    case "string": {
      const cached = value.length <= 40 ? cKey(value) : undefined;
      if (cached !== undefined) core.api.sym.lua_pushstring(L, cached);
      else core.pushString(L, value);
      return true;
    }
    case "boolean":
      core.api.sym.lua_pushboolean(L, value ? 1 : 0);
      return true;
    case "number":
    case "bigint":
    case "undefined":
      core.pushValue(L, value);
      return true;
    case "function":
      throw new TypeError("a function cannot be passed as data (grant it as a capability instead)");
    case "symbol":
      throw new TypeError("a symbol cannot be passed as data");
  }
  if (value === null) {
    core.api.sym.lua_pushnil(L);
    return true;
  }
  return false;
}

function pushInto(core: LuaCore, L: LuaState, value: unknown, depth: number, state: PushState): void {
  if (pushScalar(core, L, value)) return;
  const object = value as object;
  if (state.hook !== undefined && state.hook.claims(object)) return state.hook.push(core, L, object);
  if (depth >= state.limits.maxDepth) {
    throw new RangeError(`data nested deeper than ${state.limits.maxDepth} levels (or cyclic)`);
  }
  if (Array.isArray(object)) return pushArray(core, L, object, depth, state);
  if (copiedAsRecord(object)) return pushRecord(core, L, object, depth, state);
  if (object instanceof Uint8Array || handleInfoOf(object) !== undefined) return core.pushValue(L, object);
  if (object instanceof Date) {
    return core.pushValue(L, dateBytes.subarray(0, writeDateText(object, dateBytes, 0)));
  }
  if (object instanceof Map) return pushMap(core, L, object, depth, state);
  if (ArrayBuffer.isView(object)) throw new TypeError("only Uint8Array binary data can be passed as data");
  pushRecord(core, L, object, depth, state);
}

/**
 * Whether an object that is not an array is copied as a record of its enumerable keys, the same way
 * whatever its prototype: anything but binary data, dates, maps and handles of Lua values. Class
 * instances are records too. Asked this way rather than by reading the prototype, because
 * `Object.getPrototypeOf` is a call into V8's runtime that costs more than a small record's copy.
 *
 * @example Usage
 * ```ts
 * import { copiedAsRecord } from "./plain_data.ts";
 * console.log(copiedAsRecord({ a: 1 }), copiedAsRecord(new Map())); // true false
 * ```
 *
 * @param object The object, not an array.
 * @returns whether it becomes a table of its enumerable keys.
 */
export function copiedAsRecord(object: object): boolean {
  return !(ArrayBuffer.isView(object) || object instanceof Date || object instanceof Map ||
    object instanceof LuaTable || object instanceof LuaUserdata);
}

const DAY_MS = 86_400_000;
// 1000-01-01 and 10000-01-01 (UTC): years of four digits, which toISOString writes unpadded and unsigned
const FOUR_DIGIT_YEARS_FROM = -30_610_224_000_000;
const FOUR_DIGIT_YEARS_UNTIL = 253_402_300_800_000;
const ISO_BYTES = 24;
const [DASH, COLON, DOT, DIGIT_0, LETTER_T, LETTER_Z] = [45, 58, 46, 48, 84, 90];

/**
 * Writes the text a date is copied as into `target` from index `at`: what `toISOString` returns
 * (`"Invalid Date"` for an invalid date), its digits written here for the years 1000 to 9999, which
 * takes a tenth of the time. Returns the number of bytes written, or -1 when they do not fit.
 *
 * @example Usage
 * ```ts
 * import { writeDateText } from "./plain_data.ts";
 * const target = new Uint8Array(32);
 * const n = writeDateText(new Date(0), target, 0);
 * console.log(new TextDecoder().decode(target.subarray(0, n))); // "1970-01-01T00:00:00.000Z"
 * ```
 *
 * @param date The date.
 * @param target Where to write its text (ASCII).
 * @param at The index of the first byte.
 * @returns the number of bytes written, or -1.
 */
export function writeDateText(date: Date, target: Uint8Array, at: number): number {
  const time = date.getTime();
  if (Number.isNaN(time)) return writeUtf8("Invalid Date", target, at);
  if (time < FOUR_DIGIT_YEARS_FROM || time >= FOUR_DIGIT_YEARS_UNTIL) {
    return writeUtf8(date.toISOString(), target, at);
  }
  if (at + ISO_BYTES > target.length) return -1;
  // the civil date of a day count, in eras of 400 years from 0000-03-01
  const days = Math.floor(time / DAY_MS);
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const dayOfEra = z - era * 146_097;
  const yearOfEra = Math.floor(
    (dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36_524) -
      Math.floor(dayOfEra / 146_096)) / 365,
  );
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const fromMarch = Math.floor((5 * dayOfYear + 2) / 153);
  const month = fromMarch < 10 ? fromMarch + 3 : fromMarch - 9;
  let rest = time - days * DAY_MS;
  const hours = Math.floor(rest / 3_600_000);
  rest -= hours * 3_600_000;
  const minutes = Math.floor(rest / 60_000);
  rest -= minutes * 60_000;
  const seconds = Math.floor(rest / 1000);
  writeDigits(target, at, yearOfEra + era * 400 + (month <= 2 ? 1 : 0), 4);
  target[at + 4] = DASH;
  writeDigits(target, at + 5, month, 2);
  target[at + 7] = DASH;
  writeDigits(target, at + 8, dayOfYear - Math.floor((153 * fromMarch + 2) / 5) + 1, 2);
  target[at + 10] = LETTER_T;
  writeDigits(target, at + 11, hours, 2);
  target[at + 13] = COLON;
  writeDigits(target, at + 14, minutes, 2);
  target[at + 16] = COLON;
  writeDigits(target, at + 17, seconds, 2);
  target[at + 19] = DOT;
  writeDigits(target, at + 20, rest - seconds * 1000, 3);
  target[at + 23] = LETTER_Z;
  return ISO_BYTES;
}

// The `width` last decimal digits of `n`, zero-padded.
function writeDigits(target: Uint8Array, at: number, n: number, width: number): void {
  for (let i = at + width - 1; i >= at; i--) {
    const tens = Math.floor(n / 10);
    target[i] = DIGIT_0 + n - tens * 10;
    n = tens;
  }
}

// a date's text, pushed as its bytes (the longest, of an extended year, is 27)
const dateBytes = new Uint8Array(64);

function pushArray(core: LuaCore, L: LuaState, array: unknown[], depth: number, state: PushState): void {
  const n = array.length;
  count(state, n);
  core.ensureStack(L, 3);
  core.api.sym.lua_createtable(L, n, 0);
  for (let i = 0; i < n; i++) {
    const item = array[i];
    if (!pushScalar(core, L, item)) pushInto(core, L, item, depth + 1, state);
    core.api.rawSetI(L, -2, i + 1);
    checkOverdraft(core, i);
  }
}

const hasOwn = Object.prototype.hasOwnProperty;

// for-in rather than Object.keys: V8 walks objects of one hidden class through its enum cache,
// without allocating a key array or doing a generic keyed lookup per field.
function pushRecord(core: LuaCore, L: LuaState, record: object, depth: number, state: PushState): void {
  const s = core.api.sym;
  const fields = record as Record<string, unknown>;
  let n = 0;
  for (const key in fields) if (hasOwn.call(fields, key)) n++;
  count(state, n);
  core.ensureStack(L, 3);
  s.lua_createtable(L, 0, n);
  let i = 0;
  for (const key in fields) {
    if (!hasOwn.call(fields, key)) continue;
    checkOverdraft(core, i++);
    const v = fields[key];
    if (v === undefined) continue;
    const name = cKey(key);
    if (name === undefined) core.pushString(L, key);
    if (!pushScalar(core, L, v)) pushInto(core, L, v, depth + 1, state);
    if (name !== undefined) s.lua_setfield(L, -2, name);
    else s.lua_rawset(L, -3);
  }
}

function pushMap(
  core: LuaCore,
  L: LuaState,
  map: Map<unknown, unknown>,
  depth: number,
  state: PushState,
): void {
  const s = core.api.sym;
  count(state, map.size);
  core.ensureStack(L, 3);
  s.lua_createtable(L, 0, map.size);
  for (const [k, v] of map) {
    if (typeof k !== "string" && typeof k !== "number" && typeof k !== "boolean") {
      throw new TypeError(`a Map key of type ${typeof k} cannot be passed as data`);
    }
    if (v === undefined || (typeof k === "number" && Number.isNaN(k))) continue;
    core.pushValue(L, k);
    pushInto(core, L, v, depth + 1, state);
    s.lua_rawset(L, -3);
  }
}

function count(state: { entries: number; limits: PlainDataLimits }, n: number): void {
  state.entries += n;
  if (state.entries > state.limits.maxEntries) {
    throw new RangeError(`data has more than ${state.limits.maxEntries} entries`);
  }
}

// Pushing never fails (the allocator lends past the cap while the host pushes): a large value
// stops early once it is over even after a full collection, instead of being built whole first.
function checkOverdraft(core: LuaCore, i: number): void {
  if ((i & 1023) === 1023 && core.overdraftPersists()) {
    throw new LuaMemoryError("not enough memory: the data exceeds the memory limit");
  }
}

/**
 * Pushes `value` as fresh Lua data (tables for objects, arrays and Maps). Uses at most
 * 4 slots per nesting level, checked as it goes. `hook` may push some objects differently
 * (the sandbox pushes frozen host objects as proxies). Values the native data builder can take
 * are built in one call (`lua/data_program.ts`), the others field by field, with the same result.
 */
export function pushPlainData(
  core: LuaCore,
  L: LuaState,
  value: unknown,
  limits: PlainDataLimits = DEFAULT_PLAIN_LIMITS,
  hook?: ObjectHook,
): void {
  if (typeof value === "object" && value !== null && core.dataEncoder?.push(core, L, value, limits, hook)) {
    return;
  }
  pushFieldByField(core, L, value, limits, hook);
}

/**
 * Pushes `value` like {@linkcode pushPlainData}, one FFI call per table, key and value: the path for
 * what the native data builder does not take.
 */
export function pushFieldByField(
  core: LuaCore,
  L: LuaState,
  value: unknown,
  limits: PlainDataLimits = DEFAULT_PLAIN_LIMITS,
  hook?: ObjectHook,
): void {
  pushInto(core, L, value, 0, { limits, entries: 0, hook });
}

/** How values that are not plain data are read: return `undefined` to refuse them. */
export type ValueHook = (core: LuaCore, L: LuaState, idx: number, type: number) => unknown;

/**
 * Which table is read for the table at `idx` (an absolute index): push the one to read instead
 * (a read-only view's own table) and return true, or push nothing and return false. Uses at most
 * 2 slots.
 */
export type TableHook = (core: LuaCore, L: LuaState, idx: number) => boolean;

interface ReadState {
  limits: PlainDataLimits;
  entries: number;
  /** The stack indices of the tables being read, outermost first: their count is the depth. */
  path: number[];
  hook?: ValueHook;
  tableHook?: TableHook;
}

function readFrom(core: LuaCore, L: LuaState, idx: number, state: ReadState): unknown {
  const s = core.api.sym;
  const type = s.lua_type(L, idx);
  switch (type) {
    case LuaType.NIL:
    case LuaType.NONE:
      return undefined;
    case LuaType.BOOLEAN:
      return s.lua_toboolean(L, idx) !== 0;
    case LuaType.NUMBER:
      return core.readNumber(L, idx);
    case LuaType.STRING:
      return core.readString(L, idx);
    case LuaType.TABLE:
      return readTable(core, L, core.api.absIndex(L, idx), state);
  }
  const hooked = state.hook?.(core, L, idx, type);
  if (hooked !== undefined) return hooked;
  throw new LuaError(`a ${core.typeName(type)} cannot be returned as data`);
}

function readTable(core: LuaCore, L: LuaState, t: number, state: ReadState): unknown {
  const s = core.api.sym;
  const path = state.path;
  if (path.length >= state.limits.maxDepth) {
    throw new LuaError(`data nested deeper than ${state.limits.maxDepth} levels`);
  }
  // A cycle is a table met again inside itself: each table is compared (raw equality, one call each)
  // with the tables enclosing it, at most maxDepth of them. A set of addresses would hold bigints
  // (Deno's pointers), several times slower for the shallow results policies return.
  for (let i = 0; i < path.length; i++) {
    if (s.lua_rawequal(L, path[i], t) !== 0) throw new LuaError("data contains a cycle");
  }
  core.ensureStack(L, 3);
  if (state.tableHook?.(core, L, t)) {
    try {
      return readTable(core, L, core.api.absIndex(L, -1), state);
    } finally {
      s.lua_settop(L, -2);
    }
  }
  path.push(t);
  const keys: unknown[] = [];
  const values: unknown[] = [];
  let sequence = true;
  try {
    s.lua_pushnil(L);
    while (s.lua_next(L, t) !== 0) {
      count(state, 1);
      const keyType = s.lua_type(L, -2);
      let key: unknown;
      if (keyType === LuaType.STRING) {
        key = core.readString(L, -2);
        if (typeof key !== "string") key = new TextDecoder().decode(key as Uint8Array);
        sequence = false;
      } else if (keyType === LuaType.NUMBER) {
        key = core.readNumber(L, -2);
        if (typeof key !== "number" || !Number.isInteger(key) || key < 1) sequence = false;
      } else if (keyType === LuaType.BOOLEAN) {
        key = s.lua_toboolean(L, -2) !== 0;
        sequence = false;
      } else {
        throw new LuaError(`a table key of type ${core.typeName(keyType)} cannot be returned as data`);
      }
      const value = readFrom(core, L, -1, state);
      s.lua_settop(L, -2);
      keys.push(key);
      values.push(value);
    }
  } finally {
    path.pop();
  }
  const n = keys.length;
  if (sequence && n > 0) {
    const array = new Array(n);
    let filled = 0;
    for (let i = 0; i < n; i++) {
      const k = keys[i] as number;
      if (k > n) {
        sequence = false;
        break;
      }
      if (array[k - 1] === undefined) filled++;
      array[k - 1] = values[i];
    }
    if (sequence && filled === n) return array;
  }
  // without a prototype, "__proto__" is an ordinary key: assigning it makes an own property
  const object: Record<string, unknown> = Object.create(null);
  for (let i = 0; i < n; i++) {
    object[typeof keys[i] === "string" ? keys[i] as string : String(keys[i])] = values[i];
  }
  return object;
}

/**
 * Reads the value at `idx` as plain data: tables become arrays (keys exactly 1..n) or
 * null-prototype objects (keys as strings), bounded in depth and size, cycles refused.
 * `hook` decides about userdata, functions and coroutines (default: refused with a LuaError), and
 * `tableHook` which table stands for a table (default: itself).
 */
export function readPlainData(
  core: LuaCore,
  L: LuaState,
  idx: number,
  limits: PlainDataLimits = DEFAULT_PLAIN_LIMITS,
  hook?: ValueHook,
  tableHook?: TableHook,
): unknown {
  return readFrom(core, L, core.api.absIndex(L, idx), { limits, entries: 0, path: [], hook, tableHook });
}
