/**
 * Machine code compiled ahead of time (by `scripts/build_native.sh`) and embedded as bytes: picked
 * for the running platform and mapped into an executable page once per process. Used for the
 * capped allocator (`ffi/allocator.c`) and the data builder (`ffi/data_builder.c`).
 *
 * @module
 */

import { type Libc, mapPrivateAnonymous, PROT_EXEC, PROT_READ, PROT_WRITE } from "./libc.ts";

/** The embedded code of one function, per supported architecture (Linux only). */
export interface EmbeddedCode {
  /** Code for Linux x86_64. */
  readonly x86_64: Uint8Array;
  /** Code for Linux aarch64. */
  readonly aarch64: Uint8Array;
}

/**
 * The code for the running platform, if there is one.
 *
 * @example Usage
 * ```ts
 * import { platformCode } from "./native_code.ts";
 *
 * const code = platformCode({ x86_64: new Uint8Array([0xc3]), aarch64: new Uint8Array(4) });
 * console.log(code?.length); // 1 on Linux x86_64, 4 on Linux aarch64, undefined elsewhere
 * ```
 *
 * @param code The embedded variants.
 * @returns the variant for this OS and architecture, or `undefined`.
 */
export function platformCode(code: EmbeddedCode): Uint8Array | undefined {
  if (Deno.build.os !== "linux") return undefined;
  if (Deno.build.arch === "x86_64") return code.x86_64;
  if (Deno.build.arch === "aarch64") return code.aarch64;
  return undefined;
}

/**
 * The smallest page size of the supported platforms: a page holds the code at offset 0 and, when
 * asked, one pointer in its last 8 bytes (`ffi/data_builder.c` finds its description there).
 */
export const CODE_PAGE_BYTES = 4096;

const MAP_FAILED = 0xffff_ffff_ffff_ffffn;

/**
 * Copies `code` to the start of a fresh anonymous mapping and makes it read+execute. With
 * `lastWord`, also stores that 64-bit value in the last 8 bytes of the first
 * {@linkcode CODE_PAGE_BYTES}, where position-independent code can find it relative to itself.
 * The mapping is never unmapped: Lua states may call the code for the life of the process.
 *
 * @example Usage
 * ```ts ignore
 * import { openLibc } from "./libc.ts";
 * import { mapExecutable } from "./native_code.ts";
 *
 * const entry = mapExecutable(openLibc(), new Uint8Array([0xc3]), "an example"); // x86_64 `ret`
 * ```
 *
 * @param libc The C library (for `mmap` and `mprotect`).
 * @param code Position-independent machine code with no relocations.
 * @param what What the code is, for error messages.
 * @param lastWord A value to store in the last 8 bytes of the page.
 * @returns the address of the first byte of the code.
 * @throws {Error} when the code does not fit or `mmap`/`mprotect` fail.
 */
export function mapExecutable(
  libc: Libc,
  code: Uint8Array,
  what: string,
  lastWord?: bigint,
): Deno.PointerObject {
  const size = lastWord === undefined ? code.length : CODE_PAGE_BYTES;
  if (code.length > size - (lastWord === undefined ? 0 : 8)) {
    throw new Error(`luagate: ${what} does not fit its page`);
  }
  const page = libc.mmap(null, BigInt(size), PROT_READ | PROT_WRITE, mapPrivateAnonymous(), -1, 0n);
  if (page === null || Deno.UnsafePointer.value(page) === MAP_FAILED) {
    throw new Error(`luagate: mmap failed for ${what}`);
  }
  const view = new Deno.UnsafePointerView(page).getArrayBuffer(size);
  new Uint8Array(view).set(code);
  if (lastWord !== undefined) new BigUint64Array(view, size - 8, 1)[0] = lastWord;
  // On aarch64, Linux makes the instruction cache coherent when a page first becomes executable
  // (set_pte_at -> __sync_icache_dcache), so no explicit cache flush is needed after this.
  if (libc.mprotect(page, BigInt(size), PROT_READ | PROT_EXEC) !== 0) {
    throw new Error(`luagate: mprotect(PROT_READ|PROT_EXEC) failed for ${what}`);
  }
  return page;
}
