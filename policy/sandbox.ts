/**
 * `Sandbox`: untrusted Lua under hard limits, reaching the host only through frozen data and
 * granted capabilities.
 *
 * @module
 */

import type { AttributeFilter, AttributeHandlers } from "../lua/bridge.ts";
import { CompiledChunks } from "../lua/chunk_cache.ts";
import { type Capability, GuardedState, type Usage } from "./guarded_state.ts";
import type { Limits } from "./limits.ts";

/** Options of a {@linkcode Sandbox}. */
export interface SandboxOptions {
  /** Per-run limits; each one not given takes its default (see `DEFAULT_LIMITS`). */
  limits?: Partial<Omit<Limits, "step">> & { step?: number };
  /** Globals of the same name in Lua: deep-frozen and read-only from Lua. */
  globals?: Record<string, unknown>;
  /** The only host functions Lua may call: a function, or `{ fn, permission }`. */
  capabilities?: Record<string, Capability>;
  /** The permissions granted: a capability that declares one not listed here is denied. */
  permissions?: Iterable<string>;
  /** Decides which properties of host objects Lua sees (throw to hide). */
  attributeFilter?: AttributeFilter;
  /** Serves reads (and writes, if `set` is given) of host objects instead of their properties. */
  attributeHandlers?: AttributeHandlers;
  /** The chunk name in error messages (default "sandbox"). */
  name?: string;
  /** Path or soname of the Lua library (5.3 or 5.4). */
  library?: string;
}

export type { Capability, CapabilityCall, CapabilitySpec, Usage } from "./guarded_state.ts";

const AGAIN = { again: true };
const FIRST = { again: false };

function single(values: unknown[]): unknown {
  return values.length === 0 ? undefined : values.length === 1 ? values[0] : values;
}

/**
 * A Lua state for untrusted code. Every run gets a fresh environment and its own budget of
 * instructions, memory, CPU time and output; results come back as plain data.
 *
 * @example
 * ```ts
 * import { Sandbox } from "./sandbox.ts";
 * using sb = new Sandbox({ globals: { input: { user: "ann" } } });
 * console.log(sb.eval("input.user")); // "ann"
 * console.log(sb.execute("local t = {} for i = 1, 3 do t[i] = i * i end return t")); // [1, 4, 9]
 * ```
 */
export class Sandbox implements Disposable {
  readonly #state: GuardedState;
  readonly #name: string;
  readonly #chunks: CompiledChunks;

  /**
   * Creates a Sandbox.
   * @param options See {@linkcode SandboxOptions}.
   */
  constructor(options: SandboxOptions = {}) {
    if (options.name !== undefined && typeof options.name !== "string") {
      throw new TypeError("name must be a string");
    }
    this.#name = options.name ?? "sandbox";
    this.#state = new GuardedState(options);
    this.#chunks = keptChunks(this.#state);
  }

  /**
   * Evaluates a Lua expression; `args` are reachable as `...`.
   *
   * @example
   * ```ts
   * import { Sandbox } from "./sandbox.ts";
   * using sb = new Sandbox();
   * console.log(sb.eval("... + 1", 41)); // 42
   * ```
   */
  eval(code: string, ...args: unknown[]): unknown {
    if (typeof code !== "string") throw new TypeError("Lua code must be a string");
    return this.execute(`return ${code}`, ...args);
  }

  /**
   * Runs a chunk and returns what it returns, as plain data (none: `undefined`, one: the value,
   * several: an array). The compiled chunk is kept for the next run of the same code, which then
   * skips the parser (globals are fresh in every run all the same). Throws `LuaSyntaxError`, `LuaLimitError` (with `limit`),
   * `LuaMemoryError`, `PermissionDeniedError` or `LuaError`.
   *
   * @example
   * ```ts
   * import { Sandbox } from "./sandbox.ts";
   * using sb = new Sandbox();
   * console.log(sb.execute("local a, b = ... return a * b", 6, 7)); // 42
   * ```
   */
  execute(code: string, ...args: unknown[]): unknown {
    const state = this.#state;
    state.checkUsable();
    const core = state.core;
    return this.#chunks.use(
      code,
      this.#name,
      (ref, again) => single(state.invokeRef(core.currentL, ref, again ? AGAIN : FIRST, args)),
    );
  }

  /** What `print` wrote during the last run (control characters escaped, capped by `limits.output`). */
  get output(): string {
    return this.#state.output;
  }

  /** What the last run used. */
  get usage(): Usage {
    return this.#state.usage;
  }

  /** The effective limits. */
  get limits(): Readonly<Limits> {
    return this.#state.limits;
  }

  /**
   * Lua memory in bytes the idle sandbox holds: what its allocator counts after a full collection
   * (reading it runs one). A run's garbage never counts; what the sandbox keeps does: a vetted
   * library or the pattern matcher built on its first use (with the matcher's bounded cache of
   * compiled patterns), modules loaded by `require`, the compiled code of recent runs (at most
   * 64 KiB and a 32nd of the memory limit).
   */
  get idleMemory(): number {
    const core = this.#state.core;
    core.check();
    core.collectGarbage();
    return core.alloc.used();
  }

  /** Closes the sandbox (idempotent); later use throws a `LuaStateError`. */
  close(): void {
    this.#state.close();
  }

  /** Same as {@linkcode Sandbox.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** The compiled chunks kept for the runs of `state`, compiled by its `prepare` under its memory limit. */
export function keptChunks(state: GuardedState): CompiledChunks {
  return new CompiledChunks({
    core: state.core,
    compile: (code, name, compiled) => state.prepare(code, name, compiled),
    memoryLimit: () => state.limits.memory,
  });
}
