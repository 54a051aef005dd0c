/**
 * The luagate demo (`./run demo`): every example's inputs through the policy engine, as a table of
 * decisions checked against `inputs/expected.json`, then a short `PolicyPool` demo.
 *
 *   deno run --allow-ffi --allow-env --allow-read examples/demo.ts
 *
 * Colours only on a terminal, and never with NO_COLOR set.
 *
 * @module
 */

import { makeRequests } from "../bench/abac_workload.ts";
import { CliError, openBundle } from "../cli.ts";
import { LuaRuntime } from "../lua/runtime.ts";
import type { Decision } from "../policy/decision.ts";
import { PolicyPool } from "../policy/pool.ts";

const root = new URL("./", import.meta.url);
const here = decodeURIComponent(root.pathname).replace(/\/$/, "");

let noColor = Deno.noColor;
try {
  noColor ||= Deno.env.get("NO_COLOR") !== undefined;
} catch {
  // without --allow-env: Deno.noColor alone decides
}
const color = !noColor && Deno.stdout.isTerminal();
const paint = (code: string) => (text: string) => (color ? `\x1b[${code}m${text}\x1b[0m` : text);
const green = paint("32");
const red = paint("31");
const bold = paint("1");
const dim = paint("2");

function terminalWidth(): number {
  try {
    return Deno.stdout.isTerminal() ? Deno.consoleSize().columns : 140;
  } catch {
    return 140;
  }
}

/** Text width ignoring colour codes. */
function visible(text: string): number {
  // deno-lint-ignore no-control-regex
  return text.replace(/\x1b\[[0-9;]*m/g, "").length;
}

function pad(text: string, width: number): string {
  return text + " ".repeat(Math.max(0, width - visible(text)));
}

function clip(text: string, width: number): string {
  if (width < 4 || text.length <= width) return text;
  return text.slice(0, width - 1) + "…";
}

interface Expected {
  policy: string;
  allow: boolean;
  reasons?: string[];
  error?: string;
}

interface Row {
  example: string;
  policy: string;
  input: string;
  decision: Decision;
  ok: boolean;
  expected: Expected;
}

// The hook counts instructions in steps of 1,000 (the default step): a short decision reads 0.
function instructionsOf(counted: number): string {
  return counted === 0 ? "under 1,000 instructions" : `${counted.toLocaleString("en-US")} instructions`;
}

function matches(decision: Decision, expected: Expected): boolean {
  if (decision.allow !== expected.allow) return false;
  if (expected.reasons && JSON.stringify(decision.reasons) !== JSON.stringify(expected.reasons)) return false;
  if (expected.error) return decision.errors.some((e) => e.startsWith(expected.error!));
  return decision.errors.length === 0;
}

async function runExamples(): Promise<Row[]> {
  const rows: Row[] = [];
  const examples = [...Deno.readDirSync(here)].filter((e) => e.isDirectory).map((e) => e.name).sort();
  for (const example of examples) {
    const dir = `${here}/${example}`;
    let expectations: Record<string, Expected>;
    try {
      expectations = JSON.parse(Deno.readTextFileSync(`${dir}/inputs/expected.json`));
    } catch {
      continue;
    }
    const bundle = await openBundle(dir);
    try {
      for (const [file, expected] of Object.entries(expectations)) {
        const policy = bundle.policies.get(expected.policy);
        if (!policy) throw new CliError(`${example}: no policy '${expected.policy}' for ${file}`);
        const input = JSON.parse(Deno.readTextFileSync(`${dir}/inputs/${file}`));
        const decision = policy.evaluate(input);
        rows.push({
          example,
          policy: expected.policy,
          input: file.replace(/\.json$/, ""),
          decision,
          ok: matches(decision, expected),
          expected,
        });
      }
    } finally {
      bundle.engine.close();
    }
  }
  return rows;
}

function printTable(rows: Row[]): void {
  const headers = ["example", "policy", "input", "decision", "reasons"];
  const cells = rows.map((r) => {
    const verdict = r.decision.allow ? green("allow") : red("deny");
    const detail = r.decision.errors.length > 0 ? r.decision.errors[0] : r.decision.reasons.join("; ");
    return [r.example, r.policy, r.input, verdict + (r.ok ? "" : red(" ✗")), detail];
  });
  const widths = headers.map((h, i) => Math.max(visible(h), ...cells.map((c) => visible(c[i]))));
  const used = widths.slice(0, 4).reduce((a, b) => a + b + 2, 0);
  const reasonWidth = Deno.stdout.isTerminal() ? Math.max(20, terminalWidth() - used - 1) : Infinity;
  console.log(bold(headers.map((h, i) => pad(h, i < 4 ? widths[i] : 0)).join("  ")));
  console.log(dim(widths.map((w, i) => "─".repeat(i < 4 ? w : Math.min(w, reasonWidth))).join("  ")));
  let previous = "";
  for (const [i, row] of cells.entries()) {
    const example = row[0] === previous ? "" : row[0];
    previous = row[0];
    if (example && i > 0) console.log();
    const reasons = clip(row[4], reasonWidth);
    const shown = rows[i].decision.errors.length > 0 ? dim(reasons) : reasons;
    console.log(
      [pad(example, widths[0]), pad(row[1], widths[1]), pad(row[2], widths[2]), pad(row[3], widths[3]), shown]
        .join("  "),
    );
  }
}

async function poolDemo(): Promise<void> {
  const requests = makeRequests(20_000);
  const dir = `${here}/abac`;
  const workers = Math.max(2, Math.min(4, navigator.hardwareConcurrency || 2));
  console.log(
    bold(`\nPolicyPool: ${workers} workers, the ABAC workload policy (abac/workload.lua), 20,000 requests`),
  );

  const bundle = await openBundle(dir);
  const policy = bundle.policies.get("workload")!;
  for (const r of requests) policy.evaluate(r); // warm-up
  let started = performance.now();
  const single = requests.map((r) => policy.evaluate(r).allow);
  const singleMs = performance.now() - started;
  bundle.engine.close();
  const line = (label: string, ms: number, extra = "") =>
    console.log(
      `  ${pad(label, 24)} ${(ms / 1000).toFixed(2)} s  ${
        Math.round(requests.length / (ms / 1000)).toLocaleString("en-US").padStart(8)
      } decisions/s${extra}`,
    );

  {
    await using pool = await PolicyPool.create({
      workers,
      dir,
      data: bundle.data,
      maxQueue: requests.length,
    });
    await Promise.all(requests.map((r) => pool.evaluate("workload", r))); // warm-up
    started = performance.now();
    const decisions = await Promise.all(requests.map((r) => pool.evaluate("workload", r)));
    const poolMs = performance.now() - started;
    line("one engine (this thread)", singleMs);
    line(`pool of ${workers} workers`, poolMs);
    const agree = decisions.filter((d, i) => d.allow === single[i]).length;
    const allowed = single.filter(Boolean).length;
    console.log(
      `  ${agree === requests.length ? green("✓") : red("✗")} the pool agrees with the engine on ` +
        `${agree.toLocaleString("en-US")} of ${requests.length.toLocaleString("en-US")} decisions ` +
        `(${allowed.toLocaleString("en-US")} allowed)`,
    );
    const d = decisions[0];
    console.log(dim(
      `  a decision from a worker: id ${d.id}, ${instructionsOf(d.usage.instructions)}, ` +
        `${(d.usage.memory / 1024).toFixed(1)} KiB, ${(d.usage.timeMs * 1000).toFixed(0)} µs ` +
        `(${navigator.hardwareConcurrency} CPU core(s) here)`,
    ));
  }

  // The watchdog: a host function that hangs cannot be stopped by the Lua limits; the pool fails
  // that decision closed, replaces the worker and carries on.
  console.log(bold("\nPolicyPool watchdog: a capability that hangs (examples/demo_capabilities.ts)"));
  await using guarded = await PolicyPool.create({
    workers: 1,
    timeoutMs: 250,
    capabilitiesModule: new URL("./demo_capabilities.ts", import.meta.url),
    policies: {
      active: `return function(input) return directory(input.user).active, "directory lookup" end`,
    },
  });
  started = performance.now();
  const [hung, queued] = await Promise.all([
    guarded.evaluate("active", { user: "hangs" }),
    guarded.evaluate("active", { user: "ann" }),
  ]);
  const elapsed = performance.now() - started;
  const show = (user: string, d: Decision) =>
    console.log(
      `  ${pad(user, 8)} ${pad(d.allow ? green("allow") : red("deny"), 6)}  ${
        d.errors.length > 0 ? dim(d.errors[0]) : d.reasons.join("; ")
      }`,
    );
  show("hangs", hung);
  show("ann", queued);
  console.log(dim(
    `  both answered in ${elapsed.toFixed(0)} ms: the stuck worker was terminated and replaced, ` +
      `and the request queued behind it ran on the new one`,
  ));
}

async function main(): Promise<number> {
  let implementation = "Lua";
  try {
    using lua = new LuaRuntime();
    implementation = lua.luaImplementation;
  } catch (error) {
    console.error(`demo: cannot load the Lua library: ${error instanceof Error ? error.message : error}`);
    return 1;
  }
  console.log(
    bold(`luagate demo`) +
      dim(` · Lua policies on ${implementation} · examples/*/inputs through PolicyEngine`),
  );
  console.log();
  const started = performance.now();
  let rows: Row[];
  try {
    rows = await runExamples();
  } catch (error) {
    console.error(`demo: ${error instanceof Error ? error.message : error}`);
    return 1;
  }
  const ms = performance.now() - started;
  printTable(rows);
  const bad = rows.filter((r) => !r.ok);
  console.log();
  if (bad.length === 0) {
    console.log(
      `${green("✓")} ${rows.length} decisions, all as expected (inputs/expected.json), in ${
        ms.toFixed(0)
      } ms`,
    );
  } else {
    for (const r of bad) {
      console.log(
        `${red("✗")} ${r.example}/${r.input}: expected ${r.expected.allow ? "allow" : "deny"} ` +
          `${JSON.stringify(r.expected.reasons ?? [])}, got ${r.decision.allow ? "allow" : "deny"} ` +
          `${JSON.stringify(r.decision.reasons)} ${r.decision.errors.join("; ")}`,
      );
    }
  }
  console.log(dim("  run the policy tests: deno run -A cli.ts test examples/<name>   (or ./run test)"));
  await poolDemo();
  return bad.length === 0 ? 0 : 1;
}

Deno.exit(await main());
