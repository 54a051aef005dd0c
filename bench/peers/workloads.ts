// Policies beyond ABAC, side by side: string patterns, string functions, a short loop and a long one,
// table functions, a large input, string normalization, math functions, math.random, recursive calls,
// lookups in shared data, objects with metatables, errors caught with pcall, a coroutine generator, gsub
// with a replacement function, gsub with captures over 400 bytes, a csv line split and trimmed by gmatch,
// string building, string.format with five arguments, a checksum by string.byte, a split by plain find,
// objects of a three-level class chain, binary records by string.pack and string.unpack, attributes
// walked with pairs, labels matched against a selector with next and pairs;
// inputs of other shapes (a rule of one comparison, a 2 KB text, texts of 10 and 50 KB
// squeezed, trimmed and split into words, keys unique to each request, fractional numbers, nesting 10
// deep, non-ASCII text, 300 integers); calls of a host function. Each is a Lua
// function `function(input, data) ... end` returning a boolean, and the last an admission rule
// returning its verdict as a table `{ allow = ..., reasons = { ... } }` that each engine reads into
// JS. Shared data is the policy engine's `data` for luagate, and a global `data` set once for the
// others. A host function is a capability for luagate, a global JS function for wasmoon and a C
// function written in JS for fengari.
//
//   deno run -A bench/peers/workloads.ts [--rounds N] [--min-round-ms N] [--only text,text]
//
// --only runs the workloads whose names contain one of the texts (case-insensitive).
//
// luagate's policy engine (every limit on) runs each one against wasmoon (the input copied into Lua
// tables, and proxied) and fengari (the input pushed field by field). Every engine's answers are
// checked against luagate's trusted LuaRuntime (real Lua, no limits) before timing; then the rounds run
// interleaved, engine after engine, and the table shows the median µs per call. A peer that raises an
// error on a workload (wasmoon's proxy is no table to `next`) is shown as failing it, and the others are
// timed.
import { LuaRuntime, type LuaTable, type Policy, PolicyEngine } from "../../mod.ts";
import type { FengariModule } from "./engines/fengari.ts";
import { ensureNodeModules, requirePeer } from "./engines/npm.ts";
import type { WasmoonModule } from "./engines/wasmoon.ts";
import { argTexts, argValue, interleavedMedians } from "./measure.ts";

interface Workload {
  name: string;
  body: string;
  inputs: unknown[];
  /** The body returns `{ allow = boolean, reasons = { string... } }` instead of a boolean. */
  verdict?: true;
  /** Data every call of the workload shares (`data` in the body; nil when absent). */
  data?: Record<string, unknown>;
  /** A host function the body calls by this name, with one string, returning a string or nil. */
  host?: { name: string; fn: (key: string) => string | null };
}

const UA =
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
const range = <T>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));
/** `length` bytes of words, blanks of one to three chars between them, different for each `seed`. */
const prose = (length: number, seed: number): string => {
  const blanks = [" ", " ", "  ", "\n", " \t "];
  let text = "";
  for (let i = 0; text.length < length; i++) {
    text += WORDS[(i * 7 + seed) % WORDS.length] +
      blanks[(i + seed) % blanks.length];
  }
  return text.slice(0, length);
};
const ROLES = ["viewer", "editor", "admin", "auditor", "billing", "support"];
const OWNERS = new Map(range(500, (i) => [`doc${i}`, `user${i % 40}`]));
const ACTIONS = ["read", "write", "delete", "pay", "ticket"];
const WORDS = [
  "alpha",
  "beta",
  "gamma",
  "délta",
  "épsilon",
  "zeta",
  "ēta",
  "theta",
];

/** A sum over `iterations` compared with a limit, for `count` limits. */
const loop = (iterations: number, count: number): Workload => ({
  name: `a loop of ${iterations.toLocaleString("en-US")} iterations`,
  body: `
  local s = 0
  for i = 1, ${iterations} do s = s + (i % 7) * 3 end
  return s > input.limit`,
  inputs: range(count, (i) => ({ limit: (i * iterations) / 20 })),
});

/** The blanks of `count` texts of `length` bytes squeezed to one space each. */
const squeezed = (length: number, count: number): Workload => ({
  name: `a ${length / 1000} KB text: blanks squeezed (gsub)`,
  body: `
  local squeezed, n = input.text:gsub("%s+", " ")
  return n > 100 and #squeezed < #input.text`,
  inputs: range(count, (i) => ({ text: prose(length, i) })),
});

const WORKLOADS: Workload[] = [
  {
    name: "string patterns (match, find, gmatch)",
    body: `
  local id = input.path:match("^/api/v1/users/(%d+)/")
  if not id then return false end
  if not input.email:find("@example%.com$") then return false end
  local words = 0
  for _ in input.agent:gmatch("%a+") do words = words + 1 end
  return tonumber(id) > 100 and words > 2`,
    inputs: range(100, (i) => ({
      path: `/api/v1/users/${i * 7}/orders`,
      email: i % 3 ? "ann@example.com" : "bob@example.org",
      agent: UA,
    })),
  },
  {
    name: "string functions (lower, upper, format, sub)",
    body: `
  local key = string.format("%s:%s/%d", input.user:lower(), input.role:upper(), input.n)
  return #key > 10 and key:sub(1, 1) ~= "x"`,
    inputs: range(100, (i) => ({ user: "Ann" + i, role: "Admin", n: i })),
  },
  loop(200, 100),
  loop(20_000, 4),
  {
    name: "table functions (insert, sort, concat)",
    body: `
  local t = {}
  for _, v in ipairs(input.items) do table.insert(t, v * 2) end
  table.sort(t)
  return table.concat(t, ",") ~= ""`,
    inputs: range(100, (i) => ({ items: range(20, (k) => (k * 31 + i) % 17) })),
  },
  {
    name: "a large input (100 records)",
    body: `
  local n = 0
  for _, item in ipairs(input.items) do
    if item.flag and item.tags[1] == "a" then n = n + 1 end
  end
  return n > 3`,
    inputs: range(20, (i) => ({
      items: range(
        100,
        (k) => ({
          id: "item" + k,
          flag: (k + i) % 5 === 0,
          tags: ["a", "b"],
          score: k * 1.5,
        }),
      ),
    })),
  },
  {
    name: "string normalization (gsub, plain find)",
    body: `
  local name = (input.name:gsub("%s+", " ")):lower()
  if name:find("root", 1, true) then return false end
  for _, h in ipairs(input.headers) do
    if h:find("secret", 1, true) then return false end
  end
  return #name > 3`,
    inputs: range(100, (i) => ({
      name: i % 13 ? `Ann   Lee ${i}` : "The  Root",
      headers: range(8, (k) => `x-header-${k}${k === i % 11 ? "-secret" : ""}`),
    })),
  },
  {
    name: "math functions in a loop",
    body: `
  local s = 0
  for i = 1, 50 do s = s + math.floor(math.sqrt(i * input.n)) + math.max(i, 3) end
  return s > 1000`,
    inputs: range(100, (i) => ({ n: i })),
  },
  {
    name: "math.random in a loop (1,000 calls)",
    body: `
  local s = 0
  for i = 1, 1000 do s = s + math.random(input.k) end
  return s >= 1000`,
    inputs: range(50, (i) => ({ k: 1 + i })),
  },
  {
    name: "recursive calls (fib 12)",
    body: `
  local function fib(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end
  return fib(12) > input.n`,
    inputs: range(100, (i) => ({ n: i * 3 })),
  },
  {
    name: "lookups in shared data (role bindings)",
    body: `
  local roles = data.bindings[input.user]
  if not roles then return false end
  for _, role in ipairs(roles) do
    local granted = data.permissions[role]
    if granted and granted[input.action] then return true end
  end
  return false`,
    data: {
      bindings: Object.fromEntries(
        range(300, (i) => [`u${i}`, [ROLES[i % 6], ROLES[(i * 7) % 6]]]),
      ),
      permissions: {
        viewer: { read: true },
        editor: { read: true, write: true },
        admin: { read: true, write: true, delete: true },
        auditor: { read: true, audit: true },
        billing: { pay: true },
        support: { read: true, ticket: true },
      },
    },
    inputs: range(
      200,
      (i) => ({ user: `u${(i * 13) % 320}`, action: ACTIONS[i % 5] }),
    ),
  },
  {
    name: "objects with metatables (setmetatable, methods, __add)",
    body: `
  local V = {}
  V.__index = V
  V.__add = function(a, b) return setmetatable({ x = a.x + b.x }, V) end
  function V.new(x) return setmetatable({ x = x }, V) end
  function V:scaled(k) return V.new(self.x * k) end
  local sum = V.new(0)
  for i = 1, 30 do sum = sum + V.new(i):scaled(input.k) end
  return sum.x > 1000`,
    inputs: range(100, (i) => ({ k: i % 5 })),
  },
  {
    name: "errors caught with pcall (error, a runtime error, a C function's)",
    body: `
  local failed = 0
  for i = 1, 10 do
    if not pcall(error, "denied") then failed = failed + 1 end
    if not pcall(function() return input.missing.field end) then failed = failed + 1 end
    if not pcall(string.rep) then failed = failed + 1 end
  end
  return failed == 30 and input.n > 50`,
    inputs: range(100, (i) => ({ n: i })),
  },
  {
    name: "a coroutine generator (50 yields)",
    body: `
  local gen = coroutine.wrap(function()
    for i = 1, 50 do coroutine.yield(i * input.step) end
  end)
  local s = 0
  for _ = 1, 50 do s = s + gen() end
  return s > 2000`,
    inputs: range(100, (i) => ({ step: i % 4 })),
  },
  {
    name: "gsub with a replacement function",
    body: `
  local escaped = input.text:gsub("[<>&]", function(c)
    return c == "<" and "&lt;" or c == ">" and "&gt;" or "&amp;"
  end)
  return #escaped > #input.text`,
    inputs: range(
      100,
      (i) => ({ text: i % 3 ? `<b>item ${i}</b> & more` : `plain item ${i}` }),
    ),
  },
  {
    name: "gsub with captures over 400 bytes",
    body: `
  local swapped, n = input.query:gsub("(%w+)=(%w+)", "%2=%1")
  return n > 30 and #swapped == #input.query`,
    inputs: range(100, (i) => ({ query: `key${i}=val${i}&k2=v2&`.repeat(20) })),
  },
  {
    name: "gmatch splitting and trimming a csv line",
    body: `
  local n = 0
  for field in (input.csv .. ","):gmatch("%s*(.-)%s*,") do n = n + #field end
  return n > 10`,
    inputs: range(
      100,
      (i) => ({ csv: `a , b,c ,  d , e${i}, long field ${i},x` }),
    ),
  },
  {
    name: "string building (tostring, .., table.concat)",
    body: `
  local parts = {}
  for i = 1, 40 do parts[#parts + 1] = tostring(i * input.n) .. ":" .. i end
  return #table.concat(parts, ",") > 200`,
    inputs: range(100, (i) => ({ n: i })),
  },
  {
    name: "string.format with five arguments (300 lines)",
    body: `
  local lines = {}
  for i = 1, 300 do lines[i] = string.format("%s:%d:%s:%d:%s", input.a, i, input.b, i * 2, "z") end
  return #lines[300] > 10`,
    inputs: range(50, (i) => ({ a: `a${i}`, b: `b${i}` })),
  },
  {
    name: "a checksum of 1 KB (string.byte)",
    body: `
  local s, h = input.body, 0
  for i = 1, #s do h = (h * 31 + s:byte(i)) & 0xffffffff end
  return h % 2 == 0`,
    inputs: range(50, (i) => ({ body: `x${i}`.repeat(340).slice(0, 1024) })),
  },
  {
    name: "a split of 2 KB by plain find",
    body: `
  local s, pos, n = input.csv, 1, 0
  while true do
    local i = s:find(",", pos, true)
    if not i then break end
    n, pos = n + 1, i + 1
  end
  return n > 100`,
    inputs: range(
      20,
      (i) => ({ csv: range(300, (j) => `f${i}_${j}`).join(",") }),
    ),
  },
  {
    name: "objects of a three-level class chain (setmetatable, methods)",
    body: `
  local Base = {}; Base.__index = Base
  function Base.new(n) return setmetatable({ n = n }, Base) end
  function Base:weight() return self.n end
  local Mid = setmetatable({}, { __index = Base }); Mid.__index = Mid
  function Mid.new(n) return setmetatable(Base.new(n), Mid) end
  function Mid:bonus() return 2 end
  local Leaf = setmetatable({}, { __index = Mid }); Leaf.__index = Leaf
  function Leaf.new(n) return setmetatable(Mid.new(n), Leaf) end
  function Leaf:score() return self:weight() * self:bonus() end
  local s = 0
  for i = 1, 20 do s = s + Leaf.new(i + input.k):score() end
  return s > 600`,
    inputs: range(100, (i) => ({ k: i % 20 })),
  },
  {
    name: "binary records (string.pack, string.unpack)",
    body: `
  local s = 0
  for i = 1, 50 do
    local a, b, c = string.unpack("<i4i4d", string.pack("<i4i4d", i, input.k, i * 0.5))
    s = s + a + b + c
  end
  return s > 2000`,
    inputs: range(100, (i) => ({ k: i })),
  },
  {
    name: "a rule of one comparison (the fixed cost of a call)",
    body: `
  return input.used < 100`,
    inputs: range(100, (i) => ({ used: i * 2 })),
  },
  {
    name: "a 2 KB text body (plain find)",
    body: `
  return #input.body < 4096 and not input.body:find("forbidden", 1, true)`,
    inputs: range(100, (i) => ({
      body: range(40, (k) => `${WORDS[(i + k) % WORDS.length]} lorem ipsum dolor sit amet ${k}`)
        .join("\n") +
        (i % 9 ? "" : " forbidden"),
    })),
  },
  squeezed(10_000, 4),
  {
    name: "a 10 KB text trimmed (match)",
    body: `
  return #input.text:match("^%s*(.-)%s*$") > 9000`,
    inputs: range(4, (i) => ({ text: `  ${prose(10_000, i)}  ` })),
  },
  {
    name: "the words of a 10 KB text counted (gmatch)",
    body: `
  local n = 0
  for _ in input.text:gmatch("%a+") do n = n + 1 end
  return n > 1000`,
    inputs: range(4, (i) => ({ text: prose(10_000, i) })),
  },
  squeezed(50_000, 2),
  {
    name: "keys unique to each request (20, 3 looked up)",
    body: `
  local n = 0
  for _, key in ipairs(input.check) do n = n + (input.attrs[key] or 0) end
  return n > 8`,
    inputs: range(100, (i) => {
      const keys = range(20, (k) => `attr_${i}_${k}`);
      return {
        attrs: Object.fromEntries(keys.map((key, k) => [key, (i + k) % 7])),
        check: keys.slice(i % 17, i % 17 + 3),
      };
    }),
  },
  {
    name: "fractional numbers (50 summed)",
    body: `
  local s = 0.0
  for _, v in ipairs(input.values) do s = s + v end
  return s > 25`,
    inputs: range(
      100,
      (i) => ({ values: range(50, (k) => ((i * 31 + k * 17) % 100) / 97) }),
    ),
  },
  {
    name: "an input nested 10 deep",
    body: `
  local node, depth = input, 0
  while node.child do node, depth = node.child, depth + 1 end
  return depth == 10 and node.leaf == "yes"`,
    inputs: range(100, (i) => {
      let node: Record<string, unknown> = { leaf: i % 2 ? "yes" : "no" };
      for (let k = 0; k < 10; k++) {
        node = { child: node, level: k, tag: `t${k}` };
      }
      return node;
    }),
  },
  {
    name: "non-ASCII strings (utf8.len, lower)",
    body: `
  local name = input.name
  return utf8.len(name) > 12 and name:lower() ~= name`,
    inputs: range(
      100,
      (i) => ({
        name: `Ünïcödé-${WORDS[i % WORDS.length]}-${i % 3 ? "Name" : "n"}${i}`,
      }),
    ),
  },
  {
    name: "an array of 300 integers",
    body: `
  local c = 0
  for i = 1, #input.ids do if input.ids[i] % 3 == 0 then c = c + 1 end end
  return c > 100`,
    inputs: range(
      100,
      (i) => ({ ids: range(300, (k) => (k * 13 + i * 7) % 1000) }),
    ),
  },
  {
    name: "attributes walked with pairs (a map of 50)",
    body: `
  local granted = 0
  for name, value in pairs(input.attributes) do
    if value == "yes" and name:sub(1, 5) == "perm_" then granted = granted + 1 end
  end
  return granted > 12`,
    inputs: range(100, (i) => ({
      attributes: Object.fromEntries(
        range(
          50,
          (
            k,
          ) => [
            k % 2 ? `perm_${k}` : `attr_${k}`,
            (k * 7 + i) % 3 ? "yes" : "no",
          ],
        ),
      ),
    })),
  },
  {
    name: "labels matched against a selector (next, pairs)",
    body: `
  if next(input.labels) == nil then return false end
  for key, wanted in pairs(input.selector) do
    if input.labels[key] ~= wanted then return false end
  end
  return true`,
    inputs: range(100, (i) => ({
      labels: i % 10 ? Object.fromEntries(range(8, (k) => [`label${k}`, `v${(i + k) % 3}`])) : {},
      selector: { label1: `v${(i + 1) % 3}`, label4: "v1" },
    })),
  },
  {
    name: "calls of a host function (10 lookups)",
    body: `
  local owned = 0
  for _, id in ipairs(input.documents) do
    if owner_of(id) == input.user then owned = owned + 1 end
  end
  return owned >= 2`,
    host: { name: "owner_of", fn: (id) => OWNERS.get(id) ?? null },
    inputs: range(100, (i) => ({
      user: `user${i % 40}`,
      documents: range(10, (k) => `doc${(i + 40 * k * (k % 3)) % 520}`),
    })),
  },
  {
    name: "a verdict with reasons (table result)",
    body: `
  local reasons = {}
  if input.cpu > 4 then reasons[#reasons + 1] = "more than 4 cores" end
  if input.memory > 8192 then reasons[#reasons + 1] = "more than 8 GiB of memory" end
  if not input.image:find("^registry%.example%.com/") then
    reasons[#reasons + 1] = "image from an unknown registry: " .. input.image
  end
  return { allow = #reasons == 0, reasons = reasons }`,
    verdict: true,
    inputs: range(100, (i) => ({
      cpu: i % 7,
      memory: 1024 * (i % 11),
      image: i % 5 ? `registry.example.com/app:${i}` : `docker.io/app:${i}`,
    })),
  },
];

/** An engine answered a workload differently from real Lua: the run stops. */
class WrongAnswer extends Error {}

// What a call answered, as one string: "true" / "false", or for a verdict "allow|reason,reason".
const answer = (allow: unknown, reasons?: readonly unknown[]) =>
  reasons === undefined ? String(allow === true) : `${allow === true}|${reasons.join(",")}`;

type Call = (input: unknown) => string;

interface Row {
  name: string;
  make(w: Workload): Promise<Call>;
  close?(): void;
}

function luagateRow(): Row {
  const engines = new Map<unknown, PolicyEngine>();
  let count = 0;
  return {
    name: "luagate Policy (all limits on)",
    make(w) {
      const key = w.host ?? w.data;
      let engine = engines.get(key);
      if (engine === undefined) {
        const capabilities = w.host && { [w.host.name]: w.host.fn };
        engines.set(
          key,
          engine = new PolicyEngine({ data: w.data, capabilities }),
        );
      }
      const policy: Policy = engine.compile(
        `return function(input, data)${w.body}\nend`,
        {
          name: `w${count++}`,
        },
      );
      return Promise.resolve((input) => {
        const d = policy.evaluate(input);
        if (d.errors.length > 0) throw new Error(`luagate: ${d.errors[0]}`);
        return answer(d.allow, w.verdict && d.reasons);
      });
    },
    close: () => engines.forEach((engine) => engine.close()),
  };
}

function wasmoonRow(
  wasmoon: WasmoonModule,
  name: string,
  options: Record<string, unknown>,
): Row {
  let count = 0;
  return {
    name,
    async make(w) {
      const lua = await new wasmoon.LuaFactory().createEngine(options);
      const global = `f${count++}`;
      if (w.data) lua.global.set("data", w.data);
      if (w.host) lua.global.set(w.host.name, w.host.fn);
      lua.doStringSync(`${global} = function(input)${w.body}\nend`);
      const f = lua.global.get(global) as (input: unknown) => unknown;
      if (!w.verdict) return (input) => answer(f(input));
      // wasmoon hands a returned table over as a JS object: a sequence as an array, an empty one as {}
      return (input) => {
        const r = f(input) as {
          allow: unknown;
          reasons: Record<string, unknown>;
        };
        return answer(r.allow, Object.values(r.reasons));
      };
    },
  };
}

function fengariRow(F: FengariModule): Row {
  const { lua: api, lauxlib: aux, lualib, to_luastring, to_jsstring } = F;
  const keys = new Map<string, Uint8Array>();
  const key = (k: string) => keys.get(k) ?? keys.set(k, to_luastring(k)).get(k)!;
  function push(L: unknown, v: unknown): void {
    if (typeof v === "string") api.lua_pushstring(L, to_luastring(v));
    else if (typeof v === "number") {
      Number.isInteger(v) ? api.lua_pushinteger(L, v) : api.lua_pushnumber(L, v);
    } else if (typeof v === "boolean") api.lua_pushboolean(L, v);
    else if (Array.isArray(v)) {
      api.lua_createtable(L, v.length, 0);
      v.forEach((item, i) => {
        push(L, item);
        api.lua_rawseti(L, -2, i + 1);
      });
    } else {
      const record = v as Record<string, unknown>;
      api.lua_createtable(L, 0, 4);
      for (const k in record) {
        push(L, record[k]);
        api.lua_setfield(L, -2, key(k));
      }
    }
  }
  return {
    name: "fengari (Lua 5.3 in JS)",
    make(w) {
      const L = aux.luaL_newstate();
      lualib.luaL_openlibs(L);
      if (
        aux.luaL_dostring(
          L,
          to_luastring(`return function(input)${w.body}\nend`),
        ) !== 0
      ) {
        throw new Error("fengari: " + to_jsstring(api.lua_tostring(L, -1)));
      }
      const ref = aux.luaL_ref(L, api.LUA_REGISTRYINDEX);
      const host = w.host;
      if (host) {
        api.lua_pushcfunction(L, (L: unknown) => {
          const result = host.fn(to_jsstring(api.lua_tostring(L, 1)));
          if (result === null) api.lua_pushnil(L);
          else api.lua_pushstring(L, to_luastring(result));
          return 1;
        });
        api.lua_setglobal(L, key(host.name));
      }
      if (w.data) {
        push(L, w.data);
        api.lua_setglobal(L, key("data"));
      }
      return Promise.resolve((input) => {
        api.lua_rawgeti(L, api.LUA_REGISTRYINDEX, ref);
        push(L, input);
        if (api.lua_pcall(L, 1, 1, 0) !== 0) {
          throw new Error("fengari: " + to_jsstring(api.lua_tostring(L, -1)));
        }
        if (!w.verdict) {
          const allow = api.lua_toboolean(L, -1);
          api.lua_settop(L, 0);
          return answer(allow);
        }
        api.lua_getfield(L, 1, key("allow"));
        const allow = api.lua_toboolean(L, -1);
        api.lua_getfield(L, 1, key("reasons"));
        const reasons: string[] = [];
        for (let i = 1; api.lua_rawgeti(L, 3, i) === api.LUA_TSTRING; i++) {
          reasons.push(to_jsstring(api.lua_tostring(L, -1)));
          api.lua_settop(L, 3);
        }
        api.lua_settop(L, 0);
        return answer(allow, reasons);
      });
    },
  };
}

async function main(): Promise<void> {
  const rounds = argValue(Deno.args, "--rounds", 7);
  const minRoundMs = argValue(Deno.args, "--min-round-ms", 150);
  await ensureNodeModules();
  const wasmoon = requirePeer<WasmoonModule>("wasmoon/dist/index.js");
  const rows = [
    luagateRow(),
    wasmoonRow(wasmoon, "wasmoon, enableProxy: false", { enableProxy: false }),
    wasmoonRow(wasmoon, "wasmoon (proxied input)", {}),
    fengariRow(requirePeer<FengariModule>("fengari")),
  ];
  const reference = new LuaRuntime();
  const lines = [
    `| Workload | ${rows.map((r) => r.name).join(" | ")} |`,
    `| --- | ${rows.map(() => "---:").join(" | ")} |`,
  ];
  const only = argTexts(Deno.args, "--only");
  const chosen = WORKLOADS.filter((w) => only?.some((text) => w.name.toLowerCase().includes(text)) ?? true);
  if (chosen.length === 0) {
    throw new Error(`--only ${only}: no workload's name contains any of these`);
  }
  for (const w of chosen) {
    const check = reference.execute(
      `return function(input, data)${w.body}\nend`,
    ) as (
      input: unknown,
      data: unknown,
    ) => unknown;
    if (w.host) reference.globals().set(w.host.name, w.host.fn);
    const data = w.data && reference.tableFrom(w.data, { recursive: true });
    const expected = w.inputs.map((input) => {
      const result = check(
        reference.tableFrom(input, { recursive: true }),
        data,
      );
      if (!w.verdict) return answer(result);
      const verdict = result as LuaTable;
      return answer(verdict.get("allow"), [
        ...(verdict.get("reasons") as LuaTable).values(),
      ]);
    });
    const calls = await Promise.all(rows.map((r) => r.make(w)));
    // An engine that raises on a workload cannot run it (a wrong answer stops the run): its cell
    // says so, and the others are timed.
    const failures = calls.map((call, k) => {
      try {
        w.inputs.forEach((input, i) => {
          if (call(input) !== expected[i]) {
            throw new WrongAnswer(
              `${rows[k].name}, ${w.name}: wrong answer for input ${i}`,
            );
          }
        });
        return undefined;
      } catch (error) {
        if (k === 0 || error instanceof WrongAnswer) throw error;
        return error instanceof Error ? error.message : String(error);
      }
    });
    const runnable = calls.filter((_, k) => failures[k] === undefined);
    const times = interleavedMedians(
      runnable.map((call) => () => {
        for (const input of w.inputs) call(input);
      }),
      rounds,
      minRoundMs,
    ).map((t) => t / w.inputs.length);
    const us = failures.map((failure) => failure === undefined ? times.shift()! : undefined);
    const ours = us[0]!;
    const cells = us.map((t, k) =>
      t === undefined
        ? "fails"
        : k === 0
        ? `**${t.toFixed(1)}**`
        : `${t.toFixed(1)} (${(t / ours).toFixed(1)}×)`
    );
    lines.push(`| ${w.name} | ${cells.join(" | ")} |`);
    console.error(
      `${w.name}: ${us.map((t, k) => t?.toFixed(1) ?? `fails (${failures[k]})`).join(" / ")} µs`,
    );
  }
  rows.forEach((r) => r.close?.());
  reference.close();
  console.log(
    `µs per call, median of ${rounds} interleaved rounds (in parentheses: the time against luagate's)\n`,
  );
  console.log(lines.join("\n"));
}

await main();
