import assert from "node:assert/strict";
import {
  DATA_BUILDER_CODE,
  DataOp,
  MAX_PROGRAM_SLOTS,
  openDataBuilder,
  PROGRAM_HEADER,
} from "./data_builder.ts";
import {
  assertBuiltFromSource,
  crossToolsMissing,
  SHOW_LUA,
  withHarness,
} from "../tests/fixtures/native_helpers.ts";
import { openLuaLibrary } from "./library.ts";
import { createLuaApi, type LuaState, LuaStatus, LuaType } from "./lua_api.ts";
import { embeddedBytes, runsEmbeddedCode } from "./native_code.ts";
import { switchedOn } from "./switches.ts";

const library = openLuaLibrary();
const api = createLuaApi(library);
const s = api.sym;
const builder = openDataBuilder(library);
const ignore = builder === undefined;

const SHOW = new TextEncoder().encode(SHOW_LUA);

function newState(): LuaState {
  const L = s.luaL_newstate() as LuaState;
  s.luaL_openlibs(L);
  return L;
}

interface Program {
  ops: number[];
  bytes?: Uint8Array;
  numbers?: number[];
  /** Overrides the header's count of ints and slots. */
  length?: number;
  slots?: number;
  /** The registry reference of the builder's table of known strings, passed as its argument. */
  known?: number;
}

/** Runs a program on a fresh stack: the rendered result, or null when the builder returned none. */
function build(L: LuaState, program: Program): string | null {
  const b = builder!;
  b.program.set([program.length ?? program.ops.length, program.slots ?? 8, ...program.ops]);
  if (program.bytes) b.bytes.set(program.bytes);
  if (program.numbers) b.numbers.set(program.numbers);
  s.lua_settop(L, 0);
  assert.equal(api.loadBuffer(L, SHOW, SHOW.length, new TextEncoder().encode("=show\0"), null), LuaStatus.OK);
  assert.equal(api.pcall(L, 0, 1, 0), LuaStatus.OK);
  s.lua_pushcclosure(L, b.entry, 0);
  if (program.known !== undefined) api.rawGetI(L, api.registryIndex, program.known);
  assert.equal(api.pcall(L, program.known !== undefined ? 1 : 0, 1, 0), LuaStatus.OK);
  if (s.lua_type(L, -1) === LuaType.NIL) {
    assert.equal(s.lua_gettop(L), 2, "a refused program leaves only its nil result");
    return null;
  }
  assert.equal(api.pcall(L, 1, 1, 0), LuaStatus.OK);
  const text = Deno.UnsafePointerView.getCString(s.lua_tolstring(L, -1, null)!);
  s.lua_settop(L, 0);
  return text;
}

const bytes = (text: string) => new TextEncoder().encode(text);
const { TABLE, STRING, INTEGER, NUMBER, TRUE, FALSE, SET_FIELD, SET_INDEX, KNOWN_STRING } = DataOp;

Deno.test("data builder: every operation builds what it says", { ignore }, () => {
  const L = newState();
  try {
    // { name = "ann", tags = { "a", true }, n = -5, big = 2^40 + 7, x = 1.5, ok = false }
    const text = bytes("nameanntagsanbigxok");
    const ops = [
      TABLE,
      0,
      6,
      STRING,
      0,
      4,
      STRING,
      4,
      3,
      SET_FIELD,
      STRING,
      7,
      4,
      TABLE,
      2,
      0,
      STRING,
      11,
      1,
      SET_INDEX,
      1,
      TRUE,
      SET_INDEX,
      2,
      SET_FIELD,
      STRING,
      12,
      1,
      INTEGER,
      -5,
      -1,
      SET_FIELD,
      STRING,
      13,
      3,
      INTEGER,
      7,
      256,
      SET_FIELD,
      STRING,
      16,
      1,
      NUMBER,
      0,
      SET_FIELD,
      STRING,
      17,
      2,
      FALSE,
      SET_FIELD,
    ];
    assert.equal(
      build(L, { ops, bytes: text, numbers: [1.5] }),
      `{"big"=1099511627783,"n"=-5,"name"="ann","ok"=false,"tags"={1="a",2=true},"x"=1.5f}`,
    );
  } finally {
    s.lua_close(L);
  }
});

Deno.test("data builder: strings keep NUL bytes and invalid UTF-8; integers span 64 bits", { ignore }, () => {
  const L = newState();
  try {
    const text = new Uint8Array([0x6b, 0x00, 0x76, 0xff, 0xfe]);
    assert.equal(
      build(L, { ops: [TABLE, 0, 1, STRING, 0, 2, STRING, 2, 3, SET_FIELD], bytes: text }),
      `{"k\\0"="v\\255\\254"}`,
    );
    assert.equal(
      build(L, {
        ops: [TABLE, 2, 0, INTEGER, 0, -2147483648, SET_INDEX, 1, INTEGER, -1, 2147483647, SET_INDEX, 2],
      }),
      `{1=-9223372036854775808,2=9223372036854775807}`,
    );
  } finally {
    s.lua_close(L);
  }
});

Deno.test(
  "data builder: a known string is made once, then pushed from the table it was given",
  { ignore },
  () => {
    const L = newState();
    try {
      s.lua_createtable(L, 0, 0);
      const known = s.luaL_ref(L, api.registryIndex);
      // { name = "ann" }, both strings known (slots 1 and 2)
      const ops = [TABLE, 0, 1, KNOWN_STRING, 1, 0, 4, KNOWN_STRING, 2, 4, 3, SET_FIELD];
      assert.equal(build(L, { ops, bytes: bytes("nameann"), known }), `{"name"="ann"}`);
      // the bytes are not read again for a slot the table holds
      assert.equal(build(L, { ops, bytes: bytes("xxxxxxx"), known }), `{"name"="ann"}`);
      assert.equal(
        build(L, { ops: [TABLE, 0, 1, KNOWN_STRING, 3, 0, 4, TRUE, SET_FIELD], known }),
        `{"xxxx"=true}`,
      );
      assert.equal(build(L, { ops, bytes: bytes("nameann") }), null, "no table of known strings");
      assert.equal(
        build(L, { ops: [TABLE, 0, 0, KNOWN_STRING, 0, 0, 1, TRUE, SET_FIELD], known }),
        null,
        "slot 0",
      );
      assert.equal(
        build(L, {
          ops: [TABLE, 0, 0, KNOWN_STRING, 4, builder!.bytes.length - 1, 2, TRUE, SET_FIELD],
          known,
        }),
        null,
        "a known string past the buffer",
      );
      assert.equal(
        build(L, { ops: [TABLE, 0, 0, KNOWN_STRING, 4, 0], known }),
        null,
        "a truncated operation",
      );
    } finally {
      s.lua_close(L);
    }
  },
);

Deno.test("data builder: a malformed program gives no result and leaves the state usable", { ignore }, () => {
  const L = newState();
  try {
    const text = bytes("key");
    const refused: [string, Program][] = [
      ["set on a string", { ops: [STRING, 0, 1, STRING, 0, 1, STRING, 0, 1, SET_FIELD] }],
      ["set with too few values", { ops: [TABLE, 0, 1, STRING, 0, 1, SET_FIELD] }],
      ["index set on a string", { ops: [STRING, 0, 1, STRING, 0, 1, SET_INDEX, 1] }],
      ["index set without its operand", { ops: [TABLE, 1, 0, TRUE, SET_INDEX] }],
      ["a string past the buffer", { ops: [TABLE, 0, 0, STRING, builder!.bytes.length - 1, 2] }],
      ["a huge string length", { ops: [TABLE, 0, 0, STRING, 0, -1] }],
      ["a float past the buffer", { ops: [TABLE, 0, 0, NUMBER, builder!.numbers.length] }],
      ["a negative table size", { ops: [TABLE, -1, 0] }],
      ["a truncated operation", { ops: [TABLE, 0] }],
      ["an unknown operation", { ops: [TABLE, 0, 0, 99] }],
      ["two values left", { ops: [TABLE, 0, 0, TRUE] }],
      ["a string as the result", { ops: [STRING, 0, 3] }],
      ["nothing", { ops: [] }],
      ["more slots than declared", { ops: [TABLE, 0, 0, TRUE, TRUE], slots: 2 }],
      ["no slots", { ops: [TABLE, 0, 0], slots: 0 }],
      ["more slots than the builder allows", { ops: [TABLE, 0, 0], slots: MAX_PROGRAM_SLOTS + 1 }],
      ["a length past the program", { ops: [TABLE, 0, 0], length: builder!.program.length }],
      ["a negative length", { ops: [TABLE, 0, 0], length: -1 }],
    ];
    for (const [what, program] of refused) {
      assert.equal(build(L, { bytes: text, ...program }), null, what);
    }
  } finally {
    s.lua_close(L);
  }
});

Deno.test("data builder: nesting up to the slot limit", { ignore }, () => {
  const L = newState();
  try {
    // each level is a table in slot i, its key "k" in slot i + 1
    const levels = MAX_PROGRAM_SLOTS / 2;
    const ops: number[] = [];
    for (let i = 0; i < levels; i++) ops.push(TABLE, 0, 1, STRING, 0, 1);
    ops.push(TABLE, 0, 0);
    for (let i = 0; i < levels; i++) ops.push(SET_FIELD);
    assert.equal(
      build(L, { ops: ops, bytes: bytes("k"), slots: MAX_PROGRAM_SLOTS }),
      null,
      "one slot too many",
    );
    const fitting = ops.slice(6);
    fitting.pop();
    assert.equal(
      build(L, { ops: fitting, bytes: bytes("k"), slots: MAX_PROGRAM_SLOTS })?.length,
      `{"k"=`.length * (levels - 1) + "{}".length + "}".length * (levels - 1),
    );
  } finally {
    s.lua_close(L);
  }
});

Deno.test("data builder: none for LuaJIT and Lua before 5.3", () => {
  const expected = !library.isLuaJIT && (library.version === "5.3" || library.version === "5.4") &&
    runsEmbeddedCode() && !switchedOn("LUAGATE_JS_DATA");
  assert.equal(builder !== undefined, expected);
  if (builder) assert.equal(builder.program.length > PROGRAM_HEADER, true);
});

Deno.test("the embedded bytes were built from the current ffi/data_builder.c", () =>
  assertBuiltFromSource("data_builder"));

Deno.test(
  "data builder: the x86_64 and aarch64 code make the same calls",
  { ignore: crossToolsMissing() },
  async () => {
    await withHarness("data_builder_harness", async (harness, dir) => {
      await Deno.writeFile(`${dir}/x86_64.code`, embeddedBytes(DATA_BUILDER_CODE, "x86_64"));
      await Deno.writeFile(`${dir}/aarch64.code`, embeddedBytes(DATA_BUILDER_CODE, "aarch64"));
      await Deno.writeFile(`${dir}/bytes`, bytes("namehéllo\0key\0"));
      await Deno.writeFile(`${dir}/numbers`, new Uint8Array(new Float64Array([1.5, -0.25]).buffer));
      const run = async (arch: "x86_64" | "aarch64", ops: number[], slots = 8) => {
        const program = new Int32Array([ops.length, slots, ...ops, 0, 0, 0]);
        await Deno.writeFile(`${dir}/program`, new Uint8Array(program.buffer));
        return await harness(arch, [
          `${dir}/${arch}.code`,
          `${dir}/program`,
          `${dir}/bytes`,
          `${dir}/numbers`,
        ]);
      };
      const valid = [
        TABLE,
        0,
        3,
        STRING,
        0,
        4,
        STRING,
        4,
        6,
        SET_FIELD,
        STRING,
        11,
        3,
        TABLE,
        3,
        0,
        INTEGER,
        -5,
        -1,
        SET_INDEX,
        1,
        NUMBER,
        1,
        SET_INDEX,
        2,
        TRUE,
        SET_INDEX,
        3,
        SET_FIELD,
        STRING,
        11,
        3,
        INTEGER,
        7,
        256,
        SET_FIELD,
        KNOWN_STRING,
        3,
        0,
        4,
        KNOWN_STRING,
        2,
        11,
        3,
        SET_FIELD,
      ];
      const expected = [
        "checkstack 9",
        "type 1",
        "createtable 0 3",
        "pushlstring 4 [name]",
        "pushlstring 6 [héllo]",
        "rawset -3",
        "pushlstring 3 [key]",
        "createtable 3 0",
        "pushinteger -5",
        "rawseti -2 1",
        "pushnumber -0.25",
        "rawseti -2 2",
        "pushboolean 1",
        "rawseti -2 3",
        "rawset -3",
        "pushlstring 3 [key]",
        "pushinteger 1099511627783",
        "rawset -3",
        "rawgeti 1 3",
        "settop -2",
        "pushlstring 4 [name]",
        "pushvalue -1",
        "rawseti 1 3",
        "rawgeti 1 2",
        "rawset -3",
        "returned 1",
        "",
      ].join("\n");
      assert.equal(await run("x86_64", valid), expected);
      assert.equal(await run("aarch64", valid), expected);
      const malformed = [
        [STRING, 0, 1, STRING, 0, 1, STRING, 0, 1, SET_FIELD],
        [TABLE, 0, 0, STRING, 10, 100],
        [TABLE, 0, 0, NUMBER, 2],
        [TABLE, 0, 0, 99],
        [TABLE, 0, 0, TRUE],
        [TABLE, 0, 0, KNOWN_STRING, 0, 0, 1, SET_FIELD],
        [TABLE, 0, 0, KNOWN_STRING, 1, 10, 100, SET_FIELD],
      ];
      for (const ops of malformed) {
        const transcript = await run("x86_64", ops);
        assert.match(transcript, /returned 0\n$/);
        assert.equal(await run("aarch64", ops), transcript);
      }
    });
  },
);
