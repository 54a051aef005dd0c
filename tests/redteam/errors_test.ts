/**
 * Red team: error replacement (a catch point or handler turning a limit into an innocent error or
 * a normal return), error values that attack the host's formatting, and finalizers.
 */
import assert from "node:assert/strict";
import {
  assertCleanError,
  assertUsable,
  attackSuite,
  LuaError,
  luaError,
  LuaLimitError,
  LuaMemoryError,
  measure,
  Sandbox,
  TIGHT,
  value,
} from "./_harness.ts";

const INSTRUCTIONS = { error: LuaLimitError, limit: "instructions" } as const;
const MEMORY = { error: LuaMemoryError, limit: "memory" } as const;
/** Limits for memory attacks: enough instructions and time to reach the 4 MiB cap. */
const ROOMY = { ...TIGHT, instructions: 20_000_000, cpuMs: 2000 };

attackSuite("error replacement", [
  {
    name: "a <close> variable replacing the limit error with an innocent one",
    only: "5.4",
    code: "local ok, e = pcall(function() " +
      "local x <close> = setmetatable({}, {__close = function() error('innocent', 0) end}) " +
      "while true do end end) return ok, e",
    expect: INSTRUCTIONS,
  },
  {
    name: "a <close> variable returning normally after the limit (the run must not return)",
    only: "5.4",
    code: "do local x <close> = setmetatable({}, {__close = function() return 'fine' end}) " +
      "while true do end end return 'escaped'",
    expect: INSTRUCTIONS,
  },
  {
    name: "an xpcall handler returning an innocent value after the limit",
    code: "return xpcall(function() while true do end end, function() return 'ok' end)",
    expect: INSTRUCTIONS,
  },
  {
    name: "an xpcall handler looping forever after the limit (hooks are off in a handler)",
    code: "return xpcall(function() while true do end end, function() while true do end end)",
    expect: INSTRUCTIONS,
  },
  {
    name: "an xpcall handler that errors after the limit",
    code: "return xpcall(function() while true do end end, function() error('other') end)",
    expect: INSTRUCTIONS,
  },
  {
    name: "a pcall'd limit ignored and the run returning normally",
    code: "pcall(function() while true do end end) return 'escaped'",
    expect: INSTRUCTIONS,
  },
  {
    name: "a limit error caught by coroutine.resume and ignored",
    code: "coroutine.resume(coroutine.create(function() while true do end end)) return 'escaped'",
    expect: INSTRUCTIONS,
  },
  {
    name: "a limit inside coroutine.wrap caught by an outer pcall",
    code: "pcall(coroutine.wrap(function() while true do end end)) return 'escaped'",
    expect: INSTRUCTIONS,
  },
  {
    name: "coroutine.close of a coroutine stopped by a limit, from a <close> handler (hooks off there)",
    only: "5.4",
    code: "local co = coroutine.create(function() " +
      "local x <close> = setmetatable({}, {__close = function() while true do end end}) while true do end end) " +
      "local y <close> = setmetatable({}, {__close = function() coroutine.close(co) end}) coroutine.resume(co)",
    expect: INSTRUCTIONS,
  },
  {
    name: "an error table whose __tostring says 'ok', after the limit",
    code: "pcall(function() while true do end end) " +
      "error(setmetatable({}, {__tostring = function() return 'all good' end}))",
    expect: INSTRUCTIONS,
  },
  {
    name: "forging the limit message does not make a limit error",
    code: "error('instruction limit exceeded', 0)",
    expect: luaError(/^instruction limit exceeded$/),
  },
  {
    name: "forging the memory message does not make a memory error",
    code: "error('not enough memory', 0)",
    expect: luaError(/^not enough memory$/),
  },
  {
    // 5.4 reports every refused allocation in Lua's own two words; only 5.3's buffers use these
    name: "forging 5.3's buffer message on 5.4 is an ordinary error, caught like any other",
    only: "5.4",
    code: "local ok, e = pcall(error, 'x: not enough memory for buffer allocation', 0) " +
      "local whole, w = pcall(error, 'not enough memory for buffer allocation', 0) " +
      "local caught = 0 for i = 1, 50 do if not pcall(error, i) then caught = caught + 1 end end " +
      "return ok, e, whole, w, caught",
    expect: value([
      false,
      "x: not enough memory for buffer allocation",
      false,
      "not enough memory for buffer allocation",
      50,
    ]),
  },
  {
    name: "an out-of-memory error swallowed by pcall in a loop stays a memory error",
    code: "local t = {} while true do pcall(function() t[#t + 1] = ('x'):rep(64 * 1024) .. #t end) end",
    limits: ROOMY,
    expect: MEMORY,
  },
  {
    name: "an out-of-memory error swallowed by load returning nil",
    code: "local src = string.rep('x = {1, 2, 3}; ', 60000) local f, e = load(src) return f == nil, e",
    limits: { ...ROOMY, memory: 1 << 20 },
    expect: MEMORY,
  },
  {
    name: "an out-of-memory error from an oversized capability result, swallowed by a <close> handler",
    only: "5.4",
    code: "local ok, e = pcall(function() " +
      "local x <close> = setmetatable({}, {__close = function() error('innocent', 0) end}) big() end) " +
      "return ok, e",
    limits: { ...ROOMY, memory: 1 << 20 },
    options: { capabilities: { big: () => "x".repeat(2 << 20) } },
    expect: MEMORY,
  },
]);

// KNOWN FINDING (reported, not fixed here): on Lua 5.4 a `__close` handler can replace an
// out-of-memory error raised by Lua itself with an innocent error, and the run then returns
// normally. The cap held (the allocation was refused), but the memory limit is not sticky. The
// host cannot tell such a refusal from one that Lua's emergency collection recovered from; the
// proposed fix is an allocator counter of refusals Lua did not recover from (a request refused
// again on Lua's retry), checked by the host after every run.
Deno.test({
  name: "redteam error replacement: a <close> handler swallowing a Lua out-of-memory error " +
    "[KNOWN FINDING: needs an allocator 'unrecovered refusal' counter]",
  ignore: true,
  fn() {
    using sb = new Sandbox({ limits: { ...ROOMY, memory: 1 << 20 } });
    const outcome = measure(() =>
      sb.execute(
        "local ok, e = pcall(function() " +
          "local x <close> = setmetatable({}, {__close = function() error('innocent', 0) end}) " +
          "local t = {} while true do t[#t + 1] = {} end end) return ok, e",
      )
    );
    assert.ok(outcome.error instanceof LuaMemoryError, "the memory limit was swallowed");
  },
});

attackSuite("host error paths", [
  {
    name: "error(table with a __tostring that errors) reaching host formatting",
    code: "error(setmetatable({}, {__tostring = function() error('x') end}))",
    expect: luaError(/error object is a table value/),
  },
  {
    name: "error(table with a __tostring that loops)",
    code: "error(setmetatable({}, {__tostring = function() while true do end end}))",
    expect: luaError(/error object is a table value/),
  },
  {
    name: "error(table with a __tostring returning a huge string)",
    code: "error(setmetatable({}, {__tostring = function() return ('x'):rep(100000) end}))",
    expect: luaError(/error object is a table value/),
  },
  {
    name: "error(cyclic table): the raw value cannot be copied, the message stays",
    code: "local t = {} t.t = t error(t)",
    expect: {
      error: LuaError,
      message: /error object is a table value/,
    },
  },
  {
    name: "error(deeply nested table)",
    code: "local t = {} for i = 1, 10000 do t = {t} end error(t)",
    expect: luaError(/error object is a table value/),
  },
  {
    name: "error(coroutine), error(function), error(nil)",
    code: "local which = ... if which == 1 then error(coroutine.create(print)) end error(print)",
    args: [1],
    expect: luaError(/error object is a thread value/),
  },
  {
    name: "error(nil) is a plain LuaError",
    code: "error(nil)",
    expect: luaError(/nil/),
  },
  {
    name: "an error message with a forged address is scrubbed",
    code: "error('at 0x7ffd1234abcd', 0)",
    expect: luaError(/^at 0x\?$/),
  },
  {
    name: "an error message with a forged host path is scrubbed",
    code: "error('see file:///work/main/policy/kernel.ts:12:3', 0)",
    expect: luaError(/^see <host>$/),
  },
  {
    name: "a __name in a metatable cannot inject an address into an argument error",
    code: "return math.floor(setmetatable({}, {__name = 'x 0x7ffd1234abcd'}))",
    expect: luaError(/number expected, got x 0x\?/),
  },
]);

attackSuite("finalizers", [
  {
    name: "setmetatable({}, {__gc = function() while true do end end}) is refused",
    code: "setmetatable({}, {__gc = function() while true do end end})",
    expect: luaError(/__gc are not allowed/),
  },
  {
    name: "__gc = false (to be swapped later) is refused",
    code: "setmetatable({}, {__gc = false})",
    expect: luaError(/__gc are not allowed/),
  },
  {
    name: "__gc added to the metatable after setmetatable never runs",
    code: "local mt = {} for i = 1, 100 do setmetatable({}, mt) end " +
      "mt.__gc = function() while true do end end " +
      "local junk = {} for i = 1, 20000 do junk[i % 100 + 1] = {i} end return 'done'",
    limits: { ...TIGHT, instructions: 1_000_000 },
    expect: value("done"),
  },
  {
    name: "__gc inherited through the metatable's own __index is not a finalizer",
    code: "local mt = setmetatable({}, {__index = {__gc = function() while true do end end}}) " +
      "for i = 1, 100 do setmetatable({}, mt) end " +
      "local junk = {} for i = 1, 20000 do junk[i % 100 + 1] = {i} end return 'done'",
    limits: { ...TIGHT, instructions: 1_000_000 },
    expect: value("done"),
  },
  {
    name: "weak tables and ephemerons are harmless",
    code: "local w = setmetatable({}, {__mode = 'kv'}) for i = 1, 1000 do local k = {} w[k] = {k} end " +
      "local e = setmetatable({}, {__mode = 'k'}) local a = {} e[a] = a return type(next(w)) ~= 'x'",
    expect: value(true),
  },
]);

Deno.test("redteam finalizers: a __gc added after setmetatable does not run in a later run either", () => {
  // bounded by its instructions: at 200 ms of CPU, a slow spell of the machine stopped the portable
  // path's runs (190-230 ms each here) before they ended
  using sb = new Sandbox({ limits: { ...TIGHT, instructions: 2_000_000, cpuMs: 2000 } });
  sb.execute(
    "local mt = {} for i = 1, 500 do setmetatable({}, mt) end mt.__gc = function() while true do end end",
  );
  for (let i = 0; i < 5; i++) {
    const outcome = measure(() =>
      sb.execute("local junk = {} for i = 1, 50000 do junk[i % 100 + 1] = {i} end return 1")
    );
    assert.equal(outcome.value, 1, String(outcome.error));
  }
  assertUsable(sb);
});

Deno.test("redteam host error paths: error messages with control characters stay one typed error", () => {
  using sb = new Sandbox({ limits: TIGHT });
  const outcome = measure(() => sb.execute("error('\\27[31mred\\0nul\\255\\254', 0)"));
  assert.ok(outcome.error instanceof LuaError);
  assertCleanError(outcome.error);
  assertUsable(sb);
});
