/**
 * The `luagate` command line tool: evaluate, test, benchmark and check Lua policies.
 *
 * ```sh
 * deno run -A cli.ts eval --policy examples/rbac/rbac.lua --bundle examples/rbac --input examples/rbac/inputs/admin_delete.json
 * deno run -A cli.ts test examples/rbac
 * deno run -A cli.ts bench --policy p.lua --input in.json --duration-ms 2000
 * deno run -A cli.ts check examples/
 * ```
 *
 * Permissions: `--allow-ffi` (the Lua library), `--allow-env` (`LUAGATE_LUA_LIB`), `--allow-read`
 * (policies, inputs, bundles, the library). Run `cli.ts --help` or `cli.ts <command> --help`.
 *
 * A bundle directory may hold a `luagate.json` manifest giving what its policies need:
 *
 * ```json
 * {
 *   "data": "data.json",
 *   "capabilities": "capabilities.ts",
 *   "permissions": ["usage.read"],
 *   "policies": { "quotas": { "permissions": ["usage.read"] } },
 *   "limits": { "cpuMs": 50 }
 * }
 * ```
 *
 * `data` is a JSON file (or an inline value), `capabilities` a module whose default export is a
 * record of capabilities (trusted host code, like a test's TypeScript), `permissions` are granted
 * to every policy and `policies.<name>.permissions` to one policy; paths are relative to the bundle.
 *
 * @module
 */

import { LuaRuntime } from "./lua/runtime.ts";
import type { Decision } from "./policy/decision.ts";
import { type Policy, PolicyEngine } from "./policy/engine.ts";
import type { Capability } from "./policy/guarded_state.ts";
import type { Limits } from "./policy/limits.ts";
import { Sandbox } from "./policy/sandbox.ts";

// ------------------------------------------------------------------------------------------ errors

/** An error that ends the command with one line on stderr and `code` (2: bad usage or input). */
export class CliError extends Error {
  /** The exit code. */
  readonly code: number;
  /**
   * Creates a CliError.
   * @param message One line.
   * @param code The exit code (default 2).
   */
  constructor(message: string, code = 2) {
    super(message);
    this.name = "CliError";
    this.code = code;
  }
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n")[0];
}

// ------------------------------------------------------------------------------------------ output

const encoder = new TextEncoder();

function isTerminal(stream: { isTerminal(): boolean }): boolean {
  try {
    return stream.isTerminal();
  } catch {
    return false;
  }
}

function colorAllowed(stream: { isTerminal(): boolean }): boolean {
  let noColor = false;
  try {
    noColor = Deno.noColor || Deno.env.get("NO_COLOR") !== undefined;
  } catch {
    noColor = Deno.noColor;
  }
  return !noColor && isTerminal(stream);
}

function painter(stream: { isTerminal(): boolean }) {
  const on = colorAllowed(stream);
  const wrap = (code: string) => (text: string) => on ? `\x1b[${code}m${text}\x1b[0m` : text;
  return { green: wrap("32"), red: wrap("31"), dim: wrap("2"), bold: wrap("1"), yellow: wrap("33") };
}

function out(line = ""): void {
  console.log(line);
}

function err(line: string): void {
  console.error(line);
}

// ----------------------------------------------------------------------------------- arguments

interface FlagSpec {
  /** The value's placeholder in help; absent for a boolean flag. */
  value?: string;
  repeat?: boolean;
  help: string;
}

interface Parsed {
  flags: Map<string, string | string[] | true>;
  positional: string[];
  help: boolean;
}

function parseArgs(
  command: string,
  args: string[],
  spec: Record<string, FlagSpec>,
  positional: boolean,
): Parsed {
  const flags = new Map<string, string | string[] | true>();
  const rest: string[] = [];
  let help = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      rest.push(...args.slice(i + 1));
      break;
    }
    if (arg === "-h" || arg === "--help") {
      help = true;
      continue;
    }
    if (arg.startsWith("-") && arg !== "-") {
      const eq = arg.indexOf("=");
      const name = arg.startsWith("--") ? arg.slice(2, eq > 0 ? eq : undefined) : "";
      const flag = spec[name];
      if (!flag) {
        throw new CliError(
          `${command}: unknown option ${arg.split("=")[0]} (see 'luagate ${command} --help')`,
        );
      }
      if (flag.value === undefined) {
        if (eq > 0) throw new CliError(`${command}: --${name} takes no value`);
        flags.set(name, true);
        continue;
      }
      let value: string;
      if (eq > 0) value = arg.slice(eq + 1);
      else {
        if (i + 1 >= args.length) throw new CliError(`${command}: --${name} needs a value (${flag.value})`);
        value = args[++i];
      }
      if (flag.repeat) {
        const list = (flags.get(name) as string[] | undefined) ?? [];
        list.push(value);
        flags.set(name, list);
      } else {
        if (flags.has(name)) throw new CliError(`${command}: --${name} given twice`);
        flags.set(name, value);
      }
      continue;
    }
    rest.push(arg);
  }
  if (!positional && rest.length > 0 && !help) {
    throw new CliError(`${command}: unexpected argument '${rest[0]}' (see 'luagate ${command} --help')`);
  }
  const limits = flags.get("limit");
  if (Array.isArray(limits)) parseLimits(limits);
  return { flags, positional: rest, help };
}

function str(parsed: Parsed, name: string): string | undefined {
  const value = parsed.flags.get(name);
  return typeof value === "string" ? value : undefined;
}

function list(parsed: Parsed, name: string): string[] {
  const value = parsed.flags.get(name);
  return Array.isArray(value) ? value : [];
}

function intFlag(parsed: Parsed, name: string): number | undefined {
  const value = str(parsed, name);
  if (value === undefined) return undefined;
  const n = Number(value.replaceAll("_", ""));
  if (!Number.isInteger(n) || n < 1) {
    throw new CliError(`--${name} must be a positive integer, got '${value}'`);
  }
  return n;
}

function usageText(command: string, synopsis: string, about: string, spec: Record<string, FlagSpec>): string {
  const rows = Object.entries(spec).map(([name, flag]) => [
    `--${name}${flag.value ? ` ${flag.value}` : ""}`,
    flag.help + (flag.repeat ? " (repeatable)" : ""),
  ]);
  rows.push(["-h, --help", "Show this help"]);
  const width = Math.max(...rows.map(([left]) => left.length));
  return [
    `luagate ${command}: ${about}`,
    "",
    "Usage:",
    ...synopsis.split("\n").map((line) => `  ${line}`),
    "",
    "Options:",
    ...rows.map(([left, right]) => `  ${left.padEnd(width)}  ${right}`),
  ].join("\n");
}

// ------------------------------------------------------------------------------------------ files

function readText(path: string, what: string): string {
  try {
    if (path === "-") return new TextDecoder().decode(readAllStdin());
    return Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new CliError(`cannot read ${what} ${path}: no such file`);
    }
    if (error instanceof Deno.errors.IsADirectory) {
      throw new CliError(`cannot read ${what} ${path}: it is a directory`);
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new CliError(`cannot read ${what} ${path}: permission denied (run with --allow-read)`);
    }
    throw new CliError(`cannot read ${what} ${path}: ${firstLine(error)}`);
  }
}

function readAllStdin(): Uint8Array {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(65536);
  for (;;) {
    const n = Deno.stdin.readSync(buffer);
    if (n === null) break;
    chunks.push(buffer.slice(0, n));
  }
  const total = new Uint8Array(chunks.reduce((sum, c) => sum + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    total.set(chunk, at);
    at += chunk.length;
  }
  return total;
}

function readJson(path: string, what: string): unknown {
  const text = readText(path, what);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new CliError(`${path === "-" ? "stdin" : path} is not valid JSON: ${firstLine(error)}`);
  }
}

function isDirectory(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new CliError(`no such file or directory: ${path}`);
    throw new CliError(`cannot read ${path}: ${firstLine(error)}`);
  }
}

function join(dir: string, path: string): string {
  if (path.startsWith("/")) return path;
  return `${dir.replace(/\/+$/, "")}/${path}`;
}

function walkLua(dir: string, keep: (name: string) => boolean): string[] {
  const found: string[] = [];
  const walk = (path: string) => {
    const entries = [...Deno.readDirSync(path)].sort((a, b) => a.name.localeCompare(b.name));
    for (const entry of entries) {
      const full = join(path, entry.name);
      if (entry.isDirectory) walk(full);
      else if (entry.isFile && entry.name.endsWith(".lua") && keep(entry.name)) found.push(full);
    }
  };
  walk(dir.replace(/\/+$/, "") || "/");
  return found;
}

/** A bundle found under a directory: its root and the Lua files that belong to it. */
interface BundleDir {
  root: string;
  files: string[];
}

/**
 * The bundles under `dir`: `dir` itself, and every subdirectory holding a `luagate.json`, which is a
 * bundle of its own (so `luagate test examples` tests each example). Each Lua file belongs to the
 * nearest bundle above it; bundles without Lua files of their own are left out, unless none has any.
 */
function findBundles(dir: string): BundleDir[] {
  const top = dir.replace(/\/+$/, "") || "/";
  const bundles: BundleDir[] = [];
  const walk = (path: string, bundle: BundleDir) => {
    const entries = [...Deno.readDirSync(path)].sort((a, b) => a.name.localeCompare(b.name));
    for (const entry of entries) {
      const full = join(path, entry.name);
      if (entry.isDirectory) {
        let nested = bundle;
        try {
          if (Deno.statSync(join(full, "luagate.json")).isFile) {
            nested = { root: full, files: [] };
            bundles.push(nested);
          }
        } catch {
          // not a bundle of its own
        }
        walk(full, nested);
      } else if (entry.isFile && entry.name.endsWith(".lua")) bundle.files.push(full);
    }
  };
  const main: BundleDir = { root: top, files: [] };
  bundles.push(main);
  walk(top, main);
  const withFiles = bundles.filter((b) => b.files.length > 0);
  return withFiles.length > 0 ? withFiles : [main];
}

/** The nearest directory above `file` that holds a `luagate.json`, if any. */
function bundleRootOf(file: string): string | undefined {
  let dir = file.includes("/") ? file.slice(0, file.lastIndexOf("/")) : ".";
  for (let depth = 0; depth < 16; depth++) {
    try {
      if (Deno.statSync(join(dir, "luagate.json")).isFile) return dir;
    } catch {
      // keep looking
    }
    let parent: string;
    try {
      parent = Deno.realPathSync(join(dir, ".."));
    } catch {
      return undefined;
    }
    if (parent === Deno.realPathSync(dir)) return undefined;
    dir = dir === "." || !dir.startsWith("/") ? join(dir, "..") : parent;
  }
  return undefined;
}

function moduleUrl(path: string): string {
  if (/^[a-z][a-z0-9+.-]*:/i.test(path)) return path;
  const absolute = path.startsWith("/") ? path : `${Deno.cwd().replace(/\/+$/, "")}/${path}`;
  return new URL(`file://${absolute.split("/").map(encodeURIComponent).join("/")}`).href;
}

async function importCapabilities(path: string): Promise<Record<string, Capability>> {
  let module: { default?: unknown };
  try {
    module = await import(moduleUrl(path));
  } catch (error) {
    throw new CliError(`cannot load the capabilities module ${path}: ${firstLine(error)}`);
  }
  const capabilities = module.default;
  if (capabilities === null || typeof capabilities !== "object") {
    throw new CliError(
      `the capabilities module ${path} must have a default export: a record of capabilities ({ name: fn } or { name: { fn, permission } })`,
    );
  }
  return capabilities as Record<string, Capability>;
}

// -------------------------------------------------------------------------------- engine set-up

/** A bundle's `luagate.json`. */
export interface Manifest {
  /** A JSON file relative to the bundle, or the data itself. */
  data?: unknown;
  /** A module relative to the bundle whose default export is a record of capabilities. */
  capabilities?: string;
  /** Permissions granted to every policy of the bundle. */
  permissions?: string[];
  /** Per-policy options: `{ name: { permissions: [...] } }`. */
  policies?: Record<string, { permissions?: string[] }>;
  /** Limits of every evaluation (and of every test run). */
  limits?: Partial<Limits>;
}

const MANIFEST_KEYS = ["data", "capabilities", "permissions", "policies", "limits"];

function readManifest(dir: string): Manifest {
  const path = join(dir, "luagate.json");
  try {
    Deno.statSync(path);
  } catch {
    return {};
  }
  const manifest = readJson(path, "manifest") as Manifest;
  if (manifest === null || typeof manifest !== "object" || Array.isArray(manifest)) {
    throw new CliError(`${path}: the manifest must be a JSON object`);
  }
  for (const key of Object.keys(manifest)) {
    if (!MANIFEST_KEYS.includes(key)) {
      throw new CliError(`${path}: unknown key '${key}' (known: ${MANIFEST_KEYS.join(", ")})`);
    }
  }
  if (manifest.capabilities !== undefined && typeof manifest.capabilities !== "string") {
    throw new CliError(`${path}: 'capabilities' must be a module path`);
  }
  if (manifest.permissions !== undefined && !Array.isArray(manifest.permissions)) {
    throw new CliError(`${path}: 'permissions' must be a list of strings`);
  }
  return manifest;
}

const LIMIT_NAMES = ["instructions", "memory", "cpuMs", "output"];

function parseLimits(values: string[]): Partial<Limits> {
  const limits: Record<string, number> = {};
  for (const item of values) {
    const match = item.match(/^(\w+)=([\d_]+)$/);
    if (!match || !LIMIT_NAMES.includes(match[1])) {
      throw new CliError(
        `--limit takes NAME=NUMBER with NAME one of ${LIMIT_NAMES.join(", ")}, got '${item}'`,
      );
    }
    limits[match[1]] = Number(match[2].replaceAll("_", ""));
  }
  return limits;
}

const ENGINE_FLAGS: Record<string, FlagSpec> = {
  data: { value: "FILE", help: "JSON data document shared by every evaluation (default: the bundle's)" },
  capabilities: { value: "MODULE", help: "Module whose default export is a record of capabilities" },
  permission: { value: "NAME", repeat: true, help: "Grant a permission to every policy" },
  limit: { value: "NAME=N", repeat: true, help: "A limit: instructions, memory, cpuMs, output" },
};

interface EngineSetup {
  engine: PolicyEngine;
  data: unknown;
  limits: Partial<Limits>;
  bundlePolicies: Map<string, Policy>;
}

/** Builds an engine from the flags and, when `bundle` is given, loads it (with its manifest). */
async function setUpEngine(parsed: Parsed, bundle: string | undefined): Promise<EngineSetup> {
  const manifest = bundle === undefined ? {} : readManifest(bundle);
  let data: unknown = undefined;
  const dataFlag = str(parsed, "data");
  if (dataFlag !== undefined) data = readJson(dataFlag, "data");
  else if (typeof manifest.data === "string") data = readJson(join(bundle!, manifest.data), "data");
  else if (manifest.data !== undefined) data = manifest.data;

  const capabilitiesFlag = str(parsed, "capabilities");
  let capabilities: Record<string, Capability> | undefined;
  if (capabilitiesFlag !== undefined) capabilities = await importCapabilities(capabilitiesFlag);
  else if (manifest.capabilities !== undefined) {
    capabilities = await importCapabilities(join(bundle!, manifest.capabilities));
  }
  const limits = { ...manifest.limits, ...parseLimits(list(parsed, "limit")) };
  let engine: PolicyEngine;
  try {
    engine = new PolicyEngine({
      data,
      capabilities,
      limits,
      permissions: [...(manifest.permissions ?? []), ...list(parsed, "permission")],
    });
  } catch (error) {
    throw new CliError(firstLine(error));
  }
  const bundlePolicies = new Map<string, Policy>();
  if (bundle !== undefined) {
    try {
      for (const [name, policy] of engine.load(bundle)) bundlePolicies.set(name, policy);
      for (const [name, options] of Object.entries(manifest.policies ?? {})) {
        if (!bundlePolicies.has(name)) {
          throw new CliError(`${join(bundle, "luagate.json")}: no policy '${name}' in the bundle`);
        }
        const source = Deno.readTextFileSync(join(bundle, `${name.replaceAll(".", "/")}.lua`));
        bundlePolicies.set(name, engine.compile(source, { name, permissions: options.permissions ?? [] }));
      }
    } catch (error) {
      engine.close();
      if (error instanceof CliError) throw error;
      throw new CliError(`cannot load the bundle ${bundle}: ${firstLine(error)}`, 1);
    }
  }
  return { engine, data, limits, bundlePolicies };
}

/** A loaded bundle: its engine (close it), its policies, and what its manifest gave. */
export interface Bundle {
  /** The engine holding the bundle. */
  engine: PolicyEngine;
  /** The bundle's policies by name. */
  policies: Map<string, Policy>;
  /** The data document. */
  data: unknown;
  /** The limits. */
  limits: Partial<Limits>;
}

/**
 * Loads a bundle directory the way `luagate test` does: its `luagate.json` (data, capabilities,
 * permissions, limits), then every module with `PolicyEngine.load`. Throws {@linkcode CliError}.
 */
export async function openBundle(dir: string): Promise<Bundle> {
  const setup = await setUpEngine({ flags: new Map(), positional: [], help: false }, dir);
  return { engine: setup.engine, policies: setup.bundlePolicies, data: setup.data, limits: setup.limits };
}

function policyName(path: string): string {
  const base = path.split("/").pop() ?? path;
  return base.replace(/\.lua$/, "");
}

/** The policy to run: `--policy FILE` (compiled, with `--bundle` modules reachable) or `--name` in the bundle. */
function selectPolicy(parsed: Parsed, setup: EngineSetup, command: string): Policy {
  const file = str(parsed, "policy");
  const bundle = str(parsed, "bundle");
  const name = str(parsed, "name");
  if (file === undefined) {
    if (bundle === undefined) {
      throw new CliError(`${command}: --policy FILE is required (see 'luagate ${command} --help')`);
    }
    if (name === undefined) {
      const names = [...setup.bundlePolicies.keys()];
      if (names.length === 1) return setup.bundlePolicies.get(names[0])!;
      throw new CliError(
        `${command}: --name is required to choose a policy of ${bundle} (${names.join(", ")})`,
      );
    }
    const policy = setup.bundlePolicies.get(name);
    if (!policy) {
      throw new CliError(
        `${command}: no policy '${name}' in ${bundle} (policies: ${
          [...setup.bundlePolicies.keys()].join(", ")
        })`,
      );
    }
    return policy;
  }
  const source = readText(file, "policy");
  try {
    return setup.engine.compile(source, { name: name ?? policyName(file) });
  } catch (error) {
    let message = firstLine(error);
    if (bundle === undefined && /not found in the bundle/.test(message)) {
      message += " (pass --bundle DIR so that require finds the policy's modules)";
    }
    throw new CliError(message);
  }
}

function plainDecision(decision: Decision): Record<string, unknown> {
  const { error: _error, ...rest } = decision;
  return rest;
}

function jsonText(value: unknown, compact: boolean): string {
  return JSON.stringify(
    value,
    (_k, v) => (typeof v === "bigint" ? v.toString() : v),
    compact ? undefined : 2,
  );
}

// ------------------------------------------------------------------------------------------- eval

const POLICY_FLAGS: Record<string, FlagSpec> = {
  policy: { value: "FILE", help: "The policy's Lua file" },
  bundle: {
    value: "DIR",
    help: "Load DIR as a bundle (require, its luagate.json); --name picks a policy of it",
  },
  name: { value: "NAME", help: "The policy's name (default: the file name without .lua)" },
  input: { value: "FILE", help: "The input as JSON ('-' for stdin)" },
};

const EVAL_SPEC: Record<string, FlagSpec> = {
  ...POLICY_FLAGS,
  ...ENGINE_FLAGS,
  compact: { help: "Print the decision on one line" },
  fail: { help: "Exit with code 1 when the decision denies" },
};

async function evalCommand(args: string[]): Promise<number> {
  const parsed = parseArgs("eval", args, EVAL_SPEC, false);
  if (parsed.help) {
    out(usageText(
      "eval",
      "luagate eval --policy p.lua --input in.json [--data d.json] [--name N]\nluagate eval --bundle DIR --name N --input in.json",
      "evaluate a policy against an input and print the decision as JSON",
      EVAL_SPEC,
    ));
    return 0;
  }
  const inputPath = str(parsed, "input");
  if (inputPath === undefined) {
    throw new CliError("eval: --input FILE is required (see 'luagate eval --help')");
  }
  const input = readJson(inputPath, "input");
  const bundle = str(parsed, "bundle");
  if (bundle !== undefined && !isDirectory(bundle)) {
    throw new CliError(`--bundle ${bundle} is not a directory`);
  }
  if (str(parsed, "policy") === undefined && bundle === undefined) {
    throw new CliError("eval: --policy FILE is required (see 'luagate eval --help')");
  }
  const setup = await setUpEngine(parsed, bundle);
  try {
    const policy = selectPolicy(parsed, setup, "eval");
    const decision = policy.evaluate(input);
    out(jsonText(plainDecision(decision), parsed.flags.has("compact")));
    return parsed.flags.has("fail") && !decision.allow ? 1 : 0;
  } finally {
    setup.engine.close();
  }
}

// ------------------------------------------------------------------------------------------ bench

const BENCH_SPEC: Record<string, FlagSpec> = {
  ...POLICY_FLAGS,
  ...ENGINE_FLAGS,
  n: { value: "N", help: "Number of decisions to measure" },
  "duration-ms": { value: "MS", help: "Measure for this long (default 2000 when --n is not given)" },
  json: { help: "Print the result as JSON" },
};

function formatNumber(n: number, digits = 0): string {
  return n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

class Progress {
  readonly #tty = isTerminal(Deno.stderr);
  #shown = -1;
  #lastDraw = 0;

  update(fraction: number, count: number): void {
    const percent = Math.min(100, Math.floor(fraction * 100));
    if (this.#tty) {
      const now = performance.now();
      if (percent === this.#shown && now - this.#lastDraw < 100) return;
      if (now - this.#lastDraw < 50 && percent < 100) return;
      this.#lastDraw = now;
      this.#shown = percent;
      const width = 30;
      const full = Math.round((percent / 100) * width);
      const bar = "#".repeat(full) + "-".repeat(width - full);
      Deno.stderr.writeSync(
        encoder.encode(`\r[${bar}] ${String(percent).padStart(3)}%  ${formatNumber(count)} decisions`),
      );
    } else {
      // Not a terminal: a line at every quarter, so logs stay short.
      const quarter = Math.floor(percent / 25) * 25;
      if (quarter > this.#shown) {
        this.#shown = quarter;
        err(`bench: ${quarter}% (${formatNumber(count)} decisions)`);
      }
    }
  }

  done(): void {
    if (this.#tty) Deno.stderr.writeSync(encoder.encode("\r\x1b[K"));
  }
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

async function benchCommand(args: string[]): Promise<number> {
  const parsed = parseArgs("bench", args, BENCH_SPEC, false);
  if (parsed.help) {
    out(usageText(
      "bench",
      "luagate bench --policy p.lua --input in.json [--n N] [--duration-ms MS]",
      "measure a policy's decisions per second (progress on stderr, result on stdout)",
      BENCH_SPEC,
    ));
    return 0;
  }
  const n = intFlag(parsed, "n");
  const durationFlag = intFlag(parsed, "duration-ms");
  const inputPath = str(parsed, "input");
  if (inputPath === undefined) {
    throw new CliError("bench: --input FILE is required (see 'luagate bench --help')");
  }
  const input = readJson(inputPath, "input");
  const duration = durationFlag ?? (n === undefined ? 2000 : Infinity);
  const limit = n ?? Infinity;
  const bundle = str(parsed, "bundle");
  if (bundle !== undefined && !isDirectory(bundle)) {
    throw new CliError(`--bundle ${bundle} is not a directory`);
  }
  if (str(parsed, "policy") === undefined && bundle === undefined) {
    throw new CliError("bench: --policy FILE is required (see 'luagate bench --help')");
  }
  const setup = await setUpEngine(parsed, bundle);
  try {
    const policy = selectPolicy(parsed, setup, "bench");
    const first = policy.evaluate(input);
    const warmup = Math.min(200, Number.isFinite(limit) ? Math.ceil(limit / 10) : 200);
    for (let i = 0; i < warmup; i++) policy.evaluate(input);

    const progress = new Progress();
    const times: number[] = [];
    let allowed = 0;
    let failed = 0;
    const started = performance.now();
    let elapsed = 0;
    while (times.length < limit && elapsed < duration) {
      const decision = policy.evaluate(input);
      times.push(decision.usage.timeMs);
      if (decision.allow) allowed++;
      if (decision.errors.length > 0) failed++;
      elapsed = performance.now() - started;
      if ((times.length & 63) === 0) {
        const fraction = Math.max(times.length / limit, elapsed / duration);
        progress.update(fraction, times.length);
      }
    }
    progress.update(1, times.length);
    progress.done();
    const count = times.length;
    const seconds = elapsed / 1000;
    const sorted = Float64Array.from(times).sort();
    const result = {
      policy: policy.name,
      decisions: count,
      seconds,
      decisionsPerSecond: count / seconds,
      microsPerDecision: (elapsed * 1000) / count,
      p50Micros: percentile(sorted, 0.5) * 1000,
      p99Micros: percentile(sorted, 0.99) * 1000,
      allowed,
      errors: failed,
      firstDecision: { allow: first.allow, reasons: first.reasons, errors: first.errors },
    };
    if (parsed.flags.has("json")) {
      out(jsonText(result, false));
      return 0;
    }
    const outcome = allowed === count
      ? "allow (every decision)"
      : allowed === 0
      ? "deny (every decision)"
      : `${allowed} allowed of ${count}`;
    out(`policy      ${result.policy}`);
    out(`decisions   ${formatNumber(count)} in ${seconds.toFixed(2)} s`);
    out(`throughput  ${formatNumber(result.decisionsPerSecond)} decisions/s`);
    out(
      `latency     ${result.microsPerDecision.toFixed(1)} µs/decision ` +
        `(p50 ${result.p50Micros.toFixed(1)} µs, p99 ${result.p99Micros.toFixed(1)} µs)`,
    );
    out(`outcome     ${outcome}${failed > 0 ? `, ${failed} with errors: ${first.errors[0] ?? ""}` : ""}`);
    return 0;
  } finally {
    setup.engine.close();
  }
}

// ------------------------------------------------------------------------------------------ check

const CHECK_SPEC: Record<string, FlagSpec> = {
  quiet: { help: "Print only errors and the summary" },
};

async function checkCommand(args: string[]): Promise<number> {
  const parsed = parseArgs("check", args, CHECK_SPEC, true);
  if (parsed.help) {
    out(usageText(
      "check",
      "luagate check DIR|FILE...",
      "compile policies and report syntax errors (file:line); a DIR is checked as a bundle\n" +
        "(and each directory under it with a luagate.json as a bundle of its own)",
      CHECK_SPEC,
    ));
    return 0;
  }
  if (parsed.positional.length === 0) {
    throw new CliError("check: give at least one DIR or FILE (see 'luagate check --help')");
  }
  const quiet = parsed.flags.has("quiet");
  const paint = painter(Deno.stdout);
  const targets = parsed.positional.map((path) => ({ path, dir: isDirectory(path) }));
  let files = 0;
  let errors = 0;
  const report = (ok: boolean, text: string) => {
    if (ok && quiet) return;
    out(`${ok ? paint.green("ok   ") : paint.red("error")} ${text}`);
  };
  using lua = new LuaRuntime();
  const units: { path: string; dir: boolean; files: string[] }[] = [];
  for (const target of targets) {
    if (target.dir) {
      for (const bundle of findBundles(target.path)) {
        units.push({ path: bundle.root, dir: true, files: bundle.files });
      }
    } else if (!target.path.endsWith(".lua")) {
      if (!quiet) out(`${paint.dim("skip ")} ${target.path} (not a .lua file)`);
    } else {
      // A file inside a bundle (a directory above it with a luagate.json) is checked in that bundle.
      const root = bundleRootOf(target.path);
      if (root !== undefined) units.push({ path: root, dir: true, files: [target.path] });
      else units.push({ path: target.path, dir: false, files: [target.path] });
    }
  }
  for (const target of units) {
    let syntaxOk = true;
    for (const path of target.files) {
      files++;
      const source = readText(path, "policy");
      try {
        lua.compile(source, { name: path });
      } catch (error) {
        syntaxOk = false;
        errors++;
        report(false, firstLine(error));
      }
    }
    if (!syntaxOk) continue;
    // Syntax is fine: run each chunk as the engine would, so that bad returns and missing modules show.
    if (target.dir) {
      try {
        const result = await checkBundle(target.path, target.files);
        for (const line of result.lines) report(true, line);
      } catch (error) {
        errors++;
        report(false, `${target.path}: ${firstLine(error)}`);
      }
    } else {
      using engine = new PolicyEngine();
      try {
        engine.compile(readText(target.path, "policy"), { name: target.path });
        report(true, `${target.path} (policy)`);
      } catch (error) {
        errors++;
        let message = firstLine(error);
        if (/not found in the bundle/.test(message)) message += ` (check its directory to resolve require)`;
        report(false, message.startsWith(target.path) ? message : `${target.path}: ${message}`);
      }
    }
  }
  out(`${files} file(s) checked, ${errors === 0 ? "no errors" : `${errors} error(s)`}`);
  return errors === 0 ? 0 : 1;
}

async function checkBundle(dir: string, files: string[]): Promise<{ lines: string[] }> {
  const manifest = readManifest(dir);
  let capabilities: Record<string, Capability> | undefined;
  if (manifest.capabilities !== undefined) {
    capabilities = await importCapabilities(join(dir, manifest.capabilities));
  }
  let data: unknown = manifest.data;
  if (typeof manifest.data === "string") data = readJson(join(dir, manifest.data), "data");
  using engine = new PolicyEngine({
    data,
    capabilities,
    limits: manifest.limits,
    permissions: manifest.permissions,
  });
  const policies = engine.load(dir);
  const lines: string[] = [];
  const owned = new Set(files);
  for (const path of walkLua(dir, (name) => !name.endsWith("_test.lua")).filter((p) => owned.has(p))) {
    const module = path.slice(dir.replace(/\/+$/, "").length + 1).replace(/\.lua$/, "").replaceAll("/", ".");
    lines.push(`${path} (${policies.has(module) ? "policy" : "module"} '${module}')`);
  }
  for (const path of files.filter((p) => p.endsWith("_test.lua"))) lines.push(`${path} (test file)`);
  return { lines };
}

// ------------------------------------------------------------------------------------------- test

/**
 * The harness a test file runs in: trusted Lua that runs inside the sandbox, under its limits, like
 * the test file itself. Called with `(source, chunkname, test)`: loads the file in a fresh
 * environment, runs its top level, then either lists its `test_*` functions (`test == nil`) or
 * runs one of them.
 */
const HARNESS_LUA = `
local source, chunkname, which = ...

local function show(v, depth)
  depth = depth or 0
  local t = type(v)
  if t == "string" then return string.format("%q", v) end
  if t ~= "table" then return tostring(v) end
  if depth > 3 then return "{...}" end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then return a < b end
    return type(a) < type(b)
  end)
  local parts, n = {}, #v
  for _, k in ipairs(keys) do
    if math.type(k) == "integer" and k >= 1 and k <= n then
      parts[#parts + 1] = show(v[k], depth + 1)
    elseif type(k) == "string" and k:match("^[%a_][%w_]*$") then
      parts[#parts + 1] = k .. " = " .. show(v[k], depth + 1)
    else
      parts[#parts + 1] = "[" .. show(k, depth + 1) .. "] = " .. show(v[k], depth + 1)
    end
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

local function equal(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do if not equal(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

local function fail(message, extra)
  if extra ~= nil then message = tostring(extra) .. ": " .. message end
  error(message, 3)
end

local env = setmetatable({}, { __index = _G })
env._G = env

function env.assert_eq(actual, expected, message)
  if not equal(actual, expected) then
    fail("expected " .. show(expected) .. ", got " .. show(actual), message)
  end
end

function env.assert_ne(actual, unexpected, message)
  if equal(actual, unexpected) then fail("expected a value other than " .. show(unexpected), message) end
end

function env.allowed(policy, input)
  local d = decide(policy, input)
  return d.allow, d.reasons
end

local function describe(d)
  local text = d.allow and "allow" or "deny"
  if #d.reasons > 0 then text = text .. " (" .. table.concat(d.reasons, "; ") .. ")" end
  if #d.errors > 0 then text = text .. " [" .. table.concat(d.errors, "; ") .. "]" end
  return text
end

function env.assert_allow(policy, input, message)
  local d = decide(policy, input)
  if not d.allow then fail("expected " .. policy .. " to allow, got " .. describe(d), message) end
  return d
end

function env.assert_deny(policy, input, reason, message)
  local d = decide(policy, input)
  if d.allow then fail("expected " .. policy .. " to deny, got " .. describe(d), message) end
  if #d.errors > 0 then fail("expected " .. policy .. " to deny, got an error: " .. describe(d), message) end
  if reason ~= nil then
    for _, r in ipairs(d.reasons) do
      if string.find(r, reason, 1, true) then return d end
    end
    fail("expected a reason containing " .. show(reason) .. ", got " .. describe(d), message)
  end
  return d
end

function env.assert_error(policy, input, pattern, message)
  local d = decide(policy, input)
  if d.allow then fail("expected " .. policy .. " to fail closed, got " .. describe(d), message) end
  if #d.errors == 0 then fail("expected an error, got " .. describe(d), message) end
  if pattern ~= nil and not string.find(d.errors[1], pattern, 1, true) then
    fail("expected an error containing " .. show(pattern) .. ", got " .. describe(d), message)
  end
  return d
end

local chunk, err = load(source, "=" .. chunkname, "t", env)
if not chunk then error(err, 0) end
chunk()

if which == nil then
  local names = {}
  for k, v in pairs(env) do
    if type(k) == "string" and k:sub(1, 5) == "test_" and type(v) == "function" then names[#names + 1] = k end
  end
  return names
end
local test = env[which]
if type(test) ~= "function" then error("test function " .. which .. " not found", 0) end
test()
return true
`;

const TEST_SPEC: Record<string, FlagSpec> = {
  ...ENGINE_FLAGS,
  filter: { value: "TEXT", help: "Run only the tests whose name contains TEXT" },
};

interface TestOutcome {
  file: string;
  name: string;
  ok: boolean;
  message?: string;
  ms: number;
}

/**
 * How a file is named in test output and Lua messages: relative to the current directory, or else
 * from the bundle directory's own name (Lua messages never show absolute host paths).
 */
function displayPath(path: string, dir: string): string {
  const cwd = Deno.cwd().replace(/\/+$/, "") + "/";
  if (path.startsWith(cwd)) return path.slice(cwd.length);
  if (!path.startsWith("/")) return path;
  const base = dir.replace(/\/+$/, "");
  const name = base.split("/").pop() || "bundle";
  return path.startsWith(`${base}/`)
    ? `${name}/${path.slice(base.length + 1)}`
    : (path.split("/").pop() ?? path);
}

function orderOfAppearance(source: string, names: string[]): string[] {
  const position = (name: string) => {
    const match = new RegExp(`\\b${name}\\b`).exec(source);
    return match ? match.index : Infinity;
  };
  return [...names].sort((a, b) => position(a) - position(b) || a.localeCompare(b));
}

async function testCommand(args: string[]): Promise<number> {
  const parsed = parseArgs("test", args, TEST_SPEC, true);
  if (parsed.help) {
    out(usageText(
      "test",
      "luagate test DIR... [--filter TEXT]",
      "run the *_test.lua files of each bundle DIR",
      TEST_SPEC,
    ));
    out(
      [
        "",
        "Each DIR is loaded as a bundle (PolicyEngine.load, with its luagate.json); each *_test.lua file",
        "under it runs in a sandbox under the same limits, once per global function named test_*.",
        "A subdirectory with its own luagate.json is a bundle of its own (test examples/ tests each one).",
        "A test file may call:",
        "  decide(policy, input)              -> { allow, reasons, errors, value, calls }",
        "  allowed(policy, input)             -> allow, reasons",
        "  assert_allow(policy, input [, msg])",
        "  assert_deny(policy, input [, reason_substring [, msg]])",
        "  assert_error(policy, input [, error_substring [, msg]])",
        "  assert_eq(actual, expected [, msg])   (deep comparison)   assert_ne, assert",
        "and read the bundle's data as the global 'data'. A test passes when it returns without error.",
      ].join("\n"),
    );
    return 0;
  }
  if (parsed.positional.length === 0) {
    throw new CliError("test: give at least one bundle DIR (see 'luagate test --help')");
  }
  const filter = str(parsed, "filter");
  const paint = painter(Deno.stdout);
  const outcomes: TestOutcome[] = [];
  const started = performance.now();
  let files = 0;
  let loadFailures = 0;
  const bundles: BundleDir[] = [];
  for (const dir of parsed.positional) {
    if (!isDirectory(dir)) throw new CliError(`test: ${dir} is not a directory`);
    bundles.push(...findBundles(dir));
  }
  for (const { root: dir, files: bundleFiles } of bundles) {
    const testFiles = bundleFiles.filter((path) => path.endsWith("_test.lua"));
    if (testFiles.length === 0 && bundles.length > 1) continue;
    let setup: EngineSetup;
    try {
      setup = await setUpEngine(parsed, dir);
    } catch (error) {
      if (!(error instanceof CliError) || error.code !== 1) throw error;
      out(`${paint.red("FAIL")} ${error.message}`);
      loadFailures++;
      continue;
    }
    const { engine, data, limits } = setup;
    const decide = (name: unknown, input: unknown) => {
      if (typeof name !== "string") {
        throw new Error("decide(policy, input): the policy name must be a string");
      }
      const policy = engine.policy(name);
      if (!policy) {
        throw new Error(`no policy '${name}' in the bundle (policies: ${engine.policies.join(", ")})`);
      }
      const d = policy.evaluate(input);
      return { allow: d.allow, reasons: d.reasons, errors: d.errors, value: d.value, calls: d.calls };
    };
    using sandbox = new Sandbox({
      limits,
      name: "luagate.test",
      globals: data === undefined ? {} : { data },
      capabilities: { decide: decide as Capability },
    });
    try {
      for (const file of testFiles) {
        files++;
        const shown = displayPath(file, dir);
        const source = readText(file, "test file");
        out(paint.bold(shown));
        let names: string[];
        try {
          names = sandbox.execute(HARNESS_LUA, source, shown) as string[];
          if (!Array.isArray(names)) names = [];
        } catch (error) {
          outcomes.push({ file: shown, name: "(load)", ok: false, message: firstLine(error), ms: 0 });
          out(`  ${paint.red("FAIL")} (loading the file)\n       ${firstLine(error)}`);
          continue;
        }
        names = orderOfAppearance(source, names).filter((n) => filter === undefined || n.includes(filter));
        if (names.length === 0) out(paint.dim("  (no test_* functions)"));
        for (const name of names) {
          const t0 = performance.now();
          let outcome: TestOutcome;
          try {
            sandbox.execute(HARNESS_LUA, source, shown, name);
            outcome = { file: shown, name, ok: true, ms: performance.now() - t0 };
          } catch (error) {
            outcome = { file: shown, name, ok: false, message: firstLine(error), ms: performance.now() - t0 };
          }
          outcomes.push(outcome);
          const time = paint.dim(`(${outcome.ms.toFixed(1)} ms)`);
          if (outcome.ok) out(`  ${paint.green("PASS")} ${name} ${time}`);
          else out(`  ${paint.red("FAIL")} ${name} ${time}\n       ${outcome.message}`);
        }
      }
    } finally {
      engine.close();
    }
  }
  const passed = outcomes.filter((o) => o.ok).length;
  const failed = outcomes.length - passed + loadFailures;
  const seconds = ((performance.now() - started) / 1000).toFixed(2);
  out("");
  if (outcomes.length === 0 && loadFailures === 0) {
    out(
      `no tests found (looked for *_test.lua files with test_* functions under ${
        parsed.positional.join(", ")
      })`,
    );
    return 1;
  }
  const summary = `${passed} passed, ${failed} failed (${files} file(s)) in ${seconds}s`;
  out(failed === 0 ? paint.green(summary) : paint.red(summary));
  return failed === 0 ? 0 : 1;
}

// ------------------------------------------------------------------------------------------- main

const TOP_HELP = `luagate: Lua policies for Deno, evaluated through the real Lua C library

Usage:
  luagate <command> [options]
  deno run -A cli.ts <command> [options]

Commands:
  eval    Evaluate a policy against an input and print the decision as JSON
  test    Run the *_test.lua policy tests of bundle directories
  bench   Measure a policy's decisions per second
  check   Compile policies and report syntax errors with file:line

Run 'luagate <command> --help' for the options of a command.
Exit codes: 0 success, 1 failed tests / check errors / denied with --fail, 2 bad usage or input.`;

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  eval: evalCommand,
  test: testCommand,
  bench: benchCommand,
  check: checkCommand,
};

/** Runs the command line `args`; returns the exit code. Errors print one line on stderr. */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  if (command === undefined || command === "-h" || command === "--help" || command === "help") {
    if (command === "help" && rest[0] && COMMANDS[rest[0]]) return COMMANDS[rest[0]](["--help"]);
    out(TOP_HELP);
    return command === undefined ? 2 : 0;
  }
  const run = COMMANDS[command];
  try {
    if (!run) {
      throw new CliError(
        command.startsWith("-")
          ? `unknown option ${command} (see 'luagate --help')`
          : `unknown command '${command}' (commands: ${
            Object.keys(COMMANDS).join(", ")
          }; see 'luagate --help')`,
      );
    }
    return await run(rest);
  } catch (error) {
    if (error instanceof CliError) {
      err(`luagate: ${error.message}`);
      return error.code;
    }
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      err(`luagate: ${firstLine(error)} (run with --allow-ffi --allow-env --allow-read, or -A)`);
      return 2;
    }
    err(`luagate: ${error instanceof Error ? `${error.name}: ` : ""}${firstLine(error)}`);
    return 2;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
