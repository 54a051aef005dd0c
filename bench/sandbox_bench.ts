// The cost of the sandbox and of each of its limits, on the shared ABAC workload.
//   deno bench -A bench/sandbox_bench.ts
// Groups compare against a baseline in the same run: absolute figures on a shared machine are noise.

import { LuaRuntime, PolicyEngine, Sandbox } from "../mod.ts";
import { openLuaLibrary } from "../ffi/library.ts";
import type { LuaFunction, LuaTable } from "../mod.ts";
import { decideJS, makeRequests, POLICY_LUA } from "./abac_workload.ts";

const requests = makeRequests(1000);
const DECISION = `${POLICY_LUA}\nreturn function(input, data) return decide(input) end`;

// ---- whole decisions: the engine with every limit on vs the trusted bridge

const engine = new PolicyEngine();
const policy = engine.compile(DECISION, { name: "abac.lua" });
const bridge = new LuaRuntime();
bridge.execute(POLICY_LUA);
const bridgeDecide = bridge.globals().get("decide") as LuaFunction;
const toTable = (r: unknown) => bridge.tableFrom(r, { recursive: true });
for (const r of requests.slice(0, 50)) {
  if (policy.evaluate(r).allow !== decideJS(r)) throw new Error("engine disagrees with decideJS");
  using input = toTable(r);
  if (bridgeDecide(input) !== decideJS(r)) throw new Error("bridge disagrees with decideJS");
}

let i = 0;
Deno.bench("PolicyEngine.evaluate (all limits on)", { group: "decision", baseline: true }, () => {
  policy.evaluate(requests[i++ % 1000]);
});
let j = 0;
Deno.bench("LuaRuntime: tableFrom + call (no limits)", { group: "decision" }, () => {
  using input = toTable(requests[j++ % 1000]);
  bridgeDecide(input);
});

// ---- each limit alone, on tables already in Lua (no conversion), in the trusted runtime

const LOOP = `
local decide, inputs = ...
return function(n)
  local allowed = 0
  for k = 1, n do if decide(inputs[(k % #inputs) + 1]) then allowed = allowed + 1 end end
  return allowed
end`;

function prepared(setup: (lua: LuaRuntime) => void): { lua: LuaRuntime; run: LuaFunction } {
  const lua = new LuaRuntime();
  setup(lua);
  lua.execute(POLICY_LUA);
  const inputs = lua.tableFrom(requests, { recursive: true }) as LuaTable;
  const run = lua.execute(LOOP, lua.globals().get("decide"), inputs) as LuaFunction;
  return { lua, run };
}

const plain = prepared(() => {});
const hooked = prepared((lua) => lua.execute(`debug.sethook(function() end, "", 1000)`));
const capped = prepared((lua) => lua.setMaxMemory(64 << 20));
const N = 1000;
Deno.bench("no limit (1000 decisions in Lua)", { group: "limit", baseline: true }, () => {
  plain.run(N);
});
Deno.bench("count hook every 1000 instructions", { group: "limit" }, () => {
  hooked.run(N);
});
Deno.bench("memory cap (native capped allocator)", { group: "limit" }, () => {
  capped.run(N);
});

// ---- allocation-heavy Lua with and without the cap

const ALLOC = `return function() local t = {} for i = 1, 2000 do t[i] = { i, tostring(i) } end return #t end`;
const free = new LuaRuntime();
const freeAlloc = free.execute(ALLOC) as LuaFunction;
const cap = new LuaRuntime({ maxMemory: 256 << 20 });
const capAlloc = cap.execute(ALLOC) as LuaFunction;
Deno.bench("allocation-heavy, no cap", { group: "alloc", baseline: true }, () => {
  freeAlloc();
});
Deno.bench("allocation-heavy, memory cap", { group: "alloc" }, () => {
  capAlloc();
});

// ---- sandboxes: creation, a trivial run

// the floor on this machine: a bare Lua state with every standard library, nothing of luagate's
const lua = openLuaLibrary().symbols;
Deno.bench("luaL_newstate + luaL_openlibs + lua_close (floor)", { group: "start", baseline: true }, () => {
  const L = lua.luaL_newstate();
  lua.luaL_openlibs(L);
  lua.lua_close(L);
});
Deno.bench("new Sandbox() + close()", { group: "start" }, () => {
  new Sandbox().close();
});
// the start-up target is the creation: the close runs outside the timed part
Deno.bench("new Sandbox() (close not timed)", { group: "start" }, (b) => {
  b.start();
  const sandbox = new Sandbox();
  b.end();
  sandbox.close();
});
{
  // the footprint a sandbox starts with: Lua memory after a full collection (see Sandbox.idleMemory)
  using idle = new Sandbox();
  console.log(`idle sandbox: ${idle.idleMemory} bytes of Lua memory`);
}
const sandbox = new Sandbox({ globals: { input: requests[0] } });
Deno.bench("Sandbox.eval('input.user.id')", { group: "sandbox" }, () => {
  sandbox.eval("input.user.id");
});
// the same source each time (kept compiled) against a new source each time (compiled every run)
let fresh = 0;
Deno.bench("Sandbox.execute, the same code", { group: "execute", baseline: true }, () => {
  sandbox.execute("local t = {} for i = 1, 3 do t[i] = i * i end return t");
});
Deno.bench("Sandbox.execute, new code every run", { group: "execute" }, () => {
  sandbox.execute(`local t = {} for i = 1, 3 do t[i] = i * ${++fresh} end return t`);
});
