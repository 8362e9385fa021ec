/**
 * The endpoint copier (the real program, `main.ts endpoint-copier`) against the v1 API server: copies made with the
 * real server-side apply (structured-merge-diff: field managers, force, conflicts), hand edits repaired, leader
 * election between two processes on a real Lease with hand-over on SIGTERM (the 410 after an etcd compaction is in
 * copier_compaction.ts). Each scenario asserts its outcome and prints one `E2E ...` figure.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ControlPlane } from "./control_plane.ts";
import { ensureV1, logTime, startCopier } from "./copier.ts";
import {
  type ApiObject,
  applySource,
  applyTarget,
  COPIER_MANAGER,
  COPY_BOUND_MS,
  COPY_PATH,
  managedBy,
  ownedFields,
  slicesPath,
  SOURCE_PATH,
  v1Apply,
  v1Get,
  v1Request,
  waitCopy,
} from "./copier_objects.ts";
import { API_ADDRESSES, API_PORT } from "./net.ts";
import { pollUntil } from "./proxy.ts";
import { e2eReport } from "./scenarios_clients.ts";

const [A1, A2, A3] = API_ADDRESSES as [string, string, string];
/** An address only ever written into a slice by a hand edit; nothing dials it (the copier never dials endpoints). */
const EDITED = "198.18.0.99";

/**
 * (a) A new target gets a copy of `default/kubernetes`'s slice, written with the real server-side apply as the
 * copier's field manager, and the Go operator's slice for it is deleted; a source change is copied; a warning about a
 * target becomes a real Event; the copy of a deleted target is deleted.
 */
export async function copierCopies(plane: ControlPlane): Promise<void> {
  await ensureV1(plane);
  let source = await applySource(plane, [A1, A2]);
  // What the Go endpoint-copier-operator wrote for the target (named after it): retired once the copy is in place.
  const legacyPath = `${slicesPath("default")}/kubernetes-vip`;
  const legacy = await v1Apply(plane, legacyPath, {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: {
      name: "kubernetes-vip",
      namespace: "default",
      labels: { "kubernetes.io/service-name": "kubernetes-vip", "endpoint-copier/source": "kubernetes" },
    },
    addressType: "IPv4",
    endpoints: source.endpoints,
  }, { manager: "endpoint-copier-operator" });
  assert.equal(legacy.status, 201, `the Go operator's slice: ${legacy.body.slice(0, 200)}`);
  await using copier = await startCopier(plane, "copier", 18080);
  await copier.waitSynced();
  let t0 = Date.now();
  const target = await applyTarget(plane);
  const created = await waitCopy(plane, source, { what: "the copy for the new target" });
  const createMs = created.at - t0;
  await pollUntil(async () => (await v1Get(plane, legacyPath)) === undefined || undefined, {
    timeoutMs: 10_000,
    what: "the Go operator's slice to be deleted",
  });
  const copy = created.copy;
  const mine = managedBy(copy, COPIER_MANAGER);
  assert(mine.length === 1 && mine[0]?.operation === "Apply", `the copier applied the copy: ${JSON.stringify(mine)}`);
  for (const f of ["f:endpoints", "f:addressType", "f:ports", "f:metadata"]) {
    assert(ownedFields(copy, COPIER_MANAGER).has(f), `the copier's apply owns ${f}`);
  }
  assert.equal(copy.metadata.labels["endpointslice.kubernetes.io/managed-by"], COPIER_MANAGER);
  assert.equal(copy.metadata.labels["kubernetes.io/service-name"], "kubernetes-vip");
  assert.deepEqual(copy.metadata.ownerReferences?.map((o: ApiObject) => o.uid), [target.metadata.uid]);
  assert.deepEqual(copy.ports, [{ name: "https", port: API_PORT, protocol: "TCP" }]);

  t0 = Date.now();
  source = await applySource(plane, [A1, A2, A3]);
  const changed = await waitCopy(plane, source, { what: "the source change in the copy" });
  const changeMs = changed.at - t0;

  // A target whose targetPort is a name: copied with its port, and the warning recorded as an Event on it.
  const named = await applyTarget(plane, {
    path: "/api/v1/namespaces/copier-events/services/named-port",
    targetPort: "https",
  });
  const namedCopy = await waitCopy(plane, source, {
    path: `${slicesPath("copier-events")}/named-port-kubernetes`,
    what: "the copy for the annotated target",
  });
  assert.equal(namedCopy.copy.ports?.[0]?.port, 443, "a named targetPort copies the Service port");
  const event = await pollUntil(async () => {
    const list = await v1Get(plane, "/api/v1/namespaces/copier-events/events");
    return (list?.items as ApiObject[] | undefined)?.find((e) => e.reason === "NamedTargetPort");
  }, { timeoutMs: 10_000, what: "the NamedTargetPort Event" });
  assert.equal(event.involvedObject?.uid, named.metadata.uid);
  assert.equal(event.type, "Warning");
  // No garbage collector here: the copier's own cleanup deletes the copy of a Service that is gone (with its uid as
  // the precondition).
  const gone = await v1Request(plane, "DELETE", "/api/v1/namespaces/copier-events/services/named-port");
  assert.equal(gone.status, 200, `the annotated target deleted: ${gone.body.slice(0, 200)}`);
  await pollUntil(
    async () => (await v1Get(plane, `${slicesPath("copier-events")}/named-port-kubernetes`)) === undefined || undefined,
    { timeoutMs: 10_000, what: "the copier to delete the copy of a deleted target" },
  );
  assert.deepEqual(copier.conflictLines(), [], "no conflict, no failed reconcile");
  assert.equal(await copier.metric("extractedprism_copier_errors_total", '{kind="write"}') ?? 0, 0);
  assert.equal(await copier.metric("extractedprism_copier_errors_total", '{kind="event"}') ?? 0, 0);
  e2eReport(
    "copier vs the v1 API server: copy by server-side apply",
    `new target copied in ${createMs} ms, source change copied in ${changeMs} ms`,
  );
  assert(createMs <= COPY_BOUND_MS, `a new target is copied within 1 s: took ${createMs} ms`);
  assert(changeMs <= COPY_BOUND_MS, `a source change is copied within 1 s: took ${changeMs} ms`);
}

/**
 * (b) A hand edit of the copy, by a forced apply of another field manager and by a plain PUT, is repaired: the copy's
 * watch brings the edit to the copier as an event, so the repair has the same bound as a source change. Afterwards
 * the editor owns none of the fields the copier writes, and its own edit applied again without force conflicts.
 */
export async function copierRepairsHandEdits(plane: ControlPlane): Promise<void> {
  await ensureV1(plane);
  const source = await applySource(plane, [A1, A2]);
  await applyTarget(plane);
  await using copier = await startCopier(plane, "copier", 18080);
  await copier.waitSynced();
  await waitCopy(plane, source, { what: "the copy before the edits" });

  const edit = {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name: "kubernetes-vip-kubernetes", namespace: "default" },
    addressType: "IPv4",
    endpoints: [{ addresses: [EDITED], conditions: { ready: true } }],
  };
  const forced = await v1Apply(plane, COPY_PATH, edit, { manager: "intruder" });
  let t0 = Date.now();
  assert.equal(forced.status, 200, `the intruder's forced apply: ${forced.body.slice(0, 300)}`);
  assert.equal(forced.object?.endpoints?.[0]?.addresses?.[0], EDITED, "the intruder's edit was stored");
  assert(ownedFields(forced.object ?? {}, "intruder").has("f:endpoints"), "force moved the endpoints to the intruder");
  const afterApply = await waitCopy(plane, source, { what: "the repair of the intruder's apply" });
  const applyMs = afterApply.at - t0;
  assert(!ownedFields(afterApply.copy, "intruder").has("f:endpoints"), "the intruder no longer owns the endpoints");
  assert(ownedFields(afterApply.copy, COPIER_MANAGER).has("f:endpoints"), "the copier owns the endpoints again");
  const again = await v1Apply(plane, COPY_PATH, edit, { manager: "intruder", force: false, dryRun: true });
  assert.equal(again.status, 409, `the intruder's edit without force conflicts: ${again.body.slice(0, 300)}`);
  assert(again.body.includes(COPIER_MANAGER), `the conflict names the copier: ${again.body.slice(0, 300)}`);

  const stored = await v1Get(plane, COPY_PATH);
  assert(stored !== undefined);
  stored.endpoints = [{ addresses: [EDITED], conditions: { ready: false } }];
  const put = await v1Request(plane, "PUT", `${COPY_PATH}?fieldManager=hand-edit`, stored);
  t0 = Date.now();
  assert.equal(put.status, 200, `the PUT: ${put.body.slice(0, 300)}`);
  assert(ownedFields(put.object ?? {}, "hand-edit").has("f:endpoints"), "the PUT's manager took the endpoints");
  const afterPut = await waitCopy(plane, source, { what: "the repair of the PUT" });
  const putMs = afterPut.at - t0;
  assert(!ownedFields(afterPut.copy, "hand-edit").has("f:endpoints"), "the PUT's manager no longer owns the endpoints");
  assert.deepEqual(copier.conflictLines(), [], "no conflict, no failed reconcile");
  e2eReport(
    "copier: hand edit of a copy repaired",
    `forced apply by another field manager repaired in ${applyMs} ms, PUT repaired in ${putMs} ms`,
  );
  assert(applyMs <= COPY_BOUND_MS, `the forced apply is repaired within 1 s: took ${applyMs} ms`);
  assert(putMs <= COPY_BOUND_MS, `the PUT is repaired within 1 s: took ${putMs} ms`);
}

/** Stands for a name only: nothing resolves or dials it (the copier never dials endpoints). */
const FQDN = "kubernetes.default.svc.cluster.local";

/**
 * (a') The source slice is deleted: the copy is kept (never an empty slice) and an `EmptySource` Event says why; the
 * source comes back with another address type: the copy is deleted and created again (an EndpointSlice's address type
 * cannot change in place), within the bound of any source change.
 */
export async function copierSourceReplaced(plane: ControlPlane): Promise<void> {
  await ensureV1(plane);
  const before = await applySource(plane, [A1, A2]);
  await applyTarget(plane);
  await using copier = await startCopier(plane, "copier", 18080);
  await copier.waitSynced();
  const old = (await waitCopy(plane, before, { what: "the copy before the source goes" })).copy;
  try {
    const mark = copier.mark();
    const deleted = await v1Request(plane, "DELETE", SOURCE_PATH);
    assert.equal(deleted.status, 200, `the source deleted: ${deleted.body.slice(0, 200)}`);
    await copier.waitLog((l) => l.includes("keeping the last copy"), 10_000, "the EmptySource warning", mark);
    const event = await pollUntil(async () => {
      const list = await v1Get(plane, "/api/v1/namespaces/default/events");
      return (list?.items as ApiObject[] | undefined)?.find((e) =>
        e.reason === "EmptySource" && e.involvedObject?.name === "kubernetes-vip"
      );
    }, { timeoutMs: 10_000, what: "the EmptySource Event" });
    assert.equal(event.type, "Warning");
    const kept = await v1Get(plane, COPY_PATH);
    assert.equal(kept?.metadata?.uid, old.metadata.uid, "the copy is kept while the source is gone");

    const t0 = Date.now();
    const fqdn = await applySource(plane, [FQDN], "FQDN");
    const recreated = await waitCopy(plane, fqdn, { what: "the copy with the new address type" });
    const recreateMs = recreated.at - t0;
    assert.notEqual(recreated.copy.metadata.uid, old.metadata.uid, "the copy was deleted and created again");
    assert.equal(copier.logLines("its address type changes from IPv4 to FQDN", mark).length, 1);
    assert.deepEqual(copier.conflictLines(), [], "no conflict, no failed reconcile");
    e2eReport(
      "copier: source slice deleted, then back with another address type",
      `copy kept (EmptySource Event), then deleted and re-created in ${recreateMs} ms`,
    );
    assert(recreateMs <= COPY_BOUND_MS, `re-created within 1 s: took ${recreateMs} ms`);
  } finally {
    // The steps after this one expect the IPv4 source (an address type change is a delete and a create).
    await v1Request(plane, "DELETE", SOURCE_PATH);
    const back = await applySource(plane, [A1, A2]);
    await waitCopy(plane, back, { what: "the copy back to IPv4" });
  }
}

const LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/f668ae63.endpoint-copier-operator";
/** A Lease held this long would keep the follower out for ten seconds if the leader did not release it. */
const ELECTION = { leaseMs: 10_000, renewMs: 5000, retryMs: 500 };
/** Released Lease → the follower's next try (≤ 2.2 × retry) → held; generous on a loaded machine, far below 10 s. */
const HANDOVER_BOUND_MS = 4000;

/**
 * (c) Two copiers elect a leader on the real Lease: only the leader writes. SIGTERM to the leader releases the Lease,
 * the follower takes it well before the Lease would have expired, and a source change after the hand-over is copied
 * by the new leader.
 */
export async function copierLeaderElection(plane: ControlPlane): Promise<void> {
  await ensureV1(plane);
  let source = await applySource(plane, [A1, A2]);
  await applyTarget(plane);
  await using first = await startCopier(plane, "copier A", 18081, ELECTION);
  await first.waitLog((l) => l.includes("Leading: holding the Lease"), 15_000, "copier A to lead");
  await using second = await startCopier(plane, "copier B", 18082, ELECTION);
  await second.waitSynced();
  await second.waitLog((l) => l.includes("Campaigning for the Lease"), 15_000, "copier B to campaign");
  let lease = await v1Get(plane, LEASE_PATH);
  assert.equal(lease?.spec?.holderIdentity, first.identity, "copier A holds the Lease");
  assert.equal(await first.metric("extractedprism_copier_leader"), 1, "copier A says it leads");
  assert.equal(await second.metric("extractedprism_copier_leader"), 0, "copier B says it follows");

  let t0 = Date.now();
  const markA = first.mark();
  source = await applySource(plane, [A1, A3]);
  const led = await waitCopy(plane, source, { what: "the leader's copy" });
  const leaderMs = led.at - t0;
  await first.waitLog((l) => l.includes("Applied EndpointSlice"), 5000, "copier A's write", markA);
  assert.deepEqual(second.logLines("Applied EndpointSlice"), [], "copier B, the follower, wrote nothing");
  const writes = '{verb="apply",result="success"}';
  assert.equal(await second.metric("extractedprism_copier_writes_total", writes), 0, "copier B counts no write");

  const markB = second.mark();
  const sigterm = Date.now();
  first.signal("SIGTERM");
  const leading = await second.waitLog(
    (l) => l.includes("Leading: holding the Lease"),
    15_000,
    "copier B to lead after copier A's SIGTERM",
    markB,
  );
  const handoverMs = logTime(leading) - sigterm;
  assert.equal((await first.stop()).code, 0, "copier A stopped cleanly");
  assert(first.logLines("Released the Lease").length === 1, "copier A released the Lease on SIGTERM");
  lease = await v1Get(plane, LEASE_PATH);
  assert.equal(lease?.spec?.holderIdentity, second.identity, "copier B holds the Lease");
  assert.equal(await second.metric("extractedprism_copier_leader"), 1, "copier B says it leads");

  t0 = Date.now();
  source = await applySource(plane, [A2, A3]);
  const after = await waitCopy(plane, source, { what: "the new leader's copy" });
  const changeMs = after.at - t0;
  const wrote = await second.waitLog((l) => l.includes("Applied EndpointSlice"), 5000, "copier B's write", markB);
  const firstWriteMs = logTime(wrote) - sigterm;
  assert.deepEqual([...first.conflictLines(), ...second.conflictLines()], [], "no conflict, no failed reconcile");
  e2eReport(
    "copier leader election on a real Lease: hand-over on SIGTERM",
    `leader's copy in ${leaderMs} ms; follower held the Lease ${handoverMs} ms after SIGTERM, its first write ` +
      `${firstWriteMs} ms after SIGTERM (source change copied in ${changeMs} ms)`,
  );
  assert(leaderMs <= COPY_BOUND_MS, `the leader copies within 1 s: took ${leaderMs} ms`);
  assert(handoverMs <= HANDOVER_BOUND_MS, `hand-over within ${HANDOVER_BOUND_MS} ms: took ${handoverMs} ms`);
  assert(changeMs <= COPY_BOUND_MS, `the new leader copies within 1 s: took ${changeMs} ms`);
}
