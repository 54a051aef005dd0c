/**
 * PolicyEngine.compile: what a policy is, and compile errors that name the policy and the line.
 *
 * @module
 */

import assert from "node:assert/strict";
import { LuaError, LuaMemoryError, LuaSyntaxError, NotAPolicyError, PolicyEngine } from "../mod.ts";
import { runDenoScript } from "./fixtures/deno_child.ts";

Deno.test("compile: a chunk returning a function is a policy, named as given", () => {
  using engine = new PolicyEngine();
  const policy = engine.compile(`return function(input) return input.ok end`, { name: "ok.lua" });
  assert.equal(policy.name, "ok.lua");
  assert.equal(policy.evaluate({ ok: true }).allow, true);
  assert.equal(engine.policy("ok.lua"), policy);
  assert.deepEqual(engine.policies, ["ok.lua"]);
});

Deno.test("compile: the default name is 'policy'", () => {
  using engine = new PolicyEngine();
  assert.equal(engine.compile(`return function() return true end`).name, "policy");
});

Deno.test("compile: a syntax error names the policy and the line", () => {
  using engine = new PolicyEngine();
  const source = `return function(input)\n  local x = 1\n  if x = 2 then return true end\nend`;
  assert.throws(
    () => engine.compile(source, { name: "rbac.lua" }),
    (error: unknown) => {
      assert.ok(error instanceof LuaSyntaxError);
      assert.match(error.message, /^rbac\.lua:3: /);
      return true;
    },
  );
});

Deno.test("compile: an unfinished chunk names the policy and the line at its end", () => {
  using engine = new PolicyEngine();
  assert.throws(
    () => engine.compile(`return function(input)\n  return true\n`, { name: "open.lua" }),
    (error: unknown) =>
      error instanceof LuaSyntaxError && /^open\.lua:3: .*'end' expected/.test(error.message),
  );
});

Deno.test("compile: a runtime error in the chunk names the policy and line", () => {
  using engine = new PolicyEngine();
  assert.throws(
    () =>
      engine.compile(`local t = nil\nlocal x = t.field\nreturn function() return true end`, {
        name: "boom.lua",
      }),
    (error: unknown) => error instanceof LuaError && /^boom\.lua:2: /.test(error.message),
  );
});

Deno.test("compile: a chunk that returns no function is a NotAPolicyError", () => {
  using engine = new PolicyEngine();
  for (const [source, got] of [["return 42", "number"], ["local x = 1", "nothing"], ["return {}", "table"]]) {
    assert.throws(
      () => engine.compile(source, { name: "lib.lua" }),
      (error: unknown) =>
        error instanceof NotAPolicyError && error.message.includes("lib.lua") && error.message.includes(got),
    );
  }
});

Deno.test("compile: binary chunks are refused", () => {
  using engine = new PolicyEngine();
  assert.throws(() => engine.compile("\x1bLua\x54\x00", { name: "bin" }), LuaSyntaxError);
});

Deno.test("compile: a chunk that loops forever at load hits the limits", () => {
  using engine = new PolicyEngine({ limits: { instructions: 10_000 } });
  assert.throws(() => engine.compile(`while true do end`, { name: "spin" }), LuaError);
  // the engine stays usable
  assert.equal(engine.compile(`return function() return true end`).evaluate({}).allow, true);
});

Deno.test("compile: an empty or non-string name is a TypeError", () => {
  using engine = new PolicyEngine();
  assert.throws(() => engine.compile(`return function() return true end`, { name: "" }), TypeError);
});

Deno.test("compile: a later policy of the same name replaces the earlier one", () => {
  using engine = new PolicyEngine();
  engine.compile(`return function() return false end`, { name: "p" });
  engine.compile(`return function() return true end`, { name: "p" });
  assert.equal(engine.policy("p")!.evaluate({}).allow, true);
  assert.deepEqual(engine.policies, ["p"]);
});

Deno.test("compile: a replaced policy still decides, and its Lua memory goes once it is collected", async () => {
  using engine = new PolicyEngine();
  const first = engine.compile(`return function() return false end`, { name: "p" });
  engine.compile(`return function() return true end`, { name: "p" });
  assert.equal(first.evaluate({}).allow, false);

  // collection needs a JS garbage collector the test can drive: a child process with --expose-gc
  const child = await runDenoScript(new URL("fixtures/recompile_release.ts", import.meta.url).pathname, [], {
    flags: ["--v8-flags=--expose-gc"],
  });
  assert.equal(child.code, 0, child.stderr);
  const seen = JSON.parse(child.stdout);
  assert.equal(seen.allow, true);
  assert.equal(seen.within, true);
  assert.match(seen.beyond[0], /^LuaMemoryError: memory limit exceeded/);
  // 200 versions of about 170 KB each: held, they would have broken the 4 MiB cap at the 25th. The
  // count is read without a full collection, and the generational collector lets the heap grow to
  // twice what it kept at its last major collection before the next: about 1 MiB live reads 1 or 2
  assert.ok(seen.kilobytes < 3072, `Lua memory after 200 compiles: ${seen.kilobytes} KiB`);
});

Deno.test("compile: the policies an engine holds are its own memory, not its decisions", () => {
  // 800 policies of about 2.7 KB each in Lua, under a limit of 1 MiB (they used to stop fitting at
  // the 386th, the last with "not enough memory" as a syntax error); a decision still has that limit
  using engine = new PolicyEngine({ limits: { memory: 1 << 20, instructions: 1e8 } });
  const rules = Array.from(
    { length: 10 },
    (_, i) => `if input.kind == "k${i}" then return false, "rule ${i}" end`,
  );
  const source = `local M = {}\nfunction M.check(input)\n${rules.join("\n")}\nend\n` +
    `return function(input) return M.check(input) ~= false end`;
  for (let i = 0; i < 800; i++) engine.compile(source, { name: `p${i}` });
  assert.equal(engine.policy("p0")!.evaluate({ kind: "k3" }).allow, false);
  assert.equal(engine.policy("p799")!.evaluate({ kind: "x" }).allow, true);
  const grow = engine.compile(`return function(input) return #string.rep("x", input.kib << 10) > 0 end`, {
    name: "grow",
  });
  assert.equal(grow.evaluate({ kib: 300 }).allow, true);
  assert.match(grow.evaluate({ kib: 1100 }).errors[0], /^LuaMemoryError: memory limit exceeded/);
});

Deno.test("compile: running out of memory while compiling is a LuaMemoryError naming the policy", () => {
  using engine = new PolicyEngine({ limits: { memory: 600 << 10 } });
  const source = `local t = {\n${Array.from({ length: 20_000 }, (_, i) => `"s${i}",`).join("\n")}\n}\n` +
    `return function() return #t > 0 end`;
  assert.throws(
    () => engine.compile(source, { name: "big.lua" }),
    (e) =>
      e instanceof LuaMemoryError &&
      e.message === "big.lua: memory limit exceeded while compiling (614400 bytes)",
  );
});

Deno.test("compile: a policy of one engine cannot be evaluated by another", () => {
  using a = new PolicyEngine();
  using b = new PolicyEngine();
  const policy = a.compile(`return function() return true end`);
  const decision = b.evaluate(policy, {});
  assert.equal(decision.allow, false);
  assert.match(decision.errors[0], /another engine/);
});

Deno.test("engine: close is idempotent and later use fails closed or throws clearly", () => {
  const engine = new PolicyEngine();
  const policy = engine.compile(`return function() return true end`);
  engine.close();
  engine.close();
  const decision = policy.evaluate({});
  assert.equal(decision.allow, false);
  assert.equal(decision.errors.length, 1);
});
