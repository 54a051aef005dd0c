import assert from "node:assert/strict";
import { LuaRuntime, LuaSyntaxError } from "../mod.ts";
import { CAPPED, VERSION } from "./helpers.ts";

// Lua 5.1 and LuaJIT compile every time: a chunk's environment is its own there (setfenv)
const KEPT = VERSION !== "5.1";

Deno.test("runtime: execute of the same source runs one compiled chunk, with each call's arguments", () => {
  using lua = new LuaRuntime();
  const code = "return debug.getinfo(1, 'f').func, ...";
  const [first, a] = lua.execute(code, "a") as [unknown, string];
  const [second, b] = lua.execute(code, "b") as [unknown, string];
  assert.deepEqual([a, b], ["a", "b"]);
  assert.equal(lua.execute("return rawequal(...)", first, second), KEPT);
  // eval is execute of "return <code>": kept alike
  const itself = "debug.getinfo(1, 'f').func";
  assert.equal(lua.execute("return rawequal(...)", lua.eval(itself), lua.eval(itself)), KEPT);
});

Deno.test("runtime: a kept chunk that replaced its own globals runs with the global table again", () => {
  using lua = new LuaRuntime();
  lua.execute("x = 'global'");
  // the chunk's _ENV is its first upvalue: replaced, the rest of this run reads the new table
  const code = "local seen = x debug.setupvalue(debug.getinfo(1, 'f').func, 1, { x = 'own' }) return seen, x";
  for (let run = 0; run < 3; run++) {
    assert.deepEqual(lua.execute(code), VERSION === "5.1" ? ["global", "global"] : ["global", "own"]);
  }
  assert.equal(lua.eval("x"), "global");
});

Deno.test("runtime: a chunk run again from inside its own run, and code that does not compile", () => {
  using lua = new LuaRuntime();
  const code = "local n = ... if n < 3 then return again(n + 1) * 10 + n end return n";
  lua.globals().set("again", (n: number) => lua.execute(code, n));
  assert.equal(lua.execute(code, 0), 3210);
  assert.equal(lua.execute(code, 0), 3210);
  // nothing is kept for it: the same error every time
  for (let run = 0; run < 2; run++) {
    assert.throws(
      () => lua.execute("return 1 +"),
      (e) => e instanceof LuaSyntaxError && /unexpected symbol/.test(e.message),
    );
  }
});

Deno.test({
  name: "runtime: the chunks kept under a memory cap hold at most a 32nd of it",
  ignore: !CAPPED,
  fn() {
    using lua = new LuaRuntime({ maxMemory: 256 << 10 });
    for (let i = 0; i < 500; i++) {
      assert.equal(
        lua.execute(`local t = { ${i}, ${i + 1}, ${i + 2} } return t[1] + t[2] + t[3]`),
        3 * i + 3,
      );
    }
    lua.gc();
    assert.ok(lua.memoryUsed() <= (256 << 10) / 32 + 2048, `${lua.memoryUsed()} bytes`);
  },
});

Deno.test({
  name: "runtime: a new memory cap lets the kept chunks go",
  ignore: !CAPPED,
  fn() {
    using lua = new LuaRuntime();
    for (let i = 0; i < 32; i++) lua.execute(`local t = { ${i}, "${"x".repeat(200)}" } return t[1]`);
    lua.gc();
    const kept = lua.memoryUsed();
    assert.ok(kept > 8_000, `${kept} bytes`);
    lua.setMaxMemory(1 << 20);
    lua.gc();
    assert.ok(lua.memoryUsed() < kept - 8_000, `${lua.memoryUsed()} bytes, ${kept} before`);
    assert.equal(lua.execute("return 1"), 1);
  },
});
