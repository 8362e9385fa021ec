/**
 * The stall watch: a tick on time or a little late counts nothing, one late by 100 ms or more counts with its
 * lateness, a stall of a second or more is logged at most once a minute. The real program stopped by SIGSTOP:
 * `tests/main_process_test.ts`.
 */
import assert from "node:assert/strict";
import type { Clock, TimerId } from "../lib/clock.ts";
import { LoopStallWatch } from "../lib/loop_stall.ts";
import { CopierMetrics } from "../lib/copier/metrics.ts";
import { LogCapture } from "./support/log_capture.ts";

/** A clock whose time passes only in `hold`: the thread held for `ms`, then the timers that came due fire, late. */
class HeldClock implements Clock {
  t = 0;
  readonly timers = new Map<object, { at: number; fn: () => void }>();

  now(): number {
    return this.t;
  }

  setTimer(ms: number, fn: () => void): TimerId {
    const id = {};
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }

  clearTimer(id: TimerId): void {
    this.timers.delete(id as object);
  }

  sleep(): Promise<void> {
    throw new Error("not used");
  }

  hold(ms: number): void {
    this.t += ms;
    for (const [id, timer] of [...this.timers]) {
      if (timer.at > this.t) continue;
      this.timers.delete(id);
      timer.fn();
    }
  }
}

Deno.test("a tick late by 100 ms or more is a stall, counted with its lateness; an earlier one is not", () => {
  const clock = new HeldClock();
  const watch = new LoopStallWatch({ clock });
  watch.start();
  watch.start(); // harmless: one timer
  assert.equal(clock.timers.size, 1);
  clock.hold(500); // on time
  clock.hold(599); // 99 ms late
  assert.deepEqual([watch.stalls, watch.stalledMs], [0, 0]);
  clock.hold(600); // 100 ms late
  clock.hold(750); // 250 ms late
  assert.deepEqual([watch.stalls, watch.stalledMs], [2, 350]);
  watch.stop();
  assert.equal(clock.timers.size, 0);
  watch.stop(); // harmless
});

Deno.test("a stall of a second or more is logged, at most one line a minute, which counts those not logged", async () => {
  await using logs = await LogCapture.start();
  const clock = new HeldClock();
  const watch = new LoopStallWatch({ clock });
  watch.start();
  clock.hold(500 + 999); // 999 ms late: counted, not logged
  clock.hold(500 + 2500); // logged
  clock.hold(500 + 1200); // within the minute: not logged
  clock.hold(500 + 60_000); // a minute on: logged, with the one not logged before it
  watch.stop();
  assert.equal(watch.stalls, 4);
  const warnings = logs.messages("warning");
  assert.equal(warnings.length, 2, warnings.join("\n"));
  assert.match(warnings[0]!, /^The proxy did not run for 2500 ms, and its clients waited as long: its thread was held/);
  assert.match(
    warnings[1]!,
    /^The proxy did not run for 60000 ms, .*\(1 more stalls of a second or more not logged\)$/,
  );
});

Deno.test("the log line names the process and what waited, as the copier gives them", async () => {
  await using logs = await LogCapture.start();
  const clock = new HeldClock();
  const watch = new LoopStallWatch({ clock, what: "endpoint copier", waiting: "its watches" });
  watch.start();
  clock.hold(500 + 1500);
  watch.stop();
  assert.match(
    logs.messages("warning")[0] ?? "",
    /^The endpoint copier did not run for 1500 ms, and its watches waited/,
  );
});

Deno.test("the copier's metrics carry the watch's totals", () => {
  const m = new CopierMetrics();
  assert.match(m.render(), /^extractedprism_event_loop_stalls_total 0$/m);
  m.stalls(3, 4500);
  assert.match(m.render(), /^extractedprism_event_loop_stalls_total 3$/m);
  assert.match(m.render(), /^extractedprism_event_loop_stalled_seconds_total 4\.5$/m);
});
