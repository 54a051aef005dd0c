/**
 * The compiled chunks a sandbox or a runtime keeps: code run again (the same `eval` or `execute`
 * source, the usual case for rules and expressions evaluated per request) skips the parser, which
 * is most of a short run. Each run of a kept chunk is given its globals again (a sandbox's fresh
 * ones, the kernel's `run_again`; a runtime's global table).
 *
 * The chunks are Lua memory the state holds between runs, so they are few and small: at most
 * {@linkcode KEPT_CHUNKS} of them, together at most {@linkcode KEPT_CHUNK_BYTES} and a 32nd of the
 * memory limit, the most recently run kept first.
 *
 * @module
 */

import type { LuaCore } from "./core.ts";

/** The most compiled chunks a state keeps. */
export const KEPT_CHUNKS = 128;
/** The most Lua memory, in bytes, its kept chunks may hold together. */
export const KEPT_CHUNK_BYTES = 64 * 1024;

/** How a state compiles the chunks it keeps. */
export interface ChunkCompiler {
  /** The core whose registry pins the chunks and whose allocator measures them. */
  readonly core: LuaCore;
  /** Compiles `code` as chunk `name`, pinned in the registry; returns the reference. */
  compile(code: string, name: string): number;
  /** The state's memory limit in bytes (`Infinity`: none). */
  memoryLimit(): number;
}

interface Kept {
  ref: number;
  bytes: number;
  // runs of it in progress: a capability may run the same code again before the first run ends
  running: number;
}

/**
 * The chunks kept for one state (a sandbox's or a runtime's), by source.
 *
 * @example Usage
 * ```ts ignore
 * const chunks = new CompiledChunks({
 *   core: state.core,
 *   compile: (code, name) => state.prepare(code, name),
 *   memoryLimit: () => state.limits.memory,
 * });
 * chunks.use("return 1", "sandbox", (ref, again) => state.invoke(L, push(ref), none, { again }));
 * ```
 */
export class CompiledChunks {
  readonly #compiler: ChunkCompiler;
  // insertion order is recency: a chunk used again moves to the end, the first one goes first
  readonly #kept = new Map<string, Kept>();
  #bytes = 0;

  /** @param compiler How the state compiles a chunk, and where it keeps it. */
  constructor(compiler: ChunkCompiler) {
    this.#compiler = compiler;
  }

  /** How many chunks are kept. */
  get size(): number {
    return this.#kept.size;
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
    const kept = this.#kept.get(code);
    // A run in progress reads its globals through the chunk's _ENV upvalue, which the next run of
    // the same chunk replaces: a nested run of the same code gets a chunk of its own.
    if (kept !== undefined && kept.running === 0) {
      this.#kept.delete(code);
      this.#kept.set(code, kept);
      return this.#run(kept, true, body);
    }
    const core = this.#compiler.core;
    const before = core.alloc.used();
    const ref = this.#compiler.compile(code, name);
    // what compiling left allocated: the chunk, and the parser's garbage not yet collected (a
    // collection during the compile can hide part of it: the source's length is the least)
    const bytes = Math.max(code.length, core.alloc.used() - before);
    const chunk = { ref, bytes, running: 0 };
    if (kept === undefined && this.#keep(code, chunk)) return this.#run(chunk, false, body);
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
    for (const chunk of this.#kept.values()) this.#compiler.core.unref(chunk.ref);
    this.#kept.clear();
    this.#bytes = 0;
  }

  #run<T>(chunk: Kept, again: boolean, body: (ref: number, again: boolean) => T): T {
    chunk.running++;
    try {
      return body(chunk.ref, again);
    } finally {
      chunk.running--;
    }
  }

  #keep(code: string, chunk: Kept): boolean {
    const budget = Math.min(KEPT_CHUNK_BYTES, this.#compiler.memoryLimit() / 32);
    if (chunk.bytes > budget) return false;
    // a run in progress holds its chunk on the Lua stack: dropping the reference does not end it
    for (const [oldest, old] of this.#kept) {
      if (this.#kept.size < KEPT_CHUNKS && this.#bytes + chunk.bytes <= budget) break;
      this.#kept.delete(oldest);
      this.#bytes -= old.bytes;
      this.#compiler.core.unref(old.ref);
    }
    this.#kept.set(code, chunk);
    this.#bytes += chunk.bytes;
    return true;
  }
}
