/**
 * The few C library functions luagate calls directly: memory for the capped allocator and the
 * embedded native code, copies out of C memory, the clocks ({@linkcode LIBC_SYMBOLS}). The library
 * is opened lazily, once per process, by {@linkcode openLibc}.
 *
 * @module
 */

/** Symbol table of the C library functions luagate uses, each with its C signature. */
export const LIBC_SYMBOLS = {
  /** `void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset);` */
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  /** `int munmap(void *addr, size_t length);` */
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  /** `int mprotect(void *addr, size_t len, int prot);` */
  mprotect: { parameters: ["pointer", "usize", "i32"], result: "i32" },
  /** `void *dlsym(void *handle, const char *symbol);` (in libdl.so.2 before glibc 2.34) */
  dlsym: { parameters: ["pointer", "buffer"], result: "pointer", optional: true },
  /** `void *realloc(void *ptr, size_t size);` */
  realloc: { parameters: ["pointer", "usize"], result: "pointer" },
  /** `void *memcpy(void *dest, const void *src, size_t n);` (the result, `dest`, is not read) */
  memcpy: { parameters: ["buffer", "pointer", "usize"], result: "void" },
  /** `void free(void *ptr);` */
  free: { parameters: ["pointer"], result: "void" },
  /** `int clock_gettime(clockid_t clockid, struct timespec *tp);` */
  clock_gettime: { parameters: ["i32", "pointer"], result: "i32" },
  /** `int memfd_create(const char *name, unsigned int flags);` (Linux, glibc 2.27 and later) */
  memfd_create: { parameters: ["buffer", "u32"], result: "i32", optional: true },
  /** `ssize_t write(int fd, const void *buf, size_t count);` */
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  /** `int close(int fd);` */
  close: { parameters: ["i32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** `dlsym` alone, for glibc before 2.34 where it lives in libdl.so.2. */
const LIBDL_SYMBOLS = {
  /** `void *dlsym(void *handle, const char *symbol);` */
  dlsym: { parameters: ["pointer", "buffer"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The functions of {@linkcode LIBC_SYMBOLS}, with `dlsym` resolved (from libdl if needed). */
export type Libc = Omit<Deno.DynamicLibrary<typeof LIBC_SYMBOLS>["symbols"], "dlsym"> & {
  /** `void *dlsym(void *handle, const char *symbol);` */
  readonly dlsym: (handle: Deno.PointerValue, symbol: BufferSource | null) => Deno.PointerValue;
};

/** `PROT_READ` from `<sys/mman.h>` (same value on Linux and macOS). */
export const PROT_READ = 0x1;
/** `PROT_WRITE` from `<sys/mman.h>` (same value on Linux and macOS). */
export const PROT_WRITE = 0x2;
/** `PROT_EXEC` from `<sys/mman.h>` (same value on Linux and macOS). */
export const PROT_EXEC = 0x4;

/**
 * The file name of the C library for the running OS.
 *
 * @example Usage
 * ```ts
 * import { libcPath } from "./libc.ts";
 * console.log(libcPath()); // "libc.so.6" on Linux
 * ```
 *
 * @returns `"libc.so.6"` on Linux, `"libSystem.B.dylib"` on macOS.
 * @throws {Error} on any other OS.
 */
export function libcPath(): string {
  switch (Deno.build.os) {
    case "linux":
      return "libc.so.6";
    case "darwin":
      return "libSystem.B.dylib";
    default:
      throw new Error(`luagate: no C library binding for ${Deno.build.os} (supported: linux, darwin)`);
  }
}

/**
 * `MAP_PRIVATE | MAP_ANONYMOUS` for the running OS.
 *
 * @example Usage
 * ```ts
 * import { mapPrivateAnonymous } from "./libc.ts";
 * console.log(mapPrivateAnonymous()); // 0x22 on Linux
 * ```
 *
 * @returns the `flags` argument of `mmap` for a private anonymous mapping.
 */
export function mapPrivateAnonymous(): number {
  return Deno.build.os === "darwin" ? 0x0002 | 0x1000 : 0x02 | 0x20;
}

let libc: Libc | undefined;

/**
 * Opens the C library once per process (needs `--allow-ffi`) and returns its functions.
 *
 * The library is never closed: the capped allocator keeps calling into it for the life of the process.
 *
 * @example Usage
 * ```ts
 * import { openLibc } from "./libc.ts";
 * const libc = openLibc();
 * const p = libc.realloc(null, 16n);
 * libc.free(p);
 * ```
 *
 * @returns the functions of {@linkcode LIBC_SYMBOLS}.
 * @throws {Error} when the OS has no binding or the library cannot be opened.
 */
export function openLibc(): Libc {
  if (libc) return libc;
  const lib = Deno.dlopen(libcPath(), LIBC_SYMBOLS);
  let dlsym = lib.symbols.dlsym;
  if (dlsym === null) {
    try {
      dlsym = Deno.dlopen("libdl.so.2", LIBDL_SYMBOLS).symbols.dlsym;
    } catch {
      dlsym = () => null;
    }
  }
  libc = { ...lib.symbols, dlsym };
  return libc;
}

/** C memory from {@linkcode cMemory}: its pointer, its address and a view of its bytes. */
export interface CMemory {
  pointer: Deno.PointerObject;
  address: bigint;
  buffer: ArrayBuffer;
}

/**
 * `size` bytes of C memory that are never freed: native code and Lua states may keep using them for
 * the life of the process, and C reads them at an address V8 never moves.
 *
 * @example Usage
 * ```ts
 * import { cMemory, openLibc } from "./libc.ts";
 * const memory = cMemory(openLibc(), 16);
 * new Int32Array(memory.buffer)[0] = 7;
 * ```
 *
 * @param libc the C library, from {@linkcode openLibc}.
 * @param size bytes to allocate.
 * @returns the memory's pointer, address and bytes.
 * @throws {Error} when the C library has no memory to give.
 */
export function cMemory(libc: Libc, size: number): CMemory {
  const pointer = libc.realloc(null, BigInt(size));
  if (pointer === null) throw new Error(`luagate: no C memory for ${size} bytes`);
  return {
    pointer,
    address: Deno.UnsafePointer.value(pointer),
    buffer: new Deno.UnsafePointerView(pointer).getArrayBuffer(size),
  };
}

/**
 * C memory holding `words` as 64-bit words, in order (negative values as two's complement): the
 * descriptions native code reads its function pointers and settings from. Never freed, as
 * {@linkcode cMemory}.
 *
 * @example Usage
 * ```ts
 * import { cWords, openLibc } from "./libc.ts";
 * const address = cWords(openLibc(), [1n, -1n]);
 * ```
 *
 * @param libc the C library, from {@linkcode openLibc}.
 * @param words the words to store.
 * @returns the memory's address.
 * @throws {Error} when the C library has no memory to give.
 */
export function cWords(libc: Libc, words: readonly bigint[]): bigint {
  const memory = cMemory(libc, words.length * 8);
  new BigInt64Array(memory.buffer).set(words.map((word) => BigInt.asIntN(64, word)));
  return memory.address;
}
