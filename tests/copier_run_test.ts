import assert from "node:assert/strict";
import { ConfigError } from "../lib/errors.ts";
import { inClusterApiServer, runCopier } from "../lib/copier/run.ts";
import { endpointSlice } from "./support/fake_apiserver.ts";
import { copierConfig, CopierEnv, enabled, service } from "./support/copier_env.ts";
import { tempDir } from "./support/kube_client_fixtures.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };
const LOOPBACK_PORT_0 = { host: "127.0.0.1", port: 0 };

async function get(addr: Deno.NetAddr | undefined, path: string, method = "GET") {
  assert.ok(addr !== undefined, "the listener is on");
  const res = await fetch(`http://${addr.hostname}:${addr.port}${path}`, { method });
  return { status: res.status, type: res.headers.get("content-type") ?? "", body: await res.text() };
}

Deno.test("probes and metrics are served; /readyz waits for the caches", opts, async (t) => {
  await using env = await CopierEnv.start();
  env.api.upsert(endpointSlice("kubernetes", ["127.0.0.1"], 6443));
  env.api.upsert(service("vip", { annotations: enabled() }));
  // The first copier's user may not list Services yet: its caches cannot sync.
  env.api.rbac.set("copier-1", [{ verb: "*", resource: "endpointslices" }, { verb: "*", resource: "events" }]);
  const copier = await env.copier({
    healthProbeBindAddress: LOOPBACK_PORT_0,
    metricsBindAddress: LOOPBACK_PORT_0,
  });

  await t.step("/healthz answers at once, /readyz says why it is not ready", async () => {
    assert.deepEqual(await get(copier.probeAddress, "/healthz"), {
      status: 200,
      type: "text/plain; charset=utf-8",
      body: "ok\n",
    });
    await env.api.waitForRequest((r) => r.path.startsWith("/api/v1/services") && r.status === 403);
    const ready = await get(copier.probeAddress, "/readyz");
    assert.equal(ready.status, 503);
    assert.equal(ready.body, "the caches are not synced yet\n");
  });

  await t.step("once Services can be listed, it is ready and writes", async () => {
    env.api.rbac.delete("copier-1");
    await env.until(() => env.copies().get("vip-kubernetes"), "the copy");
    assert.equal((await get(copier.probeAddress, "/readyz")).status, 200);
  });

  await t.step("/metrics has the counters and gauges in Prometheus text", async () => {
    const m = await get(copier.metricsAddress, "/metrics");
    assert.equal(m.status, 200);
    assert.equal(m.type, "text/plain; version=0.0.4; charset=utf-8");
    for (
      const line of [
        "# TYPE extractedprism_copier_writes_total counter",
        'extractedprism_copier_writes_total{verb="apply",result="success"} 1',
        'extractedprism_copier_reconciles_total{result="success"} ',
        'extractedprism_copier_errors_total{kind="watch"} ',
        "extractedprism_copier_leader 1",
        "extractedprism_copier_targets 1",
        "extractedprism_copier_managed_slices 1",
        "extractedprism_copier_caches_synced 1",
        "# TYPE extractedprism_event_loop_stalls_total counter",
        "# TYPE extractedprism_event_loop_stalled_seconds_total counter",
      ]
    ) assert.ok(m.body.includes(line), `metrics include '${line}':\n${m.body}`);
  });

  await t.step("other paths and methods are refused", async () => {
    assert.equal((await get(copier.probeAddress, "/metrics")).status, 404);
    assert.equal((await get(copier.metricsAddress, "/readyz")).status, 404);
    assert.equal((await get(copier.probeAddress, "/readyz", "POST")).status, 405);
  });

  await t.step("stop closes both listeners", async () => {
    const probe = copier.probeAddress as Deno.NetAddr;
    await env.stop(copier);
    await copier.done;
    await assert.rejects(Deno.connect({ hostname: probe.hostname, port: probe.port }), Deno.errors.ConnectionRefused);
  });
});

Deno.test("without leader election's Lease namespace, the service-account namespace is used", opts, async () => {
  await using env = await CopierEnv.start();
  await using sa = await tempDir("copier_sa_");
  await Deno.writeTextFile(`${sa.path}/namespace`, "edge\n");
  const copier = await env.copier({ leaderElect: true, leaderElectionNamespace: undefined }, {
    serviceAccountDir: sa.path,
  });
  await env.until(() => copier.leading(), "leading");
  const lease = env.api.get("leases", "edge", "f668ae63.endpoint-copier-operator");
  assert.equal((lease?.spec as Record<string, unknown>).holderIdentity, copier.identity);
  await env.stop(copier);
  const released = env.api.get("leases", "edge", "f668ae63.endpoint-copier-operator");
  assert.equal((released?.spec as Record<string, unknown>).holderIdentity, "");
  assert.equal((released?.spec as Record<string, unknown>).leaseDurationSeconds, 1);
});

Deno.test("a kubeconfig connects the copier with the real transport", opts, async () => {
  await using env = await CopierEnv.start();
  await using dir = await tempDir("copier_kubeconfig_");
  env.api.tokens.add("kubeconfig-token");
  env.api.tokenUsers.set("kubeconfig-token", "kubeconfig-user");
  const kubeconfig = `${dir.path}/config`;
  await Deno.writeTextFile(
    kubeconfig,
    [
      "apiVersion: v1",
      "kind: Config",
      "clusters:",
      `- {name: c, cluster: {server: "${env.api.url}", certificate-authority: "${env.pki.ca.certPath}"}}`,
      "users:",
      "- {name: u, user: {token: kubeconfig-token}}",
      "contexts:",
      "- {name: x, context: {cluster: c, user: u}}",
      "current-context: x",
    ].join("\n"),
  );
  env.api.upsert(endpointSlice("kubernetes", ["127.0.0.1"], 6443));
  env.api.upsert(service("kubernetes-vip"));
  const copier = await runCopier(copierConfig({ kubeconfig }), {
    serviceAccountDir: dir.path,
    watch: { backoffBaseMs: 10, backoffMaxMs: 100 },
  });
  try {
    await env.until(() => env.copies().get("kubernetes-vip-kubernetes"), "the copy");
    const writes = env.api.requests.filter((r) => r.method === "PATCH");
    assert.deepEqual(writes.map((r) => r.user), ["kubeconfig-user"]);
  } finally {
    await copier.stop();
  }
});

Deno.test("in a pod, the copier dials KUBERNETES_SERVICE_HOST:PORT with the service account", opts, async () => {
  await using env = await CopierEnv.start();
  await using sa = await tempDir("copier_sa_");
  env.api.tokens.add("sa-token");
  env.api.tokenUsers.set("sa-token", "system:serviceaccount:edge:extractedprism-endpoint-copier");
  await Deno.writeTextFile(`${sa.path}/token`, "sa-token");
  await Deno.writeTextFile(`${sa.path}/ca.crt`, env.pki.ca.cert);
  await Deno.writeTextFile(`${sa.path}/namespace`, "edge");
  env.api.upsert(endpointSlice("kubernetes", ["127.0.0.1"], 6443));
  env.api.upsert(service("kubernetes-vip"));
  // The fake's certificate names 127.0.0.1, as an API server's names the kubernetes ClusterIP.
  const copier = await runCopier(copierConfig({ leaderElect: true, leaderElectionNamespace: undefined }), {
    serviceAccountDir: sa.path,
    apiServer: { host: "127.0.0.1", port: env.api.port },
    watch: { backoffBaseMs: 10, backoffMaxMs: 100 },
  });
  try {
    await env.until(() => env.copies().get("kubernetes-vip-kubernetes"), "the copy");
    const lease = env.api.get("leases", "edge", "f668ae63.endpoint-copier-operator");
    assert.equal((lease?.spec as Record<string, unknown>).holderIdentity, copier.identity);
    const users = new Set(env.api.requests.filter((r) => r.method !== "GET").map((r) => r.user));
    assert.deepEqual([...users], ["system:serviceaccount:edge:extractedprism-endpoint-copier"]);
  } finally {
    await copier.stop();
  }
});

Deno.test("with neither a kubeconfig nor an in-cluster API address the copier does not start", opts, async () => {
  await using dir = await tempDir("copier_none_");
  await assert.rejects(
    runCopier(copierConfig(), { serviceAccountDir: dir.path }),
    (e) =>
      e instanceof ConfigError &&
      e.message === "Cannot reach the Kubernetes API: expected --kubeconfig, or KUBERNETES_SERVICE_HOST in a pod",
  );
  await assert.rejects(
    runCopier(copierConfig(), { serviceAccountDir: dir.path, apiServer: { host: "127.0.0.1", port: 1 } }),
    (e) =>
      e instanceof ConfigError &&
      e.message === `Cannot reach the Kubernetes API: expected --kubeconfig or a service-account token in ${dir.path}`,
  );
});

Deno.test("a probe address already in use is a one-line error and nothing is left running", opts, async () => {
  await using env = await CopierEnv.start();
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = taken.addr.port;
  await assert.rejects(
    env.copier({ healthProbeBindAddress: { host: "127.0.0.1", port }, metricsBindAddress: LOOPBACK_PORT_0 }),
    new RegExp(`^Error: Cannot listen on '127.0.0.1:${port}' for the probes: `),
  );
});

Deno.test("the in-cluster address comes from KUBERNETES_SERVICE_HOST and _PORT", () => {
  assert.deepEqual(inClusterApiServer("10.43.0.1", "443"), { host: "10.43.0.1", port: 443 });
  assert.deepEqual(inClusterApiServer("fd00:10:96::1", undefined), { host: "fd00:10:96::1", port: 443 });
  assert.equal(inClusterApiServer(undefined, "443"), undefined);
  assert.throws(
    () => inClusterApiServer("10.43.0.1", "https"),
    (e) =>
      e instanceof ConfigError &&
      e.message === "Invalid KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT '10.43.0.1'/'https': Cannot parse " +
          "endpoint '10.43.0.1:https': port 'https' is not a number from 1 to 65535",
  );
});
