import assert from "node:assert/strict";
import type { Decision } from "./decision.ts";
import {
  canonicalJson,
  canonicalJsonOfAnything,
  DecisionLog,
  type DecisionLogEntry,
} from "./decision_log.ts";

class Point {
  constructor(readonly y: number, readonly x: number) {}
}

// the same text as the replacer's, whichever way canonicalJson took: these hashes identify inputs in
// logs written by every version
const VALUES: unknown[] = [
  null,
  undefined,
  'text with "quotes", a \\ and \u2028 and 😀',
  -0,
  1e21,
  Number.NaN,
  true,
  123456789012345678901234567890n,
  [],
  {},
  [1, , 3, undefined, () => 1, Symbol("s"), null],
  { b: 1, a: 2, "10": "ten", "2": "two", "-1": "minus", " ": "space", é: "e", A: "upper" },
  { z: { y: { x: [{ w: 1, v: [2, { u: 3, t: 4 }] }] } }, f: () => 1, s: Symbol("s"), u: undefined },
  Object.assign(Object.create(null), { b: [1, 2], a: { d: 4, c: 3 } }),
  { user: { id: "u1", roles: ["admin", "dev"], groups: ["g1"], suspended: false }, action: "read" },
  { when: new Date(0), where: new Point(2, 1) },
  { map: new Map<unknown, unknown>([["b", 1], ["a", { d: 1, c: 2 }], [3, "three"]]) },
  { own: { toJSON: () => ({ b: 1, a: 2 }) } },
  [new String("boxed"), new Number(3)],
  { big: 5n, nested: [{ big: -7n }] },
];

Deno.test("canonicalJson: sorted keys at every level, as the replacer writes them for any value", () => {
  for (const value of VALUES) {
    assert.equal(
      canonicalJson(value),
      canonicalJsonOfAnything(value),
      String(canonicalJsonOfAnything(value)),
    );
  }
  assert.equal(canonicalJson({ b: 1, a: [{ d: 2, c: 3 }] }), `{"a":[{"c":3,"d":2}],"b":1}`);
  assert.equal(canonicalJson(undefined), "null");
});

Deno.test("canonicalJson: deeper than a plain copy goes, and a cycle, is a RangeError only for the cycle", () => {
  let deep: unknown = "bottom";
  for (let i = 0; i < 600; i++) deep = i % 2 ? [deep] : { level: deep };
  assert.equal(canonicalJson(deep), canonicalJsonOfAnything(deep));
  const cycle: Record<string, unknown> = { a: 1 };
  cycle.self = cycle;
  assert.throws(() => canonicalJson(cycle), RangeError);
});

// mask mode as it was written first: a parse of the canonical JSON, then each masked field replaced
function maskedByParsing(value: unknown, paths: string[][]): unknown {
  const tree = JSON.parse(canonicalJsonOfAnything(value) ?? "null");
  for (const path of paths) {
    const parent = path.slice(0, -1).reduce<unknown>(
      (node, key) =>
        node !== null && typeof node === "object" ? (node as Record<string, unknown>)[key] : node,
      tree,
    );
    const last = path[path.length - 1];
    if (parent !== null && typeof parent === "object" && last in parent) {
      (parent as Record<string, unknown>)[last] = "***";
    }
  }
  return tree;
}

Deno.test("mask mode: the logged input is what masking a parse of its canonical JSON gives", () => {
  const masks = [
    "user.id",
    "a",
    "b.0",
    "z.y",
    "f",
    "u",
    "s",
    "1",
    "2",
    "3",
    "own.b",
    "map.a.c",
    "0",
    "nested.0.big",
  ];
  const lines: string[] = [];
  const log = new DecisionLog({ sink: { write: (line) => lines.push(line) }, input: "mask", mask: masks });
  const decision = {
    allow: true,
    reasons: [],
    errors: [],
    value: true,
    usage: { instructions: 0, memory: 0, cpuMs: 0, output: 0, timeMs: 0 },
    id: "d",
    policy: "p",
    calls: [],
  } satisfies Decision;
  for (const value of VALUES) {
    log.record(decision, value);
    const entry = JSON.parse(lines[lines.length - 1]) as DecisionLogEntry;
    const expected = maskedByParsing(value, masks.map((m) => m.split(".")));
    assert.equal(JSON.stringify(entry.input), JSON.stringify(expected), canonicalJsonOfAnything(value));
  }
});
