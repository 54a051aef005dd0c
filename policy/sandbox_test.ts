import assert from "node:assert/strict";
import { Sandbox } from "./sandbox.ts";

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
