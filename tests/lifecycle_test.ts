import assert from "node:assert/strict";
import { ProxyApp } from "../lib/app.ts";
import { type Endpoint, endpointKey } from "../lib/endpoint.ts";
import type { Probe, ProbeResult } from "../lib/upstream/probe.ts";
import { createTestPki } from "./support/test_pki.ts";
import { EchoServer, testConfig, waitFor, writeAll } from "./support/net.ts";
import { withDeadline } from "./support/deadline.ts";
import { ManualClock } from "./support/manual_clock.ts";

/** A probe whose answer per endpoint the test sets. */
class SwitchProbe implements Probe {
  readonly name = "switch";
  readonly results = new Map<string, ProbeResult>();
  check(e: Endpoint): Promise<ProbeResult> {
    return Promise.resolve(this.results.get(endpointKey(e)) ?? { ok: true, rttMs: 1 });
  }
  set(e: Endpoint, r: ProbeResult): void {
    this.results.set(endpointKey(e), r);
  }
}

/** The close spread of `--close-on-unhealthy` (the pool's default). */
const SPREAD_MS = 1000;

/**
 * Opens a client connection through the proxy and proves it relays; `held` (declared after the app) closes it before
 * the app shuts down, also when the test fails half-way.
 */
async function openThrough(app: ProxyApp, held: DisposableStack): Promise<Deno.TcpConn> {
  const c = held.use(await Deno.connect({ hostname: "127.0.0.1", port: app.addr.port }));
  await writeAll(c, new TextEncoder().encode("x"));
  assert.equal(await withDeadline(c.read(new Uint8Array(1)), "a read"), 1);
  return c;
}

/** Proves `c` still relays: one byte there and back. */
async function stillRelays(c: Deno.TcpConn, why: string): Promise<void> {
  await writeAll(c, new TextEncoder().encode("y"));
  assert.equal(await withDeadline(c.read(new Uint8Array(1)), "a read"), 1, why);
}

/** Proves the proxy closed `c`. */
async function closed(c: Deno.TcpConn, why: string): Promise<void> {
  assert.equal(await withDeadline(c.read(new Uint8Array(1)), "the connection to close"), null, why);
}

Deno.test("connections of an upstream that turns unhealthy are closed within the spread; others stay", async () => {
  await using a = new EchoServer();
  await using b = new EchoServer();
  const probe = new SwitchProbe();
  probe.set(b.endpoint, { ok: false, reason: "not yet" });
  const clock = new ManualClock();
  await using app = ProxyApp.start(testConfig([a.endpoint, b.endpoint]), { probe, clock });
  await using _stopped = clock.stopsWith(() => app.shutdown(), "the app to stop");
  using held = new DisposableStack();
  const state = (e: Endpoint) => app.pool.get(endpointKey(e))?.state;
  await clock.advanceUntil(() => state(a.endpoint) === "healthy", "a healthy");
  const onA = await Promise.all([1, 2, 3].map(() => openThrough(app, held)));
  assert.equal(app.pool.get(endpointKey(a.endpoint))?.activeConnections, 3);
  probe.set(b.endpoint, { ok: true, rttMs: 1 });
  await clock.advanceUntil(() => state(b.endpoint) === "healthy", "b healthy");
  const onB = await openThrough(app, held);
  probe.set(a.endpoint, { ok: false, reason: "HTTP 500" });
  await clock.advanceUntil(() => state(a.endpoint) === "unhealthy", "a unhealthy");
  await clock.advance(SPREAD_MS);
  for (const c of onA) await closed(c, "the unhealthy upstream's connection is closed within the spread");
  await stillRelays(onB, "the healthy upstream's connection lives on");
  for (const c of [...onA, onB]) c.close();
});

Deno.test("connections are kept when every upstream looks unhealthy at once, and closed once one recovers", async () => {
  await using a = new EchoServer();
  await using b = new EchoServer();
  const probe = new SwitchProbe();
  probe.set(b.endpoint, { ok: false, reason: "down" });
  const clock = new ManualClock();
  await using app = ProxyApp.start(testConfig([a.endpoint, b.endpoint]), { probe, clock });
  await using _stopped = clock.stopsWith(() => app.shutdown(), "the app to stop");
  using held = new DisposableStack();
  const state = (e: Endpoint) => app.pool.get(endpointKey(e))?.state;
  await clock.advanceUntil(() => app.ready, "ready");
  const c = await openThrough(app, held);
  probe.set(a.endpoint, { ok: false, reason: "probe hiccup" });
  await clock.advanceUntil(() => state(a.endpoint) === "unhealthy", "a unhealthy");
  await clock.advance(2 * SPREAD_MS); // well past the close spread: nothing may close it
  await stillRelays(c, "kept while no upstream is healthy");
  probe.set(b.endpoint, { ok: true, rttMs: 1 });
  await clock.advanceUntil(() => state(b.endpoint) === "healthy", "b healthy");
  await clock.advance(SPREAD_MS);
  await closed(c, "closed within the spread once another upstream is healthy");
  c.close();
});

Deno.test("--close-on-unhealthy=false leaves connections alone", async () => {
  await using a = new EchoServer();
  await using b = new EchoServer();
  const probe = new SwitchProbe();
  const clock = new ManualClock();
  await using app = ProxyApp.start(testConfig([a.endpoint, b.endpoint], { closeOnUnhealthy: false }), {
    probe,
    clock,
  });
  await using _stopped = clock.stopsWith(() => app.shutdown(), "the app to stop");
  using held = new DisposableStack();
  await clock.advanceUntil(() => app.pool.upstreams().every((u) => u.state === "healthy"), "healthy");
  const conns = await Promise.all([1, 2].map(() => openThrough(app, held)));
  probe.set(a.endpoint, { ok: false, reason: "x" });
  probe.set(b.endpoint, { ok: true, rttMs: 1 });
  await clock.advanceUntil(() => app.pool.get(endpointKey(a.endpoint))?.state === "unhealthy", "a unhealthy");
  await clock.advance(2 * SPREAD_MS); // well past the close spread: nothing may close them
  for (const c of conns) {
    await stillRelays(c, "left alone");
    c.close();
  }
});

Deno.test("a removed upstream that turns unhealthy is closed at once", async () => {
  await using a = new EchoServer();
  await using b = new EchoServer();
  const probe = new SwitchProbe();
  const clock = new ManualClock();
  await using app = ProxyApp.start(testConfig([a.endpoint], { drainTimeoutMs: 30_000 }), { probe, clock });
  await using _stopped = clock.stopsWith(() => app.shutdown(), "the app to stop");
  using held = new DisposableStack();
  await clock.advanceUntil(() => app.ready, "ready");
  const c = await openThrough(app, held);
  app.pool.update([b.endpoint]);
  const upA = app.pool.get(endpointKey(a.endpoint)); // the pool forgets it once its last connection is closed
  assert.equal(upA?.draining, true);
  probe.set(a.endpoint, { ok: false, reason: "gone" });
  await clock.advanceUntil(() => upA?.state === "unhealthy", "a unhealthy");
  const detected = clock.now();
  await closed(c, "closed at once, not at the drain deadline");
  assert.equal(clock.now(), detected, "no clock time passed between the state change and the close");
  c.close();
});
Deno.test("latency choice sends new connections to the fastest tier", async () => {
  await using fast = new EchoServer();
  await using slow = new EchoServer();
  const probe = new SwitchProbe();
  probe.set(fast.endpoint, { ok: true, rttMs: 1 });
  probe.set(slow.endpoint, { ok: true, rttMs: 100 });
  await using app = ProxyApp.start(testConfig([slow.endpoint, fast.endpoint]), { probe });
  using held = new DisposableStack();
  await waitFor(() => app.pool.upstreams().every((u) => u.state === "healthy"), 5000, "healthy");
  const conns = await Promise.all(Array.from({ length: 10 }, () => openThrough(app, held)));
  assert.equal(app.pool.get(endpointKey(fast.endpoint))?.activeConnections, 10);
  assert.equal(app.pool.get(endpointKey(slow.endpoint))?.snapshot().tier, 1);
  for (const c of conns) c.close();
});

Deno.test("least-connections spreads connections over every healthy upstream", async () => {
  await using fast = new EchoServer();
  await using slow = new EchoServer();
  const probe = new SwitchProbe();
  probe.set(fast.endpoint, { ok: true, rttMs: 1 });
  probe.set(slow.endpoint, { ok: true, rttMs: 100 });
  await using app = ProxyApp.start(
    testConfig([slow.endpoint, fast.endpoint], { upstreamSelection: "least-connections" }),
    { probe },
  );
  using held = new DisposableStack();
  await waitFor(() => app.pool.upstreams().every((u) => u.state === "healthy"), 5000, "healthy");
  const conns: Deno.TcpConn[] = [];
  for (let i = 0; i < 10; i++) conns.push(await openThrough(app, held));
  assert.deepEqual(app.pool.upstreams().map((u) => u.activeConnections), [5, 5]);
  for (const c of conns) c.close();
});

Deno.test("a TLS client reaches a TLS server through the proxy with the certificate verified end to end", async () => {
  await using pki = await createTestPki();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: pki.serverIp.cert,
    key: pki.serverIp.key,
    onListen: () => {},
  }, (req) => new Response(`hello ${new URL(req.url).pathname}`));
  try {
    await using app = ProxyApp.start(testConfig([{ host: "127.0.0.1", port: server.addr.port }]));
    await waitFor(() => app.ready, 5000, "ready");
    const good = Deno.createHttpClient({ caCerts: [pki.ca.cert] });
    const wrong = Deno.createHttpClient({ caCerts: [pki.otherCa.cert] });
    try {
      for (let i = 0; i < 5; i++) {
        const res = await fetch(`https://127.0.0.1:${app.addr.port}/r${i}`, { client: good });
        assert.equal(await res.text(), `hello /r${i}`);
      }
      // The proxy does not terminate TLS: a client that trusts another CA refuses the server's certificate.
      await assert.rejects(fetch(`https://127.0.0.1:${app.addr.port}/`, { client: wrong }));
    } finally {
      good.close();
      wrong.close();
    }
  } finally {
    await server.shutdown();
  }
});
