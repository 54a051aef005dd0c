/**
 * Plain data pushed in one call: a value of plain objects, arrays, strings, numbers and booleans is
 * encoded as a program for the native data builder (`ffi/data_builder.ts`), which builds the same
 * tables `lua/plain_data.ts` would build field by field, with one FFI crossing instead of dozens.
 *
 * Anything else (Maps, Dates, binary data, bigints, objects a hook claims, values too large for
 * the builder's buffers) makes the encoder give up, and the caller pushes field by field: the
 * result is the same either way, including the errors for values that cannot be data.
 *
 * @module
 */

import { type DataBuilder, DataOp, MAX_PROGRAM_SLOTS, PROGRAM_HEADER } from "../ffi/data_builder.ts";
import { type LuaState, LuaStatus, LuaType } from "../ffi/lua_api.ts";
import { writeUtf8 } from "../ffi/strings.ts";
import type { LuaCore } from "./core.ts";
import { LuaError, LuaMemoryError } from "./errors.ts";
import { copiedAsRecord } from "./plain_data.ts";

/** Bounds on a copy (see `PlainDataLimits` in `lua/plain_data.ts`). */
interface Limits {
  maxDepth: number;
  maxEntries: number;
}

/** Which objects a caller pushes its own way (see `ObjectHook` in `lua/plain_data.ts`). */
interface Claims {
  claims(object: object): boolean;
}

// Strings of at most this many UTF-16 units keep their bytes between values: keys and short
// values ("read", "admin", ids) recur from one input to the next. 3 bytes per unit at most.
const CACHED_STRING_UNITS = 40;
// The first part of the byte buffer holds cached strings, the rest the strings of one value.
const CACHE_BYTES = 16 * 1024;
const CACHE_REFILL_AT = CACHE_BYTES - 1024;
// Below this many fields and items, pushing field by field costs less than one protected call.
const FEWEST_ENTRIES = 2;
// Cached strings of at most KNOWN_BYTES bytes that recur get a slot in a table each state keeps
// (its known strings), first come first served: the builder pushes them from there instead of
// looking them up in Lua's string table, whose hashing and chain walk cost more than building the
// tables. At most about 20 KiB per state (256 strings of at most 32 bytes, and the table), kept
// only while the state has KNOWN_HEADROOM bytes to spare under its memory limit.
const KNOWN_SLOTS = 256;
const KNOWN_BYTES = 32;
const KNOWN_HEADROOM = 1 << 20;
// A cache entry packs slot * 2^22 + offset * 2^8 + length (offset < CACHE_BYTES = 2^14, length < 2^8).
const SLOT_UNIT = 2 ** 22;
const TWO_32 = 2 ** 32;
// The keys of the last values, by their place in the value (a power of 2).
const RECENT_POSITIONS = 256;
const INTEGER_BOUND = 2 ** 63;

const hasOwn = Object.prototype.hasOwnProperty;

function hasEnumerableKeys(object: object): boolean {
  for (const _key in object) return true;
  return false;
}

/** Encodes values for one data builder and runs it; one per builder, shared by every state. */
export class DataEncoder {
  readonly #builder: DataBuilder;
  readonly #program: Int32Array;
  readonly #bytes: Uint8Array;
  readonly #numbers: Float64Array;
  // checked before each field or item: room for its key, its value and its set (9 ints at most),
  // and for the sets of the tables that may close after it, 2 ints for each of up to
  // MAX_PROGRAM_SLOTS levels
  readonly #programEnd: number;
  // the slot, offset and length of each cached string in the cache part of #bytes (SLOT_UNIT)
  readonly #cache = new Map<string, number>();
  #cacheEnd = 0;
  #slots = 0;
  // bumped when the cache starts over: a state's known strings from an older generation are stale
  #generation = 0;
  // whether the value being encoded may use the state's known strings
  #useKnown = false;
  #position = 0;
  readonly #recentTexts: (string | undefined)[] = new Array(RECENT_POSITIONS).fill(undefined);
  readonly #recentEntries: number[] = new Array(RECENT_POSITIONS).fill(0);
  #numberCount = 0;
  #bytesEnd = 0;
  #maxTop = 0;
  #entries = 0;
  #limits: Limits = { maxDepth: 0, maxEntries: 0 };
  #hook: Claims | undefined;
  #inheritedKeys = false;
  // nonzero from encoding to the end of the build (C memory: the call runner clears it once its
  // build is done): a getter or a finalizer calling back into JS pushes its data field by field
  // instead of rewriting the program in use
  readonly #busy: Int32Array;

  /** @param builder The native builder whose buffers this encoder writes. */
  constructor(builder: DataBuilder) {
    this.#builder = builder;
    this.#program = builder.program;
    this.#bytes = builder.bytes;
    this.#numbers = builder.numbers;
    this.#busy = builder.busy;
    this.#programEnd = builder.program.length - 9 - 2 * MAX_PROGRAM_SLOTS;
  }

  /**
   * Pushes `value` (an object or array) as fresh tables and returns true, or returns false without
   * touching the stack when the value is not for the builder. Uses 2 slots (the builder and the
   * known strings), leaves 1.
   *
   * @throws {LuaMemoryError} when the allocator failed outright.
   */
  push(core: LuaCore, L: LuaState, value: object, limits: Limits, hook: Claims | undefined): boolean {
    const known = this.encode(core, L, value, limits, hook, FEWEST_ENTRIES);
    if (known < 0) return false;
    const api = core.api;
    const s = api.sym;
    let status;
    try {
      core.ensureStack(L, 2);
      s.lua_pushcclosure(L, this.#builder.entry, 0);
      if (known > 0) core.pushRegistry(L, known);
      else s.lua_pushnil(L);
      status = api.pcall(L, 1, 1, 0);
    } finally {
      this.done();
    }
    if (status === LuaStatus.OK && s.lua_type(L, -1) === LuaType.TABLE) return true;
    api.pop(L, 1);
    throw buildError(status);
  }

  /**
   * Writes `value` (an object or array with at least `fewest` fields and items) as the builder's
   * program, for a build that ends with {@linkcode DataEncoder.done}, and returns the registry
   * reference of the state's known strings, the builder's argument (0: none, pass nil). Returns -1
   * when the value is not for the builder or the buffers are in use; then there is nothing to end.
   */
  encode(
    core: LuaCore,
    L: LuaState,
    value: object,
    limits: Limits,
    hook: Claims | undefined,
    fewest: number,
  ): number {
    if (this.#busy[0] !== 0) return -1;
    this.#busy[0] = 1;
    let encoded = false;
    try {
      if (this.#cacheEnd > CACHE_REFILL_AT) this.#startOver();
      const useKnown = this.#roomForKnown(core);
      this.#useKnown = useKnown;
      if (!this.#encode(value, limits, hook) || this.#entries < fewest) return -1;
      const known = useKnown ? this.#knownRef(core, L) : 0;
      encoded = true;
      return known;
    } finally {
      this.#hook = undefined;
      // a throw (a getter, a stack that cannot grow) leaves nothing to end: the buffers are free
      if (!encoded) this.#busy[0] = 0;
    }
  }

  /** Ends the build {@linkcode DataEncoder.encode} began: the buffers are free again. */
  done(): void {
    this.#busy[0] = 0;
  }

  #encode(value: object, limits: Limits, hook: Claims | undefined): boolean {
    this.#limits = limits;
    this.#hook = hook;
    this.#numberCount = 0;
    this.#bytesEnd = CACHE_BYTES;
    this.#maxTop = 0;
    this.#entries = 0;
    this.#position = 0;
    this.#inheritedKeys = hasEnumerableKeys(Object.prototype);
    const end = this.#container(value, PROGRAM_HEADER, 0, 0);
    if (end < 0) return false;
    this.#program[0] = end - PROGRAM_HEADER;
    this.#program[1] = this.#maxTop;
    return true;
  }

  // Writes a table at `at` for the object or array below `height` stack slots; returns where the
  // program goes on, or -1 when the builder cannot take it.
  #container(object: object, at: number, depth: number, height: number): number {
    if (depth >= this.#limits.maxDepth || (this.#hook !== undefined && this.#hook.claims(object))) return -1;
    // a key and a value above the table
    const top = height + 3;
    if (top > MAX_PROGRAM_SLOTS) return -1;
    if (top > this.#maxTop) this.#maxTop = top;
    if (Array.isArray(object)) return this.#array(object, at, depth, height + 1);
    if (!copiedAsRecord(object)) return -1;
    return this.#record(object as Record<string, unknown>, at, depth, height + 1);
  }

  // n also sizes the table the builder makes: no larger than a program could fill
  #counted(n: number): boolean {
    this.#entries += n;
    return this.#entries <= this.#limits.maxEntries && n <= this.#program.length;
  }

  // null and undefined items are skipped: setting nil adds nothing to a fresh table
  #array(array: unknown[], at: number, depth: number, height: number): number {
    const n = array.length;
    if (!this.#counted(n)) return -1;
    const p = this.#program;
    p[at] = DataOp.TABLE;
    p[at + 1] = n;
    p[at + 2] = 0;
    at += 3;
    for (let i = 0; i < n; i++) {
      const item = array[i];
      if (item === undefined || item === null) continue;
      if (at > this.#programEnd) return -1;
      at = this.#value(item, at, depth, height);
      if (at < 0) return -1;
      p[at] = DataOp.SET_INDEX;
      p[at + 1] = i + 1;
      at += 2;
    }
    return at;
  }

  // One for-in pass, as in lua/plain_data.ts no key array per object; the table's size is filled
  // in afterwards. Only own keys are copied: for-in gives them before any inherited one, so a last
  // key of its own means there was none (a record of any class is taken, without reading its
  // prototype). hasOwnProperty on each key is needed only when Object.prototype itself has
  // enumerable keys, which every record would inherit.
  #record(fields: Record<string, unknown>, at: number, depth: number, height: number): number {
    const p = this.#program;
    const table = at;
    p[at] = DataOp.TABLE;
    p[at + 1] = 0;
    at += 3;
    const ownOnly = this.#inheritedKeys;
    let n = 0;
    let last: string | undefined;
    for (const key in fields) {
      if (ownOnly && !hasOwn.call(fields, key)) continue;
      n++;
      last = key;
      const field = fields[key];
      if (field === undefined || field === null) continue;
      if (at > this.#programEnd) return -1;
      at = this.#key(key, at);
      if (at < 0) return -1;
      at = this.#value(field, at, depth, height + 1);
      if (at < 0) return -1;
      p[at++] = DataOp.SET_FIELD;
    }
    if (last !== undefined && !ownOnly && !hasOwn.call(fields, last)) return -1;
    p[table + 2] = n;
    return this.#counted(n) ? at : -1;
  }

  #value(value: unknown, at: number, depth: number, height: number): number {
    if (typeof value === "string") return this.#string(value, at);
    if (typeof value === "number") return this.#number(value, at);
    if (typeof value === "boolean") {
      this.#program[at] = value ? DataOp.TRUE : DataOp.FALSE;
      return at + 1;
    }
    if (typeof value === "object" && value !== null) return this.#container(value, at, depth + 1, height);
    return -1;
  }

  #number(value: number, at: number): number {
    const p = this.#program;
    if (Number.isInteger(value) && value >= -INTEGER_BOUND && value < INTEGER_BOUND) {
      const high = Math.floor(value / TWO_32);
      p[at] = DataOp.INTEGER;
      p[at + 1] = (value - high * TWO_32) | 0;
      p[at + 2] = high;
      return at + 3;
    }
    if (this.#numberCount >= this.#numbers.length) return -1;
    this.#numbers[this.#numberCount] = value;
    p[at] = DataOp.NUMBER;
    p[at + 1] = this.#numberCount++;
    return at + 2;
  }

  // The cache starts over when full: slots are handed out again, so every state's known strings
  // are stale.
  #startOver(): void {
    this.#cache.clear();
    this.#recentTexts.fill(undefined);
    this.#cacheEnd = 0;
    this.#slots = 0;
    this.#generation++;
  }

  // Whether the state has room for its known strings; a table it had is released when it has not.
  #roomForKnown(core: LuaCore): boolean {
    if (core.alloc.limit() - core.alloc.used() >= KNOWN_HEADROOM) return true;
    const known = core.knownStrings;
    if (known !== undefined) {
      core.unref(known.ref);
      core.knownStrings = undefined;
    }
    return false;
  }

  // The reference of the state's table of known strings, made (again, for a new generation) when
  // needed: only a value the builder takes makes one. Uses 1 slot while it makes one.
  #knownRef(core: LuaCore, L: LuaState): number {
    let known = core.knownStrings;
    if (known === undefined || known.generation !== this.#generation) {
      if (known !== undefined) core.unref(known.ref);
      core.ensureStack(L, 1);
      core.api.sym.lua_createtable(L, KNOWN_SLOTS, 0);
      known = { ref: core.ref(L), generation: this.#generation };
      core.knownStrings = known;
    }
    return known.ref;
  }

  // A key is most often the key at the same place in the value before (same-shaped inputs): V8
  // hands out one string per property name, so comparing with it costs less than a Map lookup.
  #key(text: string, at: number): number {
    const position = this.#position++ & (RECENT_POSITIONS - 1);
    if (this.#recentTexts[position] === text) return this.#write(this.#recentEntries[position], text, at);
    const entry = this.#entryOf(text);
    if (entry >= SLOT_UNIT) {
      this.#recentTexts[position] = text;
      this.#recentEntries[position] = entry;
    }
    return this.#write(entry, text, at);
  }

  #string(text: string, at: number): number {
    return this.#write(this.#entryOf(text), text, at);
  }

  #write(entry: number, text: string, at: number): number {
    let offset, length;
    if (entry >= 0) {
      offset = (entry >>> 8) & (CACHE_BYTES - 1);
      length = entry & 0xff;
    } else {
      offset = this.#bytesEnd;
      length = writeUtf8(text, this.#bytes, offset);
      if (length < 0) return -1;
      this.#bytesEnd = offset + length;
    }
    const p = this.#program;
    if (entry >= SLOT_UNIT && this.#useKnown) {
      p[at++] = DataOp.KNOWN_STRING;
      p[at++] = Math.floor(entry / SLOT_UNIT);
    } else {
      p[at++] = DataOp.STRING;
    }
    p[at] = offset;
    p[at + 1] = length;
    return at + 2;
  }

  // The cache entry of a short string, entering it (or giving it a slot) as needed; -1 for a longer
  // one, or when the cache has no room for it.
  #entryOf(text: string): number {
    if (text.length > CACHED_STRING_UNITS) return -1;
    const cached = this.#cache.get(text);
    if (cached === undefined) return this.#cached(text);
    return cached < SLOT_UNIT ? this.#seenAgain(text, cached) : cached;
  }

  // A short string enters the cache part while it has room, without a slot: its entry, or -1.
  #cached(text: string): number {
    const at = this.#cacheEnd;
    if (at + 3 * CACHED_STRING_UNITS > CACHE_BYTES) return -1;
    const length = writeUtf8(text, this.#bytes, at);
    const entry = at * 256 + length;
    this.#cache.set(text, entry);
    this.#cacheEnd = at + length;
    return entry;
  }

  // A cached string seen again gets a slot while there are some: the slots go to strings that
  // recur (keys, roles, actions), not to the ids each value brings once.
  #seenAgain(text: string, entry: number): number {
    if ((entry & 0xff) > KNOWN_BYTES || this.#slots >= KNOWN_SLOTS) return entry;
    const slotted = entry + ++this.#slots * SLOT_UNIT;
    this.#cache.set(text, slotted);
    return slotted;
  }
}

/**
 * The error of a build that did not leave its table (`status` of its protected call).
 *
 * @example Usage
 * ```ts
 * import { buildError } from "./data_program.ts";
 * console.log(buildError(4).message); // "not enough memory" (LUA_ERRMEM)
 * ```
 *
 * @param status The status of the build's `lua_pcall`.
 * @returns a {@linkcode LuaMemoryError} when the allocator failed outright, otherwise a
 *   {@linkcode LuaError} (the builder refused its program: a bug).
 */
export function buildError(status: number): LuaError {
  if (status === LuaStatus.ERRMEM) return new LuaMemoryError("not enough memory");
  return new LuaError("luagate: internal error: the data builder refused its program");
}

const encoders = new WeakMap<DataBuilder, DataEncoder>();

/**
 * The encoder of `builder` (one per builder: they share its buffers).
 *
 * @example Usage
 * ```ts ignore
 * import { openDataBuilder } from "../ffi/data_builder.ts";
 * import { openLuaLibrary } from "../ffi/library.ts";
 * import { dataEncoder } from "./data_program.ts";
 *
 * const builder = openDataBuilder(openLuaLibrary());
 * const encoder = builder && dataEncoder(builder);
 * ```
 *
 * @param builder The native builder.
 * @returns its encoder.
 */
export function dataEncoder(builder: DataBuilder): DataEncoder {
  let encoder = encoders.get(builder);
  if (encoder === undefined) {
    encoder = new DataEncoder(builder);
    encoders.set(builder, encoder);
  }
  return encoder;
}
