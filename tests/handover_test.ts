/**
 * The hand-over of an upgrade, in one process: a second instance started with the very same ports shares them
 * (`SO_REUSEPORT`), and when the first stops, its health port goes first, then its proxy port, while its live
 * connections drain. The same with two real processes and a client loop is in the fault suite (`upgrade` steps).
 */
import assert from "node:assert/strict";
import { ProxyApp } from "../lib/app.ts";
import { AcceptLoop } from "../lib/net/accept_loop.ts";
import { healthGet } from "../lib/net/health_get.ts";
import { HttpServer } from "../lib/net/http_server.ts";
import { jsonAnswer } from "../lib/net/http_responses.ts";
import { listenShared } from "../lib/net/listen_shared.ts";
import { runStatus } from "../lib/status/status_command.ts";
import { WAIT_MS, withDeadline } from "./support/deadline.ts";
import { LogCapture } from "./support/log_capture.ts";
import { EchoServer, freePort, testConfig, waitFor, writeAll } from "./support/net.ts";

async function readyz(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`, {
    headers: { connection: "close" },
    signal: AbortSignal.timeout(WAIT_MS),
  });
  return `${res.status} ${(await res.text()).trim()}`;
}

/** One connection through the port: a byte there and back. */
async function relayOnce(port: number): Promise<void> {
  using c = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(c, new Uint8Array([7]));
  const buf = new Uint8Array(1);
  assert.equal(await withDeadline(c.read(buf), "the echo"), 1);
}

Deno.test("a second instance on the same ports shares them, and takes over when the first stops", async () => {
  await using logs = await LogCapture.start();
  await using echo = new EchoServer();
  const config = testConfig([echo.endpoint], {
    bindPort: freePort(),
    healthPort: freePort(),
    drainTimeoutMs: 10_000,
    logLevel: "info",
  });
  const fast = { handoverPollMs: 50 };
  const first = ProxyApp.start(config, fast);
  let firstStopped: Promise<void> | undefined;
  try {
    await waitFor(() => first.ready, 5000, "the first instance ready");
    // A live connection on the first instance, opened before the second exists, so it is the first's.
    const held = await Deno.connect({ hostname: "127.0.0.1", port: config.bindPort });
    let open = true;
    const release = () => {
      if (open) held.close();
      open = false;
    };
    try {
      await writeAll(held, new Uint8Array([1]));
      assert.equal(await withDeadline(held.read(new Uint8Array(1)), "the held echo"), 1);
      await using second = ProxyApp.start(config, fast);
      const said = (text: string) => logs.messages("info").some((m) => m.includes(text));
      assert.ok(said(`Sharing 127.0.0.1:${config.healthPort} with another instance`), "the health port is shared");
      assert.ok(said(`Another instance listens on 127.0.0.1:${config.bindPort}: joining it once an upstream`));
      await waitFor(() => second.ready, 5000, "the second instance ready");
      // The second joins the proxy port once it can serve; the first leaves the health port to the second.
      await waitFor(() => said(`Joined 127.0.0.1:${config.bindPort} beside the instance there`), 5000, "the join");
      await waitFor(() => said("A newer instance answers on the health port"), 5000, "the first to step back");
      firstStopped = first.shutdown("SIGTERM");
      await logs.waitFor((r) => String(r.message[0]).startsWith("Listeners closed; draining"));
      assert.equal(first.proxy.active, 1, "the held connection drains on the first instance");
      // While the first drains, every probe and every new connection reaches the second: the first's health port
      // closed before anything else, and its proxy port right after.
      for (let i = 0; i < 20; i++) assert.equal(await readyz(config.healthPort), "200 ok", `probe ${i}`);
      for (let i = 0; i < 20; i++) await relayOnce(config.bindPort);
      assert.equal(first.proxy.active, 1, "no new connection reached the draining instance");
      // The live connection is drained, not cut.
      await writeAll(held, new Uint8Array([2]));
      assert.equal(await withDeadline(held.read(new Uint8Array(1)), "the held echo while draining"), 1);
      release();
      await withDeadline(firstStopped, "the first instance to stop once its connection closed");
      assert.equal(await readyz(config.healthPort), "200 ok", "the second instance serves on alone");
      await relayOnce(config.bindPort);
      await waitFor(() => !second.instanceRequests.watching, 5000, "the second instance alone to stop looking");
    } finally {
      release();
    }
  } finally {
    await first.shutdown();
  }
});

Deno.test("a port held by a socket that does not share it is still 'address in use'", () => {
  using plain = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  assert.throws(() => listenShared("127.0.0.1", plain.addr.port), Deno.errors.AddrInUse);
  const config = testConfig([{ host: "127.0.0.1", port: 1 }], { bindPort: plain.addr.port });
  assert.throws(() => ProxyApp.start(config), /Cannot listen on 127\.0\.0\.1:\d+ \(--bind-address\/--bind-port\)/);
});

Deno.test("readyz says 'shutting down' to a probe that arrives during the stop", async () => {
  await using echo = new EchoServer();
  const app = ProxyApp.start(testConfig([echo.endpoint], { drainTimeoutMs: 10_000 }));
  await waitFor(() => app.ready, 5000, "ready");
  // A keep-alive connection opened before the stop still gets its answers; a new one would find the port closed.
  using c = await Deno.connect({ hostname: "127.0.0.1", port: app.healthAddr.port });
  using held = await Deno.connect({ hostname: "127.0.0.1", port: app.addr.port });
  await writeAll(held, new Uint8Array([1]));
  await withDeadline(held.read(new Uint8Array(1)), "the held echo");
  const stopped = app.shutdown();
  await waitFor(() => !app.ready, 5000, "the stop to begin");
  await writeAll(c, new TextEncoder().encode("GET /readyz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"));
  const buf = new Uint8Array(512);
  let text = "";
  for (let n; (n = await withDeadline(c.read(buf), "the answer")) !== null;) {
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
  assert.match(text, /^HTTP\/1\.1 503 /);
  assert.match(text, /shutting down\n$/);
  held.close();
  await withDeadline(stopped, "the stop");
});

Deno.test("the liveness self-check holds on a port shared with another instance, whose listener gets half the connections", async () => {
  const a = Deno.listen({ hostname: "127.0.0.1", port: 0, reusePort: true });
  const b = Deno.listen({ hostname: "127.0.0.1", port: a.addr.port, reusePort: true });
  const relayedByA: Deno.TcpConn[] = [];
  const relayedByB: Deno.TcpConn[] = [];
  const loopA = new AcceptLoop(a, (c) => relayedByA.push(c));
  const loopB = new AcceptLoop(b, (c) => relayedByB.push(c));
  const running = [loopA.run(), loopB.run()];
  try {
    let passed = 0;
    for (let i = 0; i < 20; i++) if (await loopA.selfCheck(1000)) passed++;
    // One connection per check would land on A about 10 times in 20 (15 or more: 2 % of runs); four per check fail
    // together once in 16 checks.
    assert.ok(passed >= 15, `${passed} of 20 self-checks passed`);
    assert.equal(relayedByA.length, 0, "A relays none of its own check's connections, even late ones");
  } finally {
    loopA.stop();
    loopB.stop();
    await Promise.all(running);
    for (const c of [...relayedByA, ...relayedByB]) c.close();
  }
});

Deno.test("a second instance that cannot serve takes no connection and answers the health port itself", async () => {
  await using logs = await LogCapture.start();
  await using echo = new EchoServer();
  const config = testConfig([echo.endpoint], {
    bindPort: freePort(),
    healthPort: freePort(),
    logLevel: "info",
  });
  const fast = { handoverPollMs: 50 };
  await using first = ProxyApp.start(config, fast);
  await waitFor(() => first.ready, 5000, "the first instance ready");
  // A broken new version: its probes never pass.
  const failing = { name: "failing", check: () => Promise.resolve({ ok: false as const, reason: "broken" }) };
  const second = ProxyApp.start(config, { ...fast, probe: failing });
  try {
    await logs.waitFor((r) => String(r.message[0]).startsWith("A newer instance answers on the health port"));
    // kubelet's probes now reach the second alone: it is not ready, whatever the first says of itself.
    for (let i = 0; i < 10; i++) assert.equal(await readyz(config.healthPort), "503 no healthy upstream", `probe ${i}`);
    // Every client still goes to the first: the second has not joined the proxy port.
    const before = first.pool.upstreams()[0]?.totalConnections ?? 0;
    for (let i = 0; i < 20; i++) await relayOnce(config.bindPort);
    assert.equal((first.pool.upstreams()[0]?.totalConnections ?? 0) - before, 20, "all 20 relayed by the first");
    assert.equal(second.proxy.active + (second.pool.upstreams()[0]?.totalConnections ?? 0), 0);
  } finally {
    await second.shutdown();
  }
  // The second gone, the first answers its health port again.
  await logs.waitFor((r) => String(r.message[0]).startsWith("No instance answers on the health port"));
  assert.equal(await readyz(config.healthPort), "200 ok");
  assert.equal(first.instanceRequests.watching, false, "alone again, the first stops looking");
});

/** The hand-over's interval in these tests, and the requests of one round (`lib/net/health_watch.ts`). */
const POLL_MS = 50;
const LOOKS = 3;

/** Resolves after `ms`: the window in which something must not happen (an absence has no event to wait for). */
function observe(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

Deno.test("an instance alone on its health port sends no request there", async () => {
  await using echo = new EchoServer();
  const config = testConfig([echo.endpoint], { bindPort: freePort(), healthPort: freePort() });
  await using app = ProxyApp.start(config, { handoverPollMs: POLL_MS });
  await waitFor(() => app.ready, 5000, "ready");
  // Six intervals, in which a watch that polls sends 18 requests.
  await observe(6 * POLL_MS);
  assert.deepEqual(app.instanceRequests, { asked: 0, answered: 0, watching: false });
  // `extractedprism status` asks other routes: it wakes nothing.
  const status = await runStatus({ host: "127.0.0.1", port: config.healthPort, timeoutMs: WAIT_MS, output: "table" });
  assert.equal(status.code, 0, status.stderr);
  assert.deepEqual(app.instanceRequests, { asked: 0, answered: 0, watching: false }, "after a status command");
});

Deno.test("a flood of /instance requests from a client costs a lone instance one round per interval at most, and never its port", async () => {
  await using logs = await LogCapture.start();
  await using echo = new EchoServer();
  const config = testConfig([echo.endpoint], { bindPort: freePort(), healthPort: freePort(), logLevel: "info" });
  await using app = ProxyApp.start(config, { handoverPollMs: POLL_MS });
  await waitFor(() => app.ready, 5000, "ready");
  const where = { host: "127.0.0.1", port: config.healthPort };
  // Four clients for twelve intervals, at most 500 requests each.
  const started = performance.now();
  let flood = 0;
  await Promise.all(Array.from({ length: 4 }, async () => {
    for (let i = 0; i < 500 && performance.now() - started < 12 * POLL_MS; i++) {
      const answer = await healthGet(where, "/instance", AbortSignal.timeout(WAIT_MS));
      assert.equal(answer.status, 200);
      flood++;
    }
  }));
  const elapsed = performance.now() - started;
  const { asked } = app.instanceRequests;
  const bound = LOOKS * (Math.floor(elapsed / POLL_MS) + 1);
  assert.ok(asked > 0, "the flood woke the watch");
  assert.ok(asked <= bound, `${asked} requests of its own in ${Math.round(elapsed)} ms (at most ${bound})`);
  assert.ok(flood > asked, `${flood} requests of the flood`);
  assert.ok(app.ready, "still ready");
  assert.equal(await readyz(config.healthPort), "200 ok", "still answering its health port");
  assert.ok(!logs.messages("info").some((m) => m.startsWith("A newer instance")), "no leave");
  // The flood over, a few rounds that find only itself quiet the watch again.
  await waitFor(() => !app.instanceRequests.watching, 5000, "the watch to go quiet");
  const quiet = app.instanceRequests.asked;
  await observe(4 * POLL_MS);
  assert.equal(app.instanceRequests.asked, quiet, "no request once quiet");
});

Deno.test("a quiet instance leaves its health port to a newer peer that looks all the time, as older versions do", async () => {
  await using logs = await LogCapture.start();
  await using echo = new EchoServer();
  const config = testConfig([echo.endpoint], { bindPort: freePort(), healthPort: freePort(), logLevel: "info" });
  await using app = ProxyApp.start(config, { handoverPollMs: POLL_MS });
  await waitFor(() => app.ready, 5000, "ready");
  assert.equal(app.instanceRequests.watching, false, "alone, the instance does not look");
  // The peer: shares the health port, says it is newer, answers every probe itself, and looks every interval.
  const bound = listenShared("127.0.0.1", config.healthPort);
  assert.ok(bound.shared, "the peer shares the port");
  const peerId = { instance: "peer", startedAt: Date.now() + 60_000 };
  const peer = new HttpServer(
    { hostname: "127.0.0.1", port: config.healthPort, listener: bound.listener },
    (req) => req.path === "/instance" ? jsonAnswer(peerId) : { status: 200, body: "peer\n" },
  );
  const stop = new AbortController();
  const where = { host: "127.0.0.1", port: config.healthPort };
  const looking = (async () => {
    for (let round = 0; round < 200 && !stop.signal.aborted; round++) {
      for (let i = 0; i < LOOKS; i++) await healthGet(where, "/instance", AbortSignal.timeout(WAIT_MS)).catch(() => {});
      await observe(POLL_MS);
    }
  })();
  try {
    await logs.waitFor((r) => String(r.message[0]).startsWith("A newer instance answers on the health port"));
    assert.ok(app.instanceRequests.answered > 0, "woken by the peer's requests");
    for (let i = 0; i < 10; i++) {
      const answer = await healthGet(where, "/readyz", AbortSignal.timeout(WAIT_MS));
      assert.equal(answer.body, "peer\n", `probe ${i} reaches the peer alone`);
    }
  } finally {
    stop.abort();
    await looking;
    await peer.shutdown();
  }
  // The peer gone, the instance answers again, and stops looking.
  await logs.waitFor((r) => String(r.message[0]).startsWith("No instance answers on the health port"));
  assert.equal(await readyz(config.healthPort), "200 ok");
  assert.equal(app.instanceRequests.watching, false, "alone again, quiet again");
});
