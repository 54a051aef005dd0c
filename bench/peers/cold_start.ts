// Time to a first decision in a fresh process: luagate next to the JS peers, for command-line tools,
// serverless functions and test runs, which pay it every time.
//
//   deno run -A bench/peers/cold_start.ts [--runs N] [--only text,text] [--json]
//
// Every in-process row of run.ts (the native Lua rows time themselves in a subprocess and are left
// out) runs in N fresh Deno processes. Each process imports the row's adapter (which imports the
// engine), sets it up with the ABAC policy and one request (luagate's Policy compiles the policy there
// and checks it with one decision), then makes the decision that is timed as the first, checked
// against decideJS. Processes of the rows alternate, after one untimed process per row that fills
// Deno's caches, and the table shows the median of each phase in ms, timed inside the process from its
// first line, and the whole process from spawn to exit (Deno's own start included).
import { type Engine, ENGINE_MODULES, type EngineLoader, POLICY_ROW, SkipEngine } from "./engines/types.ts";
import { ensureNodeModules } from "./engines/npm.ts";
import { argTexts, argValue, median } from "./measure.ts";
import { decideJS, makeRequests, POLICY_LUA } from "../abac_workload.ts";

/** One process's phases, in ms from its first line. */
interface Phases {
  load: number;
  setup: number;
  first: number;
  total: number;
}

interface Row {
  adapter: string;
  name: string;
  runs: Phases[];
  processMs: number[];
}

// In a child process: the phases of `name` from `adapter`, printed as one line of JSON.
async function child(adapter: string, name: string): Promise<void> {
  const start = performance.now();
  const { load } = (await import(`./engines/${adapter}`)) as { load: EngineLoader };
  const engine = (await load()).find((e) => e.name === name);
  if (!engine?.decide) throw new Error(`no in-process row "${name}" in ${adapter}`);
  const loaded = performance.now();
  const request = makeRequests(1)[0];
  await engine.setup({ requests: [request], policyLua: POLICY_LUA });
  const ready = performance.now();
  const answer = engine.decide(0);
  const decided = performance.now();
  await engine.close();
  if (answer !== decideJS(request)) {
    throw new Error(`${name} answered ${answer}, decideJS ${decideJS(request)}`);
  }
  const phases: Phases = {
    load: loaded - start,
    setup: ready - loaded,
    first: decided - ready,
    total: decided - start,
  };
  console.log(JSON.stringify(phases));
}

// Runs one child process for `row`: its phases and its wall time from spawn to exit.
async function runChild(row: Row): Promise<{ phases: Phases; processMs: number }> {
  const started = performance.now();
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", import.meta.url, "--child", row.adapter, row.name],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const processMs = performance.now() - started;
  const text = new TextDecoder().decode(output.stdout).trim().split("\n").pop() ?? "";
  if (!output.success) {
    const why = new TextDecoder().decode(output.stderr).trim().split("\n").slice(-3).join(" / ");
    throw new Error(`${row.name}: the process failed: ${why}`);
  }
  return { phases: JSON.parse(text) as Phases, processMs };
}

// The in-process rows of every adapter that loads here, loaded once to learn their names.
async function rowsOf(only: string[] | undefined): Promise<Row[]> {
  const rows: Row[] = [];
  for (const adapter of ENGINE_MODULES) {
    const { load } = (await import(`./engines/${adapter}`)) as { load: EngineLoader };
    let engines: Engine[];
    try {
      engines = await load();
    } catch (error) {
      if (error instanceof SkipEngine) continue;
      throw error;
    }
    for (const engine of engines) {
      if (!engine.decide || engine.skipped) continue;
      if (only && !only.some((text) => engine.name.toLowerCase().includes(text))) continue;
      rows.push({ adapter, name: engine.name, runs: [], processMs: [] });
    }
  }
  return rows;
}

function ms(x: number): string {
  return x >= 100 ? x.toFixed(0) : x.toFixed(1);
}

async function main(): Promise<void> {
  const at = Deno.args.indexOf("--child");
  if (at >= 0) return child(Deno.args[at + 1], Deno.args[at + 2]);
  const runs = argValue(Deno.args, "--runs", 7);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs needs a positive integer, got ${runs}`);
  await ensureNodeModules();
  const rows = await rowsOf(argTexts(Deno.args, "--only"));
  for (const row of rows) await runChild(row);
  for (let run = 0; run < runs; run++) {
    for (const row of rows) {
      const { phases, processMs } = await runChild(row);
      row.runs.push(phases);
      row.processMs.push(processMs);
    }
    console.error(`run ${run + 1}/${runs}: ${rows.map((r) => ms(r.runs[run].total)).join(" / ")} ms`);
  }
  const medians = rows.map((row) => ({
    name: row.name,
    load: median(row.runs.map((r) => r.load)),
    setup: median(row.runs.map((r) => r.setup)),
    first: median(row.runs.map((r) => r.first)),
    total: median(row.runs.map((r) => r.total)),
    process: median(row.processMs),
  }));
  if (Deno.args.includes("--json")) {
    console.log(JSON.stringify({ deno: Deno.version.deno, runs, rows: medians }, null, 2));
    return;
  }
  const policy = medians.find((m) => m.name === POLICY_ROW)?.total;
  console.log(`## Time to a first decision in a fresh process (median of ${runs} processes a row, ms)\n`);
  console.log(
    "| engine | load (import) | set-up | first decision | to first decision | × luagate Policy | whole process |",
  );
  console.log("|---|---:|---:|---:|---:|---:|---:|");
  for (const m of medians) {
    const ratio = policy ? (m.total / policy).toFixed(2) : "n/a";
    console.log(
      `| ${m.name} | ${ms(m.load)} | ${ms(m.setup)} | ${ms(m.first)} | ${ms(m.total)} | ${ratio} | ${
        ms(m.process)
      } |`,
    );
  }
  console.log(
    `\nDeno ${Deno.version.deno}, ${navigator.hardwareConcurrency} core(s), load ${
      Deno.loadavg().map((l) => l.toFixed(2)).join(" ")
    }. "whole process" is from spawn to exit, Deno's own start included.`,
  );
}

await main();
