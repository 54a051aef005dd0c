/**
 * The kernel's rarely taken paths: Lua's argument errors as Lua's own functions word them, the
 * routes of the fast lane's entries for `next`, `rawget`, `rawlen`, `rawset`, `setmetatable`,
 * `tostring` and `pcall` (the calls the lane hands back: a read-only view, a protected metatable,
 * a bad argument), and the compiler that hands a long chunk to Lua's parser a piece at a time.
 *
 * Trusted Lua kept out of the kernel chunk: every sandbox state loads the kernel, and most never
 * raise an argument error nor give the lane a call it declines. The kernel loads this chunk from
 * the host's cached bytecode the first time one of these paths is taken. Each of its functions
 * stands behind a stub of the kernel that tail-calls it, so the levels its errors name count the
 * frames they counted when it was the kernel's own. Where there is no fast lane, a Lua entry of
 * the kernel calls the stub in the lane's stead and keeps the frame that holds the name the sandbox
 * code called the function by.
 *
 * @module
 */

/**
 * The routes chunk; called with the kernel's internals (`internals` in `KERNEL_LUA`), it returns
 * a table of its functions by name. It runs with the trusted globals the kernel took before
 * emptying the real globals. Works on Lua 5.3 and 5.4.
 */
export const ROUTES_LUA = `
local k = ...
local UP, views, decision_envs = k.ENTRY_UP, k.views, k.decision_envs
local d_getmetatable, d_getinfo, sb_tostring = k.d_getmetatable, k.d_getinfo, k.tostring
local rawlen, s_sub = k.rawlen, string.sub

-- Lua's message for a bad argument i of the function the sandbox code called as \`called\`
-- (debug.getinfo's "n" of it; fname where the call gives no name), as luaL_argerror writes it:
-- a method call does not count its self
local function argument_message(i, fname, problem, called)
  local name = called and called.name or fname
  if called and called.namewhat == "method" then
    i = i - 1
    if i == 0 then return "calling '" .. name .. "' on bad self (" .. problem .. ")" end
  end
  return "bad argument #" .. i .. " to '" .. name .. "' (" .. problem .. ")"
end
-- the type Lua's argument errors name: __name of the metatable, where it is a string
local function type_name(v)
  local mt = d_getmetatable(v)
  local name = mt and rawget(mt, "__name")
  if type(name) == "string" then return name end
  return type(v)
end
-- the problem of a value v of the wrong type (absent: no value at all)
local function expected_type(expected, v, absent)
  return expected .. " expected, got " .. (absent and "no value" or type_name(v))
end
-- Lua's error for argument i of fname, raised at level (of the caller of bad_argument), which
-- is the sandbox code's call of the function below it; a function called from C (pcall) is
-- named as Lua would name it from its loaded libraries
local function bad_argument(i, fname, problem, level)
  local called = d_getinfo(level, "nf")
  if called and called.name == nil then
    called.name = k.build_trusted(k.libraries).global_name(called.func) or fname
  end
  error(argument_message(i, fname, problem, called), level + 1)
end

-- next, rawget and rawlen of a view are those of the table it shows. Anything else goes to Lua's
-- own, after a check that raises their error about the first argument from here, where it can
-- name the function (the tail call would make it '?').
-- Lua 5.3's rawlen does not say what it got
local RAWLEN_SAYS_EXPECTED_ONLY = _VERSION == "Lua 5.3"
local function shown(name, expected, n, t)
  -- a library's view maps to the function that builds its table and returns it
  local viewed = views[t]
  if type(viewed) == "function" then return viewed() end
  if viewed ~= nil then return viewed end
  local kind = type(t)
  if kind == "table" or (kind == "string" and expected ~= "table") then return t end
  local problem = expected_type(expected, t, n == 0)
  if name == "rawlen" and RAWLEN_SAYS_EXPECTED_ONLY then problem = expected .. " expected" end
  bad_argument(1, name, problem, 3 + UP)
end

local SETMETATABLE_SAYS_GOT = _VERSION ~= "Lua 5.3"

-- Lua's parser runs in C and is quadratic in some shapes (a chain of 20,000 "or" took 0.9 s to
-- compile, 100 KB): a chunk longer than a piece is handed to it a piece at a time, the CPU clock
-- read before each. Past the CPU limit from \`started\` (the run's clock, else the compile's
-- start) the parser is handed the end of the chunk, what it made is thrown away, and the answer
-- is COMPILE_TOO_LONG.
local LOAD_PIECE, cpu_limit, host_clock = k.LOAD_PIECE, k.cpu_limit, k.host_clock
local function compile_in_pieces(code, name, env, started)
  started = started or host_clock()
  local at, stopped = 1, false
  local f, err = load(function()
    if host_clock() - started > cpu_limit then
      stopped = true
      return nil
    end
    at = at + LOAD_PIECE
    return s_sub(code, at - LOAD_PIECE, at - 1)
  end, name or code, "t", env)
  if stopped then return nil, k.COMPILE_TOO_LONG end
  return f, err
end

return {
  argument_message = argument_message,
  expected_type = expected_type,
  bad_argument = bad_argument,
  compile_in_pieces = compile_in_pieces,
  -- pcall() with no function: the fast lane's pcall entry calls this in its stead
  pcall = function()
    bad_argument(1, "pcall", "value expected", 2 + UP)
  end,
  rawset = function(...)
    local t, key, v = ...
    if views[t] then error("attempt to modify a read-only table", 2 + UP) end
    local n = select("#", ...)
    if type(t) ~= "table" then bad_argument(1, "rawset", expected_type("table", t, n == 0), 2 + UP) end
    if n < 3 then bad_argument(n + 1, "rawset", "value expected", 2 + UP) end
    local meta = decision_envs[t]
    if meta then meta.env = nil end
    return rawset(t, key, v)
  end,
  next = function(...)
    return next(shown("next", "table", select("#", ...), ...), select(2, ...))
  end,
  rawget = function(...)
    local n = select("#", ...)
    local t = shown("rawget", "table", n, ...)
    if n < 2 then bad_argument(2, "rawget", "value expected", 2 + UP) end
    return rawget(t, (select(2, ...)))
  end,
  rawlen = function(...)
    return rawlen(shown("rawlen", "table or string", select("#", ...), ...))
  end,
  setmetatable = function(...)
    local t, mt = ...
    local n = select("#", ...)
    if type(t) ~= "table" then bad_argument(1, "setmetatable", expected_type("table", t, n == 0), 2 + UP) end
    local kind = type(mt)
    if n < 2 or (kind ~= "nil" and kind ~= "table") then
      local problem = "nil or table expected"
      if SETMETATABLE_SAYS_GOT then problem = expected_type("nil or table", mt, n < 2) end
      bad_argument(2, "setmetatable", problem, 2 + UP)
    end
    if kind == "table" and rawget(mt, "__gc") ~= nil then
      error("metatables with __gc are not allowed in the sandbox", 2 + UP)
    end
    local current = d_getmetatable(t)
    if current ~= nil and rawget(current, "__metatable") ~= nil then
      error("cannot change a protected metatable", 2 + UP)
    end
    return setmetatable(t, mt)
  end,
  -- a value a metamethod may show
  tostring = function(...)
    if select("#", ...) == 0 then bad_argument(1, "tostring", "value expected", 2 + UP) end
    return sb_tostring((...), 2 + UP)
  end,
}
`;
