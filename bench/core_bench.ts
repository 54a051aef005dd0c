/**
 * Cost of the core bridge paths of `LuaRuntime`, one group per path, each with a baseline:
 *
 * - `eval`: a tiny `lua.eval("1")` (compile + call + result) against calling a precompiled chunk;
 * - `call`: a Lua function with 3 arguments through a `LuaFunction` handle obtained once;
 * - `callback`: a Lua loop calling a JS function N times per iteration, against the same loop
 *   calling a Lua function (divide the time by N for the cost of one call);
 * - `push object`: a 20-field plain object into Lua as a table (`tableFrom`) and as a proxy
 *   (passed as an argument to a Lua function);
 * - `read table`: a 20-field Lua table back into JS (`entries()`, and 20 `get()`s).
 *
 *   ./run deno bench --allow-ffi --allow-env --allow-read bench/core_bench.ts   (or: deno task bench)
 *
 * The Lua library comes from `LUAGATE_LUA_LIB` like everywhere else (default: the probe, Lua 5.4
 * first), so the same file compares Lua versions and LuaJIT:
 *
 *   LUAGATE_LUA_LIB=libluajit-5.1.so.2 ./run deno bench -A bench/core_bench.ts
 *
 * @module
 */

import { type LuaFunction, LuaRuntime, type LuaTable } from "../mod.ts";

/** Lua -> JS calls per iteration of the callback benches. */
const N = 1000;
/** Fields of the pushed and read objects. */
const FIELDS = 20;

const lua = new LuaRuntime();
globalThis.addEventListener("unload", () => lua.close());

const object: Record<string, number> = {};
for (let i = 0; i < FIELDS; i++) object[`field${i}`] = i;

const one = lua.compile("return 1");
const add3 = lua.eval("function(a, b, c) return a + b + c end") as LuaFunction;
const noop = lua.eval("function(t) end") as LuaFunction;

let calls = 0;
lua.globals().set("js_callback", (i: number) => {
  calls += i;
  return i;
});
const callJs = lua.eval(`function(n)
  local f = js_callback
  for i = 1, n do f(i) end
end`) as LuaFunction;
const callLua = lua.eval(`function(n)
  local f = function(i) return i end
  for i = 1, n do f(i) end
end`) as LuaFunction;

const table = lua.tableFrom(object);
const keys = Object.keys(object);

function check(condition: boolean, what: string): void {
  if (!condition) throw new Error(`bench self-check failed: ${what}`);
}
check(lua.eval("1") === 1, "eval");
check(add3(1, 2, 3) === 6, "add3");
callJs(3);
check(calls === 6, "callback count");
check([...table.entries()].length === FIELDS, "table entries");
check((lua.eval("select(2, ...).field7", undefined, object) as number) === 7, "proxy field read");

Deno.bench({
  name: `eval("1") [${lua.luaImplementation}]`,
  group: "eval",
  baseline: true,
  fn() {
    lua.eval("1");
  },
});

Deno.bench({
  name: `precompiled "return 1" (compile once, call)`,
  group: "eval",
  fn() {
    one();
  },
});

Deno.bench({
  name: "LuaFunction handle: function(a,b,c) return a+b+c end (1, 2, 3)",
  group: "call",
  baseline: true,
  fn() {
    add3(1, 2, 3);
  },
});

Deno.bench({
  name: "LuaFunction handle: function(t) end (no result)",
  group: "call",
  fn() {
    noop(1);
  },
});

Deno.bench({
  name: `Lua loop calling a Lua function, n=${N} calls per iteration`,
  group: "callback",
  baseline: true,
  fn() {
    callLua(N);
  },
});

Deno.bench({
  name: `Lua loop calling a JS function, n=${N} calls per iteration (per call: divide by ${N})`,
  group: "callback",
  fn() {
    callJs(N);
  },
});

Deno.bench({
  name: `lua.tableFrom(${FIELDS}-field object) (copy into a Lua table)`,
  group: "push object",
  baseline: true,
  fn() {
    lua.tableFrom(object)[Symbol.dispose]();
  },
});

Deno.bench({
  name: `${FIELDS}-field object as an argument (proxy), to function(t) end`,
  group: "push object",
  fn() {
    noop(object);
  },
});

Deno.bench({
  name: `${FIELDS}-field table: [...table.entries()]`,
  group: "read table",
  baseline: true,
  fn() {
    [...table.entries()];
  },
});

Deno.bench({
  name: `${FIELDS}-field table: ${FIELDS} table.get(key)`,
  group: "read table",
  fn() {
    for (const key of keys) (table as LuaTable).get(key);
  },
});
