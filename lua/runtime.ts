/**
 * `LuaRuntime`: the trusted two-way bridge between JS and one Lua state, as capable as lupa.
 *
 * @module
 */

import type { LuaState } from "../ffi/lua_api.ts";
import {
  type AttributeFilter,
  type AttributeHandlers,
  bridgeBehavior,
  bridgePusher,
  bridgeReader,
} from "./bridge.ts";
import { LuaCore, releaseHandle } from "./core.ts";
import { CompiledChunks } from "./chunk_cache.ts";
import { LuaMemoryError, LuaStateError } from "./errors.ts";
import { type ObjectHook, pushPlainData } from "./plain_data.ts";
import { collectResults, type LuaFunction, LuaTable, makeFunction, makeTable } from "./handles.ts";

/** Options of a {@linkcode LuaRuntime}; all optional. */
export interface LuaRuntimeOptions {
  /** Path or soname of the Lua shared library (default: env `LUAGATE_LUA_LIB`, then a probe). */
  library?: string;
  /** `"utf-8"` (default): Lua strings come back as JS strings; `null`: as `Uint8Array`. */
  encoding?: "utf-8" | null;
  /** Decides the name for each property/item access from Lua, or throws to deny it. */
  attributeFilter?: AttributeFilter;
  /** Replaces property/item reads and writes from Lua (not combinable with `attributeFilter`). */
  attributeHandlers?: AttributeHandlers;
  /** Exposes `js.eval(code)` to Lua (default false). */
  registerEval?: boolean;
  /** Exposes `js.global` (`globalThis`) to Lua (default false). */
  registerGlobal?: boolean;
  /** Bytes Lua may allocate beyond its start-up footprint (default: no cap). */
  maxMemory?: number;
  /** Allow binary (precompiled) chunks in `compile`/`execute` and Lua's `load` (default false: Lua has no bytecode verifier). */
  allowBinaryChunks?: boolean;
}

/** Options of {@linkcode LuaRuntime.compile}. */
export interface CompileOptions {
  /** The chunk name used in error messages and tracebacks. */
  name?: string;
}

// Lua's own load accepts bytecode, which Lua does not verify: a crafted chunk can crash the host.
const TEXT_ONLY_LOAD_LUA = `
local load, loadstring, select, type, concat = load, loadstring, select, type, table.concat
if _VERSION ~= "Lua 5.1" then
  return function(chunk, name, mode, ...)
    if select("#", ...) > 0 then return load(chunk, name, "t", ...) end
    return load(chunk, name, "t")
  end
end
return function(chunk, name)
  if type(chunk) ~= "string" then
    local parts = {}
    while true do
      local part = chunk()
      if part == nil or part == "" then break end
      parts[#parts + 1] = part
    end
    chunk = concat(parts)
  end
  if chunk:byte(1) == 27 then return nil, "attempt to load a binary chunk (only text is allowed)" end
  return loadstring(chunk, name)
end
`;

/**
 * A Lua state you can share values with in both directions.
 *
 * @example
 * ```ts
 * import { LuaRuntime } from "./runtime.ts";
 * using lua = new LuaRuntime();
 * console.log(lua.eval("1 + 1")); // 2
 * const f = lua.eval("function(g, n) return g(n) end") as (g: unknown, n: number) => number;
 * console.log(f((n: number) => n + 1, 2)); // 3
 * ```
 */
export class LuaRuntime implements Disposable {
  readonly #core: LuaCore;
  readonly #allowBinary: boolean;
  // eval and execute of the same source skip the parser; not before 5.2, where a chunk's globals
  // are its environment, which the chunk itself can change (setfenv) for every later run
  readonly #chunks: CompiledChunks | undefined;
  #maxMemory = 0;

  /**
   * Creates a LuaRuntime.
   * @param options See {@linkcode LuaRuntimeOptions}.
   */
  constructor(options: LuaRuntimeOptions = {}) {
    if (options.attributeFilter && options.attributeHandlers) {
      throw new TypeError("attributeFilter and attributeHandlers cannot be combined");
    }
    if (options.attributeFilter !== undefined && typeof options.attributeFilter !== "function") {
      throw new TypeError("attributeFilter must be a function");
    }
    if (options.encoding !== undefined && options.encoding !== null && options.encoding !== "utf-8") {
      throw new TypeError(`unsupported encoding ${JSON.stringify(options.encoding)}: use "utf-8" or null`);
    }
    if (
      options.maxMemory !== undefined &&
      (typeof options.maxMemory !== "number" || Number.isNaN(options.maxMemory))
    ) {
      throw new TypeError("maxMemory must be a number of bytes");
    }
    const core = new LuaCore({ library: options.library, encoding: options.encoding });
    this.#core = core;
    this.#allowBinary = options.allowBinaryChunks === true;
    this.#chunks = core.api.version === "5.1" ? undefined : new CompiledChunks({
      core,
      compile: (code, _name, compiled) => this.#compileKept(code, compiled),
      memoryLimit: () => this.#maxMemory > 0 ? this.#maxMemory : Infinity,
    });
    core.behavior = bridgeBehavior(core, options);
    core.reader = bridgeReader;
    core.pusher = bridgePusher;
    try {
      this.#installGlobals(options);
      // memoryUsed() counts from here (lupa: 0 right after start-up), and maxMemory is on top of it.
      core.resetBaseline();
    } catch (error) {
      core.close();
      throw error;
    }
    if (options.maxMemory !== undefined) this.setMaxMemory(options.maxMemory);
  }

  #installGlobals(options: LuaRuntimeOptions): void {
    const core = this.#core;
    const L = core.L;
    using globals = this.globals();
    core.ensureStack(L, 4);
    core.pushJsTable(L);
    using js = makeTable(core, L, -1);
    core.api.pop(L, 1);
    if (options.registerEval) js.set("eval", (code: string) => (0, eval)(String(code)));
    if (options.registerGlobal) js.set("global", globalThis);
    globals.set("js", js);
    if (!this.#allowBinary) {
      core.loadTrusted(L, TEXT_ONLY_LOAD_LUA, "=luagate.load");
      using textOnly = core.call(L, 0, collectResults) as LuaFunction;
      globals.set("load", textOnly);
      if (core.api.version === "5.1") globals.set("loadstring", textOnly);
      globals.set("dofile", undefined);
      globals.set("loadfile", undefined);
    }
  }

  /** The language version, e.g. "5.4". */
  get luaVersion(): string {
    return this.#core.api.version;
  }

  /** The implementation and release, e.g. "Lua 5.4.4" or "LuaJIT 2.1". */
  get luaImplementation(): string {
    return this.#core.api.library.implementation;
  }

  #compileOnStack(L: LuaState, code: string | Uint8Array, name: string | undefined): void {
    const chunkName = name !== undefined ? `=${name}` : typeof code === "string" ? code : "=(bytes)";
    this.#core.load(L, code, chunkName, this.#allowBinary ? "bt" : "t");
  }

  // A chunk kept compiled (source text only: bytes may change), pinned in the registry.
  #compileKept(code: string, compiled: () => void): number {
    const core = this.#core;
    const L = core.currentL;
    const top = core.api.sym.lua_gettop(L);
    try {
      this.#compileOnStack(L, code, undefined);
      compiled();
      return core.ref(L);
    } finally {
      core.api.sym.lua_settop(L, top);
    }
  }

  #run(code: string | Uint8Array, args: unknown[], name?: string): unknown {
    const core = this.#core;
    core.check();
    if (typeof code !== "string" && !(code instanceof Uint8Array)) {
      throw new TypeError("Lua code must be a string or a Uint8Array");
    }
    const chunks = this.#chunks;
    if (chunks === undefined || typeof code !== "string" || name !== undefined) {
      return this.#call(args, (L) => this.#compileOnStack(L, code, name));
    }
    return chunks.use(code, code, (ref, again) =>
      this.#call(args, (L) => {
        core.pushRegistry(L, ref);
        if (!again) return;
        // as load gives it: the global table as its first upvalue (its _ENV), which the chunk
        // itself may have replaced in an earlier run (debug.setupvalue)
        core.api.pushGlobalTable(L);
        if (core.api.bridge().lua_setupvalue(L, -2, 1) === null) core.api.pop(L, 1);
      }));
  }

  // Calls the function `pushFunction` pushes with `args`; returns the results as `execute` does.
  #call(args: unknown[], pushFunction: (L: LuaState) => void): unknown {
    const core = this.#core;
    const L = core.currentL;
    const top = core.api.sym.lua_gettop(L);
    core.ensureStack(L, args.length + 4);
    try {
      pushFunction(L);
      for (const arg of args) core.pushValue(L, arg);
      return core.call(L, args.length, collectResults, true, top + 1);
    } finally {
      core.api.sym.lua_settop(L, top);
    }
  }

  /**
   * Evaluates a Lua expression (`return <code>`); `args` are reachable as `...`.
   *
   * @example
   * ```ts
   * import { LuaRuntime } from "./runtime.ts";
   * using lua = new LuaRuntime();
   * console.log(lua.eval("... * 2", 21)); // 42
   * ```
   */
  eval(code: string, ...args: unknown[]): unknown {
    if (typeof code !== "string") throw new TypeError("Lua code must be a string");
    return this.#run(`return ${code}`, args, undefined);
  }

  /**
   * Runs a Lua chunk and returns what it returns (none: `undefined`, one: the value, several: an
   * array); `args` are reachable as `...`.
   *
   * @example
   * ```ts
   * import { LuaRuntime } from "./runtime.ts";
   * using lua = new LuaRuntime();
   * console.log(lua.execute("local a, b = ... return a + b, a * b", 2, 3)); // [5, 6]
   * ```
   */
  execute(code: string | Uint8Array, ...args: unknown[]): unknown {
    return this.#run(code, args);
  }

  /**
   * Compiles a chunk without running it.
   *
   * @example
   * ```ts
   * import { LuaRuntime } from "./runtime.ts";
   * using lua = new LuaRuntime();
   * const chunk = lua.compile("return ... + 1", { name: "inc.lua" });
   * console.log(chunk(1)); // 2
   * ```
   */
  compile(code: string | Uint8Array, options: CompileOptions = {}): LuaFunction {
    const core = this.#core;
    core.check();
    if (typeof code !== "string" && !(code instanceof Uint8Array)) {
      throw new TypeError("Lua code must be a string or a Uint8Array");
    }
    if (options.name !== undefined && typeof options.name !== "string") {
      throw new TypeError("the chunk name must be a string");
    }
    const L = core.currentL;
    const top = core.api.sym.lua_gettop(L);
    try {
      this.#compileOnStack(L, code, options.name);
      return makeFunction(core, L, -1);
    } finally {
      core.api.sym.lua_settop(L, top);
    }
  }

  /**
   * Lua's `require(name)`: loads a module and returns it.
   *
   * @example
   * ```ts
   * import { LuaRuntime } from "./runtime.ts";
   * using lua = new LuaRuntime();
   * const string = lua.require("string") as import("./handles.ts").LuaTable;
   * console.log((string.get("upper") as (s: string) => string)("a")); // "A"
   * ```
   */
  require(name: string): unknown {
    if (typeof name !== "string") throw new TypeError("module name must be a string");
    return this.#run("return require(...)", [name]);
  }

  /**
   * The global table.
   *
   * @example
   * ```ts
   * import { LuaRuntime } from "./runtime.ts";
   * using lua = new LuaRuntime();
   * lua.globals().set("answer", 42);
   * console.log(lua.eval("answer")); // 42
   * ```
   */
  globals(): LuaTable {
    const core = this.#core;
    core.check();
    const L = core.currentL;
    const top = core.api.sym.lua_gettop(L);
    core.ensureStack(L, 2);
    try {
      core.api.pushGlobalTable(L);
      return makeTable(core, L, -1);
    } finally {
      core.api.sym.lua_settop(L, top);
    }
  }

  /**
   * A new table holding `items` at 1, 2, 3...
   *
   * @example
   * ```ts
   * import { LuaRuntime } from "./runtime.ts";
   * using lua = new LuaRuntime();
   * const t = lua.table(10, 20, 30);
   * console.log(t.get(2), t.length); // 20 3
   * ```
   */
  table(...items: unknown[]): LuaTable {
    return this.#buildTable((set) => items.forEach((item, i) => set(i + 1, item)), items.length, 0);
  }

  /**
   * A new table gathering every source: arrays and other iterables append at the next integer
   * keys; plain objects, Maps and Lua tables add their key/value pairs (later sources win). With a
   * final `{ recursive: true }` argument, nested arrays and plain objects become tables too
   * (cycles keep their shape).
   *
   * @example
   * ```ts
   * import { LuaRuntime } from "./runtime.ts";
   * using lua = new LuaRuntime();
   * const t = lua.tableFrom([10, 20], { a: 1 }, [30]);
   * console.log(t.get(3), t.get("a")); // 30 1
   * ```
   */
  tableFrom(...sources: unknown[]): LuaTable {
    let recursive = false;
    const last = sources[sources.length - 1];
    if (isOptions(last)) {
      recursive = last.recursive === true;
      sources = sources.slice(0, -1);
    }
    const core = this.#core;
    core.check();
    if (recursive && sources.length === 1) {
      const direct = this.#pushDirect(sources[0]);
      if (direct) return direct;
    }
    const seen = new Map<object, LuaTable>();
    let depth = 0;
    const convert = (value: unknown): unknown => {
      if (!recursive || value === null || typeof value !== "object") return value;
      if (
        !Array.isArray(value) && Object.getPrototypeOf(value) !== Object.prototype && !(value instanceof Map)
      ) {
        return value;
      }
      const known = seen.get(value);
      if (known) return known;
      // Fail clearly long before the JS stack runs out (with the JS allocator, a stack overflow
      // inside an allocation would leave Lua without memory outside any protected call).
      if (depth >= MAX_TABLE_DEPTH) {
        throw new RangeError(`tableFrom: nesting deeper than ${MAX_TABLE_DEPTH} levels`);
      }
      const table = this.#buildTable(() => {}, 0, 0);
      seen.set(value, table);
      depth++;
      try {
        fill(table, [value]);
      } finally {
        depth--;
      }
      return table;
    };
    const fill = (table: LuaTable, from: unknown[]) => {
      let next = table.length + 1;
      for (const source of from) {
        if (source === null || source === undefined) continue;
        if (typeof source !== "object") throw new TypeError(`tableFrom cannot take a ${typeof source}`);
        if (source instanceof Map) {
          for (const [k, v] of source) table.set(convert(k), convert(v));
        } else if (source instanceof LuaTable) {
          for (const [k, v] of source.entries()) table.set(k, v);
        } else if (Symbol.iterator in source) {
          for (const item of source as Iterable<unknown>) table.set(next++, convert(item));
        } else {
          for (const [k, v] of Object.entries(source)) table.set(k, convert(v));
        }
        next = table.length + 1;
      }
    };
    const result = this.#buildTable(() => {}, 0, 0);
    try {
      fill(result, sources);
    } catch (error) {
      // Let Lua have the partial tables back now (not when JS collects the handles): after a memory
      // error they would keep the state over its cap.
      releaseHandle(result);
      for (const table of seen.values()) releaseHandle(table);
      if (error instanceof LuaMemoryError) core.collectGarbage();
      throw error;
    }
    // the nested tables live on in the result; their handles would hold them until JS collects them
    for (const table of seen.values()) releaseHandle(table);
    return result;
  }

  /**
   * The fast path of a recursive tableFrom over one plain-data source: pushed in one walk, objects
   * that are not plain data left as proxies. Returns undefined where only the general path can
   * keep the semantics (functions, object keys in Maps, cycles).
   */
  #pushDirect(source: unknown): LuaTable | undefined {
    if (source === null || typeof source !== "object") return undefined;
    const prototype = Object.getPrototypeOf(source);
    if (!Array.isArray(source) && prototype !== Object.prototype && prototype !== null) return undefined;
    const core = this.#core;
    const L = core.currentL;
    const top = core.api.sym.lua_gettop(L);
    try {
      pushPlainData(core, L, source, DIRECT_LIMITS, keepNonPlainAsProxy);
      if (core.overdraftPersists()) {
        throw new LuaMemoryError("not enough memory: the table exceeds the memory limit");
      }
      return makeTable(core, L, -1);
    } catch (error) {
      if (error instanceof LuaMemoryError) {
        core.dropPushed(L, top);
        throw error;
      }
      return undefined;
    } finally {
      core.api.sym.lua_settop(L, top);
    }
  }

  #buildTable(fill: (set: (k: unknown, v: unknown) => void) => void, narr: number, nrec: number): LuaTable {
    const core = this.#core;
    core.check();
    const L = core.currentL;
    const s = core.api.sym;
    const top = s.lua_gettop(L);
    core.ensureStack(L, 6);
    try {
      s.lua_createtable(L, narr, nrec);
      fill((k, v) => {
        core.pushValue(L, k);
        core.pushValue(L, v);
        s.lua_rawset(L, -3);
      });
      if (core.overdraftPersists()) {
        core.dropPushed(L, top);
        throw new LuaMemoryError("not enough memory: the table exceeds the memory limit");
      }
      return makeTable(core, L, -1);
    } finally {
      s.lua_settop(L, top);
    }
  }

  /** Bytes Lua uses beyond its start-up footprint, or in total. */
  memoryUsed(total = false): number {
    this.#core.check();
    return this.#core.memoryUsed(total);
  }

  /** The memory cap in bytes beyond start-up (0: none). */
  getMaxMemory(): number {
    return this.#maxMemory;
  }

  /**
   * Sets the memory cap in bytes beyond start-up (0 or less: none). A cap below what is already in
   * use makes the next allocation fail with a memory error.
   */
  setMaxMemory(bytes: number): void {
    this.#core.check();
    if (typeof bytes !== "number" || Number.isNaN(bytes)) {
      throw new TypeError("maxMemory must be a number of bytes");
    }
    if (!this.#core.capped && bytes > 0) {
      throw new LuaStateError(
        `${this.luaImplementation} refuses custom allocators here: no memory cap available`,
      );
    }
    this.#maxMemory = bytes > 0 ? Math.floor(bytes) : 0;
    this.#chunks?.clear();
    this.#core.setMaxMemory(this.#maxMemory);
  }

  /** Runs a full garbage collection. */
  gc(): void {
    this.#core.check();
    this.#core.collectGarbage();
  }

  /** Closes the Lua state (idempotent). Using the runtime afterwards throws a clear error. */
  close(): void {
    this.#core.close();
  }

  /** Same as {@linkcode LuaRuntime.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** How deep `tableFrom(..., { recursive: true })` follows nested values (Python's recursion limit). */
const MAX_TABLE_DEPTH = 1000;

const DIRECT_LIMITS = { maxDepth: 64, maxEntries: Number.MAX_SAFE_INTEGER };

// tableFrom turns only arrays, plain objects and Maps into tables; everything else stays a proxy.
const keepNonPlainAsProxy: ObjectHook = {
  claims(object) {
    if (Array.isArray(object) || object instanceof Map || object instanceof Uint8Array) return false;
    const prototype = Object.getPrototypeOf(object);
    return prototype !== Object.prototype && prototype !== null;
  },
  push: (core, L, object) => core.pushValue(L, object),
};

function isOptions(value: unknown): value is { recursive?: boolean } {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return false;
  if (Object.getPrototypeOf(value) !== Object.prototype) return false;
  const keys = Object.keys(value);
  return keys.length === 1 && keys[0] === "recursive" &&
    typeof (value as { recursive: unknown }).recursive === "boolean";
}
