/**
 * Red team: bytecode, loaders and the debug library. Binary chunks must never load, `load` must
 * bind the run's own fresh environment (or the one given), and nothing of `debug`, `package`,
 * `require`'s file search, `dofile` or `loadfile` may be reachable.
 */
import assert from "node:assert/strict";
import { LuaRuntime, PolicyEngine } from "../../mod.ts";
import {
  assertError,
  assertUsable,
  attackSuite,
  LuaError,
  luaError,
  LuaLimitError,
  LuaSyntaxError,
  measure,
  Sandbox,
  TIGHT,
  value,
} from "./_harness.ts";

const BINARY = "attempt to load a binary chunk (only text is allowed)";

attackSuite("bytecode", [
  {
    name: "a policy source starting with \\27Lua is a LuaSyntaxError",
    code: "\x1bLua\x54\x00\x19\x93\r\n\x1a\n",
    expect: { error: LuaSyntaxError, message: /binary chunk/ },
  },
  {
    name: "load(string.dump(f)): string.dump does not exist",
    code: "return load(string.dump(function() return 1 end))",
    expect: luaError(/attempt to call a nil value \(field 'dump'\)/),
  },
  {
    name: "('').dump through the string metatable is nil",
    code: "return ('').dump, string.dump",
    expect: value([undefined, undefined]),
  },
  {
    name: "load of a hand-made binary chunk returns nil and a message",
    code: "return load('\\27Lua\\84\\0\\25\\147\\r\\n\\26\\n\\4\\8\\8')",
    expect: value([undefined, BINARY]),
  },
  {
    name: "load with mode 'b' is still text only",
    code: "return load('\\27LuaQ', 'x', 'b')",
    expect: value([undefined, BINARY]),
  },
  {
    name: "load with mode 'bt' and a text chunk runs as text",
    code: "return load('return 7', 'x', 'bt')()",
    expect: value(7),
  },
  {
    name: "load of a reader function is refused (it could hand out bytecode piecewise)",
    code: "local parts = {'\\27Lua', ''} local i = 0 return load(function() i = i + 1 return parts[i] end)",
    expect: luaError(/only string chunks are allowed/),
  },
  {
    name: "a text chunk that is not Lua fails to compile, no crash",
    code: "return load(' \\27Lua\\0\\0\\0')",
    expect: {
      check: (v) => {
        const [fn, message] = v as [unknown, string];
        assert.equal(fn, undefined);
        assert.match(message, /unexpected symbol|malformed|near/);
      },
    },
  },
  {
    name: "string.dump hidden behind rawget/pairs of the string table",
    code:
      "local found = rawget(string, 'dump') for k in pairs(string) do if k == 'dump' then found = k end end return found",
    expect: value(undefined),
  },
]);

attackSuite("loaders", [
  {
    name: "load('return os') sees the vetted os, not the real one",
    code: "local o = load('return os')() return o.execute, o.exit, o.getenv, o.remove, o.date ~= nil",
    expect: value([undefined, undefined, undefined, undefined, true]),
  },
  {
    name: "require, dofile, loadfile, package, loadstring, module are absent",
    code: "return require ~= nil, dofile, loadfile, package, loadstring, module, setfenv, getfenv, newproxy",
    expect: value([
      true,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
    ]),
  },
  {
    name: "require of a standard library finds nothing (no bundle, no file search)",
    code: "return require('os')",
    expect: luaError(/module 'os' not found/),
  },
  {
    name: "require of a path finds nothing",
    code: "return require('/etc/passwd')",
    expect: luaError(/not found/),
  },
  {
    name: "package.loadlib through a global is unreachable",
    code: "return package.loadlib('libc.so.6', 'system')",
    expect: luaError(/attempt to index a nil value \(global 'package'\)/),
  },
  {
    name: "load with a custom env cannot reach the real globals",
    code: "local env = {} local f = load('return _G, string, os, debug', 'c', 't', env) return f() == nil",
    expect: value(true),
  },
  {
    name: "load with an explicit nil env: globals unreachable",
    code: "return load('return string.rep', 'c', 't', nil)()",
    expect: luaError(/attempt to index a nil value \(upvalue '_ENV'\)/),
  },
  {
    name: "load with an env whose __index is the sandbox env reads only vetted entries",
    code: "local env = setmetatable({}, {__index = _G}) " +
      "return load('return debug, io, os.execute, string.dump, type(print)', 'c', 't', env)()",
    expect: value([undefined, undefined, undefined, undefined, "function"]),
  },
  {
    name: "_ENV manipulation: a local _ENV reaches nothing new",
    code: "local _ENV = setmetatable({}, {__index = _ENV}) return debug, io, rawget(_ENV, 'string')",
    expect: value([undefined, undefined, undefined]),
  },
  {
    name: "_ENV = nil then any global access is an error",
    code: "local x = 1 _ENV = nil return print",
    expect: luaError(/attempt to index a nil value/),
  },
  {
    name: "the environment's metatable is locked",
    code: "return getmetatable(_G), pcall(setmetatable, _G, {})",
    expect: value([false, false, "cannot change a protected metatable"]),
  },
  {
    // Lua's parser links every "or" of a chain to a list it walks again for the next: quadratic in C
    name: "load of a chain of 40,000 'or' stops at the CPU deadline, where the parser is",
    code: "return load('local a return ' .. string.rep('a or ', 40000) .. 'a')",
    limits: { ...TIGHT, instructions: 1e12 },
    expect: { error: LuaLimitError, limit: "cpu" },
  },
  {
    name: "load of long chunks in pieces: the same functions, names and errors as in one",
    code: "local body = string.rep('x = x + 1 ', 1000) " +
      "local f = load('local x = 0 ' .. body .. ' return x') " +
      "local g = load('return ' .. string.rep('1 + ', 2000) .. '1', '=long') " +
      "local _, e1 = load(body .. ' return +', '=broken') " +
      "local _, e2 = load('x = 1 ' .. body .. '\\n\\n y = = 2') " +
      "return f(), g(), e1, e2",
    expect: value([
      1000,
      2001,
      "broken:1: unexpected symbol near '+'",
      `[string "x = 1 x = x + 1 x = x + 1 x = x + 1 x = x + 1..."]:3: unexpected symbol near '='`,
    ]),
  },
  {
    name: "load of a huge chunk is charged",
    code: "return load(string.rep('local a = 1 ', 30000))",
    limits: { ...TIGHT, instructions: 100_000 },
    expect: { error: LuaLimitError, limit: "instructions" },
  },
]);

attackSuite("debug", [
  {
    name: "debug is absent",
    code: "return debug",
    expect: value(undefined),
  },
  {
    name: "debug.getregistry() is unreachable",
    code: "return debug.getregistry()",
    expect: luaError(/attempt to index a nil value \(global 'debug'\)/),
  },
  {
    name: "debug.sethook() removing the limit hook is unreachable, the loop trips",
    code: "pcall(function() debug.sethook() end) while true do end",
    expect: { error: LuaLimitError, limit: "instructions" },
  },
  {
    name: "no reachable value is a debug, io, os or package function",
    code: `
      local seen, names = {}, {}
      local function walk(t, path, depth)
        if seen[t] or depth > 4 then return end
        seen[t] = true
        for k, v in pairs(t) do
          local name = path .. "." .. tostring(k)
          if type(v) == "table" then walk(v, name, depth + 1)
          elseif type(v) == "function" then names[#names + 1] = name end
        end
      end
      local globals = {}
      for _, k in ipairs({"assert", "collectgarbage", "dofile", "error", "getmetatable", "ipairs", "load",
          "loadfile", "next", "pairs", "pcall", "print", "rawequal", "rawget", "rawlen", "rawset", "require",
          "select", "setmetatable", "tonumber", "tostring", "type", "xpcall", "warn", "coroutine", "debug",
          "io", "math", "os", "package", "string", "table", "utf8", "input", "config", "echo", "unpack",
          "loadstring", "module", "gcinfo", "newproxy", "bit32", "jit", "ffi", "js", "python"}) do
        globals[k] = _G[k]
      end
      walk(globals, "_G", 0)
      table.sort(names)
      return names`,
    limits: { ...TIGHT, instructions: 1_000_000 },
    expect: {
      check: (v) => {
        const names = v as string[];
        assert.ok(Array.isArray(names) && names.length > 30, `few names: ${JSON.stringify(names)}`);
        for (const name of names) {
          assert.doesNotMatch(
            name,
            /^_G\.(debug|io|package|dofile|loadfile|warn|gcinfo|newproxy|jit|ffi|js)\b|^_G\.os\.(execute|exit|getenv|remove|rename|tmpname|setlocale)$|\.dump$|\.randomseed$/,
            name,
          );
        }
      },
    },
  },
  {
    name: "getmetatable of functions, threads and numbers gives nothing to climb",
    code:
      "return getmetatable(print), getmetatable(coroutine.create(print)), getmetatable(1), getmetatable(true)",
    expect: value([undefined, undefined, undefined, undefined]),
  },
]);

Deno.test("redteam bytecode: eval of a binary expression is a LuaSyntaxError, sandbox usable", () => {
  using sb = new Sandbox({ limits: TIGHT });
  assertError(measure(() => sb.eval("\x1bLua")), { error: LuaSyntaxError });
  assertError(measure(() => sb.execute("\x1b")), { error: LuaSyntaxError, message: /binary chunk/ });
  assertError(measure(() => sb.execute("return = 1")), { error: LuaSyntaxError });
  assertUsable(sb);
});

Deno.test("redteam loaders: a policy or a run's source whose compile outlasts the CPU limit is a LuaLimitError", () => {
  using sb = new Sandbox({ limits: TIGHT });
  const chain = "local a return " + "a or ".repeat(40000) + "a";
  for (const compile of [() => sb.execute(chain), () => sb.eval("a or ".repeat(40000) + "a")]) {
    const outcome = measure(compile);
    assertError(outcome, {
      error: LuaLimitError,
      limit: "cpu",
      message: /cpu time limit exceeded while compiling/,
    });
    assert.ok(
      outcome.cpuMs <= 2 * TIGHT.cpuMs + 50,
      `the compile took ${outcome.cpuMs.toFixed(0)} ms of CPU`,
    );
  }
  using engine = new PolicyEngine({ limits: TIGHT });
  assertError(measure(() => engine.compile(`function decide() ${chain} end`, { name: "chain.lua" })), {
    error: LuaLimitError,
    limit: "cpu",
    message: /^chain\.lua: cpu time limit exceeded while compiling/,
  });
  assert.equal(
    engine.compile("return function() return true end", { name: "ok.lua" }).evaluate({}).allow,
    true,
  );
  assertUsable(sb);
});

Deno.test("redteam loaders: a chunk loaded in one run cannot be called in the next", () => {
  using sb = new Sandbox({ limits: TIGHT });
  assert.equal(sb.execute("f = load('return 1') keep = f return f()"), 1);
  assertError(measure(() => sb.execute("return keep()")), { error: LuaError, message: /global 'keep'/ });
});

Deno.test("redteam loaders: load returns what Lua's load returns, the function alone or nil and the message", () => {
  using lua = new LuaRuntime();
  using sb = new Sandbox({ limits: TIGHT });
  for (
    const call of [
      `load("return 1")`,
      `load("return 1", "=named")`,
      `load("return x", "named", "t", {x = 1})`,
      `load("return +")`,
      `load("return +", "=named")`,
    ]
  ) {
    const code = `local r = table.pack(${call}) return r.n, type(r[1]), r[2]`;
    assert.deepEqual(sb.execute(code), lua.execute(code), call);
  }
});
