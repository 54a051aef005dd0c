/*
 * luagate's data builder: a lua_CFunction that turns a program of pushes into Lua tables.
 *
 * The host encodes a plain JS value (objects, arrays, strings, numbers, booleans) as a flat program
 * in memory it owns, then calls this function with lua_pcall. One call replaces the dozens of FFI
 * crossings that pushing the same value field by field would take.
 *
 * This file is NOT compiled at run time. scripts/build_native.sh compiles it once into
 * position-independent machine code with no relocations, and the resulting bytes are embedded in
 * ffi/data_builder.ts, which copies them to the start of an mmap'ed page, writes the address of
 * the program description (luagate_data_program) into the last 8 bytes of that page, mprotects it
 * to PROT_READ|PROT_EXEC and pushes the page's address as a C function.
 *
 * The program comes from trusted host code, yet every operand is still checked: a malformed
 * program makes the function return no value (the host reports an internal error), never read or
 * write out of bounds, and never index a value that is not a table.
 *
 * Rules for this file, so that the output stays self-contained:
 *   - exactly one function (it must start at offset 0 of .text);
 *   - no calls to anything but the function pointers in the program description;
 *   - no globals, no string literals, no constants in .rodata, no initialised arrays (memset);
 *   - no #include (we compile freestanding).
 */

typedef __SIZE_TYPE__ size_t;
typedef __UINTPTR_TYPE__ uintptr_t;
typedef long long lua_Integer;
typedef double lua_Number;
typedef struct lua_State lua_State;

/* What the function needs: the Lua API (5.3 and 5.4 share these signatures) and the buffers. */
typedef struct {
  int (*checkstack)(lua_State *L, int n);                              /* 0 */
  void (*createtable)(lua_State *L, int narr, int nrec);               /* 8 */
  const char *(*pushlstring)(lua_State *L, const char *s, size_t len); /* 16 */
  void (*pushinteger)(lua_State *L, lua_Integer n);                    /* 24 */
  void (*pushnumber)(lua_State *L, lua_Number n);                      /* 32 */
  void (*pushboolean)(lua_State *L, int b);                            /* 40 */
  void (*rawset)(lua_State *L, int idx);                               /* 48 */
  void (*rawseti)(lua_State *L, int idx, lua_Integer n);               /* 56 */
  int (*rawgeti)(lua_State *L, int idx, lua_Integer n);                /* 64 */
  void (*pushvalue)(lua_State *L, int idx);                            /* 72 */
  void (*settop)(lua_State *L, int idx);                               /* 80 */
  int (*type)(lua_State *L, int idx);                                  /* 88 */
  const int *program;                                                  /* 96: header, then ops */
  size_t program_capacity;                                             /* 104: in ints */
  const char *bytes;                                                   /* 112: string bytes */
  size_t bytes_capacity;                                               /* 120 */
  const double *numbers;                                               /* 128: float operands */
  size_t numbers_capacity;                                             /* 136 */
} luagate_data_program;

/* The program: program[0] = number of ints that follow, program[1] = stack slots it needs. */
enum {
  OP_TABLE = 1,     /* narr nrec: push a new table */
  OP_STRING = 2,    /* offset length: push bytes[offset .. offset + length) */
  OP_INTEGER = 3,   /* low high: push the integer high * 2^32 + (unsigned) low */
  OP_NUMBER = 4,    /* index: push numbers[index] */
  OP_TRUE = 5,      /* push true */
  OP_FALSE = 6,     /* push false */
  OP_SET_FIELD = 7, /* t[k] = v for the table, key and value on top; pops key and value */
  OP_SET_INDEX = 8, /* i: t[i] = v for the table and value on top; pops the value */
  OP_KNOWN_STRING = 9 /* slot offset length: push known[slot], made from the bytes the first time */
};

/* Most slots a program may use; the host falls back to pushing field by field beyond it. */
#define MAX_SLOTS 256
#define LUA_TSTRING 4
#define LUA_TTABLE 5
/* Where the host stores the address of the description: the last 8 bytes of the code's page. */
#define PAGE_SIZE_MIN 4096

int luagate_build_data(lua_State *L) {
  uintptr_t here;
#if defined(__x86_64__)
  __asm__("lea 0(%%rip), %0" : "=r"(here));
#elif defined(__aarch64__)
  __asm__("adr %0, ." : "=r"(here));
#else
#error "luagate_build_data: only x86_64 and aarch64"
#endif
  const luagate_data_program *d =
      *(luagate_data_program *const *)((here & ~(uintptr_t)(PAGE_SIZE_MIN - 1)) + PAGE_SIZE_MIN - sizeof(void *));
  const int *op = d->program;
  size_t length = (size_t)(unsigned)op[0];
  int slots = op[1];
  if (length > d->program_capacity - 2 || slots < 1 || slots > MAX_SLOTS || !d->checkstack(L, slots + 1)) return 0;
  /* the table of known strings, the function's one argument */
  int has_known = d->type(L, 1) == LUA_TTABLE;
  op += 2;
  const int *end = op + length;
  /* is_table[i]: whether the i-th value this function pushed is a table */
  unsigned char is_table[MAX_SLOTS];
  int top = 0;
  while (op < end) {
    int code = *op++;
    if (code == OP_SET_FIELD) {
      if (top < 3 || !is_table[top - 3]) return 0;
      d->rawset(L, -3);
      top -= 2;
      continue;
    }
    if (code == OP_SET_INDEX) {
      if (end - op < 1 || top < 2 || !is_table[top - 2]) return 0;
      d->rawseti(L, -2, *op++);
      top -= 1;
      continue;
    }
    if (top >= slots) return 0;
    if (code == OP_TABLE) {
      if (end - op < 2 || op[0] < 0 || op[1] < 0) return 0;
      d->createtable(L, op[0], op[1]);
      op += 2;
      is_table[top++] = 1;
      continue;
    }
    if (code == OP_STRING) {
      if (end - op < 2) return 0;
      size_t offset = (size_t)(unsigned)op[0], n = (size_t)(unsigned)op[1];
      if (offset > d->bytes_capacity || n > d->bytes_capacity - offset) return 0;
      d->pushlstring(L, d->bytes + offset, n);
      op += 2;
    } else if (code == OP_KNOWN_STRING) {
      if (end - op < 3 || !has_known || op[0] < 1) return 0;
      size_t offset = (size_t)(unsigned)op[1], n = (size_t)(unsigned)op[2];
      if (offset > d->bytes_capacity || n > d->bytes_capacity - offset) return 0;
      if (d->rawgeti(L, 1, op[0]) != LUA_TSTRING) {
        d->settop(L, -2);
        d->pushlstring(L, d->bytes + offset, n);
        d->pushvalue(L, -1);
        d->rawseti(L, 1, op[0]);
      }
      op += 3;
    } else if (code == OP_INTEGER) {
      if (end - op < 2) return 0;
      unsigned long long bits = ((unsigned long long)(unsigned)op[1] << 32) | (unsigned)op[0];
      d->pushinteger(L, (lua_Integer)bits);
      op += 2;
    } else if (code == OP_NUMBER) {
      if (end - op < 1 || (size_t)(unsigned)op[0] >= d->numbers_capacity) return 0;
      d->pushnumber(L, d->numbers[(unsigned)op[0]]);
      op += 1;
    } else if (code == OP_TRUE || code == OP_FALSE) {
      d->pushboolean(L, code == OP_TRUE);
    } else {
      return 0;
    }
    is_table[top++] = 0;
  }
  return top == 1 && is_table[0] ? 1 : 0;
}
