/*
 * luagate's call runner: a whole call the host makes on every decision, in one FFI crossing.
 *
 * The host's usual path crosses into C a dozen times for one call: it pushes the function and its
 * target from the registry, calls the data builder to make the input, calls the function, then asks
 * for the type and the value of each result. Each crossing is cheap (5 ns in a hot loop), but the JS
 * around each one is not: doing them all here took 17% off a trivial decision.
 *
 * This file is NOT compiled at run time. scripts/build_native.sh compiles it into a small shared
 * library with no dependencies (-nostdlib), embedded as bytes in ffi/call_runner.ts, which writes
 * it to an anonymous memory file (memfd_create) and opens it with Deno.dlopen: Deno calls a symbol
 * it got from dlopen through its fast path, and any other function pointer through a path 200
 * times slower.
 *
 * The function never raises a Lua error itself: everything that may fail (the builder, the call)
 * runs under lua_pcall. Where anything is out of the ordinary, it stops and returns with the stack
 * as the host's own path would have left it at that point, and the host goes on from there.
 *
 * Rules for this file, so that the library stays self-contained:
 *   - no calls to anything but the function pointers the host hands over;
 *   - no globals, no #include (we compile freestanding).
 */

typedef __INTPTR_TYPE__ intptr_t;
typedef long long lua_Integer;
typedef double lua_Number;
typedef struct lua_State lua_State;
typedef int (*lua_CFunction)(lua_State *L);

/* Lua's functions the runner calls (5.3 and 5.4 share these signatures), set once per library. */
typedef struct {
  int (*gettop)(lua_State *L);
  int (*checkstack)(lua_State *L, int n);
  int (*rawgeti)(lua_State *L, int idx, lua_Integer n);
  void (*pushnil)(lua_State *L);
  void (*pushcclosure)(lua_State *L, lua_CFunction fn, int n);
  int (*pcallk)(lua_State *L, int nargs, int nresults, int msgh, intptr_t ctx, void *k);
  int (*type)(lua_State *L, int idx);
  int (*toboolean)(lua_State *L, int idx);
  lua_Number (*tonumberx)(lua_State *L, int idx, int *isnum);
  lua_Integer (*tointegerx)(lua_State *L, int idx, int *isnum);
  int (*isinteger)(lua_State *L, int idx);
  void (*pushboolean)(lua_State *L, int b);
  void (*pushinteger)(lua_State *L, lua_Integer n);
  void (*pushnumber)(lua_State *L, lua_Number n);
} luagate_lua;

/* Results described for the host: more go unread here (the host reads them from the stack). */
#define MAX_RESULTS 8
/* Arguments the host describes: a call with more, or with others than these, goes its usual way. */
#define MAX_ARGUMENTS 8

/*
 * One state's call. The host writes the references before each call; the runner reads the whole
 * input at once, before it calls Lua (a callback may run another call of the same state), and
 * writes the outputs only after Lua returned.
 */
typedef struct {
  const luagate_lua *lua;                     /* 0 */
  lua_CFunction builder;                      /* 8: luagate_build_data */
  int *builder_busy;                          /* 16: nonzero while its buffers are in use */
  unsigned long long *allow_overdraft;        /* 24: the allocator's words */
  const unsigned long long *overdraft;        /* 32 */
  int registry;                               /* 40: LUA_REGISTRYINDEX */
  int fn_ref;                                 /* 44 */
  int target_ref;                             /* 48 */
  int known_ref;                              /* 52: the builder's known strings; 0: none */
  int status;                                 /* 56: out: of the last lua_pcall */
  int results;                                /* 60: out: how many the call returned */
  int types[MAX_RESULTS];                     /* 64: out: lua_type, or NOT_SCALAR */
  double values[MAX_RESULTS];                 /* 96: out: booleans as 0/1, numbers */
  int input;                                  /* 160: what fn takes after its target (below) */
  int arguments;                              /* 164: for SCALARS, how many */
  int argument_kinds[MAX_ARGUMENTS];          /* 168 */
  double argument_values[MAX_ARGUMENTS];      /* 200: booleans as 0/1, numbers */
} luagate_call_state;

/* fn(target); fn(target, the builder's table); fn(target, the arguments described). Pushing a nil,
 * a boolean or a number allocates nothing once the stack has room, so it cannot raise. */
enum { NO_INPUT = 0, BUILT = 1, SCALARS = 2 };
enum { ARGUMENT_NIL = 0, ARGUMENT_BOOLEAN = 1, ARGUMENT_INTEGER = 2, ARGUMENT_FLOAT = 3 };

/* Where the runner stopped; the stack above the top it found holds what each one says. */
enum {
  CALLED = 0,       /* fn's results; types and values describe them */
  NO_STACK = 1,     /* nothing: the stack could not grow */
  NOT_BUILT = 2,    /* fn, target, the builder's error or non-table result; status is the builder's */
  OVERDRAWN = 3     /* fn, target, input: the input went past the memory cap (the host decides) */
};

#define LUA_TNIL 0
#define LUA_TBOOLEAN 1
#define LUA_TNUMBER 3
#define LUA_TTABLE 5
#define NOT_SCALAR (-2)
/* Integers beyond 2^53 lose digits as doubles: the host reads them from the stack. */
#define SAFE_INTEGER 9007199254740991LL

int luagate_call(lua_State *L, luagate_call_state *c) {
  const luagate_lua *lua = c->lua;
  lua_CFunction builder = c->builder;
  int *builder_busy = c->builder_busy;
  unsigned long long *allow_overdraft = c->allow_overdraft;
  const unsigned long long *overdraft = c->overdraft;
  const int registry = c->registry, fn_ref = c->fn_ref, target_ref = c->target_ref, known_ref = c->known_ref;
  const int input = c->input;
  int arguments = 0, kinds[MAX_ARGUMENTS];
  double values[MAX_ARGUMENTS];
  if (input == SCALARS) {
    arguments = c->arguments;
    if (arguments < 0 || arguments > MAX_ARGUMENTS) return NO_STACK;
    for (int i = 0; i < arguments; i++) {
      kinds[i] = c->argument_kinds[i];
      values[i] = c->argument_values[i];
    }
  }
  int top = lua->gettop(L);
  /* fn, target, the builder and its argument, or the arguments; the call below grows the stack for
   * its results */
  if (!lua->checkstack(L, 4 + arguments)) return NO_STACK;
  lua->rawgeti(L, registry, fn_ref);
  lua->rawgeti(L, registry, target_ref);
  int status;
  for (int i = 0; i < arguments; i++) {
    switch (kinds[i]) {
      case ARGUMENT_BOOLEAN: lua->pushboolean(L, values[i] != 0); break;
      case ARGUMENT_INTEGER: lua->pushinteger(L, (lua_Integer)values[i]); break;
      case ARGUMENT_FLOAT: lua->pushnumber(L, values[i]); break;
      default: lua->pushnil(L);
    }
  }
  if (input == BUILT) {
    lua->pushcclosure(L, builder, 0);
    if (known_ref != 0) lua->rawgeti(L, registry, known_ref);
    else lua->pushnil(L);
    status = lua->pcallk(L, 1, 1, 0, 0, 0);
    /* the program is built: the call below may encode others (a capability returning data) */
    *builder_busy = 0;
    if (status != 0 || lua->type(L, -1) != LUA_TTABLE) {
      c->status = status;
      return NOT_BUILT;
    }
    if (*overdraft) return OVERDRAWN;
  }
  *allow_overdraft = 0;
  status = lua->pcallk(L, 1 + (input == BUILT) + arguments, -1, 0, 0, 0);
  *allow_overdraft = 1;
  int n = lua->gettop(L) - top;
  c->status = status;
  c->results = n;
  for (int i = 0; i < n && i < MAX_RESULTS; i++) {
    int idx = top + 1 + i, type = lua->type(L, idx);
    double value = 0;
    if (type == LUA_TBOOLEAN) {
      value = lua->toboolean(L, idx);
    } else if (type == LUA_TNUMBER) {
      if (lua->isinteger(L, idx)) {
        lua_Integer integer = lua->tointegerx(L, idx, 0);
        if (integer > SAFE_INTEGER || integer < -SAFE_INTEGER) type = NOT_SCALAR;
        else value = (double)integer;
      } else {
        value = lua->tonumberx(L, idx, 0);
      }
    } else if (type != LUA_TNIL) {
      type = NOT_SCALAR;
    }
    c->types[i] = type;
    c->values[i] = value;
  }
  return CALLED;
}
