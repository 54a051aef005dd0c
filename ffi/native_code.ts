/**
 * Machine code compiled ahead of time (by `scripts/build_native.sh`) and embedded as base64 text,
 * decoded for the running platform only: bare functions mapped into an executable page once per
 * process (the capped allocator, `ffi/allocator.c`, the data builder, `ffi/data_builder.c`, and the
 * fast lane, `ffi/fast_lane.c`), and a shared library opened from memory (the call runner,
 * `ffi/call_runner.c`). Text, because V8 parses a string literal at the speed of a copy: the same
 * bytes as array literals of numbers took 30 ms of every import of luagate, most of it the fast
 * lane's two architectures.
 *
 * @module
 */

import { type Libc, mapPrivateAnonymous, PROT_EXEC, PROT_READ, PROT_WRITE } from "./libc.ts";
import type { LuaLibrary } from "./library.ts";
import { switchedOn } from "./switches.ts";

/** The embedded code of one function, per supported architecture (Linux only), in base64. */
export interface EmbeddedCode {
  /** Code for Linux x86_64 (base64; line breaks are skipped). */
  readonly x86_64: string;
  /** Code for Linux aarch64 (base64; line breaks are skipped). */
  readonly aarch64: string;
}

/**
 * Whether embedded code runs here: on Linux x86_64 and aarch64, unless `LUAGATE_NO_NATIVE_CODE=1`
 * (which makes Linux take the path of platforms without it).
 *
 * @example Usage
 * ```ts
 * import { runsEmbeddedCode } from "./native_code.ts";
 *
 * console.log(runsEmbeddedCode()); // true on Linux x86_64 and aarch64
 * ```
 *
 * @returns whether {@linkcode platformCode} can answer.
 */
export function runsEmbeddedCode(): boolean {
  return Deno.build.os === "linux" && (Deno.build.arch === "x86_64" || Deno.build.arch === "aarch64") &&
    !switchedOn("LUAGATE_NO_NATIVE_CODE");
}

/**
 * The bytes of `code` for `arch`, decoded on every call.
 *
 * @example Usage
 * ```ts
 * import { embeddedBytes } from "./native_code.ts";
 *
 * console.log(embeddedBytes({ x86_64: "ww==", aarch64: "AAAAAA==" }, "x86_64")); // Uint8Array(1) [ 195 ]
 * ```
 *
 * @param code The embedded variants.
 * @param arch Which of them.
 * @returns a fresh array of the bytes.
 */
export function embeddedBytes(code: EmbeddedCode, arch: keyof EmbeddedCode): Uint8Array {
  return Uint8Array.fromBase64(code[arch]);
}

/**
 * The code for the running platform, if embedded code runs here ({@linkcode runsEmbeddedCode}),
 * decoded on every call: each caller asks once per process (per Lua library), and copies it.
 *
 * @example Usage
 * ```ts
 * import { platformCode } from "./native_code.ts";
 *
 * const code = platformCode({ x86_64: "ww==", aarch64: "AAAAAA==" });
 * console.log(code?.length); // 1 on Linux x86_64, 4 on Linux aarch64, undefined elsewhere
 * ```
 *
 * @param code The embedded variants.
 * @returns the variant for this OS and architecture, or `undefined`.
 */
export function platformCode(code: EmbeddedCode): Uint8Array | undefined {
  if (!runsEmbeddedCode()) return undefined;
  return embeddedBytes(code, Deno.build.arch === "x86_64" ? "x86_64" : "aarch64");
}

/**
 * The smallest page size of the supported platforms: a page holds the code at offset 0 and, when
 * asked, one pointer in its last 8 bytes (`ffi/data_builder.c` finds its description there).
 */
export const CODE_PAGE_BYTES = 4096;

const MAP_FAILED = 0xffff_ffff_ffff_ffffn;

/**
 * Copies `code` to the start of a fresh anonymous mapping and makes it read+execute. With
 * `lastWord`, also stores that 64-bit value in the last 8 bytes of the first `pages` times
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
 * @param lastWord A value to store in the last 8 bytes of the pages.
 * @param pages How many pages the code and `lastWord` take (with `lastWord`).
 * @returns the address of the first byte of the code.
 * @throws {Error} when the code does not fit or `mmap`/`mprotect` fail.
 */
export function mapExecutable(
  libc: Libc,
  code: Uint8Array,
  what: string,
  lastWord?: bigint,
  pages = 1,
): Deno.PointerObject {
  const size = lastWord === undefined ? code.length : pages * CODE_PAGE_BYTES;
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

// memfd_create flags: MFD_EXEC asks for an executable file where the kernel (6.3+) could make it
// non-executable by default (vm.memfd_noexec); older kernels refuse the flag, and allow exec anyway.
const MFD_CLOEXEC = 0x1;
const MFD_EXEC = 0x10;

/**
 * Opens a shared library embedded as bytes: writes them to an anonymous memory file
 * (`memfd_create`) and opens that with `Deno.dlopen` as `/proc/self/fd/N`, which needs
 * `--allow-ffi` and nothing else. Deno calls a symbol it got this way through its fast path; a
 * function pointer reached any other way (`Deno.UnsafeFnPointer`) costs about 200 times more a call.
 * The library stays loaded, and its file open, for the life of the process.
 *
 * @example Usage
 * ```ts ignore
 * import { openLibc } from "./libc.ts";
 * import { openEmbeddedLibrary } from "./native_code.ts";
 *
 * const bytes = Deno.readFileSync("libexample.so");
 * const lib = openEmbeddedLibrary(openLibc(), bytes, { f: { parameters: [], result: "i32" } });
 * console.log(lib?.symbols.f());
 * ```
 *
 * @param libc The C library (for `memfd_create`, `write` and `close`).
 * @param library The bytes of a shared library for this platform.
 * @param symbols The symbols to open, as for `Deno.dlopen`.
 * @returns the opened library, or `undefined` where this cannot be done: no `memfd_create` (not
 *   Linux, or glibc before 2.27), no `/proc`, or a file the loader refuses.
 */
export function openEmbeddedLibrary<const S extends Deno.ForeignLibraryInterface>(
  libc: Libc,
  library: Uint8Array,
  symbols: S,
): Deno.DynamicLibrary<S> | undefined {
  const memfdCreate = libc.memfd_create;
  if (memfdCreate === null) return undefined;
  const name = new TextEncoder().encode("luagate\0");
  let fd = memfdCreate(name, MFD_CLOEXEC | MFD_EXEC);
  if (fd < 0) fd = memfdCreate(name, MFD_CLOEXEC);
  if (fd < 0) return undefined;
  // The file stays open on success: the loader knows a library by its path, and a closed fd's
  // number comes back for the next memfd, whose dlopen would then get this library (another
  // version of luagate in the same process would call code of a layout it does not know).
  let opened: Deno.DynamicLibrary<S> | undefined;
  try {
    for (let written = 0; written < library.length;) {
      const n = Number(libc.write(fd, library.subarray(written), BigInt(library.length - written)));
      if (n <= 0) return undefined;
      written += n;
    }
    opened = Deno.dlopen(`/proc/self/fd/${fd}`, symbols);
    return opened;
  } catch {
    return undefined;
  } finally {
    if (opened === undefined) libc.close(fd);
  }
}

/**
 * The addresses of C functions, for a table native code calls them through; `undefined` when one of
 * them is missing (a symbol the library does not have).
 *
 * @example Usage
 * ```ts ignore
 * import { openLuaLibrary } from "./library.ts";
 * import { functionAddresses } from "./native_code.ts";
 *
 * const s = openLuaLibrary().symbols;
 * console.log(functionAddresses([s.address_lua_gettop, s.address_lua_settop])?.length); // 2
 * ```
 *
 * @param functions The functions' pointers, as `Deno.dlopen` gives statics of type "pointer".
 * @returns their addresses, in order, or `undefined`.
 */
export function functionAddresses(functions: readonly Deno.PointerValue[]): bigint[] | undefined {
  if (functions.some((f) => f === null)) return undefined;
  return functions.map((f) => Deno.UnsafePointer.value(f));
}

/**
 * Makes a native piece once per Lua library and process: `make` runs on the first call for
 * `library`, and its result (`undefined` too: the piece is not there) is what every later call gets.
 *
 * @example Usage
 * ```ts ignore
 * import { openLuaLibrary } from "./library.ts";
 * import { oncePerLibrary } from "./native_code.ts";
 *
 * const made = new Map();
 * const piece = oncePerLibrary(made, openLuaLibrary(), () => ({ made: Date.now() }));
 * ```
 *
 * @param made The pieces made so far, by library (`null`: not there).
 * @param library The Lua library the piece calls.
 * @param make Makes the piece, or returns `undefined` where there is none.
 * @returns the piece, or `undefined`.
 */
export function oncePerLibrary<T>(
  made: Map<LuaLibrary, T | null>,
  library: LuaLibrary,
  make: (library: LuaLibrary) => T | undefined,
): T | undefined {
  let piece = made.get(library);
  if (piece === undefined) {
    piece = make(library) ?? null;
    made.set(library, piece);
  }
  return piece ?? undefined;
}
