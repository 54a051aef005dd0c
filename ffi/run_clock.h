/*
 * The CPU clock of a state's runs, as the native pages read it (ffi/allocator.c, ffi/fast_lane.c):
 * the struct the host's RunClock (ffi/clock.ts) owns, and the deadline test all three share.
 *
 * Included by files compiled freestanding into self-contained code (see their rules): no includes of
 * its own, no data, every function inlined.
 */

/* CLOCK_MONOTONIC and CLOCK_THREAD_CPUTIME_ID on Linux, the only system the code is built for */
#define MONOTONIC_CLOCK 1
#define THREAD_CPU_CLOCK 3

typedef struct {
  double run_started;  /* 0: the monotonic wall clock in ms when the run began; +inf between runs */
  double cpu_limit;    /* 8: the CPU ms a run may use */
  double cpu_start;    /* 16: the thread's CPU clock in ms when the run began, estimated at its first reading; < 0: none yet */
  double within_until; /* 24: the wall ms since the run began up to which its CPU time is known to be within the limit */
  double cpu_floor;    /* 32: a reading of the thread's CPU clock taken before the run's code began */
} luagate_run_clock;

/* libc's clock_gettime, the timespec as two 64-bit words */
typedef int (*luagate_clock_gettime)(int clockid, long long *tp);

/* The clock `id` in milliseconds, to the microsecond (as the host's clocks read it). Divided as a
 * double made at run time: a double constant would be data. */
static inline __attribute__((always_inline)) double clock_ms(luagate_clock_gettime clock_gettime, int id) {
  long long timespec[2] = {0, 0};
  clock_gettime(id, timespec);
  long long thousand = 1000;
  __asm__("" : "+r"(thousand));
  const long long micros = timespec[0] * 1000000 + timespec[1] / 1000;
  return (double)micros / (double)thousand;
}

/* The CPU time the run began at, estimated now (at CPU time `now`, `since` wall ms into the run) if
 * no reading did yet (RunClock.cpuStart): the later of two bounds that the CPU time used since cannot
 * be less than the run's. One is the reading less the wall time since the run began, which counts the
 * time the thread was descheduled as used: on its own, a stall of the machine longer than the limit
 * before the first reading tripped a run that had used microseconds. The other is the floor, a CPU
 * reading from before the run began, which does not move while the thread waits. */
static inline __attribute__((always_inline)) double run_cpu_start(luagate_run_clock *clock, double now,
                                                                  double since) {
  if (clock->cpu_start < 0) {
    const double backdated = now - since;
    clock->cpu_start = backdated > clock->cpu_floor ? backdated : clock->cpu_floor;
  }
  return clock->cpu_start;
}

/* Whether the run in progress used more than its CPU time, as RunClock.pastDeadline answers it.
 * Its CPU time never runs ahead of the wall time since it began, so the CPU clock (a system call) is
 * read only once that wall time is past `within_until` (the limit, when the run begins), and after a
 * reading within the limit only once the wall time has run for what was left. Between runs the start
 * is infinite: nothing is late. */
static inline __attribute__((always_inline)) int past_deadline(luagate_run_clock *clock,
                                                               luagate_clock_gettime clock_gettime) {
  const double since = clock_ms(clock_gettime, MONOTONIC_CLOCK) - clock->run_started;
  if (!(since > clock->within_until)) return 0;
  const double now = clock_ms(clock_gettime, THREAD_CPU_CLOCK);
  const double left = clock->cpu_limit - (now - run_cpu_start(clock, now, since));
  if (left < 0) return 1;
  clock->within_until = since + left;
  return 0;
}
