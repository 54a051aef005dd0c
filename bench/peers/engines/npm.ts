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
