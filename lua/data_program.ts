/**
 * Plain data pushed in one call: a value of plain objects, arrays, strings, numbers and booleans is
 * encoded as a program for the native data builder (`ffi/data_builder.ts`), which builds the same
 * tables `lua/plain_data.ts` would build field by field, with one FFI crossing instead of dozens.
 *
 * Maps, dates, binary data and bigints are encoded as lua/plain_data.ts pushes them. Anything else
 * (handles of Lua values, objects a hook claims, values too large for the builder's buffers, values
 * that cannot be data) makes the encoder give up, and the caller pushes field by field: the result
 * is the same either way, including the errors for values that cannot be data.
 *
 * @module
 */

import {
  type DataBuilder,
  DataOp,
  detachedBuffers,
  MAX_PROGRAM_SLOTS,
  PROGRAM_HEADER,
  type ProgramBuffers,
} from "../ffi/data_builder.ts";
import { isLuaInteger, type LuaState, LuaStatus, LuaType } from "../ffi/lua_api.ts";
import { writeUtf8 } from "../ffi/strings.ts";
import type { LuaCore } from "./core.ts";
import { LuaError, LuaMemoryError } from "./errors.ts";
import { copiedAsRecord, writeDateText } from "./plain_data.ts";

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
// A field whose string values were new to the cache this many times running holds one-off strings
// (ids, times, addresses): its new values are not entered, but for one in PROBE_EVERY (a power of
// 2), which finds out whether they recur after all. Entering a one-off string costs more than
// writing its bytes, and fills the cache, which then starts over (and every state's known strings
// with it). Each is still looked up: V8 flattens a string built by concatenation when it hashes it,
// and reading one that is not flat char by char costs more than the lookup.
const NEW_RUN = 4;
const PROBE_EVERY = 32;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

const hasOwn = Object.prototype.hasOwnProperty;
// A chunk (DataEncoder.chunk): 6 ints (program ints, string bytes, numbers, the generation of the
// slots its known strings have, the writer's tag, 0), the numbers, the program, the strings' bytes,
// zeros to a multiple of 8 bytes.
const CHUNK_HEADER_BYTES = 24;
const TAG_INT = 4;
const wholeWords = (bytes: number) => (bytes + 7) & ~7;

/**
 * Encodes values for one data builder and runs it; one per builder, shared by every state. A
 * detached encoder ({@linkcode DataEncoder.detached}) has no builder: it writes chunks
 * ({@linkcode EncodedData}) that a builder in another thread loads as they are.
 */
export class DataEncoder {
  // undefined for a detached encoder, whose programs travel without the cache's bytes: it copies a
  // cached string's bytes into the value's own (cheaper than writing them again). Its values may be
  // decoded back to JS (decodeChunk), which keeps only string keys, text and integers of at most 53
  // bits: it takes no Map, binary data or bigint.
  readonly #entry: Deno.PointerObject | undefined;
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
  // by the place of a field: how many of its last string values were new to the cache, up to 255
  readonly #newRuns = new Uint8Array(RECENT_POSITIONS);
  #probes = 0;
  #numberCount = 0;
  #bytesEnd = 0;
  #maxTop = 0;
  #entries = 0;
  #limits: Limits = { maxDepth: 0, maxEntries: 0 };
  #hook: Claims | undefined;
  // nonzero from encoding to the end of the build (C memory: the call runner clears it once its
  // build is done): a getter or a finalizer calling back into JS pushes its data field by field
  // instead of rewriting the program in use
  readonly #busy: Int32Array;

  /** @param builder The native builder whose buffers this encoder writes, or buffers of its own (detached). */
  constructor(builder: DataBuilder | ProgramBuffers) {
    this.#entry = "entry" in builder ? builder.entry : undefined;
    this.#program = builder.program;
    this.#bytes = builder.bytes;
    this.#numbers = builder.numbers;
    this.#busy = builder.busy;
    this.#programEnd = builder.program.length - 9 - 2 * MAX_PROGRAM_SLOTS;
  }

  /**
   * An encoder without a builder, for {@linkcode DataEncoder.chunk}: its buffers have a builder's
   * capacities, so whatever it encodes fits any builder.
   */
  static detached(): DataEncoder {
    return new DataEncoder(detachedBuffers());
  }

  /**
   * Encodes `value` (an object or array) as a chunk that {@linkcode EncodedData} reads in any
   * thread, appended to `blocks`: returns where it starts in `blocks.current`, live there until
   * released ({@linkcode ChunkBlocks.release}), or -1 when a builder would not take the value (the
   * caller then sends it another way). Only for a detached encoder.
   *
   * @param tag An int32 the chunk carries ({@linkcode EncodedData.tag}): its reader checks that the
   *   chunk it reads is the one it was sent.
   */
  chunk(value: object, limits: Limits, blocks: ChunkBlocks, tag = 0): number {
    if (this.#entry !== undefined || this.#busy[0] !== 0) return -1;
    this.#busy[0] = 1;
    try {
      if (this.#cacheEnd > CACHE_REFILL_AT) this.#startOver();
      this.#useKnown = true;
      if (!this.#encode(value, limits, undefined)) return -1;
      const ints = this.#program[0] + PROGRAM_HEADER;
      const strings = this.#bytesEnd - CACHE_BYTES;
      const numbers = this.#numberCount;
      const programAt = CHUNK_HEADER_BYTES + numbers * 8;
      const bytesAt = programAt + ints * 4;
      const size = wholeWords(bytesAt + strings);
      const block = blocks.reserve(size);
      const start = block.end;
      block.end = start + size;
      const i32 = block.ints, f64 = block.floats, u8 = block.bytes;
      const program = this.#program, bytes = this.#bytes, floats = this.#numbers;
      let at = start >> 2;
      i32[at] = ints;
      i32[at + 1] = strings;
      i32[at + 2] = numbers;
      i32[at + 3] = this.#generation;
      i32[at + TAG_INT] = tag;
      i32[at + 5] = 0;
      at = (start + CHUNK_HEADER_BYTES) >> 3;
      for (let i = 0; i < numbers; i++) f64[at + i] = floats[i];
      i32.set(program.subarray(0, ints), (start + programAt) >> 2);
      u8.set(bytes.subarray(CACHE_BYTES, this.#bytesEnd), start + bytesAt);
      return start;
    } finally {
      this.#busy[0] = 0;
    }
  }

  /**
   * Pushes `value` (an object or array) as fresh tables and returns true, or returns false without
   * touching the stack when the value is not for the builder. Uses 2 slots (the builder and the
   * known strings), leaves 1.
   *
   * @throws {LuaMemoryError} when the allocator failed outright.
   */
  push(core: LuaCore, L: LuaState, value: object, limits: Limits, hook: Claims | undefined): boolean {
    // a detached encoder has no builder to push with
    const entry = this.#entry;
    if (entry === undefined) return false;
    const known = this.encode(core, L, value, limits, hook, FEWEST_ENTRIES);
    if (known < 0) return false;
    const api = core.api;
    const s = api.sym;
    let status;
    try {
      core.ensureStack(L, 2);
      s.lua_pushcclosure(L, entry, 0);
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
   * An {@linkcode EncodedData} is loaded as it is.
   *
   * @throws {LuaError} for an {@linkcode EncodedData} while the buffers are in use.
   */
  encode(
    core: LuaCore,
    L: LuaState,
    value: object,
    limits: Limits,
    hook: Claims | undefined,
    fewest: number,
  ): number {
    if (value instanceof EncodedData) return this.#load(core, L, value);
    if (this.#busy[0] !== 0) return -1;
    this.#busy[0] = 1;
    let encoded = false;
    try {
      if (this.#cacheEnd > CACHE_REFILL_AT) this.#startOver();
      const useKnown = this.#roomForKnown(core);
      this.#useKnown = useKnown;
      if (!this.#encode(value, limits, hook) || this.#entries < fewest) return -1;
      const known = useKnown ? this.#stringsRef(core, L, "knownStrings", this.#generation) : 0;
      encoded = true;
      return known;
    } finally {
      this.#hook = undefined;
      // a throw (a getter, a stack that cannot grow) leaves nothing to end: the buffers are free
      if (!encoded) this.#busy[0] = 0;
    }
  }

  /**
   * Whether this encoder loads a chunk into the state of `core` now: it has a builder, and the
   * state has room for the chunk's known strings (a state that has not is given the decoded value).
   */
  loadsChunks(core: LuaCore): boolean {
    return this.#entry !== undefined && this.#roomForKnown(core);
  }

  // A chunk's strings are in its own bytes, which go where an encoded value's own strings go; its
  // known strings have the slots of the encoder that made it, in the state's table for them.
  #load(core: LuaCore, L: LuaState, data: EncodedData): number {
    if (this.#busy[0] !== 0 || this.#entry === undefined) {
      throw new LuaError("luagate: internal error: encoded data arrived while the data builder was busy");
    }
    const { buffer, offset, ints, strings, numbers } = data;
    if (
      ints > this.#program.length || strings > this.#bytes.length - CACHE_BYTES ||
      numbers > this.#numbers.length
    ) {
      throw new LuaError("luagate: internal error: encoded data larger than the data builder's buffers");
    }
    const programAt = offset + CHUNK_HEADER_BYTES + numbers * 8;
    if (numbers > 0) this.#numbers.set(new Float64Array(buffer, offset + CHUNK_HEADER_BYTES, numbers));
    this.#program.set(new Int32Array(buffer, programAt, ints));
    this.#bytes.set(new Uint8Array(buffer, programAt + ints * 4, strings), CACHE_BYTES);
    data.assertIntact();
    const known = this.#stringsRef(core, L, "chunkStrings", data.generation);
    this.#busy[0] = 1;
    return known;
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
    if (copiedAsRecord(object)) return this.#record(object as Record<string, unknown>, at, depth, height + 1);
    if (object instanceof Map) return this.#map(object, at, depth, height + 1);
    // what lua/plain_data.ts pushes as a string, only as a field or an item: the builder makes a table
    if (depth === 0) return -1;
    if (object instanceof Date) return this.#date(object, at);
    if (object instanceof Uint8Array && this.#entry !== undefined) return this.#binary(object, at);
    return -1;
  }

  // As lua/plain_data.ts pushes a Map: keys that are strings, numbers or booleans, NaN keys and
  // undefined values left out.
  #map(map: Map<unknown, unknown>, at: number, depth: number, height: number): number {
    if (this.#entry === undefined || !this.#counted(map.size)) return -1;
    const p = this.#program;
    p[at] = DataOp.TABLE;
    p[at + 1] = 0;
    p[at + 2] = map.size;
    at += 3;
    for (const [key, value] of map) {
      const type = typeof key;
      if (type !== "string" && type !== "number" && type !== "boolean") return -1;
      if (value === undefined || value === null || Number.isNaN(key)) continue;
      if (at > this.#programEnd) return -1;
      at = type === "string" ? this.#key(key as string, at) : this.#value(key, at, depth, height);
      if (at < 0) return -1;
      at = this.#value(value, at, depth, height + 1);
      if (at < 0) return -1;
      p[at++] = DataOp.SET_FIELD;
    }
    return at;
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
  // in afterwards. Only own keys are copied, as lua/plain_data.ts copies them: in a for-in loop, V8
  // answers hasOwnProperty for the loop's own key from the object's hidden class, without a lookup.
  #record(fields: Record<string, unknown>, at: number, depth: number, height: number): number {
    const p = this.#program;
    const table = at;
    p[at] = DataOp.TABLE;
    p[at + 1] = 0;
    at += 3;
    let n = 0;
    for (const key in fields) {
      if (!hasOwn.call(fields, key)) continue;
      n++;
      const field = fields[key];
      if (field === undefined || field === null) continue;
      if (at > this.#programEnd) return -1;
      const place = this.#position & (RECENT_POSITIONS - 1);
      at = this.#key(key, at);
      if (at < 0) return -1;
      at = typeof field === "string"
        ? this.#write(this.#entryOf(field, place), field, at)
        : this.#value(field, at, depth, height + 1);
      if (at < 0) return -1;
      p[at++] = DataOp.SET_FIELD;
    }
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
    if (typeof value === "bigint" && this.#entry !== undefined) return this.#bigint(value, at);
    return -1;
  }

  // In range, as lua/plain_data.ts pushes it; beyond, its RangeError is raised there.
  #bigint(value: bigint, at: number): number {
    if (value < INT64_MIN || value > INT64_MAX) return -1;
    const p = this.#program;
    p[at] = DataOp.INTEGER;
    p[at + 1] = Number(BigInt.asIntN(32, value));
    p[at + 2] = Number(value >> 32n);
    return at + 3;
  }

  // A text of the value's own: dates seldom recur, and would fill the string cache.
  #date(date: Date, at: number): number {
    const offset = this.#bytesEnd;
    const length = writeDateText(date, this.#bytes, offset);
    if (length < 0) return -1;
    this.#bytesEnd = offset + length;
    return this.#plainString(offset, length, at);
  }

  // Bytes as they are, in the value's own part of the byte buffer.
  #binary(bytes: Uint8Array, at: number): number {
    const offset = this.#bytesEnd;
    if (offset + bytes.length > this.#bytes.length) return -1;
    this.#bytes.set(bytes, offset);
    this.#bytesEnd = offset + bytes.length;
    return this.#plainString(offset, bytes.length, at);
  }

  #plainString(offset: number, length: number, at: number): number {
    const p = this.#program;
    p[at] = DataOp.STRING;
    p[at + 1] = offset;
    p[at + 2] = length;
    return at + 3;
  }

  #number(value: number, at: number): number {
    const p = this.#program;
    if (isLuaInteger(value)) {
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

  // Where the bytes of a cached string now are in the value's own, or -1 when they do not fit.
  #copied(from: number, length: number): number {
    const bytes = this.#bytes;
    const to = this.#bytesEnd;
    if (to + length > bytes.length) return -1;
    for (let i = 0; i < length; i++) bytes[to + i] = bytes[from + i];
    this.#bytesEnd = to + length;
    return to;
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

  // Whether the state has room for its known strings; the tables it had are released when it has not.
  #roomForKnown(core: LuaCore): boolean {
    if (core.alloc.limit() - core.alloc.used() >= KNOWN_HEADROOM) return true;
    for (const which of ["knownStrings", "chunkStrings"] as const) {
      const known = core[which];
      if (known !== undefined) {
        core.unref(known.ref);
        core[which] = undefined;
      }
    }
    return false;
  }

  // The reference of the state's table of known strings (or of the chunks'), made (again, for a new
  // generation) when needed: only a value the builder takes makes one. Uses 1 slot while it makes one.
  #stringsRef(
    core: LuaCore,
    L: LuaState,
    which: "knownStrings" | "chunkStrings",
    generation: number,
  ): number {
    let known = core[which];
    if (known === undefined || known.generation !== generation) {
      if (known !== undefined) core.unref(known.ref);
      core.ensureStack(L, 1);
      core.api.sym.lua_createtable(L, KNOWN_SLOTS, 0);
      known = { ref: core.ref(L), generation };
      core[which] = known;
    }
    return known.ref;
  }

  // A key is most often the key at the same place in the value before (same-shaped inputs): V8
  // hands out one string per property name, so comparing with it costs less than a Map lookup.
  #key(text: string, at: number): number {
    const position = this.#position++ & (RECENT_POSITIONS - 1);
    if (this.#recentTexts[position] === text) return this.#write(this.#recentEntries[position], text, at);
    const entry = this.#entryOf(text, -1);
    if (entry >= SLOT_UNIT) {
      this.#recentTexts[position] = text;
      this.#recentEntries[position] = entry;
    }
    return this.#write(entry, text, at);
  }

  #string(text: string, at: number): number {
    return this.#write(this.#entryOf(text, -1), text, at);
  }

  #write(entry: number, text: string, at: number): number {
    let offset, length;
    if (entry >= 0) {
      offset = (entry >>> 8) & (CACHE_BYTES - 1);
      length = entry & 0xff;
      if (this.#entry === undefined) {
        offset = this.#copied(offset, length);
        if (offset < 0) return -1;
      }
    } else {
      offset = this.#bytesEnd;
      length = writeUtf8(text, this.#bytes, offset);
      if (length < 0) return -1;
      this.#bytesEnd = offset + length;
    }
    if (entry < SLOT_UNIT || !this.#useKnown) return this.#plainString(offset, length, at);
    const p = this.#program;
    p[at] = DataOp.KNOWN_STRING;
    p[at + 1] = Math.floor(entry / SLOT_UNIT);
    p[at + 2] = offset;
    p[at + 3] = length;
    return at + 4;
  }

  // The cache entry of a short string, entering it (or giving it a slot) as needed; -1 for a longer
  // one, when the cache has no room for it, or for a new value of a field at a `place` (-1: not a
  // field's value) whose values are one-off strings (NEW_RUN).
  #entryOf(text: string, place: number): number {
    if (text.length > CACHED_STRING_UNITS) return -1;
    const newRun = place < 0 ? 0 : this.#newRuns[place];
    const cached = this.#cache.get(text);
    if (cached === undefined) {
      if (newRun >= NEW_RUN && (++this.#probes & (PROBE_EVERY - 1)) !== 0) return -1;
      if (place >= 0 && newRun < 255) this.#newRuns[place] = newRun + 1;
      return this.#cached(text);
    }
    if (newRun > 0) this.#newRuns[place] = 0;
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
 * Shared memory that chunks are appended to, with the views they are written through. Another
 * thread reads the chunks where they lie; the block is written again only once each of them was
 * released ({@linkcode ChunkBlocks.release}).
 */
export interface ChunkBlock {
  readonly buffer: SharedArrayBuffer;
  readonly bytes: Uint8Array;
  readonly ints: Int32Array;
  readonly floats: Float64Array;
  /** Where the next chunk goes (a multiple of 8). */
  end: number;
  /** Chunks written to it and not yet released. */
  live: number;
}

// Chunks share blocks of this size; a larger chunk gets a block of its own.
const CHUNK_BLOCK_BYTES = 64 * 1024;
// Released blocks kept for reuse: 2 MiB, what a default pool's queue and windows fill. Beyond,
// released blocks are held weakly: a burst of requests reuses them until a collection takes them.
const SPARE_BLOCKS = 32;

function chunkBlock(size: number): ChunkBlock {
  const buffer = new SharedArrayBuffer(size);
  return {
    buffer,
    bytes: new Uint8Array(buffer),
    ints: new Int32Array(buffer),
    floats: new Float64Array(buffer),
    end: 0,
    live: 0,
  };
}

/**
 * Where {@linkcode DataEncoder.chunk} appends its chunks: shared blocks of 64 KiB, the next one when
 * the current one is full. A chunk stays as it was written until it is released; a block whose
 * chunks were all released is used again, so that a stream of chunks does not allocate (and
 * zero, and page in) new memory for each block.
 *
 * @example Usage
 * ```ts
 * import { ChunkBlocks, DataEncoder, decodeChunk, EncodedData } from "./data_program.ts";
 *
 * const blocks = new ChunkBlocks();
 * const start = DataEncoder.detached().chunk({ user: "ann" }, { maxDepth: 64, maxEntries: 100 }, blocks);
 * const block = blocks.current;
 * console.log(decodeChunk(new EncodedData(block.buffer, start))); // [Object: null prototype] { user: "ann" }
 * blocks.release(block);
 * ```
 */
export class ChunkBlocks {
  #current: ChunkBlock = chunkBlock(CHUNK_BLOCK_BYTES);
  readonly #spare: ChunkBlock[] = [];
  readonly #weakSpare: WeakRef<ChunkBlock>[] = [];

  /** The block chunks are appended to now. */
  get current(): ChunkBlock {
    return this.#current;
  }

  /**
   * The block the next chunk of `size` bytes goes to, counting that chunk as live in it: the
   * current one while it has room.
   */
  reserve(size: number): ChunkBlock {
    let block = this.#current;
    if (block.end + size > block.bytes.length) {
      if (size > CHUNK_BLOCK_BYTES) block = chunkBlock(size);
      else if (block.live === 0) block.end = 0;
      else block = this.#spare.pop() ?? this.#weaklySpare() ?? chunkBlock(CHUNK_BLOCK_BYTES);
      this.#current = block;
    }
    block.live++;
    return block;
  }

  /**
   * Releases one chunk of `block`: once none is live, the block may be written again. Release each
   * chunk once, after its reader is done with it.
   *
   * @throws {RangeError} when the block has no live chunk.
   */
  release(block: ChunkBlock): void {
    if (block.live <= 0) throw new RangeError("released a chunk of a block that has none live");
    if (--block.live > 0 || block === this.#current) return;
    if (block.bytes.length !== CHUNK_BLOCK_BYTES) return;
    block.end = 0;
    if (this.#spare.length < SPARE_BLOCKS) this.#spare.push(block);
    else this.#weakSpare.push(new WeakRef(block));
  }

  #weaklySpare(): ChunkBlock | undefined {
    while (this.#weakSpare.length > 0) {
      const block = this.#weakSpare.pop()!.deref();
      if (block !== undefined) return block;
    }
    return undefined;
  }
}

/**
 * A value encoded by {@linkcode DataEncoder.chunk}, read where it lies in a buffer (a batch of
 * chunks sent from another thread). Given as a decision's input, the data builder loads it as it
 * is; {@linkcode decodeChunk} turns it back into the JS value where there is no builder.
 *
 * @example Usage
 * ```ts
 * import { ChunkBlocks, DataEncoder, decodeChunk, EncodedData } from "./data_program.ts";
 *
 * const blocks = new ChunkBlocks();
 * DataEncoder.detached().chunk({ user: "ann" }, { maxDepth: 64, maxEntries: 100 }, blocks);
 * const data = new EncodedData(blocks.current.buffer, 0);
 * console.log(data.end === blocks.current.end, decodeChunk(data)); // true [Object: null prototype] { user: "ann" }
 * ```
 */
export class EncodedData {
  /** The buffer holding the chunk. */
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  /** Where the chunk starts in it (a multiple of 8). */
  readonly offset: number;
  /** The ints of its program, header included. */
  readonly ints: number;
  /** The bytes of its strings. */
  readonly strings: number;
  /** Its float operands. */
  readonly numbers: number;
  /** The generation of the slots of its known strings in the encoder that made it. */
  readonly generation: number;
  /** What its writer tagged it with (see {@linkcode DataEncoder.chunk}). */
  readonly tag: number;
  readonly #header: Int32Array;

  /**
   * @param buffer The buffer holding the chunk.
   * @param offset Where the chunk starts.
   * @throws {RangeError} when no whole chunk starts there.
   */
  constructor(buffer: ArrayBuffer | SharedArrayBuffer, offset: number) {
    if (offset % 8 !== 0 || offset < 0 || offset + CHUNK_HEADER_BYTES > buffer.byteLength) {
      throw new RangeError(`no encoded data at offset ${offset}`);
    }
    const header = new Int32Array(buffer, offset, CHUNK_HEADER_BYTES >> 2);
    [this.ints, this.strings, this.numbers, this.generation, this.tag] = header;
    this.#header = header;
    this.buffer = buffer;
    this.offset = offset;
    if (this.ints < PROGRAM_HEADER || this.strings < 0 || this.numbers < 0 || this.end > buffer.byteLength) {
      throw new RangeError(`no encoded data at offset ${offset}`);
    }
  }

  /** Where the next chunk starts. */
  get end(): number {
    return this.offset + wholeWords(CHUNK_HEADER_BYTES + this.numbers * 8 + this.ints * 4 + this.strings);
  }

  /**
   * Checks, after the chunk was read, that its header still carries the tag it had when this was
   * made: in shared memory a writer that took the block back too early would have written over it
   * (another value's bytes, read as this one's).
   *
   * @throws {LuaError} when the tag changed.
   */
  assertIntact(): void {
    if (this.#header[TAG_INT] !== this.tag) {
      throw new LuaError("luagate: internal error: encoded data was written over while it was read");
    }
  }
}

/**
 * The chunks laid end to end in `buffer` from `start` to `end`, appended to `into`.
 *
 * @example Usage
 * ```ts
 * import { ChunkBlocks, DataEncoder, splitChunks } from "./data_program.ts";
 *
 * const encoder = DataEncoder.detached();
 * const blocks = new ChunkBlocks();
 * const limits = { maxDepth: 64, maxEntries: 100 };
 * encoder.chunk([1], limits, blocks);
 * encoder.chunk({ x: true }, limits, blocks);
 * console.log(splitChunks(blocks.current.buffer, 0, blocks.current.end).length); // 2
 * ```
 *
 * @param buffer Chunks, each starting where the one before ends.
 * @param start Where the first starts (a multiple of 8).
 * @param end Where the last ends.
 * @param into Where they go (a new array by default).
 * @returns `into`, with one {@linkcode EncodedData} per chunk.
 * @throws {RangeError} when the span does not hold whole chunks.
 */
export function splitChunks(
  buffer: ArrayBuffer | SharedArrayBuffer,
  start: number,
  end: number,
  into: EncodedData[] = [],
): EncodedData[] {
  if (end > buffer.byteLength) throw new RangeError(`no chunks end at ${end}`);
  for (let at = start; at < end;) {
    const chunk = new EncodedData(buffer, at);
    at = chunk.end;
    if (at > end) throw new RangeError(`no chunk ends at ${end}`);
    into.push(chunk);
  }
  return into;
}

const utf8 = new TextDecoder();

/**
 * The JS value a chunk was encoded from, as far as Lua can tell: objects and arrays (an empty one
 * comes back as `{}`), strings, numbers and booleans; a null or undefined item is a hole, as it is
 * in the table. Records have no prototype, so that a key `__proto__` stays a key.
 *
 * @example Usage
 * ```ts
 * import { ChunkBlocks, DataEncoder, decodeChunk, EncodedData } from "./data_program.ts";
 *
 * const blocks = new ChunkBlocks();
 * DataEncoder.detached().chunk({ n: [1, 2.5] }, { maxDepth: 64, maxEntries: 100 }, blocks);
 * console.log(decodeChunk(new EncodedData(blocks.current.buffer, 0))); // [Object: null prototype] { n: [ 1, 2.5 ] }
 * ```
 *
 * @param data The chunk.
 * @returns the value.
 * @throws {LuaError} for a malformed program, or a chunk written over while it was read.
 */
export function decodeChunk(data: EncodedData): unknown {
  const { buffer, offset, ints, strings, numbers } = data;
  const floats = new Float64Array(buffer, offset + CHUNK_HEADER_BYTES, numbers);
  const programAt = offset + CHUNK_HEADER_BYTES + numbers * 8;
  const program = new Int32Array(buffer, programAt, ints);
  const bytes = new Uint8Array(buffer, programAt + ints * 4, strings);
  const stack: unknown[] = [];
  // a chunk written over reads as malformed: that is the error to report
  const malformed = () => {
    data.assertIntact();
    return new LuaError("luagate: internal error: malformed encoded data");
  };
  let at = PROGRAM_HEADER;
  while (at < ints) {
    const op = program[at++];
    switch (op) {
      case DataOp.TABLE:
        stack.push(program[at] > 0 ? new Array(program[at]) : Object.create(null));
        at += 2;
        break;
      case DataOp.STRING:
      case DataOp.KNOWN_STRING: {
        // a known string's slot goes before its bytes
        if (op === DataOp.KNOWN_STRING) at++;
        const start = program[at] - CACHE_BYTES;
        stack.push(utf8.decode(bytes.subarray(start, start + program[at + 1])));
        at += 2;
        break;
      }
      case DataOp.INTEGER:
        stack.push(program[at + 1] * TWO_32 + (program[at] >>> 0));
        at += 2;
        break;
      case DataOp.NUMBER:
        stack.push(floats[program[at++]]);
        break;
      case DataOp.TRUE:
      case DataOp.FALSE:
        stack.push(op === DataOp.TRUE);
        break;
      case DataOp.SET_FIELD: {
        const value = stack.pop();
        const key = stack.pop() as string;
        (stack[stack.length - 1] as Record<string, unknown>)[key] = value;
        break;
      }
      case DataOp.SET_INDEX: {
        const value = stack.pop();
        (stack[stack.length - 1] as unknown[])[program[at++] - 1] = value;
        break;
      }
      default:
        throw malformed();
    }
  }
  if (stack.length !== 1) throw malformed();
  data.assertIntact();
  return stack[0];
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
