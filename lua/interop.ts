/**
 * Helpers that say how a JS value should behave in Lua, and what a value is.
 *
 * @module
 */

import { handleInfoOf, proxyRequests } from "./core.ts";

/** The Lua type of a luagate handle, or `null` for a plain JS value. */
export type LuaTypeName = "table" | "function" | "thread" | "userdata";

/**
 * The Lua type behind `value` (as Lua's `type()` names it), or `null` when `value` is a plain JS
 * value rather than a Lua object.
 *
 * @example
 * ```ts
 * import { LuaRuntime, luaType } from "../mod.ts";
 * using lua = new LuaRuntime();
 * console.log(luaType(lua.eval("{}")), luaType(123)); // "table" null
 * ```
 */
export function luaType(value: unknown): LuaTypeName | null {
  if ((typeof value !== "object" && typeof value !== "function") || value === null) return null;
  return handleInfoOf(value)?.type ?? null;
}

function request<T>(value: T, kind: "attr" | "item"): T {
  if ((typeof value !== "object" && typeof value !== "function") || value === null) {
    throw new TypeError(`as${kind === "attr" ? "Attr" : "Item"}Getter expects an object or a function`);
  }
  const wrapper = Object.freeze(Object.create(null));
  proxyRequests.set(wrapper, { value, kind });
  return wrapper;
}

/**
 * Marks `value` so that Lua indexing reads its properties (`obj.name`) even where item access would
 * be the default (a `Map`: `m.size`, `m.get`).
 *
 * @example
 * ```ts
 * import { asAttrGetter, LuaRuntime } from "../mod.ts";
 * using lua = new LuaRuntime();
 * const size = lua.eval("function(m) return m.size end") as (m: unknown) => number;
 * console.log(size(asAttrGetter(new Map([["a", 1]])))); // 1
 * ```
 */
export function asAttrGetter<T extends object>(value: T): T {
  return request(value, "attr");
}

/**
 * Marks `value` so that Lua indexing reads items: `Map.get(key)`, `array[index]`, `obj[key]`,
 * never methods.
 *
 * @example
 * ```ts
 * import { asItemGetter, LuaRuntime } from "../mod.ts";
 * using lua = new LuaRuntime();
 * const first = lua.eval("function(a) return a[0] end") as (a: unknown) => number;
 * console.log(first(asItemGetter([7, 8]))); // 7
 * ```
 */
export function asItemGetter<T extends object>(value: T): T {
  return request(value, "item");
}

/** Functions made by {@linkcode unpacksLuaTable}, with their parameter names. */
export const tableUnpackers: WeakMap<object, readonly string[]> = new WeakMap();

function parameterNames(fn: (...args: never[]) => unknown): string[] {
  const source = Function.prototype.toString.call(fn);
  const match = /^[^(]*\(([^)]*)\)/.exec(source) ?? /^\s*(?:async\s*)?([\w$]+)\s*=>/.exec(source);
  if (!match) return [];
  return match[1].split(",").map((p) => p.replace(/=[\s\S]*$/, "").replace(/^\.\.\./, "").trim())
    .filter((p) => /^[\w$]+$/.test(p));
}

/**
 * Lets Lua call `fn` with named arguments in a table, as `fn{a = 1, b = 2}` or `fn{1, b = 2}`:
 * the array part fills the first parameters, the other keys fill parameters by name. A call with
 * anything else than one table argument passes its arguments unchanged.
 *
 * @example
 * ```ts
 * import { LuaRuntime, unpacksLuaTable } from "../mod.ts";
 * using lua = new LuaRuntime();
 * const add = unpacksLuaTable((a: number, b: number) => a + b);
 * const f = lua.eval("function(add) return add{a = 5, b = 6} end") as (f: unknown) => number;
 * console.log(f(add)); // 11
 * ```
 */
export function unpacksLuaTable<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R {
  if (typeof fn !== "function") throw new TypeError("unpacksLuaTable expects a function");
  const wrapper = (...args: A): R => fn(...args);
  tableUnpackers.set(wrapper, parameterNames(fn as (...args: never[]) => unknown));
  return wrapper;
}
