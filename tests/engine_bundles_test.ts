/**
 * PolicyEngine.load: bundles of Lua files where `require` resolves within the bundle, modules that
 * return a function are policies, and missing modules and cycles fail clearly.
 *
 * @module
 */

import assert from "node:assert/strict";
import { LuaError, LuaSyntaxError, PolicyEngine } from "../mod.ts";

async function bundle(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "luagate-bundle-" });
  for (const [path, source] of Object.entries(files)) {
    const full = `${dir}/${path}`;
    await Deno.mkdir(full.slice(0, full.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(full, source);
  }
  return dir;
}

async function withBundle(files: Record<string, string>, body: (dir: string) => void | Promise<void>) {
  const dir = await bundle(files);
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("bundle: modules named by path, require across nested dirs, policies found", async () => {
  await withBundle({
    "lib/strings.lua":
      `local u = require("lib.deep.util") return { greet = function(n) return u.prefix .. n end }`,
    "lib/deep/util.lua": `return { prefix = "hello " }`,
    "authz/main.lua": `local s = require("lib.strings")
      return function(input) return true, s.greet(input.name) end`,
    "top.lua": `return function() return false end`,
  }, (dir) => {
    using engine = new PolicyEngine();
    const policies = engine.load(dir);
    assert.deepEqual([...policies.keys()].sort(), ["authz.main", "top"]);
    assert.deepEqual(engine.policies.sort(), ["authz.main", "top"]);
    const d = policies.get("authz.main")!.evaluate({ name: "ann" });
    assert.equal(d.allow, true, d.errors.join());
    assert.deepEqual(d.reasons, ["hello ann"]);
    assert.equal(d.policy, "authz.main");
    assert.equal(engine.policy("top")!.evaluate({}).allow, false);
  });
});

Deno.test("bundle: *_test.lua files are not loaded", async () => {
  await withBundle({
    "p.lua": `return function() return true end`,
    "p_test.lua": `this is not even Lua`,
  }, (dir) => {
    using engine = new PolicyEngine();
    assert.deepEqual([...engine.load(dir).keys()], ["p"]);
  });
});

Deno.test("bundle: a module required by several policies is shared and read-only", async () => {
  await withBundle({
    "lib/config.lua": `return { limit = 3, names = { "a" } }`,
    "a.lua": `local c = require("lib.config") return function(input) return input.n <= c.limit end`,
    "b.lua": `local c = require("lib.config")
      return function() c.limit = 100 return true end`,
    "c.lua": `local c = require("lib.config")
      return function() table.insert(c.names, "x") return true end`,
  }, (dir) => {
    using engine = new PolicyEngine();
    const policies = engine.load(dir);
    assert.equal(policies.get("b")!.evaluate({}).allow, false);
    assert.match(policies.get("b")!.evaluate({}).errors[0], /read-only/);
    assert.equal(policies.get("c")!.evaluate({}).allow, false);
    assert.equal(policies.get("a")!.evaluate({ n: 4 }).allow, false);
    assert.equal(policies.get("a")!.evaluate({ n: 3 }).allow, true);
  });
});

Deno.test("bundle: a module's tables read as plain Lua tables and return their contents", async () => {
  await withBundle({
    "lib/messages.lua": `return { denied = { "not yours", "ask an admin" }, shared = require("lib.shared") }`,
    "lib/shared.lua": `return { "s" }`,
    "p.lua": `local m = require("lib.messages")
      return function()
        return { allow = next(m.denied) == 1 and rawlen(m.denied) == 2 and rawget(m, "shared") == m.shared,
          reasons = m.denied, shared = require("lib.shared") }
      end`,
  }, (dir) => {
    using engine = new PolicyEngine();
    const d = engine.load(dir).get("p")!.evaluate({});
    assert.deepEqual(d.errors, []);
    assert.equal(d.allow, true);
    assert.deepEqual(d.reasons, ["not yours", "ask an admin"]);
    assert.deepEqual((d.value as { shared: unknown }).shared, ["s"]);
  });
});

Deno.test("bundle: require at decision time works too", async () => {
  await withBundle({
    "lib/m.lua": `return { answer = 42 }`,
    "p.lua": `return function() return require("lib.m").answer == 42 end`,
  }, (dir) => {
    using engine = new PolicyEngine();
    assert.equal(engine.load(dir).get("p")!.evaluate({}).allow, true);
  });
});

Deno.test("bundle: a missing module at load names the module", async () => {
  await withBundle({
    "p.lua": `local x = require("lib.nowhere") return function() return true end`,
  }, (dir) => {
    using engine = new PolicyEngine();
    assert.throws(
      () => engine.load(dir),
      (error: unknown) => error instanceof LuaError && /module 'lib\.nowhere' not found/.test(error.message),
    );
  });
});

Deno.test("bundle: a missing module at decision time fails closed", async () => {
  await withBundle({
    "p.lua": `return function() return require("nope") end`,
  }, (dir) => {
    using engine = new PolicyEngine();
    const d = engine.load(dir).get("p")!.evaluate({});
    assert.equal(d.allow, false);
    assert.match(d.errors[0], /module 'nope' not found in the bundle/);
  });
});

Deno.test("bundle: a require cycle is an error naming the module", async () => {
  await withBundle({
    "a.lua": `return require("b")`,
    "b.lua": `return require("a")`,
  }, (dir) => {
    using engine = new PolicyEngine();
    assert.throws(
      () => engine.load(dir),
      (error: unknown) => error instanceof LuaError && /require cycle: module '[ab]'/.test(error.message),
    );
  });
});

Deno.test("bundle: a syntax error names the module file and line", async () => {
  await withBundle({
    "ok.lua": `return function() return true end`,
    "lib/bad.lua": `local x = \nreturn {}`,
  }, (dir) => {
    using engine = new PolicyEngine();
    assert.throws(
      () => engine.load(dir),
      (error: unknown) => error instanceof LuaSyntaxError && /^lib\.bad:2: /.test(error.message),
    );
  });
});

Deno.test("bundle: require only resolves within the bundle (no filesystem, no package.path)", async () => {
  await withBundle({
    "p.lua": `return function()
      local ok1 = pcall(require, "os")
      local ok2 = pcall(require, "io")
      local ok3 = pcall(require, "../../etc/passwd")
      return not ok1 and not ok2 and not ok3 and package == nil
    end`,
  }, (dir) => {
    using engine = new PolicyEngine();
    const d = engine.load(dir).get("p")!.evaluate({});
    assert.equal(d.allow, true, d.errors.join());
  });
});

Deno.test("bundle: modules of one engine are not visible to another", async () => {
  await withBundle({ "lib/m.lua": `return { x = 1 }` }, (dir) => {
    using a = new PolicyEngine();
    using b = new PolicyEngine();
    a.load(dir);
    const d = b.compile(`return function() return require("lib.m").x == 1 end`).evaluate({});
    assert.equal(d.allow, false);
    assert.equal(a.compile(`return function() return require("lib.m").x == 1 end`).evaluate({}).allow, true);
  });
});

Deno.test("bundle: a missing directory throws NotFound", () => {
  using engine = new PolicyEngine();
  assert.throws(() => engine.load("/nonexistent/luagate-bundle"), Deno.errors.NotFound);
});
