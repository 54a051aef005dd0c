// Helpers to load the peer engines from bench/peers/node_modules (installed by run.ts from package.json).
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

/** file: URL of a path inside bench/peers/node_modules. */
export function nodeModulesUrl(path: string): URL {
  return new URL(`../node_modules/${path}`, import.meta.url);
}

/** The installed version of an npm package, from its package.json. */
export function installedVersion(pkg: string): string {
  const text = Deno.readTextFileSync(nodeModulesUrl(`${pkg}/package.json`));
  return (JSON.parse(text) as { version: string }).version;
}

/** `require` for CommonJS packages in bench/peers/node_modules. */
export function requirePeer<T>(path: string): T {
  const require = createRequire(import.meta.url);
  return require(fileURLToPath(nodeModulesUrl(path))) as T;
}

/** Dynamic ESM import of a file in bench/peers/node_modules (computed so type-checking never needs it). */
export async function importPeer<T>(path: string): Promise<T> {
  return (await import(nodeModulesUrl(path).href)) as T;
}

/** Installs bench/peers/node_modules from package.json / package-lock.json when anything is missing. */
export async function ensureNodeModules(): Promise<void> {
  const pkg = JSON.parse(await Deno.readTextFile(new URL("../package.json", import.meta.url))) as {
    dependencies: Record<string, string>;
  };
  const missing = Object.entries(pkg.dependencies).filter(([name, version]) => {
    try {
      const installed = JSON.parse(Deno.readTextFileSync(nodeModulesUrl(`${name}/package.json`)));
      return installed.version !== version;
    } catch {
      return true;
    }
  });
  if (missing.length === 0) return;
  let hasLock = true;
  try {
    Deno.statSync(new URL("../package-lock.json", import.meta.url));
  } catch {
    hasLock = false;
  }
  const args = hasLock ? ["ci", "--no-audit", "--no-fund"] : ["install", "--no-audit", "--no-fund"];
  console.error(
    `installing npm peers (${missing.map(([n, v]) => `${n}@${v}`).join(", ")}): npm ${args.join(" ")}`,
  );
  try {
    // npm's stdout goes to stderr as well, so that --json output stays clean.
    const out = await new Deno.Command("npm", {
      args,
      cwd: new URL("..", import.meta.url),
      stdout: "piped",
      stderr: "inherit",
    })
      .output();
    const text = new TextDecoder().decode(out.stdout).trim();
    if (text) console.error(text);
    if (!out.success) {
      console.error(`npm ${args[0]} failed with exit code ${out.code}; the npm engines will error`);
    }
  } catch (e) {
    console.error(`npm not runnable (${(e as Error).message}); the npm engines will error`);
  }
}
