/**
 * Host objects as untrusted Lua sees them: deep-frozen, read-only, and reduced to data. Only own
 * data properties that pass the filter are visible; a filtered name and a missing one look exactly
 * the same; functions, accessors, prototypes and constructors are never reachable. Arrays are
 * 1-based with `#`, `ipairs` and `pairs`; Maps are readable by key.
 *
 * @module
 */

import type { AttributeFilter, AttributeHandlers } from "../lua/bridge.ts";
import type { ProxyBehavior } from "../lua/core.ts";
import { LuaError } from "../lua/errors.ts";

/** Names never readable on a host object, whatever the filter says. */
export const FORBIDDEN_NAMES: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);

/**
 * Freezes `value` and everything reachable from it (own properties, array items, Map keys and
 * values), and records each object in `registry`. Typed arrays cannot be frozen and are left as
 * they are (Lua only ever receives copies of their bytes).
 */
export function deepFreeze(value: unknown, registry: WeakSet<object>): void {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const item = stack.pop();
    if (item === null || (typeof item !== "object" && typeof item !== "function")) continue;
    const object = item as object;
    if (registry.has(object)) continue;
    registry.add(object);
    if (ArrayBuffer.isView(object)) continue;
    if (object instanceof Map) {
      for (const [k, v] of object) stack.push(k, v);
    } else if (object instanceof Set) {
      for (const v of object) stack.push(v);
    }
    Object.freeze(object);
    for (const key of Reflect.ownKeys(object)) {
      const descriptor = Object.getOwnPropertyDescriptor(object, key);
      if (descriptor && "value" in descriptor) stack.push(descriptor.value);
    }
  }
}

function dataValue(value: unknown): unknown {
  if (typeof value === "function" || typeof value === "symbol") return undefined;
  return value;
}

function ownData(target: object, name: string): unknown {
  const descriptor = Object.getOwnPropertyDescriptor(target, name);
  if (!descriptor || !("value" in descriptor)) return undefined;
  return dataValue(descriptor.value);
}

function arrayIndex(key: unknown, length: number): number | undefined {
  if (typeof key !== "number" || !Number.isInteger(key) || key < 1 || key > length) return undefined;
  return key - 1;
}

/** Options of {@linkcode hostObjectBehavior}. */
export interface HostObjectOptions {
  /** Decides visibility: returns the name to read, throws to hide. */
  attributeFilter?: AttributeFilter;
  /** Replaces reads (and, if given, writes) entirely. */
  attributeHandlers?: AttributeHandlers;
}

/** The proxy behaviour of host objects inside a sandbox. */
export function hostObjectBehavior(options: HostObjectOptions): ProxyBehavior {
  const { attributeFilter: filter, attributeHandlers: handlers } = options;

  const visibleName = (target: object, name: string): string | undefined => {
    if (FORBIDDEN_NAMES.has(name)) return undefined;
    if (!filter) return name;
    let chosen: string | number;
    try {
      chosen = filter(target, name, false);
    } catch {
      return undefined;
    }
    const text = String(chosen);
    return FORBIDDEN_NAMES.has(text) ? undefined : text;
  };

  const read = (target: object, key: unknown): unknown => {
    if (handlers?.get) {
      if (typeof key !== "string" && typeof key !== "number") return undefined;
      if (typeof key === "string" && FORBIDDEN_NAMES.has(key)) return undefined;
      try {
        return dataValue(handlers.get(target, key));
      } catch {
        return undefined;
      }
    }
    if (Array.isArray(target)) {
      const index = arrayIndex(key, target.length);
      return index === undefined ? undefined : dataValue(target[index]);
    }
    if (target instanceof Map) {
      if (typeof key !== "string" && typeof key !== "number") return undefined;
      if (filter && visibleName(target, String(key)) === undefined) return undefined;
      return dataValue(target.get(key));
    }
    if (typeof key !== "string") return undefined;
    const name = visibleName(target, key);
    return name === undefined ? undefined : ownData(target, name);
  };

  const visibleEntries = function* (target: object): Generator<unknown[]> {
    if (Array.isArray(target)) {
      for (let i = 0; i < target.length; i++) {
        const value = read(target, i + 1);
        if (value !== undefined && value !== null) yield [i + 1, value];
      }
      return;
    }
    if (target instanceof Map) {
      for (const key of target.keys()) {
        const value = read(target, key);
        if (value !== undefined && value !== null) yield [key, value];
      }
      return;
    }
    for (const key of Object.keys(target)) {
      const value = read(target, key);
      if (value !== undefined && value !== null) yield [key, value];
    }
  };

  return {
    index: (target, _kind, key) => {
      const value = read(target as object, key);
      return value === null ? undefined : value;
    },
    newindex: (target, _kind, key, value) => {
      if (handlers?.set && (typeof key === "string" || typeof key === "number")) {
        handlers.set(target as object, key, value);
        return;
      }
      throw new LuaError("attempt to modify a read-only host object");
    },
    call: () => {
      throw new LuaError("attempt to call a host object");
    },
    length: (target) => {
      if (Array.isArray(target)) return target.length;
      if (target instanceof Map) return target.size;
      return 0;
    },
    describe: (target) =>
      Array.isArray(target) ? "host array" : target instanceof Map ? "host map" : "host object",
    iterate: (target, _kind, mode) => {
      if (mode !== "pairs") throw new LuaError("host objects can only be iterated with pairs");
      return visibleEntries(target as object);
    },
  };
}
