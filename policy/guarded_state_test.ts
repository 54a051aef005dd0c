import assert from "node:assert/strict";
import { nativeAllocatorChosen } from "../ffi/allocator.ts";
import { openLuaLibrary } from "../ffi/library.ts";
import { imageRegionsSupported } from "../ffi/state_image.ts";
import { BOOTSTRAP_LUA } from "../lua/bootstrap.ts";
import { LuaLimitError } from "../lua/errors.ts";
import { GuardedState, releaseTemplates } from "./guarded_state.ts";
import { KERNEL_LUA } from "./kernel.ts";
import { LIBRARIES_LUA } from "./kernel_libraries.ts";
import { ROUTES_LUA } from "./kernel_routes.ts";
import { PATTERNS_LUA } from "./patterns.ts";
import { runDenoScript } from "../tests/fixtures/deno_child.ts";

// lua_gc(L, LUA_GCINC, 0, 0, 0) keeps the collector's parameters, makes it incremental and
// returns the mode it was in (Lua 5.4)
const LUA_GCGEN = 10;
const LUA_GCINC = 11;

// runs `code` as a sandbox run of `state`, once for each element of the list, and answers what the
// collector's mode was after each (its mode kept)
function collectorModesAfter(state: GuardedState, codes: string[]): number[] {
  const core = state.core;
  const gc = Deno.dlopen(core.api.library.path, {
    lua_gc: { parameters: ["pointer", "i32", "i32", "i32", "i32"], result: "i32" },
  });
  try {
    return codes.map((code) => {
      runIn(state, code);
      const mode = gc.symbols.lua_gc(core.currentL, LUA_GCINC, 0, 0, 0);
      if (mode === LUA_GCGEN) gc.symbols.lua_gc(core.currentL, LUA_GCGEN, 0, 0, 0);
      return mode;
    });
  } finally {
    gc.close();
  }
}

Deno.test({
  name:
    "guarded state: the collector turns generational at the second run, not before (5.4, native allocator)",
  ignore: openLuaLibrary().version !== "5.4" || !nativeAllocatorChosen(),
  fn() {
    const state = new GuardedState();
    try {
      assert.deepEqual(collectorModesAfter(state, ["return 42", "return 42", "return 42"]), [
        LUA_GCINC,
        LUA_GCGEN,
        LUA_GCGEN,
      ]);
    } finally {
      state.close();
    }
  },
});

Deno.test({
  name: "guarded state: on the JS allocator the collector stays incremental and frees in small steps (5.4)",
  ignore: openLuaLibrary().version !== "5.4" || nativeAllocatorChosen(),
  fn() {
    const state = new GuardedState({ limits: { cpuMs: 20_000, instructions: 50_000_000 } });
    // 20,000 dead list nodes, then the largest amount one allocation saw freed while 60,000 more
    // came and went: a step of Lua's default size sweeps up to 51,200 objects, one of 2^10 6,400
    // (some 80 bytes each)
    const largestFree = `
      local head
      for i = 1, 20000 do head = {head} end
      head = nil
      local before, largest = collectgarbage("count"), 0
      for i = 1, 60000 do
        local node = {i}
        local now = collectgarbage("count")
        if before - now > largest then largest = before - now end
        before = now
      end
      return largest
    `;
    try {
      assert.deepEqual(collectorModesAfter(state, ["return 1", "return 1", "return 1"]), [
        LUA_GCINC,
        LUA_GCINC,
        LUA_GCINC,
      ]);
      // measured: 562 KiB at 2^10, 928 at 2^11, 1,775 at Lua's 2^13
      const [largest] = runIn(state, largestFree) as [number];
      assert.ok(largest < 768, `one step freed ${largest} KiB`);
    } finally {
      state.close();
    }
  },
});

// ---- state images: a sandbox's state is a copy of a template (ffi/state_image.ts)

const imagesHere = imageRegionsSupported() && nativeAllocatorChosen();
// runs `code` in `state` as a sandbox run and returns its results
function runIn(state: GuardedState, code: string): unknown {
  const L = state.core.currentL;
  const ref = state.prepare(code, "probe");
  try {
    return state.invoke(L, (L) => (state.core.pushRegistry(L, ref), 1), () => 0);
  } finally {
    state.core.unref(ref);
  }
}

const slotOf = (state: GuardedState) => Number(Deno.UnsafePointer.value(state.core.L) >> 32n);
const isCopy = (state: GuardedState) => slotOf(state) >= 0x2000 && slotOf(state) < 0x7000;

interface Transcript {
  idle: number;
  runs: { answer: string; instructions: number; memory: number; output: number }[];
  idleAfter: number;
}

async function transcript(env: Record<string, string>): Promise<Transcript[]> {
  const run = await runDenoScript(
    new URL("../tests/fixtures/sandbox_transcript.ts", import.meta.url).pathname,
    [],
    {
      env,
    },
  );
  assert.equal(run.code, 0, run.stderr);
  return JSON.parse(run.stdout);
}

Deno.test({
  name: "state images: a copied sandbox answers, counts and holds what a built one does",
  ignore: !imagesHere,
  async fn() {
    const [copiedDefault, copiedOther] = await transcript({});
    const [builtDefault, builtOther] = await transcript({ LUAGATE_NO_STATE_IMAGES: "1" });
    // the default limits are the template's: everything to the byte
    assert.deepEqual(copiedDefault, builtDefault);
    assert.equal(copiedDefault.runs[0].answer, '["ana",2]');
    // other limits are given to the copy's kernel by one call a build does not make: on 5.3, whose
    // host holds the collector while it calls, a run's peak can differ by that call's few bytes
    assert.equal(copiedOther.idle, builtOther.idle);
    assert.equal(copiedOther.idleAfter, builtOther.idleAfter);
    for (const [i, run] of copiedOther.runs.entries()) {
      const built = builtOther.runs[i];
      assert.equal(run.answer, built.answer);
      assert.equal(run.instructions, built.instructions);
      assert.ok(Math.abs(run.memory - built.memory) <= 256, `${run.memory} against ${built.memory}`);
    }
    const answers = copiedOther.runs.map((run) => run.answer).join("\n");
    assert.match(answers, /LuaLimitError: instruction limit exceeded \(5000 instructions\)/);
    assert.match(answers, /LuaMemoryError: memory limit exceeded/);
  },
});

Deno.test({
  name: "state images: sandboxes of one library and limits are copies, and each is its own",
  ignore: !imagesHere,
  fn() {
    const first = new GuardedState({ globals: { who: "first" } });
    const second = new GuardedState({ globals: { who: "second" } });
    try {
      assert.ok(isCopy(first) && isCopy(second));
      assert.notEqual(slotOf(first), slotOf(second));
      assert.deepEqual(runIn(first, "return who"), ["first"]);
      assert.deepEqual(runIn(second, "return who"), ["second"]);
      // a run that fills one copy's memory leaves the other's alone
      assert.throws(() => runIn(first, "local t = {} for i = 1, 1e7 do t[i] = {} end"));
      assert.deepEqual(runIn(second, "local t = {} for i = 1, 1000 do t[i] = i end return #t"), [1000]);
      const region = slotOf(first);
      first.close();
      // the next copy takes the closed one's region, and none of what was in it
      const third = new GuardedState();
      try {
        assert.equal(slotOf(third), region);
        assert.deepEqual(runIn(third, "return who, string.upper('x')"), [undefined, "X"]);
        assert.equal(third.core.alloc.denied(), 0);
      } finally {
        third.close();
      }
      assert.deepEqual(runIn(second, "return who"), ["second"]);
    } finally {
      first.close();
      second.close();
    }
  },
});

Deno.test({
  name: "state images: closing more copies than an isolate keeps regions for unmaps the rest safely",
  ignore: !imagesHere,
  fn() {
    // more than the 8 regions kept: the later ones are unmapped as they are given back
    const states = Array.from({ length: 20 }, () => new GuardedState({ globals: { n: 7 } }));
    for (const state of states) state.close();
    for (const state of states) assert.equal(state.usage.instructions, 0);
    const again = Array.from({ length: 20 }, () => new GuardedState({ globals: { n: 8 } }));
    try {
      for (const state of again) assert.deepEqual(runIn(state, "return n * 2"), [16]);
    } finally {
      for (const state of again) state.close();
    }
  },
});

Deno.test({
  name: "state images: released templates are built again; a copy alive then keeps answering",
  ignore: !imagesHere,
  fn() {
    const before = new GuardedState({ globals: { n: 3 } });
    let after: GuardedState | undefined;
    try {
      releaseTemplates();
      assert.deepEqual(runIn(before, "return n * 2"), [6]);
      after = new GuardedState({ globals: { n: 4 } });
      assert.deepEqual(runIn(after, "return n * 2"), [8]);
      assert.deepEqual(runIn(before, "local t = {} for i = 1, 1000 do t[i] = {i} end return #t + n"), [1003]);
    } finally {
      before.close();
      after?.close();
    }
  },
});

Deno.test({
  name: "state images: sandboxes of other limits are copies of the same template, each under its own",
  ignore: !imagesHere,
  fn() {
    const states = [
      new GuardedState(),
      new GuardedState({ limits: { instructions: 3000, step: 100 } }),
      new GuardedState({ limits: { instructions: 2 ** 50, cpuMs: 300 } }),
    ];
    // the results, or the error the run ended in
    const run = (state: GuardedState, code: string) => {
      try {
        return runIn(state, code);
      } catch (error) {
        return error;
      }
    };
    try {
      assert.ok(states.every(isCopy));
      const loop = "local n = 0 for i = 1, 20000 do n = n + i end return n";
      assert.deepEqual(run(states[0], loop), [200010000]);
      const stopped = run(states[1], loop);
      assert.ok(stopped instanceof LuaLimitError && stopped.limit === "instructions", String(stopped));
      assert.ok(
        states[1].usage.instructions > 3000 && states[1].usage.instructions <= 3300,
        `${states[1].usage.instructions}`,
      );
      // large allocations too: the allocator refuses them once the run is past its CPU time
      const spun = run(states[2], "while true do local t = {} for i = 1, 50000 do t[i] = i end end");
      assert.ok(spun instanceof LuaLimitError && spun.limit === "cpu", String(spun));
      // the template's 100 ms are not this copy's: its run, its allocator and its lane read 300
      assert.ok(states[2].usage.cpuMs >= 300 && states[2].usage.cpuMs < 600, `${states[2].usage.cpuMs}`);
      // the defaults again, in a copy made after the others
      const again = new GuardedState();
      states.push(again);
      assert.deepEqual(run(again, loop), [200010000]);
    } finally {
      for (const state of states) state.close();
    }
  },
});

Deno.test({
  name: "state images: 600 copies made and closed in a random order, up to 40 alive, each its own",
  ignore: !imagesHere,
  fn() {
    // a fixed pseudo-random sequence: the same run every time
    let seed = 12345;
    const next = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const limitSets = [undefined, { instructions: 200_000, step: 7 }, { instructions: 300_000, cpuMs: 250 }];
    const live: { state: GuardedState; k: number }[] = [];
    try {
      for (let i = 0; i < 600; i++) {
        const k = next(1000);
        live.push({
          state: new GuardedState({ limits: limitSets[next(3)], globals: { k, t: { m: { x: k } } } }),
          k,
        });
        const { state, k: expected } = live[next(live.length)];
        const answer = runIn(
          state,
          "local w = setmetatable({}, { __mode = 'k' }) local f = function() end w[f] = k w[t] = k " +
            "return k, t.m.x, w[f], w[t], string.format('%d', k)",
        );
        assert.deepEqual(answer, [expected, expected, expected, expected, String(expected)]);
        if (live.length > 40 || next(3) === 0) live.splice(next(live.length), 1)[0].state.close();
      }
    } finally {
      for (const { state } of live) state.close();
    }
  },
});

Deno.test("state images: luagate's Lua code has no byte a template's addresses are made of", () => {
  // The image's relocation takes a word for a pointer when its high half is a template slot, whose
  // second byte is 0x10 to 0x1f: 8 bytes of a string whose 6th is one of those.
  for (const source of [BOOTSTRAP_LUA, KERNEL_LUA, LIBRARIES_LUA, ROUTES_LUA, PATTERNS_LUA]) {
    // deno-lint-ignore no-control-regex -- the control characters are the point
    assert.doesNotMatch(source, /[\x10-\x1f]/);
  }
});
