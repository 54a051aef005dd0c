/**
 * The command line tool, run as a subprocess: eval, test, bench and check, their help, and their
 * errors (one line, no stack trace, exit code 2).
 *
 * @module
 */

import assert from "node:assert/strict";
import { type ChildRun, runDenoScript } from "./fixtures/deno_child.ts";

const ROOT = new URL("..", import.meta.url);
const CLI = new URL("cli.ts", ROOT).pathname;
const EXAMPLES = new URL("examples/", ROOT).pathname;

type Run = ChildRun;

function cli(args: string[], options: { stdin?: string; cwd?: string } = {}): Promise<Run> {
  return runDenoScript(CLI, args, { cwd: options.cwd ?? ROOT.pathname, stdin: options.stdin });
}

/** A usage error: exit code 2, one line on stderr, no stack trace. */
function assertUsageError(run: Run, message: RegExp): void {
  assert.equal(run.code, 2, `exit code (stderr: ${run.stderr})`);
  const lines = run.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `one line: ${run.stderr}`);
  assert.match(lines[0], /^luagate: /);
  assert.match(lines[0], message);
  assert.doesNotMatch(run.stderr, /\n\s+at |\.ts:\d+:\d+/);
}

async function tempDir(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "luagate-cli-" });
  for (const [path, text] of Object.entries(files)) {
    const full = `${dir}/${path}`;
    await Deno.mkdir(full.slice(0, full.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(full, text);
  }
  return dir;
}

const EXAMPLE_DIRS = [...Deno.readDirSync(EXAMPLES)].filter((e) => e.isDirectory).map((e) => e.name).sort();

// ------------------------------------------------------------------ help

Deno.test("cli: --help lists the commands; no command is a usage error", async () => {
  const help = await cli(["--help"]);
  assert.equal(help.code, 0);
  for (const command of ["eval", "test", "bench", "check"]) {
    assert.match(help.stdout, new RegExp(`\\n  ${command} `));
  }
  const none = await cli([]);
  assert.equal(none.code, 2);
  assert.match(none.stdout, /Commands:/);
});

Deno.test("cli: every command has --help", async () => {
  for (const command of ["eval", "test", "bench", "check"]) {
    const run = await cli([command, "--help"]);
    assert.equal(run.code, 0, command);
    assert.match(run.stdout, new RegExp(`^luagate ${command}: `), command);
    assert.match(run.stdout, /Usage:/);
    assert.match(run.stdout, /--help/);
  }
  assert.match((await cli(["test", "--help"])).stdout, /decide\(policy, input\)/);
});

Deno.test("cli: unknown commands and options are one-line usage errors", async () => {
  assertUsageError(await cli(["frobnicate"]), /unknown command 'frobnicate'/);
  assertUsageError(await cli(["--frob"]), /unknown option --frob/);
  assertUsageError(await cli(["eval", "--frob", "x"]), /eval: unknown option --frob/);
  assertUsageError(await cli(["bench", "--n"]), /--n needs a value/);
  assertUsageError(
    await cli(["bench", "--n", "zero", "--policy", "x", "--input", "y"]),
    /--n must be a positive/,
  );
  assertUsageError(await cli(["eval", "--input", "x.json", "stray"]), /unexpected argument 'stray'/);
  assertUsageError(await cli(["eval", "--limit", "speed=3"]), /--limit takes NAME=NUMBER/);
});

// ------------------------------------------------------------------ eval

Deno.test("cli eval: prints the decision as JSON", async () => {
  const dir = await tempDir({
    "p.lua": `return function(input, data) return input.user == data.owner, "owner is " .. data.owner end`,
    "in.json": `{ "user": "ann" }`,
    "data.json": `{ "owner": "ann" }`,
  });
  try {
    const run = await cli([
      "eval",
      "--policy",
      `${dir}/p.lua`,
      "--input",
      `${dir}/in.json`,
      "--data",
      `${dir}/data.json`,
    ]);
    assert.equal(run.code, 0, run.stderr);
    const decision = JSON.parse(run.stdout);
    assert.equal(decision.allow, true);
    assert.deepEqual(decision.reasons, ["owner is ann"]);
    assert.deepEqual(decision.errors, []);
    assert.equal(decision.policy, "p");
    assert.equal(typeof decision.id, "string");
    assert.equal(typeof decision.usage.instructions, "number");
    assert.match(run.stdout, /\n {2}"allow": true/); // pretty-printed

    const named = await cli([
      "eval",
      "--policy",
      `${dir}/p.lua`,
      "--input=-",
      `--data=${dir}/data.json`,
      "--name",
      "owner-check",
      "--compact",
    ], { stdin: `{ "user": "bob" }` });
    assert.equal(named.code, 0, named.stderr);
    assert.equal(named.stdout.trim().split("\n").length, 1);
    const denied = JSON.parse(named.stdout);
    assert.equal(denied.allow, false);
    assert.equal(denied.policy, "owner-check");

    const failing = await cli(["eval", "--policy", `${dir}/p.lua`, "--input", `${dir}/in.json`, "--fail"]);
    assert.equal(failing.code, 1, "no data: owner is nil, the decision fails closed");
    assert.equal(JSON.parse(failing.stdout).allow, false);
    assert.equal(JSON.parse(failing.stdout).errors.length, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli eval: a bundle with its manifest, and a policy that requires modules", async () => {
  const input = `${EXAMPLES}quotas/inputs/free_upload.json`;
  const byName = await cli(["eval", "--bundle", `${EXAMPLES}quotas`, "--name", "quotas", "--input", input]);
  assert.equal(byName.code, 0, byName.stderr);
  assert.equal(JSON.parse(byName.stdout).allow, true);
  assert.deepEqual(JSON.parse(byName.stdout).calls, [{ name: "usage", ok: true }]);

  const rbac = `${EXAMPLES}rbac`;
  const withoutBundle = await cli([
    "eval",
    "--policy",
    `${rbac}/rbac.lua`,
    "--input",
    `${rbac}/inputs/admin_delete.json`,
  ]);
  assertUsageError(withoutBundle, /module 'lib\.roles' not found.*--bundle/);
  const withBundle = await cli([
    "eval",
    "--policy",
    `${rbac}/rbac.lua`,
    "--bundle",
    rbac,
    "--input",
    `${rbac}/inputs/admin_delete.json`,
  ]);
  assert.equal(withBundle.code, 0, withBundle.stderr);
  assert.equal(JSON.parse(withBundle.stdout).allow, true);

  assertUsageError(
    await cli(["eval", "--bundle", rbac, "--name", "nope", "--input", `${rbac}/inputs/admin_delete.json`]),
    /no policy 'nope'/,
  );
});

Deno.test("cli eval: every example input gives its expected decision", async () => {
  const jobs: {
    example: string;
    file: string;
    expected: { policy: string; allow: boolean; reasons?: string[] };
  }[] = [];
  for (const example of EXAMPLE_DIRS) {
    const expected = JSON.parse(await Deno.readTextFile(`${EXAMPLES}${example}/inputs/expected.json`));
    for (const [file, want] of Object.entries(expected)) {
      jobs.push({ example, file, expected: want as never });
    }
  }
  assert.ok(jobs.length >= 25);
  for (let i = 0; i < jobs.length; i += 4) {
    await Promise.all(
      jobs.slice(i, i + 4).map(async ({ example, file, expected }) => {
        const dir = `${EXAMPLES}${example}`;
        const run = await cli([
          "eval",
          "--bundle",
          dir,
          "--name",
          expected.policy,
          "--input",
          `${dir}/inputs/${file}`,
        ]);
        assert.equal(run.code, 0, `${example}/${file}: ${run.stderr}`);
        const decision = JSON.parse(run.stdout);
        assert.equal(decision.allow, expected.allow, `${example}/${file}`);
        if (expected.reasons) assert.deepEqual(decision.reasons, expected.reasons, `${example}/${file}`);
      }),
    );
  }
});

Deno.test("cli eval: missing files, bad JSON and bad policies are one-line errors with exit code 2", async () => {
  const dir = await tempDir({
    "p.lua": `return function() return true end`,
    "bad.lua": `return function()\n  return = 1\nend`,
    "bad.json": `{ "user": `,
    "ok.json": `{}`,
  });
  try {
    assertUsageError(
      await cli(["eval", "--policy", `${dir}/p.lua`, "--input", `${dir}/nope.json`]),
      /cannot read input .*nope\.json: no such file/,
    );
    assertUsageError(
      await cli(["eval", "--policy", `${dir}/nope.lua`, "--input", `${dir}/ok.json`]),
      /cannot read policy .*nope\.lua/,
    );
    assertUsageError(
      await cli(["eval", "--policy", `${dir}/p.lua`, "--input", `${dir}/bad.json`]),
      /bad\.json is not valid JSON/,
    );
    assertUsageError(
      await cli([
        "eval",
        "--policy",
        `${dir}/p.lua`,
        "--input",
        `${dir}/ok.json`,
        "--data",
        `${dir}/bad.json`,
      ]),
      /is not valid JSON/,
    );
    assertUsageError(
      await cli(["eval", "--policy", `${dir}/bad.lua`, "--input", `${dir}/ok.json`]),
      /bad:2: /,
    );
    assertUsageError(await cli(["eval", "--policy", `${dir}/p.lua`]), /--input FILE is required/);
    assertUsageError(await cli(["eval", "--input", `${dir}/ok.json`]), /--policy FILE is required/);
    assertUsageError(
      await cli([
        "eval",
        "--policy",
        `${dir}/p.lua`,
        "--input",
        `${dir}/ok.json`,
        "--capabilities",
        `${dir}/none.ts`,
      ]),
      /cannot load the capabilities module/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ------------------------------------------------------------------ test

Deno.test("cli test: every example passes", async () => {
  for (const example of EXAMPLE_DIRS) {
    const run = await cli(["test", `examples/${example}`]);
    assert.equal(run.code, 0, `${example}:\n${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /\bPASS test_/);
    assert.doesNotMatch(run.stdout, /\bFAIL\b/);
    assert.match(run.stdout, /\d+ passed, 0 failed/);
  }
  // a directory of bundles: each subdirectory with a luagate.json is tested as its own bundle
  const all = await cli(["test", "examples"]);
  assert.equal(all.code, 0, all.stdout);
  assert.match(all.stdout, new RegExp(`, 0 failed \\(${EXAMPLE_DIRS.length} file\\(s\\)\\)`));
});

Deno.test("cli test: failures are reported with file:line, a summary and exit code 1", async () => {
  const dir = await tempDir({
    "p.lua": `return function(input) return input.x == 1, "x must be 1" end`,
    "p_test.lua": [
      `function test_passes() assert_allow("p", { x = 1 }) end`,
      `function test_wrong_reason()`,
      `  assert_deny("p", { x = 2 }, "x must be 2")`,
      `end`,
      `function test_deep_equal() assert_eq({ a = { 1, 2 } }, { a = { 1, 3 } }) end`,
      `function test_spins() while true do end end`,
      `function test_unknown_policy() decide("nope", {}) end`,
      `local function helper() return 1 end`,
      `function test_plain_assert() assert(helper() == 2, "helper is not 2") end`,
    ].join("\n"),
  });
  try {
    const run = await cli(["test", dir]);
    assert.equal(run.code, 1, run.stderr);
    const out = run.stdout;
    assert.match(out, /PASS test_passes/);
    assert.match(
      out,
      /FAIL test_wrong_reason[^\n]*\n\s+\S*p_test\.lua:3: expected a reason containing "x must be 2", got deny \(x must be 1\)/,
    );
    assert.match(
      out,
      /FAIL test_deep_equal[^\n]*\n\s+\S*p_test\.lua:5: expected \{a = \{1, 3\}\}, got \{a = \{1, 2\}\}/,
    );
    assert.match(out, /FAIL test_spins[^\n]*\n\s+instruction limit exceeded/);
    assert.match(out, /FAIL test_unknown_policy[^\n]*\n\s+.*no policy 'nope'/);
    assert.match(out, /FAIL test_plain_assert[^\n]*\n\s+\S*p_test\.lua:9: helper is not 2/);
    assert.match(out, /1 passed, 5 failed \(1 file\(s\)\)/);
    // tests run in the order they are written
    const order = [...out.matchAll(/(?:PASS|FAIL) (test_\w+)/g)].map((m) => m[1]);
    assert.deepEqual(order, [
      "test_passes",
      "test_wrong_reason",
      "test_deep_equal",
      "test_spins",
      "test_unknown_policy",
      "test_plain_assert",
    ]);

    const filtered = await cli(["test", dir, "--filter", "passes"]);
    assert.equal(filtered.code, 0, filtered.stdout);
    assert.match(filtered.stdout, /1 passed, 0 failed/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli test: a broken bundle or test file fails; no tests is exit 1; a missing dir is exit 2", async () => {
  const dir = await tempDir({
    "broken/p.lua": `return function(\n`,
    "broken/p_test.lua": `function test_x() end`,
    "badtest/p.lua": `return function() return true end`,
    "badtest/p_test.lua": `function test_x( end`,
    "empty/p.lua": `return function() return true end`,
  });
  try {
    const broken = await cli(["test", `${dir}/broken`]);
    assert.equal(broken.code, 1);
    assert.match(broken.stdout, /FAIL cannot load the bundle .*p:2:/);
    const badTest = await cli(["test", `${dir}/badtest`]);
    assert.equal(badTest.code, 1);
    assert.match(badTest.stdout, /FAIL \(loading the file\)\n\s+\S*p_test\.lua:1:/);
    const empty = await cli(["test", `${dir}/empty`]);
    assert.equal(empty.code, 1);
    assert.match(empty.stdout, /no tests found/);
    assertUsageError(await cli(["test", `${dir}/nowhere`]), /no such file or directory/);
    assertUsageError(await cli(["test"]), /give at least one bundle DIR/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli test: test files are sandboxed like policies", async () => {
  const dir = await tempDir({
    "p.lua": `return function() return true end`,
    "p_test.lua": [
      `function test_no_io() assert(io == nil and os.execute == nil and js == nil, "escaped") end`,
      `function test_no_host_paths() assert_eq(type(Deno), "nil") end`,
      `function test_memory() local t = {} for i = 1, 1e8 do t[i] = i end end`,
    ].join("\n"),
  });
  try {
    const run = await cli(["test", dir, "--limit", "instructions=100000000", "--limit", "memory=1000000"]);
    assert.match(run.stdout, /PASS test_no_io/);
    assert.match(run.stdout, /PASS test_no_host_paths/);
    assert.match(run.stdout, /FAIL test_memory[^\n]*\n\s+memory limit exceeded/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ------------------------------------------------------------------ bench

Deno.test("cli bench: decisions/s and µs per decision, progress on stderr", async () => {
  const rbac = `${EXAMPLES}rbac`;
  const run = await cli([
    "bench",
    "--bundle",
    rbac,
    "--name",
    "rbac",
    "--input",
    `${rbac}/inputs/editor_write.json`,
    "--n",
    "2000",
  ]);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /decisions\s+2,000 in /);
  assert.match(run.stdout, /throughput\s+[\d,]+ decisions\/s/);
  assert.match(run.stdout, /latency\s+[\d.]+ µs\/decision/);
  assert.match(run.stdout, /outcome\s+allow \(every decision\)/);
  assert.match(run.stderr, /bench: 100% \(2,000 decisions\)/);

  const dir = await tempDir({
    "p.lua": `return function(input) return input.n > 1 end`,
    "in.json": `{ "n": 2 }`,
  });
  try {
    const json = await cli([
      "bench",
      "--policy",
      `${dir}/p.lua`,
      "--input",
      `${dir}/in.json`,
      "--duration-ms",
      "300",
      "--json",
    ]);
    assert.equal(json.code, 0, json.stderr);
    const result = JSON.parse(json.stdout);
    assert.equal(result.policy, "p");
    assert.ok(result.decisions > 10);
    assert.ok(result.decisionsPerSecond > 0 && result.microsPerDecision > 0);
    assert.ok(result.seconds >= 0.3 && result.seconds < 5);
    assert.equal(result.allowed, result.decisions);
    assertUsageError(await cli(["bench", "--policy", `${dir}/p.lua`]), /--input FILE is required/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ------------------------------------------------------------------ check

Deno.test("cli check: the examples are valid", async () => {
  const run = await cli(["check", ...EXAMPLE_DIRS.map((e) => `examples/${e}`)]);
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.match(run.stdout, /ok\s+examples\/rbac\/rbac\.lua \(policy 'rbac'\)/);
  assert.match(run.stdout, /ok\s+examples\/rbac\/lib\/roles\.lua \(module 'lib\.roles'\)/);
  assert.match(run.stdout, /\d+ file\(s\) checked, no errors/);
  const nested = await cli(["check", "examples/"]);
  assert.equal(nested.code, 0, nested.stdout);
  assert.match(nested.stdout, /ok\s+examples\/quotas\/quotas\.lua \(policy 'quotas'\)/);
  const globbed = await cli([
    "check",
    "--quiet",
    "examples/demo.ts",
    "examples/rbac/rbac.lua",
    "examples/abac",
  ]);
  assert.equal(globbed.code, 0, globbed.stdout);
});

Deno.test("cli check: syntax errors with file:line, exit code 1", async () => {
  const dir = await tempDir({
    "good.lua": `return function() return true end`,
    "bad.lua": `return function()\n  local x = = 2\nend`,
    "lib/worse.lua": `local t = {\n\n`,
    "notpolicy.lua": `return 42`,
  });
  try {
    const run = await cli(["check", dir]);
    assert.equal(run.code, 1);
    assert.match(run.stdout, /error\s+\S*bad\.lua:2: unexpected symbol near '='/);
    assert.match(run.stdout, /error\s+\S*lib\/worse\.lua:3: /);
    assert.match(run.stdout, /4 file\(s\) checked, 2 error\(s\)/);

    const files = await cli(["check", `${dir}/good.lua`, `${dir}/notpolicy.lua`]);
    assert.equal(files.code, 1);
    assert.match(files.stdout, /ok\s+\S*good\.lua \(policy\)/);
    assert.match(files.stdout, /error\s+\S*notpolicy\.lua.*decision function/);

    assertUsageError(await cli(["check", `${dir}/missing.lua`]), /no such file or directory/);
    assertUsageError(await cli(["check"]), /give at least one DIR or FILE/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
