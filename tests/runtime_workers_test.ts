import assert from "node:assert/strict";
import { VERSION } from "./helpers.ts";

const WORKER = new URL("./fixtures/lua_worker.ts", import.meta.url);

interface Result {
  id: number;
  sum?: number;
  callbacks?: number;
  version?: string;
  error?: string;
}

function expected(n: number, id: number): number {
  let s = 0;
  for (let i = 1; i <= n; i++) s += i * (i % 3);
  return s + id;
}

function startWorker(): Worker {
  // Each Worker loads Lua through FFI on its own: it needs --allow-ffi (and env, read). A Worker
  // inherits the test process's permissions; narrowing them per Worker (`deno.permissions`) would
  // need --unstable-worker-options.
  return new Worker(WORKER, { type: "module" });
}

function run(worker: Worker, id: number, n: number): Promise<Result> {
  return new Promise((resolve, reject) => {
    worker.onmessage = (e: MessageEvent<Result>) => resolve(e.data);
    worker.onerror = (e) => {
      e.preventDefault();
      reject(new Error(e.message));
    };
    worker.postMessage({ id, n });
  });
}

Deno.test("lupa: a LuaRuntime in a Worker computes and posts the result back", async () => {
  const worker = startWorker();
  try {
    const result = await run(worker, 1, 10_000);
    assert.equal(result.error, undefined);
    assert.equal(result.sum, expected(10_000, 1));
    assert.equal(result.callbacks, 10_000);
    assert.equal(result.version, VERSION);
  } finally {
    worker.terminate();
  }
});

Deno.test("lupa: two Workers with separate runtimes run at the same time", async () => {
  const workers = [startWorker(), startWorker()];
  try {
    const results = await Promise.all([run(workers[0], 1, 200_000), run(workers[1], 2, 150_000)]);
    assert.deepEqual(results.map((r) => r.error), [undefined, undefined]);
    assert.equal(results[0].sum, expected(200_000, 1));
    assert.equal(results[1].sum, expected(150_000, 2));
    // the same Workers can take another job each
    const again = await Promise.all([run(workers[0], 3, 1000), run(workers[1], 4, 1000)]);
    assert.deepEqual(again.map((r) => r.sum), [expected(1000, 3), expected(1000, 4)]);
  } finally {
    for (const w of workers) w.terminate();
  }
});

Deno.test("four Workers, several jobs each, all answer correctly", async () => {
  const workers = Array.from({ length: 4 }, startWorker);
  try {
    for (let round = 0; round < 3; round++) {
      const results = await Promise.all(workers.map((w, i) => run(w, round * 10 + i, 5000 + i)));
      results.forEach((r, i) => assert.equal(r.sum, expected(5000 + i, round * 10 + i)));
    }
  } finally {
    for (const w of workers) w.terminate();
  }
});
