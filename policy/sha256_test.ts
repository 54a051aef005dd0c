import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { sha256Hex } from "./sha256.ts";

const reference = (text: string) => createHash("sha256").update(text).digest("hex");

Deno.test("sha256: the standard's examples", () => {
  assert.equal(sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  assert.equal(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  assert.equal(
    sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
  );
  assert.equal(
    sha256Hex("a".repeat(1_000_000)),
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
  );
});

Deno.test("sha256: every length across three blocks agrees with node:crypto", () => {
  for (let n = 0; n <= 200; n++) {
    const text = Array.from({ length: n }, (_, i) => String.fromCharCode(33 + ((i * 7 + n) % 90))).join("");
    assert.equal(sha256Hex(text), reference(text), `length ${n}`);
  }
});

Deno.test("sha256: text is hashed as UTF-8", () => {
  for (
    const text of ["é", "日本語のテキスト", "emoji 😀 and a lone surrogate \ud800", '{"user":{"name":"Zoë"}}']
  ) {
    assert.equal(sha256Hex(text), reference(text), text);
  }
});

Deno.test("sha256: a shorter text after a longer one, and texts past the kept buffer, in any order", () => {
  const lengths = [300, 5, 70_000, 64, 119, 0, 21_000, 55, 56, 130_000, 1];
  for (const n of lengths) {
    const text = Array.from({ length: n }, (_, i) => String.fromCharCode(33 + ((i * 13 + n) % 90))).join("");
    assert.equal(sha256Hex(text), reference(text), `length ${n}`);
  }
});
