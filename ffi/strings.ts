/**
 * Moving strings between JS and C: UTF-8 encoding into a reused scratch buffer, copying and
 * decoding bytes at a C pointer, and NUL-terminated names for C parameters.
 *
 * @module
 */

import { openLibc } from "./libc.ts";
import { int64 } from "./lua_api.ts";

const encoder = new TextEncoder();
// Up to this many UTF-16 units a charCodeAt loop beats TextEncoder, whose call and view cost about
// 120 ns; past it the native encoder wins by far (measured: even near 56 units, 20x at 2 KiB, where
// the loop takes 4-5 µs).
const LOOP_UNITS = 64;
const fatalDecoder = new TextDecoder("utf-8", { fatal: true });
const lenientDecoder = new TextDecoder("utf-8");

/** The most UTF-8 bytes one UTF-16 code unit of a string becomes (a surrogate pair's two, 4). */
export const MAX_UTF8_BYTES_PER_UNIT = 3;

/** A growable scratch buffer for strings on their way into C. */
export class StringEncoder {
  #buffer = new Uint8Array(4096);

  /** The bytes written by the last {@linkcode StringEncoder.encode} start at index 0 of this buffer. */
  get buffer(): Uint8Array {
    return this.#buffer;
  }

  /**
   * Encodes `text` as UTF-8 at the start of {@linkcode StringEncoder.buffer} and returns the byte length.
   * Short ASCII text skips the TextEncoder call.
   */
  encode(text: string): number {
    return this.append(text, 0);
  }

  /**
   * Encodes `text` as UTF-8 after the first `at` bytes of {@linkcode StringEncoder.buffer}, which
   * it keeps (a buffer too small for both is replaced by a larger one holding them), and returns the
   * byte length of `text`.
   */
  append(text: string, at: number): number {
    let written = writeUtf8(text, this.#buffer, at);
    if (written < 0) {
      const larger = new Uint8Array(
        Math.max(at + text.length * MAX_UTF8_BYTES_PER_UNIT, this.#buffer.length * 2),
      );
      larger.set(this.#buffer.subarray(0, at));
      this.#buffer = larger;
      written = writeUtf8(text, larger, at);
    }
    return written;
  }
}

/**
 * Writes `text` as UTF-8 into `target` from index `at` (lone surrogates become U+FFFD, as with
 * `TextEncoder`). Short ASCII text skips the TextEncoder call.
 *
 * @example Usage
 * ```ts
 * import { writeUtf8 } from "./strings.ts";
 *
 * const target = new Uint8Array(8);
 * console.log(writeUtf8("héllo", target, 1)); // 6
 * console.log(writeUtf8("too long for it", target, 0)); // -1
 * ```
 *
 * @param text The string to write.
 * @param target Where to write it.
 * @param at The index of the first byte.
 * @returns the number of bytes written, or -1 when they do not all fit (`target` then holds a part).
 */
export function writeUtf8(text: string, target: Uint8Array, at: number): number {
  const n = text.length;
  // UTF-8 takes at least one byte per UTF-16 unit
  if (at + n > target.length) return -1;
  let i = 0;
  if (n <= LOOP_UNITS) {
    for (; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c >= 0x80) break;
      target[at + i] = c;
    }
    if (i === n) return n;
  }
  const { read, written } = encoder.encodeInto(i === 0 ? text : text.slice(i), target.subarray(at + i));
  return read === n - i ? i + written : -1;
}

const cStrings = new Map<string, Uint8Array<ArrayBuffer>>();

/**
 * `text` as a NUL-terminated UTF-8 buffer for a `const char *` parameter. Short strings are kept
 * (chunk names, library names, helper names recur on every state).
 */
export function cString(text: string): Uint8Array<ArrayBuffer> {
  const known = cStrings.get(text);
  if (known !== undefined) return known;
  const bytes = encoder.encode(text);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  if (text.length <= 64 && cStrings.size < 1024) cStrings.set(text, out);
  return out;
}

// Strings read from C are copied into this buffer by one call to C's memcpy: a view of C memory
// (Deno.UnsafePointerView.copyInto) is an op about 150 ns long, and a fresh array handed to it is
// first moved out of V8's heap (a malloc). Longer strings take that path anyway.
const READ_BYTES = 4096;
const readBuffer = new Uint8Array(READ_BYTES);
let copyFromC: ((target: BufferSource, source: Deno.PointerValue, n: bigint) => void) | undefined;
// Short ASCII text read from C recurs (table keys, reasons, names): each is kept in a slot chosen
// by a hash of its bytes and handed out again when the bytes match, instead of decoding them anew.
const KEPT_TEXT_BYTES = 64;
const KEPT_TEXTS = 1024;
const keptTexts: string[] = new Array(KEPT_TEXTS).fill("");

// Copies the n bytes at pointer to the start of readBuffer when they fit (true).
function intoReadBuffer(pointer: Deno.PointerObject, n: number): boolean {
  if (n > READ_BYTES) return false;
  copyFromC ??= openLibc().memcpy;
  copyFromC(readBuffer, pointer, int64(n));
  return true;
}

// The n bytes at pointer in a fresh array.
function freshBytes(pointer: Deno.PointerObject, n: number): Uint8Array {
  const out = new Uint8Array(n);
  Deno.UnsafePointerView.copyInto(pointer, out);
  return out;
}

/**
 * A copy of the `n` bytes at `pointer` (C memory, such as a Lua string's).
 *
 * @example Usage
 * ```ts
 * import { copyCBytes } from "./strings.ts";
 *
 * const source = new Uint8Array([104, 105]);
 * console.log(copyCBytes(Deno.UnsafePointer.of(source)!, 2)); // Uint8Array(2) [ 104, 105 ]
 * ```
 *
 * @param pointer Where the bytes are.
 * @param n How many bytes to copy.
 * @returns a new array the caller owns.
 */
export function copyCBytes(pointer: Deno.PointerObject | null, n: number): Uint8Array {
  if (n === 0 || pointer === null) return new Uint8Array(0);
  return intoReadBuffer(pointer, n) ? readBuffer.slice(0, n) : freshBytes(pointer, n);
}

/**
 * Decodes the `n` bytes at `pointer` (C memory, such as a Lua string's) as UTF-8. Invalid UTF-8
 * stays readable with U+FFFD in place of bad sequences (`lossy`), or makes this return `null`.
 *
 * @example Usage
 * ```ts
 * import { decodeCBytes } from "./strings.ts";
 *
 * const source = new Uint8Array([0x68, 0xc3, 0xa9, 0xff]);
 * const pointer = Deno.UnsafePointer.of(source)!;
 * console.log(decodeCBytes(pointer, 3, false)); // "hé"
 * console.log(decodeCBytes(pointer, 4, false)); // null
 * console.log(decodeCBytes(pointer, 4, true)); // "hé\uFFFD"
 * ```
 *
 * @param pointer Where the bytes are.
 * @param n How many bytes to decode.
 * @param lossy Whether invalid UTF-8 is replaced (true) or refused (false: `null`).
 * @returns the text, or `null` for invalid UTF-8 when not `lossy`.
 */
export function decodeCBytes(pointer: Deno.PointerObject | null, n: number, lossy: boolean): string | null {
  if (n === 0 || pointer === null) return "";
  let bytes;
  if (intoReadBuffer(pointer, n)) {
    if (n <= KEPT_TEXT_BYTES) {
      const text = keptAscii(n);
      if (text !== null) return text;
    }
    bytes = readBuffer.subarray(0, n);
  } else {
    bytes = freshBytes(pointer, n);
  }
  if (lossy) return lenientDecoder.decode(bytes);
  try {
    return fatalDecoder.decode(bytes);
  } catch {
    return null;
  }
}

// The ASCII text of readBuffer[0..n), from its slot when the slot holds it; null when not ASCII.
function keptAscii(n: number): string | null {
  const bytes = readBuffer;
  let hash = n;
  for (let i = 0; i < n; i++) {
    const b = bytes[i];
    if (b >= 0x80) return null;
    hash = Math.imul(hash ^ b, 0x01000193);
  }
  const slot = hash & (KEPT_TEXTS - 1);
  const kept = keptTexts[slot];
  if (kept.length === n) {
    let i = 0;
    while (i < n && kept.charCodeAt(i) === bytes[i]) i++;
    if (i === n) return kept;
  }
  const text = String.fromCharCode.apply(null, bytes.subarray(0, n) as unknown as number[]);
  keptTexts[slot] = text;
  return text;
}
