import assert from "node:assert/strict";
import { orderCandidates } from "../lib/upstream/choose.ts";
import { Upstream } from "../lib/upstream/upstream.ts";

const make = (i: number, rise = 2, fall = 2) => new Upstream({ host: `127.0.0.${i}`, port: 6443 }, { rise, fall });

Deno.test("an upstream starts unknown and its first probe decides", () => {
  const a = make(1);
  assert.equal(a.state, "unknown");
  assert.equal(a.recordSuccess(1, 10)?.to, "healthy");
  const b = make(2);
  assert.equal(b.recordFailure("refused")?.to, "unhealthy");
});

Deno.test("state changes need rise or fall consecutive results (hysteresis)", () => {
  const a = make(1, 3, 2);
  a.recordSuccess(1, 0);
  assert.equal(a.recordFailure("x"), undefined, "one failure does not flip a healthy upstream");
  assert.equal(a.recordSuccess(1, 1), undefined);
  assert.equal(a.recordFailure("x"), undefined);
  const down = a.recordFailure("timeout");
  assert.equal(down?.to, "unhealthy");
  assert.equal(down?.reason, "2 consecutive failures, last: timeout");
  assert.equal(a.recordSuccess(1, 2), undefined);
  assert.equal(a.recordSuccess(1, 3), undefined);
  assert.equal(a.recordSuccess(1, 4)?.to, "healthy");
  assert.equal(a.reason, "3 consecutive probes succeeded");
});

Deno.test("a flapping upstream changes state at most once per threshold run", () => {
  const a = make(1, 2, 2);
  let changes = 0;
  for (let i = 0; i < 100; i++) {
    if ((i % 2 === 0 ? a.recordSuccess(1, i) : a.recordFailure("flap")) !== undefined) changes++;
  }
  assert.equal(changes, 1, "only the first probe changed the state");
});

Deno.test("choice prefers healthy upstreams with the fewest connections, ties round-robin", () => {
  const [a, b, c] = [make(1), make(2), make(3)];
  for (const u of [a, b, c]) u.recordSuccess(1, 0);
  const firsts = [0, 1, 2, 3, 4, 5].map((t) => orderCandidates([a, b, c], t)[0]?.key);
  assert.deepEqual(firsts, [
    "127.0.0.1:6443",
    "127.0.0.2:6443",
    "127.0.0.3:6443",
    "127.0.0.1:6443",
    "127.0.0.2:6443",
    "127.0.0.3:6443",
  ]);
  a.track({ close() {} });
  c.track({ close() {} });
  assert.equal(orderCandidates([a, b, c], 0)[0], b);
});

Deno.test("unhealthy and unknown upstreams come last, most recent success first; draining ones never", () => {
  const [a, b, c, d] = [make(1), make(2), make(3), make(4)];
  a.recordSuccess(1, 5);
  a.recordFailure("x");
  a.recordFailure("x"); // unhealthy, last success at 5
  b.recordSuccess(1, 9);
  b.recordFailure("x");
  b.recordFailure("x"); // unhealthy, last success at 9
  c.recordSuccess(1, 1); // healthy
  d.recordSuccess(1, 1);
  d.draining = true;
  assert.deepEqual(orderCandidates([a, b, c, d], 0).map((u) => u.key), [
    "127.0.0.3:6443",
    "127.0.0.2:6443",
    "127.0.0.1:6443",
  ]);
});

Deno.test("stateSince is the wall-clock time the current state began, kept while the state holds", () => {
  let wall = Date.UTC(2026, 0, 1, 0, 0, 0);
  const u = new Upstream({ host: "127.0.0.9", port: 6443 }, { rise: 2, fall: 2, wallClock: () => wall });
  assert.equal(u.snapshot().stateSince, "2026-01-01T00:00:00.000Z", "unknown since creation");
  wall += 5000;
  u.recordSuccess(1, 0);
  assert.equal(u.snapshot().stateSince, "2026-01-01T00:00:05.000Z", "healthy since the first probe");
  wall += 5000;
  u.recordSuccess(1, 1);
  u.recordFailure("refused");
  assert.equal(u.snapshot().stateSince, "2026-01-01T00:00:05.000Z", "no change of state, no new time");
  wall += 60_000;
  u.recordFailure("refused");
  assert.equal(u.snapshot().stateSince, "2026-01-01T00:01:10.000Z", "unhealthy since the second failure");
});
