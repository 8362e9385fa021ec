import assert from "node:assert/strict";
import type { Endpoint } from "../lib/endpoint.ts";
import { PROBE_GRACE_MS, ProbeSlots, runChecks } from "../lib/upstream/checker.ts";
import type { Probe, ProbeResult } from "../lib/upstream/probe.ts";
import { type StateChange, Upstream } from "../lib/upstream/upstream.ts";
import { ManualClock } from "./support/manual_clock.ts";

/**
 * A probe that answers `answer` at once, or, while `answer` is undefined, hangs until the test settles the call by
 * hand, ignoring its signal for good (a probe bug).
 */
class HandProbe implements Probe {
  readonly name = "hand";
  answer: ProbeResult | undefined;
  readonly calls: { endpoint: Endpoint; settle: (r: ProbeResult) => void }[] = [];
  check(endpoint: Endpoint): Promise<ProbeResult> {
    return new Promise((resolve) => {
      this.calls.push({ endpoint, settle: resolve });
      if (this.answer !== undefined) resolve(this.answer);
    });
  }
}

const OK: ProbeResult = { ok: true, rttMs: 1 };

const INTERVAL = 1000;
const TIMEOUT = 500;

function start(probe: Probe, clock: ManualClock, slots?: ProbeSlots, port = 1) {
  const up = new Upstream({ host: "127.0.0.1", port }, { rise: 2, fall: 2 });
  const changes: StateChange[] = [];
  const stop = new AbortController();
  const done = runChecks(up, {
    probe,
    intervalMs: INTERVAL,
    timeoutMs: TIMEOUT,
    clock,
    random: () => 0.5,
    ...(slots ? { slots } : {}),
    onChange: (c) => changes.push(c),
  }, stop.signal);
  return { up, changes, stop: () => (stop.abort(), done) };
}

Deno.test("a probe that never settles still takes its upstream out on schedule, without piling up probes", async () => {
  const clock = new ManualClock();
  const probe = new HandProbe();
  probe.answer = OK;
  const c = start(probe, clock);
  await clock.advance(0);
  assert.equal(c.up.state, "healthy");
  probe.answer = undefined;

  await clock.advance(INTERVAL);
  assert.equal(probe.calls.length, 2, "the second probe starts; it will never settle by itself");
  await clock.advance(TIMEOUT + PROBE_GRACE_MS);
  assert.equal(c.up.consecutiveFailures, 1, "counted as failed at its deadline");
  assert.match(c.up.lastError ?? "", /timeout/);
  assert.equal(c.up.state, "healthy");
  await clock.advance(INTERVAL);
  assert.equal(c.up.state, "unhealthy", "out after --health-fall intervals");
  assert.equal(probe.calls.length, 2, "no new probe while the stuck one is pending");
  await clock.advance(3 * INTERVAL);
  assert.equal(probe.calls.length, 2);
  assert.equal(c.up.consecutiveFailures, 5);

  probe.answer = OK;
  probe.calls[1]?.settle(OK);
  await clock.advance(2 * INTERVAL);
  assert.equal(probe.calls.length, 4, "probes again once the stuck one ended");
  assert.equal(c.up.state, "healthy");
  assert.deepEqual(c.changes.map((x) => x.to), ["healthy", "unhealthy", "healthy"]);
  await c.stop();
});

Deno.test("a probe that throws instead of returning counts as a failure, and the loop goes on", async () => {
  const clock = new ManualClock();
  let n = 0;
  const probe: Probe = {
    name: "throwing",
    check: () => {
      n++;
      throw new Error("bug");
    },
  };
  const c = start(probe, clock);
  await clock.advance(INTERVAL * 2);
  assert.equal(n, 3);
  assert.equal(c.up.state, "unhealthy");
  assert.equal(c.up.lastError, "throwing probe: bug");
  await c.stop();
});

Deno.test("probe slots bound the probes in flight across upstreams, and a stuck probe frees its slot at its deadline", async () => {
  const clock = new ManualClock();
  const probe = new HandProbe();
  const slots = new ProbeSlots(2);
  const loops = [1, 2, 3, 4, 5].map((port) => start(probe, clock, slots, port));
  await clock.advance(0);
  assert.equal(probe.calls.length, 2, "two in flight, three waiting");
  assert.equal(slots.waiting, 3);
  probe.calls[0]?.settle({ ok: true, rttMs: 1 });
  await clock.advance(0);
  assert.equal(probe.calls.length, 3);
  // Nobody settles the others: each frees its slot at its deadline.
  await clock.advance(TIMEOUT + PROBE_GRACE_MS);
  assert.equal(probe.calls.length, 5);
  assert.ok(slots.inFlight <= 2);
  await clock.advance(TIMEOUT + PROBE_GRACE_MS);
  assert.equal(slots.waiting, 0);
  for (const l of loops) await l.stop();
  assert.equal(slots.inFlight, 0, "stopping frees the slots, even of probes that never settle");
  for (const call of probe.calls) call.settle({ ok: false, reason: "done" });
});

Deno.test("probe slots refuse a bad limit and drop a waiter whose signal aborts", async () => {
  assert.throws(() => new ProbeSlots(0), /Cannot limit probes to '0': expected a whole number from 1/);
  const slots = new ProbeSlots(1);
  const release = await slots.acquire();
  const ctrl = new AbortController();
  const waiting = slots.acquire(ctrl.signal);
  ctrl.abort(new Error("stop"));
  await assert.rejects(waiting, /stop/);
  assert.equal(slots.waiting, 0);
  release();
  release();
  assert.equal(slots.inFlight, 0, "a release counts once");
});

Deno.test("the check loop waits for the probe's preparation outside the probe timeout", async () => {
  const clock = new ManualClock();
  const prepared = Promise.withResolvers<void>();
  let prepares = 0;
  // As the readyz probe does: a check that comes first waits for the preparation itself, within its own timeout.
  const probe: Probe = {
    name: "late",
    prepare: () => (prepares++, prepared.promise),
    check: async (_e, signal) => {
      await new Promise<void>((resolve, reject) => {
        signal.addEventListener("abort", () => reject(signal.reason), { once: true });
        prepared.promise.then(resolve);
      });
      return OK;
    },
  };
  const a = start(probe, clock, undefined, 1);
  const b = start(probe, clock, undefined, 2);
  await clock.advance(TIMEOUT + PROBE_GRACE_MS + INTERVAL);
  assert.equal(a.up.state, "unknown", "no probe result while the preparation runs");
  assert.equal(b.up.consecutiveFailures, 0);
  prepared.resolve();
  await clock.advance(0);
  assert.equal(a.up.state, "healthy");
  assert.equal(b.up.state, "healthy");
  assert.equal(prepares, 2, "each loop waited for it");
  await a.stop();
  await b.stop();
});
