/**
 * Ready-made attribute filters, usable by `LuaRuntime` and `Sandbox` alike. A filter receives the
 * object, the name Lua asked for and whether Lua is setting it; it returns the name to use, or
 * throws to deny. In a sandbox a denied name reads as missing.
 *
 * @module
 */

import type { AttributeFilter } from "../lua/bridge.ts";

/** Raised by the ready-made filters when they deny a name. */
export class AttributeDeniedError extends Error {
  /**
   * Creates an AttributeDeniedError.
   * @param name The denied name.
   */
  constructor(readonly attribute: string | number) {
    super(`access to '${String(attribute)}' is denied`);
    this.name = "AttributeDeniedError";
  }
}

const PROTOTYPE_NAMES = new Set(["__proto__", "constructor", "prototype"]);

/**
 * Denies names starting with `_` and the prototype names (`__proto__`, `constructor`,
 * `prototype`), lupa's classic example filter.
 *
 * @example
 * ```ts
 * import { LuaRuntime } from "../mod.ts";
 * import { publicOnly } from "./filters.ts";
 * using lua = new LuaRuntime({ attributeFilter: publicOnly });
 * ```
 */
export const publicOnly: AttributeFilter = (_obj, name): string | number => {
  if (typeof name === "string" && (name.startsWith("_") || PROTOTYPE_NAMES.has(name))) {
    throw new AttributeDeniedError(name);
  }
  return name;
};

/**
 * Allows own properties only: inherited members (methods, `constructor`, `__proto__`) are denied.
 * Numbers (array indices) pass.
 *
 * @example
 * ```ts
 * import { LuaRuntime } from "../mod.ts";
 * import { denyPrototype } from "./filters.ts";
 * using lua = new LuaRuntime({ attributeFilter: denyPrototype });
 * ```
 */
export const denyPrototype: AttributeFilter = (obj, name): string | number => {
  if (typeof name === "number") return name;
  if (PROTOTYPE_NAMES.has(name) || !Object.hasOwn(obj, name)) throw new AttributeDeniedError(name);
  return name;
};

/**
 * Allows only the listed names, for reading; `writable` lists the names Lua may also set.
 *
 * @example
 * ```ts
 * import { Sandbox } from "../mod.ts";
 * import { allowList } from "./filters.ts";
 * using sb = new Sandbox({ globals: { user: { name: "ann", secret: 1 } }, attributeFilter: allowList(["name"]) });
 * console.log(sb.eval("user.name"), sb.eval("user.secret")); // "ann" undefined
 * ```
 */
export function allowList(
  readable: Iterable<string | number>,
  writable: Iterable<string | number> = [],
): AttributeFilter {
  const read = new Set(readable);
  const write = new Set(writable);
  return (_obj, name, isSetting) => {
    if (PROTOTYPE_NAMES.has(String(name))) throw new AttributeDeniedError(name);
    if (isSetting ? !write.has(name) : !read.has(name) && !write.has(name)) {
      throw new AttributeDeniedError(name);
    }
    return name;
  };
}

/**
 * Denies the listed names (and the prototype names), allows everything else.
 *
 * @example
 * ```ts
 * import { LuaRuntime } from "../mod.ts";
 * import { denyList } from "./filters.ts";
 * using lua = new LuaRuntime({ attributeFilter: denyList(["password"]) });
 * ```
 */
export function denyList(names: Iterable<string | number>): AttributeFilter {
  const denied = new Set(names);
  return (_obj, name) => {
    if (denied.has(name) || PROTOTYPE_NAMES.has(String(name))) throw new AttributeDeniedError(name);
    return name;
  };
}

/**
 * Denies every write, allows every read (combine with another filter for both).
 *
 * @example
 * ```ts
 * import { LuaRuntime } from "../mod.ts";
 * import { readOnly } from "./filters.ts";
 * using lua = new LuaRuntime({ attributeFilter: readOnly });
 * ```
 */
export const readOnly: AttributeFilter = (_obj, name, isSetting): string | number => {
  if (isSetting) throw new AttributeDeniedError(name);
  return name;
};

/**
 * Applies each filter in turn: the name one returns is what the next receives; any throw denies.
 *
 * @example
 * ```ts
 * import { LuaRuntime } from "../mod.ts";
 * import { combineFilters, denyPrototype, readOnly } from "./filters.ts";
 * using lua = new LuaRuntime({ attributeFilter: combineFilters(denyPrototype, readOnly) });
 * ```
 */
export function combineFilters(...filters: AttributeFilter[]): AttributeFilter {
  return (obj, name, isSetting) => {
    let current = name;
    for (const filter of filters) current = filter(obj, current, isSetting);
    return current;
  };
}
