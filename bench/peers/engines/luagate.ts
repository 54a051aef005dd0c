// luagate itself, through its public API (mod.ts at the repository root), in two rows:
//   - "luagate Policy (all limits on)": PolicyEngine with default limits, the ABAC policy wrapped as a
//     decision function; per request policy.evaluate(request).allow.
//   - "luagate LuaRuntime (trusted, no limits)": the trusted bridge; decide(request) called directly
//     with the JS object, which the runtime passes to Lua as a proxy. Note: luagate's array proxies index
//     from 0 like lupa's (`roles[0]` is the first element), so `ipairs` over them skips the first item
//     and this row gives wrong answers for this policy (FAILED) unless that design changes.
//   - "luagate LuaRuntime, tableFrom recursive": the same runtime, the request converted per call with
//     lua.tableFrom(request, { recursive: true }) into real Lua tables (1-based sequences), so the
//     policy's ipairs works; handles are left to the runtime's FinalizationRegistry, as a user would.
// While mod.ts is missing, fails to import, or lacks the export, the rows are skipped with a note.
import type { Engine, Request, Workload } from "./types.ts";

// The parts of the public API contract (API.md) this benchmark uses.
interface Decision {
  allow: boolean;
  reasons?: string[];
  errors?: string[];
}
interface Policy {
  evaluate(input: unknown): Decision;
}
interface PolicyEngineLike {
  compile(code: string, options?: { name?: string }): Policy;
  close?(): void;
}
interface LuaRuntimeLike {
  execute(code: string, ...args: unknown[]): unknown;
  globals(): { get(key: string): unknown };
  tableFrom(...sources: unknown[]): unknown;
  close(): void;
  luaImplementation?: string;
}
interface LuagateModule {
  PolicyEngine?: new (options: Record<string, unknown>) => PolicyEngineLike;
  LuaRuntime?: new (options?: Record<string, unknown>) => LuaRuntimeLike;
}

const MOD_URL = new URL("../../../mod.ts", import.meta.url);
const RECURSIVE = { recursive: true };
const POLICY_ROW = "luagate Policy (all limits on)";
const POLICY_FEED = "policy.evaluate(request): JS object as input, default limits, fail-closed";
const RUNTIME_ROW = "luagate LuaRuntime (trusted, no limits)";
const RUNTIME_FEED = "decide(request) via lua.globals().get('decide'); JS object passed as a proxy";
const TABLE_ROW = "luagate LuaRuntime, tableFrom recursive";
const TABLE_FEED = "decide(lua.tableFrom(request, { recursive: true })): Lua tables built per call";

/** The wrapper that turns the shared POLICY_LUA into a luagate policy chunk. */
export function policyChunk(policyLua: string): string {
  return policyLua + "\nreturn function(input, data) return decide(input) end";
}

function packageVersion(): string {
  try {
    const cfg = JSON.parse(Deno.readTextFileSync(new URL("../../../deno.json", import.meta.url)));
    return `luagate ${cfg.version ?? "?"}`;
  } catch {
    return "luagate";
  }
}

function placeholder(name: string, version: string, feed: string, reason: string): Engine {
  return { name, version, feed, skipped: reason, setup: () => Promise.resolve(), close() {} };
}

function policyRow(PolicyEngine: NonNullable<LuagateModule["PolicyEngine"]>, version: string): Engine {
  let engine: PolicyEngineLike | undefined;
  let policy: Policy | undefined;
  let requests: Request[] = [];
  return {
    name: POLICY_ROW,
    version,
    feed: POLICY_FEED,
    setup(w: Workload) {
      requests = w.requests;
      engine = new PolicyEngine({});
      policy = engine.compile(policyChunk(w.policyLua), { name: "abac.lua" });
      // Fail-closed evaluation never throws: surface errors here instead of as silent denials.
      const d = policy.evaluate(requests[0]);
      if (d.errors && d.errors.length > 0) throw new Error("evaluate: " + d.errors.join("; "));
      return Promise.resolve();
    },
    decide(i: number): boolean {
      return policy!.evaluate(requests[i]).allow === true;
    },
    diagnose(i: number) {
      const d = policy!.evaluate(requests[i]);
      return JSON.stringify({ allow: d.allow, reasons: d.reasons, errors: d.errors });
    },
    close() {
      engine?.close?.();
      engine = undefined;
      policy = undefined;
    },
  };
}

function runtimeRow(
  LuaRuntime: NonNullable<LuagateModule["LuaRuntime"]>,
  version: string,
  asTables: boolean,
): Engine {
  let lua: LuaRuntimeLike | undefined;
  let decide: (input: Request) => unknown = () => {
    throw new Error("not set up");
  };
  let requests: Request[] = [];
  const row: Engine = {
    name: asTables ? TABLE_ROW : RUNTIME_ROW,
    version,
    feed: asTables ? TABLE_FEED : RUNTIME_FEED,
    setup(w: Workload) {
      requests = w.requests;
      lua = new LuaRuntime();
      lua.execute(w.policyLua);
      const fn = lua.globals().get("decide");
      if (typeof fn !== "function") throw new Error("globals().get('decide') is not callable");
      decide = fn as (input: Request) => unknown;
      if (lua.luaImplementation) row.version = `${version} (${lua.luaImplementation})`;
      return Promise.resolve();
    },
    decide: asTables
      ? (i: number): boolean => decide(lua!.tableFrom(requests[i], RECURSIVE) as Request) === true
      : (i: number): boolean => decide(requests[i]) === true,
    diagnose(i: number) {
      try {
        const input = asTables ? lua!.tableFrom(requests[i], RECURSIVE) as Request : requests[i];
        return `returned ${String(decide(input))}`;
      } catch (e) {
        return `threw ${(e as Error).message}`;
      }
    },
    close() {
      lua?.close();
      lua = undefined;
    },
  };
  return row;
}

export async function load(): Promise<Engine[]> {
  const version = packageVersion();
  const skipAll = (reason: string) => [
    placeholder(POLICY_ROW, version, POLICY_FEED, reason),
    placeholder(RUNTIME_ROW, version, RUNTIME_FEED, reason),
    placeholder(TABLE_ROW, version, TABLE_FEED, reason),
  ];
  try {
    Deno.statSync(MOD_URL);
  } catch {
    return skipAll("mod.ts not found at the repository root (library not written yet)");
  }
  let mod: LuagateModule;
  try {
    mod = await import(MOD_URL.href);
  } catch (e) {
    return skipAll(`importing mod.ts failed: ${(e as Error).message.split("\n")[0]}`);
  }
  return [
    typeof mod.PolicyEngine === "function"
      ? policyRow(mod.PolicyEngine, version)
      : placeholder(POLICY_ROW, version, POLICY_FEED, "mod.ts does not export PolicyEngine yet"),
    typeof mod.LuaRuntime === "function"
      ? runtimeRow(mod.LuaRuntime, version, false)
      : placeholder(RUNTIME_ROW, version, RUNTIME_FEED, "mod.ts does not export LuaRuntime yet"),
    typeof mod.LuaRuntime === "function"
      ? runtimeRow(mod.LuaRuntime, version, true)
      : placeholder(TABLE_ROW, version, TABLE_FEED, "mod.ts does not export LuaRuntime yet"),
  ];
}
