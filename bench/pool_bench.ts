/**
 * PolicyPool throughput: the shared ABAC workload (bench/abac_workload.ts) through a pool of
 * 1 worker and of 2 workers (and a single engine on the calling thread for reference).
 *
 *   deno run -A bench/pool_bench.ts [--n 20000] [--rounds 7] [--workers 1,2] [--window 32] [--json]
 *
 * The pools are started together and their rounds interleaved (1, 2, 1, 2, ...) after a warm-up
 * of two rounds each, so that drift in the machine's load hits every configuration alike; the
 * median round is reported (the best in brackets). Every pool decision is checked against the
 * workload's reference answer. The last line is the 2-vs-1 worker ratio (target: >= 1.7x on two
 * idle cores; on a busy machine the ratio says little).
 *
 * @module
 */

import { decideJS, makeRequests } from "./abac_workload.ts";
import { PolicyEngine } from "../policy/engine.ts";
import { PolicyPool } from "../policy/pool.ts";

function option(name: string, fallback: string): string {
  const at = Deno.args.indexOf(`--${name}`);
  if (at >= 0 && at + 1 < Deno.args.length) return Deno.args[at + 1];
  const inline = Deno.args.find((a) => a.startsWith(`--${name}=`));
  return inline ? inline.slice(name.length + 3) : fallback;
}

const n = Number(option("n", "20000"));
const rounds = Number(option("rounds", "7"));
const workerCounts = option("workers", "1,2").split(",").map(Number);
const window = Number(option("window", "32"));
const asJson = Deno.args.includes("--json");

const POLICY = Deno.readTextFileSync(new URL("../examples/abac/workload.lua", import.meta.url));
const requests = makeRequests(n);
const expected = requests.map(decideJS);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

// Reference: one engine on this thread.
const engineRates: number[] = [];
{
  using engine = new PolicyEngine();
  const policy = engine.compile(POLICY, { name: "workload" });
  for (let r = 0; r < rounds + 2; r++) {
    const started = performance.now();
    for (let i = 0; i < n; i++) {
      if (policy.evaluate(requests[i]).allow !== expected[i]) {
        throw new Error(`engine disagrees on request ${i}`);
      }
    }
    if (r >= 2) engineRates.push(n / ((performance.now() - started) / 1000));
  }
}

const pools = await Promise.all(
  workerCounts.map((workers) =>
    PolicyPool.create({ workers, window, policies: { workload: POLICY }, maxQueue: n + 1 })
  ),
);
const rates: number[][] = workerCounts.map(() => []);
try {
  for (let r = 0; r < rounds + 2; r++) {
    for (const [k, pool] of pools.entries()) {
      const started = performance.now();
      const decisions = await Promise.all(requests.map((input) => pool.evaluate("workload", input)));
      const seconds = (performance.now() - started) / 1000;
      for (let i = 0; i < n; i++) {
        if (decisions[i].allow !== expected[i]) {
          throw new Error(`pool of ${pool.size} disagrees on request ${i}: ${JSON.stringify(decisions[i])}`);
        }
      }
      if (r >= 2) rates[k].push(n / seconds);
    }
  }
} finally {
  await Promise.all(pools.map((p) => p.close()));
}

const rows = [
  { config: "engine (1 thread)", median: median(engineRates), best: Math.max(...engineRates) },
  ...workerCounts.map((w, k) => ({
    config: `pool, ${w} worker${w === 1 ? "" : "s"}`,
    median: median(rates[k]),
    best: Math.max(...rates[k]),
  })),
];
const one = workerCounts.indexOf(1);
const two = workerCounts.indexOf(2);
const ratio = one >= 0 && two >= 0 ? median(rates[two]) / median(rates[one]) : undefined;

if (asJson) {
  console.log(
    JSON.stringify({ n, rounds, window, cores: navigator.hardwareConcurrency, rows, ratio }, null, 2),
  );
} else {
  const fmt = (x: number) => Math.round(x).toLocaleString("en-US").padStart(9);
  console.log(
    `ABAC workload, ${n.toLocaleString("en-US")} requests per round, ${rounds} rounds (median [best]), ` +
      `window ${window}, ${navigator.hardwareConcurrency} core(s)`,
  );
  for (const row of rows) {
    console.log(`  ${row.config.padEnd(20)} ${fmt(row.median)} decisions/s  [${fmt(row.best)}]`);
  }
  if (ratio !== undefined) console.log(`2 workers vs 1 worker: ${ratio.toFixed(2)}x`);
}
