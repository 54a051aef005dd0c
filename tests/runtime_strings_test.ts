import assert from "node:assert/strict";
import { LuaRuntime, LuaTable } from "../mod.ts";
import { assertUsable, fn, tbl } from "./helpers.ts";

const bytes = (...b: number[]) => new Uint8Array(b);

Deno.test("lupa: UTF-8 strings round trip and Lua sees their bytes", () => {
  using lua = new LuaRuntime();
  const text = "héllo wörld ✓ 🎉 日本語";
  assert.equal(lua.eval("...", text), text);
  assert.equal(lua.eval("#...", text), new TextEncoder().encode(text).length);
  assert.equal(lua.eval("string.char(0xF0, 0x9F, 0x8E, 0x89)"), "🎉");
  assert.equal(lua.eval("'caf' .. string.char(0xC3, 0xA9)"), "café");
});

Deno.test("lupa: string.lower from the string library table works from JS", () => {
  using lua = new LuaRuntime();
  const string = tbl(lua.eval("string"));
  assert.equal(fn(string.get("lower"))("A"), "a");
  assert.equal(fn(string.get("rep"))("ab", 3), "ababab");
});

Deno.test("lupa: with encoding null, Lua strings come back as Uint8Array", () => {
  using lua = new LuaRuntime({ encoding: null });
  assert.deepEqual(lua.eval("'abc'"), bytes(97, 98, 99));
  assert.deepEqual(lua.eval("'caf' .. string.char(0xC3, 0xA9)"), bytes(0x63, 0x61, 0x66, 0xc3, 0xa9));
  assert.deepEqual(lua.eval("''"), bytes());
  // JS strings still go in as UTF-8 and come back as bytes
  assert.deepEqual(lua.eval("...", "é"), bytes(0xc3, 0xa9));
});

Deno.test("lupa: with encoding null, table keys come back as bytes too", () => {
  using lua = new LuaRuntime({ encoding: null });
  const t = tbl(lua.eval("{ key = 'value' }"));
  const [[k, v]] = [...t.entries()];
  assert.deepEqual(k, bytes(107, 101, 121));
  assert.deepEqual(v, bytes(118, 97, 108, 117, 101));
  assert.deepEqual(t.get("key"), bytes(118, 97, 108, 117, 101));
});

Deno.test("lupa: an embedded NUL survives the round trip", () => {
  using lua = new LuaRuntime();
  assert.equal(lua.eval("...", "a\0b"), "a\0b");
  assert.equal(lua.eval("#...", "a\0b"), 3);
  assert.equal(lua.eval("'x\\0y\\0'"), "x\0y\0");
  assert.deepEqual(lua.eval("...", bytes(0, 1, 0)), "\0\u0001\0");
});

Deno.test("lupa: invalid UTF-8 from Lua comes back as a Uint8Array", () => {
  using lua = new LuaRuntime();
  assert.deepEqual(lua.eval("string.char(0xff, 0xfe)"), bytes(0xff, 0xfe));
  assert.deepEqual(lua.eval("'ok' .. string.char(0xC3)"), bytes(0x6f, 0x6b, 0xc3));
  assert.deepEqual(lua.eval("string.char(200, 1)"), bytes(200, 1));
  // valid UTF-8 right next to it is still a string
  assert.equal(lua.eval("string.char(0xC3, 0xA9)"), "é");
});

Deno.test("lupa: a Uint8Array becomes a Lua string", () => {
  using lua = new LuaRuntime();
  const data = bytes(0, 255, 10, 128);
  assert.equal(lua.eval("type(...)", data), "string");
  assert.equal(lua.eval("#...", data), 4);
  assert.deepEqual(lua.eval("{(...):byte(1, -1)}", data) instanceof LuaTable, true);
  assert.deepEqual([...tbl(lua.eval("{(...):byte(1, -1)}", data)).values()], [0, 255, 10, 128]);
  // binary in, binary out
  assert.deepEqual(lua.eval("...", data), data);
  // a Uint8Array holding valid UTF-8 comes back as a JS string
  assert.equal(lua.eval("...", new TextEncoder().encode("hé")), "hé");
});

Deno.test("a Uint8Array view (subarray) passes only its own bytes", () => {
  using lua = new LuaRuntime();
  const whole = new TextEncoder().encode("0123456789");
  assert.equal(lua.eval("...", whole.subarray(3, 6)), "345");
});

Deno.test("the empty string crosses both ways", () => {
  using lua = new LuaRuntime();
  assert.equal(lua.eval("''"), "");
  assert.equal(lua.eval("#...", ""), 0);
  assert.equal(lua.eval("... == ''", ""), true);
});

Deno.test("a 1 MB string round trips byte for byte", () => {
  using lua = new LuaRuntime();
  const big = "xyz€".repeat(250_000);
  assert.equal(lua.eval("...", big), big);
  const made = lua.eval("string.rep('ab', 500000)") as string;
  assert.equal(made.length, 1_000_000);
  assert.equal(made.slice(0, 4), "abab");
});

Deno.test("strings used as keys: JS string keys match Lua string keys", () => {
  using lua = new LuaRuntime();
  const t = tbl(lua.eval("{ ['ключ'] = 1, ['a\\0b'] = 2 }"));
  assert.equal(t.get("ключ"), 1);
  assert.equal(t.get("a\0b"), 2);
  assert.equal(t.get(bytes(97, 0, 98)), 2);
});

Deno.test("an unsupported encoding is a TypeError", () => {
  assert.throws(() => new LuaRuntime({ encoding: "latin-1" as "utf-8" }), TypeError);
});

Deno.test("a symbol cannot cross into Lua and the runtime stays usable", () => {
  using lua = new LuaRuntime();
  assert.throws(() => lua.eval("...", Symbol("s")), TypeError);
  assertUsable(lua);
});
