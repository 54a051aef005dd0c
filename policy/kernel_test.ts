// Every run starts clean: what one run leaves in the kernel's run state (its count, a tripped
// limit, the CPU clock it started, the ids tostring gave out) never reaches the next, whichever
// way the run changed it. The kernel skips the resets after a run that changed nothing, so each
// test makes a run change one thing and checks the next starts from nothing.
import assert from "node:assert/strict";
import { LuaError, LuaLimitError, PermissionDeniedError, PolicyEngine, Sandbox } from "../mod.ts";
import { HAS_LANE } from "../tests/helpers.ts";

// 200 instructions between two hooks; a loop of n iterations runs about 2n instructions
const LIMITS = { instructions: 20_000, cpuMs: 5_000 };

Deno.test("kernel: a run after an instruction trip counts from zero and is not tripped", () => {
  using sb = new Sandbox({ limits: LIMITS });
  assert.throws(
    () => sb.execute("while true do end"),
    (e) => e instanceof LuaLimitError && e.limit === "instructions",
  );
  assert.equal(sb.execute("local s = 0 for i = 1, 1000 do s = s + i end return s"), 500500);
  for (let i = 0; i < 3; i++) {
    const counted = sb.usage.instructions;
    assert.ok(counted >= 1600 && counted <= 2400, `a 2,000-instruction run counted ${counted}`);
    sb.execute("local s = 0 for i = 1, 1000 do s = s + i end return s");
  }
});

Deno.test("kernel: a trip outside the hook does not reach the next run's catch points", () => {
  using sb = new Sandbox({
    limits: { output: 64 },
    capabilities: { secret: { fn: () => "s3cr3t", permission: "admin" } },
  });
  // a tripped limit or denial makes every pcall re-raise it: the next run's must catch its own error
  const catches = () => assert.deepEqual(sb.execute("return pcall(error, 'mine', 0)"), [false, "mine"]);
  assert.throws(() => sb.execute("return secret()"), PermissionDeniedError);
  catches();
  assert.throws(
    () => sb.execute("print(string.rep('x', 100))"),
    (e) => e instanceof LuaLimitError && e.limit === "output",
  );
  catches();
});

Deno.test("kernel: charged work does not carry over to the next run", () => {
  using sb = new Sandbox({ limits: { instructions: 500_000 } });
  // string.rep is charged a unit per repetition and one per 16 bytes it makes: 106,250 units
  const rep = "return #string.rep('x', 100000)";
  assert.equal(sb.execute(rep), 100_000);
  assert.ok(sb.usage.instructions >= 106_250, `charged ${sb.usage.instructions}`);
  assert.equal(sb.execute("return 1"), 1);
  assert.equal(sb.usage.instructions, 0);
  // five in a row would exceed the budget if the count carried over
  for (let i = 0; i < 5; i++) assert.equal(sb.execute(rep), 100_000);
});

Deno.test("kernel: a short run after a counted one starts a full step from its first hook", () => {
  // 2,000 runs: a generous CPU limit, so that a stall of the loaded machine in a run's first steps
  // (counted at their wall time) cannot stop one
  using sb = new Sandbox({ limits: { cpuMs: 60_000 } });
  // loops that leave Lua's countdown to the next hook anywhere in a step (1,000 instructions here)
  for (let n = 1000; n < 2000; n++) {
    sb.execute(`for i = 1, ${n} do end`);
    assert.ok(sb.usage.instructions > 0, `a loop of ${n} counted nothing`);
    assert.equal(sb.execute("return 1"), 1);
    assert.equal(sb.usage.instructions, 0, `after a loop of ${n}`);
  }
});

Deno.test("kernel: the CPU clock a long run started is not the next run's", () => {
  using engine = new PolicyEngine({ limits: { instructions: 1e9, cpuMs: 5_000 } });
  const long = engine.compile(
    "return function() local s = 0 for i = 1, 3000000 do s = s + i end return s > 0 end",
    { name: "long" },
  );
  const short = engine.compile("return function() return true end", { name: "short" });
  const slow = long.evaluate({});
  assert.equal(slow.allow, true);
  assert.ok(slow.usage.cpuMs > 0 && slow.usage.cpuMs <= slow.usage.timeMs + 1, JSON.stringify(slow.usage));
  const quick = short.evaluate({});
  assert.equal(quick.allow, true);
  // a short run never reads the clock: its CPU time is its wall time, not time since the long run
  assert.equal(quick.usage.cpuMs, quick.usage.timeMs);
  assert.ok(quick.usage.cpuMs < slow.usage.cpuMs, JSON.stringify([quick.usage, slow.usage]));
});

Deno.test("kernel: a run of many steps reads no CPU clock in its first millisecond", () => {
  using engine = new PolicyEngine({ limits: { instructions: 1e6, cpuMs: 5_000 } });
  // some 6,000 instructions (two a turn), past the steps at which the kernel's hook reads the clock
  const policy = engine.compile(
    "return function() local s = 0 for i = 1, 3000 do s = s + i end return s > 0 end",
    { name: "steps" },
  );
  for (let i = 0; i < 20; i++) {
    const { allow, usage } = policy.evaluate({});
    assert.equal(allow, true);
    assert.ok(usage.instructions >= 5_000, JSON.stringify(usage));
    // a run the machine held up for a millisecond reads it: its CPU time is then its own
    if (usage.timeMs < 1) assert.equal(usage.cpuMs, usage.timeMs, JSON.stringify(usage));
  }
});

Deno.test("kernel: the steps before a run's first clock reading count against its CPU deadline", () => {
  using sb = new Sandbox({ limits: { instructions: 1e9, cpuMs: 5, memory: 64 << 20 } });
  // some 800 instructions of 4 MiB concatenations (tens of ms) before the first hook reads the
  // clock, then a quick loop: the deadline must count the first step, not start after it
  const slowFirstStep = "local s = 'a' for i = 1, 22 do s = s .. s end " +
    "for i = 1, 150 do local _ = s .. 'x' end for i = 1, 2000 do end return #s";
  assert.throws(() => sb.execute(slowFirstStep), (e) => e instanceof LuaLimitError && e.limit === "cpu");
  assert.equal(sb.execute("return 1"), 1);
});

Deno.test("kernel: identities restart after a run that handed some out", () => {
  using sb = new Sandbox();
  assert.deepEqual(sb.execute("return tostring({}), tostring({})"), ["table: 1", "table: 2"]);
  assert.equal(sb.execute("return 1"), 1);
  assert.equal(sb.execute("return tostring({})"), "table: 1");
});

Deno.test("kernel: a decision's globals are gone after it, however it set them", () => {
  using engine = new PolicyEngine();
  const policy = engine.compile(
    `return function(input)
       local before = rawget(_G, "mark")
       if input.how == "assign" then mark = true
       elseif input.how == "rawset" then rawset(_G, "mark", true)
       elseif input.how == "replace" then _G = { mark = true } end
       return before == nil
     end`,
    { name: "globals" },
  );
  // "none" reuses the table of the decision before it when that one assigned nothing
  for (const how of ["none", "none", "assign", "none", "none", "rawset", "none", "replace", "none"]) {
    assert.equal(policy.evaluate({ how }).allow, true, how);
  }
});

Deno.test("kernel: the instructions of coroutines shorter than a step count", () => {
  using sb = new Sandbox({ limits: { instructions: 10_000_000, cpuMs: 5_000 } });
  // a hundred coroutines of some 200 instructions each, every one ending before a step of 1,000
  sb.execute("for i = 1, 100 do coroutine.wrap(function() for j = 1, 200 do end end)() end");
  // the lane's count hook counts for the state, and a coroutine's first 64 instructions when it is
  // made; Lua's hook counts for each thread, whose count starts over with it
  assert.ok(sb.usage.instructions >= (HAS_LANE ? 20_000 : 0), `${sb.usage.instructions}`);
  assert.ok(sb.usage.instructions <= 40_000, `${sb.usage.instructions}`);
  // coroutines shorter than the hook's interval: each counted as 64 instructions, besides the
  // loop and the vetted coroutine.wrap around it (some 30 instructions an item)
  sb.execute("for i = 1, 1000 do coroutine.wrap(function() local x = i end)() end");
  assert.ok(sb.usage.instructions >= (HAS_LANE ? 64_000 : 0), `${sb.usage.instructions}`);
  assert.ok(sb.usage.instructions <= 120_000, `${sb.usage.instructions}`);
});

Deno.test("kernel: work the fast lane tallied counts in its run, and not in the next", () => {
  // a step no short run reaches: the kernel's hook is never called, so the count is the charged
  // work and, with the lane, the instructions its count hook counted, 64 at each firing
  using sb = new Sandbox({ limits: { instructions: 10_000_000, step: 10_000_000, cpuMs: 5_000 } });
  const every = HAS_LANE ? 64 : Infinity;
  const subject = "a".repeat(200);
  const matches = "local s, n = ... for i = 1, n do local x = s:match('^(a+)') end";
  // each match is charged its subject and its pattern: 200 + 5 units, in Lua (the first, which
  // proves the pattern cheap) or in C (the others, left in the lane's tally below a step); the
  // first run also builds the string library and the matcher (some 12,000 instructions)
  for (const n of [1, 10, 3]) {
    sb.execute(matches, subject, n);
    const counted = sb.usage.instructions - n * 205;
    assert.ok(counted === 0 || counted % every === 0, `${counted}`);
    assert.ok(counted <= 20_000, `${counted}`);
  }
  // a later run counts its loop: four instructions a match (400 and a few of the chunk's own), of
  // which the firings count whole 64s
  sb.execute(matches, subject, 100);
  const counted = sb.usage.instructions - 100 * 205;
  assert.ok(HAS_LANE ? counted >= 384 && counted <= 1_000 : counted === 0, `${counted}`);
  sb.execute("return 1");
  assert.ok(sb.usage.instructions === 0 || sb.usage.instructions === every, `${sb.usage.instructions}`);
});

Deno.test("kernel: its routes load on their first use, once, and answer as the kernel's own did", () => {
  using sb = new Sandbox();
  // one chunk, kept after its first run: only the routes can grow the sandbox's memory
  const code = "local bad = ... if bad then rawset(1) end return rawget({ 1 }, 1), rawlen('ab'), next({ 3 })";
  // (its second run leaves the rebinding's upvalue: from then on, runs of it leave nothing; that
  // run, which makes the chunk its globals, goes through one call more, whose frame Lua 5.3 frees a
  // half of the unused ones at each full collection: read until it settles)
  assert.deepEqual(sb.execute(code, false), [1, 2, 1, 3]);
  assert.deepEqual(sb.execute(code, false), [1, 2, 1, 3]);
  let idle = sb.idleMemory;
  for (let again = sb.idleMemory; again < idle; again = sb.idleMemory) idle = again;
  assert.deepEqual(sb.execute(code, false), [1, 2, 1, 3]);
  // where there is a lane, a sandbox that took no route has not loaded them (without one, rawget,
  // rawlen and next are routes)
  if (HAS_LANE) assert.equal(sb.idleMemory, idle);
  const message = "sandbox:1: bad argument #1 to 'rawset' (table expected, got number)";
  assert.throws(() => sb.execute(code, true), (e: Error) => e instanceof LuaError && e.message === message);
  const loaded = sb.idleMemory;
  if (HAS_LANE) assert.ok(loaded > idle + 1024, `idle at ${idle} bytes, then ${loaded}`);
  assert.throws(() => sb.execute(code, true), (e: Error) => e.message === message);
  // the same error again finds them loaded (it may leave a few bytes of its own)
  assert.ok(
    sb.idleMemory < loaded + 512,
    `${loaded} bytes after the first error, ${sb.idleMemory} after the second`,
  );
  const errors = [
    // the entry's frame (the lane's, or the Lua one where there is none) keeps the name called
    ["local r = rawget; r(1)", "sandbox:1: bad argument #1 to 'r' (table expected, got number)"],
    // Lua 5.3 does not say what it got
    [
      "setmetatable({}, 1)",
      `sandbox:1: bad argument #2 to 'setmetatable' (nil or table expected${
        sb.execute("return _VERSION") === "Lua 5.3" ? "" : ", got number"
      })`,
    ],
    ["pcall()", "sandbox:1: bad argument #1 to 'pcall' (value expected)"],
    ["tostring()", "sandbox:1: bad argument #1 to 'tostring' (value expected)"],
    ["rawset(string, 1, 2)", "sandbox:1: attempt to modify a read-only table"],
    ["rawget()", "sandbox:1: bad argument #1 to 'rawget' (table expected, got no value)"],
  ];
  for (const [code, message] of errors) {
    assert.throws(() => sb.execute(code), (e: Error) => e.message === message, code);
  }
  assert.deepEqual(sb.execute("return rawlen(string) >= 0, rawget(string, 'rep') ~= nil"), [true, true]);
});

const AROUND = 16;

Deno.test("kernel: a run counts its own instructions, not the hook's, at any budget and any length", () => {
  // a loop of n iterations is 2n instructions (the add and the loop's test), and the chunk and the
  // kernel's run add a few (AROUND); they are counted a firing of the hook at a time: the fast lane's
  // count hook fires every 64 instructions, or every step when a step is shorter, Lua's every step
  // where there is no lane
  for (const instructions of [5_000, 10_000, 1_000_000]) {
    const step = Math.min(1000, Math.floor(instructions / 100));
    const firing = HAS_LANE ? Math.min(64, step) : step;
    for (const n of [600, 999, 1000, 1001, 1031, 1500, 2400]) {
      // a new sandbox each time: its first run, then a second one, after a run that counted
      using sb = new Sandbox({ limits: { instructions, cpuMs: 60_000 } });
      for (let run = 0; run < 2; run++) {
        sb.execute(`local s = 0 for i = 1, ${n} do s = s + i end return s`);
        const counted = sb.usage.instructions;
        assert.ok(
          counted > 2 * n - firing && counted < 2 * n + AROUND + firing,
          `a loop of ${n} under ${instructions} counted ${counted} in run ${run}`,
        );
      }
    }
  }
});
