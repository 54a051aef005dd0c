/**
 * `PolicyPool`: the policy engine across Deno Workers, for throughput on several cores and for a
 * hard deadline on every decision.
 *
 * Each worker builds its own `PolicyEngine` from the same options. Requests wait in a bounded queue
 * and are sent to the workers in batches without waiting for replies (a small in-flight window per
 * worker), so the workers never idle while there is work. Inputs travel encoded for the worker's data
 * builder (`DataEncoder.chunk`: no JSON to parse or object to walk there) when the builder takes them,
 * in shared memory that is written again once the worker has answered (no buffer to allocate,
 * copy or collect per batch), else as JSON or structured-cloned. A watchdog per worker fails closed any
 * request that runs past `timeoutMs` (e.g. stuck in a host function that never returns, which the Lua
 * limits cannot interrupt), terminates that worker and starts a replacement.
 *
 * @module
 */

import { monotonicMs } from "../ffi/clock.ts";
import { type ChunkBlock, ChunkBlocks, DataEncoder } from "../lua/data_program.ts";
import { DEFAULT_PLAIN_LIMITS } from "../lua/plain_data.ts";
import { LuaError, LuaLimitError, LuaMemoryError, LuaStateError, LuaSyntaxError } from "../lua/errors.ts";
import { PermissionDeniedError } from "../lua/errors.ts";
import { type Decision, DecisionIds } from "./decision.ts";
import { DecisionLog, type DecisionLogOptions } from "./decision_log.ts";
import { NotAPolicyError } from "./engine.ts";
import { DEFAULT_LIMITS, type Limits } from "./limits.ts";
import {
  ALLOWED,
  type BatchItem,
  type BatchMessage,
  type DecisionExtras,
  inputTag,
  RESULT_SLOTS,
  type ResultsMessage,
  VALUE_TRUE,
  type WireError,
  type WorkerInit,
} from "./pool_worker.ts";

/** A policy given to the pool as source: the Lua chunk, optionally with its own permissions. */
export type PoolPolicySource = string | { source: string; permissions?: Iterable<string> };

/** Options of a {@linkcode PolicyPool}. */
export interface PolicyPoolOptions {
  /** Number of workers (default `navigator.hardwareConcurrency`). */
  workers?: number;
  /** Policies by name, as Lua source (`{ name: source }` or `{ name: { source, permissions } }`). */
  policies?: Record<string, PoolPolicySource>;
  /** A bundle directory, loaded in every worker with `PolicyEngine.load`. */
  dir?: string | URL;
  /** The data document: structured-cloned into every worker, deep-frozen there once. */
  data?: unknown;
  /** Per-evaluation limits (as for `PolicyEngine`). */
  limits?: Partial<Limits>;
  /** Permissions granted to every policy. */
  permissions?: Iterable<string>;
  /**
   * A module whose default export is a record of capabilities (functions or `{ fn, permission }`),
   * imported inside each worker: functions cannot cross threads, so the pool takes the module that
   * defines them. A relative path is resolved against the current directory.
   */
  capabilitiesModule?: string | URL;
  /** Path or soname of the Lua library. */
  library?: string;
  /** Requests that may wait for a worker before `evaluate` rejects with `PoolOverloadedError` (default 1000). */
  maxQueue?: number;
  /** Milliseconds a request may run in its worker before it fails closed and the worker is replaced (default max(1000, 10 × cpuMs)). */
  timeoutMs?: number;
  /**
   * Requests sent to a worker ahead of its replies (default 1024), in batches of up to half that. A
   * message between threads costs some 14 µs of CPU on each side, so larger batches spread it over
   * more decisions; a worker still replies every 10 ms within a batch.
   */
  window?: number;
  /** Logs every decision (on the calling thread) as JSON Lines; see `PolicyEngine`. */
  decisionLog?: DecisionLogOptions;
}

/** `evaluate` was called while the queue was full: shed load or retry later. */
export class PoolOverloadedError extends Error {
  /** The queue's bound. */
  readonly maxQueue: number;
  /**
   * Creates a PoolOverloadedError.
   * @param maxQueue The queue's bound.
   */
  constructor(maxQueue: number) {
    super(`the policy pool is overloaded: ${maxQueue} requests are already queued`);
    this.name = "PoolOverloadedError";
    this.maxQueue = maxQueue;
  }
}

/** A request ran past the pool's deadline; its decision failed closed and its worker was replaced. */
export class PoolTimeoutError extends Error {
  /** The policy that did not decide. */
  readonly policy: string;
  /** The deadline, in milliseconds. */
  readonly timeoutMs: number;
  /**
   * Creates a PoolTimeoutError.
   * @param policy The policy that did not decide.
   * @param timeoutMs The deadline, in milliseconds.
   */
  constructor(policy: string, timeoutMs: number) {
    super(`policy '${policy}' did not decide within ${timeoutMs} ms; its worker was terminated and replaced`);
    this.name = "PoolTimeoutError";
    this.policy = policy;
    this.timeoutMs = timeoutMs;
  }
}

/** A worker died (an uncaught error outside any evaluation); its requests failed closed. */
export class PoolWorkerError extends Error {
  /**
   * Creates a PoolWorkerError.
   * @param message What happened.
   */
  constructor(message: string) {
    super(message);
    this.name = "PoolWorkerError";
  }
}

/** The pool is closed (or closing) and takes no more requests. */
export class PoolClosedError extends Error {
  /** A new error saying the pool is closed. */
  constructor() {
    super("the policy pool is closed");
    this.name = "PoolClosedError";
  }
}

interface Request {
  seq: number;
  name: string;
  input: unknown;
  /** The block holding the input encoded for the worker's data builder (`DataEncoder.chunk`), when it was. */
  block: ChunkBlock | undefined;
  /** Where that chunk starts and ends in its block. */
  chunkStart: number;
  chunkEnd: number;
  /** Else `[seq, name, input]` as JSON; absent for inputs JSON cannot carry. */
  wire: string | undefined;
  /** Else a structured clone of the input. */
  clone: unknown;
  resolve: (decision: Decision) => void;
  reject: (error: unknown) => void;
  started: number;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  /** Sent and not yet answered, in the order sent (the worker answers in that order). */
  inFlight: Map<number, Request>;
  /** When the worker last showed progress (a reply, or being sent work while idle). */
  progressAt: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  dead: boolean;
  /** Called when the worker, asked to close, has closed its engine and given back its memory. */
  closed?: () => void;
}

/** How long `close` waits for a worker to give back its memory before terminating it anyway. */
const CLOSE_GRACE_MS = 1000;

/** Requests in flight per worker when the options do not say (see `PolicyPoolOptions.window`). */
const DEFAULT_WINDOW = 1024;

const ERRORS: Record<string, (w: WireError) => Error> = {
  LuaError: (w) => new LuaError(w.message),
  LuaSyntaxError: (w) => new LuaSyntaxError(w.message),
  LuaLimitError: (w) => new LuaLimitError((w.limit ?? "instructions") as LuaLimitError["limit"], w.message),
  LuaMemoryError: (w) => new LuaMemoryError(w.message),
  PermissionDeniedError: (w) => new PermissionDeniedError(w.capability ?? "?", w.permission),
  LuaStateError: (w) => new LuaStateError(w.message),
  NotAPolicyError: (w) => new NotAPolicyError(w.message),
  TypeError: (w) => new TypeError(w.message),
  RangeError: (w) => new RangeError(w.message),
};

/** Rebuilds an error sent by a worker as the same class (or a `LuaError` named alike). */
export function reviveError(wire: WireError): Error {
  const make = ERRORS[wire.name];
  if (make) return make(wire);
  const error = new LuaError(wire.message);
  error.name = wire.name;
  return error;
}

// The inputs of every pool of this thread are encoded by one encoder into shared blocks.
let chunkEncoder: DataEncoder | undefined;
const chunkBlocks = new ChunkBlocks();

// A worker's message for `requests`: encoded inputs as spans of the shared blocks they lie in;
// else all of them in JSON, or each in JSON or cloned.
function batchMessage(requests: Request[], encoded: boolean): BatchMessage {
  if (encoded) {
    const seqs = requests.map((r) => r.seq);
    const name = requests[0].name;
    const names = requests.every((r) => r.name === name) ? name : requests.map((r) => r.name);
    return { type: "batch", ...chunkSpans(requests), seqs, names };
  }
  if (requests.every((r) => r.wire !== undefined)) {
    return { type: "batch", json: `[${requests.map((r) => r.wire).join(",")}]` };
  }
  const items = requests.map((r): BatchItem =>
    r.wire !== undefined ? JSON.parse(r.wire) : [r.seq, r.name, r.clone]
  );
  return { type: "batch", items };
}

// The chunks of `requests` as runs of chunks laid end to end in one block, as requests made one
// after the other are.
function chunkSpans(requests: Request[]): Pick<BatchMessage, "blocks" | "spans"> {
  const blocks: SharedArrayBuffer[] = [];
  const spans: number[] = [];
  let last: Request | undefined;
  for (const request of requests) {
    const block = request.block!;
    if (last !== undefined && last.block === block && last.chunkEnd === request.chunkStart) {
      spans[spans.length - 1] = request.chunkEnd;
    } else {
      blocks.push(block.buffer);
      spans.push(request.chunkStart, request.chunkEnd);
    }
    last = request;
  }
  return { blocks, spans };
}

// The input's chunk is read no more: its block may be written again.
function releaseChunk(request: Request): void {
  if (request.block === undefined) return;
  chunkBlocks.release(request.block);
  request.block = undefined;
}

/**
 * Whether `value` survives `JSON.stringify` / `JSON.parse` unchanged as the engine sees it: plain
 * objects and arrays of strings, booleans, finite numbers (not -0), null and undefined. Symbol keys
 * do not count: JSON drops them, and the engine's copy never reads them either. Messages
 * between the pool and its workers travel as JSON when they can (several times cheaper than
 * structured cloning), else structured-cloned.
 */
export function jsonSafe(value: unknown, depth = 0, exact = false): boolean {
  switch (typeof value) {
    case "string":
    case "boolean":
      return true;
    case "undefined":
      // JSON turns undefined into null in arrays, and drops it in objects: the same nil for Lua,
      // not the same value for a decision's `value` (`exact`).
      return !exact;
    case "number":
      return Number.isFinite(value) && !Object.is(value, -0);
    case "object": {
      if (value === null) return true;
      if (depth > 64) return false;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) if (!jsonSafe(value[i], depth + 1, exact)) return false;
        return true;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) return false;
      for (const key in value) {
        if (!jsonSafe((value as Record<string, unknown>)[key], depth + 1, exact)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

function toModuleUrl(module: string | URL): string {
  if (module instanceof URL) return module.href;
  if (/^[a-z][a-z0-9+.-]*:/i.test(module)) return module;
  const base = new URL(`file://${Deno.cwd().replace(/\/?$/, "/")}`);
  return new URL(module, base).href;
}

function toPath(dir: string | URL): string {
  if (dir instanceof URL || dir.startsWith("file:")) return decodeURIComponent(new URL(dir).pathname);
  return dir;
}

function positiveInteger(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new RangeError(`${what} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

/**
 * Policies evaluated across Deno Workers, with the same decisions as a single `PolicyEngine`.
 *
 * Workers inherit the permissions of the process: run with `--allow-ffi --allow-env --allow-read`
 * (and whatever the capabilities module needs).
 *
 * @example
 * ```ts
 * import { PolicyPool } from "./pool.ts";
 * await using pool = await PolicyPool.create({
 *   workers: 2,
 *   policies: { admin: `return function(input) return input.role == "admin", "admins only" end` },
 * });
 * const decision = await pool.evaluate("admin", { role: "dev" });
 * console.log(decision.allow, decision.reasons); // false ["admins only"]
 * ```
 */
export class PolicyPool implements AsyncDisposable {
  /** Resolves once every worker has compiled the policies; rejects with the first start-up error. */
  readonly ready: Promise<void>;
  readonly #size: number;
  readonly #init: WorkerInit;
  readonly #maxQueue: number;
  readonly #timeoutMs: number;
  readonly #window: number;
  readonly #batch: number;
  readonly #slots: Slot[] = [];
  readonly #log: DecisionLog | undefined;
  readonly #ids = new DecisionIds("pool-");
  #queue: Request[] = [];
  #head = 0;
  #seq = 0;
  #inFlight = 0;
  #scheduled = false;
  #closed = false;
  #terminated = false;
  #policies: string[] = [];
  #failure: Error | undefined;
  #drained: (() => void) | undefined;
  readonly #whenTerminated: (() => void)[] = [];

  /** Starts the workers; use {@linkcode PolicyPool.create} to also wait until they are ready. */
  constructor(options: PolicyPoolOptions = {}) {
    this.#size = positiveInteger(
      options.workers ?? Math.max(1, navigator.hardwareConcurrency || 1),
      "workers",
    );
    this.#maxQueue = positiveInteger(options.maxQueue ?? 1000, "maxQueue");
    this.#window = positiveInteger(options.window ?? DEFAULT_WINDOW, "window");
    this.#batch = Math.max(1, Math.ceil(this.#window / 2));
    const cpuMs = options.limits?.cpuMs ?? DEFAULT_LIMITS.cpuMs;
    this.#timeoutMs = positiveInteger(options.timeoutMs ?? Math.max(1000, 10 * cpuMs), "timeoutMs");
    const policies: WorkerInit["policies"] = {};
    for (const [name, policy] of Object.entries(options.policies ?? {})) {
      if (typeof policy === "string") policies[name] = { source: policy };
      else if (policy && typeof policy.source === "string") {
        policies[name] = {
          source: policy.source,
          ...(policy.permissions ? { permissions: [...policy.permissions] } : {}),
        };
      } else throw new TypeError(`policy '${name}' must be Lua source or { source, permissions }`);
    }
    this.#init = {
      policies,
      dir: options.dir === undefined ? undefined : toPath(options.dir),
      data: options.data,
      limits: options.limits,
      permissions: options.permissions ? [...options.permissions] : undefined,
      capabilitiesModule: options.capabilitiesModule === undefined
        ? undefined
        : toModuleUrl(options.capabilitiesModule),
      library: options.library,
    };
    this.#log = options.decisionLog ? new DecisionLog(options.decisionLog) : undefined;
    const starts: Promise<void>[] = [];
    for (let i = 0; i < this.#size; i++) starts.push(this.#start(i));
    this.ready = Promise.all(starts).then(
      () => {},
      async (error) => {
        this.#failure = error;
        for (const request of this.#takeAll()) request.reject(error);
        await this.close();
        throw error;
      },
    );
    // Unobserved start-up failures are reported by evaluate(); do not crash the process here.
    this.ready.catch(() => {});
  }

  /**
   * Starts a pool and waits until every worker is ready. Rejects with the first start-up error (a
   * `LuaSyntaxError` naming the policy and line, a missing capabilities module, ...).
   */
  static async create(options: PolicyPoolOptions = {}): Promise<PolicyPool> {
    const pool = new PolicyPool(options);
    await pool.ready;
    return pool;
  }

  /** The number of workers. */
  get size(): number {
    return this.#size;
  }

  /** The names of the policies every worker holds (empty until ready). */
  get policies(): string[] {
    return [...this.#policies];
  }

  /** Requests waiting for a worker (including those about to be sent on the next microtask). */
  get queued(): number {
    return this.#queue.length - this.#head;
  }

  /** Requests sent to workers and not yet answered. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** The deadline of one request in its worker, in milliseconds. */
  get timeoutMs(): number {
    return this.#timeoutMs;
  }

  #start(index: number): Promise<void> {
    const worker = new Worker(new URL("./pool_worker.ts", import.meta.url).href, { type: "module" });
    const slot: Slot = {
      worker,
      ready: false,
      inFlight: new Map(),
      progressAt: 0,
      timer: undefined,
      dead: false,
    };
    this.#slots[index] = slot;
    return new Promise<void>((resolve, reject) => {
      worker.onmessage = (event: MessageEvent) => {
        const message = event.data as {
          type: string;
          policies?: string[];
          error?: WireError;
        };
        if (message.type === "results") {
          this.#onResults(slot, message as ResultsMessage);
        } else if (message.type === "ready") {
          slot.ready = true;
          this.#policies = message.policies!;
          resolve();
          this.#schedule();
        } else if (message.type === "closed") {
          slot.closed?.();
        } else if (message.type === "failed") {
          slot.dead = true;
          worker.terminate();
          reject(reviveError(message.error!));
        }
      };
      worker.onerror = (event: ErrorEvent) => {
        event.preventDefault();
        const error = new PoolWorkerError(`a pool worker failed: ${event.message}`);
        if (!slot.ready) {
          slot.dead = true;
          worker.terminate();
          reject(error);
          return;
        }
        this.#replace(slot, index, (request) => this.#failClosed(request, error));
      };
      worker.postMessage({ type: "init", options: this.#init });
    });
  }

  /**
   * Evaluates policy `name` against `input` in a worker. Resolves with the same `Decision` a single
   * engine gives (fail-closed: errors and limits deny), or a fail-closed decision with
   * `PoolTimeoutError` when the worker did not answer within `timeoutMs`. Rejects only with
   * `PoolOverloadedError` (queue full), `PoolClosedError`, a start-up error of the pool, or a
   * `DataCloneError` for an input that is not structured-cloneable (or the error of a getter that
   * threw while it was read). The input is read when `evaluate` is called, so changing it afterwards
   * does not change the decision: plain data is encoded for the worker's data builder as a single
   * engine would copy it, what the builder does not take goes as JSON when JSON carries it
   * unchanged, anything else structured-cloned.
   */
  evaluate(name: string, input: unknown): Promise<Decision> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#closed) return Promise.reject(new PoolClosedError());
    if (typeof name !== "string") return Promise.reject(new TypeError("the policy name must be a string"));
    if (this.#queue.length - this.#head >= this.#maxQueue + this.#room()) {
      return Promise.reject(new PoolOverloadedError(this.#maxQueue));
    }
    // The input is captured now, as a single engine would read it now: later changes do not count.
    const seq = ++this.#seq;
    let block: ChunkBlock | undefined;
    let chunkStart = -1;
    let wire: string | undefined;
    let clone: unknown;
    try {
      if (typeof input === "object" && input !== null) {
        chunkStart = (chunkEncoder ??= DataEncoder.detached()).chunk(
          input,
          DEFAULT_PLAIN_LIMITS,
          chunkBlocks,
          inputTag(seq),
        );
      }
      if (chunkStart >= 0) block = chunkBlocks.current;
      else {
        if (jsonSafe(input)) wire = `[${seq},${JSON.stringify(name)},${JSON.stringify(input) ?? "null"}]`;
        else clone = structuredClone(input);
      }
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise<Decision>((resolve, reject) => {
      this.#queue.push({
        seq,
        name,
        input,
        block,
        chunkStart,
        chunkEnd: block === undefined ? -1 : block.end,
        wire,
        clone,
        resolve,
        reject,
        started: monotonicMs(),
      });
      this.#schedule();
    });
  }

  /** Free places in the ready workers' windows: requests about to be sent do not count as queued. */
  #room(): number {
    let room = 0;
    for (const slot of this.#slots) {
      if (slot.ready && !slot.dead) room += this.#window - slot.inFlight.size;
    }
    return room;
  }

  /** Dispatches on the next microtask, so that requests made in the same tick travel together. */
  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      this.#dispatch();
    });
  }

  #dispatch(): void {
    if (this.#terminated) return;
    let waiting = this.#queue.length - this.#head;
    if (waiting === 0) return;
    const ready = this.#slots.filter((s) => s.ready && !s.dead && s.inFlight.size < this.#window);
    ready.sort((a, b) => a.inFlight.size - b.inFlight.size);
    for (let i = 0; i < ready.length && waiting > 0; i++) {
      const slot = ready[i];
      const share = Math.ceil(waiting / (ready.length - i));
      const wanted = Math.min(this.#batch, share);
      const n = Math.min(this.#window - slot.inFlight.size, wanted);
      // A busy worker waits for room for a whole batch: fewer, fuller messages (each costs tens of µs).
      if (n <= 0 || (n < wanted && slot.inFlight.size > 0)) continue;
      const batch = this.#take(n);
      waiting -= batch.length;
      this.#send(slot, batch);
    }
    // What is left waits for a reply (or a worker becoming ready), which dispatches again.
  }

  #take(n: number): Request[] {
    const batch = this.#queue.slice(this.#head, this.#head + n);
    this.#head += batch.length;
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    return batch;
  }

  // the requests not sent yet, to be rejected
  #takeAll(): Request[] {
    const rest = this.#queue.slice(this.#head);
    this.#queue = [];
    this.#head = 0;
    for (const request of rest) releaseChunk(request);
    return rest;
  }

  #send(slot: Slot, batch: Request[]): void {
    try {
      // one message per run of encoded inputs, and one per run of the others
      for (let start = 0; start < batch.length;) {
        const encoded = batch[start].block !== undefined;
        let end = start + 1;
        while (end < batch.length && (batch[end].block !== undefined) === encoded) end++;
        slot.worker.postMessage(batchMessage(batch.slice(start, end), encoded));
        start = end;
      }
    } catch (error) {
      // Cannot happen for inputs that were cloned already; reject rather than lose the requests.
      for (const request of batch) {
        releaseChunk(request);
        request.reject(error);
      }
      this.#settle();
      return;
    }
    if (slot.inFlight.size === 0) slot.progressAt = monotonicMs();
    for (const request of batch) slot.inFlight.set(request.seq, request);
    this.#inFlight += batch.length;
    this.#arm(slot);
  }

  #arm(slot: Slot): void {
    if (slot.timer !== undefined || slot.inFlight.size === 0) return;
    const wait = Math.max(0, slot.progressAt + this.#timeoutMs - monotonicMs());
    slot.timer = setTimeout(() => {
      slot.timer = undefined;
      if (slot.dead || slot.inFlight.size === 0) return;
      if (monotonicMs() - slot.progressAt >= this.#timeoutMs) this.#timeout(slot);
      else this.#arm(slot);
    }, wait + 1);
  }

  #onResults(slot: Slot, results: ResultsMessage): void {
    if (slot.dead) return;
    slot.progressAt = monotonicMs();
    const numbers = results.numbers;
    const ids = results.ids.split(" ");
    const extras: DecisionExtras[] = results.json !== undefined
      ? JSON.parse(results.json)
      : results.extras ?? [];
    for (let i = 0; i < ids.length; i++) {
      const at = i * RESULT_SLOTS;
      const request = slot.inFlight.get(numbers[at]);
      if (!request) continue;
      slot.inFlight.delete(numbers[at]);
      this.#inFlight--;
      const flags = numbers[at + 1];
      const extra = numbers[at + 7] < 0 ? undefined : extras[numbers[at + 7]];
      const decision: Decision = {
        allow: (flags & ALLOWED) !== 0,
        reasons: extra ? extra[0] : [],
        errors: extra ? extra[1] : [],
        value: extra ? (extra[2] === null ? undefined : extra[2]) : (flags & VALUE_TRUE) !== 0,
        usage: {
          instructions: numbers[at + 2],
          memory: numbers[at + 3],
          cpuMs: numbers[at + 4],
          output: numbers[at + 5],
          timeMs: numbers[at + 6],
        },
        id: ids[i] === "" ? this.#ids.next() : ids[i],
        policy: request.name,
        calls: extra ? extra[3] : [],
      };
      if (extra && extra[4] !== 0) decision.error = reviveError(extra[4]);
      releaseChunk(request);
      this.#log?.record(decision, request.input);
      request.resolve(decision);
    }
    if (slot.inFlight.size === 0 && slot.timer !== undefined) {
      clearTimeout(slot.timer);
      slot.timer = undefined;
    }
    this.#settle();
    this.#dispatch();
  }

  #failClosed(request: Request, error: Error): void {
    const decision: Decision = {
      allow: false,
      reasons: [],
      errors: [`${error.name}: ${error.message}`],
      value: undefined,
      usage: {
        instructions: 0,
        memory: 0,
        cpuMs: 0,
        output: 0,
        timeMs: monotonicMs() - request.started,
      },
      id: this.#ids.next(),
      policy: request.name,
      calls: [],
      error,
    };
    releaseChunk(request);
    this.#log?.record(decision, request.input);
    request.resolve(decision);
  }

  /** The request at the head of `slot` ran past the deadline: fail it closed, replace the worker. */
  #timeout(slot: Slot): void {
    const index = this.#slots.indexOf(slot);
    const [first] = slot.inFlight.values();
    this.#replace(slot, index, (request) => {
      if (request === first) this.#failClosed(request, new PoolTimeoutError(request.name, this.#timeoutMs));
      else this.#requeue(request);
    });
  }

  #requeue(request: Request): void {
    // Back to the front of the queue: these never started (the worker runs requests in order).
    this.#queue.splice(this.#head, 0, request);
  }

  #replace(slot: Slot, index: number, handle: (request: Request) => void): void {
    slot.dead = true;
    slot.ready = false;
    if (slot.timer !== undefined) clearTimeout(slot.timer);
    slot.timer = undefined;
    slot.worker.terminate();
    // a close waiting for this worker's answer: there will be none
    slot.closed?.();
    const orphans = [...slot.inFlight.values()];
    slot.inFlight.clear();
    this.#inFlight -= orphans.length;
    // Requeued requests go back in their original order.
    for (let i = orphans.length - 1; i >= 0; i--) handle(orphans[i]);
    if (!this.#terminated) {
      this.#start(index).catch((error) => {
        // A replacement that cannot start leaves the pool without that worker; with none left,
        // everything waiting fails.
        if (this.#slots.every((s) => s.dead)) {
          this.#failure = error instanceof Error ? error : new PoolWorkerError(String(error));
          for (const request of this.#takeAll()) request.reject(this.#failure);
          this.#settle();
        }
      });
    }
    this.#settle();
    this.#schedule();
  }

  #settle(): void {
    if (this.#drained && this.#inFlight === 0 && this.#queue.length - this.#head === 0) {
      const done = this.#drained;
      this.#drained = undefined;
      done();
    }
  }

  /**
   * Stops taking requests, lets the queued and in-flight ones finish (each within `timeoutMs`), then
   * has each worker close its engine and give back its memory, and terminates the workers. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) {
      if (!this.#terminated) await new Promise<void>((resolve) => this.#whenTerminated.push(resolve));
      return;
    }
    this.#closed = true;
    if (this.#inFlight > 0 || this.#queue.length - this.#head > 0) {
      if (this.#slots.some((s) => !s.dead)) {
        await new Promise<void>((resolve) => (this.#drained = resolve));
      } else {
        for (const request of this.#takeAll()) request.reject(new PoolClosedError());
      }
    }
    this.#terminated = true;
    await Promise.all(this.#slots.map((slot) => this.#release(slot)));
    this.#log?.close();
    for (const resolve of this.#whenTerminated.splice(0)) resolve();
  }

  // Terminates a worker, a live one once it has closed its engine and unmapped its regions (or after
  // CLOSE_GRACE_MS): a terminated isolate's Lua memory and mapped regions stay with the process.
  async #release(slot: Slot): Promise<void> {
    if (slot.timer !== undefined) clearTimeout(slot.timer);
    slot.timer = undefined;
    if (!slot.dead && slot.ready) {
      await new Promise<void>((resolve) => {
        const grace = setTimeout(resolve, CLOSE_GRACE_MS);
        slot.closed = () => {
          clearTimeout(grace);
          resolve();
        };
        slot.worker.postMessage({ type: "close" });
      });
    }
    slot.dead = true;
    slot.worker.terminate();
  }

  /** Same as {@linkcode PolicyPool.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
