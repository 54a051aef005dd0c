import assert from "node:assert/strict";
import { asAttrGetter, asItemGetter, LuaRuntime, luaType } from "../mod.ts";
import { assertUsable, fn, tbl } from "./helpers.ts";

Deno.test("lupa: js.iter copies a JS array into a Lua table", () => {
  using lua = new LuaRuntime();
  const luaCopy = fn(lua.eval(`
    function(L)
      local t, i = {}, 1
      for item in js.iter(L) do
        t[i] = item
        i = i + 1
      end
      return t
    end`));
  const table = tbl(luaCopy([1, 2, 3, 4]));
  assert.equal(table.length, 4);
  assert.equal(table.get(1), 1);
  assert.deepEqual([...table.values()], [1, 2, 3, 4]);
});

Deno.test("lupa: js.enumerate yields (index, item) from 0", () => {
  using lua = new LuaRuntime();
  const luaCopy = fn(lua.eval(`
    function(L)
      local t = {}
      for index, item in js.enumerate(L) do
        t[ index+1 ] = item
      end
      return t
    end`));
  const table = tbl(luaCopy([1, 2, 3, 4]));
  assert.equal(table.length, 4);
  assert.equal(table.get(1), 1);
  assert.deepEqual([...table.values()], [1, 2, 3, 4]);
});

Deno.test("lupa: js.iterex explodes [key, value] pairs of Map entries", () => {
  using lua = new LuaRuntime();
  const luaCopy = fn(lua.eval(`
    function(d)
      local t = {}
      for key, value in js.iterex(d:entries()) do
        t[key] = value
      end
      return t
    end`));
  const d = new Map([["a", 1], ["b", 2], ["c", 3]]);
  const table = tbl(luaCopy(asAttrGetter(d)));
  assert.equal(table.get("b"), 2);
  assert.equal(table.get("a"), 1);
});

Deno.test("js.iterex over a plain object yields its own [key, value] pairs", () => {
  using lua = new LuaRuntime();
  const t = tbl(
    lua.execute("local t = {} for k, v in js.iterex(...) do t[k] = v end return t", { x: 1, y: 2 }),
  );
  assert.deepEqual(new Map(t.entries()), new Map([["x", 1], ["y", 2]]));
});

Deno.test("js.iter works on Sets, Maps (entries) and generators", () => {
  using lua = new LuaRuntime();
  const count = fn(lua.eval("function(o) local n = 0 for _ in js.iter(o) do n = n + 1 end return n end"));
  assert.equal(count(new Set([1, 2, 3])), 3);
  assert.equal(count(new Map([[1, 1], [2, 2]])), 2);
  function* gen() {
    yield 1;
    yield 2;
  }
  assert.equal(count(gen()), 2);
});

Deno.test("an iteration over a JS object goes on through full collections in its loop", () => {
  using lua = new LuaRuntime();
  // the loop holds only the iterator function: the iterator's proxy must live as long as it does
  const sum = lua.execute(
    `
    local s = 0
    for _, v in js.iterex(...) do collectgarbage() collectgarbage() s = s + v end
    for v in js.iter((select(2, ...))) do collectgarbage() s = s + v end
    return s
  `,
    { a: 1, b: 2, c: 3 },
    [10, 20, 30],
  );
  assert.equal(sum, 66);
});

Deno.test("js.iter stops when the JS iterator throws, with that exception", () => {
  using lua = new LuaRuntime();
  const boom = new Error("iterator failed");
  function* failing() {
    yield 1;
    throw boom;
  }
  const f = fn(lua.eval("function(o) for _ in js.iter(o) do end end"));
  assert.throws(() => f(failing()), (e: unknown) => e === boom);
  assertUsable(lua);
});

Deno.test("lupa: js.none is a non-nil placeholder equal only to itself", () => {
  using lua = new LuaRuntime();
  assert.equal(lua.eval("js.none == js.none"), true);
  assert.equal(lua.eval("js.none == nil"), false);
  assert.equal(lua.eval("type(js.none)"), "userdata");
});

Deno.test("lupa: js.as_itemgetter makes indexing read items", () => {
  using lua = new LuaRuntime();
  const obj = { get: "item value" };
  assert.equal(lua.eval("js.as_itemgetter(...)['get']", obj), "item value");
  const m = new Map([["size", "item size"]]);
  assert.equal(lua.eval("js.as_itemgetter(...).size", m), "item size");
});

Deno.test("lupa: js.as_attrgetter makes indexing read properties of a Map", () => {
  using lua = new LuaRuntime();
  const m = new Map([["size", "item size"]]);
  assert.equal(lua.eval("(...).size", m), "item size");
  assert.equal(lua.eval("js.as_attrgetter(...).size", m), 1);
});

Deno.test("lupa: asAttrGetter / asItemGetter from JS choose the protocol", () => {
  using lua = new LuaRuntime();
  const m = new Map<string, unknown>([["has", "item"]]);
  const read = fn(lua.eval("function(o) return o.has end"));
  assert.equal(read(m), "item");
  assert.equal(read(asItemGetter(m)), "item");
  const has = fn(read(asAttrGetter(m)));
  assert.equal(has("has"), true);
  assert.equal(has("nope"), false);
});

Deno.test("asAttrGetter / asItemGetter unwrap to the original object", () => {
  using lua = new LuaRuntime();
  const obj = { a: 1 };
  const id = fn(lua.eval("function(x) return x end"));
  assert.equal(id(asAttrGetter(obj)), obj);
  assert.equal(id(asItemGetter(obj)), obj);
  assert.equal(lua.eval("js.as_attrgetter(...)", obj), obj);
});

Deno.test("asAttrGetter / asItemGetter refuse primitives with a TypeError", () => {
  assert.throws(() => asAttrGetter(1 as unknown as object), TypeError);
  assert.throws(() => asItemGetter("s" as unknown as object), TypeError);
});

Deno.test("lupa: js.as_function turns a JS callable into a Lua function", () => {
  using lua = new LuaRuntime();
  const f = fn(lua.eval("function(g) return js.as_function(g) end"));
  const wrapped = f((a: number, b: number) => a * b);
  assert.equal(luaType(wrapped), "function");
  assert.equal(fn(wrapped)(6, 7), 42);
});

Deno.test("lupa: js.eval is absent unless registerEval", () => {
  using lua = new LuaRuntime();
  assert.equal(lua.eval("js.eval"), undefined);
  using withEval = new LuaRuntime({ registerEval: true });
  assert.equal(withEval.eval("js.eval(' 2 ** 2 ')"), 4);
  assert.equal(withEval.eval("js.eval('[1, 2, 3].length')"), 3);
});

Deno.test("lupa: js.global is absent unless registerGlobal", () => {
  using lua = new LuaRuntime();
  assert.equal(lua.eval("js.global"), undefined);
  using withGlobal = new LuaRuntime({ registerGlobal: true });
  assert.equal(withGlobal.eval("js.global"), globalThis);
  assert.equal(withGlobal.eval("js.global.String(4)"), "4");
  assert.equal(withGlobal.eval("js.global.Math:max(3, 9)"), 9);
});

Deno.test("js.iter over a Lua value (not a JS object) is a TypeError", () => {
  using lua = new LuaRuntime();
  assert.throws(() => lua.eval("js.iter({})()"), TypeError);
  assert.throws(() => lua.eval("js.iter('abc')"), TypeError);
  assertUsable(lua);
});
