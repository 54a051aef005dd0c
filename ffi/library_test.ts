import assert from "node:assert/strict";
import { openLuaLibrary } from "./library.ts";
import { LUA_BRIDGE_SYMBOLS, LUA_SYMBOLS } from "./symbols.ts";

Deno.test("library: the bridge's functions are bound once, on first use", () => {
  const library = openLuaLibrary();
  const bridge = library.bridgeSymbols();
  assert.equal(library.bridgeSymbols(), bridge);
  assert.equal(typeof bridge.lua_newthread, "function");
  assert.equal(typeof bridge.lua_xmove, "function");
  assert.ok(library.version === "5.1" ? bridge.lua_objlen !== null : bridge.lua_rawlen !== null);
  for (const name of Object.keys(LUA_BRIDGE_SYMBOLS)) assert.ok(!(name in LUA_SYMBOLS), name);
});

Deno.test("library: a process that runs only sandboxes and policies never binds the bridge's functions", async () => {
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  const mod = JSON.stringify(new URL("../mod.ts", import.meta.url).href);
  try {
    // every Deno.dlopen of the process, by whether its table holds the bridge's first function
    await Deno.writeTextFile(
      script,
      `const opened: boolean[] = [];
      const dlopen = Deno.dlopen;
      Object.defineProperty(Deno, "dlopen", {
        value: (path: string, symbols: Record<string, unknown>) => {
          opened.push("lua_newthread" in symbols);
          return dlopen(path, symbols as Deno.ForeignLibraryInterface);
        },
      });
      const { LuaRuntime, PolicyEngine, Sandbox } = await import(${mod});
      using sandbox = new Sandbox();
      sandbox.execute("local co = coroutine.wrap(function() coroutine.yield(1) end) return co()");
      using engine = new PolicyEngine();
      engine.compile("return function(input) return #input.items > 1 end", { name: "p" }).evaluate({ items: [1, 2] });
      const before = opened.filter(Boolean).length;
      using lua = new LuaRuntime();
      const co = (lua.eval("function() coroutine.yield(7) end") as { coroutine(): Iterator<unknown> }).coroutine();
      console.log(JSON.stringify({ before, after: opened.filter(Boolean).length, yielded: co.next().value }));`,
    );
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", "--no-prompt", script],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(new TextDecoder().decode(output.stderr), "");
    assert.deepEqual(JSON.parse(new TextDecoder().decode(output.stdout)), {
      before: 0,
      after: 1,
      yielded: 7,
    });
  } finally {
    await Deno.remove(script);
  }
});
