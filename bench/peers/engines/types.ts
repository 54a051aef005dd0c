// The common shape of one engine row in bench/peers/run.ts.
import type { Request } from "../../abac_workload.ts";

export type { Request };

/** What every engine gets in setup: the same requests and the same Lua source. */
export interface Workload {
  requests: Request[];
  /** Defines a global `decide(input)` (Lua engines load it as-is). */
  policyLua: string;
}

/** Timing settings shared by the harness and by engines that time themselves. */
export interface TimingOptions {
  rounds: number;
  /** Minimum duration of one round in milliseconds (requests are cycled until it is reached). */
  minRoundMs: number;
  /** Warm-up duration in milliseconds before the first timed round. */
  warmupMs: number;
}

/** Result of an engine that measures itself (out of process): per-round µs/decision plus its answers. */
export interface SelfTimedResult {
  roundsUs: number[];
  answers: boolean[];
  /** Allow-count seen in each timed round, for the harness to check against the expected count. */
  allowsPerRound: number[];
  /** Decisions made in each timed round. */
  decisionsPerRound: number;
}

export interface Engine {
  /** Row label in the results table. */
  name: string;
  /** Engine/library version, as reported by the engine itself where it can. */
  version: string;
  /** One line: how the request reaches the policy. */
  feed: string;
  setup(workload: Workload): Promise<void>;
  /** In-process engines: the decision for request i (0 <= i < requests.length). */
  decide?(i: number): boolean;
  /** Out-of-process engines: run warm-up and timed rounds themselves. */
  selfTimed?(options: TimingOptions): Promise<SelfTimedResult>;
  /** Optional: why request i got the answer it got (errors etc.), shown when an answer is wrong. */
  diagnose?(i: number): string | undefined;
  /** Set on a placeholder row that cannot run here (e.g. the library is not written yet): the reason. */
  skipped?: string;
  close(): void | Promise<void>;
}

/** Thrown by an adapter's loader when the engine cannot run here and that is expected (row skipped). */
export class SkipEngine extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SkipEngine";
  }
}

/** Each adapter module exports `load()`, which returns its rows (or throws SkipEngine). */
export type EngineLoader = () => Promise<Engine[]>;

/** The adapter modules in engines/, in the order of their rows. */
export const ENGINE_MODULES = ["luagate.ts", "native_lua.ts", "fengari.ts", "wasmoon.ts", "cedar.ts"];

/** The row the others are compared with: luagate's policy engine. */
export const POLICY_ROW = "luagate Policy (all limits on)";
