/** The tests' fake clock: what every time-based test relies on. */
import assert from "node:assert/strict";
import { ManualClock } from "./support/manual_clock.ts";

Deno.test("advance fires due timers in time order, each at its own time, ties in the order they were set", async () => {
  const clock = new ManualClock(1000);
  const fired: [string, number][] = [];
  clock.setTimer(30, () => fired.push(["c", clock.now()]));
  clock.setTimer(10, () => fired.push(["a", clock.now()]));
  clock.setTimer(10, () => fired.push(["b", clock.now()]));
  clock.setTimer(31, () => fired.push(["late", clock.now()]));
  clock.clearTimer(clock.setTimer(20, () => fired.push(["cancelled", clock.now()])));
  await clock.advance(30);
  assert.deepEqual(fired, [["a", 1010], ["b", 1010], ["c", 1030]]);
  assert.equal(clock.now(), 1030);
  assert.equal(clock.pending, 1);
});

Deno.test("a sleep ends when time reaches it, and what it wakes runs before time moves on", async () => {
  const clock = new ManualClock();
  const seen: number[] = [];
  const chain = (async () => {
    await clock.sleep(10);
    seen.push(clock.now());
    await clock.sleep(10); // set from the woken code: due at 20, inside the same advance
    seen.push(clock.now());
  })();
  await clock.advance(25);
  await chain;
  assert.deepEqual(seen, [10, 20]);
});

Deno.test("an aborted sleep rejects with the signal's reason and leaves no timer", async () => {
  const clock = new ManualClock();
  const ctrl = new AbortController();
  const sleeping = clock.sleep(100, ctrl.signal);
  assert.equal(clock.pending, 1);
  ctrl.abort(new Error("stop"));
  await assert.rejects(sleeping, /stop/);
  assert.equal(clock.pending, 0);
  await assert.rejects(clock.sleep(1, ctrl.signal), /stop/, "an already aborted signal rejects at once");
});

Deno.test("advanceUntil stops at the step where the condition holds, and names what never came", async () => {
  const clock = new ManualClock();
  let ready = false;
  clock.setTimer(35, () => (ready = true));
  assert.equal(await clock.advanceUntil(() => ready, "ready"), 40);
  await assert.rejects(clock.advanceUntil(() => false, "the impossible", 50), /no the impossible within 50 ms/);
  assert.equal(clock.now(), 90);
});

Deno.test("advanceUntilSettled moves time until the promise settles, and passes its rejection on", async () => {
  const clock = new ManualClock();
  assert.equal(await clock.advanceUntilSettled(clock.sleep(250).then(() => "done"), "the sleep"), "done");
  assert.equal(clock.now(), 300, "in steps of 100 ms");
  const failing = clock.sleep(10).then(() => Promise.reject(new Error("boom")));
  await assert.rejects(clock.advanceUntilSettled(failing, "the failure"), /boom/);
});

Deno.test("a timer that keeps setting zero-delay timers is reported instead of hanging the test", async () => {
  const clock = new ManualClock();
  const again = () => void clock.setTimer(0, again);
  clock.setTimer(0, again);
  await assert.rejects(clock.advance(0), /timers keep firing at 0 ms/);
});
