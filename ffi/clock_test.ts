import assert from "node:assert/strict";
import { monotonicMs, RunClock, threadCpuMs } from "./clock.ts";

const wait = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

Deno.test("RunClock: time the thread waits before the first reading is not CPU time", () => {
  const clock = new RunClock(20);
  clock.begin(monotonicMs());
  wait(60);
  assert.equal(clock.pastDeadline(), false);
  const now = threadCpuMs();
  assert.ok(now - clock.cpuStart(now) < 20, `${now} ${clock.cpuStart(now)}`);
  clock.end();
});

Deno.test("RunClock: with no reading from before the run, the start is back-dated by wall time", () => {
  const clock = new RunClock(20);
  clock.begin(monotonicMs(), -Infinity);
  wait(60);
  assert.equal(clock.pastDeadline(), true);
  clock.end();
  assert.equal(clock.pastDeadline(), false, "between runs nothing is past its deadline");
});

Deno.test("RunClock: a run that spends its CPU time is past its deadline", () => {
  const clock = new RunClock(20);
  clock.begin(monotonicMs());
  const start = threadCpuMs();
  let spins = 0;
  while (threadCpuMs() - start < 30) spins++;
  assert.ok(spins > 0);
  assert.equal(clock.pastDeadline(), true);
  clock.end();
});

Deno.test("RunClock: the start is the later of the back-dated reading and the floor, and stays", () => {
  const clock = new RunClock(1000);
  const floor = threadCpuMs();
  clock.begin(monotonicMs() - 5, floor);
  assert.equal(clock.cpuStart(floor + 1), floor);
  assert.equal(clock.cpuStart(floor + 50), floor, "estimated once a run");
  clock.begin(monotonicMs() - 5, floor - 100);
  const now = threadCpuMs();
  const start = clock.cpuStart(now);
  assert.ok(start > floor - 100 && start <= now - 5, `${floor} ${start} ${now}`);
  clock.end();
});

Deno.test("RunClock: a run is too young for a first reading in its first millisecond, within its limit", () => {
  const roomy = new RunClock(1000);
  roomy.begin(monotonicMs() + 0.5);
  // a clock that began half a millisecond from now has not begun: its wall time is negative
  assert.equal(roomy.young(), false);
  roomy.begin(monotonicMs());
  assert.equal(roomy.young(), true);
  roomy.begin(monotonicMs() - 5);
  assert.equal(roomy.young(), false);
  roomy.end();
  assert.equal(roomy.young(), false, "between runs nothing is young");
  const tight = new RunClock(0.25);
  tight.begin(monotonicMs() - 0.5);
  assert.equal(tight.young(), false, "past a limit shorter than a millisecond");
});
