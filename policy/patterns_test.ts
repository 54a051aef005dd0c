/**
 * Tests of `PATTERNS_LUA`: a differential fuzz against the C functions (Lua 5.4 and 5.3), the
 * budget stopping catastrophic patterns, and the dispatch of cheap calls to C.
 *
 * @module
 */

import assert from "node:assert/strict";
import { LuaRuntime, type LuaTable } from "../mod.ts";
import { PATTERNS_LUA } from "./patterns.ts";

/** The differential fuzz, run inside Lua (see its header). */
const FUZZ_LUA = String.raw`
-- Differential fuzz of luagate.patterns against the C functions of the running Lua.
-- Arguments: the chunk's source, number of cases, seed, mode ("short" or "long").
-- Returns: cases run, mismatches (strings), C dispatches, Lua runs (of the dispatching copy).
local API_SRC, NCASES, SEED, MODE = ...
local C = { find = string.find, match = string.match, gmatch = string.gmatch, gsub = string.gsub }
local function charge() end
local forced = load(API_SRC, "=luagate.patterns", "t")({ charge = charge, c = C, force_lua = true })
local stats = { c = 0, lua = 0 }
-- the longest run as the fast lane's run entry finds it, from the class's bitmap: the route (C's
-- find of the class's runs) must agree
local function scan(route)
  return function(s, bits, runpat)
    local longest, run = 0, 0
    for i = 1, #s do
      local c = s:byte(i)
      run = (bits:byte((c >> 3) + 1) >> (c & 7)) & 1 == 1 and run + 1 or 0
      if run > longest then longest = run end
    end
    local found = route(s, bits, runpat)
    if found ~= longest then error(("run of %s in %q: %d by the bitmap, %d by find"):format(runpat, s, longest, found)) end
    return longest
  end
end
local normal = load(API_SRC, "=luagate.patterns", "t")({ charge = charge, c = C, stats = stats, run_entry = scan })
local long = MODE == "long"

local seed = SEED
local function rnd(n) -- 0 .. n-1, a fixed LCG (math.random differs between versions)
  seed = (seed * 1103515245 + 12345) % 2147483648
  return (seed // 65536) % n
end
local function pick(t) return t[rnd(#t) + 1] end

local ALPHA = { "a", "a", "a", "b", "b", "(", ")", "[", "]", "%", ".", "-", " ", "\0", "x", "1", "2",
  "_", "A", "Z", "\233", "\t", "^", "$", "*" }
local CHUNKS = { "ab ", "(a)", "aa", "x1_", "[b]", "a-b", " ", "((", "))", "\0a", "Z." }
local function subject()
  local t = {}
  if long then
    for i = 1, 20 + rnd(120) do t[i] = pick(CHUNKS) end
  else
    for i = 1, rnd(4) == 0 and rnd(30) or rnd(10) do t[i] = pick(ALPHA) end
  end
  return table.concat(t)
end

local LIT = { "a", "b", "x", "1", " ", "_", "A", "\0", "\233", "%(", "%)", "%[", "%]", "%%", "%.", "%-",
  "%^", "%$", "%*", "]", "^", "-", "*", "+", "?" }
local CLS = { "%a", "%d", "%s", "%w", "%x", "%p", "%l", "%u", "%c", "%g", "%z", "%A", "%D", "%S", "%W", "%X",
  "%P", "%L", "%U", "%C", "%G", "%Z", "%q", "%Q" }
local function set()
  local t = { "[" }
  if rnd(3) == 0 then t[#t + 1] = "^" end
  if rnd(6) == 0 then t[#t + 1] = "]" end
  for _ = 1, rnd(4) + 1 do
    local r = rnd(6)
    if r == 0 then
      t[#t + 1] = pick({ "a-c", "0-9", "A-Z", "b-a", "(-)", "a-%", "%a-z" })
    elseif r == 1 then
      t[#t + 1] = pick(CLS)
    elseif r == 2 then
      t[#t + 1] = pick({ "-", "^", "%]", "%-", "%%", "(", ".", "\0" })
    else
      t[#t + 1] = pick({ "a", "b", "x", " ", "1", "_", "\233" })
    end
  end
  if rnd(30) ~= 0 then t[#t + 1] = "]" end
  return table.concat(t)
end
local function single()
  local r = rnd(10)
  if r < 4 then return pick(LIT) elseif r < 5 then return "." elseif r < 8 then return pick(CLS) end
  return set()
end
local function item(depth)
  local r = rnd(24)
  if r < 11 then
    local s = single()
    if rnd(2) == 0 then s = s .. pick({ "*", "+", "-", "?" }) end
    return s
  elseif r < 13 and depth < 3 then
    local inner = {}
    for _ = 1, rnd(3) do inner[#inner + 1] = item(depth + 1) end
    return "(" .. table.concat(inner) .. ")"
  elseif r < 14 then
    return "()"
  elseif r < 15 then
    return pick({ "%b()", "%b[]", "%bab", "%b))", "%bxy" })
  elseif r < 16 then
    return pick({ "%f[%w]", "%f[%W]", "%f[^a]", "%f[a-b]", "%f[%z]", "%f[%s]" })
  elseif r < 17 then
    return pick({ "%1", "%2", "%1", "%0", "%3" })
  elseif r < 18 and rnd(4) == 0 then
    return pick({ "%", "[a", "%b", "%bx", "%f", "%fa", "(", ")", "[%", "[]", "[^]" })
  elseif r < 19 then
    return "$"
  end
  return single()
end
local function pattern()
  if not long and rnd(60) == 0 then -- limits of the matcher
    local r = rnd(6)
    if r == 0 then return ("a?"):rep(150 + rnd(100)) end
    if r == 1 then return ("(a)"):rep(28 + rnd(8)) end
    if r == 2 then return ("("):rep(30 + rnd(5)) .. ("a"):rep(rnd(3)) end
    if r == 3 then return ("()"):rep(30 + rnd(5)) end
    if r == 4 then return ("a*"):rep(2 + rnd(3)) .. "b" end
    return ("%w-"):rep(190 + rnd(20))
  end
  while true do
    local t = {}
    if rnd(4) == 0 then t[1] = "^" end
    for _ = 1, rnd(5) + (rnd(6) == 0 and 4 or 0) do t[#t + 1] = item(0) end
    if rnd(5) == 0 then t[#t + 1] = "$" end
    if rnd(20) == 0 then t[#t + 1] = "%" end
    local p = table.concat(t)
    -- long subjects: at most one backtracking quantifier, so that C itself stays fast
    if not long or select(2, p:gsub("[*+-]", "")) <= 1 then return p end
  end
end

local function ser(v)
  if type(v) == "string" then return string.format("%q", v) end
  if math.type(v) == "float" then return "F" .. tostring(v) end
  return tostring(v)
end
local function serpack(t)
  local o = {}
  for i = 1, t.n do o[i] = ser(t[i]) end
  return table.concat(o, ",")
end
-- the function name in "bad argument" messages is the call site's for C, 'find' etc. for Lua; a bad
-- replacement value is C's own error under the matcher too, placed at the line of whoever called C
-- (the sandbox's catch points write it at the line of the call, which stdlib_test checks)
local function errstr(e)
  local shown = tostring(e):gsub("to '[^']*'", "to '?'"):gsub("^[^:]*:%d+: (invalid replacement value)", "%1")
  return "E:" .. shown
end

local REPLS = { "", "x", "%0", "%1", "<%1>", "%2-%1", "%%", "%", "%x", "a%0b%0", "%3", "%9" }
local REPLT = { a = "A", b = false, ["1"] = 2, x = {}, [""] = "E" }
local function replf(a, b, ...)
  if a == "b" then return nil end
  if a == "x" then return {} end
  if a == "1" then return 1.5 end
  if a == "a" then return false end
  return "<" .. tostring(a) .. "|" .. tostring(b) .. "|" .. select("#", ...) .. ">"
end

-- errors carry the position of 'via' (the same line for C and Lua)
local function via(f, ...) local r = table.pack(f(...)) return r end
local function run(f, ...)
  local r = table.pack(pcall(via, f, ...))
  if not r[1] then return errstr(r[2]) end
  return serpack(r[2])
end
local function rungm(gm, s, p, init)
  local ok, it = pcall(via, gm, s, p, init)
  if not ok then return errstr(it) end
  it = it[1]
  local out = {}
  for _ = 1, 40 do
    local r = table.pack(pcall(via, it))
    if not r[1] then
      out[#out + 1] = errstr(r[2])
      break
    end
    if r[2].n == 0 or r[2][1] == nil then
      out[#out + 1] = "n" .. r[2].n
      break
    end
    out[#out + 1] = serpack(r[2])
  end
  return table.concat(out, ";")
end

-- fixed cases first (optimizations of the Lua matcher that need care)
local FIXED = {
  { "123x3", "(%d*)x%1" }, { "123x3 45x5", "(%d+)x%1" }, { "aab", "(a*)%1b" },
  { ("x"):rep(300) .. " key=value", "(%w+)=(%w+)" }, { "ab1x  12ax", "%d*x" },
  { "  a  b ", "%s*$" }, { "abc", "$" }, { "a,b,,c", "[^,]*" }, { "((a)(b))", "%b()" },
}
local BAD = { 12, 1.5, 2.0, "2", "x", {}, true, -0.0, 1e300, "0x2" }
local mismatches = {}
for case = 1, NCASES do
  local s, p = subject(), pattern()
  if FIXED[case] then s, p = FIXED[case][1], FIXED[case][2] end
  if not long and rnd(60) == 0 and select(2, p:gsub("[*+?-]", "")) <= 1 then s = ("a"):rep(150 + rnd(200)) end
  local init = rnd(3) == 0 and (rnd(#s + 7) - (#s + 3)) or nil
  if not long and rnd(40) == 0 then
    local w = rnd(4)
    if w == 0 then s = pick(BAD) elseif w == 1 then p = pick(BAD) else init = pick(BAD) end
  end
  local op = rnd(4)
  local res, desc = {}, nil
  if op == 0 then
    local plain = rnd(6) == 0 or nil
    desc = string.format("find(%s, %s, %s, %s)", ser(s), ser(p), ser(init), tostring(plain))
    for i, f in ipairs({ C.find, forced.find, normal.find }) do res[i] = run(f, s, p, init, plain) end
  elseif op == 1 then
    desc = string.format("match(%s, %s, %s)", ser(s), ser(p), ser(init))
    for i, f in ipairs({ C.match, forced.match, normal.match }) do res[i] = run(f, s, p, init) end
  elseif op == 2 then
    desc = string.format("gmatch(%s, %s, %s)", ser(s), ser(p), ser(init))
    for i, f in ipairs({ C.gmatch, forced.gmatch, normal.gmatch }) do res[i] = rungm(f, s, p, init) end
  else
    local r = rnd(3)
    local repl = r == 0 and REPLT or r == 1 and replf or pick(REPLS)
    local maxn = rnd(4) == 0 and rnd(4) or nil
    if rnd(40) == 0 then repl = ({ 7, 2.5, true, nil })[rnd(4) + 1] end
    if rnd(40) == 0 then maxn = ({ "1", 1.5, 2.0, {}, "y" })[rnd(5) + 1] end
    desc = string.format("gsub(%s, %s, %s, %s)", ser(s), ser(p),
      type(repl) == "string" and ser(repl) or type(repl), ser(maxn))
    for i, f in ipairs({ C.gsub, forced.gsub, normal.gsub }) do res[i] = run(f, s, p, repl, maxn) end
  end
  if res[1] ~= res[2] or res[1] ~= res[3] then
    mismatches[#mismatches + 1] = desc .. "\n     C: " .. res[1] .. "\n   Lua: " .. res[2] .. "\n  disp: " .. res[3]
    if #mismatches >= 20 then break end
  end
end
return NCASES, mismatches, stats.c, stats.lua
`;

/**
 * Test harness: `load(PATTERNS_LUA)` with a charge function that counts and raises `BUDGET` (a
 * table, so identity can be checked) past `budget` units. Defines globals `api` (dispatching),
 * `forced` (Lua only), `few16` (dispatching, charges under 16 units skipped), `stats`, `BUDGET`,
 * `reset(budget)` and `used()`.
 */
const SETUP_LUA = String.raw`
local src = ...
local C = { find = string.find, match = string.match, gmatch = string.gmatch, gsub = string.gsub }
local used, budget = 0, math.huge
BUDGET = setmetatable({}, { __tostring = function() return "budget exhausted" end })
local function charge(n)
  assert(math.type(n) == "integer" and n >= 0, "charge takes a natural number")
  used = used + n
  if used > budget then error(BUDGET) end
end
function reset(b) used, budget = 0, b or math.huge end
function used_units() return used end
stats = { c = 0, lua = 0 }
api = load(src, "=luagate.patterns", "t")({ charge = charge, c = C, stats = stats })
forced_stats = { c = 0, lua = 0 }
forced = load(src, "=luagate.patterns", "t")({ charge = charge, c = C, stats = forced_stats, force_lua = true })
few16 = load(src, "=luagate.patterns", "t")({ charge = charge, c = C, stats = stats, few = 16 })
`;

const probe = new LuaRuntime();
const VERSION = probe.luaVersion;
probe.close();
const SUPPORTED = VERSION === "5.3" || VERSION === "5.4";
/** The Lua libraries to fuzz in a Worker (one library per process/Worker): the one not in use. */
const WORKER_LIBRARIES = VERSION === "5.4"
  ? ["liblua5.3.so.0"]
  : VERSION === "5.3"
  ? ["liblua5.4.so.0"]
  : ["liblua5.4.so.0", "liblua5.3.so.0"];

function setup(): LuaRuntime {
  const lua = new LuaRuntime();
  lua.execute(SETUP_LUA, PATTERNS_LUA);
  return lua;
}

interface FuzzResult {
  version: string;
  cases: number;
  mismatches: string[];
  toC: number;
  inLua: number;
}

function fuzz(lua: LuaRuntime, cases: number, seed: number, mode: "short" | "long"): FuzzResult {
  const [n, mismatches, toC, inLua] = lua.execute(
    `local fz, src, n, seed, mode = ... return load(fz, "=fuzz", "t")(src, n, seed, mode)`,
    FUZZ_LUA,
    PATTERNS_LUA,
    cases,
    seed,
    mode,
  ) as [number, LuaTable, number, number];
  return {
    version: String(lua.eval("_VERSION")),
    cases: n,
    mismatches: [...mismatches.values()].map(String),
    toC,
    inLua,
  };
}

function assertNoMismatch(result: FuzzResult): void {
  assert.deepEqual(
    result.mismatches,
    [],
    `${result.version}: ${result.mismatches.length} mismatches\n${result.mismatches.join("\n")}`,
  );
}

Deno.test({
  name: "patterns: differential fuzz against the C functions (short subjects, edge patterns)",
  ignore: !SUPPORTED,
  fn() {
    using lua = new LuaRuntime();
    const result = fuzz(lua, 8000, 20240611, "short");
    assert.equal(result.cases, 8000);
    assertNoMismatch(result);
    // the dispatching copy used both paths
    assert.ok(result.toC > 1000 && result.inLua > 500, JSON.stringify(result));
  },
});

Deno.test({
  name: "patterns: differential fuzz against the C functions (long subjects)",
  ignore: !SUPPORTED,
  fn() {
    using lua = new LuaRuntime();
    const result = fuzz(lua, 1500, 77, "long");
    assert.equal(result.cases, 1500);
    assertNoMismatch(result);
    assert.ok(result.inLua > 100, JSON.stringify(result));
  },
});

// A Worker loads the other Lua library (luagate opens one library per process or Worker).
// (mod.ts comes by message: an import the type checker cannot see is not checked again)
const WORKER_JS = `
self.onmessage = async (event) => {
  const { mod, library, fuzz, src, runs } = event.data;
  const { LuaRuntime } = await import(mod);
  let lua;
  try {
    lua = new LuaRuntime({ library });
  } catch (error) {
    self.postMessage({ unavailable: String(error) });
    return;
  }
  try {
    const results = runs.map(([cases, seed, mode]) => {
      const [n, mismatches, toC, inLua] = lua.execute(
        "local fz, src, n, seed, mode = ... return load(fz, '=fuzz', 't')(src, n, seed, mode)",
        fuzz, src, cases, seed, mode,
      );
      return { version: String(lua.eval("_VERSION")), cases: n, mismatches: [...mismatches.values()].map(String), toC, inLua };
    });
    self.postMessage({ results });
  } catch (error) {
    self.postMessage({ error: String(error && error.stack || error) });
  } finally {
    lua.close();
  }
};
`;

for (const library of WORKER_LIBRARIES) {
  Deno.test(`patterns: differential fuzz against the C functions of ${library} (in a Worker)`, async () => {
    const url = URL.createObjectURL(new Blob([WORKER_JS], { type: "application/javascript" }));
    const worker = new Worker(url, { type: "module" });
    try {
      const reply = await new Promise<
        { unavailable?: string; error?: string; results?: FuzzResult[] }
      >((resolve, reject) => {
        worker.onmessage = (event) => resolve(event.data);
        worker.onerror = (event) => {
          event.preventDefault();
          reject(new Error(event.message));
        };
        worker.postMessage({
          mod: new URL("../mod.ts", import.meta.url).href,
          library,
          fuzz: FUZZ_LUA,
          src: PATTERNS_LUA,
          runs: [[8000, 424242, "short"], [1500, 99, "long"]],
        });
      });
      if (reply.unavailable !== undefined) {
        console.warn(`skipped: ${library} is not available (${reply.unavailable})`);
        return;
      }
      assert.equal(reply.error, undefined, reply.error);
      const results = reply.results!;
      assert.equal(results.length, 2);
      for (const result of results) assertNoMismatch(result);
      assert.equal(results[0].cases, 8000);
      assert.equal(results[1].cases, 1500);
    } finally {
      worker.terminate();
      URL.revokeObjectURL(url);
    }
  });
}

/** Runs `call` (Lua source of a function body using `api`) under a budget; the wall time must stay low. */
function underBudget(
  lua: LuaRuntime,
  budget: number,
  call: string,
): { ok: boolean; budgetError: boolean; used: number; ms: number } {
  const started = performance.now();
  const [ok, budgetError, used] = lua.execute(
    `local budget, body = ...
     local f = assert(load(body, "=call", "t"))
     reset(budget)
     local ok, err = pcall(f)
     return ok, err == BUDGET, used_units()`,
    budget,
    call,
  ) as [boolean, boolean, number];
  return { ok, budgetError, used, ms: performance.now() - started };
}

Deno.test({
  name: "patterns: catastrophic patterns are stopped by the budget",
  ignore: !SUPPORTED,
  fn() {
    using lua = setup();
    const calls = [
      `api.find(("a"):rep(40), ("a*"):rep(20) .. "b")`,
      `api.match(("a"):rep(40), ("a*"):rep(20) .. "b")`,
      `api.gsub(("a"):rep(40), ("a*"):rep(20) .. "b", "x")`,
      `api.gsub(("a"):rep(40), ("a*"):rep(20) .. "b", function() end)`,
      `for x in api.gmatch(("a"):rep(40), ("a*"):rep(20) .. "b") do end`,
      `api.match(("a"):rep(40), "^" .. ("(a-)"):rep(15) .. "b")`,
      `api.find(("a"):rep(5000), ".-.-.-b")`,
      `api.find(("a"):rep(20000), "(a*)%1b")`,
      `api.find(("("):rep(20000), ("%b()"):rep(3) .. "x")`,
      // plain search: lmemfind would compare ~1000 bytes at each of 1e6 positions
      `api.find(("a"):rep(1e6), ("a"):rep(1023) .. "b", 1, true)`,
      `api.find(("a"):rep(1e6), ("a"):rep(1023) .. "b")`,
      // output blow-up
      `api.gsub(("a"):rep(5000), "", ("x"):rep(1000))`,
    ];
    for (const call of calls) {
      const r = underBudget(lua, 1e6, call);
      assert.equal(r.ok, false, `${call}: finished within the budget (${r.used} units)`);
      assert.ok(r.budgetError, `${call}: the budget error did not come through unchanged`);
      assert.ok(r.used > 1e6 && r.used < 1.1e6, `${call}: charged ${r.used}`);
      assert.ok(r.ms < 2000, `${call}: took ${r.ms} ms`); // hang guard
    }
  },
});

Deno.test({
  name: "patterns: cheap calls are handed to C and charged what they search, plus #p",
  ignore: !SUPPORTED,
  fn() {
    using lua = setup();
    const [start, end, units, toC, inLua] = lua.execute(`
      reset(); stats.c, stats.lua = 0, 0
      local a, b = api.find("hello world", "o w")
      return a, b, used_units(), stats.c, stats.lua
    `) as number[];
    assert.deepEqual([start, end], [5, 7]);
    // up to the end of the match
    assert.equal(units, 7 + 3);
    assert.deepEqual([toC, inLua], [1, 0]);

    const [k, v, units2, toC2] = lua.execute(`
      reset(); stats.c, stats.lua = 0, 0
      local k, v = api.match("k=v", "(%w+)=(%w+)")
      return k, v, used_units(), stats.c
    `) as [string, string, number, number];
    assert.deepEqual([k, v, units2, toC2], ["k", "v", 3 + 11, 1]);

    // the same pattern on a long subject runs in Lua and charges the steps it takes
    const [k3, units3, toC3, inLua3] = lua.execute(`
      reset(); stats.c, stats.lua = 0, 0
      local k = api.match(("x"):rep(10000) .. " key=value", "(%w+)=(%w+)")
      return k, used_units(), stats.c, stats.lua
    `) as [string, number, number, number];
    assert.deepEqual([k3, toC3, inLua3], ["key", 0, 1]);
    assert.ok(units3 > 10000 && units3 < 200000, `charged ${units3}`);
  },
});

Deno.test({
  name: "patterns: a search too costly for C as a whole tries C once, anchored where a match can start",
  ignore: !SUPPORTED,
  fn() {
    using lua = setup();
    // the whole search of 13 bytes may cost C a quadratic bound; one anchored attempt is linear
    const [k, v, units, toC, inLua] = lua.execute(`
      api.match("key12=value12", "(%w+)=(%w+)")
      reset(); stats.c, stats.lua = 0, 0
      local k, v = api.match("key12=value12", "(%w+)=(%w+)")
      return k, v, used_units(), stats.c, stats.lua
    `) as [string, string, number, number, number];
    assert.deepEqual([k, v, units, toC, inLua], ["key12", "value12", 13 + 11, 1, 0]);

    // find's positions and position captures, from where the prefilter points (' ' cannot start)
    const found = lua.execute(`
      return api.find(("  "):rep(20) .. "id=42;", "()(%a+)=(%d+)()")
    `) as unknown[];
    assert.deepEqual(found, [41, 45, 41, "id", "42", 46]);

    // once learnt, an attempt starts where the pattern's literal prefix is, not at the first 'l'
    const [latency, toC4, inLua4, units4] = lua.execute(`
      local line = "12:34:56 [WARN] action=login latency=3ms"
      api.match(line, "latency=(%d+)ms")
      reset(); stats.c, stats.lua = 0, 0
      local v = api.match(line, "latency=(%d+)ms")
      return v, stats.c, stats.lua, used_units()
    `) as [string, number, number, number];
    // the 29 chars skipped to "latency=", then the rest from there (11) and the pattern (15)
    assert.deepEqual([latency, toC4, inLua4, units4], ["3", 1, 0, 29 + 11 + 15]);

    // a literal prefix longer than the locator searches for: it finds the first 8 chars, and an
    // attempt there that fails leaves the search to go on, with C's answer
    const longPrefix = lua.execute(`
      local s, p = ("ab"):rep(300) .. "1", ("ab"):rep(10) .. "(%d)"
      local out = {}
      for i = 1, 3 do out[i] = tostring(api.match(s, p)) .. "/" .. tostring(api.find(s, p)) end
      return table.concat(out, " ") .. " " .. tostring(string.match(s, p)) .. "/" .. tostring(string.find(s, p))
    `) as string;
    assert.equal(longPrefix, "1/581 1/581 1/581 1/581");

    // a failed attempt leaves the search to Lua, which finds the match further on
    const [later, toC2, inLua2] = lua.execute(`
      reset(); stats.c, stats.lua = 0, 0
      local k = api.match("token " .. ("wordswordswords "):rep(10) .. "key=value", "(%w+)=(%w+)")
      return k, stats.c, stats.lua
    `) as [string, number, number];
    assert.deepEqual([later, toC2, inLua2], ["key", 1, 1]);

    // gmatch over a subject whose runs (of %w) are short, too long for C's whole scan: each step is
    // C's search of the rest
    const [pairs, searches, inLua3] = lua.execute(`
      local n = 0
      reset(); stats.c, stats.lua = 0, 0
      for key, value in api.gmatch(("k=v junk "):rep(40), "(%w+)=(%w+)") do
        if key == "k" and value == "v" then n = n + 1 end
      end
      return n, stats.c, stats.lua
    `) as number[];
    assert.deepEqual([pairs, searches, inLua3], [40, 41, 0]);

    // with runs too long for that (70 chars of j): one attempt per step. The first delivers C's match;
    // each next one fails on the run of j and Lua finds the match after it (3 steps); after the last,
    // the rest past its run is C's.
    const [pairs2, attempts, inLua6] = lua.execute(`
      local n = 0
      reset(); stats.c, stats.lua = 0, 0
      for key in api.gmatch(("k=v " .. ("j"):rep(70) .. " "):rep(4), "(%w+)=(%w+)") do n = n + 1 end
      return n, stats.c, stats.lua
    `) as number[];
    assert.deepEqual([pairs2, attempts, inLua6], [4, 6, 3]);

    // on a long subject an attempt is cheap only near its end: the charge stays linear
    const [longPairs, longUnits] = lua.execute(`
      local n = 0
      reset()
      for key in api.gmatch(("k=v junk "):rep(200), "(%w+)=(%w+)") do n = n + 1 end
      return n, used_units()
    `) as number[];
    assert.equal(longPairs, 200);
    assert.ok(longUnits < 20 * 1800, `charged ${longUnits} for 1800 bytes`);
  },
});

Deno.test({
  name: "patterns: a quantifier before what always succeeds ('.-' to the end) takes its first count",
  ignore: !SUPPORTED,
  fn() {
    using lua = setup();
    // the same answers as C's, in Lua (forced) and dispatching
    const differences = lua.execute(String.raw`
      local out = {}
      local patterns = { "^%s*(.-)%s*$", "^(.-)%s*$", "^%s*(.*)$", "%s*(.-)%s*$", "^(%a*)(.-)$", "^x*(.-)y*$",
        "^(%s*)(.*)(%s*)$", "^%s+(.-)$", "^(.-)(%d*)$", "()%s*(.-)()%s*$" }
      local subjects = { "", " ", "  Item 12 value  ", "x" .. (" "):rep(40) .. "y", "   ", "abc", " a b ",
        "12ab34", "xxyy", ("a "):rep(30) }
      local function show(...)
        local t = table.pack(...)
        for i = 1, t.n do t[i] = tostring(t[i]) end
        return table.concat(t, ",", 1, t.n)
      end
      for _, p in ipairs(patterns) do
        for _, s in ipairs(subjects) do
          local want = show(string.find(s, p)) .. "|" .. show(string.match(s, p))
          for name, f in pairs({ api = api, forced = forced }) do
            local got = show(f.find(s, p)) .. "|" .. show(f.match(s, p))
            if got ~= want then out[#out + 1] = name .. " " .. p .. " on '" .. s .. "': " .. got .. " vs " .. want end
          end
        end
      end
      return table.concat(out, "\n")
    `);
    assert.equal(differences, "");
    // trim of a short string: C's whole search is proved cheap (its first %s* cannot backtrack)
    const [trimmed, toC, inLua] = lua.execute(`
      api.match("  Item 12 value  ", "^%s*(.-)%s*$")
      reset(); stats.c, stats.lua = 0, 0
      local r = api.match("  Item 12 value  ", "^%s*(.-)%s*$")
      return r, stats.c, stats.lua
    `) as [string, number, number];
    assert.deepEqual([trimmed, toC, inLua], ["Item 12 value", 1, 0]);
  },
});

Deno.test({
  name:
    "patterns: '.-' before a char after which the match cannot fail is bounded by the runs of the other chars",
  ignore: !SUPPORTED,
  fn() {
    using lua = setup();
    const scans = lua.execute(`
      local html = "<div class='a'><span>item 7</span><b>bold</b></div>"
      local out = {}
      local function scan(s, p)
        api.gmatch(s, p)
        stats.c, stats.lua = 0, 0
        local tags = {}
        for t in api.gmatch(s, p) do tags[#tags + 1] = t end
        out[#out + 1] = table.concat(tags, ",") .. " " .. stats.c .. " " .. stats.lua
      end
      scan(html, "<(.-)>")
      -- the continuation after '>' may fail: '.-' goes on past a '>' (twice the html: too long for
      -- that bound's whole scan)
      scan(html .. html, "<(.-)>[<%s]")
      -- a run of 300 chars other than '>'
      scan("<" .. ("a"):rep(300) .. ">" .. html, "<(.-)>")
      return table.unpack(out)
    `) as string[];
    // 51 bytes: more than a whole scan's bound allows without the runs, where each tag was a step
    // of its own; the runs of chars other than '>' are at most 14 long: one scan in C
    assert.deepEqual(scans, [
      "div class='a',span,/span,b,/b,/div 1 0",
      "div class='a',/span,/b,div class='a',/span,/b 7 0",
      `${"a".repeat(300)},div class='a',span,/span,b,/b,/div 8 0`,
    ]);
  },
});

Deno.test({
  name:
    "patterns: a repetition of a class counts at most its longest run; '.-' stops at its char through runs apart from it",
  ignore: !SUPPORTED,
  fn() {
    using lua = setup();
    const rows = lua.execute(String.raw`
      local function run(f, ...)
        f(...)
        reset(); stats.c, stats.lua = 0, 0
        local r = table.pack(f(...))
        return table.concat({ tostring(r[1]), tostring(r[2]), stats.c, stats.lua }, " "), used_units()
      end
      local out = {}
      -- words of 7 letters: each start tries at most 8 counts of '%a*'; one run of 96 letters: Lua's
      out[1] = run(api.find, ("aaaaaaa "):rep(12) .. "a=", "(%a*)(%a)=")
      out[2] = run(api.find, ("a"):rep(96) .. " a=", "(%a*)(%a)=")
      -- '%s*' between '.-' and ',' takes no ',': the '.-' stops at the next ',', each of its visits
      -- scanning a run of spaces; the attempt where a match starts is C's, by the subject's runs, and
      -- so is gmatch's whole scan, by the runs of each class (spaces: 2, other chars: 4)
      local csv = "a , b,c ,  d , e12,"
      out[3] = run(api.find, csv, "%s*(.-)%s*,")
      local fields = {}
      reset(); stats.c, stats.lua = 0, 0
      for f in api.gmatch(csv, "%s*(.-)%s*,") do fields[#fields + 1] = f end
      out[4] = table.concat(fields, "|") .. " " .. stats.c .. " " .. stats.lua
      -- a frontier before the char may fail there: the '.-' goes on past it, and the search (quadratic
      -- in the subject) is Lua's, charged as such; without the frontier it stops at each 'x'
      local subject = ("ax"):rep(270) .. "."
      local frontier, units = run(api.find, subject, "(.-)%f[%a]x")
      out[5] = frontier .. (units > 100000 and " charged" or (" charged only " .. units))
      out[6] = run(api.find, subject, "(.-)x")
      return out
    `) as LuaTable;
    assert.deepEqual([...rows.values()], [
      "97 98 1 0",
      "98 99 1 1",
      "1 3 1 0",
      "a|b|c|d|e12 1 0",
      "nil nil 1 1 charged",
      "1 2 1 0",
    ]);
  },
});

Deno.test({
  name: "patterns: a search whose bound is quadratic in its runs goes to C when the subject's runs are short",
  ignore: !SUPPORTED,
  fn() {
    using lua = setup();
    const [base, toC, inLua, units] = lua.execute(`
      local path = "/var/data/reports/2024/archive/november/report_123456.final.csv"
      api.match(path, "([^/]+)$")
      reset(); stats.c, stats.lua = 0, 0
      local base = api.match(path, "([^/]+)$")
      return base, stats.c, stats.lua, used_units()
    `) as [string, number, number, number];
    // the runs come first: C searches the whole subject, without an attempt where a match can start
    assert.deepEqual([base, toC, inLua], ["report_123456.final.csv", 1, 0]);
    // the scan for the longest run is charged what its searches read (each from where the last run
    // ended to the end of the next), the search as a match (the subject and the pattern)
    assert.equal(units, (4 + 4 + 7 + 4 + 7 + 8 + 23) + 63 + 8);

    // the steps a call takes before it hands the rest to C are that call's: none is left over for a
    // later call (here one the Lua matcher runs) to be charged
    const [alone, after] = lua.execute(`
      local function lua_run()
        reset()
        api.match(("x"):rep(2000) .. "/", "([^/]+)$")
        return used_units()
      end
      lua_run() -- the first works out the cheap lengths for that subject's runs
      local alone = lua_run()
      for i = 1, 100 do api.match("/var/data/reports/report_123456.final.csv", "([^/]+)$") end
      return alone, lua_run()
    `) as number[];
    assert.equal(after, alone);

    // a long run at the subject's start counts too: the search after the failed attempt (and the
    // skip of that run) is Lua's
    const [first, toC5, inLua5] = lua.execute(`
      local path = ("a"):rep(40) .. ("/b"):rep(30)
      reset(); stats.c, stats.lua = 0, 0
      local base = api.match(path, "([^/]+)$")
      return base, stats.c, stats.lua
    `) as [string, number, number];
    assert.deepEqual([first, toC5, inLua5], ["b", 1, 1]);

    // a run longer than the bound assumes: the search is Lua's, with the same answer as C's
    const [long, toC2, inLua2] = lua.execute(`
      local path = "/var/" .. ("x"):rep(40) .. "/report.csv"
      reset(); stats.c, stats.lua = 0, 0
      local base = api.match(path, "([^/]+)$")
      return base == string.match(path, "([^/]+)$"), stats.c, stats.lua
    `) as [boolean, number, number];
    assert.deepEqual([long, toC2, inLua2], [true, 1, 1]);

    // trim of a long text of short runs of spaces, and gsub and gmatch over such a text
    const answers = lua.execute(`
      local text = ("  Lorem ipsum dolor sit amet, consectetur adipiscing elit 7.  "):rep(2)
      local function same(a, b) return a == b and "same" or (tostring(a) .. " ~= " .. tostring(b)) end
      reset(); stats.c, stats.lua = 0, 0
      local t = api.match(text, "^%s*(.-)%s*$")
      local trim_c, trim_lua = stats.c, stats.lua
      local g = api.gsub(text, "%s+(%a)", "_%1")
      local words = {}
      for w in api.gmatch(text, "(%a+)%s*") do words[#words + 1] = w end
      local want = {}
      for w in string.gmatch(text, "(%a+)%s*") do want[#want + 1] = w end
      return table.concat({ same(t, string.match(text, "^%s*(.-)%s*$")),
        same(g, (string.gsub(text, "%s+(%a)", "_%1"))), same(table.concat(words, ","), table.concat(want, ",")),
        trim_c, trim_lua }, " ")
    `);
    // the trim of 124 bytes is C's whole search
    assert.equal(answers, "same same same 1 0");
  },
});

Deno.test({
  name: "patterns: with few = 16, a charge under 16 units is skipped, and the rest is charged as before",
  ignore: !SUPPORTED,
  fn() {
    using lua = setup();
    const rows = lua.execute(String.raw`
      local out = {}
      local cases = {
        { "find", "hello world", "o w" }, { "find", "a.b", ".", true }, { "find", "abc", "x", true },
        { "match", "k=v", "(%w+)=(%w+)" }, { "find", ("x"):rep(40) .. "y", "y" },
        { "find", ("x"):rep(40) .. "y", "y", true }, { "match", ("k"):rep(30) .. "=v", "(%w+)=(%w+)" },
        { "gmatch", "a b", "%a" }, { "gmatch", ("word "):rep(10), "%a+" },
        { "gsub", "a b", "%s", "-" }, { "gsub", ("a b"):rep(10), "%s", "-" },
      }
      local function units(api, c)
        reset()
        local r = c[1] == "gsub" and table.pack(api.gsub(c[2], c[3], c[4]))
          or table.pack(api[c[1]](c[2], c[3], nil, c[4]))
        if c[1] == "gmatch" then
          local n = 0
          for _ in r[1] do n = n + 1 end
          r = { n = 1, n }
        end
        return used_units(), table.concat({ tostring(r[1]), tostring(r[2]), tostring(r[3]) }, " ")
      end
      for _, c in ipairs(cases) do
        -- the first call learns the pattern; the next ones take the quick route
        units(api, c)
        units(few16, c)
        local all, want = units(api, c)
        local row = { c[1] .. "(" .. c[3] .. ")", all, want }
        for k = 1, 3 do
          local charged, got = units(few16, c)
          row[#row + 1] = charged
          if got ~= want then row[#row + 1] = "different results: " .. got end
        end
        out[#out + 1] = row
      end
      return out
    `) as LuaTable;
    const charged: number[] = [];
    for (const row of rows.values()) {
      const [name, all, _want, ...few] = [...(row as LuaTable).values()] as [
        string,
        number,
        string,
        ...unknown[],
      ];
      const expected = all < 16 ? 0 : all;
      assert.deepEqual(few, [expected, expected, expected], `${name}: charged ${all} without few`);
      charged.push(all);
    }
    // both sides of the line are there
    assert.deepEqual(charged.map((all) => all >= 16), [
      false,
      false,
      false,
      false,
      true,
      true,
      true,
      false,
      true,
      false,
      true,
    ]);
  },
});

Deno.test({
  name: "patterns: a quantifier that ends the pattern repeats once per match, so long subjects go to C",
  ignore: !SUPPORTED,
  fn() {
    using lua = setup();
    const [words, toC, inLua] = lua.execute(`
      reset(); stats.c, stats.lua = 0, 0
      local n = 0
      for _ in api.gmatch(("word "):rep(400), "(%a+)") do n = n + 1 end
      return n, stats.c, stats.lua
    `) as number[];
    // 400 matches and the step that finds none, each handed to C (the whole scan is not cheap)
    assert.deepEqual([words, toC, inLua], [400, 401, 0]);

    // a scan whose whole work is cheap is C's own iterator, charged once (the pattern compiled first)
    const [short, toC1, units1] = lua.execute(`
      api.gmatch("", "%a+")
      reset(); stats.c, stats.lua = 0, 0
      local out = {}
      for w in api.gmatch(("word "):rep(10), "%a+") do out[#out + 1] = w end
      return #out, stats.c, used_units()
    `) as number[];
    assert.deepEqual([short, toC1, units1], [10, 1, 50 + 3]);

    // a quantifier followed by more pattern still repeats at every start: quadratic, so the search
    // is Lua's, after one anchored attempt in C where a match could start (linear, and it failed)
    const [found, toC2, inLua2, units2] = lua.execute(`
      reset(); stats.c, stats.lua = 0, 0
      local found = api.find(("a"):rep(150) .. "-" .. ("a"):rep(150), "%a+%d")
      return found == nil, stats.c, stats.lua, used_units()
    `) as [boolean, number, number, number];
    assert.deepEqual([found, toC2, inLua2], [true, 1, 1]);
    // the failed attempt is charged the pattern, Lua's skips over the runs their lengths
    assert.ok(units2 >= 4 + 300 && units2 < 4000, `charged ${units2}`);
  },
});

Deno.test({
  name: "patterns: gsub and gmatch try each position once when every match consumes a char",
  ignore: !SUPPORTED,
  fn() {
    using lua = setup();
    // 1,300 bytes: C's whole scan for '%a+' is cheap (each start tried once); '%a*' matches empty
    // between the words, where C tries the position again, and its bound doubles: steps
    const rows = lua.execute(`
      local text = ("word "):rep(260)
      local out = {}
      for _, p in ipairs({ "%a+", "%a*" }) do
        local want = table.concat({ string.gsub(text, p, "x") }, " ")
        api.gsub(text, p, "x")
        reset(); stats.c, stats.lua = 0, 0
        local got = table.concat({ api.gsub(text, p, "x") }, " ")
        out[#out + 1] = p .. " gsub " .. tostring(got == want) .. " " .. stats.c .. " " .. stats.lua
        local n, m = 0, 0
        for _ in string.gmatch(text, p) do m = m + 1 end
        api.gmatch(text, p)
        reset(); stats.c, stats.lua = 0, 0
        for _ in api.gmatch(text, p) do n = n + 1 end
        out[#out + 1] = p .. " gmatch " .. n .. "/" .. m .. " " .. stats.c .. " " .. stats.lua
      end
      return out
    `) as LuaTable;
    // '%a*': 260 words and the empty match at the end (one right after a word does not count),
    // found step by step in C
    assert.deepEqual([...rows.values()], [
      "%a+ gsub true 1 0",
      "%a+ gmatch 260/260 1 0",
      "%a* gsub true 522 0",
      "%a* gmatch 261/261 522 0",
    ]);
  },
});

Deno.test({
  name: "patterns: a gsub's bound counts its replacement, each char of a string as 16 steps",
  ignore: !SUPPORTED,
  fn() {
    using lua = setup();
    // 1,000 matches of '.', about 20 steps each: C's whole gsub is cheap with an empty replacement
    // (16 more steps a match), one of two chars (48) and a function or a table (32 a capture), but
    // not with "%0" ten times (20 chars, 336 steps a match: C copies a capture in some 20 ns), whose
    // matches are steps until the rest is cheap whole
    const rows = lua.execute(`
      local text = ("a"):rep(1000)
      local out = {}
      for _, r in ipairs({ "", ("%0"):rep(10), "xy", function(c) return c end, { a = "b" } }) do
        local want = table.concat({ string.gsub(text, ".", r) }, " ")
        api.gsub(text, ".", r)
        reset(); stats.c, stats.lua = 0, 0
        local got = table.concat({ api.gsub(text, ".", r) }, " ")
        out[#out + 1] = table.concat({ type(r), #tostring(r), tostring(got == want), stats.c, stats.lua }, " ")
      end
      return out
    `) as LuaTable;
    const rows2 = [...rows.values()].map((row) => String(row).replace(/^(function|table) \d+/, "$1"));
    assert.deepEqual(rows2, [
      "string 0 true 1 0",
      "string 20 true 721 0",
      "string 2 true 1 0",
      "function true 1 0",
      "table true 1 0",
    ]);
  },
});

Deno.test({
  name: "patterns: a stepped gsub hands the rest from the end of a match to C's gsub once it is cheap whole",
  ignore: !SUPPORTED,
  fn() {
    using lua = setup();
    // 1,080 bytes and 120 matches: too long for C's whole gsub, so the matches are steps, until the
    // rest is short enough (the last 20 matches here); with a maximum, the rest gets what is left of
    // it. A frontier or a position capture would see where the rest starts: steps to the end. With
    // force_lua, nothing is handed to C.
    const rows = lua.execute(`
      local text = ("key12=val12&k2=v2&"):rep(60)
      local out = {}
      local function swap(a, b) return b .. "=" .. a end
      local cases = {
        { "(%w+)=(%w+)", "%2=%1" }, { "(%w+)=(%w+)", swap }, { "(%w+)=(%w+)", { key12 = "K" } },
        { "(%w+)=(%w+)", "%2=%1", 100 }, { "%f[%w](%w+)=(%w+)", "%2=%1" }, { "()(%w+)=(%w+)", "%3=%2" },
      }
      for _, case in ipairs(cases) do
        local p, r, max = case[1], case[2], case[3]
        local want = table.concat({ string.gsub(text, p, r, max) }, " ")
        api.gsub(text, p, r, max)
        reset(); stats.c, stats.lua = 0, 0
        local got = table.concat({ api.gsub(text, p, r, max) }, " ")
        local n = select(2, string.gsub(text, p, r, max))
        out[#out + 1] = table.concat({ p, type(r), tostring(max), tostring(got == want), n, stats.c, stats.lua,
          used_units() }, " ")
      end
      local got = forced.gsub(text, "(%w+)=(%w+)", "%2=%1")
      out[#out + 1] = table.concat({ "forced", tostring(got == string.gsub(text, "(%w+)=(%w+)", "%2=%1")),
        forced_stats.c, forced_stats.lua }, " ")
      return out
    `) as LuaTable;
    assert.deepEqual([...rows.values()], [
      "(%w+)=(%w+) string nil true 120 100 0 3819",
      "(%w+)=(%w+) function nil true 120 100 0 3815",
      "(%w+)=(%w+) table nil true 120 100 0 3070",
      "(%w+)=(%w+) string 100 true 100 100 0 3819",
      "%f[%w](%w+)=(%w+) string nil true 120 121 0 4941",
      "()(%w+)=(%w+) string nil true 120 121 0 4457",
      "forced true 0 121",
    ]);
  },
});

Deno.test({
  name: "patterns: searching along a subject in a loop is charged its length once, not per search",
  ignore: !SUPPORTED,
  fn() {
    using lua = setup();
    const [words, gmatchUnits, findWords, findUnits, toC] = lua.execute(`
      local text = ("word "):rep(600)
      -- compiled first: the first step charges the compile with it
      api.gmatch(text, "%a+")()
      reset(); stats.c, stats.lua = 0, 0
      local n = 0
      for _ in api.gmatch(text, "%a+") do n = n + 1 end
      local gmatch_units = used_units()
      reset()
      local m, i = 0, 1
      while true do
        local a, b = api.find(text, "%a+", i)
        if not a then break end
        m, i = m + 1, b + 1
      end
      return n, gmatch_units, m, used_units(), stats.c
    `) as number[];
    assert.deepEqual([words, findWords], [600, 600]);
    // each search is charged the text it covered and #p: 3,000 bytes, 601 searches of 3 (the whole
    // scan is not cheap, so gmatch searches step by step too)
    assert.equal(gmatchUnits, 3000 + 601 * 3);
    assert.equal(findUnits, 3000 + 601 * 3);
    assert.equal(toC, 1202);
  },
});

Deno.test({
  name: "patterns: a repeated call takes the learnt route, with the same results and charges",
  ignore: !SUPPORTED,
  fn() {
    using lua = setup();
    const differences = lua.execute(String.raw`
      local out = {}
      local cases = {
        { "find", "hello world", "o w" }, { "find", "ab", "abc" }, { "find", "abc", "" },
        { "find", "key=value", "(%w+)=(%w+)" }, { "find", "a^b", "^b" }, { "find", "xy", "^x" },
        { "match", "key=value", "^(%w+)=" }, { "match", "k=v", "(%w+)=(%w+)" },
        { "match", ("x"):rep(300) .. " k=v", "(%w+)=(%w+)" }, { "find", ("x"):rep(300) .. "y", "y" },
        { "find", ("x"):rep(20000) .. "y", "y" }, { "match", "abc", "()b()" },
        { "find", "a,b,,c", "," }, { "find", "a,b,,c", ",()" },
        { "find", "a.b.c", ".", true }, { "find", "x%d", "%d", true }, { "find", "abc", "", true },
        { "find", "ab", "abc", true }, { "find", ("x"):rep(20000) .. "%", "%", true },
      }
      for i, c in ipairs(cases) do
        local f = api[c[1]]
        -- learnt first; then no init and an init of 1 (the quick route), and one before the start (not)
        local inits = { nil, 1, -#c[2] - 5 }
        for _ = 1, 2 do for k = 1, 3 do f(c[2], c[3], inits[k], c[4]) end end
        local runs = {}
        for k = 1, 3 do
          reset(); stats.c, stats.lua = 0, 0
          local r = table.pack(f(c[2], c[3], inits[k], c[4]))
          runs[k] = table.concat({ r.n, tostring(r[1]), tostring(r[2]), tostring(r[3]),
            used_units(), stats.c, stats.lua }, " ")
        end
        local expected = table.pack(string[c[1]](c[2], c[3], nil, c[4]))
        local want = table.concat({ expected.n, tostring(expected[1]), tostring(expected[2]),
          tostring(expected[3]) }, " ")
        if runs[1] ~= runs[2] or runs[2] ~= runs[3] or runs[1]:sub(1, #want) ~= want then
          out[#out + 1] = c[1] .. "(" .. c[3] .. "): " .. want .. " | " .. table.concat(runs, " | ")
        end
      end
      -- gsub: without a max (the quick route once learnt) and with the same max given (never)
      for _, c in ipairs({ { "hello world", "o", "0" }, { "a,b,,c", ",", ";%0" }, { "abc", "^a", "" },
        { "k=v, x=y", "(%w+)=(%w+)", "%2=%1" }, { "abc", "%w", "%%" }, { "abc", "b", "%9" },
        { "hello world", "o", "00" }, { "abc", "b", "%1" }, { ("x"):rep(3000), "x", "yy" } }) do
        local s, p, r = c[1], c[2], c[3]
        local function run(max)
          reset(); stats.c, stats.lua = 0, 0
          local ok, a, n = pcall(api.gsub, s, p, r, max)
          return table.concat({ tostring(ok), tostring(a), tostring(n), used_units(), stats.c, stats.lua }, " ")
        end
        run(); run(#s + 1)
        local quick, slow = run(), run(#s + 1)
        local ok, a, n = pcall(string.gsub, s, p, r)
        local want = table.concat({ tostring(ok), tostring(a), tostring(n) }, " ")
        if quick ~= slow or quick:sub(1, #want) ~= want then
          out[#out + 1] = "gsub(" .. p .. ", " .. r .. "): " .. want .. " | " .. quick .. " | " .. slow
        end
      end
      -- gmatch: the first scan compiles the pattern and learns its longest cheap subject; the next
      -- ones go to C's iterator at once when the subject is that short, charged #s + #p (whole:
      -- true), or step by step as before
      for _, c in ipairs({ { ("word "):rep(10), "%a+", true }, { ("word "):rep(2000), "%a+", false },
        { "k=v, x=y", "(%w+)=(%w+)", true }, { ("k=v, "):rep(120), "(%w+)=(%w+)", false },
        { ("a"):rep(300), "a*", true }, { ("a"):rep(3000), "a*", false },
        { ("ab"):rep(2000), "%a+b", false }, { "abc", "", true } }) do
        local s, p, cheap = c[1], c[2], c[3]
        local function scan(f)
          reset(); stats.c, stats.lua = 0, 0
          local got = {}
          for a, b in f(s, p) do got[#got + 1] = tostring(a) .. "/" .. tostring(b) end
          return table.concat(got, ","), used_units() .. " " .. stats.c .. " " .. stats.lua
        end
        local want = scan(string.gmatch)
        local first = scan(api.gmatch)
        local second, second_cost = scan(api.gmatch)
        local third, third_cost = scan(api.gmatch)
        local expected_cost = cheap and (#s + #p) .. " 1 0" or third_cost
        if first ~= want or second ~= want or third ~= want or second_cost ~= third_cost
          or third_cost ~= expected_cost or (not cheap and stats.c == 1 and stats.lua == 0) then
          out[#out + 1] = "gmatch(" .. p .. "): " .. second_cost .. " | " .. third_cost
        end
      end
      -- more replacements for one pattern than it learns
      for i = 1, 20 do
        local r = ("r"):rep(i)
        if api.gsub("a.b.c", "%.", r) ~= string.gsub("a.b.c", "%.", r) then out[#out + 1] = "gsub " .. r end
      end
      -- a start position inside the subject: on the quick route, and given as a negative init
      local function run(f, s, p, init, plain)
        reset(); stats.c, stats.lua = 0, 0
        local r = table.pack(f(s, p, init, plain))
        return table.concat({ r.n, tostring(r[1]), tostring(r[2]), used_units(), stats.c }, " ")
      end
      for _, c in ipairs({ { "find", "a,b,,c", "," }, { "match", "k=v;x=y", "(%w+)=(%w+)" },
        { "find", "hello", "l", true }, { "match", "abc", "()" } }) do
        local f, s = api[c[1]], c[2]
        for pos = 2, #s + 2 do
          local want = table.pack(string[c[1]](s, c[3], pos, c[4]))
          run(f, s, c[3], pos, c[4])
          local quick = run(f, s, c[3], pos, c[4])
          local negative = pos <= #s and run(f, s, c[3], pos - #s - 1, c[4]) or quick
          if quick ~= negative or tostring(want[1]) ~= quick:match("^%d+ (%S+)") then
            out[#out + 1] = c[1] .. "(" .. c[3] .. ", " .. pos .. "): " .. quick .. " | " .. negative
          end
        end
      end
      return out
    `) as LuaTable;
    assert.deepEqual([...differences.values()], []);
  },
});

Deno.test({
  name: "patterns: errors carry C's text and the caller's position",
  ignore: !SUPPORTED,
  fn() {
    using lua = setup();
    const rows = lua.execute(String.raw`
      local out = {}
      local chunk = load([[
        local f, s, p, r = ...
        local x = f(s, p, r)
        return x
      ]], "=caller", "t")
      for _, t in ipairs({
        { "a", "a%" }, { "a", "[a" }, { "a", "%f" }, { "a", "%fx" }, { "a", "%b" }, { "a", "(a" },
        { "a", "a)" }, { "a", "%1" }, { "aa", "(a)%2" }, { ("a"):rep(300), ("a?"):rep(300) },
        { "a", ("()"):rep(33) }, { "ab", "b%" }, { "ba", "b%" },
      }) do
        for _, name in ipairs({ "find", "match", "gsub" }) do
          local r = name == "gsub" and "<%0>" or nil
          local ok1, e1 = pcall(chunk, string[name], t[1], t[2], r)
          local ok2, e2 = pcall(chunk, forced[name], t[1], t[2], r)
          local ok3, e3 = pcall(chunk, api[name], t[1], t[2], r)
          out[#out + 1] = { name .. "(" .. t[2]:sub(1, 12) .. ")", ok1, tostring(e1), ok2, tostring(e2), ok3, tostring(e3) }
        end
      end
      local _, e = pcall(chunk, api.find, nil, "x")
      out[#out + 1] = { "find(nil)", false, "caller:2: bad argument #1 to 'find' (string expected, got nil)", false, e, false, e }
      return out
    `) as LuaTable;
    let errors = 0;
    for (const row of rows.values()) {
      const [what, ok1, e1, ok2, e2, ok3, e3] = [...(row as LuaTable).values()] as [
        string,
        boolean,
        string,
        boolean,
        string,
        boolean,
        string,
      ];
      assert.deepEqual([ok2, e2], [ok1, e1], `${what}: Lua matcher`);
      assert.deepEqual([ok3, e3], [ok1, e1], `${what}: dispatch`);
      if (!ok1) {
        errors++;
        assert.match(e1, /^caller:2: \S/, what);
      }
    }
    assert.ok(errors >= 30, `only ${errors} errors`);
  },
});

Deno.test({
  name: "patterns: nested and interleaved use (callbacks, __index, two gmatch iterators)",
  ignore: !SUPPORTED,
  fn() {
    using lua = setup();
    const results = lua.execute(String.raw`
      local function run(m)
        local out = {}
        local text = ("alpha=1, beta=22; gamma=333 "):rep(20)
        out[1] = m.gsub(text, "(%w+)=(%d+)", function(k, v)
          local inner = m.gsub(k, "(.)", "%1.")
          local a, b = m.find(v, "%d+$")
          return inner .. "<" .. a .. "," .. b .. ">"
        end)
        local t = setmetatable({}, { __index = function(_, k) return (m.match(k, "^(%a)")) end })
        out[2] = m.gsub(text, "%a+", t)
        local it1, it2 = m.gmatch(text, "%a+"), m.gmatch(text, "%d+")
        local acc = {}
        for _ = 1, 30 do acc[#acc + 1] = tostring(it1()) .. "/" .. tostring(it2()) end
        out[3] = table.concat(acc, " ")
        return out
      end
      local C = { find = string.find, match = string.match, gmatch = string.gmatch, gsub = string.gsub }
      local a, b, c = run(C), run(forced), run(api)
      return { a[1] == b[1] and a[1] == c[1], a[2] == b[2] and a[2] == c[2], a[3] == b[3] and a[3] == c[3] }
    `) as LuaTable;
    assert.deepEqual([...results.values()], [true, true, true]);
  },
});

Deno.test({
  name:
    "patterns: gmatch takes a leading '^' literally, and reads no record find learnt for the pattern anchored",
  ignore: !SUPPORTED,
  fn() {
    using lua = setup();
    // find's record bounds one attempt at the start, which is linear; gmatch's '^' is a char, and
    // over 300 carets each start's '.*' scans to the end. That record once had the whole scan
    // handed to C and charged 607 units.
    const [count, units, inLua] = lua.execute(`
      local p, short = "^%s*.*x", ("^"):rep(10)
      api.find(short, p)
      for _ in api.gmatch(short, p) do end
      local s = ("^"):rep(300)
      reset(); stats.c, stats.lua = 0, 0
      local n = 0
      for _ in api.gmatch(s, p) do n = n + 1 end
      return n, used_units(), stats.lua
    `) as number[];
    assert.deepEqual([count, inLua], [0, 1]);
    assert.ok(units > 300 * 300 / 4, `charged ${units}`);
  },
});

Deno.test({
  name: "patterns: a subject's runs count per class: a long field does not make its runs of spaces long",
  ignore: !SUPPORTED,
  fn() {
    using lua = setup();
    // the runs of spaces are 2 long and the other chars' 13 (16 rounded up): with one run for both
    // (16), neither a search nor an attempt was cheap for this 34-byte line, and each step was Lua's
    const [fields, toC, inLua] = lua.execute(`
      local s = "a , b,c ,  d , e5, long field 5,x,"
      for _ in api.gmatch(s, "%s*(.-)%s*,") do end
      reset(); stats.c, stats.lua = 0, 0
      local t = {}
      for f in api.gmatch(s, "%s*(.-)%s*,") do t[#t + 1] = f end
      return table.concat(t, "|"), stats.c, stats.lua
    `) as [string, number, number];
    assert.deepEqual([fields, toC, inLua], ["a|b|c|d|e5|long field 5|x", 8, 0]);
  },
});
