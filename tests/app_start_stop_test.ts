/**
 * Start and stop of the assembled proxy under failure: a port that cannot be bound leaves nothing running, and a stop
 * is bounded whatever discovery does.
 */
import assert from "node:assert/strict";
import { ProxyApp, QUIET_AFTER_MS } from "../lib/app.ts";
import type { Endpoint } from "../lib/endpoint.ts";
import type { EndpointProvider } from "../lib/discovery/provider.ts";
import type { Probe } from "../lib/upstream/probe.ts";
import { LogCapture } from "./support/log_capture.ts";
import { ManualProvider } from "./support/manual_provider.ts";
import { EchoServer, testConfig, waitFor } from "./support/net.ts";
import { withDeadline } from "./support/deadline.ts";

/** A probe that counts its calls and always succeeds. */
function countingProbe(): Probe & { calls: number } {
  const p = {
    name: "counting",
    calls: 0,
    check: () => {
      p.calls++;
      return Promise.resolve({ ok: true as const, rttMs: 1 });
    },
  };
  return p;
}

Deno.test("a health port already in use: start throws one line, no probe ever ran, nothing is left open", () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const probe = countingProbe();
  assert.throws(
    () => ProxyApp.start(testConfig([{ host: "127.0.0.1", port: 1 }], { healthPort: taken.addr.port }), { probe }),
    (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.match(
        e.message,
        new RegExp(`^Cannot listen on 127\\.0\\.0\\.1:${taken.addr.port} \\(--health-bind-address/--health-port\\): `),
      );
      assert.doesNotMatch(e.message, /\n/);
      return true;
    },
  );
  assert.equal(probe.calls, 0, "no probe ran");
  // The proxy port is free again: the listener that was bound first was closed.
  // (The resource and op sanitizers prove that no listener, timer or probe is left.)
});

Deno.test("a proxy port already in use: start throws, no probe ever ran, nothing is left open", () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const probe = countingProbe();
  assert.throws(
    () => ProxyApp.start(testConfig([{ host: "127.0.0.1", port: 1 }], { bindPort: taken.addr.port }), { probe }),
    /^Error: Cannot listen on 127\.0\.0\.1:\d+ \(--bind-address\/--bind-port\)/,
  );
  assert.equal(probe.calls, 0, "no probe ran");
});

Deno.test("a stop is bounded when a provider ignores its abort signal", async () => {
  await using echo = new EchoServer();
  const release = Promise.withResolvers<void>();
  let started = false;
  const deaf: EndpointProvider = {
    name: "deaf",
    async *run() {
      started = true;
      yield [echo.endpoint];
      // Ignores the signal and return(): stuck on something that never answers (until the test releases it).
      await release.promise;
    },
  };
  const app = ProxyApp.start(testConfig([echo.endpoint], { drainTimeoutMs: 100 }));
  app.feed([deaf]);
  try {
    await waitFor(() => started, 5000, "the provider to start");
    // 100 ms of drain plus the 1 s feed bound; the deadline is generous for a loaded machine, and on a stop that
    // waits for the provider it is never met.
    await withDeadline(app.shutdown("test"), "the stop", 10_000);
  } finally {
    release.resolve();
    await app.shutdown();
  }
});

Deno.test("a discovered endpoint that is the proxy's own listener is skipped with one warning; the others are used", async () => {
  await using cap = await LogCapture.start();
  await using echo = new EchoServer();
  const provider = new ManualProvider("discovery");
  const probe = countingProbe();
  await using app = ProxyApp.start(testConfig([echo.endpoint]), { probe });
  app.feed([provider]);
  const self: Endpoint = { host: "127.0.0.1", port: app.addr.port };
  const other: Endpoint = { host: "127.0.0.2", port: echo.endpoint.port };
  for (let i = 0; i < 3; i++) {
    provider.push(i === 1 ? [self, other] : [self, other, { host: "127.0.0.3", port: echo.endpoint.port }]);
    await waitFor(() => provider.delivered > i, 5000, `update ${i} to be taken`);
  }
  await waitFor(() => app.pool.get("127.0.0.3:" + echo.endpoint.port) !== undefined, 5000, "the last update");
  assert.ok(app.pool.get(`127.0.0.2:${echo.endpoint.port}`), "the other discovered endpoint is used");
  assert.equal(app.pool.get(`127.0.0.1:${app.addr.port}`), undefined, "the own listener is not an upstream");
  const warnings = cap.messages("warning").filter((m) => m.includes("own listener"));
  assert.equal(warnings.length, 1, warnings.join("\n"));
  assert.match(warnings[0] as string, new RegExp(`127\\.0\\.0\\.1:${app.addr.port}`));
});

Deno.test("providers come after start: the app knows its endpoints before any feed, takes one feed, ends it", async () => {
  await using echo = new EchoServer();
  const probe = countingProbe();
  const provider = new ManualProvider("discovery");
  const app = ProxyApp.start(testConfig([echo.endpoint]), { probe });
  try {
    // What discovery is handed before it exists: the static endpoints, without a holder for the app.
    assert.deepEqual(app.knownEndpoints(), [echo.endpoint]);
    app.feed([provider]);
    assert.throws(() => app.feed([provider]), /The endpoint feed is already running/);
    await waitFor(() => provider.started === 1, 5000, "the provider to start");
  } finally {
    await withDeadline(app.shutdown(), "the stop", 10_000);
  }
  assert.equal(provider.stopped, 1, "the stop ended the fed provider's run");
});

/** A probe that records when it was prepared and when it first checked, in ms since `t0`. */
function preparingProbe(t0: number): Probe & { preparedAt?: number; firstCheckAt?: number } {
  const p: Probe & { preparedAt?: number; firstCheckAt?: number } = {
    name: "preparing",
    prepare: () => {
      p.preparedAt ??= performance.now() - t0;
      return Promise.resolve();
    },
    check: () => {
      p.firstCheckAt ??= performance.now() - t0;
      return Promise.resolve({ ok: true as const, rttMs: 1 });
    },
  };
  return p;
}

Deno.test("a probe's one-time preparation (TLS, the kubeconfig's CA) waits for the quiet moment; clients do not", async () => {
  await using echo = new EchoServer();
  const t0 = performance.now();
  const probe = preparingProbe(t0);
  await using app = ProxyApp.start(testConfig([echo.endpoint]), { probe });
  // A client is relayed meanwhile, to the upstream that is still unknown.
  using conn = await Deno.connect({ hostname: "127.0.0.1", port: app.addr.port });
  await conn.write(new Uint8Array([42]));
  const byte = new Uint8Array(1);
  assert.equal(await withDeadline(conn.read(byte), "the echo"), 1);
  assert.equal(probe.preparedAt, undefined, "not prepared while the first client was relayed");
  await withDeadline(app.quiet(), "the quiet moment");
  await waitFor(() => probe.firstCheckAt !== undefined, 5000, "the first check");
  assert.ok((probe.preparedAt ?? 0) >= QUIET_AFTER_MS - 1, `prepared at ${probe.preparedAt} ms`);
  assert.ok((probe.firstCheckAt ?? 0) >= (probe.preparedAt ?? Infinity), "the first check came after it");
});

Deno.test("a probe without preparation (TCP) checks at once, before the quiet moment", async () => {
  await using echo = new EchoServer();
  let quiet = false;
  let quietAtFirstCheck: boolean | undefined;
  const probe: Probe = {
    name: "tcp-like",
    check: () => {
      quietAtFirstCheck ??= quiet;
      return Promise.resolve({ ok: true as const, rttMs: 1 });
    },
  };
  await using app = ProxyApp.start(testConfig([echo.endpoint]), { probe });
  const quieted = app.quiet().then(() => (quiet = true));
  await waitFor(() => quietAtFirstCheck !== undefined, 5000, "the first check");
  assert.equal(quietAtFirstCheck, false);
  await withDeadline(quieted, "the quiet moment");
});

Deno.test("a stop before the quiet moment: the probe is never prepared, and nothing is left running", async () => {
  await using echo = new EchoServer();
  const probe = preparingProbe(performance.now());
  const app = ProxyApp.start(testConfig([echo.endpoint]), { probe });
  // The stop cancels the quiet moment's timer (the op sanitizer fails the test on a timer left behind), and it never
  // resolves after that: by the time the stop has drained, a preparation it let through would have run.
  await withDeadline(app.shutdown("test"), "the stop", 10_000);
  assert.equal(probe.preparedAt, undefined);
  assert.equal(probe.firstCheckAt, undefined);
});
