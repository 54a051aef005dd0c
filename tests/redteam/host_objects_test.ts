/**
 * Red team: host objects (deep-frozen, read-only, data only: no prototype, constructor or
 * function reachable), the "filtered" versus "missing" oracle with an attribute filter, and
 * boundary keys (embedded NUL, invalid UTF-8, numbers, booleans, tables).
 */
import assert from "node:assert/strict";
import {
  assertHostIntact,
  assertUsable,
  attackSuite,
  hostGlobals,
  LuaError,
  luaError,
  refused,
  Sandbox,
  snapshot,
  TIGHT,
  value,
} from "./_harness.ts";
import { allowList, denyList } from "../../mod.ts";

const READ_ONLY = /read-only host object/;

attackSuite("host objects", [
  {
    name: "input.x = 1",
    code: "input.x = 1",
    expect: luaError(READ_ONLY),
  },
  {
    name: "nested mutation past a shallow freeze: input.user.name = 'eve'",
    code: "input.user.name = 'eve'",
    expect: luaError(READ_ONLY),
  },
  {
    name: "array mutation: input.list[1] = 0 and input.list[4] = 0",
    code:
      "local ok1 = pcall(function() input.list[1] = 0 end) local ok2 = pcall(function() input.list[4] = 0 end) " +
      "return ok1, ok2, input.list[1], #input.list",
    expect: value([false, false, 1, 3]),
  },
  {
    name: "deep mutation: input.list[3].deep.deeper[1] = false",
    code: "input.list[3].deep.deeper[1] = false",
    expect: luaError(READ_ONLY),
  },
  {
    name: "Map mutation: input.tags.a = 2, input.tags.set, input.tags.delete",
    code:
      "local ok = pcall(function() input.tags.a = 2 end) return ok, input.tags.set, input.tags.delete, input.tags.a",
    expect: value([false, undefined, undefined, 1]),
  },
  {
    name: "Date methods are unreachable",
    code: "return input.when.setTime, input.when.getTime, input.when.toISOString, tostring(input.when)",
    expect: value([undefined, undefined, undefined, "host object"]),
  },
  {
    name: "typed arrays: no buffer, no methods, no writes",
    code: "local ok = pcall(function() input.bytes[1] = 9 end) " +
      "return ok, input.bytes.buffer, input.bytes.set, input.bytes.subarray",
    expect: value([false, undefined, undefined, undefined]),
  },
  {
    name: "input.__proto__ is nil, so is writing through it",
    code:
      "local p = input.__proto__ local ok = pcall(function() input.__proto__.polluted = 1 end) return p, ok",
    expect: value([undefined, false]),
  },
  {
    name: "input.constructor.constructor('return Deno')()",
    code: "return input.constructor.constructor('return Deno')()",
    expect: luaError(/attempt to index a nil value \(field 'constructor'\)/),
  },
  {
    name: "prototype methods: toString, valueOf, hasOwnProperty, __defineGetter__, __lookupGetter__",
    code: "return input.toString, input.valueOf, input.hasOwnProperty, input.__defineGetter__, " +
      "input.__lookupGetter__, input.isPrototypeOf, input.propertyIsEnumerable, input.toLocaleString",
    expect: value(new Array(8).fill(undefined)),
  },
  {
    name: "array prototype: length, push, map, constructor",
    code: "local l = input.list return l.length, l.push, l.map, l.constructor, #l",
    expect: value([undefined, undefined, undefined, undefined, 3]),
  },
  {
    name: "the prototype chain through Map and Date",
    code: "return input.tags.constructor, input.tags.__proto__, input.when.constructor, input.when.prototype",
    expect: value([undefined, undefined, undefined, undefined]),
  },
  {
    name: "calling a host object",
    code: "return input()",
    expect: luaError(/attempt to call a host object/),
  },
  {
    name: "the metatable of a host object is locked",
    code: "return getmetatable(input), pcall(setmetatable, input, {})",
    expect: refused(2),
  },
  {
    name: "host objects are not tables for rawset / next / table functions",
    code: "return pcall(table.insert, input.list, 4), " +
      "pcall(table.sort, input.user.roles, function(a, b) return a > b end), pcall(table.concat, input.list)",
    expect: { check: (v) => assert.deepEqual((v as unknown[]).filter((x) => x === true), []) },
  },
  {
    name: "ipairs and pairs over host arrays and objects read data only",
    code: "local a, n = {}, 0 for i, v in ipairs(input.user.roles) do a[i] = v end " +
      "for k, v in pairs(input.user) do n = n + 1 end return a, n",
    expect: value([["reader", "writer"], 4]),
  },
  {
    name: "#input and tostring(input): no size, no address",
    code: "return #input, tostring(input), tostring(input.list), tostring(input.tags)",
    expect: value([0, "host object", "host array", "host map"]),
  },
  {
    name: "a host object returned as a result comes back as the frozen object itself",
    code: "return input.user",
    expect: {
      check: (v) => {
        assert.ok(Object.isFrozen(v));
        assert.equal((v as { name: string }).name, "ann");
      },
    },
  },
  {
    name: "a host object inside a returned table",
    code: "return {u = input.user, n = 1}",
    expect: {
      check: (v) => {
        const r = v as { u: { name: string }; n: number };
        assert.equal(Object.getPrototypeOf(r), null);
        assert.ok(Object.isFrozen(r.u));
      },
    },
  },
  {
    name: "a null field reads as nil",
    code: "return input.nothing, input.empty ~= nil",
    expect: value([undefined, true]),
  },
]);

attackSuite("oracles", [
  {
    name: "filtered and missing fields read the same, everywhere",
    code: `
      local u = input.user
      local function probe(name)
        local ok, e = pcall(function() return u[name].x end)
        local listed = false
        for k in pairs(u) do if k == name then listed = true end end
        return tostring(u[name]), type(u[name]), ok, (tostring(e):gsub(name, "NAME")), listed
      end
      local a = {probe("secret")}
      local b = {probe("nosuchfield")}
      for i = 1, 5 do if a[i] ~= b[i] then return "differs at " .. i .. ": " .. tostring(a[i]) .. " / " .. tostring(b[i]) end end
      return "same"`,
    options: { attributeFilter: denyList(["secret"]) },
    expect: value("same"),
  },
  {
    name: "pairs over a filtered object never lists a hidden field",
    code:
      "local keys = {} for k in pairs(input.user) do keys[#keys + 1] = k end table.sort(keys) return keys",
    options: { attributeFilter: denyList(["secret", "id"]) },
    expect: value(["name", "roles"]),
  },
  {
    name: "an allow-list hides everything else, and the prototype names",
    code: "return input.user, input.constructor, input.__proto__",
    options: { attributeFilter: allowList(["input", "name"]) },
    expect: value([undefined, undefined, undefined]),
  },
  {
    name: "a filter renaming to a forbidden name is still refused",
    code: "return input.alias",
    options: { attributeFilter: (_o, name) => name === "alias" ? "__proto__" : name },
    expect: value(undefined),
  },
  {
    name: "a filter that throws an odd value hides the field without leaking it",
    code: "return input.user.secret, input.user.name",
    options: {
      attributeFilter: (_o, name) => {
        if (name === "secret") throw { toString: () => "/work/main/secret.ts:1 0x7ffd1234abcd" };
        return name;
      },
    },
    expect: value([undefined, "ann"]),
  },
  {
    name: "Map keys behind a filter: hidden and missing read the same",
    code: "return input.tags.b, input.tags.zz, input.tags.a",
    options: { attributeFilter: denyList(["b"]) },
    expect: value([undefined, undefined, 1]),
  },
  {
    name: "attribute handlers that throw read as missing",
    code: "return input.user, input.anything",
    options: {
      attributeHandlers: {
        get: () => {
          throw new Error("denied at /work/main/x.ts:1");
        },
      },
    },
    expect: value([undefined, undefined]),
  },
  {
    name: "attribute handlers returning functions or symbols give nothing",
    code: "return input.f, input.s, input.n",
    options: {
      attributeHandlers: {
        get: (_o, name) => name === "f" ? () => 1 : name === "s" ? Symbol("x") : 5,
      },
    },
    expect: value([undefined, undefined, 5]),
  },
]);

attackSuite("boundary strings", [
  {
    name: "a key with an embedded NUL reads exactly that key",
    code: "return input['constructor\\0x'], input['constructor\\0'], input['constructor']",
    expect: value(["nul-key", undefined, undefined]),
  },
  {
    name: "__proto__ with a NUL, a BOM or a trailing space is not __proto__",
    code: "return input['__proto__\\0'], input['\\239\\187\\191__proto__'], input['__proto__ ']",
    expect: value([undefined, undefined, undefined]),
  },
  {
    name: "invalid UTF-8 keys read as missing",
    code: "return input['\\255'], input['use\\192r'], input['\\237\\160\\128']",
    expect: value([undefined, undefined, undefined]),
  },
  {
    name: "overlong UTF-8 spellings of a key are not that key",
    code: "return input['\\193\\181ser'], input['\\224\\129\\181ser']",
    expect: value([undefined, undefined]),
  },
  {
    name: "non-string keys on objects: numbers, booleans, tables, NaN",
    code: "return input[1], input[true], input[{}], input[0/0]",
    expect: value([undefined, undefined, undefined, undefined]),
  },
  {
    name: "odd array indices: 0, -1, 1.5, 2^53, huge",
    code: "local r = input.user.roles return r[0], r[-1], r[1.5], r[2^53], r[math.maxinteger], r[1]",
    expect: value([undefined, undefined, undefined, undefined, undefined, "reader"]),
  },
  {
    name: "a result table with NUL and invalid UTF-8 keys",
    code: "return {['a\\0b'] = 1, ['\\255'] = 2, ['__proto__'] = 3, constructor = 4}",
    expect: {
      check: (v) => {
        const r = v as Record<string, unknown>;
        assert.equal(Object.getPrototypeOf(r), null);
        assert.equal(r["a\u0000b"], 1);
        assert.equal(r["__proto__"], 3);
        assert.equal(r.constructor, 4);
        assert.equal(Object.keys(r).length, 4);
      },
    },
  },
  {
    name: "strings with NUL and invalid UTF-8 come back intact (bytes when not UTF-8)",
    code: "return 'a\\0b', '\\255\\254'",
    expect: {
      check: (v) => {
        const [a, b] = v as [string, Uint8Array];
        assert.equal(a, "a\u0000b");
        assert.deepEqual(b, new Uint8Array([255, 254]));
      },
    },
  },
  {
    name: "a capability receiving a key with a NUL and invalid UTF-8",
    code: "return echo({['k\\0'] = '\\255'})",
    expect: {
      check: (v) => {
        const r = v as Record<string, unknown>;
        assert.deepEqual(r["k\u0000"], new Uint8Array([255]));
      },
    },
  },
]);

Deno.test("redteam host objects: globals given as Map, Date and typed arrays stay unchanged", () => {
  const globals = {
    m: new Map<string, unknown>([["k", { v: 1 }]]),
    d: new Date(86_400_000),
    u: new Uint8Array([9, 8, 7]),
    f: new Float64Array([1.5]),
  };
  const snap = snapshot(globals);
  using sb = new Sandbox({ limits: TIGHT, globals });
  for (
    const code of [
      "m.k = 1",
      "m.k.v = 2",
      "d.x = 1",
      "u[1] = 0",
      "u['0'] = 0",
      "f['0'] = 0",
    ]
  ) {
    assert.throws(() => sb.execute(code), LuaError);
  }
  // a Uint8Array crosses as a string (a copy of its bytes); other typed arrays as read-only proxies
  assert.deepEqual(sb.execute("return m.k.v, type(u), #u, u:byte(1), f['0'], tostring(d)"), [
    1,
    "string",
    3,
    9,
    1.5,
    "host object",
  ]);
  assertHostIntact(snap);
  assertUsable(sb);
});

Deno.test("redteam host objects: attribute handlers with set see only what Lua sets", () => {
  const writes: unknown[] = [];
  const globals = hostGlobals();
  using sb = new Sandbox({
    limits: TIGHT,
    globals,
    attributeHandlers: {
      get: (o, n) => (o as Record<string, unknown>)[n],
      set: (_o, n, v) => writes.push([n, v]),
    },
  });
  sb.execute("input.x = {1, 2} input.y = print ~= nil");
  assert.deepEqual(writes, [["x", [1, 2]], ["y", true]]);
  assert.equal((globals.input as Record<string, unknown>).x, undefined);
});
