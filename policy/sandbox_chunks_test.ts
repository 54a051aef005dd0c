import assert from "node:assert/strict";
import { LuaMemoryError, LuaSyntaxError } from "../lua/errors.ts";
import {
  CompiledChunks,
  HASHED_CHARS,
  KEPT_CHUNK_BYTES,
  KEPT_CHUNKS,
  sourceHash,
} from "../lua/chunk_cache.ts";
import type { LuaState } from "../ffi/lua_api.ts";
import { GuardedState } from "./guarded_state.ts";
import { keptChunks, Sandbox } from "./sandbox.ts";

function withState(test: (state: GuardedState, chunks: CompiledChunks) => void, memory?: number): void {
  const state = new GuardedState(memory === undefined ? {} : { limits: { memory } });
  try {
    test(state, keptChunks(state));
  } finally {
    state.close();
  }
}

function runAgain(state: GuardedState, ref: number, ...args: string[]): unknown[] {
  const core = state.core;
  return state.invoke(core.currentL, (L) => (core.pushRegistry(L, ref), 1), (L) => {
    for (const arg of args) core.pushString(L, arg);
    return args.length;
  }, { again: true });
}

/** Runs kept `code` again with what `pushArgs` pushes, keeping the function it returns, as `collect` may. */
function runKeepingFunction(
  state: GuardedState,
  chunks: CompiledChunks,
  code: string,
  pushArgs: (L: LuaState) => number,
): number {
  const core = state.core;
  return chunks.use(code, "t", (ref) => {
    let closure = -1;
    state.invoke(core.currentL, (L) => (core.pushRegistry(L, ref), 1), pushArgs, {
      again: true,
      collect: (L, first) => {
        core.api.sym.lua_pushvalue(L, first);
        closure = core.ref(L);
        return [];
      },
    });
    return closure;
  });
}

/** Calls the registry function `ref` with no arguments. */
function call(state: GuardedState, ref: number): unknown[] {
  const core = state.core;
  return state.invoke(core.currentL, (L) => (core.pushRegistry(L, ref), 1), () => 0);
}

Deno.test("kept chunks: the same source runs again without compiling, with fresh globals each run", () => {
  withState((state, chunks) => {
    const code = "counter = (counter or 0) + 1 return counter, ...";
    const refs = new Set<number>();
    for (const arg of ["a", "b", "c"]) {
      assert.deepEqual(chunks.use(code, "t", (ref) => (refs.add(ref), runAgain(state, ref, arg))), [1, arg]);
    }
    assert.equal(refs.size, 1);
    assert.equal(chunks.size, 1);
  });
});

Deno.test("kept chunks: a closure from an earlier run keeps that run's globals", () => {
  withState((state, chunks) => {
    const core = state.core;
    const code = "seen = ... return function() return seen end";
    const closures = ["first", "second"].map((arg) =>
      runKeepingFunction(state, chunks, code, (L) => (core.pushString(L, arg), 1))
    );
    const seen = closures.map((ref) => call(state, ref));
    assert.deepEqual(seen, [["first"], ["second"]]);
    for (const ref of closures) core.unref(ref);
  });
});

Deno.test("kept chunks: code that does not compile is never kept and fails every time", () => {
  withState((state, chunks) => {
    for (let i = 0; i < 3; i++) {
      assert.throws(() => chunks.use("return +", "t", () => assert.fail("ran")), LuaSyntaxError);
    }
    assert.equal(chunks.size, 0);
    assert.equal(chunks.bytes, 0);
    assert.deepEqual(chunks.use("return 1", "t", (ref) => runAgain(state, ref)), [1]);
  });
});

Deno.test("kept chunks: bounded in number and bytes; code run again stays among one-off code", () => {
  withState((state, chunks) => {
    const hot = "return 'hot'";
    for (let i = 0; i < 400; i++) {
      assert.deepEqual(chunks.use(`return ${i}`, "t", (ref) => runAgain(state, ref)), [i]);
      assert.deepEqual(chunks.use(hot, "t", (ref) => runAgain(state, ref)), ["hot"]);
      assert.ok(chunks.size <= KEPT_CHUNKS, `${chunks.size} chunks`);
      assert.ok(chunks.bytes <= KEPT_CHUNK_BYTES, `${chunks.bytes} bytes`);
    }
    let compiled = 0;
    const before = state.core.alloc.used();
    chunks.use(hot, "t", () => compiled++);
    assert.equal(state.core.alloc.used(), before, "the hot chunk was compiled again");
    assert.equal(compiled, 1);
  });
});

/** Chunks kept for `state` apart from its own, with a count of their compiles. */
function countingChunks(state: GuardedState): { chunks: CompiledChunks; compiles: () => number } {
  let compiles = 0;
  const chunks = new CompiledChunks({
    core: state.core,
    compile: (code, name, compiled) => (compiles++, state.prepare(code, name, compiled)),
    memoryLimit: () => state.limits.memory,
  });
  return { chunks, compiles: () => compiles };
}

/** Distinct sources of the same size, told apart by `set`. */
const loops = (set: string, n: number): string[] =>
  Array.from({ length: n }, (_, k) => `local s = 0 for i = 1, 10 do s = s + i * ${k} end return '${set}', s`);

Deno.test("kept chunks: sources that come round in turn, more than are kept, are kept in part", () => {
  withState((state) => {
    const { chunks, compiles } = countingChunks(state);
    const sources = loops("a", 150);
    for (let i = 0; i < 3 * sources.length; i++) chunks.use(sources[i % sources.length], "t", () => 0);
    const kept = chunks.size;
    assert.ok(kept > 0 && kept < sources.length, `${kept} kept`);
    // a round finds nearly every kept chunk (a few change places): dropping the oldest chunk for
    // each new one found none
    const before = compiles();
    for (const [k, code] of sources.entries()) {
      assert.deepEqual(chunks.use(code, "t", (ref) => runAgain(state, ref)), ["a", 55 * k]);
    }
    const found = sources.length - (compiles() - before);
    assert.ok(found >= 0.9 * kept, `${found} found of ${kept} kept`);
  });
});

Deno.test("kept chunks: code that replaces the code run before is kept in its turn", () => {
  withState((state) => {
    const { chunks, compiles } = countingChunks(state);
    // short sources, which the number of chunks bounds: each set fits, both together do not
    const count = KEPT_CHUNKS / 2 + 10;
    const sources = (set: string) => Array.from({ length: count }, (_, k) => `return '${set}', ${k}`);
    const [before, after] = [sources("before"), sources("after")];
    const round = (sources: string[]) => {
      const start = compiles();
      for (const code of sources) chunks.use(code, "t", () => 0);
      return compiles() - start;
    };
    for (let i = 0; i < 20; i++) round(before);
    assert.equal(round(before), 0);
    let rounds = 1;
    while (round(after) > 0 && rounds < 100) rounds++;
    assert.ok(rounds <= 20, `kept whole after ${rounds} rounds`);
    assert.equal(round(after), 0);
  });
});

Deno.test("kept chunks: sources that share a hash are told apart, and each is kept", () => {
  withState((state) => {
    const { chunks, compiles } = countingChunks(state);
    // a long source's hash skips characters: these differ only in one it skips
    const sources = ["A", "B", "C"].map((c) => `return '${c}'${" ".repeat(HASHED_CHARS * 16)}`);
    assert.equal(new Set(sources.map(sourceHash)).size, 1);
    for (const code of sources) chunks.use(code, "t", (ref) => runAgain(state, ref));
    assert.equal(chunks.size, 3);
    assert.equal(compiles(), 3);
    for (let round = 0; round < 3; round++) {
      for (const [i, code] of sources.entries()) {
        // a fresh copy of the source finds the chunk too
        const copy = code.slice(0, 5) + code.slice(5);
        assert.deepEqual(chunks.use(copy, "t", (ref) => runAgain(state, ref)), ["ABC"[i]]);
      }
    }
    assert.equal(compiles(), 3, "a chunk was compiled again");
    assert.equal(chunks.size, 3);
  });
});

Deno.test("sandbox: code compiled in one piece and in pieces fails alike, with no traceback", () => {
  using sandbox = new Sandbox();
  const nested = (n: number) => `return ${Array.from({ length: n }, (_, i) => `'s${i}'`).join(" .. ")}`;
  const failures = [nested(300), nested(1000), "return +", `return +${" ".repeat(4000)}`].map((code) => {
    try {
      sandbox.execute(code);
    } catch (error) {
      assert.ok(error instanceof LuaSyntaxError, String(error));
      return error.message;
    }
    assert.fail(`${code.length} characters compiled`);
  });
  assert.ok(failures[1].length < 200 && failures[0].length < 200, failures[1]);
  assert.doesNotMatch(failures.join("\n"), /traceback|<\?:/);
  assert.equal(failures[0], failures[1]);
  assert.deepEqual(failures.slice(2), [
    "sandbox:1: unexpected symbol near '+'",
    "sandbox:1: unexpected symbol near '+'",
  ]);
});

Deno.test("sandbox: code that does not fit under the memory limit fails as a memory error, compiled by the host or by the kernel", () => {
  // 18 and 24 functions: one short enough for the host to compile, one that the kernel compiles
  const functions = (n: number) =>
    `${Array.from({ length: n }, (_, i) => `local function a${i}() return ${i} end`).join(" ")} return 1`;
  for (const code of [functions(18), functions(24)]) {
    withState((state) => {
      const alloc = state.core.alloc;
      state.core.collectGarbage();
      alloc.setLimit(alloc.used() + 1000);
      assert.throws(
        () => state.prepare(code, "t"),
        (e: Error) =>
          e instanceof LuaMemoryError &&
          e.message === `t: memory limit exceeded while compiling (${state.limits.memory} bytes)`,
      );
      // the cap held while Lua parsed it
      assert.ok(alloc.used() <= alloc.limit(), `${alloc.used()} over ${alloc.limit()}`);
    });
  }
});

Deno.test("kept chunks: at most a 32nd of a small memory limit; larger code runs but is not kept", () => {
  const limit = 128 * 1024;
  withState((state, chunks) => {
    const large = `return ${Array.from({ length: 2000 }, (_, i) => `${i}`).join(" + ")}`;
    assert.ok(large.length > limit / 32);
    assert.deepEqual(chunks.use(large, "t", (ref) => runAgain(state, ref)), [1_999_000]);
    assert.equal(chunks.size, 0);
    for (let i = 0; i < 40; i++) chunks.use(`return ${i}`, "t", (ref) => runAgain(state, ref));
    assert.ok(chunks.bytes <= limit / 32, `${chunks.bytes} bytes`);
  }, limit);
});

Deno.test("sandbox: eval and execute of the same code keep their results, limits and fresh globals", () => {
  using sb = new Sandbox({ limits: { instructions: 10_000 } });
  let afterFirst = 0;
  for (let i = 0; i < 3; i++) {
    assert.equal(sb.eval("(x or 0) + ...", i), i);
    assert.equal(sb.execute("x = 5 return x"), 5);
    assert.throws(() => sb.execute("while true do end"), (e: Error) => e.name === "LuaLimitError");
    assert.deepEqual(sb.execute("return ...", "a", 2), ["a", 2]);
    if (i === 0) afterFirst = sb.idleMemory;
  }
  // the kept chunks and what their runs left are the first round's: nothing grows with more rounds
  assert.ok(
    sb.idleMemory <= afterFirst + 256,
    `idle ${sb.idleMemory} after three rounds, ${afterFirst} after one`,
  );
});

Deno.test("sandbox: a capability running the same code again gets globals of its own", () => {
  const code = "local who = ... tag = who if who == 'outer' then again() end return tag";
  const inner: unknown[] = [];
  const sb: Sandbox = new Sandbox({
    capabilities: { again: () => void inner.push(sb.execute(code, "inner")) },
  });
  try {
    for (let i = 0; i < 3; i++) assert.equal(sb.execute(code, "outer"), "outer");
    assert.deepEqual(inner, ["inner", "inner", "inner"]);
  } finally {
    sb.close();
  }
});

Deno.test("sandbox: a run of kept code sees nothing an earlier run of it changed in its globals", () => {
  using sb = new Sandbox();
  const code = `
    local op, arg = ...
    if op == "set" then x = arg
    elseif op == "rawset" then rawset(_G, "x", arg)
    elseif op == "set and clear" then x = arg x = nil
    elseif op == "swap" then _G = { x = arg }
    elseif op == "clear" then _G = nil
    elseif op == "equal to all" then _G = setmetatable({}, { __eq = function() error("ran __eq") end })
    elseif op == "fail" then x = arg error("failed")
    end
    return x, _G ~= nil and rawequal(_G._G, _G)`;
  for (const op of ["set", "rawset", "set and clear", "swap", "clear", "equal to all", "fail", "read"]) {
    // a run that leaves its globals as they were made, then one that changes them, then two more
    for (const step of ["read", op, "read", "read"]) {
      let result: unknown;
      try {
        result = sb.execute(code, step, "leaked");
      } catch (error) {
        assert.equal(step, "fail", `${op}: ${error}`);
        continue;
      }
      // _G is a global like any other: x is still read from the run's own globals
      const expected = step === "set" || step === "rawset"
        ? ["leaked", true]
        : [undefined, step !== "swap" && step !== "clear" && step !== "equal to all"];
      assert.deepEqual(result, expected, `${op}, then ${step}`);
    }
  }
});

Deno.test("kept chunks: a function a run returned keeps that run's globals when later runs reuse theirs", () => {
  withState((state, chunks) => {
    const core = state.core;
    const code = `local set, give = ... if set then seen = set end
      if give then return function() return seen end end`;
    chunks.use(code, "t", (ref) => runAgain(state, ref));
    const first = runKeepingFunction(
      state,
      chunks,
      code,
      (L) => (core.api.sym.lua_pushnil(L), core.api.sym.lua_pushboolean(L, 1), 2),
    );
    chunks.use(code, "t", (ref) => runAgain(state, ref));
    chunks.use(code, "t", (ref) => runAgain(state, ref, "later"));
    assert.deepEqual(call(state, first), [undefined]);
    core.unref(first);
  });
});
