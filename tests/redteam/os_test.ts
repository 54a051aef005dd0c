/**
 * Red team: reaching the operating system. Only `os.time`, `os.date` and `os.difftime` exist; the
 * rest of `os` and all of `io` are absent, and `os.date` is charged by its format.
 */
import assert from "node:assert/strict";
import { attackSuite, luaError, LuaLimitError, TIGHT, value } from "./_harness.ts";

attackSuite("OS reach", [
  {
    name: "os.execute, os.exit, os.getenv, os.remove, os.rename, os.tmpname, os.setlocale, os.clock, io",
    code:
      "return os.execute, os.exit, os.getenv, os.remove, os.rename, os.tmpname, os.setlocale, os.clock, io",
    expect: value(new Array(9).fill(undefined)),
  },
  {
    name: "os.exit() (would kill the host) is not callable",
    code: "os.exit(1)",
    expect: luaError(/attempt to call a nil value \(field 'exit'\)/),
  },
  {
    name: "os.exit through pcall is not callable either",
    code: "return pcall(os.exit, true, true)",
    expect: value([false, "attempt to call a nil value"]),
  },
  {
    name: "io.open('/etc/passwd') is unreachable",
    code: "return io.open('/etc/passwd'):read('a')",
    expect: luaError(/attempt to index a nil value \(global 'io'\)/),
  },
  {
    name: "io.popen through the string metatable is unreachable",
    code: "return ('').popen",
    expect: value(undefined),
  },
  {
    name: "os.getenv('HOME') is not callable",
    code: "return os.getenv('HOME')",
    expect: luaError(/attempt to call a nil value \(field 'getenv'\)/),
  },
  {
    name: "os.setlocale (process-wide, changes every number format) is absent",
    code: "return os.setlocale('C')",
    expect: luaError(/attempt to call a nil value \(field 'setlocale'\)/),
  },
  {
    name: "os.date works on fixed input",
    code: "return os.date('!%Y-%m-%d %H:%M:%S', 0), os.date('!*t', 86400).day",
    expect: value(["1970-01-01 00:00:00", 2]),
  },
  {
    name: "os.date with an invalid conversion is an error, no crash",
    code: "return os.date('%Ez %')",
    expect: luaError(/invalid conversion specifier/),
  },
  {
    name: "os.date with a time out of range is an error, no crash",
    code: "return os.date('%c', math.maxinteger)",
    expect: luaError(/out-of-bound|cannot be represented|out of bound/),
  },
  {
    name: "os.date with a huge format is charged",
    code: "return #os.date(string.rep('%c', 150000))",
    limits: { ...TIGHT, instructions: 250_000 },
    expect: { error: LuaLimitError, limit: "instructions" },
  },
  {
    name: "os.date format abuse in a loop is bounded",
    code: "local f = string.rep('%c%x%X', 2000) while true do local _ = os.date(f) end",
    expect: { error: LuaLimitError, limit: "instructions" },
  },
  {
    name: "os.time with absurd fields is an error, no crash",
    code: "return os.time({year = math.maxinteger, month = 1, day = 1})",
    expect: luaError(/out-of-bound|cannot be represented|out of bound|not an integer|field 'year'/),
  },
  {
    name: "os.time with negative and huge fields normalises or errors, no crash",
    code: "return pcall(os.time, {year = 2000, month = -1e6, day = 1e9, hour = -1})",
    expect: {
      check: (v) => {
        const [ok, result] = v as [boolean, unknown];
        if (ok) assert.equal(typeof result, "number");
        else assert.equal(typeof result, "string");
      },
    },
  },
  {
    name: "os.difftime is arithmetic only",
    code: "return os.difftime(10, 4)",
    expect: value(6),
  },
]);
