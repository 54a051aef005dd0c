/**
 * Clocks for the sandbox. `threadCpuMs` is the CPU time of the calling thread, the clock behind the
 * `cpuMs` limit: unlike process CPU time it is not inflated by other Workers, and unlike wall time
 * it does not count time the thread spent descheduled. It can cost a system call, so the kernel
 * reads it only every few thousand instructions. `monotonicMs` is cheap wall time for per-run
 * accounting.
 *
 * @module
 */

import { cMemory, openLibc } from "./libc.ts";

const CLOCK_MONOTONIC = Deno.build.os === "darwin" ? 6 : 1;
const CLOCK_THREAD_CPUTIME_ID = Deno.build.os === "darwin" ? 16 : 3;

type Clock = () => number;

function libcClock(id: number): Clock | undefined {
  try {
    const libc = openLibc();
    // C memory, passed as a pointer: a typed array argument costs the FFI call more than the read
    const { pointer, buffer } = cMemory(libc, 16);
    if (libc.clock_gettime(id, pointer) !== 0) {
      libc.free(pointer);
      return undefined;
    }
    const timespec = new Int32Array(buffer);
    // tv_sec (low 32 bits suffice for these clocks) and tv_nsec, little-endian 64-bit fields
    return () => {
      libc.clock_gettime(id, pointer);
      return timespec[0] * 1000 + timespec[2] / 1e6;
    };
  } catch {
    return undefined;
  }
}

let threadClock: Clock | undefined;
let monotonicClock: Clock | undefined;

/**
 * Milliseconds of CPU time used by the calling thread (wall time where the OS offers no thread
 * clock). Only differences are meaningful.
 *
 * @example
 * ```ts
 * import { threadCpuMs } from "./clock.ts";
 * const start = threadCpuMs();
 * for (let i = 0; i < 1e6; i++);
 * console.log(threadCpuMs() - start >= 0); // true
 * ```
 */
export function threadCpuMs(): number {
  threadClock ??= libcClock(CLOCK_THREAD_CPUTIME_ID) ?? (() => performance.now());
  return threadClock();
}

/**
 * Monotonic wall-clock milliseconds, cheaper than `performance.now()` where libc is reachable.
 * Only differences are meaningful.
 *
 * @example
 * ```ts
 * import { monotonicMs } from "./clock.ts";
 * const start = monotonicMs();
 * console.log(monotonicMs() - start >= 0); // true
 * ```
 */
export function monotonicMs(): number {
  monotonicClock ??= libcClock(CLOCK_MONOTONIC) ?? (() => performance.now());
  return monotonicClock();
}
