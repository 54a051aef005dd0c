// wasmoon: Lua 5.4 compiled to WebAssembly (npm `wasmoon`).
// Fed the natural way: the plain JS request object is passed to the Lua function `decide`, and
// wasmoon pushes it as a proxy userdata (its default, `enableProxy: true`); Lua reads
// `input.user.roles` etc. through the proxy's metamethods, one JS<->wasm crossing per field access.
// A second row turns proxies off (`enableProxy: false`): wasmoon then copies the object into Lua tables
// on every call, which is its other documented way to receive a JS object.
import type { Engine, Request, Workload } from "./types.ts";
import { installedVersion, requirePeer } from "./npm.ts";

/** The part of a wasmoon engine the harnesses use. */
export interface LuaEngineLike {
  doStringSync(code: string): unknown;
  global: {
    get(name: string): unknown;
    set(name: string, value: unknown): void;
    setTop(index: number): void;
    close(): void;
  };
}

/** Calls of `doStringSync` between two resets of the global stack. */
const RUNS_PER_RESET = 4096;

/**
 * `lua.doStringSync` for a harness that runs sources many times: wasmoon leaves each run's results
 * on its global stack, which overflows ("stack overflow") after about a million of them. Emptied every
 * few thousand runs, which costs the timing nothing.
 */
export function stringRunner(lua: LuaEngineLike): (code: string) => unknown {
  let runs = 0;
  return (code) => {
    if (++runs === RUNS_PER_RESET) {
      runs = 0;
      lua.global.setTop(0);
    }
    return lua.doStringSync(code);
  };
}
/** The part of wasmoon's API the harnesses use. */
export interface WasmoonModule {
  LuaFactory: new () => { createEngine(options?: Record<string, unknown>): Promise<LuaEngineLike> };
}

function row(wasmoon: WasmoonModule, name: string, feed: string, options: Record<string, unknown>): Engine {
  let lua: LuaEngineLike | undefined;
  let decide: (input: Request) => unknown = () => {
    throw new Error("not set up");
  };
  let requests: Request[] = [];
  const engine: Engine = {
    name,
    version: `wasmoon ${installedVersion("wasmoon")}`,
    feed,
    async setup(w: Workload) {
      requests = w.requests;
      lua = await new wasmoon.LuaFactory().createEngine(options);
      lua.doStringSync(w.policyLua);
      const fn = lua.global.get("decide");
      if (typeof fn !== "function") throw new Error("wasmoon: global decide is not a function");
      decide = fn as (input: Request) => unknown;
      engine.version = `wasmoon ${installedVersion("wasmoon")} (${lua.doStringSync("return _VERSION")})`;
    },
    decide(i: number): boolean {
      return decide(requests[i]) === true;
    },
    close() {
      lua?.global.close();
      lua = undefined;
    },
  };
  return engine;
}

export function load(): Promise<Engine[]> {
  const wasmoon = requirePeer<WasmoonModule>("wasmoon/dist/index.js");
  return Promise.resolve([
    row(
      wasmoon,
      "wasmoon (Lua 5.4 in wasm)",
      "JS object passed to the Lua function; wasmoon proxies it (its default, enableProxy: true)",
      {},
    ),
    row(
      wasmoon,
      "wasmoon, enableProxy: false",
      "JS object passed to the Lua function; wasmoon deep-copies it into Lua tables per call",
      { enableProxy: false },
    ),
  ]);
}
