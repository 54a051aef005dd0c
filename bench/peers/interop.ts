// The trusted bridge side by side: luagate's LuaRuntime against wasmoon (Lua 5.4 in wasm, the JS peer
// with a bridge of its own) on the crossings a lupa-style program makes, each done the natural way of
// each API: evaluating code, calling a Lua function from JS and a JS function from Lua, Lua reading a
// JS object, arrays and tables going each way, a long string, and globals.
//
//   deno run -A bench/peers/interop.ts [--rounds N] [--min-round-ms N]
//
// Every case's answer is checked to be the same for both before timing; then the rounds run
// interleaved and the table shows the median µs per call.
import { LuaRuntime, type LuaTable } from "../../mod.ts";
import { ensureNodeModules, requirePeer } from "./engines/npm.ts";
import { type LuaEngineLike, stringRunner, type WasmoonModule } from "./engines/wasmoon.ts";
import { argValue, interleavedMedians } from "./measure.ts";

interface Case {
  name: string;
  luagate: () => unknown;
  wasmoon: () => unknown;
}

const FUNCTIONS = `
function add(a, b) return a + b end
function sum(t) local s = 0 for i = 1, #t do s = s + t[i] end return s end
function length(s) return #s end
function numbers() local t = {} for i = 1, 1000 do t[i] = i end return t end
function call_each(f) local s = 0 for i = 1, 1000 do s = s + f(i) end return s end
function read_field(o) local s = 0 for i = 1, 1000 do s = s + o.x end return s end
function record() return { user = "ann", roles = { "admin", "dev" }, n = 3 } end`;

const ARRAY = Array.from({ length: 1000 }, (_, i) => i);
const TEXT = "x".repeat(10_000);
const OBJECT = { x: 2 };
const double = (i: number) => 2 * i;

function cases(lua: LuaRuntime, wasmoon: LuaEngineLike): Case[] {
  lua.execute(FUNCTIONS);
  wasmoon.doStringSync(FUNCTIONS);
  const wasmoonString = stringRunner(wasmoon);
  const g = lua.globals();
  // deno-lint-ignore no-explicit-any
  const L = (name: string) => g.get(name) as (...args: any[]) => any;
  // deno-lint-ignore no-explicit-any
  const W = (name: string) => wasmoon.global.get(name) as (...args: any[]) => any;
  const [add, sum, length, numbers, callEach, readField, record] = [
    "add",
    "sum",
    "length",
    "numbers",
    "call_each",
    "read_field",
    "record",
  ].map((name) => [L(name), W(name)]);
  return [
    {
      name: "evaluate `1 + 2`",
      luagate: () => lua.eval("1 + 2"),
      wasmoon: () => wasmoonString("return 1 + 2"),
    },
    {
      name: "JS calls a Lua function, `add(40, 2)`",
      luagate: () => add[0](40, 2),
      wasmoon: () => add[1](40, 2),
    },
    {
      name: "Lua calls a JS function, 1,000 times",
      luagate: () => callEach[0](double),
      wasmoon: () => callEach[1](double),
    },
    {
      name: "Lua reads a JS object's field, 1,000 times",
      luagate: () => readField[0](OBJECT),
      wasmoon: () => readField[1](OBJECT),
    },
    {
      name: "a JS array of 1,000 numbers summed in Lua",
      luagate: () => {
        using t = lua.tableFrom(ARRAY);
        return sum[0](t);
      },
      wasmoon: () => sum[1](ARRAY),
    },
    {
      name: "a Lua table of 1,000 numbers read into JS",
      luagate: () => {
        using t = numbers[0]() as LuaTable;
        return [...t.values()];
      },
      wasmoon: () => numbers[1](),
    },
    {
      name: "a Lua record's fields read in JS",
      luagate: () => {
        using t = record[0]() as LuaTable;
        using roles = t.get("roles") as LuaTable;
        return [t.get("user"), t.get("n"), roles.get(1), roles.length];
      },
      wasmoon: () => {
        const r = record[1]() as { user: string; n: number; roles: string[] };
        return [r.user, r.n, r.roles[0], r.roles.length];
      },
    },
    {
      name: "a 10 KB JS string's length in Lua",
      luagate: () => length[0](TEXT),
      wasmoon: () => length[1](TEXT),
    },
    {
      name: "a global set from JS and read back",
      luagate: () => {
        g.set("v", 5);
        return g.get("v");
      },
      wasmoon: () => {
        wasmoon.global.set("v", 5);
        return wasmoon.global.get("v");
      },
    },
  ];
}

async function main(): Promise<void> {
  const rounds = argValue(Deno.args, "--rounds", 7);
  const minRoundMs = argValue(Deno.args, "--min-round-ms", 150);
  await ensureNodeModules();
  const wasmoonModule = requirePeer<WasmoonModule>("wasmoon/dist/index.js");
  const wasmoon = await new wasmoonModule.LuaFactory().createEngine();
  const lua = new LuaRuntime();
  const lines = ["| Crossing | luagate LuaRuntime | wasmoon |", "| --- | ---: | ---: |"];
  for (const c of cases(lua, wasmoon)) {
    const [mine, theirs] = [JSON.stringify(c.luagate()), JSON.stringify(c.wasmoon())];
    if (mine !== theirs) throw new Error(`${c.name}: luagate answered ${mine}, wasmoon ${theirs}`);
    const [us, them] = interleavedMedians([c.luagate, c.wasmoon], rounds, minRoundMs);
    lines.push(`| ${c.name} | **${us.toFixed(2)}** | ${them.toFixed(2)} (${(them / us).toFixed(1)}×) |`);
    console.error(`${c.name}: ${us.toFixed(2)} / ${them.toFixed(2)} µs`);
  }
  lua.close();
  wasmoon.global.close();
  console.log(
    `µs per call, median of ${rounds} interleaved rounds (in parentheses: wasmoon's time against luagate's)\n`,
  );
  console.log(lines.join("\n"));
}

await main();
