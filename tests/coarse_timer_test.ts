/** The dials' shared timer: one tick of resolution, cancellation, and an interval that stops when idle. */
import assert from "node:assert/strict";
import { sleep } from "../lib/clock.ts";
import { CoarseTimer } from "../lib/proxy/coarse_timer.ts";
import { withDeadline } from "./support/deadline.ts";

Deno.test("a call fires at its time or within a tick after, in order; a cancelled one never fires", async () => {
  const timer = new CoarseTimer(10);
  const start = timer.now();
  const fired: string[] = [];
  const last = Promise.withResolvers<number>();
  timer.at(start + 40, () => {
    fired.push("b");
    last.resolve(timer.now());
  });
  timer.at(start + 20, () => fired.push("a"));
  timer.at(start + 30, () => fired.push("cancelled")).cancel();
  const at = await withDeadline(last.promise, "the last call");
  assert.deepEqual(fired, ["a", "b"]);
  assert.ok(at >= start + 40, `fired ${(at - start).toFixed(1)} ms after start, before its time`);
  // Nothing is pending now: the interval has stopped, or the op sanitizer fails this test.
});

Deno.test("a call scheduled from a firing call runs on a later tick, and cancelling a fired entry is harmless", async () => {
  const timer = new CoarseTimer(5);
  const ticks: number[] = [];
  const done = Promise.withResolvers<void>();
  const first = timer.at(timer.now(), () => {
    ticks.push(timer.now());
    timer.at(timer.now() + 10, () => {
      ticks.push(timer.now());
      done.resolve();
    });
  });
  const bound = new AbortController();
  await Promise.race([
    done.promise,
    sleep(2000, bound.signal).then(() => Promise.reject(new Error("the nested call never fired"))),
  ]);
  bound.abort();
  first.cancel();
  assert.equal(ticks.length, 2);
  assert.ok(ticks[1]! - ticks[0]! >= 10, `the nested call fired ${ticks[1]! - ticks[0]!} ms after the first`);
});

Deno.test("a call that cancels another entry due on the same tick stops it from firing", async () => {
  const timer = new CoarseTimer(5);
  const at = timer.now() + 5;
  const fired: string[] = [];
  const done = Promise.withResolvers<void>();
  // Both due on the same tick, in this order: the first cancels the second, as a dial's winner cancels its hedge.
  const first = timer.at(at, () => {
    fired.push("first");
    second.cancel();
  });
  const second = timer.at(at, () => fired.push("second"));
  timer.at(at + 20, () => done.resolve());
  await withDeadline(done.promise, "the third call");
  first.cancel(); // already fired: harmless
  assert.deepEqual(fired, ["first"]);
});
