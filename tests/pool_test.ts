/**
 * PolicyPool: the same decisions as a single engine across workers, capabilities from a module,
 * the bounded queue, the watchdog that replaces a stuck worker, and close.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  LuaLimitError,
  LuaSyntaxError,
  PermissionDeniedError,
  PolicyEngine,
  PolicyPool,
  PoolClosedError,
  PoolOverloadedError,
  PoolTimeoutError,
} from "../mod.ts";
import type { Decision } from "../mod.ts";
import { decideJS, makeRequests } from "../bench/abac_workload.ts";
import { nativeAllocatorChosen } from "../ffi/allocator.ts";
import { imageRegionsSupported } from "../ffi/state_image.ts";
import { runDenoScript } from "./fixtures/deno_child.ts";
import { ChunkBlocks, DataEncoder } from "../lua/data_program.ts";
import { DEFAULT_PLAIN_LIMITS } from "../lua/plain_data.ts";
import { ALLOWED, inputTag, RESULT_SLOTS } from "../policy/pool_worker.ts";

const WORKLOAD = Deno.readTextFileSync(new URL("../examples/abac/workload.lua", import.meta.url));
const CAPABILITIES = new URL("./fixtures/pool_capabilities.ts", import.meta.url);

const ABAC_WITH_DATA = `
return function(input, data)
  local u, r = input.user, input.resource
  if data.blocked[u.id] then return false, "blocked user " .. u.id end
  if u.suspended then return { allow = false, reasons = { "suspended" } } end
  for _, role in ipairs(u.roles) do if role == "admin" then return true, "admin" end end
  if r.owner == u.id then return true, "owner" end
  if input.action == "read" and r.visibility == "public" then return true, "public" end
  for _, g in ipairs(u.groups) do
    if r.acl[g] == input.action then return true, "acl " .. g end
  end
  return false, "no rule allows " .. input.action
end`;

function comparable(d: Decision) {
  return {
    allow: d.allow,
    reasons: d.reasons,
    errors: d.errors,
    value: JSON.parse(JSON.stringify(d.value ?? null)),
    policy: d.policy,
    calls: d.calls,
  };
}

Deno.test("pool: the same decisions as a single engine over 200 ABAC requests", async () => {
  const requests = makeRequests(200);
  const data = { blocked: { u7: true, u13: true } };
  using engine = new PolicyEngine({ data });
  const abac = engine.compile(ABAC_WITH_DATA, { name: "abac" });
  const workload = engine.compile(WORKLOAD, { name: "workload" });
  await using pool = await PolicyPool.create({
    workers: 2,
    data,
    policies: { abac: ABAC_WITH_DATA, workload: WORKLOAD },
  });
  assert.equal(pool.size, 2);
  assert.deepEqual(pool.policies.sort(), ["abac", "workload"]);
  const [fromPool, fromWorkload] = await Promise.all([
    Promise.all(requests.map((r) => pool.evaluate("abac", r))),
    Promise.all(requests.map((r) => pool.evaluate("workload", r))),
  ]);
  let allowed = 0;
  for (const [i, input] of requests.entries()) {
    const expected = abac.evaluate(input);
    assert.deepEqual(comparable(fromPool[i]), comparable(expected), `request ${i}`);
    // a bare boolean travels as numbers only, and comes back the same
    const bare = workload.evaluate(input);
    assert.deepEqual(comparable(fromWorkload[i]), comparable(bare), `workload request ${i}`);
    assert.equal(fromWorkload[i].value, bare.value);
    assert.equal(fromWorkload[i].usage.output, 0);
    assert.equal(fromWorkload[i].allow, decideJS(input));
    if (expected.allow) allowed++;
    // worker-made decisions carry the worker's id and usage
    assert.match(fromPool[i].id, /^[0-9a-f]+-[0-9a-z]+$/);
    assert.equal(typeof fromPool[i].usage.cpuMs, "number");
    assert.ok(fromPool[i].usage.timeMs >= 0);
  }
  assert.ok(allowed > 20 && allowed < 180, `a mix of decisions (${allowed} allowed)`);
  assert.equal(new Set(fromPool.map((d) => d.id)).size, requests.length);
});

Deno.test("pool: requests for different policies in one batch each run their own", async () => {
  const own = (name: string) => `return function(input) return false, "${name} " .. input.n end`;
  await using pool = await PolicyPool.create({
    workers: 1,
    policies: { a: own("a"), b: own("b"), c: own("c") },
  });
  // alternating in one tick: every batch the worker gets names several policies
  const names = Array.from({ length: 300 }, (_, n) => n % 7 === 0 ? "c" : n % 2 === 0 ? "a" : "b");
  const decisions = await Promise.all(names.map((name, n) => pool.evaluate(name, { n })));
  assert.deepEqual(decisions.map((d) => d.reasons), names.map((name, n) => [`${name} ${n}`]));
  assert.deepEqual(decisions.map((d) => d.policy), names);
  // and a batch of one policy names it once
  const same = await Promise.all(Array.from({ length: 300 }, (_, n) => pool.evaluate("b", { n })));
  assert.deepEqual(same.map((d) => d.reasons), Array.from({ length: 300 }, (_, n) => [`b ${n}`]));
});

Deno.test("pool: inputs that are not JSON (Maps, big numbers) reach the workers intact", async () => {
  const source =
    `return function(input) return input.m.k == "v" and input.n == 2^60 and input.x ~= input.x end`;
  using engine = new PolicyEngine();
  const policy = engine.compile(source, { name: "p" });
  await using pool = await PolicyPool.create({ workers: 1, policies: { p: source } });
  const input = { m: new Map([["k", "v"]]), n: 2 ** 60, x: NaN };
  assert.equal(policy.evaluate(input).allow, true);
  assert.equal((await pool.evaluate("p", input)).allow, true);
});

// Renders its input as Lua sees it: types, integer or float, keys in order.
const SHOW_INPUT = `return function(input)
  local function show(v)
    if type(v) ~= "table" then return type(v) .. ":" .. tostring(v) .. ":" .. (math.type(v) or "") end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local out = {}
    for _, k in ipairs(keys) do out[#out + 1] = type(k) .. ":" .. tostring(k) .. "=" .. show(v[k]) end
    return "{" .. table.concat(out, ",") .. "}"
  end
  return true, show(input)
end`;

Deno.test("pool: inputs reach the workers as a single engine copies them", async () => {
  using engine = new PolicyEngine();
  const policy = engine.compile(SHOW_INPUT, { name: "show" });
  await using pool = await PolicyPool.create({ workers: 1, policies: { show: SHOW_INPUT } });
  const inputs: unknown[] = [
    ...makeRequests(20),
    { nan: NaN, negativeZero: -0, max: 2 ** 63, min: -(2 ** 63), big: 2 ** 60, half: 0.5, inf: Infinity },
    { text: "héllo ✓ 😀", lone: "\ud800", nul: "a\0b", long: "y".repeat(3000), "": "" },
    // deno-lint-ignore no-sparse-arrays
    { holes: [1, null, 3, undefined, , 6], nested: [[[]]], empty: {} },
    JSON.parse('{"__proto__": {"x": 1}}'),
    Object.assign(Object.create(null), { bare: true }),
    new Map([["m", 1]]),
    { when: new Date(0) },
    [],
    "text",
    42,
    null,
    undefined,
  ];
  const fromPool = await Promise.all(inputs.map((input) => pool.evaluate("show", input)));
  for (const [i, input] of inputs.entries()) {
    const expected = policy.evaluate(input);
    assert.deepEqual(expected.errors, []);
    assert.deepEqual(fromPool[i].reasons, expected.reasons, `input ${i}`);
  }
});

Deno.test("pool: a worker whose state has little room left decodes its inputs, with the same decisions", async () => {
  // under 1 MiB to spare, a state keeps no known strings: the encoded input is decoded and copied
  const limits = { memory: 512 * 1024 };
  using engine = new PolicyEngine({ limits });
  const policy = engine.compile(SHOW_INPUT, { name: "show" });
  await using pool = await PolicyPool.create({ workers: 1, limits, policies: { show: SHOW_INPUT } });
  const inputs = makeRequests(30);
  const fromPool = await Promise.all(inputs.map((input) => pool.evaluate("show", input)));
  for (const [i, input] of inputs.entries()) {
    assert.deepEqual(fromPool[i].errors, []);
    assert.deepEqual(fromPool[i].reasons, policy.evaluate(input).reasons, `input ${i}`);
  }
});

Deno.test("pool: an input whose getter throws rejects that request only", async () => {
  await using pool = await PolicyPool.create({ workers: 1, policies: { show: SHOW_INPUT } });
  const failing = {
    get broken(): string {
      throw new RangeError("no such field");
    },
  };
  const results = await Promise.allSettled([
    pool.evaluate("show", { a: 1 }),
    pool.evaluate("show", failing),
    pool.evaluate("show", { b: 2 }),
  ]);
  assert.equal(results[0].status, "fulfilled");
  assert.equal(results[1].status, "rejected");
  assert.ok((results[1] as PromiseRejectedResult).reason instanceof RangeError);
  assert.equal(results[2].status, "fulfilled");
  assert.deepEqual((results[2] as PromiseFulfilledResult<Decision>).value.reasons, [
    "{string:b=number:2:integer}",
  ]);
});

Deno.test("pool: symbol keys of an input count for nothing, as in a single engine", async () => {
  const source = `return function(input)
    local n = 0
    for _ in pairs(input) do n = n + 1 end
    for _ in pairs(input.inner) do n = n + 1 end
    return n == 3, tostring(n)
  end`;
  using engine = new PolicyEngine();
  const policy = engine.compile(source, { name: "p" });
  await using pool = await PolicyPool.create({ workers: 1, policies: { p: source } });
  const input = { a: 1, inner: { b: 2, [Symbol("hidden")]: 3 }, [Symbol("also")]: 4 };
  const expected = policy.evaluate(input);
  assert.deepEqual(expected.reasons, ["3"]);
  assert.deepEqual((await pool.evaluate("p", input)).reasons, expected.reasons);
});

Deno.test("pool: decisions whose values are not JSON (NaN, nothing) come back intact", async () => {
  const source = `return function(input)
    if input.kind == "table" then return { allow = true, ratio = 0/0, reasons = { "nan" } } end
    if input.kind == "none" then return end
    return input.kind == "yes"
  end`;
  using engine = new PolicyEngine();
  const policy = engine.compile(source, { name: "p" });
  await using pool = await PolicyPool.create({ workers: 1, policies: { p: source } });
  const inputs = ["table", "none", "yes", "no"].map((kind) => ({ kind }));
  const fromPool = await Promise.all(inputs.map((input) => pool.evaluate("p", input)));
  for (const [i, input] of inputs.entries()) {
    const expected = policy.evaluate(input);
    // a worker's table arrives as a plain object (the engine's has no prototype)
    for (const key of ["allow", "reasons", "errors", "value", "policy", "calls"] as const) {
      assert.deepEqual(fromPool[i][key], structuredClone(expected[key]), `${input.kind}: ${key}`);
    }
    assert.equal(fromPool[i].error?.name, expected.error?.name);
  }
  assert.ok(Number.isNaN((fromPool[0].value as { ratio: number }).ratio));
  assert.equal(fromPool[1].value, undefined);
  assert.equal(fromPool[1].allow, false);
  assert.equal(fromPool[2].value, true);
  assert.equal(fromPool[3].value, false);
});

Deno.test("pool: the input is read when evaluate is called", async () => {
  await using pool = await PolicyPool.create({
    workers: 1,
    policies: { p: `return function(input) return input ~= nil and input.role == "admin" end` },
  });
  const plain = { role: "admin" };
  const withMap = { role: "admin", tags: new Map([["a", 1]]) };
  const pending = [pool.evaluate("p", plain), pool.evaluate("p", withMap), pool.evaluate("p", undefined)];
  plain.role = "guest";
  withMap.role = "guest";
  const [a, b, c] = await Promise.all(pending);
  assert.equal(a.allow, true);
  assert.equal(b.allow, true);
  assert.equal(c.allow, false);
  assert.deepEqual(c.errors, []);
});

Deno.test("pool: an input that cannot be cloned rejects that request only", async () => {
  await using pool = await PolicyPool.create({
    workers: 1,
    policies: { p: `return function() return true end` },
  });
  const results = await Promise.allSettled([
    pool.evaluate("p", {}),
    pool.evaluate("p", { f: () => 1 }),
    pool.evaluate("p", { ok: 1 }),
  ]);
  assert.equal(results[0].status, "fulfilled");
  assert.equal(results[1].status, "rejected");
  assert.equal(results[2].status, "fulfilled");
});

Deno.test("pool: fail-closed decisions keep their typed errors", async () => {
  await using pool = await PolicyPool.create({
    workers: 1,
    capabilitiesModule: CAPABILITIES,
    limits: { instructions: 20_000 },
    policies: {
      spin: `return function() while true do end end`,
      secret: `return function() return secret() == 42 end`,
      bad: `return function() return 1 end`,
    },
  });
  const [spin, secret, bad, missing] = await Promise.all([
    pool.evaluate("spin", {}),
    pool.evaluate("secret", {}),
    pool.evaluate("bad", {}),
    pool.evaluate("nope", {}),
  ]);
  assert.equal(spin.allow, false);
  assert.ok(spin.error instanceof LuaLimitError);
  assert.equal(spin.error.limit, "instructions");
  assert.equal(secret.allow, false);
  assert.ok(secret.error instanceof PermissionDeniedError);
  assert.equal(secret.error.permission, "secret.read");
  assert.deepEqual(secret.calls, [{ name: "secret", ok: false, error: "permission denied" }]);
  assert.equal(bad.allow, false);
  assert.match(bad.errors[0], /got a number/);
  assert.equal(missing.allow, false);
  assert.match(missing.errors[0], /no policy named 'nope'/);
});

Deno.test("pool: capabilities come from a module; permissions per pool and per policy", async () => {
  await using pool = await PolicyPool.create({
    workers: 2,
    capabilitiesModule: CAPABILITIES.href,
    policies: {
      granted: { source: `return function() return secret() == 42 end`, permissions: ["secret.read"] },
      denied: `return function() return secret() == 42 end`,
    },
  });
  const [granted, denied] = await Promise.all([pool.evaluate("granted", {}), pool.evaluate("denied", {})]);
  assert.equal(granted.allow, true, granted.errors.join());
  assert.deepEqual(granted.calls, [{ name: "secret", ok: true }]);
  assert.equal(denied.allow, false);
  await using everyone = await PolicyPool.create({
    workers: 1,
    capabilitiesModule: CAPABILITIES,
    permissions: ["secret.read"],
    policies: { denied: `return function() return secret() == 42 end` },
  });
  assert.equal((await everyone.evaluate("denied", {})).allow, true);
});

Deno.test("pool: a bundle directory", async () => {
  const dir = new URL("../examples/rbac/", import.meta.url);
  const data = JSON.parse(await Deno.readTextFile(new URL("data.json", dir)));
  await using pool = await PolicyPool.create({ workers: 1, dir, data });
  assert.deepEqual(pool.policies, ["rbac"]);
  const d = await pool.evaluate("rbac", { user: "alice", action: "delete", resource: { type: "document" } });
  assert.equal(d.allow, true);
  assert.deepEqual(d.reasons, ["role 'admin' grants document:delete"]);
});

Deno.test("pool: start-up errors reject create() and name the policy and line", async () => {
  await assert.rejects(
    PolicyPool.create({ workers: 2, policies: { broken: `return function()\n  if x = 1 then end\nend` } }),
    (error: unknown) => error instanceof LuaSyntaxError && /^broken:2: /.test(error.message),
  );
  await assert.rejects(
    PolicyPool.create({ workers: 1, capabilitiesModule: "./no/such/module.ts", policies: {} }),
    /module/i,
  );
  const pool = new PolicyPool({ workers: 1, policies: { broken: `return 42` } });
  await assert.rejects(pool.evaluate("broken", {}), /decision function/);
  await assert.rejects(pool.ready);
  await pool.close();
});

Deno.test("pool: bad options are RangeErrors", () => {
  assert.throws(() => new PolicyPool({ workers: 0 }), RangeError);
  assert.throws(() => new PolicyPool({ maxQueue: -1 }), RangeError);
  assert.throws(() => new PolicyPool({ timeoutMs: 1.5 }), RangeError);
});

Deno.test("pool: a full queue rejects with PoolOverloadedError", async () => {
  await using pool = await PolicyPool.create({
    workers: 1,
    window: 2,
    maxQueue: 5,
    capabilitiesModule: CAPABILITIES,
    policies: { slow: `return function() return spin(20) end` },
  });
  const attempts = Array.from({ length: 20 }, () => pool.evaluate("slow", {}));
  const results = await Promise.allSettled(attempts);
  const fulfilled = results.filter((r) => r.status === "fulfilled");
  const overloaded = results.filter((r) =>
    r.status === "rejected" && r.reason instanceof PoolOverloadedError
  );
  // the worker's window (2) plus the queue (5)
  assert.equal(fulfilled.length, 7);
  assert.equal(overloaded.length, 13);
  const error = (overloaded[0] as PromiseRejectedResult).reason as PoolOverloadedError;
  assert.equal(error.name, "PoolOverloadedError");
  assert.equal(error.maxQueue, 5);
  assert.match(error.message, /overloaded/);
  // once the queue drains, requests are accepted again
  assert.equal((await pool.evaluate("slow", {})).allow, true);
});

Deno.test("pool: by default a worker takes a burst of 1024 requests ahead of its replies", async () => {
  await using pool = await PolicyPool.create({
    workers: 1,
    maxQueue: 4,
    policies: { quick: `return function(input) return input.n >= 0 end` },
  });
  const results = await Promise.allSettled(
    Array.from({ length: 1100 }, (_, n) => pool.evaluate("quick", { n })),
  );
  const allowed = results.filter((r) => r.status === "fulfilled" && r.value.allow);
  const overloaded = results.filter((r) =>
    r.status === "rejected" && r.reason instanceof PoolOverloadedError
  );
  // the worker's window (1024) plus the queue (4), every one decided
  assert.equal(allowed.length, 1028);
  assert.equal(overloaded.length, 72);
});

Deno.test("pool: inputs in shared memory arrive intact while earlier ones' memory is written again", async () => {
  await using pool = await PolicyPool.create({
    workers: 2,
    maxQueue: 10_000,
    policies: {
      echo: `return function(input) return true, input.id .. "/" .. #input.pad .. input.pad:sub(-1) end`,
    },
  });
  // each wave starts while the one before is in flight, so blocks of answered waves are written
  // again under the chunks of live ones
  const wave = async (w: number) => {
    const inputs = Array.from({ length: 3000 }, (_, i) => ({ id: `w${w}-${i}`, pad: "xyz".repeat(i % 40) }));
    const decisions = await Promise.all(inputs.map((input) => pool.evaluate("echo", input)));
    decisions.forEach((d, i) => {
      const { id, pad } = inputs[i];
      assert.deepEqual(d.reasons, [`${id}/${pad.length}${pad.slice(-1)}`]);
    });
  };
  let previous: Promise<void> | undefined;
  for (let w = 0; w < 8; w++) {
    const current = wave(w);
    await previous;
    previous = current;
  }
  await previous;
});

Deno.test("pool: a worker stuck in host code is terminated and replaced; its decision fails closed", async () => {
  await using pool = await PolicyPool.create({
    workers: 1,
    timeoutMs: 300,
    capabilitiesModule: CAPABILITIES,
    policies: {
      spin: `return function(input) return spin(input.ms) end`,
      who: `return function() return true, whoami() end`,
    },
  });
  assert.equal(pool.timeoutMs, 300);
  const before = (await pool.evaluate("who", {})).reasons[0];
  const started = performance.now();
  // the stuck request, and others queued behind it in the same worker
  const [stuck, ...others] = await Promise.all([
    pool.evaluate("spin", { ms: 1500 }),
    pool.evaluate("spin", { ms: 1 }),
    pool.evaluate("who", {}),
  ]);
  const elapsed = performance.now() - started;
  assert.equal(stuck.allow, false);
  assert.equal(stuck.errors.length, 1);
  assert.match(stuck.errors[0], /^PoolTimeoutError: policy 'spin' did not decide within 300 ms/);
  assert.ok(stuck.error instanceof PoolTimeoutError);
  assert.equal(stuck.policy, "spin");
  assert.ok(elapsed < 1400, `the watchdog fired after ${elapsed} ms`);
  // the requests behind it ran on the replacement worker
  assert.equal(others[0].allow, true, others[0].errors.join());
  assert.equal(others[1].allow, true);
  assert.notEqual(others[1].reasons[0], before);
  assert.equal(pool.size, 1);
  assert.equal((await pool.evaluate("spin", { ms: 1 })).allow, true);
});

Deno.test("pool: the default deadline is max(1000, 10 x cpuMs)", async () => {
  const policies = { p: `return function() return true end` };
  await using a = new PolicyPool({ workers: 1, policies });
  await using b = new PolicyPool({ workers: 1, policies, limits: { cpuMs: 250 } });
  assert.equal(a.timeoutMs, 1000);
  assert.equal(b.timeoutMs, 2500);
});

Deno.test("pool: close drains what was accepted, then refuses", async () => {
  const pool = new PolicyPool({
    workers: 2,
    policies: { p: `return function(input) return input.i % 2 == 0 end` },
  });
  const pending = Array.from({ length: 50 }, (_, i) => pool.evaluate("p", { i }));
  await pool.close();
  const decisions = await Promise.all(pending);
  assert.deepEqual(decisions.map((d) => d.allow), Array.from({ length: 50 }, (_, i) => i % 2 === 0));
  await assert.rejects(pool.evaluate("p", { i: 0 }), PoolClosedError);
  await pool.close(); // idempotent
});

Deno.test({
  name: "pool: closed workers give back their sandboxes' regions before they are terminated",
  ignore: !imageRegionsSupported() || !nativeAllocatorChosen(),
  async fn() {
    // reading /proc/self/maps takes every permission: the pool runs in a child process that has them
    const child = await runDenoScript(new URL("./fixtures/pool_regions.ts", import.meta.url).pathname, [], {
      allowAll: true,
    });
    assert.equal(child.code, 0, child.stderr);
    const { workers, regions, left } = JSON.parse(child.stdout);
    assert.equal(workers, 2);
    assert.ok(regions >= 4, `${regions} regions: a template and a copy each`);
    assert.deepEqual(left, []);
  },
});

Deno.test("pool: Symbol.asyncDispose closes the pool", async () => {
  let escaped: PolicyPool;
  {
    await using pool = await PolicyPool.create({
      workers: 1,
      policies: { p: `return function() return true end` },
    });
    escaped = pool;
    assert.equal((await pool.evaluate("p", {})).allow, true);
  }
  await assert.rejects(escaped.evaluate("p", {}), PoolClosedError);
});

Deno.test("pool: a decision log on the calling thread", async () => {
  const lines: string[] = [];
  await using pool = await PolicyPool.create({
    workers: 1,
    policies: { p: `return function(input) return input.ok end` },
    decisionLog: { sink: { write: (line) => lines.push(line) }, input: "mask", mask: ["secret"] },
  });
  const d = await pool.evaluate("p", { ok: true, secret: "x" });
  assert.equal(lines.length, 1);
  const entry = JSON.parse(lines[0]);
  assert.equal(entry.id, d.id);
  assert.deepEqual(entry.input, { ok: true, secret: "***" });
});

Deno.test("pool worker: an input whose chunk carries another request's tag fails closed", async () => {
  const worker = new Worker(new URL("../policy/pool_worker.ts", import.meta.url).href, { type: "module" });
  const next = () =>
    new Promise<{ type: string; numbers?: Float64Array; json?: string }>((resolve) => {
      worker.onmessage = (event) => resolve(event.data);
    });
  try {
    const ready = next();
    worker.postMessage({
      type: "init",
      options: { policies: { p: { source: `return function(input) return input.ok end` } } },
    });
    assert.equal((await ready).type, "ready");
    const blocks = new ChunkBlocks();
    const encoder = DataEncoder.detached();
    const start = encoder.chunk({ ok: true }, DEFAULT_PLAIN_LIMITS, blocks, inputTag(1));
    // request 2's chunk, as a pool that took memory back too early would leave it: another's bytes
    encoder.chunk({ ok: true }, DEFAULT_PLAIN_LIMITS, blocks, inputTag(9));
    const block = blocks.current;
    const results = next();
    worker.postMessage({
      type: "batch",
      blocks: [block.buffer],
      spans: [start, block.end],
      seqs: [1, 2],
      names: "p",
    });
    const { numbers, json } = await results;
    assert.deepEqual([numbers![0], numbers![1] & ALLOWED], [1, ALLOWED]);
    assert.deepEqual([numbers![RESULT_SLOTS], numbers![RESULT_SLOTS + 1] & ALLOWED], [2, 0]);
    assert.match(JSON.parse(json!)[0][1][0], /LuaError: .*written over/);
  } finally {
    const closed = next();
    worker.postMessage({ type: "close" });
    await closed;
    worker.terminate();
  }
});
