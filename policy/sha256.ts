/**
 * SHA-256 (FIPS 180-4) for the decision log's input hash, computed in place: importing
 * `node:crypto` for it cost every process that loaded luagate 55-90 ms, whether it logged or not.
 *
 * @module
 */

// The first 32 bits of the fractional parts of the square roots of the first 8 primes (the initial
// hash) and of the cube roots of the first 64 (the round constants), as the standard defines them.
function firstPrimes(count: number): number[] {
  const primes: number[] = [];
  for (let n = 2; primes.length < count; n++) {
    if (primes.every((p) => n % p !== 0)) primes.push(n);
  }
  return primes;
}
const fractionBits = (x: number) => Math.floor((x - Math.floor(x)) * 2 ** 32) | 0;
const PRIMES = firstPrimes(64);
const INITIAL = Int32Array.from(PRIMES.slice(0, 8), (p) => fractionBits(Math.sqrt(p)));
const ROUND = Int32Array.from(PRIMES, (p) => fractionBits(Math.cbrt(p)));

const encoder = new TextEncoder();
const schedule = new Int32Array(64);
const state = new Int32Array(8);
// the padded message of a text, reused up to KEPT_BYTES (most inputs a decision log hashes are a
// few blocks); a longer one gets a buffer of its own, not kept
const KEPT_BYTES = 64 * 1024;
let kept = new Uint8Array(1024);
let keptView = new DataView(kept.buffer);
// "00" to "ff": a word's hex from its four bytes, without a number-to-string call per word
const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

const rotate = (x: number, n: number) => (x >>> n) | (x << (32 - n));

function compress(view: DataView, offset: number): void {
  const w = schedule;
  for (let i = 0; i < 16; i++) w[i] = view.getInt32(offset + 4 * i);
  for (let i = 16; i < 64; i++) {
    const early = w[i - 15], late = w[i - 2];
    const s0 = rotate(early, 7) ^ rotate(early, 18) ^ (early >>> 3);
    const s1 = rotate(late, 17) ^ rotate(late, 19) ^ (late >>> 10);
    w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
  }
  let a = state[0], b = state[1], c = state[2], d = state[3];
  let e = state[4], f = state[5], g = state[6], h = state[7];
  for (let i = 0; i < 64; i++) {
    const t1 = (h + (rotate(e, 6) ^ rotate(e, 11) ^ rotate(e, 25)) + ((e & f) ^ (~e & g)) + ROUND[i] + w[i]) |
      0;
    const t2 = ((rotate(a, 2) ^ rotate(a, 13) ^ rotate(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  state[0] = (state[0] + a) | 0;
  state[1] = (state[1] + b) | 0;
  state[2] = (state[2] + c) | 0;
  state[3] = (state[3] + d) | 0;
  state[4] = (state[4] + e) | 0;
  state[5] = (state[5] + f) | 0;
  state[6] = (state[6] + g) | 0;
  state[7] = (state[7] + h) | 0;
}

/**
 * The SHA-256 digest of `text`'s UTF-8 bytes, in lowercase hex.
 *
 * @example Usage
 * ```ts
 * import { sha256Hex } from "./sha256.ts";
 *
 * console.log(sha256Hex("abc")); // "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
 * ```
 *
 * @param text The text to hash.
 * @returns 64 hex digits.
 */
export function sha256Hex(text: string): string {
  // the message, a 1 bit, zeros, and its length in bits as 64 bits, big-endian: whole 64-byte blocks
  // (UTF-8 takes at most 3 bytes a UTF-16 unit)
  const most = Math.ceil((text.length * 3 + 9) / 64) * 64;
  if (most > kept.length && most <= KEPT_BYTES) {
    kept = new Uint8Array(most);
    keptView = new DataView(kept.buffer);
  }
  const blocks = most <= kept.length ? kept : new Uint8Array(most);
  const view = blocks === kept ? keptView : new DataView(blocks.buffer);
  const length = encoder.encodeInto(text, blocks).written;
  const size = Math.ceil((length + 9) / 64) * 64;
  blocks.fill(0, length, size);
  blocks[length] = 0x80;
  const bits = length * 8;
  view.setUint32(size - 8, Math.floor(bits / 2 ** 32));
  view.setUint32(size - 4, bits >>> 0);
  state.set(INITIAL);
  for (let offset = 0; offset < size; offset += 64) compress(view, offset);
  let hex = "";
  for (let i = 0; i < 8; i++) {
    const word = state[i];
    hex += HEX[(word >>> 24) & 0xff] + HEX[(word >>> 16) & 0xff] + HEX[(word >>> 8) & 0xff] +
      HEX[word & 0xff];
  }
  return hex;
}
