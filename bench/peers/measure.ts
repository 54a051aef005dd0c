// What the side-by-side benchmarks share: their flags, and medians of interleaved rounds.

/** The number after `flag` in `args`, or `fallback`. */
export function argValue(args: string[], flag: string, fallback: number): number {
  const at = args.indexOf(flag);
  return at >= 0 ? Number(args[at + 1]) : fallback;
}

/**
 * The comma-separated texts after `flag` in `args`, lowercased, or `undefined` without the flag.
 *
 * @throws {Error} when the flag is the last argument.
 */
export function argTexts(args: string[], flag: string): string[] | undefined {
  const at = args.indexOf(flag);
  if (at < 0) return undefined;
  if (at + 1 >= args.length) throw new Error(`${flag} needs a value: texts separated by commas`);
  return args[at + 1].toLowerCase().split(",").map((text) => text.trim()).filter(Boolean);
}

/** The median (the mean of the middle two for an even count). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Times each of `calls` for `rounds` rounds, interleaved (round 1 of every call, then round 2, ...)
 * so that a slow spell of a shared machine falls on all of them alike. A round repeats its call
 * (`batch` times per clock reading) until it lasts `minRoundMs`. Returns the median µs per call.
 */
export function interleavedMedians(
  calls: readonly (() => unknown)[],
  rounds: number,
  minRoundMs: number,
  batch = 1,
): number[] {
  const times = calls.map(() => [] as number[]);
  for (let round = 0; round < rounds; round++) {
    calls.forEach((call, k) => {
      const start = performance.now();
      let n = 0;
      while (performance.now() - start < minRoundMs) {
        for (let i = 0; i < batch; i++) call();
        n += batch;
      }
      times[k].push((performance.now() - start) * 1000 / n);
    });
  }
  return times.map(median);
}
