/**
 * Capabilities in the policy engine: permission gates (engine-wide and per policy), denials that
 * policy code cannot catch, host errors, and the audit trail of calls in every decision.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type Decision, PermissionDeniedError, PolicyEngine } from "../mod.ts";

function engineWith(permissions: string[] = []) {
  const log: unknown[] = [];
  const engine = new PolicyEngine({
    permissions,
    capabilities: {
      now: () => 1_700_000_000,
      lookup: { fn: (id: string) => ({ id, owner: "ann" }), permission: "db.read" },
      remove: { fn: (id: string) => (log.push(id), true), permission: "db.write" },
      fail: () => {
        throw new Error("backend unavailable");
      },
    },
  });
  return { engine, log };
}

Deno.test("capability: an ungated capability is callable by every policy", () => {
  const { engine } = engineWith();
  using _ = engine;
  const d = engine.compile(`return function() return now() > 0 end`).evaluate({});
  assert.equal(d.allow, true);
  assert.deepEqual(d.calls, [{ name: "now", ok: true }]);
});

Deno.test("capability: denied without its permission, as a PermissionDeniedError", () => {
  const { engine } = engineWith();
  using _ = engine;
  const d = engine.compile(`return function(input) return lookup(input.id).owner == "ann" end`).evaluate({
    id: "d1",
  });
  assert.equal(d.allow, false);
  assert.equal(d.errors.length, 1);
  assert.match(d.errors[0], /^PermissionDeniedError: .*'lookup'.*'db\.read'/);
  assert.ok(d.error instanceof PermissionDeniedError);
  assert.equal(d.error.capability, "lookup");
  assert.equal(d.error.permission, "db.read");
});

Deno.test("capability: a denial cannot be caught by pcall, error handlers or coroutines", () => {
  const { engine } = engineWith();
  using _ = engine;
  for (
    const body of [
      `local ok = pcall(lookup, "d1") return true`,
      `local ok = xpcall(lookup, function(e) return e end, "d1") return true`,
      `local co = coroutine.create(function() return lookup("d1") end) coroutine.resume(co) return true`,
      `local f = coroutine.wrap(function() return pcall(lookup, "d1") end) pcall(f) return true`,
      `pcall(function() pcall(lookup, "d1") end) return true`,
    ]
  ) {
    const d = engine.compile(`return function() ${body} end`).evaluate({});
    assert.equal(d.allow, false, body);
    assert.match(d.errors[0] ?? "", /^PermissionDeniedError/, body);
    assert.ok(d.error instanceof PermissionDeniedError, body);
  }
});

Deno.test("capability: granted to the whole engine", () => {
  const { engine } = engineWith(["db.read"]);
  using _ = engine;
  const d = engine.compile(`return function(input) return lookup(input.id).owner == "ann" end`).evaluate({
    id: "d1",
  });
  assert.equal(d.allow, true, d.errors.join());
  assert.deepEqual(d.calls, [{ name: "lookup", ok: true }]);
});

Deno.test("capability: granted per policy only", () => {
  const { engine, log } = engineWith(["db.read"]);
  using _ = engine;
  const source = `return function(input) return remove(input.id) end`;
  const janitor = engine.compile(source, { name: "janitor", permissions: ["db.write"] });
  const viewer = engine.compile(source, { name: "viewer" });
  assert.equal(janitor.evaluate({ id: "d1" }).allow, true);
  const denied = viewer.evaluate({ id: "d2" });
  assert.equal(denied.allow, false);
  assert.ok(denied.error instanceof PermissionDeniedError);
  assert.deepEqual(log, ["d1"]);
  // the grant stays with its policy, decision after decision
  assert.equal(janitor.evaluate({ id: "d3" }).allow, true);
  assert.equal(viewer.evaluate({ id: "d4" }).allow, false);
  assert.deepEqual(log, ["d1", "d3"]);
});

Deno.test("capability: a host error fails closed, with the message and without host paths", () => {
  const { engine } = engineWith();
  using _ = engine;
  const d = engine.compile(`return function() return fail() end`).evaluate({});
  assert.equal(d.allow, false);
  assert.match(d.errors[0], /backend unavailable/);
  assert.doesNotMatch(d.errors[0], /\.ts:\d/);
  assert.equal(d.calls.length, 1);
  assert.equal(d.calls[0].name, "fail");
  assert.equal(d.calls[0].ok, false);
  assert.match(d.calls[0].error ?? "", /backend unavailable/);
});

Deno.test("capability: a host error caught by pcall lets the policy decide", () => {
  const { engine } = engineWith();
  using _ = engine;
  const d = engine.compile(`return function() local ok = pcall(fail) return not ok, "fallback" end`).evaluate(
    {},
  );
  assert.equal(d.allow, true);
  assert.deepEqual(d.reasons, ["fallback"]);
  assert.equal(d.calls[0].ok, false);
});

Deno.test("audit trail: every call in order, denied ones included", () => {
  const { engine } = engineWith(["db.read"]);
  using _ = engine;
  const d = engine.compile(
    `return function()
      now()
      lookup("a")
      pcall(fail)
      lookup("b")
      remove("a")
      return true
    end`,
  ).evaluate({});
  assert.equal(d.allow, false);
  assert.deepEqual(d.calls.map((c) => [c.name, c.ok]), [
    ["now", true],
    ["lookup", true],
    ["fail", false],
    ["lookup", true],
    ["remove", false],
  ]);
  assert.equal(d.calls[4].error, "permission denied");
});

Deno.test("audit trail: each decision has its own calls", () => {
  const { engine } = engineWith();
  using _ = engine;
  const policy = engine.compile(`return function(input) for i = 1, input.n do now() end return true end`);
  assert.equal(policy.evaluate({ n: 3 }).calls.length, 3);
  assert.equal(policy.evaluate({ n: 1 }).calls.length, 1);
  assert.equal(policy.evaluate({ n: 0 }).calls.length, 0);
});

Deno.test("capability: arguments and results are plain data", () => {
  const seen: unknown[] = [];
  using engine = new PolicyEngine({
    capabilities: {
      echo: (value: unknown) => {
        seen.push(value);
        return { got: value, list: [1, 2, 3] };
      },
    },
  });
  const d = engine.compile(
    `return function()
      local r = echo({ a = 1, b = { "x", "y" } })
      return r.got.a == 1 and r.got.b[2] == "y" and #r.list == 3
    end`,
  ).evaluate({});
  assert.equal(d.allow, true, d.errors.join());
  assert.deepEqual(JSON.parse(JSON.stringify(seen)), [{ a: 1, b: ["x", "y"] }]);
});

Deno.test("capability: a function cannot be passed to the host", () => {
  using engine = new PolicyEngine({ capabilities: { take: (_f: unknown) => true } });
  const d = engine.compile(`return function() return take(function() end) end`).evaluate({});
  assert.equal(d.allow, false);
});

Deno.test("capability: an async capability fails closed", () => {
  using engine = new PolicyEngine({ capabilities: { later: () => Promise.resolve(true) } });
  const d = engine.compile(`return function() return later() end`).evaluate({});
  assert.equal(d.allow, false);
  assert.match(d.errors[0], /promise|synchronous/);
});

Deno.test("capability: a capability that is not a function is a TypeError", () => {
  assert.throws(() => new PolicyEngine({ capabilities: { bad: 42 as never } }), TypeError);
});

Deno.test("capability: a policy evaluated from inside a capability fails closed, with a clear error", () => {
  let inner: Decision | undefined;
  const engine: PolicyEngine = new PolicyEngine({
    capabilities: {
      ask: () => {
        inner = engine.policy("inner")!.evaluate({});
        return inner.allow;
      },
    },
  });
  using _ = engine;
  engine.compile(`return function() return true end`, { name: "inner" });
  const outer = engine.compile(`return function() return ask() end`, { name: "outer" }).evaluate({});
  assert.equal(outer.allow, false);
  assert.equal(inner!.allow, false);
  assert.equal(
    inner!.errors[0],
    "LuaError: a policy cannot be evaluated while another evaluation of its engine runs (from a capability)",
  );
  assert.equal(engine.policy("inner")!.evaluate({}).allow, true);
});

Deno.test("capability: each is served by its own function, whatever its name, with its arguments as given", () => {
  const engine = new PolicyEngine({
    capabilities: {
      // the names the host's own functions had when the kernel called them by name through the same C
      // function (now by numbers under 1): a capability of such a name is still its own
      "\u0000clock": () => "a capability, not the clock",
      "\u0000write": (...args: unknown[]) => args.length,
      "12": (n: number) => n * 2,
      first: (...args: unknown[]) => JSON.stringify(args),
    },
  });
  using _ = engine;
  const d = engine.compile(`return function()
    local env = _ENV
    return { allow = true, reasons = {
      env["\\0clock"](),
      tostring(env["\\0write"](1, nil, 3)),
      tostring(env["12"](21)),
      first(7, "12", 1.5, true),
    } }
  end`).evaluate({});
  assert.deepEqual(d.errors, []);
  assert.deepEqual(d.reasons, ["a capability, not the clock", "3", "42", '[7,"12",1.5,true]']);
  assert.deepEqual(d.calls.map((call) => call.name), ["\u0000clock", "\u0000write", "12", "first"]);
});
