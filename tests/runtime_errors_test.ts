import assert from "node:assert/strict";
import { LuaError, LuaMemoryError, LuaRuntime, LuaSyntaxError } from "../mod.ts";
import { assertUsable, fn, tbl, VERSION } from "./helpers.ts";

const isLuaError = (pattern: RegExp) => (e: unknown) => e instanceof LuaError && pattern.test(e.message);

Deno.test("lupa: a Lua runtime error is a LuaError with the message and a traceback", () => {
  using lua = new LuaRuntime();
  assert.throws(() => lua.execute("error('boom')"), (e: unknown) => {
    assert.ok(e instanceof LuaError);
    assert.ok(!(e instanceof LuaSyntaxError));
    assert.match(e.message, /boom/);
    assert.match(e.message, /stack traceback:/);
    assert.equal(e.name, "LuaError");
    return true;
  });
  assertUsable(lua);
});

Deno.test("lupa: an error from a called Lua function carries the function's traceback", () => {
  using lua = new LuaRuntime();
  const f = fn(lua.execute(`
    local function inner() error("deep failure") end
    local function outer() inner() end
    return outer`));
  assert.throws(() => f(), isLuaError(/deep failure[\s\S]*stack traceback:[\s\S]*inner/));
});

Deno.test("lupa: LuaSyntaxError from eval names the chunk", () => {
  using lua = new LuaRuntime();
  assert.throws(() => lua.eval("1 +"), (e: unknown) => {
    assert.ok(e instanceof LuaSyntaxError);
    assert.ok(e instanceof LuaError);
    assert.match(e.message, /\[string "return 1 \+"\]:1:/);
    return true;
  });
  assertUsable(lua);
});

Deno.test("lupa: LuaSyntaxError from execute names the chunk and line", () => {
  using lua = new LuaRuntime();
  assert.throws(() => lua.execute("local x = 1\nx = = 2"), (e: unknown) => {
    assert.ok(e instanceof LuaSyntaxError);
    assert.match(e.message, /:2:/);
    return true;
  });
});

Deno.test("lupa: LuaSyntaxError from compile names the chunk given by { name }", () => {
  using lua = new LuaRuntime();
  assert.throws(
    () => lua.compile("return +", { name: "policy.lua" }),
    (e: unknown) => e instanceof LuaSyntaxError && /^policy\.lua:1:/.test(e.message),
  );
  const f = lua.compile("error('at runtime')", { name: "run.lua" });
  assert.throws(() => f(), isLuaError(/^run\.lua:1: at runtime/));
});

Deno.test("lupa: a JS exception thrown in a callback reaches the JS caller as the same object", () => {
  using lua = new LuaRuntime();
  const boom = new TypeError("js side");
  const f = fn(lua.eval("function(g) return g() end"));
  assert.throws(() =>
    f(() => {
      throw boom;
    }), (e: unknown) => e === boom);
  assertUsable(lua);
});

Deno.test("a thrown primitive or plain object keeps its identity too", () => {
  using lua = new LuaRuntime();
  const f = fn(lua.eval("function(g) return g() end"));
  const payload = { code: 42 };
  assert.throws(() =>
    f(() => {
      throw payload;
    }), (e: unknown) => e === payload);
  assert.throws(() =>
    f(() => {
      throw "just a string";
    }), (e: unknown) => e === "just a string");
  assertUsable(lua);
});

Deno.test("lupa: pcall in Lua catches a JS exception and sees an error value", () => {
  using lua = new LuaRuntime();
  const f = fn(lua.eval(`function(g)
    local ok, err = pcall(g)
    return ok, type(err), tostring(err)
  end`));
  const [ok, type, text] = f(() => {
    throw new Error("caught in Lua");
  }) as unknown[];
  assert.equal(ok, false);
  assert.equal(type, "userdata");
  assert.equal(text, "Error: caught in Lua");
  assertUsable(lua);
});

Deno.test("Lua reads the message of a caught JS error", () => {
  using lua = new LuaRuntime();
  const f = fn(lua.eval("function(g) local ok, err = pcall(g) return err.message, err.name end"));
  assert.deepEqual(
    f(() => {
      throw new RangeError("too far");
    }),
    ["too far", "RangeError"],
  );
});

Deno.test("a JS error caught by pcall and re-raised reaches JS as the same object", () => {
  using lua = new LuaRuntime();
  const boom = new Error("again");
  const f = fn(lua.eval("function(g) local ok, err = pcall(g) error(err) end"));
  assert.throws(() =>
    f(() => {
      throw boom;
    }), (e: unknown) => e === boom);
});

Deno.test("lupa: error with a table value: LuaError whose value is the table", () => {
  using lua = new LuaRuntime();
  assert.throws(() => lua.execute("error({ code = 7 })"), (e: unknown) => {
    assert.ok(e instanceof LuaError);
    assert.equal(tbl(e.value).get("code"), 7);
    return true;
  });
});

Deno.test("error with a number or nil value", () => {
  using lua = new LuaRuntime();
  // 5.1 adds the position to a number message (it counts as a string there)
  const expected = VERSION === "5.1" ? /^\[string "error\(42\)"\]:1: 42\n/ : /^42$/;
  assert.throws(
    () => lua.execute("error(42)"),
    (e: unknown) => e instanceof LuaError && expected.test(e.message),
  );
  assert.throws(() => lua.execute("error()"), (e: unknown) => e instanceof LuaError && e.value === undefined);
  assertUsable(lua);
});

Deno.test("error objects with __tostring are described by it", () => {
  using lua = new LuaRuntime();
  assert.throws(
    () => lua.execute("error(setmetatable({}, { __tostring = function() return 'custom error' end }))"),
    (e: unknown) => e instanceof LuaError && e.message === "custom error",
  );
});

Deno.test("error level 0 and 2 keep Lua's position rules", () => {
  using lua = new LuaRuntime();
  assert.throws(() => lua.execute("error('plain', 0)"), isLuaError(/^plain\n/));
  const f = fn(
    lua.execute(
      "local function check(x) if not x then error('bad arg', 2) end end return function() check(false) end",
    ),
  );
  assert.throws(() => f(), isLuaError(/^\[string .*\]:1: bad arg/));
});

Deno.test("runtime errors from Lua operations are LuaErrors", () => {
  using lua = new LuaRuntime();
  assert.throws(() => lua.eval("nil + 1"), isLuaError(/arithmetic/));
  assert.throws(() => lua.eval("undefined_function()"), isLuaError(/attempt to call/));
  assert.throws(() => lua.eval("('x').y.z"), isLuaError(/attempt to index/));
  assertUsable(lua);
});

Deno.test("an error in a JS callback called from a JS callback unwinds both levels", () => {
  using lua = new LuaRuntime();
  const boom = new Error("nested");
  lua.globals().set("inner", () => {
    throw boom;
  });
  lua.globals().set("outer", () => lua.eval("inner()"));
  assert.throws(() => lua.execute("outer()"), (e: unknown) => e === boom);
  assertUsable(lua);
});

Deno.test("xpcall with a handler sees a JS error as an error value", () => {
  using lua = new LuaRuntime();
  const f = fn(lua.eval(`function(g)
    return xpcall(g, function(e) return 'handled: ' .. tostring(e) end)
  end`));
  assert.deepEqual(
    f(() => {
      throw new Error("x");
    }),
    [false, "handled: Error: x"],
  );
});

Deno.test("error classes: LuaSyntaxError and LuaMemoryError are LuaErrors", () => {
  assert.ok(new LuaSyntaxError("s") instanceof LuaError);
  assert.ok(new LuaMemoryError() instanceof LuaError);
  assert.equal(new LuaMemoryError().limit, "memory");
});

Deno.test({
  name: "a syntax error message from Lua's load() stays a Lua value (nil, message)" +
    (VERSION === "5.1" ? " [5.1: load takes a function; loadstring used]" : ""),
  fn() {
    using lua = new LuaRuntime();
    const code = VERSION === "5.1" ? "loadstring('x = = 1')" : "load('x = = 1')";
    const [f, message] = lua.eval(code) as unknown[];
    assert.equal(f, undefined);
    assert.match(String(message), /unexpected symbol|expected/);
  },
});

Deno.test("a JS exception caught by pcall and returned to JS is the original object", () => {
  using lua = new LuaRuntime();
  const boom = new Error("returned, not raised");
  const f = fn(lua.eval("function(g) return select(2, pcall(g)) end"));
  assert.equal(
    f(() => {
      throw boom;
    }),
    boom,
  );
  // and passed back into Lua it is still usable there
  assert.equal(lua.eval("(...).message", boom), "returned, not raised");
});
