/**
 * What differs between the supported Lua versions, as the bridge shows it. Every test runs on every
 * version: it either checks that version's behaviour or says in its name why it is skipped.
 */
import assert from "node:assert/strict";
import { LuaRuntime } from "../mod.ts";
import { CAPPED, HAS_INTEGERS, IMPLEMENTATION, IS_LUAJIT, VERSION } from "./helpers.ts";

Deno.test(`versions: the runtime reports ${IMPLEMENTATION} (language ${VERSION})`, () => {
  using lua = new LuaRuntime();
  assert.equal(lua.luaVersion, VERSION);
  assert.equal(lua.eval("_VERSION"), IS_LUAJIT ? "Lua 5.1" : `Lua ${VERSION}`);
  if (IS_LUAJIT) assert.equal(lua.eval("type(jit)"), "table");
});

Deno.test({
  name: "versions: 5.3+ keeps integers and floats apart" +
    (HAS_INTEGERS ? "" : ` [skipped: ${VERSION} has only floats]`),
  ignore: !HAS_INTEGERS,
  fn() {
    using lua = new LuaRuntime();
    assert.deepEqual(lua.eval("math.type(1), math.type(1.0), math.type(2^53)"), [
      "integer",
      "float",
      "float",
    ]);
    assert.equal(lua.eval("9007199254740993"), 9007199254740993n);
    assert.equal(lua.eval("3 // 2"), 1);
    assert.equal(lua.eval("3.0 // 2"), 1);
  },
});

Deno.test({
  name: "versions: 5.1/LuaJIT numbers are doubles, bigints go in as the nearest double" +
    (HAS_INTEGERS ? ` [skipped: ${VERSION} has integers]` : ""),
  ignore: HAS_INTEGERS,
  fn() {
    using lua = new LuaRuntime();
    assert.equal(lua.eval("2^53 + 1"), 9007199254740992);
    assert.equal(lua.eval("...", 2n ** 53n + 1n), 9007199254740992);
    assert.equal(lua.eval("...", 2n ** 63n - 1n), 2 ** 63);
    assert.throws(() => lua.eval("...", 2n ** 64n), RangeError);
    assert.equal(typeof lua.eval("2^62"), "number");
  },
});

Deno.test({
  name: "versions: the memory cap works" +
    (CAPPED ? "" : ` [skipped: ${IMPLEMENTATION} refuses custom allocators]`),
  ignore: !CAPPED,
  fn() {
    using lua = new LuaRuntime({ maxMemory: 1 << 20 });
    assert.ok(lua.memoryUsed(true) > 0);
    assert.throws(() => lua.eval("#string.rep('x', 8388608)"));
    assert.equal(lua.eval("1 + 1"), 2);
  },
});

Deno.test({
  name: "versions: 5.4 to-be-closed variables run __close, also when a JS callback throws" +
    (VERSION === "5.4" ? "" : ` [skipped: ${VERSION} has no <close>]`),
  ignore: VERSION !== "5.4",
  fn() {
    using lua = new LuaRuntime();
    const closed: string[] = [];
    lua.globals().set("closed", (name: string) => closed.push(name));
    const boom = new Error("from js");
    lua.globals().set("explode", () => {
      throw boom;
    });
    assert.throws(
      () =>
        lua.execute(`
          local guard <close> = setmetatable({}, { __close = function() closed("guard") end })
          explode()`),
      (e: unknown) => e === boom,
    );
    assert.deepEqual(closed, ["guard"]);
  },
});

Deno.test({
  name: "versions: 5.4 coroutine.close on a suspended coroutine from JS-created code" +
    (VERSION === "5.4" ? "" : ` [skipped: ${VERSION} has no coroutine.close]`),
  ignore: VERSION !== "5.4",
  fn() {
    using lua = new LuaRuntime();
    assert.deepEqual(
      lua.execute(`local co = coroutine.create(function() coroutine.yield(1) end)
        coroutine.resume(co)
        return coroutine.close(co), coroutine.status(co)`),
      [true, "dead"],
    );
  },
});

Deno.test({
  name: "versions: utf8 library in 5.3+" + (HAS_INTEGERS ? "" : ` [skipped: ${VERSION} has no utf8 library]`),
  ignore: !HAS_INTEGERS,
  fn() {
    using lua = new LuaRuntime();
    assert.equal(lua.eval("utf8.len(...)", "héllo ✓"), 7);
    assert.equal(lua.eval("utf8.char(0x1F389)"), "🎉");
  },
});

Deno.test("versions: the text-only load is in place under each version's name", () => {
  using lua = new LuaRuntime();
  if (VERSION === "5.1") {
    assert.equal(lua.eval("loadstring('return 1')()"), 1);
    assert.equal(
      lua.eval("select(2, loadstring(string.dump(function() end)))"),
      "attempt to load a binary chunk (only text is allowed)",
    );
  } else {
    assert.equal(lua.eval("load('return 1')()"), 1);
    assert.match(String(lua.eval("select(2, load(string.dump(function() end)))")), /binary chunk/);
  }
});

Deno.test({
  name: "versions: __pairs on JS proxies" +
    (VERSION === "5.1" ? " [skipped: 5.1/LuaJIT have no __pairs; use js.iterex]" : ""),
  ignore: VERSION === "5.1",
  fn() {
    using lua = new LuaRuntime();
    assert.equal(
      lua.execute("local n = 0 for k, v in pairs(...) do n = n + v end return n", { a: 1, b: 2 }),
      3,
    );
  },
});

Deno.test("versions: js.iterex walks a JS object on every version", () => {
  using lua = new LuaRuntime();
  assert.equal(
    lua.execute("local n = 0 for k, v in js.iterex(...) do n = n + v end return n", { a: 1, b: 2 }),
    3,
  );
});

Deno.test("versions: a finalizer error does not break gc() (5.4: warning; 5.1-5.3: error swallowed)", () => {
  using lua = new LuaRuntime();
  const make = VERSION === "5.1"
    ? "local p = newproxy(true) getmetatable(p).__gc = function() error('gc') end p = nil"
    : "setmetatable({}, { __gc = function() error('gc') end })";
  lua.execute(make);
  lua.gc();
  assert.equal(lua.eval("1 + 1"), 2);
});

Deno.test({
  name: "versions: yield across a JS callback" +
    (IS_LUAJIT || VERSION === "5.1"
      ? " (5.1/LuaJIT: refused by Lua, a LuaError)"
      : " (5.2+: refused, a LuaError)"),
  fn() {
    using lua = new LuaRuntime();
    lua.globals().set("call", (f: () => unknown) => f());
    const gen = (lua.eval("function() call(function() coroutine.yield(1) end) end") as {
      coroutine(): { send(): unknown };
    })
      .coroutine();
    assert.throws(() => gen.send(), /yield/);
  },
});
