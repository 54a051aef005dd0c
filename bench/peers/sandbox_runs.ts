// Running Lua source, side by side: luagate's Sandbox (every limit on) and trusted LuaRuntime next to
// wasmoon's doStringSync, the one JS peer that runs a source string in a call. Four kinds of run: the same
// 10-iteration loop every time, 50 expressions in turn, 200 loops in turn (more than a Sandbox keeps
// compiled) and new code every time (`return <n> * 2`, a number that never repeats). Every engine's
// answers are checked to be the same first; then the rounds run interleaved and the table shows the
// median µs per run.
//
//   deno run -A bench/peers/sandbox_runs.ts [--rounds N] [--min-round-ms N]
import { LuaRuntime, Sandbox } from "../../mod.ts";
import { ensureNodeModules, requirePeer } from "./engines/npm.ts";
import { stringRunner, type WasmoonModule } from "./engines/wasmoon.ts";
import { argValue, interleavedMedians } from "./measure.ts";

interface Run {
  name: string;
  /** The source of the run after `previous` (it counts up from 0). */
  source(previous: number): string;
  /** Its answer. */
  answer(previous: number): number;
}

const range = <T>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));
const LOOPS = range(
  200,
  (k) => `local s = 0 for i = 1, 10 do s = s + i * ${k} end return s`,
);

const RUNS: Run[] = [
  {
    name: "the same 10-iteration loop every time",
    source: () => "local s = 0 for i = 1, 10 do s = s + i end return s",
    answer: () => 55,
  },
  {
    name: "50 expressions in turn",
    source: (i) => `return ${i % 50} + 1`,
    answer: (i) => (i % 50) + 1,
  },
  {
    name: "200 loops in turn (more than a Sandbox keeps)",
    source: (i) => LOOPS[i % 200],
    answer: (i) => 55 * (i % 200),
  },
  {
    name: "new code every time (`return <n> * 2`)",
    source: (i) => `return ${i} * 2`,
    answer: (i) => i * 2,
  },
];

async function main(): Promise<void> {
  const rounds = argValue(Deno.args, "--rounds", 7);
  const minRoundMs = argValue(Deno.args, "--min-round-ms", 150);
  await ensureNodeModules();
  const wasmoon = requirePeer<WasmoonModule>("wasmoon/dist/index.js");
  const lua = await new wasmoon.LuaFactory().createEngine();
  using sandbox = new Sandbox();
  using runtime = new LuaRuntime();
  const engines: { name: string; run: (source: string) => unknown }[] = [
    {
      name: "luagate Sandbox (all limits on)",
      run: (source) => sandbox.execute(source),
    },
    {
      name: "luagate LuaRuntime (trusted)",
      run: (source) => runtime.execute(source),
    },
    { name: "wasmoon doStringSync", run: stringRunner(lua) },
  ];
  const lines = [
    `| Run | ${engines.map((e) => e.name).join(" | ")} |`,
    `| --- | ${engines.map(() => "---:").join(" | ")} |`,
  ];
  try {
    for (const run of RUNS) {
      const counters = engines.map(() => 0);
      for (const [k, engine] of engines.entries()) {
        for (let i = 0; i < 400; i++) {
          const got = engine.run(run.source(counters[k]));
          if (got !== run.answer(counters[k]++)) {
            throw new Error(
              `${engine.name}, ${run.name}: ${got} for run ${counters[k] - 1}`,
            );
          }
        }
      }
      const us = interleavedMedians(
        engines.map((engine, k) => () => engine.run(run.source(counters[k]++))),
        rounds,
        minRoundMs,
        100,
      );
      const cells = us.map((t, k) =>
        k === 0 ? `**${t.toFixed(2)}**` : `${t.toFixed(2)} (${(t / us[0]).toFixed(2)}×)`
      );
      lines.push(`| ${run.name} | ${cells.join(" | ")} |`);
      console.error(
        `${run.name}: ${us.map((t) => t.toFixed(2)).join(" / ")} µs`,
      );
    }
  } finally {
    lua.global.close();
  }
  console.log(
    `µs per run, median of ${rounds} interleaved rounds (in parentheses: the time against the Sandbox's)\n`,
  );
  console.log(lines.join("\n"));
}

await main();
