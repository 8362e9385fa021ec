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

/** One request of the script. */
export interface ProbeRequest {
  readonly method: string;
  /** Absolute path with query. */
  readonly path: string;
  readonly contentType?: string;
  readonly body?: string;
}

/** What came back: the status, the Content-Type (without parameters) and the whole body as text. */
export interface ProbeResponse {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

/** Sends one request. */
export type ProbeTransport = (request: ProbeRequest) => Promise<ProbeResponse>;

/** One normalised answer. */
export interface ProbeAnswer {
  readonly probe: string;
  readonly request: string;
  readonly status: number;
  readonly contentType: string;
  /** The JSON body normalised; a watch's events as an array; text bodies as they are. */
  readonly body: unknown;
}

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
/** Groups whose discovery documents are compared (a real server serves more). */
const COMPARED_GROUPS = new Set(["", "discovery.k8s.io", "coordination.k8s.io"]);
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

/** A fetch-based transport: `baseUrl` (`https://host:port`), the CA to verify it with, an optional bearer token. */
export function fetchTransport(baseUrl: string, options: { caCert: string; token?: string }): ProbeTransport & {
  close(): void;
} {
  const client = Deno.createHttpClient({ caCerts: [options.caCert] });
  const send = async (r: ProbeRequest): Promise<ProbeResponse> => {
    const headers: Record<string, string> = { accept: "application/json", "user-agent": "extractedprism-parity" };
    if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
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
    apply("parity-a", true, slice("s1", ["10.0.0.1"], labels)),
  );
  await probe("apply: the same again (no change)", apply("parity-a", true, slice("s1", ["10.0.0.1"], labels)));
  await probe(
    "apply: another manager changes a field without force",
    apply("parity-b", false, slice("s1", ["10.0.0.2"], labels)),
  );
  await probe("apply: another manager forces it", apply("parity-b", true, slice("s1", ["10.0.0.2"], labels)));
  await probe("apply: without fieldManager", {
    method: "PATCH",
    path: `${SLICES}/s1`,
    contentType: "application/apply-patch+yaml",
    body: slice("s1", ["10.0.0.2"], labels),
  });
  await probe("POST a second EndpointSlice", {
    method: "POST",
    path: SLICES,
    contentType: "application/json",
    body: slice("s2", ["10.0.0.3"], { "kubernetes.io/service-name": "other" }),
  });
  await probe("LIST EndpointSlices by labelSelector", {
    method: "GET",
    path: `${SLICES}?labelSelector=kubernetes.io%2Fservice-name%3Dparity`,
  });
  await probe("LIST EndpointSlices cluster-wide, limit 1", {
    method: "GET",
    path: `/apis/discovery.k8s.io/v1/endpointslices?limit=1&labelSelector=kubernetes.io%2Fservice-name`,
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
}

/** The body of a response, parsed and normalised; a watch's newline-delimited events as an array. */
function normaliseBody(res: ProbeResponse, watch: boolean): unknown {
  if (watch && res.status === 200) {
    const events = res.body.split("\n").filter((l) => l.trim() !== "").map((l) => normalise(parse(l)));
    // Bookmarks come on a timer on either side: how many is not part of the contract, their shape is.
    return events.filter((e, i) => !(isBookmark(e) && isBookmark(events[i - 1])));
  }
  return normalise(parse(res.body));
}

function isBookmark(e: unknown): boolean {
  return typeof e === "object" && e !== null && (e as { type?: unknown }).type === "BOOKMARK";
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text.trim();
  }
}

/**
 * Replaces what legitimately differs between two servers: uids, timestamps, resourceVersion values, continue
 * tokens, server addresses; keeps only the compared groups of discovery documents; sorts managedFields by manager.
 */
export function normalise(value: unknown, key = ""): unknown {
  const out = normaliseValue(value, key);
  if (typeof out !== "object" || out === null || Array.isArray(out)) return out;
  const o = out as Record<string, unknown>;
  // Messages of a 400 are Go parser errors, for a human: the code and reason are the contract.
  if (o.kind === "Status" && o.reason === "BadRequest" && typeof o.message === "string") o.message = "<message>";
  // Items of a LIST carry kind/apiVersion when served from the watch cache (newer servers), not from etcd.
  if (typeof o.kind === "string" && o.kind.endsWith("List") && Array.isArray(o.items)) {
    for (const item of o.items) {
      if (typeof item === "object" && item !== null) {
        delete (item as Record<string, unknown>).kind;
        delete (item as Record<string, unknown>).apiVersion;
      }
    }
  }
  // Server-specific discovery details our client does not read: the v1 server's APIGroupList has no apiVersion and
  // an address per group; 1.20 has no singularName and adds storage hashes.
  if (o.kind === "APIGroupList") delete o.apiVersion;
  if (o.kind === "APIResourceList" && Array.isArray(o.resources)) {
    for (const r of o.resources as Record<string, unknown>[]) {
      delete r.singularName;
      delete r.storageVersionHash;
    }
  }
  return o;
}

function normaliseValue(value: unknown, key: string): unknown {
  if (typeof value === "string") {
    if (key === "resourceVersion" && /^\d+$/.test(value)) return "<rv>";
    if (["creationTimestamp", "time", "deletionTimestamp"].includes(key)) return "<time>";
    if (key === "continue" && value !== "") return "<continue>";
    if (key === "serverAddress") return "<address>";
    if (key === "storageVersionHash") return "<hash>";
    return value.replace(UUID, "<uid>").replace(/resource version: \d+ \(\d+\)/g, "resource version: <rv> (<rv>)");
  }
  if (Array.isArray(value)) {
    const items = value.map((v) => normaliseValue(v, "[]"));
    if (key === "managedFields") {
      items.sort((a, b) =>
        String((a as { manager?: string }).manager).localeCompare(String((b as { manager?: string }).manager))
      );
    }
    if (key === "groups") {
      return items.filter((g) => COMPARED_GROUPS.has(String((g as { name?: unknown }).name)))
        .sort((a, b) => String((a as { name?: string }).name).localeCompare(String((b as { name?: string }).name)));
    }
    return items;
  }
  if (typeof value === "object" && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (k === "serverAddressByClientCIDRs" && key !== "") continue;
      out[k] = normaliseValue(v, k);
    }
    // kube-apiserver keeps metadata.generation of EndpointSlices; the v1 server's glue strategy does not.
    if ("addressType" in out && typeof out.metadata === "object" && out.metadata !== null) {
      delete (out.metadata as Record<string, unknown>).generation;
    }
    return out;
  }
  return value;
}

/** The probes whose answers differ, each with both answers, for an assertion message. */
export function differences(
  expected: readonly ProbeAnswer[],
  actual: readonly ProbeAnswer[],
  equal: (a: unknown, b: unknown) => boolean,
): string[] {
  const out: string[] = [];
  const n = Math.max(expected.length, actual.length);
  for (let i = 0; i < n; i++) {
    const e = expected[i];
    const a = actual[i];
    if (e !== undefined && a !== undefined && equal(e, a)) continue;
    out.push(
      `#${i} ${e?.probe ?? a?.probe}\n  real: ${JSON.stringify(e)}\n  fake: ${JSON.stringify(a)}`,
    );
  }
  return out;
}
