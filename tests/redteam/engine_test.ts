/**
 * Red team: the policy engine. Evaluation is fail-closed (any error, limit or odd return denies,
 * never throws), globals do not survive a decision, the data document is read-only, and a policy
 * cannot reach what the sandbox hides.
 */
import assert from "node:assert/strict";
import { PolicyEngine } from "../../policy/engine.ts";
import { assertCleanText, LuaLimitError, PermissionDeniedError, TIGHT } from "./_harness.ts";

function engine() {
  return new PolicyEngine({
    limits: TIGHT,
    data: { roles: { ann: "admin" }, list: [1, 2] },
    capabilities: { lookup: { fn: (id: string) => ({ id }), permission: "db" }, now: () => 1 },
  });
}

const DENIES: [string, string][] = [
  ["an error", "return function() error('boom') end"],
  ["an endless loop", "return function() while true do end end"],
  [
    "a limit swallowed by pcall, then true",
    "return function() pcall(function() while true do end end) return true end",
  ],
  ["a truthy string", "return function() return 'true' end"],
  ["a number", "return function() return 1 end"],
  ["nothing", "return function() end"],
  ["a table without allow", "return function() return {reasons = {'x'}} end"],
  ["allow = 'yes'", "return function() return {allow = 'yes'} end"],
  ["allow through __index", "return function() return setmetatable({}, {__index = {allow = true}}) end"],
  ["a function in the reasons", "return function() return true, {print} end"],
  ["writing the data document", "return function(input, data) data.roles.ann = 'x' return true end"],
  ["a denied capability caught by pcall", "return function() pcall(lookup, 1) return true end"],
  [
    "out of memory swallowed by pcall",
    "return function() pcall(function() local s = 'x' while true do s = s .. s end end) return true end",
  ],
  ["a cycle returned", "return function() local t = {allow = true} t.t = t return t end"],
];

for (const [name, source] of DENIES) {
  Deno.test(`redteam engine: ${name} denies, fail-closed, with a clean error`, () => {
    using e = engine();
    const policy = e.compile(source, { name: "p.lua" });
    const decision = policy.evaluate({ user: "ann" });
    assert.equal(decision.allow, false);
    assert.ok(decision.errors.length > 0, `no error for: ${name}`);
    for (const error of decision.errors) assertCleanText(error, "decision error");
    // the engine still decides afterwards
    assert.equal(e.compile("return function() return true end", { name: "ok.lua" }).evaluate({}).allow, true);
  });
}

Deno.test("redteam engine: the typed error of a denial is the limit or the permission", () => {
  using e = engine();
  const loop = e.compile("return function() pcall(function() while true do end end) return true end");
  assert.ok(loop.evaluate({}).error instanceof LuaLimitError);
  const denied = e.compile("return function() local ok = pcall(lookup, 1) return true end");
  assert.ok(denied.evaluate({}).error instanceof PermissionDeniedError);
});

Deno.test("redteam engine: globals assigned by one decision are gone in the next", () => {
  using e = engine();
  const policy = e.compile(
    "return function() counter = (counter or 0) + 1 string = nil return counter == 1 end",
  );
  for (let i = 0; i < 5; i++) assert.equal(policy.evaluate({}).allow, true);
});

Deno.test("redteam engine: a policy cannot plant globals for another policy", () => {
  using e = engine();
  e.compile("return function() print = function() end tostring = nil planted = true return true end")
    .evaluate({});
  const other = e.compile("return function() return planted == nil and type(tostring) == 'function' end");
  assert.equal(other.evaluate({}).allow, true);
});

Deno.test("redteam engine: a chunk that sets its _ENV to a library leaves that library read-only", () => {
  using e = engine();
  e.compile("_ENV = string return function() return true end", { name: "a" }).evaluate({});
  e.compile("_ENV = math return function() return true end", { name: "b" }).evaluate({});
  const other = e.compile(
    `return function()
      local wrote = pcall(function() string.print = 1 end) or pcall(function() math.ipairs = 1 end)
      return not wrote and string.print == nil and math.ipairs == nil and rawget(string, "print") == nil
    end`,
    { name: "c" },
  );
  assert.equal(other.evaluate({}).allow, true);
});

// the input crosses as a copy (writes change only the copy); the data document is read-only
Deno.test("redteam engine: the data document and the input stay unchanged", () => {
  const data = { roles: { ann: "admin" }, list: [1, 2] };
  using e = new PolicyEngine({ limits: TIGHT, data });
  const input = { user: { name: "ann" } };
  const copy = structuredClone(input);
  e.compile(
    "return function(input, data) pcall(function() data.roles.ann = 'x' end) " +
      "pcall(function() input.user.name = 'root' end) return true end",
  ).evaluate(input);
  assert.deepEqual(data, { roles: { ann: "admin" }, list: [1, 2] });
  assert.deepEqual(input, copy);
});

// KNOWN FINDING (policy/engine.ts, reported): a policy's chunk runs once at compile time, so its
// locals (upvalues of the decision function) live across evaluations. A malicious policy can keep
// one request's input and disclose it in a later request's decision, and can grow that state until
// the shared Lua state is out of memory, after which every policy of the engine denies.
Deno.test({
  name: "redteam engine: a decision cannot see an earlier request's input " +
    "[KNOWN FINDING: chunk locals persist across evaluations]",
  ignore: true,
  fn() {
    using e = engine();
    const spy = e.compile(
      "local seen = {} return function(input) seen[#seen + 1] = input.user return {allow = true, reasons = seen} end",
    );
    spy.evaluate({ user: "alice-secret" });
    assert.deepEqual(spy.evaluate({ user: "bob" }).reasons, ["bob"]);
  },
});

Deno.test({
  name: "redteam engine: a policy hoarding memory across evaluations cannot deny every other policy " +
    "[KNOWN FINDING: chunk locals persist across evaluations]",
  ignore: true,
  fn() {
    using e = engine();
    const hog = e.compile(
      "local keep = {} return function() local b = ('x'):rep(100) " +
        "for i = 1, 1000 do keep[#keep + 1] = b .. #keep end return true end",
    );
    for (let i = 0; i < 40; i++) hog.evaluate({});
    const other = e.compile(
      "return function() local b, t = ('y'):rep(100), {} for i = 1, 2000 do t[i] = b .. i end return true end",
    );
    assert.equal(other.evaluate({}).allow, true);
  },
});

Deno.test("redteam engine: a _G replaced by a table with __eq runs nothing outside the next decision's budget", () => {
  let ticks = 0;
  using e = new PolicyEngine({ limits: TIGHT, capabilities: { tick: () => ++ticks } });
  // the engine checks, before the next decision's run starts, whether the policy's table of globals
  // is still its own: a compare that called __eq would run the policy's code with no limit on it
  // (an endless loop there hung the host)
  const policy = e.compile(
    "return function(input) if input.arm then _G = setmetatable({}, {__eq = function() tick() return false end}) end " +
      "return true end",
    { name: "eq.lua" },
  );
  assert.equal(policy.evaluate({ arm: true }).allow, true);
  for (let i = 0; i < 3; i++) {
    const decision = policy.evaluate({ arm: false });
    assert.equal(decision.allow, true);
    assert.deepEqual(decision.errors, []);
  }
  assert.equal(ticks, 0);
});
