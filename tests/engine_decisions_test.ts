/**
 * PolicyEngine.evaluate: the forms of a decision, fail-closed on every error, limit and bad return
 * value, frozen shared data, per-decision globals.
 *
 * @module
 */

import assert from "node:assert/strict";
import { LuaError, LuaLimitError, LuaMemoryError, PolicyEngine } from "../mod.ts";
import type { Decision } from "../mod.ts";

function decide(
  source: string,
  input: unknown = {},
  options: ConstructorParameters<typeof PolicyEngine>[0] = {},
) {
  using engine = new PolicyEngine(options);
  return engine.compile(source, { name: "p" }).evaluate(input);
}

function assertDenied(decision: Decision, error: RegExp): void {
  assert.equal(decision.allow, false);
  assert.equal(decision.errors.length, 1, `errors: ${JSON.stringify(decision.errors)}`);
  assert.match(decision.errors[0], error);
  assert.ok(decision.error instanceof Error);
}

// ------------------------------------------------------------------ reason forms

Deno.test("decision: a boolean", () => {
  const yes = decide(`return function() return true end`);
  assert.equal(yes.allow, true);
  assert.deepEqual(yes.reasons, []);
  assert.deepEqual(yes.errors, []);
  assert.equal(yes.value, true);
  assert.equal(yes.error, undefined);
  assert.equal(decide(`return function() return false end`).allow, false);
});

Deno.test("decision: false, 'reason'", () => {
  const d = decide(`return function() return false, "not the owner" end`);
  assert.equal(d.allow, false);
  assert.deepEqual(d.reasons, ["not the owner"]);
  assert.deepEqual(d.errors, []);
});

Deno.test("decision: true with a reason, and a list of reasons", () => {
  assert.deepEqual(decide(`return function() return true, "admin" end`).reasons, ["admin"]);
  const d = decide(`return function() return false, { "too late", "wrong team" } end`);
  assert.deepEqual(d.reasons, ["too late", "wrong team"]);
});

Deno.test("decision: a table { allow, reasons } and { allow, reason }", () => {
  const d = decide(`return function() return { allow = false, reasons = { "a", "b" }, extra = 7 } end`);
  assert.equal(d.allow, false);
  assert.deepEqual(d.reasons, ["a", "b"]);
  assert.deepEqual({ ...(d.value as object) }, { allow: false, reasons: ["a", "b"], extra: 7 });
  assert.deepEqual(decide(`return function() return { allow = true, reason = "owner" } end`).reasons, [
    "owner",
  ]);
});

Deno.test("decision: an empty reasons table is an empty list", () => {
  const d = decide(
    `return function() local reasons = {} return { allow = #reasons == 0, reasons = reasons } end`,
  );
  assert.equal(d.allow, true);
  assert.deepEqual(d.reasons, []);
  assert.deepEqual(d.errors, []);
});

Deno.test("decision: the input reaches the policy as a table", () => {
  const d = decide(
    `return function(input) return input.user.roles[2] == "admin" and #input.user.roles == 2, input.user.name end`,
    { user: { name: "ann", roles: ["dev", "admin"] } },
  );
  assert.equal(d.allow, true);
  assert.deepEqual(d.reasons, ["ann"]);
});

Deno.test("decision: id, policy, usage and calls are filled in", () => {
  using engine = new PolicyEngine();
  const policy = engine.compile(`return function() return true end`, { name: "p" });
  const a = policy.evaluate({});
  const b = policy.evaluate({});
  assert.equal(typeof a.id, "string");
  assert.notEqual(a.id, b.id);
  assert.equal(a.policy, "p");
  assert.deepEqual(a.calls, []);
  for (const key of ["instructions", "memory", "cpuMs", "output", "timeMs"] as const) {
    assert.equal(typeof a.usage[key], "number", key);
    assert.ok(a.usage[key] >= 0, key);
  }
});

Deno.test("decision: usage.memory is what the decision itself allocated, its input's copy included", () => {
  using engine = new PolicyEngine();
  const policy = engine.compile(
    `return function(input) local s = ("x"):rep(input.n) return #s == input.n end`,
    { name: "p" },
  );
  policy.evaluate({ n: 1 });
  const small = policy.evaluate({ n: 1 });
  const large = policy.evaluate({ n: 200_000 });
  assert.equal(small.allow, true);
  assert.equal(large.allow, true);
  assert.ok(small.usage.memory > 0 && small.usage.memory < 16 << 10, `small: ${small.usage.memory}`);
  assert.ok(large.usage.memory >= 200_000, `large: ${large.usage.memory}`);
  const bigInput = policy.evaluate({ n: 1, pad: "y".repeat(100_000) });
  assert.ok(bigInput.usage.memory >= 100_000, `big input: ${bigInput.usage.memory}`);
});

Deno.test("decision: the copies of earlier inputs never count against a tight memory limit", () => {
  // A policy that allocates nothing never runs the collector itself (before 5.4 it is off while
  // the host pushes): each input copy must make room by collecting the garbage of the ones before.
  using engine = new PolicyEngine({ limits: { memory: 128 << 10 } });
  const policy = engine.compile(`return function(input) return input.action == "read" end`, { name: "p" });
  const errors = new Set<string>();
  let allowed = 0;
  for (let i = 0; i < 5_000; i++) {
    const decision = policy.evaluate({
      user: { id: `u${i}`, roles: ["dev"], groups: [`g${i % 10}`, `g${i % 7}`] },
      resource: { id: `r${i}`, owner: `u${i % 50}`, acl: { g1: "read", g2: "write" } },
      action: i % 2 === 0 ? "read" : "write",
    });
    for (const error of decision.errors) errors.add(error);
    if (decision.allow) allowed++;
  }
  assert.deepEqual([...errors], []);
  assert.equal(allowed, 2_500);
});

Deno.test("decision: what one decision leaves never reaches the next (tostring's ids start over)", () => {
  using engine = new PolicyEngine();
  const many = engine.compile(`return function() for _ = 1, 7 do tostring({}) end return true end`, {
    name: "many",
  });
  const one = engine.compile(`return function() return true, tostring({}) end`, { name: "one" });
  assert.equal(many.evaluate({}).allow, true);
  assert.deepEqual(one.evaluate({}).reasons, ["table: 1"]);
  assert.deepEqual(one.evaluate({}).reasons, ["table: 1"]);
});

Deno.test("decision: ids differ across engines", () => {
  const ids = new Set<string>();
  for (let i = 0; i < 3; i++) ids.add(decide(`return function() return true end`).id);
  assert.equal(ids.size, 3);
});

// ------------------------------------------------------------------ fail-closed

Deno.test("fail-closed: a runtime error denies with the message", () => {
  const d = decide(`return function(input) return input.missing.field end`);
  assertDenied(d, /^LuaError: p:1: attempt to index/);
  assert.ok(d.error instanceof LuaError);
  assert.deepEqual(d.reasons, []);
});

Deno.test("fail-closed: error() with a string or a table", () => {
  assertDenied(decide(`return function() error("boom") end`), /^LuaError: p:1: boom/);
  assertDenied(decide(`return function() error({ code = 7 }) end`), /^LuaError: /);
});

Deno.test("fail-closed: bad return values deny with an error saying why", () => {
  const cases: [string, RegExp][] = [
    [`return nil`, /must return a boolean or a decision table, got nothing/],
    [`return`, /got nothing/],
    [`return 1`, /got a number/],
    [`return "yes"`, /got a string/],
    [`return { "allow" }`, /got an array/],
    [`return { allow = "yes" }`, /'allow' must be a boolean, got a string/],
    [`return { reasons = { "x" } }`, /'allow' must be a boolean, got nothing/],
    [`return true, 42`, /reasons must be a string or a list, got a number/],
    [`return { allow = true, reasons = 42 }`, /'reasons' must be a string or a list/],
  ];
  for (const [body, error] of cases) {
    const d = decide(`return function() ${body} end`);
    assertDenied(d, error);
  }
});

Deno.test("fail-closed: a decision that allowed but failed still denies", () => {
  const d = decide(`return function() return true, 42 end`);
  assert.equal(d.allow, false);
});

Deno.test("fail-closed: the instruction limit", () => {
  const d = decide(`return function() while true do end end`, {}, { limits: { instructions: 50_000 } });
  assertDenied(d, /^LuaLimitError: instruction limit exceeded/);
  assert.ok(d.error instanceof LuaLimitError && d.error.limit === "instructions");
});

Deno.test("fail-closed: the instruction limit cannot be caught by pcall", () => {
  const d = decide(
    `return function() pcall(function() while true do end end) return true end`,
    {},
    { limits: { instructions: 50_000 } },
  );
  assertDenied(d, /instruction limit exceeded/);
});

Deno.test("fail-closed: the memory limit", () => {
  const d = decide(
    `return function() local t = {} for i = 1, 1e7 do t[i] = { i } end return true end`,
    {},
    { limits: { memory: 1 << 20, instructions: 1e9, cpuMs: 5000 } },
  );
  assertDenied(d, /memory limit exceeded/);
  assert.ok(d.error instanceof LuaMemoryError && d.error.limit === "memory");
});

Deno.test("fail-closed: the cpu limit", () => {
  const d = decide(
    `return function() local x = 0 while true do x = x + 1 end end`,
    {},
    { limits: { cpuMs: 20, instructions: 1e12 } },
  );
  assertDenied(d, /cpu time limit exceeded/);
  assert.ok(d.error instanceof LuaLimitError && d.error.limit === "cpu");
});

// The CPU clock is first read a few thousand instructions into a run, and the time before is bounded
// by a reading from before the run began: a thread that waited (on the host, or descheduled by a
// busy machine) longer than the limit used to trip a run that had used microseconds of CPU.
Deno.test("cpu limit: time a decision spends waiting is not CPU time", () => {
  const wait = () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60) === "timed-out";
  const d = decide(
    `return function() local waited = wait() local x = 0 for i = 1, 20000 do x = x + i end return waited end`,
    {},
    { limits: { cpuMs: 30 }, capabilities: { wait } },
  );
  assert.deepEqual(d.errors, []);
  assert.equal(d.allow, true);
  assert.ok(d.usage.timeMs >= 60, `${d.usage.timeMs}`);
  assert.ok(d.usage.cpuMs < 30, `${d.usage.cpuMs}`);
});

Deno.test("fail-closed: the output limit", () => {
  const d = decide(`return function() for i = 1, 100 do print("hello") end return true end`, {}, {
    limits: { output: 64 },
  });
  assertDenied(d, /output limit exceeded/);
  assert.ok(d.error instanceof LuaLimitError && d.error.limit === "output");
});

Deno.test("fail-closed: after a limit the next decision is normal", () => {
  using engine = new PolicyEngine({ limits: { instructions: 50_000 } });
  const policy = engine.compile(
    `return function(input) if input.spin then while true do end end return true end`,
  );
  assert.equal(policy.evaluate({ spin: true }).allow, false);
  const d = policy.evaluate({ spin: false });
  assert.equal(d.allow, true);
  assert.deepEqual(d.errors, []);
});

Deno.test("fail-closed: an input that cannot cross into Lua denies", () => {
  const d = decide(`return function() return true end`, { f: () => 1 });
  assert.equal(d.allow, false);
  assert.equal(d.errors.length, 1);
});

Deno.test("fail-closed: a library function's error names the policy's line and the function", () => {
  using engine = new PolicyEngine();
  const policy = engine.compile(
    `return function(input)
  local seen = {}
  table.insert(seen, 9, input.user)
  return ("x"):rep(input.times)
end`,
    { name: "rules.lua" },
  );
  assert.deepEqual(policy.evaluate({ user: "ann", times: 2 }).errors, [
    "LuaError: rules.lua:3: bad argument #2 to 'insert' (position out of bounds)",
  ]);
  const pcalled = engine.compile(
    `return function(input)
  local ok, err = pcall(string.format, "%d", input.n)
  return false, err
end`,
    { name: "caught.lua" },
  );
  // called by pcall (C), a C function has no caller's line, and its name is its library's, as in Lua
  assert.deepEqual(pcalled.evaluate({ n: 1.5 }).reasons, [
    "bad argument #2 to 'string.format' (number has no integer representation)",
  ]);
});

Deno.test("evaluate never throws", () => {
  using engine = new PolicyEngine({ limits: { instructions: 10_000 } });
  const policy = engine.compile(`return function(input) return input.x.y.z end`);
  for (const input of [undefined, null, 1, "s", [], {}, { x: {} }, new Map([["x", 1]])]) {
    const d = policy.evaluate(input);
    assert.equal(d.allow, false);
  }
});

Deno.test("input: dates, Maps, binary data and bigints, as Lua sees them", () => {
  using engine = new PolicyEngine();
  const policy = engine.compile(
    `return function(input)
  local parts = {
    input.when, input.never, tostring(input.roles.admin), input.roles[7], tostring(input.roles[true]),
    #input.blob, input.blob:byte(1), input.blob:byte(-1), math.type(input.big), tostring(input.big),
    tostring(input.roles.missing), input.list[2].at,
  }
  return false, parts
end`,
    { name: "shapes.lua" },
  );
  const input = {
    user: "ann",
    when: new Date(Date.UTC(2026, 10, 23, 4, 5, 6, 7)),
    never: new Date(NaN),
    roles: new Map<unknown, unknown>([["admin", true], [7, "seven"], [true, "yes"], ["missing", undefined]]),
    blob: new Uint8Array([0, 200, 255]),
    big: 2n ** 62n,
    list: [{ at: new Date(0) }, { at: new Date(-62_198_755_200_000) }],
  };
  // the same answers every time: the first decisions and later ones go through the same builder
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(policy.evaluate(input).reasons, [
      "2026-11-23T04:05:06.007Z",
      "Invalid Date",
      "true",
      "seven",
      "yes",
      "3",
      "0",
      "255",
      "integer",
      "4611686018427387904",
      "nil",
      "-000001-01-01T00:00:00.000Z",
    ]);
  }
});

// ------------------------------------------------------------------ data

Deno.test("data: shared by every policy and decision", () => {
  using engine = new PolicyEngine({ data: { admins: ["ann"], limit: 3 } });
  const a = engine.compile(`return function(input, data) return data.admins[1] == input.user end`, {
    name: "a",
  });
  const b = engine.compile(`return function(input, data) return input.n <= data.limit end`, { name: "b" });
  assert.equal(a.evaluate({ user: "ann" }).allow, true);
  assert.equal(a.evaluate({ user: "bob" }).allow, false);
  assert.equal(b.evaluate({ n: 3 }).allow, true);
});

Deno.test("data: the document is the engine's own: larger than the memory limit, and each decision keeps the limit whole", () => {
  // 5,000 records take some 5 MiB of Lua memory, five times a 1 MiB limit: a decision still makes
  // a string of 300 KiB (some 670 KiB at its peak, as without data) and not one of 1,100 KiB
  const users = Object.fromEntries(
    Array.from(
      { length: 5000 },
      (_, i) => [`u${i}`, { role: ["admin", "dev", "ops"][i % 3], groups: [`g${i % 17}`] }],
    ),
  );
  using engine = new PolicyEngine({ data: { users }, limits: { memory: 1 << 20, instructions: 1e8 } });
  const lookup = engine.compile(
    `return function(input, data) return data.users[input.id].role == "admin" end`,
    {
      name: "lookup",
    },
  );
  assert.equal(lookup.evaluate({ id: "u3000" }).allow, true);
  assert.equal(lookup.evaluate({ id: "u3001" }).allow, false);
  const grow = engine.compile(
    `return function(input) return #string.rep("x", input.kib * 1024) > 0 end`,
    { name: "grow" },
  );
  const within = grow.evaluate({ kib: 300 });
  assert.deepEqual([within.allow, within.errors], [true, []]);
  assert.ok(within.usage.memory >= 600 * 1024, `used ${within.usage.memory}`);
  const beyond = grow.evaluate({ kib: 1100 });
  assertDenied(beyond, /memory limit exceeded/);
  assert.ok(beyond.error instanceof LuaMemoryError);
  assert.equal(lookup.evaluate({ id: "u0" }).allow, true);
});

Deno.test("data: deep-frozen: a policy writing to data fails and the next decision sees the original", () => {
  const data = { roles: { ann: ["admin"] }, list: [1, 2, 3] };
  using engine = new PolicyEngine({ data });
  const writer = engine.compile(
    `return function(input, data) data.roles.ann[1] = "nobody" data.roles.bob = { "admin" } return true end`,
    { name: "writer" },
  );
  const d = writer.evaluate({});
  assert.equal(d.allow, false);
  assert.match(d.errors[0], /read-only/);
  for (
    const body of [
      `data.list[4] = 4`,
      `rawset(data, "x", 1)`,
      `table.insert(data.list, 9)`,
      `setmetatable(data, nil)`,
      `data.roles = nil`,
    ]
  ) {
    const attempt = engine.compile(`return function(input, data) ${body} return true end`, { name: "w2" });
    assert.equal(attempt.evaluate({}).allow, false, body);
  }
  const reader = engine.compile(
    `return function(input, data) return data.roles.ann[1] == "admin" and data.roles.bob == nil and #data.list == 3 end`,
    { name: "reader" },
  );
  assert.equal(reader.evaluate({}).allow, true);
  // the host's object is frozen too
  assert.ok(Object.isFrozen(data) && Object.isFrozen(data.roles.ann));
});

Deno.test("data: iteration over data works", () => {
  const d = decide(
    `return function(input, data)
      local n = 0
      for k, v in pairs(data.m) do n = n + v end
      for i, v in ipairs(data.l) do n = n + v end
      return n == 16, tostring(n)
    end`,
    {},
    { data: { m: { a: 1, b: 2 }, l: [3, 4, 6] } },
  );
  assert.equal(d.allow, true, JSON.stringify(d));
});

Deno.test("data: next, rawget and rawlen see it as plain Lua would", () => {
  const d = decide(
    `return function(input, data)
      local k, v = next(data.m)
      local first = next(data.m, k)
      return true, {
        k .. "=" .. v, tostring(first), tostring(next(data.l, 3)),
        tostring(rawget(data.m, "a")), tostring(rawget(data.l, 2)), tostring(rawget(data, "absent")),
        tostring(rawlen(data.l)), tostring(#data.l), tostring(next(data.empty)),
        tostring(rawget(data.nested, "inner") == data.nested.inner),
      }
    end`,
    {},
    { data: { m: { a: 1 }, l: [3, 4, 6], empty: {}, nested: { inner: { x: 1 } } } },
  );
  assert.deepEqual(d.errors, []);
  assert.deepEqual(d.reasons, ["a=1", "nil", "nil", "1", "4", "nil", "3", "3", "nil", "true"]);
});

Deno.test("data: a policy that returns some of it returns its contents", () => {
  const d = decide(
    `return function(input, data)
      return { allow = false, reasons = data.denied, extra = data.limits, list = { data.limits, 1 } }
    end`,
    {},
    { data: { denied: ["not in the group", "after hours"], limits: { rps: 10, plans: ["free", "pro"] } } },
  );
  assert.deepEqual(d.errors, []);
  assert.deepEqual(d.reasons, ["not in the group", "after hours"]);
  const limits = { rps: 10, plans: ["free", "pro"] };
  assert.deepEqual(
    JSON.parse(JSON.stringify(d.value)),
    { allow: false, reasons: ["not in the group", "after hours"], extra: limits, list: [limits, 1] },
  );
});

Deno.test("data: absent data is nil", () => {
  assert.equal(decide(`return function(input, data) return data == nil end`).allow, true);
});

// ------------------------------------------------------------------ per-decision globals

Deno.test("globals: what a decision assigns is gone in the next one", () => {
  using engine = new PolicyEngine();
  const policy = engine.compile(
    `return function(input)
      local before = seen
      seen = input.id
      return before == nil, tostring(before)
    end`,
  );
  assert.equal(policy.evaluate({ id: 1 }).allow, true);
  const second = policy.evaluate({ id: 2 });
  assert.equal(second.allow, true, `a global leaked: ${second.reasons}`);
});

Deno.test("globals: those the chunk defined at load stay readable; reassigning them is per decision", () => {
  using engine = new PolicyEngine();
  const policy = engine.compile(
    `LIMIT = 10
    local function helper(x) return x <= LIMIT end
    return function(input)
      local ok = helper(input.n)
      LIMIT = 0
      return ok
    end`,
  );
  assert.equal(policy.evaluate({ n: 5 }).allow, true);
  assert.equal(policy.evaluate({ n: 5 }).allow, true);
});

Deno.test("globals: the input of one decision is not visible to the next", () => {
  using engine = new PolicyEngine();
  const policy = engine.compile(
    `return function(input) _G.last = _G.last or input.secret return _G.last == input.secret end`,
  );
  assert.equal(policy.evaluate({ secret: "a" }).allow, true);
  assert.equal(policy.evaluate({ secret: "b" }).allow, true);
});

Deno.test("globals: policies do not see each other's globals", () => {
  using engine = new PolicyEngine();
  engine.compile(`shared = "from a" return function() return true end`, { name: "a" });
  const b = engine.compile(`return function() return shared == nil end`, { name: "b" });
  assert.equal(b.evaluate({}).allow, true);
});

Deno.test("globals: a library global the policy replaced, kept or deleted at load reads as it left it", () => {
  using engine = new PolicyEngine({ capabilities: { limit: () => 3 } });
  const policy = engine.compile(
    `function type(v) return "mine" end
    local G = _G
    return function(input)
      if input.drop then G.ipairs = nil G.limit = nil end
      return type(1) == "mine" and ipairs ~= nil and math.floor(2.5) == 2 and limit() == 3
    end`,
  );
  assert.equal(policy.evaluate({}).allow, true);
  // deleted from the policy's own globals, both still read through to the engine's
  assert.equal(policy.evaluate({ drop: true }).allow, true);
  assert.equal(policy.evaluate({}).allow, true);
});

Deno.test("sandbox: no io, no os.execute, no host bridge in policies", () => {
  const d = decide(
    `return function()
      return io == nil and os.execute == nil and os.exit == nil and js == nil and debug == nil
        and package == nil and dofile == nil and loadfile == nil and string.dump == nil
    end`,
  );
  assert.equal(d.allow, true, JSON.stringify(d.errors));
});
