/**
 * Machine instructions per operation, counted by the CPU (`perf stat`), for comparing two trees on
 * a shared, noisy machine: a count moves by about 1% from run to run where a timing moves by 30%.
 *
 *   deno run -A bench/instructions.ts                       # every scenario
 *   deno run -A bench/instructions.ts --only abac,sandbox --n 200000
 *
 * Each scenario runs twice in a subprocess under `perf stat -e instructions:u,cycles:u`, with n and
 * 3n operations; the difference divided by 2n is the cost of one operation without the start-up
 * (loading Deno, the library, compiling). Cycles are printed for reference only: they follow the
 * machine's load as timings do. Needs Linux `perf` with access to the hardware counters
 * (`perf_event_paranoid` at most 2 for user-space counts); without it the script says so and exits 2.
 *
 * Scenarios:
 * - `abac`: `Policy.evaluate` of the shared ABAC workload, every limit on (the peers' first row);
 * - `trivial`: a policy that returns `true`, given the same requests (the input's copy and the run);
 * - `empty`: the same policy given `{}` (what a decision costs around its input and its policy);
 * - `caught`: a policy whose ten `pcall`s each catch an error, given `{}` (the catch points' cost);
 * - `sandbox`: `new Sandbox()` and `close()`;
 * - `pool-encode`: encoding one ABAC request for a pool's worker (`DataEncoder.chunk`).
 *
 * @module
 */

import { makeRequests, POLICY_LUA } from "./abac_workload.ts";
import { ChunkBlocks, DataEncoder } from "../lua/data_program.ts";
import { DEFAULT_PLAIN_LIMITS } from "../lua/plain_data.ts";
import { PolicyEngine } from "../policy/engine.ts";
import { Sandbox } from "../policy/sandbox.ts";

type Scenario = (n: number) => void;

function decisions(source: string, inputs: unknown[]): Scenario {
  return (n) => {
    using engine = new PolicyEngine();
    const policy = engine.compile(source, { name: "bench.lua" });
    let allowed = 0;
    for (let i = 0; i < n; i++) if (policy.evaluate(inputs[i % inputs.length]).allow) allowed++;
    if (allowed < 0) throw new Error("unreachable");
  };
}

const REQUESTS = makeRequests(1000);
const TRIVIAL = "return function() return true end";
const CAUGHT =
  "return function() local n = 0 for i = 1, 10 do if not pcall(error, 'denied') then n = n + 1 end end return n == 10 end";

const SCENARIOS: Record<string, Scenario> = {
  abac: decisions(`${POLICY_LUA}\nreturn function(input) return decide(input) end`, REQUESTS),
  trivial: decisions(TRIVIAL, REQUESTS),
  empty: decisions(TRIVIAL, [{}]),
  caught: decisions(CAUGHT, [{}]),
  sandbox: (n) => {
    for (let i = 0; i < n; i++) new Sandbox().close();
  },
  "pool-encode": (n) => {
    const encoder = DataEncoder.detached();
    const blocks = new ChunkBlocks();
    for (let i = 0; i < n; i++) {
      if (encoder.chunk(REQUESTS[i % REQUESTS.length], DEFAULT_PLAIN_LIMITS, blocks) < 0) {
        throw new Error("refused");
      }
      // as the pool releases a chunk once its worker answered
      blocks.release(blocks.current);
    }
  },
};

/** Operations per scenario in the smaller run (the larger one runs three times as many). */
const DEFAULT_N: Record<string, number> = {
  abac: 100_000,
  trivial: 100_000,
  empty: 200_000,
  caught: 50_000,
  // at 2,000 and 6,000 the count moved by ±3% from run to run (where V8's collections fell); ±1% here
  sandbox: 10_000,
  "pool-encode": 200_000,
};

function option(name: string): string | undefined {
  const at = Deno.args.indexOf(`--${name}`);
  return at >= 0 ? Deno.args[at + 1] : undefined;
}

interface Counts {
  instructions: number;
  cycles: number;
}

async function counted(scenario: string, n: number): Promise<Counts> {
  const child = new Deno.Command("perf", {
    args: [
      "stat",
      "-x,",
      "-e",
      "instructions:u,cycles:u",
      Deno.execPath(),
      "run",
      "-A",
      import.meta.filename!,
      "--run",
      scenario,
      String(n),
    ],
    stdout: "null",
    stderr: "piped",
  });
  const { code, stderr } = await child.output();
  const text = new TextDecoder().decode(stderr);
  const value = (event: string) => {
    const line = text.split("\n").find((l) => l.split(",")[2]?.startsWith(event));
    const number = Number(line?.split(",")[0]);
    if (!Number.isFinite(number)) throw new Error(`perf could not count ${event}:\n${text}`);
    return number;
  };
  if (code !== 0) throw new Error(`scenario ${scenario} failed:\n${text}`);
  return { instructions: value("instructions"), cycles: value("cycles") };
}

async function main(): Promise<void> {
  const run = option("run");
  if (run !== undefined) {
    SCENARIOS[run](Number(Deno.args[Deno.args.indexOf("--run") + 2]));
    return;
  }
  const only = option("only")?.split(",") ?? Object.keys(SCENARIOS);
  for (const name of only) {
    if (!(name in SCENARIOS)) {
      throw new RangeError(`no scenario '${name}' (${Object.keys(SCENARIOS).join(", ")})`);
    }
  }
  try {
    await counted("empty", 1);
  } catch (error) {
    console.error(`bench/instructions.ts needs perf with hardware counters: ${(error as Error).message}`);
    Deno.exit(2);
  }
  console.log("| scenario | instructions per operation | cycles per operation |");
  console.log("|---|---:|---:|");
  for (const name of only) {
    const n = Number(option("n") ?? DEFAULT_N[name]);
    const small = await counted(name, n);
    const large = await counted(name, 3 * n);
    const per = (key: keyof Counts) => Math.round((large[key] - small[key]) / (2 * n)).toLocaleString("en");
    console.log(`| ${name} | ${per("instructions")} | ${per("cycles")} |`);
  }
}

if (import.meta.main) await main();
