/**
 * A frozen API server (SIGSTOP: TCP handshakes still complete from the backlog, nothing answers TLS) must fail every
 * readyz probe within its timeout, in every TLS path and at every stage, leave rotation within --health-fall intervals,
 * have its relayed connections closed, and come back after SIGCONT.
 */
import assert from "node:assert/strict";
import { ProxyApp } from "../lib/app.ts";
import { systemClock } from "../lib/clock.ts";
import { endpointKey } from "../lib/endpoint.ts";
import { runChecks } from "../lib/upstream/checker.ts";
import { ReadyzProbe, type ReadyzProbeOptions } from "../lib/upstream/probe_readyz.ts";
import { Upstream } from "../lib/upstream/upstream.ts";
import { startFrozenServer } from "./support/frozen_server.ts";
import { testConfig, waitFor } from "./support/net.ts";
import { createTestPki, type TestPki } from "./support/test_pki.ts";

/** Fails with `what` unless `p` settles within `ms`. */
async function within<T>(ms: number, p: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const PATHS: readonly { name: string; opts: (pki: TestPki) => ReadyzProbeOptions }[] = [
  { name: "Deno TLS with a CA", opts: (pki) => ({ ca: pki.ca.cert }) },
  { name: "node:tls without a CA", opts: () => ({}) },
  {
    name: "node:tls with a client certificate",
    opts: (pki) => ({ ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key }),
  },
];

const PROBE_TIMEOUT_MS = 200;
/** Far above the probe timeout: only a probe that ignores its timeout runs into it. */
const HANG_MS = 5_000;

Deno.test("a readyz probe of a frozen server times out in every TLS path and stage, and succeeds after SIGCONT", async (t) => {
  await using pki = await createTestPki();
  for (const path of PATHS) {
    await t.step(path.name, async () => {
      await using server = await startFrozenServer(pki);
      const probe = new ReadyzProbe(path.opts(pki));
      try {
        const first = await within(HANG_MS, probe.check(server.endpoint, AbortSignal.timeout(HANG_MS)), "first probe");
        assert.equal(first.ok, true, JSON.stringify(first));
        server.freeze();
        // The kept-alive connection: the request is written, the read never returns.
        const onKept = await within(
          HANG_MS,
          probe.check(server.endpoint, AbortSignal.timeout(PROBE_TIMEOUT_MS)),
          "probe on the kept-alive connection",
        );
        assert.deepEqual(onKept, { ok: false, reason: "timeout" });
        // A new connection: TCP completes from the backlog, the TLS handshake never does.
        const onNew = await within(
          HANG_MS,
          probe.check(server.endpoint, AbortSignal.timeout(PROBE_TIMEOUT_MS)),
          "probe on a new connection",
        );
        assert.deepEqual(onNew, { ok: false, reason: "timeout" });
        server.thaw();
        const back = await within(HANG_MS, probe.check(server.endpoint, AbortSignal.timeout(HANG_MS)), "after SIGCONT");
        assert.equal(back.ok, true, JSON.stringify(back));
      } finally {
        probe.release(server.endpoint);
        server.thaw();
      }
    });
  }
});

Deno.test("the check loop takes a frozen upstream out and back in, in every TLS path", async (t) => {
  await using pki = await createTestPki();
  for (const path of PATHS) {
    await t.step(path.name, async () => {
      await using server = await startFrozenServer(pki);
      server.freeze();
      const up = new Upstream(server.endpoint, { rise: 2, fall: 2 });
      const stop = new AbortController();
      const probe = new ReadyzProbe(path.opts(pki));
      const checks = runChecks(up, {
        probe,
        intervalMs: 300,
        timeoutMs: PROBE_TIMEOUT_MS,
        clock: systemClock,
        random: () => 0.5,
        onChange: () => {},
      }, stop.signal);
      try {
        await waitFor(() => up.state !== "unknown", HANG_MS);
        assert.equal(up.state, "unhealthy", "frozen before the first probe: unhealthy, never unknown forever");
        assert.match(up.lastError ?? "", /timeout/);
        server.thaw();
        await waitFor(() => up.state === "healthy", HANG_MS);
        server.freeze();
        await waitFor(() => up.state === "unhealthy", HANG_MS);
        assert.equal(up.consecutiveFailures, 2, "out after --health-fall failed probes");
        server.thaw();
        await waitFor(() => up.state === "healthy", HANG_MS);
      } finally {
        server.thaw();
        stop.abort();
        await within(HANG_MS, checks, "the check loop stops");
      }
    });
  }
});

Deno.test("the proxy closes a frozen upstream's relayed connections while another is healthy, and takes it back", async () => {
  await using pki = await createTestPki();
  await using a = await startFrozenServer(pki);
  await using b = await startFrozenServer(pki);
  await using app = ProxyApp.start(
    testConfig([a.endpoint, b.endpoint], {
      healthCheck: "readyz",
      healthCaFile: pki.ca.certPath,
      healthIntervalMs: 300,
      healthTimeoutMs: PROBE_TIMEOUT_MS,
      upstreamSelection: "round-robin",
    }),
  );
  const upA = () => app.pool.get(endpointKey(a.endpoint));
  const upB = () => app.pool.get(endpointKey(b.endpoint));
  await waitFor(() => upA()?.state === "healthy" && upB()?.state === "healthy", HANG_MS, "both healthy");
  const clients: Deno.TlsConn[] = [];
  try {
    // TLS end to end through the proxy, one connection on each upstream (round-robin).
    for (let i = 0; i < 2; i++) {
      const tcp = await Deno.connect({ hostname: "127.0.0.1", port: app.addr.port });
      const tls = await Deno.startTls(tcp, { hostname: "kubernetes.default.svc", caCerts: [pki.ca.cert] });
      clients.push(tls);
      await within(HANG_MS, tls.handshake(), "TLS through the proxy");
    }
    assert.equal(upA()?.activeConnections, 1);
    assert.equal(upB()?.activeConnections, 1);
    a.freeze();
    await waitFor(() => upA()?.state === "unhealthy", HANG_MS, "the frozen upstream unhealthy");
    assert.match(upA()?.lastError ?? "", /timeout/);
    await waitFor(() => upA()?.activeConnections === 0, HANG_MS, "its relayed connection closed");
    const ended = await within(
      HANG_MS,
      Promise.race(clients.map((c, i) => c.read(new Uint8Array(1)).then(() => i, () => i))),
      "a client sees its connection end",
    );
    assert.equal(upB()?.activeConnections, 1, "the healthy upstream's connection lives on");
    assert.equal(app.ready, true);
    clients.splice(ended, 1)[0]?.close();
    a.thaw();
    await waitFor(() => upA()?.state === "healthy", HANG_MS, "healthy again after SIGCONT");
  } finally {
    a.thaw();
    for (const c of clients) c.close();
  }
});
