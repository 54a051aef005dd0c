/**
 * The worker side of `PolicyPool`: one `PolicyEngine` per Deno Worker, built from the pool's
 * options, evaluating batches of requests and sending the decisions back as plain data.
 *
 * Not meant to be imported directly: `PolicyPool` starts it with
 * `new Worker(new URL("./pool_worker.ts", import.meta.url), { type: "module" })`.
 *
 * Protocol (all messages are structured-cloned):
 * - pool → worker `{ type: "init", options: WorkerInit }`, answered by `{ type: "ready", policies }`
 *   or `{ type: "failed", error }`;
 * - pool → worker `{ type: "batch", items: [seq, policyName, input][] }`, answered by one or more
 *   `{ type: "results", json }` (or `items`: `DecisionRow[]`) in the order received (a long batch is
 *   answered in parts, so the pool's watchdog sees progress request by request).
 *
 * @module
 */

import type { Decision } from "./decision.ts";
import { PolicyEngine } from "./engine.ts";
import type { Capability } from "./guarded_state.ts";
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

/** An error as plain data, revived on the pool's side as the same class. */
export interface WireError {
  name: string;
  message: string;
  limit?: string;
  capability?: string;
  permission?: string;
}

/**
 * A decision as sent back to the pool, flattened (rows parse faster than objects):
 * `[seq, allow, reasons, errors, value (undefined as null), instructions, memory, cpuMs, output,
 * timeMs, id, policy, calls, error or 0]`.
 */
export type DecisionRow = [
  number,
  boolean,
  string[],
  string[],
  unknown,
  number,
  number,
  number,
  number,
  number,
  string,
  string,
  Decision["calls"],
  WireError | 0,
];

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

function toRow(seq: number, d: Decision): DecisionRow {
  const u = d.usage;
  return [
    seq,
    d.allow,
    d.reasons,
    d.errors,
    d.value === undefined ? null : d.value,
    u.instructions,
    u.memory,
    u.cpuMs,
    u.output,
    u.timeMs,
    d.id,
    d.policy,
    d.calls,
    d.error ? wireError(d.error) : 0,
  ];
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
  postMessage(message: unknown): void;
};

let engine: PolicyEngine | undefined;

function notFound(seq: number, name: string): DecisionRow {
  const message = `no policy named '${name}' in this pool`;
  return [seq, false, [], [`LuaError: ${message}`], null, 0, 0, 0, 0, 0, "", name, [], {
    name: "LuaError",
    message,
  }];
}

/** Sends results as JSON when every decision's value allows it (cheaper), else structured-cloned. */
function send(out: DecisionRow[]): void {
  let json = true;
  for (const row of out) {
    if (!jsonSafe(row[4], 0, true)) {
      json = false;
      break;
    }
  }
  if (json) scope.postMessage({ type: "results", json: JSON.stringify(out) });
  else scope.postMessage({ type: "results", items: out });
}

function runBatch(items: [number, string, unknown][]): void {
  let out: DecisionRow[] = [];
  let lastPost = performance.now();
  for (const [seq, name, input] of items) {
    const policy = engine!.policy(name);
    out.push(policy ? toRow(seq, policy.evaluate(input)) : notFound(seq, name));
    const now = performance.now();
    if (now - lastPost >= FLUSH_MS) {
      send(out);
      out = [];
      lastPost = now;
    }
  }
  if (out.length > 0) send(out);
}

scope.onmessage = (event: MessageEvent) => {
  const message = event.data as {
    type: string;
    options?: WorkerInit;
    items?: [number, string, unknown][];
    json?: string;
  };
  if (message.type === "batch") {
    runBatch(message.json !== undefined ? JSON.parse(message.json) : message.items!);
  } else if (message.type === "init") {
    build(message.options!).then(
      (built) => {
        engine = built;
        scope.postMessage({ type: "ready", policies: built.policies });
      },
      (error) => scope.postMessage({ type: "failed", error: wireError(error) }),
    );
  }
};
