import assert from "node:assert/strict";
import { ReadyzProbe } from "../lib/upstream/probe_readyz.ts";
import { createTestPki, TEST_NODE_USER, type TestPki } from "./support/test_pki.ts";
import { startFakeApiServer } from "./support/fake_apiserver.ts";
import { withDeadline } from "./support/deadline.ts";

type Mode = { status: number; body?: string; hang?: boolean; close?: boolean };

/** An HTTPS /readyz server whose answer the test switches; records each request's client port and auth header. */
function readyzServer(pki: TestPki, cert: "serverDns" | "serverIp" = "serverDns") {
  const mode: { current: Mode } = { current: { status: 200, body: "ok" } };
  const seen: { port: number; auth: string | null }[] = [];
  const hanging: PromiseWithResolvers<void>[] = [];
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: pki[cert].cert,
    key: pki[cert].key,
    onListen: () => {},
  }, async (req, info) => {
    seen.push({ port: info.remoteAddr.port, auth: req.headers.get("authorization") });
    const m = mode.current;
    if (m.hang) {
      const h = Promise.withResolvers<void>();
      hanging.push(h);
      await h.promise;
    }
    return new Response(m.body ?? "", { status: m.status, headers: m.close ? { connection: "close" } : {} });
  });
  return {
    mode,
    seen,
    endpoint: { host: "127.0.0.1", port: server.addr.port },
    async close() {
      for (const h of hanging) h.resolve();
      await server.shutdown();
    },
  };
}

const timeout = (ms = 1000) => AbortSignal.timeout(ms);

Deno.test("the readyz probe", async (t) => {
  await using pki = await createTestPki();

  await t.step("200 is up, and the connection is kept alive between probes", async () => {
    const s = readyzServer(pki);
    const probe = new ReadyzProbe({ ca: pki.ca.cert });
    for (let i = 0; i < 3; i++) {
      const r = await withDeadline(probe.check(s.endpoint, timeout()), "the probe");
      assert.equal(r.ok, true);
      if (r.ok) assert.ok(r.rttMs >= 0 && r.rttMs < 1000);
    }
    assert.equal(s.seen.length, 3);
    assert.equal(new Set(s.seen.map((x) => x.port)).size, 1, "one TLS connection for three probes");
    probe.release(s.endpoint);
    await s.close();
  });

  await t.step("a 500 with failed checks is down, and the reason names them", async () => {
    const s = readyzServer(pki);
    s.mode.current = { status: 500, body: "[+]ping ok\n[-]etcd failed: reason withheld\n[-]informer-sync failed\n" };
    const probe = new ReadyzProbe({ ca: pki.ca.cert });
    assert.deepEqual(await withDeadline(probe.check(s.endpoint, timeout()), "the probe"), {
      ok: false,
      reason: "HTTP 500 (etcd, informer-sync)",
    });
    s.mode.current = { status: 503, body: "shutting down" };
    assert.deepEqual(await withDeadline(probe.check(s.endpoint, timeout()), "the probe"), {
      ok: false,
      reason: "HTTP 503",
    });
    probe.release(s.endpoint);
    await s.close();
  });

  await t.step("401 and 403 count as up: the server speaks TLS but refuses anonymous readyz", async () => {
    const s = readyzServer(pki);
    const probe = new ReadyzProbe({ ca: pki.ca.cert });
    s.mode.current = { status: 401 };
    const r = await withDeadline(probe.check(s.endpoint, timeout()), "the probe");
    assert.equal(r.ok, true);
    if (r.ok) assert.equal(r.detail, "HTTP 401");
    s.mode.current = { status: 403 };
    assert.equal((await withDeadline(probe.check(s.endpoint, timeout()), "the probe")).ok, true);
    probe.release(s.endpoint);
    await s.close();
  });

  await t.step("a hanging readyz fails by the probe timeout", async () => {
    const s = readyzServer(pki);
    s.mode.current = { status: 200, hang: true };
    const probe = new ReadyzProbe({ ca: pki.ca.cert });
    const start = performance.now();
    assert.deepEqual(await withDeadline(probe.check(s.endpoint, timeout(150)), "the probe"), {
      ok: false,
      reason: "timeout",
    });
    // The 150 ms timeout ended it, not the hang (which only the 10 s deadline would end), on a loaded machine too.
    assert.ok(performance.now() - start < 5000);
    await s.close();
  });

  await t.step("the certificate is verified against the server name, not the dialled IP", async () => {
    const s = readyzServer(pki, "serverDns");
    const good = new ReadyzProbe({ ca: pki.ca.cert, serverName: "kubernetes.default.svc" });
    assert.equal((await good.check(s.endpoint, timeout())).ok, true);
    good.release(s.endpoint);
    const wrongName = new ReadyzProbe({ ca: pki.ca.cert, serverName: "other.example" });
    const r = await wrongName.check(s.endpoint, timeout());
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.reason, /altnames|does not match|not valid for name/i);
    const wrongCa = new ReadyzProbe({ ca: pki.otherCa.cert });
    const r2 = await wrongCa.check(s.endpoint, timeout());
    assert.equal(r2.ok, false);
    if (!r2.ok) assert.match(r2.reason, /verify|certificate/i);
    await s.close();
  });

  await t.step("without a CA the probe does not verify", async () => {
    const s = readyzServer(pki);
    const probe = new ReadyzProbe({ serverName: "anything.example" });
    assert.equal((await withDeadline(probe.check(s.endpoint, timeout()), "the probe")).ok, true);
    probe.release(s.endpoint);
    await s.close();
  });

  await t.step("a bearer token is sent when configured, and re-read for every probe", async () => {
    const s = readyzServer(pki);
    let n = 0;
    const probe = new ReadyzProbe({ ca: pki.ca.cert, token: () => Promise.resolve(`t${++n}`) });
    await withDeadline(probe.check(s.endpoint, timeout()), "the probe");
    await withDeadline(probe.check(s.endpoint, timeout()), "the probe");
    assert.deepEqual(s.seen.map((x) => x.auth), ["Bearer t1", "Bearer t2"]);
    probe.release(s.endpoint);
    await s.close();
  });

  await t.step("a refused port is down with the reason", async () => {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = l.addr.port;
    l.close();
    const r = await new ReadyzProbe().check({ host: "127.0.0.1", port }, timeout());
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.reason, /refused/i);
  });

  await t.step("a server that closes after each answer gets a new connection per probe", async () => {
    const s = readyzServer(pki);
    s.mode.current = { status: 200, body: "ok", close: true };
    const probe = new ReadyzProbe({ ca: pki.ca.cert });
    assert.equal((await withDeadline(probe.check(s.endpoint, timeout()), "the probe")).ok, true);
    assert.equal((await withDeadline(probe.check(s.endpoint, timeout()), "the probe")).ok, true);
    assert.equal(new Set(s.seen.map((x) => x.port)).size, 2);
    probe.release(s.endpoint);
    await s.close();
  });
  await t.step("a kept-alive connection the server dropped is replaced within the same probe", async () => {
    // A raw TLS server that answers once per connection with keep-alive headers, then closes without saying so.
    const listener = Deno.listenTls({
      hostname: "127.0.0.1",
      port: 0,
      cert: pki.serverDns.cert,
      key: pki.serverDns.key,
    });
    let connections = 0;
    const serving = (async () => {
      for await (const c of listener) {
        connections++;
        try {
          await c.read(new Uint8Array(4096));
          await c.write(new TextEncoder().encode("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
        } catch { /* client gone */ }
        c.close();
      }
    })();
    const endpoint = { host: "127.0.0.1", port: listener.addr.port };
    for (const ca of [pki.ca.cert, undefined]) {
      const probe = new ReadyzProbe(ca === undefined ? {} : { ca });
      const before = connections;
      for (let i = 0; i < 3; i++) {
        assert.equal((await withDeadline(probe.check(endpoint, timeout()), "the probe")).ok, true, `probe ${i}`);
      }
      assert.equal(connections - before, 3, "one fresh connection per probe, no failed probe");
      probe.release(endpoint);
    }
    listener.close();
    await serving;
  });
});

Deno.test("a readyz probe whose token source hangs still ends at its timeout", async () => {
  const probe = new ReadyzProbe({ token: () => new Promise(() => {}) });
  const r = await probe.check({ host: "127.0.0.1", port: 1 }, AbortSignal.timeout(100));
  assert.deepEqual(r, { ok: false, reason: "timeout" });
});

Deno.test("a client certificate is presented over Deno's TLS, verified as the server name at an IP", async () => {
  await using pki = await createTestPki();
  // The fake API server asks for a client certificate and names the user it identifies; /readyz needs credentials.
  await using api = await startFakeApiServer({ pki, serverCert: "dns", anonymousHealth: false });
  const endpoint = { host: "127.0.0.1", port: api.port };
  const withCert = new ReadyzProbe({ ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key });
  const without = new ReadyzProbe({ ca: pki.ca.cert });
  try {
    const ok = await withDeadline(withCert.check(endpoint, AbortSignal.timeout(5000)), "the probe");
    assert.ok(ok.ok && ok.detail === undefined, `200, not a tolerated 401: ${JSON.stringify(ok)}`);
    assert.deepEqual(api.requests.map((r) => [r.path, r.user, r.status]), [["/readyz", TEST_NODE_USER, 200]]);
    const anonymous = await withDeadline(without.check(endpoint, AbortSignal.timeout(5000)), "the probe");
    assert.ok(anonymous.ok && anonymous.detail === "HTTP 401", "the same server refuses the probe without it");
  } finally {
    withCert.release(endpoint);
    without.release(endpoint);
  }
});
