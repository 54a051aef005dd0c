/**
 * The Lua half of the bridge, run once in every new state with the host's C functions (in the order
 * of {@linkcode BOOTSTRAP_CALLBACKS}) as its arguments. It builds the proxy metatable and the
 * trampolines that turn a C function's `false, err` into a Lua error (C functions written in JS must
 * never raise themselves) and the traceback handler. It returns its helpers in the order of
 * {@linkcode BOOTSTRAP_HELPERS}; the host pins each one in the registry and nothing else can reach
 * them. Arguments and results go by position: a table of them cost a host call per name, dozens for
 * every new state. Lua's `js` table is a chunk of its own, {@linkcode JS_TABLE_LUA}, which only a
 * state that exposes it loads: a sandbox never does, and loading the prototypes of its functions
 * cost every sandbox about 10,000 instructions.
 *
 * @module
 */

/** The bootstrap chunk. Works on Lua 5.1 to 5.4 and LuaJIT. */
export const BOOTSTRAP_LUA = `
local c_call, c_index, c_newindex, c_len, c_tostring, c_iter, c_next, c_gc = ...
local error, type, setmetatable, tostring, next, select = error, type, setmetatable, tostring, next, select
local collectgarbage, traceback = collectgarbage, debug.traceback

local function finish(ok, ...)
  if ok then return ... end
  error((...), 0)
end

-- Each proxy's id, which the C functions take in the proxy's place (nil for any other value): the
-- host reads a number in one call, where looking a userdata up took it eight.
local ids = setmetatable({}, { __mode = "k" })

local function iterate(u, mode)
  local ok, it = c_iter(ids[u], mode)
  if not ok then error(it, 0) end
  -- the closure holds the iterator's proxy, not its id, which would let it be collected mid-loop
  return function() return finish(c_next(ids[it])) end
end

local mt = {
  __index = function(u, k)
    local ok, v = c_index(ids[u], k)
    if ok then return v end
    error(v, 0)
  end,
  __newindex = function(u, k, v)
    local ok, e = c_newindex(ids[u], k, v)
    if not ok then error(e, 0) end
  end,
  __call = function(u, ...) return finish(c_call(ids[u], ...)) end,
  __len = function(u)
    local ok, v = c_len(ids[u])
    if ok then return v end
    error(v, 0)
  end,
  __tostring = function(u)
    local ok, v = c_tostring(ids[u])
    if ok then return v end
    error(v, 0)
  end,
  __pairs = function(u) return iterate(u, "pairs") end,
  __gc = c_gc,
  __metatable = false,
  __name = "js.object",
}

return
  function(e)
    if type(e) == "string" then return traceback(e, 2) end
    return e
  end,
  ids,
  setmetatable({}, { __mode = "v" }),
  mt,
  next,
  function(t, k) return t[k] end,
  function(t, k, v) t[k] = v end,
  function(v) return tostring(v) end,
  iterate,
  function() collectgarbage("collect") end,
  -- a state may open its libraries one by one, coroutine left out
  coroutine and coroutine.status,
  function(co, message) return traceback(co, message) end
`;

/** The host's C functions the bootstrap takes, in the order it takes them. */
export const BOOTSTRAP_CALLBACKS = [
  "call",
  "index",
  "newindex",
  "len",
  "tostring",
  "iter",
  "next",
  "gc",
] as const;

/** The helpers the bootstrap returns, in order. */
export const BOOTSTRAP_HELPERS = [
  "traceback",
  "proxy_ids",
  "id_proxies",
  "mt",
  "next",
  "get",
  "set",
  "tostring",
  "iterate",
  "collect",
  "costatus",
  "cotraceback",
] as const;

/** The name of one of the bootstrap's helpers. */
export type BootstrapHelper = typeof BOOTSTRAP_HELPERS[number];

/**
 * The maker of the steppers a `LuaTable`'s entries are read with, called with the bootstrap's `next`
 * (the global one may be replaced by then): for a table, a function giving its next key and value
 * at each call, the last key its upvalue. Loaded by a state's first table iteration
 * (`LuaCore.tableStepper`): a sandbox never loads it.
 */
export const ENTRIES_LUA = `
local next = ...
return function(t)
  local k
  return function()
    local v
    k, v = next(t, k)
    return k, v
  end
end
`;

/**
 * Lua's `js` table, called with the bootstrap's `iterate`, the host's `askind` C function and the
 * bootstrap's table of proxy ids; returns the table. Works on Lua 5.1 to 5.4 and LuaJIT.
 */
export const JS_TABLE_LUA = `
local iterate, c_askind, ids = ...
local error = error

local function as_kind(obj, kind)
  local ok, v = c_askind(ids[obj], kind)
  if ok then return v end
  error(v, 0)
end

local js = {}
function js.iter(obj) return iterate(obj, "iter") end
function js.iterex(obj) return iterate(obj, "iterex") end
function js.enumerate(obj) return iterate(obj, "enumerate") end
function js.as_attrgetter(obj) return as_kind(obj, "attr") end
function js.as_itemgetter(obj) return as_kind(obj, "item") end
function js.as_function(obj)
  return function(...) return obj(...) end
end
return js
`;
