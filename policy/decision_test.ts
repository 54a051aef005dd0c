import assert from "node:assert/strict";
import { DecisionIds, readVerdict } from "./decision.ts";

Deno.test("decision ids: one issuer never repeats, and two issuers never share an id", () => {
  const first = new DecisionIds();
  const second = new DecisionIds();
  const seen = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    seen.add(first.next());
    seen.add(second.next());
  }
  assert.equal(seen.size, 2000);
});

Deno.test("decision ids: the label, a random part of 12 hex digits, then the count in decimal", () => {
  const ids = new DecisionIds("pool-");
  const got = [ids.next(), ids.next(), ids.next()];
  for (const [i, id] of got.entries()) assert.match(id, new RegExp(`^pool-[0-9a-f]{12}-${i + 1}$`));
  assert.match(new DecisionIds().next(), /^[0-9a-f]{12}-1$/);
});

Deno.test("decision ids: the count stays decimal across every thousand (the last digits come from a table)", () => {
  const ids = new DecisionIds("t-");
  const prefix = ids.next().slice(0, -1);
  for (let count = 2; count <= 102_345; count++) {
    const id = ids.next();
    if (id !== prefix + count) assert.fail(`id ${count} is ${id}`);
  }
});

Deno.test("verdict: a boolean and its reasons, a decision table, anything else fails closed", () => {
  assert.deepEqual(readVerdict([false, "not the owner"]), {
    allow: false,
    reasons: ["not the owner"],
    errors: [],
    value: false,
  });
  assert.deepEqual(readVerdict([{ allow: true, reasons: ["owner"] }]).reasons, ["owner"]);
  const odd = readVerdict(["yes"]);
  assert.equal(odd.allow, false);
  assert.equal(odd.errors.length, 1);
});
