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
// Below this many values, pushing field by field costs less than one protected call.
const FEWEST_VALUES = 4;
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
  // checked after each push: room for the next push (4 ints) and for the sets that may follow
  // it before the next check, one per open table (2 ints each)
  readonly #programEnd: number;
  // the slot, offset and length of each cached string in the cache part of #bytes (SLOT_UNIT)
  readonly #cache = new Map<string, number>();
  #cacheEnd = 0;
  #slots = 0;
  // bumped when the cache starts over: a state's known strings from an older generation are stale
  #generation = 0;
  readonly #known = new WeakMap<LuaCore, { ref: number; generation: number }>();
  // whether the value being encoded may use the state's known strings
  #useKnown = false;
  #at = 0;
  #numberCount = 0;
  #bytesEnd = 0;
  #top = 0;
  #maxTop = 0;
  #values = 0;
  #entries = 0;
  #limits: Limits = { maxDepth: 0, maxEntries: 0 };
  #hook: Claims | undefined;
  #inheritedKeys = false;
  // set from encoding to the builder's return: a getter or a finalizer calling back into JS pushes
  // its data field by field instead of rewriting the program in use
  #running = false;

  /** @param builder The native builder whose buffers this encoder writes. */
  constructor(builder: DataBuilder) {
    this.#builder = builder;
    this.#program = builder.program;
    this.#bytes = builder.bytes;
    this.#numbers = builder.numbers;
    this.#programEnd = builder.program.length - 4 - 2 * MAX_PROGRAM_SLOTS;
  }

  /**
   * Pushes `value` (an object or array) as fresh tables and returns true, or returns false without
   * touching the stack when the value is not for the builder. Uses 2 slots (the builder and the
   * known strings), leaves 1.
   *
   * @throws {LuaMemoryError} when the allocator failed outright.
   */
  push(core: LuaCore, L: LuaState, value: object, limits: Limits, hook: Claims | undefined): boolean {
    if (this.#running) return false;
    const api = core.api;
    const s = api.sym;
    this.#running = true;
    let status;
    try {
      if (this.#cacheEnd > CACHE_REFILL_AT) this.#startOver();
      this.#useKnown = this.#roomForKnown(core);
      if (!this.#encode(value, limits, hook) || this.#values < FEWEST_VALUES) return false;
      core.ensureStack(L, 2);
      s.lua_pushcclosure(L, this.#builder.entry, 0);
      if (this.#useKnown) this.#pushKnown(core, L);
      else s.lua_pushnil(L);
      status = api.pcall(L, 1, 1, 0);
    } finally {
      this.#running = false;
      this.#hook = undefined;
    }
    if (status === LuaStatus.OK && s.lua_type(L, -1) === LuaType.TABLE) return true;
    api.pop(L, 1);
    if (status === LuaStatus.ERRMEM) throw new LuaMemoryError("not enough memory");
    throw new LuaError("luagate: internal error: the data builder refused its program");
  }

  #encode(value: object, limits: Limits, hook: Claims | undefined): boolean {
    this.#limits = limits;
    this.#hook = hook;
    this.#at = PROGRAM_HEADER;
    this.#numberCount = 0;
    this.#bytesEnd = CACHE_BYTES;
    this.#top = 0;
    this.#maxTop = 0;
    this.#values = 0;
    this.#entries = 0;
    this.#inheritedKeys = hasEnumerableKeys(Object.prototype);
    if (!this.#object(value, 0)) return false;
    this.#program[0] = this.#at - PROGRAM_HEADER;
    this.#program[1] = this.#maxTop;
    return true;
  }

  // Every value pushed counts one slot until a set pops it.
  #pushed(): boolean {
    this.#values++;
    if (++this.#top > this.#maxTop) this.#maxTop = this.#top;
    return this.#top <= MAX_PROGRAM_SLOTS && this.#at <= this.#programEnd;
  }

  #value(value: unknown, depth: number): boolean {
    switch (typeof value) {
      case "string":
        return this.#string(value);
      case "number":
        return this.#number(value);
      case "boolean":
        this.#program[this.#at++] = value ? DataOp.TRUE : DataOp.FALSE;
        return this.#pushed();
      case "object":
        return value !== null && this.#object(value, depth);
    }
    return false;
  }

  #object(object: object, depth: number): boolean {
    if (depth >= this.#limits.maxDepth || (this.#hook !== undefined && this.#hook.claims(object))) {
      return false;
    }
    if (Array.isArray(object)) return this.#array(object, depth);
    const prototype = Object.getPrototypeOf(object);
    return (prototype === Object.prototype || prototype === null) && this.#record(object, depth);
  }

  #counted(n: number): boolean {
    this.#entries += n;
    return this.#entries <= this.#limits.maxEntries && n <= this.#program.length;
  }

  #table(narr: number, nrec: number): boolean {
    const p = this.#program;
    const at = this.#at;
    p[at] = DataOp.TABLE;
    p[at + 1] = narr;
    p[at + 2] = nrec;
    this.#at = at + 3;
    return this.#pushed();
  }

  // null and undefined items are skipped: setting nil adds nothing to a fresh table
  #array(array: unknown[], depth: number): boolean {
    const n = array.length;
    if (!this.#counted(n) || !this.#table(n, 0)) return false;
    const p = this.#program;
    for (let i = 0; i < n; i++) {
      const item = array[i];
      if (item === undefined || item === null) continue;
      if (!this.#value(item, depth + 1)) return false;
      p[this.#at++] = DataOp.SET_INDEX;
      p[this.#at++] = i + 1;
      this.#top--;
    }
    return true;
  }

  // One for-in pass, as in lua/plain_data.ts no key array per object; the table's size is filled
  // in afterwards. hasOwnProperty is needed only when Object.prototype has enumerable keys.
  #record(record: object, depth: number): boolean {
    const fields = record as Record<string, unknown>;
    const table = this.#at;
    if (!this.#table(0, 0)) return false;
    const p = this.#program;
    const ownOnly = this.#inheritedKeys;
    let n = 0;
    for (const key in fields) {
      if (ownOnly && !hasOwn.call(fields, key)) continue;
      n++;
      const field = fields[key];
      if (field === undefined || field === null) continue;
      if (!this.#string(key) || !this.#value(field, depth + 1)) return false;
      p[this.#at++] = DataOp.SET_FIELD;
      this.#top -= 2;
    }
    p[table + 2] = n;
    return this.#counted(n);
  }

  #number(value: number): boolean {
    const p = this.#program;
    const at = this.#at;
    if (Number.isInteger(value) && value >= -INTEGER_BOUND && value < INTEGER_BOUND) {
      const high = Math.floor(value / TWO_32);
      p[at] = DataOp.INTEGER;
      p[at + 1] = (value - high * TWO_32) | 0;
      p[at + 2] = high;
      this.#at = at + 3;
    } else {
      if (this.#numberCount >= this.#numbers.length) return false;
      this.#numbers[this.#numberCount] = value;
      p[at] = DataOp.NUMBER;
      p[at + 1] = this.#numberCount++;
      this.#at = at + 2;
    }
    return this.#pushed();
  }

  // The cache starts over when full: slots are handed out again, so every state's known strings
  // are stale.
  #startOver(): void {
    this.#cache.clear();
    this.#cacheEnd = 0;
    this.#slots = 0;
    this.#generation++;
  }

  // Whether the state has room for its known strings; a table it had is released when it has not.
  #roomForKnown(core: LuaCore): boolean {
    if (core.alloc.limit() - core.alloc.used() >= KNOWN_HEADROOM) return true;
    const known = this.#known.get(core);
    if (known !== undefined) {
      core.unref(known.ref);
      this.#known.delete(core);
    }
    return false;
  }

  // Pushes the state's table of known strings, made (again, for a new generation) when needed: only
  // a value the builder takes makes one. Uses 1 slot.
  #pushKnown(core: LuaCore, L: LuaState): void {
    let known = this.#known.get(core);
    if (known === undefined || known.generation !== this.#generation) {
      if (known !== undefined) core.unref(known.ref);
      core.api.sym.lua_createtable(L, KNOWN_SLOTS, 0);
      known = { ref: core.ref(L), generation: this.#generation };
      this.#known.set(core, known);
    }
    core.pushRegistry(L, known.ref);
  }

  #string(text: string): boolean {
    const entry = text.length <= CACHED_STRING_UNITS ? this.#entryOf(text) : -1;
    let offset, length;
    if (entry >= 0) {
      offset = (entry >>> 8) & (CACHE_BYTES - 1);
      length = entry & 0xff;
    } else {
      offset = this.#bytesEnd;
      length = writeUtf8(text, this.#bytes, offset);
      if (length < 0) return false;
      this.#bytesEnd = offset + length;
    }
    const p = this.#program;
    let at = this.#at;
    if (entry >= SLOT_UNIT && this.#useKnown) {
      p[at++] = DataOp.KNOWN_STRING;
      p[at++] = Math.floor(entry / SLOT_UNIT);
    } else {
      p[at++] = DataOp.STRING;
    }
    p[at++] = offset;
    p[at++] = length;
    this.#at = at;
    return this.#pushed();
  }

  // The cache entry of a short string, entering it (or giving it a slot) as needed; -1 when the
  // cache has no room for it.
  #entryOf(text: string): number {
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
