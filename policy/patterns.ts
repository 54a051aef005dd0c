/**
 * Budgeted Lua pattern matching: replacements for `string.find`, `string.match`,
 * `string.gmatch` and `string.gsub` whose work is charged to the run's step budget.
 *
 * Lua's count hook never fires inside C functions, so one call of the C matcher with a
 * backtracking pattern (`string.find(("a"):rep(40), ("a*"):rep(20) .. "b")`) can run for minutes.
 * {@linkcode PATTERNS_LUA} is a Lua chunk that either proves a call cheap and hands it to the C
 * function, or runs a port of `lstrlib.c`'s matcher in Lua that charges the work it does.
 *
 * @module
 */

/**
 * Steps of a bound the sandbox lets one pattern call hand to C for each millisecond of the run's
 * CPU deadline (`deps.limit`; a deadline of 1 ms gives the matcher's default, 100,000). C takes
 * at most about 1 ns a step, so a call the hook cannot interrupt lasts at most about a tenth of the
 * deadline: 10 ms of the default 100. That takes a whitespace `gsub`, a trim or a `gmatch` of
 * words over texts of 10-50 KB to C, where 100,000 steps left them to the matcher in Lua, 5-15
 * times slower, or past the default instruction budget.
 *
 * @example
 * ```ts
 * import { PATTERN_STEPS_PER_CPU_MS } from "./patterns.ts";
 * console.log(100 * PATTERN_STEPS_PER_CPU_MS); // 10000000: the bound under the default deadline
 * ```
 */
export const PATTERN_STEPS_PER_CPU_MS = 100_000;

/**
 * The most steps of a bound the sandbox lets one pattern call hand to C, whatever its deadline:
 * 17-22 ms of C at the most. The first call of a pattern searches for the longest subjects it may
 * hand to C, in steps that grow with the logarithm of the limit and are charged to the run.
 *
 * @example
 * ```ts
 * import { PATTERN_STEPS_MAX, PATTERN_STEPS_PER_CPU_MS } from "./patterns.ts";
 * console.log(Math.min(5_000 * PATTERN_STEPS_PER_CPU_MS, PATTERN_STEPS_MAX)); // 16777216
 * ```
 */
export const PATTERN_STEPS_MAX = 2 ** 24;

/**
 * A Lua chunk (Lua 5.3 and 5.4, text only) returning drop-in replacements for the four pattern
 * functions of the string library:
 *
 * ```lua
 * local api = load(PATTERNS_LUA, "=luagate.patterns", "t")(deps)
 * -- api.find, api.match, api.gmatch, api.gsub
 * ```
 *
 * `deps` is a table given by the host:
 *
 * - `deps.charge(units)` (required): called with the work done, in steps (an integer): by the Lua
 *   matcher about every 256 steps (a run scanned by C, a `%b` scan, a prefilter skip or a capture
 *   copy is charged right after it, and is bounded by the subject length), and once per call
 *   handed to C with `#p` plus the part of the subject C searched: for `find` and each `gmatch`
 *   step, from the start position to the end of the match (or of the subject, when nothing
 *   matched), charged after the call, so that a loop of searches along a subject is charged
 *   its length once; for `match`, `gsub` and a `gmatch` handed to C whole, the subject from the
 *   start position, charged before. (What C may do in one call is bounded beforehand; see the
 *   cheapness rule.) It raises an error when the budget is exhausted; that error is never caught
 *   and reaches the caller unchanged. It must not call these functions itself (they share the
 *   matcher's state).
 * - `deps.c` (required): the original C functions, `{ find = ..., match = ..., gmatch = ...,
 *   gsub = ... }` (`find` is also used for bounded helper scans: memchr-style searches, one-class
 *   runs, `%b` and start-position prefilters), and optionally `gsub_string`, a `gsub` for string
 *   replacements only (`gsub` serves when absent).
 * - `deps.limit` (optional, default 100000): the largest work bound, in steps, handed to C. The
 *   steps are conservative: on the worst subjects of 40 shapes (backtracking, `%b`, frontiers,
 *   captures, gsub with each kind of replacement), C took at most 1.3 ns per step of the bound on a
 *   2-core EPYC (a function's own Lua included), under 0.9 ns for the searches; the sandbox passes
 *   {@linkcode PATTERN_STEPS_PER_CPU_MS} for each millisecond of its CPU deadline.
 * - `deps.few` (optional, default 0): a call handed to C whose charge (the subject from the start
 *   position plus the pattern) would be fewer units than this is not charged (the sandbox passes 16:
 *   the caller's own instructions, which its hook counts, cost more than such a search; C's work is
 *   bounded by `limit` like any call's).
 * - `deps.force_lua` (optional, read once): when true, nothing is handed to C (tests).
 * - `deps.quick` (optional): the table the matcher fills with what it learns of patterns (see
 *   `quick` below), for the fast lane's entries (`ffi/fast_lane.c`) to read.
 * - `deps.up` (optional, default 0): how many levels stand between the public functions and their
 *   caller (1 when each is the route of a fast lane entry, a C function), added to the level of
 *   every error raised at the caller's position.
 * - `deps.stats` (optional): `{ c = 0, lua = 0 }`, counts calls handed to C and calls run in Lua
 *   (for gmatch: per iterator step).
 * - `deps.bad_argument(i, fname, problem, level)` (optional): raises the error for bad argument
 *   `i`, at `level` of its caller; the sandbox's names the function as the caller called it (a
 *   method call does not count its self), as Lua does. The default names `fname`.
 * - `deps.run_entry(route)` (optional): the function that finds the longest run of a class's chars
 *   in a subject, `(s, bits, runpat)` with the class as a 32-byte bitmap (char c at bit c & 7 of
 *   byte c >> 3) and as a pattern of its runs; `route` does it with C's find (see the runs below).
 *
 * Cheapness rule (calls handed to C must have a provable upper bound of at most `limit` steps;
 * `n` is the subject length from the start position, `m` the pattern length):
 *
 * - plain `find` (the `plain` flag, or a pattern without `^$*+?.([%-`): `lmemfind` is O(n·m), so
 *   `(n + 1)·m <= limit`; otherwise the search still uses C for the scanning (memchr for the first
 *   byte, then a compare per candidate) and charges `m` per candidate.
 * - patterns: the pattern is compiled (cached) into items. A quantifier whose continuation cannot
 *   start with a char of its class, or whose continuation always succeeds, cannot branch usefully;
 *   the other `*`, `+`, `-`, `?` items are branching. With `q` branching items before an item, C
 *   visits that item at most `C(n + q, q)` times per anchored attempt (the repetition counts sum
 *   to at most `n`), and `C(n + q + 1, q + 1)` times over all start positions; each visit costs
 *   its pattern length plus a constant, or O(n) for `%b`, back-references and non-branching
 *   quantifiers. A quantifier followed only by captures and the end of the pattern is the
 *   exception: its O(n) repetition and the captures after it happen at one visit only, since the
 *   match then succeeds and the call ends (gsub: that match ends, and matches do not overlap).
 *   The sum over items, plus O(n) per capture and that once-only work, is the bound (computed in
 *   floats; the largest cheap `n` is cached per pattern). gsub doubles the unanchored bound where a
 *   match may be empty (C tries that position again) and adds the replacement work and the
 *   once-only work of each match; gmatch returns C's own iterator when the same bound for the
 *   whole subject is cheap, and otherwise applies the rule per iterator step; so does an
 *   unanchored gsub whose replacement raises no error of its own, per match (its replacements
 *   charged their length). Such a gsub hands the rest of its subject, from the end of a match, to
 *   C's `gsub` as one call, charged as a whole call, once the whole bound is cheap for that rest,
 *   where C finds the same matches there: every match of the pattern consumes a char (C would take
 *   an empty match where the last one ended), and it has no frontier or position capture (which
 *   tell the rest's start from the subject's).
 * - Patterns that could raise an error (malformed items, capture errors, 199 or more recursive
 *   items, captures left unfinished, a bad `%` in a gsub replacement string) always run in Lua,
 *   so that errors carry the same text and position prefix as C's.
 * - A run of an explicit class (not `.`) costs at each visit at most the longest run of that class
 *   in the subject, where the bound above counts the subject's length. When that bound is not
 *   cheap, the same bound for the subject's longest run of each of those classes (rounded up to a
 *   power of two) decides instead, unless it could not be cheap even for runs of one char. Those
 *   runs are found in one linear scan of the subject per class (a gmatch scans once): by `deps.run_entry`'s
 *   function (the sandbox's fast lane scans in C, charging the subject as bytes), or else by C's
 *   `find` of the class's runs, each search charged what it read.
 * - An unanchored `find`, `match` or `gmatch` step whose whole search is not cheap tries C once
 *   where the leftmost match can start (the first position whose char is in the pattern's FIRST
 *   set, or the start position where the pattern has none), with the pattern anchored there, when
 *   the anchored bound (one start position, linear for patterns without branching items) is cheap
 *   for the rest of the subject, or for its runs; after a failure the search goes on from the next
 *   start position (past the run the attempt began with), in C when the rule above makes the rest
 *   cheap (the steps taken to get there charged first), else in Lua. A match is charged as a call
 *   handed to C (`find`, a `gmatch` step: up to its end; `match`: the subject from the start
 *   position), plus `#p`; a failed `find` or `gmatch` attempt `#p`. Once find_aux has made one,
 *   the pattern's record in `quick[6]` lets `find`, `match` and the fast lane make it at once;
 *   `quick[7]` is the function that goes on after a failure. A `gmatch` or `gsub` finds the
 *   subject's runs once, where a bound needs them, and the fast lane takes its steps in C from the
 *   pattern's record in `quick[10]` (a `gsub` with a replacement string), with the same steps and
 *   charges.
 *
 * Where no error is possible, the Lua matcher skips work that cannot change the outcome: a
 * quantifier that cannot branch usefully takes its only viable repetition count at once, a
 * continuation is only tried where its FIRST set allows, start positions come from C's `find`
 * with a one-class pattern for the FIRST set, and after a failed attempt that began with a
 * non-branching run, the starts inside that run are skipped (no back-references). It is several
 * times slower than C (about 3x to 12x on typical calls).
 *
 * The Lua matcher follows `lstrlib.c` (5.4) step by step: the same results, captures (position
 * captures included), anchors, `%b`, `%f`, back-references, `init` handling (negative and out of
 * range), gsub replacements (`%0`-`%9`, `%%`, tables, functions, max `n`), the lastmatch rule of
 * gmatch and gsub, the 200-level match depth ("pattern too complex"), 32 captures, and every error
 * message with the caller's position prefix. Character classes are those of the "C" locale.
 * On Lua 5.3 it follows 5.3.6 (which has the same lastmatch rule): gmatch ignores an `init`
 * argument, and gsub's third-argument error reads "(string/function/table expected)".
 *
 * Known differences from the C functions:
 *
 * - With the default `deps.bad_argument`, "bad argument" messages name the function `'find'`,
 *   `'match'`, `'gmatch'` or `'gsub'`, where C uses the call site's name (a local's name, ...).
 *   The type name honours `__name` through `getmetatable` (a `__metatable` field hides it), and a
 *   light userdata is reported as "userdata".
 * - A gsub replacement function is called from Lua: `error(msg, 2)` inside it points into this
 *   chunk (C: no position), and when the call runs in the Lua matcher and `deps.up` is 0 it may
 *   yield (C: "attempt to yield across a C-call boundary").
 * - A bad value from a replacement function or table, in a call handed to C, is C's own error,
 *   positioned at this chunk's line (the sandbox's catch points write it at the caller's).
 * - After a "pattern too complex" error, a C gmatch iterator keeps an exhausted depth counter
 *   (and no longer limits recursion); the Lua iterator starts afresh on its next call.
 */
export const PATTERNS_LUA: string = String.raw`
-- luagate.patterns: budgeted string.find/match/gmatch/gsub (Lua 5.3 / 5.4).
-- A port of lstrlib.c's matcher that charges its steps to deps.charge, plus a dispatcher that
-- calls the original C functions when their worst-case work is provably small.
local deps = ...
local charge = deps.charge
local C = deps.c
local c_find, c_match, c_gmatch, c_gsub = C.find, C.match, C.gmatch, C.gsub
local c_gsub_string = C.gsub_string or c_gsub
local byte, sub, char, format = string.byte, string.sub, string.char, string.format
local concat, unpack = table.concat, table.unpack
local type, tostring, tonumber, error, select, getmetatable, rawget =
  type, tostring, tonumber, error, select, getmetatable, rawget
local rawset, setmetatable = rawset, setmetatable
local tointeger = math.tointeger
local V53 = _VERSION == "Lua 5.3"
local LIMIT = tonumber(deps.limit) or 100000
local stats = deps.stats -- optional counters: stats.c (calls given to C), stats.lua
local FEW = tonumber(deps.few) or 0 -- a charge of fewer units is skipped
-- levels an entry (the fast lane's, or its Lua stand-in) puts between a public function and its caller
local UP = deps.up or 0
local bad_argument = deps.bad_argument or function(i, fname, problem, level)
  error(format("bad argument #%d to '%s' (%s)", i, fname, problem), level + 1)
end
local FORCE_LUA = deps.force_lua

local MAXCCALLS = 200 -- lstrlib.c's matchdepth
local MAXCAPTURES = 32 -- LUA_MAXCAPTURES
local CHUNK = 256 -- steps accumulated before calling deps.charge
-- the steps a char of a replacement string stands for in a bound: C copies a replacement's text
-- and captures a piece at a time, each piece costing it as much as some sixteen steps of matching
local REPLACEMENT_STEPS = 16
local CACHE_MAX = 128 -- compiled patterns kept (per anchoring)
local CACHE_PLEN = 256 -- longer patterns are not cached
local KNOWN_REPLACEMENTS = 16 -- replacement strings whose longest cheap subject a pattern keeps
local PREFIX = 8 -- the longest literal prefix a locator searches for
-- a key of the subject's runs (see longest_runs): classes per key, and bits per class
local RUN_SLOTS, RUN_BITS, RUN_MASK = 12, 5, 31

-- item kinds
local K_SINGLE, K_STAR, K_PLUS, K_MINUS, K_OPT = 1, 2, 3, 4, 5
local K_DSTAR, K_DPLUS, K_DOPT = 6, 7, 8 -- quantifiers that cannot backtrack usefully
local K_END, K_OPEN, K_POSOPEN, K_CLOSE, K_DOLLAR = 9, 10, 11, 12, 13
local K_BALANCE, K_FRONTIER, K_BACKREF, K_ERROR = 14, 15, 16, 17

local CAP_UNFINISHED, CAP_POSITION = -1, -2

---------------------------------------------------------------------------------------------------
-- step accounting

local pending = 0 -- steps done and not yet charged

local function flush()
  local p = pending
  if p > 0 then
    pending = 0
    charge(p)
  end
end

-- a call handed to C whole is charged its bound first: the subject from the start position plus the
-- pattern (under FEW units, nothing)
local function charge_whole(bound)
  if stats then stats.c = stats.c + 1 end
  if bound >= FEW then charge(bound) end
end

---------------------------------------------------------------------------------------------------
-- character classes ("C" locale), as lookup tables t[byte] == true

local ANY = {}
for c = 0, 255 do ANY[c] = true end

local LIT = {}
local function lit(c)
  local t = LIT[c]
  if not t then
    t = { [c] = true }
    LIT[c] = t
  end
  return t
end

-- Built on first use: a sandbox that never matches a class never pays for its 256-entry tables.
local CLASSES
do
  local function isalpha(c) return (c >= 65 and c <= 90) or (c >= 97 and c <= 122) end
  local function isdigit(c) return c >= 48 and c <= 57 end
  local preds = {
    a = isalpha,
    c = function(c) return c < 32 or c == 127 end,
    d = isdigit,
    g = function(c) return c >= 33 and c <= 126 end,
    l = function(c) return c >= 97 and c <= 122 end,
    p = function(c) return c >= 33 and c <= 126 and not isalpha(c) and not isdigit(c) end,
    s = function(c) return c == 32 or (c >= 9 and c <= 13) end,
    u = function(c) return c >= 65 and c <= 90 end,
    w = function(c) return isalpha(c) or isdigit(c) end,
    x = function(c) return isdigit(c) or (c >= 65 and c <= 70) or (c >= 97 and c <= 102) end,
    z = function(c) return c == 0 end,
  }
  CLASSES = setmetatable({}, {
    __index = function(classes, cl)
      local lower = cl >= 65 and cl <= 90 and cl + 32 or cl
      local pred = preds[char(lower)]
      if not pred then return nil end
      local yes, no = {}, {}
      for c = 0, 255 do
        if pred(c) then yes[c] = true else no[c] = true end
      end
      rawset(classes, lower, yes)
      rawset(classes, lower - 32, no)
      return rawget(classes, cl)
    end,
  })
end

local ALNUM = setmetatable({}, { __index = function(_, c) return CLASSES[119][c] end }) -- %w

-- match_class(c, cl) as a table
local function classof(cl)
  return CLASSES[cl] or lit(cl)
end

local SETS, nsets = {}, 0

-- matchbracketclass for the set p[i] == '[' .. p[ec] == ']', as a table
local function settable(p, i, ec)
  local key = sub(p, i, ec)
  local t = SETS[key]
  if t then return t end
  pending = pending + 256 + (ec - i)
  if pending >= CHUNK then flush() end
  local mark = {}
  local sig = true
  if byte(p, i + 1) == 94 then
    sig = false
    i = i + 1
  end
  while true do
    i = i + 1
    if i >= ec then break end
    local c = byte(p, i)
    if c == 37 then
      i = i + 1
      local cls = classof(byte(p, i))
      for x = 0, 255 do
        if cls[x] then mark[x] = true end
      end
      pending = pending + 256
    elseif byte(p, i + 1) == 45 and i + 2 < ec then
      i = i + 2
      for x = c, byte(p, i) do mark[x] = true end
    else
      mark[c] = true
    end
  end
  t = {}
  for x = 0, 255 do
    if (mark[x] == true) == sig then t[x] = true end
  end
  if nsets >= CACHE_MAX then
    SETS, nsets = {}, 0
  end
  SETS[key] = t
  nsets = nsets + 1
  return t
end

-- classend: index just after the single-char class starting at p[i], or nil and the error
local function classend(p, i, m)
  local c = byte(p, i)
  i = i + 1
  if c == 37 then
    if i > m then return nil, "malformed pattern (ends with '%')" end
    return i + 1
  elseif c == 91 then
    if byte(p, i) == 94 then i = i + 1 end
    repeat
      if i > m then return nil, "malformed pattern (missing ']')" end
      local cc = byte(p, i)
      i = i + 1
      if cc == 37 and i <= m then i = i + 1 end
    until byte(p, i) == 93
    return i + 1
  end
  return i
end

---------------------------------------------------------------------------------------------------
-- compiling a pattern into a list of items (errors become items: C raises them lazily)

local CACHE = { {}, {} } -- [start][pattern]
local ncached = { 0, 0 }

local function disjoint(a, b)
  if b == nil then return false end
  for c = 0, 255 do
    if a[c] and b[c] then return false end
  end
  return true
end

local function union(a, b)
  if b == nil or a == ANY or b == ANY then return nil end
  local t = {}
  for c = 0, 255 do
    if a[c] or b[c] then t[c] = true end
  end
  return t
end

local EMPTY = {}

-- p: the pattern; start: 2 when a leading '^' was taken as an anchor, else 1
-- The items of a set pattern for the chars c with set[c] == member, after head ("[" or "[^"): the
-- table of pieces, how many, and how many chars.
local function set_items(set, member, head)
  local out, n, nb = { head }, 1, 0
  local c = 0
  while c <= 255 do
    if (set[c] == true) == member then
      local d = c
      while d < 255 and (set[d + 1] == true) == member do d = d + 1 end
      nb = nb + d - c + 1
      if d - c >= 2 and ALNUM[c] and ALNUM[d] then
        n = n + 1
        out[n] = char(c) .. "-" .. char(d)
      else
        for x = c, d do
          n = n + 1
          out[n] = ALNUM[x] and char(x) or "%" .. char(x)
        end
      end
      c = d + 1
    else
      c = c + 1
    end
  end
  return out, n, nb
end

-- A pattern for C's find of one char of the set (nil: it would be long; "": the set is empty), and
-- the char itself when it is the only one (for a plain find). A set of most chars is written as the
-- complement of the few it lacks ('[^&=]').
local function set_pattern(set)
  local out, n, nb = set_items(set, true, "[")
  if nb == 0 then return "" end
  if nb == 1 then return out[2], sub(out[2], -1) end
  if n > 33 then
    out, n, nb = set_items(set, false, "[^")
    if n > 33 or nb == 0 then return nil end
  end
  out[n + 1] = "]"
  return concat(out)
end

local function compile(p, start)
  local cache = CACHE[start]
  local cp = cache[p]
  if cp then return cp end
  local m = #p
  local kind, cls, aux, aux2, cost, text, runpat = {}, {}, {}, {}, {}, {}, {}
  local k, i = 0, start
  local mayerr = false
  local caps, lvl, nrec = {}, 0, 0
  local hasref = false
  -- a frontier reads the char before a match, a position capture counts from the subject's start
  local sees_start = false
  while true do
    k = k + 1
    pending = pending + 2
    if pending >= CHUNK then flush() end
    if i > m then
      kind[k] = K_END
      break
    end
    local i0 = i
    local c = byte(p, i)
    if c == 40 then -- '('
      nrec = nrec + 1
      if lvl >= MAXCAPTURES then mayerr = true end
      lvl = lvl + 1
      if byte(p, i + 1) == 41 then
        kind[k] = K_POSOPEN
        caps[lvl] = CAP_POSITION
        sees_start = true
        i = i + 2
      else
        kind[k] = K_OPEN
        caps[lvl] = CAP_UNFINISHED
        i = i + 1
      end
    elseif c == 41 then -- ')'
      nrec = nrec + 1
      kind[k] = K_CLOSE
      local l = lvl
      while l > 0 and caps[l] ~= CAP_UNFINISHED do l = l - 1 end
      if l == 0 then mayerr = true else caps[l] = 0 end
      i = i + 1
    elseif c == 36 and i == m then -- '$' at the end
      kind[k] = K_DOLLAR
      break
    else
      local c2 = c == 37 and byte(p, i + 1)
      if c2 == 98 then -- %b
        if i + 2 >= m then
          kind[k] = K_ERROR
          aux[k] = "malformed pattern (missing arguments to '%b')"
          mayerr = true
          break
        end
        kind[k] = K_BALANCE
        aux[k] = byte(p, i + 2)
        aux2[k] = "^" .. sub(p, i, i + 3) -- matchbalance, in C
        i = i + 4
      elseif c2 == 102 then -- %f
        i = i + 2
        if byte(p, i) ~= 91 then
          kind[k] = K_ERROR
          aux[k] = "missing '[' after '%f' in pattern"
          mayerr = true
          break
        end
        local ep, err = classend(p, i, m)
        if not ep then
          kind[k] = K_ERROR
          aux[k] = err
          mayerr = true
          break
        end
        kind[k] = K_FRONTIER
        sees_start = true
        cls[k] = settable(p, i, ep - 1)
        i = ep
      elseif c2 and c2 >= 48 and c2 <= 57 then -- %0-%9
        kind[k] = K_BACKREF
        hasref = true
        local l = c2 - 48
        aux[k] = l
        if l == 0 or l > lvl or caps[l] == CAP_UNFINISHED then mayerr = true end
        i = i + 2
      else
        local ep, err = classend(p, i, m)
        if not ep then
          kind[k] = K_ERROR
          aux[k] = err
          mayerr = true
          break
        end
        local t
        if c == 46 then
          t = ANY
        elseif c == 37 then
          t = classof(byte(p, i + 1))
        elseif c == 91 then
          t = settable(p, i, ep - 1)
        else
          t = lit(c)
        end
        cls[k] = t
        local q = byte(p, ep)
        if q == 42 then
          kind[k] = K_STAR
        elseif q == 43 then
          kind[k] = K_PLUS
        elseif q == 45 then
          kind[k] = K_MINUS
        elseif q == 63 then
          kind[k] = K_OPT
        else
          kind[k] = K_SINGLE
        end
        if kind[k] == K_SINGLE then
          i = ep
        else
          nrec = nrec + 1
          i = ep + 1
        end
        text[k] = sub(p, i0, ep - 1)
        if t ~= ANY and kind[k] ~= K_SINGLE then
          -- the class as a pattern; for long runs: C's find with "^<class>*" (one class: linear)
          local class = (c == 37 or c == 91 or ALNUM[c]) and text[k] or "%" .. char(c)
          runpat[k] = class
          aux2[k] = "^" .. class .. "*"
        end
      end
    end
    cost[k] = 2 * (i - i0) + 8
  end
  local nitems = k
  cost[k] = 8
  if kind[k] == K_END or kind[k] == K_DOLLAR then
    for l = 1, lvl do
      if caps[l] == CAP_UNFINISHED then mayerr = true end
    end
  end
  if nrec >= MAXCCALLS - 1 then mayerr = true end
  cp = { kind = kind, cls = cls, aux = aux, aux2 = aux2, ncap = lvl, mayerr = mayerr, anchored = start == 2 }
  if not mayerr then
    -- quantifiers whose continuation cannot start with a char of their class never need to
    -- backtrack: only the longest repetition can lead to a match (no errors are possible, so
    -- skipping the doomed attempts is not observable)
    local first = nil -- FIRST set of items j+1.. (nil: anything, or may succeed at once)
    local fnext = {} -- per backtracking quantifier: FIRST set of its continuation
    local consumes = false -- does every match consume at least one char?
    local okconv, alwaysconv = {}, {}
    -- Does the continuation always succeed, from any position: ok when it is only captures, then
    -- the end; always also when it is a quantifier before a continuation that always succeeds (its
    -- first count is then the match), or '.*' or '.-' before one that succeeds at the end of the
    -- subject (okend), which they reach.
    local ok, always, okend = false, false, false
    local always_after = {} -- per item: whether the items after it always succeed
    for j = nitems, 1, -1 do
      local kd = kind[j]
      always_after[j] = always
      if kd == K_END or kd == K_BACKREF then
        first = nil
      elseif kd == K_DOLLAR then
        first = EMPTY
      elseif kd == K_BALANCE then
        first = lit(aux[j])
        consumes = true
      elseif kd == K_SINGLE or kd == K_PLUS then
        if kd == K_PLUS then
          if always then
            kind[j], okconv[j], alwaysconv[j] = K_DPLUS, ok, not ok
          elseif disjoint(cls[j], first) then
            kind[j] = K_DPLUS
          else
            fnext[j] = first
          end
        end
        first = cls[j]
        consumes = true
      elseif kd == K_STAR or kd == K_MINUS or kd == K_OPT then
        local t = cls[j]
        if always and kd == K_MINUS then
          -- the empty repetition is tried first and succeeds
          kind[j], okconv[j], alwaysconv[j] = K_DOPT, ok, not ok
          cls[j] = EMPTY
        elseif always then
          kind[j], okconv[j], alwaysconv[j] = kd == K_OPT and K_DOPT or K_DSTAR, ok, not ok
        elseif disjoint(t, first) then
          kind[j] = kd == K_OPT and K_DOPT or K_DSTAR
        else
          fnext[j] = first
        end
        first = union(t, first)
        ok, always = false, always or (kd ~= K_OPT and t == ANY and okend)
      end
      if kd == K_END then
        ok, always, okend = true, true, true
      elseif kd == K_DOLLAR then
        ok, always, okend = false, false, true
      elseif kd ~= K_OPEN and kd ~= K_POSOPEN and kd ~= K_CLOSE and kd ~= K_STAR and kd ~= K_MINUS
        and kd ~= K_OPT then
        ok, always, okend = false, false, false
      end
      pending = pending + ((kd >= K_STAR and kd <= K_OPT) and 520 or 8)
    end
    cp.fnext = fnext
    -- cost profile for the C work bound: per number q of branching items before an item,
    -- constant work per node (costq) and work proportional to the subject length (linq); plus the
    -- work done once per match (see below): proportional to the subject length (once) or constant
    -- A run term of an item of an explicit class (not '.') is apart in runq, per class: its run is
    -- at most the longest run of that class in the subject, which subject_run finds; a term of a run
    -- inside a run (work per char of one for each char of the other) in run2q, per pair of classes.
    -- A branching item of an explicit class repeats at most its class's longest run (bounded: its
    -- class). A class is known by its slot in the subject's runs key (see longest_runs).
    local run_classes, run_pats, slot_of = {}, {}, {}
    local function count_class(class, t)
      local slot = slot_of[class]
      if slot == nil then
        run_classes[#run_classes + 1] = t
        run_pats[#run_pats + 1] = class .. "+"
        slot = #run_classes <= RUN_SLOTS and #run_classes - 1 or RUN_SLOTS - 1
        slot_of[class] = slot
      end
      return slot
    end
    -- The cost of a visit of the quantifier at j: its own test and its continuation's first one (the
    -- first consuming item after the captures), and that item.
    local function visit(j)
      local units, t = cost[j], j + 1
      while true do
        local kt = kind[t]
        units = units + cost[t] + (kt == K_CLOSE and lvl or 0)
        if kt ~= K_OPEN and kt ~= K_POSOPEN and kt ~= K_CLOSE and kt ~= K_FRONTIER then return units, t end
        t = t + 1
      end
    end
    -- A '.-' before one char of a set u, after which the match always succeeds, stops at the first
    -- char of u when only captures and non-backtracking '*' or '?' of classes apart from u stand
    -- between: at that char those match nothing and u matches. (A frontier there may fail, and the
    -- '.-' go on.) Its visits from a start are at most the run of chars outside u there, plus one;
    -- each visit scans the runs of the '*' between (the profile counts each '*' as a run term too).
    -- Per such item: a visit's cost apart from those scans, each scan (the '*' and its cost per
    -- char, in turn), and the class outside u as a pattern and as a table (none where it has no
    -- short pattern).
    local stops = {}
    for j = 1, nitems do
      if kind[j] == K_MINUS and cls[j] == ANY then
        local units, scans, between, t = cost[j], {}, {}, j + 1
        while true do
          local kt = kind[t]
          if kt == K_OPEN or kt == K_POSOPEN or kt == K_CLOSE then
            units = units + cost[t] + (kt == K_CLOSE and lvl or 0)
          elseif kt == K_DSTAR and runpat[t] then
            local fc = visit(t)
            units = units + fc
            scans[#scans + 1], scans[#scans + 2] = t, fc
            between[#between + 1] = cls[t]
          elseif kt == K_DOPT then
            units = units + 2 * visit(t)
            between[#between + 1] = cls[t]
          else
            break
          end
          t = t + 1
        end
        local u = cls[t]
        local apart = kind[t] == K_SINGLE and u ~= ANY and always_after[t]
        for i = 1, #between do
          apart = apart and disjoint(between[i], u)
        end
        if apart then
          local outside = {}
          for c = 0, 255 do
            if not u[c] then outside[c] = true end
          end
          local pattern = set_pattern(outside)
          if pattern ~= nil and sub(pattern, 1, 1) == "[" then
            stops[j] = { units + cost[t], scans, pattern, outside }
          end
        end
      end
    end
    -- the profile, where each stopped '.-' is a branching item, or (by_runs) a run term
    local function profile(by_runs)
      local costq, linq, runq, run2q, bounded, once, once_c = { 0 }, { 0 }, { {} }, { {} }, {}, 0, 0
      local q = 1
      local function add(terms, key, units) terms[key] = (terms[key] or 0) + units end
      local function run_term(units, class, t)
        if class == nil then
          linq[q] = linq[q] + units
          return
        end
        add(runq[q], count_class(class, t), units)
      end
      local succeeds = false -- past an item after which the match cannot fail
      for j = 1, nitems do
        local kd = kind[j]
        local cj = cost[j]
        if kd == K_CLOSE then cj = cj + lvl end
        if succeeds then
          once_c = once_c + cj
        else
          costq[q] = costq[q] + cj
          if okconv[j] then
            -- The item is tried first with its longest repetition (for '-': none) and the match
            -- then succeeds, so its repetition and the items after it (captures, the end) happen
            -- at one visit per call (gsub: per match, and matches do not overlap); any other visit
            -- stops at its first test.
            if kd ~= K_DOPT then once = once + cost[j] end
            succeeds = true
          elseif alwaysconv[j] then
            -- tried first with its longest repetition (for '-': none), after which the match cannot
            -- fail: the run is scanned once per visit and no shorter repetition is tried, but the
            -- continuation may do work of its own (its items count as any)
            if kd == K_DOPT then
              costq[q] = costq[q] + cost[j]
            else
              run_term(cost[j], runpat[j], cls[j])
            end
          elseif kd == K_BALANCE or kd == K_BACKREF then
            linq[q] = linq[q] + 1
          elseif kd >= K_DSTAR and kd <= K_DOPT then
            -- C still tries the shorter repetitions: each fails at the next consuming item
            local fc = visit(j)
            if kd == K_DOPT then
              costq[q] = costq[q] + fc
            else
              run_term(fc, runpat[j], cls[j])
            end
          elseif by_runs and stops[j] then
            local stop = stops[j]
            -- the visits (a run of chars outside u), each scanning the runs of the '*' between
            local outside, scans = count_class(stop[3], stop[4]), stop[2]
            add(runq[q], outside, stop[1])
            for i = 1, #scans, 2 do
              local b = scans[i]
              add(run2q[q], outside * RUN_SLOTS + count_class(runpat[b], cls[b]), scans[i + 1])
            end
          elseif kd >= K_STAR and kd <= K_OPT then
            if runpat[j] then bounded[q] = count_class(runpat[j], cls[j]) end
            q = q + 1
            costq[q] = cost[j]
            linq[q] = 0
            runq[q] = {}
            run2q[q] = {}
          end
        end
      end
      return { costq = costq, linq = linq, runq = runq, run2q = run2q, bounded = bounded, nq = q, once = once,
        once_c = once_c }
    end
    cp.main = profile(false)
    -- cbound takes the lesser of the two bounds: a run term is the tighter one for short runs only
    if next(stops) ~= nil then cp.by_runs = profile(true) end
    if run_classes[1] then cp.run_classes, cp.run_pats = run_classes, run_pats end
    -- prefilter: start positions where the pattern can match are found by C's find with a set
    -- pattern for FIRST (one class, no quantifier: linear); the end is tried unless a match
    -- always consumes a char
    cp.atend = not consumes
    -- C's gsub of the rest of a subject from the end of a match finds the matches the steps would:
    -- none is empty (C would take an empty one at the rest's start, where the last match ended) and
    -- none can tell the rest from the whole subject
    cp.splits = consumes and not sees_start
    -- a failed attempt whose first item is a non-backtracking run fails from every start inside
    -- that run as well (same end, same continuation; captures only matter to back-references)
    local f = 1
    while kind[f] == K_OPEN or kind[f] == K_POSOPEN do f = f + 1 end
    if (kind[f] == K_DSTAR or kind[f] == K_DPLUS) and cls[f] ~= ANY and not hasref then
      cp.skiprun = aux2[f]
    end
    if first == EMPTY then
      cp.first = ""
    elseif first ~= nil and first ~= ANY then
      local pattern, plain = set_pattern(first)
      if plain then
        cp.first, cp.fplain, cp.firstset = plain, true, first
      elseif pattern then
        cp.first = pattern
        if pattern ~= "" then cp.firstset = first end
      end
      -- the first place a match can start, as a position capture (the quick routes' attempts): where
      -- its literal prefix is, when it begins with two literal chars or more, else its first set. At
      -- most PREFIX chars of it: C compares them at each position, a search as linear as the first
      -- set's
      local prefix, j = {}, 1
      while kind[j] == K_OPEN or kind[j] == K_POSOPEN do j = j + 1 end
      while kind[j] == K_SINGLE and #prefix < PREFIX do
        local t = text[j]
        local c = (#t == 1 and t ~= "." and byte(t)) or (#t == 2 and byte(t) == 37 and not ALNUM[byte(t, 2)]
          and byte(t, 2))
        if not c then break end
        prefix[#prefix + 1] = ALNUM[c] and char(c) or "%" .. char(c)
        j = j + 1
      end
      if #prefix >= 2 then
        cp.locator = "()" .. concat(prefix)
      elseif pattern and pattern ~= "" then
        cp.locator = "()" .. pattern
      end
    end
    -- '.-' goes from one position where its continuation can start to the next with C's find
    local jumps = {}
    for j, set in next, fnext do
      if kind[j] == K_MINUS and cls[j] == ANY then jumps[j] = set_pattern(set) end
    end
    cp.jumps = jumps
  end
  if #p <= CACHE_PLEN then
    if ncached[start] >= CACHE_MAX then
      cache = {}
      CACHE[start] = cache
      ncached[start] = 0
    end
    cache[p] = cp
    ncached[start] = ncached[start] + 1
  end
  return cp
end

-- upper bound of the work of lstrlib.c's matcher for the subject length n (from the start
-- position on), over all start positions (or the one, when anchored); with run, for a subject
-- whose runs of the classes in cp.run_classes are at most as long as that key says (see
-- longest_runs). By cp's cost profile, or by the one (by_runs) where each '.-' that stops at a char
-- is a run, whichever is less.
local function profile_bound(pf, cp, n, run)
  local nb = n + 1
  -- the repetitions of a run of the class in slot, at most: its longest run plus one
  local function rb(slot)
    if not run then return nb end
    local longest = 1 << (((run - 1) >> (RUN_BITS * slot)) & RUN_MASK)
    return longest < n and longest + 1 or nb
  end
  local costq, linq, runq, run2q, bounded = pf.costq, pf.linq, pf.runq, pf.run2q, pf.bounded
  local anchored = cp.anchored
  -- nodes with q branching items before: anchored C(n+q, q), unanchored C(n+q+1, q+1); or, where
  -- qr of them repeat at most a run, rb^qr times that count for the other qf = q - qr (floats: the
  -- counts outgrow integers)
  local all = anchored and 1.0 or nb + 0.0
  local split, qf = all, 0
  local d = anchored and 1 or 2
  local total = 0
  for q = 0, pf.nq - 1 do
    local nodes = split < all and split or all
    local work = costq[q + 1] + linq[q + 1] * nb
    for slot, units in next, runq[q + 1] do work = work + units * rb(slot) end
    for pair, units in next, run2q[q + 1] do work = work + units * rb(pair // RUN_SLOTS) * rb(pair % RUN_SLOTS) end
    total = total + nodes * work
    if total > 1e30 then return total end
    all = all * (n + q + d) / (q + d)
    local slot = bounded[q + 1]
    if slot then
      split = split * rb(slot)
    else
      split = split * (n + qf + d) / (qf + d)
      qf = qf + 1
    end
  end
  return total + (cp.ncap + 1 + pf.once) * nb + pf.once_c
end
local function cbound(cp, n, run)
  local bound, by_runs = profile_bound(cp.main, cp, n, run), cp.by_runs
  if by_runs == nil then return bound end
  local other = profile_bound(by_runs, cp, n, run)
  return other < bound and other or bound
end

-- the largest subject length n for which bound(cp, n, ...) <= LIMIT (-1: none); bound grows with n
local function longest_cheap(bound, cp, ...)
  local lo, hi = -1, LIMIT
  while lo < hi do
    local mid = (lo + hi + 1) // 2
    if bound(cp, mid, ...) <= LIMIT then lo = mid else hi = mid - 1 end
  end
  return lo
end

-- the bound on C's work for gsub over a subject of ls bytes, with a replacement of type tr (a
-- whole gmatch scan is bounded the same way, as gsub with a function)
local function gsub_bound(cp, ls, repl, tr, run)
  local nb = ls + 1
  local b = cbound(cp, ls, run)
  -- C tries each position once, and again after an empty match there, which only a pattern that may
  -- match empty has (cp.atend: its matches need not consume); each match runs the once-only part
  if not cp.anchored then b = (cp.atend and 2 or 1) * b + cp.main.once_c * nb end
  -- and adds its replacement, REPLACEMENT_STEPS for each char of a string (a %1 is two) and twice
  -- that for each capture a function or a table is given (scan_replacement relies on the ratio)
  if tr == "string" then return b + REPLACEMENT_STEPS * nb * (#repl + 1) end
  return b + 2 * REPLACEMENT_STEPS * nb * (cp.ncap + 1)
end

-- The longest subject length for which C's work is cheap (-1: none), memoised per compiled
-- pattern: for a search (cbound), or with scan for a whole gmatch scan (gsub_bound with a
-- function); with run, for a subject whose runs are at most as long as that key says (see
-- longest_runs). A bound grows with the length, so a length check stands for it.
local function memo_of(cp, field)
  local memo = cp[field]
  if memo == nil then
    memo = {}
    cp[field] = memo
  end
  return memo
end
local function cheap_upto(cp, run, scan)
  local memo = memo_of(cp, scan and "scan_upto" or "upto")
  local key = run or 0
  local n = memo[key]
  if n == nil then
    if cp.mayerr then
      n = -1
    elseif scan then
      n = longest_cheap(gsub_bound, cp, nil, "function", run)
    else
      n = longest_cheap(cbound, cp, run)
    end
    memo[key] = n
  end
  return n
end

-- Runs of a class (the '[^/]' of '([^/]+)$', the '%s' of trim's '%s*$') repeat at every start
-- position, or at every count of a branching item before them, which makes a bound quadratic in
-- the subject's length; in most subjects those runs are short.

-- The class as the fast lane's run entry reads it: 32 bytes, char c at bit c & 7 of byte c >> 3.
-- Kept per class table while it is in use (SETS and CLASSES keep theirs).
local BITS = setmetatable({}, { __mode = "k" })
local function bitmap(t)
  local bits = BITS[t]
  if bits == nil then
    local bytes = {}
    for i = 0, 31 do
      local b, c = 0, i * 8
      for bit = 0, 7 do
        if t[c + bit] then b = b | (1 << bit) end
      end
      bytes[i + 1] = char(b)
    end
    bits = concat(bytes)
    BITS[t] = bits
    pending = pending + 256
  end
  return bits
end

-- The longest run of chars of a class in s, found by C's find of the class's runs (runpat: the
-- class and '+'), each search charged what it read: the route of the fast lane's run entry, which
-- scans s itself for the bitmap's chars.
local function longest_run(s, _, runpat)
  local longest, pos, ls = 0, 1, #s
  while pos <= ls do
    local st, en = c_find(s, runpat, pos)
    charge((en or ls) - pos + 1)
    if not st then break end
    if en - st + 1 > longest then longest = en - st + 1 end
    pos = en + 2
  end
  return longest
end
local run_of = deps.run_entry and deps.run_entry(longest_run) or longest_run

-- The longest replacement string a whole scan's bound stands for: one of at most 2 * ncap + 1 chars
-- costs a match no more than a function's captures.
local function scan_replacement(cp)
  return 2 * cp.ncap + 1
end

-- Whether C's work for the rest n of a subject whose runs of cp's classes are at most as long as the
-- key run says (nil: any) is cheap: for a search, or for gsub with a replacement of type tr (a gmatch scan:
-- "function"); the scan's memoised length stands for a replacement string it covers.
local function cheap_for(cp, n, run, repl, tr)
  if tr == "string" and #repl > scan_replacement(cp) then return gsub_bound(cp, n, repl, tr, run) <= LIMIT end
  return n <= cheap_upto(cp, run, tr ~= nil)
end

-- The longest run in s of each of cp's classes, rounded up to a power of two (cheap_upto then keeps
-- few of them per pattern), as one key: 1 plus the base-2 logarithm of the run of the class in
-- slot i (the class's place in cp.run_classes; from the last slot on, the longest of the rest)
-- times 2^(RUN_BITS * i). Runs of one char are key 1. False when cp has no run term.
local function longest_runs(cp, s)
  local classes = cp.run_classes
  if classes == nil or cp.mayerr or FORCE_LUA then return false end
  local logs, pats = {}, cp.run_pats
  for r = 1, #classes do
    local run, log, power = run_of(s, bitmap(classes[r]), pats[r]), 0, 1
    while power < run do power, log = power * 2, log + 1 end
    local slot = r <= RUN_SLOTS and r - 1 or RUN_SLOTS - 1
    if log > (logs[slot] or 0) then logs[slot] = log end
  end
  local key = 1
  for slot = 0, RUN_SLOTS - 1 do key = key + ((logs[slot] or 0) << (RUN_BITS * slot)) end
  return key
end

-- longest_runs(cp, s), found only when C's work for the rest n of s is cheap for runs of one char
-- (the bound's kind as cheap_for's); false otherwise.
local function subject_run(cp, s, n, repl, tr)
  if cp.run_classes == nil or not cheap_for(cp, n, 1, repl, tr) then return false end
  return longest_runs(cp, s)
end

-- whether C's work for the rest n of s is cheap for the runs of cp's classes in s
local function cheap_by_runs(cp, s, n, repl, tr)
  local run = subject_run(cp, s, n, repl, tr)
  return run and cheap_for(cp, n, run, repl, tr)
end

-- The bound of an unanchored pattern anchored: a search of the whole subject tries every start
-- position, which may cost C a quadratic bound, but the leftmost match can only start where the
-- prefilter points, and one anchored attempt there often stays linear. Its items are the pattern's
-- own, so is the cost profile cbound reads. The anchored pattern is cp.apat.
local function anchored(cp, p)
  local acp = cp.acp
  if acp == nil then
    cp.apat = "^" .. p
    acp = { anchored = true, mayerr = cp.mayerr, ncap = cp.ncap, main = cp.main, by_runs = cp.by_runs,
      run_classes = cp.run_classes, run_pats = cp.run_pats }
    cp.acp = acp
  end
  return acp
end

-- Whether C's attempt anchored where a match can start is cheap for the rest of s (acp: the
-- anchored bound), for any subject or for the runs of s: run when known (nil: found here, when runs
-- of one char would make the attempt cheap; false: none).
local function attempt_cheap(acp, s, rest, run)
  if rest <= cheap_upto(acp) then return true end
  if run == nil and acp.run_classes ~= nil and rest <= cheap_upto(acp, 1) then run = longest_runs(acp, s) end
  return run and rest <= cheap_upto(acp, run) or false
end

---------------------------------------------------------------------------------------------------
-- the matcher (state shared by the functions below; set before each match attempt)

local S, N = "", 0
local KIND, CLS, AUX, AUX2, FN, JUMPS = {}, {}, {}, {}, {}, {}
local NOFN = {}
-- extra: the levels between the public function that started the match and its caller
local level, depth, extra = 0, MAXCCALLS, 0
local cinit, clen = {}, {}

local function setstate(cp, s, n)
  S, N = s, n
  KIND, CLS, AUX, AUX2, FN, JUMPS = cp.kind, cp.cls, cp.aux, cp.aux2, cp.fnext or NOFN, cp.jumps or NOFN
end

-- match(ms, s, p) of lstrlib.c: s is a 1-based position (N + 1 is the end), k an item index.
-- Returns the position after the match, or nil. Must be called directly by the public function
-- (errors are raised at level 2 + extra above the outermost do_match frame).
local do_match
do_match = function(s, k)
  if depth == 0 then error("pattern too complex", MAXCCALLS + 3 + extra) end
  depth = depth - 1
  if pending >= CHUNK then flush() end
  while true do
    pending = pending + 1
    local kind = KIND[k]
    if kind == K_SINGLE then
      if s <= N and CLS[k][byte(S, s)] then
        s = s + 1
        k = k + 1
      else
        s = nil
        break
      end
    elseif kind <= K_DOPT then
      local cls = CLS[k]
      if kind >= K_DSTAR then
        if kind == K_DOPT then
          if s <= N and cls[byte(S, s)] then s = s + 1 end
        else
          local i = s
          if cls == ANY then
            i = N + 1
          else
            local lim = i + 32
            while i <= N and cls[byte(S, i)] do
              i = i + 1
              if i == lim then
                local _, e = c_find(S, AUX2[k], i)
                i = e + 1
                break
              end
            end
            pending = pending + (i - s)
          end
          if kind == K_DPLUS and i == s then
            s = nil
            break
          end
          s = i
        end
        k = k + 1
      elseif s <= N and cls[byte(S, s)] then
        -- continuations are only tried where their FIRST set allows (fs == nil: anywhere)
        local fs = FN[k]
        if kind == K_STAR or kind == K_PLUS then -- max_expand
          local i = s + 1
          if cls == ANY then
            i = N + 1
          else
            local lim = i + 32
            while i <= N and cls[byte(S, i)] do
              i = i + 1
              if i == lim then
                local _, e = c_find(S, AUX2[k], i)
                i = e + 1
                break
              end
            end
          end
          local lo = kind == K_PLUS and s + 1 or s
          pending = pending + (i - lo)
          k = k + 1
          s = nil
          if fs then
            if i > N then
              local r = do_match(i, k)
              if r then
                s = r
                break
              end
              i = i - 1
            end
            while i >= lo do
              if fs[byte(S, i)] then
                local r = do_match(i, k)
                if r then
                  s = r
                  break
                end
              end
              i = i - 1
            end
          else
            while i >= lo do
              local r = do_match(i, k)
              if r then
                s = r
                break
              end
              i = i - 1
            end
          end
          break
        elseif kind == K_MINUS then -- min_expand
          local jump = JUMPS[k]
          k = k + 1
          local r
          if jump then
            -- '.-': the next position where the continuation can start is C's to find (none: the end)
            while true do
              local q = jump ~= "" and c_find(S, jump, s) or N + 1
              pending = pending + (q - s)
              s = q
              r = do_match(s, k)
              if r or s > N then break end
              s = s + 1
              pending = pending + 1
              if pending >= CHUNK then flush() end
            end
          else
            while true do
              if not fs or s > N or fs[byte(S, s)] then
                r = do_match(s, k)
                if r then break end
              end
              if s <= N and cls[byte(S, s)] then
                s = s + 1
                pending = pending + 1
                if pending >= CHUNK then flush() end
              else
                break
              end
            end
          end
          s = r
          break
        else -- '?'
          if not fs or s >= N or fs[byte(S, s + 1)] then
            local r = do_match(s + 1, k + 1)
            if r then
              s = r
              break
            end
          end
          k = k + 1
        end
      elseif kind == K_PLUS then
        s = nil
        break
      else
        k = k + 1 -- accepts empty
      end
    elseif kind == K_END then
      break
    elseif kind == K_OPEN or kind == K_POSOPEN then -- start_capture
      local l = level
      if l >= MAXCAPTURES then error("too many captures", MAXCCALLS - depth + 2 + extra) end
      l = l + 1
      cinit[l] = s
      clen[l] = kind == K_OPEN and CAP_UNFINISHED or CAP_POSITION
      level = l
      local r = do_match(s, k + 1)
      if not r then level = level - 1 end
      s = r
      break
    elseif kind == K_CLOSE then -- end_capture
      local l = level
      while l > 0 and clen[l] ~= CAP_UNFINISHED do l = l - 1 end
      if l == 0 then error("invalid pattern capture", MAXCCALLS - depth + 2 + extra) end
      clen[l] = s - cinit[l]
      local r = do_match(s, k + 1)
      if not r then clen[l] = CAP_UNFINISHED end
      s = r
      break
    elseif kind == K_DOLLAR then
      if s ~= N + 1 then s = nil end
      break
    elseif kind == K_BALANCE then
      if s > N or byte(S, s) ~= AUX[k] then
        s = nil
        break
      end
      local _, e = c_find(S, AUX2[k], s) -- matchbalance, in C (linear)
      pending = pending + (e or N) - s + 1
      if not e then
        s = nil
        break
      end
      s = e + 1
      k = k + 1
    elseif kind == K_FRONTIER then
      local set = CLS[k]
      local prev = s == 1 and 0 or byte(S, s - 1)
      local cur = s <= N and byte(S, s) or 0
      if set[prev] or not set[cur] then
        s = nil
        break
      end
      k = k + 1
    elseif kind == K_BACKREF then
      local l = AUX[k]
      if l == 0 or l > level or clen[l] == CAP_UNFINISHED then
        error(format("invalid capture index %%%d", l), MAXCCALLS - depth + 2 + extra)
      end
      local len = clen[l]
      if len < 0 or N - s + 1 < len then
        s = nil
        break
      end
      if len > 0 then
        local ci = cinit[l]
        if sub(S, ci, ci + len - 1) ~= sub(S, s, s + len - 1) then
          s = nil
          break
        end
        pending = pending + len
      end
      s = s + len
      k = k + 1
    else -- K_ERROR
      error(AUX[k], MAXCCALLS - depth + 2 + extra)
    end
  end
  depth = depth + 1
  return s
end

---------------------------------------------------------------------------------------------------
-- captures

local CAPBUF = {}

-- push_captures: whole (match, gmatch, gsub) gives the whole match when there are no captures;
-- lvl: error level (2 + UP when tail-called by the public function, 3 + UP otherwise)
local function pushcaps(s, e, whole, lvl)
  local nl = level
  if nl == 0 then
    if whole then return sub(S, s, e - 1) end
    return
  end
  for i = 1, nl do
    local l = clen[i]
    if l >= 0 then
      local ci = cinit[i]
      CAPBUF[i] = sub(S, ci, ci + l - 1)
      pending = pending + l
    elseif l == CAP_POSITION then
      CAPBUF[i] = cinit[i]
    else
      error("unfinished capture", lvl)
    end
  end
  return unpack(CAPBUF, 1, nl)
end

-- get_onecapture(i - 1) for gsub (called directly by gsub)
local function getcap(i, s, e)
  if i > level then
    if i ~= 1 then error(format("invalid capture index %%%d", i), 3 + UP) end
    return sub(S, s, e - 1)
  end
  local l = clen[i]
  if l >= 0 then
    local ci = cinit[i]
    return sub(S, ci, ci + l - 1)
  elseif l == CAP_POSITION then
    return cinit[i]
  end
  error("unfinished capture", 3 + UP)
end

-- next start position >= pos where the pattern can match: pos itself when its char is in the
-- FIRST set, or C's find with that set
local function skipto(cp, pos)
  local set = cp.firstset
  if set and set[byte(S, pos)] then return pos end
  local q
  local f = cp.first
  if f == "" then
    q = nil
  elseif cp.fplain then
    q = c_find(S, f, pos, true)
  else
    q = c_find(S, f, pos)
  end
  pending = pending + ((q or N + 1) - pos)
  if not q and cp.atend and pos <= N + 1 then q = N + 1 end
  return q
end

-- the next start position after a failed attempt at pos
local function nextpos(cp, pos)
  local run = cp.skiprun
  if run then
    local _, e = c_find(S, run, pos)
    pending = pending + (e - pos + 1)
    if e > pos then return e + 1 end
  end
  return pos + 1
end

---------------------------------------------------------------------------------------------------
-- arguments (errors at level 3 + UP: the helper, the public function, its caller)

local function typename(v)
  local mt = getmetatable(v)
  if type(mt) == "table" then
    local name = rawget(mt, "__name")
    if type(name) == "string" then return name end
  end
  return type(v)
end

local function checkstr(v, i, fname, nargs)
  if type(v) == "number" then return tostring(v) end
  bad_argument(i, fname, "string expected, got " .. (i > nargs and "no value" or typename(v)), 3 + UP)
end

local function checkint(v, i, fname)
  local tv = type(v)
  local x = v
  if tv == "string" then x = tonumber(v) end
  if type(x) == "number" then
    local r = tointeger(x)
    if r then return r end
    bad_argument(i, fname, "number has no integer representation", 3 + UP)
  end
  bad_argument(i, fname, "number expected, got " .. typename(v), 3 + UP)
end

local NOSPEC, nnospec = {}, 0

local function nospecials(p)
  local r = NOSPEC[p]
  if r == nil then
    r = not c_find(p, "[%^%$%*%+%?%.%(%[%%%-]")
    if #p <= CACHE_PLEN then
      if nnospec >= CACHE_MAX then NOSPEC, nnospec = {}, 0 end
      NOSPEC[p] = r
      nnospec = nnospec + 1
    end
  end
  return r
end

---------------------------------------------------------------------------------------------------
-- find / match

-- C's find results, after charging what it searched: from pos to the end of the match, or of the
-- subject when nothing matched
local function searched(pos, ls, lp, st, en, ...)
  if not st then
    charge(ls - pos + 1 + lp)
    return nil
  end
  charge(en - pos + 1 + lp)
  return st, en, ...
end

-- the longest subject (from the start position) whose plain search for a pattern of lp > 0 bytes
-- C may do: lmemfind compares up to lp bytes at each of its positions, (rest + 1) * lp <= LIMIT
local function plain_limit(lp)
  return LIMIT // lp - 1
end

-- lmemfind with the C library doing the scanning: memchr for the first byte, then a compare
local function plain_find(s, p, init)
  local ls, lp = #s, #p
  if lp == 0 then return init, init - 1 end
  if lp > ls - init + 1 then return nil end
  if not FORCE_LUA and ls - init + 1 <= plain_limit(lp) then
    if stats then stats.c = stats.c + 1 end
    if ls - init + 1 + lp < FEW then return c_find(s, p, init, true) end
    return searched(init, ls, lp, c_find(s, p, init, true))
  end
  if stats then stats.lua = stats.lua + 1 end
  local f = sub(p, 1, 1)
  local last = ls - lp + 1
  local pos = init
  while pos <= last do
    local q = c_find(s, f, pos, true)
    if not q or q > last then
      pending = pending + (last - pos + 1)
      break
    end
    pending = pending + (q - pos) + lp
    if pending >= CHUNK then flush() end
    if sub(s, q, q + lp - 1) == p then
      flush()
      return q, q + lp - 1
    end
    pos = q + 1
  end
  flush()
  return nil
end

-- For find and match called with string arguments and without plain: per pattern, the longest
-- subject (from the start position) handed to C (false: none), learnt by find_aux, so that the
-- next such call with the pattern skips the checks. gsub keeps its own per pattern (see gsub);
-- gmatch the longest subject whose whole scan is C's (-1: none).
-- [1: find, 2: match, 3: gsub, 4: gmatch][pattern]; the fast lane reads plain_limit's LIMIT at 5.
-- At 6, for find and match: the unanchored patterns whose search find_aux began with C's attempt
-- anchored where a match can start (see attempted), each with its record { the longest subject
-- (from the start position) for that attempt, the anchored pattern, the set of chars a match can
-- start with (any, where the pattern has no first set), the compiled pattern, the locator of that
-- place ("()" and the pattern's literal prefix of two chars or more, at most PREFIX, or the set; or
-- nil), the longest subjects cheap for the attempt per key of the subject's runs (cheap_upto's
-- memo) }; at 7,
-- resume, which goes on with a search after a failed attempt (the fast lane makes the attempt from
-- these too). At 9: the patterns whose bound has a run term (see subject_run), each with its record
-- { the longest subjects cheap per key of the subject's runs for a search and for a whole scan
-- (cheap_upto's memos), the compiled pattern, the longest replacement string the scan's lengths
-- stand for (see cheap_for), the bitmap of each of its run classes }, with which a call too long for
-- the quick limit is still C's when the subject's runs are short; the fast lane scans for the runs
-- too, and leaves to the route a key of runs not in a memo yet. A pattern with a leading '^' has one
-- record for find, match and gsub (the pattern anchored) and gmatch (a literal '^'), the first that
-- learns it: an unanchored search bounds an anchored one too, not the other way round, so gmatch
-- reads only an unanchored record. At 10, for gmatch and an unanchored gsub: the patterns whose
-- steps are searches (see stepper), each with its record { the longest subjects cheap per key of the
-- subject's runs for a search and for an attempt (cheap_upto's memos, for any subject under 0), the
-- anchored pattern, the set of chars a match can start with (any, where the pattern has no first
-- set), the locator or false, the pattern of the run a failed attempt skips or false (see nextpos),
-- the longest subjects whose whole scan is cheap per key of runs (cheap_upto's memo) where a gsub
-- may hand the rest of its subject to C (see rest_upto) or false, the longest replacement string
-- those lengths stand for, and the longest subjects cheap per replacement string (string_upto's
-- memo) }. At 11, C's find, which the fast lane's gmatch and gsub call with those;
-- at 12, step_search, their search in Lua.
local quick, nquick = deps.quick or {}, { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }
quick[1], quick[2], quick[3], quick[4], quick[5], quick[6], quick[9], quick[10], quick[11] =
  {}, {}, {}, {}, LIMIT, {}, {}, {}, c_find
local function learn(which, p, mx)
  local known = quick[which]
  if known[p] ~= nil or #p > CACHE_PLEN then return end
  if nquick[which] >= CACHE_MAX then
    known = {}
    quick[which], nquick[which] = known, 0
  end
  known[p] = mx
  nquick[which] = nquick[which] + 1
end

-- Whether the runs of the classes of p in s make C's work on the rest of s cheap, by p's record
-- under quick[9] (none: false): a search's, or gsub's with a replacement of type tr (a whole scan:
-- "function").
local function cheap_runs(p, s, rest, repl, tr)
  local r = quick[9][p]
  return r ~= nil and cheap_by_runs(r[3], s, rest, repl, tr)
end

-- What the fast lane needs to prove a call cheap by the subject's runs (see quick[9]).
local function learn_runs(p, cp)
  local classes = cp.run_classes
  if classes == nil or cp.mayerr or FORCE_LUA or quick[9][p] ~= nil or #p > CACHE_PLEN then return end
  local r = { memo_of(cp, "upto"), memo_of(cp, "scan_upto"), cp, scan_replacement(cp) }
  for i = 1, #classes do r[i + 4] = bitmap(classes[i]) end
  learn(9, p, r)
end

-- The search in Lua from pos, for find_aux (state set). Tail-called, like attempted: the matcher's
-- error levels count the public function's frame as the caller of this one.
local function search(isfind, cp, pos, ls, anchor)
  if stats then stats.lua = stats.lua + 1 end
  local first = not anchor and cp.first
  while pos <= ls + 1 do
    if first then
      pos = skipto(cp, pos)
      if not pos then break end
    end
    level, depth, extra = 0, MAXCCALLS, UP
    local e = do_match(pos, 1)
    if e then
      flush()
      if isfind then return pos, e - 1, pushcaps(pos, e, false, 3 + UP) end
      return pushcaps(pos, e, true, 2 + UP)
    end
    if anchor then break end
    pos = nextpos(cp, pos)
  end
  flush()
  return nil
end

-- C's search of s from pos for p, whole, charged as any call handed to C (find: the part it
-- searched, match: the rest of the subject, each plus #p; under FEW units, nothing)
local function handed(isfind, s, p, pos, ls)
  if stats then stats.c = stats.c + 1 end
  local bound = ls - pos + 1 + #p
  if bound < FEW then return (isfind and c_find or c_match)(s, p, pos) end
  if isfind then return searched(pos, ls, #p, c_find(s, p, pos)) end
  charge(bound)
  return c_match(s, p, pos)
end

-- The search from pos (state set): C's when the rest is cheap, or cheap for the subject's runs (see
-- subject_run), Lua's otherwise. Tail-called, as search is.
local function search_rest(isfind, s, p, cp, pos, ls, anchor)
  local rest = ls - pos + 1
  if rest >= 0 and (rest <= cheap_upto(cp) or cheap_by_runs(cp, s, rest)) then
    -- the steps taken to get to pos (the prefilter, a run skipped) are this call's
    flush()
    return handed(isfind, s, p, pos, ls)
  end
  return search(isfind, cp, pos, ls, anchor)
end

-- After C's attempt at pos failed: the search goes on from the next start position (find's attempt
-- is charged #p more; match's was charged already).
local function resume(isfind, s, p, pos, cp)
  local ls = #s
  if isfind then charge(#p) end
  setstate(cp, s, ls)
  return search_rest(isfind, s, p, cp, nextpos(cp, pos), ls, false)
end
quick[7] = resume

-- The results of C's attempt at pos of the anchored pattern (st, en and the captures; nil: it
-- failed). find is charged up to the end of the match plus #p, match the rest of the subject plus
-- #p (as when a whole call is handed to C). What C covers before a failure is bounded like any call
-- handed to C, so find's failed attempt is charged #p only: a loop of steps along a subject is not
-- charged its rest at each of them.
local function attempted(isfind, s, p, cp, pos, st, ...)
  if stats then stats.c = stats.c + 1 end
  if not isfind then charge(#s - pos + 1 + #p) end
  if not st then return resume(isfind, s, p, pos, cp) end
  local en = ...
  if isfind then charge(en - pos + 1 + #p) end
  flush()
  if isfind then return st, ... end
  if select("#", ...) == 1 then return sub(s, st, en) end
  return select(2, ...)
end

-- Where an attempt learnt in record a (quick[6]) starts for s from pos: pos, when its char can start
-- a match, or the first place where one can (the chars skipped are charged with the attempt, as
-- skipto's); nil when the record cannot say (find_aux's route then decides).
local function attempt_start(a, s, pos)
  if a[3][byte(s, pos)] then return pos end
  local locator = a[5]
  local q = locator and c_find(s, locator, pos)
  if q then pending = pending + (q - pos) end
  return q
end

local function find_aux(isfind, ...)
  local s, p, init, plain = ...
  local fname = isfind and "find" or "match"
  if type(s) ~= "string" then s = checkstr(s, 1, fname, select("#", ...)) end
  if type(p) ~= "string" then p = checkstr(p, 2, fname, select("#", ...)) end
  local ls = #s
  local pos = 1
  if init ~= nil then
    pos = checkint(init, 3, fname)
    if pos > 0 then -- posrelatI
    elseif pos == 0 or pos < -ls then
      pos = 1
    else
      pos = ls + pos + 1
    end
    if pos > ls + 1 then return nil end
  end
  local learning = not (isfind and plain) and not FORCE_LUA
  if isfind and (plain or nospecials(p)) then
    if learning then learn(1, p, #p > 0 and plain_limit(#p)) end
    return plain_find(s, p, pos)
  end
  local anchor = byte(p, 1) == 94
  local cp = compile(p, anchor and 2 or 1)
  local run = nil -- the subject's runs, once found
  if not FORCE_LUA then
    local mx = cheap_upto(cp)
    if learning then
      learn(isfind and 1 or 2, p, mx)
      learn_runs(p, cp)
    end
    local rest = ls - pos + 1
    if rest <= mx then return handed(isfind, s, p, pos, ls) end
    run = subject_run(cp, s, rest) or nil
    if run and cheap_for(cp, rest, run) then return handed(isfind, s, p, pos, ls) end
  end
  setstate(cp, s, ls)
  if not anchor and not FORCE_LUA then
    if cp.first then
      pos = skipto(cp, pos)
      if not pos then return search(isfind, cp, ls + 2, ls, false) end
    end
    local acp = anchored(cp, p)
    if attempt_cheap(acp, s, ls - pos + 1, run) then
      -- what the attempts of find and match need, once this one is made (see quick)
      if learning and (cp.firstset or cp.first == nil) and quick[6][p] == nil then
        learn(6, p, { cheap_upto(acp), cp.apat, cp.firstset or ANY, cp, cp.locator, memo_of(acp, "upto") })
      end
      return attempted(isfind, s, p, cp, pos, c_find(s, cp.apat, pos))
    end
  end
  return search_rest(isfind, s, p, cp, pos, ls, anchor)
end

-- A positive init keeps the quick route: the limits are on the subject from the start position.
-- A plain pattern longer than that, or an empty one, is no search at all for plain_find, and is
-- charged nothing: left to find_aux.
local function find(...)
  local s, p, init, plain = ...
  if type(s) == "string" and type(p) == "string" and not FORCE_LUA then
    local pos = init == nil and 1 or tointeger(init) or 0
    local ls, lp = #s, #p
    local rest = ls - pos + 1
    if pos > 0 and rest >= 0 and (lp <= rest or not plain and not nospecials(p)) then
      local mx
      if plain then mx = lp > 0 and LIMIT // lp - 1 else mx = quick[1][p] end
      if mx and (rest <= mx or not plain and cheap_runs(p, s, rest)) then
        if stats then stats.c = stats.c + 1 end
        if rest + lp < FEW then return c_find(s, p, pos, plain) end
        return searched(pos, ls, lp, c_find(s, p, pos, plain))
      end
      local a = mx and not plain and quick[6][p]
      local start = a and rest <= a[1] and attempt_start(a, s, pos)
      if start then return attempted(true, s, p, a[4], start, c_find(s, a[2], start)) end
    end
  end
  return find_aux(true, ...)
end

local function match(...)
  local s, p, init = ...
  if type(s) == "string" and type(p) == "string" then
    local mx = quick[2][p]
    if mx then
      local pos = 1
      if init ~= nil then pos = tointeger(init) or 0 end
      local ls = #s
      local rest = ls - pos + 1
      if pos > 0 and rest >= 0 and not FORCE_LUA then
        if rest <= mx or cheap_runs(p, s, rest) then
          charge_whole(rest + #p)
          return c_match(s, p, pos)
        end
        local a = quick[6][p]
        local start = a and rest <= a[1] and attempt_start(a, s, pos)
        if start then return attempted(false, s, p, a[4], start, c_find(s, a[2], start)) end
      end
    end
  end
  return find_aux(false, ...)
end

---------------------------------------------------------------------------------------------------
-- gmatch

-- A search for the steps of gmatch and gsub in Lua from pos, with find's results (state set here):
-- where C's work is not proved cheap. cp is p compiled (the fast lane, which calls it too, leaves it
-- to be found: quick[12]).
local function step_search(s, p, pos, cp)
  cp = cp or compile(p, 1)
  local ls = #s
  setstate(cp, s, ls)
  return search(true, cp, pos, ls, false)
end
quick[12] = step_search

-- What the fast lane's gmatch and gsub need to take their steps as the stepper does (see quick[10]),
-- for an unanchored cp of p, compiled without errors.
local function learn_steps(p, cp)
  if quick[10][p] ~= nil or #p > CACHE_PLEN then return end
  local acp = anchored(cp, p)
  cheap_upto(cp)
  cheap_upto(acp)
  learn(10, p, { memo_of(cp, "upto"), memo_of(acp, "upto"), cp.apat, cp.firstset or ANY, cp.locator or false,
    cp.skiprun or false, cp.splits and memo_of(cp, "scan_upto"), scan_replacement(cp), memo_of(cp, "repl_upto") })
end

-- The longest rests of s whose search (mx) and whose attempt anchored where a match can start
-- (amx) are cheap in C, for cp and its anchored acp: for any subject, or for the runs of s (run: as
-- found already; nil: found here, where a limit needs them), and the runs as known then.
local function step_limits(cp, acp, s, run)
  if FORCE_LUA then return -1, -1 end
  local ls = #s
  local mx, amx = cheap_upto(cp), cheap_upto(acp)
  if run == nil and cp.run_classes ~= nil and (ls > mx or ls > amx) then run = longest_runs(cp, s) end
  if run then
    local by_runs, attempt_by_runs = cheap_upto(cp, run), cheap_upto(acp, run)
    if by_runs > mx then mx = by_runs end
    if attempt_by_runs > amx then amx = attempt_by_runs end
  end
  return mx, amx, run
end

-- The search for the next match of the steps of gmatch and gsub over s (p unanchored, compiled as
-- cp, escaped as p2 for find; mx and amx as step_limits gives them): a function of the position it
-- starts from and where the last match ended, which returns find's results for the match, passing
-- over an empty one where the last ended (none: no match). It begins with C's attempt where a
-- match can start, when the search of the rest is not cheap and the attempt is; after a failure
-- (or that empty match) it goes on from the next position, past the run the attempt began with;
-- a search is C's where the rest is cheap, else Lua's. Charged as find's: C's search what it
-- covered plus #p, an attempt the part it matched plus #p (#p when it failed), Lua's its steps.
-- The fast lane's gmatch makes the same steps in C.
local function stepper(s, p, p2, cp, mx, amx)
  local ls, lp, apat, starts, locator, skiprun = #s, #p, cp.apat, cp.firstset or ANY, cp.locator, cp.skiprun
  local search_from
  local function unless_after(lastmatch, st, en, ...)
    if st and en + 1 == lastmatch then return search_from(st + 1, lastmatch) end
    return st, en, ...
  end
  function search_from(pos, lastmatch)
    if pos > ls + 1 then return nil end
    if ls - pos + 1 <= mx then
      if stats then stats.c = stats.c + 1 end
      return unless_after(lastmatch, searched(pos, ls, lp, c_find(s, p2, pos)))
    end
    return unless_after(lastmatch, step_search(s, p, pos, cp))
  end
  local function attempted_at(pos, lastmatch, st, en, ...)
    if stats then stats.c = stats.c + 1 end
    if st and en + 1 ~= lastmatch then
      charge(en - pos + 1 + lp)
      return st, en, ...
    end
    charge(lp)
    local after = pos + 1
    if skiprun and not st then
      local _, e = c_find(s, skiprun, pos)
      charge(e - pos + 1)
      if e > pos then after = e + 1 end
    end
    return search_from(after, lastmatch)
  end
  return function(pos, lastmatch)
    if ls - pos + 1 > mx and amx >= 0 then
      -- where a match can start: pos, or where the locator finds a place (the chars skipped charged)
      local start = pos
      if not starts[byte(s, pos)] then
        start = locator and c_find(s, locator, pos)
        if start and start > pos then charge(start - pos) end
      end
      if start and ls - start + 1 <= amx then return attempted_at(start, lastmatch, c_find(s, apat, start)) end
    end
    return search_from(pos, lastmatch)
  end
end

-- C's own iterator over the whole of s, charged once
local function whole_scan(s, p)
  charge_whole(#s + #p)
  return c_gmatch(s, p)
end

local function gmatch(...)
  local s, p, init = ...
  -- the runs of s found by the route below, for the compiled pattern they were found for
  local quick_cp, quick_run = nil, nil
  if init == nil and type(s) == "string" and type(p) == "string" then
    local mx = quick[4][p]
    if mx and #s <= mx then return whole_scan(s, p) end
    local r = mx and quick[9][p]
    if r and not r[3].anchored then
      quick_cp, quick_run = r[3], subject_run(r[3], s, #s, nil, "function")
      if quick_run and cheap_for(quick_cp, #s, quick_run, nil, "function") then return whole_scan(s, p) end
    end
  end
  local nargs = select("#", ...)
  if type(s) ~= "string" then s = checkstr(s, 1, "gmatch", nargs) end
  if type(p) ~= "string" then p = checkstr(p, 2, "gmatch", nargs) end
  local ls = #s
  local src = 1
  if init ~= nil and not V53 then
    src = checkint(init, 3, "gmatch")
    if src > 0 then -- posrelatI
    elseif src == 0 or src < -ls then
      src = 1
    else
      src = ls + src + 1
    end
    if src > ls + 1 then src = ls + 2 end
  end
  local cp = compile(p, 1) -- gmatch takes a leading '^' literally
  local lastmatch = nil

  if cp.mayerr then
    -- a step in Lua from pos (state set), whose errors are C's: tail-called, as the matcher's error
    -- levels expect
    local function step(pos)
      if stats then stats.lua = stats.lua + 1 end
      local first = cp.first
      while pos <= ls + 1 do
        if first then
          pos = skipto(cp, pos)
          if not pos then break end
        end
        level, depth, extra = 0, MAXCCALLS, 0
        local e = do_match(pos, 1)
        if e and e ~= lastmatch then
          src, lastmatch = e, e
          flush()
          return pushcaps(pos, e, true, 2)
        end
        pos = e and pos + 1 or nextpos(cp, pos)
      end
      flush()
    end
    return function()
      local pos = src
      if pos > ls + 1 then return end
      setstate(cp, s, ls)
      return step(pos)
    end
  end

  local p2 = byte(p, 1) == 94 and "%" .. p or p -- the pattern for find (a leading '^' escaped)
  local acp = anchored(cp, p2)
  -- the longest run of cp's classes in s (see longest_runs; false: none), found at most once
  local run = cp == quick_cp and quick_run or nil
  -- A whole scan is bounded like gsub's: each start is tried at most twice over all the steps, and
  -- each match runs its captures and the once-only part of the pattern; when that is cheap, for any
  -- subject or for the runs of s, the steps are C's own iterator, charged once.
  if init == nil and not FORCE_LUA then
    -- what the route above and the fast lane's gmatch need, learnt once per pattern: the longest
    -- subject whose whole scan is cheap, the runs record, and the record of the steps (see quick)
    if #p <= CACHE_PLEN and quick[4][p] == nil then
      learn(4, p, cheap_upto(cp, nil, true))
      learn_runs(p, cp)
      learn_steps(p, cp)
    end
    if ls <= cheap_upto(cp, nil, true) then return whole_scan(s, p) end
    if cp.run_classes ~= nil and ls <= cheap_upto(cp, 1, true) then
      if run == nil then run = longest_runs(cp, s) end
      if run and ls <= cheap_upto(cp, run, true) then return whole_scan(s, p) end
    end
  end
  -- Else each step is the stepper's search from where the last match ended (the fast lane's gmatch
  -- makes the same iterator in C); the compile of the pattern is charged first.
  local mx, amx = step_limits(cp, acp, s, run)
  local next_match = stepper(s, p, p2, cp, mx, amx)
  flush()
  -- a step's match (none: no more)
  local function deliver(st, en, ...)
    if not st then
      src = ls + 2
      return
    end
    src, lastmatch = en + 1, en + 1
    if select("#", ...) == 0 then return sub(s, st, en) end
    return ...
  end
  return function()
    local pos = src
    if pos > ls + 1 then return end
    return deliver(next_match(pos, lastmatch))
  end
end

---------------------------------------------------------------------------------------------------
-- gsub

-- the replacement string as pieces: strings, capture numbers (0 = whole match), false = bad '%'
local function parse_repl(r)
  local out, n = {}, 0
  local pos, lr = 1, #r
  while true do
    local q = c_find(r, "%", pos, true)
    if not q then
      if pos <= lr then
        n = n + 1
        out[n] = sub(r, pos)
      end
      break
    end
    if q > pos then
      n = n + 1
      out[n] = sub(r, pos, q - 1)
    end
    local d = byte(r, q + 1)
    n = n + 1
    if d == 37 then
      out[n] = "%"
    elseif d and d >= 48 and d <= 57 then
      out[n] = d - 48
    else
      out[n] = false
      break
    end
    pos = q + 2
  end
  pending = pending + n + 1
  return out, n
end

-- can add_s fail with this replacement string and ncap captures?
local function repl_ok(r, ncap)
  local pos = c_find(r, "%", 1, true)
  while pos do
    local d = byte(r, pos + 1)
    if d ~= 37 then
      if not d or d < 48 or d > 57 then return false end
      d = d - 48
      if d > 1 and d > ncap then return false end
    end
    pos = c_find(r, "%", pos + 2, true)
  end
  return true
end

-- The longest subject whose gsub with the replacement string repl (one repl_ok accepts) is cheap in
-- C, for any subject; memoised per compiled pattern for its first KNOWN_REPLACEMENTS replacements
-- ([1] counts them), nil for another once those are known (its search costs more than a stepped gsub
-- saves).
local function string_upto(cp, repl)
  local memo = memo_of(cp, "repl_upto")
  local n = memo[repl]
  if n == nil then
    local count = memo[1] or 0
    if count >= KNOWN_REPLACEMENTS then return nil end
    n = longest_cheap(gsub_bound, cp, repl, "string")
    memo[repl], memo[1] = n, count + 1
  end
  return n
end

-- The longest rest of a subject, from the end of a match, that stepped_gsub hands to C's gsub whole
-- (-1: none, where the pattern's matches could tell; see cp.splits): cheap for any subject with a
-- replacement of type tr, or, for a replacement the scan's lengths stand for (see cheap_for), for
-- the subject's runs (run: as found; nil or false: not found). The fast lane's gsub reads the same
-- from the pattern's record of steps.
local function rest_upto(cp, repl, tr, run)
  if FORCE_LUA or not cp.splits then return -1 end
  local n
  if tr == "string" then n = string_upto(cp, repl) else n = cheap_upto(cp, nil, true) end
  if n == nil then return -1 end
  if run and (tr ~= "string" or #repl <= scan_replacement(cp)) then
    local by_runs = cheap_upto(cp, run, true)
    if by_runs > n then n = by_runs end
  end
  return n
end

-- gsub with a string subject and pattern and no max: per pattern (quick[3]), then per replacement
-- string (at most KNOWN_REPLACEMENTS), or under true for any function or table, the longest subject handed to C
-- (-1: none), learnt by gsub once the pattern is known error-free, so that a repeated call skips
-- the checks. [1] counts a pattern's replacements.
local function learn_gsub(p, cp, repl)
  if #p > CACHE_PLEN or (repl and #repl > CACHE_PLEN) then return end
  local known = quick[3][p]
  if known == nil then
    known = { 0 }
    learn(3, p, known)
  end
  local key = repl or true
  if known[key] ~= nil or known[1] >= KNOWN_REPLACEMENTS then return end
  if repl == nil then
    known[key] = cheap_upto(cp, nil, true)
  else
    known[key] = repl_ok(repl, cp.ncap) and (string_upto(cp, repl) or longest_cheap(gsub_bound, cp, repl, "string"))
      or -1
  end
  known[1] = known[1] + 1
end

-- A replacement function's or table's value as gsub adds it: a string (a number as its string), or
-- nil for false or nil, which keep the match as it is. An error points at level (from the caller).
local function replacement_value(v, level)
  if not v then return nil end
  local tv = type(v)
  if tv == "number" then return tostring(v) end
  if tv ~= "string" then error("invalid replacement value (a " .. tv .. ")", level + 1) end
  return v
end

-- Adds to the np parts of gsub's result the text of src from keep to before at, and then v; returns
-- how many parts there are.
local function add_after_text(parts, np, src, keep, at, v)
  if keep < at then
    np = np + 1
    parts[np] = sub(src, keep, at - 1)
  end
  np = np + 1
  parts[np] = v
  return np
end

-- The same for a match's replacement v, charged its length.
local function add_replacement(parts, np, src, keep, at, v)
  np = add_after_text(parts, np, src, keep, at, v)
  pending = pending + #v
  if pending >= CHUNK then flush() end
  return np
end

-- gsub's results: the parts and the text of src from keep on, joined (src itself where nothing was
-- replaced), and the number of matches n; the charges pending are made first.
local function gsub_result(src, parts, np, keep, n, changed)
  flush()
  if not changed then return src, n end
  if keep <= #src then
    np = np + 1
    parts[np] = sub(src, keep)
  end
  return concat(parts, "", 1, np), n
end

-- gsub of at most maxr matches by the stepper, with a replacement of type tr whose string (if any)
-- repl_ok accepts; the subject's runs as found already (nil: not yet). Each match's replacement is
-- charged its length, as in the matcher's own gsub; the rest from the end of a match is C's gsub
-- once rest_upto allows it.
local function stepped_gsub(src, p, cp, repl, tr, maxr, run)
  local mx, amx
  mx, amx, run = step_limits(cp, anchored(cp, p), src, run)
  local next_match = stepper(src, p, p, cp, mx, amx)
  local whole = rest_upto(cp, repl, tr, run)
  local ls, ncap = #src, cp.ncap
  local segs, nsegs = nil, 0
  if tr == "string" then segs, nsegs = parse_repl(repl) end
  local parts, np, keep, n, pos, lastmatch, changed = {}, 0, 1, 0, 1, nil, false
  -- adds the replacement of a match (st, en, captures: find's results) to parts, after the text
  -- before it; returns the position after the match, or nil when there is no match
  local function replace(st, en, ...)
    if not st then return nil end
    n = n + 1
    local v
    if tr == "string" then
      if keep < st then
        np = np + 1
        parts[np] = sub(src, keep, st - 1)
      end
      for j = 1, nsegs do
        v = segs[j]
        if v == 0 or v == 1 and ncap == 0 then
          v = sub(src, st, en)
        elseif type(v) == "number" then
          v = (select(v, ...))
          if type(v) == "number" then v = tostring(v) end
        end
        np = np + 1
        parts[np] = v
        pending = pending + #v
      end
      if pending >= CHUNK then flush() end
      keep, changed = en + 1, true
      return en + 1
    end
    local first = ncap == 0 and sub(src, st, en) or ...
    if tr == "function" then
      if ncap == 0 then v = repl(first) else v = repl(...) end
    else
      v = repl[first]
    end
    v = replacement_value(v, 3 + UP)
    if v then
      np = add_replacement(parts, np, src, keep, st, v)
      keep, changed = en + 1, true
    end
    return en + 1
  end
  while n < maxr and pos <= ls + 1 do
    if ls - pos + 1 <= whole then
      -- the rest is C's gsub, charged as a whole call (the steps before it first)
      flush()
      charge_whole(ls - pos + 1 + #p)
      local rest, m = c_gsub(sub(src, pos), p, repl, maxr - n)
      if m > 0 then
        np = add_after_text(parts, np, src, keep, pos, rest)
        keep, changed = ls + 1, true
      end
      n = n + m
      break
    end
    local after = replace(next_match(pos, lastmatch))
    if not after then break end
    pos, lastmatch = after, after
  end
  return gsub_result(src, parts, np, keep, n, changed)
end

local function gsub(...)
  local src, p, repl, max_s = ...
  local known = max_s == nil and type(src) == "string" and not FORCE_LUA and quick[3][p]
  if known then
    -- the longest subject known cheap: per replacement string, or one for any function or table (C
    -- raises its own error for a bad value they give; the sandbox's catch points write it as Lua
    -- would have, at the caller's line)
    local tr = type(repl)
    local mx = tr == "string" and known[repl] or (tr == "function" or tr == "table") and known[true]
    -- (a replacement string the matcher found invalid is known as -1: its runs are not looked at)
    if mx and (#src <= mx or (tr ~= "string" or mx >= 0) and cheap_runs(p, src, #src, repl, tr)) then
      charge_whole(#src + #p)
      if tr == "string" then return c_gsub_string(src, p, repl) end
      return c_gsub(src, p, repl)
    end
  end
  local nargs = select("#", ...)
  if type(src) ~= "string" then src = checkstr(src, 1, "gsub", nargs) end
  if type(p) ~= "string" then p = checkstr(p, 2, "gsub", nargs) end
  local ls = #src
  local tr = type(repl)
  local maxr = ls + 1
  if max_s ~= nil then maxr = checkint(max_s, 4, "gsub") end
  if tr == "number" then
    repl = tostring(repl)
    tr = "string"
  elseif tr ~= "string" and tr ~= "function" and tr ~= "table" then
    if V53 then
      bad_argument(3, "gsub", "string/function/table expected", 2 + UP)
    end
    bad_argument(3, "gsub", "string/function/table expected, got " .. (nargs < 3 and "no value" or typename(repl)),
      2 + UP)
  end
  local anchor = byte(p, 1) == 94
  local cp = compile(p, anchor and 2 or 1)
  local run = nil -- the subject's runs, once found
  if not FORCE_LUA and not cp.mayerr then
    if max_s == nil then
      learn_gsub(p, cp, tr == "string" and repl or nil)
      learn_runs(p, cp)
      if not anchor then learn_steps(p, cp) end
    end
    local cheap = cheap_for(cp, ls, nil, repl, tr)
    if not cheap then
      run = subject_run(cp, src, ls, repl, tr) or nil
      cheap = run and cheap_for(cp, ls, run, repl, tr)
    end
    if cheap and (tr ~= "string" or repl_ok(repl, cp.ncap)) then
      if stats then stats.c = stats.c + 1 end
      charge(ls + #p)
      return c_gsub(src, p, repl, maxr)
    end
  end
  -- Else an unanchored pattern's matches are the stepper's (the searches of gmatch's steps), for a
  -- replacement that raises no error of its own making; the rest is the matcher's, in Lua.
  if not (anchor or cp.mayerr or tr == "string" and not repl_ok(repl, cp.ncap)) then
    return stepped_gsub(src, p, cp, repl, tr, maxr, run)
  end
  if stats then stats.lua = stats.lua + 1 end
  setstate(cp, src, ls)
  local parts, np = {}, 0
  local segs, nsegs = nil, 0
  local pos, keep, lastmatch, n, changed = 1, 1, nil, 0, false
  local first = not anchor and cp.first
  while n < maxr do
    if first then
      local q = skipto(cp, pos)
      if not q then break end
      pos = q
    end
    level, depth, extra = 0, MAXCCALLS, UP
    local e = do_match(pos, 1)
    if e and e ~= lastmatch then -- add_value
      n = n + 1
      if tr == "string" then
        if not segs then segs, nsegs = parse_repl(repl) end
        if keep < pos then
          np = np + 1
          parts[np] = sub(src, keep, pos - 1)
        end
        for j = 1, nsegs do
          local v = segs[j]
          if v == false then
            error("invalid use of '%' in replacement string", 2 + UP)
          elseif v == 0 then
            v = sub(src, pos, e - 1)
          elseif type(v) == "number" then
            v = getcap(v, pos, e)
            if type(v) == "number" then v = tostring(v) end
          end
          np = np + 1
          parts[np] = v
          pending = pending + #v
        end
        keep = e
        changed = true
      else
        local v
        if tr == "function" then
          v = repl(pushcaps(pos, e, true, 3 + UP))
        else
          v = repl[getcap(1, pos, e)]
        end
        setstate(cp, src, ls) -- the callback may have matched too
        v = replacement_value(v, 2 + UP)
        if v then
          np = add_replacement(parts, np, src, keep, pos, v)
          keep = e
          changed = true
        end
      end
      pos, lastmatch = e, e
    elseif pos > ls then
      break
    elseif e or anchor then
      pos = pos + 1
    else
      pos = nextpos(cp, pos)
    end
    if anchor then break end
  end
  return gsub_result(src, parts, np, keep, n, changed)
end

return { find = find, match = match, gmatch = gmatch, gsub = gsub }
`;
