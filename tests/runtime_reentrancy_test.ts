import assert from "node:assert/strict";
import { LuaError, LuaRuntime, type LuaTable } from "../mod.ts";
import { assertUsable, fn, luaFn, tbl, VERSION } from "./helpers.ts";

Deno.test("lupa: a JS callback calls lua.eval on the same runtime", () => {
  using lua = new LuaRuntime();
  lua.globals().set("fromJs", (n: number) => lua.eval("... * 10", n));
  assert.equal(lua.eval("fromJs(4) + 2"), 42);
});

Deno.test("a JS callback reads and writes Lua globals and tables while Lua waits", () => {
  using lua = new LuaRuntime();
  lua.globals().set("bump", (t: LuaTable) => {
    t.set("n", (t.get("n") as number) + 1);
    lua.globals().set("seen", t.get("n"));
    return t.length;
  });
  assert.deepEqual(lua.execute("local t = {1, 2, 3, n = 0} local len = bump(t) return t.n, seen, len"), [
    1,
    1,
    3,
  ]);
});

Deno.test("nested re-entry: Lua -> JS -> Lua -> JS -> Lua", () => {
  using lua = new LuaRuntime();
  const g = lua.globals();
  g.set("level1", () => lua.eval("level2() + 1"));
  g.set("level2", () => lua.eval("level3() + 1"));
  g.set("level3", () => lua.eval("40"));
  assert.equal(lua.eval("level1()"), 42);
  assertUsable(lua);
});

Deno.test("a JS callback inside a coroutine calls lua.eval (it runs on the coroutine's thread)", () => {
  using lua = new LuaRuntime();
  lua.globals().set("inner", (me: unknown) => lua.eval("rawequal(coroutine.running(), ...)", me));
  const gen = luaFn(lua.eval(`function()
    local me = coroutine.running()
    coroutine.yield(inner(me))
    coroutine.yield(inner(me))
  end`)).coroutine();
  assert.equal(gen.send(), true);
  assert.equal(gen.send(), true);
  assert.equal(gen.next().done, true);
  assertUsable(lua);
});

Deno.test("a JS callback inside a coroutine calls a Lua function and creates tables", () => {
  using lua = new LuaRuntime();
  const square = fn(lua.eval("function(x) return x * x end"));
  lua.globals().set("work", (n: number) => lua.table(square(n), square(n + 1)));
  const gen = luaFn(
    lua.eval("function() for i = 1, 3 do local t = work(i) coroutine.yield(t[1] + t[2]) end end"),
  )
    .coroutine();
  assert.deepEqual([...gen], [5, 13, 25]);
});

Deno.test("a JS callback inside a coroutine drives another coroutine", () => {
  using lua = new LuaRuntime();
  const counter = luaFn(lua.eval("function() for i = 1, 3 do coroutine.yield(i) end end")).coroutine();
  lua.globals().set("nextCount", () => counter.send());
  const outer = luaFn(lua.eval("function() for _ = 1, 3 do coroutine.yield(nextCount() * 100) end end"))
    .coroutine();
  assert.deepEqual([...outer], [100, 200, 300]);
  assert.equal(counter.status, "suspended");
  counter.send();
  assert.equal(counter.status, "dead");
});

Deno.test("an error in a re-entrant eval propagates through both Lua levels to JS", () => {
  using lua = new LuaRuntime();
  lua.globals().set("failInside", () => lua.eval("error('inner failure')"));
  assert.throws(
    () => lua.eval("failInside()"),
    (e: unknown) => e instanceof LuaError && /inner failure/.test(e.message),
  );
  assertUsable(lua);
});

Deno.test("Lua pcall catches an error raised by a re-entrant eval", () => {
  using lua = new LuaRuntime();
  lua.globals().set("failInside", () => lua.eval("error('inner failure', 0)"));
  const [ok, message] = lua.execute("local ok, e = pcall(failInside) return ok, e.message") as unknown[];
  assert.equal(ok, false);
  assert.match(String(message), /inner failure/);
  assertUsable(lua);
});

Deno.test("table iteration from JS while a callback modifies the table through Lua", () => {
  using lua = new LuaRuntime();
  const t = tbl(lua.eval("{ a = 1, b = 2, c = 3 }"));
  const seen: unknown[] = [];
  for (const [k, v] of t) {
    seen.push(k);
    lua.execute("local t, k = ... t[k] = nil", t, k);
    assert.equal(typeof v, "number");
  }
  assert.equal(seen.length, 3);
  assert.deepEqual([...t.keys()], []);
});

Deno.test("two runtimes calling each other through callbacks", () => {
  using a = new LuaRuntime();
  using b = new LuaRuntime();
  a.globals().set("askB", (x: number) => b.eval("... * 2", x));
  b.globals().set("askA", (x: number) => a.eval("askB(...) + 1", x));
  assert.equal(b.eval("askA(20)"), 41);
  assertUsable(a);
  assertUsable(b);
});

Deno.test({
  name: "a finalizer that compiles new code while Lua parses a chunk leaves that chunk's source intact" +
    (VERSION === "5.4" ? "" : " [skipped: before 5.4 the collector waits while the host holds control]"),
  ignore: VERSION !== "5.4",
  fn() {
    using lua = new LuaRuntime();
    let parsing = false;
    const nested: unknown[] = [];
    lua.globals().set("finalized", (i: number) => {
      if (parsing) nested.push(lua.execute(`return "nested ${i}", ${i} * 3`));
    });
    lua.execute(`
      collectgarbage("incremental", 1, 1000)
      for i = 1, 400 do setmetatable({}, { __gc = function() finalized(i) end }) end`);
    // thousands of new strings, each a step of the collector that may run finalizers
    const items = Array.from({ length: 4000 }, (_, i) => `"item ${i}"`);
    const source = `local t = { ${items.join(", ")} } return #t, t[1], t[4000]`;
    parsing = true;
    let outer;
    try {
      outer = lua.execute(source);
    } finally {
      parsing = false;
    }
    assert.deepEqual(outer, [4000, "item 0", "item 3999"]);
    assert.ok(nested.length > 0, "no finalizer ran while the chunk was parsed");
    for (const result of nested) {
      assert.ok(Array.isArray(result) && /^nested \d+$/.test(result[0] as string));
      assert.equal(result[1], Number((result[0] as string).slice(7)) * 3);
    }
    assertUsable(lua);
  },
});
