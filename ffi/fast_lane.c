/*
 * luagate's fast lane: the common case of a few vetted library functions, decided in C.
 *
 * Each vetted function of the sandbox (policy/kernel_libraries.ts, policy/patterns.ts) is a Lua
 * wrapper that proves a call cheap before it hands it to Lua's own C function, and charges the
 * work to the run's budget. Under the count hook every instruction of those wrappers costs several
 * nanoseconds: the proof alone took longer than the C call it guarded (string.match about 700 ns
 * against 250 ns in plain Lua). The wrappers now ask this function first, once, and take their own
 * path only when it says no. It proves exactly what the wrapper would, from the same tables, so a
 * call takes the same route with the same results either way.
 *
 * Work it finds cheap is added to a tally (per state, in memory the host owns) instead of charged
 * at once: charging is a Lua call. When the tally reaches a hook step, the answer is the tally
 * itself, which the wrapper charges before it goes on; the host counts what is left at the end of
 * a run. So the budget lags by less than a step (plus, after a find, the part that find searched,
 * bounded like every quick call), as it lags by less than a step for the hook's own instructions.
 *
 * Three operations also make the call they approve (string.format, table.concat, and functions
 * whose work is the string they are given, such as string.upper and tonumber): the wrapper hands
 * over the library's own C function with the arguments, and this function calls it with lua_callk,
 * as the wrapper would have, and returns its result. The arguments it lets through make that
 * function convert nothing through a metamethod, so no Lua code runs inside; an error it raises (a
 * bad argument, no memory) goes to the caller with the same message and argument numbers as on the
 * wrapper's own path.
 *
 * One C closure per operation, with two upvalues: the state's tally (a light userdata) and the
 * operation. This function never raises an error of its own and never calls Lua or the host.
 *
 * This file is NOT compiled at run time. scripts/build_native.sh compiles it once into
 * position-independent machine code with no relocations, embedded in ffi/fast_lane.ts, which maps
 * it into a page whose last 8 bytes hold the address of the Lua functions it calls (as
 * ffi/data_builder.c does).
 *
 * Rules for this file, so that the output stays self-contained:
 *   - exactly one function (it must start at offset 0 of .text); helpers are always inlined;
 *   - no calls to anything but the function pointers in the description;
 *   - no globals, no string literals, no constants in .rodata (no floating-point literals);
 *   - no #include (we compile freestanding).
 */

typedef __SIZE_TYPE__ size_t;
typedef __UINTPTR_TYPE__ uintptr_t;
typedef long long lua_Integer;
typedef double lua_Number;
typedef struct lua_State lua_State;

/* What the function needs: the Lua API (5.3 and 5.4 share these signatures). */
typedef struct {
  int (*gettop)(lua_State *L);                                  /* 0 */
  int (*type)(lua_State *L, int idx);                           /* 8 */
  int (*isinteger)(lua_State *L, int idx);                      /* 16 */
  lua_Integer (*tointegerx)(lua_State *L, int idx, int *isnum); /* 24 */
  lua_Number (*tonumberx)(lua_State *L, int idx, int *isnum);   /* 32 */
  int (*toboolean)(lua_State *L, int idx);                      /* 40 */
  size_t (*rawlen)(lua_State *L, int idx);                      /* 48 */
  void *(*touserdata)(lua_State *L, int idx);                   /* 56 */
  int (*rawgeti)(lua_State *L, int idx, lua_Integer n);         /* 64 */
  int (*rawget)(lua_State *L, int idx);                         /* 72 */
  void (*rawseti)(lua_State *L, int idx, lua_Integer n);        /* 80 */
  int (*getmetatable)(lua_State *L, int idx);                   /* 88 */
  void (*pushvalue)(lua_State *L, int idx);                     /* 96 */
  void (*settop)(lua_State *L, int idx);                        /* 104 */
  void (*pushboolean)(lua_State *L, int b);                     /* 112 */
  void (*pushinteger)(lua_State *L, lua_Integer n);             /* 120 */
  void (*callk)(lua_State *L, int nargs, int nresults, __INTPTR_TYPE__ ctx, void *k); /* 128 */
  long long registry;                                           /* 136: LUA_REGISTRYINDEX */
} luagate_lane_api;

/* One state's tally; the host resets it at the start of a run and counts what is left at the end. */
typedef struct {
  double tally;             /* 0: units of work done in C and not yet charged */
  double flush_at;          /* 8: the tally is handed over once it reaches this (the hook's step) */
  double few;               /* 16: work worth fewer units is not charged (as in the wrappers) */
  lua_Integer find_from;    /* 24: the last quick find's start position, subject and pattern */
  lua_Integer find_subject; /* 32: lengths, for LANE_FOUND */
  lua_Integer find_pattern; /* 40 */
} luagate_lane_state;

/* The operations, the closure's second upvalue; keep in sync with ffi/fast_lane.ts. */
enum {
  LANE_FIND = 1,   /* (quick, s, p [, init [, plain]]): false, true, or what to charge, then LANE_FOUND */
  LANE_MATCH = 2,  /* (quick, s, p [, init]): false, true, or what to charge first */
  LANE_GMATCH = 3, /* (quick, s, p [, init]): false, true, or what to charge first */
  LANE_FOUND = 4,  /* (C find's results): tallies the part it searched, returns them unchanged */
  LANE_APPEND = 5, /* (t, v): t[#t + 1] = v for a table without a metatable: true; else false */
  LANE_FORMAT = 6, /* (kinds, format, fmt, ...): format(fmt, ...) or false [, what to charge] */
  LANE_BYTES = 7,  /* (f, s, ...): f(s, ...) or false [, what to charge], charging s as bytes */
  LANE_CONCAT = 8, /* (concat, t, sep, i, j): concat(t, sep, i, j) or false [, what to charge] */
  LANE_GSUB = 9    /* (quick, s, p, repl [, nil]): false, true, or what to charge first */
};

/* The kinds of format strings the wrapper keeps (policy/kernel_libraries.ts, `format_kinds`). */
enum { NO_CONVERSION = 1, NO_STRING_CONVERSION = 2, STRING_CONVERSIONS = 3 };
/* string.format converts at most this many arguments with %s without the wrapper's checks */
#define PLAIN_ARGUMENTS 4
/* charge_bytes in policy/kernel.ts: one unit per 16 bytes, for strings of at least 16 bytes */
#define BYTES_PER_UNIT_SHIFT 4

/* The keys of the pattern matcher's table of quick patterns (policy/patterns.ts, `quick`); at
 * QUICK_PLAIN_WORK, the work a plain find may do in C (the matcher's LIMIT). */
enum { QUICK_FIND = 1, QUICK_MATCH = 2, QUICK_GSUB = 3, QUICK_GMATCH = 4, QUICK_PLAIN_WORK = 5 };

#define LUA_TNIL 0
#define LUA_TBOOLEAN 1
#define LUA_TNUMBER 3
#define LUA_TSTRING 4
#define LUA_TTABLE 5
/* Where the host stores the address of the description: the last 8 bytes of the code's page. */
#define PAGE_SIZE_MIN 4096

#define INLINE static inline __attribute__((always_inline))

/* Whether the matcher proved the pattern at index 3 cheap under `which` of the quick table at
 * index 1 (for gsub, with the replacement at index `replacement`, in the pattern's own table);
 * `limit` is then the longest subject (from the start position) it proved cheap for. */
INLINE int quick_limit(const luagate_lane_api *lua, lua_State *L, int which, int replacement, lua_Number *limit) {
  if (lua->type(L, 1) != LUA_TTABLE) return 0;
  int pushed = 1, found = 0;
  if (lua->rawgeti(L, 1, which) == LUA_TTABLE) {
    lua->pushvalue(L, 3);
    pushed++;
    int type = lua->rawget(L, -2);
    if (replacement && type == LUA_TTABLE) {
      lua->pushvalue(L, replacement);
      pushed++;
      type = lua->rawget(L, -2);
    }
    if (type == LUA_TNUMBER) {
      *limit = lua->tonumberx(L, -1, 0);
      found = 1;
    }
  }
  lua->settop(L, -1 - pushed);
  return found;
}

/* The longest subject (from the start position) whose plain search for a pattern of `pattern` > 0
 * bytes the matcher hands to C (its plain_limit): lmemfind compares up to that many bytes at each
 * of its positions. */
INLINE int plain_limit(const luagate_lane_api *lua, lua_State *L, lua_Integer pattern, lua_Number *limit) {
  if (lua->type(L, 1) != LUA_TTABLE) return 0;
  const int found = lua->rawgeti(L, 1, QUICK_PLAIN_WORK) == LUA_TNUMBER && lua->isinteger(L, -1);
  if (found) *limit = (lua_Number)(lua->tointegerx(L, -1, 0) / pattern - 1);
  lua->settop(L, -2);
  return found;
}

/* The start position given at `idx` (absent or nil: 1); 0 when it is not an integer. */
INLINE lua_Integer start_position(const luagate_lane_api *lua, lua_State *L, int idx, int n) {
  if (n < idx || lua->type(L, idx) == LUA_TNIL) return 1;
  if (!lua->isinteger(L, idx)) return 0;
  return lua->tointegerx(L, idx, 0);
}

/* `units`, or none when they are few (as the wrappers leave them uncharged). */
INLINE double unless_few(const luagate_lane_state *state, double units) {
  return units >= state->few ? units : 0;
}

/* Adds `units` to the tally unless they are few. */
INLINE void tally(luagate_lane_state *state, lua_Integer units) {
  state->tally += unless_few(state, (double)units);
}

/* Hands over the tally: pushes it and clears it. */
INLINE void hand_over(const luagate_lane_api *lua, lua_State *L, luagate_lane_state *state) {
  lua_Integer units = (lua_Integer)state->tally;
  state->tally = 0;
  lua->pushinteger(L, units);
}

/* The answer of a quick call: what to charge first when the tally reached a step, else `quiet`
 * (true, or 0 for a find that tallies after the call). */
INLINE int answer(const luagate_lane_api *lua, lua_State *L, luagate_lane_state *state, int quiet_true) {
  if (state->tally >= state->flush_at) {
    hand_over(lua, L, state);
  } else if (quiet_true) {
    lua->pushboolean(L, 1);
  } else {
    lua->pushinteger(L, 0);
  }
  return 1;
}

INLINE int refuse(const luagate_lane_api *lua, lua_State *L) {
  lua->pushboolean(L, 0);
  return 1;
}

/* The units charge_bytes would charge for the value at `idx`: its bytes over 16, for a string. */
INLINE double string_units(const luagate_lane_api *lua, lua_State *L, int idx) {
  if (lua->type(L, idx) != LUA_TSTRING) return 0;
  return (double)((lua_Integer)lua->rawlen(L, idx) >> BYTES_PER_UNIT_SHIFT);
}

/* Calls the function at index `at` on the values above it, with `before` units tallied first (the
 * work the wrapper charges before such a call) and, when `charge_result`, the units of the string
 * it returns after; returns that result, then what to charge when the tally reached a step. A call
 * whose units before would reach the step is refused (false, then the tally to charge): the
 * wrapper charges them itself before the work is done, as it always does. */
INLINE int charge_and_call(const luagate_lane_api *lua, lua_State *L, luagate_lane_state *state, double before,
                           int at, int n, int charge_result) {
  if (state->tally + before >= state->flush_at) {
    lua->pushboolean(L, 0);
    hand_over(lua, L, state);
    return 2;
  }
  state->tally += before;
  lua->callk(L, n - at, 1, 0, 0);
  if (charge_result) state->tally += string_units(lua, L, at);
  if (state->tally < state->flush_at) return 1;
  hand_over(lua, L, state);
  return 2;
}

/* Whether the values from `from` to `n` are ones %s shows without a metamethod. */
INLINE int all_plain(const luagate_lane_api *lua, lua_State *L, int from, int n) {
  for (int i = from; i <= n; i++) {
    int type = lua->type(L, i);
    if (type != LUA_TNIL && type != LUA_TBOOLEAN && type != LUA_TNUMBER && type != LUA_TSTRING) return 0;
  }
  return 1;
}

int luagate_fast_lane(lua_State *L) {
  uintptr_t here;
#if defined(__x86_64__)
  __asm__("lea 0(%%rip), %0" : "=r"(here));
#elif defined(__aarch64__)
  __asm__("adr %0, ." : "=r"(here));
#else
#error "luagate_fast_lane: only x86_64 and aarch64"
#endif
  const luagate_lane_api *lua =
      *(luagate_lane_api *const *)((here & ~(uintptr_t)(PAGE_SIZE_MIN - 1)) + PAGE_SIZE_MIN - sizeof(void *));
  const int upvalues = (int)lua->registry;
  luagate_lane_state *state = (luagate_lane_state *)lua->touserdata(L, upvalues - 1);
  const int op = (int)lua->tointegerx(L, upvalues - 2, 0);
  const int n = lua->gettop(L);
  if (state == 0) return refuse(lua, L);

  if (op == LANE_FOUND) {
    lua_Integer end = state->find_subject;
    if (n >= 2 && lua->type(L, 1) != LUA_TNIL) end = lua->tointegerx(L, 2, 0);
    tally(state, end - state->find_from + 1 + state->find_pattern);
    return n;
  }

  if (op == LANE_APPEND) {
    if (n != 2 || lua->type(L, 1) != LUA_TTABLE) return refuse(lua, L);
    if (lua->getmetatable(L, 1)) {
      lua->settop(L, -2);
      return refuse(lua, L);
    }
    lua->rawseti(L, 1, (lua_Integer)lua->rawlen(L, 1) + 1);
    lua->pushboolean(L, 1);
    return 1;
  }

  if (op == LANE_BYTES) {
    if (n < 2) return refuse(lua, L);
    return charge_and_call(lua, L, state, string_units(lua, L, 2), 1, n, 0);
  }

  if (op == LANE_CONCAT) {
    /* a table without a metatable, positions absent or integers: the range is charged as items */
    if (n != 5 || lua->type(L, 2) != LUA_TTABLE) return refuse(lua, L);
    for (int at = 4; at <= 5; at++) {
      if (lua->type(L, at) != LUA_TNIL && !lua->isinteger(L, at)) return refuse(lua, L);
    }
    if (lua->getmetatable(L, 2)) {
      lua->settop(L, -2);
      return refuse(lua, L);
    }
    const lua_Integer first = start_position(lua, L, 4, n);
    const lua_Integer last =
        lua->type(L, 5) == LUA_TNIL ? (lua_Integer)lua->rawlen(L, 2) : lua->tointegerx(L, 5, 0);
    /* an empty range costs nothing; a range of a step or more is the wrapper's to charge first
     * (last - first, unsigned, cannot wrap around, unlike last - first + 1 in integers) */
    double items = 0;
    if (last >= first) {
      const unsigned long long gap = (unsigned long long)last - (unsigned long long)first;
      if (gap >= (unsigned long long)(lua_Integer)state->flush_at) return refuse(lua, L);
      items = (double)(gap + 1);
    }
    return charge_and_call(lua, L, state, unless_few(state, items), 1, n, 1);
  }

  if (op == LANE_FORMAT) {
    if (n < 3 || lua->type(L, 1) != LUA_TTABLE || lua->type(L, 3) != LUA_TSTRING) return refuse(lua, L);
    lua->pushvalue(L, 3);
    const int kind = lua->rawget(L, 1) == LUA_TNUMBER ? (int)lua->tointegerx(L, -1, 0) : 0;
    lua->settop(L, -2);
    if (kind == NO_CONVERSION) {
      lua->pushvalue(L, 3);
      return 1;
    }
    if (kind == STRING_CONVERSIONS ? n - 3 > PLAIN_ARGUMENTS || !all_plain(lua, L, 4, n)
                                   : kind != NO_STRING_CONVERSION) {
      return refuse(lua, L);
    }
    return charge_and_call(lua, L, state, unless_few(state, (double)lua->rawlen(L, 3)), 2, n, 1);
  }

  /* the pattern functions: (quick, s, p, ...) */
  if (n < 3 || lua->type(L, 2) != LUA_TSTRING || lua->type(L, 3) != LUA_TSTRING) return refuse(lua, L);
  const lua_Integer subject = (lua_Integer)lua->rawlen(L, 2), pattern = (lua_Integer)lua->rawlen(L, 3);

  if (op == LANE_GMATCH) {
    if (n >= 4 && lua->type(L, 4) != LUA_TNIL) return refuse(lua, L);
    lua_Number limit;
    if (!quick_limit(lua, L, QUICK_GMATCH, 0, &limit) || (lua_Number)subject > limit) return refuse(lua, L);
    tally(state, subject + pattern);
    return answer(lua, L, state, 1);
  }

  if (op == LANE_GSUB) {
    if (n < 4 || lua->type(L, 4) != LUA_TSTRING || (n >= 5 && lua->type(L, 5) != LUA_TNIL)) return refuse(lua, L);
    lua_Number limit;
    if (!quick_limit(lua, L, QUICK_GSUB, 4, &limit) || (lua_Number)subject > limit) return refuse(lua, L);
    tally(state, subject + pattern);
    return answer(lua, L, state, 1);
  }

  const lua_Integer from = start_position(lua, L, 4, n);
  const lua_Integer rest = subject - from + 1;
  if (from <= 0) return refuse(lua, L);

  if (op == LANE_MATCH) {
    if (rest < 0) return refuse(lua, L);
    lua_Number limit;
    if (!quick_limit(lua, L, QUICK_MATCH, 0, &limit) || (lua_Number)rest > limit) return refuse(lua, L);
    tally(state, rest + pattern);
    return answer(lua, L, state, 1);
  }

  if (op == LANE_FIND) {
    if (pattern > rest) return refuse(lua, L);
    lua_Number limit;
    if (n >= 5 && lua->toboolean(L, 5)) {
      if (pattern == 0 || !plain_limit(lua, L, pattern, &limit)) return refuse(lua, L);
    } else if (!quick_limit(lua, L, QUICK_FIND, 0, &limit)) {
      return refuse(lua, L);
    }
    if ((lua_Number)rest > limit) return refuse(lua, L);
    if ((double)(rest + pattern) < state->few) {
      lua->pushboolean(L, 1);
      return 1;
    }
    state->find_from = from;
    state->find_subject = subject;
    state->find_pattern = pattern;
    return answer(lua, L, state, 0);
  }
  return refuse(lua, L);
}
