/**
 * Finding and opening the Lua shared library.
 *
 * Order: the explicit `library` option, then the `LUAGATE_LUA_LIB` environment variable, then a
 * probe of the usual names for Lua 5.4, 5.3, 5.1 and LuaJIT 2.1. One library is opened once per
 * path and shared by every runtime of the process.
 *
 * @module
 */

import {
  LUA_BRIDGE_SYMBOLS,
  LUA_LEGACY_SYMBOLS,
  LUA_SYMBOLS,
  type LuaBridgeSymbols,
  type LuaLegacySymbols,
  type LuaSymbols,
} from "./symbols.ts";

/** Which Lua the library implements. */
export type LuaVersion = "5.1" | "5.2" | "5.3" | "5.4";

/** An opened Lua library with what was learned about it. */
export interface LuaLibrary {
  /** The path or soname it was opened from. */
  readonly path: string;
  /** The language version ("5.4", "5.3", "5.2" or "5.1"; LuaJIT reports "5.1"). */
  readonly version: LuaVersion;
  /** The implementation and release, e.g. "Lua 5.4.4" or "LuaJIT 2.1". */
  readonly implementation: string;
  /** Whether this is LuaJIT. */
  readonly isLuaJIT: boolean;
  /** The raw symbols. */
  readonly symbols: LuaSymbols;
  /** The functions only the trusted bridge calls (coroutines, a table's length), bound on first use. */
  bridgeSymbols(): LuaBridgeSymbols;
  /** `lua_rawgeti`/`lua_rawseti` under their 5.1 and 5.2 signatures, bound on first use. */
  legacySymbols(): LuaLegacySymbols;
}

/** Raised when no Lua library can be found or opened; the message lists every attempt. */
export class LuaLibraryError extends Error {
  /** Each path tried, with the reason it failed. */
  readonly attempts: readonly string[];
  /**
   * Creates a LuaLibraryError.
   * @param message What went wrong and how to fix it.
   * @param attempts The paths tried, each with its failure.
   */
  constructor(message: string, attempts: readonly string[]) {
    super(message);
    this.name = "LuaLibraryError";
    this.attempts = attempts;
  }
}

const PROBE_NAMES: Record<string, readonly string[]> = {
  linux: [
    "liblua5.4.so.0",
    "liblua5.4.so",
    "liblua-5.4.so",
    "liblua54.so",
    "liblua.so.5.4",
    "/usr/local/lib/liblua.so",
    "liblua5.3.so.0",
    "liblua5.3.so",
    "liblua-5.3.so",
    "liblua.so.5.3",
    "liblua5.1.so.0",
    "liblua5.1.so",
    "liblua.so.5.1",
    "libluajit-5.1.so.2",
    "libluajit-5.1.so",
  ],
  darwin: [
    "/opt/homebrew/lib/liblua.5.4.dylib",
    "/opt/homebrew/lib/liblua5.4.dylib",
    "/usr/local/lib/liblua.5.4.dylib",
    "/usr/local/lib/liblua5.4.dylib",
    "/opt/homebrew/lib/liblua.dylib",
    "/usr/local/lib/liblua.dylib",
    "/opt/homebrew/lib/liblua.5.3.dylib",
    "/usr/local/lib/liblua.5.3.dylib",
    "/opt/homebrew/lib/libluajit-5.1.2.dylib",
    "/usr/local/lib/libluajit-5.1.2.dylib",
  ],
  windows: ["lua54.dll", "lua5.4.dll", "lua53.dll", "lua5.3.dll", "lua51.dll", "lua5.1.dll"],
};

const INSTALL_HINT =
  "Install Lua 5.4: `apt-get install liblua5.4-0` (Debian/Ubuntu), `brew install lua` (macOS), " +
  'or pass `library: "/path/to/liblua.so"` / set LUAGATE_LUA_LIB.';

const opened = new Map<string, LuaLibrary>();
let probed: LuaLibrary | undefined;

function detect(path: string, symbols: LuaSymbols): LuaLibrary {
  const isLuaJIT = symbols.address_luaJIT_setmode !== null;
  let version: LuaVersion;
  if (symbols.lua_newuserdatauv !== null) version = "5.4";
  else if (symbols.lua_isinteger !== null) version = "5.3";
  else if (symbols.address_lua_callk !== null && !isLuaJIT) version = "5.2";
  else version = "5.1";
  let implementation = isLuaJIT ? "LuaJIT 2.1" : `Lua ${version}`;
  if (!isLuaJIT && symbols.lua_ident !== null) {
    const ident = Deno.UnsafePointerView.getCString(symbols.lua_ident as Deno.PointerObject);
    const release = /Lua (\d+\.\d+(?:\.\d+)?)/.exec(ident);
    if (release) implementation = `Lua ${release[1]}`;
  }
  let bridge: LuaBridgeSymbols | undefined;
  let legacy: LuaLegacySymbols | undefined;
  return {
    path,
    version,
    implementation,
    isLuaJIT,
    symbols,
    bridgeSymbols: () => bridge ??= Deno.dlopen(path, LUA_BRIDGE_SYMBOLS).symbols,
    legacySymbols: () => legacy ??= Deno.dlopen(path, LUA_LEGACY_SYMBOLS).symbols,
  };
}

function tryOpen(path: string): LuaLibrary {
  const cached = opened.get(path);
  if (cached) return cached;
  const lib = Deno.dlopen(path, LUA_SYMBOLS);
  if (lib.symbols.luaL_newstate === null) {
    lib.close();
    throw new Error("no luaL_newstate symbol: not a Lua library");
  }
  const library = detect(path, lib.symbols);
  opened.set(path, library);
  return library;
}

let envChoice: { value: string | undefined } | undefined;

// Read once per process: every runtime of a process must use the same library anyway.
function envLibrary(): string | undefined {
  if (envChoice) return envChoice.value;
  let value: string | undefined;
  try {
    value = Deno.env.get("LUAGATE_LUA_LIB") || undefined;
  } catch {
    value = undefined;
  }
  envChoice = { value };
  return value;
}

function reason(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n")[0];
}

/**
 * Opens the Lua library: `path` if given, else env `LUAGATE_LUA_LIB`, else the first of the usual
 * names that loads. Throws a {@linkcode LuaLibraryError} listing every attempt when none does.
 *
 * @example Open whatever Lua the system has
 * ```ts
 * import { openLuaLibrary } from "./library.ts";
 * const lib = openLuaLibrary();
 * console.log(lib.implementation); // e.g. "Lua 5.4.4"
 * ```
 */
export function openLuaLibrary(path?: string): LuaLibrary {
  const explicit = path ?? envLibrary();
  if (explicit !== undefined) {
    try {
      return tryOpen(explicit);
    } catch (error) {
      const attempt = `${explicit}: ${reason(error)}`;
      throw new LuaLibraryError(
        `Cannot load the Lua library "${explicit}" (${path ? "library option" : "LUAGATE_LUA_LIB"}): ${
          reason(error)
        }. ${INSTALL_HINT}`,
        [attempt],
      );
    }
  }
  if (probed) return probed;
  const attempts: string[] = [];
  for (const name of PROBE_NAMES[Deno.build.os] ?? PROBE_NAMES.linux) {
    try {
      return probed = tryOpen(name);
    } catch (error) {
      attempts.push(`${name}: ${reason(error)}`);
    }
  }
  throw new LuaLibraryError(
    `No Lua library found. Tried:\n  ${attempts.join("\n  ")}\n${INSTALL_HINT}`,
    attempts,
  );
}
