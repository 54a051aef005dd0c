/**
 * Red team: output. `print` is capped per run, control characters (terminal escapes, NUL, bidi
 * overrides) are escaped, invalid UTF-8 cannot break the host's string, and `warn` is absent.
 */
import assert from "node:assert/strict";
import { assertUsable, attackSuite, luaError, LuaLimitError, Sandbox, TIGHT, value } from "./_harness.ts";

const SMALL = { ...TIGHT, output: 1024 };
const OUTPUT = { error: LuaLimitError, limit: "output" } as const;

/** Asserts that `text` carries no raw control character a terminal would act on. */
function assertNoControl(text: string): void {
  // deno-lint-ignore no-control-regex
  assert.doesNotMatch(text, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
}

attackSuite("output", [
  {
    name: "print in an endless loop stops at the output limit",
    code: "while true do print('hello') end",
    limits: SMALL,
    expect: OUTPUT,
    after: (sb) => {
      assert.ok(sb.output.length <= 1024, `output ${sb.output.length} bytes`);
      assert.ok(sb.output.startsWith("hello\n"));
    },
  },
  {
    name: "print in a pcall loop: the output limit is sticky",
    code: "while true do pcall(print, ('x'):rep(100)) end",
    limits: SMALL,
    expect: OUTPUT,
  },
  {
    name: "one huge print",
    code: "print(('x'):rep(100000))",
    limits: SMALL,
    expect: OUTPUT,
    after: (sb) => assert.ok(new TextEncoder().encode(sb.output).length <= 1024),
  },
  {
    name: "a huge print cut in the middle of a multi-byte character keeps valid text",
    code: "print(('é'):rep(2000))",
    limits: SMALL,
    expect: OUTPUT,
    after: (sb) => {
      assert.ok(new TextEncoder().encode(sb.output).length <= 1024);
      assert.doesNotMatch(sb.output, /\uFFFD/);
    },
  },
  {
    name: "print with many arguments is charged and capped",
    code: "local t = {} for i = 1, 5000 do t[i] = i end while true do print(table.unpack(t)) end",
    limits: SMALL,
    expect: OUTPUT,
  },
  {
    name: "terminal escape sequences are escaped",
    code: "print('\\27[2J\\27]0;pwned\\7\\27[31mred\\r\\8\\127') return true",
    expect: value(true),
    after: (sb) => {
      assertNoControl(sb.output);
      assert.match(sb.output, /\\x1b\[2J/);
    },
  },
  {
    name: "NUL bytes and C1 controls are escaped",
    code: "print('a\\0b', '\\194\\155c') return true",
    expect: value(true),
    after: (sb) => {
      assertNoControl(sb.output);
      assert.match(sb.output, /a\\x00b/);
    },
  },
  {
    name: "bidi overrides are escaped",
    code: "print('\\u{202E}gnp.exe\\u{2066}') return true",
    expect: value(true),
    after: (sb) => assertNoControl(sb.output),
  },
  {
    name: "invalid UTF-8 in print cannot break the output string",
    code: "print('\\255\\254 ok\\0', '\\237\\160\\128') return true",
    expect: value(true),
    after: (sb) => {
      assertNoControl(sb.output);
      // shown with replacement characters, not as a list of byte values
      assert.match(sb.output, /^\uFFFD\uFFFD ok\\x00\t/);
    },
  },
  {
    name: "print through __tostring returning control characters",
    code: "print(setmetatable({}, {__tostring = function() return '\\27[5m' end})) return true",
    expect: value(true),
    after: (sb) => assertNoControl(sb.output),
  },
  {
    name: "__tostring returning a non-string is an error",
    code: "print(setmetatable({}, {__tostring = function() return {} end}))",
    expect: luaError(/'__tostring' must return a string/),
  },
  {
    name: "warn('@on') is absent",
    code: "return warn",
    expect: value(undefined),
  },
]);

Deno.test("redteam output: the output of one run does not leak into the next", () => {
  using sb = new Sandbox({ limits: SMALL });
  sb.execute("print('secret of run 1')");
  assert.equal(sb.output, "secret of run 1\n");
  sb.execute("return 1");
  assert.equal(sb.output, "");
  assertUsable(sb);
});

Deno.test("redteam output: after an output limit the next run prints again", () => {
  using sb = new Sandbox({ limits: SMALL });
  assert.throws(() => sb.execute("while true do print('x') end"), LuaLimitError);
  sb.execute("print('again')");
  assert.equal(sb.output, "again\n");
});
