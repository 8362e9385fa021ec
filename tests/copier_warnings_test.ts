import assert from "node:assert/strict";
import { WarningReporter } from "../lib/copier/warnings.ts";
import { LogCapture } from "./support/log_capture.ts";
import { ManualClock } from "./support/manual_clock.ts";
import { startWatchEnv } from "./support/watch_env.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };
const VIP = { namespace: "default", name: "vip", uid: "uid-vip" };
const EMPTY = { reason: "EmptySource", message: "the source has no endpoints" };

Deno.test("a warning is said once, repeated as an Event count, and said anew when it comes back", opts, async (t) => {
  await using logs = await LogCapture.start();
  await using env = await startWatchEnv();
  const clock = new ManualClock();
  const reporter = new WarningReporter({
    transport: env.transport,
    instance: "node-1_abc",
    repeatIntervalMs: 1000,
    clock,
    wallClock: () => Date.UTC(2026, 0, 1, 0, 0, 0) + clock.now(),
  });
  const events = () => env.api.list("events", "default");

  await t.step("first report: one log line and one Warning Event", async () => {
    assert.equal(await reporter.report(VIP, [EMPTY]), 1);
    const [e, ...more] = events();
    assert.deepEqual(more, []);
    assert.equal(e?.reason, "EmptySource");
    assert.equal(e?.type, "Warning");
    assert.equal(e?.count, 1);
    assert.equal(e?.reportingInstance, "node-1_abc");
    assert.equal(e?.firstTimestamp, "2026-01-01T00:00:00Z");
    assert.deepEqual(logs.messages("warning"), ["the source has no endpoints"]);
  });

  await t.step("within the repeat interval: nothing", async () => {
    await clock.advance(999);
    assert.equal(await reporter.report(VIP, [EMPTY]), 0);
    assert.equal(events()[0]?.count, 1);
  });

  await t.step("after it: the Event's count and lastTimestamp grow", async () => {
    await clock.advance(1);
    assert.equal(await reporter.report(VIP, [EMPTY]), 1);
    const [e, ...more] = events();
    assert.deepEqual(more, []);
    assert.equal(e?.count, 2);
    assert.equal(e?.lastTimestamp, "2026-01-01T00:00:01Z");
  });

  await t.step("an expired Event is written anew", async () => {
    env.api.remove("events", "default", String(events()[0]?.metadata.name));
    await clock.advance(1000);
    assert.equal(await reporter.report(VIP, [EMPTY]), 1);
    assert.deepEqual(events().map((e) => e.count), [3]);
  });

  await t.step("gone, then back: said at once", async () => {
    assert.equal(await reporter.report(VIP, []), 0);
    assert.equal(await reporter.report(VIP, [EMPTY]), 1);
    assert.equal(logs.messages("warning").length, 4);
  });
});

Deno.test("a failed Event write is logged at debug level and does not fail the report", opts, async () => {
  await using logs = await LogCapture.start();
  await using env = await startWatchEnv();
  env.api.failNext(1, 500, { match: (r) => r.path.includes("/events") });
  const failures: boolean[] = [];
  const reporter = new WarningReporter({ transport: env.transport, onEvent: (ok) => failures.push(ok) });
  assert.equal(await reporter.report(VIP, [EMPTY]), 1);
  assert.deepEqual(failures, [false]);
  assert.equal(env.api.list("events").length, 0);
  assert.ok(logs.messages("debug").some((m) => m.startsWith("Cannot record the EmptySource Event on default/vip:")));
});
