/**
 * Where the readyz probe finds its CA: `--health-ca-file`, else the cluster CA of `--kubeconfig`
 * (`certificate-authority-data` or the `certificate-authority` file), else the service-account CA, else none (one
 * warning, no verification). Each source is proved by a probe against an HTTPS server whose certificate names only
 * `kubernetes*`, and by an unrelated CA failing it.
 */
import assert from "node:assert/strict";
import { ProxyApp } from "../lib/app.ts";
import { readKubeconfigCa } from "../lib/discovery/kubeconfig_ca.ts";
import type { Endpoint } from "../lib/endpoint.ts";
import { buildProbe, type CaSources } from "../lib/upstream/build_probe.ts";
import type { Probe, ProbeResult } from "../lib/upstream/probe.ts";
import { withDeadline } from "./support/deadline.ts";
import { LogCapture } from "./support/log_capture.ts";
import { testConfig, waitFor } from "./support/net.ts";
import { createTestPki, type TestPki } from "./support/test_pki.ts";

/** An HTTPS `/readyz` that answers 200 with the PKI's `kubernetes*`-only server certificate. */
function readyzServer(pki: TestPki): { endpoint: Endpoint } & AsyncDisposable {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert: pki.serverDns.cert, key: pki.serverDns.key, onListen: () => {} },
    () => new Response("ok"),
  );
  return { endpoint: { host: "127.0.0.1", port: server.addr.port }, [Symbol.asyncDispose]: () => server.shutdown() };
}

/** A kubeconfig whose cluster names `ca` as `certificate-authority-data`, as a `certificate-authority` file, or not. */
async function kubeconfig(dir: string, name: string, ca: { data: string } | { file: string } | undefined) {
  const field = ca === undefined
    ? ""
    : "data" in ca
    ? `, certificate-authority-data: ${btoa(ca.data)}`
    : `, certificate-authority: ${ca.file}`;
  const path = `${dir}/${name}.kubeconfig`;
  await Deno.writeTextFile(
    path,
    `clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"${field}}}]
users: [{name: u, user: {}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`,
  );
  return path;
}

/** The probe as the program builds it; prepared as the check loop does, then one check. */
async function probeOnce(
  endpoint: Endpoint,
  sources: CaSources,
  healthCaFile?: string,
): Promise<{ probe: Probe; result: ProbeResult }> {
  const probe = buildProbe(testConfig([], { healthCheck: "readyz", healthCaFile }), sources);
  await withDeadline(probe.prepare?.() ?? Promise.resolve(), "the probe's preparation");
  const result = await withDeadline(probe.check(endpoint, AbortSignal.timeout(5000)), "the probe");
  probe.release?.(endpoint);
  return { probe, result };
}

const NO_SERVICE_ACCOUNT = "/nonexistent/extractedprism/serviceaccount/ca.crt";

Deno.test("the readyz probe's CA sources, in order", async (t) => {
  await using pki = await createTestPki();
  await using server = readyzServer(pki);
  const dir = pki.dir;
  const notVerifying = (logs: LogCapture) =>
    logs.messages("warning").filter((m) => m.includes("readyz probes do not verify"));

  await t.step("the kubeconfig's certificate-authority-data", async () => {
    await using logs = await LogCapture.start();
    const path = await kubeconfig(dir, "data", { data: pki.ca.cert });
    const { result } = await probeOnce(server.endpoint, {
      kubeconfigCa: () => readKubeconfigCa(path),
      serviceAccountCa: NO_SERVICE_ACCOUNT,
    });
    assert.deepEqual(result.ok, true, JSON.stringify(result));
    assert.ok(
      logs.messages("info").some((m) => m.includes(`with the certificate-authority-data of kubeconfig '${path}'`)),
      logs.messages("info").join("\n"),
    );
    assert.deepEqual(notVerifying(logs), []);
  });

  await t.step("the kubeconfig's certificate-authority file, relative to the kubeconfig", async () => {
    const path = await kubeconfig(dir, "file", { file: "ca.crt" });
    const { result } = await probeOnce(server.endpoint, {
      kubeconfigCa: () => readKubeconfigCa(path),
      serviceAccountCa: NO_SERVICE_ACCOUNT,
    });
    assert.equal(result.ok, true, JSON.stringify(result));
  });

  await t.step("an unrelated CA in the kubeconfig fails the probe", async () => {
    const path = await kubeconfig(dir, "other", { data: pki.otherCa.cert });
    const { result } = await probeOnce(server.endpoint, {
      kubeconfigCa: () => readKubeconfigCa(path),
      serviceAccountCa: pki.ca.certPath,
    });
    assert.equal(result.ok, false);
    if (!result.ok) assert.match(result.reason, /certificate|issuer/i);
  });

  await t.step("--health-ca-file wins over the kubeconfig", async () => {
    const path = await kubeconfig(dir, "other", { data: pki.otherCa.cert });
    const { result } = await probeOnce(
      server.endpoint,
      { kubeconfigCa: () => readKubeconfigCa(path) },
      pki.ca.certPath,
    );
    assert.equal(result.ok, true, JSON.stringify(result));
  });

  await t.step("an unusable kubeconfig falls back to the service-account CA", async () => {
    await using logs = await LogCapture.start();
    const path = `${dir}/missing.kubeconfig`;
    const { result } = await probeOnce(server.endpoint, {
      kubeconfigCa: () => readKubeconfigCa(path),
      serviceAccountCa: pki.ca.certPath,
    });
    assert.equal(result.ok, true, JSON.stringify(result));
    const info = logs.messages("info");
    assert.ok(info.some((m) => m.includes(`Cannot read kubeconfig '${path}'`)), info.join("\n"));
    assert.ok(info.some((m) => m.includes("with the service-account CA")), info.join("\n"));
    assert.deepEqual(notVerifying(logs), []);
  });

  await t.step("a kubeconfig without a CA and no service account: no verification, said once", async () => {
    await using logs = await LogCapture.start();
    const path = await kubeconfig(dir, "none", undefined);
    const { result } = await probeOnce(server.endpoint, {
      kubeconfigCa: () => readKubeconfigCa(path),
      serviceAccountCa: NO_SERVICE_ACCOUNT,
    });
    assert.equal(result.ok, true, "the probe does not verify");
    assert.equal(notVerifying(logs).length, 1);
  });

  await t.step("a source that never answers is passed over, and the probe does not wait past its timeout", async () => {
    await using logs = await LogCapture.start();
    const probe = buildProbe(testConfig([], { healthCheck: "readyz" }), {
      kubeconfigCa: () => new Promise(() => {}),
      kubeconfigCaWaitMs: 300,
      serviceAccountCa: pki.ca.certPath,
    });
    const r = await withDeadline(probe.check(server.endpoint, AbortSignal.timeout(100)), "the probe");
    assert.deepEqual(r, { ok: false, reason: "timeout" });
    await withDeadline(probe.prepare?.() ?? Promise.resolve(), "the probe's preparation");
    assert.ok(logs.messages("info").some((m) => m.includes("not read within 300 ms")));
    const again = await withDeadline(probe.check(server.endpoint, AbortSignal.timeout(5000)), "the probe");
    assert.equal(again.ok, true, "verified with the service-account CA");
    probe.release?.(server.endpoint);
  });
});

Deno.test("the program's readyz probe verifies with the cluster CA of discovery's --kubeconfig", async (t) => {
  await using pki = await createTestPki();
  await using server = readyzServer(pki);
  const run = async (ca: string, want: "healthy" | "unhealthy") => {
    const path = await kubeconfig(pki.dir, `app-${want}`, { data: ca });
    // The kubeconfig of discovery (main.ts starts discovery itself; the app only reads the CA).
    await using app = ProxyApp.start(testConfig([server.endpoint], {
      healthCheck: "readyz",
      healthIntervalMs: 500,
      healthTimeoutMs: 400,
      enableDiscovery: true,
      kubeconfig: path,
    }));
    await waitFor(() => app.pool.upstreams()[0]?.state === want, 10_000, `the upstream ${want}`);
    return app.pool.upstreams()[0]?.lastError;
  };
  await t.step("the cluster CA: healthy", async () => {
    await run(pki.ca.cert, "healthy");
  });
  await t.step("an unrelated CA: unhealthy, with the certificate error", async () => {
    assert.match(await run(pki.otherCa.cert, "unhealthy") ?? "", /certificate|issuer/i);
  });
  await t.step("with discovery off the kubeconfig is not read: no CA, no verification", async () => {
    const path = await kubeconfig(pki.dir, "app-off", { data: pki.otherCa.cert });
    await using app = ProxyApp.start(testConfig([server.endpoint], {
      healthCheck: "readyz",
      healthIntervalMs: 500,
      healthTimeoutMs: 400,
      enableDiscovery: false,
      kubeconfig: path,
    }));
    await waitFor(() => app.pool.upstreams()[0]?.state === "healthy", 10_000, "the upstream healthy");
  });
});
