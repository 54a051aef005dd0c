import assert from "node:assert/strict";
import { copyCBytes, decodeCBytes, StringEncoder, writeUtf8 } from "./strings.ts";

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

Deno.test("StringEncoder: append writes after the bytes before it, and keeps them when it grows", () => {
  const encoder = new StringEncoder();
  const first = encoder.encode("return 1");
  assert.equal(encoder.append("=name\0", first), 6);
  assert.deepEqual(encoder.buffer.slice(0, first + 6), utf8("return 1=name\0"));
  const long = "é".repeat(5_000);
  assert.equal(encoder.append(long, first), 10_000);
  assert.deepEqual(encoder.buffer.slice(0, first + 10_000), utf8(`return 1${long}`));
});

/** `bytes` in memory with a C address, as a Lua string's would be. */
const at = (bytes: Uint8Array) => Deno.UnsafePointer.of(bytes)!;

Deno.test("decodeCBytes: ASCII, UTF-8 and invalid bytes, short and past the read buffer, as TextDecoder reads them", () => {
  const texts = [
    "",
    "a",
    "allow",
    "x".repeat(32),
    "y".repeat(33),
    "héllo",
    "😀 ok",
    "z".repeat(4096),
    "é".repeat(3000),
  ];
  for (const text of texts) {
    const bytes = utf8(text);
    // twice: the second read of a short ASCII text comes from its kept slot
    for (let round = 0; round < 2; round++) {
      assert.equal(decodeCBytes(bytes.length ? at(bytes) : null, bytes.length, false), text);
      assert.equal(decodeCBytes(bytes.length ? at(bytes) : null, bytes.length, true), text);
    }
  }
  for (const bytes of [new Uint8Array([0x61, 0xff]), new Uint8Array(5000).fill(0xc3)]) {
    assert.equal(decodeCBytes(at(bytes), bytes.length, false), null);
    assert.equal(decodeCBytes(at(bytes), bytes.length, true), new TextDecoder().decode(bytes));
  }
  const withNul = new Uint8Array([0x61, 0, 0x62]);
  assert.equal(decodeCBytes(at(withNul), 3, false), "a\0b");
});

Deno.test("decodeCBytes: texts sharing a kept slot, or one byte apart, never come back as each other", () => {
  // 5000 distinct short texts overfill the 1024 slots: every read must still give its own bytes
  const texts = Array.from({ length: 5000 }, (_, i) => `reason ${i}`);
  texts.push("abc", "abd", "ab", "abcd", "bbc");
  for (let round = 0; round < 2; round++) {
    for (const text of texts) {
      const bytes = utf8(text);
      assert.equal(decodeCBytes(at(bytes), bytes.length, false), text);
    }
  }
  // the same bytes read after the memory changed: the new content, not a kept text
  const bytes = utf8("deny");
  assert.equal(decodeCBytes(at(bytes), 4, false), "deny");
  bytes[0] = 0x44;
  assert.equal(decodeCBytes(at(bytes), 4, false), "Deny");
});

Deno.test("copyCBytes: a copy the caller owns, short or past the read buffer", () => {
  for (const length of [0, 1, 64, 4096, 4097, 10000]) {
    const source = Uint8Array.from({ length }, (_, i) => (i * 7) & 0xff);
    const first = copyCBytes(length ? at(source) : null, length);
    const second = copyCBytes(length ? at(source) : null, length);
    assert.deepEqual(first, source);
    assert.notEqual(first.buffer, second.buffer, "each call its own buffer");
    if (length > 0) {
      source[0] ^= 0xff;
      assert.notEqual(first[0], source[0], "not a view of the source");
    }
  }
});
