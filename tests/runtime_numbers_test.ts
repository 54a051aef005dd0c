import assert from "node:assert/strict";
import { LuaRuntime } from "../mod.ts";
import { assertUsable, fn, HAS_INTEGERS } from "./helpers.ts";

const NEEDS_INTEGERS = !HAS_INTEGERS;
const INT_REASON = " [skipped: needs Lua 5.3+ integers]";

Deno.test("lupa: eval('1+1') returns 2", () => {
  using lua = new LuaRuntime();
  assert.equal(lua.eval("1+1"), 2);
});

Deno.test("lupa: a Lua integer comes back as a JS number", () => {
  using lua = new LuaRuntime();
  const v = lua.eval("40 + 2");
  assert.equal(typeof v, "number");
  assert.equal(v, 42);
});

Deno.test("lupa: a Lua float comes back as a JS number", () => {
  using lua = new LuaRuntime();
  assert.equal(lua.eval("1.5"), 1.5);
  assert.equal(lua.eval("7 / 2"), 3.5);
  assert.equal(lua.eval("0.1 + 0.2"), 0.1 + 0.2);
});

Deno.test("lupa: a float with an integral value comes back as that number", () => {
  using lua = new LuaRuntime();
  assert.equal(lua.eval("2.0"), 2);
  assert.equal(lua.eval("2^10"), 1024);
});

Deno.test({
  name: "lupa: an integral JS number becomes a Lua integer, a fractional one a float" +
    (NEEDS_INTEGERS ? INT_REASON : ""),
  ignore: NEEDS_INTEGERS,
  fn() {
    using lua = new LuaRuntime();
    assert.equal(lua.eval("math.type(...)", 3), "integer");
    assert.equal(lua.eval("math.type(...)", -3), "integer");
    assert.equal(lua.eval("math.type(...)", 3.25), "float");
    assert.equal(lua.eval("math.type(...)", 2 ** 60), "integer");
    assert.equal(lua.eval("math.type(...)", 1e20), "float");
  },
});

Deno.test("lupa: integer division and float division keep Lua's semantics", () => {
  using lua = new LuaRuntime();
  assert.equal(lua.eval("math.floor(7 / 2)"), 3);
  assert.equal(lua.eval("7 % 3"), 1);
  assert.equal(lua.eval("-7 % 3"), 2);
});

Deno.test({
  name: "lupa: math.maxinteger / mininteger come back as bigint" + (NEEDS_INTEGERS ? INT_REASON : ""),
  ignore: NEEDS_INTEGERS,
  fn() {
    using lua = new LuaRuntime();
    assert.equal(lua.eval("math.maxinteger"), 9223372036854775807n);
    assert.equal(lua.eval("math.mininteger"), -9223372036854775808n);
  },
});

Deno.test({
  name: "lupa: 2^53+1 as a Lua integer comes back as an exact bigint" + (NEEDS_INTEGERS ? INT_REASON : ""),
  ignore: NEEDS_INTEGERS,
  fn() {
    using lua = new LuaRuntime();
    assert.equal(lua.eval("(1 << 53) + 1"), 9007199254740993n);
    assert.equal(lua.eval("-(1 << 53) - 1"), -9007199254740993n);
  },
});

Deno.test({
  name: "lupa: safe integers stay numbers up to 2^53-1, beyond that integers are bigint" +
    (NEEDS_INTEGERS ? INT_REASON : ""),
  ignore: NEEDS_INTEGERS,
  fn() {
    using lua = new LuaRuntime();
    assert.equal(lua.eval("(1 << 53) - 1"), Number.MAX_SAFE_INTEGER);
    assert.equal(lua.eval("-((1 << 53) - 1)"), -Number.MAX_SAFE_INTEGER);
    assert.equal(lua.eval("1 << 53"), 9007199254740992n);
  },
});

Deno.test({
  name: "lupa: a bigint goes into Lua as an exact integer" + (NEEDS_INTEGERS ? INT_REASON : ""),
  ignore: NEEDS_INTEGERS,
  fn() {
    using lua = new LuaRuntime();
    assert.equal(lua.eval("math.type(...)", 9007199254740993n), "integer");
    assert.equal(lua.eval("tostring(...)", 9007199254740993n), "9007199254740993");
    assert.equal(lua.eval("... == math.maxinteger", 2n ** 63n - 1n), true);
    assert.equal(lua.eval("... == math.mininteger", -(2n ** 63n)), true);
  },
});

Deno.test("a small bigint comes back as a number", () => {
  using lua = new LuaRuntime();
  assert.equal(lua.eval("...", 5n), 5);
  assert.equal(lua.eval("... + 1", -7n), -6);
});

Deno.test({
  name: "lupa: bigint round trip at the int64 boundaries" + (NEEDS_INTEGERS ? INT_REASON : ""),
  ignore: NEEDS_INTEGERS,
  fn() {
    using lua = new LuaRuntime();
    const id = fn(lua.eval("function(x) return x end"));
    for (const v of [2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n + 1n, -(2n ** 53n) - 1n]) {
      assert.equal(id(v), v);
    }
  },
});

Deno.test("lupa: a bigint outside int64 is a RangeError and the runtime stays usable", () => {
  using lua = new LuaRuntime();
  assert.throws(() => lua.eval("...", 2n ** 63n), RangeError);
  assert.throws(() => lua.eval("...", -(2n ** 63n) - 1n), RangeError);
  assert.throws(() => lua.globals().set("x", 2n ** 64n), RangeError);
  assert.throws(() => lua.table(1, 2n ** 70n), RangeError);
  const f = fn(lua.eval("function(g) return g() end"));
  assert.throws(() => f(() => 2n ** 64n), RangeError);
  assertUsable(lua);
  assert.equal(lua.eval("x"), undefined);
});

Deno.test({
  name: "Lua integer arithmetic wraps around like Lua's" + (NEEDS_INTEGERS ? INT_REASON : ""),
  ignore: NEEDS_INTEGERS,
  fn() {
    using lua = new LuaRuntime();
    assert.equal(lua.eval("math.maxinteger + 1"), -9223372036854775808n);
    assert.equal(lua.eval("... + 1", 2n ** 63n - 1n), -(2n ** 63n));
  },
});

Deno.test("a JS number too large for int64 becomes a Lua float", () => {
  using lua = new LuaRuntime();
  assert.equal(lua.eval("...", 1e20), 1e20);
  assert.equal(lua.eval("...", 2 ** 63), 2 ** 63);
  assert.equal(lua.eval("... > 0", 2 ** 63), true);
  if (HAS_INTEGERS) assert.equal(lua.eval("math.type(...)", 2 ** 63), "float");
});

Deno.test("NaN and the infinities cross in both directions", () => {
  using lua = new LuaRuntime();
  assert.ok(Number.isNaN(lua.eval("0/0")));
  assert.equal(lua.eval("1/0"), Infinity);
  assert.equal(lua.eval("-1/0"), -Infinity);
  assert.equal(lua.eval("... ~= ...", NaN), true);
  assert.equal(lua.eval("... == math.huge", Infinity), true);
  assert.equal(lua.eval("... == -math.huge", -Infinity), true);
});

Deno.test("lupa: Lua's type() sees JS numbers as 'number'", () => {
  using lua = new LuaRuntime();
  const type = fn(lua.globals().get("type"));
  assert.equal(type(1), "number");
  assert.equal(type(1.5), "number");
  assert.equal(type(10n), "number");
});

Deno.test("lupa: numeric strings are not coerced on the way out", () => {
  using lua = new LuaRuntime();
  assert.equal(lua.eval("'10'"), "10");
  assert.equal(lua.eval("'10' + 1"), 11);
});

Deno.test("numbers as table keys: 1 and 1.0 are the same key", () => {
  using lua = new LuaRuntime();
  const t = lua.table("a", "b");
  assert.equal(t.get(1), "a");
  assert.equal(lua.eval("(...)[1.0]", t), "a");
  t.set(1.5, "x");
  assert.equal(lua.eval("(...)[1.5]", t), "x");
  assert.equal(t.get(1.5), "x");
});

Deno.test("booleans cross unchanged", () => {
  using lua = new LuaRuntime();
  assert.equal(lua.eval("true"), true);
  assert.equal(lua.eval("false"), false);
  assert.equal(lua.eval("type(...)", true), "boolean");
  assert.equal(lua.eval("not ...", false), true);
  // 0 is truthy in Lua
  assert.equal(lua.eval("(...) and 'yes' or 'no'", 0), "yes");
});
