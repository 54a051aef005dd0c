import assert from "node:assert/strict";
import {
  ALLOCATOR_CODE,
  type AllocatorHandle,
  createAllocator,
  LUA_ALLOC_DEFINITION,
  nativeAllocatorSupported,
  POOL_LIMIT_BYTES,
  pooledBytes,
} from "./allocator.ts";
import { assertBuiltFromSource, crossToolsMissing, withHarness } from "../tests/fixtures/native_helpers.ts";
import { monotonicMs, RunClock, threadCpuMs } from "./clock.ts";
import { embeddedBytes } from "./native_code.ts";

/** Just what these tests need from liblua5.4, independent of the rest of luagate. */
const LUA_SYMBOLS = {
  /** `lua_State *lua_newstate(lua_Alloc f, void *ud);` */
  lua_newstate: { parameters: ["function", "pointer"], result: "pointer" },
  /** `lua_State *luaL_newstate(void);` */
  luaL_newstate: { parameters: [], result: "pointer" },
  /** `void luaL_openlibs(lua_State *L);` */
  luaL_openlibs: { parameters: ["pointer"], result: "void" },
  /** `int luaL_loadstring(lua_State *L, const char *s);` */
  luaL_loadstring: { parameters: ["pointer", "buffer"], result: "i32" },
  /** `int lua_pcallk(lua_State *L, int nargs, int nresults, int msgh, lua_KContext ctx, lua_KFunction k);` */
  lua_pcallk: { parameters: ["pointer", "i32", "i32", "i32", "isize", "pointer"], result: "i32" },
  /** `void lua_close(lua_State *L);` */
  lua_close: { parameters: ["pointer"], result: "void" },
  /** `void lua_settop(lua_State *L, int idx);` */
  lua_settop: { parameters: ["pointer", "i32"], result: "void" },
  /** `const char *lua_tolstring(lua_State *L, int idx, size_t *len);` */
  lua_tolstring: { parameters: ["pointer", "i32", "pointer"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

const LUA_LIB = "liblua5.4.so.0";
let lua: Deno.DynamicLibrary<typeof LUA_SYMBOLS>["symbols"] | undefined;
function lib(): Deno.DynamicLibrary<typeof LUA_SYMBOLS>["symbols"] {
  lua ??= Deno.dlopen(LUA_LIB, LUA_SYMBOLS).symbols;
  return lua;
}

const haveLua = (() => {
  try {
    lib();
    return true;
  } catch {
    return false;
  }
})();

/** Runs `code` in a protected call and returns [ok, first result as a string or null]. */
function run(L: Deno.PointerObject, code: string): [boolean, string | null] {
  const l = lib();
  let status = l.luaL_loadstring(L, new TextEncoder().encode(code + "\0"));
  if (status === 0) status = l.lua_pcallk(L, 0, 1, 0, 0n, null);
  const s = l.lua_tolstring(L, -1, null);
  const text = s === null ? null : new Deno.UnsafePointerView(s).getCString();
  l.lua_settop(L, 0);
  return [status === 0, text];
}

/** Like {@linkcode run} but the code must succeed; returns its result. */
function ok(L: Deno.PointerObject, code: string): string | null {
  const [success, value] = run(L, code);
  assert.ok(success, `Lua error: ${value}`);
  return value;
}

function newState(alloc: AllocatorHandle): Deno.PointerObject {
  const L = lib().lua_newstate(alloc.pointer, alloc.state);
  assert.ok(L !== null, "lua_newstate returned NULL");
  lib().luaL_openlibs(L);
  return L;
}

/** Creates an allocator and a Lua state on it, runs `body`, then closes both (checking nothing leaks). */
function withState(native: boolean, body: (L: Deno.PointerObject, alloc: AllocatorHandle) => void): void {
  const alloc = createAllocator({ native });
  assert.equal(alloc.native, native);
  const L = newState(alloc);
  try {
    body(L, alloc);
  } finally {
    lib().lua_close(L);
    alloc.close();
  }
  assert.equal(alloc.used(), 0, "lua_close must give back every byte");
}

const MiB = 1024 * 1024;
const kinds = [
  { name: "native", native: true, ignore: !nativeAllocatorSupported() },
  { name: "JS", native: false, ignore: false },
];

for (const { name, native, ignore } of kinds) {
  const luaIgnore = ignore || !haveLua;

  Deno.test(`${name} allocator: direct lua_Alloc calls follow allocator.c semantics`, { ignore }, () => {
    const alloc = createAllocator({ native });
    const f = new Deno.UnsafeFnPointer(alloc.pointer, LUA_ALLOC_DEFINITION);
    try {
      assert.equal(alloc.limit(), Infinity);
      // With ptr == NULL, osize is a Lua 5.4 type tag, not a size.
      const a = f.call(alloc.state, null, 5n, 100n);
      assert.ok(a !== null);
      assert.equal(alloc.used(), 100);
      const b = f.call(alloc.state, a, 100n, 1000n);
      assert.ok(b !== null);
      assert.equal(alloc.used(), 1000);
      assert.equal(alloc.peak(), 1000);

      alloc.setLimit(1500);
      assert.equal(f.call(alloc.state, null, 0n, 501n), null, "past the limit: refused");
      assert.equal(alloc.denied(), 1);
      assert.equal(alloc.used(), 1000);
      const c = f.call(alloc.state, null, 0n, 500n); // exactly at the limit: granted
      assert.ok(c !== null);
      assert.equal(alloc.used(), 1500);

      // Shrinking never refuses, even above the limit.
      alloc.setLimit(0);
      const b2 = f.call(alloc.state, b, 1000n, 10n);
      assert.ok(b2 !== null);
      assert.equal(alloc.used(), 510);
      assert.equal(alloc.denied(), 1);

      alloc.setAllowOverdraft(true);
      const d = f.call(alloc.state, null, 0n, 64n);
      assert.ok(d !== null, "overdraft: granted");
      assert.ok(alloc.overdraft());
      assert.equal(alloc.denied(), 1);
      alloc.setAllowOverdraft(false);
      alloc.clearOverdraft();
      assert.ok(!alloc.overdraft());

      for (const [p, size] of [[b2, 10n], [c, 500n], [d, 64n]] as const) {
        assert.equal(f.call(alloc.state, p, size, 0n), null);
      }
      assert.equal(f.call(alloc.state, null, 3n, 0n), null, "free(NULL) is a no-op");
      assert.equal(alloc.used(), 0);
      assert.equal(alloc.peak(), 1500);
      alloc.resetPeak();
      assert.equal(alloc.peak(), 0);
      alloc.clearDenied();
      assert.equal(alloc.denied(), 0);
    } finally {
      alloc.close();
    }
  });

  Deno.test(`${name} allocator: past its run clock's deadline, large growing allocations are refused`, {
    ignore,
  }, () => {
    const alloc = createAllocator({ native });
    const f = new Deno.UnsafeFnPointer(alloc.pointer, LUA_ALLOC_DEFINITION);
    const clock = new RunClock(5);
    alloc.setRunClock(clock);
    const LARGE = 65536n;
    const blocks: [Deno.PointerValue, bigint][] = [];
    const grant = (ptr: Deno.PointerValue, old: bigint, size: bigint) => {
      const p = f.call(alloc.state, ptr, old, size);
      assert.ok(p !== null, `${old} -> ${size} bytes granted`);
      return p;
    };
    try {
      // between runs nothing is late, and a run within its time is not
      blocks.push([grant(null, 0n, LARGE), LARGE]);
      clock.begin(monotonicMs());
      blocks.push([grant(null, 0n, LARGE), LARGE]);
      // a run that began 2 s of wall time ago and used some 10 ms of its 1 s of CPU (its thread
      // waited) is not late
      clock.end();
      const waited = new RunClock(1000);
      alloc.setRunClock(waited);
      waited.begin(monotonicMs() - 2000, -Infinity);
      waited.cpuStart(threadCpuMs() + 1990);
      blocks.push([grant(null, 0n, LARGE), LARGE], [grant(null, 0n, LARGE), LARGE]);
      assert.equal(alloc.late(), 0);
      alloc.setRunClock(clock);
      // a run that began 50 ms of wall time ago, with no CPU reading from before it: its start is
      // back-dated, and 5 ms are long past
      clock.end();
      clock.begin(monotonicMs() - 50, -Infinity);
      assert.equal(f.call(alloc.state, null, 0n, LARGE), null, "a large block past the deadline");
      const small = grant(null, 0n, LARGE - 1n);
      assert.equal(f.call(alloc.state, small, LARGE - 1n, 2n * LARGE), null, "growing by a large step");
      const grown = grant(small, LARGE - 1n, 2n * LARGE - 2n);
      blocks.push([grant(grown, 2n * LARGE - 2n, 1n), 1n], [grant(null, 0n, 4096n), 4096n]);
      assert.equal(alloc.late(), 2);
      assert.equal(alloc.denied(), 0, "not the memory limit");
      // the host pushing values is never refused
      alloc.setAllowOverdraft(true);
      blocks.push([grant(null, 0n, LARGE), LARGE]);
      alloc.setAllowOverdraft(false);
      clock.end();
      blocks.push([grant(null, 0n, LARGE), LARGE]);
      alloc.clearLate();
      assert.equal(alloc.late(), 0);
    } finally {
      for (const [p, size] of blocks) f.call(alloc.state, p, size, 0n);
      alloc.close();
    }
  });

  Deno.test(`${name} allocator: limit is stored as an exact 64-bit value`, { ignore }, () => {
    const alloc = createAllocator({ native });
    try {
      const view = new Deno.UnsafePointerView(alloc.state);
      assert.equal(view.getBigUint64(8), 0xffff_ffff_ffff_ffffn);
      alloc.setLimit(2 ** 40 + 3);
      assert.equal(view.getBigUint64(8), 2n ** 40n + 3n);
      assert.equal(alloc.limit(), 2 ** 40 + 3);
      alloc.setLimit(Infinity);
      assert.equal(view.getBigUint64(8), 0xffff_ffff_ffff_ffffn);
      assert.equal(alloc.limit(), Infinity);
      for (const bad of [-1, 1.5, NaN, -Infinity, 2 ** 53]) {
        assert.throws(() => alloc.setLimit(bad), RangeError);
      }
      assert.equal(Deno.UnsafePointer.value(alloc.state), Deno.UnsafePointer.value(alloc.state));
    } finally {
      alloc.close();
    }
  });

  Deno.test(`${name} allocator: a Lua state runs and used() follows the garbage collector`, {
    ignore: luaIgnore,
  }, () => {
    withState(native, (L, alloc) => {
      assert.equal(ok(L, "return ('a'):rep(3) .. 1 + 2"), "aaa3");
      ok(L, "collectgarbage()");
      const base = alloc.used();
      assert.ok(base > 0);
      ok(L, "big = {} for i = 1, 1e5 do big[i] = {i} end");
      const grown = alloc.used();
      assert.ok(grown > base + MiB, `${grown} should exceed ${base} by several MiB`);
      // Lua's own count must agree with ours (collectgarbage("count") is in KiB).
      const luaBytes = Number(ok(L, "return collectgarbage('count') * 1024"));
      assert.ok(Math.abs(luaBytes - grown) < 1024, `Lua counts ${luaBytes}, allocator ${grown}`);
      ok(L, "big = nil collectgarbage() collectgarbage()");
      assert.ok(alloc.used() < base + 64 * 1024, `${alloc.used()} should fall back near ${base}`);
    });
  });

  Deno.test(
    `${name} allocator: the limit gives a catchable "not enough memory"`,
    { ignore: luaIgnore },
    () => {
      withState(native, (L, alloc) => {
        ok(L, "collectgarbage()");
        alloc.setLimit(alloc.used() + 2 * MiB);
        assert.equal(
          ok(L, "local ok, err = pcall(string.rep, 'x', 1e7) return tostring(ok) .. ' ' .. err"),
          "false not enough memory",
        );
        assert.ok(alloc.denied() > 0);
        assert.ok(alloc.used() <= alloc.limit());
        assert.ok(alloc.peak() <= alloc.limit());
        // The state keeps working, and an uncaught memory error is reported as an error.
        assert.equal(ok(L, "return #string.rep('y', 1e5)"), "100000");
        alloc.clearDenied();
        const [success, message] = run(L, "local t = {} for i = 1, 1e7 do t[i] = i end");
        assert.equal(success, false);
        assert.equal(message, "not enough memory");
        assert.ok(alloc.denied() > 0);
        assert.equal(ok(L, "return 6 * 7"), "42");
        alloc.setLimit(Infinity);
        assert.equal(ok(L, "return #string.rep('x', 1e7)"), "10000000");
      });
    },
  );

  Deno.test(`${name} allocator: allow-overdraft grants and records`, { ignore: luaIgnore }, () => {
    withState(native, (L, alloc) => {
      ok(L, "collectgarbage()");
      alloc.setLimit(alloc.used() + 100 * 1024);
      alloc.setAllowOverdraft(true);
      assert.equal(ok(L, "s = string.rep('x', 1e6) return #s"), "1000000");
      assert.ok(alloc.overdraft());
      assert.equal(alloc.denied(), 0);
      assert.ok(alloc.used() > alloc.limit());
      alloc.setAllowOverdraft(false);
      alloc.clearOverdraft();
      const [success] = run(L, "t = string.rep('z', 1e6)");
      assert.equal(success, false);
      assert.ok(alloc.denied() > 0);
      assert.ok(!alloc.overdraft());
      // Over the cap, even loading a chunk is refused until the host lifts it.
      assert.equal(run(L, "s = nil")[0], false);
      const limit = alloc.limit();
      alloc.setLimit(Infinity);
      ok(L, "s = nil collectgarbage()");
      assert.ok(alloc.used() <= limit);
    });
  });

  Deno.test(`${name} allocator: peak tracking`, { ignore: luaIgnore }, () => {
    withState(native, (L, alloc) => {
      ok(L, "collectgarbage()");
      const base = alloc.used();
      alloc.resetPeak();
      assert.equal(alloc.peak(), base);
      ok(L, "local s = string.rep('p', 3e6) s = nil collectgarbage()");
      assert.ok(alloc.peak() >= base + 3e6, `peak ${alloc.peak()} should include the 3 MB string`);
      assert.ok(alloc.used() < base + 1e6);
      alloc.resetPeak();
      assert.equal(alloc.peak(), alloc.used());
    });
  });

  Deno.test(`${name} allocator: 100k allocation/free cycles`, { ignore: luaIgnore }, () => {
    withState(native, (L, alloc) => {
      alloc.setLimit(alloc.used() + 8 * MiB);
      ok(L, "for i = 1, 1e5 do local t = {i, tostring(i)} end collectgarbage()");
      ok(L, "local s = '' for i = 1, 1e5 do s = s .. 'x' if #s > 1000 then s = '' end end");
      assert.equal(alloc.denied(), 0);
    });
    const alloc = createAllocator({ native });
    const f = new Deno.UnsafeFnPointer(alloc.pointer, LUA_ALLOC_DEFINITION);
    try {
      for (let i = 0; i < 100_000; i++) {
        const size = BigInt(16 + (i % 4096));
        const p = f.call(alloc.state, null, 0n, size);
        assert.ok(p !== null);
        assert.equal(f.call(alloc.state, p, size, 0n), null);
      }
      assert.equal(alloc.used(), 0);
      assert.equal(alloc.peak(), 16 + 4095);
    } finally {
      alloc.close();
    }
  });
}

Deno.test(
  "native allocators share the code page, not the state",
  { ignore: !nativeAllocatorSupported() },
  () => {
    const a = createAllocator({ native: true });
    const b = createAllocator({ native: true });
    try {
      assert.equal(Deno.UnsafePointer.value(a.pointer), Deno.UnsafePointer.value(b.pointer));
      assert.notEqual(Deno.UnsafePointer.value(a.state), Deno.UnsafePointer.value(b.state));
    } finally {
      a.close();
      b.close();
    }
  },
);

/** Fills `size` bytes at `p` with a pattern derived from `seed`. */
function fill(p: Deno.PointerObject, size: number, seed: number): void {
  const bytes = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(p, size));
  for (let i = 0; i < size; i++) bytes[i] = (seed + i * 7) & 0xff;
}

function assertFilled(p: Deno.PointerObject, size: number, seed: number): void {
  const bytes = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(p, size));
  for (let i = 0; i < size; i++) assert.equal(bytes[i], (seed + i * 7) & 0xff, `byte ${i} of ${size}`);
}

const address = (p: Deno.PointerValue): bigint => Deno.UnsafePointer.value(p);

Deno.test(
  "native allocator: small blocks are reused through the pool, counted as Lua asked",
  { ignore: !nativeAllocatorSupported() },
  () => {
    const alloc = createAllocator({ native: true });
    const f = new Deno.UnsafeFnPointer(alloc.pointer, LUA_ALLOC_DEFINITION);
    try {
      const a = f.call(alloc.state, null, 5n, 40n)!;
      const pooled = pooledBytes();
      assert.equal(f.call(alloc.state, a, 40n, 0n), null);
      assert.equal(pooledBytes(), pooled + 48, "a 40-byte block is a 48-byte class block");
      // any size of the same 16-byte class takes the same block back
      const b = f.call(alloc.state, null, 0n, 33n)!;
      assert.equal(address(b), address(a));
      assert.equal(pooledBytes(), pooled);
      assert.equal(alloc.used(), 33);

      // a realloc within the class keeps the block; across classes the contents move
      fill(b, 33, 1);
      assert.equal(address(f.call(alloc.state, b, 33n, 48n)), address(b));
      const c = f.call(alloc.state, b, 48n, 200n)!;
      assertFilled(c, 33, 1);
      fill(c, 200, 2);
      const large = f.call(alloc.state, c, 200n, 5000n)!;
      assertFilled(large, 200, 2);
      const small = f.call(alloc.state, large, 5000n, 100n)!;
      assertFilled(small, 100, 2);
      assert.equal(alloc.used(), 100);

      // the cap sees only what Lua asks for: a class block is never charged its rounding
      alloc.setLimit(101);
      assert.equal(f.call(alloc.state, null, 0n, 2n), null);
      assert.equal(alloc.denied(), 1);
      const one = f.call(alloc.state, null, 0n, 1n)!;
      assert.equal(alloc.used(), 101);
      alloc.setLimit(Infinity);
      f.call(alloc.state, one, 1n, 0n);
      f.call(alloc.state, small, 100n, 0n);
      assert.equal(alloc.used(), 0);
    } finally {
      alloc.close();
    }
  },
);

Deno.test(
  "native allocator: the pool holds at most POOL_LIMIT_BYTES, and a closed state's blocks serve the next",
  { ignore: !nativeAllocatorSupported() || !haveLua },
  () => {
    const alloc = createAllocator({ native: true });
    const f = new Deno.UnsafeFnPointer(alloc.pointer, LUA_ALLOC_DEFINITION);
    try {
      const blocks = Array.from(
        { length: 2 * POOL_LIMIT_BYTES / 256 },
        () => f.call(alloc.state, null, 0n, 256n)!,
      );
      for (const p of blocks) f.call(alloc.state, p, 256n, 0n);
      assert.ok(pooledBytes() <= POOL_LIMIT_BYTES);
      assert.ok(pooledBytes() > POOL_LIMIT_BYTES - 256, `${pooledBytes()} should be near the limit`);
      assert.equal(alloc.used(), 0);
    } finally {
      alloc.close();
    }
    const before = pooledBytes();
    withState(true, (L) => assert.equal(ok(L, "return #string.rep('x', 10)"), "10"));
    const afterClose = pooledBytes();
    withState(true, (L) => {
      assert.ok(pooledBytes() < afterClose, "the new state took blocks from the pool");
      assert.equal(ok(L, "local t = {} for i = 1, 1e4 do t[i] = {i} end return #t"), "10000");
    });
    assert.ok(before <= POOL_LIMIT_BYTES && pooledBytes() <= POOL_LIMIT_BYTES);
  },
);

Deno.test(
  "native allocator: the x86_64 and aarch64 code make the same calls",
  { ignore: crossToolsMissing() },
  async () => {
    await withHarness("allocator_harness", async (harness, dir) => {
      const transcripts = [];
      for (const arch of ["x86_64", "aarch64"] as const) {
        await Deno.writeFile(`${dir}/${arch}.code`, embeddedBytes(ALLOCATOR_CODE, arch));
        transcripts.push(await harness(arch, [`${dir}/${arch}.code`]));
      }
      assert.equal(transcripts[1], transcripts[0]);
      const steps = transcripts[0].split("step ").slice(1);
      assert.equal(steps.length, 55);
      // a freed 40-byte block goes to the pool as 48 bytes, and a 33-byte request takes it back
      assert.match(steps[3], /-> #0 used 1200 .* pool 48\n$/);
      assert.match(steps[4], /^4: .*\n {2}-> #1 used 1233 .* pool 0\n$/);
      // a shrink that libc refuses keeps the old block
      assert.match(
        steps[20],
        /realloc #2 112 -> refused\n {2}-> #2 used 1900 peak 4220 denied 1 overdraft 1/,
      );
      // the pool stops at its limit: the fifth 256-byte block goes back to libc
      assert.match(steps[33], /free #13\n {2}-> #0 .* pool 1024\n$/);
      assert.match(steps[38], /used 0 peak 4220 denied 2 overdraft 1 pool 1024\n$/);
      // an image being built: blocks carved in order, a resized one moved with its bytes, a freed
      // one never reaching libc or the pool, a block past the image's end refused
      assert.match(steps[39], /\n {2}-> image\+0 used 40 /);
      assert.match(steps[40], /\n {2}-> image\+48 used 140 /);
      assert.match(steps[41], /\n {2}moved 40 of 40 bytes\n {2}-> image\+160 used 160 /);
      assert.match(steps[42], /^42: slot 15 100 -> 0\n {2}-> #0 used 60 .* pool 1024\n$/);
      assert.match(steps[43], /\n {2}-> image\+224 used 84 /);
      assert.match(steps[44], /\n {2}-> #0 used 84 peak 4220 denied 3 /);
      // a copy: an image block resized moves out to libc with its bytes; a shrink libc refuses keeps
      // it; freed, it goes nowhere, and a libc block still goes to libc
      assert.match(steps[45], /realloc #0 500 -> #14\n {2}moved 60 of 60 bytes\n {2}-> #14 used 524 /);
      assert.match(steps[46], /realloc #0 16 -> refused\n {2}-> image\+224 used 516 /);
      assert.match(steps[47], /^47: slot 16 16 -> 0\n {2}-> #0 used 500 .* pool 1024\n$/);
      assert.match(steps[48], /free #14\n {2}-> #0 used 0 peak 4220 denied 3 overdraft 1 pool 1024\n$/);
      // a small block changing class to one the pool holds takes the pooled block, growing or
      // shrinking, with no call to libc, and its old block goes to the pool; to a large size, libc
      assert.match(steps[50], /^50: .*\n {2}realloc #15 208 -> #15\n {2}-> #15 used 200 .* pool 1024\n$/);
      assert.match(steps[51], /^51: .*\n {2}moved 200 of 200 bytes\n {2}-> #12 used 256 .* pool 976\n$/);
      assert.match(steps[52], /^52: .*\n {2}moved 200 of 200 bytes\n {2}-> #15 used 200 .* pool 1024\n$/);
      assert.match(steps[53], /^53: .*\n {2}realloc #15 300 -> #15\n/);
    });
  },
);

Deno.test("LUAGATE_JS_ALLOCATOR=1, read once per process, selects the JS allocator; an explicit option wins", async () => {
  // the variable is read at the process's first allocator: only a fresh process shows its effect
  const probe = `
    import { createAllocator } from ${JSON.stringify(new URL("allocator.ts", import.meta.url).href)};
    const auto = createAllocator();
    const forced = createAllocator({ native: true });
    console.log(JSON.stringify([auto.native, forced.native]));`;
  const run = async (env: Record<string, string>) => {
    const { stdout, success } = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--quiet", probe],
      env,
      stderr: "inherit",
    }).output();
    assert.ok(success);
    return JSON.parse(new TextDecoder().decode(stdout));
  };
  if (!nativeAllocatorSupported()) return;
  assert.deepEqual(await run({ LUAGATE_JS_ALLOCATOR: "1" }), [false, true]);
  assert.deepEqual(await run({ LUAGATE_JS_ALLOCATOR: "0" }), [true, true]);
});

Deno.test(
  "native: true throws where there is no embedded code",
  { ignore: nativeAllocatorSupported() },
  () => {
    assert.throws(() => createAllocator({ native: true }), /no native allocator/);
  },
);

Deno.test("the embedded bytes were built from the current ffi/allocator.c", () =>
  assertBuiltFromSource("allocator"));
