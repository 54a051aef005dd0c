// luagate's rows: the policy engine with every limit on, and the trusted bridge without limits.
import { type LuaFunction, LuaRuntime, type Policy, PolicyEngine } from "../../../mod.ts";
import { type Engine, POLICY_ROW, type Request, type Workload } from "./types.ts";

const VERSION = `luagate ${
  JSON.parse(Deno.readTextFileSync(new URL("../../../deno.json", import.meta.url))).version
}`;

/**
 * The shared POLICY_LUA as a luagate policy chunk: it returns `decide` itself, which takes the input
 * and leaves `data` unread, as the wasmoon and fengari rows call the function itself.
 */
export function policyChunk(policyLua: string): string {
  return policyLua + "\nreturn decide";
}

function policyRow(): Engine {
  let engine: PolicyEngine | undefined;
  let policy: Policy | undefined;
  let requests: Request[] = [];
  return {
    name: POLICY_ROW,
    version: VERSION,
    feed: "policy.evaluate(request): the JS object copied in as Lua tables, default limits, fail-closed",
    setup(w: Workload) {
      requests = w.requests;
      engine = new PolicyEngine();
      policy = engine.compile(policyChunk(w.policyLua), { name: "abac.lua" });
      const d = policy.evaluate(requests[0]);
      if (d.errors.length > 0) throw new Error("evaluate: " + d.errors.join("; "));
      return Promise.resolve();
    },
    decide: (i: number): boolean => policy!.evaluate(requests[i]).allow,
    diagnose(i: number) {
      const d = policy!.evaluate(requests[i]);
      return JSON.stringify({ allow: d.allow, reasons: d.reasons, errors: d.errors });
    },
    close() {
      engine?.close();
    },
  };
}

function runtimeRow(): Engine {
  let lua: LuaRuntime | undefined;
  let decide: LuaFunction | undefined;
  let requests: Request[] = [];
  const recursive = { recursive: true };
  const row: Engine = {
    name: "luagate LuaRuntime (trusted, no limits)",
    version: VERSION,
    feed:
      "decide(lua.tableFrom(request, { recursive: true })): Lua tables built per call, released after it (using)",
    setup(w: Workload) {
      requests = w.requests;
      lua = new LuaRuntime();
      lua.execute(w.policyLua);
      decide = lua.globals().get("decide") as LuaFunction;
      row.version = `${VERSION} (${lua.luaImplementation})`;
      return Promise.resolve();
    },
    decide(i: number): boolean {
      using input = lua!.tableFrom(requests[i], recursive);
      return decide!(input) === true;
    },
    diagnose(i: number) {
      using input = lua!.tableFrom(requests[i], recursive);
      return `returned ${String(decide!(input))}`;
    },
    close() {
      lua?.close();
    },
  };
  return row;
}

export function load(): Promise<Engine[]> {
  return Promise.resolve([policyRow(), runtimeRow()]);
}
