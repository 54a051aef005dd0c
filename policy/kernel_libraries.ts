/**
 * The builders of the sandbox's vetted libraries (`string`, `table`, `math`, `os`, `utf8`,
 * `coroutine`): trusted Lua kept out of the kernel chunk, because most sandboxes use few of the
 * libraries and some use none. The kernel loads this chunk from the host's cached bytecode the
 * first time any vetted library is used, and builds each library on its own first use.
 *
 * @module
 */

import { ESCAPE_UNITS, LaneEntry, QUOTE_PIECE, SORT_IN_C_ITEMS } from "../ffi/fast_lane.ts";
import { PATTERN_STEPS_MAX, PATTERN_STEPS_PER_CPU_MS } from "./patterns.ts";

/**
 * The builders chunk; called with the kernel's internals (see `vetted_builders` in `KERNEL_LUA`),
 * it returns a table of builders, one per library name, each returning the library's vetted
 * table. It runs with the trusted globals the kernel took before emptying the real globals.
 * Works on Lua 5.3 and 5.4.
 */
export const LIBRARIES_LUA = `
local k = ...
local charge, charge_bytes, charge_results = k.charge, k.charge_bytes, k.charge_results
local nested, caught, raise_tripped, tripped = k.nested, k.caught, k.raise_tripped, k.tripped
local sb_tostring, ident, host_clock = k.tostring, k.ident, k.host_clock
-- bad_argument(i, fname, problem, level): Lua's argument error, named as the sandbox code called
local bad_argument, argument_message = k.bad_argument, k.argument_message

local s_rep, s_format, s_find, s_byte, s_sub = string.rep, string.format, string.find, string.byte, string.sub
local s_match, s_gmatch, s_gsub = string.match, string.gmatch, string.gsub
local s_pack, s_unpack = string.pack, string.unpack
local t_concat, t_insert, t_remove, t_sort, t_move = table.concat, table.insert, table.remove, table.sort, table.move
local t_unpack, t_pack = table.unpack, table.pack
local d_getmetatable = k.d_getmetatable
-- (op, f, route [, kept]) -> the vetted function, op one of LaneEntry; UP: the levels it puts in
-- front of route
local entry, UP = k.lane_entry, k.ENTRY_UP

-- The libraries the kernel does not need are opened on first use, from their C openers: fresh
-- tables that only this chunk (and the pattern matcher, through the trusted globals) holds.
local function library(name)
  local opened = rawget(_ENV, name)
  if opened == nil then
    opened = k.openers[name]()
    _ENV[name] = opened
  end
  return opened
end

-- The errors the VM raises while a C function runs, which Lua writes without a position, by their
-- first byte: a handler reads them for every error it places
local VM_ERRORS = {}
for prefix in s_gmatch("attempt to |bad 'for' |'for' |number has no integer representation|stack overflow|" ..
  "C stack overflow|error in error handling|table index is |invalid key to 'next'|table overflow|" ..
  "string length overflow|'__index' chain|'__newindex' chain|too many |memory allocation error|variable '", "[^|]+") do
  local first = s_byte(prefix)
  local prefixes = VM_ERRORS[first] or {}
  prefixes[#prefixes + 1] = prefix
  VM_ERRORS[first] = prefixes
end
local function vm_error(e)
  local prefixes = VM_ERRORS[s_byte(e)]
  if prefixes == nil then return false end
  for i = 1, #prefixes do
    if s_find(e, prefixes[i], 1, true) == 1 then return true end
  end
  return false
end

local d_getinfo, d_getupvalue, lane = k.d_getinfo, k.d_getupvalue, k.lane
-- the functions whose errors pass as they are (see place in the kernel)
local RAISERS, frame = k.raisers, k.frame
-- whether f is a C function, read once per function (a frame's "S" costs several times its "lf");
-- a frame of Lua without a line runs luagate's own, stripped code (see place in the kernel)
local c_functions = setmetatable({}, { __mode = "k" })
local function is_c(f)
  local c = c_functions[f]
  if c == nil then
    c = d_getinfo(f, "S").what == "C"
    c_functions[f] = c
  end
  return c
end
-- every entry's first upvalue, as the lane's own
local TALLY = lane and select(2, d_getupvalue(lane, 1))
-- A function called from C (pcall) is named by no call: Lua names it from its table of loaded
-- libraries ("string.rep", or a global's own name), which the kernel empties, so the name is found
-- here among the sandbox's globals and the vetted libraries built so far.
-- Each function's name is found once: a sandbox function keeps none (false), and a vetted one is
-- in a library built before the sandbox could hold it.
local base, views = k.base, k.views
local global_names = RAISERS[1]
-- luagate's Lua that calls a sandbox's function in C's stead (a sort's comparator), named as that one
local stands_for = setmetatable({}, { __mode = "k" })
local function searched_name(f)
  for key, v in next, base do
    if v == f then return key end
    -- a library's view maps to the function that builds it; once built, the view reads its table
    local shown = views[v]
    if type(shown) == "function" then shown = rawget(d_getmetatable(v), "__index") end
    if type(shown) == "table" then
      for field, g in next, shown do
        if g == f then return key .. "." .. field end
      end
    end
  end
  return false
end
local function global_name(f)
  local name = global_names[f]
  if name == nil then
    name = searched_name(stands_for[f] or f)
    global_names[f] = name
  end
  return name or nil
end
local function named_globally(e, f)
  local i, problem = s_match(e, "^bad argument #(%d+) to '%?' %((.*)%)$")
  local name = i and global_name(f)
  if name == nil then return e end
  return "bad argument #" .. i .. " to '" .. name .. "' (" .. problem .. ")"
end

-- frame \`at\` of the thread co, or of the running thread counted from located
local function frame_info(co, at, what)
  if co then return d_getinfo(co, at, what) end
  return d_getinfo(at + 1, what)
end
-- the current line and the function of that frame (nothing where there is none), which the
-- kernel's frame finds for the running thread without making getinfo's table
local function frame_of(co, at)
  if co then
    local info = d_getinfo(co, at, "lf")
    if info == nil then return end
    return info.currentline, info.func
  end
  local line, f = frame(at + 1)
  return line, f
end
-- The error e raised by the function at \`level\` (of the thread co, or of the running one counted
-- from located's caller), as Lua would have written it (see place in the kernel): when that
-- function is C and the sandbox code called it through entries of the fast lane and routes only,
-- at the line of that call, and for a bad argument, under the name the call used; when it is
-- luagate's own Lua, without the position and the variable of luagate's chunk.
local function located(co, level, e)
  if type(e) ~= "string" or tripped() then return e end
  local at = co and level or level + 1
  local raiser_line, raiser = frame_of(co, at)
  local raised = RAISERS[raiser]
  if raiser == nil or raiser_line > 0 or raised == true or (raised and s_find(e, raised, 1, true) ~= 1) then
    return e
  end
  if not is_c(raiser) then
    -- a VM error in luagate's own Lua, which stands for a C function, where Lua's has no position
    -- (nor names a variable of luagate's)
    local bare = s_match(e, "^[^:]*:%-?%d+: (.*)$") or e
    return (s_gsub(bare, " %(%a+ '[^']*'%)$", ""))
  end
  local code_line, passed = nil, 0
  for _ = 1, 8 do
    at = at + 1
    local line, f = frame_of(co, at)
    if f == nil then return e end
    if line > 0 then
      code_line = line
      break
    elseif is_c(f) and (f == base.pcall or lane == nil or select(2, d_getupvalue(f, 1)) ~= TALLY) then
      -- a C function that is no entry, or the sandbox's pcall (an entry that catches): the catch in
      -- nested(), which hands every error on, is part of the route; any other called the function
      -- below it
      local _, above = frame_of(co, at + 1)
      if f ~= xpcall or above ~= nested then
        local _, called = frame_of(co, at - 1)
        return named_globally(e, called)
      end
    end
    passed = passed + 1
  end
  if code_line == nil or passed == 0 or vm_error(e) then return e end
  local head = frame_info(co, at, "S").short_src .. ":" .. code_line .. ": "
  local i, fname, problem = s_match(e, "^bad argument #(%d+) to '([^']*)' %((.*)%)$")
  if i == nil then return head .. e end
  return head .. argument_message(tonumber(i), fname, problem, frame_info(co, at - 1, "n"))
end

-- A route that makes the whole call, behind a fast-lane entry: a C function called in tail position
-- keeps its caller's frame, whose line and name Lua writes into an argument error, where a Lua
-- route would drop it (the entry passes every call on: no count of arguments is at most -1)
local function routed(f, route)
  return (entry(${LaneEntry.few}, f, route, -1))
end

local function copy(library)
  local t = {}
  for key, v in next, library do t[key] = v end
  return t
end

local function build_coroutine()
  local coroutine = library("coroutine")
  local co_create, co_resume, co_close, co_status = coroutine.create, coroutine.resume, coroutine.close, coroutine.status
  local arm = k.arm
  -- each passes its arguments on as it got them: a missing one is "no value" to Lua's function
  local function new_thread(...)
    local co = co_create(...)
    arm(co)
    return co
  end

  -- A coroutine that died by a limit died inside the hook, with hooks off for good: closing it
  -- would run its __close handlers unmetered, so it can never be closed.
  local stopped = setmetatable({}, { __mode = "k" })
  -- an error the coroutine died of is written as Lua would have (see locate in the kernel); one
  -- resume itself returned (the coroutine was not suspended) is left as it is
  local function resumed(co, ok, ...)
    if ok then return true, ... end
    if tripped() then stopped[co] = true end
    if co_status(co) ~= "dead" then return caught(false, ...) end
    return caught(false, (located(co, 0, (...))))
  end

  -- as Lua's wrap does: what the coroutine returned or yielded, or its error (as resumed writes it)
  -- raised again at the line of the call, in front of its own position (the wrapped function
  -- tail-calls this)
  local function wrapped(co, ok, ...)
    if ok then return ... end
    local _, e = resumed(co, ok, ...)
    error(e, 2)
  end

  local C = {
    create = routed(co_create, new_thread),
    resume = routed(co_resume, function(...) return resumed((...), co_resume(...)) end),
    wrap = routed(coroutine.wrap, function(...)
      local co = new_thread(...)
      return function(...)
        return wrapped(co, co_resume(co, ...))
      end
    end),
    yield = coroutine.yield,
    status = coroutine.status,
    running = coroutine.running,
    isyieldable = coroutine.isyieldable,
  }
  if co_close then
    C.close = routed(co_close, function(...)
      if tripped() then raise_tripped() end
      if stopped[(...)] then return false, "cannot close a coroutine stopped by a limit" end
      return caught(co_close(...))
    end)
  end
  return C
end

-- The stepped matcher is large: it is loaded on the first use of a pattern function, from the
-- host's cached bytecode, as trusted work outside the run's budget (its memory still counts). It
-- runs with the trusted globals, as this chunk does.
local TRUSTED_GLOBALS = _ENV
local s_gsub = string.gsub
local C_PATTERNS = {
  find = string.find,
  match = string.match,
  gmatch = string.gmatch,
  gsub = function(s, pattern, repl, ...)
    if type(repl) == "string" then return s_gsub(s, pattern, repl, ...) end
    return nested(s_gsub, s, pattern, repl, ...)
  end,
  -- for a replacement the caller knows is a string, which calls nothing back
  gsub_string = s_gsub,
}
-- work worth fewer units than this is not charged (see charge_results in the kernel)
local FEW = k.FEW

-- the matcher's table of quick patterns, which the fast lane's pattern entries read from the start;
-- under 8, nested, through which the gsub entry calls a replacement function or table
local quick = { [8] = nested }
local patterns
-- The matcher, loaded on the first call of a pattern function that is not the lane's common case
-- (a quick table is empty until the matcher learns). Its public functions are the entries' routes.
local function install_patterns()
  if patterns == nil then
    patterns = k.build_trusted(function()
      library("math")
      local factory = assert(load(k.host_patterns(), "=luagate.patterns", "b", TRUSTED_GLOBALS))
      return factory({
        charge = charge, c = C_PATTERNS, few = FEW, quick = quick, up = UP, bad_argument = bad_argument,
        -- the largest bound of a call handed to C: a share of the CPU deadline (whole milliseconds)
        limit = math.min(k.cpu_limit * ${PATTERN_STEPS_PER_CPU_MS}, ${PATTERN_STEPS_MAX}) // 1 | 0,
        run_entry = function(route) return entry(${LaneEntry.run}, nil, route) end,
      })
    end)
  end
  return patterns
end

local function count_of(n)
  n = tonumber(n)
  if n and n == n and n > 0 then return n end
  return 0
end
-- whether C's luaL_checkinteger takes v (math.tointeger's test, before the math library is open)
local function has_integer(v)
  local n = tonumber(v)
  return n ~= nil and n % 1 == 0 and n >= -0x1p63 and n < 0x1p63
end

-- a C function whose work is linear in the string it is given first (the fast lane's entry charges
-- and calls it at once)
local function copying(f)
  return (entry(${LaneEntry.bytes}, f, function(...)
    charge_bytes((...))
    return f(...)
  end))
end
-- the types C's %s converts without metamethods or addresses
local PLAIN = { string = true, number = true, boolean = true, ["nil"] = true }
-- the types a C function takes as a string
local PLAIN_TEXT = { string = true, number = true }

-- Whether string.rep refuses (s, count, sep) at once, count being at least 1: an argument of a wrong
-- type, a count without an integer representation, or a result over lstrlib's MAXSIZE (INT_MAX)
local INT_MAX = 0x7fffffff
local function refused_by_rep(s, count, sep)
  if not PLAIN_TEXT[type(s)] or (sep ~= nil and not PLAIN_TEXT[type(sep)]) then return true end
  if not has_integer(count) then return true end
  return #tostring(s) + (sep == nil and 0 or #tostring(sep)) > INT_MAX // count
end

-- string: the one table behind both \`string\` and the string metatable
local function build_string()
  local S = copy(string)
  S.dump = nil

  -- the fast lane's entry makes a repetition of strings whose result is shorter than a step's bytes
  S.rep = entry(${LaneEntry.rep}, s_rep, function(...)
    local s, n, sep = ...
    -- a number under FEW (NaN is not) is fewer repetitions than are charged
    if not (type(n) == "number" and n < FEW) then
      local count = count_of(n)
      if count >= FEW then
        -- a call Lua refuses before any work fails here as it does there, uncharged
        if refused_by_rep(s, count, sep) then return s_rep(...) end
        charge(count)
      end
    end
    -- charge_bytes's rule written out: the call to it took a quarter of a short rep (100 ns)
    local repeated = s_rep(...)
    if #repeated >= 16 then charge(#repeated >> 4) end
    return repeated
  end)
  S.upper, S.lower, S.reverse = copying(string.upper), copying(string.lower), copying(string.reverse)
  -- its results are charged unless few; the fast lane's entry makes a few itself, or charges them
  -- after calling it
  S.byte = entry(${LaneEntry.byte}, s_byte, function(...)
    return charge_results(s_byte(...))
  end, 3)

  -- What a format string needs, found once per string (up to FORMATS_KEPT strings of at most
  -- FORMAT_KEPT_LEN bytes; each search is linear: one class, then a letter). Without %p, C
  -- shows strings, numbers, booleans and nil as sb_tostring does, and only %s shows anything
  -- else (other conversions take numbers, or refuse the value): no conversion at all, no %s,
  -- %s to check the arguments of, %p to rewrite, or %q (without %p) to rewrite unless the fast lane
  -- takes the call. A "%%s", "%%p" or "%%q" counts as one: more care than needed, never less.
  local NO_CONVERSION, NO_STRING_CONVERSION, STRING_CONVERSIONS, REWRITE, QUOTES = 1, 2, 3, 4, 5
  local FORMATS_KEPT, FORMAT_KEPT_LEN = 128, 64
  local format_kinds, kept_formats = {}, 0
  -- the rewrites read of the formats whose kinds are kept (see rewrite_of), emptied with them
  local rewrites = {}
  local function format_kind(fmt)
    local kind = not s_find(fmt, "%", 1, true) and NO_CONVERSION
      or s_find(fmt, "%%[-+ #0-9.]*p") and REWRITE or s_find(fmt, "%%[-+ #0-9.]*q") and QUOTES
      or s_find(fmt, "%%[-+ #0-9.]*s") and STRING_CONVERSIONS or NO_STRING_CONVERSION
    if #fmt <= FORMAT_KEPT_LEN then
      -- emptied in place: the fast lane's entry holds this table
      if kept_formats >= FORMATS_KEPT then
        for kept in next, format_kinds do format_kinds[kept] = nil end
        kept_formats, rewrites = 0, {}
      end
      format_kinds[fmt], kept_formats = kind, kept_formats + 1
    end
    return kind
  end

  -- C quotes a control char with snprintf, some 25 instructions' time, and the rest as ~1: %q of a
  -- long string would be a long call the clock never sees. It is quoted in pieces, each charged
  -- as what it took, its escapes by what the quotes added. A char's quote depends on the next
  -- char only when that one is a digit (a NUL before "1" takes three digits): a piece never ends
  -- before a digit that follows a non-digit.
  local QUOTE_PIECE, ESCAPE_UNITS = ${QUOTE_PIECE}, ${ESCAPE_UNITS}
  -- 5.4 refuses %q with modifiers; where C ignores them, %q of a string is quoted here whatever
  -- its modifiers
  local QUOTE_TAKES_MODIFIERS = xpcall(s_format, tostring, "%1q", "")
  local function quoted_piece(piece)
    local q = s_format("%q", piece)
    charge(#piece + ESCAPE_UNITS * (#q - #piece - 2))
    return q
  end
  local function quoted(s)
    local len = #s
    if len <= QUOTE_PIECE then return quoted_piece(s) end
    local parts, first = { '"' }, 1
    while first <= len do
      local last = first + QUOTE_PIECE - 1
      if last >= len then
        last = len
      elseif s_find(s, "^%D%d", last) then
        last = last + 1
      end
      parts[#parts + 1] = s_sub(quoted_piece(s_sub(s, first, last)), 2, -2)
      first = last + 1
    end
    parts[#parts + 1] = '"'
    return t_concat(parts)
  end

  -- A format to rewrite, read once while its kind is kept: the letter of each conversion that
  -- takes an argument ("s", "p", "q", or false for the others), and the format with each %p and
  -- each %q C would not refuse made %s, so that a call gives C those arguments as text.
  -- 5.3 has no %p
  local SHOWS_POINTERS = xpcall(s_format, tostring, "%p", 1)
  local function rewrite_of(fmt)
    local plan = rewrites[fmt]
    if plan then return plan end
    local letters, parts, pos = {}, {}, 1
    while true do
      local at = s_find(fmt, "%", pos, true)
      if not at then break end
      local _, stop, conv = s_find(fmt, "^[-+ #0]*%d*%.?%d*(.)", at + 1)
      if not stop then break end
      if conv == "p" and SHOWS_POINTERS or conv == "q" and (stop == at + 1 or QUOTE_TAKES_MODIFIERS) then
        letters[#letters + 1] = conv
        parts[#parts + 1] = s_sub(fmt, pos, at - 1)
        parts[#parts + 1] = "%s"
      else
        if conv ~= "%" then letters[#letters + 1] = conv == "s" and conv end
        parts[#parts + 1] = s_sub(fmt, pos, stop)
      end
      pos = stop + 1
    end
    parts[#parts + 1] = s_sub(fmt, pos)
    plan = { letters = letters, rewritten = t_concat(parts) }
    if format_kinds[fmt] then rewrites[fmt] = plan end
    return plan
  end

  -- what %q quotes besides strings (5.3 refuses nil and booleans)
  local QUOTABLE = {
    number = true,
    boolean = (xpcall(s_format, tostring, "%q", true)),
    ["nil"] = (xpcall(s_format, tostring, "%q", nil)),
  }
  -- arguments of %s as sb_tostring shows them, of %p and %q as the text C would write; a %q of a
  -- value C cannot quote gives C the format as written, to raise its error about that argument
  local function rewritten(fmt, ...)
    local plan = rewrite_of(fmt)
    local letters, args = plan.letters, t_pack(...)
    local c_fmt = plan.rewritten
    for argi = 1, #letters < args.n and #letters or args.n do
      local letter, v = letters[argi], args[argi]
      if letter == "s" then
        args[argi] = sb_tostring(v, 3 + UP)
      elseif letter == "q" then
        local t = type(v)
        if t == "string" then
          args[argi] = quoted(v)
        elseif QUOTABLE[t] then
          args[argi] = s_format("%q", v)
        else
          c_fmt = fmt
        end
      elseif letter == "p" then
        local t = type(v)
        if t == "table" or t == "function" or t == "thread" or t == "userdata" or t == "string" then
          args[argi] = s_format("0x%08x", ident(v))
        else
          args[argi] = "(null)"
        end
      end
    end
    return charge_bytes(s_format(c_fmt, t_unpack(args, 1, args.n)))
  end

  local function all_plain(...)
    for i = 1, select("#", ...) do
      if not PLAIN[type((select(i, ...)))] then return false end
    end
    return true
  end
  -- the fast lane's entry formats the kinds kept above whose arguments need no checks
  local function format(fmt, ...)
    local kind = format_kinds[fmt]
    if kind == nil then
      -- the searches are linear in the format, like the formatting charged below
      if #fmt >= FEW then charge(#fmt) end
      kind = format_kind(fmt)
    end
    -- C would copy the format as it is
    if kind == NO_CONVERSION then return fmt end
    if #fmt >= FEW then charge(#fmt) end
    if kind == NO_STRING_CONVERSION then return charge_bytes(s_format(fmt, ...)) end
    if kind == STRING_CONVERSIONS and all_plain(...) then return charge_bytes(s_format(fmt, ...)) end
    return rewritten(fmt, ...)
  end
  -- C raises the error of a format that is not a string, with the arguments as given
  S.format = entry(${LaneEntry.format}, s_format, function(...)
    if type((...)) ~= "string" then return s_format(...) end
    return format(...)
  end, format_kinds)

  if s_pack then
    -- C sees each call as made (without a format: "no value"); the fast lane's entries charge as
    -- these routes do
    S.pack = entry(${LaneEntry.stringPack}, s_pack, function(...)
      local fmt = ...
      charge(type(fmt) == "string" and #fmt or 0)
      return charge_bytes(s_pack(...))
    end)
    S.unpack = entry(${LaneEntry.stringUnpack}, s_unpack, function(...)
      local fmt, data = ...
      charge(type(fmt) == "string" and #fmt or 0)
      charge_bytes(data)
      return charge_results(s_unpack(...))
    end)
  end
  -- each route is a tail call, so that the matcher's errors count the levels an entry puts in front
  S.find = entry(${LaneEntry.find}, C_PATTERNS.find,
    function(...) return install_patterns().find(...) end, quick)
  S.match = entry(${LaneEntry.match}, C_PATTERNS.match,
    function(...) return install_patterns().match(...) end, quick)
  S.gmatch = entry(${LaneEntry.gmatch}, C_PATTERNS.gmatch,
    function(...) return install_patterns().gmatch(...) end, quick)
  S.gsub = entry(${LaneEntry.gsub}, s_gsub,
    function(...) return install_patterns().gsub(...) end, quick)
  k.string_meta.__index = S
  return S
end

-- table: every loop bounded by its arguments is charged first
local function len_of(t, n)
  if n ~= nil then return tonumber(n) or 0 end
  if type(t) ~= "table" then return 0 end
  return #t
end

-- from the math library, opened with the table library
local m_tointeger, m_ult, m_floor, m_log, m_maxinteger
-- more results than any Lua stack holds (LUAI_MAXSTACK is 1,000,000)
local MAX_STACK = 1000000
-- own_len and position raise their errors at the level of their caller's caller, a route behind a
-- lane entry
local function own_len(t)
  if type(t) ~= "table" then return nil end
  local mt = d_getmetatable(t)
  if mt == nil or rawget(mt, "__len") == nil then return nil end
  local n = m_tointeger(#t)
  if n == nil then error("object length is not an integer", 3 + UP) end
  return n
end
local function position(v, fname)
  local n = m_tointeger(v)
  if n == nil then
    bad_argument(2, fname, "number has no integer representation", 3 + UP)
  end
  return n
end

-- charges the items from first to last, counted in floats: in integers last - first + 1 wraps
-- around, to 0 for mininteger..maxinteger and to a large negative for a first near maxinteger and a
-- small last (an empty range, which must cost nothing rather than take the count down)
local function charge_range(first, last)
  local items = (last + 0.0) - first + 1
  if items >= FEW then charge(items) end
end

-- C reads and writes the items of a table whose __index or __newindex is a table through that
-- chain, up to 2000 tables an item, where no hook sees it (table.unpack of 50,000 items over a chain
-- of 1,990 took 2.2 s against a 100 ms deadline): the table functions have Lua make those reads and
-- writes, each an instruction the hook counts and times
local function chained(t)
  local mt = type(t) == "table" and d_getmetatable(t)
  if not mt then return false end
  return type(rawget(mt, "__index")) == "table" or type(rawget(mt, "__newindex")) == "table"
end
-- the integer C's luaL_checkinteger makes of v, or nil where it would raise
local function as_integer(v)
  return m_tointeger(tonumber(v))
end
-- What C refuses before any work: positions it cannot take as integers (as optional arguments, nil
-- is none), for unpack a count no stack holds, for move a range or a destination past the integers.
-- Such a call fails at once, uncharged, as in Lua, where charging its range first would trip the
-- instruction limit instead.
local function refused_positions(i, j)
  return (i ~= nil and not has_integer(i)) or (j ~= nil and not has_integer(j))
end
-- the types whose length Lua may take in the sandbox (a userdata's through its __len)
local LENGTHY = { table = true, string = true, userdata = true }
local function refused_by_move(f, e, t)
  local first, last, to = as_integer(f), as_integer(e), as_integer(t)
  if first == nil or last == nil or to == nil then return true end
  if last < first then return false end
  if not (first > 0 or last < m_maxinteger + first) then return true end
  return not (to <= m_maxinteger - (last - first + 1) + 1)
end
-- t's items first..last read by Lua into a table without a metatable, at the same positions, up to
-- the first one that is not a string or a number when only those are wanted (where C's concat
-- stops), for C to finish the work on
local function read_plainly(t, first, last, strings_only)
  local plain = {}
  for k = first, last do
    local v = t[k]
    plain[k] = v
    if strings_only and type(v) ~= "string" and type(v) ~= "number" then break end
  end
  return plain
end

-- A route that names its arguments, for a C function that must see a call without any as made (its
-- error then says "no value")
local function whole(f, route)
  return function(...)
    if select("#", ...) == 0 then return f() end
    return route(...)
  end
end

local function build_table()
  local math = library("math")
  m_tointeger, m_ult, m_floor, m_log, m_maxinteger = math.tointeger, math.ult, math.floor, math.log, math.maxinteger
  local T = copy(table)
  -- the fast lane's entry joins a table without a metatable between integer positions
  T.concat = entry(${LaneEntry.concat}, t_concat, whole(t_concat, function(t, sep, i, j)
    if type(t) == "table" then
      if (sep ~= nil and not PLAIN_TEXT[type(sep)]) or refused_positions(i, j) then
        return t_concat(t, sep, i, j)
      end
      if j == nil then j = #t end
      charge_range(tonumber(i) or 1, tonumber(j) or 0)
      if chained(t) then
        local first, last = as_integer(i == nil and 1 or i), as_integer(j)
        if first and last then return charge_bytes(t_concat(read_plainly(t, first, last, true), sep, i, j)) end
      end
      if d_getmetatable(t) ~= nil then return charge_bytes(nested(t_concat, t, sep, i, j)) end
    end
    return charge_bytes(t_concat(t, sep, i, j))
  end))
  -- appending to a table without a metatable: C finds the end itself, in logarithmic time; inserting
  -- at a position moves the items from it, charged (the fast lane's entry does either for an integer
  -- position in the bounds, charged alike)
  T.insert = entry(${LaneEntry.append}, nil, whole(t_insert, function(t, ...)
    local nargs = select("#", ...)
    if nargs == 1 and d_getmetatable(t) == nil then return t_insert(t, ...) end
    local n = own_len(t)
    if n == nil and chained(t) then n = #t end
    if n == nil then
      -- C moves up the items from pos on
      if nargs >= 2 then
        local pos, size = tonumber((...)), len_of(t)
        if pos and pos >= 1 and pos <= size then charge(size + 1 - pos) end
      end
      return t_insert(t, ...)
    end
    local e, pos, v = n + 1
    if nargs == 1 then
      pos, v = e, ...
    elseif nargs == 2 then
      pos, v = ...
      pos = position(pos, "insert")
      if not m_ult(pos - 1, e) then bad_argument(2, "insert", "position out of bounds", 2 + UP) end
      while e > pos do
        t[e] = t[e - 1]
        e = e - 1
      end
    else
      error("wrong number of arguments to 'insert'", 2 + UP)
    end
    t[pos] = v
  end))
  -- removing the last item of a table without a metatable moves nothing, removing another moves the
  -- items after it, charged (the fast lane's entry does either for an integer position in the
  -- bounds, charged alike)
  T.remove = entry(${LaneEntry.remove}, t_remove, whole(t_remove, function(t, ...)
    local size = own_len(t)
    if size == nil and chained(t) then size = #t end
    if size == nil then
      -- C moves down the items after pos: none when it removes the last one
      local pos = (...)
      if pos ~= nil then
        pos = tonumber(pos)
        local n = len_of(t)
        if pos and pos >= 1 and pos < n then charge(n - pos) end
      end
      return t_remove(t, ...)
    end
    local pos = size
    if (...) ~= nil then
      pos = position((...), "remove")
      if pos ~= size and m_ult(size, pos - 1) then
        bad_argument(1, "remove", "position out of bounds", 2 + UP)
      end
    end
    local v = t[pos]
    while pos < size do
      t[pos] = t[pos + 1]
      pos = pos + 1
    end
    t[pos] = nil
    return v
  end))
  -- C converts the positions itself and names what it got
  T.move = routed(t_move, function(...)
    local a1, f, e, t, a2 = ...
    if refused_by_move(f, e, t) then return t_move(...) end
    local first, last = tonumber(f), tonumber(e)
    if first and last then charge_range(first, last) end
    local given = a2 ~= nil
    if not given then a2 = a1 end
    if (chained(a1) or chained(a2)) and type(a1) == "table" and type(a2) == "table" then
      first, last, t = as_integer(f), as_integer(e), as_integer(t)
      if first and last and t then
        -- C's checks, in its order, then its loop in the direction it takes
        if last >= first then
          if not (first > 0 or last < m_maxinteger + first) then
            bad_argument(3, "move", "too many elements to move", 2)
          end
          local n = last - first + 1
          if not (t <= m_maxinteger - n + 1) then bad_argument(4, "move", "destination wrap around", 2) end
          if t > last or t <= first or (given and a1 ~= a2) then
            for i = 0, n - 1 do a2[t + i] = a1[first + i] end
          else
            for i = n - 1, 0, -1 do a2[t + i] = a1[first + i] end
          end
        end
        return a2
      end
    end
    return t_move(...)
  end)
  -- C's sort compares some 50 ns a time without Lua (no comparator, or a C one): 0.4 s for 400,000
  -- numbers that no hook sees. From SORT_IN_C_ITEMS items on, those comparisons are made by Lua,
  -- whose instructions the hook counts and times: a < b where all items are numbers or all are
  -- strings (where no other comparison is made), a C comparator called by Lua (its errors named
  -- as C names them). Any other sort is charged n * (floor(log2(n)) + 1) before C makes it.
  local function less(a, b) return a < b end
  local function watched_comparator(t, n, comp)
    if n < ${SORT_IN_C_ITEMS} then return nil end
    if comp == nil then
      local kind = type(t[1])
      if kind ~= "number" and kind ~= "string" then return nil end
      for i = 2, n do
        if type(t[i]) ~= kind then return nil end
      end
      return less
    end
    if type(comp) == "function" and is_c(comp) then
      local function compared(a, b) return comp(a, b) end
      stands_for[compared] = comp
      return compared
    end
    return nil
  end
  local function sort(t, n, comp)
    local watched = watched_comparator(t, n, comp)
    if watched then return t_sort(t, watched) end
    if n > 1 then charge(n * (m_floor(m_log(n, 2)) + 1)) end
    return t_sort(t, comp)
  end
  -- the fast lane's entry sorts a table without a metatable of fewer than SORT_IN_C_ITEMS items,
  -- charged as sort charges it
  T.sort = entry(${LaneEntry.sort}, t_sort, whole(t_sort, function(t, comp)
    -- a table without a metatable, the common case, skips the helpers' calls
    if type(t) == "table" and d_getmetatable(t) == nil then return sort(t, #t, comp) end
    local n = own_len(t)
    if n == nil and chained(t) then n = #t end
    if n == nil then return sort(t, len_of(t), comp) end
    if n < 2 then return end
    if n >= 2147483647 then bad_argument(1, "sort", "array too big", 2 + UP) end
    -- sorted in a copy of its n items, holes included: C's sort compares those as it would in t
    local items = setmetatable({}, { __len = function() return n end })
    for i = 1, n do items[i] = t[i] end
    sort(items, n, comp)
    for i = 1, n do t[i] = items[i] end
  end))
  -- the fast lane's entry unpacks all of a table without a metatable, charged as below
  T.unpack = entry(${LaneEntry.unpack}, t_unpack, whole(t_unpack, function(t, i, j)
    -- unpack(t) of a table without a metatable, the common call: its items are 1..#t, charged by
    -- charge_range's rule written out (calling it took unpack of 3 from 313 to 384 ns)
    if i == nil and j == nil and type(t) == "table" and d_getmetatable(t) == nil then
      j = #t
      if j >= FEW then charge(j) end
      return t_unpack(t, 1, j)
    end
    if j == nil then
      -- Lua takes t's length, and fails at once where t has none
      if not LENGTHY[type(t)] then return t_unpack(t, i, j) end
      j = #t
    end
    local first, last = i == nil and 1 or as_integer(i), as_integer(j)
    if first == nil or last == nil then return t_unpack(t, i, j) end
    -- (Lua's message is placed at its caller, which here is this route)
    if first <= last and not m_ult(last - first, MAX_STACK - 1) then
      error("too many results to unpack", 2 + UP)
    end
    charge_range(first, last)
    if chained(t) then return t_unpack(read_plainly(t, first, last, false), i, j) end
    return t_unpack(t, i, j)
  end))
  return T
end

local function build_math()
  local math = library("math")
  local M = copy(math)
  M.randomseed = nil
  local m_random, m_randomseed = math.random, math.randomseed
  local first_random_of_run = k.first_random_of_run
  -- seeded at the first call of a run, which makes the rest of the run's calls Lua's own (a route
  -- and a check cost a call four times Lua's)
  local seeding
  local function reset() M.random = seeding end
  seeding = routed(m_random, function(...)
    if first_random_of_run(reset) then
      m_randomseed(math.floor(host_clock() * 1e6) % 2147483647)
      M.random = m_random
    end
    return m_random(...)
  end)
  -- named as the function it hands out (a pcall of it names neither by a call)
  stands_for[seeding] = m_random
  M.random = seeding
  return M
end

local function build_utf8()
  local utf8 = library("utf8")
  local U = copy(utf8)
  local u_char, u_len, u_offset, u_codepoint = utf8.char, utf8.len, utf8.offset, utf8.codepoint
  -- a character of fewer code points than are charged: the fast lane's entry makes it at once
  U.char = entry(${LaneEntry.few}, u_char, function(...)
    local n = select("#", ...)
    if n >= FEW then charge(n) end
    return u_char(...)
  end, FEW - 1)
  U.len, U.offset = copying(u_len), copying(u_offset)
  -- its results are charged unless few, as string.byte's
  U.codepoint = entry(${LaneEntry.few}, u_codepoint, function(...)
    return charge_results(u_codepoint(...))
  end, 4)
  return U
end

-- whether the run of "%" that ends at \`at\` is odd: the last one starts a conversion
local function opens_conversion(fmt, at)
  local run = 0
  while s_byte(fmt, at - run) == 37 do run = run + 1 end
  return run % 2 == 1
end
-- The end of a piece of a date format at about last, never inside a conversion ("%" and a char, or
-- "%E" or "%O" and a char)
local function date_piece_end(fmt, last)
  if opens_conversion(fmt, last) then
    local modifier = s_byte(fmt, last + 1)
    return (modifier == 69 or modifier == 79) and last + 2 or last + 1
  end
  local char = s_byte(fmt, last)
  if (char == 69 or char == 79) and opens_conversion(fmt, last - 1) then return last + 1 end
  return last
end

local function build_os()
  local os = library("os")
  local o_date, o_time = os.date, os.time
  -- C formats a date in one call, some 0.2 µs a conversion (a 2 MB format took 0.3 s): a long
  -- format is formatted in pieces at one time, each charged, and the results joined; a last piece
  -- is never "*t" alone, which C would read as the table format. A piece C refuses is given again
  -- with the rest of the format, which C's message quotes.
  local DATE_PIECE = 4096
  return {
    time = o_time,
    date = routed(o_date, function(fmt, ...)
      if type(fmt) ~= "string" then return o_date(fmt, ...) end
      local size = #fmt
      if size <= DATE_PIECE then
        charge(size)
        return o_date(fmt, ...)
      end
      local t = ...
      if t == nil then t = o_time() end
      local utc = s_byte(fmt, 1) == 33
      local parts, first = {}, utc and 2 or 1
      while first <= size do
        local last = first + DATE_PIECE - 1
        last = last >= size - 2 and size or date_piece_end(fmt, last)
        charge(last - first + 1)
        local prefix = utc and "!" or ""
        local ok, piece = caught(xpcall(o_date, tostring, prefix .. s_sub(fmt, first, last), t))
        if not ok then return o_date(prefix .. s_sub(fmt, first), t) end
        parts[#parts + 1] = piece
        first = last + 1
      end
      return t_concat(parts)
    end),
    difftime = os.difftime,
  }
end

return {
  located = located,
  global_name = global_name,
  string = build_string,
  table = build_table,
  math = build_math,
  utf8 = build_utf8,
  os = build_os,
  coroutine = build_coroutine,
}
`;
