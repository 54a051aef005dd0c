/*
 * luagate's fast lane: the common case of a few vetted library functions, decided in C.
 *
 * Each vetted function of the sandbox (policy/kernel_libraries.ts, policy/patterns.ts) proves a
 * call cheap before it hands it to Lua's own C function, and charges the work to the run's budget.
 * Under the count hook every instruction of a Lua wrapper doing that costs several nanoseconds: the
 * proof alone took longer than the C call it guarded (string.match about 700 ns against 250 ns in
 * plain Lua). So the proof is made here, once, from the same tables the wrapper reads, and the
 * wrapper's own path is taken only when it fails: a call takes the same route with the same results
 * either way.
 *
 * Work it finds cheap is added to a tally (per state, in memory the host owns) instead of charged
 * at once: charging is a Lua call. When the tally reaches a hook step, it is charged at once, by
 * calling the kernel's charge function (which may raise the limit's error: a Lua error in a C
 * function called from Lua, never a longjmp across the host); the host counts what is left at the
 * end of a run. So the budget lags by less than a step (plus, after a find, the part that find
 * searched, bounded like every quick call), as it lags by less than a step for the hook's own
 * instructions.
 *
 * Each vetted function that has a common case is this function itself: an entry, a closure made
 * by the operation LANE_ENTRY with the library's C function, the kernel's charge, the wrapper's own
 * route and what that route keeps (a format's kinds, the matcher's quick patterns) as upvalues. An
 * entry takes the call as the sandbox made it. When the call is the common case, it charges and
 * calls the library's function with lua_callk, as the wrapper would have; the arguments it lets
 * through make that function convert nothing through a metamethod and call no Lua, and an error it
 * raises (a bad argument, no memory) goes to the caller with the same message as on the route. Some
 * entries do the work of Lua's function themselves, with the API call that function would make
 * (rawset, setmetatable, next, rawget, rawlen, remove, unpack); pcall makes its protected call with
 * lua_pcallk and is that call's continuation. Any other call goes to the route, with every
 * argument; the route's errors count the entry as one more level between them and the caller.
 *
 * Six operations serve luagate's own Lua, not a library function: the catch points' message
 * handler (ENTRY_LOCATE) and frame (ENTRY_FRAME), the pattern matcher's scan for the longest run of a
 * class (ENTRY_RUN), the kernel's guard on the nesting of C functions that call back into Lua
 * (ENTRY_NESTED), its CPU clock (ENTRY_CLOCK), and the arming of its count hook (ENTRY_ARM).
 *
 * The count hook is C (count_hook, after the entry) so that it can fire often: one instruction can
 * be slow (comparing two 16 MiB strings takes milliseconds), and a run past its CPU deadline goes on
 * until the hook next looks at the clock. Every HOOK_EVERY instructions it adds them up, and hands
 * them to the kernel's hook (a Lua function, which counts them against the budget and raises a
 * tripped limit) once they reach a step. It also reads the wall clock at every CLOCK_FIRINGS-th
 * firing of a step (at every one on a large heap, where single instructions are slowest), and calls
 * the kernel's hook as soon as the run may be past its deadline. It finds its state in the extra
 * space of the thread (lua_getextraspace), which every new thread copies from the main thread.

 * This file is NOT compiled at run time. scripts/build_native.sh compiles it once into
 * position-independent machine code with no relocations, embedded in ffi/fast_lane.ts, which maps
 * it into four pages whose last 8 bytes hold the address of the Lua functions it calls (as
 * ffi/data_builder.c does).
 *
 * Rules for this file, so that the output stays self-contained:
 *   - one exported function (it must start at offset 0 of .text) and the count hook, a static
 *     function after it whose address the entry takes PC-relative; helpers are always inlined;
 *   - no calls to anything but the function pointers in the description;
 *   - no globals, no string literals, no constants in .rodata (no floating-point literals);
 *   - no #include but luagate's own headers written to the same rules (we compile freestanding).
 */

#include "run_clock.h"

/* vectorised code loads its constants from .rodata, which this code may not have */
#pragma GCC optimize("no-tree-vectorize", "no-tree-slp-vectorize")

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
  void (*rotate)(lua_State *L, int idx, int n);                 /* 144 */
  void (*pushcclosure)(lua_State *L, int (*fn)(lua_State *L), int n); /* 152 */
  void (*rawset)(lua_State *L, int idx);                        /* 160 */
  int (*setmetatable)(lua_State *L, int idx);                   /* 168 */
  int (*getstack)(lua_State *L, int level, void *ar);           /* 176 */
  int (*getinfo)(lua_State *L, const char *what, void *ar);     /* 184 */
  long long currentline_at;                                     /* 192: offsetof(lua_Debug, currentline) */
  int (*pcallk)(lua_State *L, int nargs, int nresults, int msgh, __INTPTR_TYPE__ ctx, void *k); /* 200 */
  int (*next)(lua_State *L, int idx);                           /* 208 */
  void (*pushnil)(lua_State *L);                                /* 216 */
  int (*checkstack)(lua_State *L, int n);                       /* 224 */
  const char *(*tolstring)(lua_State *L, int idx, size_t *len); /* 232 */
  const char *(*pushlstring)(lua_State *L, const char *s, size_t len); /* 240 */
  void (*copy)(lua_State *L, int fromidx, int toidx);           /* 248 */
  void (*concat)(lua_State *L, int n);                          /* 256 */
  void (*pushnumber)(lua_State *L, lua_Number n);               /* 264 */
  luagate_clock_gettime clock_gettime;                          /* 272: libc's */
  int (*iscfunction)(lua_State *L, int idx);                    /* 280 */
  const char *(*getupvalue)(lua_State *L, int funcindex, int n); /* 288 */
  long long short_src_at;                                       /* 296: offsetof(lua_Debug, short_src) */
  void (*sethook)(lua_State *L, void (*f)(lua_State *L, void *ar), int mask, int count); /* 304 */
  int (*rawgetp)(lua_State *L, int idx, const void *p);         /* 312 */
  void (*rawsetp)(lua_State *L, int idx, const void *p);        /* 320 */
  int (*gc)(lua_State *L, int what, ...);                       /* 328: 5.3's takes one int more, not variadic */
  lua_State *(*tothread)(lua_State *L, int idx);                /* 336 */
  const char *(*setupvalue)(lua_State *L, int funcindex, int n); /* 344 */
  int (*rawequal)(lua_State *L, int idx1, int idx2);            /* 352 */
  void (*createtable)(lua_State *L, int narr, int nrec);        /* 360 */
} luagate_lane_api;

/* One state's tally; the host resets it at the start of a run and counts what is left at the end. */
typedef struct {
  double tally;             /* 0: units of work done in C and not yet charged */
  double flush_at;          /* 8: the tally is handed over once it reaches this (the hook's step) */
  double few;               /* 16: work worth fewer units is not charged (as in the wrappers) */
  long long nested;         /* 24: the calls of ENTRY_NESTED in progress (each ends in its own pcall) */
  long long max_nested;     /* 32: how many may be in progress at once */
  luagate_run_clock *clock; /* 40: the state's run clock (run_clock.h) */
  /* the count hook's (ENTRY_ARM), which has no upvalues: the description it cannot find from its
   * own address (set by ENTRY_ARM), and the instructions it counted and did not hand to the kernel's
   * hook yet (the host takes them with the tally) */
  const luagate_lane_api *api; /* 48 */
  double counted;           /* 56 */
} luagate_lane_state;

/* The operations, the closure's second upvalue; keep in sync with ffi/fast_lane.ts. */
enum {
  LANE_ENTRY = 1, /* (op, f, charge, route [, kept]): the entry of that operation, or false */
  /* the entries, made by LANE_ENTRY; each returns what the library's function would */
  ENTRY_BYTES = 2,  /* f(s, ...), charging s as bytes (no route: f's own errors are the route's) */
  ENTRY_FORMAT = 3, /* format(fmt, ...) for a format of a kind kept in `kept` needing no checks */
  ENTRY_CONCAT = 4, /* concat(t [, sep [, i [, j]]]) of a table without a metatable, integer positions */
  ENTRY_APPEND = 5, /* insert(t, [pos,] v) of a table without a metatable, an integer pos in its bounds, done here */
  ENTRY_PLAIN = 6,  /* f(v, ...) for a v no metamethod shows (nil, a boolean, a number, a string) */
  ENTRY_FEW = 7,    /* f(...) with at most `kept` (an integer) arguments, its results charged unless few */
  ENTRY_REP = 8,    /* rep(s, n [, sep]) of strings, an integer n, a result shorter than a step's bytes */
  /* done here, as Lua's own C function does it, for a table t, or for the table a read-only view t
   * shows (`kept` maps each view to it): next(t [, k]) (ENTRY_NEXT; lua_next), rawget(t, k)
   * (ENTRY_RAWGET) */
  ENTRY_NEXT = 9,
  ENTRY_RAWGET = 10,
  /* done here, as Lua's own C function does it: rawset(t, k, v) of a table whose metatable, if it
   * has one, lacks the field `kept` (__metatable: the sandbox's views and globals have it) */
  ENTRY_RAWSET = 11,
  /* setmetatable(t, mt) of a table whose metatable, if it has one, lacks the field kept[2]
   * (__metatable: Lua's protected metatables, the sandbox's views and globals among them), mt nil or
   * a table lacking the field kept[1] (__gc) */
  ENTRY_SETMETATABLE = 12,
  /* pcall(f, ...): f called in protected mode under the message handler `kept`, as
   * xpcall calls it; true and its results when it succeeded, and false and the error when it failed,
   * unless the error has to go to the route, the kernel's pcall_failed, which raises again a limit
   * that tripped (route_has_nothing_to_do makes its test). The call has
   * this function as its continuation, so that f may yield: resumed, it is called with the call's
   * status and finds the tally at the bottom of its stack, where no call of the sandbox's has it.
   * pcall() calls the entry's function, which raises Lua's error for the missing argument. */
  ENTRY_PCALL = 13,
  /* of a table without a metatable, charged as the route charges it */
  ENTRY_SORT = 14,   /* sort(t [, comp]) of fewer than SORT_IN_C_ITEMS, charged n * (floor(log2(n)) + 1) for n > 1 */
  ENTRY_UNPACK = 15, /* unpack(t [, i [, j]]) of fewer items than a step, charged them unless few, done here */
  ENTRY_REMOVE = 16, /* remove(t [, pos]) of a table without a metatable, an integer pos in its bounds, done here */
  /* the pattern functions, for a subject the matcher's quick table (`kept`) proves cheap; in the
   * order of that table's keys (QUICK_OF_ENTRY) */
  ENTRY_FIND = 17,   /* find(s, p [, init [, plain]]), charging the part searched after the call */
  ENTRY_MATCH = 18,  /* match(s, p [, init]) */
  ENTRY_GSUB = 19,   /* gsub(s, p, repl [, nil]); a replacement function or table through QUICK_NESTED */
  ENTRY_GMATCH = 20, /* gmatch(s, p) */
  /* locate(e), the message handler of the sandbox's catch points: e as it is when it is no string,
   * or when the frame that raised it has a line (sandbox code: luagate's own chunks are stripped) or
   * is a function whose errors `kept` says are Lua's as raised (error, xpcall, the sandbox's pcall:
   * true; assert: a prefix, "bad argument #", so that its own argument error does not pass); the
   * route writes any other as Lua would */
  ENTRY_LOCATE = 21,
  /* rawlen(v), done here, of a string, a table, or a read-only view of a table without a metatable
   * (the length of the table the view shows; `kept` maps each view to it) */
  ENTRY_RAWLEN = 22,
  /* frame(level): the current line and the function of the running thread's frame at `level`,
   * counted as debug.getinfo counts them (1: the caller), without the table getinfo makes; nothing
   * where there is no such frame */
  ENTRY_FRAME = 23,
  /* run(s, set, ...): the length of the longest run in the string s of chars of set, a string of 32
   * bytes whose bit c & 7 of byte c >> 3 holds char c (the matcher's bound on C's work reads it),
   * s charged as bytes */
  ENTRY_RUN = 24,
  /* nested(f, ...): f(...) in protected mode under the message handler `kept`, its error raised again
   * by the entry's function (error, at level 0), for a C function that calls back into Lua with a
   * large frame of its own (gsub, concat); at most the state's max_nested such calls at once, and
   * the route (which raises C stack overflow) for one more */
  ENTRY_NESTED = 25,
  /* clock([first]): the CPU time of the calling thread in milliseconds, as the host's threadCpuMs
   * reads it (the kernel's clock, a system call instead of a call into the host); with an argument
   * (the run's first reading), also the CPU time the run began at, as the run clock has it or else
   * estimates it now: this time less the wall time since the run began (the steps before count at
   * their wall time, an upper bound of their CPU time) */
  ENTRY_CLOCK = 26,
  /* not made by LANE_ENTRY but by ENTRY_GMATCH: the iterator of gmatch(s, p) whose steps are
   * searches from where the last match ended, as the matcher's gmatch makes them (C's search, or C's
   * attempt anchored where a match can start, as cheap, else the matcher's step_search) */
  ENTRY_STEPS = 27,
  /* arm([co]): installs the count hook below on the coroutine co (counting at once the instructions
   * of one firing), or with no argument on the running thread for a new run (its count started
   * over), with the kernel's hook (the entry's f) as the function it hands the instructions it
   * counted to, whenever they reach a step, as hook(instructions), and as soon as a reading of the
   * wall clock (CLOCK_FIRINGS, LARGE_HEAP_KB) finds the run may be past its CPU deadline, as
   * hook(instructions, true). The route (which arms Lua's hook) takes any other argument. */
  ENTRY_ARM = 28,
  /* decide(meta, input): the policy engine's decision, as the kernel's decide (the route) makes it,
   * when the run state is as a run starts it (not dirty): the policy's globals of the last decision
   * reused (meta.env, whose _G is itself) or a new table of them made, then the decision function
   * meta.fn(input, meta.data) in protected mode under the message handler, the run state set around it;
   * returns ok, the instructions counted, the verdict and the reasons (on an error: false, count,
   * the error, nil). The run state is the upvalues of f, and `kept` holds the handler and the keys
   * (DECIDE_*). */
  ENTRY_DECIDE = 29,
  /* byte(s [, i [, j]]) of a string and integer positions within it, fewer results than are
   * charged, pushed here as lstrlib pushes them (5.3's and 5.4's agree on such positions); any other
   * call as ENTRY_FEW makes it, `kept` its most arguments */
  ENTRY_BYTE = 30,
  /* past(): whether the run is past its CPU deadline, the clocks read as `clock` reads them (the
   * first reading of a run waits for its first FIRST_READING_MS and starts its CPU clock; a later
   * one within the limit of wall time is that wall time), as one call whichever it read: the
   * kernel's test costs a run the same instructions at any speed */
  ENTRY_PAST = 31,
  /* string.pack(fmt, ...) of a format string: its bytes charged first, one unit each, and the string
   * it built charged after it (no route: f's own errors are the route's) */
  ENTRY_STRING_PACK = 32,
  /* string.unpack(fmt, s [, pos]): the format's bytes charged first, one unit each, and s as bytes,
   * then its results unless few (no route) */
  ENTRY_STRING_UNPACK = 33,
  /* start(f, ...): a run of sandbox code, as the kernel's run and run_again (the route) make it, when
   * the run state is as a run starts it (not dirty): for run_again (`kept` holds the chunks' last
   * globals, START_ENVS), the chunk's globals of its last run taken again when that run left them as
   * they were made (their one key _G, themselves), then f(...) in protected mode under the message
   * handler, the run state set around it; returns ok, the instructions counted and f's results (on
   * an error: false, count, the error). The run state is the upvalues of f, as for ENTRY_DECIDE. */
  ENTRY_START = 34
};

/* The upvalues of an entry (those of LANE_ENTRY's closure, the one closure the host makes, are the
 * tally and LANE_ENTRY). An iterator of ENTRY_STEPS has C's find as its function, step_search as its
 * route and the pattern's record under QUICK_STEPS as what it keeps, then the subject, the pattern,
 * the longest rests whose search and whose attempt are cheap, where the next search starts and where
 * the last match ended (0: none yet). */
enum { UP_TALLY = 1, UP_OP = 2, UP_FUNCTION = 3, UP_CHARGE = 4, UP_ROUTE = 5, UP_KEPT = 6, ENTRY_UPVALUES = 6 };
enum {
  UP_SUBJECT = 7, UP_PATTERN = 8, UP_SEARCH_LIMIT = 9, UP_ATTEMPT_LIMIT = 10, UP_FROM = 11, UP_LAST_END = 12,
  STEPS_UPVALUES = 12
};

/* The kinds of format strings the wrapper keeps (policy/kernel_libraries.ts, `format_kinds`). */
enum { NO_CONVERSION = 1, NO_STRING_CONVERSION = 2, STRING_CONVERSIONS = 3, QUOTES = 5 };
/* %q of a string longer than this is quoted in pieces by the route; each byte of a quote is charged
 * one unit, and each byte the quote adds ESCAPE_UNITS more (keep in sync with QUOTE_PIECE and
 * ESCAPE_UNITS in ffi/fast_lane.ts) */
#define QUOTE_PIECE 4096
#define ESCAPE_UNITS 24
/* A sort of this many items goes to the route, which has Lua make C's own comparisons (keep in sync
 * with SORT_IN_C_ITEMS in ffi/fast_lane.ts) */
#define SORT_IN_C_ITEMS 16384
/* charge_bytes in policy/kernel.ts: one unit per 16 bytes, for strings of at least 16 bytes */
#define BYTES_PER_UNIT_SHIFT 4

/* The keys of the pattern matcher's table of quick patterns (policy/patterns.ts, `quick`); at
 * QUICK_PLAIN_WORK, the work a plain find may do in C (the matcher's LIMIT); at QUICK_ATTEMPTS, the
 * records of unanchored patterns whose search begins with C's attempt anchored at the start position
 * ({ limit, anchored pattern, the set of chars a match can start with, the compiled pattern, the
 * locator, the limits per key of the subject's runs, as at QUICK_RUNS }); at QUICK_RESUME, the
 * function that goes on with a search after a failed attempt; at QUICK_NESTED, the kernel's nested
 * (an entry, ENTRY_NESTED), through which gsub calls a replacement function or table; at QUICK_RUNS,
 * the records of patterns whose work is cheap for a subject whose runs of some classes are short
 * ({ the longest subjects cheap per key of the subject's runs (longest_runs), for a search and for a
 * whole scan (gmatch, gsub); the compiled pattern; the longest replacement string the scan's lengths
 * stand for; a bitmap per class, as ENTRY_RUN reads it }; a pattern with a leading '^' has one
 * record for the searches, which anchor it, and gmatch, which takes the '^' literally: gmatch reads
 * none for it); at QUICK_STEPS, the records of the patterns whose gmatch and gsub steps are searches
 * ({ the longest subjects cheap per key of the subject's runs, 0 for any subject, for a search and
 * for an attempt; the anchored pattern; the set of chars a match can start with; the locator or
 * false; the pattern of the run a failed attempt skips or false; the longest subjects whose whole
 * scan is cheap per key of runs, where a gsub may hand the rest of its subject to C, or false; the
 * longest replacement string those stand for; the longest subjects cheap per replacement string,
 * with how many it knows at 1 }); at QUICK_C_FIND, C's find; at
 * QUICK_STEP_SEARCH, the matcher's search in Lua for those steps. */
enum {
  QUICK_FIND = 1, QUICK_MATCH = 2, QUICK_GSUB = 3, QUICK_GMATCH = 4, QUICK_PLAIN_WORK = 5, QUICK_ATTEMPTS = 6,
  QUICK_RESUME = 7, QUICK_NESTED = 8, QUICK_RUNS = 9, QUICK_STEPS = 10, QUICK_C_FIND = 11, QUICK_STEP_SEARCH = 12
};
enum {
  STEPS_SEARCH_LIMITS = 1, STEPS_ATTEMPT_LIMITS = 2, STEPS_ANCHORED = 3, STEPS_FIRST = 4, STEPS_LOCATOR = 5,
  STEPS_SKIP_RUN = 6, STEPS_SCAN_LIMITS = 7, STEPS_SHORT_REPLACEMENT = 8, STEPS_REPLACEMENT_LIMITS = 9
};
/* How many replacement strings a record's STEPS_REPLACEMENT_LIMITS knows at most (the matcher's
 * string_upto, KNOWN_REPLACEMENTS in policy/patterns.ts): past that, one it lacks stays unknown, and
 * its gsub steps to the end. */
#define KNOWN_REPLACEMENTS 16
enum { RUNS_SEARCH_LIMITS = 1, RUNS_SCAN_LIMITS = 2, RUNS_SHORT_REPLACEMENT = 4, RUNS_FIRST_SET = 5 };
enum {
  ATTEMPT_LIMIT = 1, ATTEMPT_PATTERN = 2, ATTEMPT_FIRST = 3, ATTEMPT_COMPILED = 4, ATTEMPT_LOCATOR = 5,
  ATTEMPT_RUN_LIMITS = 6
};
#define QUICK_OF_ENTRY(op) ((op) - ENTRY_FIND + QUICK_FIND)

#define LUA_TNIL 0
#define LUA_TBOOLEAN 1
#define LUA_TLIGHTUSERDATA 2
#define LUA_TNUMBER 3
#define LUA_TSTRING 4
#define LUA_TTABLE 5
#define LUA_TFUNCTION 6
#define LUA_OK 0
#define LUA_YIELD 1
/* what the pcall entry keeps below f: the tally, the handler (at PCALL_HANDLER) and true */
#define PCALL_BELOW 3
#define PCALL_HANDLER 2
/* The pcall entry's route is the kernel's pcall_failed (policy/kernel.ts), and these are its first
 * upvalues: the lane makes its test without calling it (route_has_nothing_to_do) */
#define FAILED_ACTIVE 1
#define FAILED_TRIPPED 2
#define FAILED_BUFFER_MEMERR 3
#define FAILED_IS_MEMERR 4
/* The setmetatable entry's `kept`: the names of the fields it looks for */
#define SETMETATABLE_COLLECTED 1
#define SETMETATABLE_PROTECTED 2
/* The decide entry's f is the kernel's run_state (policy/kernel.ts), and these are its upvalues: the
 * kernel's own run state, read and set here as its decide reads and sets it */
#define DECIDE_DIRTY 1
#define DECIDE_ACTIVE 2
#define DECIDE_CURRENT_ENV 3
#define DECIDE_COUNT 4
/* and its `kept` is the kernel's decide_kept: the message handler, the keys it reads, then the
 * kernel's table of every policy's tables of globals */
#define DECIDE_HANDLER 1
#define DECIDE_ENV_KEY 2
#define DECIDE_G_KEY 3
#define DECIDE_FN_KEY 4
#define DECIDE_DATA_KEY 5
#define DECIDE_CHUNK_KEY 6
#define DECIDE_ENVS 7
/* The start entry's `kept`: the message handler, the chunks' last globals (false for run, which
 * rebinds none), the key _G, and the error of a run whose results fill the Lua stack */
#define START_HANDLER 1
#define START_ENVS 2
#define START_G_KEY 3
#define START_OVERFLOW 4
#define LUA_MULTRET (-1)
/* Room for a lua_Debug: 5.3's and 5.4's are smaller (the host gives the offset of its currentline). */
#define DEBUG_WORDS 32
/* frame() takes levels of an int: deeper ones are no frame (Lua's stack is far shallower) */
#define MAX_FRAME_LEVEL 0x7fffffff

/* lua_sethook's mask of count events, lua_gc's LUA_GCCOUNT, the registry's LUA_RIDX_MAINTHREAD */
#define LUA_MASKCOUNT 8
#define LUA_GCCOUNT 3
#define LUA_RIDX_MAINTHREAD 1
/* The count hook fires every this many instructions (or every step, when a step is shorter). */
#define HOOK_EVERY 64
/* On a heap of more KiB, the count hook reads the wall clock at every firing (as the kernel's hook
 * reads its clock at every call: keep in sync with policy/kernel.ts) */
#define LARGE_HEAP_KB 512
/* On any heap, it reads the wall clock at every this many firings of a step (counted from the step's
 * start, so readings are at most twice that apart across steps): an instruction can be slow on a
 * small heap too (a read through an __index chain of 2,000 tables takes some 25 µs), and a step of
 * such instructions would take the run that much past its deadline. */
#define CLOCK_FIRINGS 4

/* A run's first reading of the CPU clock is put off until its wall time is this many ms (keep in sync
 * with FIRST_READING_MS in ffi/clock.ts): the reading is a system call (0.6-1.5 µs, against 27 ns for
 * the vDSO's wall clock), and until then the wall time, which bounds the CPU time, is within the
 * limit. A run that ends before is reported at its wall time, as one too short to reach the clock. */
#define FIRST_READING_MS 1

/* A key of the subject's runs (policy/patterns.ts, longest_runs): classes per key, bits per class. */
#define RUN_SLOTS 12
#define RUN_BITS 5

/* Where the host stores the address of the description: the last 8 bytes of the code's pages (keep
 * CODE_PAGES in sync with FAST_LANE_PAGES in ffi/fast_lane.ts). The code finds its start from an
 * address it reads at its own start, within its first page. */
#define PAGE_SIZE_MIN 4096
#define CODE_PAGES 6

#define INLINE static inline __attribute__((always_inline))

/* The double of a whole number, made at run time: a double constant would be data. */
INLINE double whole_ms(long long ms) {
  __asm__("" : "+r"(ms));
  return (double)ms;
}

/* Whether the matcher proved the pattern at index 2 cheap under `which` of its quick table (the
 * entry's kept upvalue; for gsub, with the replacement at index 3 in the pattern's own table, or
 * true there for a replacement function or table); `limit` is then the longest subject (from the
 * start position) it proved cheap for. */
INLINE int quick_limit(const luagate_lane_api *lua, lua_State *L, int upvalues, int which, lua_Number *limit) {
  const int quick = upvalues - UP_KEPT;
  if (lua->type(L, quick) != LUA_TTABLE) return 0;
  int pushed = 1, found = 0;
  if (lua->rawgeti(L, quick, which) == LUA_TTABLE) {
    lua->pushvalue(L, 2);
    pushed++;
    int type = lua->rawget(L, -2);
    if (which == QUICK_GSUB && type == LUA_TTABLE) {
      if (lua->type(L, 3) == LUA_TSTRING) lua->pushvalue(L, 3);
      else lua->pushboolean(L, 1);
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
INLINE int plain_limit(const luagate_lane_api *lua, lua_State *L, int upvalues, lua_Integer pattern,
                       lua_Number *limit) {
  const int quick = upvalues - UP_KEPT;
  if (lua->type(L, quick) != LUA_TTABLE) return 0;
  const int found = lua->rawgeti(L, quick, QUICK_PLAIN_WORK) == LUA_TNUMBER && lua->isinteger(L, -1);
  if (found) *limit = (lua_Number)(lua->tointegerx(L, -1, 0) / pattern - 1);
  lua->settop(L, -2);
  return found;
}

/* A plain find looks at this many places itself, the common case of a split of short fields, before
 * it hands the rest to C's find, whose memchr is faster over long stretches without the first char. */
#define PLAIN_WINDOW 64
#define NOT_IN_WINDOW (-2)
/* Where the `pattern` bytes first are in `s` (of `length` bytes) at one of its first PLAIN_WINDOW
 * places, as lmemfind finds them: the offset; -1 when they are nowhere; NOT_IN_WINDOW when they are
 * not at those places and the subject goes on. */
INLINE lua_Integer plain_search(const unsigned char *s, lua_Integer length, const unsigned char *p,
                                lua_Integer pattern) {
  for (lua_Integer i = 0; i <= length - pattern; i++) {
    if (i == PLAIN_WINDOW) return NOT_IN_WINDOW;
    if (s[i] != p[0]) continue;
    lua_Integer k = 1;
    while (k < pattern && s[i + k] == p[k]) k++;
    if (k == pattern) return i;
  }
  return -1;
}

/* The start position given at `idx` (absent or nil: 1); 0 when it is not an integer. */
INLINE lua_Integer start_position(const luagate_lane_api *lua, lua_State *L, int idx, int n) {
  if (n < idx || lua->type(L, idx) == LUA_TNIL) return 1;
  if (!lua->isinteger(L, idx)) return 0;
  return lua->tointegerx(L, idx, 0);
}

/* Whether the string at `idx` has a char that is special in a pattern (lstrlib.c's SPECIALS): else
 * find searches for it as plain text. */
INLINE int has_specials(const luagate_lane_api *lua, lua_State *L, int idx) {
  size_t length;
  const char *p = lua->tolstring(L, idx, &length);
  for (size_t i = 0; i < length; i++) {
    switch (p[i]) {
      case '^': case '$': case '*': case '+': case '?': case '.': case '(': case '[': case '%': case '-':
        return 1;
      default:
        break;
    }
  }
  return 0;
}

/* The state a thread's count hook counts for: a pointer in the thread's extra space, just before it
 * (lua_getextraspace; LUA_EXTRASPACE is the size of a pointer in Lua's default configuration). */
INLINE luagate_lane_state **extra_space(lua_State *L) {
  return (luagate_lane_state **)((char *)L - sizeof(void *));
}

/* How many instructions apart the count hook fires: HOOK_EVERY, or the step when it is shorter. */
INLINE int hook_every(const luagate_lane_state *state) {
  const int step = (int)state->flush_at;
  return step < HOOK_EVERY ? step : HOOK_EVERY;
}

/* `units`, or none when they are few (as the wrappers leave them uncharged). */
INLINE double unless_few(const luagate_lane_state *state, double units) {
  return units >= state->few ? units : 0;
}

/* The units charge_bytes would charge for the value at `idx`: its bytes over 16, for a string. */
INLINE double string_units(const luagate_lane_api *lua, lua_State *L, int idx) {
  if (lua->type(L, idx) != LUA_TSTRING) return 0;
  return (double)((lua_Integer)lua->rawlen(L, idx) >> BYTES_PER_UNIT_SHIFT);
}

/* Adds `units` to the tally of an entry; once it reaches a step, hands it all to the charge now. */
INLINE void settle(const luagate_lane_api *lua, lua_State *L, luagate_lane_state *state, int upvalues,
                   double units) {
  state->tally += units;
  if (state->tally < state->flush_at) return;
  lua->pushvalue(L, upvalues - UP_CHARGE);
  lua->pushinteger(L, (lua_Integer)state->tally);
  state->tally = 0;
  lua->callk(L, 1, 0, 0, 0);
}

/* Calls the entry's upvalue `which` on the entry's `n` arguments, for `results` results (-1: all);
 * returns how many it returned. */
INLINE int call_upvalue(const luagate_lane_api *lua, lua_State *L, int upvalues, int which, int n, int results) {
  lua->pushvalue(L, upvalues - which);
  lua->rotate(L, 1, 1);
  lua->callk(L, n, results, 0, 0);
  return lua->gettop(L);
}

/* Pushes upvalue n of the function at `f` and answers whether it is of `type` (0 and nothing pushed
 * when there is no such upvalue). */
INLINE int upvalue_of_type(const luagate_lane_api *lua, lua_State *L, int f, int n, int type) {
  return lua->getupvalue(L, f, n) != 0 && lua->type(L, -1) == type;
}

/* Whether the run state, the upvalues of the function at `run_state` (DECIDE_*), is as a run starts
 * it: not dirty, its flags booleans. Pushes up to two values, which the caller drops. */
INLINE int run_state_clean(const luagate_lane_api *lua, lua_State *L, int run_state) {
  return upvalue_of_type(lua, L, run_state, DECIDE_DIRTY, LUA_TBOOLEAN) && !lua->toboolean(L, -1) &&
         upvalue_of_type(lua, L, run_state, DECIDE_ACTIVE, LUA_TBOOLEAN);
}

/* Marks the run in the run state at `run_state` active or not, as the kernel's entries do around the
 * call of the run's function. */
INLINE void set_active(const luagate_lane_api *lua, lua_State *L, int run_state, int active) {
  lua->pushboolean(L, active);
  lua->setupvalue(L, run_state, DECIDE_ACTIVE);
}

/* Whether the pcall entry's route, the function at `route` (the kernel's pcall_failed), would hand
 * the error on top back as it is: outside a run, or when no limit tripped and the error cannot be a
 * refused allocation. Its own test, on its upvalues; an upvalue of another type has it called. */
INLINE int route_has_nothing_to_do(const luagate_lane_api *lua, lua_State *L, int route) {
  const int top = lua->gettop(L);
  int nothing = 0;
  if (upvalue_of_type(lua, L, route, FAILED_ACTIVE, LUA_TBOOLEAN)) {
    nothing = !lua->toboolean(L, -1) ||
              (upvalue_of_type(lua, L, route, FAILED_TRIPPED, LUA_TNIL) &&
               upvalue_of_type(lua, L, route, FAILED_BUFFER_MEMERR, LUA_TBOOLEAN) && !lua->toboolean(L, -1) &&
               upvalue_of_type(lua, L, route, FAILED_IS_MEMERR, LUA_TTABLE) &&
               (lua->pushvalue(L, top), lua->rawget(L, -2), !lua->toboolean(L, -1)));
  }
  lua->settop(L, top);
  return nothing;
}

/* The longest run in the string s (of `length` bytes) of the chars of a 32-byte bitmap: char c at
 * bit c & 7 of byte c >> 3. */
INLINE lua_Integer longest_run(const unsigned char *s, size_t length, const unsigned char *set) {
  lua_Integer longest = 0, run = 0;
  for (size_t i = 0; i < length; i++) {
    run = (set[s[i] >> 3] >> (s[i] & 7)) & 1 ? run + 1 : 0;
    if (run > longest) longest = run;
  }
  return longest;
}

/* Whether the rest of the subject at 1 (`rest` bytes from the start position) is within the number
 * at `key` of the table at `idx`: 1 or 0, or -1 when there is none. */
INLINE int within(const luagate_lane_api *lua, lua_State *L, int idx, lua_Integer key, lua_Integer rest) {
  const int known = lua->rawgeti(L, idx, key) == LUA_TNUMBER;
  const int answer = known ? (lua_Number)rest <= lua->tonumberx(L, -1, 0) : -1;
  lua->settop(L, -2);
  return answer;
}

/* The key of the subject's runs of the classes of the record at `record` (under QUICK_RUNS), as the
 * matcher's longest_runs makes it: 1 plus, for the class in slot i (from the last slot on, the
 * longest of the rest), the base-2 logarithm of its longest run rounded up to a power of 2, times
 * 2^(RUN_BITS * i); *units what the scan is charged: the subject's bytes per class, as ENTRY_RUN
 * charges them. */
INLINE lua_Integer longest_runs(const luagate_lane_api *lua, lua_State *L, int record, double *units) {
  size_t length, bits;
  const unsigned char *subject = (const unsigned char *)lua->tolstring(L, 1, &length);
  lua_Integer key = 1, last = 0;
  int sets = 0;
  for (; lua->rawgeti(L, record, RUNS_FIRST_SET + sets) == LUA_TSTRING; sets++) {
    const unsigned char *set = (const unsigned char *)lua->tolstring(L, -1, &bits);
    const lua_Integer run = bits == 32 ? longest_run(subject, length, set) : (lua_Integer)length;
    lua_Integer log = 0, power = 1;
    while (power < run) power *= 2, log++;
    if (sets < RUN_SLOTS - 1) key += log << (RUN_BITS * sets);
    else if (log > last) last = log;
    lua->settop(L, -2);
  }
  lua->settop(L, -2);
  if (sets >= RUN_SLOTS) key += last << (RUN_BITS * (RUN_SLOTS - 1));
  *units = (double)(sets * (lua_Integer)(length >> BYTES_PER_UNIT_SHIFT));
  return key;
}

/* Whether the subject's runs of the classes in the record of the pattern at 2 under QUICK_RUNS prove
 * the work on its rest cheap, as the matcher's cheap_by_runs does, by the record's lengths at `which`
 * (a search's or a whole scan's; with a replacement string of `replacement` chars, the scan's stand
 * for its bound only up to the record's RUNS_SHORT_REPLACEMENT): 1 or 0 (no record, or not even for
 * runs of one char, or not for the subject's: the whole subject scanned per class and charged as
 * ENTRY_RUN charges it), or -1 when the record has no length for a run yet (the route works it out).
 * *run is the key of the subject's runs (longest_runs), where the subject was scanned (0: it was
 * not). */
INLINE int cheap_by_runs(const luagate_lane_api *lua, lua_State *L, luagate_lane_state *state, int upvalues,
                         lua_Integer rest, int which, lua_Integer replacement, lua_Integer *run) {
  const int base = lua->gettop(L), record = base + 2, limits = base + 3;
  int answer = 0;
  if (lua->rawgeti(L, upvalues - UP_KEPT, QUICK_RUNS) == LUA_TTABLE) {
    lua->pushvalue(L, 2);
    answer = lua->rawget(L, -2) == LUA_TTABLE && lua->rawgeti(L, record, which) == LUA_TTABLE &&
                     (replacement == 0 || within(lua, L, record, RUNS_SHORT_REPLACEMENT, replacement) == 1)
                 ? within(lua, L, limits, 1, rest)
                 : 0;
  }
  *run = 0;
  if (answer == 1) {
    double units;
    *run = longest_runs(lua, L, record, &units);
    answer = within(lua, L, limits, *run, rest);
    if (answer >= 0) {
      lua->settop(L, base);
      settle(lua, L, state, upvalues, units);
    }
  }
  lua->settop(L, base);
  return answer;
}

/* find(s, p, from) or match(s, p, from) of an unanchored p that the whole search would cost C too much
 * for, as the matcher's own route does it (policy/patterns.ts, `attempted`): when the rest of the
 * subject is within the limit of p's record under QUICK_ATTEMPTS, or within its limit for the
 * subject's runs (`run`, as cheap_by_runs found it; 0: not found), the attempt starts at `from` if
 * its char can start a match, or else where the record's locator ("()" and the first set) finds one,
 * the chars skipped charged; there the entry's function is called on (s, the anchored pattern,
 * start). A match is charged as the route charges it (find: up to its end, plus #p, after the call;
 * match: the rest of the subject from the start plus #p, before); after a failure,
 * QUICK_RESUME(find, s, p, start, compiled) goes on with the search and returns its results. Returns
 * how many results there are, or -1 when the call is the route's. */
INLINE int attempt(const luagate_lane_api *lua, lua_State *L, luagate_lane_state *state, int upvalues, int find,
                   lua_Integer from, lua_Integer rest, lua_Integer pattern, lua_Integer run) {
  const int quick = upvalues - UP_KEPT, base = lua->gettop(L), record = base + 2;
  int found = lua->rawgeti(L, quick, QUICK_ATTEMPTS) == LUA_TTABLE;
  if (found) {
    lua->pushvalue(L, 2);
    found = lua->rawget(L, -2) == LUA_TTABLE;
  }
  if (found) {
    found = lua->rawgeti(L, record, ATTEMPT_LIMIT) == LUA_TNUMBER && (lua_Number)rest <= lua->tonumberx(L, -1, 0);
    if (!found && run > 0 && lua->rawgeti(L, record, ATTEMPT_RUN_LIMITS) == LUA_TTABLE) {
      found = within(lua, L, record + 2, run, rest) == 1;
    }
  }
  lua_Integer start = from;
  if (found) {
    size_t length;
    const unsigned char *subject = (const unsigned char *)lua->tolstring(L, 1, &length);
    found = from <= (lua_Integer)length && lua->rawgeti(L, record, ATTEMPT_FIRST) == LUA_TTABLE;
    if (found && lua->rawgeti(L, -1, subject[from - 1]) == LUA_TNIL) {
      /* the first place a match can start, by the locator's position capture (find: its start) */
      lua->settop(L, record);
      lua->pushvalue(L, upvalues - UP_FUNCTION);
      lua->pushvalue(L, 1);
      found = lua->rawgeti(L, record, ATTEMPT_LOCATOR) == LUA_TSTRING;
      if (found) {
        lua->pushinteger(L, from);
        lua->callk(L, 3, 1, 0, 0);
        found = lua->isinteger(L, -1);
        if (found) start = lua->tointegerx(L, -1, 0);
      }
    }
  }
  if (!found) {
    lua->settop(L, base);
    return -1;
  }
  lua->settop(L, record);
  if (start > from) settle(lua, L, state, upvalues, (double)(start - from));
  if (!find) settle(lua, L, state, upvalues, (double)(rest - (start - from) + pattern));
  lua->pushvalue(L, upvalues - UP_FUNCTION);
  lua->pushvalue(L, 1);
  lua->rawgeti(L, record, ATTEMPT_PATTERN);
  lua->pushinteger(L, start);
  lua->callk(L, 3, -1, 0, 0);
  const int results = lua->gettop(L) - record;
  if (results > 0 && lua->type(L, record + 1) != LUA_TNIL) {
    if (find) settle(lua, L, state, upvalues, (double)(lua->tointegerx(L, record + 2, 0) - start + 1 + pattern));
    return results;
  }
  lua->settop(L, record);
  lua->rawgeti(L, quick, QUICK_RESUME);
  lua->pushboolean(L, find);
  lua->pushvalue(L, 1);
  lua->pushvalue(L, 2);
  lua->pushinteger(L, start);
  lua->rawgeti(L, record, ATTEMPT_COMPILED);
  lua->callk(L, 5, -1, 0, 0);
  return lua->gettop(L) - record;
}

/* What the steps of gmatch and gsub search with (as the matcher's stepper): the subject and the
 * length of the pattern, the longest rests whose search and whose attempt are cheap, and where the
 * subject, the pattern, the pattern's record under QUICK_STEPS, C's find and the matcher's
 * step_search are (stack or upvalue indices). */
typedef struct {
  const unsigned char *subject;
  size_t length;
  lua_Integer pattern_length;
  lua_Number search_limit, attempt_limit;
  int subject_at, pattern_at, record_at, find_at, search_at;
} steps_of;

/* The next match from `from`, as the matcher's stepper finds it: it begins with C's attempt where a
 * match can start, when the search of the rest is not cheap and the attempt is (after a failure,
 * the search goes on from the next position, past the run the attempt began with); a search is C's
 * where the rest is cheap, else step_search's; a match where the last one ended (`last_end`) is
 * passed over. Charged as the stepper charges. Leaves find's results for the match (start, end,
 * captures) above `base` and returns how many there are, or 0 when there is no match. */
INLINE int next_match(const luagate_lane_api *lua, lua_State *L, luagate_lane_state *state, int upvalues,
                      const steps_of *steps, lua_Integer from, lua_Integer last_end, int base) {
  const lua_Integer length = (lua_Integer)steps->length, pattern = steps->pattern_length;
  int may_attempt = (lua_Number)(length - from + 1) > steps->search_limit && steps->attempt_limit >= 0;
  for (;;) {
    lua->settop(L, base);
    if (from > length + 1) return 0;
    if (may_attempt) {
      may_attempt = 0;
      lua_Integer start = from;
      if (from > length || lua->rawgeti(L, steps->record_at, STEPS_FIRST) != LUA_TTABLE ||
          lua->rawgeti(L, -1, steps->subject[from - 1]) == LUA_TNIL) {
        /* where the locator finds a place (the chars skipped charged), or none */
        lua->settop(L, base);
        start = 0;
        lua->pushvalue(L, steps->find_at);
        lua->pushvalue(L, steps->subject_at);
        if (lua->rawgeti(L, steps->record_at, STEPS_LOCATOR) == LUA_TSTRING) {
          lua->pushinteger(L, from);
          lua->callk(L, 3, 1, 0, 0);
          if (lua->isinteger(L, -1)) start = lua->tointegerx(L, -1, 0);
          if (start > from) settle(lua, L, state, upvalues, (double)(start - from));
        }
      }
      lua->settop(L, base);
      if (start > 0 && (lua_Number)(length - start + 1) <= steps->attempt_limit) {
        lua->pushvalue(L, steps->find_at);
        lua->pushvalue(L, steps->subject_at);
        lua->rawgeti(L, steps->record_at, STEPS_ANCHORED);
        lua->pushinteger(L, start);
        lua->callk(L, 3, -1, 0, 0);
        const int matched = lua->gettop(L) - base >= 2 && lua->type(L, base + 1) != LUA_TNIL;
        const lua_Integer end = matched ? lua->tointegerx(L, base + 2, 0) : 0;
        if (matched && end + 1 != last_end) {
          settle(lua, L, state, upvalues, (double)(end - start + 1 + pattern));
          return lua->gettop(L) - base;
        }
        settle(lua, L, state, upvalues, (double)pattern);
        from = start + 1;
        if (!matched) {
          lua->settop(L, base);
          lua->pushvalue(L, steps->find_at);
          lua->pushvalue(L, steps->subject_at);
          if (lua->rawgeti(L, steps->record_at, STEPS_SKIP_RUN) == LUA_TSTRING) {
            lua->pushinteger(L, start);
            lua->callk(L, 3, 2, 0, 0);
            const lua_Integer skipped = lua->tointegerx(L, base + 2, 0);
            settle(lua, L, state, upvalues, (double)(skipped - start + 1));
            if (skipped > start) from = skipped + 1;
          }
        }
        continue;
      }
    }
    const int cheap = (lua_Number)(length - from + 1) <= steps->search_limit;
    lua->pushvalue(L, cheap ? steps->find_at : steps->search_at);
    lua->pushvalue(L, steps->subject_at);
    lua->pushvalue(L, steps->pattern_at);
    lua->pushinteger(L, from);
    lua->callk(L, 3, -1, 0, 0);
    const int matched = lua->gettop(L) - base >= 2 && lua->type(L, base + 1) != LUA_TNIL;
    if (cheap) {
      const lua_Integer covered = matched ? lua->tointegerx(L, base + 2, 0) : length;
      settle(lua, L, state, upvalues, (double)(covered - from + 1 + pattern));
    }
    if (!matched) return 0;
    if (lua->tointegerx(L, base + 2, 0) + 1 != last_end) return lua->gettop(L) - base;
    from = lua->tointegerx(L, base + 1, 0) + 1;
  }
}

/* The number at `key` of the table at `idx` in *value; 0 when there is none. */
INLINE int number_at(const luagate_lane_api *lua, lua_State *L, int idx, lua_Integer key, lua_Number *value) {
  const int found = lua->rawgeti(L, idx, key) == LUA_TNUMBER;
  if (found) *value = lua->tonumberx(L, -1, 0);
  lua->settop(L, -2);
  return found;
}

/* Raises *limit, the longest rest whose work is cheap for any subject, to the one the memo at `idx`
 * (a record's limits per key of runs) has for the subject's runs (`run`; 0: none); 0 when the memo
 * has no length for them yet. */
INLINE int raised_by_runs(const luagate_lane_api *lua, lua_State *L, int idx, lua_Integer run, lua_Number *limit) {
  lua_Number by_runs;
  if (run == 0) return 1;
  if (!number_at(lua, L, idx, run, &by_runs)) return 0;
  if (by_runs > *limit) *limit = by_runs;
  return 1;
}

/* The limits of the steps over the subject at 1 of the pattern at 2 (without a leading '^', its
 * whole scan not cheap), as the matcher's step_limits gives them from the pattern's record under
 * QUICK_STEPS: the subject's runs found (when cheap_by_runs did not, *run 0) where a limit needs
 * them, and left in *run. Pushes the quick table, the record, its two memos, C's find and
 * step_search, and fills `steps` with them; 0, pushing nothing, when the call is the route's (no
 * record, or no limit for those runs yet). */
INLINE int steps_limits(const luagate_lane_api *lua, lua_State *L, luagate_lane_state *state, int upvalues,
                        lua_Integer rest, lua_Integer *run, steps_of *steps) {
  const int quick = upvalues - UP_KEPT, base = lua->gettop(L), record = base + 2, search = base + 3,
            attempts = base + 4;
  int made = lua->rawgeti(L, quick, QUICK_STEPS) == LUA_TTABLE;
  if (made) {
    lua->pushvalue(L, 2);
    made = lua->rawget(L, -2) == LUA_TTABLE && lua->rawgeti(L, record, STEPS_SEARCH_LIMITS) == LUA_TTABLE &&
           lua->rawgeti(L, record, STEPS_ATTEMPT_LIMITS) == LUA_TTABLE &&
           lua->rawgeti(L, quick, QUICK_C_FIND) == LUA_TFUNCTION &&
           lua->rawgeti(L, quick, QUICK_STEP_SEARCH) == LUA_TFUNCTION &&
           number_at(lua, L, search, 0, &steps->search_limit) &&
           number_at(lua, L, attempts, 0, &steps->attempt_limit);
  }
  if (made && *run == 0 &&
      ((lua_Number)rest > steps->search_limit || (lua_Number)rest > steps->attempt_limit)) {
    /* the subject's runs, by the classes of the pattern's record under QUICK_RUNS (none: no runs) */
    if (lua->rawgeti(L, quick, QUICK_RUNS) == LUA_TTABLE) {
      lua->pushvalue(L, 2);
      if (lua->rawget(L, -2) == LUA_TTABLE) {
        double units;
        *run = longest_runs(lua, L, lua->gettop(L), &units);
        settle(lua, L, state, upvalues, units);
      }
    }
    lua->settop(L, base + 6);
  }
  if (!made || !raised_by_runs(lua, L, search, *run, &steps->search_limit) ||
      !raised_by_runs(lua, L, attempts, *run, &steps->attempt_limit)) {
    lua->settop(L, base);
    return 0;
  }
  steps->subject = (const unsigned char *)lua->tolstring(L, 1, &steps->length);
  steps->pattern_length = (lua_Integer)lua->rawlen(L, 2);
  steps->subject_at = 1, steps->pattern_at = 2, steps->record_at = record;
  steps->find_at = base + 5, steps->search_at = base + 6;
  return 1;
}

/* The longest rest of the subject, from the end of a match, that gsub's steps hand to C's gsub whole,
 * as the matcher's rest_upto gives it from the pattern's record under QUICK_STEPS (at `record`): -1
 * where the record has no scan limits (the pattern's matches could tell the rest from the whole
 * subject) or its memo of replacements is full without the one at 3; else the longest subject whose
 * whole gsub with that replacement is cheap, raised, for a replacement the scan's lengths stand for,
 * to the scan's length for the subject's runs (`run`; 0: not found). 0 when a memo has no length for
 * the replacement or for those runs yet (the route's, which learns it). */
INLINE int rest_limit(const luagate_lane_api *lua, lua_State *L, int record, lua_Integer run, lua_Integer *rest) {
  const int base = lua->gettop(L), scan = base + 1, replacements = base + 2;
  lua_Number shortest, longest;
  int known = 1;
  *rest = -1;
  if (lua->rawgeti(L, record, STEPS_SCAN_LIMITS) == LUA_TTABLE &&
      lua->rawgeti(L, record, STEPS_REPLACEMENT_LIMITS) == LUA_TTABLE) {
    lua->pushvalue(L, 3);
    if (lua->rawget(L, replacements) == LUA_TNUMBER) {
      longest = lua->tonumberx(L, -1, 0);
      if (number_at(lua, L, record, STEPS_SHORT_REPLACEMENT, &shortest) && (lua_Number)lua->rawlen(L, 3) <= shortest) {
        known = raised_by_runs(lua, L, scan, run, &longest);
      }
      *rest = (lua_Integer)longest;
    } else {
      known = lua->rawgeti(L, replacements, 1) == LUA_TNUMBER && lua->tointegerx(L, -1, 0) >= KNOWN_REPLACEMENTS;
    }
  }
  lua->settop(L, base);
  return known;
}

/* Strings a stepped gsub keeps on the stack, joined as they come so that each is shorter than the one
 * below it (see joined): at most the bits of a length, for its result's pieces and for a match's
 * replacement's parts. */
#define GSUB_PIECES 64

/* After a string was pushed on the `count` ones above `base` (count included it): joins the top two
 * while the top one is at least as long as the one below, so that each byte is copied a number of
 * times logarithmic in the total, not once per piece after it. */
INLINE void joined(const luagate_lane_api *lua, lua_State *L, int base, int *count) {
  while (*count >= 2 && lua->rawlen(L, base + *count) >= lua->rawlen(L, base + *count - 1)) {
    lua->concat(L, 2);
    (*count)--;
  }
}

/* Pushes the replacement string at 3 for a match (find's results above `results`: start, end,
 * captures), in parts joined into one string, after the text from `keep` to the match; returns
 * the replacement's length, which the matcher charges. The string is one repl_ok accepts: '%'
 * before '%', a digit 0 (the whole match) or the number of a capture (1 with none: the whole
 * match). */
INLINE double push_replacement(const luagate_lane_api *lua, lua_State *L, const unsigned char *subject,
                               lua_Integer keep, int results, int found) {
  size_t length, piece;
  const char *repl = lua->tolstring(L, 3, &length);
  const lua_Integer start = lua->tointegerx(L, results + 1, 0), end = lua->tointegerx(L, results + 2, 0);
  const int captures = found - 2, base = lua->gettop(L);
  size_t replaced = 0;
  int parts = 0;
  if (keep < start) {
    lua->pushlstring(L, (const char *)subject + keep - 1, (size_t)(start - keep));
    parts++;
  }
  for (size_t i = 0; i < length;) {
    if (repl[i] != '%') {
      size_t j = i;
      while (j < length && repl[j] != '%') j++;
      lua->pushlstring(L, repl + i, j - i);
      replaced += j - i;
      i = j;
    } else {
      const int digit = i + 1 < length ? repl[i + 1] - '0' : -1;
      if (digit < 0 || digit > 9) {
        lua->pushlstring(L, repl + i + 1, i + 1 < length ? 1 : 0);
        replaced += 1;
      } else if (digit == 0 || captures == 0 || digit > captures) {
        lua->pushlstring(L, (const char *)subject + start - 1, (size_t)(end - start + 1));
        replaced += (size_t)(end - start + 1);
      } else {
        lua->pushvalue(L, results + 2 + digit);
        lua->tolstring(L, -1, &piece);
        replaced += piece;
      }
      i += 2;
    }
    parts++;
    joined(lua, L, base, &parts);
  }
  lua->concat(L, parts);
  return (double)replaced;
}

/* Whether the table at `idx` has no metatable. */
INLINE int bare_table(const luagate_lane_api *lua, lua_State *L, int idx) {
  if (lua->type(L, idx) != LUA_TTABLE) return 0;
  if (!lua->getmetatable(L, idx)) return 1;
  lua->settop(L, -2);
  return 0;
}

/* Whether the value at `idx` is absent, nil or an integer. */
INLINE int no_or_integer(const luagate_lane_api *lua, lua_State *L, int idx, int n) {
  return idx > n || lua->type(L, idx) == LUA_TNIL || lua->isinteger(L, idx);
}

/* Whether the positions at `at` and `at + 1` (absent or nil: 1 and the length of the table at 1)
 * are integers spanning fewer items than a step; *first is the first, *items how many (last - first,
 * unsigned, cannot wrap around, unlike last - first + 1 in integers). A longer range is the route's
 * to charge first. */
INLINE int cheap_range(const luagate_lane_api *lua, lua_State *L, const luagate_lane_state *state, int at, int n,
                       lua_Integer *first, double *items) {
  if (!no_or_integer(lua, L, at, n) || !no_or_integer(lua, L, at + 1, n)) return 0;
  *first = start_position(lua, L, at, n);
  const lua_Integer last =
      n <= at || lua->type(L, at + 1) == LUA_TNIL ? (lua_Integer)lua->rawlen(L, 1) : lua->tointegerx(L, at + 1, 0);
  *items = 0;
  if (last < *first) return 1;
  const unsigned long long gap = (unsigned long long)last - (unsigned long long)*first;
  *items = (double)(gap + 1);
  return gap < (unsigned long long)(lua_Integer)state->flush_at;
}

/* Pushes the function of the running thread's frame at `level` (0: this function) and sets *line to
 * its current line (-1: none, as for C and stripped functions); 0, pushing nothing, where there is
 * no such frame. */
INLINE int push_frame(const luagate_lane_api *lua, lua_State *L, int level, int *line) {
  long long frame[DEBUG_WORDS];
  if (!lua->getstack(L, level, frame)) return 0;
  const char what[4] = {'l', 'f', 0, 0};
  lua->getinfo(L, what, frame);
  *line = *(const int *)((const char *)frame + lua->currentline_at);
  return 1;
}

/* Whether the table at `idx` is one to work on here: a table that `kept` (the sandbox's read-only
 * views, each mapped to what it shows) does not hold, or a view of a table, which is then put in the
 * view's place; with `bare`, only a view of a table without a metatable. Otherwise 0, the stack as it
 * came (a library's view maps to the function that builds its table). A view never shows a view. */
INLINE int seen_through(const luagate_lane_api *lua, lua_State *L, int upvalues, int idx, int bare) {
  lua->pushvalue(L, idx);
  const int type = lua->rawget(L, upvalues - UP_KEPT);
  const int shown = type == LUA_TTABLE && (!bare || bare_table(lua, L, -1));
  if (shown) lua->copy(L, -1, idx);
  lua->settop(L, -2);
  return type == LUA_TNIL || shown;
}

/* Whether `kept` says the errors of the function on top are Lua's as raised, for the error at 1: true,
 * or a prefix that error does not start with. */
INLINE int raised_as_lua(const luagate_lane_api *lua, lua_State *L, int upvalues) {
  lua->pushvalue(L, -1);
  const int type = lua->rawget(L, upvalues - UP_KEPT);
  int passes = type == LUA_TBOOLEAN;
  if (type == LUA_TSTRING) {
    size_t prefix_length, length;
    const char *prefix = lua->tolstring(L, -1, &prefix_length), *e = lua->tolstring(L, 1, &length);
    passes = length < prefix_length;
    for (size_t i = 0; !passes && i < prefix_length; i++) passes = e[i] != prefix[i];
  }
  lua->settop(L, -2);
  return passes;
}

/* The little-endian word of the `bytes` (at most 8) bytes at p, compared with constants: no data. */
INLINE unsigned long long word_at(const char *p, int bytes) {
  unsigned long long w = 0;
  for (int i = bytes - 1; i >= 0; i--) w = (w << 8) | (unsigned char)p[i];
  return w;
}

/* Whether e is luaL_argerror's message for a function it could not name, "bad argument #<n> to '?'
 * (<problem>)"; *marker: where " to '?' (" starts. */
INLINE int unnamed_argument_error(const char *e, size_t length, size_t *marker) {
  /* "bad argu" "ment #" */
  if (length < 25 || word_at(e, 8) != 0x7567726120646162ULL || word_at(e + 8, 6) != 0x2320746e656dULL) return 0;
  size_t at = 14;
  while (at < length && e[at] >= '0' && e[at] <= '9') at++;
  /* " to '?' " "(" ... ")" */
  if (at == 14 || length - at < 11 || word_at(e + at, 8) != 0x20273f27206f7420ULL || e[at + 8] != '(' ||
      e[length - 1] != ')') {
    return 0;
  }
  *marker = at;
  return 1;
}

/* Whether the C function on top is an entry of this lane (its first upvalue is the tally) other than the
 * sandbox's pcall, which catches errors. */
INLINE int passing_entry(const luagate_lane_api *lua, lua_State *L, const luagate_lane_state *state) {
  const int f = lua->gettop(L);
  const int entry = lua->getupvalue(L, f, 1) != 0 && lua->type(L, -1) == LUA_TLIGHTUSERDATA &&
                    lua->touserdata(L, -1) == state && lua->getupvalue(L, f, 2) != 0 &&
                    lua->tointegerx(L, -1, 0) != ENTRY_PCALL;
  lua->settop(L, f);
  return entry;
}

/* Writes at 1 the argument error e with the position of the sandbox code at `level` (its line: `line`)
 * in front, and the name that code called the function by (the frame below), as Lua writes an error of
 * a C function that code calls; returns 0 for the route to decide where Lua calls it a method (the
 * argument's number then shifts). */
INLINE int positioned(const luagate_lane_api *lua, lua_State *L, int level, int line, const char *e, size_t length,
                      size_t marker) {
  long long called[DEBUG_WORDS], code[DEBUG_WORDS];
  const char name_only[2] = {'n', 0}, source_only[2] = {'S', 0};
  if (!lua->getstack(L, level - 1, called) || !lua->getstack(L, level, code)) return 0;
  lua->getinfo(L, name_only, called);
  const char *name = *(const char *const *)((const char *)called + 8);
  const char *namewhat = *(const char *const *)((const char *)called + 16);
  if (namewhat != 0 && namewhat[0] == 'm' && namewhat[1] == 'e' && namewhat[2] == 't' && namewhat[3] == 'h' &&
      namewhat[4] == 'o' && namewhat[5] == 'd' && namewhat[6] == 0) {
    return 0;
  }
  lua->getinfo(L, source_only, code);
  const char *source = (const char *)code + lua->short_src_at;
  size_t source_length = 0;
  while (source_length < 60 && source[source_length] != 0) source_length++;
  const char colon[2] = {':', ' '};
  lua->pushlstring(L, source, source_length);
  lua->pushlstring(L, colon, 1);
  lua->pushinteger(L, line);
  lua->pushlstring(L, colon, 2);
  if (name == 0) {
    lua->pushvalue(L, 1);
    lua->concat(L, 5);
  } else {
    size_t name_length = 0;
    /* the barrier keeps gcc from making the loop a call to strlen */
    while (name[name_length] != 0) {
      name_length++;
      __asm__("" : "+r"(name_length));
    }
    lua->pushlstring(L, e, marker + 5);
    lua->pushlstring(L, name, name_length);
    lua->pushlstring(L, e + marker + 6, length - marker - 6);
    lua->concat(L, 7);
  }
  lua->copy(L, -1, 1);
  return 1;
}

/* The argument error at 1, raised by the C function on top (level 1) and written as Lua writes it, where
 * the frames above it are entries and luagate's own Lua (no line) up to
 *   - a C function that is no entry of the lane, or the sandbox's pcall: that function called it from C,
 *     and Lua names such a function from its table of loaded libraries, where the vetted ones are not
 *     (see located in kernel_libraries.ts). e gets the name the Lua route found for the function before
 *     (kept[1], the names it found: false for none);
 *   - sandbox code, past one such frame at least: e gets that code's position and the name it called by.
 * Returns 1 with e written; 0, the stack as it came, for the route to decide. */
INLINE int written_in_c(const luagate_lane_api *lua, lua_State *L, const luagate_lane_state *state, int upvalues) {
  size_t length, marker;
  const char *e = lua->tolstring(L, 1, &length);
  const int raiser = lua->gettop(L);
  if (!unnamed_argument_error(e, length, &marker) || !lua->checkstack(L, 16)) return 0;
  int line, found = 0;
  for (int level = 2; level < 10 && push_frame(lua, L, level, &line); level++) {
    if (line > 0) {
      if (level > 2) found = positioned(lua, L, level, line, e, length, marker);
      break;
    }
    if (!lua->iscfunction(L, -1) || passing_entry(lua, L, state)) continue;
    /* the function one level down: the one pushed before */
    if (lua->rawgeti(L, upvalues - UP_KEPT, 1) == LUA_TTABLE) {
      lua->pushvalue(L, -3);
      const int named = lua->rawget(L, -2);
      if (named == LUA_TSTRING) {
        lua->pushlstring(L, e, marker + 5);
        lua->rotate(L, -2, 1);
        lua->pushlstring(L, e + marker + 6, length - marker - 6);
        lua->concat(L, 3);
        lua->copy(L, -1, 1);
      }
      found = named == LUA_TSTRING || named == LUA_TBOOLEAN;
    }
    break;
  }
  lua->settop(L, raiser);
  return found;
}

/* Whether the table at `idx` has the field named kept[which]; leaves the field on the stack. */
INLINE int kept_field_of(const luagate_lane_api *lua, lua_State *L, int upvalues, int which, int idx) {
  lua->rawgeti(L, upvalues - UP_KEPT, which);
  return lua->rawget(L, idx < 0 ? idx - 1 : idx) != LUA_TNIL;
}

/* Whether setmetatable(t, mt), the entry's `n` arguments, is one to make here: t a table whose
 * metatable, if it has one, lacks the field kept[SETMETATABLE_PROTECTED], mt nil or a table lacking
 * kept[SETMETATABLE_COLLECTED]. Above the arguments, what it read is left where it answers yes, and
 * nothing where it answers no. */
INLINE int metatable_may_change(const luagate_lane_api *lua, lua_State *L, int upvalues, int n) {
  if (n < 2 || lua->type(L, 1) != LUA_TTABLE || lua->type(L, upvalues - UP_KEPT) != LUA_TTABLE) return 0;
  const int kind = lua->type(L, 2);
  const int may =
      (kind == LUA_TNIL || (kind == LUA_TTABLE && !kept_field_of(lua, L, upvalues, SETMETATABLE_COLLECTED, 2))) &&
      !(lua->getmetatable(L, 1) && kept_field_of(lua, L, upvalues, SETMETATABLE_PROTECTED, -1));
  if (!may) lua->settop(L, n);
  return may;
}

/* Whether the metatable of the table at `idx` has a field `kept`; a table without one has none. */
INLINE int metatable_keeps(const luagate_lane_api *lua, lua_State *L, int upvalues, int idx) {
  if (!lua->getmetatable(L, idx)) return 0;
  lua->pushvalue(L, upvalues - UP_KEPT);
  const int found = lua->rawget(L, -2) != LUA_TNIL;
  lua->settop(L, -3);
  return found;
}

/* Whether the values from `from` to `n` are ones %s shows without a metamethod. */
INLINE int all_plain(const luagate_lane_api *lua, lua_State *L, int from, int n) {
  for (int i = from; i <= n; i++) {
    int type = lua->type(L, i);
    if (type != LUA_TNIL && type != LUA_TBOOLEAN && type != LUA_TNUMBER && type != LUA_TSTRING) return 0;
  }
  return 1;
}

/* Position `at` of a string of `length` bytes, given as nil (`otherwise`) or as an integer in
 * [1, length] or [-length, -1] (counted from the end); 0 for any other. */
INLINE lua_Integer string_position(const luagate_lane_api *lua, lua_State *L, int at, lua_Integer otherwise,
                                   size_t length) {
  const int type = lua->type(L, at);
  if (type == LUA_TNIL) return otherwise;
  if (type != LUA_TNUMBER || !lua->isinteger(L, at)) return 0;
  const lua_Integer position = lua->tointegerx(L, at, 0), bound = (lua_Integer)length;
  if (position >= 1 && position <= bound) return position;
  if (position <= -1 && position >= -bound) return bound + position + 1;
  return 0;
}

/* The units of C's %q of s, as the route charges them: the bytes, and ESCAPE_UNITS for each byte the
 * quote adds (a backslash before '"', '\\' and a newline; the digits of another control char,
 * three when a digit follows it). */
INLINE long long quote_units(const unsigned char *s, size_t length) {
  long long added = 0;
  for (size_t i = 0; i < length; i++) {
    const unsigned c = s[i];
    if (c == '"' || c == '\\' || c == '\n') {
      added += 1;
    } else if (c < 32 || c == 127) {
      const int digit_follows = i + 1 < length && s[i + 1] >= '0' && s[i + 1] <= '9';
      added += digit_follows || c >= 100 ? 3 : c >= 10 ? 2 : 1;
    }
  }
  return (long long)length + ESCAPE_UNITS * added;
}

/* For a format of kind QUOTES with the arguments from 2 to n: the units of its %q conversions, or -1
 * when one is not for the lane (a value other than a number or a string of at most QUOTE_PIECE
 * bytes, or no value). A conversion is read as the route reads it: flags, width, precision, and
 * one char. */
INLINE long long quotes_units(const luagate_lane_api *lua, lua_State *L, int n) {
  size_t length;
  const unsigned char *f = (const unsigned char *)lua->tolstring(L, 1, &length);
  long long units = 0;
  int arg = 1;
  for (size_t i = 0; i < length; i++) {
    if (f[i] != '%') continue;
    if (++i < length && f[i] == '%') continue;
    while (i < length && (f[i] == '-' || f[i] == '+' || f[i] == ' ' || f[i] == '#' || f[i] == '0')) i++;
    while (i < length && f[i] >= '0' && f[i] <= '9') i++;
    if (i < length && f[i] == '.') i++;
    while (i < length && f[i] >= '0' && f[i] <= '9') i++;
    if (i >= length) break;
    arg++;
    if (f[i] != 'q') continue;
    if (arg > n) return -1;
    const int type = lua->type(L, arg);
    if (type == LUA_TSTRING) {
      size_t quoted_length;
      const unsigned char *s = (const unsigned char *)lua->tolstring(L, arg, &quoted_length);
      if (quoted_length > QUOTE_PIECE) return -1;
      units += quote_units(s, quoted_length);
    } else if (type != LUA_TNUMBER) {
      return -1;
    }
  }
  return units;
}

/* Sets count_hook (after the entry) on `thread`, a whole firing from now: its address is found from
 * the code's own, which has no relocations to find it by. */
INLINE void set_count_hook(const luagate_lane_api *lua, lua_State *thread, const luagate_lane_state *state) {
  void (*hook)(lua_State *, void *);
#if defined(__x86_64__)
  __asm__("lea count_hook(%%rip), %0" : "=r"(hook));
#else
  __asm__("adr %0, count_hook" : "=r"(hook));
#endif
  lua->sethook(thread, hook, LUA_MASKCOUNT, hook_every(state));
}

/* Called as a lua_CFunction, with L only; resumed_status is read only when called as the pcall
 * entry's continuation (a lua_KFunction: L, the call's status, its context). */
int luagate_fast_lane(lua_State *L, int resumed_status) {
  uintptr_t here;
#if defined(__x86_64__)
  __asm__("lea 0(%%rip), %0" : "=r"(here));
#elif defined(__aarch64__)
  __asm__("adr %0, ." : "=r"(here));
#else
#error "luagate_fast_lane: only x86_64 and aarch64"
#endif
  const luagate_lane_api *lua =
      *(luagate_lane_api *const *)((here & ~(uintptr_t)(PAGE_SIZE_MIN - 1)) + CODE_PAGES * PAGE_SIZE_MIN -
                                   sizeof(void *));
  const int upvalues = (int)lua->registry;
  luagate_lane_state *state = (luagate_lane_state *)lua->touserdata(L, upvalues - UP_TALLY);
  const int op = (int)lua->tointegerx(L, upvalues - UP_OP, 0);
  const int n = lua->gettop(L);

  /* the common call of the library's function: `units` charged first, `results` kept (-1: all), and
   * when `built`, its one result, a string it built, charged as bytes after it; with
   * `counted_results`, its results charged unless few */
  double units = 0, items;
  lua_Integer first;
  int results = -1, built = 0, counted_results = 0;
  /* the steps of a gmatch iterator (ENTRY_STEPS) or of a gsub: what they search with, where the next
   * search starts and where the last match ended */
  steps_of steps;
  lua_Integer next_from, last_end;
  /* gsub's: the longest rest handed to C's gsub whole (see rest_limit; -1: none) */
  lua_Integer rest_whole = -1;

  if (op == ENTRY_STEPS) {
    steps.subject = (const unsigned char *)lua->tolstring(L, upvalues - UP_SUBJECT, &steps.length);
    steps.pattern_length = (lua_Integer)lua->rawlen(L, upvalues - UP_PATTERN);
    steps.search_limit = lua->tonumberx(L, upvalues - UP_SEARCH_LIMIT, 0);
    steps.attempt_limit = lua->tonumberx(L, upvalues - UP_ATTEMPT_LIMIT, 0);
    steps.subject_at = upvalues - UP_SUBJECT, steps.pattern_at = upvalues - UP_PATTERN;
    steps.record_at = upvalues - UP_KEPT, steps.find_at = upvalues - UP_FUNCTION;
    steps.search_at = upvalues - UP_ROUTE;
    next_from = lua->tointegerx(L, upvalues - UP_FROM, 0);
    last_end = lua->tointegerx(L, upvalues - UP_LAST_END, 0);
    lua->settop(L, 0);
    goto steps;
  }

  if (op == ENTRY_BYTES) {
    units = string_units(lua, L, 1);
    goto call;
  }

  if (op == ENTRY_STRING_PACK || op == ENTRY_STRING_UNPACK) {
    if (n >= 1 && lua->type(L, 1) == LUA_TSTRING) units = (double)lua->rawlen(L, 1);
    if (op == ENTRY_STRING_PACK) {
      results = 1, built = 1;
      goto call;
    }
    units += string_units(lua, L, 2);
    counted_results = 1;
    goto call;
  }

  if (op == ENTRY_PLAIN) {
    if (n >= 1 && all_plain(lua, L, 1, 1)) goto call;
    goto route;
  }

  if (op == ENTRY_BYTE && n >= 1 && n <= 3 && lua->type(L, 1) == LUA_TSTRING) {
    size_t length;
    const unsigned char *s = (const unsigned char *)lua->tolstring(L, 1, &length);
    const lua_Integer first = n >= 2 ? string_position(lua, L, 2, 1, length) : 1;
    const lua_Integer last = n >= 3 ? string_position(lua, L, 3, first, length) : first;
    /* compared as integers: a double constant would be data, which this code may not have */
    const lua_Integer bound = (lua_Integer)length, few = (lua_Integer)state->few;
    if (first >= 1 && last >= first && last <= bound && last - first + 1 < few) {
      for (lua_Integer i = first; i <= last; i++) lua->pushinteger(L, s[i - 1]);
      return (int)(last - first + 1);
    }
  }

  if (op == ENTRY_FEW || op == ENTRY_BYTE) {
    if (n > lua->tointegerx(L, upvalues - UP_KEPT, 0)) goto route;
    counted_results = 1;
    goto call;
  }

  if (op == ENTRY_NEXT || op == ENTRY_RAWGET) {
    if (n > op - ENTRY_NEXT && lua->type(L, 1) == LUA_TTABLE && seen_through(lua, L, upvalues, 1, 0)) {
      lua->settop(L, 2);
      if (op == ENTRY_RAWGET) {
        lua->rawget(L, 1);
        return 1;
      }
      if (lua->next(L, 1)) return 2;
      lua->pushnil(L);
      return 1;
    }
    goto route;
  }

  if (op == ENTRY_RAWLEN) {
    const int kind = n >= 1 ? lua->type(L, 1) : LUA_TNIL;
    /* a view's length is its table's where no metamethod of that table could tell another (the
     * view's __len is this entry, whose route takes #) */
    if (kind == LUA_TSTRING || (kind == LUA_TTABLE && seen_through(lua, L, upvalues, 1, 1))) {
      lua->pushinteger(L, (lua_Integer)lua->rawlen(L, 1));
      return 1;
    }
    goto route;
  }

  if (op == ENTRY_RAWSET) {
    if (n >= 3 && lua->type(L, 1) == LUA_TTABLE && !metatable_keeps(lua, L, upvalues, 1)) {
      lua->settop(L, 3);
      lua->rawset(L, 1);
      return 1;
    }
    goto route;
  }

  if (op == ENTRY_SETMETATABLE) {
    if (!metatable_may_change(lua, L, upvalues, n)) goto route;
    lua->settop(L, 2);
    lua->setmetatable(L, 1);
    return 1;
  }

  if (op == ENTRY_PCALL) {
    /* below f: the tally, the handler and true (a success's first result) */
    int status = resumed_status;
    if (!(n >= 1 && lua->type(L, 1) == LUA_TLIGHTUSERDATA && lua->touserdata(L, 1) == state)) {
      /* the entry's function raises the missing argument's error */
      if (n == 0) return call_upvalue(lua, L, upvalues, UP_FUNCTION, 0, -1);
      lua->pushvalue(L, upvalues - UP_TALLY);
      lua->pushvalue(L, upvalues - UP_KEPT);
      lua->pushboolean(L, 1);
      lua->rotate(L, 1, 3);
      status = lua->pcallk(L, lua->gettop(L) - PCALL_BELOW - 1, -1, PCALL_HANDLER, 0,
                           (void *)(here & ~(uintptr_t)(PAGE_SIZE_MIN - 1)));
    }
    if (status == LUA_OK || status == LUA_YIELD) return lua->gettop(L) - PCALL_BELOW + 1;
    /* the error is on top: false and the error, as the route answers them when it has nothing to do */
    if (route_has_nothing_to_do(lua, L, upvalues - UP_ROUTE)) {
      lua->pushboolean(L, 0);
      lua->rotate(L, -2, 1);
      return 2;
    }
    lua->pushvalue(L, upvalues - UP_ROUTE);
    lua->pushvalue(L, -2);
    lua->callk(L, 1, -1, 0, 0);
    return lua->gettop(L) - PCALL_BELOW - 1;
  }

  if (op == ENTRY_LOCATE) {
    if (n != 1) goto route;
    if (lua->type(L, 1) != LUA_TSTRING) return 1;
    int line;
    /* level 0 is this handler, 1 the function that raised e */
    if (!push_frame(lua, L, 1, &line)) return 1;
    const int passes = line > 0 || raised_as_lua(lua, L, upvalues) ||
                       (lua->iscfunction(L, -1) && written_in_c(lua, L, state, upvalues));
    lua->settop(L, 1);
    if (passes) return 1;
    goto route;
  }

  if (op == ENTRY_FRAME) {
    if (n != 1 || !lua->isinteger(L, 1)) goto route;
    const lua_Integer level = lua->tointegerx(L, 1, 0);
    int line;
    if (level < 1 || level > MAX_FRAME_LEVEL || !push_frame(lua, L, (int)level, &line)) return 0;
    lua->pushinteger(L, line);
    lua->rotate(L, -2, 1);
    return 2;
  }

  if (op == ENTRY_RUN) {
    size_t length, bits = 0;
    if (n < 2 || lua->type(L, 1) != LUA_TSTRING || lua->type(L, 2) != LUA_TSTRING) goto route;
    const unsigned char *set = (const unsigned char *)lua->tolstring(L, 2, &bits);
    if (bits != 32) goto route;
    const unsigned char *subject = (const unsigned char *)lua->tolstring(L, 1, &length);
    const lua_Integer longest = longest_run(subject, length, set);
    settle(lua, L, state, upvalues, string_units(lua, L, 1));
    lua->pushinteger(L, longest);
    return 1;
  }

  if (op == ENTRY_NESTED) {
    /* below f: the handler */
    if (n < 1 || state->nested >= state->max_nested) goto route;
    lua->pushvalue(L, upvalues - UP_KEPT);
    lua->rotate(L, 1, 1);
    state->nested++;
    const int status = lua->pcallk(L, n - 1, -1, 1, 0, 0);
    state->nested--;
    if (status == LUA_OK) return lua->gettop(L) - 1;
    lua->pushvalue(L, upvalues - UP_FUNCTION);
    lua->rotate(L, -2, 1);
    lua->pushinteger(L, 0);
    lua->callk(L, 2, 0, 0, 0);
    return 0;
  }

  if (op == ENTRY_SORT) {
    if (n <= 2 && bare_table(lua, L, 1)) {
      const lua_Integer count = (lua_Integer)lua->rawlen(L, 1);
      if (count >= SORT_IN_C_ITEMS) goto route;
      if (count > 1) units = (double)(count * (64 - __builtin_clzll((unsigned long long)count)));
      goto call;
    }
    goto route;
  }

  if (op == ENTRY_UNPACK) {
    /* t[first], ..., t[first + count - 1], pushed here as C's unpack pushes them (t has no __index) */
    if (n <= 3 && bare_table(lua, L, 1) && cheap_range(lua, L, state, 2, n, &first, &items) &&
        lua->checkstack(L, (int)items)) {
      settle(lua, L, state, upvalues, unless_few(state, items));
      const int count = (int)items;
      for (int i = 0; i < count; i++) lua->rawgeti(L, 1, first + i);
      return count;
    }
    goto route;
  }

  if (op == ENTRY_REMOVE) {
    /* as C's remove: t[pos], the items after it moved down, charged one unit each as the route
     * charges them, then the last set to nil */
    if ((n == 1 || (n == 2 && lua->isinteger(L, 2))) && bare_table(lua, L, 1)) {
      const lua_Integer size = (lua_Integer)lua->rawlen(L, 1);
      lua_Integer pos = n == 2 ? lua->tointegerx(L, 2, 0) : size;
      if (pos != size && (pos < 1 || pos > size + 1)) goto route;
      if (pos >= 1 && pos < size) settle(lua, L, state, upvalues, (double)(size - pos));
      lua->settop(L, 1);
      lua->rawgeti(L, 1, pos);
      for (; pos < size; pos++) {
        lua->rawgeti(L, 1, pos + 1);
        lua->rawseti(L, 1, pos);
      }
      lua->pushnil(L);
      lua->rawseti(L, 1, pos);
      return 1;
    }
    goto route;
  }

  if (op == ENTRY_FORMAT) {
    if (n >= 1 && lua->type(L, 1) == LUA_TSTRING) {
      lua->pushvalue(L, 1);
      const int kind = lua->rawget(L, upvalues - UP_KEPT) == LUA_TNUMBER ? (int)lua->tointegerx(L, -1, 0) : 0;
      lua->settop(L, -2);
      if (kind == NO_CONVERSION) {
        lua->pushvalue(L, 1);
        return 1;
      }
      if (kind == STRING_CONVERSIONS ? all_plain(lua, L, 2, n) : kind == NO_STRING_CONVERSION) {
        units = unless_few(state, (double)lua->rawlen(L, 1));
        results = 1, built = 1;
        goto call;
      }
      if (kind == QUOTES && all_plain(lua, L, 2, n)) {
        const long long quotes = quotes_units(lua, L, n);
        if (quotes >= 0) {
          units = unless_few(state, (double)lua->rawlen(L, 1)) + (double)quotes;
          results = 1, built = 1;
          goto call;
        }
      }
    }
    goto route;
  }

  if (op == ENTRY_CONCAT) {
    /* the range is charged as items */
    if (n <= 4 && bare_table(lua, L, 1) && cheap_range(lua, L, state, 3, n, &first, &items)) {
      units = unless_few(state, items);
      results = 1, built = 1;
      goto call;
    }
    goto route;
  }

  if (op == ENTRY_APPEND) {
    /* as C's insert: at the end, nothing to charge (C finds it in logarithmic time); at pos, the
     * items from pos on moved up, charged one unit each as the route charges them */
    if ((n == 2 || (n == 3 && lua->isinteger(L, 2))) && bare_table(lua, L, 1)) {
      lua_Integer end = (lua_Integer)lua->rawlen(L, 1) + 1;
      const lua_Integer pos = n == 3 ? lua->tointegerx(L, 2, 0) : end;
      if (pos < 1 || pos > end) goto route;
      if (pos < end) settle(lua, L, state, upvalues, (double)(end - pos));
      for (; end > pos; end--) {
        lua->rawgeti(L, 1, end - 1);
        lua->rawseti(L, 1, end);
      }
      lua->pushvalue(L, n);
      lua->rawseti(L, 1, pos);
      return 0;
    }
    goto route;
  }

  if (op == ENTRY_REP) {
    /* charged the repetitions (unless few) and the result's bytes, as the route charges them; each
     * length is at most a step's bytes first, so that the result's length cannot overflow */
    const lua_Integer step_bytes = (lua_Integer)state->flush_at << BYTES_PER_UNIT_SHIFT;
    const int separated = n == 3 && lua->type(L, 3) == LUA_TSTRING;
    if ((n == 2 || (n == 3 && (separated || lua->type(L, 3) == LUA_TNIL))) && lua->type(L, 1) == LUA_TSTRING &&
        lua->isinteger(L, 2)) {
      const lua_Integer times = lua->tointegerx(L, 2, 0), length = (lua_Integer)lua->rawlen(L, 1);
      const lua_Integer separator = separated ? (lua_Integer)lua->rawlen(L, 3) : 0;
      if (times <= step_bytes && length <= step_bytes && separator <= step_bytes) {
        const lua_Integer bytes = times <= 0 ? 0 : length * times + separator * (times - 1);
        if (bytes < step_bytes) {
          units = unless_few(state, (double)times) + (double)(bytes >> BYTES_PER_UNIT_SHIFT);
          results = 1;
          goto call;
        }
      }
    }
    goto route;
  }

  if (op >= ENTRY_FIND && op <= ENTRY_GMATCH) {
    /* the pattern functions: (s, p, ...), charged the subject (from the start position) and the
     * pattern, as the matcher's quick route charges them; gmatch and gsub take no start position */
    if (n < 2 || lua->type(L, 1) != LUA_TSTRING || lua->type(L, 2) != LUA_TSTRING) goto route;
    const lua_Integer subject = (lua_Integer)lua->rawlen(L, 1), pattern = (lua_Integer)lua->rawlen(L, 2);
    const int find = op == ENTRY_FIND, positioned = find || op == ENTRY_MATCH;
    const lua_Integer from = positioned ? start_position(lua, L, 3, n) : 1;
    const lua_Integer rest = subject - from + 1;
    const int plain = find && n >= 4 && lua->toboolean(L, 4);
    int fits, calls_back = 0;
    if (positioned) {
      /* a find of a pattern longer than the rest is no search only when the pattern is plain */
      fits = from > 0 && rest >= 0 && (!find || pattern <= rest || (!plain && has_specials(lua, L, 2)));
    } else if (op == ENTRY_GSUB) {
      const int replacement = n >= 3 ? lua->type(L, 3) : LUA_TNIL;
      calls_back = replacement == LUA_TFUNCTION || replacement == LUA_TTABLE;
      fits = (calls_back || replacement == LUA_TSTRING) && (n < 4 || lua->type(L, 4) == LUA_TNIL);
    } else {
      fits = n < 3 || lua->type(L, 3) == LUA_TNIL;
    }
    lua_Number limit;
    if (!fits || !(plain ? pattern > 0 && plain_limit(lua, L, upvalues, pattern, &limit)
                         : quick_limit(lua, L, upvalues, QUICK_OF_ENTRY(op), &limit))) {
      goto route;
    }
    if ((lua_Number)rest > limit) {
      /* a replacement string the matcher found invalid is known as -1: its runs are not looked at */
      const int string_replacement = op == ENTRY_GSUB && !calls_back;
      if (plain || (string_replacement && limit < 0)) goto route;
      /* a leading '^': gmatch takes it literally, so the runs record of the pattern may be the
       * anchored one; and steps are for unanchored searches (gsub anchors it, gmatch's searches need
       * it escaped): the route's */
      size_t bytes;
      const int caret = lua->tolstring(L, 2, &bytes)[0] == '^';
      lua_Integer run = 0;
      const int by_runs = op == ENTRY_GMATCH && caret ? 0
                                        : cheap_by_runs(lua, L, state, upvalues, rest,
                                                        positioned ? RUNS_SEARCH_LIMITS : RUNS_SCAN_LIMITS,
                                                        string_replacement ? (lua_Integer)lua->rawlen(L, 3) : 0, &run);
      if (by_runs < 0) goto route;
      if (!by_runs) {
        if (positioned) {
          const int attempted = attempt(lua, L, state, upvalues, find, from, rest, pattern, run);
          if (attempted >= 0) return attempted;
        }
        /* gmatch's iterator of steps, or gsub's steps for a replacement string; room for the six
         * values steps_limits pushes, the runs' record and a bitmap, then the iterator's upvalues, or
         * gsub's pieces, a match's results (start, end and at most 32 captures) and its parts */
        if (!caret && (op == ENTRY_GMATCH || string_replacement)) {
          if (lua->checkstack(L, 8 + (op == ENTRY_GMATCH ? STEPS_UPVALUES : GSUB_PIECES + 34 + GSUB_PIECES)) &&
              steps_limits(lua, L, state, upvalues, rest, &run, &steps)) {
            if (op == ENTRY_GSUB) {
              if (!rest_limit(lua, L, steps.record_at, run, &rest_whole)) {
                lua->settop(L, n);
                goto route;
              }
              next_from = 1, last_end = 0;
              goto steps;
            }
            /* the tally, ENTRY_STEPS, C's find, the charge, step_search, the record, s, p, the limits,
             * the first start and no match yet */
            lua->pushvalue(L, upvalues - UP_TALLY);
            lua->pushinteger(L, ENTRY_STEPS);
            lua->pushvalue(L, steps.find_at);
            lua->pushvalue(L, upvalues - UP_CHARGE);
            lua->pushvalue(L, steps.search_at);
            lua->pushvalue(L, steps.record_at);
            lua->pushvalue(L, 1);
            lua->pushvalue(L, 2);
            lua->pushinteger(L, (lua_Integer)steps.search_limit);
            lua->pushinteger(L, (lua_Integer)steps.attempt_limit);
            lua->pushinteger(L, 1);
            lua->pushinteger(L, 0);
            lua->pushcclosure(L, (int (*)(lua_State *))(here & ~(uintptr_t)(PAGE_SIZE_MIN - 1)), STEPS_UPVALUES);
            return 1;
          }
        }
        goto route;
      }
    }
    if (!find) {
      units = unless_few(state, (double)(rest + pattern));
      if (!calls_back) goto call;
      /* nested(gsub, s, p, repl [, nil]), as the route calls it */
      if (lua->rawgeti(L, upvalues - UP_KEPT, QUICK_NESTED) != LUA_TFUNCTION) {
        lua->settop(L, n);
        goto route;
      }
      lua->pushvalue(L, upvalues - UP_FUNCTION);
      lua->rotate(L, 1, 2);
      settle(lua, L, state, upvalues, units);
      lua->callk(L, n + 1, -1, 0, 0);
      return lua->gettop(L);
    }
    /* a pattern without specials is searched for as plain text, as C's find searches for it */
    if (plain || !has_specials(lua, L, 2)) {
      size_t bytes;
      const unsigned char *s = (const unsigned char *)lua->tolstring(L, 1, &bytes) + from - 1;
      const lua_Integer at = plain_search(s, rest, (const unsigned char *)lua->tolstring(L, 2, &bytes), pattern);
      if (at != NOT_IN_WINDOW) {
        const lua_Integer end = at >= 0 ? from + at + pattern - 1 : subject;
        settle(lua, L, state, upvalues, unless_few(state, (double)(end - from + 1 + pattern)));
        if (at < 0) {
          lua->pushnil(L);
          return 1;
        }
        lua->pushinteger(L, from + at);
        lua->pushinteger(L, end);
        return 2;
      }
      /* C's search, from the end of the window on (its start given, where the call had none) */
      lua->pushinteger(L, from + PLAIN_WINDOW);
      if (n >= 3) {
        lua->copy(L, -1, 3);
        lua->settop(L, -2);
      }
    }
    /* charged after the call: from the start to the end of the match, or of the subject */
    const int found = call_upvalue(lua, L, upvalues, UP_FUNCTION, lua->gettop(L), -1);
    const lua_Integer end = found >= 2 && lua->type(L, 1) != LUA_TNIL ? lua->tointegerx(L, 2, 0) : subject;
    settle(lua, L, state, upvalues, unless_few(state, (double)(end - from + 1 + pattern)));
    return found;
  }

  /* read once every two hooks at most: last, after the entries of the common calls */
  if (op == ENTRY_CLOCK || op == ENTRY_PAST) {
    luagate_run_clock *clock = state->clock;
    const lua_Number since = clock_ms(lua->clock_gettime, MONOTONIC_CLOCK) - clock->run_started;
    const int within_limit = since >= 0 && since <= clock->cpu_limit;
    /* past() reads the clocks as the kernel's test read clock(): a first reading until the run's CPU
     * start is known */
    const int first = op == ENTRY_PAST ? clock->cpu_start < 0 : n > 0;
    lua_Number now;
    if (!first && clock->cpu_start >= 0 && within_limit) {
      /* The thread's CPU time never runs ahead of the wall time since the run began, which the
       * first reading counted in: while that is within the limit, it stands for the reading,
       * without the CPU clock's system call (the wall clock is the vDSO's). Between runs the start
       * is infinite. */
      now = clock->cpu_start + since;
    } else if (first && within_limit && since < whole_ms(FIRST_READING_MS)) {
      /* a first reading in the run's first milliseconds: nothing, no system call (FIRST_READING_MS) */
      if (op == ENTRY_CLOCK) return 0;
      lua->pushboolean(L, 0);
      return 1;
    } else {
      now = clock_ms(lua->clock_gettime, THREAD_CPU_CLOCK);
    }
    const lua_Number start = first ? run_cpu_start(clock, now, since) : clock->cpu_start;
    if (op == ENTRY_PAST) {
      lua->pushboolean(L, now - start > clock->cpu_limit);
      return 1;
    }
    lua->pushnumber(L, now);
    if (!first) return 1;
    lua->pushnumber(L, start);
    return 2;
  }

  if (op == ENTRY_DECIDE) {
    /* meta, input, then meta.env and its _G, and the run state's two flags */
    const int run_state = upvalues - UP_FUNCTION, kept = upvalues - UP_KEPT;
    if (n != 2 || lua->type(L, 1) != LUA_TTABLE || lua->type(L, kept) != LUA_TTABLE) goto route;
    lua->rawgeti(L, kept, DECIDE_ENV_KEY);
    int reused = lua->rawget(L, 1) == LUA_TTABLE;
    if (reused) {
      lua->rawgeti(L, kept, DECIDE_G_KEY);
      lua->rawget(L, 3);
      reused = lua->rawequal(L, 3, 4);
    }
    if (!run_state_clean(lua, L, run_state)) {
      lua->settop(L, 2);
      goto route;
    }
    lua->settop(L, reused ? 3 : 2);
    if (!reused) {
      /* a new table of globals, as the route makes one, with decision_envs at 3 and meta.chunk at 4:
       * meta.env is set last, once the chunk has the table as its globals (a refused allocation
       * before leaves meta.env as it was) */
      if (lua->rawgeti(L, kept, DECIDE_ENVS) != LUA_TTABLE ||
          (lua->rawgeti(L, kept, DECIDE_CHUNK_KEY), lua->rawget(L, 1)) != LUA_TFUNCTION) {
        lua->settop(L, 2);
        goto route;
      }
      lua->createtable(L, 0, 1);
      lua->pushvalue(L, 1);
      lua->setmetatable(L, 5);
      lua->rawgeti(L, kept, DECIDE_G_KEY);
      lua->pushvalue(L, 5);
      lua->rawset(L, 5);
      lua->pushvalue(L, 5);
      lua->pushvalue(L, 1);
      lua->rawset(L, 3);
      lua->pushvalue(L, 5);
      lua->setupvalue(L, 4, 1);
      lua->rawgeti(L, kept, DECIDE_ENV_KEY);
      lua->pushvalue(L, 5);
      lua->rawset(L, 1);
      lua->copy(L, 5, 3);
      lua->settop(L, 3);
    }
    /* env at 3, then the handler, meta.fn, input and meta.data */
    lua->rawgeti(L, kept, DECIDE_HANDLER);
    lua->rawgeti(L, kept, DECIDE_FN_KEY);
    lua->rawget(L, 1);
    lua->pushvalue(L, 2);
    lua->rawgeti(L, kept, DECIDE_DATA_KEY);
    lua->rawget(L, 1);
    lua->pushvalue(L, 3);
    lua->setupvalue(L, run_state, DECIDE_CURRENT_ENV);
    set_active(lua, L, run_state, 1);
    const int status = lua->pcallk(L, 2, 2, 4, 0, 0);
    set_active(lua, L, run_state, 0);
    /* the verdict and the reasons at 5 and 6, or the error and nil; then ok and the count moved in
     * front of them */
    if (status != LUA_OK) lua->pushnil(L);
    lua->pushboolean(L, status == LUA_OK);
    lua->getupvalue(L, run_state, DECIDE_COUNT);
    lua->rotate(L, 5, 2);
    return 4;
  }

  if (op == ENTRY_START) {
    /* f and its arguments at 1..n; the handler goes below them, and the run state takes 3 slots */
    const int run_state = upvalues - UP_FUNCTION, kept = upvalues - UP_KEPT;
    if (n < 1 || lua->type(L, kept) != LUA_TTABLE || !lua->checkstack(L, 4)) goto route;
    if (!run_state_clean(lua, L, run_state)) {
      lua->settop(L, n);
      goto route;
    }
    lua->settop(L, n);
    if (lua->rawgeti(L, kept, START_ENVS) == LUA_TTABLE) {
      /* the chunk's last globals at env, untouched when their one key is _G and its value themselves
       * (compared raw: the last run may have put a table with an __eq there) */
      const int env = n + 2;
      lua->pushvalue(L, 1);
      int untouched = lua->rawget(L, n + 1) == LUA_TTABLE;
      if (untouched) {
        lua->pushnil(L);
        untouched = lua->next(L, env) != 0;
      }
      if (untouched) {
        lua->rawgeti(L, kept, START_G_KEY);
        untouched = lua->rawequal(L, env + 1, env + 3) && lua->rawequal(L, env + 2, env);
        lua->settop(L, env + 1);
        untouched = untouched && lua->next(L, env) == 0;
      }
      if (!untouched) {
        lua->settop(L, n);
        goto route;
      }
      lua->settop(L, env);
      lua->setupvalue(L, run_state, DECIDE_CURRENT_ENV);
    }
    lua->settop(L, n);
    lua->rawgeti(L, kept, START_HANDLER);
    lua->rotate(L, 1, 1);
    set_active(lua, L, run_state, 1);
    const int status = lua->pcallk(L, n - 1, LUA_MULTRET, 1, 0, 0);
    /* results that fill the stack leave no room for ok and the count: the run fails instead */
    const int room = lua->checkstack(L, 3);
    if (!room) lua->settop(L, 1);
    set_active(lua, L, run_state, 0);
    lua->pushboolean(L, status == LUA_OK && room);
    lua->getupvalue(L, run_state, DECIDE_COUNT);
    if (!room) lua->rawgeti(L, kept, START_OVERFLOW);
    /* ok and the count (and the overflow's error) in front of the results, above the handler */
    lua->rotate(L, 2, room ? 2 : 3);
    return lua->gettop(L) - 1;
  }

  if (op == ENTRY_ARM) {
    lua_State *thread = n == 0 ? L : n == 1 ? lua->tothread(L, 1) : 0;
    if (thread == 0) goto route;
    state->api = lua;
    /* a coroutine's countdown starts at a whole firing: what it runs before its first firing is
     * counted now, so that coroutines shorter than that cannot run unseen */
    state->counted = n == 0 ? 0 : state->counted + hook_every(state);
    lua->pushvalue(L, upvalues - UP_FUNCTION);
    lua->rawsetp(L, (int)lua->registry, state);
    /* the main thread's extra space, which every new thread copies, is written by the kernel's first
     * arming, before the sandbox makes a coroutine */
    if (n == 0) {
      lua->rawgeti(L, (int)lua->registry, LUA_RIDX_MAINTHREAD);
      *extra_space(lua->tothread(L, -1)) = state;
    }
    *extra_space(thread) = state;
    set_count_hook(lua, thread, state);
    return 0;
  }

  /* LANE_ENTRY: (op, f, charge, route [, kept]) -> the closure of the tally and those; false without
   * a tally or for an op that is no entry */
  const lua_Integer entry = lua->tointegerx(L, 1, 0);
  if (state == 0 || entry < ENTRY_BYTES || entry > ENTRY_START || entry == ENTRY_STEPS) {
    lua->pushboolean(L, 0);
    return 1;
  }
  lua->settop(L, ENTRY_UPVALUES - 1);
  lua->pushvalue(L, upvalues - UP_TALLY);
  lua->rotate(L, 1, 1);
  lua->pushcclosure(L, (int (*)(lua_State *))(here & ~(uintptr_t)(PAGE_SIZE_MIN - 1)), ENTRY_UPVALUES);
  return 1;

steps: {
    /* gmatch's iterator: the next match, its captures or the whole match, both positions moved to
     * its end. gsub (s, p, repl at 1 to 3, the values of steps_limits above): every match, each
     * replaced by repl's parts after the text before it, in pieces joined as they come, each
     * replacement charged its length, until the rest from the end of a match is C's gsub, charged as
     * a whole call (as the matcher's stepped_gsub); returns the result and the number of matches. */
    const int gsub = op == ENTRY_GSUB, pieces = lua->gettop(L);
    const lua_Integer length = (lua_Integer)steps.length;
    lua_Integer keep = 1, count = 0;
    int held = 0;
    for (;;) {
      const int at = pieces + held;
      const lua_Integer rest = length - next_from + 1;
      if (gsub && rest <= rest_whole) {
        settle(lua, L, state, upvalues, unless_few(state, (double)(rest + steps.pattern_length)));
        lua->pushvalue(L, upvalues - UP_FUNCTION);
        lua->pushlstring(L, (const char *)steps.subject + next_from - 1, (size_t)rest);
        lua->pushvalue(L, 2);
        lua->pushvalue(L, 3);
        lua->callk(L, 3, 2, 0, 0);
        const lua_Integer replaced = lua->tointegerx(L, -1, 0);
        lua->settop(L, -2);
        if (replaced > 0) {
          count += replaced;
          held++;
          joined(lua, L, pieces, &held);
          keep = length + 1;
        }
        break;
      }
      const int found = next_match(lua, L, state, upvalues, &steps, next_from, last_end, at);
      const lua_Integer end = found ? lua->tointegerx(L, at + 2, 0) : length + 1;
      if (!gsub) {
        lua->pushinteger(L, end + 1);
        lua->copy(L, -1, upvalues - UP_FROM);
        if (!found) return 0;
        lua->copy(L, -1, upvalues - UP_LAST_END);
        lua->settop(L, -2);
        if (found > 2) return found - 2;
        const lua_Integer start = lua->tointegerx(L, 1, 0);
        lua->pushlstring(L, (const char *)steps.subject + start - 1, (size_t)(end - start + 1));
        return 1;
      }
      if (!found) break;
      count++;
      settle(lua, L, state, upvalues, push_replacement(lua, L, steps.subject, keep, at, found));
      /* the text and its replacement in place of the results */
      lua->rotate(L, at + 1, 1);
      lua->settop(L, at + 1);
      held++;
      joined(lua, L, pieces, &held);
      keep = next_from = last_end = end + 1;
    }
    lua->settop(L, pieces + held);
    if (count == 0) {
      lua->pushvalue(L, 1);
    } else {
      if (keep <= length) {
        lua->pushlstring(L, (const char *)steps.subject + keep - 1, (size_t)(length - keep + 1));
        held++;
      }
      lua->concat(L, held);
    }
    lua->pushinteger(L, count);
    return 2;
  }

call:
  settle(lua, L, state, upvalues, units);
  results = call_upvalue(lua, L, upvalues, UP_FUNCTION, n, results);
  if (built) settle(lua, L, state, upvalues, string_units(lua, L, 1));
  if (counted_results && results >= state->few) settle(lua, L, state, upvalues, (double)results);
  return results;

route:
  return call_upvalue(lua, L, upvalues, UP_ROUTE, n, -1);
}

/* The count hook of the threads ENTRY_ARM armed (see the top of this file): it adds up the
 * instructions, and hands them to the kernel's hook (in the registry under the state's address)
 * once they reach a step, or at once when the run may be past its deadline. An error the kernel's
 * hook raises unwinds through this function as through Lua's own hook function. */
__attribute__((used, noinline)) static void count_hook(lua_State *L, void *ar) {
  (void)ar;
  luagate_lane_state *state = *extra_space(L);
  const luagate_lane_api *lua = state->api;
  const int every = hook_every(state);
  state->counted += every;
  const int before_step = state->counted < state->flush_at;
  const int clock_firing = (long long)state->counted % (CLOCK_FIRINGS * every) == 0;
  const int late = before_step && (clock_firing || lua->gc(L, LUA_GCCOUNT, 0) > LARGE_HEAP_KB) &&
                   past_deadline(state->clock, lua->clock_gettime);
  if (before_step && !late) return;
  /* Between runs (the host ended the run clock: its start is infinite, and infinity less itself is
   * not 0) the kernel's hook is not called. What the kernel runs then (compiling the next chunk)
   * counts for no run, and a limit that tripped in the run before is not raised again there: a run
   * whose last instructions, after its protected call, met a firing ended by that error, before it
   * could mark itself ended. */
  const double started = state->clock->run_started;
  if (started - started != 0) return;
  lua->rawgetp(L, (int)lua->registry, state);
  lua->pushinteger(L, (lua_Integer)state->counted);
  lua->pushboolean(L, late);
  /* counted until the kernel's hook has them: the call itself can fail (at Lua's C stack limit, in
   * pcalls nested 200 deep), and a later firing hands them again */
  lua->callk(L, 2, 1, 0, 0);
  /* kept outside a run, for the host: the last of a run's instructions can reach a step after it ended */
  if (!lua->toboolean(L, -1)) state->counted = 0;
  lua->settop(L, -2);
  /* Lua counts the kernel's hook's own instructions down too: the next firing is a whole one from
   * here, so that a run's count is its own instructions */
  set_count_hook(lua, L, state);
}
