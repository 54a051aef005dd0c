import assert from "node:assert/strict";
import { Sandbox } from "./sandbox.ts";
import { LuaLimitError } from "../lua/errors.ts";

// The bound on an idle sandbox's Lua memory.
const IDLE_BOUND = 64 * 1024;

Deno.test("sandbox: a new sandbox idles under 64 KiB of Lua memory, the first of a process too", async () => {
  // A process of its own, so that its first sandbox is the first state to load luagate's chunks.
  const script = `
    import { Sandbox } from ${JSON.stringify(new URL("./sandbox.ts", import.meta.url).href)};
    const idle = [];
    for (let i = 0; i < 3; i++) {
      using sandbox = new Sandbox();
      idle.push(sandbox.idleMemory);
    }
    console.log(JSON.stringify(idle));
  `;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", script],
    stdout: "piped",
    stderr: "inherit",
  });
  const { code, stdout } = await child.output();
  assert.equal(code, 0);
  const [first, second, third] = JSON.parse(new TextDecoder().decode(stdout)) as number[];
  assert.ok(first <= IDLE_BOUND, `the first sandbox idles at ${first} bytes`);
  assert.equal(first, second, "the first sandbox keeps nothing the others do not");
  assert.equal(second, third);

  using here = new Sandbox();
  assert.ok(here.idleMemory <= IDLE_BOUND, `${here.idleMemory} bytes`);
});

Deno.test("sandbox: execute's arguments arrive as data in their places, nils and numbers as pushed one by one", () => {
  using sb = new Sandbox();
  const code = `local seen = {}
    for i = 1, select("#", ...) do
      local v = select(i, ...)
      seen[i] = (math.type(v) or type(v)) .. " " .. tostring(type(v) == "table" and v.k or v)
    end
    return select("#", ...), table.concat(seen, ", ")`;
  const cases: [unknown[], string][] = [
    [[undefined, 1, 2.5, true, null], "nil nil, integer 1, float 2.5, boolean true, nil nil"],
    [["s", { k: "v" }, 3], "string s, table v, integer 3"],
    [[7], "integer 7"],
    [[-(2 ** 63), 2 ** 63], "integer -9223372036854775808, float 9.2233720368548e+18"],
    [[], ""],
  ];
  // twice: a first run, then runs of the kept chunk
  for (let round = 0; round < 2; round++) {
    for (const [args, seen] of cases) assert.deepEqual(sb.execute(code, ...args), [args.length, seen]);
  }
});

Deno.test("sandbox: a run with number arguments is under every limit, and the sandbox runs on after it", () => {
  using sb = new Sandbox({ limits: { instructions: 10_000 } });
  assert.throws(
    () => sb.execute("local n, step = ... while n > 0 do n = n + step end", 1, 1),
    (e: Error) => e instanceof LuaLimitError && e.limit === "instructions",
  );
  assert.equal(sb.execute("local n, step = ... return n + step", 1, 1), 2);
  assert.deepEqual(sb.execute("return ...", 1, false), [1, false]);
});
