/**
 * Red team: capabilities. A failing capability must never read as success (fail-open), its
 * results are plain data only, a capability that was not granted trips the run, and a capability
 * calling back into the same sandbox shares the running budget and is depth-capped.
 */
import assert from "node:assert/strict";
import {
  assertCleanError,
  assertError,
  assertHostIntact,
  assertUsable,
  attackSuite,
  hostGlobals,
  LuaError,
  luaError,
  LuaLimitError,
  LuaStateError,
  measure,
  PermissionDeniedError,
  refused,
  Sandbox,
  snapshot,
  TIGHT,
  value,
} from "./_harness.ts";

const failing = {
  boom: () => {
    throw new Error("boom");
  },
  throwString: () => {
    throw "plain string";
  },
  throwUndefined: () => {
    throw undefined;
  },
  throwNasty: () => {
    throw {
      toString() {
        throw new Error("nested");
      },
    };
  },
  throwGetter: () => {
    const e = new Error("x");
    Object.defineProperty(e, "message", {
      get() {
        throw new Error("getter");
      },
    });
    throw e;
  },
  throwStack: () => {
    const inner = new Error("inner");
    throw new Error(`wrapped: ${inner.stack}`);
  },
  throwPath: () => {
    throw new Deno.errors.NotFound("No such file (os error 2): readfile '/work/main/secret.json'");
  },
  promise: () => Promise.resolve(1),
  thenable: () => ({ then: (ok: (v: unknown) => void) => ok(1) }),
  fn: () => () => 1,
  cyclic: () => {
    const o: Record<string, unknown> = {};
    o.self = o;
    return o;
  },
  deep: () => {
    let o: unknown = 1;
    for (let i = 0; i < 200; i++) o = { o };
    return o;
  },
  symbol: () => Symbol("s"),
  bigint: () => 2n ** 70n,
  getter: () => ({
    get x() {
      throw new Error("getter ran");
    },
  }),
  proxy: () =>
    new Proxy({}, {
      ownKeys() {
        throw new Error("ownKeys ran");
      },
    }),
  objectKeyMap: () => new Map<unknown, unknown>([[{}, 1]]),
  nothing: () => undefined,
  echo: (x: unknown) => x,
  mutate: (t: Record<string, unknown>) => {
    t.injected = true;
    return t;
  },
};

const caps = { options: { capabilities: failing } };

attackSuite("fail-open", [
  {
    name: "a capability that throws is an error in Lua, never nil or success",
    code: "return pcall(boom)",
    ...caps,
    expect: value([false, "boom: boom"]),
  },
  {
    name: "a capability that throws, uncaught: a LuaError naming it",
    code: "return boom()",
    ...caps,
    expect: luaError(/boom: boom/),
  },
  {
    name: "a capability that throws a string / undefined / an object whose toString throws",
    code: "return select('#', pcall(throwString)), pcall(throwUndefined), pcall(throwNasty)",
    ...caps,
    expect: {
      check: (v) => {
        const [n, ok1, ok2] = v as unknown[];
        assert.equal(n, 2);
        assert.equal(ok1, false);
        assert.equal(ok2, false);
      },
    },
  },
  {
    name: "a capability whose error message getter throws",
    code: "local ok, e = pcall(throwGetter) return ok, type(e)",
    ...caps,
    expect: { check: (v) => assert.equal((v as unknown[])[0], false) },
  },
  {
    name: "a capability error carrying a JS stack: no stack reaches Lua or the host message",
    code: "local ok, e = pcall(throwStack) if ok then return 'open' end error(e, 0)",
    ...caps,
    expect: luaError(/^throwStack: wrapped: Error: inner$/),
  },
  {
    name: "a capability error carrying a host path: scrubbed",
    code: "local ok, e = pcall(throwPath) error(e, 0)",
    ...caps,
    expect: luaError(/readfile '<host>'/),
  },
  {
    name: "a capability returning a Promise is an error",
    code: "return promise()",
    ...caps,
    expect: luaError(/returned a promise/),
  },
  {
    name: "a capability returning a thenable is an error",
    code: "return pcall(thenable)",
    ...caps,
    expect: {
      check: (v) => {
        const [ok, e] = v as [boolean, string];
        assert.equal(ok, false);
        assert.match(e, /promise/);
      },
    },
  },
  {
    name: "a capability returning a function is an error (no host function reaches Lua)",
    code: "local ok, e = pcall(fn) return ok, type(e)",
    ...caps,
    expect: value([false, "string"]),
  },
  {
    name: "a capability returning a cyclic object is an error",
    code: "return cyclic()",
    ...caps,
    expect: luaError(/cycl/),
  },
  {
    name: "a capability returning 200 nested levels is an error",
    code: "return deep()",
    ...caps,
    expect: luaError(/nested deeper/),
  },
  {
    name: "a capability returning a symbol or an out-of-range bigint is an error",
    code: "return pcall(symbol), pcall(bigint)",
    ...caps,
    expect: refused(2),
  },
  {
    name: "a capability returning an object with a throwing getter / a throwing Proxy",
    code: "return pcall(getter), pcall(proxy)",
    ...caps,
    expect: refused(2),
  },
  {
    name: "a capability returning a Map with object keys is an error",
    code: "return objectKeyMap()",
    ...caps,
    expect: luaError(/Map key/),
  },
  {
    name: "a capability returning nothing gives nil (and only that)",
    code: "return select('#', nothing()), nothing()",
    ...caps,
    expect: value([1, undefined]),
  },
  {
    name: "a Lua function passed to a capability is an error",
    code: "return echo(print)",
    ...caps,
    expect: luaError(/function cannot be passed/),
  },
  {
    name: "a coroutine passed to a capability is an error",
    code: "return echo(coroutine.create(print))",
    ...caps,
    expect: luaError(/coroutine cannot be passed/),
  },
  {
    name: "a cyclic table passed to a capability is an error",
    code: "local t = {} t.t = t return echo(t)",
    ...caps,
    expect: luaError(/cycl/),
  },
  {
    name: "a capability mutating its argument changes only its own copy",
    code: "local t = {a = 1} local r = mutate(t) return t.injected, r.injected",
    ...caps,
    expect: value([undefined, true]),
  },
  {
    name: "a host object passed through a capability comes back read-only",
    code: "local u = echo(input.user) return pcall(function() u.name = 'eve' end), u.name",
    ...caps,
    expect: {
      check: (v) => {
        const [ok, name] = v as unknown[];
        assert.equal(ok, false);
        assert.equal(name, "ann");
      },
    },
  },
  {
    name: "a capability that was not granted is a PermissionDeniedError",
    code: "return secret()",
    options: { capabilities: { secret: { fn: () => "s3cr3t", permission: "admin" } } },
    expect: { error: PermissionDeniedError },
  },
  {
    name: "a denied capability inside pcall, xpcall and a coroutine is still denied",
    code: "pcall(secret) xpcall(secret, print) coroutine.wrap(function() pcall(secret) end)() return 'open'",
    options: { capabilities: { secret: { fn: () => "s3cr3t", permission: "admin" } } },
    expect: { error: PermissionDeniedError },
  },
  {
    name: "a denied capability's error swallowed by a <close> handler is still denied",
    only: "5.4",
    code:
      "pcall(function() local x <close> = setmetatable({}, {__close = function() error('fine', 0) end}) " +
      "secret() end) return 'open'",
    options: { capabilities: { secret: { fn: () => "s3cr3t", permission: "admin" } } },
    expect: { error: PermissionDeniedError },
  },
  {
    name: "a granted capability works next to a denied one",
    code: "return open()",
    options: {
      capabilities: {
        open: { fn: () => "yes", permission: "read" },
        secret: { fn: () => 1, permission: "admin" },
      },
      permissions: ["read"],
    },
    expect: value("yes"),
  },
]);

Deno.test("redteam fail-open: a denied capability's PermissionDeniedError names it, sandbox usable", () => {
  using sb = new Sandbox({ limits: TIGHT, capabilities: { secret: { fn: () => 1, permission: "admin" } } });
  const outcome = measure(() => sb.execute("return pcall(secret)"));
  assertError(outcome, { error: PermissionDeniedError });
  assert.equal((outcome.error as PermissionDeniedError).capability, "secret");
  assert.equal((outcome.error as PermissionDeniedError).permission, "admin");
  assertUsable(sb);
});

// ------------------------------------------------------------------ re-entrancy

function reentrant(code: string, limits = TIGHT, swallow = false) {
  const globals = hostGlobals();
  const snap = snapshot(globals);
  const calls: number[] = [];
  const sb: Sandbox = new Sandbox({
    limits,
    globals,
    capabilities: {
      again: (inner: string) => {
        calls.push(calls.length);
        if (!swallow) return sb.execute(inner);
        try {
          return sb.execute(inner);
        } catch {
          return "swallowed";
        }
      },
      close: () => sb.close(),
    },
  });
  const outcome = measure(() => sb.execute(code));
  return { sb, outcome, calls, snap };
}

Deno.test("redteam re-entrancy: a nested run shares the outer budget", () => {
  const { sb, outcome, snap } = reentrant(
    "local n = 0 for i = 1, 60000 do n = n + i end return again('local n = 0 for i = 1, 60000 do n = n + i end return n')",
  );
  assertError(outcome, { error: LuaLimitError, limit: "instructions" });
  assertHostIntact(snap);
  assertUsable(sb);
  sb.close();
});

Deno.test("redteam re-entrancy: a nested endless loop stops the whole run", () => {
  const { sb, outcome } = reentrant("return again('while true do end')");
  assertError(outcome, { error: LuaLimitError, limit: "instructions" });
  assert.ok(outcome.cpuMs < 2 * TIGHT.cpuMs + 50);
  assertUsable(sb);
  sb.close();
});

Deno.test("redteam re-entrancy: a capability swallowing the nested limit cannot un-trip it", () => {
  const { sb, outcome } = reentrant("local r = again('while true do end') return r", TIGHT, true);
  assertError(outcome, { error: LuaLimitError, limit: "instructions" });
  assertUsable(sb);
  sb.close();
});

Deno.test("redteam re-entrancy: nested runs are depth-capped", () => {
  const { sb, outcome, calls } = reentrant(
    "local code = 'return again(code)' return again('code = ' .. string.format('%q', code) .. ' ' .. code)",
  );
  // each nested run has a fresh environment, so the chain is built explicitly instead
  void calls;
  assert.ok("error" in outcome);
  assertCleanError(outcome.error);
  assertUsable(sb);
  sb.close();
  const chain = reentrant(
    "return again([[return again([=[return again([==[return again([===[return again([====[return 1]====])]===])]==])]=])]])",
  );
  assertError(chain.outcome, { error: LuaError, message: /nested deeper than/ });
  assertUsable(chain.sb);
  chain.sb.close();
});

Deno.test("redteam re-entrancy: a nested run sees a fresh environment, not the outer one", () => {
  const { sb, outcome } = reentrant(
    "secret = 's3cr3t' local r = again('return secret, type(print)') return r[1], r[2]",
  );
  assert.deepEqual(outcome.value, [undefined, "function"]);
  assertUsable(sb);
  sb.close();
});

Deno.test("redteam re-entrancy: a nested run from inside a coroutine", () => {
  const { sb, outcome } = reentrant(
    "return coroutine.wrap(function() return again('return coroutine.wrap(function() return 41 + 1 end)()') end)()",
  );
  assert.equal(outcome.value, 42);
  assertUsable(sb);
  sb.close();
});

Deno.test("redteam re-entrancy: closing the sandbox from a capability is refused, sandbox usable", () => {
  const { sb, outcome } = reentrant("local ok, e = pcall(close) return ok, e");
  assert.ok(!("error" in outcome), String(outcome.error));
  const [ok, message] = outcome.value as [boolean, string];
  assert.equal(ok, false);
  assert.match(message, /cannot close/);
  assertCleanError(new Error(message));
  assertUsable(sb);
  sb.close();
});

Deno.test("redteam re-entrancy: a nested run's output counts against the same output limit", () => {
  const { sb, outcome } = reentrant(
    "print(('a'):rep(600)) again('print((\"b\"):rep(600))') return 1",
    {
      ...TIGHT,
      output: 1000,
    } as typeof TIGHT,
  );
  assertError(outcome, { error: LuaLimitError, limit: "output" });
  assertUsable(sb);
  sb.close();
});

Deno.test("redteam re-entrancy: a nested syntax error does not break the outer run", () => {
  const { sb, outcome } = reentrant("local ok, e = pcall(again, 'return = 1') return ok, type(e)");
  assert.deepEqual(outcome.value, [false, "string"]);
  assertUsable(sb);
  sb.close();
});

Deno.test("redteam re-entrancy: a closed sandbox says so clearly", () => {
  const sb = new Sandbox({ limits: TIGHT });
  sb.close();
  assert.throws(() => sb.eval("1"), LuaStateError);
  sb.close();
});

Deno.test("redteam re-entrancy: a capability running another sandbox keeps both budgets apart", () => {
  using inner = new Sandbox({ limits: TIGHT });
  using outer = new Sandbox({
    limits: TIGHT,
    capabilities: { other: (code: string) => inner.execute(code) },
  });
  const looping = measure(() =>
    outer.execute("local ok, e = pcall(other, 'while true do end') return ok, e")
  );
  assert.ok(!("error" in looping), String(looping.error));
  const [ok, message] = looping.value as [boolean, string];
  assert.equal(ok, false);
  assert.match(message, /instruction limit exceeded/);
  // the inner limit did not trip the outer run, and both sandboxes go on
  assert.equal(outer.eval("1 + 1"), 2);
  assert.equal(inner.eval("2 + 2"), 4);
  assert.deepEqual(outer.execute("return other('return 6 * 7')"), 42);
});
