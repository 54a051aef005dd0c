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
import { type PinnedBlock, pinnedBlock } from "./pinned.ts";

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

// Fields of luagate_run_clock (doubles); keep in sync with ffi/run_clock.h.
const RUN_STARTED = 0;
const CPU_LIMIT = 1;
const CPU_START = 2;
const WITHIN_UNTIL = 3;
const CPU_FLOOR = 4;
/** sizeof(luagate_run_clock). */
export const RUN_CLOCK_BYTES = 40;

// The thread's CPU clock as last read for a floor, and the wall time of that reading. A run's floor
// is at most a tenth of its CPU limit old (wall time), so the CPU time it bounds counts at most that
// much of the host's own work before the run. The reading is a system call (1.2-1.5 µs on the
// benchmark machine): runs closer together than that share one, and a run that follows a pause
// reads it afresh.
const FLOOR_AGE_OF_LIMIT = 0.1;

// A run's first reading of the CPU clock is put off until its wall time is this many ms (keep in
// sync with FIRST_READING_MS in ffi/fast_lane.c): the reading is a system call, and until then the
// wall time, which bounds the CPU time, is within the limit. A run that ends before is reported at
// its wall time, as one too short to reach the clock.
const FIRST_READING_MS = 1;
let floorWall = -Infinity;
let floorCpu = 0;

function cpuFloor(wallMs: number, maxAgeMs: number): number {
  if (!(wallMs - floorWall <= maxAgeMs)) {
    floorCpu = threadCpuMs();
    floorWall = wallMs;
  }
  return floorCpu;
}

/**
 * The CPU clock of a state's runs, in memory the native allocator and the fast lane read
 * (`ffi/run_clock.h`): when the run began (wall time), the CPU milliseconds it may use, the CPU time
 * it began at, estimated at its first reading, the wall time since the run began up to which its CPU
 * time is known to be within the limit, and the floor of that estimate: a reading of the CPU clock
 * from before the run began, at most a tenth of the limit old. Between runs nothing is past its deadline.
 *
 * @example
 * ```ts
 * import { monotonicMs, RunClock } from "./clock.ts";
 * const clock = new RunClock(100);
 * clock.begin(monotonicMs());
 * console.log(clock.pastDeadline()); // false
 * clock.end();
 * ```
 */
export class RunClock {
  /** The address of the `luagate_run_clock`. */
  readonly pointer: Deno.PointerObject;
  #fields: Float64Array;

  /**
   * @param cpuLimitMs The CPU milliseconds a run may use.
   * @param block Where the clock lives: memory that never moves (a new block of pinned memory by
   * default; C may keep its address).
   */
  constructor(cpuLimitMs: number, block: PinnedBlock = pinnedBlock(RUN_CLOCK_BYTES)) {
    this.pointer = block.pointer;
    this.#fields = new Float64Array(block.buffer, block.byteOffset, RUN_CLOCK_BYTES / 8);
    this.#fields[CPU_LIMIT] = cpuLimitMs;
    this.end();
  }

  /**
   * Begins a run at `wallMs` (a {@linkcode monotonicMs} reading); its CPU start is not read yet.
   *
   * @param cpuFloorMs A {@linkcode threadCpuMs} reading from before the run began; by default the
   * thread's clock as read at most a tenth of the CPU limit earlier (read now if older).
   * `-Infinity`: none, the start is back-dated by wall time alone.
   */
  begin(
    wallMs: number,
    cpuFloorMs: number = cpuFloor(wallMs, this.#fields[CPU_LIMIT] * FLOOR_AGE_OF_LIMIT),
  ): void {
    const fields = this.#fields;
    fields[RUN_STARTED] = wallMs;
    fields[CPU_START] = -1;
    fields[WITHIN_UNTIL] = fields[CPU_LIMIT];
    fields[CPU_FLOOR] = cpuFloorMs;
  }

  /** Ends the run: until the next one begins, nothing is past its deadline. */
  end(): void {
    this.#fields[RUN_STARTED] = Infinity;
  }

  /** Moves the clock to memory of its own, once its block may be reused (its state is closed). */
  detach(): void {
    this.#fields = this.#fields.slice();
  }

  /**
   * The CPU time the run began at ({@linkcode threadCpuMs}), estimated now if no reading did yet.
   *
   * @param now The current {@linkcode threadCpuMs}.
   */
  cpuStart(now: number): number {
    return this.#cpuStart(now, monotonicMs() - this.#fields[RUN_STARTED]);
  }

  /** The CPU time the run began at, as its first reading of the clock estimated it; none before. */
  readCpuStart(): number | undefined {
    const start = this.#fields[CPU_START];
    return start >= 0 ? start : undefined;
  }

  // the later of two bounds that the CPU time used since cannot be less than the run's: the reading
  // back-dated by the wall time `since` the run began (which counts time the thread was descheduled
  // as used) and the floor (run_cpu_start in ffi/run_clock.h)
  #cpuStart(now: number, since: number): number {
    const fields = this.#fields;
    if (fields[CPU_START] < 0) fields[CPU_START] = Math.max(now - since, fields[CPU_FLOOR]);
    return fields[CPU_START];
  }

  /**
   * Whether the run in progress is too young for a first reading of the CPU clock: its wall time
   * is below a millisecond and within the limit, so its CPU time cannot be past the deadline.
   */
  young(): boolean {
    const fields = this.#fields;
    const since = monotonicMs() - fields[RUN_STARTED];
    return since >= 0 && since <= fields[CPU_LIMIT] && since < FIRST_READING_MS;
  }

  /**
   * Whether the run in progress used more than its CPU milliseconds, as `past_deadline` in
   * `ffi/run_clock.h` answers it: the CPU clock (a system call) is read only once the run's wall
   * time is past them, and after a reading within them only once the wall time has run for what
   * was left.
   */
  pastDeadline(): boolean {
    const fields = this.#fields;
    const since = monotonicMs() - fields[RUN_STARTED];
    if (!(since > fields[WITHIN_UNTIL])) return false;
    const now = threadCpuMs();
    const left = fields[CPU_LIMIT] - (now - this.#cpuStart(now, since));
    if (left < 0) return true;
    fields[WITHIN_UNTIL] = since + left;
    return false;
  }
}
