/*
 * luagate's capped lua_Alloc.
 *
 * This file is NOT compiled at run time. scripts/build_native.sh compiles it once into
 * position-independent machine code with no relocations, and the resulting bytes are embedded in
 * ffi/allocator.ts, which copies them into an mmap'ed page, mprotects it to PROT_READ|PROT_EXEC and
 * hands its address to lua_newstate as the allocator. ffi/allocator.ts also contains a pure-JS
 * fallback (a Deno.UnsafeCallback) that counts exactly the same way (it has no pool and never serves a
 * state image); keep both in sync.
 *
 * Rules for this file, so that the output stays self-contained:
 *   - exactly one function (it must start at offset 0 of .text); helpers are always inlined;
 *   - no calls to anything but the function pointers in the state struct;
 *   - no globals, no string literals, no constants in .rodata;
 *   - no #include but luagate's own headers written to the same rules (we compile freestanding).
 */

#include "run_clock.h"

typedef __SIZE_TYPE__ size_t;

/*
 * Small blocks are recycled through a pool of free lists, one per 16-byte size class up to
 * SMALL_MAX bytes. Each small block is an ordinary libc block of exactly its class size, so any
 * block may go back to libc at any time. A small block that changes class (Lua's parser grows and
 * shrinks its arrays as it reads a chunk, tables grow) takes a block of the new class from the pool
 * when it has one, and the old block goes back to the pool; otherwise it is a libc realloc. Which
 * class a block is in follows from the size Lua passes with it (Lua always passes the exact old size
 * of a non-NULL block). The pool is shared by the states of one isolate (one thread) and holds at most
 * `limit` bytes; beyond that a freed block goes back to libc. Counting is unchanged: `used` and the
 * cap see the sizes Lua asks for, never the pool.
 */
#define SMALL_MAX 256
#define CLASS_SHIFT 4
#define CLASSES (SMALL_MAX >> CLASS_SHIFT)

typedef struct {
  size_t bytes;                        /* 0: bytes held in the free lists */
  size_t limit;                        /* 8: most bytes the free lists may hold */
  void *heads[CLASSES];                /* 16: free list of class c (blocks of (c + 1) * 16 bytes) */
} luagate_alloc_pool;

/* A growing allocation of at least LARGE_BYTES in a run past its CPU deadline (run_clock.h) is
 * refused. The hook checks the deadline only between instructions, and one instruction (a
 * concatenation) can copy as much as the cap allows; its allocation is the one place inside it that
 * luagate's code runs. */
#define LARGE_BYTES 65536

typedef struct {
  size_t used;                         /* 0: bytes currently held by the Lua state */
  size_t limit;                        /* 8: max allowed `used`; SIZE_MAX = no cap */
  void *(*realloc_fn)(void *, size_t); /* 16: libc realloc, found with dlsym at run time */
  void (*free_fn)(void *);             /* 24: libc free, found with dlsym at run time */
  size_t allow_overdraft;              /* 32: nonzero while the host pushes values: never refuse, record instead */
  size_t overdraft;                    /* 40: set to 1 when an allocation past `limit` was granted under allow_overdraft */
  size_t denied;                       /* 48: number of refused allocations (the host reads it as "memory limit hit") */
  size_t peak;                         /* 56: highest `used` seen (the host resets it per run) */
  luagate_alloc_pool *pool;            /* 64: the isolate's pool of small free blocks */
  luagate_run_clock *clock;            /* 72: the state's run clock; NULL: no deadline */
  luagate_clock_gettime clock_gettime; /* 80: libc's */
  size_t late;                         /* 88: allocations refused past the run's CPU deadline */
  char *image_start;                   /* 96: blocks in [image_start, image_end) belong to a state image */
  char *image_end;                     /* 104: (ffi/state_image.ts): never freed, never pooled */
  char *bump_next;                     /* 112: nonzero while a state is built into an image: new blocks */
  char *bump_end;                      /* 120: are carved from [bump_next, bump_end) */
} luagate_alloc_state;

/* The class of a small size: sizes 1..16 are class 0, 17..32 class 1, and so on. */
static inline __attribute__((always_inline)) size_t size_class(size_t size) {
  return (size - 1) >> CLASS_SHIFT;
}

/* What libc is asked for: the class size for a small block, the size itself for a large one. */
static inline __attribute__((always_inline)) size_t block_bytes(size_t size) {
  return size <= SMALL_MAX ? (size_class(size) + 1) << CLASS_SHIFT : size;
}

static inline __attribute__((always_inline)) void release(luagate_alloc_state *s, void *ptr, size_t size) {
  luagate_alloc_pool *pool = s->pool;
  /* size - 1 wraps for 0: a block Lua never frees, which would otherwise get class 2^60 - 1 */
  if (size - 1 < SMALL_MAX) {
    size_t bytes = block_bytes(size);
    if (pool->bytes + bytes <= pool->limit) {
      void **head = &pool->heads[size_class(size)];
      *(void **)ptr = *head;
      *head = ptr;
      pool->bytes += bytes;
      return;
    }
  }
  s->free_fn(ptr);
}

/* A block of an image (a built state's memory, or a copy of it) is no libc block: it is never
 * freed, and a resized one moves out of the image. */
static inline __attribute__((always_inline)) int in_image(luagate_alloc_state *s, void *ptr) {
  return (size_t)((char *)ptr - s->image_start) < (size_t)(s->image_end - s->image_start);
}

/* The next block of an image being built: 16-byte aligned, as libc's. */
static inline __attribute__((always_inline)) void *carve(luagate_alloc_state *s, size_t size) {
  const size_t bytes = (size + 15) & ~(size_t)15;
  if (bytes > (size_t)(s->bump_end - s->bump_next)) return (void *)0;
  void *p = s->bump_next;
  s->bump_next += bytes;
  return p;
}

typedef unsigned long long __attribute__((may_alias)) block_word;

/* Copies a block's first `bytes` to its new place, in whole 8-byte words: both blocks are 16-byte
 * aligned and hold at least `bytes` rounded up to 8 (a class size, an image's 16-byte multiple, or
 * a libc block's usable size). A loop: the code may call nothing (memcpy included), and the barrier
 * keeps the compiler from making the loop a call to it. */
static inline __attribute__((always_inline)) void move_block(void *to, const void *from, size_t bytes) {
  block_word *t = (block_word *)to;
  const block_word *f = (const block_word *)from;
  const size_t words = (bytes + 7) >> 3;
  for (size_t i = 0; i < words; i++) {
    __asm__("" : "+r"(i));
    t[i] = f[i];
  }
}

void *luagate_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  luagate_alloc_state *s = (luagate_alloc_state *)ud;
  /* With ptr == NULL, Lua 5.4 passes a type tag in osize, not a size. */
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    if (ptr) {
      s->used -= old;
      if (!in_image(s, ptr)) release(s, ptr, old);
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
  if (nsize >= old + LARGE_BYTES && s->clock && !s->allow_overdraft && past_deadline(s->clock, s->clock_gettime)) {
    s->late++;
    return (void *)0;
  }
  /* a block of the image Lua resizes, or any block while an image is built, moves (copied below) */
  const int moves = ptr && (s->bump_next || in_image(s, ptr));
  /* a small libc block changing class moves too when the pool has a block of the new class */
  int pooled_move = 0;
  void *p;
  if (s->bump_next) {
    p = carve(s, nsize);
  } else if (ptr && !moves && block_bytes(old) == block_bytes(nsize)) {
    p = ptr;
  } else if ((!ptr || moves || old <= SMALL_MAX) && nsize <= SMALL_MAX && s->pool->heads[size_class(nsize)]) {
    luagate_alloc_pool *pool = s->pool;
    void **head = &pool->heads[size_class(nsize)];
    p = *head;
    *head = *(void **)p;
    pool->bytes -= block_bytes(nsize);
    pooled_move = ptr && !moves;
  } else {
    p = s->realloc_fn(moves ? (void *)0 : ptr, block_bytes(nsize));
  }
  /* Lua assumes a shrinking block never fails; the old block is big enough for the new class. */
  if (!p && nsize < old) p = ptr;
  if ((moves || pooled_move) && p && p != ptr) move_block(p, ptr, old < nsize ? old : nsize);
  /* after the copy: releasing a block writes the free list's link into it */
  if (pooled_move) release(s, ptr, old);
  if (!p) {
    s->denied++;
    return (void *)0;
  }
  s->used = next;
  if (next > s->peak) s->peak = next;
  return p;
}
