import assert from "node:assert/strict";
import type { Endpoint } from "../lib/endpoint.ts";
import { Pool, type PoolOptions } from "../lib/upstream/pool.ts";
import type { Closable } from "../lib/upstream/upstream.ts";
import { LogCapture } from "./support/log_capture.ts";
import { ManualClock } from "./support/manual_clock.ts";

const ep = (host: string, port = 6443): Endpoint => ({ host, port });

/** A pool on a manual clock that records which upstreams have checks running. */
function pool(opts: Partial<PoolOptions> = {}) {
  const clock = new ManualClock();
  const checks = new Map<string, AbortSignal>();
  const p = new Pool({
    rise: 2,
    fall: 2,
    drainTimeoutMs: 1000,
    clock,
    startChecks: (up, signal) => void checks.set(up.key, signal),
    ...opts,
  });
  return { pool: p, clock, checks };
}

class FakeConn implements Closable {
  closed = false;
  close(): void {
    this.closed = true;
  }
}

Deno.test("an empty endpoint set keeps the upstreams as they are: none drains, no check stops", () => {
  const { pool: p, checks } = pool();
  p.update([ep("127.0.0.1"), ep("127.0.0.2")]);
  p.update([]);
  assert.deepEqual(p.upstreams().map((u) => [u.key, u.draining]), [["127.0.0.1:6443", false], [
    "127.0.0.2:6443",
    false,
  ]]);
  assert.ok([...checks.values()].every((s) => !s.aborted), "every check still runs");
  p.close();
});

Deno.test("the spread close spares an upstream that recovered before its turn", async () => {
  const draws = [0.1, 0.9];
  const { pool: p, clock } = pool({ random: () => draws.shift() ?? 0, closeSpreadMs: 1000 });
  p.update([ep("127.0.0.1"), ep("127.0.0.2")]);
  const [a, b] = p.upstreams();
  assert.ok(a && b);
  for (const u of [a, b]) u.recordSuccess(1, 0);
  const early = new FakeConn();
  const late = new FakeConn();
  a.track(early);
  a.track(late);
  a.recordFailure("x");
  const change = a.recordFailure("x");
  assert.ok(change);
  p.stateChanged(change);
  await clock.advance(100);
  assert.equal(early.closed, true, "closed at its turn");
  assert.equal(late.closed, false);
  a.recordSuccess(1, clock.now());
  const back = a.recordSuccess(1, clock.now());
  assert.ok(back);
  p.stateChanged(back);
  await clock.advance(1000);
  assert.equal(late.closed, false, "spared: its upstream recovered before its turn");
  p.close();
});

Deno.test("beyond --max-upstreams the pool keeps pinned endpoints first, then the others by address, whatever the order", async () => {
  await using logs = await LogCapture.start();
  const { pool: p } = pool({ maxUpstreams: 3, pinned: [ep("127.0.0.9"), ep("127.0.0.8")] });
  const set = [ep("127.0.0.5"), ep("127.0.0.9"), ep("127.0.0.3"), ep("127.0.0.4"), ep("127.0.0.8")];
  p.update(set);
  const kept = () => p.upstreams().filter((u) => !u.draining).map((u) => u.key).sort();
  assert.deepEqual(kept(), ["127.0.0.3:6443", "127.0.0.8:6443", "127.0.0.9:6443"]);
  assert.equal(p.dropped, 2);
  p.update([...set].reverse());
  assert.deepEqual(kept(), ["127.0.0.3:6443", "127.0.0.8:6443", "127.0.0.9:6443"], "the same subset");
  p.update([...set, ep("127.0.0.1")]);
  assert.deepEqual(kept(), ["127.0.0.1:6443", "127.0.0.8:6443", "127.0.0.9:6443"]);
  assert.equal(p.dropped, 3);
  p.update(set.slice(0, 3));
  assert.equal(p.dropped, 0);
  const warnings = logs.messages("warning").filter((m) => m.includes("--max-upstreams"));
  assert.deepEqual(warnings.length, 2, "one warning per change of the dropped count");
  assert.equal(logs.messages("info").filter((m) => m.includes("fits --max-upstreams")).length, 1);
  p.close();
});

Deno.test("a first verdict of 'unhealthy' takes an upstream out but spares its connections; a proven one that falls is cut", async () => {
  const { pool: p, clock } = pool({ random: () => 0, closeSpreadMs: 1000 });
  p.update([ep("127.0.0.1"), ep("127.0.0.2"), ep("127.0.0.3")]);
  const [a, b, c] = p.upstreams();
  assert.ok(a && b && c);
  // a: connections opened while it was unknown (a new process routes before its first verdict), then its first probe
  // times out. b turns healthy afterwards, which would close every unhealthy upstream's connections.
  const early = new FakeConn();
  a.track(early);
  const first = a.recordFailure("readyz probe: timeout");
  assert.ok(first && first.from === "unknown" && first.to === "unhealthy");
  p.stateChanged(first);
  const bUp = b.recordSuccess(1, clock.now());
  assert.ok(bUp);
  p.stateChanged(bUp);
  await clock.advance(2000);
  assert.equal(early.closed, false, "a connection from before the first verdict stays");
  assert.equal(a.state, "unhealthy", "but the upstream is out of rotation");
  // c: proven healthy, then falls: its connections are cut, as ever.
  const cUp = c.recordSuccess(1, clock.now());
  assert.ok(cUp);
  p.stateChanged(cUp);
  const onC = new FakeConn();
  c.track(onC);
  c.recordFailure("x");
  const fell = c.recordFailure("x");
  assert.ok(fell && fell.from === "healthy");
  p.stateChanged(fell);
  await clock.advance(1000);
  assert.equal(onC.closed, true, "a proven upstream that falls has its connections closed");
  // a recovers, then falls like any proven upstream: now its connections go.
  a.recordSuccess(1, clock.now());
  const aUp = a.recordSuccess(1, clock.now());
  assert.ok(aUp);
  p.stateChanged(aUp);
  a.recordFailure("x");
  const aFell = a.recordFailure("x");
  assert.ok(aFell);
  p.stateChanged(aFell);
  await clock.advance(1000);
  assert.equal(early.closed, true);
  p.close();
});
