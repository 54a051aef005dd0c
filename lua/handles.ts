/**
 * Lua values held by JS: tables, functions, coroutines and foreign userdata. Each is a small handle
 * around a registry reference, released when the handle is garbage collected (or its runtime
 * closes), or at once by `[Symbol.dispose]()` (`using`). Raw stack indices never leave `lua/`.
 *
 * @module
 */

import type { LuaState } from "../ffi/lua_api.ts";
import { LuaStatus, LuaType } from "../ffi/lua_api.ts";
import { type HandleInfo, handleInfoOf, type LuaCore, registerHandle, releaseHandle } from "./core.ts";
import { LuaError, LuaMemoryError, LuaStateError } from "./errors.ts";
import { switchedOn } from "../ffi/switches.ts";

/** When true, table access always takes the protected path (tests use it to cover both paths). */
export const tableAccess: { forceProtected: boolean } = {
  forceProtected: switchedOn("LUAGATE_FORCE_PROTECTED"),
};

function infoOf(handle: object): HandleInfo {
  const info = handleInfoOf(handle);
  if (!info) throw new TypeError("not a luagate handle");
  return checked(info);
}

function checked(info: HandleInfo): HandleInfo {
  info.core.check();
  if (info.ref < 0) throw new LuaStateError("this Lua object was released");
  return info;
}

/** Several Lua results become an array, one stays itself, none is `undefined`. */
export function collectResults(core: LuaCore, L: LuaState, first: number, count: number): unknown {
  if (count === 0) return undefined;
  if (count === 1) return core.read(L, first);
  const out = new Array(count);
  for (let i = 0; i < count; i++) out[i] = core.read(L, first + i);
  return out;
}

// What a step of a table's stepper gives: its key and value as `read` shows them, or PAST_THE_END.
const PAST_THE_END = Symbol("past the end");
type ReadStep<T> = (core: LuaCore, L: LuaState, first: number, count: number) => T | typeof PAST_THE_END;
const ended = (core: LuaCore, L: LuaState, first: number, count: number) =>
  count === 0 || core.api.sym.lua_type(L, first) === LuaType.NIL;
const readEntry: ReadStep<[unknown, unknown]> = (core, L, first, count) =>
  ended(core, L, first, count) ? PAST_THE_END : [core.read(L, first), core.read(L, first + 1)];
const readKey: ReadStep<unknown> = (core, L, first, count) =>
  ended(core, L, first, count) ? PAST_THE_END : core.read(L, first);
const readValue: ReadStep<unknown> = (core, L, first, count) =>
  ended(core, L, first, count) ? PAST_THE_END : core.read(L, first + 1);

// A table's entries in Lua's next order, one call of a stepper each (it keeps the last key), each
// read by `read`.
function* tableSteps<T>(info: HandleInfo, read: ReadStep<T>): IterableIterator<T> {
  const { core } = info;
  let stepper = -1;
  try {
    while (true) {
      const { ref } = checked(info);
      const L = core.currentL;
      if (stepper < 0) stepper = core.tableStepper(L, ref);
      core.ensureStack(L, 2);
      core.pushRegistry(L, stepper);
      const step = core.call(L, 0, read) as T | typeof PAST_THE_END;
      if (step === PAST_THE_END) return;
      yield step;
    }
  } finally {
    if (stepper >= 0) core.unref(stepper);
  }
}

/** The error for an overdraft recorded while the host pushed values (dropped first). */
function memoryFailure(core: LuaCore, L: LuaState, top: number): LuaMemoryError {
  core.dropPushed(L, top);
  return new LuaMemoryError("not enough memory: the value exceeds the memory limit");
}

function checkKey(key: unknown): void {
  if (key === undefined || key === null) throw new TypeError("a Lua table key cannot be nil");
  if (typeof key === "number" && Number.isNaN(key)) throw new TypeError("a Lua table key cannot be NaN");
}

/**
 * A Lua table seen from JS, Map-like. Reads and writes respect metamethods (run protected); on a
 * table without a metatable they take a raw fast path.
 *
 * @example
 * ```ts
 * import { LuaRuntime } from "../mod.ts";
 * using lua = new LuaRuntime();
 * const t = lua.eval("{10, 20, x = 'y'}") as import("../mod.ts").LuaTable;
 * console.log(t.get(1), t.get("x"), t.length); // 10 "y" 2
 * ```
 */
export class LuaTable {
  private constructor() {
    throw new TypeError("LuaTable is created by a LuaRuntime (eval, table, tableFrom)");
  }

  /** `t[key]` (nil comes back as `undefined`). */
  get(key: unknown): unknown {
    const { core, ref } = infoOf(this);
    const L = core.currentL;
    const s = core.api.sym;
    const top = s.lua_gettop(L);
    core.ensureStack(L, 6);
    try {
      core.pushRegistry(L, ref);
      if (!tableAccess.forceProtected && s.lua_getmetatable(L, -1) === 0) {
        core.pushValue(L, key);
        s.lua_rawget(L, -2);
        return core.read(L, -1);
      }
      s.lua_settop(L, top);
      core.pushRef(L, "get");
      core.pushRegistry(L, ref);
      core.pushValue(L, key);
      return core.call(L, 2, collectResults, true, top + 1);
    } finally {
      s.lua_settop(L, top);
    }
  }

  /** `t[key] = value`; `undefined` (or `null`) deletes the entry. */
  set(key: unknown, value: unknown): void {
    checkKey(key);
    const { core, ref } = infoOf(this);
    const L = core.currentL;
    const s = core.api.sym;
    const top = s.lua_gettop(L);
    core.ensureStack(L, 8);
    try {
      core.pushRegistry(L, ref);
      if (!tableAccess.forceProtected && s.lua_getmetatable(L, -1) === 0) {
        core.pushValue(L, key);
        core.pushValue(L, value);
        // The allocator only records an overdraft while the host pushes: report it here, and undo
        // the insertion if the table itself had to grow past the cap (an existing key never grows it).
        if (core.overdraftPersists()) throw memoryFailure(core, L, top);
        s.lua_rawset(L, -3);
        if (core.overdraftPersists()) {
          core.pushValue(L, key);
          s.lua_pushnil(L);
          s.lua_rawset(L, -3);
          throw memoryFailure(core, L, top);
        }
        return;
      }
      s.lua_settop(L, top);
      core.pushRef(L, "set");
      core.pushRegistry(L, ref);
      core.pushValue(L, key);
      core.pushValue(L, value);
      core.call(L, 3, () => undefined, true, top + 1);
    } finally {
      s.lua_settop(L, top);
    }
  }

  /** Removes `key`; returns whether it was present. */
  delete(key: unknown): boolean {
    const had = this.has(key);
    if (had) this.set(key, undefined);
    return had;
  }

  /** Whether `t[key]` is not nil. */
  has(key: unknown): boolean {
    if (key === undefined || key === null) return false;
    return this.get(key) !== undefined;
  }

  /** The raw length `#t` (no `__len`). */
  get length(): number {
    const { core, ref } = infoOf(this);
    const L = core.currentL;
    const top = core.api.sym.lua_gettop(L);
    core.ensureStack(L, 1);
    core.pushRegistry(L, ref);
    const n = core.api.rawLen(L, -1);
    core.api.sym.lua_settop(L, top);
    return n;
  }

  /** Every `[key, value]` pair, in Lua's `next` order. Safe against changes made during iteration. */
  entries(): IterableIterator<[unknown, unknown]> {
    return tableSteps(infoOf(this), readEntry);
  }

  /** Every key. */
  keys(): IterableIterator<unknown> {
    return tableSteps(infoOf(this), readKey);
  }

  /** Every value. */
  values(): IterableIterator<unknown> {
    return tableSteps(infoOf(this), readValue);
  }

  /** Same as {@linkcode LuaTable.entries}. */
  [Symbol.iterator](): IterableIterator<[unknown, unknown]> {
    return this.entries();
  }

  /**
   * Releases this handle now (see {@linkcode LuaFunction}'s `[Symbol.dispose]`); later use throws
   * a `LuaStateError`.
   */
  [Symbol.dispose](): void {
    releaseHandle(this);
  }
}

/** What a Lua function handle offers besides being called. */
export interface LuaFunction {
  /** Calls the Lua function; one result comes back as itself, several as an array. */
  (...args: unknown[]): unknown;
}

/**
 * A Lua function seen from JS: call it directly. `.coroutine(...args)` makes a coroutine of it.
 *
 * @example
 * ```ts
 * import { LuaRuntime } from "../mod.ts";
 * using lua = new LuaRuntime();
 * const add = lua.eval("function(a, b) return a + b end") as import("../mod.ts").LuaFunction;
 * console.log(add(1, 2)); // 3
 * ```
 */
export class LuaFunction extends Function {
  private constructor() {
    super();
    throw new TypeError("LuaFunction is created by a LuaRuntime (eval, compile, globals)");
  }

  /** A coroutine that runs this function; `args` are passed at its first resume. */
  coroutine(...args: unknown[]): LuaCoroutine {
    const { core, ref } = infoOf(this);
    const L = core.currentL;
    const s = core.api.sym;
    const top = s.lua_gettop(L);
    core.ensureStack(L, 2);
    try {
      const co = core.api.bridge().lua_newthread(L) as LuaState;
      core.ensureStack(co, 1);
      core.pushRegistry(co, ref);
      return makeCoroutine(core, L, -1, args);
    } finally {
      s.lua_settop(L, top);
    }
  }

  /**
   * Releases this handle's hold on the Lua value now, instead of when JS collects the handle, which
   * waits for the event loop: a synchronous loop that makes a table per iteration should release
   * each one (`using`), or they pile up in Lua's heap until the loop ends. The value itself lives
   * on while Lua still refers to it. Later use of the handle throws a `LuaStateError`; idempotent.
   *
   * @example
   * ```ts
   * import { LuaRuntime, type LuaFunction } from "../mod.ts";
   * using lua = new LuaRuntime();
   * const size = lua.eval("function(t) return #t end") as LuaFunction;
   * for (let i = 0; i < 3; i++) {
   *   using t = lua.tableFrom([1, 2, 3]);
   *   console.log(size(t)); // 3
   * }
   * ```
   */
  [Symbol.dispose](): void {
    releaseHandle(this);
  }
}

/** The status of a coroutine, as `coroutine.status` names it. */
export type CoroutineStatus = "suspended" | "running" | "normal" | "dead";

interface CoroutineState {
  thread: LuaState;
  pending: unknown[] | undefined;
  dead: boolean;
}

const coroutineStates = new WeakMap<object, CoroutineState>();

/** What a coroutine handle offers besides being called. */
export interface LuaCoroutine {
  /**
   * lupa's `co(args)`: for a coroutine that has not started yet, a new coroutine running the same
   * function that will receive `args` at its first resume (this one stays unstarted, so it can be
   * called again). Throws a {@linkcode LuaError} once the coroutine has started.
   */
  (...args: unknown[]): LuaCoroutine;
}

/**
 * A Lua coroutine seen from JS: an iterator over what it yields, with `send(value)` to resume it
 * with a value, and `status`.
 *
 * @example
 * ```ts
 * import { LuaRuntime } from "../mod.ts";
 * using lua = new LuaRuntime();
 * const gen = lua.eval("function(n) for i = 1, n do coroutine.yield(i) end end") as import("../mod.ts").LuaFunction;
 * console.log([...gen.coroutine(3)]); // [1, 2, 3]
 * ```
 */
export class LuaCoroutine extends Function {
  private constructor() {
    super();
    throw new TypeError("LuaCoroutine is created by a LuaRuntime");
  }

  /** `coroutine.status` of this coroutine. */
  get status(): CoroutineStatus {
    const { core, ref } = infoOf(this);
    const state = coroutineStates.get(this)!;
    if (state.dead) return "dead";
    const L = core.currentL;
    if (L === state.thread) return "running";
    const s = core.api.sym;
    const top = s.lua_gettop(L);
    core.ensureStack(L, 3);
    try {
      core.pushRef(L, "costatus");
      core.pushRegistry(L, ref);
      return core.call(L, 1, collectResults, true, top + 1) as CoroutineStatus;
    } finally {
      s.lua_settop(L, top);
    }
  }

  /**
   * Resumes the coroutine with `value` (the first resume passes the creation arguments instead,
   * plus `value` if given). Returns what it yields, or what it returns when it finishes. Throws a
   * {@linkcode LuaError} if it fails or is already dead.
   */
  send(value?: unknown): unknown {
    return resumeCoroutine(this, value).value;
  }

  /** The iterator protocol: `{ value, done }`; a finished coroutine gives `done: true`. */
  next(value?: unknown): IteratorResult<unknown, unknown> {
    const state = coroutineStates.get(this);
    if (!state || state.dead) return { value: undefined, done: true };
    return resumeCoroutine(this, value);
  }

  /** The coroutine is its own iterator. */
  [Symbol.iterator](): LuaCoroutine {
    return this;
  }

  /** Releases this handle now (see {@linkcode LuaFunction}'s `[Symbol.dispose]`). */
  [Symbol.dispose](): void {
    releaseHandle(this);
  }
}

function resumeCoroutine(handle: LuaCoroutine, value: unknown): IteratorResult<unknown, unknown> {
  const { core } = infoOf(handle);
  const state = coroutineStates.get(handle)!;
  if (state.dead) throw new LuaError("cannot resume dead coroutine");
  const co = state.thread;
  const s = core.api.sym;
  const fresh = core.api.bridge().lua_status(co) === LuaStatus.OK;
  const args = fresh && state.pending ? [...state.pending] : [];
  if (value !== undefined) args.push(value);
  state.pending = undefined;
  core.ensureStack(co, args.length + 2);
  for (const arg of args) core.pushValue(co, arg);
  const status = core.resume(co, args.length);
  if (status === LuaStatus.OK || status === LuaStatus.YIELD) {
    const count = core.api.resumeResults(co);
    const top = s.lua_gettop(co);
    try {
      const result = collectResults(core, co, top - count + 1, count);
      if (status === LuaStatus.OK) state.dead = true;
      return { value: result, done: status === LuaStatus.OK };
    } finally {
      s.lua_settop(co, status === LuaStatus.OK ? 0 : top - count);
    }
  }
  state.dead = true;
  let error = core.errorAt(co, status, -1);
  if (error instanceof LuaError && error.constructor === LuaError && error.value === undefined) {
    error = new LuaError(core.tracebackOf(co, error.message));
  }
  s.lua_settop(co, 0);
  throw error;
}

/** lupa's `co(args)` on an unstarted coroutine: a new coroutine over the same function. */
function restartCoroutine(handle: LuaCoroutine, args: unknown[]): LuaCoroutine {
  const { core } = infoOf(handle);
  const state = coroutineStates.get(handle)!;
  const co = state.thread;
  const s = core.api.sym;
  const bridge = core.api.bridge();
  const unstarted = !state.dead && bridge.lua_status(co) === LuaStatus.OK && co !== core.currentL &&
    s.lua_gettop(co) >= 1 && s.lua_type(co, 1) === LuaType.FUNCTION && handle.status === "suspended";
  if (!unstarted) {
    throw new LuaError("cannot call a coroutine that has already started: use send() or next()");
  }
  const L = core.currentL;
  const top = s.lua_gettop(L);
  core.ensureStack(L, 2);
  core.ensureStack(co, 1);
  try {
    const fresh = bridge.lua_newthread(L) as LuaState;
    s.lua_pushvalue(co, 1);
    bridge.lua_xmove(co, fresh, 1);
    return makeCoroutine(core, L, -1, args);
  } finally {
    s.lua_settop(L, top);
  }
}

/** Wraps the coroutine at `idx` of `L`. */
export function makeCoroutine(core: LuaCore, L: LuaState, idx: number, pending?: unknown[]): LuaCoroutine {
  const thread = core.api.bridge().lua_tothread(L, idx) as LuaState;
  const handle = function (this: unknown, ...args: unknown[]): LuaCoroutine {
    return restartCoroutine(handle, args);
  } as unknown as LuaCoroutine;
  Object.setPrototypeOf(handle, LuaCoroutine.prototype);
  core.api.sym.lua_pushvalue(L, idx);
  registerHandle(core, L, handle, "thread");
  coroutineStates.set(handle, { thread, pending, dead: false });
  return handle;
}

/** Wraps the function at `idx` of `L`. */
export function makeFunction(core: LuaCore, L: LuaState, idx: number): LuaFunction {
  // assigned once, after the closure that reads it is created
  // deno-lint-ignore prefer-const
  let info: HandleInfo;
  const handle = function (...args: unknown[]): unknown {
    return callLua(info, args);
  } as unknown as LuaFunction;
  Object.setPrototypeOf(handle, LuaFunction.prototype);
  core.api.sym.lua_pushvalue(L, idx);
  info = registerHandle(core, L, handle, "function");
  return handle;
}

/** Wraps the table at `idx` of `L`. */
export function makeTable(core: LuaCore, L: LuaState, idx: number): LuaTable {
  const handle = Object.create(LuaTable.prototype) as LuaTable;
  core.api.sym.lua_pushvalue(L, idx);
  registerHandle(core, L, handle, "table");
  return handle;
}

/**
 * A Lua userdata that is not a JS object (a file handle, a C library object). Opaque to JS; it can
 * be passed back into Lua.
 */
export class LuaUserdata {
  private constructor() {
    throw new TypeError("LuaUserdata is created by a LuaRuntime");
  }

  /** Releases this handle now (see {@linkcode LuaFunction}'s `[Symbol.dispose]`). */
  [Symbol.dispose](): void {
    releaseHandle(this);
  }
}

/** Wraps the userdata at `idx` of `L`. */
export function makeUserdata(core: LuaCore, L: LuaState, idx: number): LuaUserdata {
  const handle = Object.create(LuaUserdata.prototype) as LuaUserdata;
  core.api.sym.lua_pushvalue(L, idx);
  registerHandle(core, L, handle, "userdata");
  return handle;
}

/** Calls the Lua function behind `info` with `args`. */
export function callLua(info: HandleInfo, args: readonly unknown[]): unknown {
  const core = checked(info).core;
  const L = core.currentL;
  const s = core.api.sym;
  const top = s.lua_gettop(L);
  core.ensureStack(L, args.length + 4);
  try {
    core.pushRegistry(L, info.ref);
    for (let i = 0; i < args.length; i++) core.pushValue(L, args[i]);
    return core.call(L, args.length, collectResults, true, top + 1);
  } finally {
    s.lua_settop(L, top);
  }
}
