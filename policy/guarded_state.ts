/**
 * A Lua state prepared for untrusted code: the kernel installed, host objects frozen behind
 * read-only proxies, capabilities as the only host functions, and every run accounted and
 * classified from the host's own flags. `Sandbox` and the policy engine are both built on it.
 *
 * @module
 */

import type { CallFrame } from "../ffi/call_runner.ts";
import { ALLOC_STATE_BYTES, nativeAllocatorChosen } from "../ffi/allocator.ts";
import { monotonicMs, RUN_CLOCK_BYTES, RunClock, threadCpuMs } from "../ffi/clock.ts";
import { LANE_STATE_BYTES, LaneTally } from "../ffi/fast_lane.ts";
import { type LuaLibrary, openLuaLibrary } from "../ffi/library.ts";
import type { PinnedBlock } from "../ffi/pinned.ts";
import { MAX_UTF8_BYTES_PER_UNIT } from "../ffi/strings.ts";
import {
  type ImageRegion,
  mapTemplateRegion,
  regionBlock,
  type StateImage,
  takeCopyRegion,
  unmapKeptRegions,
} from "../ffi/state_image.ts";
import type { LuaState } from "../ffi/lua_api.ts";
import { LuaType } from "../ffi/lua_api.ts";
import type { AttributeFilter, AttributeHandlers } from "../lua/bridge.ts";
import { type Collect, type InputData, LuaCore, MultipleValues } from "../lua/core.ts";
import { decodeChunk, EncodedData } from "../lua/data_program.ts";
import {
  LuaError,
  type LuaLimit,
  LuaLimitError,
  LuaMemoryError,
  LuaStateError,
  LuaSyntaxError,
  PermissionDeniedError,
} from "../lua/errors.ts";
import {
  DEFAULT_PLAIN_LIMITS,
  type ObjectHook,
  type PlainDataLimits,
  pushFieldByField,
  pushPlainData,
  readPlainData,
  type TableHook,
  type ValueHook,
} from "../lua/plain_data.ts";
import { deepFreeze, hostObjectBehavior } from "./host_objects.ts";
import {
  COMPILE_TOO_LONG,
  HostFunction,
  KERNEL_ENTRIES,
  KERNEL_LUA,
  type KernelEntry,
  LAZY_LIBRARIES,
  LOAD_PIECE_BYTES,
  UNCHARGED_UNITS,
} from "./kernel.ts";
import { LIBRARIES_LUA } from "./kernel_libraries.ts";
import { ROUTES_LUA } from "./kernel_routes.ts";
import { type Limits, resolveLimits } from "./limits.ts";
import { PATTERNS_LUA } from "./patterns.ts";

/** A host function granted to Lua, with the permission it needs (if any). */
export interface CapabilitySpec {
  /** The function. Receives plain data, returns plain data; must be synchronous. */
  fn: (...args: never[]) => unknown;
  /** The permission a caller must hold. */
  permission?: string;
}

/** A capability: a function, or a function with the permission it needs. */
export type Capability = ((...args: never[]) => unknown) | CapabilitySpec;

/** What one run used. */
export interface Usage {
  /**
   * VM instructions plus charged C work. With the fast lane (PUC Lua 5.3 and 5.4 on Linux x86_64 and
   * aarch64) the instructions are counted 64 at a time (or a step at a time, when a step is shorter);
   * without it, a step at a time.
   */
  instructions: number;
  /**
   * Highest Lua memory in bytes during the run above what was in use when it started (the input's
   * copy included; garbage the collector frees meanwhile can hide some of it).
   */
  memory: number;
  /** CPU milliseconds of the run (thread CPU time). */
  cpuMs: number;
  /** Bytes written by `print`. */
  output: number;
}

/** One capability call made during a run. */
export interface CapabilityCall {
  /** The capability's name. */
  name: string;
  /** Whether it returned normally. */
  ok: boolean;
  /** Its error message, when it failed or was denied. */
  error?: string;
}

/** Options of a guarded state. */
export interface GuardedOptions {
  library?: string;
  limits?: Partial<Limits>;
  globals?: Record<string, unknown>;
  capabilities?: Record<string, Capability>;
  permissions?: Iterable<string>;
  attributeFilter?: AttributeFilter;
  attributeHandlers?: AttributeHandlers;
  result?: Partial<PlainDataLimits>;
}

// Host object proxies come back as the frozen objects they stand for.
const readHostObject: ValueHook = (core, L, idx, type) => {
  if (type !== LuaType.USERDATA) return undefined;
  const id = core.proxyId(L, idx);
  return id === undefined ? undefined : core.proxyValue(id);
};

// The kernel needs these at once; the other vetted libraries are opened when first used.
const KERNEL_LIBRARIES = ["base", "table", "string", "debug"] as const;
// c_host, step, denied, budget, cpu_limit, lane, then the openers
const KERNEL_ARGUMENTS = 6 + LAZY_LIBRARIES.length;

const MAX_NESTED_RUNS = 4;

// A template's or a copy's region begins with the host's blocks: the allocator's state, the run
// clock and the fast lane's tally, which the state points to and copies relocate with it.
const CLOCK_AT = ALLOC_STATE_BYTES;
// blocks start on 16-byte boundaries, as pinned ones do
const LANE_AT = CLOCK_AT + Math.ceil(RUN_CLOCK_BYTES / 16) * 16;
const HEADER_BYTES = LANE_AT + LANE_STATE_BYTES;
/** The most a template's state may take; the image is what it took. */
const TEMPLATE_REGION_BYTES = 256 << 10;

/** A sandbox's state built once, which new sandboxes of the same library copy. */
interface Template {
  readonly core: LuaCore;
  readonly image: StateImage;
  /** The limits it was built with; a copy with others gives the kernel its own. */
  readonly limits: Limits;
  readonly kernel: Readonly<Record<string, number>>;
  readonly lane: boolean;
}

// by library; null: none can be made (no fixed mappings here, or the build failed)
const templates = new Map<string, Template | null>();

/**
 * The template of sandboxes of this library, built on first request with the default limits;
 * `undefined` where states are not copied (no native allocator or fixed mappings here).
 */
function templateFor(path: string | undefined, library: LuaLibrary): Template | undefined {
  let template = templates.get(library.path);
  if (template === undefined) {
    template = buildTemplate(path);
    templates.set(library.path, template);
  }
  return template ?? undefined;
}

/**
 * Closes the templates and unmaps the regions kept for copies: what an isolate about to end (a pool
 * worker) would otherwise leave mapped, since nothing unmaps them when it is terminated. Copies never
 * read their template once made; a later sandbox builds a new one.
 */
export function releaseTemplates(): void {
  for (const template of templates.values()) template?.core.close();
  templates.clear();
  unmapKeptRegions();
}

function buildTemplate(path: string | undefined): Template | null {
  if (!nativeAllocatorChosen()) return null;
  const region = mapTemplateRegion(TEMPLATE_REGION_BYTES);
  if (region === undefined) return null;
  let state: GuardedState | undefined;
  try {
    state = new GuardedState({ library: path }, region);
    const image = state.core.takeImage();
    return { core: state.core, image, limits: state.limits, ...state.kernelReferences };
  } catch {
    state?.close();
    return null;
  }
}

// whether the kernel of one set of limits is the kernel of the other
function sameKernelLimits(a: Limits, b: Limits): boolean {
  return a.step === b.step && a.instructions === b.instructions && a.cpuMs === b.cpuMs;
}

/** What a denied capability call returns to the kernel; never visible to sandboxed code. */
const DENIED = "\u0000luagate:permission-denied";
const MAX_CAPABILITY_DEPTH = 8;
// deno-lint-ignore no-control-regex -- matching control characters is the point: they are escaped
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
const ADDRESS = /0x[0-9a-fA-F]{5,}/g;
const textEncoder = new TextEncoder();
const lossyDecoder = new TextDecoder();

function escapeControl(text: string): string {
  return text.replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/** Removes what a message must never show untrusted code's audience: addresses and host paths. */
export function scrubMessage(message: string): string {
  return message.replace(/\n[ \t]*at [^\n]*/g, "").replace(ADDRESS, "0x?").replace(
    /(?:file:\/\/)?(?<![\w.])\/(?:[\w.@+-]+\/)+[\w.@+-]*(?::\d+)*/g,
    "<host>",
  );
}

function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  try {
    return String(error);
  } catch {
    return "error";
  }
}

/** How a run ended, before the host's flags classify it. */
interface RunOutcome {
  ok: boolean;
  values: unknown[];
  error?: unknown;
  raw?: unknown;
}

/** Per-run options of {@linkcode GuardedState.invoke} and {@linkcode GuardedState.decide}. */
export interface RunOptions {
  /** The permissions granted for this run (default: the state's). */
  grants?: ReadonlySet<string>;
  /** Reads the results instead of the plain-data copy (only for a successful top-level run). */
  collect?: (L: LuaState, first: number, count: number) => unknown[];
  /**
   * The target is a chunk {@linkcode GuardedState.prepare} compiled for an earlier run: it gets
   * fresh globals first, as a chunk just compiled has (those of its last run, when that run left
   * them as they were made: nothing else of that run is left in Lua once its results are data;
   * with `collect`, which may keep its functions, always new ones).
   */
  again?: boolean;
}

/** The guarded state; see the module documentation. */
export class GuardedState {
  readonly core: LuaCore;
  readonly limits: Limits;
  readonly resultLimits: PlainDataLimits;
  readonly #hostObjects = new WeakSet<object>();
  // capability number n (as the kernel calls it) is at n - 1
  readonly #capabilities: { name: string; spec: CapabilitySpec }[] = [];
  readonly #kernel: Record<string, number> = {};
  readonly #defaultGrants: ReadonlySet<string>;
  #grants: ReadonlySet<string>;
  #modules: ReadonlyMap<string, string> = new Map();
  #depth = 0;
  #capabilityDepth = 0;
  #tripped: LuaLimit | "permission" | undefined;
  #denied: { capability: string; permission?: string } | undefined;
  #deniedBefore = 0;
  #startWall = 0;
  #startUsed = 0;
  #runCpu = -1;
  #runs = 0;
  #output: string[] = [];
  #outputBytes = 0;
  #calls: CapabilityCall[] = [];
  #lastHostError: unknown;
  #usage: Usage = { instructions: 0, memory: 0, cpuMs: 0, output: 0 };
  /** What the fast lane did and did not charge yet (`undefined`: no fast lane). */
  #lane: LaneTally | undefined;
  // when runs began and the CPU time they may use, which the allocator and the fast lane read
  readonly #runClock: RunClock;
  #collector: ((L: LuaState, first: number, count: number) => unknown[]) | undefined;
  #wallMs = 0;
  readonly #collectRun: Collect = (_core, L, first, count, described) =>
    this.#collect(L, first, count, 1, described);
  readonly #collectNested = (_core: LuaCore, L: LuaState, first: number, count: number): unknown =>
    this.#collect(L, first, count, 0);
  #broken: string | undefined;
  // how a decision's input is pushed: as pushData does
  readonly #input: InputData;

  /**
   * @param options The sandbox's options.
   * @param template Build the state into this region as a template of copies (`templateFor`), with
   * none of `options`' globals: only the library and the limits count (a copy with other limits gives
   * its kernel its own).
   */
  constructor(options: GuardedOptions = {}, template?: ImageRegion) {
    this.limits = resolveLimits(options.limits);
    this.#defaultGrants = new Set(options.permissions ?? []);
    this.#grants = this.#defaultGrants;
    this.resultLimits = { ...DEFAULT_PLAIN_LIMITS, ...options.result };
    if (options.attributeFilter && options.attributeHandlers) {
      throw new TypeError("attributeFilter and attributeHandlers cannot be combined");
    }
    const library = openLuaLibrary(options.library);
    if (library.version !== "5.4" && library.version !== "5.3") {
      throw new LuaStateError(`the sandbox needs Lua 5.3 or 5.4 (this library is ${library.implementation})`);
    }
    const source = template === undefined ? templateFor(options.library, library) : undefined;
    const region = template ?? (source && takeCopyRegion(source.image.bytes));
    const core = source && region
      ? new LuaCore({
        library: options.library,
        copyOf: { template: source.core, image: source.image, region },
      })
      : new LuaCore({
        library: options.library,
        libraries: KERNEL_LIBRARIES,
        jsTable: false,
        template: template && { region: template, header: HEADER_BYTES },
      });
    this.core = core;
    // made after the copy, which wrote the template's clock where this one goes
    this.#runClock = new RunClock(this.limits.cpuMs, region && regionBlock(region, CLOCK_AT));
    try {
      core.behavior = hostObjectBehavior(options);
      core.reader = {
        table: (_core, L, idx) => this.readData(L, idx),
        func: () => {
          throw new LuaError("a function cannot be passed to the host");
        },
        thread: () => {
          throw new LuaError("a coroutine cannot be passed to the host");
        },
        userdata: () => {
          throw new LuaError("a userdata cannot be passed to the host");
        },
      };
      core.pusher = {
        object: (_core, L, value) => this.pushData(L, value),
      };
      core.hostCall = (name, args) => this.#hostCall(name, args);
      core.errorForLua = (error) => {
        if (error instanceof PermissionDeniedError) return DENIED;
        this.#lastHostError = error;
        return scrubMessage(messageOf(error));
      };
      if (source && region) {
        Object.assign(this.#kernel, source.kernel);
        if (!sameKernelLimits(source.limits, this.limits)) {
          this.#callKernel("limits", (L) => this.#pushLimits(L));
        }
        if (source.lane) {
          this.#lane = new LaneTally(
            this.limits.step,
            UNCHARGED_UNITS,
            this.#runClock,
            regionBlock(region, LANE_AT),
          );
        }
      } else {
        core.withCollectorPaused(() => this.#installKernel(template && regionBlock(template, LANE_AT)));
      }
      this.#installGlobals(options);
      this.#input = {
        limits: DEFAULT_PLAIN_LIMITS,
        hook: this.#hostObjectHook,
        push: (L, value) => this.pushData(L, value),
        pushFieldByField: (L, value) =>
          pushFieldByField(this.core, L, value, DEFAULT_PLAIN_LIMITS, this.#hostObjectHook),
      };
      // the kernel and the globals are the sandbox's, not the runs': limits and usage count from here
      core.resetBaseline(false);
      core.setMaxMemory(this.limits.memory);
      core.alloc.setRunClock(this.#runClock);
    } catch (error) {
      this.close();
      throw error;
    }
  }

  /** The template's kernel references and whether it has a fast lane, for its copies. */
  get kernelReferences(): { readonly kernel: Readonly<Record<string, number>>; readonly lane: boolean } {
    return { kernel: { ...this.#kernel }, lane: this.#lane !== undefined };
  }

  // ---------------------------------------------------------------- set-up

  #installKernel(laneBlock?: PinnedBlock): void {
    const core = this.core;
    const L = core.L;
    const s = core.api.sym;
    // the chunk, its arguments and the call's traceback handler, then one more beside its results
    // (and the one more the fast lane's upvalues need while it is made)
    core.ensureStack(L, 1 + KERNEL_ARGUMENTS + 1 + 1);
    core.loadTrusted(L, KERNEL_LUA, "=luagate.kernel");
    core.pushHostCFunction(L);
    this.#pushLimits(L);
    core.pushString(L, DENIED);
    this.#lane = core.pushFastLane(L, this.limits.step, UNCHARGED_UNITS, this.#runClock, laneBlock);
    for (const library of LAZY_LIBRARIES) {
      if (!core.pushLibraryOpener(L, library)) s.lua_pushnil(L);
    }
    const started = core.call(L, KERNEL_ARGUMENTS, (_core, L, first, count) => {
      if (count !== KERNEL_ENTRIES.length) return false;
      s.lua_pushvalue(L, first + KERNEL_ENTRIES.indexOf("tostring"));
      core.replaceRef(L, "tostring");
      // the last first: a reference pops the top
      for (let i = KERNEL_ENTRIES.length - 1; i >= 0; i--) this.#kernel[KERNEL_ENTRIES[i]] = core.ref(L);
      return true;
    });
    if (started !== true) throw new LuaStateError("the sandbox kernel did not start");
  }

  // the kernel's step, instruction budget and CPU milliseconds, as it takes them
  #pushLimits(L: LuaState): number {
    this.core.pushValue(L, this.limits.step);
    this.core.api.sym.lua_pushinteger(L, BigInt(this.limits.instructions));
    this.core.api.sym.lua_pushnumber(L, this.limits.cpuMs);
    return 3;
  }

  #installGlobals(options: GuardedOptions): void {
    const core = this.core;
    for (const [name, value] of Object.entries(options.globals ?? {})) {
      deepFreeze(value, this.#hostObjects);
      this.#hostObjectHook ??= {
        claims: (object) => this.#hostObjects.has(object),
        push: (core, L, object) => core.pushProxy(L, object, "default"),
      };
      this.#define(name, (L) => core.pushValue(L, value));
    }
    for (const [name, capability] of Object.entries(options.capabilities ?? {})) {
      const spec: CapabilitySpec = typeof capability === "function" ? { fn: capability } : capability;
      if (typeof spec?.fn !== "function") throw new TypeError(`capability '${name}' is not a function`);
      if (spec.permission !== undefined && typeof spec.permission !== "string") {
        throw new TypeError(`capability '${name}': permission must be a string`);
      }
      const id = this.#capabilities.push({ name, spec });
      this.#callKernel("define_capability", (L) => {
        core.pushString(L, name);
        core.pushValue(L, id);
        return 2;
      });
    }
  }

  /** Defines modules `require` can load (name to Lua source); replaces earlier ones of the same name. */
  setModules(modules: ReadonlyMap<string, string>): void {
    this.#modules = modules;
  }

  #define(name: string, push: (L: LuaState) => void): void {
    this.#callKernel("define", (L) => {
      this.core.pushString(L, name);
      push(L);
      return 2;
    });
  }

  #callKernel(name: KernelEntry, push: (L: LuaState) => number): unknown {
    const core = this.core;
    const L = core.currentL;
    const top = core.api.sym.lua_gettop(L);
    core.ensureStack(L, 8);
    try {
      core.pushRegistry(L, this.#kernel[name]);
      const n = push(L);
      return core.call(L, n, (core, L, first, count) => (count > 0 ? core.read(L, first) : undefined));
    } finally {
      core.api.sym.lua_settop(L, top);
    }
  }

  /** Pushes a kernel function. Uses 1 slot. */
  pushKernel(L: LuaState, name: string): void {
    this.core.pushRegistry(L, this.#kernel[name]);
  }

  // ---------------------------------------------------------------- data both ways

  /**
   * Runs `give`, which hands the state values of the host's own for as long as it lives (a policy
   * engine's data document), without the memory cap: what they take joins the state's footprint,
   * as a sandbox's globals do, and every run keeps its whole memory limit beyond it.
   */
  withHostValues<T>(give: () => T): T {
    const core = this.core;
    const before = core.alloc.used();
    core.setMaxMemory(0);
    try {
      return give();
    } finally {
      core.growBaseline(core.keptSince(before));
      core.setMaxMemory(this.limits.memory);
    }
  }

  /** Pushes a JS value as sandbox data: frozen host objects as proxies, anything else copied. */
  pushData(L: LuaState, value: unknown): void {
    pushPlainData(this.core, L, value, DEFAULT_PLAIN_LIMITS, this.#hostObjectHook);
  }

  // Only a state with host objects pays for looking objects up on the way in.
  #hostObjectHook: ObjectHook | undefined;

  /**
   * Reads a Lua value as plain data: host object proxies come back as the frozen objects, and
   * read-only views of data (the engine's data, a required module) as the tables they show. A
   * library's view reads as the empty table it is.
   */
  readData(L: LuaState, idx: number): unknown {
    return readPlainData(this.core, L, idx, this.resultLimits, readHostObject, this.#readView);
  }

  readonly #readView: TableHook = (core, L, idx) => {
    const s = core.api.sym;
    if (s.lua_getmetatable(L, idx) === 0) return false;
    s.lua_settop(L, -2);
    core.pushRegistry(L, this.#kernel.views);
    s.lua_pushvalue(L, idx);
    if (s.lua_rawget(L, -2) === LuaType.TABLE) {
      core.api.replace(L, -2);
      return true;
    }
    core.api.pop(L, 2);
    return false;
  };

  // ---------------------------------------------------------------- host functions

  #hostCall(target: number, args: unknown[]): unknown {
    if (target > 0) return this.#callCapability(target, args);
    switch (target) {
      case HostFunction.clock:
        return args.length > 0 ? this.#firstReading() : threadCpuMs();
      case HostFunction.trip:
        this.#trip(args[0] as string);
        return true;
      case HostFunction.write:
        // a line that is not valid UTF-8 arrives as bytes: show it with replacement characters
        return this.#write(args[0] instanceof Uint8Array ? lossyDecoder.decode(args[0]) : String(args[0]));
      case HostFunction.module:
        return this.#modules.get(String(args[0]));
      case HostFunction.patterns:
        return this.core.trustedBytecodeOf(PATTERNS_LUA, "=luagate.patterns");
      case HostFunction.libraries:
        return this.core.trustedBytecodeOf(LIBRARIES_LUA, "=luagate.libraries");
      case HostFunction.routes:
        return this.core.trustedBytecodeOf(ROUTES_LUA, "=luagate.routes");
    }
    throw new LuaError(`no host function ${target}`);
  }

  #callCapability(id: number, args: unknown[]): unknown {
    const { name, spec } = this.#capabilities[id - 1];
    if (spec.permission !== undefined && !this.#grants.has(spec.permission)) {
      this.#tripped ??= "permission";
      this.#denied ??= { capability: name, permission: spec.permission };
      this.#calls.push({ name, ok: false, error: "permission denied" });
      throw new PermissionDeniedError(name, spec.permission);
    }
    if (this.#capabilityDepth >= MAX_CAPABILITY_DEPTH) {
      throw new LuaError(`capability calls nested deeper than ${MAX_CAPABILITY_DEPTH}`);
    }
    this.#capabilityDepth++;
    try {
      const result = (spec.fn as (...a: unknown[]) => unknown)(...args);
      if (
        result !== null && typeof result === "object" &&
        typeof (result as { then?: unknown }).then === "function"
      ) {
        throw new LuaError(`capability '${name}' returned a promise: capabilities must be synchronous`);
      }
      this.#calls.push({ name, ok: true });
      return result;
    } catch (error) {
      const message = scrubMessage(messageOf(error));
      this.#calls.push({ name, ok: false, error: message });
      throw new LuaError(`${name}: ${message}`, { cause: error });
    } finally {
      this.#capabilityDepth--;
    }
  }

  #trip(reason: string): void {
    if (this.#tripped !== undefined) return;
    if (reason === "permission") return;
    if (reason === "instructions" || reason === "cpu" || reason === "output") this.#tripped = reason;
  }

  // The kernel's first CPU reading of a run: the time, and the CPU time the run began at (as the
  // fast lane's clock entry answers it); nothing in the run's first milliseconds.
  #firstReading(): MultipleValues | undefined {
    if (this.#runClock.young()) return undefined;
    const now = threadCpuMs();
    return new MultipleValues([now, this.#runClock.cpuStart(now)]);
  }

  #write(text: string): boolean {
    const escaped = escapeControl(text);
    const bytes = textEncoder.encode(escaped).length;
    const room = this.limits.output - this.#outputBytes;
    if (bytes <= room) {
      this.#output.push(escaped);
      this.#outputBytes += bytes;
      return true;
    }
    if (room > 0) {
      const part = new TextDecoder().decode(textEncoder.encode(escaped).subarray(0, room)).replace(
        /\uFFFD$/,
        "",
      );
      this.#output.push(part);
      this.#outputBytes += textEncoder.encode(part).length;
    }
    this.#tripped ??= "output";
    return false;
  }

  // ---------------------------------------------------------------- runs

  /** What `print` wrote during the last run. */
  get output(): string {
    return this.#output.join("");
  }

  /** What the last run used. */
  get usage(): Usage {
    return { ...this.#usage };
  }

  /** The capability calls of the last run, in order. */
  get calls(): readonly CapabilityCall[] {
    return this.#calls;
  }

  /** Throws unless the state can take another run. */
  checkUsable(): void {
    this.core.check();
    if (this.#broken) throw new LuaStateError(`this sandbox must be replaced: ${this.#broken}`);
  }

  /**
   * Compiles `code` into a function with a fresh environment and pins it in the registry; returns
   * the reference (release it with `core.unref`). Calls `compiled`, if given, once the function is
   * made, before it takes the reference. Throws {@linkcode LuaSyntaxError}.
   */
  prepare(code: string, name: string, compiled?: () => void): number {
    if (typeof code !== "string") throw new TypeError("Lua code must be a string");
    if (code.charCodeAt(0) === 0x1b) {
      throw new LuaSyntaxError(`${name}: attempt to load a binary chunk (only text is allowed)`);
    }
    const core = this.core;
    const L = core.currentL;
    const s = core.api.sym;
    const top = s.lua_gettop(L);
    const deniedBefore = core.alloc.denied();
    core.ensureStack(L, 4);
    try {
      // Code short enough that the kernel would compile it in one piece whatever its characters is
      // compiled here, from the bytes the host encodes it into, and the kernel gives the chunk its
      // globals: handing the kernel the code as a Lua string and its load cost 0.2 µs more a compile.
      if (code.length <= LOAD_PIECE_BYTES / MAX_UTF8_BYTES_PER_UNIT) {
        try {
          core.load(L, code, `=${name}`, "t");
        } catch (error) {
          throw this.#compileError(name, messageOf(error), deniedBefore);
        }
        this.pushKernel(L, "adopt");
        core.api.insert(L, -2);
        return core.call(L, 1, (core, L, first) => {
          compiled?.();
          s.lua_pushvalue(L, first);
          return core.ref(L);
        }, false) as number;
      }
      this.pushKernel(L, "prepare");
      core.pushString(L, code);
      core.pushString(L, `=${name}`);
      // No message handler: the parser raises a C stack overflow through it (other syntax errors it
      // returns), which would add a traceback of the kernel to the message.
      return core.call(L, 2, (core, L, first, count) => {
        if (count < 1 || s.lua_type(L, first) !== LuaType.FUNCTION) {
          const message = count >= 2 && s.lua_type(L, first + 1) === LuaType.STRING
            ? core.readText(L, first + 1)
            : "cannot compile";
          throw this.#compileError(name, message, deniedBefore);
        }
        compiled?.();
        s.lua_pushvalue(L, first);
        return core.ref(L);
      }, false) as number;
    } finally {
      s.lua_settop(L, top);
    }
  }

  // The error of a compile that failed with `message`.
  #compileError(name: string, message: string, deniedBefore: number): LuaError {
    if (message === COMPILE_TOO_LONG) {
      return new LuaLimitError("cpu", `${name}: ${COMPILE_TOO_LONG} (${this.limits.cpuMs} ms)`);
    }
    // the allocator's own count tells a refused allocation, not the parser's message
    if (this.core.alloc.denied() > deniedBefore) {
      return new LuaMemoryError(
        `${name}: memory limit exceeded while compiling (${this.limits.memory} bytes)`,
      );
    }
    return new LuaSyntaxError(scrubMessage(message));
  }

  /**
   * Runs the kernel entry "run" on what `pushTarget` pushes, with the arguments `pushArgs` pushes
   * after it, and returns the results as plain data (several: an array). Throws the typed error of
   * the run: the host's own flags decide the class.
   */
  invoke(
    L: LuaState,
    pushTarget: (L: LuaState) => number,
    pushArgs: (L: LuaState) => number,
    options: RunOptions = {},
  ): unknown[] {
    const core = this.core;
    return this.#invoke(options, (entry, collect) => {
      const top = core.api.sym.lua_gettop(L);
      try {
        core.ensureStack(L, 8);
        this.pushKernel(L, entry);
        const n = pushTarget(L) + pushArgs(L);
        // the call restores the stack to `top` whatever happens in it
        return core.call(L, n, collect, false, top + 1);
      } catch (error) {
        core.api.sym.lua_settop(L, top);
        throw error;
      }
    });
  }

  /**
   * Runs the kernel entry "run" on the registry value `targetRef` and `args` as data, as
   * {@linkcode GuardedState.invoke} does: in one FFI crossing where the call runner is there and
   * takes the arguments (none, or only nils, booleans and numbers).
   */
  invokeRef(
    L: LuaState,
    targetRef: number,
    options: RunOptions,
    args: readonly unknown[],
  ): unknown[] {
    return this.#invoke(
      options,
      (entry, collect) =>
        this.core.callRef(L, this.#kernel[entry], targetRef, collect, args, this.#input.push),
    );
  }

  // A run (or a nested one) of the kernel entry its options name, made by `call`, which leaves the
  // stack as it found it whatever happens.
  #invoke(options: RunOptions, call: (entry: KernelEntry, collect: Collect) => unknown): unknown[] {
    const nested = this.#enterRun(options);
    let outcome: RunOutcome;
    try {
      const entry = options.again
        ? (nested ? "run_again_nested" : options.collect ? "run_again_fresh" : "run_again")
        : (nested ? "run_nested" : "run");
      outcome = call(entry, nested ? this.#collectNested : this.#collectRun) as RunOutcome;
    } catch (error) {
      outcome = { ok: false, values: [], raw: error };
    } finally {
      this.#leaveRun(nested);
    }
    return this.#conclude(outcome, nested);
  }

  /**
   * Runs the kernel entry "decide" on the registry value `targetRef` (a policy's metatable) and
   * `input` as data, and returns the decision function's verdict and reasons as plain data. Throws
   * like {@linkcode GuardedState.invoke}.
   */
  decide(L: LuaState, targetRef: number, input: unknown, options: RunOptions): unknown[] {
    // a decision sets up the budget and the globals of its own run, which one in progress owns
    if (this.#depth > 0) {
      throw new LuaError(
        "a policy cannot be evaluated while another evaluation of its engine runs (from a capability)",
      );
    }
    // an input a pool encoded for the data builder, where this state's library has none, or the
    // state no room for the chunk's known strings
    if (input instanceof EncodedData && !this.core.dataEncoder?.loadsChunks(this.core)) {
      input = decodeChunk(input);
    }
    this.#enterRun(options);
    let outcome: RunOutcome;
    try {
      outcome = this.core.callRefs(
        L,
        this.#kernel.decide,
        targetRef,
        input,
        this.#input,
        this.#collectRun,
      ) as RunOutcome;
    } catch (error) {
      outcome = { ok: false, values: [], raw: error };
    } finally {
      this.#leaveRun(false);
    }
    return this.#conclude(outcome, false);
  }

  // Starts a run, or a nested one (returns true) from a capability of a run in progress.
  #enterRun(options: RunOptions): boolean {
    this.checkUsable();
    const nested = this.#depth > 0;
    if (nested && this.#depth >= MAX_NESTED_RUNS) {
      throw new LuaError(`sandbox runs nested deeper than ${MAX_NESTED_RUNS}`);
    }
    if (!nested) {
      this.#beginRun();
      this.#grants = options.grants ?? this.#defaultGrants;
      this.#collector = options.collect;
    }
    this.#depth++;
    return nested;
  }

  #leaveRun(nested: boolean): void {
    this.#depth--;
    if (!nested) this.#endRun();
  }

  #beginRun(): void {
    // Each run leaves a few young tables behind, which a generational collector reclaims cheaply
    // (a short decision takes 5-7% less time); but entering that mode is a full collection, so a
    // state pays for it only once it is reused. On the JS allocator the collector takes small
    // incremental steps from the first run on (SMALL_STEP_LOG2 in policy/kernel.ts).
    const native = this.core.alloc.native;
    if (++this.#runs === (native ? 2 : 1)) {
      this.#callKernel("collector", (L) => (this.core.api.sym.lua_pushboolean(L, native ? 0 : 1), 1));
    }
    this.#tripped = undefined;
    this.#denied = undefined;
    if (this.#output.length > 0) this.#output = [];
    this.#outputBytes = 0;
    if (this.#calls.length > 0) this.#calls = [];
    this.#lastHostError = undefined;
    this.core.alloc.resetPeak();
    this.#startUsed = this.core.alloc.used();
    this.core.alloc.clearOverdraft();
    this.#deniedBefore = this.core.alloc.denied();
    this.#startWall = monotonicMs();
    this.#runCpu = -1;
    this.#runClock.begin(this.#startWall);
    if (this.core.alloc.late() > 0) this.core.alloc.clearLate();
    // a run that ended without its count (an error in the host) left its tally
    this.#lane?.take();
  }

  #endRun(): void {
    const alloc = this.core.alloc;
    this.#runClock.end();
    this.#wallMs = monotonicMs() - this.#startWall;
    // in place: callers copy it (usage) or read it at once (usageView)
    const usage = this.#usage;
    usage.memory = Math.max(0, alloc.peak() - this.#startUsed);
    usage.cpuMs = this.#runCpu >= 0 ? this.#runCpu : this.#wallMs;
    usage.output = this.#outputBytes;
  }

  /** Wall-clock milliseconds of the last run, conversion of its arguments included. */
  get wallMs(): number {
    return this.#wallMs;
  }

  /** What the last run used, without copying (callers must not keep or change it). */
  get usageView(): Readonly<Usage> {
    return this.#usage;
  }

  #collect(L: LuaState, first: number, count: number, counted: number, described?: CallFrame): unknown {
    const s = this.core.api.sym;
    const ok = described ? described.values[0] !== 0 : s.lua_toboolean(L, first) !== 0;
    if (counted) {
      // the CPU clock at the run's first reading (none: the run was too short to read it)
      const cpuStart = this.#runClock.readCpuStart();
      if (cpuStart !== undefined) this.#runCpu = threadCpuMs() - cpuStart;
      // plus the work the fast lane tallied and did not hand over yet
      const steps = described ? described.values[1] : this.core.api.toNumber(L, first + 1);
      this.#usage.instructions = steps + (this.#lane?.take() ?? 0);
    }
    const start = first + 1 + counted;
    const n = count - 1 - counted;
    if (!ok) {
      const type = s.lua_type(L, start);
      if (type === LuaType.STRING) return { ok, values: [], error: this.core.readText(L, start) };
      let value: unknown;
      try {
        value = this.readData(L, start);
      } catch {
        value = undefined;
      }
      return { ok, values: [], error: `(error object is a ${this.core.typeName(type)} value)`, raw: value };
    }
    if (this.#tripped !== undefined) return { ok: false, values: [] };
    if (this.#collector && this.#depth === 1) return { ok, values: this.#collector(L, start, n) };
    // a decision's two results (verdict, reasons) in one literal, without growing an array
    if (n === 2) {
      return {
        ok,
        values: [this.#result(L, start, first, described), this.#result(L, start + 1, first, described)],
      };
    }
    // a literal, not new Array(n): V8 learns at the literal that its arrays hold any value, where
    // each new Array(n) began as an array of small integers and changed kind at the first boolean
    const values: unknown[] = [];
    for (let i = 0; i < n; i++) values.push(this.#result(L, start + i, first, described));
    return { ok, values };
  }

  // The result at stack index `at` of a run whose results begin at `first`.
  #result(L: LuaState, at: number, first: number, described: CallFrame | undefined): unknown {
    return described?.isScalar(at - first) ? described.scalar(at - first) : this.readData(L, at);
  }

  #conclude(outcome: RunOutcome, nested: boolean): unknown[] {
    const alloc = this.core.alloc;
    if (this.#tripped === "permission") {
      throw new PermissionDeniedError(this.#denied?.capability ?? "?", this.#denied?.permission);
    }
    if (this.#tripped !== undefined) throw this.#limitError(this.#tripped);
    // an overdraft granted while the host pushed is a hit even when Lua swallowed its error
    const overdrawn = alloc.peak() > alloc.limit();
    if (outcome.ok && !overdrawn) return outcome.values;
    // The kernel tells the host of every trip as it happens; should that call itself have failed,
    // the kernel's own record (trusted state, not a message) still classifies the failure.
    const recorded = this.#kernelTrip();
    if (recorded !== undefined) throw this.#limitError(recorded);
    // an allocation refused past the deadline ended the run with Lua's memory error
    if (alloc.late() > 0) throw this.#limitError("cpu");
    const memoryHit = overdrawn || alloc.overdraft() || alloc.denied() > this.#deniedBefore;
    if (memoryHit) {
      if (!nested) {
        alloc.clearOverdraft();
        this.core.collectGarbage();
      }
      throw new LuaMemoryError(`memory limit exceeded (${this.limits.memory} bytes)`);
    }
    if (outcome.raw instanceof LuaError || outcome.raw instanceof Error) {
      const raw = outcome.raw;
      if (raw instanceof LuaStateError) {
        this.#broken = raw.message;
        throw raw;
      }
      if (raw instanceof LuaError) throw raw;
      throw new LuaError(scrubMessage(raw.message));
    }
    const message = scrubMessage(String(outcome.error ?? "error"));
    const cause = this.#lastHostError;
    throw new LuaError(message, {
      ...(cause !== undefined && message.includes(scrubMessage(messageOf(cause))) ? { cause } : {}),
      ...(outcome.raw !== undefined ? { value: outcome.raw } : {}),
    });
  }

  #kernelTrip(): "instructions" | "cpu" | "output" | undefined {
    let recorded: unknown;
    try {
      recorded = this.#callKernel("tripped", () => 0);
    } catch {
      return undefined;
    }
    return recorded === "instructions" || recorded === "cpu" || recorded === "output" ? recorded : undefined;
  }

  #limitError(limit: LuaLimit): LuaLimitError {
    switch (limit) {
      case "instructions":
        return new LuaLimitError(
          limit,
          `instruction limit exceeded (${this.limits.instructions} instructions)`,
        );
      case "cpu":
        return new LuaLimitError(limit, `cpu time limit exceeded (${this.limits.cpuMs} ms)`);
      case "output":
        return new LuaLimitError(limit, `output limit exceeded (${this.limits.output} bytes)`);
      default:
        return new LuaMemoryError(`memory limit exceeded (${this.limits.memory} bytes)`);
    }
  }

  /** Closes the state (idempotent). */
  close(): void {
    // a copy's region goes to the next copy, or is unmapped: the clock and the tally move out first
    this.core.close(() => {
      this.#runClock.detach();
      this.#lane?.detach();
    });
  }
}
