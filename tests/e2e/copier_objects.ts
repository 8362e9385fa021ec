/**
 * The objects of the copier scenarios on the v1 API server, and the requests that write and read them from the node
 * namespace (through the suite's client): the source slice `default/kubernetes` and the target Service
 * `default/kubernetes-vip` written by server-side apply, and the copy the copier makes of one into the other.
 *
 * @module
 */
import { canonicalJson } from "../../lib/copier/objects.ts";
import { type ControlPlane, V1_PORT } from "./control_plane.ts";
import { API_PORT, ETCD_ADDRESS } from "./net.ts";
import { pollUntil } from "./proxy.ts";

/** The copier's field manager (and managed-by label value). */
export const COPIER_MANAGER = "extractedprism-endpoint-copier";
/** Every copy write is one watch event away from its cause (a source slice, a Service, the copy itself). */
export const COPY_BOUND_MS = 1000;
/** The field manager of the test's own writes of the source and the targets. */
export const TEST_MANAGER = "e2e";

/** A JSON object as the API server stores it. */
// deno-lint-ignore no-explicit-any
export type ApiObject = Record<string, any>;

/** The slices of a namespace. */
export function slicesPath(namespace: string): string {
  return `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`;
}

/** The source slice: `default/kubernetes`, as an API server's reconciler writes it. */
export const SOURCE_PATH = `${slicesPath("default")}/kubernetes`;
/** The target Service: the copier's default `--managed-endpoint-name`. */
export const TARGET_PATH = "/api/v1/namespaces/default/services/kubernetes-vip";
/** The copy of the source for the target: `<target>-<source slice>`. */
export const COPY_PATH = `${slicesPath("default")}/kubernetes-vip-kubernetes`;

/** One request to the v1 API server from the node namespace; the body is parsed when it is JSON. */
export async function v1Request(
  plane: ControlPlane,
  method: string,
  path: string,
  body?: unknown,
  contentType = "application/json",
): Promise<{ status: number; body: string; object: ApiObject | undefined }> {
  const r = await plane.get({
    host: ETCD_ADDRESS,
    port: V1_PORT,
    method,
    path,
    ...(body !== undefined ? { body: JSON.stringify(body), contentType } : {}),
  });
  let object: ApiObject | undefined;
  try {
    object = JSON.parse(r.body) as ApiObject;
  } catch {
    object = undefined; // cut at 4 KiB by the client, or not JSON
  }
  return { status: r.status, body: r.body, object };
}

/** GETs one object; `undefined` on 404. */
export async function v1Get(plane: ControlPlane, path: string): Promise<ApiObject | undefined> {
  const r = await v1Request(plane, "GET", path);
  if (r.status === 404) return undefined;
  if (r.status !== 200 || r.object === undefined) throw new Error(`Cannot GET ${path}: HTTP ${r.status}: ${r.body}`);
  return r.object;
}

/** Server-side apply of `object` at `path` as `manager` (forced unless `force` is false); returns the stored object. */
export async function v1Apply(
  plane: ControlPlane,
  path: string,
  object: ApiObject,
  opts: { manager: string; force?: boolean; dryRun?: boolean },
): Promise<{ status: number; body: string; object: ApiObject | undefined }> {
  const q = new URLSearchParams({ fieldManager: opts.manager });
  if (opts.force !== false) q.set("force", "true");
  if (opts.dryRun === true) q.set("dryRun", "All");
  return await v1Request(plane, "PATCH", `${path}?${q}`, object, "application/apply-patch+yaml");
}

/** Applies the source slice listing `addresses` (as the test's field manager); returns the stored slice. */
export async function applySource(
  plane: ControlPlane,
  addresses: readonly string[],
  addressType = "IPv4",
): Promise<ApiObject> {
  const r = await v1Apply(plane, SOURCE_PATH, {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name: "kubernetes", namespace: "default", labels: { "kubernetes.io/service-name": "kubernetes" } },
    addressType,
    endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready: true } })),
    ports: [{ name: "https", port: API_PORT, protocol: "TCP" }],
  }, { manager: TEST_MANAGER });
  if ((r.status !== 200 && r.status !== 201) || r.object === undefined) {
    throw new Error(`Cannot apply the source slice: HTTP ${r.status}: ${r.body}`);
  }
  return r.object;
}

/**
 * Applies a target Service without a selector (port 443 to `targetPort`); returns the stored Service.
 *
 * @param path Its path, {@linkcode TARGET_PATH} by default; another one is annotated `endpoint-copier/enabled`.
 */
export async function applyTarget(
  plane: ControlPlane,
  opts: { path?: string; targetPort?: number | string } = {},
): Promise<ApiObject> {
  const path = opts.path ?? TARGET_PATH;
  const [, namespace, name] = /^\/api\/v1\/namespaces\/([^/]+)\/services\/([^/]+)$/.exec(path) ?? [];
  const r = await v1Apply(plane, path, {
    apiVersion: "v1",
    kind: "Service",
    metadata: {
      name,
      namespace,
      ...(path === TARGET_PATH ? {} : { annotations: { "endpoint-copier/enabled": "true" } }),
    },
    spec: {
      type: "ClusterIP",
      ports: [{ name: "https", port: 443, protocol: "TCP", targetPort: opts.targetPort ?? API_PORT }],
    },
  }, { manager: TEST_MANAGER });
  if ((r.status !== 200 && r.status !== 201) || r.object === undefined) {
    throw new Error(`Cannot apply the Service ${path}: HTTP ${r.status}: ${r.body}`);
  }
  return r.object;
}

/** Whether a copy carries exactly the source's address type and endpoints. */
export function copyMatches(copy: ApiObject | undefined, source: ApiObject): boolean {
  return copy !== undefined && copy.addressType === source.addressType &&
    canonicalJson(copy.endpoints ?? []) === canonicalJson(source.endpoints ?? []);
}

/** Polls the copy at `path` until it matches `source`; returns the wall-clock time it was seen and the copy. */
export async function waitCopy(
  plane: ControlPlane,
  source: ApiObject,
  opts: { path?: string; timeoutMs?: number; what: string },
): Promise<{ at: number; copy: ApiObject }> {
  let last: ApiObject | undefined;
  return await pollUntil(async () => {
    last = await v1Get(plane, opts.path ?? COPY_PATH);
    return copyMatches(last, source) ? { at: Date.now(), copy: last as ApiObject } : undefined;
  }, { timeoutMs: opts.timeoutMs ?? 10_000, what: opts.what, everyMs: 20 }).catch((e) => {
    throw new Error(
      `${e instanceof Error ? e.message : String(e)}; the copy is ${JSON.stringify(last?.endpoints ?? "absent")}, ` +
        `the source ${JSON.stringify(source.endpoints)}`,
    );
  });
}

/** The managedFields entries of `manager` on an object. */
export function managedBy(o: ApiObject, manager: string): ApiObject[] {
  return ((o.metadata?.managedFields ?? []) as ApiObject[]).filter((f) => f.manager === manager);
}

/** The top-level fields (`f:endpoints`, `f:metadata`, ...) `manager` owns on `o`, over all its entries. */
export function ownedFields(o: ApiObject, manager: string): Set<string> {
  const out = new Set<string>();
  for (const f of managedBy(o, manager)) for (const k of Object.keys(f.fieldsV1 ?? {})) out.add(k);
  return out;
}
