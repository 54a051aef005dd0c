import assert from "node:assert/strict";
import { nativeAllocatorChosen } from "../ffi/allocator.ts";
import { openLuaLibrary } from "../ffi/library.ts";
import { imageRegionsSupported } from "../ffi/state_image.ts";
import { BOOTSTRAP_LUA } from "../lua/bootstrap.ts";
import { GuardedState } from "./guarded_state.ts";
import { KERNEL_LUA } from "./kernel.ts";
import { LIBRARIES_LUA } from "./kernel_libraries.ts";
import { ROUTES_LUA } from "./kernel_routes.ts";
import { PATTERNS_LUA } from "./patterns.ts";
import { runDenoScript } from "../tests/fixtures/deno_child.ts";

// lua_gc(L, LUA_GCINC, 0, 0, 0) keeps the collector's parameters, makes it incremental and
// returns the mode it was in (Lua 5.4)
const LUA_GCGEN = 10;
const LUA_GCINC = 11;

Deno.test({
  name: "guarded state: the collector turns generational at the second run, not before (5.4)",
  ignore: openLuaLibrary().version !== "5.4",
  fn() {
    const state = new GuardedState();
    const core = state.core;
    const gc = Deno.dlopen(core.api.library.path, {
      lua_gc: { parameters: ["pointer", "i32", "i32", "i32", "i32"], result: "i32" },
    });
    try {
      const L = core.currentL;
      const ref = state.prepare("return 42", "answer");
      const run = () => state.invoke(L, (L) => (core.pushRegistry(L, ref), 1), () => 0);
      const modeAfterRun = () => {
        assert.deepEqual(run(), [42]);
        const mode = gc.symbols.lua_gc(L, LUA_GCINC, 0, 0, 0);
        if (mode === LUA_GCGEN) gc.symbols.lua_gc(L, LUA_GCGEN, 0, 0, 0);
        return mode;
      };
      assert.equal(modeAfterRun(), LUA_GCINC);
      assert.equal(modeAfterRun(), LUA_GCGEN);
      assert.equal(modeAfterRun(), LUA_GCGEN);
      core.unref(ref);
    } finally {
      gc.close();
      state.close();
    }
  },
});

// ---- state images: a sandbox's state is a copy of a template (ffi/state_image.ts)

const imagesHere = imageRegionsSupported() && nativeAllocatorChosen();
const slotOf = (state: GuardedState) => Number(Deno.UnsafePointer.value(state.core.L) >> 32n);
const isCopy = (state: GuardedState) => slotOf(state) >= 0x2000 && slotOf(state) < 0x7000;

async function transcript(env: Record<string, string>): Promise<string> {
  const run = await runDenoScript(
    new URL("../tests/fixtures/sandbox_transcript.ts", import.meta.url).pathname,
    [],
    {
      env,
    },
  );
  assert.equal(run.code, 0, run.stderr);
  return run.stdout;
}

Deno.test({
  name: "state images: a copied sandbox answers, counts and holds exactly what a built one does",
  ignore: !imagesHere,
  async fn() {
    const copied = await transcript({});
    const built = await transcript({ LUAGATE_NO_STATE_IMAGES: "1" });
    assert.equal(copied, built);
    assert.match(copied, /^\d+\n\["ana",2\] \{"instructions":\d+,/);
    assert.match(copied, /LuaLimitError: instruction limit exceeded/);
    assert.match(copied, /LuaMemoryError: memory limit exceeded/);
  },
});

Deno.test({
  name: "state images: sandboxes of one library and limits are copies, and each is its own",
  ignore: !imagesHere,
  fn() {
    const first = new GuardedState({ globals: { who: "first" } });
    const second = new GuardedState({ globals: { who: "second" } });
    const answer = (state: GuardedState, code: string) => {
      const L = state.core.currentL;
      const ref = state.prepare(code, "probe");
      try {
        return state.invoke(L, (L) => (state.core.pushRegistry(L, ref), 1), () => 0);
      } finally {
        state.core.unref(ref);
      }
    };
    try {
      assert.ok(isCopy(first) && isCopy(second));
      assert.notEqual(slotOf(first), slotOf(second));
      assert.deepEqual(answer(first, "return who"), ["first"]);
      assert.deepEqual(answer(second, "return who"), ["second"]);
      // a run that fills one copy's memory leaves the other's alone
      assert.throws(() => answer(first, "local t = {} for i = 1, 1e7 do t[i] = {} end"));
      assert.deepEqual(answer(second, "local t = {} for i = 1, 1000 do t[i] = i end return #t"), [1000]);
      const region = slotOf(first);
      first.close();
      // the next copy takes the closed one's region, and none of what was in it
      const third = new GuardedState();
      try {
        assert.equal(slotOf(third), region);
        assert.deepEqual(answer(third, "return who, string.upper('x')"), [undefined, "X"]);
        assert.equal(third.core.alloc.denied(), 0);
      } finally {
        third.close();
      }
      assert.deepEqual(answer(second, "return who"), ["second"]);
    } finally {
      first.close();
      second.close();
    }
  },
});

Deno.test({
  name: "state images: a limit a template cannot hold builds the state",
  ignore: !imagesHere,
  fn() {
    const state = new GuardedState({ limits: { instructions: 2 ** 50 } });
    const other = new GuardedState({ limits: { instructions: 2 ** 20 } });
    try {
      assert.ok(!isCopy(state));
      assert.ok(isCopy(other));
      const L = state.core.currentL;
      const ref = state.prepare("local n = 0 for i = 1, 100 do n = n + i end return n", "sum");
      assert.deepEqual(state.invoke(L, (L) => (state.core.pushRegistry(L, ref), 1), () => 0), [5050]);
    } finally {
      state.close();
      other.close();
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
