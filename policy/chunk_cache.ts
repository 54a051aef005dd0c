/**
 * The compiled chunks a sandbox keeps: code run again (the same `eval` or `execute` source, the
 * usual case for rules and expressions evaluated per request) skips the parser, which is most of a
 * short run. Each run of a kept chunk still gets fresh globals (the kernel's `run_again`).
 *
 * The chunks are Lua memory the sandbox holds between runs, so they are few and small: at most
 * {@linkcode KEPT_CHUNKS} of them, together at most {@linkcode KEPT_CHUNK_BYTES} and a 32nd of the
 * memory limit, the most recently run kept first.
 *
 * @module
 */

import type { GuardedState } from "./guarded_state.ts";

/** The most compiled chunks a sandbox keeps. */
export const KEPT_CHUNKS = 32;
/** The most Lua memory, in bytes, its kept chunks may hold together. */
export const KEPT_CHUNK_BYTES = 32 * 1024;

interface Kept {
  ref: number;
  bytes: number;
  // runs of it in progress: a capability may run the same code again before the first run ends
  running: number;
}

/**
 * The chunks kept for one guarded state, by source.
 *
 * @example Usage
 * ```ts ignore
 * const chunks = new CompiledChunks(state);
 * chunks.use("return 1", "sandbox", (ref, again) => state.invoke(L, push(ref), none, { again }));
 * ```
 */
export class CompiledChunks {
  readonly #state: GuardedState;
  // insertion order is recency: a chunk used again moves to the end, the first one goes first
  readonly #kept = new Map<string, Kept>();
  #bytes = 0;

  /** @param state The state whose `prepare` compiles the chunks and whose memory holds them. */
  constructor(state: GuardedState) {
    this.#state = state;
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
   * true: it must get fresh globals, see `RunOptions.again`), or one compiled now, which has them
   * already (then kept if it fits, released after `body` otherwise).
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
    const core = this.#state.core;
    const before = core.alloc.used();
    const ref = this.#state.prepare(code, name);
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

  #run<T>(chunk: Kept, again: boolean, body: (ref: number, again: boolean) => T): T {
    chunk.running++;
    try {
      return body(chunk.ref, again);
    } finally {
      chunk.running--;
    }
  }

  #keep(code: string, chunk: Kept): boolean {
    const budget = Math.min(KEPT_CHUNK_BYTES, this.#state.limits.memory / 32);
    if (chunk.bytes > budget) return false;
    // a run in progress holds its chunk on the Lua stack: dropping the reference does not end it
    for (const [oldest, old] of this.#kept) {
      if (this.#kept.size < KEPT_CHUNKS && this.#bytes + chunk.bytes <= budget) break;
      this.#kept.delete(oldest);
      this.#bytes -= old.bytes;
      this.#state.core.unref(old.ref);
    }
    this.#kept.set(code, chunk);
    this.#bytes += chunk.bytes;
    return true;
  }
}
