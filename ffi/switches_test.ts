import assert from "node:assert/strict";
import { switchedOn } from "./switches.ts";

Deno.test('switches: on only for "1", read once per process', () => {
  Deno.env.set("LUAGATE_SWITCH_TEST_ON", "1");
  Deno.env.set("LUAGATE_SWITCH_TEST_YES", "yes");
  Deno.env.delete("LUAGATE_SWITCH_TEST_UNSET");
  assert.equal(switchedOn("LUAGATE_SWITCH_TEST_ON"), true);
  assert.equal(switchedOn("LUAGATE_SWITCH_TEST_YES"), false);
  assert.equal(switchedOn("LUAGATE_SWITCH_TEST_UNSET"), false);
  // a later change is not seen: the paths taken stay the same for the whole process
  Deno.env.set("LUAGATE_SWITCH_TEST_ON", "0");
  Deno.env.set("LUAGATE_SWITCH_TEST_UNSET", "1");
  assert.equal(switchedOn("LUAGATE_SWITCH_TEST_ON"), true);
  assert.equal(switchedOn("LUAGATE_SWITCH_TEST_UNSET"), false);
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
