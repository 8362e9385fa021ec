/**
 * Scenarios against the v1 API server (k8s.io/apiserver's generic server from sid's libraries, serving
 * discovery.k8s.io/v1): discovery through a real watch, and slices changed by server-side apply.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type ControlPlane, V1_PORT } from "./control_plane.ts";
import { API_ADDRESSES, API_PORT, ETCD_ADDRESS } from "./net.ts";
import { ProxyRun } from "./proxy.ts";
import { ALL_ENDPOINTS, e2eReport } from "./scenarios_clients.ts";

const SLICE_PATH = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes";

/** Applies `default/kubernetes`'s slice listing `addresses` with server-side apply, as field manager `e2e`. */
async function applySlice(plane: ControlPlane, addresses: readonly string[]): Promise<void> {
  const slice = {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name: "kubernetes", namespace: "default", labels: { "kubernetes.io/service-name": "kubernetes" } },
    addressType: "IPv4",
    endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready: true } })),
    ports: [{ name: "https", port: API_PORT, protocol: "TCP" }],
  };
  const r = await plane.get({
    host: ETCD_ADDRESS,
    port: V1_PORT,
    method: "PATCH",
    path: `${SLICE_PATH}?fieldManager=e2e&force=true`,
    contentType: "application/apply-patch+yaml",
    body: JSON.stringify(slice),
  });
  if (r.status !== 200 && r.status !== 201) throw new Error(`Cannot apply the slice: HTTP ${r.status}: ${r.body}`);
  const stored = JSON.parse(r.body) as { metadata?: { managedFields?: { manager?: string; operation?: string }[] } };
  assert(
    stored.metadata?.managedFields?.some((f) => f.manager === "e2e" && f.operation === "Apply"),
    "the real structured-merge-diff recorded the apply",
  );
}

/**
 * One static endpoint and a kubeconfig for the v1 API server: discovery lists and watches the real
 * discovery.k8s.io/v1 slice; an endpoint added by server-side apply joins the pool, one removed leaves it.
 */
export async function discoveryAgainstV1(plane: ControlPlane): Promise<void> {
  await plane.startV1Server();
  const [a1, a2, a3] = API_ADDRESSES as [string, string, string];
  await applySlice(plane, [a1, a2]);
  const kubeconfig = await plane.pki.kubeconfig("v1", `https://${ETCD_ADDRESS}:${V1_PORT}`);
  await using proxy = await ProxyRun.start(plane, {
    endpoints: [ALL_ENDPOINTS[0] ?? ""],
    expectHealthy: 2,
    extraFlags: ["--enable-discovery=true", `--kubeconfig=${kubeconfig}`, `--health-ca-file=${plane.pki.caPath}`],
  });
  const key = (a: string) => `${a}:${API_PORT}`;
  let t0 = Date.now();
  await applySlice(plane, [a1, a2, a3]);
  const added = await proxy.waitUpstreams((ups) => ups.some((u) => u.address === key(a3)), 10_000, `${a3} added`);
  const addMs = added.at - t0;
  await proxy.waitState(key(a3), "healthy", 10_000);
  t0 = Date.now();
  // a1 is the static endpoint, which stays whatever discovery says: remove a discovered one.
  await applySlice(plane, [a1, a3]);
  const removed = await proxy.waitUpstreams(
    (ups) => !ups.some((u) => u.address === key(a2) && !u.draining),
    10_000,
    `${a2} removed`,
  );
  const removeMs = removed.at - t0;
  e2eReport(
    "v1 discovery: slice change by server-side apply routed",
    `added in ${addMs} ms, removed in ${removeMs} ms`,
  );
  assert(addMs <= 1000, `an added endpoint joins within 1 s: took ${addMs} ms`);
  assert(removeMs <= 1000, `a removed endpoint leaves within 1 s: took ${removeMs} ms`);
}

/**
 * The v1 API server is killed while discovery watches it, etcd moves on (writes through a kube-apiserver on the same
 * etcd), and a fresh v1 server starts: the watch from the old resourceVersion is answered 410 by the new watch cache,
 * discovery relists, and a later slice change is routed as before.
 */
export async function v1WatchGone(plane: ControlPlane): Promise<void> {
  if (plane.v1Server === undefined || plane.v1Server.status !== undefined) await plane.startV1Server();
  const [a1, a2, a3] = API_ADDRESSES as [string, string, string];
  await applySlice(plane, [a1, a2]);
  const kubeconfig = await plane.pki.kubeconfig("v1-gone", `https://${ETCD_ADDRESS}:${V1_PORT}`);
  await using proxy = await ProxyRun.start(plane, {
    endpoints: [ALL_ENDPOINTS[0] ?? ""],
    expectHealthy: 2,
    extraFlags: ["--enable-discovery=true", `--kubeconfig=${kubeconfig}`, `--health-ca-file=${plane.pki.caPath}`],
  });
  const v1 = plane.v1Server;
  assert(v1 !== undefined);
  v1.kill("SIGKILL");
  await v1.stop(5000);
  for (let i = 0; i < 5; i++) {
    const r = await plane.get({
      host: a1,
      port: API_PORT,
      method: "POST",
      path: "/api/v1/namespaces/default/configmaps",
      contentType: "application/json",
      body: JSON.stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { generateName: "e2e-rv-" } }),
    });
    assert.equal(r.status, 201, `a write through ${a1} moves etcd on: ${r.body.slice(0, 200)}`);
  }
  const mark = proxy.process.stderrLines.length;
  await plane.startV1Server();
  await proxy.process.waitFor(
    () => proxy.process.stderrLines.slice(mark).some((l) => l.includes("Relisting") && l.includes("410")),
    30_000,
    "a relist after 410 Gone",
  );
  const t0 = Date.now();
  await applySlice(plane, [a1, a2, a3]);
  const added = await proxy.waitUpstreams((ups) => ups.some((u) => u.address === `${a3}:${API_PORT}`), 10_000, "a3");
  e2eReport("v1 discovery after 410 Gone and a relist: slice change routed", `in ${added.at - t0} ms`);
  assert(added.at - t0 <= 1000, `routed within 1 s after the relist: took ${added.at - t0} ms`);
}
