/**
 * The endpoint copier and the proxy's discovery against the v1 API server with its watch cache off, so that their
 * watches are etcd watches: after a real etcd compaction, a resumed watch is answered 410 and both relist.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type ControlPlane, V1_PORT } from "./control_plane.ts";
import { compactEtcd, etcdRevision, logRecord, startCopier } from "./copier.ts";
import { applySource, applyTarget, COPY_BOUND_MS, slicesPath, v1Apply, waitCopy } from "./copier_objects.ts";
import { API_ADDRESSES, API_PORT, ETCD_ADDRESS } from "./net.ts";
import { ProxyRun } from "./proxy.ts";
import { ALL_ENDPOINTS, e2eReport } from "./scenarios_clients.ts";

const [A1, A2, A3] = API_ADDRESSES as [string, string, string];
/** What the copier watches here: every Service, its copies (cluster-wide), the source's slices. */
const COPIER_WATCHES = [
  "/api/v1/services",
  "/apis/discovery.k8s.io/v1/endpointslices",
  slicesPath("default"),
];

/**
 * (d) With the v1 API server's watch cache off, the watches of the copier and of the proxy's discovery are etcd
 * watches. etcd moves on and is compacted to its current revision; a restart of the v1 server breaks the watches, and
 * their resumption from a compacted resourceVersion is answered 410 (an `ERROR` event, as etcd's compaction says it):
 * both relist, and a later source change is copied, and routed, as before.
 */
export async function copierWatchCompacted(plane: ControlPlane): Promise<void> {
  plane.v1Server?.kill("SIGTERM");
  await plane.v1Server?.stop(10_000);
  const noCache = { extraFlags: ["--watch-cache=false"] };
  try {
    await plane.startV1Server(noCache);
    let source = await applySource(plane, [A1, A2]);
    await applyTarget(plane);
    await using copier = await startCopier(plane, "copier", 18080);
    const kubeconfig = await plane.pki.kubeconfig("v1-compacted", `https://${ETCD_ADDRESS}:${V1_PORT}`);
    await using proxy = await ProxyRun.start(plane, {
      endpoints: [ALL_ENDPOINTS[0] ?? ""],
      expectHealthy: 2,
      extraFlags: ["--enable-discovery=true", `--kubeconfig=${kubeconfig}`, `--health-ca-file=${plane.pki.caPath}`],
    });
    await copier.waitSynced();
    await waitCopy(plane, source, { what: "the copy before the compaction" });
    const before = await etcdRevision(plane);
    // Writes elsewhere move etcd on; none of them is an event of the copier's watches.
    for (let i = 0; i < 5; i++) {
      const r = await v1Apply(plane, `${slicesPath("copier-elsewhere")}/moving-${i}`, {
        apiVersion: "discovery.k8s.io/v1",
        kind: "EndpointSlice",
        metadata: { name: `moving-${i}`, namespace: "copier-elsewhere" },
        addressType: "IPv4",
        endpoints: [],
      }, { manager: "e2e" });
      assert.equal(r.status, 201, `a write elsewhere: ${r.body.slice(0, 200)}`);
    }
    const revision = await etcdRevision(plane);
    assert(revision >= before + 5, `etcd moved on: ${before} -> ${revision}`);
    await compactEtcd(plane, revision);
    const mark = copier.mark();
    const proxyMark = proxy.process.stderrLines.length;
    plane.v1Server?.kill("SIGKILL");
    await plane.v1Server?.stop(5000);
    await plane.startV1Server(noCache);
    // Every watch of the copier resumes from a compacted resourceVersion: each one relists (each after its own
    // backoff while the server was down).
    const relisted = (path: string) => (l: string) =>
      l.includes("Relisting") && l.includes("410") && logRecord(l)?.path === path;
    let gone = "";
    for (const path of COPIER_WATCHES) {
      const line = await copier.waitLog(relisted(path), 60_000, `the relist of ${path} after 410 Gone`, mark);
      gone = String(logRecord(line)?.reason ?? line);
      assert(gone.includes("The resourceVersion for the provided watch is too old"), `etcd's compaction: ${gone}`);
    }
    await proxy.process.waitFor(
      () => proxy.process.stderrLines.slice(proxyMark).some((l) => l.includes("Relisting") && l.includes("410")),
      60_000,
      "discovery's relist after 410 Gone",
    );
    const t0 = Date.now();
    source = await applySource(plane, [A1, A3]);
    const [after, routed] = await Promise.all([
      waitCopy(plane, source, { what: "the source change after the relist" }),
      proxy.waitUpstreams((ups) => ups.some((u) => u.address === `${A3}:${API_PORT}`), 10_000, `${A3} routed`),
    ]);
    const changeMs = after.at - t0;
    const routeMs = routed.at - t0;
    assert.deepEqual(copier.conflictLines(), [], "no conflict, no failed reconcile");
    e2eReport(
      "copier and discovery after an etcd compaction: watch answered 410, relisted",
      `source change copied in ${changeMs} ms, routed in ${routeMs} ms after the relist (${gone})`,
    );
    assert(changeMs <= COPY_BOUND_MS, `copied within 1 s after the relist: took ${changeMs} ms`);
    assert(routeMs <= COPY_BOUND_MS, `routed within 1 s after the relist: took ${routeMs} ms`);
  } finally {
    // The steps after this one get the v1 API server as it was: with its watch cache.
    plane.v1Server?.kill("SIGTERM");
    await plane.v1Server?.stop(10_000);
    await plane.startV1Server();
  }
}
