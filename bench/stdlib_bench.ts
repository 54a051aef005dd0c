// What the sandbox's vetted standard library costs per call, against the same call in the trusted
// runtime (the baseline of each group), measured in the same run.
//   deno bench -A bench/stdlib_bench.ts
// Each iteration runs a Lua loop of CALLS calls, so µs per iteration are ns per call. The sandbox
// pays for its count hook on every instruction and for the wrappers that charge C work; the
// difference from the baseline is that price.

import { LuaRuntime, Sandbox } from "../mod.ts";

const CALLS = 1000;
const ROOMY = { instructions: 1e12, cpuMs: 1e9, memory: 64 << 20 };

const CALLS_BY_NAME: Record<string, string> = {
  "string.byte": `x = s:byte(1)`,
  "string.lower": `x = s:lower()`,
  "string.format %d": `x = string.format("%d", i)`,
  "string.format %s-%s": `x = string.format("%s-%s", s, s)`,
  "string.find plain": `x = s:find("12", 1, true)`,
  "string.find pattern": `x = s:find("%d+")`,
  "string.find from init": `x = s:find("%d", 2)`,
  "string.match": `x = s:match("^(%a+)")`,
  "string.gsub": `x = s:gsub("a", "b")`,
  "string.gmatch over 82 bytes": `for w in text:gmatch("%a+") do x = w end`,
  "tonumber": `x = tonumber("12")`,
  "table.insert": `table.insert(t, i) if #t > 100 then t = {} end`,
  "table.concat": `x = table.concat(five, ",")`,
};

const sandbox = new Sandbox({ limits: ROOMY });
const trusted = new LuaRuntime();

function loop(body: string): string {
  return `local s, t, five, x = "abc12", {}, {1, 2, 3, 4, 5}
local text = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120 "
for i = 1, ${CALLS} do ${body} end
return x`;
}

for (const [name, body] of Object.entries(CALLS_BY_NAME)) {
  const code = loop(body);
  if (String(sandbox.execute(code)) !== String(trusted.execute(code))) {
    throw new Error(`${name}: the sandbox and the trusted runtime disagree`);
  }
  Deno.bench(`trusted ${name}`, { group: name, baseline: true }, () => {
    trusted.execute(code);
  });
  Deno.bench(`sandbox ${name}`, { group: name }, () => {
    sandbox.execute(code);
  });
}
