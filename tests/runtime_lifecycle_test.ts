import assert from "node:assert/strict";
import { LuaCoroutine, LuaFunction, LuaLibraryError, LuaRuntime, LuaStateError } from "../mod.ts";
import { IMPLEMENTATION, luaFn, VERSION } from "./helpers.ts";

Deno.test("lupa: luaVersion and luaImplementation describe the loaded Lua", () => {
  using lua = new LuaRuntime();
  assert.equal(lua.luaVersion, VERSION);
  assert.match(lua.luaVersion, /^5\.[1-4]$/);
  assert.equal(lua.luaImplementation, IMPLEMENTATION);
  assert.match(lua.luaImplementation, /^(Lua 5\.\d(\.\d+)?|LuaJIT 2\.\d)/);
  if (!IMPLEMENTATION.startsWith("LuaJIT")) assert.equal(lua.eval("_VERSION"), `Lua ${VERSION}`);
});

Deno.test("close() is idempotent and [Symbol.dispose] closes", () => {
  const lua = new LuaRuntime();
  lua.close();
  lua.close();
  lua[Symbol.dispose]();
  const other = new LuaRuntime();
  {
    using scoped = other;
    assert.equal(scoped.eval("1"), 1);
  }
  assert.throws(() => other.eval("1"), LuaStateError);
});

Deno.test("every method throws LuaStateError after close()", () => {
  const lua = new LuaRuntime();
  lua.close();
  assert.throws(() => lua.eval("1"), LuaStateError);
  assert.throws(() => lua.execute("return 1"), LuaStateError);
  assert.throws(() => lua.compile("return 1"), LuaStateError);
  assert.throws(() => lua.require("string"), LuaStateError);
  assert.throws(() => lua.globals(), LuaStateError);
  assert.throws(() => lua.table(1), LuaStateError);
  assert.throws(() => lua.tableFrom([1]), LuaStateError);
  assert.throws(() => lua.memoryUsed(), LuaStateError);
  assert.throws(() => lua.setMaxMemory(1), LuaStateError);
  assert.throws(() => lua.gc(), LuaStateError);
  assert.throws(() => lua.eval("1"), /closed/);
});

Deno.test("handles throw LuaStateError after their runtime closed", () => {
  const lua = new LuaRuntime();
  const t = lua.table(1, 2);
  const f = luaFn(lua.eval("function() return 1 end"));
  const gen = luaFn(lua.eval("function() coroutine.yield(1) end")).coroutine();
  const entries = t.entries();
  lua.close();
  assert.throws(() => t.get(1), LuaStateError);
  assert.throws(() => t.set(1, 2), LuaStateError);
  assert.throws(() => t.length, LuaStateError);
  assert.throws(() => [...t.keys()], LuaStateError);
  assert.throws(() => entries.next(), LuaStateError);
  assert.throws(() => f(), LuaStateError);
  assert.throws(() => f.coroutine(), LuaStateError);
  assert.throws(() => gen.send(), LuaStateError);
  assert.throws(() => gen.status, LuaStateError);
});

Deno.test("a LuaTable from runtime A passed to runtime B is a LuaStateError", () => {
  using a = new LuaRuntime();
  using b = new LuaRuntime();
  const t = a.table(1);
  assert.throws(() => b.eval("...", t), LuaStateError);
  assert.throws(() => b.globals().set("x", t), LuaStateError);
  assert.throws(() => b.globals().set(t, 1), LuaStateError);
  assert.throws(() => b.tableFrom([t]), LuaStateError);
  assert.equal(a.eval("(...)[1]", t), 1);
  // tableFrom(t) reads t as a mapping: its plain contents are copied, never the table itself
  const copy = b.tableFrom(t);
  assert.equal(copy.get(1), 1);
  assert.equal(b.eval("(...)[1]", copy), 1);
  assert.throws(() => b.tableFrom(a.tableFrom({ inner: a.table() })), LuaStateError);
});

Deno.test("a handle of a closed runtime passed to a live one is a LuaStateError", () => {
  const a = new LuaRuntime();
  const t = a.table(1);
  a.close();
  using b = new LuaRuntime();
  assert.throws(() => b.eval("...", t), LuaStateError);
});

Deno.test("handles are instances of their classes", () => {
  using lua = new LuaRuntime();
  const f = lua.eval("function() end");
  assert.ok(f instanceof LuaFunction);
  assert.equal(typeof f, "function");
  const gen = luaFn(f).coroutine();
  assert.ok(gen instanceof LuaCoroutine);
});

Deno.test("an unknown library path is a LuaLibraryError naming it", () => {
  assert.throws(
    () => new LuaRuntime({ library: "/nonexistent/liblua-none.so" }),
    (e: unknown) => e instanceof LuaLibraryError && /liblua-none/.test(e.message),
  );
});

Deno.test("many runtimes at once stay independent", () => {
  const runtimes = Array.from({ length: 50 }, (_, i) => {
    const lua = new LuaRuntime();
    lua.globals().set("id", i);
    return lua;
  });
  try {
    runtimes.forEach((lua, i) => assert.equal(lua.eval("id"), i));
  } finally {
    for (const lua of runtimes) lua.close();
  }
});

Deno.test("handles dropped by JS are released without harming the runtime", async () => {
  using lua = new LuaRuntime();
  for (let i = 0; i < 5000; i++) lua.table(i);
  // give FinalizationRegistry a chance, then keep using the state
  await new Promise((r) => setTimeout(r, 10));
  lua.gc();
  assert.equal(lua.eval("1 + 1"), 2);
  assert.equal(lua.table(7).get(1), 7);
});
