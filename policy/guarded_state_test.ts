import assert from "node:assert/strict";
import { openLuaLibrary } from "../ffi/library.ts";
import { GuardedState } from "./guarded_state.ts";

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
