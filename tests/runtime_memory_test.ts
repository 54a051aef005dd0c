import assert from "node:assert/strict";
import { LuaError, LuaMemoryError, LuaRuntime, LuaStateError } from "../mod.ts";
import { assertUsable, CAPPED, fn, IMPLEMENTATION } from "./helpers.ts";

const NO_CAP = !CAPPED;
const SKIP = NO_CAP ? ` [skipped: ${IMPLEMENTATION} refuses custom allocators, no memory cap]` : "";

Deno.test({
  name: "lupa: memoryUsed() is 0 right after start-up, memoryUsed(true) includes the runtime" + SKIP,
  ignore: NO_CAP,
  fn() {
    using lua = new LuaRuntime({ maxMemory: 0 });
    assert.equal(lua.memoryUsed(), 0);
    const total = lua.memoryUsed(true);
    assert.ok(total > 0, `total ${total}`);
    assert.ok(total < 1 << 20, `start-up footprint ${total} should be well under 1 MB`);
  },
});

Deno.test({
  name: "lupa: memoryUsed() grows with what Lua keeps and shrinks after gc" + SKIP,
  ignore: NO_CAP,
  fn() {
    using lua = new LuaRuntime();
    const before = lua.memoryUsed();
    lua.execute("big = string.rep('x', 1000000)");
    const during = lua.memoryUsed();
    assert.ok(during - before >= 1_000_000, `grew by ${during - before}`);
    assert.equal(lua.memoryUsed(true) - lua.memoryUsed(), lua.memoryUsed(true) - during);
    lua.execute("big = nil");
    lua.gc();
    assert.ok(lua.memoryUsed() < during - 900_000, `after gc ${lua.memoryUsed()}`);
  },
});

Deno.test({
  name: "lupa: hitting maxMemory is a LuaMemoryError, and the runtime recovers" + SKIP,
  ignore: NO_CAP,
  fn() {
    using lua = new LuaRuntime({ maxMemory: 1 << 20 });
    assert.throws(() => lua.eval("string.rep('a', 4 * 1024 * 1024)"), (e: unknown) => {
      assert.ok(e instanceof LuaMemoryError);
      assert.ok(e instanceof LuaError);
      assert.equal(e.limit, "memory");
      assert.match(e.message, /not enough memory/);
      return true;
    });
    assertUsable(lua);
    assert.equal(lua.eval("#string.rep('a', 1000)"), 1000);
  },
});

Deno.test({
  name: "lupa: set_max_memory(100) then string.rep('a', 1000) is a LuaMemoryError" + SKIP,
  ignore: NO_CAP,
  fn() {
    using lua = new LuaRuntime({ maxMemory: 0 });
    lua.setMaxMemory(100);
    assert.throws(() => lua.eval("string.rep('a', 1000)"), LuaMemoryError);
    lua.setMaxMemory(0);
    assert.equal(lua.eval("#string.rep('a', 1000)"), 1000);
  },
});

Deno.test({
  name: "lupa: getMaxMemory reports the cap, 0 or less means none" + SKIP,
  ignore: NO_CAP,
  fn() {
    using lua = new LuaRuntime();
    assert.equal(lua.getMaxMemory(), 0);
    lua.setMaxMemory(5_000_000);
    assert.equal(lua.getMaxMemory(), 5_000_000);
    lua.setMaxMemory(-1);
    assert.equal(lua.getMaxMemory(), 0);
    using capped = new LuaRuntime({ maxMemory: 123_456 });
    assert.equal(capped.getMaxMemory(), 123_456);
    assert.throws(() => capped.setMaxMemory(NaN), TypeError);
  },
});

Deno.test({
  name: "raising the limit lets a failed allocation succeed" + SKIP,
  ignore: NO_CAP,
  fn() {
    using lua = new LuaRuntime({ maxMemory: 512 * 1024 });
    const make = "#string.rep('b', 2 * 1024 * 1024)";
    assert.throws(() => lua.eval(make), LuaMemoryError);
    lua.setMaxMemory(16 * 1024 * 1024);
    assert.equal(lua.eval(make), 2 * 1024 * 1024);
  },
});

Deno.test({
  name: "lowering the limit below current use fails the next allocation, freeing recovers" + SKIP,
  ignore: NO_CAP,
  fn() {
    using lua = new LuaRuntime();
    const globals = lua.globals();
    lua.execute("keep = string.rep('k', 2 * 1024 * 1024)");
    lua.setMaxMemory(1024 * 1024);
    assert.throws(() => lua.execute("more = string.rep('m', 1024 * 1024)"), LuaMemoryError);
    // over the cap even compiling fails (as in lupa); a raw host write frees without allocating
    assert.throws(() => lua.execute("keep = nil"), LuaMemoryError);
    globals.set("keep", undefined);
    lua.gc();
    assert.equal(lua.eval("#string.rep('m', 1024)"), 1024);
  },
});

Deno.test({
  name: "pcall inside Lua catches a memory error and Lua continues" + SKIP,
  ignore: NO_CAP,
  fn() {
    using lua = new LuaRuntime({ maxMemory: 1 << 20 });
    const [ok, msg] = lua.execute("local ok, e = pcall(string.rep, 'x', 8 * 1024 * 1024) return ok, e") as [
      boolean,
      string,
    ];
    assert.equal(ok, false);
    assert.match(msg, /not enough memory/);
    assertUsable(lua);
  },
});

Deno.test({
  name: "a JS callback returning more than the cap allows is a LuaMemoryError, then usable" + SKIP,
  ignore: NO_CAP,
  fn() {
    using lua = new LuaRuntime({ maxMemory: 1 << 20 });
    const f = fn(lua.eval("function(g) return #g() end"));
    assert.throws(() => f(() => "x".repeat(4 << 20)), LuaMemoryError);
    assertUsable(lua);
    assert.equal(f(() => "small"), 5);
  },
});

Deno.test({
  name: "an argument larger than the cap is a LuaMemoryError, then usable" + SKIP,
  ignore: NO_CAP,
  fn() {
    using lua = new LuaRuntime({ maxMemory: 1 << 20 });
    assert.throws(() => lua.eval("#...", "y".repeat(4 << 20)), LuaMemoryError);
    assertUsable(lua);
  },
});

Deno.test({
  name: "setting a global larger than the cap is a LuaMemoryError, then usable" + SKIP,
  ignore: NO_CAP,
  fn() {
    using lua = new LuaRuntime({ maxMemory: 1 << 20 });
    assert.throws(() => lua.globals().set("big", "z".repeat(4 << 20)), LuaMemoryError);
    assert.equal(lua.eval("big"), undefined);
    assertUsable(lua);
  },
});

Deno.test({
  name: "compiling a chunk larger than the cap is a LuaMemoryError, then usable" + SKIP,
  ignore: NO_CAP,
  fn() {
    using lua = new LuaRuntime({ maxMemory: 256 * 1024 });
    const source = "return {" + Array.from({ length: 50_000 }, (_, i) => `${i},`).join("") + "}";
    assert.throws(() => lua.compile(source), LuaMemoryError);
    assertUsable(lua);
  },
});

Deno.test({
  name: "lua.table() beyond the cap is a LuaMemoryError, then usable" + SKIP,
  ignore: NO_CAP,
  fn() {
    using lua = new LuaRuntime({ maxMemory: 256 * 1024 });
    assert.throws(() => lua.table(...Array.from({ length: 100_000 }, (_, i) => i)), LuaMemoryError);
    assertUsable(lua);
  },
});

Deno.test({
  name: "the memory cap applies to each runtime separately" + SKIP,
  ignore: NO_CAP,
  fn() {
    using small = new LuaRuntime({ maxMemory: 256 * 1024 });
    using large = new LuaRuntime();
    assert.throws(() => small.eval("#string.rep('a', 1048576)"), LuaMemoryError);
    assert.equal(large.eval("#string.rep('a', 1048576)"), 1 << 20);
  },
});

Deno.test({
  name: "setMaxMemory without a working allocator is a LuaStateError [LuaJIT without custom allocators only]",
  ignore: CAPPED,
  fn() {
    using lua = new LuaRuntime();
    assert.throws(() => lua.setMaxMemory(1 << 20), LuaStateError);
    lua.setMaxMemory(0);
    assertUsable(lua);
  },
});

Deno.test({
  name: "a memory error caught by pcall and returned to JS is a LuaMemoryError value" + SKIP,
  ignore: NO_CAP,
  fn() {
    using lua = new LuaRuntime({ maxMemory: 1 << 20 });
    lua.globals().set("produce", () => "p".repeat(4 << 20));
    const [ok, err] = lua.execute("return pcall(produce)") as unknown[];
    assert.equal(ok, false);
    assert.ok(err instanceof LuaMemoryError);
    assertUsable(lua);
  },
});

Deno.test({
  name: "a loop pushing values into a function that allocates nothing keeps Lua's heap bounded" + SKIP,
  ignore: NO_CAP,
  fn() {
    // before 5.4 the collector is off while the host pushes, and this function never runs it
    using lua = new LuaRuntime();
    const check = fn(lua.eval("function(t) return t.user.id == t.owner end"));
    for (let i = 0; i < 20_000; i++) {
      using input = lua.tableFrom({ user: { id: `u${i}`, roles: ["dev"] }, owner: `u${i % 3}` }, {
        recursive: true,
      });
      check(input);
    }
    assert.ok(lua.memoryUsed() < 1 << 20, `Lua's heap after the loop: ${lua.memoryUsed()} bytes`);
  },
});
