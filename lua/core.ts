/**
 * One Lua state and everything that keeps the host alive around it: the allocator cap, the stack
 * discipline, the single conversion chokepoint (push a JS value / read a stack slot), JS values as
 * userdata proxies, the C functions Lua calls back through, and protected calls into Lua.
 *
 * Invariants (see DESIGN.md): no C function here ever raises (errors travel back as `false, err` and
 * a Lua trampoline raises them); every entry from Lua catches everything; while JS holds control the
 * allocator never refuses (it records an overdraft that the next check turns into a memory error);
 * callbacks are process-wide and never closed, so they outlive every state.
 *
 * @module
 */

import { type AllocatorHandle, createAllocator } from "../ffi/allocator.ts";
import { CallFrame, CallInput, CallStop, openCallRunner } from "../ffi/call_runner.ts";
import type { RunClock } from "../ffi/clock.ts";
import { type DataBuilder, openDataBuilder } from "../ffi/data_builder.ts";
import { LANE_ENTRY, LaneTally, openFastLane } from "../ffi/fast_lane.ts";
import { openLuaLibrary } from "../ffi/library.ts";
import type { PinnedBlock } from "../ffi/pinned.ts";
import { type ImageRegion, regionBlock, releaseRegion, StateImage } from "../ffi/state_image.ts";
import {
  createLuaApi,
  int64,
  isLuaInteger,
  type LuaApi,
  LuaGC,
  type LuaState,
  LuaStatus,
  LuaType,
  MULTRET,
} from "../ffi/lua_api.ts";
import { copyCBytes, cString, decodeCBytes, StringEncoder } from "../ffi/strings.ts";
import {
  BOOTSTRAP_CALLBACKS,
  BOOTSTRAP_HELPERS,
  BOOTSTRAP_LUA,
  type BootstrapHelper,
  ENTRIES_LUA,
  JS_TABLE_LUA,
} from "./bootstrap.ts";
import { buildError, type DataEncoder, dataEncoder } from "./data_program.ts";
import { LuaError, LuaMemoryError, LuaStateError, LuaSyntaxError } from "./errors.ts";

/** How a JS value is exposed when it crosses into Lua as a proxy. */
export type ProxyKind = "default" | "attr" | "item";

/** A JS value thrown by a callback, boxed so that primitives keep their identity through Lua. */
export class ThrownValue {
  /** @param value What the callback threw. */
  constructor(readonly value: unknown) {}
}

/** Pushed as the error of a callback whose results did not fit under the memory cap. */
export const MEMORY_ERROR: object = Object.freeze({ toString: () => "not enough memory" });

/** Lua's `js.none`: a non-nil stand-in for JS `null` inside iterations. */
export const NONE: object = Object.freeze({ toString: () => "None" });

class IteratorState {
  done = false;
  constructor(readonly iterator: Iterator<unknown[]>) {}
}

/** A request to return several values to Lua from a callback. */
export class MultipleValues {
  /** The values, in order. */
  readonly values: readonly unknown[];
  /**
   * Wraps the values a callback returns to Lua.
   * @param values The values, in order.
   */
  constructor(values: readonly unknown[]) {
    this.values = values;
  }
}

/**
 * What a proxied JS value does when Lua touches it. The bridge (`LuaRuntime`) and the sandbox
 * supply different behaviours on the same mechanism.
 */
export interface ProxyBehavior {
  /** `proxy[key]` in Lua. */
  index(target: unknown, kind: ProxyKind, key: unknown): unknown;
  /** `proxy[key] = value` in Lua. */
  newindex(target: unknown, kind: ProxyKind, key: unknown, value: unknown): void;
  /** `proxy(...)` in Lua; a {@linkcode MultipleValues} result returns several values. */
  call(target: unknown, args: unknown[]): unknown;
  /** `#proxy` in Lua. */
  length(target: unknown, kind: ProxyKind): number;
  /** `tostring(proxy)` in Lua. */
  describe(target: unknown): string;
  /** The iteration behind `pairs(proxy)` and `js.iter` / `js.iterex` / `js.enumerate`. */
  iterate(target: unknown, kind: ProxyKind, mode: IterationMode): Iterator<unknown[]>;
}

/** Which iteration Lua asked for. */
export type IterationMode = "pairs" | "iter" | "iterex" | "enumerate";

/** How Lua values that are not plain data come out to JS. */
export interface ValueReader {
  /** A table at `idx` of `L`. */
  table(core: LuaCore, L: LuaState, idx: number): unknown;
  /** A function at `idx` of `L`. */
  func(core: LuaCore, L: LuaState, idx: number): unknown;
  /** A coroutine at `idx` of `L`. */
  thread(core: LuaCore, L: LuaState, idx: number): unknown;
  /** A userdata that is not one of our proxies. */
  userdata(core: LuaCore, L: LuaState, idx: number): unknown;
}

/** How JS objects go into Lua: as proxies (the bridge) or copied as data (the sandbox). */
export interface ValuePusher {
  /**
   * Pushes a JS object, array, Map, or function (anything that is not a primitive or a
   * luagate handle). Uses at most 3 stack slots.
   */
  object(core: LuaCore, L: LuaState, value: object): void;
}

/** Options for a core. */
export interface CoreOptions {
  /** Path or soname of the Lua library. */
  library?: string;
  /** `"utf-8"` (default) or `null` for bytes. */
  encoding?: "utf-8" | null;
  /** Use the JS allocator even where the native one exists (tests). */
  jsAllocator?: boolean;
  /** Open only these standard libraries (default: all, via luaL_openlibs). */
  libraries?: readonly StandardLibrary[];
  /** Build Lua's `js` table and its `js.none` (default true; a state that never exposes them skips both). */
  jsTable?: boolean;
  /**
   * Build the state into this region, as the template of copies (`ffi/state_image.ts`), leaving its
   * first `header` bytes to the host's blocks (the allocator's state first). Needs the native
   * allocator; the core is taken as an image with {@linkcode LuaCore.takeImage}.
   */
  template?: { readonly region: ImageRegion; readonly header: number };
  /** Make the core a copy of a template's state. */
  copyOf?: CoreCopy;
}

/** A copy of a template's state (`CoreOptions.copyOf`). */
export interface CoreCopy {
  /** The template core. */
  readonly template: LuaCore;
  /** Its image (`LuaCore.takeImage`). */
  readonly image: StateImage;
  /** The region to copy the image into, which the copy owns from then on. */
  readonly region: ImageRegion;
}

/** A standard library that can be opened alone. */
export type StandardLibrary = "base" | "coroutine" | "table" | "string" | "utf8" | "math" | "os" | "debug";

/** A standard library whose opener only builds and returns its table (no globals, no metatables). */
export type SelfContainedLibrary = "coroutine" | "utf8" | "math" | "os";

const LIBRARY_NAMES: Record<StandardLibrary, string> = {
  base: "_G",
  coroutine: "coroutine",
  table: "table",
  string: "string",
  utf8: "utf8",
  math: "math",
  os: "os",
  debug: "debug",
};

// the opener of each library by its symbol's name, written out: a name built at each lookup cost
// a new state some 2,000 instructions a library
const OPENERS = {
  base: "luaopen_base",
  coroutine: "luaopen_coroutine",
  table: "luaopen_table",
  string: "luaopen_string",
  utf8: "luaopen_utf8",
  math: "luaopen_math",
  os: "luaopen_os",
  debug: "luaopen_debug",
} as const satisfies { [L in StandardLibrary]: `luaopen_${L}` };

interface ProxyEntry {
  value: unknown;
  kind: ProxyKind;
}

/** Lua's C-call depth is bounded at ~200; stop well before it and before the JS stack. */
const MAX_NESTING = 120;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;
// lua_tolstring's size_t, read as two 32-bit halves (a BigUint64Array read makes a bigint). One for
// every state of the thread: lua_tolstring writes it last, after any collection (whose finalizers
// may call into JS) inside the call, and each caller reads it at once. A typed array of its own cost
// every new state some 6,000 cycles.
const LENGTH_WORDS = new Uint32Array(2);
const LENGTH_BYTES = new Uint8Array(LENGTH_WORDS.buffer);
const HOST_COLLECTION_FLOOR = 128 << 10;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

type Op = (core: LuaCore, L: LuaState, base: number, top: number) => number;

/**
 * What a caller makes of a call's `count` results from `first` on. After a call through the native
 * call runner, `described` holds the type and value of the first results as well (the scalar ones
 * need no reading from the stack).
 */
export type Collect = (
  core: LuaCore,
  L: LuaState,
  first: number,
  count: number,
  described?: CallFrame,
) => unknown;

/** How {@linkcode LuaCore.callRefs} pushes its input: limits and hook as `push` uses them. */
export interface InputData {
  /** Bounds on the copy. */
  readonly limits: { readonly maxDepth: number; readonly maxEntries: number };
  /** Objects pushed another way (the encoder leaves those to `push`). */
  readonly hook?: { claims(object: object): boolean };
  /** Pushes the input the usual way: plain data, field by field or with the data builder. */
  readonly push: (L: LuaState, input: unknown) => void;
  /** Pushes the input field by field: for one the encoder has already refused. */
  readonly pushFieldByField: (L: LuaState, input: unknown) => void;
}

const cores: (LuaCore | undefined)[] = [undefined];
// The cores of states in image regions, by id: the address of the region, an integer upvalue of
// their C closures that copying a state relocates with its pointers (ffi/state_image.ts).
const regionCores = new Map<number, LuaCore>();
// the chunk that dumps the function it is given, stripped, with the string library it is given
const DUMP_LUA = "local string, f = ... return string.dump(f, true)";
const trustedBytecode = new Map<string, Uint8Array>();
// One per isolate: a push encodes and hands the bytes to Lua before anything else can encode.
const encoder = new StringEncoder();
// A load's source and chunk name, which Lua reads while it parses; a collection the parser runs may
// call a finalizer in JS that loads again, so a load made during another gets bytes of its own.
const loadEncoder = new StringEncoder();
let loading = false;
const freeCoreIds: number[] = [];
// the bootstrap's stack: the chunk, its cached copy and the callbacks (each closure's upvalue pushed
// first), or the copy and the helpers it returns
const BOOTSTRAP_STACK = Math.max(2 + BOOTSTRAP_CALLBACKS.length + 1, 1 + BOOTSTRAP_HELPERS.length);
// Lua's LUA_REFNIL: the reference of nil, which lua_rawgeti of the registry reads as nil
const REF_NIL = -1;

/** A value of the bootstrap pinned in the registry: one of its helpers, or Lua's `js` table. */
type CoreRef = BootstrapHelper | "js";

const C_FUNCTION = {
  parameters: ["pointer"],
  result: "i32",
} as const satisfies Deno.UnsafeCallbackDefinition;
let callbacks: Record<string, Deno.UnsafeCallback<typeof C_FUNCTION>> | undefined;

const CALLBACK_OPS: Record<string, Op> = {
  call: (core, L, base, top) => core.opCall(L, base, top),
  index: (core, L, base) => core.opIndex(L, base),
  newindex: (core, L, base) => core.opNewIndex(L, base),
  len: (core, L, base) => core.opLen(L, base),
  tostring: (core, L, base) => core.opToString(L, base),
  iter: (core, L, base) => core.opIter(L, base),
  next: (core, L, base) => core.opNext(L, base),
  askind: (core, L, base) => core.opAsKind(L, base),
  gc: (core, L, base) => core.opGc(L, base),
  host: (core, L, base, top) => core.opHost(L, base, top),
};

function processCallbacks() {
  if (callbacks) return callbacks;
  callbacks = {};
  for (const [name, op] of Object.entries(CALLBACK_OPS)) {
    const cb = new Deno.UnsafeCallback(
      C_FUNCTION,
      (L) => enterFromLua(L as LuaState, op),
    );
    cb.unref();
    callbacks[name] = cb;
  }
  return callbacks;
}

// The one way in from Lua. Never throws: Deno would turn an escaping exception into a 0 return.
function enterFromLua(L: LuaState, op: Op): number {
  let core: LuaCore | undefined;
  try {
    const id = coreIdOf(L);
    core = id < cores.length ? cores[id] : regionCores.get(id);
  } catch {
    core = undefined;
  }
  if (!core) return 0;
  return core.enter(L, op);
}

let processApi: LuaApi | undefined;
function coreIdOf(L: LuaState): number {
  const api = processApi!;
  return api.toNumber(L, api.upvalueIndex(1));
}

/**
 * The engine room shared by `LuaRuntime` and `Sandbox`. Not part of the public API.
 */
export class LuaCore {
  readonly api: LuaApi;
  readonly L: LuaState;
  readonly alloc: AllocatorHandle;
  readonly encoding: "utf-8" | null;
  /** Encodes plain data for the native data builder; `undefined` where there is none. */
  readonly dataEncoder: DataEncoder | undefined;
  /**
   * The data encoder's table of known strings in this state, and the generation of its cache they
   * belong to; written by the encoder alone (a field: a lookup by state cost every input 10 ns).
   */
  knownStrings: { ref: number; generation: number } | undefined;
  /**
   * The same for the chunks a pool encodes in another thread (`DataEncoder.chunk`): its encoder's
   * slots, in the generation the chunks carry.
   */
  chunkStrings: { ref: number; generation: number } | undefined;
  /** The thread JS code is currently acting on: the main state, or the coroutine that called back. */
  currentL: LuaState;
  behavior!: ProxyBehavior;
  reader!: ValueReader;
  pusher!: ValuePusher;
  /**
   * Serves calls to the C function pushed by {@linkcode LuaCore.pushHostCFunction}, whose first
   * argument is the number of the function called.
   */
  hostCall?: (target: number, args: unknown[]) => unknown;
  /** When set, a JS error reaches Lua as this string instead of as a proxy of the error. */
  errorForLua?: (error: unknown) => string;

  readonly #id: number;
  readonly #registry: number;
  readonly #objects = new Map<number, ProxyEntry>();
  readonly #ids: Record<ProxyKind, Map<unknown, number>> = {
    default: new Map(),
    attr: new Map(),
    item: new Map(),
  };
  readonly #gcStopWhileHost: boolean;
  readonly #builder: DataBuilder | undefined;
  // made on the first call that can use it; null: no runner here
  #callFrame: CallFrame | null | undefined;
  #nextId = 1;
  #closed = false;
  #inLua = false;
  #nesting = 0;
  #baseline = 0;
  #maxMemory = 0;
  #collecting = false;
  #usedAfterCollection = 0;
  #deniedSeen = 0;
  #refs?: Record<CoreRef, number>;
  // the registry reference of ENTRIES_LUA's maker of table steppers, loaded by the first iteration
  #entries = REF_NIL;
  #capped: boolean;
  // the image region the state lives in: a template's or a copy's
  #region: ImageRegion | undefined;

  constructor(options: CoreOptions = {}) {
    const library = openLuaLibrary(options.library);
    // one library per process: its API is built once, for the first state, and shared
    const api = processApi ??= createLuaApi(library);
    if (api.library !== library) {
      throw new LuaStateError(
        `luagate already uses ${api.library.path} in this process; open one Lua library per Worker`,
      );
    }
    this.api = api;
    this.encoding = options.encoding === undefined ? "utf-8" : options.encoding;
    const builder = openDataBuilder(library);
    this.#builder = builder;
    this.dataEncoder = builder && dataEncoder(builder);
    this.#registry = api.registryIndex;
    this.#gcStopWhileHost = api.version !== "5.4";
    const copy = options.copyOf;
    if (copy !== undefined) {
      const template = copy.template;
      const region = copy.region;
      copy.image.copyInto(region);
      this.alloc = createAllocator({ block: regionBlock(region, 0) });
      this.alloc.setImage(region.address, region.address + BigInt(copy.image.bytes));
      this.L = Deno.UnsafePointer.create(
        copy.image.relocated(Deno.UnsafePointer.value(template.L), region),
      ) as LuaState;
      this.currentL = this.L;
      this.#id = this.#register(region);
      this.#capped = true;
      this.#refs = { ...template.#refs! };
      this.#nextId = template.#nextId;
      this.#baseline = template.#baseline;
      this.#usedAfterCollection = template.#usedAfterCollection;
      return;
    }
    const build = options.template;
    if (build !== undefined) {
      this.alloc = createAllocator({ block: regionBlock(build.region, 0) });
      this.alloc.setLimit(Infinity);
      this.alloc.buildImage(
        build.region.address + BigInt(build.header),
        build.region.address + BigInt(build.region.bytes),
      );
    } else {
      this.alloc = createAllocator({ native: options.jsAllocator ? false : undefined });
    }
    let L = api.sym.lua_newstate(this.alloc.pointer, this.alloc.state) as LuaState | null;
    this.#capped = L !== null;
    if (L === null && library.isLuaJIT) {
      // LuaJIT builds without GC64 refuse custom allocators; the memory cap is then unavailable.
      L = api.sym.luaL_newstate() as LuaState | null;
    }
    if (L === null) {
      this.alloc.close();
      throw new LuaMemoryError("cannot create a Lua state");
    }
    this.L = L;
    this.currentL = L;
    this.#id = this.#register(build?.region);
    try {
      this.#toHost();
      this.withCollectorPaused(() => {
        if (options.libraries) this.#openLibraries(options.libraries);
        else api.sym.luaL_openlibs(L);
        this.#bootstrap(options.jsTable ?? true);
      });
      this.#baseline = this.alloc.used();
    } catch (error) {
      this.close();
      throw error;
    }
  }

  // This core's id, by which the host's C closures find it: for a state in an image region, the
  // region's address (copying the state relocates it with the pointers), else a small index.
  #register(region: ImageRegion | undefined): number {
    this.#region = region;
    if (region === undefined) {
      const id = freeCoreIds.pop() ?? cores.length;
      cores[id] = this;
      return id;
    }
    const id = Number(region.address);
    regionCores.set(id, this);
    return id;
  }

  /**
   * Takes the image of a template's state (`CoreOptions.template`) as it is, its garbage included, as
   * a state built the same way holds it: the core must not run, or change its state, afterwards.
   */
  takeImage(): StateImage {
    const region = this.#region;
    if (region === undefined || this.#closed) {
      throw new LuaStateError("only a template's state is taken as an image");
    }
    const end = this.alloc.endImageBuild();
    return new StateImage(region, Number(end - region.address));
  }

  /** Whether the allocator cap is enforced (false only on LuaJIT builds that refuse custom allocators). */
  get capped(): boolean {
    return this.#capped;
  }

  /** Bytes in use right after start-up (the bootstrap included). */
  get baseline(): number {
    return this.#baseline;
  }

  /** Whether `close()` ran. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Throws a {@linkcode LuaStateError} if closed. */
  check(): void {
    if (this.#closed) throw new LuaStateError("this Lua runtime is closed");
  }

  // ---------------------------------------------------------------- start-up

  /**
   * Runs trusted start-up work with the collector paused. A state growing from nothing starts a
   * cycle each time its heap doubles, marking the same start-up objects over and over (about a
   * third of a sandbox's start-up on 5.4); the little garbage start-up leaves waits for the first
   * cycle after it. Before 5.4 the collector is already paused whenever the host holds control.
   */
  withCollectorPaused<T>(work: () => T): T {
    if (this.#gcStopWhileHost) return work();
    this.api.gc(this.L, LuaGC.STOP, 0);
    try {
      return work();
    } finally {
      this.api.gc(this.L, LuaGC.RESTART, 0);
    }
  }

  #openLibraries(libraries: readonly StandardLibrary[]): void {
    const s = this.api.sym;
    if (s.luaL_requiref === null) {
      throw new LuaStateError(`Lua ${this.api.version} cannot open libraries one by one`);
    }
    // Called on the fresh state, whose empty stack has room for LUA_MINSTACK (20) values: each
    // library (8 at most) stays on it until all are open, then one settop instead of a pop each.
    for (const library of new Set(libraries)) {
      const open = s[OPENERS[library]];
      if (open === null) {
        if (library === "utf8") continue;
        throw new LuaStateError(`this Lua library has no ${OPENERS[library]}`);
      }
      s.luaL_requiref(this.L, cString(LIBRARY_NAMES[library]), open as Deno.PointerObject, 1);
    }
    s.lua_settop(this.L, 0);
  }

  /**
   * Pushes the C function that opens `library` (`luaopen_*`), for trusted Lua that opens it on
   * first use: each call returns a fresh library table and touches nothing else. Pushes nothing and
   * returns false when the Lua library has no such opener. Uses 1 slot.
   */
  pushLibraryOpener(L: LuaState, library: SelfContainedLibrary): boolean {
    const open = this.api.sym[OPENERS[library]];
    if (open === null) return false;
    this.api.sym.lua_pushcclosure(L, open as Deno.PointerObject, 0);
    return true;
  }

  /**
   * Pushes the fast lane (`ffi/fast_lane.ts`) as the closure that makes its entries, with a new
   * tally on `clock` (the state's run clock, which its clock entry reads), in `block` when given, and
   * returns that tally;
   * pushes nil and returns `undefined` where there is no lane.
   * Uses 2 slots.
   */
  pushFastLane(
    L: LuaState,
    step: number,
    few: number,
    clock: RunClock,
    block?: PinnedBlock,
  ): LaneTally | undefined {
    const s = this.api.sym;
    const entry = openFastLane(this.api.library, this.#registry);
    if (entry === undefined) {
      s.lua_pushnil(L);
      return undefined;
    }
    const tally = new LaneTally(step, few, clock, block);
    s.lua_pushlightuserdata(L, tally.pointer);
    this.api.pushInteger(L, LANE_ENTRY);
    s.lua_pushcclosure(L, entry, 2);
    return tally;
  }

  #bootstrap(withJsTable: boolean): void {
    const { api, L } = this;
    const s = api.sym;
    const cbs = processCallbacks();
    this.#ensureStack(L, BOOTSTRAP_STACK);
    this.loadTrusted(L, BOOTSTRAP_LUA, "=luagate");
    for (const name of BOOTSTRAP_CALLBACKS) this.#pushCFunction(L, cbs[name].pointer);
    const callStatus = api.pcall(L, BOOTSTRAP_CALLBACKS.length, BOOTSTRAP_HELPERS.length, 0);
    if (callStatus !== LuaStatus.OK) throw this.#errorAt(L, callStatus, -1);
    // each helper is pinned in the registry by reference, the last first: luaL_ref pops the top
    const refs = { js: REF_NIL } as Record<CoreRef, number>;
    for (let i = BOOTSTRAP_HELPERS.length - 1; i >= 0; i--) {
      refs[BOOTSTRAP_HELPERS[i]] = s.luaL_ref(L, this.#registry);
    }
    this.#refs = refs;
    if (!withJsTable) return;
    this.loadTrusted(L, JS_TABLE_LUA, "=luagate.js");
    this.pushRef(L, "iterate");
    this.#pushCFunction(L, cbs.askind.pointer);
    this.pushRef(L, "proxy_ids");
    const jsStatus = api.pcall(L, 3, 1, 0);
    if (jsStatus !== LuaStatus.OK) throw this.#errorAt(L, jsStatus, -1);
    this.pushProxy(L, NONE, "default");
    s.lua_setfield(L, -2, cString("none"));
    refs.js = s.luaL_ref(L, this.#registry);
  }

  /**
   * Compiles one of luagate's own chunks and pushes it: its cached, stripped bytecode (several
   * times faster to load than the source), compiled once per process in a state of its own. Every
   * state then runs luagate's code without lines: a frame with a line is never luagate's (the
   * sandbox's error handler tells them apart so).
   */
  loadTrusted(L: LuaState, source: string, chunkName: string): void {
    const cached = this.#compileTrusted(source, chunkName);
    if (cached) {
      this.#ensureStack(L, 2);
      const status = this.api.loadBuffer(L, cached, cached.length, cString(chunkName), cString("b"));
      if (status === LuaStatus.OK) return;
      this.api.pop(L, 1);
    }
    this.load(L, source, chunkName, "t");
  }

  /** The cached bytecode of one of luagate's own chunks (compiled and cached on first request). */
  trustedBytecodeOf(source: string, chunkName: string): Uint8Array {
    const bytes = this.#compileTrusted(source, chunkName);
    if (bytes === undefined) throw new LuaStateError(`cannot compile ${chunkName}`);
    return bytes;
  }

  // The stripped bytecode of `source`, compiled on first request in a scratch state rather than in
  // a state that lives on: compiling interns every name of the source, and a state's string table,
  // once grown, stays twice the size its strings need (the first sandbox of a process kept 3.6 KB
  // more than the others). Every call that allocates there is protected: loading, the string
  // library opened by lua_pcall, the dump. Undefined when it does not compile there; the caller then
  // loads the source, and reports its error.
  #compileTrusted(source: string, chunkName: string): Uint8Array | undefined {
    const cached = trustedBytecode.get(source);
    if (cached) return cached;
    const s = this.api.sym;
    const openString = s.luaopen_string;
    const scratch = openString === null ? null : s.luaL_newstate() as LuaState | null;
    if (scratch === null) return undefined;
    const load = (code: string, name: string) => {
      const bytes = new TextEncoder().encode(code);
      return this.api.loadBuffer(scratch, bytes, bytes.length, cString(name), cString("t")) === LuaStatus.OK;
    };
    try {
      if (!load(DUMP_LUA, "=dump")) return;
      s.lua_pushcclosure(scratch, openString as Deno.PointerObject, 0);
      if (this.api.pcall(scratch, 0, 1, 0) !== LuaStatus.OK || !load(source, chunkName)) return;
      if (this.api.pcall(scratch, 2, 1, 0) !== LuaStatus.OK || s.lua_type(scratch, -1) !== LuaType.STRING) {
        return;
      }
      const bytecode = this.readBytes(scratch, -1);
      trustedBytecode.set(source, bytecode);
      return bytecode;
    } finally {
      s.lua_close(scratch);
    }
  }

  /** Pushes a C closure whose single upvalue is this core's id. */
  #pushCFunction(L: LuaState, fn: Deno.PointerValue): void {
    this.api.pushInteger(L, this.#id);
    this.api.sym.lua_pushcclosure(L, fn, 1);
  }

  /**
   * Pushes the raw C function behind host functions: called as `f(name, ...)`, it returns
   * `true, results...` or `false, err` and never raises. Uses 2 slots.
   */
  pushHostCFunction(L: LuaState): void {
    this.#pushCFunction(L, processCallbacks().host.pointer);
  }

  // ---------------------------------------------------------------- transitions

  #toHost(): void {
    this.alloc.setAllowOverdraft(true);
    if (this.#gcStopWhileHost) this.api.gc(this.L, LuaGC.STOP, 0);
    this.#inLua = false;
  }

  #toLua(): void {
    this.#inLua = true;
    if (this.#gcStopWhileHost) this.api.gc(this.L, LuaGC.RESTART, 0);
    this.alloc.setAllowOverdraft(false);
  }

  /** Runs `op` for a C function Lua called. Catches everything; returns the C result count. */
  enter(L: LuaState, op: Op): number {
    const wasInLua = this.#inLua;
    // Lua's side may itself lend past the cap: the call runner's build does, until its call starts
    const wasLending = this.alloc.allowsOverdraft();
    // Set when a host push below us triggered this entry (a __gc run by a GC step): not ours to report.
    const outerOverdraft = this.alloc.overdraft();
    const previousL = this.currentL;
    const { api } = this;
    const base = 1;
    let top = 0;
    try {
      top = api.sym.lua_gettop(L);
      this.#toHost();
      this.currentL = L;
      this.#nesting++;
      if (this.#nesting > MAX_NESTING) {
        throw new LuaError("stack overflow: too many nested calls between Lua and JavaScript");
      }
      const count = op(this, L, base, top);
      if (!outerOverdraft && this.overdraftPersists()) {
        api.sym.lua_settop(L, top);
        throw MEMORY_ERROR;
      }
      return count;
    } catch (error) {
      return this.#returnError(L, top, error, outerOverdraft);
    } finally {
      this.#nesting--;
      this.currentL = previousL;
      if (wasInLua) this.#toLua();
      if (wasInLua && wasLending) this.alloc.setAllowOverdraft(true);
    }
  }

  #returnError(L: LuaState, top: number, error: unknown, outerOverdraft: boolean): number {
    const s = this.api.sym;
    try {
      s.lua_settop(L, top);
      s.lua_pushboolean(L, 0);
      if (this.errorForLua) {
        this.pushString(L, error === MEMORY_ERROR ? "not enough memory" : this.errorForLua(error));
      } else if (error === MEMORY_ERROR) this.pushProxy(L, MEMORY_ERROR, "default");
      else this.pushProxy(L, new ThrownValue(error), "default");
      // The error is about to unwind Lua: an overdraft recorded by this callback (or by pushing the
      // error) is reported by it, and must not fail the next, unrelated call from the host.
      if (!outerOverdraft) this.alloc.clearOverdraft();
      return 2;
    } catch {
      // Even the error could not be pushed: returning no values makes the trampoline raise.
      try {
        s.lua_settop(L, top);
      } catch { /* nothing left to do */ }
      return 0;
    }
  }

  // ---------------------------------------------------------------- callback operations

  /** Pushes `true` and the values; returns the count. */
  #pushResults(L: LuaState, result: unknown): number {
    const s = this.api.sym;
    if (result instanceof MultipleValues) {
      const values = result.values;
      this.#ensureStack(L, values.length + 1);
      s.lua_pushboolean(L, 1);
      for (const v of values) this.pushValue(L, v);
      return values.length + 1;
    }
    s.lua_pushboolean(L, 1);
    this.pushValue(L, result);
    return 2;
  }

  #argsFrom(L: LuaState, first: number, top: number): unknown[] {
    const args = new Array(top - first + 1);
    for (let i = first; i <= top; i++) args[i - first] = this.read(L, i);
    return args;
  }

  // The bootstrap's metamethods pass a proxy's id in its place, nil for any other value (read as 0,
  // which no proxy has).
  #proxyAt(L: LuaState, idx: number): ProxyEntry {
    const entry = this.#objects.get(this.api.toNumber(L, idx));
    if (!entry) throw new TypeError("expected a JavaScript object");
    return entry;
  }

  opCall(L: LuaState, base: number, top: number): number {
    const entry = this.#proxyAt(L, base);
    const args = this.#argsFrom(L, base + 1, top);
    return this.#pushResults(L, this.behavior.call(entry.value, args));
  }

  opHost(L: LuaState, base: number, top: number): number {
    const target = this.api.toNumber(L, base);
    const args = this.#argsFrom(L, base + 1, top);
    return this.#pushResults(L, this.hostCall!(target, args));
  }

  opIndex(L: LuaState, base: number): number {
    const entry = this.#proxyAt(L, base);
    return this.#pushResults(L, this.behavior.index(entry.value, entry.kind, this.read(L, base + 1)));
  }

  opNewIndex(L: LuaState, base: number): number {
    const entry = this.#proxyAt(L, base);
    this.behavior.newindex(entry.value, entry.kind, this.read(L, base + 1), this.read(L, base + 2));
    this.api.sym.lua_pushboolean(L, 1);
    return 1;
  }

  opLen(L: LuaState, base: number): number {
    const entry = this.#proxyAt(L, base);
    return this.#pushResults(L, this.behavior.length(entry.value, entry.kind));
  }

  opToString(L: LuaState, base: number): number {
    const entry = this.#proxyAt(L, base);
    return this.#pushResults(L, this.behavior.describe(entry.value));
  }

  opIter(L: LuaState, base: number): number {
    const entry = this.#proxyAt(L, base);
    const mode = this.read(L, base + 1) as IterationMode;
    const iterator = new IteratorState(this.behavior.iterate(entry.value, entry.kind, mode));
    this.api.sym.lua_pushboolean(L, 1);
    this.pushProxy(L, iterator, "default");
    return 2;
  }

  opNext(L: LuaState, base: number): number {
    const state = this.#proxyAt(L, base).value;
    if (!(state instanceof IteratorState)) throw new TypeError("expected an iterator");
    const step = state.done ? undefined : state.iterator.next();
    if (step === undefined || step.done) {
      state.done = true;
      this.api.sym.lua_pushboolean(L, 1);
      return 1;
    }
    return this.#pushResults(L, new MultipleValues(step.value));
  }

  opAsKind(L: LuaState, base: number): number {
    const entry = this.#proxyAt(L, base);
    const kind = this.read(L, base + 1) as ProxyKind;
    this.api.sym.lua_pushboolean(L, 1);
    this.pushProxy(L, entry.value, kind);
    return 2;
  }

  /** A proxy was collected: forget its JS value. */
  opGc(L: LuaState, base: number): number {
    const id = this.proxyId(L, base);
    if (id !== undefined) {
      const entry = this.#objects.get(id);
      this.#objects.delete(id);
      if (entry && this.#ids[entry.kind].get(entry.value) === id) this.#ids[entry.kind].delete(entry.value);
    }
    return 0;
  }

  // ---------------------------------------------------------------- stack helpers

  #ensureStack(L: LuaState, n: number): void {
    if (this.api.sym.lua_checkstack(L, n) === 0) {
      throw new LuaError("stack overflow: cannot grow the Lua stack");
    }
  }

  /** Throws unless `n` more slots fit on `L`. */
  ensureStack(L: LuaState, n: number): void {
    this.#ensureStack(L, n);
  }

  /** Pushes the bootstrap helper `name`, or Lua's `js` table (nil where the state has none). Uses 1 slot. */
  pushRef(L: LuaState, name: CoreRef): void {
    this.api.rawGetI(L, this.#registry, this.#refs![name]);
  }

  /** Replaces the bootstrap helper `name` with the value on top of `L` (popped). */
  replaceRef(L: LuaState, name: BootstrapHelper): void {
    this.api.rawSetI(L, this.#registry, this.#refs![name]);
  }

  /** Pins the value on top of `L` in the registry (popping it); returns the reference. */
  ref(L: LuaState): number {
    return this.api.sym.luaL_ref(L, this.#registry);
  }

  /** Releases a registry reference. Safe after close (does nothing). */
  unref(ref: number): void {
    if (this.#closed) return;
    // luaL_unref uses a slot: while Lua waits on a callback, on the thread that called back
    if (this.#nesting === 0) {
      this.api.sym.luaL_unref(this.L, this.#registry, ref);
      return;
    }
    const L = this.currentL;
    this.#ensureStack(L, 1);
    this.api.sym.luaL_unref(L, this.#registry, ref);
  }

  /** Pushes the registry value `ref`. Uses 1 slot. */
  pushRegistry(L: LuaState, ref: number): void {
    this.api.rawGetI(L, this.#registry, ref);
  }

  // ---------------------------------------------------------------- JS -> Lua

  /** Pushes a JS string. Uses 1 slot. */
  pushString(L: LuaState, text: string): void {
    const n = encoder.encode(text);
    this.api.sym.lua_pushlstring(L, encoder.buffer, int64(n));
  }

  /** The conversion chokepoint, JS to Lua. Uses at most 3 slots; checked by callers via ensureStack. */
  pushValue(L: LuaState, value: unknown): void {
    const s = this.api.sym;
    switch (typeof value) {
      case "undefined":
        s.lua_pushnil(L);
        return;
      case "boolean":
        s.lua_pushboolean(L, value ? 1 : 0);
        return;
      case "number":
        if (isLuaInteger(value)) {
          if (value >= -MAX_SAFE && value <= MAX_SAFE) this.api.pushInteger(L, value);
          else s.lua_pushinteger(L, BigInt(value));
        } else {
          s.lua_pushnumber(L, value);
        }
        return;
      case "string":
        this.pushString(L, value);
        return;
      case "bigint":
        if (value < INT64_MIN || value > INT64_MAX) {
          throw new RangeError(`${value} does not fit in a Lua integer (64-bit)`);
        }
        if (this.api.version === "5.1" || this.api.version === "5.2") s.lua_pushnumber(L, Number(value));
        else s.lua_pushinteger(L, value);
        return;
      case "symbol":
        throw new TypeError(`cannot pass a symbol to Lua: ${String(value)}`);
    }
    if (value === null) {
      s.lua_pushnil(L);
      return;
    }
    if (value instanceof Uint8Array) {
      s.lua_pushlstring(L, value, int64(value.length));
      return;
    }
    const handle = HandleField.of(value as object);
    if (handle !== undefined) {
      if (handle.core !== this) throw new LuaStateError("this Lua object belongs to another runtime");
      if (handle.ref < 0) throw new LuaStateError("this Lua object was released");
      this.pushRegistry(L, handle.ref);
      return;
    }
    if (value === NONE) {
      this.pushProxy(L, NONE, "default");
      return;
    }
    const as = proxyRequests.get(value as object);
    if (as !== undefined) {
      this.pushProxy(L, as.value, as.kind);
      return;
    }
    this.pusher.object(this, L, value as object);
  }

  /**
   * Pushes the userdata standing for `value` in Lua: the same userdata for the same value and kind
   * while Lua holds it. Uses 3 slots.
   */
  pushProxy(L: LuaState, value: unknown, kind: ProxyKind): void {
    const { api } = this;
    const s = api.sym;
    const known = this.#ids[kind].get(value);
    if (known !== undefined) {
      this.pushRef(L, "id_proxies");
      if (api.rawGetI(L, -1, known) === LuaType.USERDATA) {
        api.remove(L, -2);
        return;
      }
      api.pop(L, 2);
    }
    const id = this.#nextId++;
    this.#objects.set(id, { value, kind });
    this.#ids[kind].set(value, id);
    api.newUserdata(L, 0);
    this.pushRef(L, "mt");
    s.lua_setmetatable(L, -2);
    this.pushRef(L, "id_proxies");
    s.lua_pushvalue(L, -2);
    api.rawSetI(L, -2, id);
    api.pop(L, 1);
    this.pushRef(L, "proxy_ids");
    s.lua_pushvalue(L, -2);
    api.pushInteger(L, id);
    s.lua_rawset(L, -3);
    api.pop(L, 1);
  }

  /** The proxy id of the userdata at `idx`, or undefined if it is not one of ours. Uses 2 slots. */
  proxyId(L: LuaState, idx: number): number | undefined {
    const { api } = this;
    const s = api.sym;
    if (s.lua_type(L, idx) !== LuaType.USERDATA) return undefined;
    const at = api.absIndex(L, idx);
    this.pushRef(L, "proxy_ids");
    s.lua_pushvalue(L, at);
    s.lua_rawget(L, -2); // its result is void before 5.3: ask lua_type
    const id = s.lua_type(L, -1) === LuaType.NUMBER ? api.toNumber(L, -1) : undefined;
    api.pop(L, 2);
    return id;
  }

  /** The JS value behind proxy `id`. */
  proxyValue(id: number): unknown {
    return this.#objects.get(id)?.value;
  }

  // ---------------------------------------------------------------- Lua -> JS

  /** Reads the string at `idx` (which must be a string) as bytes. */
  readBytes(L: LuaState, idx: number): Uint8Array {
    const p = this.api.sym.lua_tolstring(L, idx, LENGTH_BYTES);
    return copyCBytes(p, this.#length());
  }

  /** Reads the string at `idx`: a JS string if valid UTF-8 (and encoding is set), else bytes. */
  readString(L: LuaState, idx: number): string | Uint8Array {
    if (this.encoding === null) return this.readBytes(L, idx);
    const p = this.api.sym.lua_tolstring(L, idx, LENGTH_BYTES);
    const n = this.#length();
    return decodeCBytes(p, n, false) ?? copyCBytes(p, n);
  }

  /** Reads the string at `idx` for messages: always a string, invalid bytes replaced. */
  readText(L: LuaState, idx: number): string {
    const p = this.api.sym.lua_tolstring(L, idx, LENGTH_BYTES);
    return decodeCBytes(p, this.#length(), true)!;
  }

  // the length lua_tolstring wrote (the platform's byte order)
  #length(): number {
    return LITTLE_ENDIAN
      ? LENGTH_WORDS[0] + LENGTH_WORDS[1] * 2 ** 32
      : LENGTH_WORDS[1] + LENGTH_WORDS[0] * 2 ** 32;
  }

  /** Reads the number at `idx`: a number, or a bigint for integers beyond 2^53. */
  readNumber(L: LuaState, idx: number): number | bigint {
    const { api } = this;
    const d = api.toNumber(L, idx);
    if (Number.isSafeInteger(d) || !api.isInteger(L, idx)) return d;
    return api.toInteger(L, idx);
  }

  /** The conversion chokepoint, Lua to JS. Uses 2 slots for userdata. */
  read(L: LuaState, idx: number): unknown {
    const s = this.api.sym;
    switch (s.lua_type(L, idx)) {
      case LuaType.NONE:
      case LuaType.NIL:
        return undefined;
      case LuaType.BOOLEAN:
        return s.lua_toboolean(L, idx) !== 0;
      case LuaType.NUMBER:
        return this.readNumber(L, idx);
      case LuaType.STRING:
        return this.readString(L, idx);
      case LuaType.TABLE:
        return this.reader.table(this, L, idx);
      case LuaType.FUNCTION:
        return this.reader.func(this, L, idx);
      case LuaType.THREAD:
        return this.reader.thread(this, L, idx);
      case LuaType.USERDATA: {
        const id = this.proxyId(L, idx);
        if (id !== undefined) {
          const value = this.#objects.get(id)?.value;
          if (value instanceof ThrownValue) return value.value; // a JS exception Lua caught and returned
          if (value === MEMORY_ERROR) return new LuaMemoryError();
          return value === NONE ? null : value;
        }
        return this.reader.userdata(this, L, idx);
      }
      default:
        return this.reader.userdata(this, L, idx);
    }
  }

  // ---------------------------------------------------------------- protected calls

  /**
   * Calls the function below `nargs` arguments on top of `L` in protected mode with the traceback
   * handler, and returns the results (popped). Throws the converted error on failure. A caller that
   * knows the function's index passes it as `funcIdx` (one call into C fewer).
   */
  call(
    L: LuaState,
    nargs: number,
    collect: Collect,
    traceback = true,
    funcIdx: number = this.api.sym.lua_gettop(L) - nargs,
  ): unknown {
    const { api } = this;
    const s = api.sym;
    const base = funcIdx - 1;
    let msgh = 0;
    if (traceback) {
      this.pushRef(L, "traceback");
      api.insert(L, funcIdx);
      msgh = funcIdx;
    }
    const status = this.#pcall(L, nargs, msgh, base);
    try {
      if (status !== LuaStatus.OK) throw this.#errorAt(L, status, -1);
      const first = traceback ? funcIdx + 1 : funcIdx;
      return collect(this, L, first, s.lua_gettop(L) - first + 1);
    } finally {
      s.lua_settop(L, base);
    }
  }

  /**
   * Calls the registry function `fnRef` with the registry value `targetRef` and `input`, without the
   * traceback handler, and returns what `collect` makes of the results; the stack is as it was
   * afterwards, whatever happens. Where the native call runner is there (`ffi/call_runner.ts`) and
   * the data encoder takes `input`, the whole call is one FFI crossing and `collect` gets the
   * description of the results; otherwise `input.push` pushes the input and {@linkcode LuaCore.call}
   * calls.
   */
  callRefs(
    L: LuaState,
    fnRef: number,
    targetRef: number,
    input: unknown,
    data: InputData,
    collect: Collect,
  ): unknown {
    const s = this.api.sym;
    const top = s.lua_gettop(L);
    const frame = typeof input === "object" && input !== null ? this.#frame() : undefined;
    const known = frame === undefined
      ? -1
      : this.dataEncoder!.encode(this, L, input as object, data.limits, data.hook, 0);
    try {
      if (known < 0) {
        this.#ensureStack(L, 2);
        this.pushRegistry(L, fnRef);
        this.pushRegistry(L, targetRef);
        if (frame === undefined) data.push(L, input);
        else data.pushFieldByField(L, input);
        return this.call(L, 2, collect, false, top + 1);
      }
      return this.#runFrame(L, top, frame!, fnRef, targetRef, known, collect);
    } finally {
      s.lua_settop(L, top);
    }
  }

  /**
   * Calls the registry function `fnRef` on the registry value `targetRef` and `args` (each pushed by
   * `push`, by default as {@linkcode LuaCore.pushValue} pushes it), without the traceback handler,
   * and returns what `collect` makes of the results; the stack is as it was afterwards, whatever
   * happens. Where the native call runner is there and describes the arguments (nil, booleans and
   * numbers: {@linkcode CallFrame.describeArguments}), the call is one FFI crossing and `collect`
   * gets the description of the results.
   */
  callRef(
    L: LuaState,
    fnRef: number,
    targetRef: number,
    collect: Collect,
    args: readonly unknown[] = [],
    push?: (L: LuaState, value: unknown) => void,
  ): unknown {
    const s = this.api.sym;
    const top = s.lua_gettop(L);
    const frame = this.#frame();
    try {
      if (frame === undefined || (args.length > 0 && !frame.describeArguments(args))) {
        this.#ensureStack(L, args.length + 4);
        this.pushRegistry(L, fnRef);
        this.pushRegistry(L, targetRef);
        for (const arg of args) push ? push(L, arg) : this.pushValue(L, arg);
        return this.call(L, 1 + args.length, collect, false, top + 1);
      }
      return this.#runFrame(L, top, frame, fnRef, targetRef, undefined, collect, args.length > 0);
    } finally {
      s.lua_settop(L, top);
    }
  }

  // The call runner's call of fnRef on targetRef and, where `known` is given (the reference of the
  // known strings, 0: none), the input the data encoder holds, or the arguments the frame describes.
  #runFrame(
    L: LuaState,
    top: number,
    frame: CallFrame,
    fnRef: number,
    targetRef: number,
    known: number | undefined,
    collect: Collect,
    described = false,
  ): unknown {
    const refs = frame.refs;
    refs[0] = fnRef;
    refs[1] = targetRef;
    refs[2] = known ?? 0;
    frame.input[0] = known !== undefined ? CallInput.BUILT : described ? CallInput.SCALARS : CallInput.NONE;
    // The runner lets the builder overdraw, then turns the cap on for the call itself: from here,
    // a callback returns to Lua with the cap on.
    const wasInLua = this.#inLua;
    this.#inLua = true;
    let stop;
    try {
      stop = frame.call(L);
    } finally {
      if (known !== undefined) this.dataEncoder!.done();
      this.#leaveLua(wasInLua);
    }
    return this.#afterRunner(L, top, stop, frame, collect);
  }

  #afterRunner(L: LuaState, top: number, stop: number, frame: CallFrame, collect: Collect): unknown {
    const status = frame.outcome[0];
    switch (stop) {
      case CallStop.CALLED:
        if (status !== LuaStatus.OK) throw this.#errorAt(L, status, -1);
        return collect(this, L, top + 1, frame.outcome[1], frame);
      case CallStop.OVERDRAWN:
        // the function, its target and the input are pushed: the usual path decides about the memory
        return this.call(L, 2, collect, false, top + 1);
      case CallStop.NOT_BUILT:
        throw buildError(status);
      default:
        throw new LuaError("stack overflow: cannot grow the Lua stack");
    }
  }

  // The call runner's frame of this state, where the runner and the data builder are there.
  #frame(): CallFrame | undefined {
    if (this.#callFrame === undefined) {
      const runner = this.#builder && openCallRunner(this.api.library);
      this.#callFrame = runner ? new CallFrame(runner, this.#builder!, this.alloc, this.#registry) : null;
    }
    return this.#callFrame ?? undefined;
  }

  /** lua_pcall with the transitions and the memory check around it. */
  #pcall(L: LuaState, nargs: number, msgh: number, base: number): number {
    this.#checkPushedMemory(L, base);
    const wasInLua = this.#enterLua();
    try {
      return this.api.pcall(L, nargs, MULTRET, msgh);
    } finally {
      this.#leaveLua(wasInLua);
    }
  }

  /** Hands control to Lua: the allocator refuses past the cap again. Returns what #leaveLua restores. */
  #enterLua(): boolean {
    const wasInLua = this.#inLua;
    this.#toLua();
    return wasInLua;
  }

  #leaveLua(wasInLua: boolean): void {
    if (!wasInLua) this.#toHost();
    else this.alloc.setAllowOverdraft(true);
  }

  /**
   * Before the host hands its pushed values (above `top`) to Lua: values that went past the cap are
   * dropped and fail here. Before 5.4 the collector is off while the host holds control and only
   * Lua's own allocations pace it, so a loop pushing values into a function that allocates nothing
   * would never collect (50,000 ABAC requests left 40 MB on 5.3): the host collects once the heap
   * doubled since the last collection, as Lua's default pause would, above a floor that keeps small
   * heaps cheap.
   */
  #checkPushedMemory(L: LuaState, top: number): void {
    if (
      this.#gcStopWhileHost &&
      this.alloc.used() >= 2 * Math.max(this.#usedAfterCollection, HOST_COLLECTION_FLOOR)
    ) {
      this.collectGarbage();
    }
    if (!this.overdraftPersists()) return;
    this.dropPushed(L, top);
    throw new LuaMemoryError("not enough memory: the values passed to Lua exceed its memory limit");
  }

  /**
   * Drops what the host pushed on `L` above `top` (any index lua_settop takes: -2 drops the value on
   * top) after an overdraft that persists, clears it and collects, so that the state is back under
   * its cap for the caller's memory error.
   */
  dropPushed(L: LuaState, top: number): void {
    this.api.sym.lua_settop(L, top);
    this.alloc.clearOverdraft();
    this.collectGarbage();
  }

  /** Calls without the handler, for trusted bootstrap helpers; results stay on the stack. */
  #callRaw(L: LuaState, nargs: number, nresults: number): void {
    const wasInLua = this.#enterLua();
    let status: number;
    try {
      status = this.api.pcall(L, nargs, nresults, 0);
    } finally {
      this.#leaveLua(wasInLua);
    }
    if (status !== LuaStatus.OK) {
      const error = this.#errorAt(L, status, -1);
      this.api.pop(L, 1);
      throw error;
    }
  }

  /**
   * Resumes coroutine `co` with `nargs` values already pushed on it. Returns the status (OK when it
   * finished, YIELD when it yielded); the values are on `co`'s stack.
   */
  resume(co: LuaState, nargs: number): number {
    this.#checkPushedMemory(co, this.api.sym.lua_gettop(co) - nargs);
    const wasInLua = this.#enterLua();
    try {
      return this.api.resume(co, this.currentL, nargs);
    } finally {
      this.#leaveLua(wasInLua);
    }
  }

  /** The error for status `status` whose value is at `idx` of `L` (not popped). */
  errorAt(L: LuaState, status: number, idx: number): unknown {
    return this.#errorAt(L, status, idx);
  }

  #errorAt(L: LuaState, status: number, idx: number): unknown {
    const s = this.api.sym;
    const type = s.lua_type(L, idx);
    if (type === LuaType.USERDATA) {
      const id = this.proxyId(L, idx);
      if (id !== undefined) {
        const value = this.#objects.get(id)?.value;
        if (value instanceof ThrownValue) return value.value;
        if (value === MEMORY_ERROR) {
          // What did not fit is garbage now: collect it, or the host's next step starts over the cap.
          this.collectGarbage();
          return new LuaMemoryError();
        }
      }
    }
    if (status === LuaStatus.ERRMEM) {
      this.alloc.clearOverdraft();
      this.collectGarbage();
      return new LuaMemoryError();
    }
    if (type === LuaType.STRING) {
      const message = this.readText(L, idx);
      if (status === LuaStatus.ERRSYNTAX) return new LuaSyntaxError(message);
      // Lua 5.1-5.3's luaL_Buffer turns a refused allocation into an ordinary error ("not enough
      // memory for buffer allocation"): the allocator's own count says whether the cap was hit.
      if (this.#memoryRefusedSinceLastError() && /not enough memory/.test(message)) {
        this.collectGarbage();
        return new LuaMemoryError(message);
      }
      return new LuaError(message);
    }
    const description = this.describeValue(L, idx);
    let value: unknown;
    try {
      value = this.read(L, idx);
    } catch {
      value = undefined;
    }
    return new LuaError(description, { value });
  }

  /** Whether the allocator refused an allocation since the last time this was asked. */
  #memoryRefusedSinceLastError(): boolean {
    const denied = this.alloc.denied();
    const refused = denied > 0 && denied !== this.#deniedSeen;
    this.#deniedSeen = denied;
    return refused;
  }

  /** A message for a non-string error value: its `__tostring`, run protected, or its type. */
  describeValue(L: LuaState, idx: number): string {
    const { api } = this;
    const s = api.sym;
    const at = api.absIndex(L, idx);
    const top = s.lua_gettop(L);
    this.#ensureStack(L, 3);
    this.pushRef(L, "tostring");
    s.lua_pushvalue(L, at);
    const wasInLua = this.#enterLua();
    let status: number;
    try {
      status = api.pcall(L, 1, 1, 0);
    } finally {
      this.#leaveLua(wasInLua);
    }
    const text = status === LuaStatus.OK && s.lua_type(L, -1) === LuaType.STRING
      ? this.readText(L, -1)
      : `(error object is a ${this.typeName(s.lua_type(L, at))} value)`;
    s.lua_settop(L, top);
    return text;
  }

  /** `message` followed by the traceback of coroutine `co` (run protected; `message` alone on failure). */
  tracebackOf(co: LuaState, message: string): string {
    const L = this.currentL;
    const s = this.api.sym;
    const top = s.lua_gettop(L);
    try {
      this.#ensureStack(L, 4);
      this.pushRef(L, "cotraceback");
      this.#ensureStack(co, 1);
      const bridge = this.api.bridge();
      bridge.lua_pushthread(co);
      bridge.lua_xmove(co, L, 1);
      this.pushString(L, message);
      this.#callRaw(L, 2, 1);
      return s.lua_type(L, -1) === LuaType.STRING ? this.readText(L, -1) : message;
    } catch {
      return message;
    } finally {
      s.lua_settop(L, top);
    }
  }

  /** Lua's name for a type tag. */
  typeName(type: number): string {
    return [
      "nil",
      "boolean",
      "userdata",
      "number",
      "string",
      "table",
      "function",
      "userdata",
      "thread",
    ][type] ??
      "no value";
  }

  /**
   * Compiles `code` into a function on top of `L`. `mode` "t" refuses binary chunks. Throws
   * {@linkcode LuaSyntaxError} on failure (the stack is left as it was).
   */
  load(L: LuaState, code: string | Uint8Array, chunkName: string, mode: "t" | "bt"): void {
    const { api } = this;
    let bytes: Uint8Array, size: number, name: Uint8Array;
    if (typeof code === "string" && !loading) {
      size = loadEncoder.append(code, 0);
      loadEncoder.append(`${chunkName}\0`, size);
      bytes = loadEncoder.buffer;
      name = bytes.subarray(size);
    } else {
      bytes = typeof code === "string" ? new TextEncoder().encode(code) : code;
      size = bytes.length;
      name = cString(chunkName);
    }
    if (mode === "t" && size > 0 && bytes[0] === 0x1b) {
      // Name the chunk as Lua would ("=name" shows as "name"); the source itself is binary, not shown.
      const where = /^[=@]/.test(chunkName) ? `${chunkName.slice(1)}: ` : "";
      throw new LuaSyntaxError(`${where}attempt to load a binary chunk (only text is allowed)`);
    }
    this.#ensureStack(L, 2);
    const nested = loading;
    loading = true;
    // Lua's parser allocates as Lua code does: under the cap, a refused allocation its memory error
    const wasInLua = this.#enterLua();
    let status;
    try {
      status = api.loadBuffer(L, bytes, size, name, cString(mode));
    } finally {
      this.#leaveLua(wasInLua);
      loading = nested;
    }
    if (status !== LuaStatus.OK) {
      const error = this.#errorAt(L, status, -1);
      api.pop(L, 1);
      throw error instanceof LuaError && !(error instanceof LuaSyntaxError) &&
          !(error instanceof LuaMemoryError)
        ? new LuaSyntaxError(error.message)
        : error;
    }
  }

  // ---------------------------------------------------------------- memory

  /** Bytes in use: since start-up, or in total. */
  memoryUsed(total: boolean): number {
    const used = this.alloc.used();
    return total ? used : Math.max(0, used - this.#baseline);
  }

  /**
   * Takes what is in use now as the start-up footprint (for a runtime or sandbox that installed its
   * own globals after the core's bootstrap), after a full collection when `collect` is true; without
   * one, the garbage of start-up is counted in until the collector frees it.
   */
  resetBaseline(collect = true): void {
    if (collect) this.collectGarbage();
    this.#baseline = this.alloc.used();
  }

  /**
   * Moves the start-up footprint by `bytes`, and the cap with it: what the host gave the state to
   * keep after start-up (a policy engine's data, a compiled policy while its handle holds it), or
   * gave back (negative).
   */
  growBaseline(bytes: number): void {
    this.#baseline += bytes;
    this.setMaxMemory(this.#maxMemory);
  }

  /**
   * What work done since `before` (`alloc.used()` then) left in use, as the footprint is to count
   * it: from the footprint at least (what it counts already is not counted twice; under the cap, so
   * at most the memory limit), and after a full collection where that is more than
   * {@linkcode KEPT_WITHOUT_COLLECTING}, so that the work's garbage, or what a run's upvalues kept
   * meanwhile, cannot inflate the footprint by much.
   */
  keptSince(before: number): number {
    let kept = this.alloc.used() - Math.max(before, this.#baseline);
    if (kept > KEPT_WITHOUT_COLLECTING) {
      this.collectGarbage();
      kept = this.alloc.used() - this.#baseline;
    }
    return Math.max(0, kept);
  }

  /**
   * Counts the `bytes` a value keeps in use into the start-up footprint while `info`'s handle holds
   * it, and takes them out again once the handle is released.
   */
  keepWith(info: HandleInfo, bytes: number): void {
    if (bytes <= 0 || info.ref < 0) return;
    info.kept = (info.kept ?? 0) + bytes;
    this.growBaseline(bytes);
  }

  /** Sets the cap to `bytes` beyond start-up (0 or less: none). */
  setMaxMemory(bytes: number): void {
    this.#maxMemory = bytes;
    this.alloc.setLimit(bytes > 0 ? this.#baseline + bytes : Infinity);
  }

  /** A full collection, run protected (finalizers may raise on Lua 5.3 and older). */
  collectGarbage(): void {
    if (this.#collecting) return; // a finalizer's memory error reported while collecting
    this.#collecting = true;
    const L = this.currentL;
    const top = this.api.sym.lua_gettop(L);
    try {
      this.#ensureStack(L, 2);
      this.pushRef(L, "collect");
      this.#callRaw(L, 0, 0);
    } catch {
      // A failing finalizer is Lua's business; the collection itself completed.
    } finally {
      this.api.sym.lua_settop(L, top);
      this.#collecting = false;
      this.#usedAfterCollection = this.alloc.used();
    }
  }

  /**
   * Whether an overdraft recorded while the host pushed values still stands after a full
   * collection (the host's counterpart of Lua's emergency collection: garbage must not fail the
   * next step; before 5.4 the collector never runs while the host pushes, so a loop of pushes
   * meets its own garbage here). When it does not, clears the flag; outside any call into Lua it
   * also restarts the peak from what is in use: no Lua code has run since the host began pushing,
   * so the peak over the cap was the host's garbage. Inside a run the peak stays, and a sandbox run
   * that went over the cap still fails even if its code swallowed the error.
   */
  overdraftPersists(): boolean {
    if (!this.alloc.overdraft()) return false;
    this.collectGarbage();
    if (this.alloc.used() <= this.alloc.limit()) {
      this.alloc.clearOverdraft();
      if (this.#nesting === 0) this.alloc.resetPeak();
      return false;
    }
    return true;
  }

  /**
   * A stepper over the registry table `tableRef` ({@linkcode ENTRIES_LUA}: each call gives the next
   * key and value), pinned in the registry: its reference. The first call loads their maker.
   *
   * @throws {LuaError} when it cannot be made (no memory left under the cap).
   */
  tableStepper(L: LuaState, tableRef: number): number {
    this.#ensureStack(L, 3);
    if (this.#entries === REF_NIL) {
      this.loadTrusted(L, ENTRIES_LUA, "=luagate.entries");
      this.pushRef(L, "next");
      this.#entries = this.call(L, 1, pinFirstResult) as number;
    }
    this.pushRegistry(L, this.#entries);
    this.pushRegistry(L, tableRef);
    return this.call(L, 1, pinFirstResult) as number;
  }

  /** Lua's `js` table (for `LuaRuntime` to expose or not); nil in a core created without it. */
  pushJsTable(L: LuaState): void {
    this.pushRef(L, "js");
  }

  // ---------------------------------------------------------------- close

  /**
   * Closes the state (idempotent). Finalizers run inside; callbacks stay valid throughout.
   *
   * @param beforeRelease Runs once the state is gone and before its image region (if any) is given
   * back: the last moment the region's memory can be read (`ffi/state_image.ts`).
   */
  close(beforeRelease?: () => void): void {
    if (this.#closed) return;
    if (this.#nesting > 0) {
      // Lua frames are below us on the C stack: lua_close here would free them under their feet.
      throw new LuaStateError("cannot close a Lua runtime from inside one of its own callbacks");
    }
    this.#closed = true;
    this.#toLua();
    try {
      this.api.sym.lua_close(this.L);
    } finally {
      this.#objects.clear();
      this.alloc.close();
      beforeRelease?.();
      if (this.#region === undefined) {
        cores[this.#id] = undefined;
        freeCoreIds.push(this.#id);
      } else {
        regionCores.delete(this.#id);
        releaseRegion(this.#region);
      }
    }
  }
}

// ------------------------------------------------------------------ handles

/**
 * Bytes of growth {@linkcode LuaCore.keptSince} takes as they are, garbage and all: a full
 * collection to measure more costs time in proportion to the whole heap.
 */
export const KEPT_WITHOUT_COLLECTING = 64 * 1024;

/** What a luagate handle (table, function, coroutine, userdata) refers to. */
export interface HandleInfo {
  core: LuaCore;
  ref: number;
  type: "table" | "function" | "thread" | "userdata";
  /** Bytes counted in the core's footprint while the handle holds the value (see `keepWith`). */
  kept?: number;
}

// A base class whose constructor returns its argument: a subclass's private field is then
// installed on that object, whatever it is (a plain object or a function).
class OnTarget {
  constructor(target: object) {
    return target;
  }
}

// A handle's info lives in a private field of the handle itself. A WeakMap keyed by handles cost
// about 0.4 µs per handle once it held many (a synchronous loop adds one per table it gets from
// Lua), where the field costs about 10 ns; code outside this module cannot read or forge it.
class HandleField extends OnTarget {
  readonly #info: HandleInfo;

  private constructor(handle: object, info: HandleInfo) {
    super(handle);
    this.#info = info;
  }

  static attach(handle: object, info: HandleInfo): void {
    new HandleField(handle, info);
  }

  static of(value: object): HandleInfo | undefined {
    return #info in value ? (value as HandleField).#info : undefined;
  }
}

/** What `value` refers to, when it is a luagate handle. */
export function handleInfoOf(value: object): HandleInfo | undefined {
  return HandleField.of(value);
}

/** Values wrapped by `asAttrGetter` / `asItemGetter`. */
export const proxyRequests: WeakMap<object, { value: unknown; kind: ProxyKind }> = new WeakMap();

function release(info: HandleInfo): void {
  if (info.ref < 0) return;
  info.core.unref(info.ref);
  info.ref = -1;
  if (info.kept !== undefined && !info.core.closed) info.core.growBaseline(-info.kept);
}

const releaser = new FinalizationRegistry<HandleInfo>(release);

// A call's first result, pinned in the registry: its reference.
function pinFirstResult(core: LuaCore, L: LuaState, first: number): number {
  core.api.sym.lua_pushvalue(L, first);
  return core.ref(L);
}

// Handles made since the last microtask checkpoint, and their infos: they join the releaser there,
// or once NEW_HANDLES wait, unless released before. A registration costs about 0.3-0.45 µs a
// handle, its cell's collection included, and a handle released with `using` or `dispose` soon
// after it was made never needs one. A handle waiting here cannot be collected, which changes little:
// the releaser's callbacks run only between tasks.
const NEW_HANDLES = 1024;
let newHandles: object[] = [];
let newInfos: HandleInfo[] = [];

function registerNewHandles(): void {
  const handles = newHandles, infos = newInfos;
  newHandles = [];
  newInfos = [];
  for (let i = 0; i < handles.length; i++) {
    if (infos[i].ref >= 0) releaser.register(handles[i], infos[i]);
  }
}

/**
 * Registers `handle` as referring to the value on top of `L` (popped). The reference is released
 * when the handle is collected, or earlier by {@linkcode releaseHandle}.
 */
export function registerHandle(
  core: LuaCore,
  L: LuaState,
  handle: object,
  type: HandleInfo["type"],
): HandleInfo {
  const info: HandleInfo = { core, ref: core.ref(L), type };
  HandleField.attach(handle, info);
  if (newHandles.length >= NEW_HANDLES) registerNewHandles();
  if (newHandles.length === 0) queueMicrotask(registerNewHandles);
  newHandles.push(handle);
  newInfos.push(info);
  return info;
}

/**
 * Releases `handle`'s reference now. A collected handle is released only once the event loop runs
 * the FinalizationRegistry's callbacks, which a synchronous loop never lets happen: without this,
 * every table such a loop makes stays in Lua's heap until the loop ends. Idempotent.
 */
export function releaseHandle(handle: object): void {
  const info = HandleField.of(handle);
  // not unregistered from the releaser: an unregister token costs more than the callback, which
  // finds the reference gone
  if (info !== undefined) release(info);
}
