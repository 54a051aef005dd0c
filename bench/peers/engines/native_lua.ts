// Native Lua: PUC-Rio lua5.4 as a subprocess, the floor any embedding can approach.
// Fed the cheapest way: the requests are Lua table literals in generated source, built once before
// timing, so no conversion is timed at all; only `decide(REQUESTS[i])` runs in the loop.
// Two rows from one subprocess: without a hook, and with a no-op count hook every 1000 instructions.
import type { Engine, Request, SelfTimedResult, TimingOptions, Workload } from "./types.ts";
import { SkipEngine } from "./types.ts";

/** Path of the lua5.4 interpreter: env LUAGATE_BENCH_LUA, else /usr/bin/lua5.4, else lua5.4 on PATH. */
function luaPath(): string {
  const fromEnv = Deno.env.get("LUAGATE_BENCH_LUA");
  if (fromEnv) return fromEnv;
  try {
    Deno.statSync("/usr/bin/lua5.4");
    return "/usr/bin/lua5.4";
  } catch {
    return "lua5.4";
  }
}

/** A Lua string literal for any JS string: printable ASCII as is, every other byte as a decimal escape. */
export function luaString(s: string): string {
  let out = '"';
  for (const b of new TextEncoder().encode(s)) {
    if (b === 0x22 || b === 0x5c || b < 0x20 || b > 0x7e) out += "\\" + String(b).padStart(3, "0");
    else out += String.fromCharCode(b);
  }
  return out + '"';
}

function luaStringArray(items: string[]): string {
  return "{" + items.map(luaString).join(", ") + "}";
}

/** One request as a Lua table constructor. */
export function luaRequest(req: Request): string {
  const u = req.user, r = req.resource;
  const acl = Object.entries(r.acl).map(([g, a]) => `[${luaString(g)}] = ${luaString(a)}`).join(", ");
  const user = `{id = ${luaString(u.id)}, roles = ${luaStringArray(u.roles)}, ` +
    `groups = ${luaStringArray(u.groups)}, suspended = ${u.suspended}}`;
  const resource = `{id = ${luaString(r.id)}, owner = ${luaString(r.owner)}, ` +
    `visibility = ${luaString(r.visibility)}, acl = {${acl}}}`;
  return `{user = ${user}, resource = ${resource}, action = ${luaString(req.action)}}`;
}

type Label = "nohook" | "hook";
interface RunOutput {
  version: string;
  answers: boolean[];
  rounds: Record<Label, { us: number; allows: number; decisions: number }[]>;
}

export async function load(): Promise<Engine[]> {
  const lua = luaPath();
  let version: string;
  try {
    const out = await new Deno.Command(lua, { args: ["-v"], stdout: "piped", stderr: "piped" }).output();
    version = new TextDecoder().decode(out.stdout).trim().split("  ")[0] || "lua5.4";
  } catch (e) {
    throw new SkipEngine(`${lua} not runnable (${(e as Error).message}); set LUAGATE_BENCH_LUA`);
  }
  const driver = await Deno.readTextFile(new URL("../native_abac.lua", import.meta.url));
  let workload: Workload | undefined;
  // One subprocess measures both rows: the first row to ask for a round starts one, the other reads it.
  let run: { output: Promise<RunOutput>; readBy: Set<Label> } | undefined;

  async function runLua(opts: TimingOptions): Promise<RunOutput> {
    const w = workload!;
    const source = [
      w.policyLua,
      `ROUNDS = ${opts.rounds}`,
      `MIN_ROUND_S = ${opts.minRoundMs / 1000}`,
      `WARMUP_S = ${opts.warmupMs / 1000}`,
      "REQUESTS = {",
      ...w.requests.map((r) => "  " + luaRequest(r) + ","),
      "}",
      driver,
    ].join("\n");
    const cmd = new Deno.Command(lua, { args: ["-"], stdin: "piped", stdout: "piped", stderr: "piped" });
    const child = cmd.spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(source));
    await writer.close();
    const out = await child.output();
    if (!out.success) {
      const err = new TextDecoder().decode(out.stderr).trim();
      throw new Error(`${lua} exited with ${out.code}: ${err}`);
    }
    const result: RunOutput = { version: "", answers: [], rounds: { nohook: [], hook: [] } };
    for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
      const [tag, ...rest] = line.trim().split(" ");
      if (tag === "VERSION") result.version = rest.join(" ");
      else if (tag === "ANSWERS") result.answers = [...(rest[0] ?? "")].map((c) => c === "1");
      else if (tag === "ROUND") {
        const [label, us, allows, decisions] = rest;
        result.rounds[label as Label].push({
          us: Number(us),
          allows: Number(allows),
          decisions: Number(decisions),
        });
      }
    }
    if (result.answers.length !== w.requests.length) throw new Error(`${lua}: no answers in its output`);
    return result;
  }

  function row(label: Label, name: string, feed: string): Engine {
    return {
      name,
      version,
      feed,
      setup(w: Workload) {
        if (workload !== w) run = undefined;
        workload = w;
        return Promise.resolve();
      },
      async selfTimed(opts: TimingOptions): Promise<SelfTimedResult> {
        if (run === undefined || run.readBy.has(label)) run = { output: runLua(opts), readBy: new Set() };
        run.readBy.add(label);
        const r = await run.output;
        const rounds = r.rounds[label];
        if (rounds.length === 0) throw new Error(`${lua}: no ${label} rounds in its output`);
        return {
          roundsUs: rounds.map((x) => x.us),
          allowsPerRound: rounds.map((x) => x.allows),
          decisionsPerRound: rounds[0].decisions,
          answers: r.answers,
        };
      },
      close() {},
    };
  }

  const prebuilt = "requests pre-built as Lua tables in generated source; os.clock CPU time";
  return [
    row("nohook", "native lua5.4 (no hook)", prebuilt),
    row("hook", "native lua5.4 (count hook every 1000)", prebuilt + "; debug.sethook(fn, '', 1000)"),
  ];
}
