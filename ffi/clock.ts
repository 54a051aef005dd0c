/**
 * CPU time of the calling thread, the clock behind the sandbox's `cpuMs` limit: unlike process
 * CPU time it is not inflated by other Workers, and unlike wall time it does not count time the
 * thread spent descheduled on a busy machine.
 *
 * @module
 */

import { openLibc } from "./libc.ts";

const CLOCK_THREAD_CPUTIME_ID = Deno.build.os === "darwin" ? 16 : 3;
const timespec = new BigInt64Array(2);
const timespecBytes = new Uint8Array(timespec.buffer);

let read: (() => number) | undefined;

function pick(): () => number {
  try {
    const libc = openLibc();
    if (libc.clock_gettime(CLOCK_THREAD_CPUTIME_ID, timespecBytes) === 0) {
      return () => {
        libc.clock_gettime(CLOCK_THREAD_CPUTIME_ID, timespecBytes);
        return Number(timespec[0]) * 1000 + Number(timespec[1]) / 1e6;
      };
    }
  } catch {
    // no C library binding on this OS: wall time is the conservative stand-in
  }
  return () => performance.now();
}

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
  read ??= pick();
  return read();
}
