import assert from "node:assert/strict";
import { StringEncoder, writeUtf8 } from "./strings.ts";

const utf8 = (text: string) => new TextEncoder().encode(text);

/** Writes `text` at `at` of a buffer with room to spare and returns what landed there. */
function written(text: string, at: number): Uint8Array {
  const target = new Uint8Array(at + text.length * 3 + 8).fill(0xaa);
  const n = writeUtf8(text, target, at);
  assert.ok(n >= 0, "it fits");
  assert.ok(target.subarray(0, at).every((b) => b === 0xaa), "nothing before `at`");
  assert.ok(target.subarray(at + n).every((b) => b === 0xaa), "nothing after the string");
  return target.slice(at, at + n);
}

Deno.test("writeUtf8: short and long strings, ASCII or not, at any offset, as TextEncoder writes them", () => {
  const ascii = (n: number) => Array.from({ length: n }, (_, i) => String.fromCharCode(33 + i % 90)).join("");
  for (const length of [0, 1, 63, 64, 65, 200, 5000]) {
    const plain = ascii(length);
    // a rope (concatenation) as well as a flat string
    const rope = plain.slice(0, length >> 1) + plain.slice(length >> 1);
    const accented = plain + "é";
    const astral = "😀" + plain;
    for (const text of [plain, rope, accented, astral]) {
      for (const at of [0, 3]) {
        assert.deepEqual(written(text, at), utf8(text), `${text.length} units at ${at}`);
      }
    }
  }
});

Deno.test("writeUtf8: lone surrogates become U+FFFD in short and long strings", () => {
  for (const text of ["a\ud800b", "\udfff" + "x".repeat(100), "y".repeat(100) + "\ud800"]) {
    assert.deepEqual(written(text, 1), utf8(text));
    assert.ok(new TextDecoder().decode(written(text, 0)).includes("\ufffd"));
  }
});

Deno.test("writeUtf8: -1 when the bytes do not all fit, short or long", () => {
  for (const text of ["abc", "x".repeat(100), "é".repeat(10), "é".repeat(100)]) {
    const bytes = utf8(text).length;
    assert.equal(writeUtf8(text, new Uint8Array(bytes + 2), 2), bytes, "exactly enough room");
    assert.equal(writeUtf8(text, new Uint8Array(bytes + 1), 2), -1, "one byte short");
  }
});

Deno.test("StringEncoder: grows for a string larger than its buffer", () => {
  const encoder = new StringEncoder();
  const text = "ü".repeat(10_000);
  const n = encoder.encode(text);
  assert.equal(n, 20_000);
  assert.deepEqual(encoder.buffer.slice(0, n), utf8(text));
  assert.equal(encoder.encode("ok"), 2);
  assert.deepEqual(encoder.buffer.slice(0, 2), utf8("ok"));
});
