/**
 * The parity probes: one script of the requests our client makes (LIST with selectors and pages, GET of a missing
 * object, WATCH from a resourceVersion, with bookmarks, from a too-old one, server-side apply with its conflict,
 * Lease writes with a stale resourceVersion, DELETE with a uid precondition, API discovery, an unserved group
 * version), run against any API server through a {@linkcode ProbeTransport}, with the answers normalised so that
 * a real server's and the fake's can be compared with `deepEqual`: uids, timestamps, resourceVersions and continue
 * tokens become placeholders; everything else (status codes, Content-Type, Status bodies, object shapes, event
 * framing and order) must agree.
 *
 * It imports nothing outside this file, so the e2e suite can run it with `deno run --no-config` inside a network
 * namespace (tests/e2e/support/parity_client.ts) and the unit tests against the fake in-process.
 *
 * @module
 */

import type { ProbeAnswer, ProbeResponse } from "./_api_parity_normalise.ts";
import { normaliseBody } from "./_api_parity_normalise.ts";

export type { ProbeAnswer, ProbeResponse } from "./_api_parity_normalise.ts";
export { differences, normalise } from "./_api_parity_normalise.ts";

/** One request of the script. */
export interface ProbeRequest {
  readonly method: string;
  /** Absolute path with query. */
  readonly path: string;
  readonly contentType?: string;
  readonly body?: string;
  /** Sent as someone else: `anonymous` (a user with no rights), `stranger` (a bearer token nobody issued). */
  readonly as?: "anonymous" | "stranger";
}

/** Sends one request. */
export type ProbeTransport = (request: ProbeRequest) => Promise<ProbeResponse>;

/**
 * Which server the script runs against: `kube120` (kube-apiserver 1.20: Leases, Services and discovery of the
 * core and coordination groups; it does not serve discovery.k8s.io/v1) or `v1` (the v1 API server: also
 * discovery.k8s.io/v1 EndpointSlices with server-side apply).
 */
export type ProbeProfile = "kube120" | "v1";

/** The namespace the script writes in (the e2e suite creates it where namespaces are enforced). */
export const PARITY_NAMESPACE = "parity";

const LEASES = `/apis/coordination.k8s.io/v1/namespaces/${PARITY_NAMESPACE}/leases`;
const SLICES = `/apis/discovery.k8s.io/v1/namespaces/${PARITY_NAMESPACE}/endpointslices`;
/** How long the bookmark probe's watch lasts. */
export const BOOKMARK_WATCH_S = 5;
const MICRO = "2026-01-01T00:00:00.000000Z";

/**
 * A fetch-based transport: `baseUrl` (`https://host:port`), the CA to verify it with, an optional bearer token, and
 * the token that stands for `system:anonymous` (none: no credentials, as a real server's anonymous user).
 */
export function fetchTransport(
  baseUrl: string,
  options: { caCert: string; token?: string; anonymousToken?: string },
): ProbeTransport & { close(): void } {
  const client = Deno.createHttpClient({ caCerts: [options.caCert] });
  const send = async (r: ProbeRequest): Promise<ProbeResponse> => {
    const headers: Record<string, string> = { accept: "application/json", "user-agent": "extractedprism-parity" };
    const token = r.as === "stranger"
      ? "not-a-token-anyone-issued"
      : r.as === "anonymous"
      ? options.anonymousToken
      : options.token;
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    if (r.contentType !== undefined) headers["content-type"] = r.contentType;
    const init: RequestInit & { client: Deno.HttpClient } = {
      method: r.method,
      headers,
      client,
      signal: AbortSignal.timeout((BOOKMARK_WATCH_S + 15) * 1000),
    };
    if (r.body !== undefined) init.body = r.body;
    const res = await fetch(`${baseUrl}${r.path}`, init);
    const body = await res.text();
    const contentType = (res.headers.get("content-type") ?? "").split(";")[0]?.trim() ?? "";
    return { status: res.status, contentType, body };
  };
  return Object.assign(send, { close: () => client.close() });
}

function lease(name: string, holder: string, resourceVersion?: string): string {
  const metadata: Record<string, unknown> = { name, namespace: PARITY_NAMESPACE };
  if (resourceVersion !== undefined) metadata.resourceVersion = resourceVersion;
  return JSON.stringify({
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata,
    spec: { holderIdentity: holder, leaseDurationSeconds: 15, acquireTime: MICRO, renewTime: MICRO },
  });
}

function slice(name: string, addresses: readonly string[], labels: Record<string, string>): string {
  return JSON.stringify({
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name, namespace: PARITY_NAMESPACE, labels },
    addressType: "IPv4",
    endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready: true } })),
    ports: [{ name: "https", port: 6443, protocol: "TCP" }],
  });
}

function rvOf(res: ProbeResponse): string {
  try {
    const rv = (JSON.parse(res.body) as { metadata?: { resourceVersion?: unknown } }).metadata?.resourceVersion;
    return typeof rv === "string" ? rv : "";
  } catch {
    return "";
  }
}

function uidOf(res: ProbeResponse): string {
  try {
    const uid = (JSON.parse(res.body) as { metadata?: { uid?: unknown } }).metadata?.uid;
    return typeof uid === "string" ? uid : "";
  } catch {
    return "";
  }
}

function continueOf(res: ProbeResponse): string {
  try {
    const c = (JSON.parse(res.body) as { metadata?: { continue?: unknown } }).metadata?.continue;
    return typeof c === "string" ? c : "";
  } catch {
    return "";
  }
}

/**
 * Runs the script for `profile` through `send` and returns the normalised answers, in order. Writes only in
 * {@linkcode PARITY_NAMESPACE}; run it once per server (it creates objects with fixed names).
 */
export async function runProbes(send: ProbeTransport, profile: ProbeProfile): Promise<ProbeAnswer[]> {
  const answers: ProbeAnswer[] = [];
  const probe = async (name: string, r: ProbeRequest): Promise<ProbeResponse> => {
    const res = await send(r);
    answers.push({
      probe: name,
      request: `${r.method} ${
        r.path.replace(/resourceVersion=\d+/, "resourceVersion=<rv>").replace(/continue=[^&]+/, "continue=<continue>")
      }`,
      status: res.status,
      contentType: res.contentType,
      body: normaliseBody(res, r.path.includes("watch=1")),
    });
    return res;
  };

  // API discovery: the documents a client reads to learn which group versions are served.
  // 1.20 serves older group versions beside these (coordination.k8s.io/v1beta1, discovery.k8s.io/v1beta1); the
  // groups are compared with the v1 server, built from current libraries, as the fake models a current server.
  if (profile === "kube120") {
    await probe("discovery: /api", { method: "GET", path: "/api" });
    await probe("unserved group version: LIST discovery.k8s.io/v1 on 1.20", { method: "GET", path: SLICES });
    // The v1 server answers this with its root path list; kube-apiserver with the mux's plain text.
    await probe("unserved group: GET /apis/example.invalid/v1", { method: "GET", path: "/apis/example.invalid/v1" });
  } else {
    await probe("discovery: /apis", { method: "GET", path: "/apis" });
    await probe("discovery: /apis/coordination.k8s.io", { method: "GET", path: "/apis/coordination.k8s.io" });
    await probe("discovery: /apis/coordination.k8s.io/v1", { method: "GET", path: "/apis/coordination.k8s.io/v1" });
    await probe("discovery: /apis/discovery.k8s.io", { method: "GET", path: "/apis/discovery.k8s.io" });
    await probe("discovery: /apis/discovery.k8s.io/v1", { method: "GET", path: "/apis/discovery.k8s.io/v1" });
    await probe("unserved group version: LIST discovery.k8s.io/v1beta1", {
      method: "GET",
      path: `/apis/discovery.k8s.io/v1beta1/namespaces/${PARITY_NAMESPACE}/endpointslices`,
    });
  }

  // Leases: create, conflicts, stale resourceVersion, as leader election does them.
  await probe("GET a missing Lease", { method: "GET", path: `${LEASES}/missing` });
  const created = await probe("POST a Lease", {
    method: "POST",
    path: LEASES,
    contentType: "application/json",
    body: lease("l1", "a"),
  });
  await probe("POST the same Lease again", {
    method: "POST",
    path: LEASES,
    contentType: "application/json",
    body: lease("l1", "a"),
  });
  const rv1 = rvOf(created);
  const updated = await probe("PUT the Lease with its resourceVersion", {
    method: "PUT",
    path: `${LEASES}/l1`,
    contentType: "application/json",
    body: lease("l1", "b", rv1),
  });
  await probe("PUT the Lease with a stale resourceVersion", {
    method: "PUT",
    path: `${LEASES}/l1`,
    contentType: "application/json",
    body: lease("l1", "c", rv1),
  });
  // kube-apiserver's Lease strategy allows create on update; the v1 server's glue strategy does not (a 404).
  if (profile === "kube120") {
    await probe("PUT a missing Lease", {
      method: "PUT",
      path: `${LEASES}/missing`,
      contentType: "application/json",
      body: lease("missing", "c", rv1),
    });
  }
  await probe("POST a second Lease", {
    method: "POST",
    path: LEASES,
    contentType: "application/json",
    body: lease("l2", "a"),
  });
  await probe("POST a third Lease", {
    method: "POST",
    path: LEASES,
    contentType: "application/json",
    body: lease("l3", "a"),
  });

  // LIST: plain, selected, paged.
  await probe("LIST Leases", { method: "GET", path: LEASES });
  await probe("LIST Leases by fieldSelector", { method: "GET", path: `${LEASES}?fieldSelector=metadata.name%3Dl2` });
  await probe("LIST Leases by a labelSelector nothing matches", {
    method: "GET",
    path: `${LEASES}?labelSelector=app%3Dnone`,
  });
  const page1 = await probe("LIST Leases, limit 2", { method: "GET", path: `${LEASES}?limit=2` });
  await probe("LIST Leases, the continue page", {
    method: "GET",
    path: `${LEASES}?limit=2&continue=${encodeURIComponent(continueOf(page1))}`,
  });
  await probe("LIST Leases, a continue token that is not one", {
    method: "GET",
    path: `${LEASES}?continue=bm90LWEtdG9rZW4`,
  });
  await probe("LIST Leases, a bad labelSelector", { method: "GET", path: `${LEASES}?labelSelector=a%20in%20b` });
  await probe("LIST Leases, an unsupported fieldSelector", {
    method: "GET",
    path: `${LEASES}?fieldSelector=spec.holderIdentity%3Da`,
  });

  // WATCH: from a resourceVersion (the changes after it), from 0 (the current objects first), too old.
  await probe("WATCH Leases from the first write's resourceVersion", {
    method: "GET",
    path: `${LEASES}?watch=1&resourceVersion=${rv1}&timeoutSeconds=1`,
  });
  await probe("WATCH Leases from 0 by fieldSelector", {
    method: "GET",
    path: `${LEASES}?watch=1&resourceVersion=0&fieldSelector=metadata.name%3Dl1&timeoutSeconds=1`,
  });
  await probe("WATCH Leases with bookmarks", {
    method: "GET",
    path: `${LEASES}?watch=1&resourceVersion=${
      rvOf(updated)
    }&allowWatchBookmarks=true&timeoutSeconds=${BOOKMARK_WATCH_S}`,
  });
  // kube-apiserver 1.20 in the suite is younger than its 5 min etcd compaction: it replays from 1 instead.
  if (profile === "v1") {
    await probe("WATCH Leases from a too-old resourceVersion", {
      method: "GET",
      path: `${LEASES}?watch=1&resourceVersion=1&timeoutSeconds=1`,
    });
  }

  // DELETE with a uid precondition: a stale one, then the right one.
  const l3 = await send({ method: "GET", path: `${LEASES}/l3` });
  await probe("DELETE a Lease with a stale uid precondition", {
    method: "DELETE",
    path: `${LEASES}/l3`,
    contentType: "application/json",
    body: JSON.stringify({ preconditions: { uid: "00000000-0000-0000-0000-000000000000" } }),
  });
  await probe("DELETE a Lease with its uid precondition", {
    method: "DELETE",
    path: `${LEASES}/l3`,
    contentType: "application/json",
    body: JSON.stringify({ preconditions: { uid: uidOf(l3) } }),
  });
  await probe("DELETE a missing Lease", { method: "DELETE", path: `${LEASES}/l3` });

  if (profile === "kube120") await coreProbes(probe);
  if (profile === "v1") await sliceProbes(probe);
  return answers;
}

/** The core group as the copier uses it: Services read, Events written (the v1 server serves no core group). */
async function coreProbes(probe: (name: string, r: ProbeRequest) => Promise<ProbeResponse>): Promise<void> {
  const services = `/api/v1/namespaces/${PARITY_NAMESPACE}/services`;
  const events = `/api/v1/namespaces/${PARITY_NAMESPACE}/events`;
  // Authentication and RBAC (the v1 server has neither): a token nobody issued, a user without rights.
  await probe("LIST Leases with a token nobody issued", { method: "GET", path: LEASES, as: "stranger" });
  await probe("LIST Leases without rights", { method: "GET", path: LEASES, as: "anonymous" });
  await probe("GET a Lease without rights", { method: "GET", path: `${LEASES}/l1`, as: "anonymous" });
  await probe("LIST Services without rights", { method: "GET", path: services, as: "anonymous" });
  await probe("GET a missing Service", { method: "GET", path: `${services}/missing` });
  await probe("LIST Services in a namespace without any", { method: "GET", path: services });
  const at = "2026-01-01T00:00:00Z";
  await probe("POST an Event as the copier writes it", {
    method: "POST",
    path: events,
    contentType: "application/json",
    body: JSON.stringify({
      apiVersion: "v1",
      kind: "Event",
      metadata: { name: "svc.1", namespace: PARITY_NAMESPACE },
      involvedObject: {
        apiVersion: "v1",
        kind: "Service",
        name: "svc",
        namespace: PARITY_NAMESPACE,
        uid: "11111111-1111-1111-1111-111111111111",
      },
      reason: "ParityWarning",
      message: "a warning",
      type: "Warning",
      source: { component: "extractedprism-endpoint-copier" },
      reportingComponent: "extractedprism-endpoint-copier",
      reportingInstance: "parity",
      firstTimestamp: at,
      lastTimestamp: at,
      count: 1,
    }),
  });
  await probe("merge patch of the Event's count", {
    method: "PATCH",
    path: `${events}/svc.1`,
    contentType: "application/merge-patch+json",
    body: JSON.stringify({ count: 2, lastTimestamp: at, message: "a warning" }),
  });
  await probe("merge patch of a missing Event", {
    method: "PATCH",
    path: `${events}/missing`,
    contentType: "application/merge-patch+json",
    body: JSON.stringify({ count: 2 }),
  });
}

async function sliceProbes(probe: (name: string, r: ProbeRequest) => Promise<ProbeResponse>): Promise<void> {
  const apply = (manager: string, force: boolean, body: string): ProbeRequest => ({
    method: "PATCH",
    path: `${SLICES}/s1?fieldManager=${manager}${force ? "&force=true" : ""}`,
    contentType: "application/apply-patch+yaml",
    body,
  });
  const labels = { "kubernetes.io/service-name": "parity" };
  await probe("GET a missing EndpointSlice", { method: "GET", path: `${SLICES}/missing` });
  const created = await probe(
    "apply: create an EndpointSlice",
    apply("parity-a", true, slice("s1", ["127.0.0.1"], labels)),
  );
  await probe("apply: the same again (no change)", apply("parity-a", true, slice("s1", ["127.0.0.1"], labels)));
  await probe(
    "apply: another manager changes a field without force",
    apply("parity-b", false, slice("s1", ["127.0.0.2"], labels)),
  );
  await probe("apply: another manager forces it", apply("parity-b", true, slice("s1", ["127.0.0.2"], labels)));
  await probe("apply: a different metadata.uid", {
    method: "PATCH",
    path: `${SLICES}/s1?fieldManager=parity-b&force=true`,
    contentType: "application/apply-patch+yaml",
    body: JSON.stringify({
      ...JSON.parse(slice("s1", ["127.0.0.2"], labels)),
      metadata: { name: "s1", uid: "00000000-0000-0000-0000-000000000000" },
    }),
  });
  await probe("apply: without fieldManager", {
    method: "PATCH",
    path: `${SLICES}/s1`,
    contentType: "application/apply-patch+yaml",
    body: slice("s1", ["127.0.0.2"], labels),
  });
  await probe("POST a second EndpointSlice", {
    method: "POST",
    path: SLICES,
    contentType: "application/json",
    body: slice("s2", ["127.0.0.3"], { "kubernetes.io/service-name": "other" }),
  });
  await probe("LIST EndpointSlices by labelSelector", {
    method: "GET",
    path: `${SLICES}?labelSelector=kubernetes.io%2Fservice-name%3Dparity`,
  });
  await probe("LIST EndpointSlices cluster-wide, limit 1", {
    method: "GET",
    // Only this script's slices (others, e.g. default/kubernetes, may exist): both of them, one page each.
    path:
      `/apis/discovery.k8s.io/v1/endpointslices?limit=1&labelSelector=kubernetes.io%2Fservice-name%20in%20%28parity%2Cother%29`,
  });
  await probe("WATCH EndpointSlices from the create", {
    method: "GET",
    path: `${SLICES}?watch=1&resourceVersion=${rvOf(created)}&timeoutSeconds=1`,
  });
  await probe("merge patch of an EndpointSlice", {
    method: "PATCH",
    path: `${SLICES}/s2`,
    contentType: "application/merge-patch+json",
    body: JSON.stringify({ metadata: { labels: { extra: "x" } } }),
  });
  await probe("apply: a third manager conflicts with an Update owner on two fields", {
    method: "PATCH",
    path: `${SLICES}/s2?fieldManager=parity-c`,
    contentType: "application/apply-patch+yaml",
    body: slice("s2", ["127.0.0.9"], { "kubernetes.io/service-name": "third" }),
  });
}
