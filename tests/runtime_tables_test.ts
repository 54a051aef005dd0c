import assert from "node:assert/strict";
import { LuaError, LuaRuntime, LuaTable, luaType } from "../mod.ts";
import { assertUsable, fn, sorted, tbl, VERSION } from "./helpers.ts";

Deno.test("lupa: array tables are 1-based: t[1] and t[4] of {10,20,30,40}", () => {
  using lua = new LuaRuntime();
  const t = tbl(lua.eval("{10,20,30,40}"));
  assert.equal(t.get(1), 10);
  assert.equal(t.get(4), 40);
  assert.equal(t.get(0), undefined);
});

Deno.test("lupa: keys(), values(), entries() of an array table follow index order", () => {
  using lua = new LuaRuntime();
  const t = tbl(lua.eval("{10,20,30,40}"));
  assert.deepEqual([...t.keys()], [1, 2, 3, 4]);
  assert.deepEqual([...t.values()], [10, 20, 30, 40]);
  assert.deepEqual([...t.entries()], [[1, 10], [2, 20], [3, 30], [4, 40]]);
  assert.deepEqual(new Map(t), new Map([[1, 10], [2, 20], [3, 30], [4, 40]]));
});

Deno.test("lupa: length of an array table is its size", () => {
  using lua = new LuaRuntime();
  assert.equal(tbl(lua.eval("{10,20,30,40}")).length, 4);
  assert.equal(tbl(lua.eval("{}")).length, 0);
});

Deno.test("lupa: {[1] = -1} has the single key 1", () => {
  using lua = new LuaRuntime();
  assert.deepEqual([...tbl(lua.eval("{ [1] = -1 }")).keys()], [1]);
});

Deno.test("lupa: a mapping table {[20]=-20; [3]=-3} reads by key", () => {
  using lua = new LuaRuntime();
  const mapping = tbl(lua.eval("{ [20] = -20; [3] = -3 }"));
  assert.equal(mapping.get(20), -20);
  assert.equal(mapping.get(3), -3);
  assert.deepEqual(sorted(mapping.values()), [-20, -3]);
  assert.deepEqual(sorted(mapping.entries()), [[3, -3], [20, -20]]);
});

Deno.test("lupa: a negative number is a key, not an index", () => {
  using lua = new LuaRuntime();
  const mapping = tbl(lua.eval("{ [20] = -20; [3] = -3 }"));
  mapping.set(-3, 3);
  assert.equal(mapping.get(-3), 3);
  assert.deepEqual(sorted(mapping.keys()), [-3, 3, 20]);
  assert.deepEqual(sorted(mapping.entries()), [[-3, 3], [3, -3], [20, -20]]);
});

Deno.test("lupa: missing keys and indices give undefined", () => {
  using lua = new LuaRuntime();
  const table = lua.table(10, 20, 30, 40);
  assert.equal(table.get(1000000), undefined);
  assert.equal(table.get("no such key"), undefined);
  const mapping = tbl(lua.eval("{ [20] = -20; [3] = -3 }"));
  assert.equal(mapping.get("no such key"), undefined);
});

Deno.test("lupa: length of a mapping table is 0", () => {
  using lua = new LuaRuntime();
  assert.equal(tbl(lua.eval("{ [20] = -20; [3] = -3 }")).length, 0);
  assert.equal(tbl(lua.eval("{ a = 1, b = 2 }")).length, 0);
  // mixed: only the sequence counts
  assert.equal(tbl(lua.eval("{ 1, 2, a = 1 }")).length, 2);
});

Deno.test("lupa: named fields of a table read by name", () => {
  using lua = new LuaRuntime();
  const table = tbl(lua.eval("{ a=1, b=2 }"));
  assert.equal(table.get("a"), 1);
  assert.equal(table.get("b"), 2);
});

Deno.test("lupa: lua.table(10, 20, 30, 40) builds an array table", () => {
  using lua = new LuaRuntime();
  const t = lua.table(10, 20, 30, 40);
  assert.equal(luaType(t), "table");
  assert.deepEqual([...t.keys()], [1, 2, 3, 4]);
  assert.deepEqual([...t.values()], [10, 20, 30, 40]);
  assert.equal(lua.eval("#...", t), 4);
});

Deno.test("lupa: tableFrom(array, object) is lupa's table(10, 20, 30, 40, a=1, b=2)", () => {
  using lua = new LuaRuntime();
  const t = lua.tableFrom([10, 20, 30, 40], { a: 1, b: 2 });
  assert.equal(t.get(3), 30);
  assert.equal(t.get("b"), 2);
  assert.equal(t.length, 4);
});

Deno.test("lupa: tableFrom merges sequences and mappings, later keys win", () => {
  using lua = new LuaRuntime();
  const t = lua.tableFrom([10, 20, 30], { a: 11, b: 22 }, [40, 50], { b: 42 });
  assert.equal(t.get("a"), 11);
  assert.equal(t.get("b"), 42);
  assert.equal(t.get(5), 50);
  assert.deepEqual(sorted(t.values()), [10, 11, 20, 30, 40, 42, 50]);
});

Deno.test("lupa: tableFrom with { recursive: true } maps nested structures to tables", () => {
  using lua = new LuaRuntime();
  const t = lua.tableFrom(
    [
      [[10, 20, 30], { a: 11, b: 22 }],
      [[40, 50], { b: 42 }],
    ],
    { recursive: true },
  );
  const [t1, t2] = [...t.values()].map(tbl);
  assert.deepEqual([...tbl(t1.get(1)).values()], [10, 20, 30]);
  assert.equal(tbl(t1.get(2)).get("a"), 11);
  assert.equal(tbl(t1.get(2)).get("b"), 22);
  assert.deepEqual(new Map(tbl(t2.get(2))), new Map([["b", 42]]));
  assert.deepEqual([...tbl(t2.get(1)).values()], [40, 50]);
  assert.equal(lua.eval("(...)[1][2].a", t), 11);
});

Deno.test("tableFrom without recursive keeps nested arrays as JS proxies", () => {
  using lua = new LuaRuntime();
  const inner = [1, 2];
  const t = lua.tableFrom([inner]);
  assert.equal(t.get(1), inner);
  assert.equal(lua.eval("type((...)[1])", t), "userdata");
});

Deno.test("lupa: tableFrom takes Maps and LuaTables as mappings", () => {
  using lua = new LuaRuntime();
  const source = tbl(lua.eval("{ x = 1, y = 2 }"));
  const t = lua.tableFrom(new Map<unknown, unknown>([["a", 1], [2, "two"]]), source);
  assert.equal(t.get("a"), 1);
  assert.equal(t.get(2), "two");
  assert.equal(t.get("x"), 1);
  assert.equal(t.get("y"), 2);
  assert.notEqual(lua.eval("rawequal(...)", t, source), true);
});

Deno.test("tableFrom recursive keeps the shape of cycles", () => {
  using lua = new LuaRuntime();
  const a: Record<string, unknown> = { name: "a" };
  a.self = a;
  const t = lua.tableFrom({ root: a }, { recursive: true });
  assert.equal(lua.eval("(...).root.self == (...).root", t), true);
  assert.equal(lua.eval("(...).root.self.self.name", t), "a");
});

Deno.test("tableFrom rejects primitives with a TypeError", () => {
  using lua = new LuaRuntime();
  assert.throws(() => lua.tableFrom(42 as unknown as object), TypeError);
  assertUsable(lua);
});

Deno.test("lupa: set(k, undefined) deletes, delete() reports whether the key was there", () => {
  using lua = new LuaRuntime();
  const t = tbl(lua.eval("{ a = 1, b = 2, c = 3 }"));
  t.set("a", undefined);
  assert.equal(t.has("a"), false);
  assert.equal(t.delete("b"), true);
  assert.equal(t.delete("b"), false);
  assert.equal(t.has("c"), true);
  assert.deepEqual([...t.keys()], ["c"]);
  assert.equal(lua.eval("(...).b", t), undefined);
});

Deno.test("a nil or NaN key is a TypeError, reading it is undefined", () => {
  using lua = new LuaRuntime();
  const t = lua.table();
  assert.throws(() => t.set(undefined, 1), TypeError);
  assert.throws(() => t.set(null, 1), TypeError);
  assert.throws(() => t.set(NaN, 1), TypeError);
  assert.equal(t.get(NaN), undefined);
  assert.equal(t.has(null), false);
  assertUsable(lua);
});

Deno.test("lupa: a table is iterable with for..of (entries)", () => {
  using lua = new LuaRuntime();
  const t = tbl(lua.eval("{ 'a', 'b' }"));
  const seen: unknown[] = [];
  for (const [k, v] of t) seen.push(k, v);
  assert.deepEqual(seen, [1, "a", 2, "b"]);
});

Deno.test("clearing entries while iterating is safe", () => {
  using lua = new LuaRuntime();
  const t = lua.tableFrom({ a: 1, b: 2, c: 3, d: 4 });
  let n = 0;
  for (const [k] of t) {
    t.set(k, undefined);
    n++;
  }
  assert.equal(n, 4);
  assert.deepEqual([...t.keys()], []);
});

Deno.test("a table passed back to Lua is the same table", () => {
  using lua = new LuaRuntime();
  const t = lua.table(1);
  const same = fn(lua.eval("function(a, b) return rawequal(a, b) end"));
  assert.equal(same(t, t), true);
  const id = fn(lua.eval("function(x) return x end"));
  const back = tbl(id(t));
  back.set(2, "two");
  assert.equal(t.get(2), "two");
  assert.equal(same(back, t), true);
});

Deno.test("nested tables come back as LuaTable", () => {
  using lua = new LuaRuntime();
  const t = tbl(lua.eval("{ inner = { 1, 2, { deep = true } } }"));
  const inner = tbl(t.get("inner"));
  assert.ok(inner instanceof LuaTable);
  assert.equal(tbl(inner.get(3)).get("deep"), true);
});

Deno.test("get/set honour __index and __newindex (protected path)", () => {
  using lua = new LuaRuntime();
  const t = tbl(lua.eval(`setmetatable({}, {
    __index = function(_, k) return "default:" .. k end,
    __newindex = function(t, k, v) rawset(t, k, v * 2) end,
  })`));
  assert.equal(t.get("x"), "default:x");
  t.set("n", 21);
  assert.equal(t.get("n"), 42);
  assert.equal(t.has("anything"), true);
});

Deno.test("an erroring __index surfaces as a LuaError and the runtime stays usable", () => {
  using lua = new LuaRuntime();
  const t = tbl(lua.eval("setmetatable({}, { __index = function() error('no reads') end })"));
  assert.throws(() => t.get("x"), (e: unknown) => e instanceof LuaError && /no reads/.test(e.message));
  assertUsable(lua);
});

Deno.test("length is the raw length and ignores __len", () => {
  using lua = new LuaRuntime();
  const t = tbl(lua.eval("setmetatable({1, 2, 3}, { __len = function() return 99 end })"));
  assert.equal(t.length, 3);
  // Lua 5.1 ignores __len on tables
  assert.equal(lua.eval("#...", t), VERSION === "5.1" ? 3 : 99);
});

Deno.test("globals() is _G", () => {
  using lua = new LuaRuntime();
  const g = lua.globals();
  assert.equal(lua.eval("rawequal(..., _G)", g), true);
  assert.equal(luaType(g.get("string")), "table");
  g.set("answer", 42);
  assert.equal(lua.eval("answer"), 42);
});

Deno.test("tables with boolean, table and function keys", () => {
  using lua = new LuaRuntime();
  const t = lua.table();
  const k = lua.table();
  const f = lua.eval("print");
  t.set(true, "yes");
  t.set(k, "table key");
  t.set(f, "function key");
  assert.equal(t.get(true), "yes");
  assert.equal(t.get(k), "table key");
  assert.equal(t.get(f), "function key");
  assert.equal(lua.eval("(...)[print]", t), "function key");
});

Deno.test("a JS object used as a table key keeps its identity in Lua", () => {
  using lua = new LuaRuntime();
  const key = { id: 1 };
  const t = lua.table();
  t.set(key, "found");
  assert.equal(t.get(key), "found");
  assert.deepEqual([...t.keys()], [key]);
});

Deno.test("LuaTable cannot be constructed directly", () => {
  assert.throws(() => new (LuaTable as unknown as new () => unknown)(), TypeError);
});

Deno.test("iteration reads a table with Lua's own next, whatever the global next became", () => {
  using lua = new LuaRuntime();
  const t = lua.tableFrom({ a: 1 });
  lua.execute("next = function() error('not this one') end");
  assert.deepEqual([...t.entries()], [["a", 1]]);
  lua.execute("next = nil");
  assert.deepEqual([...t.keys()], ["a"]);
});
