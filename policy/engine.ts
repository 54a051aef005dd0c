/**
 * The policy engine: Lua policies compiled once, evaluated against inputs under every limit,
 * fail-closed, with shared frozen data, permission-gated capabilities, bundles with `require`, and
 * an optional decision log.
 *
 * @module
 */

import type { LuaState } from "../ffi/lua_api.ts";
import { LuaType } from "../ffi/lua_api.ts";
import { type HandleInfo, registerHandle } from "../lua/core.ts";
import { LuaError, LuaStateError } from "../lua/errors.ts";
import { type Decision, DecisionIds, errorLine, readVerdict, verdictError } from "./decision.ts";
import { DecisionLog, type DecisionLogOptions } from "./decision_log.ts";
import { type Capability, type CapabilityCall, GuardedState, type RunOptions } from "./guarded_state.ts";
import { deepFreeze } from "./host_objects.ts";
import type { Limits } from "./limits.ts";

/** Options of a {@linkcode PolicyEngine}. */
export interface PolicyEngineOptions {
  /** Per-evaluation limits (defaults: see `DEFAULT_LIMITS`). */
  limits?: Partial<Limits>;
  /**
   * The data document: deep-frozen once, converted once, shared read-only by every evaluation. It is
   * the engine's own, as a sandbox's globals are: its Lua memory does not count against
   * `limits.memory`, which every evaluation has whole beyond it.
   */
  data?: unknown;
  /** Host functions policies may call: a function, or `{ fn, permission }`. */
  capabilities?: Record<string, Capability>;
  /** Permissions granted to every policy of the engine. */
  permissions?: Iterable<string>;
  /** Logs every decision as JSON Lines. */
  decisionLog?: DecisionLogOptions;
  /** Path or soname of the Lua library (5.3 or 5.4). */
  library?: string;
}

/** Options of {@linkcode PolicyEngine.compile}. */
export interface PolicyOptions {
  /** The policy's name, used in errors, decisions and logs (default "policy"). */
  name?: string;
  /** Permissions granted to this policy in addition to the engine's. */
  permissions?: Iterable<string>;
}

interface PolicyHandle {
  /** The options of every evaluation (its grants), made once. */
  runOptions: RunOptions;
  /** The registry reference of the policy's metatable in the kernel (its chunk, function and the data). */
  targetRef: number;
}

const NO_CALLS: readonly CapabilityCall[] = Object.freeze([]);

/**
 * A compiled policy. Evaluating never throws: any error or limit denies, with the cause in
 * `errors`.
 *
 * @example
 * ```ts
 * import { PolicyEngine } from "./engine.ts";
 * using engine = new PolicyEngine();
 * const policy = engine.compile(`return function(input) return input.user.role == "admin" end`, { name: "admin.lua" });
 * console.log(policy.evaluate({ user: { role: "admin" } }).allow); // true
 * ```
 */
export class Policy {
  /** The policy's name. */
  readonly name: string;
  readonly #engine: PolicyEngine;

  /** Made by {@linkcode PolicyEngine.compile}; not constructed directly. */
  constructor(engine: PolicyEngine, name: string, token: symbol) {
    if (token !== POLICY_TOKEN) throw new TypeError("policies are made by PolicyEngine.compile");
    this.#engine = engine;
    this.name = name;
  }

  /** Decides `input` (plain data: objects, arrays, Maps, strings, numbers, booleans). */
  evaluate(input: unknown): Decision {
    return this.#engine.evaluate(this, input);
  }
}

const POLICY_TOKEN = Symbol("policy");

/** A chunk that ran fine but returned no decision function (in a bundle: a plain module). */
export class NotAPolicyError extends LuaError {
  /**
   * Creates a NotAPolicyError.
   * @param message What the chunk returned instead.
   */
  constructor(message: string) {
    super(message);
    this.name = "NotAPolicyError";
  }
}

/**
 * Compiles and evaluates Lua policies. A policy is a chunk returning `function(input, data)` that
 * returns a boolean, `false, "reason"`, or `{ allow = bool, reasons = {...} }`.
 *
 * @example
 * ```ts
 * import { PolicyEngine } from "./engine.ts";
 * using engine = new PolicyEngine({ data: { admins: ["ann"] } });
 * const policy = engine.compile(`
 *   return function(input, data)
 *     for _, name in ipairs(data.admins) do
 *       if name == input.user then return true end
 *     end
 *     return false, "not an admin"
 *   end`, { name: "admins.lua" });
 * console.log(policy.evaluate({ user: "bob" })); // { allow: false, reasons: ["not an admin"], ... }
 * ```
 */
export class PolicyEngine implements Disposable {
  readonly #state: GuardedState;
  readonly #grants: ReadonlySet<string>;
  readonly #policies = new Map<string, Policy>();
  /** Per engine, so that a policy of another engine is refused (its references mean nothing here). */
  readonly #handles = new WeakMap<Policy, PolicyHandle>();
  readonly #modules = new Map<string, string>();
  readonly #log: DecisionLog | undefined;
  readonly #ids = new DecisionIds();
  #dataRef = -1;

  /**
   * Creates a PolicyEngine.
   * @param options See {@linkcode PolicyEngineOptions}.
   */
  constructor(options: PolicyEngineOptions = {}) {
    this.#grants = new Set(options.permissions ?? []);
    this.#state = new GuardedState({
      library: options.library,
      limits: options.limits,
      capabilities: options.capabilities,
      permissions: this.#grants,
    });
    try {
      this.#dataRef = this.#loadData(options.data);
      this.#log = options.decisionLog ? new DecisionLog(options.decisionLog) : undefined;
    } catch (error) {
      this.#state.close();
      throw error;
    }
  }

  #loadData(data: unknown): number {
    if (data === undefined) return -1;
    deepFreeze(data, new WeakSet<object>());
    const state = this.#state;
    return state.withHostValues(() =>
      this.#kernelResult("freeze_deep", 1, (L) => state.pushData(L, data), (L) => state.core.ref(L))
    );
  }

  /**
   * Calls the kernel function `name` on the `count` values `pushArgs` pushes and hands its result,
   * copied on top of the stack, to `pin`, which pops it.
   */
  #kernelResult<T>(name: string, count: number, pushArgs: (L: LuaState) => void, pin: (L: LuaState) => T): T {
    const state = this.#state;
    const core = state.core;
    const L = core.L;
    const s = core.api.sym;
    const top = s.lua_gettop(L);
    try {
      // the function, its arguments and the call's traceback handler
      core.ensureStack(L, count + 2);
      state.pushKernel(L, name);
      pushArgs(L);
      return core.call(
        L,
        count,
        (_core, L, first) => {
          s.lua_pushvalue(L, first);
          return pin(L);
        },
        true,
        top + 1,
      ) as T;
    } finally {
      s.lua_settop(L, top);
    }
  }

  /**
   * Compiles a policy: runs its chunk once (under the limits) and keeps the decision function it
   * returns. What the policy keeps in Lua memory counts as the engine's own while the policy lives,
   * not against `limits.memory`, which each decision has whole. Throws `LuaSyntaxError` naming the
   * policy and line, `LuaMemoryError` when compiling it needs more than `limits.memory`, or
   * `LuaError` if the chunk fails or does not return a function.
   */
  compile(source: string, options: PolicyOptions = {}): Policy {
    const name = options.name ?? "policy";
    if (typeof name !== "string" || name.length === 0) {
      throw new TypeError("a policy name must be a non-empty string");
    }
    const grants = options.permissions ? new Set([...this.#grants, ...options.permissions]) : this.#grants;
    const handle = this.#compileHandle(source, name, grants);
    const policy = new Policy(this, name, POLICY_TOKEN);
    this.#handles.set(policy, handle);
    this.#policies.set(name, policy);
    return policy;
  }

  // What the policy keeps in use (its compiled chunk, what the chunk's run left under the limits)
  // joins the engine's footprint while the policy lives: each decision has its whole memory limit
  // beyond every policy the engine holds.
  #compileHandle(source: string, name: string, grants: ReadonlySet<string>): PolicyHandle {
    const state = this.#state;
    const core = state.core;
    const before = core.alloc.used();
    const chunk = state.prepare(source, name);
    let fn = -1;
    try {
      const s = core.api.sym;
      state.invoke(core.currentL, (L) => (core.pushRegistry(L, chunk), 1), () => 0, {
        grants,
        collect: (L, first, count) => {
          if (count < 1 || s.lua_type(L, first) !== LuaType.FUNCTION) {
            const got = count < 1 ? "nothing" : core.typeName(s.lua_type(L, first));
            throw new NotAPolicyError(`${name}: a policy must return a decision function, got ${got}`);
          }
          s.lua_pushvalue(L, first);
          fn = core.ref(L);
          return [];
        },
      });
      const handle = { runOptions: { grants } } as PolicyHandle;
      const info = this.#policyMeta(chunk, fn, handle);
      handle.targetRef = info.ref;
      core.keepWith(info, core.keptSince(before));
      return handle;
    } finally {
      core.unref(chunk);
      if (fn >= 0) core.unref(fn);
    }
  }

  // The metatable holds the chunk and the function from here on; it stays in Lua while `handle`
  // lives, and `handle` while its Policy does (a policy replaced under its name, or dropped by a
  // caller, lets it go once collected).
  #policyMeta(chunk: number, fn: number, handle: PolicyHandle): HandleInfo {
    const core = this.#state.core;
    return this.#kernelResult("policy_meta", 3, (L) => {
      core.pushRegistry(L, chunk);
      core.pushRegistry(L, fn);
      if (this.#dataRef >= 0) core.pushRegistry(L, this.#dataRef);
      else core.api.sym.lua_pushnil(L);
    }, (L) => registerHandle(core, L, handle, "table"));
  }

  /**
   * Loads every `*.lua` file under `dir` (not `*_test.lua`) as a module named by its path
   * (`lib/util.lua` is `lib.util`), which `require` resolves within this bundle only; each module
   * that returns a function is also compiled as a policy. Returns the policies by name.
   */
  load(dir: string): Map<string, Policy> {
    const files = listLuaFiles(dir);
    for (const [module, path] of files) this.#modules.set(module, Deno.readTextFileSync(path));
    this.#state.setModules(this.#modules);
    const loaded = new Map<string, Policy>();
    for (const [module] of files) {
      try {
        loaded.set(module, this.compile(this.#modules.get(module)!, { name: module }));
      } catch (error) {
        if (!(error instanceof NotAPolicyError)) throw error;
      }
    }
    return loaded;
  }

  /** The policy compiled or loaded under `name`. */
  policy(name: string): Policy | undefined {
    return this.#policies.get(name);
  }

  /** The names of every policy. */
  get policies(): string[] {
    return [...this.#policies.keys()];
  }

  /** Evaluates `policy` against `input`; see {@linkcode Policy.evaluate}. */
  evaluate(policy: Policy, input: unknown): Decision {
    const id = this.#ids.next();
    const handle = this.#handles.get(policy);
    const state = this.#state;
    let verdict;
    let error: Error | undefined;
    try {
      if (!handle) throw new LuaStateError("this policy belongs to another engine");
      const values = state.decide(state.core.currentL, handle.targetRef, input, handle.runOptions);
      verdict = readVerdict(values);
      if (verdict.errors.length > 0) error = verdictError(verdict.errors[0]);
    } catch (caught) {
      error = caught instanceof Error ? caught : new LuaError(String(caught));
      verdict = { allow: false, reasons: [], errors: [errorLine(caught)], value: undefined };
    }
    const usage = state.usageView;
    const calls = state.calls;
    const decision: Decision = {
      allow: verdict.allow,
      reasons: verdict.reasons,
      errors: verdict.errors,
      value: verdict.value,
      usage: {
        instructions: usage.instructions,
        memory: usage.memory,
        cpuMs: usage.cpuMs,
        output: usage.output,
        timeMs: state.wallMs,
      },
      id,
      policy: policy.name,
      calls: calls.length === 0 ? NO_CALLS : calls.slice(),
    };
    if (error) decision.error = error;
    this.#log?.record(decision, input);
    return decision;
  }

  /** Flushes the decision log. */
  flush(): void {
    this.#log?.flush();
  }

  /** Closes the engine and its decision log (idempotent). */
  close(): void {
    if (this.#state.core.closed) return;
    this.#log?.close();
    this.#state.close();
  }

  /** Same as {@linkcode PolicyEngine.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

function listLuaFiles(dir: string): Map<string, string> {
  const found = new Map<string, string>();
  const walk = (path: string, prefix: string) => {
    const entries = [...Deno.readDirSync(path)].sort((a, b) => a.name.localeCompare(b.name));
    for (const entry of entries) {
      const full = `${path}/${entry.name}`;
      if (entry.isDirectory) walk(full, `${prefix}${entry.name}.`);
      else if (entry.isFile && entry.name.endsWith(".lua") && !entry.name.endsWith("_test.lua")) {
        found.set(`${prefix}${entry.name.slice(0, -4)}`, full);
      }
    }
  };
  walk(dir.replace(/\/+$/, ""), "");
  return found;
}
