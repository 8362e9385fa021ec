/** The dials' shared timer: one tick of resolution, cancellation, and an interval that stops when idle. */
import assert from "node:assert/strict";
import { CoarseTimer } from "../lib/proxy/coarse_timer.ts";

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
  const at = await last.promise;
  assert.deepEqual(fired, ["a", "b"]);
  assert.ok(at >= start + 40, `fired ${(at - start).toFixed(1)} ms after start, before its time`);
  // Nothing is pending now: the interval has stopped, or the op sanitizer fails this test.
});

Deno.test("a call scheduled from a firing call runs later, and cancelling a fired entry is harmless", async () => {
  const timer = new CoarseTimer(5);
  const done = Promise.withResolvers<void>();
  const first = timer.at(timer.now(), () => {
    timer.at(timer.now() + 10, () => done.resolve());
  });
  await done.promise;
  first.cancel();
});
