/**
 * The project's whole test command (`./run test`, or `deno run --allow-all scripts/test.ts`).
 *
 * Runs `deno test` (the same Deno binary) in up to three passes:
 *
 * 1. `lua5.4`: the whole tree (deno.json's test excludes apply) with `LUAGATE_LUA_LIB=liblua5.4.so.0`;
 * 2. `lua5.3`: the whole tree again with `LUAGATE_LUA_LIB=liblua5.3.so.0`;
 * 3. `lua5.4-portable`: the whole tree again with `LUAGATE_NO_NATIVE_CODE=1 LUAGATE_FORCE_PROTECTED=1`:
 *    the path of platforms without luagate's embedded machine code (macOS, Windows, Linux on other
 *    architectures: no fast lane, call runner, native allocator or data builder) and the protected
 *    path of table access, as well as the native code and the fast path in the passes before.
 *
 * Each pass streams Deno's usual progress to the terminal and writes a JUnit report; the counts come
 * from the reports (steps are not counted, tests left out by `--filter` are not counted as skipped).
 * The last line printed is always `N passed, N failed` (`, N skipped` appended when tests were
 * ignored). The exit code is 1 when anything failed, a pass could not run, or no test ran at all.
 *
 *   ./run test                       # all passes
 *   ./run test --quick               # the Lua 5.4 pass only
 *   ./run test --filter proxy        # deno test --filter proxy, in every pass
 *   ./run test tests/handles_test.ts # these paths instead of the whole tree, in every pass
 *   ./run test --junit-dir out/      # also keep the JUnit reports as out/<pass>.junit.xml
 *
 * @module
 */

const PERMISSIONS = ["--allow-ffi", "--allow-env", "--allow-read", "--allow-write", "--allow-run"];

interface Pass {
  name: string;
  /** Shared library the pass needs, checked with `Deno.dlopen` before it runs. */
  library: string;
  /** Debian package providing `library`, for the error message. */
  packageName: string;
  env: Record<string, string>;
  paths: string[];
}

interface Counts {
  passed: number;
  failed: number;
  skipped: number;
  steps: number;
  failures: string[];
}

function usage(): never {
  console.error(
    "usage: deno run --allow-all scripts/test.ts [--quick] [--filter <text>] [--junit-dir <dir>] [paths...]",
  );
  Deno.exit(2);
}

function parseArgs(args: string[]) {
  const options = {
    quick: false,
    filter: undefined as string | undefined,
    junitDir: "",
    paths: [] as string[],
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--quick") options.quick = true;
    else if (arg === "--filter" || arg === "--junit-dir") {
      const value = args[++i];
      if (value === undefined) usage();
      if (arg === "--filter") options.filter = value;
      else options.junitDir = value;
    } else if (arg.startsWith("--filter=")) options.filter = arg.slice("--filter=".length);
    else if (arg.startsWith("--junit-dir=")) options.junitDir = arg.slice("--junit-dir=".length);
    else if (arg === "-h" || arg === "--help") usage();
    else if (arg.startsWith("-")) {
      console.error(`unknown option ${arg}`);
      usage();
    } else options.paths.push(arg);
  }
  return options;
}

function libraryError(library: string): string | undefined {
  try {
    Deno.dlopen(library, {}).close();
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

const ENTITIES: Record<string, string> = { quot: '"', amp: "&", lt: "<", gt: ">", apos: "'" };
function unescapeXml(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (whole, name: string) => {
    if (name.startsWith("#x")) return String.fromCodePoint(parseInt(name.slice(2), 16));
    if (name.startsWith("#")) return String.fromCodePoint(parseInt(name.slice(1), 10));
    return ENTITIES[name] ?? whole;
  });
}

function attributes(text: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const match of text.matchAll(/([\w:-]+)="([^"]*)"/g)) result[match[1]] = unescapeXml(match[2]);
  return result;
}

interface TestCase {
  suite: string;
  name: string;
  timed: boolean;
  failure?: string;
  skipped: boolean;
}

/** Reads Deno's JUnit report (escaped text never holds `<`, so a tag scan is exact). */
function parseJunit(xml: string): TestCase[] {
  const cases: TestCase[] = [];
  let suite = "";
  let current: TestCase | undefined;
  for (const match of xml.matchAll(/<(\/?)([\w:-]+)((?:\s+[\w:-]+="[^"]*")*)\s*(\/?)>/g)) {
    const [, closing, tag, attrText, selfClosing] = match;
    if (closing) {
      if (tag === "testcase") current = undefined;
      continue;
    }
    const attrs = attributes(attrText);
    if (tag === "testsuite") suite = attrs.name ?? "";
    else if (tag === "testcase") {
      const testCase: TestCase = { suite, name: attrs.name ?? "", timed: "time" in attrs, skipped: false };
      cases.push(testCase);
      current = selfClosing ? undefined : testCase;
    } else if (current && (tag === "failure" || tag === "error")) {
      current.failure ??= attrs.message ?? tag;
    } else if (current && tag === "skipped") current.skipped = true;
  }
  return cases;
}

function count(cases: TestCase[], passName: string): Counts {
  const counts: Counts = { passed: 0, failed: 0, skipped: 0, steps: 0, failures: [] };
  const names = new Set(cases.map((c) => `${c.suite}\0${c.name}`));
  const isStep = (c: TestCase) => {
    // A step is named "<parent> > <step>" after a test case of the same module.
    for (let at = c.name.lastIndexOf(" > "); at > 0; at = c.name.lastIndexOf(" > ", at - 1)) {
      if (names.has(`${c.suite}\0${c.name.slice(0, at)}`)) return true;
    }
    return false;
  };
  for (const c of cases) {
    if (isStep(c)) {
      counts.steps++;
      continue;
    }
    if (c.failure !== undefined) {
      counts.failed++;
      counts.failures.push(`[${passName}] ${c.suite} > ${c.name}: ${c.failure.split("\n")[0]}`);
    } else if (c.skipped) {
      // Deno reports tests left out by --filter as <skipped/> without a time: not counted.
      if (c.timed) counts.skipped++;
    } else counts.passed++;
  }
  return counts;
}

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

/**
 * Counts read from Deno's pretty report, for a run that ended without a JUnit file (a crash): one
 * line `<name> ... ok|FAILED|ignored (<time>)` per test, steps indented.
 */
function countTerminalReport(output: string, passName: string): Counts {
  const counts: Counts = { passed: 0, failed: 0, skipped: 0, steps: 0, failures: [] };
  for (const line of output.replace(ANSI, "").split("\n")) {
    const match = line.match(/^(\s*)(.*) \.\.\. (ok|FAILED|ignored) \(/);
    if (!match) continue;
    if (match[1]) counts.steps++;
    else if (match[3] === "ok") counts.passed++;
    else if (match[3] === "ignored") counts.skipped++;
    else {
      counts.failed++;
      counts.failures.push(`[${passName}] ${match[2]}`);
    }
  }
  return counts;
}

/** The test that was running when the output stopped (`<name> ...` without a result). */
function unfinishedTest(output: string): string | undefined {
  const lines = output.replace(ANSI, "").trimEnd().split("\n");
  const match = lines[lines.length - 1]?.match(/^\s*(.*) \.\.\.$/);
  return match?.[1];
}

/** The `N failed` of Deno's closing summary line, which also counts errors outside any test. */
function reportedFailures(output: string): number | undefined {
  const lines = output.replace(ANSI, "").split("\n");
  for (let i = lines.length - 1; i >= 0; i--) {
    const match = lines[i].match(/^(?:ok|FAILED) \| .*?(\d+) failed/);
    if (match) return Number(match[1]);
  }
  return undefined;
}

async function runPass(pass: Pass, filter: string | undefined, junitDir: string): Promise<Counts> {
  const started = performance.now();
  const seconds = () => ((performance.now() - started) / 1000).toFixed(1);
  const fail = (why: string): Counts => {
    console.error(`[${pass.name}] ${why}`);
    return { passed: 0, failed: 1, skipped: 0, steps: 0, failures: [`[${pass.name}] ${why}`] };
  };
  console.log(
    `\n=== ${pass.name}: deno test ${pass.paths.join(" ") || "(whole tree)"} ` +
      `${Object.entries(pass.env).map(([k, v]) => `${k}=${v}`).join(" ")}`,
  );
  const missing = libraryError(pass.library);
  if (missing !== undefined) {
    return fail(
      `${pass.library} cannot be loaded (install the Debian package ${pass.packageName}): ${missing}`,
    );
  }

  const junitPath = junitDir
    ? `${junitDir}/${pass.name.replace(/[^\w.-]+/g, "_")}.junit.xml`
    : await Deno.makeTempFile({ prefix: "luagate-", suffix: ".junit.xml" });
  try {
    const args = ["test", ...PERMISSIONS, `--junit-path=${junitPath}`];
    if (filter !== undefined) args.push(`--filter=${filter}`);
    args.push(...pass.paths);
    const child = new Deno.Command(Deno.execPath(), {
      args,
      env: { ...pass.env, LUAGATE_TEST_PASS: pass.name },
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    // Stream Deno's pretty report to the terminal and keep it for its summary line.
    let output = "";
    const decoder = new TextDecoder();
    for await (const chunk of child.stdout) {
      await Deno.stdout.write(chunk);
      output += decoder.decode(chunk, { stream: true });
      if (output.length > 1 << 20) output = output.slice(-65536);
    }
    const status = await child.status;

    if (output && !output.endsWith("\n")) console.log();

    let counts: Counts;
    let junit: string | undefined;
    try {
      junit = await Deno.readTextFile(junitPath);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    if (junit?.trim()) counts = count(parseJunit(junit), pass.name);
    else {
      // Deno writes the report at the end: a crashed run leaves none, so count what was printed.
      counts = countTerminalReport(output, pass.name);
      if (counts.passed + counts.failed + counts.skipped) {
        console.log(`[${pass.name}] no JUnit report: counts read from the terminal output above`);
      }
    }
    const crashed = status.signal !== null || status.code > 128;
    if (crashed) {
      const during = unfinishedTest(output);
      counts.failed++;
      const signal = status.signal ? `, ${status.signal}` : "";
      const where = during ? ` during "${during}"` : "";
      counts.failures.push(`[${pass.name}] deno test crashed (exit code ${status.code}${signal})${where}`);
    }
    // Errors outside any test (a module failing to load, an uncaught error from top-level code)
    // fail the run without a JUnit test case; type-check errors stop it before any test runs.
    const reported = reportedFailures(output);
    if (reported !== undefined && reported > counts.failed) {
      const outside = reported - counts.failed;
      counts.failures.push(
        `[${pass.name}] ${outside} failure(s) outside any test: see "(uncaught error)" above`,
      );
      counts.failed = reported;
    }
    if (!status.success && !crashed && counts.failed === 0) {
      counts.failed = 1;
      counts.failures.push(
        `[${pass.name}] deno test exited with code ${status.code} (type-check error, module not found, ...: see above)`,
      );
    }
    const steps = counts.steps ? ` (+${counts.steps} steps)` : "";
    console.log(
      `=== ${pass.name}: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped${steps} ` +
        `in ${seconds()}s`,
    );
    return counts;
  } finally {
    if (!junitDir) await Deno.remove(junitPath).catch(() => {});
  }
}

async function main(): Promise<number> {
  const options = parseArgs(Deno.args);
  if (Deno.env.get("LUAGATE_TEST_PASS")) {
    console.error(
      `scripts/test.ts started from inside its own pass ${Deno.env.get("LUAGATE_TEST_PASS")}: refused`,
    );
    return 1;
  }
  Deno.chdir(new URL("..", import.meta.url));
  if (options.junitDir) await Deno.mkdir(options.junitDir, { recursive: true });
  const started = performance.now();

  const lua54 = { library: "liblua5.4.so.0", packageName: "liblua5.4-0" };
  const passes: Pass[] = [
    { name: "lua5.4", ...lua54, env: { LUAGATE_LUA_LIB: lua54.library }, paths: options.paths },
  ];
  if (!options.quick) {
    passes.push({
      name: "lua5.3",
      library: "liblua5.3.so.0",
      packageName: "liblua5.3-0",
      env: { LUAGATE_LUA_LIB: "liblua5.3.so.0" },
      paths: options.paths,
    });
    passes.push({
      name: "lua5.4-portable",
      ...lua54,
      env: { LUAGATE_LUA_LIB: lua54.library, LUAGATE_NO_NATIVE_CODE: "1", LUAGATE_FORCE_PROTECTED: "1" },
      paths: options.paths,
    });
  }

  const total: Counts = { passed: 0, failed: 0, skipped: 0, steps: 0, failures: [] };
  for (const pass of passes) {
    const counts = await runPass(pass, options.filter, options.junitDir);
    total.passed += counts.passed;
    total.failed += counts.failed;
    total.skipped += counts.skipped;
    total.failures.push(...counts.failures);
  }

  console.log(`\n=== ${passes.length} pass(es) in ${((performance.now() - started) / 1000).toFixed(1)}s`);
  if (total.failures.length) {
    console.log("failed:");
    for (const failure of total.failures) console.log(`  ${failure}`);
  }
  if (total.passed + total.failed === 0) console.log("no test ran");
  console.log(
    `${total.passed} passed, ${total.failed} failed` + (total.skipped ? `, ${total.skipped} skipped` : ""),
  );
  return total.failed === 0 && total.passed > 0 ? 0 : 1;
}

// Guarded: a test runner must never run itself as a test module (deno.json excludes it too).
if (import.meta.main) Deno.exit(await main());
