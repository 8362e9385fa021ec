/** The real clock's timers are Deno's core timers on the Deno this project pins; the fallback is `setTimeout`. */
import assert from "node:assert/strict";
import { clearTimer, setTimer, sleep, timerKind } from "../lib/clock.ts";

Deno.test("this Deno gives the clock its core timers (without them, setTimeout loads Node's timers: ~3 MiB)", () => {
  assert.equal(timerKind, "core", "Deno[Deno.internal].core.createTimer/cancelTimer moved: see lib/clock.ts");
});

Deno.test("timers fire in order of their deadlines, a cleared one never, and sleep ends early on abort", async () => {
  const fired: string[] = [];
  const all = Promise.withResolvers<void>();
  setTimer(20, () => {
    fired.push("b");
    all.resolve();
  });
  setTimer(5, () => fired.push("a"));
  const cleared = setTimer(10, () => fired.push("cleared"));
  clearTimer(cleared);
  clearTimer(cleared); // twice is harmless
  clearTimer(undefined);
  await all.promise;
  assert.deepEqual(fired, ["a", "b"]);
  const stop = new AbortController();
  const started = performance.now();
  const slept = sleep(60_000, stop.signal);
  stop.abort(new Error("stopped"));
  await assert.rejects(slept, /stopped/);
  assert.ok(performance.now() - started < 10_000, "the abort, not the 60 s sleep, ended it");
});
