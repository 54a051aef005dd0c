/**
 * Red team: the string metatable, raw access to protected tables, and state shared between runs.
 * The vetted libraries are read-only views, the string metatable is locked, and nothing a run does
 * is visible to the next one.
 */
import assert from "node:assert/strict";
import {
  assertError,
  assertHostIntact,
  assertUsable,
  attackSuite,
  hostGlobals,
  LuaError,
  luaError,
  measure,
  refused,
  Sandbox,
  snapshot,
  TIGHT,
  value,
} from "./_harness.ts";

const READ_ONLY = /attempt to modify a read-only table/;

attackSuite("string metatable", [
  {
    name: "getmetatable('') is locked (false)",
    code: "return getmetatable('')",
    expect: value(false),
  },
  {
    name: "getmetatable('').__index = f cannot hijack string methods",
    code: "getmetatable('').__index = function() return 'pwned' end",
    expect: luaError(/attempt to index a boolean value/),
  },
  {
    name: "setmetatable on a string is refused",
    code: "return setmetatable('', {})",
    expect: luaError(/table expected, got string/),
  },
  {
    name: "string.rep = f is refused (the table behind every string is shared)",
    code: "string.rep = function() return 'pwned' end",
    expect: luaError(READ_ONLY),
  },
  {
    name: "rawset(string, 'format', f) is refused",
    code: "rawset(string, 'format', print)",
    expect: luaError(READ_ONLY),
  },
  {
    name: "setmetatable(string, {...}) is refused",
    code: "setmetatable(string, {__index = function() return print end})",
    expect: luaError(/cannot change a protected metatable/),
  },
  {
    name: "string methods through a string value and through the table are the same vetted ones",
    code: "return ('').rep == string.rep, ('x'):rep(3), ('').format == string.format, ('').len == string.len",
    expect: value([true, "xxx", true, true]),
  },
  {
    name: "every key of the string table is read-only, none can be removed",
    code: "for k in pairs(string) do local ok = pcall(function() string[k] = nil end) " +
      "if ok then return k end end return ('x'):upper()",
    expect: value("X"),
  },
]);

attackSuite("raw access", [
  {
    name: "rawset on a host object proxy is refused",
    code: "rawset(input, 'x', 1)",
    expect: luaError(/table expected, got (userdata|js\.object)/),
  },
  {
    name: "rawget on a host object proxy is refused",
    code: "return rawget(input, 'user')",
    expect: luaError(/table expected, got (userdata|js\.object)/),
  },
  {
    name: "rawlen and next on a host object proxy are refused",
    code: "return pcall(rawlen, input), pcall(next, input)",
    expect: refused(2),
  },
  {
    name: "rawset on math/table/coroutine/os/utf8 is refused",
    code: "for _, t in ipairs({math, table, coroutine, os, utf8}) do " +
      "local ok = pcall(rawset, t, 'pi', 3) if ok then return 'modified' end end return math.pi > 3.14",
    expect: value(true),
  },
  {
    name: "rawget, rawlen and next on a library view read the library behind it, as indexing does",
    code: "return rawget(math, 'pi') == math.pi, rawget(string, 'rep') == string.rep, rawlen(table), " +
      "math[next(math)] == select(2, next(math)), math.pi > 3.14, pcall(rawset, math, 'pi', 3)",
    expect: value([true, true, 0, true, true, false, "attempt to modify a read-only table"]),
  },
  {
    name: "rawequal on proxies is harmless",
    code: "return rawequal(input, input), rawequal(input.user, input.user), rawequal(input, config)",
    expect: value([true, true, false]),
  },
  {
    name: "rawset on the environment only changes this run's globals",
    code: "rawset(_G, 'input', 'replaced') rawset(_G, 'string', false) return input, string",
    expect: value(["replaced", false]),
  },
  {
    name: "the library views' metatables are locked",
    code: "return getmetatable(string), getmetatable(math), getmetatable(table)",
    expect: value([false, false, false]),
  },
  {
    name: "the metatables of the globals and of the libraries cannot be replaced or removed",
    code: "local out = {} for _, t in ipairs({ _G, math, string }) do " +
      "out[#out + 1] = select(2, pcall(setmetatable, t, {})) out[#out + 1] = select(2, pcall(setmetatable, t, nil)) " +
      "end return table.concat(out, '|'), math.pi > 3, x == nil",
    expect: value([Array(6).fill("cannot change a protected metatable").join("|"), true, true]),
  },
]);

attackSuite("setmetatable", [
  {
    name: "a table's metatable is replaced, as a class chain does, and removed",
    code: "local Base, Leaf = {}, {} local o = setmetatable({}, Base) " +
      "return setmetatable(o, Leaf) == o, getmetatable(o) == Leaf, setmetatable(o, nil) == o, getmetatable(o)",
    expect: value([true, true, true, undefined]),
  },
  {
    name: "a metatable the code protected with __metatable is kept, as Lua keeps it",
    code: "local o = setmetatable({}, { __metatable = 'locked' }) " +
      "local a = select(2, pcall(setmetatable, o, {})) local b = select(2, pcall(setmetatable, o, nil)) " +
      "local f = setmetatable({}, { __metatable = false }) " +
      "return a, b, getmetatable(o), pcall(setmetatable, f, {})",
    expect: value([
      "cannot change a protected metatable",
      "cannot change a protected metatable",
      "locked",
      false,
      "cannot change a protected metatable",
    ]),
  },
  {
    name: "a metatable with __gc is refused for a table that has a metatable too",
    code: "local o = setmetatable({}, {}) return pcall(setmetatable, o, { __gc = print })",
    expect: value([false, "metatables with __gc are not allowed in the sandbox"]),
  },
]);

Deno.test("redteam shared state: globals planted by one run are gone in the next", () => {
  using sb = new Sandbox({ limits: TIGHT });
  sb.execute("x = 42 _G.y = 1 rawset(_G, 'z', 2) print = nil tostring = function() return 'pwned' end");
  assert.deepEqual(sb.execute("return x, y, z, type(print), tostring(1)"), [
    undefined,
    undefined,
    undefined,
    "function",
    "1",
  ]);
});

Deno.test("redteam shared state: failed writes to the libraries leave them whole for the next run", () => {
  using sb = new Sandbox({ limits: TIGHT });
  for (
    const code of [
      "string.upper = nil",
      "setmetatable(math, {})",
      "table.insert = print",
      "getmetatable('').__index = {}",
      "coroutine.create = nil",
    ]
  ) {
    assertError(measure(() => sb.execute(code)), { error: LuaError });
  }
  assert.deepEqual(
    sb.execute(
      "local t = {3, 1, 2} table.sort(t) table.insert(t, 4) " +
        "return ('a'):upper(), math.max(1, 2), t, type(coroutine.create)",
    ),
    ["A", 2, [1, 2, 3, 4], "function"],
  );
});

Deno.test("redteam shared state: tostring identities do not count across runs (no covert channel)", () => {
  using sb = new Sandbox({ limits: TIGHT });
  const first = sb.execute("return tostring({})");
  sb.execute("for i = 1, 500 do local _ = tostring({}) .. string.format('%s', {}) end");
  assert.equal(sb.execute("return tostring({})"), first);
});

Deno.test("redteam shared state: %p of strings does not accumulate memory across runs", () => {
  // each run formats 20,000 distinct strings with %p (about 1.5 MB of identities); if identities
  // outlived their run, the 4 MiB cap would be exhausted after a few runs
  using sb = new Sandbox({ limits: { ...TIGHT, instructions: 5_000_000, cpuMs: 2000 } });
  if (measure(() => sb.eval("string.format('%p', 'x')")).error) return; // 5.3 has no %p
  for (let run = 0; run < 8; run++) {
    assert.equal(
      sb.execute(`for i = 1, 20000 do string.format('%p', 'k${run}:' .. i) end return true`),
      true,
    );
  }
});

Deno.test("redteam shared state: math.randomseed is absent, math.random works in every run", () => {
  using sb = new Sandbox({ limits: TIGHT });
  assert.equal(sb.eval("math.randomseed"), undefined);
  for (let i = 0; i < 3; i++) {
    const v = sb.eval("math.random(1, 6)") as number;
    assert.ok(v >= 1 && v <= 6);
  }
});

Deno.test("redteam shared state: every run and every copy of the template draws its own random sequence", () => {
  // After its first call a run gets Lua's own math.random; the next run begins with the seeding one.
  const draw = `local first = math.random
    local t = {} for i = 1, 8 do t[i] = math.random(1 << 40) end
    return table.concat(t, ","), first ~= math.random, math.random == math.random`;
  const sequences = new Set<string>();
  for (let copy = 0; copy < 4; copy++) {
    using sb = new Sandbox({ limits: TIGHT });
    for (let run = 0; run < 5; run++) {
      const [sequence, handedOver, stable] = sb.execute(draw) as [string, boolean, boolean];
      assert.deepEqual([handedOver, stable], [true, true]);
      sequences.add(sequence);
    }
  }
  assert.equal(sequences.size, 20);
});

Deno.test("redteam shared state: math.random's errors are Lua's own, at its first call of a run and after", () => {
  using sb = new Sandbox({ limits: TIGHT });
  const message = "bad argument #1 to 'math.random' (interval is empty)";
  for (let run = 0; run < 2; run++) {
    assert.deepEqual(sb.execute("return pcall(math.random, 2, 1)"), [false, message]);
    assert.deepEqual(sb.execute("math.random() return pcall(math.random, 2, 1)"), [false, message]);
    assert.throws(
      () => sb.execute("math.random() return math.random(2, 1)"),
      (e) =>
        e instanceof LuaError && e.message === "sandbox:1: bad argument #1 to 'random' (interval is empty)",
    );
  }
});

Deno.test("redteam shared state: the same code run again sees nothing its earlier runs planted", () => {
  using sb = new Sandbox({ limits: TIGHT });
  // the same source every time: a run that leaves its globals as they were made hands them on
  const code = `local plant = ...
    if plant then
      x = 42 _G.y = 1 rawset(_G, 'z', 2) tostring = function() return 'pwned' end
      co = coroutine.create(function() while true do coroutine.yield(1) end end) coroutine.resume(co)
      if plant == 'swap' then
        _G = setmetatable({}, { __eq = function() error('pwned') end, __index = function() return 'pwned' end })
      end
    end
    return x, y, z, tostring(1), type(co), rawequal(_G, _ENV)`;
  const clean = [undefined, undefined, undefined, "1", "nil", true];
  for (const plant of ["all", "swap"]) {
    assert.deepEqual(sb.execute(code), clean);
    assert.deepEqual(sb.execute(code), clean);
    sb.execute(code, plant);
    assert.deepEqual(sb.execute(code), clean);
    assert.deepEqual(sb.execute(code), clean);
  }
  assertUsable(sb);
});

Deno.test("redteam shared state: a coroutine or closure cannot survive into the next run", () => {
  using sb = new Sandbox({ limits: TIGHT });
  sb.execute(
    "co = coroutine.create(function() while true do coroutine.yield(1) end end) coroutine.resume(co)",
  );
  assert.deepEqual(sb.execute("return co, type(co)"), [undefined, "nil"]);
});

Deno.test("redteam shared state: host objects unchanged after runs trying every write path", () => {
  const globals = hostGlobals();
  const snap = snapshot(globals);
  using sb = new Sandbox({ limits: TIGHT, globals });
  for (
    const code of [
      "input.user.name = 'eve'",
      "input.list[1] = 99",
      "input.tags.a = 2",
      "input.new = {}",
      "config.limit = 1e9",
      "input.user.roles[3] = 'admin'",
      "table.insert(input.list, 'x')",
      "table.remove(input.user.roles)",
      "table.sort(input.user.roles, function(a, b) return a > b end)",
    ]
  ) {
    assertError(measure(() => sb.execute(code)), { error: LuaError });
  }
  assertHostIntact(snap);
  assertUsable(sb);
});
