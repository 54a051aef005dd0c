import assert from "node:assert/strict";
import {
  FAST_LANE_CODE,
  LANE_ENTRY,
  LaneEntry,
  LaneTally,
  MAX_NESTED_CALLS,
  openFastLane,
  QUOTE_PIECE,
  SORT_IN_C_ITEMS,
} from "./fast_lane.ts";
import { assertBuiltFromSource, crossToolsMissing, withHarness } from "../tests/fixtures/native_helpers.ts";
import { openLuaLibrary } from "./library.ts";
import { createLuaApi, type LuaState, LuaStatus } from "./lua_api.ts";
import { monotonicMs, RunClock, threadCpuMs } from "./clock.ts";
import { cString } from "./strings.ts";
import { embeddedBytes, runsEmbeddedCode } from "./native_code.ts";

const library = openLuaLibrary();
const api = createLuaApi(library);
const s = api.sym;
const lane = openFastLane(library, api.registryIndex);
const ignore = lane === undefined;
const STEP = 100;
const FEW = 16;

const newTally = (clock = new RunClock(1000)) => new LaneTally(STEP, FEW, clock);

/** Asserts what `code` returns, run with a fresh tally, and the units the tally took. */
function assertRun(code: string, expected: string, tallied: number, talliedMessage?: string): void {
  assert.equal(runTallied(code, expected).take(), tallied, talliedMessage);
}

// Runs `code` with a fresh tally, asserts what it returns, and gives the tally back to be checked.
function runTallied(code: string, expected: string): LaneTally {
  const tally = newTally();
  assert.equal(run(code, tally), expected);
  return tally;
}

// Runs `code` with the lane (the closure that makes entries, with `tally`) and the operations of
// LaneEntry by name as its arguments; returns what it returns, as one string.
function run(code: string, tally: LaneTally | null = newTally()): string {
  const L = s.luaL_newstate() as LuaState;
  try {
    s.luaL_openlibs(L);
    const source = new TextEncoder().encode(code);
    assert.equal(api.loadBuffer(L, source, source.length, cString("=lane"), null), LuaStatus.OK);
    s.lua_pushlightuserdata(L, tally?.pointer ?? null);
    api.pushInteger(L, LANE_ENTRY);
    s.lua_pushcclosure(L, lane!, 2);
    s.lua_createtable(L, 0, Object.keys(LaneEntry).length);
    for (const [name, op] of Object.entries(LaneEntry)) {
      api.pushInteger(L, op);
      s.lua_setfield(L, -2, cString(name));
    }
    const status = api.pcall(L, 2, 1, 0);
    const text = Deno.UnsafePointerView.getCString(s.lua_tolstring(L, -1, null)!);
    assert.equal(status, LuaStatus.OK, text);
    return text;
  } finally {
    s.lua_close(L);
  }
}

// `lane`, the entry makers by name, as the kernel's lane_entry makes them; also `quick`, the
// matcher's table of quick patterns (find under 1, match under 2, gsub under 3,
// gmatch under 4),
// and the pieces of entries: `charge` records what it is given in `charged`, and each `route(name)`
// answers "route:<name>/<how many arguments it got>"
const QUICK = `
  local make, ops = ...
  local lane = {}
  for name, op in pairs(ops) do
    lane[name] = function(...) return make(op, ...) end
  end
  local quick = { {}, {}, {}, {} }
  quick[1]["o+"], quick[2]["^(%a+)"], quick[4]["%a+"] = 20, 20, 20
  local function show(...)
    local out = {}
    for i = 1, select("#", ...) do out[i] = tostring((select(i, ...))) end
    return table.concat(out, ",")
  end
  local charged = {}
  local function charge(units) charged[#charged + 1] = units end
  local function route(name)
    return function(...) return "route:" .. name .. "/" .. select("#", ...) end
  end
`;

Deno.test(
  "fast lane: the append entry adds at the end of a table without a metatable; the route takes the rest",
  { ignore },
  () => {
    assertRun(
      `${QUICK}
      local append = lane.append(nil, charge, route("insert"))
      local t = { 1, 2 }
      local meta = setmetatable({}, { __newindex = function() error("called") end })
      return table.concat({
        show(append(t, 3)), #t, t[3],
        show(append(t, 1, 9)), table.concat(t, ","),     -- 3 items moved up
        show(append(t, 5, 8)), table.concat(t, ","),     -- at the end: none
        show(append(t, 7, 0)), show(append(t, 0, 0)), show(append(t, 1.0, 0)), show(append(t, 1, 2, 3)),
        show(append(t)), #t,
        show(append(meta, 1)), #meta,
        show(append("text", 1)), #charged,
      }, " ")`,
      " 3 3  9,1,2,3  9,1,2,3,8 route:insert/3 route:insert/3 route:insert/3 route:insert/4 route:insert/1 5 " +
        "route:insert/2 0 route:insert/2 0",
      3,
    );
  },
);

Deno.test("fast lane: the match and gmatch entries call C for what the quick table proves cheap", {
  ignore,
}, () => {
  const tally = newTally();
  assert.equal(
    run(
      `${QUICK}
      local m = lane.match(string.match, charge, route("match"), quick)
      local g = lane.gmatch(string.gmatch, charge, route("gmatch"), quick)
      local words = {}
      for w in g("ab cd", "%a+") do words[#words + 1] = w end
      return table.concat({
        show(m("hello", "^(%a+)")),              -- 5 + 6 < 16: nothing tallied
        show(m("hello", "^(%a+)", 2)),
        show(m("hello", "^(%a+)", 6)),           -- rest 0
        show(m("hello", "^(%a+)", 7)),           -- rest -1: the route
        show(m("hello", "^(%a+)", 0)),
        show(m("hello", "^(%a+)", -1)),
        show(m("hello", "^(%a+)", 2.0)),         -- not an integer: the route converts
        show(m("hello", "^(%a+)", nil)),
        show(m(("a"):rep(21), "^(%a+)")),        -- longer than proved
        show(m("hello", "(%a+)")),               -- never proved
        show(m(12345, "^(%a+)")),
        show(m("hello")),
        table.concat(words, "+"),
        show(g("hello", "%a+", 1)),
        show(g(("a"):rep(21), "%a+")),
        show(#charged),
      }, " ")`,
      tally,
    ),
    "hello ello nil route:match/3 route:match/3 route:match/3 route:match/3 hello route:match/2 " +
      "route:match/2 route:match/2 route:match/1 ab+cd route:gmatch/3 route:gmatch/2 0",
  );
  // only "hello" from 2 (4 + 6 = 10) and the words (5 + 3 = 8) are under 16: nothing tallied
  assert.equal(tally.take(), 0);
  assert.equal(
    run(
      `${QUICK}
      local m = lane.match(string.match, charge, route("match"), quick)
      return show(m(("a"):rep(20), "^(%a+)"))`,
      tally,
    ),
    "a".repeat(20),
  );
  assert.equal(tally.take(), 26);
});

Deno.test("fast lane: find and match begin a search too costly for C with its attempt at the start", {
  ignore,
}, () => {
  assertRun(
    `${QUICK}
      local m = lane.match(string.match, charge, route("match"), quick)
      local f = lane.find(string.find, charge, route("find"), quick)
      quick[1]["(%a+)="], quick[2]["(%a+)="] = 3, 3
      local first = {}
      for c = ("a"):byte(), ("z"):byte() do first[c] = true end
      local digits = {}
      for c = ("0"):byte(), ("9"):byte() do digits[c] = true end
      quick[1]["(%d+):"], quick[2]["(%d+):"] = 3, 3
      quick[6] = { ["(%a+)="] = { 30, "^(%a+)=", first, "compiled" },
        ["(%d+):"] = { 30, "^(%d+):", digits, "compiled", "()%d" } }
      quick[7] = function(isfind, s, p, pos, cp)
        return "resume:" .. table.concat({ tostring(isfind), s, p, pos, cp }, "/")
      end
      return table.concat({
        show(m("key=value", "(%a+)=")),          -- the rest of the subject and #p: 9 + 6, before
        show(f("x hello=1", "(%a+)=", 3)),       -- up to the end of the match and #p: 6 + 6, after
        show(f("hello world", "(%a+)=")),        -- no match there: resume goes on
        show(m("=value", "(%a+)=")),             -- '=' starts no match: the route
        show(m(("k"):rep(31), "(%a+)=")),        -- longer than the attempt's limit: the route
        show(m("key=value", "(%a+)=", 10)),      -- an empty rest: C's whole search, 0 + 6 not tallied
        show(f("key=value", "(%a+)=", 1, true)), -- plain: the route
        -- a char no match starts with, and a locator: the attempt starts where it finds one, the
        -- chars skipped charged (3, then the rest 5 + 6 before; 2, then 3 + 6 after)
        show(m("at 12:30", "(%d+):")), show(f("t=12:30", "(%d+):")),
        show(f("t=1x2:3", "(%d+):")),            -- the attempt at 1 fails: resume goes on
        show(m("no digits", "(%d+):")),          -- the locator finds none: the route
        show(#charged),
      }, " ")`,
    "key 3,8,hello resume:true/hello world/(%a+)=/1/compiled route:match/2 route:match/2 nil route:find/4 " +
      "12 3,5,12 resume:true/t=1x2:3/(%d+):/3/compiled route:match/2 0",
    // the failed attempt's skip (2) is tallied; what resume charges is the matcher's
    15 + 12 + 3 + 5 + 6 + 2 + 3 + 6 + 2,
  );
});

Deno.test("fast lane: the gsub entry calls C for a string replacement the quick table proves cheap", {
  ignore,
}, () => {
  assertRun(
    `${QUICK}
      local g = lane.gsub(string.gsub, charge, route("gsub"), quick)
      quick[3]["%s"] = { 2, ["-"] = 20, ["%1"] = -1 }
      return table.concat({
        show(g("a b", "%s", "-")),                 -- 3 + 2 < 16: nothing tallied
        show(g("a b", "%s", "-", nil)),
        show(g(("a b"):rep(6), "%s", "-")),        -- 18 + 2: tallied
        show(g(("a b"):rep(7), "%s", "-")),        -- longer than proved
        show(g("a b", "%s", "%1")),                -- never proved for this replacement
        show(g("a b", "%s", "+")),
        show(g("a b", "%s", "-", 1)),              -- a maximum: the route
        show(g("a b", "%s", function() end)),
        show(g("a b", "%s")),
        show(g("a b", "o+", "-")),
      }, " ")`,
    `a-b,1 a-b,1 ${"a-b".repeat(6)},6 route:gsub/3 route:gsub/3 route:gsub/3 route:gsub/4 route:gsub/3 ` +
      "route:gsub/2 route:gsub/3",
    20,
  );
});

Deno.test(
  "fast lane: the find entry calls C for what the quick table proves cheap and tallies the part searched",
  { ignore },
  () => {
    const tally = runTallied(
      `${QUICK}
      local f = lane.find(string.find, charge, route("find"), quick)
      local subject = ("x"):rep(15) .. "ooooo"
      return table.concat({
        show(f("foo", "o+")),
        show(f("foo", "o+", 1, true)),             -- plain: no limit in the quick table
        show(f("o", "oo+")),                       -- longer than the subject
        show(f("foooooooooob", "o+")),             -- 12 + 2 < 16: nothing tallied
        show(f(subject, "o+")),                    -- from 1 to the end of the match (20), plus 2
        show(f(subject, "o+", 1.5)),
        show(#charged),
      }, " ")`,
      "2,3 route:find/4 route:find/2 2,11 16,20 route:find/3 0",
    );
    assert.equal(tally.take(), 22);
    assert.equal(tally.take(), 0);
  },
);

Deno.test(
  "fast lane: a plain find is quick up to the matcher's limit over the pattern's length",
  { ignore },
  () => {
    // the subject o+ was not found: 20 searched, plus 2; then 19 + 4
    assertRun(
      `${QUICK}
      local f = lane.find(string.find, charge, route("find"), quick)
      quick[5] = 100
      local subject = ("x"):rep(15) .. "ooooo"
      local a = table.concat({
        show(f("foo", "o", 1, true)),            -- 3 + 1 < 16: nothing tallied
        show(f("foo", "o", nil, 1)),             -- any true value makes it plain
        show(f(subject, "ooooo", 1, true)),      -- 20 > 100 // 5 - 1
        show(f("foo", "", 1, true)),             -- an empty pattern: the route
        show(f("fo", "foo", 1, true)),           -- longer than the subject
        show(f(subject, "o+", 1, true)),         -- plain: not the quick pattern's limit
        show(f(subject, "oooo", 1, true)),       -- 20 <= 100 // 4 - 1: from 1 to 19, plus 4
      }, " ")
      quick[5] = 100.5
      local b = show(f(subject, "oooo", 1, true))
      quick[5] = nil
      local c = show(f(subject, "oooo", 1, true))
      return a .. " " .. b .. " " .. c`,
      "2,2 2,2 route:find/4 route:find/4 route:find/4 nil 16,19 route:find/4 route:find/4",
      22 + 23,
    );
  },
);

Deno.test(
  "fast lane: a find of plain text looks at its first 64 places itself, and hands C's find the rest",
  { ignore },
  () => {
    // the function handed over is not string.find: a result shows where the search went
    assertRun(
      `${QUICK}
      local function c_find(s, p, init, plain) return "c", init end
      local f = lane.find(c_find, charge, route("find"), quick)
      quick[5] = 1000000
      local long = ("x"):rep(100) .. ",y"
      return table.concat({
        show(f("a,b", ",", 1, true)), show(f("a,b", ",", 3, true)), show(f("a,b", ",", 4, true)),
        show(f("abab", "ba", 1, true)), show(f("aab", "ab", 1, true)), show(f(long, ",y", 40, true)),
        show(f(long, ",y", 38, true)), show(f(long, ",y", 37, true)), show(f(long, ",y", nil, true)),
        show(f(("x"):rep(64), ",", 1, true)), show(f(("x"):rep(65), ",", 1, true)),
        show(f("a.b", ".", 1, true)), show(table.concat(charged, "+")),
      }, " ")`,
      // from its start to the end of the match (or of the subject), plus the pattern, where 16 or
      // more, handed over at every step of 100: 65 + 67, 67 + 67, 65 + 66
      "2,2 nil route:find/4 2,3 2,3 101,102 101,102 c,101 c,65 nil c,65 2,2 132+134+131",
      0,
    );
  },
);

Deno.test("fast lane: the tally is charged once it reaches a step, before the call", { ignore }, () => {
  assertRun(
    `${QUICK}
      local m = lane.match(string.match, charge, route("match"), quick)
      local s = ("a"):rep(20)
      local out = {}
      for i = 1, 5 do m(s, "^(%a+)") out[i] = #charged end
      return table.concat(out, ",") .. " " .. charged[1]`,
    // 26 units a call: the fourth reaches 104 and charges it; the fifth starts again
    "0,0,0,1,1 104",
    26,
  );
});

Deno.test(
  "fast lane: find and match take C's whole search of a subject whose runs make it cheap, by the record kept under 9",
  { ignore },
  () => {
    const tally = newTally();
    assert.equal(
      run(
        `${QUICK}
      local function bitmap(first, last)
        local bytes = {}
        for i = 0, 31 do
          local b = 0
          for bit = 0, 7 do
            local c = i * 8 + bit
            if c >= first and c <= last then b = b | (1 << bit) end
          end
          bytes[i + 1] = string.char(b)
        end
        return table.concat(bytes)
      end
      local p, q = "(%d+):(%d+)", "(%l+)=(%d+)"
      quick[1][p], quick[2][p], quick[2][q] = 10, 10, 10
      -- the longest subjects cheap per key of the subject's runs for a search (1 plus the base-2
      -- logarithm of each class's longest run, rounded up to a power of 2, in 5 bits a class; none
      -- known for runs of 16 digits), and for a whole scan; the compiled pattern; the longest
      -- replacement string the scan's lengths stand for; the bitmaps
      local digits, letters = bitmap(48, 57), bitmap(97, 122)
      quick[9] = {
        [p] = { { [1] = 200, [2] = 100, [3] = 40, [4] = 30 }, {}, {}, 5, digits },
        -- runs of 2 digits and of 4 or 8 letters
        [q] = { { [1] = 200, [1 + 1 + (2 << 5)] = 40, [1 + 1 + (3 << 5)] = 30 }, {}, {}, 5, digits, letters },
      }
      local m = lane.match(string.match, charge, route("match"), quick)
      local f = lane.find(string.find, charge, route("find"), quick)
      local date = "on 2024-05-03 12:34 and then" -- 28 bytes, runs of 4 digits
      local shown = show(
        m(date, p), f(date, p, 2), m(date, p, 4.5),
        m("a 123456789 1:2", p),                  -- runs of 9: 16 not known, the route's to work out
        m(("1:2 "):rep(60), p),                   -- beyond runs of one char: the attempt (none kept), the route
        m("key=12 and value=7 in some text", q),  -- 31 bytes, runs of 5 letters (8): 30 is too short
        m("key=12 and val=7 in some text", q))
      return shown .. " charged " .. table.concat(charged, "+")`,
        tally,
      ),
      // match: 28 + 11 and 1 for the scan; find from 2 to the end of the match (at 19), 18 + 11, and 1
      // for the scan; the two scans of the search whose runs are too long, 1 each; then a step reached
      // by the last match, 29 + 11 and 2 scans of 1
      "12,15,route:match/3,route:match/2,route:match/2,route:match/2,key,12 charged 114",
    );
    assert.equal(tally.take(), 0);
    // gmatch and gsub by the lengths of a whole scan, a replacement string only up to the record's
    // longest (5 chars) and when the matcher found it valid
    assert.equal(
      run(
        `${QUICK}
      local p = "(%d+):(%d+)"
      local digits = {}
      for i = 0, 31 do digits[i + 1] = string.char(i == 6 and 0xff or i == 7 and 0x03 or 0) end
      quick[3][p] = { 4, ["%2:%1"] = 10, ["<%1-%2-%1>"] = 10, ["%3"] = -1, [true] = 10 }
      quick[4][p] = 10
      quick[8] = function(f, ...) return f(...) end
      quick[9] = { [p] = { {}, { [1] = 100, [3] = 40 }, {}, 5, table.concat(digits) } }
      local gm = lane.gmatch(string.gmatch, charge, route("gmatch"), quick)
      local gs = lane.gsub(string.gsub, charge, route("gsub"), quick)
      local date = "on 2024-05-03 12:34 and then"
      local found = {}
      for h, m in gm(date, p) do found[#found + 1] = h .. "/" .. m end
      return show(table.concat(found), gm(date .. " " .. date, p), (gs(date, p, "%2:%1")),
        gs(date, p, "<%1-%2-%1>"), gs(date, p, "%3"), (gs(date, p, function(h, m) return m .. h end)),
        gs("a 123456789 1:2 and some more", p, "%2:%1"), table.concat(charged, "+"))`,
        tally,
      ),
      "12/34,route:gmatch/2,on 2024-05-03 34:12 and then,route:gsub/3,route:gsub/3," +
        "on 2024-05-03 3412 and then,route:gsub/3,123",
    );
    // each of the three calls C took: 28 + 11 and 1 for the scan, and the scan of the subject whose
    // runs are too long (3); none for runs the record has no length for (the route scans again)
    assert.equal(tally.take(), 0);
  },
);

Deno.test(
  "fast lane: the nested entry calls in protected mode under its handler, raises the error again, and nests at most MAX_NESTED_CALLS deep",
  { ignore },
  () => {
    assertRun(
      `${QUICK}
      local handled = 0
      local nested = lane.nested(error, charge, route("nested"), function(e)
        handled = handled + 1
        return e
      end)
      local function dive(n)
        if n == 0 then return "bottom" end
        return nested(dive, n - 1)
      end
      local object = {}
      local ok1, e1 = pcall(nested, error, object)
      local ok2, e2 = pcall(nested, function() error("boom", 0) end)
      local before = handled
      -- a failed call leaves no call counted
      for _ = 1, 40 do pcall(nested, error, "again") end
      local failed = handled - before
      local g = lane.gsub(string.gsub, charge, route("gsub"), quick)
      quick[3]["%a"] = { 1, [true] = 20 }
      quick[8] = nested
      local ok3, e3 = pcall(g, "a b", "%a", function() error("inner", 0) end)
      return show(nested(function(a, b) return a + b, "x" end, 1, 2),
        ok1, e1 == object, ok2, e2, before,
        dive(${MAX_NESTED_CALLS}), dive(${MAX_NESTED_CALLS + 1}), failed,
        g("a b", "%a", string.upper), g("a b", "%a", { a = "x" }), g(("a b"):rep(8), "%a", string.upper),
        g("a b", "%a", string.upper, 1), ok3, e3)`,
      // (each call but the last gives its first result)
      "3,false,true,false,boom,2,bottom,route:nested/2,40,A B,x b,route:gsub/3,route:gsub/4,false,inner",
      0,
    );
  },
);

Deno.test(
  "fast lane: the format entry formats the kinds kept as needing no checks, charging the format and the result",
  { ignore },
  () => {
    const tally = newTally();
    assert.equal(
      run(
        `${QUICK}
      -- 1: no conversion, 2: no %s, 3: %s conversions, 4: %p to rewrite
      local kinds = { ["plain text"] = 1, ["%d items"] = 2, ["%s:%s"] = 3, ["%p"] = 4 }
      local f = lane.format(string.format, charge, route("format"), kinds)
      local long = ("%s"):rep(7)
      kinds[long] = 3
      return show(
        f("plain text", {}),
        f("%d items", 3),
        f("%s:%s", "a", 1),
        f("%s:%s", nil, true),
        f("%s:%s", {}, 1),            -- a table: its __tostring or address is Lua's to show
        f(long, 1, 2, 3, 4, 5, 6, 7), -- any number of plain arguments
        f(long, 1, 2, 3, 4, 5, 6, {}),
        f("%p", "x"),
        f("%x", 255),                 -- a kind not kept yet
        f(12, 1),
        f(), #charged)`,
        tally,
      ),
      "plain text,3 items,a:1,nil:true,route:format/3,1234567,route:format/8,route:format/2,route:format/2," +
        "route:format/2,route:format/0,0",
    );
    assert.equal(tally.take(), 0, "formats shorter than 16 bytes and results shorter than 16 cost nothing");
    assert.equal(
      run(
        `${QUICK}
      local f = lane.format(string.format, charge, route("format"), { ["%s and %s, sixteen+"] = 3 })
      return show(f("%s and %s, sixteen+", ("x"):rep(20), "y"))`,
        tally,
      ),
      `${"x".repeat(20)} and y, sixteen+`,
    );
    // the format (19 bytes, units) and the result (37 bytes: 2 units of 16)
    assert.equal(tally.take(), 19 + 2);
    assert.equal(
      run(
        `${QUICK}
      local long = ("y"):rep(60 * 16)
      local f = lane.format(string.format, charge, route("format"), { ["%s"] = 3 })
      local first = select("#", f("%s", long))
      local second = select("#", f("%s", long))
      return show(first, second, #charged, charged[1])`,
        tally,
      ),
      // 60 units after each call: the second reaches the step and charges all 120 at once
      "1,1,1,120",
    );
    assert.equal(tally.take(), 0);
  },
);

Deno.test(
  "fast lane: the format entry makes a %q of a number or a short string, charging each quote's bytes and escapes",
  { ignore },
  () => {
    const tally = newTally();
    const run5 = (calls: string) =>
      run(
        `${QUICK}
      -- 5: %q conversions, without %p
      local kinds = { ["%q:%d"] = 5, ["%q"] = 5, ["%%q %s %q"] = 5, ["%5q"] = 5 }
      local f = lane.format(string.format, charge, route("format"), kinds)
      local shown = show(${calls})
      local units = tally_units or 0
      for _, charged_units in ipairs(charged) do units = units + charged_units end
      return shown .. "|" .. units`,
        tally,
      );
    // "k" quotes as 3 bytes (1 unit: 1 byte, no escape); a '"', a backslash and a newline add one
    // byte each, a control char its digits (three before a digit): 4 + 24 * (1 + 1 + 1 + 2 + 3)
    assert.equal(
      run5(`f("%q:%d", "k", 7), f("%q", 0.5), f("%%q %s %q", "s", "a\\"\\\\\\n\\r\\0" .. "1")`),
      `"k":7,0x1p-1,%q s "a\\"\\\\\\\n\\13\\0001"|${1 + 7 + 24 * 8}`,
    );
    // and the third result's 20 bytes, which leave 1 unit in the tally
    assert.equal(tally.take(), 1);
    assert.equal(
      run5(
        `f("%q", ("x"):rep(${QUOTE_PIECE})), f("%q", ("x"):rep(${
          QUOTE_PIECE + 1
        })), f("%q", true), f("%q", {}),
        f("%q:%d", nil, 1), f("%q:%d")`,
      ).replace(/x+/g, "x"),
      `"x",route:format/2,route:format/2,route:format/2,route:format/3,route:format/1|${QUOTE_PIECE + 256}`,
    );
    // the quote of QUOTE_PIECE bytes and its result (4098 bytes, 256 units), each past the step
    assert.equal(tally.take(), 0);
  },
);

Deno.test(
  "fast lane: the bytes entry charges the string it hands to the function and returns its result",
  { ignore },
  () => {
    assertRun(
      `${QUICK}
      local upper = lane.bytes(string.upper, charge, route("upper"))
      local reverse = lane.bytes(string.reverse, charge, route("reverse"))
      local lower = lane.bytes(string.lower, charge, route("lower"))
      local number = lane.bytes(tonumber, charge, route("tonumber"))
      local length = lane.bytes(utf8.len, charge, route("len"))
      local out = { show(upper("abc")), show(reverse(("ab"):rep(20))), show(lower(12)), show(number("ff", 16)) }
      -- 2 units tallied (40 bytes), then 97: 99, under the step
      out[5] = show(#upper(("z"):rep(97 * 16)), #charged)
      -- 2 more reach it: all 101 are charged before the call
      out[6] = show(upper(("z"):rep(32)), #charged, charged[1])
      -- every result: utf8.len fails with the position of the bad byte
      out[7] = show(length("h\\xffllo"))
      return table.concat(out, " ")`,
      `ABC ${"ba".repeat(20)} 12 255 1552,0 ${"Z".repeat(32)},1,101 nil,2`,
      0,
    );
  },
);

Deno.test("fast lane: the plain entry calls the function on a value no metamethod shows", { ignore }, () => {
  assert.equal(
    run(`${QUICK}
      local show_value = lane.plain(tostring, charge, route("tostring"))
      return table.concat({
        show(show_value(7)), show(show_value(1.5)), show(show_value(nil)), show(show_value(true)),
        show(show_value("text", 2)), show(show_value({})), show(show_value()), show(#charged),
      }, " ")`),
    "7 1.5 nil true text route:tostring/1 route:tostring/0 0",
  );
});

Deno.test(
  "fast lane: the few entry calls the function with at most the arguments it keeps, and charges its results unless few",
  { ignore },
  () => {
    // 15 results or fewer are few; the 40 are tallied
    assertRun(
      `${QUICK}
      local byte = lane.few(string.byte, charge, route("byte"), 3)
      return table.concat({
        show(byte("abc")), show(byte("abc", 2)), show(byte("abc", 9)), show(byte("abc", 1, 3)),
        show(byte("abc", 1, nil)), select("#", byte(("x"):rep(40), 1, 40)), show(byte("abc", 1, 3, 4)),
        show(#charged),
      }, " ")`,
      "97 98  97,98,99 97 40 route:byte/4 0",
      40,
    );
  },
);

Deno.test(
  "fast lane: the byte entry makes few results of a string's positions itself, and any other call as the few entry",
  { ignore },
  () => {
    // the function handed over is not string.byte: a result shows who made it
    assertRun(
      `${QUICK}
      local function made(...) return "called", select("#", ...) end
      local byte = lane.byte(made, charge, route("byte"), 3)
      return table.concat({
        show(byte("abc")), show(byte("abc", 2)), show(byte("abc", -1)), show(byte("abc", 1, -1)),
        show(byte("abc", nil, 2)), show(byte("abc", 2, nil)), show(byte("héllo", 2, 3)),
        show(byte("abc", 0)), show(byte("abc", 4)), show(byte("abc", -4)), show(byte("abc", 3, 2)),
        show(byte("abc", 2.0)), show(byte("abc", "2")), show(byte(12)), show(byte("")),
        show(byte(("x"):rep(40), 1, 16)), show(byte(("x"):rep(40), 1, 15) == 120), show(byte("abc", 1, 3, 4)),
        show(#charged),
      }, " ")`,
      "97 98 99 97,98,99 97,98 98 195,169 called,2 called,2 called,2 called,3 called,2 called,2 called,1 " +
        "called,1 called,3 true route:byte/4 0",
      0,
      "what it makes itself is fewer results than are charged",
    );
  },
);

Deno.test(
  "fast lane: next, rawget and rawlen are done in C for a table and for the table a view shows",
  { ignore },
  () => {
    assert.equal(
      run(`${QUICK}
      local view, library, counted = {}, {}, {}
      local shown_counted = setmetatable({ 1, 2 }, { __len = function() return 9 end })
      local views = { [view] = { 1 }, [library] = function() end, [counted] = shown_counted }
      local next_entry = lane.next(nil, charge, route("next"), views)
      local rawget_entry = lane.rawget(nil, charge, route("rawget"), views)
      local rawlen_entry = lane.rawlen(nil, charge, route("rawlen"), views)
      local shadowed = setmetatable({ 1, 2 }, { __index = function() return "meta" end, __len = function() return 9 end })
      return table.concat({
        show(next_entry({ 5 })), show(next_entry({})), show(next_entry({ 5 }, 1)), show(next_entry(view)),
        show(next_entry(view, 1)), show(next_entry(library)), show(next_entry(counted, 2)),
        show(next_entry("text")), show(next_entry()), show(pcall(next_entry, {}, "absent")),
        show(rawget_entry({ a = 1 }, "a")), show(rawget_entry(shadowed, "x")), show(rawget_entry({ a = 1 })),
        show(rawget_entry(view, 1)), show(rawget_entry(library, 1)),
        show(rawlen_entry("abc")), show(rawlen_entry(shadowed)), show(rawlen_entry(view)), show(rawlen_entry(5)),
        show(rawlen_entry(library)), show(rawlen_entry(counted)),
        show(#charged),
      }, " ")`),
      "1,5 nil nil 1,1 nil route:next/1 nil route:next/1 route:next/0 false,invalid key to 'next' " +
        "1 nil route:rawget/1 1 route:rawget/2 3 2 1 route:rawlen/1 route:rawlen/1 route:rawlen/1 0",
    );
  },
);

Deno.test(
  "fast lane: sort, unpack and remove of a table without a metatable are charged as their routes charge them",
  { ignore },
  () => {
    assertRun(
      `${QUICK}
      local sort = lane.sort(table.sort, charge, route("sort"))
      local unpack = lane.unpack(table.unpack, charge, route("unpack"))
      local remove = lane.remove(table.remove, charge, route("remove"))
      local t = { 3, 1, 2 }
      sort(t)
      local down = { 1, 2, 3, 4, 5, 6, 7, 8 }
      sort(down, function(a, b) return a > b end)
      local meta = setmetatable({ 2, 1 }, {})
      return table.concat({
        table.concat(t, ","), table.concat(down, ","),       -- 3 * 2 and 8 * 4 units
        show(sort(meta)), show(sort({}, nil, 1)),
        show(unpack({ 1, 2, 3 })), show(unpack({ 1, 2, 3 }, 2)), show(unpack({ 1, 2, 3 }, 2.5)), show(unpack(meta)),
        show(remove({ 1, 2, 3 })), show(remove({})), show(remove(meta)),
        show(remove(down, 1)), table.concat(down, ","),        -- 7 items moved down
        show(remove(down, 8)), show(remove(down, 7)), show(remove({}, 0)), show(remove(down, 0)),
        show(remove(down, 9)), show(remove(down, 1.0)),
        show(#charged),
      }, " ")`,
      "1,2,3 8,7,6,5,4,3,2,1 route:sort/1 route:sort/3 1,2,3 2,3 route:unpack/2 route:unpack/1 3 nil " +
        "route:remove/1 8 7,6,5,4,3,2,1 nil 1 nil route:remove/2 route:remove/2 route:remove/2 0",
      3 * 2 + 8 * 4 + 7,
    );
  },
);

Deno.test(
  "fast lane: setmetatable replaces a metatable in C unless it is protected or the new one has a __gc",
  { ignore },
  () => {
    assert.equal(
      run(
        `${QUICK}
      local set = lane.setmetatable(nil, charge, route("setmetatable"), { "__gc", "__metatable" })
      local Base, Leaf, o = {}, {}, {}
      local locked = setmetatable({}, { __metatable = false })
      return table.concat({
        show(set(o, Base) == o, getmetatable(o) == Base),
        show(set(o, Leaf) == o, getmetatable(o) == Leaf),
        show(set(o, nil, 3) == o, getmetatable(o)),
        show(set(locked, {})), show(set(locked, nil)), show(set({}, { __gc = print })),
        show(set(o, { __gc = false })), show(set({})), show(set(1, {})), show(set({}, 1)),
        show(#charged),
      }, " ")`,
      ),
      "true,true true,true true,nil route:setmetatable/2 route:setmetatable/2 route:setmetatable/2 " +
        "route:setmetatable/2 route:setmetatable/1 route:setmetatable/2 route:setmetatable/2 0",
    );
  },
);

Deno.test(
  "fast lane: string.pack and string.unpack are charged their format's bytes, the bytes they read and made, and many results",
  { ignore },
  () => {
    const tally = runTallied(
      `${QUICK}
      local pack = lane.stringPack(string.pack, charge, route("pack"))
      local unpack = lane.stringUnpack(string.unpack, charge, route("unpack"))
      local record = pack("<i4i4d", 1, 2, 0.5)
      local long = pack("c64", "x")
      local wide = pack(string.rep("i1", 20), table.unpack({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20 }))
      return table.concat({
        #record, show(unpack("<i4i4d", record)), #long, show(select("#", unpack(string.rep("i1", 20), wide))),
        show(pcall(pack, {})), show(pcall(unpack, "i4", "ab")), show(charged[1]),
      }, " ")`,
      "16 1,2,0.5,17 64 21 false,bad argument #1 to 'string.pack' (string expected, got table) " +
        "false,bad argument #2 to 'string.unpack' (data string too short) 103",
    );
    // packed: 6 (the format) + 16 / 16, 3 + 64 / 16, 40 + 20 / 16; unpacked: 6 + 16 / 16, 40 + 20 / 16 and 21
    // results; 2 (a format): the tally handed over once it reached a step (100), and the rest
    assert.equal(103 + tally.take(), 7 + 7 + 41 + 7 + 62 + 2);
  },
);

Deno.test("fast lane: a sort of SORT_IN_C_ITEMS items goes to the route, one of fewer is made in C", {
  ignore,
}, () => {
  assert.equal(
    run(`${QUICK}
      local sort = lane.sort(table.sort, charge, route("sort"))
      local function items(n) local t = {} for i = 1, n do t[i] = n - i end return t end
      local fewer, many = items(${SORT_IN_C_ITEMS - 1}), items(${SORT_IN_C_ITEMS})
      local made = select("#", sort(fewer))
      return table.concat({ made, fewer[1], fewer[#fewer], show(sort(many)), many[1], #charged > 0 and "charged" or "" }, " ")`),
    `0 0 ${SORT_IN_C_ITEMS - 2} route:sort/1 ${SORT_IN_C_ITEMS - 1} charged`,
  );
});

Deno.test(
  "fast lane: the rep entry charges the repetitions and the result's bytes first, up to a step's bytes",
  { ignore },
  () => {
    assertRun(
      `${QUICK}
      local rep = lane.rep(string.rep, charge, route("rep"))
      return table.concat({
        show(rep("ab", 3)),                        -- 3 repetitions, 6 bytes: nothing to charge
        show(rep("ab", 3, nil)),
        show(#rep("ab", 20, "-")),                 -- 20 repetitions and 59 bytes (3 units): 23
        show(rep("ab", 0)), show(rep("ab", -5)),
        show(rep("ab", 2.0)),                      -- a float count: the route converts it
        show(rep("ab", "3")),
        show(rep(12, 3)),                          -- a number: the route
        show(rep("ab", 3, 1)),
        show(rep("ab", 800)),                      -- 1,600 bytes, a step's: the route charges first
        show(rep("a", math.maxinteger)),
        show(rep("ab", 2, "-", 1)),
        show(#charged),
      }, " ")`,
      "ababab ababab 59   route:rep/2 route:rep/2 route:rep/2 route:rep/3 route:rep/2 route:rep/2 route:rep/4 0",
      23,
    );
  },
);

Deno.test(
  "fast lane: the concat entry joins a table without a metatable between integer positions",
  { ignore },
  () => {
    assertRun(
      `${QUICK}
      local c = lane.concat(table.concat, charge, route("concat"))
      local t = { 1, 2, 3 }
      local twenty = {}
      for i = 1, 20 do twenty[i] = "x" end
      return table.concat({
        show(c(t, ",")),
        show(c(t)),
        show(c(t, "", 2, 3)),
        show(c(t, "", math.maxinteger - 5)),  -- an empty range: nothing to charge
        show(c(t, "", 2.0)),                  -- a float position: the route converts it
        show(c(t, "", 1, nil)),
        show(c(setmetatable({}, {}), "")),
        show(c("t", "")),
        show(c(t, "", 1, 2, 5)),
        show(c(twenty, "")),                  -- 20 items, and a result of 20 bytes: 21
        show(c({}, "", 1, 200)),              -- a step or more: the route charges it first
        show(#charged),
      }, " ")`,
      `1,2,3 123 23  route:concat/3 123 route:concat/2 route:concat/2 route:concat/5 ${"x".repeat(20)} ` +
        "route:concat/4 0",
      21,
    );
  },
);

Deno.test("fast lane: an error in the function an entry calls is the function's own", { ignore }, () => {
  assert.equal(
    run(`${QUICK}
      local format = lane.format(string.format, charge, route("format"), { ["%d"] = 2 })
      local upper = lane.bytes(string.upper, charge, route("upper"))
      local function message(f, ...) return select(2, pcall(f, ...)) end
      return table.concat({
        message(format, "%d", 1.5),
        message(string.format, "%d", 1.5),
        message(upper, nil),
        message(string.upper, nil),
        message(upper),
        message(string.upper),
      }, " | ")`),
    [
      "bad argument #2 to 'string.format' (number has no integer representation)",
      "bad argument #2 to 'string.format' (number has no integer representation)",
      "bad argument #1 to 'string.upper' (string expected, got nil)",
      "bad argument #1 to 'string.upper' (string expected, got nil)",
      "bad argument #1 to 'string.upper' (string expected, got no value)",
      "bad argument #1 to 'string.upper' (string expected, got no value)",
    ].join(" | "),
  );
});

Deno.test("fast lane: the charge an entry calls may raise, and the call is not made", { ignore }, () => {
  assertRun(
    `${QUICK}
      local calls = 0
      local function counted(s) calls = calls + 1 return s end
      local f = lane.bytes(counted, function(units) error("limit: " .. units, 0) end, route("f"))
      local ok, err = pcall(f, ("z"):rep(100 * 16))
      return show(ok, err, calls)`,
    "false,limit: 100,0",
    0,
  );
});

Deno.test("fast lane: a closure without a tally makes no entry", { ignore }, () => {
  assert.equal(
    run(
      `${QUICK}
      return show(lane.match(string.match, charge, route("match"), quick), lane.append(nil, charge, route("insert")))`,
      null,
    ),
    "false,false",
  );
});

Deno.test("fast lane: an operation that is no entry makes none", { ignore }, () => {
  assert.equal(
    run(
      `${QUICK}
      return show(make(1, string.match, charge, route("match")), make(27, string.match, charge, route("match")),
        make("find", string.find, charge, route("find")), make(nil, string.find, charge, route("find")))`,
    ),
    "false,false,false,false",
  );
});

Deno.test(
  "fast lane: the locate entry passes what code with lines, the kept raisers and non-strings raised; the route takes the rest",
  { ignore },
  () => {
    // index_nil is on the last line of QUICK
    const line = QUICK.split("\n").length;
    assert.equal(
      run(`${QUICK}local function index_nil() local t; return t.x end
      local locate = lane.locate(nil, charge, function(e) return "route:" .. e end,
        { [error] = true, [assert] = "bad argument" })
      local stripped = load(string.dump(index_nil, true), "=stripped", "b")
      local function failed(f, ...) return select(2, xpcall(f, locate, ...)) end
      return table.concat({
        failed(index_nil),
        failed(error, "raised by error"),
        type(failed(error, {})),
        failed(string.rep),
        failed(stripped),
        show(locate("one", "two")),
        failed(assert, false, "raised by assert"),
        failed(assert, false, "bad"),
        failed(assert),
      }, " | ")`),
      `lane:${line}: attempt to index a nil value (local 't') | raised by error | table | ` +
        "route:bad argument #1 to 'string.rep' (string expected, got no value) | " +
        "route:?:-1: attempt to index a nil value | route:one | raised by assert | bad | " +
        "route:bad argument #1 to 'assert' (value expected)",
    );
  },
);

Deno.test("fast lane: the clock entry reads the thread's CPU clock, as threadCpuMs does", { ignore }, () => {
  const before = threadCpuMs();
  const [first, second] = run(`${QUICK}local clock = lane.clock(nil, charge, route("clock"))
      local first = clock()
      local n = 0
      for i = 1, 2e6 do n = n + i end
      return string.format("%.6f %.6f", first, clock())`).split(" ").map(Number);
  const after = threadCpuMs();
  // the entry reads whole microseconds
  assert.ok(
    before - 0.001 <= first && first < second && second <= after,
    `${before} ${first} ${second} ${after}`,
  );
});

Deno.test(
  "fast lane: a first reading of the clock entry also answers the run's CPU start",
  { ignore },
  () => {
    const clock = new RunClock(1000);
    const started = monotonicMs() - 40;
    clock.begin(started, -Infinity);
    const before = threadCpuMs();
    const code = `${QUICK}local clock = lane.clock(nil, charge, route("clock"))
      return string.format("%.6f %.6f", clock(true))`;
    // a run that began 40 ms ago and was not read yet: its CPU start is back-dated by its wall time
    const [now, start] = run(code, newTally(clock)).split(" ").map(Number);
    const after = monotonicMs();
    assert.ok(before - 0.001 <= now && now <= threadCpuMs(), `${before} ${now}`);
    assert.ok(start <= now - 40 && start >= now - (after - started) - 0.001, `${now} ${start}`);
    // read once: a later first reading of the same run answers the same start
    const [, again] = run(code, newTally(clock)).split(" ").map(Number);
    assert.equal(again, start);
  },
);

Deno.test(
  "fast lane: a first reading after the thread waited starts the run's CPU clock at its floor, not its wall time",
  { ignore },
  () => {
    const clock = new RunClock(20);
    const floor = threadCpuMs();
    clock.begin(monotonicMs(), floor);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60);
    const code = `${QUICK}local clock = lane.clock(nil, charge, route("clock"))
      return string.format("%.6f %.6f", clock(true))`;
    const [now, start] = run(code, newTally(clock)).split(" ").map(Number);
    // 60 ms of wall time, a few of CPU at most: back-dated by the wait, the start would be 60 ms ago
    assert.ok(Math.abs(start - floor) < 0.001, `${floor} ${start}`);
    assert.ok(now - start < 20, `${now} ${start}`);
  },
);

Deno.test(
  "fast lane: within the CPU limit, a later reading is the wall time since the run began, with no system call",
  { ignore },
  () => {
    const code = `${QUICK}local clock = lane.clock(nil, charge, route("clock"))
      local now, start = clock(true)
      local n = 0
      for i = 1, 2e5 do n = n + i end
      return string.format("%.6f %.6f", start, clock())`;
    // a run that began 40 ms ago with 1 s to use: the reading stands at the start plus the wall time
    const roomy = new RunClock(1000);
    const began = monotonicMs() - 40;
    roomy.begin(began, -Infinity);
    const [start, later] = run(code, newTally(roomy)).split(" ").map(Number);
    const wall = monotonicMs() - began;
    const cpu = threadCpuMs();
    assert.ok(later >= start + 40 && later <= start + wall + 0.001, `${start} ${later} ${wall}`);
    assert.ok(later >= cpu - 1, `an upper bound of the CPU clock: ${later} against ${cpu}`);
    // past the limit in wall time, the CPU clock itself is read
    const tight = new RunClock(10);
    tight.begin(monotonicMs() - 40);
    const before = threadCpuMs();
    const [, read] = run(code, newTally(tight)).split(" ").map(Number);
    assert.ok(before - 0.001 <= read && read <= threadCpuMs(), `${before} ${read}`);
  },
);

Deno.test(
  "fast lane: the past entry answers whether the run is past its CPU deadline, starting the run clock's CPU time",
  { ignore },
  () => {
    const code = `${QUICK}local past = lane.past(nil, charge, route("past"))
      return tostring(past())`;
    // a run just begun: no reading in its first millisecond, and nothing started
    const young = new RunClock(1000);
    young.begin(monotonicMs(), -Infinity);
    assert.equal(run(code, newTally(young)), "false");
    assert.equal(young.readCpuStart(), undefined);
    // 40 ms in, with a second to use: the first reading starts the CPU clock, back-dated by its wall time
    const roomy = new RunClock(1000);
    roomy.begin(monotonicMs() - 40, -Infinity);
    assert.equal(run(code, newTally(roomy)), "false");
    const start = roomy.readCpuStart();
    assert.ok(start !== undefined && start <= threadCpuMs() - 40, `${start}`);
    // 40 ms in, with 10 to use and no floor: past it
    const tight = new RunClock(10);
    tight.begin(monotonicMs() - 40, -Infinity);
    assert.equal(run(code, newTally(tight)), "true");
  },
);

Deno.test("fast lane: the frame entry answers as debug.getinfo's lf, without a table", { ignore }, () => {
  assert.equal(
    run(`${QUICK}local frame = lane.frame(nil, charge, route("frame"))
      local function info(level)
        local i = debug.getinfo(level + 1, "lf")
        return i.currentline, i.func
      end
      local function compare(level)
        -- one line: the caller's current line is the same for both
        local line, f = frame(level) local info_line, info_f = info(level)
        return line == info_line and f == info_f
      end
      local function inner() return compare(1), compare(2), compare(3) end
      return table.concat({
        show(inner()), show(select("#", frame(1000))), show(select("#", frame(0))), show(frame()), show(frame("1")),
      }, " ")`),
    "true,true,true 0 0 route:frame/0 route:frame/1",
  );
});

// The decide entry's tests: QUICK, then a run state as the kernel's run_state holds it, and a
// policy's globals that are their own _G
const DECIDE = `${QUICK}local dirty, active, current_env, count = false, false, nil, 0
  local function run_state() return dirty, active, current_env, count end
  local env = {}
  env._G = env
`;

Deno.test("fast lane: the decide entry calls the decision function with the run state set around it", {
  ignore,
}, () => {
  assert.equal(
    run(`${DECIDE}count = 7
      local during
      local meta = { env = env, data = 10 }
      function meta.fn(input, data)
        during = show(active, current_env == env)
        if input.fail then error(input.fail, 0) end
        return input.x + data, "why"
      end
      local function handler(e) return "handled " .. tostring(e) end
      local decide = lane.decide(run_state, charge, route("decide"), { handler, "env", "_G", "fn", "data" })
      local out = { show(decide(meta, { x = 1 })), during, show(active, current_env == env) }
      out[#out + 1] = show(decide(meta, { fail = "boom" })) .. " " .. show(active)
      out[#out + 1] = show(decide(meta, { fail = {} })):match("^false,7,handled table: ") and "table" or "?"
      return table.concat(out, " ")`),
    "true,7,11,why true,true false,true false,7,handled boom,nil false table",
  );
});

Deno.test("fast lane: the decide entry hands a decision to its route unless the run state is clean", {
  ignore,
}, () => {
  assert.equal(
    run(`${DECIDE}local meta = { env = env, fn = function() return true end }
      local decide = lane.decide(run_state, charge, route("decide"), { print, "env", "_G", "fn", "data", "chunk", {} })
      local out = { show(decide(meta, {})) }
      dirty = true
      out[#out + 1] = show(decide(meta, {}))
      dirty, active = false, "no flag"
      out[#out + 1] = show(decide(meta, {}))
      active = false
      -- a table of globals to make, where meta has no chunk to give it to
      meta.env = nil
      out[#out + 1] = show(decide(meta, {}))
      meta.env = env
      out[#out + 1] = show(decide(meta)) .. " " .. show(decide(meta, {}, 3)) .. " " .. show(decide("meta", {}))
      return table.concat(out, " ") .. " " .. show(active, meta.env == env)`),
    "true,0,true,nil route:decide/2 route:decide/2 route:decide/2 route:decide/1 route:decide/3 route:decide/2 false,true",
  );
});

Deno.test("fast lane: the start entry runs a function with the run state set around it", { ignore }, () => {
  assert.equal(
    run(`${DECIDE}count = 5
      local during
      local function f(a, b)
        during = show(active, current_env == env)
        if a == "fail" then error(b, 0) end
        return a, b, nil
      end
      local function handler(e) return "handled " .. tostring(e) end
      local start = lane.start(run_state, charge, route("start"), { handler, false, "_G", "overflow" })
      current_env = env
      local out = { show(start(f, 1, 2)), during, show(active) }
      out[#out + 1] = show(start(f)) .. " " .. show(start(f, "fail", "boom")) .. " " .. show(active)
      out[#out + 1] = show(start(f, "fail", {})):match("^false,5,handled table: ") and "table" or "?"
      -- many results
      local ok, counted, first, n = start(function() return 1, table.unpack({}, 1, 9999) end)
      out[#out + 1] = show(ok, counted, first, n, select("#", start(table.unpack, {}, 1, 9999)))
      return table.concat(out, " ")`),
    "true,5,1,2,nil true,true false true,5,nil,nil,nil false,5,handled boom false table true,5,1,nil,10001",
  );
});

Deno.test("fast lane: the start entry takes a chunk's last globals again, and routes any other run", {
  ignore,
}, () => {
  assert.equal(
    run(`${DECIDE}local envs = setmetatable({}, { __mode = "k" })
      local function chunk() return current_env end
      local start = lane.start(run_state, charge, route("start"), { print, envs, "_G", "overflow" })
      -- untouched: the one key _G, the table itself
      envs[chunk] = env
      current_env = nil
      local out = { show(select(3, start(chunk)) == env) }
      -- no globals yet, globals with a key more, a _G that is another table, an empty table
      envs[chunk] = nil
      out[#out + 1] = show(start(chunk, 1))
      env.x = 1
      envs[chunk] = env
      out[#out + 1] = show(start(chunk))
      env.x = nil
      env._G = {}
      out[#out + 1] = show(start(chunk))
      envs[chunk] = {}
      out[#out + 1] = show(start(chunk))
      -- a dirty run state, an active flag that is no boolean, no function
      env._G = env
      envs[chunk] = env
      dirty = true
      out[#out + 1] = show(start(chunk))
      dirty, active = false, "no flag"
      out[#out + 1] = show(start(chunk))
      active = false
      out[#out + 1] = show(start())
      return table.concat(out, " ") .. " " .. show(select(3, start(chunk)) == env, active)`),
    "true route:start/2 route:start/1 route:start/1 route:start/1 route:start/1 route:start/1 route:start/0 true,false",
  );
});

Deno.test("fast lane: the decide entry makes a policy new globals where the last ones are not its own", {
  ignore,
}, () => {
  assert.equal(
    run(`${DECIDE}local envs = setmetatable({}, { __mode = "k" })
      local compared = 0
      local meta = {}
      -- the policy's chunk, whose first upvalue is its globals, and its decision function
      do
        local _ENV = { seen = false }
        meta.chunk = function() return _ENV end
        meta.fn = function(input) seen = input return _ENV end
      end
      local decide = lane.decide(run_state, charge, route("decide"), { print, "env", "_G", "fn", "data", "chunk", envs })
      local made = {}
      local function check(label)
        local ok, _, globals = decide(meta, label)
        local env = meta.env
        made[#made + 1] = label .. ":" .. show(ok, globals == env, env._G == env, rawget(env, "seen"),
          getmetatable(env) == meta, envs[env] == meta, meta.chunk() == env, current_env == env)
        return env
      end
      local first = check("none")
      local again = check("reused")
      first._G = setmetatable({}, { __eq = function() compared = compared + 1 return true end })
      local third = check("replaced")
      return table.concat(made, " ") .. " " .. show(first == again, third ~= first, compared)`),
    "none:true,true,true,none,true,true,true,true reused:true,true,true,reused,true,true,true,true " +
      "replaced:true,true,true,replaced,true,true,true,true true,true,0",
  );
});

Deno.test("fast lane: the run entry finds the longest run of a set's chars, charging the subject as bytes", {
  ignore,
}, () => {
  assertRun(
    `${QUICK}local run = lane.run(nil, charge, route("run"))
      -- the 32-byte bitmap of the chars of a class ("C" locale): bit c & 7 of byte c >> 3
      local function bits(class)
        local bytes = {}
        for i = 0, 31 do
          local b = 0
          for bit = 0, 7 do
            if string.char(i * 8 + bit):find("^" .. class) then b = b | (1 << bit) end
          end
          bytes[i + 1] = string.char(b)
        end
        return table.concat(bytes)
      end
      local digits, not_slash = bits("%d"), bits("[^/]")
      local long = ("x"):rep(40) .. "/" .. ("y"):rep(600)
      return table.concat({
        show(run("12:345:6", digits), run("", digits), run("abc", digits), run("2024-05-03 12:34:56", digits)),
        -- the run at the start, '\0' in the set, the longest at the end
        show(run("abc\0/de", not_slash), run(long, not_slash), run(("/"):rep(5), not_slash)),
        -- not a string and a 32-byte string: the route's
        show(run(12345, digits), run("12", digits:sub(2)), run("12"), run(nil, digits)),
      }, " ")`,
    "3,0,0,4 4,600,0 route:run/2,route:run/2,route:run/1,route:run/2",
    // a unit per 16 bytes: 19 bytes, then 641
    1 + 40,
  );
});

Deno.test("fast lane: none for LuaJIT and Lua before 5.3", () => {
  const expected = !library.isLuaJIT && (library.version === "5.3" || library.version === "5.4") &&
    runsEmbeddedCode();
  assert.equal(lane !== undefined, expected);
});

Deno.test("the embedded bytes were built from the current ffi/fast_lane.c", () =>
  assertBuiltFromSource("fast_lane"));

// what the harness's called function returns: a string of 40 bytes
const FORTY_BYTES = `  returned 1: "${"0123456789".repeat(4)}"`;
// the locate entry's look at the raiser (level 1) and the frame above it, in the harness's calls
const PAST_THE_RAISER = [
  "  getstack 1 -> 1",
  "  getinfo lf -> line -1, type6",
  "  checkstack 16 -> 1",
  "  getstack 2 -> 1",
  "  getinfo lf -> line -1, type6",
];
// ...then on to sandbox code at line 7 (level 3), and the name it called the function below by
const TO_SANDBOX_CODE = [
  ...PAST_THE_RAISER,
  "  getstack 3 -> 1",
  "  getinfo lf -> line 7, type6",
  "  getstack 2 -> 1",
  "  getstack 3 -> 1",
  "  getinfo n -> line -1, type6",
];

// the arm entry's calls for a new run: the kernel's hook kept in the registry under the state's
// address, the main thread's extra space set; then the hook installed on the running thread, every 64
// instructions
const ARMING = [
  "  rawsetp -1001000 state: function",
  "  rawgeti -1001000 1 -> thread#1",
  "  tothread -1 -> main",
];
const ARMED = [...ARMING, "  sethook running 8 64"];
// two firings of 64 on a small heap: at 128 the count has passed the step (100) and goes to the kernel's hook
const TWO_FIRINGS_TO_A_STEP = [
  "  the hook fires",
  "  gc 3 -> 100",
  "  counted 64",
  "  the hook fires",
  "  rawgetp -1001000 state -> function",
  "  pushinteger 128",
  "  pushboolean 0",
  "  callk 2 1 0 NULL: function",
];
// what follows the kernel's hook: whether it took the instructions, and the hook set again
const TAKEN = ["  toboolean -1 -> 0", "  settop -2", "  sethook running 8 64"];
const KEPT = ["  toboolean -1 -> 1", "  settop -2", "  sethook running 8 64"];

Deno.test(
  "fast lane: the x86_64 and aarch64 code make the same calls and answer alike",
  { ignore: crossToolsMissing() },
  async () => {
    await withHarness("fast_lane_harness", async (harness, dir) => {
      const transcripts: string[] = [];
      for (const arch of ["x86_64", "aarch64"] as const) {
        await Deno.writeFile(`${dir}/${arch}.code`, embeddedBytes(FAST_LANE_CODE, arch));
        transcripts.push(await harness(arch, [`${dir}/${arch}.code`]));
      }
      assert.equal(transcripts[1], transcripts[0]);
      const [entries, countHook] = transcripts[0].split(/\n(?=arm: the running thread)/);
      // each scenario's calls (to the library's function, the charge or the route), answer and tally
      const answers = entries.split("\n").filter((line) =>
        /^\S|callk|returned|tally| {2}(rawset|setmetatable|rawseti|getstack|getinfo|pcallk|stack:|next|pushnil|checkstack|nested calls)( |$)/
          .test(
            line,
          )
      );
      assert.deepEqual(answers, [
        "find, proved cheap: the part searched tallied after the call",
        "  callk 2 -1 0 NULL: function",
        "  returned 2: 16 20",
        "  tally 22",
        "find, plain, not found: searched here",
        "  pushnil",
        "  returned 1: nil",
        "  tally 23",
        "find, plain, found here",
        "  returned 2: 16 19",
        "  tally 23",
        "find, plain, past the first 64 places: C's find from there",
        "  callk 4 -1 0 NULL: function",
        "  returned 2: 71 71",
        "  tally 72",
        "find, a pattern without specials and no start, past the first 64 places: C's find from there",
        "  callk 3 -1 0 NULL: function",
        "  returned 2: 71 71",
        "  tally 72",
        "find, a float start: the route",
        "  callk 3 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "match, cheap by the subject's runs (of 5: 8): C's whole search, charged the scan too",
        "  callk 2 -1 0 NULL: function",
        '  returned 2: "12" "34"',
        "  tally 41",
        "match, runs of a length the record has no limit for: the route",
        "  callk 2 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "gmatch, cheap by the subject's runs: C's iterator, charged the scan too",
        "  callk 2 -1 0 NULL: function",
        FORTY_BYTES,
        "  tally 41",
        "gsub, a replacement string the runs' lengths stand for: C's gsub, charged the scan too",
        "  callk 3 -1 0 NULL: function",
        FORTY_BYTES,
        "  tally 41",
        "gsub, a replacement string longer than the runs' lengths stand for: the route",
        "  checkstack 170 -> 0",
        "  callk 3 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "match, short",
        "  callk 2 -1 0 NULL: function",
        FORTY_BYTES,
        "  tally 0",
        "match, longer than proved: C's attempt anchored at the start, charged before",
        "  callk 3 -1 0 NULL: function",
        FORTY_BYTES,
        "  tally 15",
        "find, the attempt found: charged after, to the end of the match",
        "  callk 3 -1 0 NULL: function",
        '  returned 3: 3 7 "hello"',
        "  tally 11",
        "find, the attempt failed: resume goes on with the search",
        "  callk 3 -1 0 NULL: function",
        "  callk 5 -1 0 NULL: resume",
        "  returned 1: nil",
        "  tally 0",
        "match, a char no match starts with: the route",
        "  callk 3 1 0 NULL: function",
        "  callk 2 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "match, the locator finds where a match can start: the chars skipped charged",
        "  callk 3 1 0 NULL: function",
        "  callk 3 -1 0 NULL: function",
        "  returned 1: 7",
        "  tally 21",
        "match, beyond the attempt's limit: the route",
        "  callk 2 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "gmatch, not cheap as a whole scan: the iterator of its steps, with their limits",
        "  checkstack 20 -> 1",
        "  returned 1: type6",
        "  tally 0",
        "steps, the search not cheap, the attempt at a start char: its match, the captures",
        "  callk 3 -1 0 NULL: find",
        '  returned 1: "hello"',
        "  tally 12",
        "steps, the attempt failed: past the run it began with, then step_search, which found none",
        "  callk 3 -1 0 NULL: find",
        "  callk 3 2 0 NULL: find",
        "  callk 3 -1 0 NULL: step_search",
        "  returned 0:",
        "  tally 6",
        "steps, the search cheap: C's find, the whole match",
        "  callk 3 -1 0 NULL: find",
        '  returned 1: "y="',
        "  tally 8",
        "steps, past the end: none",
        "  returned 0:",
        "  tally 0",
        "gsub, not cheap as a whole scan: by its steps, each match's replacement charged",
        "  checkstack 170 -> 1",
        "  callk 3 -1 0 NULL: find",
        "  callk 3 1 0 NULL: find",
        "  callk 3 -1 0 NULL: find",
        "  callk 3 2 0 NULL: function",
        '  returned 2: "<hello>1 <key>2" 2',
        "  tally 36",
        "gsub, the rest from the end of a match cheap as a whole gsub: C's gsub of it",
        "  checkstack 170 -> 1",
        "  callk 3 -1 0 NULL: find",
        "  callk 3 2 0 NULL: function",
        '  returned 2: "hello1 key2" 2',
        "  tally 17",
        "gsub, a pattern whose rest C's gsub could tell from the subject: its steps to the end",
        "  checkstack 170 -> 1",
        "  callk 3 -1 0 NULL: find",
        "  callk 3 1 0 NULL: find",
        "  callk 3 -1 0 NULL: find",
        "  callk 3 -1 0 NULL: find",
        '  returned 2: "<hello>1 <key>2" 2',
        "  tally 43",
        "gsub, a replacement the record's memo lacks: the route",
        "  checkstack 170 -> 1",
        "  callk 3 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "gsub, a replacement the record's full memo lacks: its steps to the end",
        "  checkstack 170 -> 1",
        "  callk 3 -1 0 NULL: find",
        "  callk 3 1 0 NULL: find",
        "  callk 3 -1 0 NULL: find",
        "  callk 3 -1 0 NULL: find",
        '  returned 2: "<hello>1 <key>2" 2',
        "  tally 43",
        "gmatch, with a start: the route",
        "  callk 3 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "gsub, proved cheap",
        "  callk 3 -1 0 NULL: function",
        FORTY_BYTES,
        "  tally 21",
        "gsub, a replacement never proved: the route",
        "  callk 3 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "gsub, a replacement function proved cheap: nested calls gsub",
        "  callk 4 -1 0 NULL: nested",
        FORTY_BYTES,
        "  tally 21",
        "gsub, a replacement table, longer than proved: the route",
        "  callk 3 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "make an entry",
        "  returned 1: type6",
        "  tally 0",
        "make an entry of no operation",
        "  returned 1: false",
        "  tally 0",
        "append",
        "  rawseti 1 1 = 7",
        "  returned 0:",
        "  tally 0",
        "insert at a position: the items from it moved up, charged",
        '  rawseti 1 3 = "b"',
        '  rawseti 1 2 = "a"',
        '  rawseti 1 1 = "z"',
        "  returned 0:",
        "  tally 2",
        "append to a table with a metatable: the route",
        "  callk 2 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "bytes",
        "  callk 1 -1 0 NULL: function",
        FORTY_BYTES,
        "  tally 2",
        "bytes, the tally at the step: charged first",
        "  callk 1 0 0 NULL: charge",
        "  callk 1 -1 0 NULL: function",
        FORTY_BYTES,
        "  tally 0",
        "concat",
        "  callk 4 1 0 NULL: function",
        FORTY_BYTES,
        "  tally 32",
        "concat, a float position: the route",
        "  callk 3 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "format, string conversions",
        "  callk 3 1 0 NULL: function",
        FORTY_BYTES,
        "  tally 2",
        "format, a table to show: the route",
        "  callk 2 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "plain, a number",
        "  callk 1 -1 0 NULL: function",
        FORTY_BYTES,
        "  tally 0",
        "plain, a table: the route",
        "  callk 1 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "few arguments",
        "  callk 2 -1 0 NULL: function",
        FORTY_BYTES,
        "  tally 0",
        "more arguments than few: the route",
        "  callk 3 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "rep, charged its repetitions and its bytes first",
        "  callk 3 1 0 NULL: function",
        FORTY_BYTES,
        "  tally 33",
        "rep, a float count: the route",
        "  callk 2 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "rep, a result of a step's bytes: the route",
        "  callk 2 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "next, the first entry",
        "  next 1 [nil] -> 1",
        '  returned 2: "a" 1',
        "  tally 0",
        "next after the last key: nil",
        '  next 1 ["a"] -> 0',
        "  pushnil",
        "  returned 1: nil",
        "  tally 0",
        "next of a view: the route",
        "  callk 1 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "rawget",
        "  returned 1: 7",
        "  tally 0",
        "rawget, one argument: the route",
        "  callk 1 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "rawlen of a string",
        "  returned 1: 3",
        "  tally 0",
        "rawlen of a table",
        "  returned 1: 2",
        "  tally 0",
        "rawlen of a number: the route",
        "  callk 1 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "sort, 20 items: 20 * 5 units first",
        "  callk 1 0 0 NULL: charge",
        "  callk 2 -1 0 NULL: function",
        FORTY_BYTES,
        "  tally 0",
        "unpack, 20 items",
        "  checkstack 20 -> 1",
        `  returned 20: ${Array(20).fill("nil").join(" ")}`,
        "  tally 20",
        "remove, a position past the end: the route",
        "  callk 2 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "remove, at a position: the items after it moved down, charged",
        '  rawseti 1 1 = "b"',
        '  rawseti 1 2 = "c"',
        "  pushnil",
        "  rawseti 1 3 = nil",
        '  returned 1: "a"',
        "  tally 2",
        "remove, in C",
        "  pushnil",
        "  rawseti 1 3 = nil",
        '  returned 1: "c"',
        "  tally 0",
        "unpack, positions 2 to 5",
        "  checkstack 4 -> 1",
        "  returned 4: nil nil nil nil",
        "  tally 0",
        "unpack, no room on the stack: the route",
        "  checkstack 40 -> 0",
        "  callk 1 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "unpack, a range of a step: the route",
        "  callk 3 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "rawset, in C",
        '  rawset 1 ["k"] = 1',
        "  returned 1: table#0",
        "  tally 0",
        "rawset of a table with a metatable, in C",
        '  rawset 1 ["k"] = 1',
        "  returned 1: table#0",
        "  tally 0",
        "rawset of a table with a protected metatable (a view): the route",
        "  callk 3 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "rawset, two arguments: the route",
        "  callk 2 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "setmetatable, in C",
        "  setmetatable 1 table#2",
        "  returned 1: table#1",
        "  tally 0",
        "setmetatable, nil, in C",
        "  setmetatable 1 nil",
        "  returned 1: table#1",
        "  tally 0",
        "setmetatable, a metatable with __gc: the route",
        "  callk 2 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "setmetatable of a table with a metatable, in C",
        "  setmetatable 1 table#2",
        "  returned 1: table#1",
        "  tally 0",
        "setmetatable of a table with a protected metatable: the route",
        "  callk 2 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "setmetatable, one argument: the route",
        "  callk 1 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "setmetatable, a number: the route",
        "  callk 2 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "pcall, a success: true and its results",
        "  pcallk 1 -1 2 0 lane: a closure",
        "  stack: type2 kept true a closure 1",
        "  returned 2: true 2",
        "  tally 0",
        "pcall, no argument: the entry's function raises",
        "  callk 0 -1 0 NULL: function",
        FORTY_BYTES,
        "  tally 0",
        "pcall, a failure: the route",
        "  pcallk 0 -1 2 0 lane: a closure",
        "  stack: type2 kept true a closure",
        "  callk 1 -1 0 NULL: route",
        '  returned 2: false "boom"',
        "  tally 0",
        "pcall, a failure the route has nothing to do with: false and the error, no call",
        "  pcallk 0 -1 2 0 lane: a closure",
        "  stack: type2 kept true a closure",
        '  returned 2: false "boom"',
        "  tally 0",
        "pcall, a failure after a limit tripped: the route",
        "  pcallk 0 -1 2 0 lane: a closure",
        "  stack: type2 kept true a closure",
        "  callk 1 -1 0 NULL: route",
        '  returned 2: false "instruction limit exceeded"',
        "  tally 0",
        "pcall, a failure that may be a refused allocation: the route",
        "  pcallk 0 -1 2 0 lane: a closure",
        "  stack: type2 kept true a closure",
        "  callk 1 -1 0 NULL: route",
        '  returned 2: false "boom"',
        "  tally 0",
        "pcall, a failure outside a run: false and the error, no call",
        "  pcallk 0 -1 2 0 lane: a closure",
        "  stack: type2 kept true a closure",
        '  returned 2: false "boom"',
        "  tally 0",
        "pcall, resumed after a yield: true and the results",
        "  returned 2: true 3",
        "  tally 0",
        "pcall, resumed after an error: the route",
        "  callk 1 -1 0 NULL: route",
        '  returned 2: false "boom"',
        "  tally 0",
        "nested, a success: its results",
        "  pcallk 1 -1 1 0 NULL: a closure",
        "  stack: kept a closure 1",
        "  nested calls 1",
        '  returned 2: 2 "x"',
        "  tally 0",
        "nested, a failure: raised again by the entry's function, at level 0",
        "  pcallk 1 -1 1 0 NULL: a closure",
        "  stack: kept a closure 1",
        "  nested calls 1",
        "  callk 2 0 0 NULL: function",
        "  returned 0:",
        "  tally 0",
        "nested, one more than the state's maximum: the route",
        "  callk 2 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "  nested calls 2",
        "locate, a table: as it is",
        "  returned 1: table#1",
        "  tally 0",
        "locate, raised by a frame with a line: as it is",
        "  getstack 1 -> 1",
        "  getinfo lf -> line 12, type6",
        '  returned 1: "boom"',
        "  tally 0",
        "locate, raised by error: as it is",
        "  getstack 1 -> 1",
        "  getinfo lf -> line -1, 7",
        '  returned 1: "boom"',
        "  tally 0",
        "locate, raised by another C function: the route",
        ...PAST_THE_RAISER,
        "  callk 1 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "locate, an argument error under a C caller: named from the names found before",
        ...PAST_THE_RAISER,
        `  returned 1: "bad argument #1 to 'string.rep' (string expected, got no value)"`,
        "  tally 0",
        "locate, an argument error under sandbox code: its position and the name it called by",
        ...TO_SANDBOX_CODE,
        "  getinfo S -> line 7, type6",
        `  returned 1: "sandbox:7: bad argument #1 to 'rep' (string expected, got no value)"`,
        "  tally 0",
        "locate, the same called as a method: the route",
        ...TO_SANDBOX_CODE,
        "  callk 1 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "locate, no frame raised it: as it is",
        "  getstack 1 -> 0",
        '  returned 1: "boom"',
        "  tally 0",
        "frame: the line and the function",
        "  getstack 2 -> 1",
        "  getinfo lf -> line 7, type6",
        "  returned 2: 7 type6",
        "  tally 0",
        "frame, no such frame: nothing",
        "  getstack 40 -> 0",
        "  returned 0:",
        "  tally 0",
        "frame, level 0: nothing",
        "  returned 0:",
        "  tally 0",
        "frame, not an integer: the route",
        "  callk 1 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "clock, a first reading back-dated by the wall time: the CPU start",
        "  returned 2: 5 0",
        "  tally 0",
        "clock, a first reading back-dated before the floor: the floor",
        "  returned 2: 5 3",
        "  tally 0",
        "clock, a later reading within the limit: the CPU start plus the wall time since the run began",
        "  returned 1: 7",
        "  tally 0",
        "clock, the wall time past the limit: the CPU clock itself",
        "  returned 1: 5",
        "  tally 0",
        "clock, a first reading in the run's first millisecond: nothing",
        "  returned 0:",
        "  tally 0",
        "clock, a first reading in the first millisecond, past a shorter limit: the CPU start",
        "  returned 2: 5 4.5",
        "  tally 0",
        "past, a first reading within the limit: not past",
        "  returned 1: false",
        "  tally 0",
        "past, the CPU time past a shorter limit: past",
        "  returned 1: true",
        "  tally 0",
        "byte of positions within the string: made here",
        "  returned 2: 98 99",
        "  tally 0",
        "byte of a float position: the function's",
        "  callk 2 -1 0 NULL: function",
        FORTY_BYTES,
        "  tally 0",
        "string.pack: the format charged its bytes, then the string built",
        "  callk 4 1 0 NULL: function",
        FORTY_BYTES,
        "  tally 8",
        "string.pack of a number format: the function's",
        "  callk 2 1 0 NULL: function",
        FORTY_BYTES,
        "  tally 2",
        "string.unpack: the format charged its bytes and the data as bytes",
        "  callk 2 -1 0 NULL: function",
        "  returned 3: 1 2 9",
        "  tally 7",
        "string.unpack of many results: charged them",
        "  callk 3 -1 0 NULL: function",
        "  returned 3: 1 2 9",
        "  tally 10",
        "run: the longest run of the set's chars, the subject charged as bytes",
        "  returned 1: 26",
        "  tally 2",
        "run, a set of 31 bytes: the route",
        "  callk 2 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "run, not a string: the route",
        "  callk 2 -1 0 NULL: route",
        FORTY_BYTES,
        "  tally 0",
        "no tally",
        "  returned 1: false",
        "  tally 0",
      ]);
      // the arm entry and the count hook it installs: what they set and call, and what is counted
      const hookCalls = countHook.split("\n").filter((line) =>
        line !== "" &&
        !/^ {2}(touserdata|tointegerx -1001002|gettop|pushvalue|rotate|returned|tally)/.test(line)
      );
      assert.deepEqual(hookCalls, [
        "arm: the running thread, for a new run (its count started over)",
        ...ARMED,
        "  counted 0",
        "  extra space: running state, main state, coroutine none",
        "arm, a coroutine: one firing's instructions counted at once",
        "  tothread 1 -> coroutine",
        "  rawsetp -1001000 state: function",
        "  sethook coroutine 8 64",
        "  counted 164",
        "  extra space: running none, main none, coroutine state",
        "arm, a step shorter than the hook's interval: every step",
        ...ARMING,
        "  sethook running 8 10",
        "arm, not a thread: the route",
        "  tothread 1 -> NULL",
        "  callk 1 -1 0 NULL: route",
        "count hook, on a small heap: the kernel's hook called at a step, with what was counted",
        ...ARMED,
        ...TWO_FIRINGS_TO_A_STEP,
        ...TAKEN,
        "  counted 0",
        "count hook, between runs (the run clock's start infinite): the kernel's hook not called",
        ...ARMED,
        "  the hook fires",
        "  gc 3 -> 100",
        "  counted 64",
        "  the hook fires",
        "  counted 128",
        "  the hook fires",
        "  counted 192",
        "count hook, the kernel's hook keeping them (outside a run): what was counted stays for the host",
        ...ARMED,
        ...TWO_FIRINGS_TO_A_STEP,
        ...KEPT,
        "  counted 128",
        "count hook, the kernel's hook raising (at Lua's C stack limit): what was counted handed over again",
        ...ARMED,
        ...TWO_FIRINGS_TO_A_STEP,
        "  raised; counted 128",
        "  the hook fires",
        "  rawgetp -1001000 state -> function",
        "  pushinteger 192",
        "  pushboolean 0",
        "  callk 2 1 0 NULL: function",
        ...TAKEN,
        "  counted 0",
        "count hook, on a small heap: the wall clock read at every fourth firing",
        ...ARMED,
        "  the hook fires",
        "  gc 3 -> 100",
        "  counted 192",
        "  the hook fires",
        "  clock_gettime 1",
        "  counted 256",
        "count hook, on a small heap past the deadline: the kernel's hook called at the fourth firing",
        ...ARMED,
        "  the hook fires",
        "  clock_gettime 1",
        "  clock_gettime 3",
        "  rawgetp -1001000 state -> function",
        "  pushinteger 256",
        "  pushboolean 1",
        "  callk 2 1 0 NULL: function",
        ...TAKEN,
        "  counted 0",
        "count hook, a large heap within the deadline: the wall clock read",
        ...ARMED,
        "  the hook fires",
        "  gc 3 -> 600",
        "  clock_gettime 1",
        "  counted 64",
        "count hook, a large heap past the deadline: the kernel's hook called before a step",
        ...ARMED,
        "  the hook fires",
        "  gc 3 -> 600",
        "  clock_gettime 1",
        "  clock_gettime 3",
        "  rawgetp -1001000 state -> function",
        "  pushinteger 64",
        "  pushboolean 1",
        "  callk 2 1 0 NULL: function",
        ...TAKEN,
        "  counted 0",
        "  CPU start 0",
        "count hook, the wall time past the limit, the CPU time within: the CPU clock read again once it could be",
        ...ARMED,
        "  the hook fires",
        "  gc 3 -> 600",
        "  clock_gettime 1",
        "  clock_gettime 3",
        "  counted 64",
        "  the hook fires",
        "  gc 3 -> 600",
        "  clock_gettime 1",
        "  counted 128",
      ]);
    });
  },
);
