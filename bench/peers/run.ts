// Side-by-side ABAC benchmark: luagate against other ways to evaluate the same policy from Deno.
//
//   deno run -A --v8-flags=--expose-gc bench/peers/run.ts [--rounds N] [--requests N]
//        [--min-round-ms N] [--warmup-ms N] [--only a,b] [--json]
//
// Every engine gets the same deterministic requests (makeRequests), fed its natural way (see each file
// in engines/), and every answer is checked against decideJS before timing. Timing: every engine is set
// up and warmed up, then R rounds run interleaved (engine after engine within each round), each cycling
// through all requests until it lasts at least --min-round-ms; the figure is the median µs per decision
// over the rounds. An engine with a wrong answer is FAILED (exit code 1).
// The npm peers (wasmoon, fengari, cedar-wasm) are installed into bench/peers/node_modules on first run.
import type { Engine, EngineLoader, TimingOptions, Workload } from "./engines/types.ts";
import { ENGINE_MODULES, POLICY_ROW, SkipEngine } from "./engines/types.ts";
import { ensureNodeModules } from "./engines/npm.ts";
import { median } from "./measure.ts";
import * as WorkloadModule from "../abac_workload.ts";

const log = (msg: string) => console.error(msg);

// ---------------------------------------------------------------------------------------------------
// Arguments

interface Options extends TimingOptions {
  requests: number;
  json: boolean;
  only: string[];
}

function usage(): never {
  console.log(
    "usage: deno run -A bench/peers/run.ts [--rounds N] [--requests N] [--min-round-ms N] [--warmup-ms N]\n" +
      "                                      [--only name,name] [--json]",
  );
  Deno.exit(0);
}

function parseArgs(args: string[]): Options {
  const o: Options = { rounds: 7, requests: 1000, minRoundMs: 200, warmupMs: 300, json: false, only: [] };
  const num = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (!v || !Number.isFinite(n) || n <= 0) throw new Error(`${flag} needs a positive number, got ${v}`);
    return n;
  };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i].split("=", 2) as [string, string | undefined];
    const value = () => inline ?? args[++i];
    switch (flag) {
      case "--rounds":
        o.rounds = Math.floor(num(flag, value()));
        break;
      case "--requests":
        o.requests = Math.floor(num(flag, value()));
        break;
      case "--min-round-ms":
        o.minRoundMs = num(flag, value());
        break;
      case "--warmup-ms":
        o.warmupMs = num(flag, value());
        break;
      case "--only":
        o.only = value().split(",").map((s) => s.trim().toLowerCase()).filter(Boolean);
        break;
      case "--json":
        o.json = true;
        break;
      case "-h":
      case "--help":
        usage();
        break;
      default:
        throw new Error(`unknown argument ${args[i]} (see --help)`);
    }
  }
  return o;
}

// ---------------------------------------------------------------------------------------------------
// Setup: npm peers, workload

/** The shared workload (bench/abac_workload.ts, a copy of ../shared/bench/abac_workload.ts). */
function loadWorkload(): Promise<{ mod: typeof WorkloadModule; source: string }> {
  return Promise.resolve({ mod: WorkloadModule, source: "bench/abac_workload.ts" });
}

// ---------------------------------------------------------------------------------------------------
// Measuring

type Status = "ok" | "FAILED" | "ERROR" | "skipped";

interface Result {
  name: string;
  version: string;
  feed: string;
  status: Status;
  note?: string;
  usPerDecision?: number;
  roundsUs?: number[];
  decisionsPerRound?: number;
  mismatches?: number;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message.split("\n")[0] : String(e);
}

/** One timed round of an engine: µs per decision, and the decisions and allows it made. */
interface Round {
  us: number;
  decisions: number;
  allows: number;
}

/** An engine set up, its answers taken, ready to time round by round. */
interface Prepared {
  engine: Engine;
  answers: boolean[];
  round(): Promise<Round>;
  rounds: Round[];
}

/** Sets `engine` up, takes its answers and warms it up; a Result when it cannot be timed. */
async function prepare(engine: Engine, workload: Workload, opts: TimingOptions): Promise<Prepared | Result> {
  if (engine.skipped) return { ...rowOf(engine), status: "skipped", note: engine.skipped };
  const n = workload.requests.length;
  try {
    await engine.setup(workload);
    if (engine.decide) {
      const decide = engine.decide.bind(engine);
      const answers: boolean[] = [];
      for (let i = 0; i < n; i++) answers.push(decide(i));
      const pass = (): number => {
        let allows = 0;
        for (let i = 0; i < n; i++) if (decide(i)) allows++;
        return allows;
      };
      const warmStart = performance.now();
      do pass(); while (performance.now() - warmStart < opts.warmupMs);
      const t = performance.now();
      pass();
      const onePassMs = Math.max(performance.now() - t, 1e-3);
      const passes = Math.max(1, Math.ceil(opts.minRoundMs / onePassMs));
      const round = (): Promise<Round> => {
        let allows = 0;
        const t0 = performance.now();
        for (let p = 0; p < passes; p++) allows += pass();
        const us = ((performance.now() - t0) * 1000) / (passes * n);
        return Promise.resolve({ us, decisions: passes * n, allows });
      };
      return { engine, answers, round, rounds: [] };
    }
    if (engine.selfTimed) {
      const selfTimed = engine.selfTimed.bind(engine);
      const one = { ...opts, rounds: 1 };
      const { answers } = await selfTimed(one);
      const round = async (): Promise<Round> => {
        const r = await selfTimed(one);
        return { us: r.roundsUs[0], decisions: r.decisionsPerRound, allows: r.allowsPerRound[0] };
      };
      return { engine, answers, round, rounds: [] };
    }
    throw new Error("adapter has neither decide nor selfTimed");
  } catch (e) {
    await closeQuietly(engine);
    return { ...rowOf(engine), status: "ERROR", note: errorText(e) };
  }
}

// Read after setup, which may refine the version (e.g. with the Lua release the engine reports).
function rowOf(engine: Engine): Pick<Result, "name" | "version" | "feed"> {
  return { name: engine.name, version: engine.version, feed: engine.feed };
}

async function closeQuietly(engine: Engine): Promise<void> {
  try {
    await engine.close();
  } catch (e) {
    log(`  close failed: ${errorText(e)}`);
  }
}

/** The row of a timed engine: its answers and every round checked against decideJS. */
function resultOf(p: Prepared, expected: boolean[]): Result {
  const n = expected.length;
  const wrong: number[] = [];
  for (let i = 0; i < n; i++) if (p.answers[i] !== expected[i]) wrong.push(i);
  // The timed rounds must have produced the same answers too (allow count per round).
  const allowedPerPass = expected.filter(Boolean).length;
  const badRounds = p.rounds.filter((r) => r.allows !== (r.decisions / n) * allowedPerPass).length;
  const roundsUs = p.rounds.map((r) => r.us);
  const result: Result = {
    ...rowOf(p.engine),
    status: wrong.length || badRounds ? "FAILED" : "ok",
    usPerDecision: median(roundsUs),
    roundsUs,
    decisionsPerRound: p.rounds[0]?.decisions,
    mismatches: wrong.length,
  };
  if (wrong.length) {
    const i = wrong[0];
    const why = p.engine.diagnose?.(i);
    result.note = `${wrong.length}/${n} answers differ from decideJS; first: request ${i} ` +
      `expected ${expected[i]} got ${p.answers[i]}${why ? ` (${why})` : ""}`;
  } else if (badRounds) {
    result.note =
      `${badRounds} timed round(s) gave another allow count than decideJS (${allowedPerPass} per pass)`;
  }
  return result;
}

/**
 * Times every prepared engine round by round, in turn: a slow spell of a shared machine then
 * falls on every engine alike instead of on whichever was running, which keeps the ratios honest.
 */
async function timeInterleaved(prepared: Prepared[], rounds: number): Promise<void> {
  // With --v8-flags=--expose-gc, no round starts with the garbage of the engine before it.
  const collect = (globalThis as { gc?: () => void }).gc ?? (() => {});
  for (let r = 0; r < rounds; r++) {
    for (const p of prepared) {
      collect();
      p.rounds.push(await p.round());
    }
    log(`  round ${r + 1}/${rounds}: ${prepared.map((p) => fmt(p.rounds[r].us)).join(" / ")} µs`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Machine and report

async function machine() {
  let cpu = "unknown";
  try {
    const info = await Deno.readTextFile("/proc/cpuinfo");
    cpu = info.match(/^model name\s*:\s*(.+)$/m)?.[1]?.trim() ?? cpu;
  } catch { /* not Linux */ }
  return {
    os: Deno.build.os,
    arch: Deno.build.arch,
    target: Deno.build.target,
    osRelease: Deno.osRelease(),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    cpu,
    cores: navigator.hardwareConcurrency,
    loadavg: Deno.loadavg(),
  };
}

function fmt(x: number | undefined, digits = 2): string {
  if (x === undefined || !Number.isFinite(x)) return "n/a";
  if (x >= 100) return x.toFixed(0);
  if (x >= 10) return x.toFixed(1);
  return x.toFixed(digits);
}

function fmtRate(us: number | undefined): string {
  if (!us) return "n/a";
  const r = 1e6 / us;
  return r >= 1e6 ? `${(r / 1e6).toFixed(2)} M` : r >= 1e3 ? `${(r / 1e3).toFixed(1)} k` : r.toFixed(0);
}

// ---------------------------------------------------------------------------------------------------

const NATIVE_HOOK_ROW = "native lua5.4 (count hook every 1000)";

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseArgs(Deno.args);
  } catch (e) {
    log(errorText(e));
    return 2;
  }
  await ensureNodeModules();
  const { mod: wl, source: workloadSource } = await loadWorkload();
  const requests = wl.makeRequests(opts.requests);
  const expected = requests.map((r) => wl.decideJS(r));
  const workload: Workload = { requests, policyLua: wl.POLICY_LUA };
  const mach = await machine();
  log(`workload: ${workloadSource}, ${requests.length} requests, ${expected.filter(Boolean).length} allowed`);

  const engines: Engine[] = [];
  const results: Result[] = [];
  for (const file of ENGINE_MODULES) {
    const label = file.replace(/\.ts$/, "");
    try {
      const { load } = (await import(`./engines/${file}`)) as { load: EngineLoader };
      engines.push(...await load());
    } catch (e) {
      const status: Status = e instanceof SkipEngine ? "skipped" : "ERROR";
      results.push({ name: label, version: "?", feed: "?", status, note: `loading: ${errorText(e)}` });
    }
  }

  const prepared: Prepared[] = [];
  for (const engine of engines) {
    if (opts.only.length && !opts.only.some((s) => engine.name.toLowerCase().includes(s))) continue;
    log(`[${engine.name}] ${engine.skipped ? "skipped: " + engine.skipped : "setting up ..."}`);
    const p = await prepare(engine, workload, opts);
    if (!("status" in p)) prepared.push(p);
    else {
      if (p.status !== "skipped") log(`  ${p.status}${p.note ? `  ${p.note}` : ""}`);
      results.push(p);
    }
  }
  log(`${opts.rounds} interleaved rounds of: ${prepared.map((p) => p.engine.name).join(" / ")}`);
  try {
    await timeInterleaved(prepared, opts.rounds);
    for (const p of prepared) results.push(resultOf(p, expected));
  } finally {
    for (const p of prepared) await closeQuietly(p.engine);
  }

  const usOf = (name: string) => results.find((r) => r.name === name && r.status === "ok")?.usPerDecision;
  const policyUs = usOf(POLICY_ROW);
  const nativeHookUs = usOf(NATIVE_HOOK_ROW);
  const failed = results.filter((r) => r.status === "FAILED" || r.status === "ERROR");

  if (opts.json) {
    console.log(JSON.stringify(
      {
        machine: mach,
        settings: { ...opts, workload: workloadSource },
        workload: { requests: requests.length, allowed: expected.filter(Boolean).length },
        results: results.map((r) => ({
          ...r,
          decisionsPerSecond: r.usPerDecision ? 1e6 / r.usPerDecision : undefined,
          ratioVsLuagatePolicy: r.usPerDecision && policyUs ? r.usPerDecision / policyUs : undefined,
          ratioVsNativeLuaHook: r.usPerDecision && nativeHookUs ? r.usPerDecision / nativeHookUs : undefined,
        })),
        ok: failed.length === 0,
      },
      null,
      2,
    ));
  } else {
    const lines = [
      `## ABAC decision, side by side (${requests.length} requests cycled, median of ${opts.rounds} rounds ` +
      `of >= ${opts.minRoundMs} ms)`,
      "",
      `Machine: ${mach.cpu}, ${mach.cores} cores, ${mach.target} (${mach.osRelease}), Deno ${mach.deno}, ` +
      `V8 ${mach.v8}, load ${mach.loadavg.map((x) => x.toFixed(2)).join(" ")}`,
      "",
      "| engine | µs/decision | spread (min-max) | decisions/s | × luagate Policy | × native Lua + hook | answers |",
      "|---|---:|---:|---:|---:|---:|---|",
    ];
    for (const r of results) {
      const us = r.usPerDecision;
      const spread = r.roundsUs ? `${fmt(Math.min(...r.roundsUs))}-${fmt(Math.max(...r.roundsUs))}` : "";
      const answers = r.status === "ok"
        ? "ok"
        : r.status === "skipped"
        ? `skipped: ${r.note}`
        : `**${r.status}**: ${r.note}`;
      const vsPolicy = us && policyUs ? fmt(us / policyUs) : "n/a";
      const vsNative = us && nativeHookUs ? fmt(us / nativeHookUs) : "n/a";
      const usText = r.status === "skipped" ? "" : fmt(us);
      lines.push(
        `| ${r.name} | ${usText} | ${spread} | ${fmtRate(us)} | ${vsPolicy} | ${vsNative} | ${answers} |`,
      );
    }
    lines.push("", "Versions and how each engine is fed:", "");
    for (const r of results) lines.push(`- ${r.name}: ${r.version}; ${r.feed}`);
    lines.push(
      "",
      "× columns: this engine's µs/decision divided by the reference row's (above 1 = slower). " +
        "Every engine's answers are checked against decideJS before timing, " +
        "and by allow count in every round.",
    );
    console.log(lines.join("\n"));
  }
  if (failed.length) {
    log(`\n${failed.length} engine(s) FAILED or errored: ${failed.map((r) => r.name).join(", ")}`);
  }
  return failed.length ? 1 : 0;
}

Deno.exit(await main());
