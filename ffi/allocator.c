/*
 * luagate's capped lua_Alloc.
 *
 * This file is NOT compiled at run time. scripts/build_native.sh compiles it once into
 * position-independent machine code with no relocations, and the resulting bytes are embedded in
 * ffi/allocator.ts, which copies them into an mmap'ed page, mprotects it to PROT_READ|PROT_EXEC and
 * hands its address to lua_newstate as the allocator. ffi/allocator.ts also contains a pure-JS
 * fallback (a Deno.UnsafeCallback) with exactly the same semantics; keep both in sync.
 *
 * Rules for this file, so that the output stays self-contained:
 *   - exactly one function (it must start at offset 0 of .text);
 *   - no calls to anything but the function pointers in the state struct;
 *   - no globals, no string literals, no constants in .rodata;
 *   - no #include (we compile freestanding).
 */

typedef __SIZE_TYPE__ size_t;

typedef struct {
  size_t used;                         /* 0: bytes currently held by the Lua state */
  size_t limit;                        /* 8: max allowed `used`; SIZE_MAX = no cap */
  void *(*realloc_fn)(void *, size_t); /* 16: libc realloc, found with dlsym at run time */
  void (*free_fn)(void *);             /* 24: libc free, found with dlsym at run time */
  size_t allow_overdraft;              /* 32: nonzero while the host pushes values: never refuse, record instead */
  size_t overdraft;                    /* 40: set to 1 when an allocation past `limit` was granted under allow_overdraft */
  size_t denied;                       /* 48: number of refused allocations (the host reads it as "memory limit hit") */
  size_t peak;                         /* 56: highest `used` seen (the host resets it per run) */
} luagate_alloc_state;

void *luagate_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  luagate_alloc_state *s = (luagate_alloc_state *)ud;
  /* With ptr == NULL, Lua 5.4 passes a type tag in osize, not a size. */
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    if (ptr) {
      s->used -= old;
      s->free_fn(ptr);
    }
    return (void *)0;
  }
  size_t next = s->used - old + nsize;
  if (nsize > old && next > s->limit) {
    if (!s->allow_overdraft) {
      s->denied++;
      return (void *)0;
    }
    s->overdraft = 1;
  }
  void *p = s->realloc_fn(ptr, nsize);
  if (!p) {
    s->denied++;
    return (void *)0;
  }
  s->used = next;
  if (next > s->peak) s->peak = next;
  return p;
}
