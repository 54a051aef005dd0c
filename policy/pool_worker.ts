/**
 * The worker side of `PolicyPool`: one `PolicyEngine` per Deno Worker, built from the pool's
 * options, evaluating batches of requests and sending the decisions back as plain data.
 *
 * Not meant to be imported directly: `PolicyPool` starts it with
 * `new Worker(new URL("./pool_worker.ts", import.meta.url), { type: "module" })`.
 *
 * Protocol (messages are structured-cloned; a results message transfers its numbers):
 * - pool → worker `{ type: "init", options: WorkerInit }`, answered by `{ type: "ready", policies }`
 *   or `{ type: "failed", error }`;
 * - pool → worker a {@linkcode BatchMessage}, answered by one or more results messages (see
 *   {@linkcode ResultsMessage}) in the order received (a long batch is answered in parts, so the
 *   pool's watchdog sees progress request by request).
 *
 * @module
 */

import { monotonicMs } from "../ffi/clock.ts";
import { type EncodedData, splitChunks } from "../lua/data_program.ts";
import { LuaError } from "../lua/errors.ts";
import type { Decision } from "./decision.ts";
import { PolicyEngine } from "./engine.ts";
import { type Capability, releaseTemplates } from "./guarded_state.ts";
import type { Limits } from "./limits.ts";
import { jsonSafe } from "./pool.ts";

/** What a worker needs to build its engine (all of it structured-cloneable). */
export interface WorkerInit {
  /** Policies by name: Lua source and extra permissions. */
  policies: Record<string, { source: string; permissions?: string[] }>;
  /** A bundle directory loaded with `PolicyEngine.load`. */
  dir?: string;
  /** The data document. */
  data?: unknown;
  /** Per-evaluation limits. */
  limits?: Partial<Limits>;
  /** Permissions of every policy. */
  permissions?: string[];
  /** URL of a module whose default export is a record of capabilities. */
  capabilitiesModule?: string;
  /** The Lua library. */
  library?: string;
}

/** One request of a batch: `[seq, policyName, input]`. */
export type BatchItem = [number, string, unknown];

/**
 * Requests for a worker, in one of three forms: inputs encoded for the data builder
 * (`DataEncoder.chunk`, in runs laid end to end in shared `blocks`, from `spans[2k]` to
 * `spans[2k + 1]` in `blocks[k]`, with each one's seq in `seqs` and its policy in `names`), or
 * {@linkcode BatchItem}s as JSON (`json`) or structured-cloned (`items`).
 */
export interface BatchMessage {
  type: "batch";
  blocks?: SharedArrayBuffer[];
  spans?: number[];
  seqs?: number[];
  /** The policy of every encoded input, or of each (a pair per input cost 0.1 µs more to clone). */
  names?: string | string[];
  json?: string;
  items?: BatchItem[];
}

/** An error as plain data, revived on the pool's side as the same class. */
export interface WireError {
  name: string;
  message: string;
  limit?: string;
  capability?: string;
  permission?: string;
}

/**
 * Slots per decision in {@linkcode ResultsMessage.numbers}: its seq, its flags (`ALLOWED`,
 * `VALUE_TRUE`), its usage (instructions, memory, cpuMs, output, timeMs) and the index of its
 * extras (-1: none).
 */
export const RESULT_SLOTS = 8;
/** The decision allows. */
export const ALLOWED = 1;
/** A decision without extras returned `true` as its value (else `false`). */
export const VALUE_TRUE = 2;

/**
 * What a decision has beyond its verdict and usage: `[reasons, errors, value (undefined as null),
 * calls, error or 0]`. Sent only for a decision that has any, or a value that is not a boolean.
 */
export type DecisionExtras = [string[], string[], unknown, Decision["calls"], WireError | 0];

/**
 * Decisions as sent back to the pool. Most decisions are a verdict and five counters, which travel
 * as numbers (read without parsing); the rest as extras, in JSON when their values allow it.
 */
export interface ResultsMessage {
  type: "results";
  /** {@linkcode RESULT_SLOTS} numbers per decision. */
  numbers: Float64Array;
  /** The decisions' ids joined by spaces ("" for one the pool names). */
  ids: string;
  /** The extras, as JSON... */
  json?: string;
  /** ...or structured-cloned. */
  extras?: DecisionExtras[];
}

/** Replies are sent at the end of each batch, and within it every this many milliseconds. */
const FLUSH_MS = 10;

/** An error as plain data. */
export function wireError(error: unknown): WireError {
  if (!(error instanceof Error)) return { name: "Error", message: String(error) };
  const wire: WireError = { name: error.name, message: error.message };
  const extra = error as Error & { limit?: unknown; capability?: unknown; permission?: unknown };
  if (typeof extra.limit === "string") wire.limit = extra.limit;
  if (typeof extra.capability === "string") wire.capability = extra.capability;
  if (typeof extra.permission === "string") wire.permission = extra.permission;
  return wire;
}

async function loadCapabilities(url: string | undefined): Promise<Record<string, Capability> | undefined> {
  if (url === undefined) return undefined;
  const module = await import(url);
  const capabilities = module.default;
  if (capabilities === null || typeof capabilities !== "object") {
    throw new TypeError(
      `capabilitiesModule ${url} must have a default export: a record of capabilities (functions or { fn, permission })`,
    );
  }
  return capabilities as Record<string, Capability>;
}

async function build(init: WorkerInit): Promise<PolicyEngine> {
  const capabilities = await loadCapabilities(init.capabilitiesModule);
  const engine = new PolicyEngine({
    data: init.data,
    limits: init.limits,
    permissions: init.permissions,
    capabilities,
    library: init.library,
  });
  try {
    if (init.dir !== undefined) engine.load(init.dir);
    for (const [name, { source, permissions }] of Object.entries(init.policies)) {
      engine.compile(source, { name, permissions });
    }
    return engine;
  } catch (error) {
    engine.close();
    throw error;
  }
}

// The worker global scope, typed loosely so that this module type-checks with the window lib too.
const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent) => void) | null;
  postMessage(message: unknown, transfer?: Transferable[]): void;
};

let engine: PolicyEngine | undefined;

/**
 * The tag of the chunk that carries request `seq`'s input ({@linkcode EncodedData.tag}): the
 * number spread over 32 bits, so that it is unlike the small numbers a program holds where a
 * chunk written over would have had its header.
 */
export function inputTag(seq: number): number {
  return Math.imul(seq, 0x9e3779b1);
}

// The input of a request whose chunk carried another request's tag: the pool took its memory back
// too early (a bug), so the bytes are not its input.
const WRITTEN_OVER: unique symbol = Symbol("written over");

function failedClosed(name: string, message: string): Decision {
  return {
    allow: false,
    reasons: [],
    errors: [`LuaError: ${message}`],
    value: undefined,
    usage: { instructions: 0, memory: 0, cpuMs: 0, output: 0, timeMs: 0 },
    id: "",
    policy: name,
    calls: [],
    error: new LuaError(message),
  };
}

function hasExtras(d: Decision): boolean {
  return d.reasons.length > 0 || d.errors.length > 0 || d.calls.length > 0 || d.error !== undefined ||
    typeof d.value !== "boolean";
}

/** Sends decisions as a {@linkcode ResultsMessage}. */
function send(seqs: number[], decisions: Decision[]): void {
  const numbers = new Float64Array(decisions.length * RESULT_SLOTS);
  const ids: string[] = [];
  const extras: DecisionExtras[] = [];
  let json = true;
  for (let i = 0; i < decisions.length; i++) {
    const d = decisions[i];
    const u = d.usage;
    const at = i * RESULT_SLOTS;
    const plain = !hasExtras(d);
    numbers[at] = seqs[i];
    numbers[at + 1] = (d.allow ? ALLOWED : 0) | (plain && d.value === true ? VALUE_TRUE : 0);
    numbers[at + 2] = u.instructions;
    numbers[at + 3] = u.memory;
    numbers[at + 4] = u.cpuMs;
    numbers[at + 5] = u.output;
    numbers[at + 6] = u.timeMs;
    numbers[at + 7] = plain ? -1 : extras.length;
    ids.push(d.id);
    if (plain) continue;
    const value = d.value === undefined ? null : d.value;
    if (json && !jsonSafe(value, 0, true)) json = false;
    extras.push([d.reasons, d.errors, value, d.calls, d.error ? wireError(d.error) : 0]);
  }
  const message: ResultsMessage = { type: "results", numbers, ids: ids.join(" ") };
  if (extras.length > 0) {
    if (json) message.json = JSON.stringify(extras);
    else message.extras = extras;
  }
  scope.postMessage(message, [numbers.buffer]);
}

function runBatch(items: BatchItem[]): void {
  let seqs: number[] = [];
  let decisions: Decision[] = [];
  let lastPost = monotonicMs();
  for (const [seq, name, input] of items) {
    const policy = engine!.policy(name);
    seqs.push(seq);
    decisions.push(
      policy === undefined
        ? failedClosed(name, `no policy named '${name}' in this pool`)
        : input === WRITTEN_OVER
        ? failedClosed(name, "luagate: internal error: the input's encoded data was written over")
        : policy.evaluate(input),
    );
    const now = monotonicMs();
    if (now - lastPost >= FLUSH_MS) {
      send(seqs, decisions);
      seqs = [];
      decisions = [];
      lastPost = now;
    }
  }
  if (decisions.length > 0) send(seqs, decisions);
}

scope.onmessage = (event: MessageEvent) => {
  const message = event.data as { type: string; options?: WorkerInit } & Omit<BatchMessage, "type">;
  if (message.type === "batch") {
    if (message.blocks !== undefined) {
      const { blocks, spans } = message as Required<BatchMessage>;
      const chunks: EncodedData[] = [];
      for (let k = 0; k < blocks.length; k++) splitChunks(blocks[k], spans[2 * k], spans[2 * k + 1], chunks);
      const seqs = message.seqs!, names = message.names!;
      if (chunks.length !== seqs.length) {
        throw new Error(`a batch of ${seqs.length} requests held ${chunks.length} encoded inputs`);
      }
      runBatch(
        chunks.map((chunk, i): BatchItem => [
          seqs[i],
          typeof names === "string" ? names : names[i],
          chunk.tag === inputTag(seqs[i]) ? chunk : WRITTEN_OVER,
        ]),
      );
    } else runBatch(message.json !== undefined ? JSON.parse(message.json) : message.items!);
  } else if (message.type === "init") {
    build(message.options!).then(
      (built) => {
        engine = built;
        scope.postMessage({ type: "ready", policies: built.policies });
      },
      (error) => scope.postMessage({ type: "failed", error: wireError(error) }),
    );
  } else if (message.type === "close") {
    // before the pool terminates this worker: Lua's memory and the mapped regions outlive an isolate
    try {
      engine?.close();
      engine = undefined;
      releaseTemplates();
    } finally {
      scope.postMessage({ type: "closed" });
    }
  }
};
