/**
 * How the trusted bridge exposes JS values to Lua (lupa's rules in JS terms): objects, arrays,
 * Maps and functions become proxies; indexing reads properties (items for a Map, or with
 * `asItemGetter`), methods come back bound to their object, `obj:method()` passes the object as
 * `this`; every property and item access goes through the attribute filter or handlers.
 *
 * @module
 */

import type { LuaState } from "../ffi/lua_api.ts";
import type { IterationMode, LuaCore, ProxyBehavior, ProxyKind, ValuePusher, ValueReader } from "./core.ts";
import { MultipleValues, NONE, ThrownValue } from "./core.ts";
import { LuaTable, makeCoroutine, makeFunction, makeTable, makeUserdata } from "./handles.ts";
import { tableUnpackers } from "./interop.ts";

/** Decides the name used for a property access, or throws to deny it (lupa's `attribute_filter`). */
export type AttributeFilter = (obj: object, name: string | number, isSetting: boolean) => string | number;

/** Replaces property reads and writes entirely (lupa's `attribute_handlers`). */
export interface AttributeHandlers {
  /** Returns the value of `obj[name]` as Lua should see it; throw to deny. */
  get?(obj: object, name: string | number): unknown;
  /** Performs `obj[name] = value`; throw to deny. */
  set?(obj: object, name: string | number, value: unknown): void;
}

/**
 * A method read from an object, bound to it. It is itself callable (like lupa's bound methods), so
 * when Lua hands it back to JS, `method(...args)` calls `fn` with `this === self`.
 */
export class BoundMethod extends Function {
  /** The function read from `self`. */
  declare readonly fn: (...args: unknown[]) => unknown;
  /** The object it was read from. */
  declare readonly self: object;
  /**
   * @param fn The function read from `self`.
   * @param self The object it was read from.
   */
  constructor(fn: (...args: unknown[]) => unknown, self: object) {
    super();
    const bound = function (...args: unknown[]): unknown {
      return fn.apply(self, args);
    };
    Object.setPrototypeOf(bound, new.target.prototype);
    Object.defineProperties(bound, { fn: { value: fn }, self: { value: self } });
    return bound as BoundMethod;
  }
}

/** Calling a {@linkcode BoundMethod} from JS. */
export interface BoundMethod {
  /** Calls `fn` with `this === self`. */
  (...args: unknown[]): unknown;
}

const boundMethods = new WeakMap<object, Map<unknown, BoundMethod>>();

function bind(fn: (...args: unknown[]) => unknown, self: object): BoundMethod {
  let cache = boundMethods.get(self);
  if (!cache) boundMethods.set(self, cache = new Map());
  let method = cache.get(fn);
  if (!method) cache.set(fn, method = new BoundMethod(fn, self));
  return method;
}

function keyName(key: unknown): string | number {
  if (typeof key === "string" || typeof key === "number") return key;
  if (typeof key === "bigint") return Number(key);
  if (key instanceof Uint8Array) return new TextDecoder().decode(key);
  throw new TypeError(`cannot index a JavaScript object with a ${typeof key} key`);
}

function nullToNone(value: unknown): unknown {
  return value === null || value === undefined ? NONE : value;
}

/** Options of the bridge behaviour. */
export interface BridgeOptions {
  /** See {@linkcode AttributeFilter}. */
  attributeFilter?: AttributeFilter;
  /** See {@linkcode AttributeHandlers}. */
  attributeHandlers?: AttributeHandlers;
}

/** The proxy behaviour of `LuaRuntime`. */
export function bridgeBehavior(core: LuaCore, options: BridgeOptions): ProxyBehavior {
  const { attributeFilter: filter, attributeHandlers: handlers } = options;

  const readName = (obj: object, key: unknown, setting: boolean): string | number => {
    const name = keyName(key);
    return filter ? filter(obj, name, setting) : name;
  };

  const readItem = (target: object, key: unknown): unknown => {
    if (handlers?.get) return handlers.get(target, keyName(key));
    if (target instanceof Map) {
      return target.get(filter ? filter(target, keyName(key), false) : key);
    }
    return (target as Record<string | number, unknown>)[readName(target, key, false)];
  };

  const readAttribute = (target: object, key: unknown): unknown => {
    if (handlers?.get) return handlers.get(target, keyName(key));
    const value = (target as Record<string | number, unknown>)[readName(target, key, false)];
    return typeof value === "function" ? bind(value as (...args: unknown[]) => unknown, target) : value;
  };

  const ownKeys = (target: object): (string | number)[] => {
    const keys: (string | number)[] = Array.isArray(target) ? target.map((_, i) => i) : Object.keys(target);
    if (!filter) return keys;
    const visible: (string | number)[] = [];
    for (const key of keys) {
      try {
        filter(target, key, false);
        visible.push(key);
      } catch {
        // filtered keys are skipped, never reported
      }
    }
    return visible;
  };

  return {
    index(target, kind, key) {
      let obj = target as object;
      if (obj instanceof ThrownValue) {
        // A JS exception caught by pcall: Lua reads the thrown object's properties (err.message).
        if (obj.value === null || (typeof obj.value !== "object" && typeof obj.value !== "function")) {
          return undefined;
        }
        obj = obj.value;
      }
      if (obj instanceof BoundMethod) return readAttribute(obj.fn, key);
      if (kind === "item") return readItem(obj, key);
      if (kind === "default" && obj instanceof Map) return readItem(obj, key);
      return readAttribute(obj, key);
    },

    newindex(target, kind, key, value) {
      const obj = target as object;
      if (handlers?.set) return handlers.set(obj, keyName(key), value);
      if (handlers?.get) throw new TypeError(`cannot set attribute '${String(key)}'`);
      const name = readName(obj, key, true);
      if (obj instanceof Map && kind !== "attr") obj.set(filter ? name : key, value);
      else (obj as Record<string | number, unknown>)[name] = value;
    },

    call(target, args) {
      if (target instanceof BoundMethod) {
        if (args.length > 0 && args[0] === target.self) args = args.slice(1);
        return target.fn.apply(target.self, unpackArgs(target.fn, args));
      }
      if (typeof target !== "function") {
        throw new TypeError("attempt to call a JavaScript object that is not a function");
      }
      return (target as (...a: unknown[]) => unknown)(...unpackArgs(target, args));
    },

    length(target) {
      if (target instanceof Map || target instanceof Set) return target.size;
      const length = (target as { length?: unknown }).length;
      if (typeof length === "number") return length;
      throw new TypeError("this JavaScript object has no length");
    },

    describe(target) {
      if (target instanceof ThrownValue) return String(target.value);
      if (target instanceof BoundMethod) return `js method ${target.fn.name || "(anonymous)"}`;
      if (typeof target === "function") return `js function ${target.name || "(anonymous)"}`;
      return String(target);
    },

    *iterate(target: unknown, kind: ProxyKind, mode: IterationMode): Iterator<unknown[]> {
      const obj = target as object;
      if (mode === "pairs") {
        if (obj instanceof Map) {
          for (const [k, v] of obj) yield [k, v];
          return;
        }
        for (const key of ownKeys(obj)) yield [key, readItem(obj, key)];
        return;
      }
      const iterable: Iterable<unknown> = Symbol.iterator in obj
        ? obj as Iterable<unknown>
        : mode === "iterex"
        // through the filter/handlers, like pairs (Object.entries would bypass the attribute filter)
        ? ownKeys(obj).map((key) => [key, readItem(obj, key)])
        : ownKeys(obj);
      let index = 0;
      for (const item of iterable) {
        if (mode === "iter") yield [nullToNone(item)];
        else if (mode === "enumerate") yield [index++, item === undefined ? null : item];
        else if (Array.isArray(item)) yield item.length === 0 ? [] : [nullToNone(item[0]), ...item.slice(1)];
        else yield [nullToNone(item)];
      }
      void kind;
    },
  };

  function unpackArgs(fn: object, args: unknown[]): unknown[] {
    const names = tableUnpackers.get(fn);
    if (!names || args.length !== 1 || !(args[0] instanceof LuaTable)) return args;
    const table = args[0];
    const out: unknown[] = [];
    const n = table.length;
    for (let i = 1; i <= n; i++) out.push(table.get(i));
    for (const [key] of table.entries()) {
      if (typeof key === "number" && Number.isInteger(key) && key >= 1 && key <= n) continue;
      const at = typeof key === "string" ? names.indexOf(key) : -1;
      if (at < 0) throw new TypeError(`unexpected keyword argument '${String(key)}'`);
      if (at < n) throw new TypeError(`argument '${String(key)}' given by position and by name`);
    }
    for (let i = n; i < names.length; i++) out[i] = table.get(names[i]);
    while (out.length > 0 && out[out.length - 1] === undefined) out.pop();
    void core;
    return out;
  }
}

/** Lua values come out of the bridge as live handles. */
export const bridgeReader: ValueReader = {
  table: (core, L, idx) => makeTable(core, L, idx),
  func: (core, L, idx) => makeFunction(core, L, idx),
  thread: (core, L, idx) => makeCoroutine(core, L, idx),
  userdata: (core, L, idx) => makeUserdata(core, L, idx),
};

/** JS objects go into the bridge as proxies. */
export const bridgePusher: ValuePusher = {
  object: (core: LuaCore, L: LuaState, value: object) => core.pushProxy(L, value, "default"),
};

/** Marks a JS function's result as several Lua values (for callbacks that return more than one). */
export function multipleValues(...values: unknown[]): MultipleValues {
  return new MultipleValues(values);
}
