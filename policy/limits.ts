/**
 * The limits of a sandboxed run and their defaults. Every limit is always on.
 *
 * @module
 */

/** The limits of one run. */
export interface Limits {
  /** VM instructions per run (default 1,000,000). */
  instructions: number;
  /** Bytes of Lua memory beyond the idle sandbox (default 8 MiB). A hard allocator cap. */
  memory: number;
  /** Milliseconds of CPU time per run (default 100). */
  cpuMs: number;
  /** Bytes `print` may write per run (default 64 KiB). */
  output: number;
  /** Instructions between two checks of the count hook (default: 1/100 of `instructions`, at most 1,000). */
  step: number;
}

/** The default limits. */
export const DEFAULT_LIMITS: Readonly<Omit<Limits, "step">> = Object.freeze({
  instructions: 1_000_000,
  memory: 8 << 20,
  cpuMs: 100,
  output: 64 << 10,
});

const NAMES = ["instructions", "memory", "cpuMs", "output", "step"] as const;

/**
 * Fills in defaults and validates: each limit must be a positive finite number.
 *
 * @example
 * ```ts
 * import { resolveLimits } from "./limits.ts";
 * console.log(resolveLimits({ cpuMs: 50 }).instructions); // 1000000
 * ```
 */
export function resolveLimits(limits: Partial<Limits> = {}): Limits {
  if (limits === null || typeof limits !== "object") throw new TypeError("limits must be an object");
  for (const key of Object.keys(limits)) {
    if (!(NAMES as readonly string[]).includes(key)) {
      throw new TypeError(`unknown limit '${key}' (known: ${NAMES.join(", ")})`);
    }
  }
  const resolved = { ...DEFAULT_LIMITS, ...limits } as Limits;
  resolved.step ??= Math.max(1, Math.min(1000, Math.floor(resolved.instructions / 100)));
  for (const name of NAMES) {
    const value = resolved[name];
    if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
      throw new RangeError(`limit '${name}' must be a positive finite number, got ${String(value)}`);
    }
    resolved[name] = Math.floor(value) || 1;
  }
  return resolved;
}
