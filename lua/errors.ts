/**
 * The error classes of luagate. Every error a Lua run can end in is one of these, so callers can
 * tell a bad program from a limit from a denied capability with `instanceof` alone.
 *
 * @module
 */

/**
 * An error raised by Lua code (or by luagate on Lua's behalf). `message` holds the Lua message and,
 * for runtime errors, the Lua traceback.
 *
 * @example
 * ```ts
 * import { LuaError, LuaRuntime } from "../mod.ts";
 * using lua = new LuaRuntime();
 * try {
 *   lua.execute("error('boom')");
 * } catch (e) {
 *   console.log(e instanceof LuaError); // true
 * }
 * ```
 */
export class LuaError extends Error {
  /** The Lua error value converted to JS, when it was not a string (a table, a number...). */
  readonly value?: unknown;
  /**
   * Creates a LuaError.
   * @param message The Lua message with its traceback.
   * @param options `cause`, and the raw Lua error `value` when it was not a string.
   */
  constructor(message: string, options?: { cause?: unknown; value?: unknown }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = "LuaError";
    if (options && "value" in options) this.value = options.value;
  }
}

/**
 * Lua source that does not compile, or any binary chunk where only text is accepted.
 *
 * @example
 * ```ts
 * import { LuaRuntime, LuaSyntaxError } from "../mod.ts";
 * using lua = new LuaRuntime();
 * try {
 *   lua.execute("x = = 1");
 * } catch (e) {
 *   console.log(e instanceof LuaSyntaxError); // true
 * }
 * ```
 */
export class LuaSyntaxError extends LuaError {
  /**
   * Creates a LuaSyntaxError.
   * @param message The compiler's message, naming the chunk and line.
   */
  constructor(message: string) {
    super(message);
    this.name = "LuaSyntaxError";
  }
}

/** Which limit a run hit. */
export type LuaLimit = "instructions" | "memory" | "cpu" | "output";

/**
 * A run stopped by one of its limits. The host sets `limit` from its own accounting, never from the
 * message text, so Lua code cannot forge or hide it.
 *
 * @example
 * ```ts
 * import { LuaLimitError, Sandbox } from "../mod.ts";
 * using sb = new Sandbox({ limits: { instructions: 10_000 } });
 * try {
 *   sb.execute("while true do end");
 * } catch (e) {
 *   console.log(e instanceof LuaLimitError && e.limit); // "instructions"
 * }
 * ```
 */
export class LuaLimitError extends LuaError {
  /** The limit that was hit. */
  readonly limit: LuaLimit;
  /**
   * Creates a LuaLimitError.
   * @param limit The limit that was hit.
   * @param message A description for people.
   */
  constructor(limit: LuaLimit, message: string) {
    super(message);
    this.name = "LuaLimitError";
    this.limit = limit;
  }
}

/**
 * Lua ran out of the memory it was allowed (`maxMemory`, or a sandbox's memory limit).
 *
 * @example
 * ```ts
 * import { LuaMemoryError, LuaRuntime } from "../mod.ts";
 * using lua = new LuaRuntime({ maxMemory: 1 << 20 });
 * try {
 *   lua.execute("local s = string.rep('x', 1 << 24)");
 * } catch (e) {
 *   console.log(e instanceof LuaMemoryError); // true
 * }
 * ```
 */
export class LuaMemoryError extends LuaLimitError {
  /** Always `"memory"`. */
  declare readonly limit: "memory";
  /**
   * Creates a LuaMemoryError.
   * @param message A description for people (Lua's own is "not enough memory").
   */
  constructor(message = "not enough memory") {
    super("memory", message);
    this.name = "LuaMemoryError";
  }
}

/**
 * Lua code called a capability it was not granted.
 *
 * @example
 * ```ts
 * import { PermissionDeniedError } from "../mod.ts";
 * const e = new PermissionDeniedError("http.fetch", "net");
 * console.log(e.capability, e.permission); // "http.fetch" "net"
 * ```
 */
export class PermissionDeniedError extends LuaError {
  /** The capability that was called. */
  readonly capability: string;
  /** The permission it needs, when one was declared. */
  readonly permission?: string;
  /**
   * Creates a PermissionDeniedError.
   * @param capability The capability that was called.
   * @param permission The permission it needs.
   */
  constructor(capability: string, permission?: string) {
    super(
      permission === undefined
        ? `permission denied: capability '${capability}' was not granted`
        : `permission denied: capability '${capability}' needs permission '${permission}'`,
    );
    this.name = "PermissionDeniedError";
    this.capability = capability;
    if (permission !== undefined) this.permission = permission;
  }
}

/**
 * Use of a runtime after `close()`, or of a Lua object with a runtime it does not belong to.
 *
 * @example
 * ```ts
 * import { LuaRuntime, LuaStateError } from "../mod.ts";
 * const lua = new LuaRuntime();
 * lua.close();
 * try {
 *   lua.eval("1");
 * } catch (e) {
 *   console.log(e instanceof LuaStateError); // true
 * }
 * ```
 */
export class LuaStateError extends Error {
  /**
   * Creates a LuaStateError.
   * @param message What was misused.
   */
  constructor(message: string) {
    super(message);
    this.name = "LuaStateError";
  }
}
