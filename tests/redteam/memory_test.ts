/**
 * Red team: memory (the allocator cap, out-of-memory swallowed or provoked from the host side),
 * GC churn near the cap, and the C stack (metamethod recursion, __index chains, nested pcall and
 * coroutines).
 */
import assert from "node:assert/strict";
import {
  assertError,
  assertIdleFootprint,
  assertUsable,
  attackSuite,
  LuaError,
  luaError,
  LuaLimitError,
  LuaMemoryError,
  LuaSyntaxError,
  measure,
  Sandbox,
  settledIdleMemory,
  TIGHT,
  value,
} from "./_harness.ts";

import { PolicyEngine } from "../../mod.ts";

const MEMORY = { error: LuaMemoryError, limit: "memory" } as const;
/** Enough instructions and time to reach the 4 MiB cap. */
const ROOMY = { ...TIGHT, instructions: 20_000_000, cpuMs: 2000 };
const STACK = /stack overflow|C stack overflow|error in error handling|too many C levels/;
const SMALL_STRINGS = Array.from({ length: 20_000 }, (_, i) => `item ${i}`);

/** Nested pcalls return `true, true, ..., false, message`: the innermost one failed. */
function assertLastFailed(v: unknown): void {
  assert.ok(Array.isArray(v) && v.length >= 2, JSON.stringify(v));
  assert.equal(v[v.length - 2], false);
  assert.match(String(v[v.length - 1]), STACK);
}

attackSuite("memory", [
  {
    name: "string.rep of 5 MB in one call",
    code: "return #string.rep(('x'):rep(1000), 5000)",
    limits: ROOMY,
    expect: MEMORY,
  },
  {
    name: "string.pack('c2000000000', '')",
    code: "return #string.pack('c2000000000', '')",
    limits: ROOMY,
    expect: MEMORY,
  },
  {
    name: "string.pack with six 1 MB fixed-size fields",
    code: "return #string.pack(('c1000000'):rep(6), '', '', '', '', '', '')",
    limits: ROOMY,
    expect: MEMORY,
  },
  {
    name: "doubling a string until the cap",
    code: "local s = 'x' while true do s = s .. s end",
    limits: ROOMY,
    expect: MEMORY,
  },
  {
    name: "growing a table until the cap",
    code: "local t = {} local i = 0 while true do i = i + 1 t[i] = i end",
    limits: ROOMY,
    expect: MEMORY,
  },
  {
    name: "growing the hash part until the cap",
    code: "local t = {} local i = 0 while true do i = i + 1 t['k' .. i] = true end",
    limits: ROOMY,
    expect: MEMORY,
  },
  {
    name: "creating coroutines until the cap",
    code: "local cos = {} while true do cos[#cos + 1] = coroutine.create(print) end",
    limits: ROOMY,
    expect: MEMORY,
  },
  {
    name: "closures until the cap",
    code: "local fs = {} while true do local n = #fs fs[n + 1] = function() return n end end",
    limits: ROOMY,
    expect: MEMORY,
  },
  {
    name: "out-of-memory swallowed by pcall in a loop",
    code:
      "local keep = {} while true do pcall(function() keep[#keep + 1] = ('y'):rep(100000) .. #keep end) end",
    limits: ROOMY,
    expect: MEMORY,
  },
  {
    // string.rep fails in its buffer first, which 5.3 reports as "not enough memory for buffer allocation"
    name: "a refused buffer allocation swallowed by pcall in a loop",
    code:
      "local big = {} for i = 1, 100 do pcall(function() big[i] = ('y'):rep(300000) end) end while true do end",
    limits: ROOMY,
    expect: MEMORY,
  },
  {
    name: "out-of-memory inside a coroutine, swallowed by resume",
    code: "local co = coroutine.create(function() local s = 'x' while true do s = s .. s end end) " +
      "coroutine.resume(co) return 'escaped'",
    limits: ROOMY,
    expect: MEMORY,
  },
  {
    name: "out-of-memory in an xpcall handler's function",
    code:
      "return xpcall(function() local s = 'x' while true do s = s .. s end end, function(e) return 'ok' end)",
    limits: ROOMY,
    expect: MEMORY,
  },
  {
    name: "collectgarbage('stop') is refused",
    code: "collectgarbage('stop')",
    expect: luaError(/only 'count' is allowed/),
  },
  {
    name: "every collectgarbage option but 'count' is refused",
    code: "local refused = 0 for _, o in ipairs({'collect', 'step', 'restart', 'setpause', 'setstepmul', " +
      "'incremental', 'generational', 'isrunning'}) do if not pcall(collectgarbage, o) then refused = refused + 1 end end " +
      "return refused, type(collectgarbage('count')), pcall(collectgarbage)",
    expect: value([8, "number", false, "collectgarbage: only 'count' is allowed in the sandbox"]),
  },
  {
    name: "a capability returning 6 MB (pushed while the host holds control)",
    code: "return #big()",
    options: { capabilities: { big: () => "x".repeat(6 << 20) } },
    expect: MEMORY,
  },
  {
    name: "a capability returning 6 MB, caught by pcall",
    code: "local ok, e = pcall(big) return ok, e",
    options: { capabilities: { big: () => "x".repeat(6 << 20) } },
    expect: MEMORY,
  },
  {
    name: "a capability returning 20,000 small strings over a 256 KiB cap",
    code: "local ok, e = pcall(big) return 'escaped'",
    limits: { ...TIGHT, memory: 256 << 10 },
    options: { capabilities: { big: () => SMALL_STRINGS } },
    expect: MEMORY,
  },
  {
    name: "a huge vararg list through table.unpack",
    code: "local t = {} for i = 1, 300000 do t[i] = i end return select('#', table.unpack(t))",
    limits: ROOMY,
    expect: MEMORY,
  },
  {
    name: "deep Lua recursion until the stack cannot grow",
    code: "local function f(n) return 1 + f(n + 1) end return f(1)",
    limits: ROOMY,
    expect: MEMORY,
  },
]);

Deno.test("redteam memory: arguments over the cap are a LuaMemoryError before the run, sandbox usable", () => {
  using sb = new Sandbox({ limits: ROOMY });
  assertError(measure(() => sb.execute("return #...", "x".repeat(6 << 20))), MEMORY);
  assertError(measure(() => sb.execute("return #...", Array.from({ length: 300_000 }, (_, i) => i))), {
    error: LuaMemoryError,
  });
  assertUsable(sb);
});

Deno.test("redteam memory: policies that make garbage while compiling do not widen a decision's memory limit", () => {
  // What a compiled policy keeps joins the engine's footprint; counting its chunk's garbage as kept,
  // twenty such policies let a decision allocate 2 MB under a limit of 1 MiB
  using engine = new PolicyEngine({ limits: { memory: 1 << 20, instructions: 1e9, cpuMs: 5000 } });
  const held = [];
  for (let i = 0; i < 20; i++) {
    held.push(engine.compile(
      `local t = {} for i = 1, 25 do t[i] = string.rep("x", 20000) .. i end t = nil
      return function() return true end`,
      { name: `garbage${i}` },
    ));
  }
  const grow = engine.compile(
    `return function(input)
      local t = {} for i = 1, input.n do t[i] = string.rep("y", 100000) .. i end return true
    end`,
    { name: "grow" },
  );
  assert.equal(grow.evaluate({ n: 5 }).allow, true);
  for (const n of [10, 20]) {
    const d = grow.evaluate({ n });
    assert.ok(d.error instanceof LuaMemoryError, `${n} x 100 KB: ${d.allow} ${d.errors}`);
  }
  assert.equal(held[19].evaluate({}).allow, true);
});

Deno.test("redteam memory: after a memory error the idle sandbox is back to its footprint", () => {
  using sb = new Sandbox({ limits: ROOMY });
  const idle = settledIdleMemory(sb);
  for (let i = 0; i < 5; i++) {
    assertError(
      measure(() => sb.execute("local t = {} while true do t[#t + 1] = ('z'):rep(1000) .. #t end")),
      {
        error: LuaMemoryError,
      },
    );
    assert.equal(sb.eval("1 + 1"), 2);
    assert.ok(
      sb.usage.memory < 256 << 10,
      `a trivial run after a memory error used ${sb.usage.memory} bytes`,
    );
  }
  assertIdleFootprint(sb, idle);
});

attackSuite("GC churn", [
  {
    name: "a heap held just under the cap while allocating in a loop",
    code:
      "local base, g = ('k'):rep(1000), ('g'):rep(100) local keep = {} for i = 1, 2800 do keep[i] = base .. i end " +
      "local n = 0 for i = 1, 40000 do local s = g .. i n = n + #s end return n > 0",
    limits: { ...ROOMY, instructions: 2_000_000 },
    expect: value(true),
  },
  {
    name: "a heap near the cap churning big strings, stopped by the CPU deadline",
    code: "local keep = ('k'):rep(2000000) local g = ('g'):rep(300000) while true do local s = g .. 'x' end",
    limits: { ...ROOMY, instructions: 1e12, cpuMs: 200 },
    expect: { error: LuaLimitError, limit: "cpu" },
  },
  {
    name: "coroutines created and dropped near the cap",
    code: "local b, keep = ('k'):rep(1000), {} for i = 1, 2800 do keep[i] = b .. i end " +
      "for i = 1, 5000 do local co = coroutine.wrap(function(x) return x .. '!' end) co(i) end return #keep",
    limits: { ...ROOMY, instructions: 2_000_000 },
    expect: value(2800),
  },
  {
    name: "an out-of-memory error near the cap leaves the next allocation-heavy run working",
    code: "local b, keep = ('k'):rep(1000), {} while true do keep[#keep + 1] = b .. #keep end",
    limits: ROOMY,
    expect: MEMORY,
    after: (sb) => {
      assert.equal(
        sb.execute(
          "local b, keep = ('k'):rep(1000), {} for i = 1, 2800 do keep[i] = b .. i end return #keep",
        ),
        2800,
      );
    },
  },
  {
    name: "weak tables refilled in a loop",
    code: "local w = setmetatable({}, {__mode = 'v'}) for i = 1, 50000 do w[i % 1000] = {i} end return true",
    // bounded by its instructions: at 200 ms of CPU, a slow spell of the machine stopped the portable
    // path's run (80-210 ms here) before it ended
    limits: { ...TIGHT, instructions: 1_000_000, cpuMs: 2000 },
    expect: value(true),
  },
]);

attackSuite("C stack", [
  {
    name: "a 3,000-long __index chain of tables",
    code: "local t = {} for i = 1, 3000 do t = setmetatable({}, {__index = t}) end return t.x",
    expect: luaError(/'__index' chain too long/),
  },
  {
    name: "a __newindex chain of tables",
    code: "local t = {} for i = 1, 3000 do t = setmetatable({}, {__newindex = t}) end t.x = 1",
    expect: luaError(/'__newindex' chain too long/),
  },
  {
    name: "__index function recursion",
    code:
      "local t = setmetatable({}, {}) getmetatable(t).__index = function(t, k) return t[k] end return t.x",
    limits: ROOMY,
    expect: luaError(STACK),
  },
  {
    // tostring is a C function (the fast lane's entry), as in Lua: the C stack's limit stops it
    name: "__tostring recursion through tostring",
    code: "local t = setmetatable({}, {__tostring = function(s) return tostring(s) end}) return tostring(t)",
    needsLane: true,
    limits: ROOMY,
    expect: luaError(STACK),
  },
  {
    name: "__concat recursion",
    code: "local mt = {} mt.__concat = function(a, b) return a .. b end return setmetatable({}, mt) .. 'x'",
    limits: ROOMY,
    expect: luaError(STACK),
  },
  {
    name: "__eq recursion",
    code: "local mt = {} mt.__eq = function(a, b) return a == b end " +
      "return setmetatable({}, mt) == setmetatable({}, mt)",
    limits: ROOMY,
    expect: luaError(STACK),
  },
  {
    name: "__lt and __le recursion",
    code:
      "local mt = {} mt.__lt = function(a, b) return a < b end mt.__le = function(a, b) return a <= b end " +
      "local a, b = setmetatable({}, mt), setmetatable({}, mt) return pcall(function() return a < b end), a <= b",
    limits: ROOMY,
    expect: luaError(STACK),
  },
  {
    name: "__len recursion",
    code: "local t = setmetatable({}, {}) getmetatable(t).__len = function(s) return #s end return #t",
    limits: ROOMY,
    expect: luaError(STACK),
  },
  {
    name: "__call recursion",
    code: "local t = setmetatable({}, {}) getmetatable(t).__call = function(s) return (s()) end return t()",
    limits: ROOMY,
    expect: MEMORY,
  },
  {
    name: "nested pcall + coroutine.wrap recursion",
    code: "local function f() return pcall(coroutine.wrap(f)) end return f()",
    limits: ROOMY,
    expect: { check: (v) => assertLastFailed(v) },
  },
  {
    name: "nested coroutine.resume recursion",
    code: "local function f() local co = coroutine.create(f) return coroutine.resume(co) end return f()",
    limits: ROOMY,
    expect: { check: (v) => assertLastFailed(v) },
  },
  {
    name: "recursion through string.gsub replacement functions",
    code: "local function f(s) return (s:gsub('.', f)) end return f('ab')",
    limits: ROOMY,
    expect: luaError(STACK),
  },
  {
    name: "recursion through table.concat and __index (8 KiB C frames on 5.3: aborted Deno before the cap)",
    code: "local t t = setmetatable({}, {__index = function() return table.concat(t, '', 1, 1) end}) " +
      "return table.concat(t, '', 1, 1)",
    limits: ROOMY,
    expect: luaError(STACK),
  },
  {
    name: "recursion through string.gsub with a host read at every level",
    code: "local function f(s) local _ = input.user.name return (s:gsub('.', f)) end return f('ab')",
    limits: ROOMY,
    expect: luaError(STACK),
  },
  {
    name: "recursion through gsub with a replacement table whose __index recurses",
    code: "local t t = setmetatable({}, {__index = function(_, k) return (k:gsub('.', t)) end}) " +
      "return ('ab'):gsub('.', t)",
    limits: ROOMY,
    expect: luaError(STACK),
  },
  {
    name: "16 nested gsub levels, then 180 metamethod levels reading a host object at each",
    code: "local t = setmetatable({}, {}) getmetatable(t).__index = function(t, k) local _ = input.user " +
      "return t[k] end local function f(s, n) if n == 0 then return t.x end " +
      "return (s:gsub('.', function(c) return f(c, n - 1) end)) end return f('a', 15)",
    limits: ROOMY,
    expect: luaError(STACK),
  },
  {
    name: "recursion through table.sort comparators",
    code: "local function cmp(a, b) table.sort({3, 2, 1}, cmp) return a < b end table.sort({3, 2, 1}, cmp)",
    limits: ROOMY,
    expect: luaError(STACK),
  },
  {
    name: "recursion through a host object proxy's __index",
    code: "local function f(n) local _ = input.user.name return f(n + 1) + 1 end return f(1)",
    limits: ROOMY,
    expect: MEMORY,
  },
  {
    name: "a chunk with 300 nested parentheses does not compile (parser C stack)",
    code: "return load('return ' .. ('('):rep(300) .. '1' .. (')'):rep(300))",
    expect: {
      check: (v) => {
        const [fn, message] = v as [unknown, string];
        assert.equal(fn, undefined);
        assert.match(message, /overflow|too many|C levels/);
      },
    },
  },
  {
    name: "a policy source with 100,000 nested tables does not crash the parser",
    code: "return " + "{".repeat(100_000) + "}".repeat(100_000),
    expect: { error: LuaSyntaxError, message: STACK },
  },
]);

// KNOWN FINDING (Lua 5.4.4 VM, reported): a table whose `__call` is itself makes one call
// instruction loop in C, shifting the arguments once per link until the stack or the memory cap
// gives out: O(k^2) work with k up to memory / 16 bytes, invisible to the hook (13 s at a 4 MiB
// cap; ~1 minute at the default 8 MiB). Lua 5.5 bounds '__call' chains; 5.4.4 does not, and the
// sandbox cannot intercept later writes to a metatable. Kept as an ignored test with a small cap.
Deno.test({
  name: "redteam C stack: a self-referential __call chain [KNOWN FINDING: Lua 5.4 VM, quadratic in C]",
  ignore: true,
  fn() {
    using sb = new Sandbox({ limits: { ...TIGHT, memory: 1 << 20 } });
    const outcome = measure(() =>
      sb.execute("local t = setmetatable({}, {}) getmetatable(t).__call = t return t()")
    );
    assert.ok(outcome.error instanceof LuaError);
    assert.ok(outcome.cpuMs < 2 * 200 + 50, `took ${outcome.cpuMs} ms`);
  },
});

// Found by this suite: a capability's result used to be pushed in full while the allocator granted
// an overdraft (~1.4 s of host CPU and ~12 MB on a 4 MiB sandbox); the pusher now stops early.
Deno.test({
  name: "redteam memory: a capability result far over the cap stops early",
  fn() {
    const items = Array.from({ length: 200_000 }, (_, i) => `item ${i}`);
    using sb = new Sandbox({ limits: TIGHT, capabilities: { big: () => items } });
    const outcome = measure(() => sb.execute("return #big()"));
    assertError(outcome, MEMORY);
    assert.ok(outcome.cpuMs < 2 * TIGHT.cpuMs + 50, `took ${outcome.cpuMs} ms`);
  },
});
