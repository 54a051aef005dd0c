/**
 * The compiled chunks a sandbox or a runtime keeps: code run again (the same `eval` or `execute`
 * source, the usual case for rules and expressions evaluated per request) skips the parser, which
 * is most of a short run. Each run of a kept chunk is given its globals again (a sandbox's fresh
 * ones, the kernel's `run_again`; a runtime's global table).
 *
 * The chunks are Lua memory the state holds between runs, so they are few and small: at most
 * {@linkcode KEPT_CHUNKS} of them, together at most {@linkcode KEPT_CHUNK_BYTES} and a 32nd of the
 * memory limit. Once they are full, new code takes the place of the chunk run longest ago only if
 * that one was not run again since it was kept (or since it last kept its place: then it keeps it
 * once more, as the newest) and the new code was run more often of late. Dropping the oldest
 * whatever it is would keep nothing for sources that come round in turn and outnumber the chunks
 * kept (each dropped just before it comes round again), and would let one-off code push out code
 * that is run again. The price is a slower turnover when the code run changes for good: a set of
 * 50 sources replacing another of 50 is kept whole after about 300 runs instead of 50.
 *
 * They are found by a hash of their source that reads at most {@linkcode HASHED_CHARS} of its
 * characters, then compared whole. A `Map` keyed by the source itself costs more for code that is
 * new: V8 looks a string key up in its table of internalized strings, 0.25-0.3 µs for a string it
 * has not seen (a 16-character source) against 0.1 µs for this hash and a `Map` keyed by a number.
 *
 * @module
 */

import type { LuaCore } from "./core.ts";

/** The most compiled chunks a state keeps. */
export const KEPT_CHUNKS = 128;
/** The most Lua memory, in bytes, its kept chunks may hold together. */
export const KEPT_CHUNK_BYTES = 64 * 1024;
/**
 * The most characters of a source its hash reads: all of a shorter one, evenly spaced ones (and
 * the last) of a longer one. Sources that differ only between them share a hash and are told apart
 * by comparing them whole, which costs at most the kept sources' length: their chunks take no less
 * Lua memory than that, within {@linkcode KEPT_CHUNK_BYTES}.
 */
export const HASHED_CHARS = 64;

// How often sources were used of late: counters found by two parts of the source's hash (the lower
// of the two counts), all halved every AGE_EVERY counted uses.
const USE_COUNTER_BITS = 10;
const USE_COUNTERS = 1 << USE_COUNTER_BITS;
const AGE_EVERY = 2 * KEPT_CHUNKS;

const firstCounter = (hash: number): number => hash & (USE_COUNTERS - 1);
const secondCounter = (hash: number): number => Math.imul(hash, 0x9e3779b1) >>> (32 - USE_COUNTER_BITS);

/** How a state compiles the chunks it keeps. */
export interface ChunkCompiler {
  /** The core whose registry pins the chunks and whose allocator measures them. */
  readonly core: LuaCore;
  /**
   * Compiles `code` as chunk `name`, pinned in the registry; returns the reference. Calls
   * `compiled` once the chunk is made, before it takes the reference.
   */
  compile(code: string, name: string, compiled: () => void): number;
  /** The state's memory limit in bytes (`Infinity`: none). */
  memoryLimit(): number;
}

interface Kept {
  code: string;
  ref: number;
  bytes: number;
  // runs of it in progress: a capability may run the same code again before the first run ends
  running: number;
  // the next kept chunk whose source has the same hash
  next: Kept | undefined;
  // run again since it was kept, or since it last kept its place against new code
  reused: boolean;
}

/** A hash of `code` from at most {@linkcode HASHED_CHARS} of its characters, as a small integer. */
export function sourceHash(code: string): number {
  const length = code.length;
  const step = length <= HASHED_CHARS ? 1 : Math.ceil(length / HASHED_CHARS);
  let hash = length;
  for (let i = 0; i < length; i += step) hash = Math.imul(hash ^ code.charCodeAt(i), 0x9e3779b1);
  if (length > 0) hash = Math.imul(hash ^ code.charCodeAt(length - 1), 0x85ebca6b);
  // a small integer is a Map key V8 hashes without an object: 30 bits
  return (hash ^ (hash >>> 15)) & 0x3fffffff;
}

/**
 * The chunks kept for one state (a sandbox's or a runtime's), by source.
 *
 * @example Usage
 * ```ts ignore
 * const chunks = new CompiledChunks({
 *   core: state.core,
 *   compile: (code, name, compiled) => state.prepare(code, name, compiled),
 *   memoryLimit: () => state.limits.memory,
 * });
 * chunks.use("return 1", "sandbox", (ref, again) => state.invoke(L, push(ref), none, { again }));
 * ```
 */
export class CompiledChunks {
  readonly #compiler: ChunkCompiler;
  // by source hash, the chunks with that hash chained from the newest; insertion order is recency:
  // the hash of a chunk used again (or keeping its place) moves to the end, and the chunks of the
  // first one are the first to make room
  readonly #kept = new Map<number, Kept>();
  // the kept chunk run last: the same code run again skips the hash
  #last: Kept | undefined;
  #count = 0;
  #bytes = 0;
  readonly #uses = new Uint8Array(USE_COUNTERS);
  #usesSinceAging = 0;

  /** @param compiler How the state compiles a chunk, and where it keeps it. */
  constructor(compiler: ChunkCompiler) {
    this.#compiler = compiler;
  }

  /** How many chunks are kept. */
  get size(): number {
    return this.#count;
  }

  /** The Lua memory the kept chunks took when compiled, in bytes. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Calls `body` with a registry reference to `code` compiled as chunk `name`: a kept one (`again`
   * true: it must be given its globals again), or one compiled now, which has them already (then
   * kept if it fits, released after `body` otherwise).
   *
   * @throws {LuaSyntaxError} when the code does not compile; nothing is kept then.
   */
  use<T>(code: string, name: string, body: (ref: number, again: boolean) => T): T {
    const last = this.#last;
    if (last !== undefined && last.code === code && last.running === 0) {
      last.reused = true;
      return this.#run(last, true, body);
    }
    const hash = sourceHash(code);
    this.#countUse(hash);
    const first = this.#kept.get(hash);
    let kept = first;
    while (kept !== undefined && kept.code !== code) kept = kept.next;
    // A run in progress reads its globals through the chunk's _ENV upvalue, which the next run of
    // the same chunk replaces: a nested run of the same code gets a chunk of its own.
    if (kept !== undefined && kept.running === 0) {
      this.#kept.delete(hash);
      this.#kept.set(hash, first!);
      this.#last = kept;
      kept.reused = true;
      return this.#run(kept, true, body);
    }
    const core = this.#compiler.core;
    const before = core.alloc.used();
    // what compiling left allocated: the chunk, and the parser's garbage not yet collected (a
    // collection during the compile can hide part of it: the source's length is the least). Not
    // the registry's growth for the reference: where the registry rehashes depends on where its
    // entries keyed by addresses collide, which differs from one process to the next.
    let bytes = code.length;
    const ref = this.#compiler.compile(code, name, () => {
      bytes = Math.max(code.length, core.alloc.used() - before);
    });
    const chunk: Kept = { code, ref, bytes, running: 0, next: undefined, reused: false };
    if (kept === undefined && this.#keep(hash, chunk)) return this.#run(chunk, false, body);
    try {
      return body(ref, false);
    } finally {
      core.unref(ref);
    }
  }

  /**
   * Releases every kept chunk, for a memory limit that changed: they were kept under the old one.
   * A run in progress holds its chunk on the Lua stack, so it runs on.
   */
  clear(): void {
    for (const first of this.#kept.values()) this.#release(first);
    this.#kept.clear();
  }

  #run<T>(chunk: Kept, again: boolean, body: (ref: number, again: boolean) => T): T {
    chunk.running++;
    try {
      return body(chunk.ref, again);
    } finally {
      chunk.running--;
    }
  }

  #keep(hash: number, chunk: Kept): boolean {
    const budget = Math.min(KEPT_CHUNK_BYTES, this.#compiler.memoryLimit() / 32);
    if (chunk.bytes > budget) return false;
    for (const [oldest, first] of this.#kept) {
      if (this.#count < KEPT_CHUNKS && this.#bytes + chunk.bytes <= budget) break;
      if (this.#keepsPlace(first)) {
        this.#kept.delete(oldest);
        this.#kept.set(oldest, first);
        return false;
      }
      if (this.#usesOf(hash) <= this.#usesOf(oldest)) return false;
      this.#kept.delete(oldest);
      this.#release(first);
    }
    chunk.next = this.#kept.get(hash);
    this.#kept.delete(hash);
    this.#kept.set(hash, chunk);
    this.#last = chunk;
    this.#count++;
    this.#bytes += chunk.bytes;
    return true;
  }

  // Whether a chunk chained from `first` was run again since it was kept or last kept its place:
  // then they keep it once more, as the newest.
  #keepsPlace(first: Kept): boolean {
    let reused = false;
    for (let chunk: Kept | undefined = first; chunk !== undefined; chunk = chunk.next) {
      reused ||= chunk.reused;
      chunk.reused = false;
    }
    return reused;
  }

  #countUse(hash: number): void {
    const uses = this.#uses;
    const a = firstCounter(hash), b = secondCounter(hash);
    if (uses[a] < 255) uses[a]++;
    if (uses[b] < 255) uses[b]++;
    if (++this.#usesSinceAging < AGE_EVERY) return;
    this.#usesSinceAging = 0;
    for (let i = 0; i < USE_COUNTERS; i++) uses[i] >>= 1;
  }

  // How often the source of `hash` was used of late.
  #usesOf(hash: number): number {
    return Math.min(this.#uses[firstCounter(hash)], this.#uses[secondCounter(hash)]);
  }

  // The chunks chained from `first`, whose hash is out of the map. A run in progress holds its
  // chunk on the Lua stack: dropping the reference does not end it.
  #release(first: Kept): void {
    for (let chunk: Kept | undefined = first; chunk !== undefined; chunk = chunk.next) {
      if (chunk === this.#last) this.#last = undefined;
      this.#count--;
      this.#bytes -= chunk.bytes;
      this.#compiler.core.unref(chunk.ref);
    }
  }
}
