/**
 * Shared helpers of the runtime test suite: what the loaded Lua can do (probed once), and casts
 * for values coming out of Lua.
 *
 * @module
 */

import assert from "node:assert/strict";
import { openFastLane } from "../ffi/fast_lane.ts";
import { openLuaLibrary } from "../ffi/library.ts";
import { createLuaApi } from "../ffi/lua_api.ts";
import { type LuaCoroutine, type LuaFunction, LuaRuntime, LuaTable } from "../mod.ts";

const probe = new LuaRuntime();
/** The language version of the Lua under test ("5.4", "5.3", "5.1"). */
export const VERSION: string = probe.luaVersion;
/** The implementation, e.g. "Lua 5.4.4" or "LuaJIT 2.1". */
export const IMPLEMENTATION: string = probe.luaImplementation;
/** Whether the Lua under test is LuaJIT. */
export const IS_LUAJIT: boolean = IMPLEMENTATION.startsWith("LuaJIT");
/** Whether Lua has a separate integer subtype (5.3 and later). */
export const HAS_INTEGERS: boolean = VERSION === "5.3" || VERSION === "5.4";
/** Whether the memory cap works (false where Lua refuses a custom allocator, e.g. LuaJIT on x64). */
export const CAPPED: boolean = probe.memoryUsed(true) > 0;
probe.close();

const library = openLuaLibrary();
/**
 * Whether the sandbox's vetted functions are entries of the fast lane (`ffi/fast_lane.c`): C
 * functions, as Lua's own are, where a Lua wrapper cannot be (a C-call boundary for yields, the C
 * stack's limit, the caller's frame kept in tail position).
 */
export const HAS_LANE: boolean = openFastLane(library, createLuaApi(library).registryIndex) !== undefined;

/** The environment variable `name`, or undefined. */
export function env(name: string): string | undefined {
  try {
    return Deno.env.get(name) ?? undefined;
  } catch {
    return undefined;
  }
}

/** `value` as a callable (asserting it is a function). */
export function fn(value: unknown): (...args: unknown[]) => unknown {
  assert.equal(typeof value, "function");
  return value as (...args: unknown[]) => unknown;
}

/** `value` as a LuaFunction. */
export function luaFn(value: unknown): LuaFunction {
  assert.equal(typeof value, "function");
  return value as LuaFunction;
}

/** `value` as a LuaTable (asserting it is one). */
export function tbl(value: unknown): LuaTable {
  assert.ok(value instanceof LuaTable, `expected a LuaTable, got ${String(value)}`);
  return value;
}

/** `value` as a LuaCoroutine. */
export function co(value: unknown): LuaCoroutine {
  assert.equal(typeof value, "function");
  return value as LuaCoroutine;
}

/** Numeric sort for arrays of numbers. */
export function sorted<T>(items: Iterable<T>): T[] {
  return [...items].sort((a, b) => {
    if (Array.isArray(a) && Array.isArray(b)) return Number(a[0]) - Number(b[0]);
    return Number(a) - Number(b);
  });
}

/** Asserts the runtime still answers a trivial evaluation. */
export function assertUsable(lua: LuaRuntime): void {
  assert.equal(lua.eval("1 + 1"), 2);
  assert.equal(lua.eval("'a' .. 'b'"), "ab");
}
