/**
 * PolicyPool throughput: the shared ABAC workload (bench/abac_workload.ts) through a pool of
 * 1 worker and of 2 workers (and a single engine on the calling thread for reference).
 *
 *   deno run -A bench/pool_bench.ts [--n 20000] [--rounds 7] [--workers 1,2] [--window N] [--loop N] [--json]
 *
 * `--loop N` runs the ABAC rules after a loop of N iterations, a policy that computes longer on the
 * same requests and decisions: what the calling thread does stays the same, what a worker does grows
 * (1,000 iterations add about 20 µs a decision).
 *
 * The pools are started together and their rounds interleaved (1, 2, 1, 2, ...) after a warm-up
 * of two rounds each, so that drift in the machine's load hits every configuration alike; the
 * median round is reported (the best in brackets). Every pool decision is checked against the
 * workload's reference answer. The last line is the 2-vs-1 worker ratio (target: >= 1.7x on two
 * idle cores; on a busy machine the ratio says little).
 *
 * On Linux it also reports the CPU time per decision of the calling thread, of the workers and of
 * the rest of the process (V8 helpers), from /proc/self/task. With those, the throughput the
 * configuration can reach on idle cores is `1 / max(busiest thread, total / cores)`: the
 * "CPU-bound" column. It tells what the machine's load hides: on two cores the calling thread's
 * share (encoding requests, decoding decisions, resolving promises) is what bounds the 2-worker
 * ratio below 2.
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
// the pool's own default unless given
const window = option("window", "") === "" ? undefined : Number(option("window", ""));
const asJson = Deno.args.includes("--json");
const cores = navigator.hardwareConcurrency || 1;

const loop = Number(option("loop", "0"));
if (!Number.isInteger(loop) || loop < 0) throw new Error(`--loop ${option("loop", "")}: not a count`);
const ABAC_POLICY = Deno.readTextFileSync(new URL("../examples/abac/workload.lua", import.meta.url));
const POLICY = loop === 0 ? ABAC_POLICY : `
local decide = (function()
${ABAC_POLICY}
end)()
return function(input)
  local sum = 0
  for i = 1, ${loop} do sum = sum + i % 7 end
  if sum < 0 then return false end
  return decide(input)
end`;
const requests = makeRequests(n);
const expected = requests.map(decideJS);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * CPU milliseconds per thread of this process (Linux), by kind: main, worker-N, other. Read from
 * each thread's schedstat (nanoseconds), or from its stat (10 ms ticks) where the kernel keeps none.
 */
function threadCpu(): Map<string, { kind: string; ms: number }> | undefined {
  const threads = new Map<string, { kind: string; ms: number }>();
  try {
    for (const entry of Deno.readDirSync("/proc/self/task")) {
      const dir = `/proc/self/task/${entry.name}`;
      let stat: string;
      try {
        stat = Deno.readTextFileSync(`${dir}/stat`);
      } catch {
        continue; // the thread ended
      }
      let schedstat: string | undefined;
      try {
        schedstat = Deno.readTextFileSync(`${dir}/schedstat`);
      } catch {
        schedstat = undefined;
      }
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const ms = schedstat !== undefined
        ? Number(schedstat.split(" ")[0]) / 1e6
        : (Number(fields[11]) + Number(fields[12])) * 10; // USER_HZ = 100 on Linux
      const kind = entry.name === String(Deno.pid) ? "main" : comm.startsWith("worker-") ? comm : "other";
      threads.set(entry.name, { kind, ms });
    }
  } catch {
    return undefined;
  }
  return threads;
}

/** CPU ms per kind between two snapshots. */
function cpuDelta(
  before: Map<string, { kind: string; ms: number }>,
  after: Map<string, { kind: string; ms: number }>,
): Map<string, number> {
  const delta = new Map<string, number>();
  for (const [tid, { kind, ms }] of after) {
    const d = ms - (before.get(tid)?.ms ?? 0);
    delta.set(kind, (delta.get(kind) ?? 0) + d);
  }
  return delta;
}

interface Cpu {
  main: number;
  workers: number;
  busiestWorker: number;
  other: number;
}

function addCpu(total: Cpu, delta: Map<string, number>): void {
  let busiest = 0;
  for (const [kind, ms] of delta) {
    if (kind === "main") total.main += ms;
    else if (kind === "other") total.other += ms;
    else {
      total.workers += ms;
      busiest = Math.max(busiest, ms);
    }
  }
  total.busiestWorker += busiest;
}

/**
 * How much parallelism the machine offers right now: the same JS loop in 1 worker, then in 2 at
 * once; 2.0 means two idle cores. Other processes make it lower, and the pool's ratio with it.
 */
async function machineParallelism(): Promise<number> {
  const code = `self.onmessage = () => {
    const until = performance.now() + 400; let x = 0; let rounds = 0;
    while (performance.now() < until) { for (let i = 0; i < 10000; i++) x = (x + i * 7) % 1000003; rounds++; }
    self.postMessage(x >= 0 ? rounds : 0);
  };`;
  const url = URL.createObjectURL(new Blob([code], { type: "application/javascript" }));
  const workers = [0, 1].map(() => new Worker(url, { type: "module" }));
  const run = (w: Worker) =>
    new Promise<number>((resolve) => {
      w.onmessage = (e) => resolve(e.data);
      w.postMessage(0);
    });
  try {
    const one = await run(workers[0]);
    const two = (await Promise.all(workers.map(run))).reduce((a, b) => a + b, 0);
    return two / one;
  } finally {
    workers.forEach((w) => w.terminate());
    URL.revokeObjectURL(url);
  }
}

const parallelismBefore = await machineParallelism();

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
const cpu: Cpu[] = workerCounts.map(() => ({ main: 0, workers: 0, busiestWorker: 0, other: 0 }));
let measuredCpu = true;
try {
  for (let r = 0; r < rounds + 2; r++) {
    for (const [k, pool] of pools.entries()) {
      const before = threadCpu();
      const started = performance.now();
      const decisions = await Promise.all(requests.map((input) => pool.evaluate("workload", input)));
      const seconds = (performance.now() - started) / 1000;
      const after = threadCpu();
      for (let i = 0; i < n; i++) {
        if (decisions[i].allow !== expected[i]) {
          throw new Error(`pool of ${pool.size} disagrees on request ${i}: ${JSON.stringify(decisions[i])}`);
        }
      }
      if (r >= 2) {
        rates[k].push(n / seconds);
        if (before && after) addCpu(cpu[k], cpuDelta(before, after));
        else measuredCpu = false;
      }
    }
  }
} finally {
  await Promise.all(pools.map((p) => p.close()));
}

const parallelismAfter = await machineParallelism();
const parallelism = (parallelismBefore + parallelismAfter) / 2;
const decisions = n * rounds;
const rows = [
  {
    config: "engine (1 thread)",
    median: median(engineRates),
    best: Math.max(...engineRates),
    cpu: undefined,
  },
  ...workerCounts.map((w, k) => {
    const c = cpu[k];
    const perDecision = (ms: number) => (ms * 1000) / decisions; // µs
    const total = c.main + c.workers + c.other;
    const boundMs = Math.max(c.main, c.busiestWorker, total / cores);
    return {
      config: `pool, ${w} worker${w === 1 ? "" : "s"}`,
      median: median(rates[k]),
      best: Math.max(...rates[k]),
      cpu: measuredCpu
        ? {
          mainMicros: perDecision(c.main),
          workersMicros: perDecision(c.workers),
          otherMicros: perDecision(c.other),
          cpuBoundRate: boundMs > 0 ? decisions / (boundMs / 1000) : undefined,
        }
        : undefined,
    };
  }),
];
const one = workerCounts.indexOf(1);
const two = workerCounts.indexOf(2);
const ratio = one >= 0 && two >= 0 ? median(rates[two]) / median(rates[one]) : undefined;
const boundOne = one >= 0 ? rows[one + 1].cpu?.cpuBoundRate : undefined;
const boundTwo = two >= 0 ? rows[two + 1].cpu?.cpuBoundRate : undefined;
const cpuBoundRatio = boundOne && boundTwo ? boundTwo / boundOne : undefined;

if (asJson) {
  console.log(
    JSON.stringify({ n, rounds, window, loop, cores, parallelism, rows, ratio, cpuBoundRatio }, null, 2),
  );
} else {
  const fmt = (x: number | undefined) =>
    (x === undefined ? "" : Math.round(x).toLocaleString("en-US")).padStart(9);
  console.log(
    `ABAC workload${loop === 0 ? "" : ` after a loop of ${loop.toLocaleString("en-US")}`}, ` +
      `${n.toLocaleString("en-US")} requests per round, ${rounds} rounds (median [best]), ` +
      `window ${window ?? "default"}, ${cores} core(s)`,
  );
  console.log(
    `  ${"".padEnd(20)} ${"decisions/s".padStart(9)}  ${"[best]".padStart(11)}   CPU µs/decision ` +
      `(main + workers + other)   CPU-bound on ${cores} idle core(s)`,
  );
  for (const row of rows) {
    const c = row.cpu;
    const cpuText = c
      ? `${c.mainMicros.toFixed(1).padStart(5)} + ${c.workersMicros.toFixed(1).padStart(5)} + ` +
        `${c.otherMicros.toFixed(1).padStart(4)}              ${fmt(c.cpuBoundRate)}/s`
      : "";
    console.log(`  ${row.config.padEnd(20)} ${fmt(row.median)}  [${fmt(row.best)}]   ${cpuText}`);
  }
  const load = (() => {
    try {
      return Deno.loadavg()[0].toFixed(2);
    } catch {
      return "?";
    }
  })();
  if (ratio !== undefined) {
    console.log(
      `2 workers vs 1 worker: ${ratio.toFixed(2)}x measured` +
        (cpuBoundRatio ? `, ${cpuBoundRatio.toFixed(2)}x CPU-bound on ${cores} idle core(s)` : "") +
        ` (load average ${load})`,
    );
    console.log(
      `machine parallelism (a JS loop in 2 workers vs 1): ${parallelismBefore.toFixed(2)}x before, ` +
        `${parallelismAfter.toFixed(2)}x after; below ~1.9x other processes share the cores`,
    );
  }
}
