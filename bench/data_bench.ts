/**
 * Plain data into Lua, the native data builder against field by field (`lua/data_program.ts`,
 * `lua/plain_data.ts`), on the same state in the same run:
 *
 * - `abac request`: one request of the shared ABAC workload (6 tables, 23 strings), cycling
 *   through 1,000 of them;
 * - `20 requests`: an object holding 20 of them in an array (about 120 tables);
 * - `2 KiB text`: one field holding 2 KiB of text (each string is its own, as strings built at run
 *   time are), where encoding the bytes is the whole cost; a value this small is left to field by
 *   field after encoding, so the second row also shows what that costs.
 *
 * Each iteration pushes one value and drops it; the collector runs in generational mode (5.4), as
 * in a policy engine, so the cost of freeing what was built is counted too.
 *
 *   ./run deno bench -A bench/data_bench.ts
 *
 * @module
 */

import { LuaCore } from "../lua/core.ts";
import { pushFieldByField, pushPlainData } from "../lua/plain_data.ts";
import { makeRequests } from "./abac_workload.ts";

const core = new LuaCore();
globalThis.addEventListener("unload", () => core.close());
const L = core.L;
// LUA_GCGEN (5.4; earlier versions ignore the request)
core.api.gc(L, 10, 0);
const settop = core.api.sym.lua_settop;
const requests = makeRequests(1000);
const batches = Array.from(
  { length: 50 },
  (_, i) => ({ page: i, items: requests.slice(i * 20, i * 20 + 20) }),
);
if (core.dataEncoder === undefined) {
  console.error("no native data builder here: both rows push field by field");
}

function bench(group: string, values: unknown[]) {
  let i = 0;
  const run = (push: typeof pushPlainData) => () => {
    push(core, L, values[i++ % values.length]);
    settop(L, 0);
  };
  Deno.bench({ name: `${group}: field by field`, group, baseline: true, fn: run(pushFieldByField) });
  Deno.bench({ name: `${group}: native data builder`, group, fn: run(pushPlainData) });
}

bench("abac request", requests);
bench("20 requests", batches);
bench("2 KiB text", Array.from({ length: 100 }, (_, i) => ({ text: "lorem ipsum ".repeat(170) + i })));
