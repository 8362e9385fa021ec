/**
 * The normalisation of the parity probes' answers (tests/support/api_parity.ts): what legitimately differs between
 * two API servers becomes a placeholder or is left out, so that answers compare with `deepEqual`.
 *
 * @module
 */

/** What came back: the status, the Content-Type (without parameters) and the whole body as text. */
export interface ProbeResponse {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

/** One normalised answer. */
export interface ProbeAnswer {
  readonly probe: string;
  readonly request: string;
  readonly status: number;
  readonly contentType: string;
  /** The JSON body normalised; a watch's events as an array; text bodies as they are. */
  readonly body: unknown;
}

/** Groups whose discovery documents are compared (a real server serves more). */
const COMPARED_GROUPS = new Set(["", "discovery.k8s.io", "coordination.k8s.io"]);
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

/** The body of a response, parsed and normalised; a watch's newline-delimited events as an array. */
export function normaliseBody(res: ProbeResponse, watch: boolean): unknown {
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
