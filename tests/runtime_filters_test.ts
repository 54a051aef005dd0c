import assert from "node:assert/strict";
import { asItemGetter, LuaRuntime } from "../mod.ts";
import { assertUsable, fn, tbl, VERSION } from "./helpers.ts";

class AttributeError extends Error {
  override name = "AttributeError";
}

function filterAttributeAccess(_obj: object, attrName: string | number, _isSetting: boolean) {
  if (typeof attrName === "string" && !attrName.startsWith("_")) return attrName;
  throw new AttributeError("access denied");
}

Deno.test("lupa: attributeFilter denies a property read with the filter's own exception", () => {
  using lua = new LuaRuntime({ attributeFilter: filterAttributeAccess });
  const func = fn(lua.eval("function(x) return x._secret end"));
  assert.throws(
    () => func({ _secret: 1 }),
    (e: unknown) => e instanceof AttributeError && e.message === "access denied",
  );
  assertUsable(lua);
});

Deno.test("lupa: attributeFilter lets allowed names through unchanged", () => {
  using lua = new LuaRuntime({ attributeFilter: filterAttributeAccess });
  assert.equal(fn(lua.eval("function(x) return x.visible end"))({ visible: "yes" }), "yes");
});

Deno.test("lupa: attributeFilter sees is_setting for writes", () => {
  const calls: [string | number, boolean][] = [];
  using lua = new LuaRuntime({
    attributeFilter(_obj, name, isSetting) {
      calls.push([name, isSetting]);
      if (isSetting && name === "readonly") throw new AttributeError("read only");
      return name;
    },
  });
  const obj: Record<string, unknown> = { readonly: 1, free: 1 };
  lua.execute("local o = ... o.free = o.readonly + 1", obj);
  assert.equal(obj.free, 2);
  assert.deepEqual(calls, [["readonly", false], ["free", true]]);
  assert.throws(() => lua.execute("(...).readonly = 5", obj), AttributeError);
  assert.equal(obj.readonly, 1);
});

Deno.test("lupa: attributeFilter applies to item access on arrays and Maps", () => {
  const seen: unknown[] = [];
  using lua = new LuaRuntime({
    attributeFilter(_obj, name) {
      seen.push(name);
      if (name === "hidden" || name === 1) throw new AttributeError(`no ${name}`);
      return name;
    },
  });
  const arr = asItemGetter(["a", "b"]);
  assert.equal(lua.eval("(...)[0]", arr), "a");
  assert.throws(() => lua.eval("(...)[1]", arr), AttributeError);
  const m = new Map([["shown", 1], ["hidden", 2]]);
  assert.equal(lua.eval("(...).shown", m), 1);
  assert.throws(() => lua.eval("(...).hidden", m), AttributeError);
  assert.throws(() => lua.execute("(...).hidden = 3", m), AttributeError);
  assert.equal(m.get("hidden"), 2);
  assert.deepEqual(seen, [0, 1, "shown", "hidden", "hidden"]);
});

Deno.test("attributeFilter can rename: the returned name is the one used", () => {
  using lua = new LuaRuntime({ attributeFilter: (_obj, name) => `_${name}` });
  const obj: Record<string, unknown> = { _x: 10 };
  assert.equal(lua.eval("(...).x", obj), 10);
  lua.execute("(...).y = 5", obj);
  assert.equal(obj._y, 5);
});

Deno.test("attributeFilter guards method lookups used by obj:method()", () => {
  using lua = new LuaRuntime({ attributeFilter: filterAttributeAccess });
  const obj = {
    ok() {
      return "ok";
    },
    _internal() {
      return "leak";
    },
  };
  assert.equal(lua.eval("(...):ok()", obj), "ok");
  assert.throws(() => lua.eval("(...):_internal()", obj), AttributeError);
});

Deno.test("attributeFilter hides filtered keys from pairs(), js.iter and js.iterex", () => {
  using lua = new LuaRuntime({ attributeFilter: filterAttributeAccess });
  const obj = { a: 1, _b: 2, c: 3 };
  // Lua 5.1 has no __pairs: js.iterex is the portable way to walk a JS object
  const loops = VERSION === "5.1"
    ? ["js.iterex(...)", "js.iter(...)"]
    : ["pairs(...)", "js.iterex(...)", "js.iter(...)"];
  for (const loop of loops) {
    const keys = tbl(lua.execute(`local t = {} for k in ${loop} do t[#t + 1] = k end return t`, obj));
    assert.deepEqual([...keys.values()], ["a", "c"], loop);
  }
  const values = tbl(
    lua.execute("local t = {} for _, v in js.iterex(...) do t[#t + 1] = v end return t", obj),
  );
  assert.deepEqual([...values.values()], [1, 3]);
});

Deno.test("lupa: attributeHandlers get and set replace property access", () => {
  class X {
    yes = 123;
    put = "abc";
    noway = 2.1;
  }
  const getter = (obj: object, attrName: string | number) => {
    if (attrName === "yes") return (obj as Record<string, unknown>)[attrName];
    throw new AttributeError(`not allowed to read attribute "${attrName}"`);
  };
  const setter = (obj: object, attrName: string | number, value: unknown) => {
    if (attrName === "put") {
      (obj as Record<string, unknown>)[attrName] = value;
      return;
    }
    throw new AttributeError(`not allowed to write attribute "${attrName}"`);
  };
  using lua = new LuaRuntime({ attributeHandlers: { get: getter, set: setter } });
  const x = new X();
  assert.equal(fn(lua.eval("function(x) return x.yes end"))(x), 123);
  assert.equal(fn(lua.eval('function(x) x.put = "ABC"; end'))(x), undefined);
  assert.equal(x.put, "ABC");
  assert.throws(
    () => fn(lua.eval("function(x) x.noway = 42; end"))(x),
    (e: unknown) => e instanceof AttributeError && e.message === 'not allowed to write attribute "noway"',
  );
  assert.equal(x.noway, 2.1);
  assert.throws(() => lua.eval("(...).noway", x), AttributeError);
  assertUsable(lua);
});

Deno.test("attributeHandlers with only get: writes are a TypeError", () => {
  using lua = new LuaRuntime({
    attributeHandlers: { get: (obj, name) => (obj as Record<string, unknown>)[name] },
  });
  const obj = { a: 1 };
  assert.equal(lua.eval("(...).a", obj), 1);
  assert.throws(() => lua.execute("(...).a = 2", obj), TypeError);
  assert.equal(obj.a, 1);
});

Deno.test("attributeHandlers also serve item access on Maps", () => {
  const reads: unknown[] = [];
  using lua = new LuaRuntime({
    attributeHandlers: {
      get(obj, name) {
        reads.push(name);
        return obj instanceof Map ? obj.get(name) : undefined;
      },
    },
  });
  assert.equal(lua.eval("(...).k", new Map([["k", "v"]])), "v");
  assert.deepEqual(reads, ["k"]);
});

Deno.test("lupa: combining attributeFilter and attributeHandlers is a TypeError", () => {
  assert.throws(
    () => new LuaRuntime({ attributeFilter: (_o, n) => n, attributeHandlers: { get: () => 1 } }),
    TypeError,
  );
});

Deno.test("a non-function attributeFilter is a TypeError", () => {
  assert.throws(() => new LuaRuntime({ attributeFilter: "nope" as unknown as () => string }), TypeError);
});

Deno.test("attributeFilter also guards the properties of a caught JS error", () => {
  using lua = new LuaRuntime({ attributeFilter: filterAttributeAccess });
  const f = fn(lua.eval("function(g) local ok, e = pcall(g) return e.message end"));
  assert.equal(
    f(() => {
      throw new Error("visible");
    }),
    "visible",
  );
  const g = fn(lua.eval("function(g) local ok, e = pcall(g) return e._private end"));
  assert.throws(() =>
    g(() => {
      throw Object.assign(new Error("x"), { _private: 1 });
    }), AttributeError);
});
