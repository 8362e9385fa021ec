import assert from "node:assert/strict";
import { ProxyApp } from "../lib/app.ts";
import { endpointKey } from "../lib/endpoint.ts";
import { startDiscovery } from "../lib/discovery/discovery.ts";
import { endpointSlice, startFakeApiServer } from "./support/fake_apiserver.ts";
import { EchoServer, randomBytes, readAll, testConfig, waitFor, writeAll } from "./support/net.ts";
import { createTestPki } from "./support/test_pki.ts";

async function roundTrip(port: number): Promise<void> {
  const payload = randomBytes(512);
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const [, got] = await Promise.all([writeAll(c, payload).then(() => c.closeWrite()), readAll(c)]);
    assert.deepEqual(got, payload);
  } finally {
    c.close();
  }
}

function kubeconfig(server: string, ca: string, token: string): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "c", cluster: { server, "certificate-authority-data": btoa(ca) } }],
    users: [{ name: "u", user: { token } }],
    contexts: [{ name: "ctx", context: { cluster: "c", user: "u" } }],
    "current-context": "ctx",
  });
}

Deno.test("end to end: discovery adds an API server only it knows, removes it again, and static endpoints keep serving", async () => {
  await using pki = await createTestPki();
  await using api = await startFakeApiServer({ pki, tokens: ["node-token"], bookmarkIntervalMs: 200 });
  await using staticUp = new EchoServer();
  await using discovered = new EchoServer(0, "127.0.0.2");
  api.upsert(endpointSlice("kubernetes", ["127.0.0.2"], discovered.port));
  const dir = await Deno.makeTempDir();
  try {
    const kc = `${dir}/kubeconfig`;
    await Deno.writeTextFile(kc, kubeconfig(api.url, pki.ca.cert, "node-token"));
    const config = testConfig([staticUp.endpoint], {
      enableDiscovery: true,
      kubeconfig: kc,
      stateFile: `${dir}/state.json`,
      // Choice by latency could keep every connection on one side when a probe RTT spikes under a loaded test run;
      // this test is about discovery, so connections alternate.
      upstreamSelection: "least-connections",
    });
    const discovery = startDiscovery(config, { endpoints: () => config.endpoints, serviceAccountDir: dir });
    try {
      await using app = ProxyApp.start(config);
      app.feed(discovery.providers);
      const discoveredKey = endpointKey(discovered.endpoint);
      await waitFor(() => app.pool.get(discoveredKey)?.state === "healthy", 10_000, "the discovered upstream");
      // Connections spread over both: the discovered one is used.
      for (let i = 0; i < 6; i++) await roundTrip(app.addr.port);
      assert.ok(
        (app.pool.get(discoveredKey)?.totalConnections ?? 0) > 0,
        "some connections reached the discovered one",
      );
      // The state file now holds the discovered set.
      await waitFor(async () => (await Deno.readTextFile(`${dir}/state.json`).catch(() => "")).includes("127.0.0.2"));
      // Removed from the cluster: no new connections go there, the static one keeps serving.
      const before = app.pool.get(discoveredKey)?.totalConnections ?? 0;
      const removedAt = performance.now();
      api.remove("endpointslices", "default", "kubernetes");
      api.upsert(endpointSlice("kubernetes", ["127.0.0.1"], staticUp.port));
      await waitFor(() => app.pool.get(discoveredKey) === undefined || app.pool.get(discoveredKey)?.draining === true);
      console.log(
        `FIGURE discovery: removal reached the pool ${(performance.now() - removedAt).toFixed(0)} ms after the event`,
      );
      for (let i = 0; i < 6; i++) await roundTrip(app.addr.port);
      assert.equal(
        app.pool.get(discoveredKey)?.totalConnections ?? before,
        before,
        "no new connection to the removed one",
      );
    } finally {
      await discovery.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Serves static endpoints with discovery set up from `kubeconfigText` (none when undefined), in a temp dir. */
async function servesStaticEndpoints(kubeconfigText: string | undefined): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    if (kubeconfigText !== undefined) await Deno.writeTextFile(`${dir}/kubeconfig`, kubeconfigText);
    await using up = new EchoServer();
    const config = testConfig([up.endpoint], {
      enableDiscovery: true,
      ...(kubeconfigText !== undefined ? { kubeconfig: `${dir}/kubeconfig` } : {}),
    });
    const discovery = startDiscovery(config, { endpoints: () => config.endpoints, serviceAccountDir: dir });
    await using app = ProxyApp.start(config);
    app.feed(discovery.providers);
    await waitFor(() => app.ready);
    await roundTrip(app.addr.port);
    await discovery.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("without a kubeconfig or service account, discovery is off and the proxy serves its static endpoints", () =>
  servesStaticEndpoints(undefined));

Deno.test("a broken kubeconfig does not stop the proxy: it serves static endpoints and retries discovery", () =>
  servesStaticEndpoints("clusters: [oops"));
