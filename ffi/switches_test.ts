import assert from "node:assert/strict";
import { switchedOn } from "./switches.ts";

Deno.test('switches: on only for "1", read once per process', () => {
  const names = ["LUAGATE_SWITCH_TEST_ON", "LUAGATE_SWITCH_TEST_YES", "LUAGATE_SWITCH_TEST_UNSET"];
  try {
    Deno.env.set(names[0], "1");
    Deno.env.set(names[1], "yes");
    Deno.env.delete(names[2]);
    assert.deepEqual(names.map(switchedOn), [true, false, false]);
    // a later change is not seen: the paths taken stay the same for the whole process
    Deno.env.set(names[0], "0");
    Deno.env.set(names[2], "1");
    assert.deepEqual(names.map(switchedOn), [true, false, false]);
  } finally {
    for (const name of names) Deno.env.delete(name);
  }
});

Deno.test("switches: off without the env permission", async () => {
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(
      script,
      `import { switchedOn } from ${JSON.stringify(new URL("./switches.ts", import.meta.url).href)};
      console.log(switchedOn("LUAGATE_SWITCH_TEST_ON"));`,
    );
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", script],
      env: { LUAGATE_SWITCH_TEST_ON: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(new TextDecoder().decode(output.stderr), "");
    assert.equal(new TextDecoder().decode(output.stdout).trim(), "false");
  } finally {
    await Deno.remove(script);
  }
});
