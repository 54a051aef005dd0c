/**
 * The decision log: JSON Lines per decision, with the input hashed (default) or copied with fields
 * masked, to a sink or a file.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { DecisionLog, type DecisionLogEntry, FileLogSink, PolicyEngine } from "../mod.ts";

const POLICY = `return function(input) return input.user.role == "admin", "role " .. input.user.role end`;

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

Deno.test("log: hash mode (the default) records the decision and a SHA-256 of the canonical input", () => {
  const lines: string[] = [];
  using engine = new PolicyEngine({ decisionLog: { sink: { write: (line) => lines.push(line) } } });
  const policy = engine.compile(POLICY, { name: "admin" });
  const d = policy.evaluate({ user: { role: "admin", email: "ann@example.com" } });
  assert.equal(lines.length, 1);
  const entry = JSON.parse(lines[0]) as DecisionLogEntry;
  assert.equal(entry.id, d.id);
  assert.equal(entry.policy, "admin");
  assert.equal(entry.allow, true);
  assert.deepEqual(entry.reasons, ["role admin"]);
  assert.deepEqual(entry.errors, []);
  assert.equal(typeof entry.usage.cpuMs, "number");
  assert.ok(!Number.isNaN(Date.parse(entry.time)));
  assert.equal(entry.input, undefined);
  assert.equal(entry.input_sha256, sha256(`{"user":{"email":"ann@example.com","role":"admin"}}`));
  assert.doesNotMatch(lines[0], /ann@example\.com/);
});

Deno.test("log: equal inputs hash alike whatever the key order", () => {
  const lines: string[] = [];
  using engine = new PolicyEngine({ decisionLog: { sink: { write: (line) => lines.push(line) } } });
  const policy = engine.compile(POLICY);
  policy.evaluate({ user: { role: "dev", id: 1 } });
  policy.evaluate({ user: { id: 1, role: "dev" } });
  policy.evaluate({ user: { id: 2, role: "dev" } });
  const hashes = lines.map((l) => JSON.parse(l).input_sha256);
  assert.equal(hashes[0], hashes[1]);
  assert.notEqual(hashes[0], hashes[2]);
});

Deno.test("log: mask mode copies the input with the masked fields hidden", () => {
  const lines: string[] = [];
  using engine = new PolicyEngine({
    decisionLog: {
      sink: { write: (line) => lines.push(line) },
      input: "mask",
      mask: ["user.email", "token", "absent.path"],
    },
  });
  engine.compile(POLICY).evaluate({
    user: { role: "dev", email: "bob@example.com" },
    token: "s3cret",
    path: "/x",
  });
  const entry = JSON.parse(lines[0]);
  assert.deepEqual(entry.input, { path: "/x", token: "***", user: { email: "***", role: "dev" } });
  assert.equal(entry.input_sha256, undefined);
  assert.doesNotMatch(lines[0], /bob@example|s3cret/);
});

Deno.test("log: failed decisions are logged with their errors", () => {
  const lines: string[] = [];
  using engine = new PolicyEngine({ decisionLog: { sink: { write: (line) => lines.push(line) } } });
  engine.compile(POLICY).evaluate({});
  const entry = JSON.parse(lines[0]);
  assert.equal(entry.allow, false);
  assert.equal(entry.errors.length, 1);
});

Deno.test("log: an input the log cannot write (a cycle) still gets its decision, logged without it", () => {
  for (const input of ["hash", "mask"] as const) {
    const lines: string[] = [];
    using engine = new PolicyEngine({ decisionLog: { sink: { write: (line) => lines.push(line) }, input } });
    const policy = engine.compile(`return function() return true end`, { name: "any" });
    const cyclic: Record<string, unknown> = { user: { role: "admin" } };
    cyclic.self = cyclic;
    const d = policy.evaluate(cyclic);
    assert.equal(d.allow, false);
    assert.match(d.errors[0], /cyclic/);
    assert.equal(lines.length, 1);
    const entry = JSON.parse(lines[0]) as DecisionLogEntry;
    assert.equal(entry.id, d.id);
    assert.match(entry.input_error!, /^RangeError: /);
    assert.equal(entry.input_sha256, undefined);
    assert.equal(entry.input, undefined);
  }
});

Deno.test("log: a file sink appends JSON Lines, flushed on flush() and close()", async () => {
  const path = await Deno.makeTempFile({ prefix: "luagate-log-", suffix: ".jsonl" });
  try {
    await Deno.writeTextFile(path, `{"earlier":true}\n`);
    const engine = new PolicyEngine({ decisionLog: { sink: path } });
    const policy = engine.compile(POLICY, { name: "admin" });
    for (let i = 0; i < 3; i++) policy.evaluate({ user: { role: i === 0 ? "admin" : "dev" } });
    engine.flush();
    let lines = (await Deno.readTextFile(path)).trim().split("\n");
    assert.equal(lines.length, 4);
    for (let i = 0; i < 100; i++) policy.evaluate({ user: { role: "dev" } });
    engine.close();
    lines = (await Deno.readTextFile(path)).trim().split("\n");
    assert.equal(lines.length, 104);
    assert.deepEqual(JSON.parse(lines[0]), { earlier: true });
    const entries = lines.slice(1).map((l) => JSON.parse(l));
    assert.deepEqual(entries.slice(0, 3).map((e) => e.allow), [true, false, false]);
    assert.equal(new Set(entries.map((e) => e.id)).size, 103);
    assert.ok(entries.every((e) => e.policy === "admin" && typeof e.input_sha256 === "string"));
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("log: FileLogSink and DecisionLog can be used directly", async () => {
  const path = await Deno.makeTempFile({ prefix: "luagate-log-" });
  try {
    const log = new DecisionLog({ sink: new FileLogSink(path), input: "mask", mask: ["password"] });
    log.record({
      allow: false,
      reasons: ["r"],
      errors: [],
      value: false,
      usage: { instructions: 1, memory: 2, cpuMs: 3, output: 4, timeMs: 5 },
      id: "x-1",
      policy: "p",
      calls: [],
    }, { password: "hunter2", user: "ann" });
    log.close();
    const entry = JSON.parse(await Deno.readTextFile(path));
    assert.equal(entry.id, "x-1");
    assert.deepEqual(entry.input, { password: "***", user: "ann" });
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("log: an unknown input mode is a TypeError", () => {
  assert.throws(() => new DecisionLog({ sink: { write() {} }, input: "raw" as never }), TypeError);
});
