import assert from "node:assert/strict";
import { type LuaCoroutine, LuaError, LuaRuntime, luaType } from "../mod.ts";
import { assertUsable, co, fn, luaFn, sorted, tbl, VERSION } from "./helpers.ts";

const PARITY = `
  function(N)
    for i=0,N do
      coroutine.yield( i%2 )
    end
  end`;

Deno.test("lupa: f.coroutine(4) iterates like a generator", () => {
  using lua = new LuaRuntime();
  const f = luaFn(lua.eval(PARITY));
  const gen = f.coroutine(4);
  assert.deepEqual([...gen].entries().toArray(), [[0, 0], [1, 1], [2, 0], [3, 1], [4, 0]]);
});

Deno.test("lupa: a coroutine works with for..of", () => {
  using lua = new LuaRuntime();
  const f = luaFn(lua.eval(PARITY));
  const seen: unknown[] = [];
  for (const v of f.coroutine(2)) seen.push(v);
  assert.deepEqual(seen, [0, 1, 0]);
});

Deno.test("lupa: values are sent into a coroutine with send()", () => {
  using lua = new LuaRuntime();
  const f = luaFn(lua.eval(`
    function()
      local t,i = {},0
      local value = coroutine.yield()
      while value do
        t[i] = value
        i = i + 1
        value = coroutine.yield()
      end
      return t
    end`));
  const gen = f.coroutine();
  assert.equal(gen.send(undefined), undefined);
  for (let i = 0; i < 3; i++) gen.send(i * 2);
  const mapping = tbl(gen.send(undefined));
  assert.deepEqual(sorted(mapping.entries()), [[0, 0], [1, 2], [2, 4]]);
  assert.equal(gen.status, "dead");
});

Deno.test("lupa: coroutines created in Lua come back to JS (running, fresh, plain function)", () => {
  using lua = new LuaRuntime();
  const [f, co1, co2, status, firstResult] = lua.execute(`
    function f(N)
      for i=0,N do
        coroutine.yield( i%2 )
      end
    end ;
    co1 = coroutine.create(f) ;
    co2 = coroutine.create(f) ;

    status, first_result = coroutine.resume(co2, 2) ;   -- starting!

    return f, co1, co2, status, first_result
  `) as unknown[];
  assert.equal(status, true);
  assert.equal(firstResult, 0);
  // a running coroutine
  const luaGen = co(co2);
  assert.equal(luaType(luaGen), "thread");
  assert.deepEqual([...luaGen], [1, 0]);
  assert.deepEqual([...luaGen], []);
  // an uninitialised coroutine, called with its arguments
  const gen4 = co(co1)(4);
  assert.deepEqual([...gen4].entries().toArray(), [[0, 0], [1, 1], [2, 0], [3, 1], [4, 0]]);
  const gen2 = co(co1)(2);
  assert.deepEqual([...gen2].entries().toArray(), [[0, 0], [1, 1], [2, 0]]);
  // a plain function
  assert.deepEqual([...luaFn(f).coroutine(4)], [0, 1, 0, 1, 0]);
});

Deno.test("lupa: status goes suspended -> running -> suspended -> dead", () => {
  using lua = new LuaRuntime();
  let inside: string | undefined;
  const holder: { gen?: LuaCoroutine } = {};
  lua.globals().set("probe", () => {
    inside = holder.gen!.status;
  });
  const gen = holder.gen = luaFn(lua.eval("function() probe() coroutine.yield(1) end")).coroutine();
  assert.equal(gen.status, "suspended");
  assert.equal(gen.send(), 1);
  assert.equal(inside, "running");
  assert.equal(gen.status, "suspended");
  assert.equal(gen.next().done, true);
  assert.equal(gen.status, "dead");
});

Deno.test("the status of a coroutine that resumed another is 'normal'", () => {
  using lua = new LuaRuntime();
  const outer = co(lua.execute(`
    outer = coroutine.create(function()
      local inner = coroutine.create(function() coroutine.yield(coroutine.status(outer)) end)
      local _, s = coroutine.resume(inner)
      coroutine.yield(s)
    end)
    return outer`));
  assert.equal(outer.send(), "normal");
});

Deno.test("lupa: the coroutine's return value is what the last send() gives", () => {
  using lua = new LuaRuntime();
  const gen = luaFn(lua.eval("function(a) local b = coroutine.yield(a + 1) return a + b end")).coroutine(10);
  assert.equal(gen.send(), 11);
  assert.equal(gen.send(5), 15);
  assert.equal(gen.status, "dead");
});

Deno.test("the iterator result carries the return value with done: true", () => {
  using lua = new LuaRuntime();
  const gen = luaFn(lua.eval("function() coroutine.yield('y') return 'r' end")).coroutine();
  assert.deepEqual(gen.next(), { value: "y", done: false });
  assert.deepEqual(gen.next(), { value: "r", done: true });
  assert.deepEqual(gen.next(), { value: undefined, done: true });
});

Deno.test("lupa: several yielded values come back as an array", () => {
  using lua = new LuaRuntime();
  const gen = luaFn(lua.eval("function() coroutine.yield(1, 2) coroutine.yield() end")).coroutine();
  assert.deepEqual(gen.send(), [1, 2]);
  assert.equal(gen.send(), undefined);
});

Deno.test("sending to a dead coroutine is a LuaError", () => {
  using lua = new LuaRuntime();
  const gen = luaFn(lua.eval("function() end")).coroutine();
  gen.send();
  assert.throws(() => gen.send(), LuaError);
  assertUsable(lua);
});

Deno.test("lupa: an error inside a coroutine is a LuaError with its traceback, then dead", () => {
  using lua = new LuaRuntime();
  const gen = luaFn(lua.eval("function() coroutine.yield(1) error('inside') end")).coroutine();
  assert.equal(gen.send(), 1);
  assert.throws(
    () => gen.send(),
    (e: unknown) => e instanceof LuaError && /inside/.test(e.message) && /traceback/.test(e.message),
  );
  assert.equal(gen.status, "dead");
  assert.deepEqual([...gen], []);
  assertUsable(lua);
});

Deno.test("an error thrown by a JS callback inside a coroutine reaches JS as itself", () => {
  using lua = new LuaRuntime();
  const boom = new RangeError("from js");
  lua.globals().set("fail", () => {
    throw boom;
  });
  const gen = luaFn(lua.eval("function() coroutine.yield(1) fail() end")).coroutine();
  assert.equal(gen.send(), 1);
  assert.throws(() => gen.send(), (e: unknown) => e === boom);
  assert.equal(gen.status, "dead");
  assertUsable(lua);
});

Deno.test("calling a coroutine object gives a fresh coroutine each time (lupa's co(4))", () => {
  using lua = new LuaRuntime();
  const f = luaFn(lua.eval("function(a, b) coroutine.yield(a) coroutine.yield(b) end"));
  const base = f.coroutine();
  const g1 = base(1, 2);
  const g2 = base(3, 4);
  assert.deepEqual([...g1], [1, 2]);
  assert.deepEqual([...g2], [3, 4]);
  assert.equal(base.status, "suspended");
});

Deno.test("a JS callback inside a coroutine can yield values through Lua", () => {
  using lua = new LuaRuntime();
  lua.globals().set("double", (n: number) => n * 2);
  const gen = luaFn(lua.eval("function(n) for i = 1, n do coroutine.yield(double(i)) end end")).coroutine(3);
  assert.deepEqual([...gen], [2, 4, 6]);
});

Deno.test("coroutine.wrap from Lua is a plain Lua function in JS", () => {
  using lua = new LuaRuntime();
  const next = fn(lua.eval("coroutine.wrap(function() coroutine.yield(1) coroutine.yield(2) end)"));
  assert.equal(next(), 1);
  assert.equal(next(), 2);
});

Deno.test("many coroutines can be created and finished", () => {
  using lua = new LuaRuntime();
  const f = luaFn(lua.eval("function(n) coroutine.yield(n) return n * 2 end"));
  let total = 0;
  for (let i = 0; i < 2000; i++) {
    const g = f.coroutine(i);
    total += g.send() as number;
    total += g.send() as number;
  }
  assert.equal(total, 3 * (1999 * 2000) / 2);
  lua.gc();
  assertUsable(lua);
});

Deno.test({
  name: "a coroutine yielding across a JS callback fails cleanly" +
    (VERSION === "5.1" ? " [5.1: 'attempt to yield across metamethod/C-call boundary']" : ""),
  fn() {
    using lua = new LuaRuntime();
    // The callback calls back into Lua, which tries to yield: the JS frame is in the way.
    lua.globals().set("viaJs", (f: () => unknown) => f());
    const gen = luaFn(lua.eval("function() viaJs(function() coroutine.yield(1) end) end")).coroutine();
    assert.throws(() => gen.send(), LuaError);
    assertUsable(lua);
  },
});

Deno.test("calling a coroutine that has started is a LuaError", () => {
  using lua = new LuaRuntime();
  const gen = luaFn(lua.eval("function() coroutine.yield(1) end")).coroutine();
  gen.send();
  assert.throws(() => gen(1), LuaError);
  assert.equal(gen.status, "suspended");
  assertUsable(lua);
});
