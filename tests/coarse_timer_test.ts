/** The dials' shared timer: one tick of resolution, cancellation, and a tick that stops when idle. */
import assert from "node:assert/strict";
import { systemClock } from "../lib/clock.ts";
import { CoarseTimer } from "../lib/proxy/coarse_timer.ts";
import { withDeadline } from "./support/deadline.ts";
import { ManualClock } from "./support/manual_clock.ts";

Deno.test("a call fires at its time or within a tick after, in order; a cancelled one never fires", async () => {
  const clock = new ManualClock();
  const timer = new CoarseTimer(clock, 10);
  const fired: [string, number][] = [];
  timer.at(40, () => fired.push(["b", clock.now()]));
  timer.at(25, () => fired.push(["a", clock.now()]));
  timer.at(30, () => fired.push(["cancelled", clock.now()])).cancel();
  assert.equal(clock.pending, 1, "one tick for every pending call");
  await clock.advance(39);
  assert.deepEqual(fired, [["a", 30]], "a at the first tick at or after its time; b not before its time");
  await clock.advance(1);
  assert.deepEqual(fired, [["a", 30], ["b", 40]]);
  assert.equal(clock.pending, 0, "nothing is pending: the tick has stopped");
});

Deno.test("a call scheduled from a firing call runs on a later tick, and cancelling a fired entry is harmless", async () => {
  const clock = new ManualClock();
  const timer = new CoarseTimer(clock, 5);
  const ticks: number[] = [];
  const first = timer.at(0, () => {
    ticks.push(clock.now());
    timer.at(clock.now() + 10, () => ticks.push(clock.now()));
  });
  await clock.advance(5);
  assert.deepEqual(ticks, [5]);
  await clock.advance(9);
  assert.deepEqual(ticks, [5], "not before its time");
  await clock.advance(1);
  assert.deepEqual(ticks, [5, 15]);
  first.cancel();
  assert.equal(clock.pending, 0);
});

Deno.test("a call that cancels another entry due on the same tick stops it from firing", async () => {
  const clock = new ManualClock();
  const timer = new CoarseTimer(clock, 5);
  const fired: string[] = [];
  // Both due on the same tick, in this order: the first cancels the second, as a dial's winner cancels its hedge.
  const first = timer.at(5, () => {
    fired.push("first");
    second.cancel();
  });
  const second = timer.at(5, () => fired.push("second"));
  await clock.advance(5);
  first.cancel(); // already fired: harmless
  assert.deepEqual(fired, ["first"]);
  assert.equal(clock.pending, 0, "the tick stops once the last entry is gone");
});

Deno.test("cancelling the last pending call stops the tick at once", () => {
  const clock = new ManualClock();
  const timer = new CoarseTimer(clock, 10);
  const a = timer.at(100, () => {});
  const b = timer.at(200, () => {});
  a.cancel();
  assert.equal(clock.pending, 1);
  b.cancel();
  assert.equal(clock.pending, 0);
});

Deno.test("on the system clock a call fires, and the idle tick leaves no timer behind", async () => {
  const timer = new CoarseTimer(systemClock, 5);
  const start = timer.now();
  const fired = Promise.withResolvers<number>();
  timer.at(start + 10, () => fired.resolve(timer.now()));
  const at = await withDeadline(fired.promise, "the call");
  assert.ok(at >= start + 10, `fired ${(at - start).toFixed(1)} ms after start, before its time`);
  // The op sanitizer fails this test if the tick's timer were still armed.
});
