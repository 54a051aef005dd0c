/**
 * Decisions: what a policy's return value means, and the record of one evaluation. Anything a
 * policy returns that is not a clear decision denies.
 *
 * @module
 */

import { LuaError } from "../lua/errors.ts";
import type { CapabilityCall, Usage } from "./guarded_state.ts";

// "000" to "999": the last three digits of every id past the first thousand, made once per process
let lastDigits: readonly string[] | undefined;

/**
 * Hands out decision ids: a random prefix of its own, then a counter in decimal. Turning a fresh
 * number into a string is a runtime call in V8 (about 30 ns, a few percent of a short decision), so
 * past the first thousand an id joins its prefix and thousands, made once per thousand ids, with its
 * last three digits from a table.
 *
 * @example Usage
 * ```ts
 * import { DecisionIds } from "./decision.ts";
 * const ids = new DecisionIds("pool-");
 * console.log(ids.next().startsWith("pool-")); // true
 * console.log(ids.next() !== ids.next()); // true
 * ```
 */
export class DecisionIds {
  readonly #prefix: string;
  #count = 0;
  #thousands = 0;
  // the prefix followed by #thousands
  #head = "";

  /** @param label What every id starts with, before the random part. */
  constructor(label = "") {
    const bytes = crypto.getRandomValues(new Uint8Array(6));
    this.#prefix = `${label}${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}-`;
  }

  /** The next id. */
  next(): string {
    const count = ++this.#count;
    if (count < 1000) return this.#prefix + count;
    const thousands = Math.floor(count / 1000);
    if (thousands !== this.#thousands) {
      this.#thousands = thousands;
      this.#head = this.#prefix + thousands;
      lastDigits ??= Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, "0"));
    }
    return this.#head + lastDigits![count - thousands * 1000];
  }
}

/** What one evaluation used: the run's counters plus wall time. */
export interface DecisionUsage extends Usage {
  /** Wall-clock milliseconds of the evaluation, conversion of the input included. */
  timeMs: number;
}

/** The outcome of evaluating a policy against an input. */
export interface Decision {
  /** Whether the request is allowed. False on any error (fail-closed). */
  allow: boolean;
  /** The reasons the policy gave. */
  reasons: string[];
  /** Errors that made the decision fail closed, as `"ErrorName: message"`. */
  errors: string[];
  /** The policy's raw result, as plain data. */
  value: unknown;
  /** What the evaluation used. */
  usage: DecisionUsage;
  /** A unique id for logs and audits. */
  id: string;
  /** The policy's name. */
  policy: string;
  /** The capability calls the evaluation made, in order (the audit trail). */
  calls: readonly CapabilityCall[];
  /** The typed error behind `errors[0]`, if any (e.g. `PermissionDeniedError`, `LuaLimitError`). */
  error?: Error;
}

/** The parts of a decision read from a policy's return values. */
export interface Verdict {
  allow: boolean;
  reasons: string[];
  errors: string[];
  value: unknown;
}

function reasonList(value: unknown): string[] | undefined {
  if (value === undefined || value === null) return [];
  if (typeof value === "string") return [value];
  if (Array.isArray(value)) {
    return value.map((r) => (typeof r === "string" ? r : JSON.stringify(r) ?? String(r)));
  }
  // An empty Lua table reads as an empty object: `reasons = {}` is an empty list.
  if (typeof value === "object" && Object.keys(value).length === 0) return [];
  return undefined;
}

function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "a table" : `a ${typeof value}`;
}

/**
 * Reads a policy's return values: `true`/`false`, `false, "reason"` (or a list of reasons), or a
 * table `{ allow = bool, reasons = {...} }`. Anything else denies, with an error saying why.
 *
 * @example
 * ```ts
 * import { readVerdict } from "./decision.ts";
 * console.log(readVerdict([false, "not the owner"]).reasons); // ["not the owner"]
 * ```
 */
export function readVerdict(values: readonly unknown[]): Verdict {
  const [first, second] = values;
  if (typeof first === "boolean") {
    const reasons = reasonList(second);
    if (reasons === undefined) {
      return {
        allow: false,
        reasons: [],
        errors: [`LuaError: reasons must be a string or a list, got ${describe(second)}`],
        value: first,
      };
    }
    return { allow: first, reasons, errors: [], value: first };
  }
  if (first !== null && typeof first === "object" && !Array.isArray(first)) {
    const table = first as Record<string, unknown>;
    const reasons = reasonList(table.reasons ?? table.reason);
    if (typeof table.allow !== "boolean") {
      return {
        allow: false,
        reasons: reasons ?? [],
        errors: [`LuaError: the decision table's 'allow' must be a boolean, got ${describe(table.allow)}`],
        value: first,
      };
    }
    if (reasons === undefined) {
      return {
        allow: false,
        reasons: [],
        errors: ["LuaError: 'reasons' must be a string or a list"],
        value: first,
      };
    }
    return { allow: table.allow, reasons, errors: [], value: first };
  }
  return {
    allow: false,
    reasons: [],
    errors: [`LuaError: a policy must return a boolean or a decision table, got ${describe(first)}`],
    value: first,
  };
}

/** `"Name: message"` for an error, the form of `Decision.errors`. */
export function errorLine(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return `Error: ${String(error)}`;
}

/** A LuaError for a verdict error line, so `Decision.error` is always typed. */
export function verdictError(line: string): LuaError {
  return new LuaError(line.replace(/^LuaError: /, ""));
}
