import assert from "node:assert/strict";
import {
  CALL_RUNNER_LIBRARY,
  type CallFrame,
  DESCRIBED_RESULTS,
  NOT_SCALAR,
  openCallRunner,
} from "./call_runner.ts";
import { openDataBuilder } from "./data_builder.ts";
import { openLuaLibrary } from "./library.ts";
import { type LuaState, LuaStatus, LuaType } from "./lua_api.ts";
import { embeddedBytes, runsEmbeddedCode } from "./native_code.ts";
import {
  assertBuiltFromSource,
  crossToolsMissing,
  fillStack,
  withHarness,
} from "../tests/fixtures/native_helpers.ts";
import { type Collect, type InputData, LuaCore } from "../lua/core.ts";
import { LuaError, LuaMemoryError } from "../lua/errors.ts";
import { DEFAULT_PLAIN_LIMITS, pushFieldByField, pushPlainData, readPlainData } from "../lua/plain_data.ts";

const library = openLuaLibrary();
const runner = openCallRunner(library);
// a state calls through the runner where the data builder is there too
const ignore = runner === undefined || openDataBuilder(library) === undefined;

const core = new LuaCore();
const L = core.L;
const s = core.api.sym;

/** How `state` pushes a call's input: plain data, as the policy engine pushes it. */
const inputData = (state: LuaCore): InputData => ({
  limits: DEFAULT_PLAIN_LIMITS,
  push: (L, value) => pushPlainData(state, L, value, DEFAULT_PLAIN_LIMITS),
  pushFieldByField: (L, value) => pushFieldByField(state, L, value, DEFAULT_PLAIN_LIMITS),
});

const data = inputData(core);

/**
 * In `state`, `function(target, input) return #input.list end` (after `prelude`) and an empty target,
 * as registry references, with the state's input data: the call of the memory-cap tests.
 */
function listLength(state: LuaCore, prelude = ""): { fn: number; target: number; data: InputData } {
  const sL = state.L;
  state.loadTrusted(sL, `${prelude} return function(target, input) return #input.list end`, "=c");
  assert.equal(state.api.pcall(sL, 0, 1, 0), LuaStatus.OK);
  const fn = state.ref(sL);
  state.api.sym.lua_createtable(sL, 0, 0);
  return { fn, target: state.ref(sL), data: inputData(state) };
}

/** Compiles a trusted chunk returning a function; returns the function's registry reference. */
function refTo(source: string, arg?: (L: LuaState) => void): number {
  core.loadTrusted(L, source, "=test");
  if (arg) arg(L);
  assert.equal(core.api.pcall(L, arg ? 1 : 0, 1, 0), LuaStatus.OK, core.readText(L, -1));
  return core.ref(L);
}

const TARGET = refTo(`return { name = "target" }`);

interface Seen {
  described: boolean;
  count: number;
  values: unknown[];
  types: number[];
}

/** What callRefs handed to collect: the results read from the stack, and whether a frame described them. */
const seeing: Collect = (core, L, first, count, described?: CallFrame) => {
  const values = [];
  const types = [];
  for (let i = 0; i < count; i++) {
    values.push(readPlainData(core, L, first + i));
    types.push(described && i < DESCRIBED_RESULTS ? described.types[i] : s.lua_type(L, first + i));
    if (described?.isScalar(i)) assert.deepEqual(described.scalar(i), values[i], `result ${i}`);
  }
  return { described: described !== undefined, count, values, types } satisfies Seen;
};

Deno.test("the embedded library was built from the current ffi/call_runner.c", () =>
  assertBuiltFromSource("call_runner"));

Deno.test("call runner: there on Linux x86_64 and aarch64 with Lua 5.4", () => {
  const expected = runsEmbeddedCode() && library.version === "5.4" && !library.isLuaJIT;
  assert.equal(runner !== undefined, expected);
});

Deno.test("call runner: one crossing; nil, booleans and numbers described, the rest read from the stack", {
  ignore,
}, () => {
  const fn = refTo(`return function(target, input)
    return input.flag, input.n * 2, -0.0, nil, target.name, { input.list[2] }, math.maxinteger, 2^53, false
  end`);
  const top = s.lua_gettop(L);
  const seen = core.callRefs(L, fn, TARGET, { flag: true, n: 21, list: ["a", "b"] }, data, seeing) as Seen;
  assert.equal(s.lua_gettop(L), top);
  assert.equal(seen.described, true);
  assert.equal(seen.count, 9);
  assert.deepEqual(seen.values, [true, 42, -0, undefined, "target", ["b"], 2n ** 63n - 1n, 2 ** 53, false]);
  // the ninth is beyond the description: its type comes from the stack
  const { BOOLEAN, NUMBER, NIL } = LuaType;
  assert.deepEqual(seen.types, [
    BOOLEAN,
    NUMBER,
    NUMBER,
    NIL,
    NOT_SCALAR,
    NOT_SCALAR,
    NOT_SCALAR,
    NUMBER,
    BOOLEAN,
  ]);
});

Deno.test("call runner: a call with no input is one crossing too; its error is thrown, the stack restored", () => {
  const fn = refTo(`return function(target, ...)
    if target.fail then error("failed here", 0) end
    return select("#", ...), target.name, 1.5
  end`);
  const failing = refTo(`return { fail = true }`);
  const top = s.lua_gettop(L);
  const seen = core.callRef(L, fn, TARGET, seeing) as Seen;
  assert.equal(s.lua_gettop(L), top);
  // where there is no runner, the usual path pushes the two and calls
  assert.equal(seen.described, !ignore);
  assert.deepEqual(seen.values, [0, "target", 1.5]);
  assert.throws(
    () => core.callRef(L, fn, failing, seeing),
    (e: Error) => e instanceof LuaError && e.message === "failed here",
  );
  assert.equal(s.lua_gettop(L), top);
  // a decision's call after it still builds its input
  const decide = refTo(`return function(target, input) return input.n end`);
  assert.deepEqual((core.callRefs(L, decide, TARGET, { n: 3 }, data, seeing) as Seen).values, [3]);
});

Deno.test("call runner: nils, booleans and numbers as arguments are one crossing; others go the usual way", () => {
  const fn = refTo(`return function(target, ...)
    local seen = {}
    for i = 1, select("#", ...) do
      local v = select(i, ...)
      seen[i] = (math.type(v) or type(v)) .. " " .. tostring(v)
    end
    return select("#", ...), table.concat(seen, ", ")
  end`);
  const top = s.lua_gettop(L);
  const call = (args: unknown[]) => core.callRef(L, fn, TARGET, seeing, args) as Seen;
  const scalars = [undefined, true, null, 42, 2 ** 60, -(2 ** 63), 2 ** 63, -0.5];
  const pushed = [
    "nil nil",
    "boolean true",
    "nil nil",
    "integer 42",
    "integer 1152921504606846976",
    "integer -9223372036854775808",
    "float 9.2233720368548e+18",
    "float -0.5",
  ];
  const seen = call(scalars);
  assert.equal(seen.described, !ignore);
  assert.deepEqual(seen.values, [8, pushed.join(", ")]);
  // a string, more than a frame describes: pushed as the usual path pushes them
  for (const args of [[1, "one"], [...scalars, 0]]) {
    const usual = call(args);
    assert.equal(usual.described, false);
    assert.equal(usual.values[0], args.length);
  }
  assert.deepEqual(call([1, "one"]).values, [2, "integer 1, string one"]);
  assert.deepEqual(call([NaN, Infinity]).values, [2, "float nan, float inf"]);
  assert.equal(s.lua_gettop(L), top);
});

Deno.test("call runner: an input the encoder leaves alone goes the usual way, with the same results", () => {
  const fn = refTo(`return function(target, input) return target.name, input end`);
  const seen = core.callRefs(L, fn, TARGET, 7, data, seeing) as Seen;
  assert.equal(seen.described, false);
  assert.deepEqual(seen.values, ["target", 7]);
});

Deno.test("call runner: an object the encoder refuses is encoded once, then pushed field by field", {
  ignore,
}, () => {
  const fn = refTo(`return function(target, input) return input.when, #input.list end`);
  const encoder = core.dataEncoder!;
  const encode = encoder.encode;
  let encodes = 0;
  encoder.encode = function (...args) {
    encodes++;
    return encode.apply(this, args);
  };
  try {
    const when = new Date(0);
    const seen = core.callRefs(L, fn, TARGET, { list: [1, 2, 3], when }, data, seeing) as Seen;
    assert.deepEqual(seen.values, [when.toISOString(), 3]);
    assert.equal(encodes, 1);
  } finally {
    encoder.encode = encode;
  }
});

Deno.test("call runner: an error in the call is thrown, the stack restored", { ignore }, () => {
  const fn = refTo(`return function(target, input) error("no " .. input.what, 0) end`);
  const top = s.lua_gettop(L);
  assert.throws(() => core.callRefs(L, fn, TARGET, { what: "way" }, data, seeing), (error: unknown) => {
    assert.ok(error instanceof LuaError);
    assert.equal(error.message, "no way");
    return true;
  });
  assert.equal(s.lua_gettop(L), top);
  const ok = refTo(`return function() return 1 end`);
  assert.deepEqual((core.callRefs(L, ok, TARGET, { a: 1 }, data, seeing) as Seen).values, [1]);
});

Deno.test("call runner: a stack that cannot grow is a LuaError, nothing pushed", { ignore }, () => {
  const fn = refTo(`return function() return true end`);
  const top = s.lua_gettop(L);
  const full = fillStack(s, L);
  try {
    assert.throws(() => core.callRefs(L, fn, TARGET, { a: 1 }, data, seeing), /stack overflow/);
    assert.equal(s.lua_gettop(L), full);
  } finally {
    s.lua_settop(L, top);
  }
  assert.equal((core.callRefs(L, fn, TARGET, { a: 1 }, data, seeing) as Seen).values[0], true);
});

Deno.test("call runner: an input past the memory cap fails; one that fits after a collection is called", {
  ignore,
}, () => {
  const capped = new LuaCore();
  try {
    const cL = capped.L;
    // with the collector stopped, only the host's collection on an overdraft frees the inputs
    const { fn, target, data: cData } = listLength(capped, `collectgarbage("stop")`);
    capped.setMaxMemory(48 << 10);
    const collect: Collect = (
      core,
      L,
      first,
      _count,
      described,
    ) => [described !== undefined, core.read(L, first)];
    const top = capped.api.sym.lua_gettop(cL);
    const list = (n: number) => ({ list: Array.from({ length: n }, (_, i) => `item ${i}`) });
    assert.throws(() => capped.callRefs(cL, fn, target, list(1_200), cData, collect), LuaMemoryError);
    assert.equal(capped.api.sym.lua_gettop(cL), top);
    assert.equal(capped.alloc.used() <= capped.alloc.limit(), true);
    assert.equal(capped.alloc.overdraft(), false);
    // a call whose input overdrew goes on the usual way once the collection made room (its results
    // are not described); the others are one crossing
    const described = new Set<boolean>();
    for (let i = 0; i < 20; i++) {
      const [wasDescribed, length] = capped.callRefs(cL, fn, target, list(200), cData, collect) as [
        boolean,
        number,
      ];
      assert.equal(length, 200, `call ${i}`);
      described.add(wasDescribed);
    }
    assert.deepEqual([...described].sort(), [false, true]);
    assert.equal(capped.alloc.used() <= capped.alloc.limit(), true);
  } finally {
    capped.close();
  }
});

Deno.test("call runner: a finalizer run during the build leaves the builder lending past the cap", {
  ignore,
}, () => {
  const capped = new LuaCore();
  try {
    const cL = capped.L;
    const cs = capped.api.sym;
    const { fn, target, data: cData } = listLength(capped);
    const collect: Collect = (core, L, first) => core.read(L, first);
    // JS objects proxied into Lua and dropped: their __gc calls back into JS during the build's
    // collection steps. An input too large for what is left under the cap must fail the way a
    // field-by-field push fails (an overdraft the host refuses), and leave the state under its cap:
    // a callback that turned the cap back on mid-build made the builder fail inside Lua instead
    // (and the state could stay over its cap)
    const top = cs.lua_gettop(cL);
    let builds = 0;
    for (let round = 0; round < 12; round++) {
      for (let i = 0; i < 300; i++) {
        capped.pushProxy(cL, { i }, "default");
        cs.lua_settop(cL, top);
      }
      capped.setMaxMemory(capped.alloc.used() + 512);
      const input = { list: Array.from({ length: 1500 }, (_, i) => `item ${round} ${i}`) };
      builds += capped.dataEncoder!.encode(capped, cL, input, DEFAULT_PLAIN_LIMITS, undefined, 0) >= 0
        ? 1
        : 0;
      capped.dataEncoder!.done();
      assert.throws(
        () => capped.callRefs(cL, fn, target, input, cData, collect),
        (e) => e instanceof LuaMemoryError && /values passed to Lua exceed/.test(e.message),
        `round ${round}`,
      );
      assert.equal(cs.lua_gettop(cL), top);
      assert.equal(capped.alloc.used() <= capped.alloc.limit(), true, `round ${round}`);
      capped.setMaxMemory(Infinity);
    }
    assert.equal(builds, 12, "every input was for the builder");
  } finally {
    capped.close();
  }
});

Deno.test("call runner: the data builder is free again while the call runs", { ignore }, () => {
  const builder = openDataBuilder(library)!;
  const busyDuringCall: number[] = [];
  const pusher = core.pusher;
  core.pusher = { object: (core, L, value) => pushPlainData(core, L, value) };
  core.hostCall = (_name, args) => {
    busyDuringCall.push(builder.busy[0]);
    return { echoed: args[0], tags: ["x", "y"] };
  };
  try {
    const fn = refTo(
      `local host = ... return function(target, input)
        local ok, result = host("echo", input.value)
        return result.echoed, result.tags[2]
      end`,
      (L) => core.pushHostCFunction(L),
    );
    const seen = core.callRefs(L, fn, TARGET, { value: "v" }, data, seeing) as Seen;
    assert.deepEqual(seen.values, ["v", "y"]);
    assert.deepEqual(busyDuringCall, [0]);
    assert.equal(builder.busy[0], 0);
  } finally {
    core.hostCall = undefined;
    core.pusher = pusher;
  }
});

Deno.test(
  "call runner: the x86_64 and aarch64 libraries make the same calls",
  { ignore: crossToolsMissing() },
  async () => {
    await withHarness("call_runner_harness", async (harness, dir) => {
      await Deno.writeFile(`${dir}/x86_64.so`, embeddedBytes(CALL_RUNNER_LIBRARY, "x86_64"));
      await Deno.writeFile(`${dir}/aarch64.so`, embeddedBytes(CALL_RUNNER_LIBRARY, "aarch64"));
      const run = (arch: "x86_64" | "aarch64", scenario: string) =>
        harness(arch, [`${dir}/${arch}.so`, scenario]);
      const prologue = [
        "gettop -> 3",
        "checkstack 4 -> 1",
        "rawgeti -1001000 11",
        "rawgeti -1001000 12",
        "pushcclosure builder 0",
        "rawgeti -1001000 13",
        "pcallk 1 1 0 0 0 (allow 1, busy 1)",
      ];
      // a call's five results read (a boolean, an integer, a float, nil, a string), then described
      const fiveResults = [
        "gettop -> 8",
        "type 4 -> 1",
        "toboolean 4",
        "type 5 -> 3",
        "isinteger 5",
        "tointegerx 5 0",
        "type 6 -> 3",
        "isinteger 6",
        "tonumberx 6 0",
        "type 7 -> 0",
        "type 8 -> 4",
      ];
      const fiveDescribed = [
        "status 0",
        "results 5",
        "result 0: type 1 value 1",
        "result 1: type 3 value 42",
        "result 2: type 3 value -0",
        "result 3: type 0 value 0",
        "result 4: type -2 value 0",
      ];
      const expected: Record<string, string[]> = {
        called: [
          ...prologue,
          "type -1 -> 5",
          "pcallk 2 -1 0 0 0 (allow 0, busy 0)",
          ...fiveResults,
          "stop 0, top 8, allow 1, busy 0",
          ...fiveDescribed,
        ],
        error: [
          ...prologue,
          "type -1 -> 5",
          "pcallk 2 -1 0 0 0 (allow 0, busy 0)",
          "gettop -> 4",
          "type 4 -> 4",
          "stop 0, top 4, allow 1, busy 0",
          "status 2",
          "results 1",
          "result 0: type -2 value 0",
        ],
        "no-stack": ["gettop -> 3", "checkstack 4 -> 0", "stop 1, top 3, allow 1, busy 1"],
        "build-error": [...prologue, "stop 2, top 6, allow 1, busy 0", "status 4"],
        "not-table": [...prologue, "type -1 -> 0", "stop 2, top 6, allow 1, busy 0", "status 0"],
        overdrawn: [...prologue, "type -1 -> 5", "stop 3, top 6, allow 1, busy 0"],
        // no input: the function called on its target alone, the builder and its buffers untouched
        "no-input": [
          ...prologue.slice(0, 4),
          "pcallk 1 -1 0 0 0 (allow 0, busy 1)",
          ...fiveResults,
          "stop 0, top 8, allow 1, busy 1",
          ...fiveDescribed,
        ],
        // arguments the host described, pushed after the target; the builder untouched
        arguments: [
          "gettop -> 3",
          "checkstack 8 -> 1",
          ...prologue.slice(2, 4),
          "pushnil",
          "pushboolean 1",
          "pushinteger 42",
          "pushnumber -0.5",
          "pcallk 5 -1 0 0 0 (allow 0, busy 1)",
          ...fiveResults,
          "stop 0, top 8, allow 1, busy 1",
          ...fiveDescribed,
        ],
      };
      for (const [scenario, lines] of Object.entries(expected)) {
        const transcript = await run("x86_64", scenario);
        assert.equal(transcript, lines.join("\n") + "\n", scenario);
        assert.equal(await run("aarch64", scenario), transcript, `${scenario} on aarch64`);
      }
      // ten results: the first eight described (2^53 and the string not as scalars), none pushed
      const many = await run("x86_64", "many");
      assert.match(many, /\npushnil\n/);
      assert.match(
        many,
        /result 5: type -2 value 0\nresult 6: type 1 value 0\nresult 7: type 3 value -9007199254740991\n$/,
      );
      assert.equal(await run("aarch64", "many"), many);
    }, { dynamic: true });
  },
);
