import assert from "node:assert/strict";
import { LuaRuntime } from "../mod.ts";
import { fn, tbl } from "./helpers.ts";

Deno.test("lupa: eval('nil') is undefined", () => {
  using lua = new LuaRuntime();
  assert.equal(lua.eval("nil"), undefined);
});

Deno.test("lupa: is_nil(null) and is_nil(undefined) are both true", () => {
  using lua = new LuaRuntime();
  const isNil = fn(lua.eval("function(x) return x == nil end"));
  assert.equal(isNil(null), true);
  assert.equal(isNil(undefined), true);
  assert.equal(isNil(), true);
  assert.equal(isNil(0), false);
  assert.equal(isNil(""), false);
  assert.equal(isNil(false), false);
});

Deno.test("lupa: a Lua function returning nothing gives undefined", () => {
  using lua = new LuaRuntime();
  assert.equal(fn(lua.eval("function() end"))(), undefined);
  assert.equal(lua.execute("local x = 1"), undefined);
});

Deno.test("several nils come back as an array of undefined", () => {
  using lua = new LuaRuntime();
  assert.deepEqual(lua.execute("return nil, nil"), [undefined, undefined]);
  assert.deepEqual(lua.execute("return 1, nil, 3"), [1, undefined, 3]);
});

Deno.test("lupa: a JS function returning null or undefined gives nil to Lua", () => {
  using lua = new LuaRuntime();
  const check = fn(lua.eval("function(f) local v = f() return v == nil, type(v) end"));
  assert.deepEqual(check(() => null), [true, "nil"]);
  assert.deepEqual(check(() => undefined), [true, "nil"]);
  assert.deepEqual(check(() => {}), [true, "nil"]);
});

Deno.test("nil arguments in the middle keep their position", () => {
  using lua = new LuaRuntime();
  assert.equal(lua.eval("select('#', ...)", 1, undefined, null, 4), 4);
  assert.deepEqual(lua.eval("select(2, ...)", 1, null, 3), [undefined, 3]);
  let seen: unknown[] = [];
  fn(lua.eval("function(f) f(1, nil, 3) end"))((...args: unknown[]) => {
    seen = args;
  });
  assert.deepEqual(seen, [1, undefined, 3]);
});

Deno.test("lupa: iteration replaces null by js.none", () => {
  using lua = new LuaRuntime();
  const func = fn(lua.eval(`
    function(items)
      local t = {}
      for value in js.iter(items) do
        table.insert(t, value == js.none)
      end
      return t
    end`));
  assert.deepEqual([...tbl(func([1, null, 2])).values()], [false, true, false]);
});

Deno.test("lupa: iterex replaces only the first nil of each item by js.none", () => {
  using lua = new LuaRuntime();
  const func = fn(lua.eval(`
    function(items)
      for a, b, c, d in js.iterex(items) do
        return {a == js.none, a == nil,
                b == js.none, b == nil,
                c == js.none, c == nil,
                d == js.none, d == nil}
      end
    end`));
  const expected = [true, false, false, true, false, true, false, true];
  assert.deepEqual([...tbl(func([[null, null, null, null]])).values()], expected);
  assert.deepEqual([...tbl(func([[null, null]])).values()], expected);
});

Deno.test("js.none comes back to JS as null", () => {
  using lua = new LuaRuntime();
  assert.equal(lua.eval("js.none"), null);
  assert.equal(lua.eval("js.none ~= nil"), true);
  assert.equal(lua.eval("tostring(js.none)"), "None");
});

Deno.test("lupa: setting a global to undefined or null removes it", () => {
  using lua = new LuaRuntime();
  const g = lua.globals();
  g.set("x", 1);
  assert.equal(lua.eval("x"), 1);
  g.set("x", null);
  assert.equal(lua.eval("x"), undefined);
  g.set("y", 2);
  g.set("y", undefined);
  assert.equal(lua.eval("y == nil"), true);
});
