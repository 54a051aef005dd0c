import assert from "node:assert/strict";
import { writeDateText } from "./plain_data.ts";

const decoder = new TextDecoder();

function text(date: Date): string {
  const target = new Uint8Array(40);
  const n = writeDateText(date, target, 3);
  assert.ok(n > 0);
  return decoder.decode(target.subarray(3, 3 + n));
}

Deno.test("plain data: a date's text is what toISOString gives, at every time", () => {
  const year = (y: number) => Date.UTC(y, 0, 1);
  const edges = [
    0,
    -1,
    1,
    year(1000) - 1,
    year(1000),
    year(10_000) - 1,
    year(10_000),
    year(0),
    year(-1),
    Date.UTC(2000, 1, 29, 23, 59, 59, 999),
    Date.UTC(1900, 1, 28, 12),
    Date.UTC(2100, 2, 1),
    Date.UTC(1600, 11, 31, 23, 59, 59, 9),
    8.64e15,
    -8.64e15,
  ];
  // a fixed sequence: the same times on every run
  let seed = 7;
  const next = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
  const times = [...edges, ...Array.from({ length: 20_000 }, () => Math.floor((next() * 2 - 1) * 8.64e15))];
  for (let i = 0; i < 20_000; i++) times.push(Math.floor(year(1000) + next() * (year(10_000) - year(1000))));
  for (const time of times) assert.equal(text(new Date(time)), new Date(time).toISOString(), `time ${time}`);
  assert.equal(text(new Date(NaN)), "Invalid Date");
});

Deno.test("plain data: a date's text that does not fit is -1", () => {
  const target = new Uint8Array(30);
  assert.equal(writeDateText(new Date(0), target, 7), -1);
  assert.equal(writeDateText(new Date(8.64e15), target, 10), -1);
  assert.equal(writeDateText(new Date(0), target, 6), 24);
  assert.equal(decoder.decode(target.subarray(6)), "1970-01-01T00:00:00.000Z");
});
