import assert from "node:assert/strict";
import {
  asAttrGetter,
  asItemGetter,
  LuaError,
  LuaRuntime,
  LuaTable,
  luaType,
  multipleValues,
  unpacksLuaTable,
} from "../mod.ts";
import { assertUsable, fn, tbl, VERSION } from "./helpers.ts";

Deno.test("lupa: a Lua function calls a JS function: lua_func(py_add1, 2) == 3", () => {
  using lua = new LuaRuntime();
  const luaFunc = fn(lua.eval("function(f, n) return f(n) end"));
  assert.equal(luaFunc((n: number) => n + 1, 2), 3);
});

Deno.test("lupa: func(num, py_func) returns py_func(num): 49", () => {
  using lua = new LuaRuntime();
  const luaFunc = fn(lua.eval("function(num, py_func) return py_func(num) end"));
  assert.equal(luaFunc(48, (n: number) => n + 1), 49);
});

Deno.test("lupa: Lua's type() sees strings, Lua functions, JS functions and JS objects", () => {
  using lua = new LuaRuntime();
  const type = fn(lua.globals().get("type"));
  assert.equal(type("abc"), "string");
  assert.equal(type(type), "function");
  assert.equal(type(Math.max), "userdata");
  assert.equal(type([]), "userdata");
  assert.equal(type({}), "userdata");
  assert.equal(type(new Map()), "userdata");
});

Deno.test("lupa: luaType names Lua objects and gives null for JS values", () => {
  using lua = new LuaRuntime();
  assert.equal(luaType(lua.eval("function() end")), "function");
  assert.equal(luaType(lua.eval("{}")), "table");
  assert.equal(luaType(lua.eval("coroutine.create(function() end)")), "thread");
  assert.equal(luaType(lua.eval("io.stdout")), "userdata");
  assert.equal(luaType(123), null);
  assert.equal(luaType("abc"), null);
  assert.equal(luaType({}), null);
  assert.equal(luaType(() => 1), null);
  assert.equal(luaType(null), null);
});

Deno.test("lupa: several Lua results come back as an array", () => {
  using lua = new LuaRuntime();
  assert.deepEqual(lua.eval("1, 'two', true"), [1, "two", true]);
  assert.deepEqual(fn(lua.eval("function() return 1, 2 end"))(), [1, 2]);
});

Deno.test("lupa: varargs reach Lua as ... and select('#')", () => {
  using lua = new LuaRuntime();
  assert.equal(lua.eval("select('#', ...)", 1, 2, 3), 3);
  assert.deepEqual(lua.eval("...", "a", "b"), ["a", "b"]);
  const sum = fn(
    lua.eval("function(...) local s = 0 for _, v in ipairs({...}) do s = s + v end return s end"),
  );
  assert.equal(sum(1, 2, 3, 4), 10);
});

Deno.test("lupa: a JS function receives every argument Lua passes", () => {
  using lua = new LuaRuntime();
  const seen: unknown[][] = [];
  lua.globals().set("record", (...args: unknown[]) => {
    seen.push(args);
  });
  lua.execute("record() record(1) record(1, 'x', true)");
  assert.deepEqual(seen, [[], [1], [1, "x", true]]);
});

Deno.test("lupa: obj:method() calls a JS method with this bound to obj", () => {
  using lua = new LuaRuntime();
  class MyClass {
    value = 345;
    myMethod() {
      return this.value;
    }
  }
  const luaFunc = fn(lua.eval("function(obj) return obj:myMethod() end"));
  assert.equal(luaFunc(new MyClass()), 345);
});

Deno.test("lupa: obj.method() also binds this, and extra args pass through", () => {
  using lua = new LuaRuntime();
  const obj = {
    base: 10,
    add(n: number) {
      return this.base + n;
    },
  };
  assert.equal(lua.eval("(...).add(5)", obj), 15);
  assert.equal(lua.eval("(...):add(5)", obj), 15);
});

Deno.test("lupa: JS functions receive Lua tables as LuaTable", () => {
  using lua = new LuaRuntime();
  let got: unknown;
  const f = fn(lua.eval("function(g) return g({1, 2, x = 'y'}) end"));
  const r = f((t: LuaTable) => {
    got = t;
    return t.get("x");
  });
  assert.ok(got instanceof LuaTable);
  assert.equal(r, "y");
  assert.equal(tbl(got).get(2), 2);
});

Deno.test("lupa: a JS object passed through Lua comes back as the identical object", () => {
  using lua = new LuaRuntime();
  const obj = { a: 1 };
  const arr = [1, 2];
  const f = () => 1;
  const m = new Map();
  const id = fn(lua.eval("function(...) return ... end"));
  assert.equal(id(obj), obj);
  assert.equal(id(arr), arr);
  assert.equal(id(f), f);
  assert.equal(id(m), m);
  assert.equal(lua.eval("rawequal(...)", obj, obj), true);
});

Deno.test("lupa: a Lua function passed back into Lua is unwrapped", () => {
  using lua = new LuaRuntime();
  const type = fn(lua.globals().get("type"));
  assert.equal(lua.eval("rawequal(..., type)", type), true);
});

Deno.test("lupa: unpacks_lua_table: f{a=a, b=b}", () => {
  using lua = new LuaRuntime();
  const add = unpacksLuaTable((a: number, b: number) => a + b);
  const luaFunc = fn(lua.eval("function(a, b, py_func) return py_func{a=a, b=b} end"));
  assert.equal(luaFunc(5, 6, add), 11);
});

Deno.test("lupa: unpacks_lua_table: f{a, b=b}", () => {
  using lua = new LuaRuntime();
  const add = unpacksLuaTable((a: number, b: number) => a + b);
  const luaFunc = fn(lua.eval("function(a, b, py_func) return py_func{a, b=b} end"));
  assert.equal(luaFunc(5, 6, add), 11);
});

Deno.test("lupa: unpacks_lua_table: f{a, b} and plain f(a, b)", () => {
  using lua = new LuaRuntime();
  function add(a: number, b: number) {
    return a + b;
  }
  const wrapped = unpacksLuaTable(add);
  assert.equal(fn(lua.eval("function(a, b, f) return f{a, b} end"))(5, 6, wrapped), 11);
  assert.equal(fn(lua.eval("function(a, b, f) return f(a, b) end"))(5, 6, wrapped), 11);
});

Deno.test("unpacksLuaTable: an unknown keyword is a TypeError that reaches JS", () => {
  using lua = new LuaRuntime();
  const add = unpacksLuaTable((a: number, b: number) => a + b);
  const f = fn(lua.eval("function(f) return f{a = 1, c = 2} end"));
  assert.throws(() => f(add), TypeError);
  assertUsable(lua);
});

Deno.test("without unpacksLuaTable a table argument stays a table", () => {
  using lua = new LuaRuntime();
  const f = fn(lua.eval("function(g) return g{a = 1} end"));
  assert.equal(f((t: unknown) => t instanceof LuaTable), true);
});

Deno.test("lupa: a JS function's own properties are readable from Lua (py_func.ATTR)", () => {
  using lua = new LuaRuntime();
  const pyFunc = Object.assign(() => undefined, { ATTR: 2 });
  assert.equal(fn(lua.eval("function(obj) return obj.ATTR end"))(pyFunc), 2);
  assert.equal(fn(lua.eval("function(obj) return js.as_attrgetter(obj).ATTR end"))(pyFunc), 2);
  assert.equal(fn(lua.eval("function(obj) return js.as_attrgetter(obj)['ATTR'] end"))(pyFunc), 2);
});

Deno.test("lupa: obj['get'] on a Map reads the item by default and with asItemGetter", () => {
  using lua = new LuaRuntime();
  const luaFunc = fn(lua.eval("function(obj) return obj['get'] end"));
  const d = new Map([["get", "value"]]);
  assert.equal(luaFunc(d), "value");
  assert.equal(luaFunc(asItemGetter(d)), "value");
});

Deno.test("lupa: obj['get'] with asAttrGetter gives the bound method, callable from JS", () => {
  using lua = new LuaRuntime();
  const luaFunc = fn(lua.eval("function(obj) return obj['get'] end"));
  const d = new Map([["get", "value"]]);
  const dictGet = fn(luaFunc(asAttrGetter(d)));
  assert.equal(dictGet("get"), "value");
  assert.equal(dictGet("get"), d.get("get"));
});

Deno.test("lupa: js.as_attrgetter(obj)['get'] from inside Lua", () => {
  using lua = new LuaRuntime();
  const luaFunc = fn(lua.eval("function(obj) return js.as_attrgetter(obj)['get'] end"));
  const d = new Map([["get", "value"]]);
  const dictGet = fn(luaFunc(d));
  assert.equal(dictGet("get"), "value");
  assert.equal(lua.eval("js.as_attrgetter(...).get('get')", d), "value");
  assert.equal(lua.eval("js.as_attrgetter(...):get('get')", d), "value");
  assert.equal(lua.eval("js.as_attrgetter(...).size", d), 1);
});

Deno.test("arrays are indexed from 0 like in JS, # is their length", () => {
  using lua = new LuaRuntime();
  const arr = ["a", "b", "c"];
  assert.equal(lua.eval("(...)[0]", arr), "a");
  assert.equal(lua.eval("#...", arr), 3);
  lua.eval("rawequal((function(a) a[3] = 'd' end)(...), nil)", arr);
  assert.deepEqual(arr, ["a", "b", "c", "d"]);
});

Deno.test("Lua sets properties of JS objects and items of Maps", () => {
  using lua = new LuaRuntime();
  const obj: Record<string, unknown> = {};
  const m = new Map<unknown, unknown>();
  lua.execute("local o, m = ... o.x = 1 o.name = 'n' m.key = 'v' m[1] = true", obj, m);
  assert.deepEqual(obj, { x: 1, name: "n" });
  assert.deepEqual([...m], [["key", "v"], [1, true]]);
});

Deno.test("a JS callback returns several values with multipleValues()", () => {
  using lua = new LuaRuntime();
  const f = fn(lua.eval("function(g) local a, b, c = g() return c, b, a end"));
  assert.deepEqual(f(() => multipleValues(1, "two", 3)), [3, "two", 1]);
});

Deno.test("lupa: a JS array returned to Lua is not exploded (unpack_returned_tuples=False)", () => {
  using lua = new LuaRuntime();
  lua.globals().set("pair", () => [1, 2]);
  lua.execute("a, b, c = pair()");
  const g = lua.globals();
  assert.deepEqual(g.get("a"), [1, 2]);
  assert.equal(g.get("b"), undefined);
  assert.equal(g.get("c"), undefined);
});

Deno.test("calling a JS object that is not a function fails with a TypeError", () => {
  using lua = new LuaRuntime();
  assert.throws(() => lua.eval("(...)()", { a: 1 }), TypeError);
  assertUsable(lua);
});

Deno.test("js.as_function wraps a callable into a real Lua function", () => {
  using lua = new LuaRuntime();
  const f = fn(lua.eval("function(g) local h = js.as_function(g) return type(h), h(20) end"));
  assert.deepEqual(f((n: number) => n + 1), ["function", 21]);
});

Deno.test("a Lua function can be called many times and with many arguments", () => {
  using lua = new LuaRuntime();
  const add = fn(lua.eval("function(a, b) return a + b end"));
  let total = 0;
  for (let i = 0; i < 10_000; i++) total += add(i, 1) as number;
  assert.equal(total, 50_005_000);
  const count = fn(lua.eval("function(...) return select('#', ...) end"));
  assert.equal(count(...Array.from({ length: 500 }, (_, i) => i)), 500);
});

Deno.test("lua.compile names the chunk and runs later with arguments", () => {
  using lua = new LuaRuntime();
  const chunk = lua.compile("local a, b = ... return a * b", { name: "mul.lua" });
  assert.equal(luaType(chunk), "function");
  assert.equal(chunk(6, 7), 42);
  assert.equal(chunk(2, 3), 6);
});

Deno.test("lupa: lua.require returns a standard module", () => {
  using lua = new LuaRuntime();
  const string = tbl(lua.require("string"));
  assert.equal(fn(string.get("upper"))("abc"), "ABC");
  assert.throws(() => lua.require("no.such.module"), LuaError);
});

Deno.test("execute runs a chunk with args and returns what it returns", () => {
  using lua = new LuaRuntime();
  assert.deepEqual(lua.execute("local a, b = ... return a + b, a * b", 2, 3), [5, 6]);
  assert.equal(lua.execute("x = 5"), undefined);
  assert.equal(lua.eval("x"), 5);
});

Deno.test("execute accepts source as a Uint8Array", () => {
  using lua = new LuaRuntime();
  assert.equal(lua.execute(new TextEncoder().encode("return 'from bytes'")), "from bytes");
});

Deno.test("non-string code is a TypeError", () => {
  using lua = new LuaRuntime();
  assert.throws(() => lua.eval(42 as unknown as string), TypeError);
  assert.throws(() => lua.execute({} as unknown as string), TypeError);
  assert.throws(() => lua.compile(null as unknown as string), TypeError);
  assertUsable(lua);
});

Deno.test("tostring of JS values in Lua", () => {
  using lua = new LuaRuntime();
  function named() {}
  assert.equal(lua.eval("tostring(...)", named), "js function named");
  assert.equal(lua.eval("tostring(...)", [1, 2]), "1,2");
  assert.equal(lua.eval("tostring(...)", { toString: () => "custom" }), "custom");
});

Deno.test({
  name: "pairs() over a JS object, array and Map" +
    (VERSION === "5.1" ? " [skipped: Lua 5.1 has no __pairs]" : ""),
  ignore: VERSION === "5.1",
}, () => {
  using lua = new LuaRuntime();
  const collect = fn(lua.eval(`function(o)
    local keys, values = {}, {}
    for k, v in pairs(o) do keys[#keys + 1] = k; values[#values + 1] = v end
    return keys, values
  end`));
  const [k1, v1] = collect({ a: 1, b: 2 }) as LuaTable[];
  assert.deepEqual([...k1.values()], ["a", "b"]);
  assert.deepEqual([...v1.values()], [1, 2]);
  const [k2, v2] = collect(["x", "y"]) as LuaTable[];
  assert.deepEqual([...k2.values()], [0, 1]);
  assert.deepEqual([...v2.values()], ["x", "y"]);
  const [k3, v3] = collect(new Map([["m", 1]])) as LuaTable[];
  assert.deepEqual([...k3.values()], ["m"]);
  assert.deepEqual([...v3.values()], [1]);
});
