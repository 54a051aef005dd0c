/**
 * Moving strings between JS and C: UTF-8 encoding into a reused scratch buffer, decoding from a
 * C pointer, and NUL-terminated names for C parameters.
 *
 * @module
 */

const encoder = new TextEncoder();
const fatalDecoder = new TextDecoder("utf-8", { fatal: true });
const lenientDecoder = new TextDecoder("utf-8");

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
    const n = text.length;
    let buffer = this.#buffer;
    if (n <= 64) {
      let i = 0;
      for (; i < n; i++) {
        const c = text.charCodeAt(i);
        if (c >= 0x80) break;
        buffer[i] = c;
      }
      if (i === n) return n;
    }
    if (n * 3 > buffer.length) {
      buffer = this.#buffer = new Uint8Array(Math.max(n * 3, buffer.length * 2));
    }
    return encoder.encodeInto(text, buffer).written;
  }
}

const cStrings = new Map<string, Uint8Array>();

/**
 * `text` as a NUL-terminated UTF-8 buffer for a `const char *` parameter. Short strings are kept
 * (chunk names, library names, helper names recur on every state).
 */
export function cString(text: string): Uint8Array {
  const known = cStrings.get(text);
  if (known !== undefined) return known;
  const bytes = encoder.encode(text);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  if (text.length <= 64 && cStrings.size < 1024) cStrings.set(text, out);
  return out;
}

/**
 * Decodes `length` bytes at `pointer`. Valid UTF-8 becomes a string; invalid UTF-8 stays readable
 * with U+FFFD in place of bad sequences (`lossy`), or makes this return `null` (`!lossy`).
 */
export function decodeUtf8(bytes: Uint8Array, lossy: boolean): string | null {
  const n = bytes.length;
  if (n <= 32) {
    let ascii = true;
    for (let i = 0; i < n; i++) {
      if (bytes[i] >= 0x80) {
        ascii = false;
        break;
      }
    }
    if (ascii) return String.fromCharCode.apply(null, bytes as unknown as number[]);
  }
  if (lossy) return lenientDecoder.decode(bytes);
  try {
    return fatalDecoder.decode(bytes);
  } catch {
    return null;
  }
}
