/**
 * The sandbox kernel: trusted Lua run once in every sandbox state, before any untrusted code, with
 * the base, string, table and debug libraries open. It keeps what it needs in locals, builds the
 * vetted environment and the limit machinery, locks the string metatable, empties the real
 * globals, and returns its API to the host. Each vetted library is built on its first use by the
 * builders of `LIBRARIES_LUA` (kernel_libraries.ts), a chunk of its own loaded then, which opens the
 * libraries the kernel does not need (coroutine, math, os, utf8) from their C openers. Its rarely
 * taken paths (argument errors, most routes of the fast lane's entries, the piecewise compiler) are
 * `ROUTES_LUA` (kernel_routes.ts), loaded on their first use the same way. Nothing it holds is
 * reachable from sandboxed code.
 *
 * Limits: one budget per run. A count hook is installed on the main thread and on every coroutine
 * the sandbox creates: the fast lane's (`ffi/fast_lane.c`), which counts in C and calls the kernel's
 * hook (a Lua function, so it may raise) at every step, or where there is no lane a Lua function
 * that calls it, installed with `debug.sethook`. C functions whose work depends on their
 * arguments are charged against the same budget before they run (pattern functions run through a
 * stepped matcher when they could be expensive). Once a limit trips it stays tripped for the run:
 * the kernel's hook raises at every call and every catch point re-raises. The host learns of each trip
 * through the host function `\0trip`, and decides from its own flags, never from a message.
 *
 * @module
 */

import { LaneEntry, MAX_NESTED_CALLS } from "../ffi/fast_lane.ts";

/**
 * Sandbox code of more bytes than this is compiled a piece at a time, the CPU limit checked between
 * pieces; shorter code in one call of Lua's parser.
 */
export const LOAD_PIECE_BYTES = 2048;

/** What the kernel's `prepare` answers for a compile that outlasted the CPU limit. */
export const COMPILE_TOO_LONG = "cpu time limit exceeded while compiling";

// Every run and every decision starts with these lines, so that nothing one leaves (counts, the
// nesting of C calls, the random seed, the ids tostring gave out) reaches the next. Whatever
// changes any of those marks the run state dirty before it does, so a run that changed none (most
// short ones) skips the resets: every instruction here runs under the count hook (about 9 ns each,
// a tenth of a short decision's Lua time). The main thread's hook stays installed; between runs it
// returns at once. Written out in each entry rather than called: a call costs more than the lines.
const BEGIN_RUN = `
    if dirty then
      count, tripped, fires, cpu_start = 0, nil, 0, nil
      charged, nest = 0, 0
      if random_reset then random_reset() random_reset = nil end
      if last_id > 0 then ids, last_id = setmetatable({}, WEAK_KEYS), 0 end
      -- a full step to the first hook, wherever the last run left the countdown
      arm()
      dirty = false
    end
    active = true`;

/**
 * C work worth fewer units than this is not charged: the wrapper's own instructions, which the
 * hook counts, cost more. The fast lane (`ffi/fast_lane.ts`) skips the same amounts.
 */
export const UNCHARGED_UNITS = 16;

/**
 * The collector's step on the JS allocator, as a power of 2 bytes. There every block Lua frees is a
 * call into JS (some 1.5 µs here), and the hook cannot stop the collector inside a step: one step of
 * Lua's default size (2^13) may sweep 51,200 objects (75 ms), and a generational major collection
 * frees every old dead object at once. A step of 2^10 sweeps at most 6,400.
 */
export const SMALL_STEP_LOG2 = 10;

/**
 * The host's own functions, as the kernel calls them through `c_host`: by these numbers, under 1,
 * where a capability is called by its number from 1.
 */
export const HostFunction = {
  clock: 0,
  trip: -1,
  write: -2,
  module: -3,
  patterns: -4,
  libraries: -5,
  routes: -6,
} as const;

/**
 * The vetted libraries opened on first use, in the order the kernel chunk takes their openers: the
 * kernel's parameters and its table of openers are written from this one list, so that no opener
 * can be taken for another library's.
 */
export const LAZY_LIBRARIES = ["coroutine", "utf8", "math", "os"] as const;

/**
 * The kernel chunk; called with `(c_host, step, budget, cpu_limit, denied, lane, ...openers)`:
 * the host's raw C function (`c_host(number, ...)`, where `number` is a capability's or one of
 * {@linkcode HostFunction}, returns `true, results...` or `false, err`), the
 * hook interval, the run's instruction budget and CPU milliseconds, the value a denied capability
 * call returns, the fast lane's maker of entries (`ffi/fast_lane.ts`; nil where there is none), and
 * the `luaopen_*` C functions of {@linkcode LAZY_LIBRARIES} in that order (nil for one the Lua
 * library has none of: utf8 before 5.3). It returns its entry points in the order of
 * {@linkcode KERNEL_ENTRIES}. Works on Lua 5.3 and 5.4.
 */
export const KERNEL_LUA = `
-- the limits are the state's, the same for every run
local c_host, STEP, budget, cpu_limit, DENIED, lane, ${
  LAZY_LIBRARIES.map((name) => `open_${name}`).join(", ")
} = ...
local OPENERS = { ${LAZY_LIBRARIES.map((name) => `${name} = open_${name}`).join(", ")} }

local _G = _G
local type, next, pairs, ipairs, select, tostring, tonumber = type, next, pairs, ipairs, select, tostring, tonumber
local error, assert, pcall, xpcall = error, assert, pcall, xpcall
local rawget, rawset, rawequal, rawlen = rawget, rawset, rawequal, rawlen
local setmetatable, getmetatable, load, collectgarbage = setmetatable, getmetatable, load, collectgarbage
local string, table, debug = string, table, debug
local d_sethook, d_getmetatable, d_setmetatable = debug.sethook, debug.getmetatable, debug.setmetatable
local d_setupvalue, d_getupvalue, d_upvaluejoin = debug.setupvalue, debug.getupvalue, debug.upvaluejoin
local d_getinfo = debug.getinfo
local s_byte, s_find, s_sub, t_concat, t_pack = string.byte, string.find, string.sub, table.concat, table.pack
-- the globals of the trusted chunks loaded later (vetted libraries, pattern matcher), taken here
-- before the real globals are emptied
local TRUSTED_GLOBALS = {
  _VERSION = _VERSION, assert = assert, error = error, getmetatable = getmetatable, load = load,
  next = next, xpcall = xpcall, rawget = rawget, rawset = rawset, select = select,
  setmetatable = setmetatable, tonumber = tonumber, tostring = tostring, type = type, string = string,
  table = table,
}

-- The rest is built in two nested functions, each run once. A closure finds each local it captures
-- by walking the open upvalues above that local (luaF_findupval), so a hundred captured locals in
-- one function made start-up quadratic; a local of an enclosing function is reached directly.
return (function()
  local function unwrap(ok, ...)
    if ok then return ... end
    error((...), 0)
  end
  local function host_function(number)
    return function(...) return unwrap(c_host(number, ...)) end
  end
  local host_clock, host_trip = host_function(${HostFunction.clock}), host_function(${HostFunction.trip})
  local host_write, host_module = host_function(${HostFunction.write}), host_function(${HostFunction.module})
  local host_patterns = host_function(${HostFunction.patterns})
  local host_libraries, host_routes = host_function(${HostFunction.libraries}), host_function(${HostFunction.routes})

  local MEMERR = "not enough memory"
  local COMPILE_TOO_LONG = "${COMPILE_TOO_LONG}"
  -- 5.4 reports every refused allocation as MEMERR, its auxiliary buffers too. 5.3's buffers
  -- (string.rep, table.concat, string.format, ...) report one in their own words, with luaL_error, so
  -- after the caller's position ("input:3: not enough memory for buffer allocation"); it is the same
  -- limit and must be as sticky. BUFFER_MEMERR: those words (false on 5.4)
  local BUFFER_MEMERR = TRUSTED_GLOBALS._VERSION == "Lua 5.3" and ": not enough memory for buffer allocation"
  local IS_MEMERR = { [MEMERR] = true }
  if BUFFER_MEMERR then IS_MEMERR[s_sub(BUFFER_MEMERR, 3)] = true end
  local MESSAGES = {
    instructions = "instruction limit exceeded",
    cpu = "cpu time limit exceeded",
    output = "output limit exceeded",
    memory = MEMERR,
  }

  -- the one metatable of the kernel's tables with weak keys
  local WEAK_KEYS = { __mode = "k" }

  -- run state; dirty: some of it differs from what a run starts with (see BEGIN_RUN). The first run
  -- of a state arms the hook again: the count hook's countdown is wherever the state's making left
  -- it, which differs between a state built and one copied from a template.
  local active, dirty, tripped, count, fires = false, true, nil, 0, 0
  -- trusted work (try_trusted) is in progress, outside the budget of the run it is part of
  local trusted = false
  -- the CPU clock costs a system call: it is first read at the run's CLOCK_STEPS-th hook and then at
  -- every CLOCK_STEPS-th; the fast lane reads it in C, the host's (a call into JS) costs several
  -- times more
  local cpu_start, CLOCK_STEPS = nil, lane and 2 or 8
  local current_env

  local function raise_tripped()
    error(MESSAGES[tripped] or tripped, 0)
  end

  local function trip(reason, detail)
    if not tripped then
      dirty = true
      tripped = reason
      if reason == "permission" then tripped = "permission denied: " .. tostring(detail) end
      host_trip(reason, detail)
    end
    raise_tripped()
  end

  -- the first reading of a run starts its CPU clock, back-dated by the wall time since the run
  -- began (the steps before it, an upper bound of their CPU time: one step can be slow); a later
  -- one past the deadline trips. A first reading in the run's first millisecond answers nothing
  -- (FIRST_READING_MS in ffi/clock.ts): the run cannot be past its deadline yet.
  local function read_clock()
    local now
    if cpu_start == nil then
      now, cpu_start = host_clock(true)
      if cpu_start == nil then return end
    else
      now = host_clock()
    end
    if now - cpu_start > cpu_limit then trip("cpu") end
  end

  -- instructions: how many ran since the last call; late: the lane's count hook found the run
  -- may be past its deadline before a step (ffi/fast_lane.c, CLOCK_FIRINGS and LARGE_HEAP_KB)
  -- returns whether the lane keeps the instructions: outside a run it does, for the host, which
  -- counts those a run handed over after its end (in the kernel's last instructions) and drops any
  -- other; trusted work inside a run drops them
  local function hook(instructions, late)
    if not active then return not trusted end
    dirty = true
    if tripped then raise_tripped() end
    count = count + instructions
    if count > budget then return trip("instructions") end
    fires = fires + 1
    -- a short run never reads the clock; a long one reads it at every CLOCK_STEPS-th hook (at every
    -- one when the heap is large enough for single instructions to be slow), so a run past its
    -- deadline goes on for at most CLOCK_STEPS steps: single instructions can be slow on a small
    -- heap too (a read through an __index chain of 2,000 tables takes some 25 µs). The lane's
    -- count hook looks at the wall clock at least every 512 instructions on any heap (every 64 on a
    -- large one), so that a run of slow instructions stops within some 13 ms of its deadline;
    -- without a lane, a step's CPU time on the process's clock does the same (step_hook).
    if late or fires >= CLOCK_STEPS or collectgarbage("count") > 512 then
      fires = 0
      read_clock()
    end
    return false
  end

  -- charged C work is invisible to the hook: the clock is also read after every CLOCK_STEPS steps'
  -- worth of it
  local charged, CLOCK_UNITS = 0, CLOCK_STEPS * STEP
  -- compares before adding: count + units could wrap around for integer units near math.maxinteger
  -- units is positive: a charge of less (a negative span, NaN) would take the count down
  local function charge(units)
    if active and units > 0 then
      dirty = true
      if units > budget - count then
        count = budget + 1
        trip("instructions")
      end
      count = count + units
      charged = charged + units
      if charged >= CLOCK_UNITS then
        charged = 0
        read_clock()
      end
    end
  end
  -- linear C work on strings: one unit per 16 bytes (a shorter string costs nothing to charge)
  local function charge_bytes(s)
    if type(s) == "string" and #s >= 16 then charge(#s >> 4) end
    return s
  end
  -- A vetted function that is an entry of the fast lane (ffi/fast_lane.c), where there is one: a C
  -- closure that makes the common call to Lua's own C function f and hands any other to route. op
  -- is one of LaneEntry (ffi/fast_lane.ts), written into this chunk; the host gives the lane a
  -- tally whenever it gives the lane, so it makes every one of them. Where there is no lane, the
  -- entry is a Lua function that hands every call to route, in the frame the lane's entry would
  -- have: the name the sandbox code called a function by is that frame's (a C function's argument
  -- error shows it), which a tail call would drop. ENTRY_UP: the levels an entry puts in front of
  -- its route (an error the route raises at level 2 must say 2 + ENTRY_UP).
  local ENTRY_UP = 1
  local function lane_entry(op, f, route, kept)
    if lane then return (assert(lane(op, f, charge, route, kept))) end
    return function(...) return select(1, route(...)) end
  end
  -- the same clock read in C, without a call into the host; and with it the whole test of
  -- read_clock, one call and one branch whichever clock it read: the instructions a run counts do
  -- not depend on how fast it ran (the CPU start is the run clock's, which the host reads)
  host_clock = lane_entry(${LaneEntry.clock}, nil, host_clock)
  if lane then
    local past = lane_entry(${LaneEntry.past})
    read_clock = function()
      if past() then trip("cpu") end
    end
  end
  -- The count hook where there is no lane. A step of slow instructions would go on for CLOCK_STEPS
  -- steps past the deadline before the host's clock is read. The process's CPU clock (C's clock()
  -- through a private os.clock, no call into the host; wall time on Windows) runs at least as fast
  -- as the thread's: a step that took more than 5 ms of it reaches the hook late, which reads the
  -- host's clock at once. Made only where there is no lane (the lane counts in C).
  local step_hook
  if not lane then
    local process_clock, step_clock = OPENERS.os().clock, 0
    -- the hook's instructions after it set itself again: 5.3 runs the return after a tail call
    local AFTER = TRUSTED_GLOBALS._VERSION == "Lua 5.3" and 1 or 0
    step_hook = function()
      local now = process_clock()
      local late = now - step_clock > 0.005
      step_clock = now
      hook(STEP, late)
      -- Lua counts this hook's own instructions down too: the next step is a whole one from here
      return d_sethook(step_hook, "", STEP + AFTER)
    end
  end
  -- arm([co]): the count hook installed on the coroutine co, or on the running thread for a new run
  local arm = lane_entry(${LaneEntry.arm}, hook, function(co)
    if co == nil then d_sethook(step_hook, "", STEP) else d_sethook(co, step_hook, "", STEP) end
  end)
  -- work worth fewer units than this is not charged (UNCHARGED_UNITS)
  local FEW = ${UNCHARGED_UNITS}
  -- one unit per result
  local function charge_results(...)
    local n = select("#", ...)
    if n >= FEW then charge(n) end
    return ...
  end

  -- a refused allocation that Lua reported as an error e trips the memory limit (true: it did)
  local function memory_tripped(e)
    if not active then return false end
    if not IS_MEMERR[e] and not (BUFFER_MEMERR and type(e) == "string" and s_sub(e, -#BUFFER_MEMERR) == BUFFER_MEMERR) then
      return false
    end
    dirty = true
    tripped = tripped or "memory"
    return true
  end

  -- catch points: once a limit tripped, nothing may swallow it. Every caught error passes here, and
  -- under the count hook each call costs as much as a dozen instructions: memory_tripped is called
  -- only for an error it may find to be a refused allocation.
  local function caught(ok, ...)
    if not ok and active then
      if BUFFER_MEMERR or IS_MEMERR[...] then memory_tripped((...)) end
      if tripped then raise_tripped() end
    end
    return ok, ...
  end

  -- The vetted libraries are built on their first use, not with the state: most runs touch few of
  -- them, and a sandbox that is created, run once and closed pays only for what it used. Building is
  -- trusted work outside the run's budget (bounded, and never cut half-way by the hook; its memory
  -- still counts); a build that fails (out of memory) leaves nothing behind and is tried again.
  -- try_trusted returns false and the error where build_trusted raises it.
  local function try_trusted(build)
    local was, was_trusted = active, trusted
    active, trusted = false, true
    local ok, built = pcall(build)
    active, trusted = was, was_trusted
    return ok, built
  end
  local function build_trusted(build)
    local ok, built = try_trusted(build)
    if not ok then error(built, 0) end
    return built
  end

  -- The kernel's rarely taken paths (Lua's argument errors, most routes of the fast lane's
  -- entries, the piecewise compiler) are a chunk of their own (kernel_routes.ts), loaded from the
  -- host's cached bytecode the first time one is taken, as trusted work. A stub stands for each: it
  -- tail-calls the function, so the levels that function's errors name count the same frames.
  local vetted_builders, internals, nested, routes_built
  local function routes()
    if routes_built == nil then
      routes_built = build_trusted(function()
        return assert(load(host_routes(), "=luagate.routes", "b", TRUSTED_GLOBALS))(internals())
      end)
    end
    return routes_built
  end
  local function route(name)
    return function(...) return routes()[name](...) end
  end
  -- bad_argument(i, fname, problem, level): Lua's error for argument i of fname, raised at level (of
  -- the caller of bad_argument), which is the sandbox code's call of the function below it
  local bad_argument, expected_type, argument_message = route("bad_argument"), route("expected_type"),
    route("argument_message")

  -- Lua's C functions put the line of the code that called them in front of their errors, and an
  -- argument error names the function as that code called it (luaL_where, luaL_argerror). Called
  -- by an entry of the fast lane or by a Lua route of the vetted functions, their caller is C or
  -- luagate's own stripped chunk, so the message has neither: "bad argument #2 to '?' (position
  -- out of bounds)". And a VM error in luagate's own Lua carries that chunk's position ("?:-1:")
  -- where Lua's C function would have none. A message handler at every catch point has such a
  -- message written as Lua would have, by the vetted libraries' located (kernel_libraries.ts),
  -- loaded for the first error raised by a C function other than error(), assert() (whose message
  -- Lua places as error's) and the catch functions, or by luagate's Lua. Every other error object
  -- passes.

  -- A frame with a line runs sandbox code: luagate's own chunks are stripped in every state
  -- (LuaCore.loadTrusted), and the sandbox loads text only.
  -- e raised by the function at \`level\` of the running thread (counted from the caller); the
  -- libraries' located filters alike, for a coroutine's error too. Neither place nor locate's
  -- route tail-calls: the levels count their frames. The fast lane's entry passes what place would
  -- pass without looking further (anything but a string, a raiser with a line or whose errors
  -- RAISERS says are Lua's as raised: true, or a prefix they do not start with; assert's own
  -- argument error, like any C function's, names the function as the sandbox has none named).
  local RAISERS = { [error] = true, [assert] = "bad argument #", [xpcall] = true }
  -- [1]: the names the vetted libraries found for functions called from C (see global_name there),
  -- which the fast lane's entry writes into an argument error without looking further
  RAISERS[1] = setmetatable({}, WEAK_KEYS)
  -- the current line and the function of the frame at level (1: the caller), as getinfo's "lf"
  -- has them; the fast lane's entry answers without making getinfo's table
  local frame = lane_entry(${LaneEntry.frame}, nil, function(level)
    local info = d_getinfo(level + 1 + ENTRY_UP, "lf")
    if info then return info.currentline, info.func end
  end)
  local function place(level, e)
    if type(e) ~= "string" or tripped then return e end
    local line, f = frame(level + 1)
    local raised = RAISERS[f]
    if f == nil or line > 0 or raised == true or (raised and s_find(e, raised, 1, true) ~= 1) then return e end
    -- Loading the libraries can fail where the error arose: at Lua's nesting limit (5.3's parser
    -- counts C levels), or at the memory cap, which the catch point then raises. Either way the
    -- error stays as it was raised.
    local loaded, libraries = try_trusted(vetted_builders)
    if not loaded then
      memory_tripped(libraries)
      return e
    end
    local placed = libraries.located(nil, level + 1, e)
    return placed
  end
  local locate = lane_entry(${LaneEntry.locate}, nil, function(e)
    local placed = place(2 + ENTRY_UP, e)
    return placed
  end, RAISERS)

  -- C functions with a large stack frame (a luaL_Buffer: 8 KiB on 5.3) that call back into Lua
  -- (table.concat through __index, string.gsub through its replacement) nest on the C stack; 200
  -- levels of them, then any JS callback, overrun V8's stack and abort Deno (seen on 5.3), so
  -- their nesting is capped far below Lua's own C-call limit. The fast lane's entry counts them in
  -- the state's tally and calls the route only for one too many.
  local function too_deep()
    error("C stack overflow (string.gsub / table.concat nested too deep)", 3)
  end
  local nest, NEST_MAX = 0, ${MAX_NESTED_CALLS}
  local function unnest(ok, ...)
    nest = nest - 1
    if ok then return ... end
    error((...), 0)
  end
  if lane then
    nested = lane_entry(${LaneEntry.nested}, error, too_deep, locate)
  else
    function nested(f, ...)
      if nest >= NEST_MAX then too_deep() end
      dirty = true
      nest = nest + 1
      return unnest(xpcall(f, locate, ...))
    end
  end

  -- pcall() and xpcall without a handler raise as Lua's own do, where a nil is called otherwise.
  -- The fast lane's entry makes the call in C (as xpcall does), passes a success at once, and
  -- raises the missing function's error through its function; what it raises itself (C stack
  -- overflow) has no position, as what Lua's pcall raises.
  local function sb_pcall(...)
    if select("#", ...) == 0 then bad_argument(1, "pcall", "value expected", 2) end
    return caught(xpcall(..., locate, select(2, ...)))
  end
  if lane then
    -- the entry's route after a failure: caught's work, where it has any. The lane makes the same
    -- test in C, on the first four upvalues of this function in the order its first line names
    -- them (FAILED_* in ffi/fast_lane.c), and calls it only when the test passes: a call of a Lua
    -- function under the count hook costs some 700 instructions.
    local function pcall_failed(e)
      if active and (tripped or BUFFER_MEMERR or IS_MEMERR[e]) then return caught(false, e) end
      return false, e
    end
    sb_pcall = lane_entry(${LaneEntry.pcall}, route("pcall"), pcall_failed, locate)
    RAISERS[sb_pcall] = true
  end
  -- Lua calls a message handler before unwinding: after an error raised by the hook, hooks are
  -- still off there, so a handler must never run once a limit tripped
  local function sb_xpcall(...)
    local f, handler = ...
    if type(handler) ~= "function" then
      bad_argument(2, "xpcall", expected_type("function", handler, select("#", ...) < 2), 2)
    end
    return caught(xpcall(f, function(e)
      if tripped then return e end
      local placed = place(2, e)
      return handler(placed)
    end, select(3, ...)))
  end

  -- math.random is seeded from the clock at its first call in each run; the library then hands out
  -- Lua's own function for the rest of the run, and the next run begins with the reset the library
  -- gave, which puts the seeding one back
  local random_reset
  local function first_random_of_run(reset)
    if random_reset then return false end
    dirty = true
    random_reset = reset
    return true
  end

  -- the ids that stand for addresses in tostring and %p, renewed by every run
  local ids = setmetatable({}, WEAK_KEYS)
  local last_id = 0

  -- the environment untrusted code sees, built on the limit machinery above
  local sb_tostring, freeze_deep, views, decision_envs, prepare, adopt, base, capability, rebind, inherit_base,
    current_envs = (function()
    -- tostring and %p without addresses; the type name comes from type(), so __name cannot spoof it
    local function ident(v)
      local id = ids[v]
      if not id then
        dirty = true
        last_id = last_id + 1
        id = last_id
        ids[v] = id
      end
      return id
    end

    -- level: where a bad __tostring's error points (Lua's: the caller of tostring, print or format)
    local function sb_tostring(v, level)
      local t = type(v)
      if t == "string" then return v end
      if t == "number" or t == "boolean" or t == "nil" then return tostring(v) end
      local mt = d_getmetatable(v)
      if mt ~= nil then
        local to = rawget(mt, "__tostring")
        if to ~= nil then
          local s = to(v)
          local ts = type(s)
          if ts == "number" then return tostring(s) end
          if ts ~= "string" then error("'__tostring' must return a string", level) end
          return s
        end
      end
      if t == "table" or t == "function" or t == "thread" or t == "userdata" then
        return t .. ": " .. ident(v)
      end
      return t
    end

    -- string: the one table behind both \`string\` and the string metatable, which reads through a
    -- stand-in until the table is built (the builder then installs it); 5.4 converts strings in
    -- arithmetic through that metatable, and those C metamethods stay
    local string_meta = { __metatable = false }
    for _, event in next, { "__add", "__sub", "__mul", "__div", "__mod", "__pow", "__unm", "__idiv" } do
      string_meta[event] = rawget(d_getmetatable(""), event)
    end

    -- read-only views of shared tables, each an empty table whose metatable reads through to the
    -- table it shows: frozen maps each view to that table (a library's view to the function that
    -- builds its table and returns it); sb_rawset refuses them
    local frozen = setmetatable({}, WEAK_KEYS)
    local function deny() error("attempt to modify a read-only table", 2) end
    -- next, rawget and rawlen of a view are those of the table it shows: the fast lane's entries
    -- find it in frozen, as their routes do; a table that is not a view goes to Lua's own at once
    local sb_next = lane_entry(${LaneEntry.next}, nil, route("next"), frozen)
    local sb_rawget = lane_entry(${LaneEntry.rawget}, nil, route("rawget"), frozen)
    local sb_rawlen = lane_entry(${LaneEntry.rawlen}, nil, route("rawlen"), frozen)
    -- metamethods every view shares, where closures of each view's own cost it 90 bytes or more: its
    -- length is the length of the table it shows (the rawlen entry's where that table has no
    -- metatable), and pairs steps through that table with next
    local view_len = lane_entry(${LaneEntry.rawlen}, nil, function(view) return #frozen[view] end, frozen)
    local function view_pairs(view) return sb_next, view, nil end
    local function freeze(t)
      -- a view stays one view (a module may return another module's table): next and rawget see
      -- through one level only
      if frozen[t] then return t end
      local proxy = setmetatable({}, {
        __index = t, __newindex = deny, __len = view_len, __pairs = view_pairs, __metatable = false,
      })
      frozen[proxy] = t
      return proxy
    end
    local decision_envs = setmetatable({}, WEAK_KEYS)
    local base
    -- chunks longer than this are compiled a piece at a time (see compile)
    local LOAD_PIECE = ${LOAD_PIECE_BYTES}
    -- what the trusted chunks loaded later (the vetted libraries' builders, the routes) reach of the
    -- kernel: only what is passed here
    function internals()
      return {
        charge = charge, charge_bytes = charge_bytes, charge_results = charge_results, nested = nested,
        caught = caught, raise_tripped = raise_tripped,
        tripped = function() return tripped end,
        build_trusted = build_trusted, first_random_of_run = first_random_of_run,
        arm = arm, d_getmetatable = d_getmetatable,
        tostring = sb_tostring, ident = ident, host_clock = host_clock, host_patterns = host_patterns,
        string_meta = string_meta, openers = OPENERS, FEW = FEW, lane_entry = lane_entry,
        ENTRY_UP = ENTRY_UP, bad_argument = bad_argument, argument_message = argument_message,
        lane = lane, d_getinfo = d_getinfo, d_getupvalue = d_getupvalue, base = base, views = frozen,
        raisers = RAISERS, frame = frame, libraries = vetted_builders, decision_envs = decision_envs,
        rawlen = rawlen, cpu_limit = cpu_limit, LOAD_PIECE = LOAD_PIECE,
        COMPILE_TOO_LONG = COMPILE_TOO_LONG,
      }
    end
    -- The builders of the vetted libraries are a chunk of their own, loaded from the host's cached
    -- bytecode when the first of them is used.
    local builders
    function vetted_builders()
      if builders == nil then
        local factory = assert(load(host_libraries(), "=luagate.libraries", "b", TRUSTED_GLOBALS))
        builders = factory(internals())
      end
      return builders
    end

    -- the read-only view of the vetted library \`name\`, built on the view's first use. Until then
    -- its reads go through metamethods the views share, which find the view's builder in frozen
    -- (three closures of their own for each view kept 1.2 KB in every sandbox); once built, a view
    -- reads its table directly.
    local function lazy_index(proxy, k) return frozen[proxy]()[k] end
    local function lazy_len(proxy) return #frozen[proxy]() end
    local function lazy_pairs(proxy)
      local built = frozen[proxy]()
      return function(_, k) return next(built, k) end, proxy, nil
    end
    local function freeze_lazily(name)
      local t
      local meta = {
        __index = lazy_index, __newindex = deny, __len = lazy_len, __pairs = lazy_pairs, __metatable = false,
      }
      local proxy = setmetatable({}, meta)
      frozen[proxy] = function()
        if t == nil then
          t = build_trusted(function() return vetted_builders()[name]() end)
          meta.__index = t
        end
        return t
      end
      return proxy
    end
    local function freeze_deep(t)
      if type(t) ~= "table" then return t end
      for k, v in next, t do
        if type(v) == "table" then t[k] = freeze_deep(v) end
      end
      return freeze(t)
    end

    -- rawset and setmetatable of the common case are the fast lane's entries, done in C, where a
    -- table whose metatable has a __metatable (a view, a decision's globals) and a metatable with a
    -- __gc take the route.
    local sb_rawset = lane_entry(${LaneEntry.rawset}, nil, route("rawset"), "__metatable")
    local sb_setmetatable = lane_entry(${LaneEntry.setmetatable}, nil, route("setmetatable"), { "__gc", "__metatable" })

    -- Lua's parser runs in C and is quadratic in some shapes: a chunk longer than a piece is
    -- compiled by the routes' compile_in_pieces, which reads the CPU clock before each piece.
    local function compile(code, name, env, started)
      if #code <= LOAD_PIECE then return load(code, name, "t", env) end
      return routes().compile_in_pieces(code, name, env, started)
    end

    -- Lua's load raises its argument errors at its caller, which would be the function below,
    -- inside the kernel: they are raised here, at the sandbox code's call
    local function sb_load(chunk, name, mode, ...)
      if type(chunk) ~= "string" then error("load: only string chunks are allowed in the sandbox", 2) end
      local name_type = type(name)
      if name_type ~= "nil" and name_type ~= "string" and name_type ~= "number" then
        bad_argument(2, "load", expected_type("string", name), 2)
      end
      if s_byte(chunk, 1) == 27 then return nil, "attempt to load a binary chunk (only text is allowed)" end
      charge(#chunk)
      local env = current_env
      if select("#", ...) > 0 then env = ... end
      local f, err = compile(chunk, name, env, select(2, host_clock(true)))
      if err == COMPILE_TOO_LONG then trip("cpu") end
      if f ~= nil then return f end
      if memory_tripped(err) then raise_tripped() end
      return nil, err
    end

    local function sb_collectgarbage(option)
      if option == "count" then return collectgarbage("count") end
      error("collectgarbage: only 'count' is allowed in the sandbox", 2)
    end

    -- 5.3's print calls tostring, which raises a bad __tostring's error with no position (its
    -- caller is C); 5.4's converts the values itself, at the caller's line
    local PRINT_LEVEL = TRUSTED_GLOBALS._VERSION == "Lua 5.3" and 0 or 3
    local function sb_print(...)
      local args = t_pack(...)
      charge(args.n)
      for i = 1, args.n do args[i] = sb_tostring(args[i], PRINT_LEVEL) end
      if not host_write(t_concat(args, "\\t", 1, args.n) .. "\\n") then trip("output") end
    end

    local string_view = freeze_lazily("string")
    string_meta.__index = function(_, k) return string_view[k] end
    d_setmetatable("", string_meta)

    -- the string it reads is charged (the fast lane's entry, where there is one, charges and calls
    -- at once)
    local function charged_tonumber(...)
      charge_bytes((...))
      return tonumber(...)
    end
    local sb_tonumber = lane_entry(${LaneEntry.bytes}, tonumber, charged_tonumber)

    -- a value no metamethod shows is Lua's to convert (the fast lane's entry calls tostring at once)
    local sb_tostring_entry = lane_entry(${LaneEntry.plain}, tostring, route("tostring"))

    base = {
      assert = assert, error = error, ipairs = ipairs, next = sb_next, pairs = pairs,
      pcall = sb_pcall, xpcall = sb_xpcall, print = sb_print, select = select,
      rawequal = rawequal, rawget = sb_rawget, rawlen = sb_rawlen, rawset = sb_rawset,
      setmetatable = sb_setmetatable, getmetatable = getmetatable,
      tonumber = sb_tonumber, tostring = sb_tostring_entry, type = type, load = sb_load,
      collectgarbage = sb_collectgarbage, _VERSION = _VERSION,
      string = string_view, table = freeze_lazily("table"), math = freeze_lazily("math"),
      os = freeze_lazily("os"), coroutine = freeze_lazily("coroutine"),
    }
    if OPENERS.utf8 then base.utf8 = freeze_lazily("utf8") end

    -- capabilities: a denial from the host trips the run like a limit, so no catch point can hide it
    local function capability_result(name, ok, ...)
      if ok then return ... end
      if (...) == DENIED then return trip("permission", name) end
      error((...), 0)
    end
    -- the host knows a capability by its number (a name would cost the host a read and a decode)
    local function capability(name, id)
      return function(...) return capability_result(name, c_host(id, ...)) end
    end

    -- require resolves within the bundle the host holds; results are shared read-only
    local loaded, loading = {}, {}
    local new_env
    local function sb_require(name)
      if type(name) ~= "string" then bad_argument(1, "require", expected_type("string", name), 2) end
      local value = loaded[name]
      if value ~= nil then return value end
      if loading[name] then error("require cycle: module '" .. name .. "' is already being loaded", 2) end
      local source = host_module(name)
      if source == nil then error("module '" .. name .. "' not found in the bundle", 2) end
      local fn, err = load(source, "=" .. name, "t", new_env())
      if not fn then error(err, 0) end
      loading[name] = true
      local ok, result = caught(xpcall(fn, locate, name))
      loading[name] = nil
      if not ok then error(result, 0) end
      if result == nil then result = true end
      if type(result) == "table" then result = freeze_deep(result) end
      loaded[name] = result
      return result
    end
    base.require = sb_require

    local env_mt = { __index = base, __metatable = false }
    -- the globals rebind gave each chunk, which a later rebind may give again
    local current_envs = setmetatable({}, WEAK_KEYS)
    function new_env()
      local env = setmetatable({}, env_mt)
      env._G = env
      return env
    end

    -- A policy's globals, once its chunk ran, take a copy of each global of base they lack, so
    -- that a decision finds a library one table away instead of two; one the policy deletes later
    -- still reads through to base. Only an environment made here takes them: the chunk may have
    -- set its _ENV to any table, a read-only view among them.
    local function inherit_base(env)
      if d_getmetatable(env) ~= env_mt then return end
      for k, v in next, base do
        if rawget(env, k) == nil then rawset(env, k, v) end
      end
    end

    local function prepare(code, name)
      if s_byte(code, 1) == 27 then return nil, "attempt to load a binary chunk (only text is allowed)" end
      current_env = new_env()
      return compile(code, name, current_env)
    end

    -- a main chunk the host compiled from text, before anything runs it: the globals prepare gives
    local function adopt(chunk)
      current_env = new_env()
      d_setupvalue(chunk, 1, current_env)
      return chunk
    end

    -- A chunk compiled for an earlier run gets globals of its own again: a fresh _ENV upvalue, not
    -- a new value in the old one, so that nothing an earlier run created sees this run's globals.
    -- Globals the runs before left as new_env made them (the one key _G, itself) are taken again
    -- unless fresh: what sandbox code creates outlives its run only in its globals (the host
    -- takes a run's results as data), so nothing it made can see them, and making the table and
    -- the upvalue was a third of a short run's time. A host that keeps a function a run returned
    -- asks for fresh ones.
    -- The last run may have put a table with an __eq in _G, which must not run before the run is
    -- counted: _G is compared raw.
    local function rebind(chunk, fresh)
      local env = current_envs[chunk]
      if not fresh and env ~= nil then
        local key, value = next(env)
        if key == "_G" and next(env, key) == nil and rawequal(value, env) then
          current_env = env
          return
        end
      end
      env = new_env()
      current_env = env
      current_envs[chunk] = not fresh and env or nil
      d_upvaluejoin(chunk, 1, function() return env end, 1)
    end
    return sb_tostring, freeze_deep, frozen, decision_envs, prepare, adopt, base, capability, rebind, inherit_base,
      current_envs
  end)()

  local function finish_run(ok, ...)
    active = false
    return ok, count, ...
  end

  -- runs fn(...) under the budget; returns ok, instructions, results or error (the CPU time it
  -- started at is the run clock's, which the host reads)
  local function run(fn, ...)
${BEGIN_RUN}
    return finish_run(xpcall(fn, locate, ...))
  end

  -- a nested entry (a capability calling back into the sandbox) shares the running budget
  local function run_nested(fn, ...)
    return caught(xpcall(fn, locate, ...))
  end

  -- the same two for a chunk prepare compiled for an earlier run (run_again writes run out: the
  -- call cost a twentieth of a short run)
  local function run_again(chunk, ...)
    rebind(chunk)
${BEGIN_RUN}
    return finish_run(xpcall(chunk, locate, ...))
  end
  local function run_again_nested(chunk, ...)
    rebind(chunk)
    return run_nested(chunk, ...)
  end
  local function run_again_fresh(chunk, ...)
    rebind(chunk, true)
    return run(chunk, ...)
  end

  -- the policy engine's per-decision entry: the chunk's globals become a fresh table reading
  -- through to the ones it defined when it loaded, so what a decision assigns is gone after it.
  -- The metatable of those tables also holds what every decision of the policy needs.
  local function policy_meta(chunk, fn, data)
    local _, env = d_getupvalue(chunk, 1)
    inherit_base(env)
    local meta = { __index = env, __metatable = false, chunk = chunk, fn = fn, data = data }
    meta.__newindex = function(t, k, v)
      meta.env = nil
      rawset(t, k, v)
    end
    return meta
  end

  -- A decision that assigned no global leaves its table as it found it, and the next decision of
  -- the policy reuses it. A new key (through __newindex or rawset) drops the table from the
  -- metatable, and a reassigned _G shows in the one key the table holds. The policy may have put a
  -- table with an __eq there, which must not run before the run is counted: _G is compared with
  -- the table only once it is known to be one of the policy's own (their metatable has no __eq).
  local function decide(meta, input)
    local env = meta.env
    if env == nil or decision_envs[env._G] ~= meta or env._G ~= env then
      env = setmetatable({}, meta)
      rawset(env, "_G", env)
      decision_envs[env] = meta
      d_setupvalue(meta.chunk, 1, env)
      -- last: a table the chunk does not have as its globals is never reused
      meta.env = env
    end
    current_env = env
${BEGIN_RUN}
    -- the engine reads two results, a verdict and its reasons: fixed ones spare a vararg call
    local ok, verdict, reasons = xpcall(meta.fn, locate, input, meta.data)
    active = false
    return ok, count, verdict, reasons
  end
  -- Where there is a lane, its entry makes a decision whose run state is clean in C and hands any
  -- other to decide, whose Lua around the policy's function, under the count hook, cost a tenth of a
  -- short decision. The entry reads and sets the run state through the upvalues of run_state, in the
  -- order its line names them, and finds the message handler, the keys it reads and decision_envs
  -- in decide_kept (DECIDE_* in ffi/fast_lane.c). Its start entry does the same for run and
  -- run_again, whose Lua was half of a short run of kept code (START_* there); a run_again whose
  -- chunk needs new globals takes the Lua, which makes them.
  if lane then
    local function run_state() return dirty, active, current_env, count end
    local decide_kept = { locate, "env", "_G", "fn", "data", "chunk", decision_envs }
    decide = lane_entry(${LaneEntry.decide}, run_state, decide, decide_kept)
    run = lane_entry(${LaneEntry.start}, run_state, run, { locate, false, "_G", "stack overflow" })
    run_again = lane_entry(${LaneEntry.start}, run_state, run_again, { locate, current_envs, "_G", "stack overflow" })
  end

  arm()

  -- the real globals are emptied: nothing below this line needs them. So is the table of loaded
  -- libraries, where Lua looks up the name of a C function that raises an error when its caller
  -- is C: a library function fails under the same name ('?') whether a wrapper or the fast lane
  -- called it.
  for k in next, _G do _G[k] = nil end
  local loaded = debug.getregistry()._LOADED
  for k in next, loaded do loaded[k] = nil end

  -- in the order of KERNEL_ENTRIES
  return prepare, adopt, run, run_nested, run_again, run_again_nested, run_again_fresh, decide,
    function(name, value) base[name] = value end,
    function(name, id) base[name] = capability(name, id) end,
    freeze_deep,
    function(v) return sb_tostring(v, 0) end,
    policy_meta,
    function() return tripped end,
    -- the collector's mode on 5.4 (5.3's is incremental, in steps of some 2.4 KB): generational, or
    -- incremental in steps of 2^SMALL_STEP_LOG2 bytes (collectgarbage keeps a parameter given as 0)
    function(small_steps)
      if TRUSTED_GLOBALS._VERSION ~= "Lua 5.4" then return end
      if small_steps then
        collectgarbage("incremental", 0, 0, ${SMALL_STEP_LOG2})
      else
        collectgarbage("generational")
      end
    end,
    -- the limits of a state copied from a template that was built with others; the hook is armed
    -- again at the new step, as a kernel built with these limits armed it
    function(step, instructions, cpu)
      STEP, budget, cpu_limit = step, instructions, cpu
      CLOCK_UNITS = CLOCK_STEPS * STEP
      arm()
    end,
    views
end)()
`;

/**
 * The kernel's entry points, in the order the chunk returns them: `prepare(code, name)` compiles
 * sandbox code with globals of its own, and `adopt(chunk)` gives them to a main chunk the host
 * compiled from text; `run_again` and
 * `run_again_nested` run a chunk `prepare` compiled for an earlier run, with fresh globals (the
 * last run's again when it left them as they were made), as `run` and `run_nested` run one just
 * compiled, and `run_again_fresh` as `run_again` with new globals whatever the last run left;
 * `define(name, value)` adds a global,
 * `define_capability(name, id)` a capability the host serves as number `id` (from 1), `tostring`
 * is the address-free `tostring`, `tripped` the limit the current run tripped (if any),
 * `collector()` switches the collector to its generational mode and `collector(true)` to
 * incremental steps of `SMALL_STEP_LOG2` (Lua 5.4; nothing on 5.3), `limits(step, instructions,
 * cpu_ms)` replaces the limits the chunk was called with (a state copied from a template built with
 * others, `ffi/state_image.ts`). `views` is not a function but the table of read-only views, each
 * mapped to the table it shows (a vetted library's view to the function that builds its table and
 * returns it).
 */
export const KERNEL_ENTRIES = [
  "prepare",
  "adopt",
  "run",
  "run_nested",
  "run_again",
  "run_again_nested",
  "run_again_fresh",
  "decide",
  "define",
  "define_capability",
  "freeze_deep",
  "tostring",
  "policy_meta",
  "tripped",
  "collector",
  "limits",
  "views",
] as const;

/** The name of one of the kernel's entry points. */
export type KernelEntry = typeof KERNEL_ENTRIES[number];
