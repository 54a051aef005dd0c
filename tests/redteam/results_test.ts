/**
 * Red team: result objects (plain data only: null-prototype objects, no functions, no cycles,
 * bounded depth and size), integers crossing to JS, and information leaks (addresses through
 * tostring, %p, __name, error messages).
 */
import assert from "node:assert/strict";
import {
  assertCleanText,
  assertError,
  attackSuite,
  IS54,
  LuaError,
  luaError,
  LuaLimitError,
  measure,
  refused,
  Sandbox,
  TIGHT,
  value,
} from "./_harness.ts";

const nullProto = (entries: Record<string, unknown>) => Object.assign(Object.create(null), entries);

attackSuite("result objects", [
  {
    name: "returning {__proto__ = {...}} pollutes nothing",
    code: "return {__proto__ = {polluted = true, isAdmin = true}}",
    expect: {
      check: (v) => {
        const r = v as Record<string, unknown>;
        assert.equal(Object.getPrototypeOf(r), null);
        assert.equal(Object.getOwnPropertyDescriptor(r, "__proto__")?.enumerable, true);
        assert.equal(({} as Record<string, unknown>).polluted, undefined);
        assert.equal(({} as Record<string, unknown>).isAdmin, undefined);
      },
    },
  },
  {
    name: "returning {constructor = {prototype = {...}}} is plain data",
    code: "return {constructor = {prototype = {polluted = 1}}, toString = 'x', valueOf = 1}",
    expect: {
      check: (v) => {
        const r = v as Record<string, Record<string, Record<string, unknown>>>;
        assert.equal(Object.getPrototypeOf(r), null);
        assert.equal(r.constructor.prototype.polluted, 1);
        assert.equal(typeof r.toString, "string");
      },
    },
  },
  {
    name: "returning {then = f}: a function never crosses",
    code: "return {['then'] = function(resolve) resolve('pwned') end}",
    expect: luaError(/function cannot be returned/),
  },
  {
    name: "returning {then = 'x'}: awaiting the result gives the object back",
    code: "return {['then'] = 'not a function'}",
    expect: {
      check: (v) => assert.equal(typeof (v as { then: unknown }).then, "string"),
    },
  },
  {
    name: "returning a coroutine or a function is an error",
    code: "return coroutine.create(print)",
    expect: luaError(/cannot be returned/),
  },
  {
    name: "returning a cycle is an error",
    code: "local t = {} t[1] = {t} return t",
    expect: luaError(/cycl/),
  },
  {
    name: "a cycle through three tables is an error",
    code: "local a, b, c = {}, {}, {} a.b = b b.c = c c.a = a return a",
    expect: luaError(/cycl/),
  },
  {
    name: "a cycle entered 40 levels down is an error",
    code: "local deep = {} local t = deep for i = 1, 40 do t.next = {} t = t.next end t.back = t return deep",
    expect: luaError(/cycl/),
  },
  {
    name: "a table met twice but never inside itself is data twice, not a cycle",
    code: "local shared = {n = 1} local t = {shared, shared, {inner = shared}} return t",
    expect: value([nullProto({ n: 1 }), nullProto({ n: 1 }), nullProto({ inner: nullProto({ n: 1 }) })]),
  },
  {
    name: "returning 10,000 nested levels is an error",
    code: "local t = {} for i = 1, 10000 do t = {t} end return t",
    expect: luaError(/nested deeper/),
  },
  {
    name: "returning a table key that is a table is an error",
    code: "return {[{}] = 1}",
    expect: luaError(/table key/),
  },
  {
    name: "a table with __index, __pairs and __len metamethods is read raw",
    code:
      "return setmetatable({1, 2}, {__index = function() return 'x' end, __len = function() return 99 end, " +
      "__pairs = function() error('pairs ran') end})",
    expect: value([1, 2]),
  },
  {
    name: "arrays with holes, boolean and float keys",
    code: "return {1, nil, 3}, {[true] = 1, [1.5] = 2, [-0.0] = 3}",
    expect: value([nullProto({ 1: 1, 3: 3 }), nullProto({ true: 1, "1.5": 2, 0: 3 })]),
  },
  {
    name: "the same string under an integer and a string key",
    code: "return {[1] = 'int', ['1'] = 'str'}",
    expect: {
      check: (v) => {
        const r = v as Record<string, unknown>;
        assert.equal(Object.keys(r).length, 1);
        assert.ok(r["1"] === "int" || r["1"] === "str");
      },
    },
  },
  {
    name: "a result over 1,000,000 entries is an error, not a host exhaustion",
    code: "local t = {} for i = 1, 1000001 do t[i] = true end return t",
    limits: { instructions: 10_000_000, cpuMs: 5000, memory: 64 << 20 },
    expect: luaError(/more than 1000000 entries/),
  },
  {
    name: "several results with shared subtables are copied, not aliased",
    code: "local s = {1} return s, {s, s}",
    expect: {
      check: (v) => {
        const [a, b] = v as [number[], number[][]];
        assert.deepEqual(a, [1]);
        assert.deepEqual(b, [[1], [1]]);
        b[0].push(2);
        assert.deepEqual(b[1], [1]);
      },
    },
  },
]);

attackSuite("integers", [
  {
    name: "math.mininteger // -1 and math.mininteger % -1",
    code: "return math.mininteger // -1, math.mininteger % -1",
    expect: value([-(2n ** 63n), 0]),
  },
  {
    name: "2^53 + 1 as an integer crosses as a bigint",
    code: "return (1 << 53) + 1, 2^53 + 1",
    expect: value([2n ** 53n + 1n, 2 ** 53]),
  },
  {
    name: "maxinteger + 1 wraps, float 2^63 stays a float",
    code: "return math.maxinteger + 1, 2^63, math.tointeger(2^63)",
    expect: value([-(2n ** 63n), 2 ** 63, undefined]),
  },
  {
    name: "NaN, infinities and -0",
    code: "return 0/0, 1/0, -1/0, -0.0",
    expect: value([NaN, Infinity, -Infinity, -0]),
  },
  {
    name: "integer division and modulo by zero are errors",
    code: "return pcall(function() return 1 // 0 end), pcall(function() return 1 % 0 end)",
    expect: refused(2),
  },
  {
    name: "a for loop ending at math.maxinteger",
    code: "local n = 0 for i = math.maxinteger - 2, math.maxinteger do n = n + 1 end return n",
    expect: IS54 ? value(3) : { error: LuaLimitError, limit: "instructions" },
  },
  {
    name: "a for loop starting at math.mininteger with a negative step",
    code: "local n = 0 for i = math.mininteger + 2, math.mininteger, -1 do n = n + 1 end return n",
    expect: IS54 ? value(3) : { error: LuaLimitError, limit: "instructions" },
  },
  {
    name: "a for loop with step math.mininteger or 0",
    code: "local n = 0 for i = 1, 10, math.mininteger do n = n + 1 end " +
      "return n, pcall(function() for i = 1, 10, 0 do end end)",
    // 5.4 refuses a zero step; 5.3 runs such a loop zero times
    expect: { check: (v) => assert.equal((v as unknown[])[1], !IS54) },
  },
  {
    name: "huge %d widths and precisions",
    code:
      "return #string.format('%99d', 1), #string.format('%.99f', 1e308), pcall(string.format, '%100d', 1)",
    expect: { check: (v) => assert.deepEqual((v as unknown[]).slice(0, 3), [99, 409, false]) },
  },
  {
    name: "string to integer coercion at the edges",
    code:
      "return tonumber('0x7fffffffffffffff') + 1, math.tointeger('9223372036854775808'), tonumber('1e400')",
    expect: {
      check: (v) => {
        const [a, , c] = v as unknown[];
        assert.equal(a, -(2n ** 63n));
        assert.equal(c, Infinity);
      },
    },
  },
]);

attackSuite("info leaks", [
  {
    name: "tostring of tables, functions, coroutines shows no address",
    code:
      "return tostring({}), tostring(print), tostring(coroutine.create(print)), tostring(coroutine.running())",
    expect: {
      check: (v) => {
        for (const s of v as string[]) {
          assertCleanText(s, "tostring");
          assert.match(s, /^(table|function|thread): \d+$/);
        }
      },
    },
  },
  {
    name: "%p shows a small identity, not an address",
    only: "5.4",
    code: "return string.format('%p %p %p', {}, print, 'str')",
    expect: {
      check: (v) => {
        for (const part of (v as string).split(" ")) assert.ok(Number(part) < 0x100000, part);
      },
    },
  },
  {
    name: "%s of tables and host objects shows no address",
    code: "return string.format('%s %s %s', {}, input, print)",
    expect: { check: (v) => assertCleanText(v as string, "%s") },
  },
  {
    name: "__name cannot spoof tostring",
    code: "return tostring(setmetatable({}, {__name = 'FILE*'}))",
    expect: { check: (v) => assert.match(v as string, /^table: \d+$/) },
  },
  {
    name: "print of tables and functions shows no address",
    code: "print({}, print, coroutine.create(print), input) return true",
    expect: value(true),
    after: (sb) => assertCleanText(sb.output, "output"),
  },
  {
    name: "error messages of runtime errors show no address",
    code: "local t = {} return t + 1",
    expect: luaError(/attempt to perform arithmetic on a table value/),
  },
  {
    name: "table.concat of a non-string shows no address",
    code: "return table.concat({{}})",
    expect: luaError(/invalid value .*at index 1.* in table for 'concat'/),
  },
  {
    name: "the traceback of an error in a coroutine shows no host path",
    code: "return coroutine.wrap(function() error('inner') end)()",
    expect: luaError(/inner/),
  },
  {
    name: "identities restart every run (no counter across runs)",
    code: "return tostring({})",
    expect: value("table: 1"),
  },
]);

Deno.test("redteam integers: a bigint beyond int64 is a LuaError before the run, sandbox usable", () => {
  using sb = new Sandbox({ limits: TIGHT });
  const outcome = measure(() => sb.execute("return ...", 2n ** 64n));
  assertError(outcome, { error: LuaError, message: /does not fit in a Lua integer/ });
  assert.equal(sb.eval("1 + 1"), 2);
});
