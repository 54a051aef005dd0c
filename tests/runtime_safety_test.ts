/**
 * Hostile cases: each must end in a catchable JS error (never a crash of the process) and leave
 * the runtime usable.
 */
import assert from "node:assert/strict";
import {
  type LuaCoroutine,
  LuaError,
  LuaMemoryError,
  LuaRuntime,
  LuaStateError,
  LuaSyntaxError,
} from "../mod.ts";
import { assertUsable, CAPPED, fn, IMPLEMENTATION, luaFn, VERSION } from "./helpers.ts";

const NO_CAP = !CAPPED;
const CAP_SKIP = NO_CAP ? ` [skipped: ${IMPLEMENTATION} refuses custom allocators, no memory cap]` : "";
const TEN_MB = "0123456789".repeat(1 << 20);

/** A Lua snippet making a value whose finalizer calls `callback` (tables in 5.2+, newproxy in 5.1). */
const GC_OBJECT = VERSION === "5.1"
  ? "local function with_gc(f) local p = newproxy(true) getmetatable(p).__gc = f return p end"
  : "local function with_gc(f) return setmetatable({}, { __gc = f }) end";

Deno.test({
  name: "safety: a 10 MB string argument over the memory cap is a LuaMemoryError, runtime usable" + CAP_SKIP,
  ignore: NO_CAP,
  fn() {
    using lua = new LuaRuntime({ maxMemory: 1 << 20 });
    assert.throws(() => lua.eval("#...", TEN_MB), LuaMemoryError);
    assertUsable(lua);
    assert.throws(() => fn(lua.eval("function(s) return #s end"))(TEN_MB), LuaMemoryError);
    assertUsable(lua);
    assert.throws(() => lua.globals().set("s", TEN_MB), LuaMemoryError);
    assert.equal(lua.eval("s"), undefined);
    assertUsable(lua);
    assert.throws(() => lua.table(TEN_MB), LuaMemoryError);
    assertUsable(lua);
  },
});

Deno.test({
  name: "safety: a 10 MB string returned by a callback over the cap is a LuaMemoryError, runtime usable" +
    CAP_SKIP,
  ignore: NO_CAP,
  fn() {
    using lua = new LuaRuntime({ maxMemory: 1 << 20 });
    lua.globals().set("produce", () => TEN_MB);
    assert.throws(() => lua.eval("#produce()"), LuaMemoryError);
    assertUsable(lua);
    // Lua itself can catch it and go on
    assert.deepEqual(lua.execute("local ok, e = pcall(produce) return ok, tostring(e)"), [
      false,
      "not enough memory",
    ]);
    assertUsable(lua);
  },
});

Deno.test({
  name: "safety: tableFrom of a 100,000-element array over the cap is a LuaMemoryError, runtime usable" +
    CAP_SKIP,
  ignore: NO_CAP,
  fn() {
    using lua = new LuaRuntime({ maxMemory: 256 * 1024 });
    const big = Array.from({ length: 100_000 }, (_, i) => i);
    assert.throws(() => lua.tableFrom(big), LuaMemoryError);
    assertUsable(lua);
    assert.throws(() => lua.tableFrom({ items: big }, { recursive: true }), LuaMemoryError);
    assertUsable(lua);
    // within the cap it works
    lua.setMaxMemory(64 << 20);
    assert.equal(lua.tableFrom(big).length, 100_000);
  },
});

Deno.test("safety: an erroring __newindex on _G's metatable makes globals().set a LuaError", () => {
  using lua = new LuaRuntime();
  lua.execute("setmetatable(_G, { __newindex = function(_, k) error('no new globals: ' .. k) end })");
  assert.throws(
    () => lua.globals().set("x", 1),
    (e: unknown) => e instanceof LuaError && /no new globals: x/.test(e.message),
  );
  // existing globals are still writable (no __newindex for them)
  lua.globals().set("print", undefined);
  assert.equal(lua.eval("print"), undefined);
  assertUsable(lua);
});

Deno.test("safety: an erroring __index on _G's metatable makes globals().get a LuaError", () => {
  using lua = new LuaRuntime();
  lua.execute("setmetatable(_G, { __index = function(_, k) error('undefined global ' .. k) end })");
  assert.throws(() => lua.globals().get("missing"), LuaError);
  assert.equal(lua.globals().get("string") !== undefined, true);
  assertUsable(lua);
});

Deno.test("safety: an error object whose __tostring errors still gives a LuaError", () => {
  using lua = new LuaRuntime();
  assert.throws(
    () => lua.execute("error(setmetatable({}, { __tostring = function() error('tostring fails') end }))"),
    (e: unknown) => e instanceof LuaError && e.message === "(error object is a table value)",
  );
  assert.throws(
    () => lua.execute("error(setmetatable({}, { __tostring = function() return {} end }))"),
    LuaError,
  );
  assertUsable(lua);
});

Deno.test("safety: a JS error whose toString throws can still be caught and printed by Lua", () => {
  using lua = new LuaRuntime();
  const hostile = {
    toString() {
      throw new Error("toString refuses");
    },
  };
  const f = fn(lua.eval("function(g) local ok, e = pcall(g) return ok, pcall(tostring, e) end"));
  const [ok, tsOk] = f(() => {
    throw hostile;
  }) as unknown[];
  assert.equal(ok, false);
  assert.equal(tsOk, false);
  assertUsable(lua);
});

Deno.test("safety: a callback that throws inside a coroutine", () => {
  using lua = new LuaRuntime();
  const boom = new Error("thrown inside coroutine");
  lua.globals().set("explode", () => {
    throw boom;
  });
  const gen = luaFn(lua.eval("function() coroutine.yield(1) explode() coroutine.yield(2) end")).coroutine();
  assert.equal(gen.send(), 1);
  assert.throws(() => gen.send(), (e: unknown) => e === boom);
  assert.equal(gen.status, "dead");
  // Lua-created coroutine resumed from Lua: the error is a Lua value there
  assert.deepEqual(
    lua.execute(
      "local c = coroutine.create(function() explode() end) local ok, e = coroutine.resume(c) return ok, tostring(e), coroutine.status(c)",
    ),
    [false, "Error: thrown inside coroutine", "dead"],
  );
  assertUsable(lua);
});

Deno.test("safety: Lua -> JS -> Lua recursion until exhaustion is a LuaError", () => {
  using lua = new LuaRuntime();
  lua.globals().set("down", (n: number) => fn(lua.globals().get("lua_down"))(n + 1));
  lua.execute("function lua_down(n) return down(n) end");
  assert.throws(
    () => lua.eval("lua_down(0)"),
    (e: unknown) => e instanceof LuaError && /stack overflow/.test(e.message),
  );
  assertUsable(lua);
  // and again, to check nothing leaked from the first exhaustion
  assert.throws(() => lua.eval("lua_down(0)"), LuaError);
  assertUsable(lua);
});

Deno.test("safety: JS -> Lua -> JS recursion through eval is bounded too", () => {
  using lua = new LuaRuntime();
  const down = (n: number): unknown => lua.eval("down(...)", n + 1);
  lua.globals().set("down", down);
  assert.throws(() => down(0), LuaError);
  assertUsable(lua);
});

Deno.test("safety: unbounded Lua recursion is a LuaError 'stack overflow'", () => {
  using lua = new LuaRuntime();
  assert.throws(
    () => lua.execute("local function f() return 1 + f() end f()"),
    (e: unknown) => e instanceof LuaError && /stack overflow/.test(e.message),
  );
  assertUsable(lua);
  assert.throws(
    () => lua.execute("local function f() return 1 + f() end return coroutine.wrap(f)()"),
    (e: unknown) => e instanceof LuaError && /stack overflow/.test(e.message),
  );
  assertUsable(lua);
});

Deno.test("safety: __gc finalizers that call into JS run at close()", () => {
  const seen: string[] = [];
  const lua = new LuaRuntime();
  lua.globals().set("finalized", (name: string) => seen.push(name));
  lua.globals().set("evalFromGc", () => lua.eval("1"));
  lua.execute(`${GC_OBJECT}
    keep1 = with_gc(function() finalized("a") end)
    keep2 = with_gc(function() finalized("b") end)
    keep3 = with_gc(function() evalFromGc() end) -- calls back into a closing runtime
    keep4 = with_gc(function() error("finalizer error") end)`);
  lua.close();
  assert.deepEqual(seen.sort(), ["a", "b"]);
  assert.throws(() => lua.eval("1"), LuaStateError);
  lua.close();
});

Deno.test("safety: __gc finalizers calling into JS during lua.gc()", () => {
  using lua = new LuaRuntime();
  let count = 0;
  lua.globals().set("finalized", () => count++);
  lua.execute(`${GC_OBJECT}
    for i = 1, 100 do with_gc(function() finalized() end) end`);
  lua.gc();
  lua.gc();
  assert.equal(count, 100);
  // a finalizer that errors (a warning in 5.4, an error in 5.1-5.3) does not break gc()
  lua.execute(`${GC_OBJECT} with_gc(function() error("boom in gc") end)`);
  lua.gc();
  assertUsable(lua);
});

Deno.test("safety: a callback kept only by Lua outlives its JS owner", () => {
  using lua = new LuaRuntime();
  let counter = 0;
  (() => {
    // the only JS reference to this closure is dropped when the IIFE returns
    const install = fn(lua.eval("function(f) saved = f end"));
    install(() => ++counter);
  })();
  lua.gc();
  for (let i = 0; i < 20; i++) lua.execute("local t = {} for i = 1, 1000 do t[i] = {} end");
  lua.gc();
  assert.equal(lua.eval("saved()"), 1);
  assert.equal(lua.eval("saved()"), 2);
  lua.execute("saved = nil");
  lua.gc();
  assertUsable(lua);
});

Deno.test("safety: a Lua function handle dropped by JS stays valid for Lua", () => {
  using lua = new LuaRuntime();
  (() => {
    const f = lua.eval("function() return 'still here' end");
    lua.globals().set("g", f);
  })();
  lua.gc();
  assert.equal(lua.eval("g()"), "still here");
});

Deno.test("safety: a binary chunk is refused by execute/compile with a LuaSyntaxError", () => {
  using lua = new LuaRuntime();
  assert.throws(() => lua.execute("\x1bLua\x54\x00\x19\x93"), LuaSyntaxError);
  assert.throws(() => lua.compile(new Uint8Array([0x1b, 0x4c, 0x75, 0x61, 0x54, 0x00])), LuaSyntaxError);
  assert.throws(
    () => lua.compile(new Uint8Array([0x1b, 0x4c, 0x75, 0x61]), { name: "evil.luac" }),
    (e: unknown) =>
      e instanceof LuaSyntaxError && /^evil\.luac: attempt to load a binary chunk/.test(e.message),
  );
  const dumped = lua.eval("string.dump(function() return 1 end)");
  assert.throws(() => lua.execute(dumped as Uint8Array), LuaSyntaxError);
  assertUsable(lua);
});

Deno.test("safety: load(string.dump(f)) in Lua gives nil and a message", () => {
  using lua = new LuaRuntime();
  const [f, message] = lua.execute("return load(string.dump(function() return 1 end))") as unknown[];
  assert.equal(f, undefined);
  assert.match(String(message), /binary chunk/);
  if (VERSION === "5.1") {
    const [g, m2] = lua.execute("return loadstring(string.dump(function() return 1 end))") as unknown[];
    assert.equal(g, undefined);
    assert.match(String(m2), /binary chunk/);
  } else {
    // an explicit "b" mode does not get around it
    const [g, m2] = lua.execute("return load(string.dump(function() return 1 end), 'x', 'b')") as unknown[];
    assert.equal(g, undefined);
    assert.match(String(m2), /binary chunk/);
  }
  assert.equal(lua.eval("dofile"), undefined);
  assert.equal(lua.eval("loadfile"), undefined);
  // text chunks still load
  assert.equal(lua.eval("load('return 41 + 1')()"), 42);
});

Deno.test("safety: allowBinaryChunks opts in to precompiled chunks", () => {
  using lua = new LuaRuntime({ allowBinaryChunks: true });
  const dumped = lua.eval("string.dump(function() return 'from bytecode' end)") as Uint8Array;
  assert.equal(lua.execute(dumped), "from bytecode");
  const load = VERSION === "5.1" ? "loadstring" : "load";
  assert.equal(lua.eval(`${load}(string.dump(function() return 7 end))()`), 7);
});

Deno.test("safety: close() from inside a callback is refused with a LuaStateError", () => {
  using lua = new LuaRuntime();
  lua.globals().set("closeMe", () => lua.close());
  assert.throws(() => lua.execute("closeMe()"), LuaStateError);
  assert.deepEqual(lua.execute("local ok, e = pcall(closeMe) return ok"), false);
  assertUsable(lua);
  const gen = luaFn(lua.eval("function() closeMe() end")).coroutine();
  assert.throws(() => gen.send(), LuaStateError);
  assertUsable(lua);
});

Deno.test("safety: a JS getter that throws reaches the caller as itself", () => {
  using lua = new LuaRuntime();
  const boom = new Error("getter");
  const obj = {
    get bad() {
      throw boom;
    },
  };
  assert.throws(() => lua.eval("(...).bad", obj), (e: unknown) => e === boom);
  assertUsable(lua);
});

Deno.test("safety: a JS Proxy whose traps all throw is handled", () => {
  using lua = new LuaRuntime();
  const hostile = new Proxy({}, {
    get() {
      throw new Error("get trap");
    },
    set() {
      throw new Error("set trap");
    },
    ownKeys() {
      throw new Error("ownKeys trap");
    },
  });
  assert.throws(() => lua.eval("(...).x", hostile), /get trap/);
  assert.throws(() => lua.execute("(...).x = 1", hostile), /set trap/);
  const loop = VERSION === "5.1" ? "js.iterex(...)" : "pairs(...)"; // 5.1: no __pairs
  assert.throws(() => lua.execute(`for k in ${loop} do end`, hostile), /ownKeys trap/);
  assert.throws(() => lua.eval("tostring(...)", hostile), Error);
  assertUsable(lua);
});

Deno.test("safety: resuming the running coroutine from its own callback is a LuaError", () => {
  using lua = new LuaRuntime();
  const holder: { gen?: LuaCoroutine } = {};
  lua.globals().set("again", () => holder.gen!.send());
  const gen = holder.gen = luaFn(lua.eval("function() again() end")).coroutine();
  assert.throws(() => gen.send(), LuaError);
  assertUsable(lua);
});

Deno.test("safety: a LuaTable of runtime A used with runtime B is a LuaStateError", () => {
  using a = new LuaRuntime();
  using b = new LuaRuntime();
  const t = a.table(1, 2);
  const f = a.eval("function() return 1 end");
  assert.throws(() => b.eval("...", t), LuaStateError);
  assert.throws(() => b.globals().set("t", t), LuaStateError);
  assert.throws(() => b.table(f), LuaStateError);
  assert.throws(() => b.tableFrom([t]), LuaStateError);
  assert.throws(() => fn(b.eval("function(x) return x end"))(f), LuaStateError);
  assertUsable(a);
  assertUsable(b);
});

Deno.test("safety: a very deep recursive tableFrom is a RangeError without harming Lua", () => {
  using lua = new LuaRuntime();
  let node: Record<string, unknown> = {};
  const root = node;
  for (let i = 0; i < 100_000; i++) {
    const next = {};
    node.next = next;
    node = next;
  }
  assert.throws(() => lua.tableFrom(root, { recursive: true }), /nesting deeper than 1000 levels/);
  assertUsable(lua);
  // 900 levels are fine
  let shallow: Record<string, unknown> = { leaf: true };
  for (let i = 0; i < 900; i++) shallow = { next: shallow };
  const t = lua.tableFrom(shallow, { recursive: true });
  assert.equal(lua.eval(`(...)${".next".repeat(900)}.leaf`, t), true);
});

Deno.test("safety: errors in xpcall handlers and nested pcall stay inside Lua", () => {
  using lua = new LuaRuntime();
  const [ok] = lua.execute("return xpcall(error, function() error('handler fails') end)") as unknown[];
  assert.equal(ok, false);
  assertUsable(lua);
});

Deno.test("safety: table.unpack of too many values is a LuaError", () => {
  using lua = new LuaRuntime();
  const unpack = VERSION === "5.1" ? "unpack" : "table.unpack";
  assert.throws(() => lua.eval(`select('#', ${unpack}({}, 1, 1e8))`), LuaError);
  assertUsable(lua);
});

Deno.test("safety: thousands of runtimes opened and closed", () => {
  for (let i = 0; i < 2000; i++) {
    const lua = new LuaRuntime();
    lua.globals().set("cb", () => i);
    assert.equal(lua.eval("cb()"), i);
    lua.close();
  }
});
