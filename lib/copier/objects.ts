/**
 * The Kubernetes objects the endpoint copier reads (Services, EndpointSlices) as typed values, the names it shares
 * with SUSE's endpoint-copier-operator (annotations, the source label), and the decoders that check untrusted JSON.
 *
 * @module
 */
import { isRecord, type KubeObject } from "../kubernetes/types.ts";

/** A JSON value, as read from or written to the API. */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [k: string]: JsonValue };

/** The annotation that makes a Service a target; only the exact value `"true"` counts. */
export const ANNOTATION_ENABLED = "endpoint-copier/enabled";
/** The annotation naming the source Service (default: `--default-endpoint-name`). */
export const ANNOTATION_SOURCE_NAME = "endpoint-copier/default-service-name";
/** The annotation naming the source Service's namespace (default: `--default-endpoint-namespace`). */
export const ANNOTATION_SOURCE_NAMESPACE = "endpoint-copier/default-service-namespace";
/** The label naming the source slice of a copy (also written by the Go operator). */
export const LABEL_SOURCE = "endpoint-copier/source";
/** The label tying a slice to its Service. */
export const LABEL_SERVICE_NAME = "kubernetes.io/service-name";
/** The label saying which controller manages a slice. */
export const LABEL_MANAGED_BY = "endpointslice.kubernetes.io/managed-by";
/** Our value of {@linkcode LABEL_MANAGED_BY}, and the server-side apply field manager. */
export const MANAGER = "extractedprism-endpoint-copier";

/** One port of a Service. */
export interface ServicePort {
  /** The port's name; `""` when the Service has a single unnamed port. */
  readonly name: string;
  /** `TCP`, `UDP` or `SCTP`. */
  readonly protocol: string;
  /** The Service's port. */
  readonly port: number;
  /** The target port: a number, a name, or `undefined` (means `port`). */
  readonly targetPort: number | string | undefined;
  /** Copied to the slice's port. */
  readonly appProtocol: string | undefined;
}

/** The parts of a `v1` Service the copier reads. */
export interface ServiceInfo extends KubeObject {
  /** Name, namespace, uid, version and annotations. */
  readonly metadata: {
    readonly name: string;
    readonly namespace: string;
    readonly uid: string;
    readonly resourceVersion?: string;
    readonly annotations: Readonly<Record<string, string>>;
  };
  /** Whether `spec.selector` names any label: then the endpointslice controller owns its slices. */
  readonly hasSelector: boolean;
  /** `spec.ports`, in order. */
  readonly ports: readonly ServicePort[];
}

/** An owner reference, as written on a copy. */
export interface OwnerReference {
  /** `v1` for a Service. */
  readonly apiVersion: string;
  /** `Service`. */
  readonly kind: string;
  /** The owner's name. */
  readonly name: string;
  /** The owner's uid. */
  readonly uid: string;
  /** Whether the owner is the managing controller. */
  readonly controller?: boolean;
}

/** One port of an EndpointSlice, as read (API defaults not yet applied). */
export interface SlicePortInfo {
  /** The port's name; absent means `""`. */
  readonly name?: string | null;
  /** `TCP`, `UDP` or `SCTP`; absent means `TCP`. */
  readonly protocol?: string | null;
  /** The port number; absent means every port. */
  readonly port?: number | null;
  /** The application protocol. */
  readonly appProtocol?: string | null;
}

/** The parts of a `discovery.k8s.io/v1` EndpointSlice the copier reads. */
export interface SliceInfo extends KubeObject {
  /** Name, namespace, uid, version, labels and owners. */
  readonly metadata: {
    readonly name: string;
    readonly namespace: string;
    readonly uid: string;
    readonly resourceVersion?: string;
    readonly labels: Readonly<Record<string, string>>;
    readonly ownerReferences: readonly OwnerReference[];
  };
  /** `IPv4`, `IPv6` or `FQDN`. */
  readonly addressType: string;
  /** The endpoints, copied verbatim (addresses, conditions, nodeName, zone, hints, ...). */
  readonly endpoints: readonly JsonValue[];
  /** The ports. */
  readonly ports: readonly SlicePortInfo[];
}

/** `namespace/name`, the key of an object. */
export function objectKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/**
 * Checks an untrusted Service from the API.
 *
 * @throws {TypeError} When a field the copier reads has the wrong type.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeService } from "./objects.ts";
 * const svc = decodeService({ metadata: { name: "vip", namespace: "default", uid: "u" }, spec: { ports: [{ port: 443 }] } });
 * assert(svc.ports[0]?.protocol === "TCP" && !svc.hasSelector);
 * ```
 */
export function decodeService(raw: unknown): ServiceInfo {
  const meta = metadataOf(raw, "Service");
  const spec = isRecord(raw) && isRecord(raw.spec) ? raw.spec : {};
  const selector = isRecord(spec.selector) ? spec.selector : {};
  const ports = arrayOr(spec.ports, "Service", "spec.ports").map((p, i): ServicePort => {
    if (!isRecord(p) || typeof p.port !== "number") {
      throw new TypeError(`Cannot read spec.ports[${i}] of Service '${meta.name}': expected an object with a port`);
    }
    const tp = p.targetPort;
    return {
      name: typeof p.name === "string" ? p.name : "",
      protocol: typeof p.protocol === "string" && p.protocol !== "" ? p.protocol : "TCP",
      port: p.port,
      targetPort: typeof tp === "number" || (typeof tp === "string" && tp !== "") ? tp : undefined,
      appProtocol: typeof p.appProtocol === "string" ? p.appProtocol : undefined,
    };
  });
  return {
    metadata: { ...identity(meta), annotations: stringMap(meta.raw.annotations) },
    hasSelector: Object.keys(selector).length > 0,
    ports,
  };
}

/**
 * Checks an untrusted EndpointSlice from the API.
 *
 * @throws {TypeError} When a field the copier reads has the wrong type.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeSlice } from "./objects.ts";
 * const s = decodeSlice({ metadata: { name: "kubernetes", namespace: "default", uid: "u" }, addressType: "IPv4" });
 * assert(s.endpoints.length === 0);
 * ```
 */
export function decodeSlice(raw: unknown): SliceInfo {
  const meta = metadataOf(raw, "EndpointSlice");
  const obj = raw as Record<string, unknown>;
  if (typeof obj.addressType !== "string") {
    throw new TypeError(`Cannot read EndpointSlice '${meta.name}': expected an addressType`);
  }
  const endpoints = arrayOr(obj.endpoints, "EndpointSlice", "endpoints") as JsonValue[];
  const ports = arrayOr(obj.ports, "EndpointSlice", "ports").map((p, i) => {
    if (!isRecord(p)) {
      throw new TypeError(`Cannot read ports[${i}] of EndpointSlice '${meta.name}': expected an object`);
    }
    return p as SlicePortInfo;
  });
  const owners = arrayOr(meta.raw.ownerReferences, "EndpointSlice", "metadata.ownerReferences").filter(isRecord)
    .map((o): OwnerReference => ({
      apiVersion: String(o.apiVersion ?? ""),
      kind: String(o.kind ?? ""),
      name: String(o.name ?? ""),
      uid: String(o.uid ?? ""),
      ...(typeof o.controller === "boolean" ? { controller: o.controller } : {}),
    }));
  return {
    metadata: {
      ...identity(meta),
      labels: stringMap(meta.raw.labels),
      ownerReferences: owners,
    },
    addressType: obj.addressType,
    endpoints,
    ports,
  };
}

interface CheckedMeta {
  readonly name: string;
  readonly namespace: string;
  readonly uid: string;
  readonly resourceVersion: string | undefined;
  readonly raw: Record<string, unknown>;
}

function metadataOf(raw: unknown, kind: string): CheckedMeta {
  const meta = isRecord(raw) && isRecord(raw.metadata) ? raw.metadata : undefined;
  if (meta === undefined || typeof meta.name !== "string" || typeof meta.namespace !== "string") {
    throw new TypeError(`Cannot read a ${kind}: expected metadata with a name and a namespace`);
  }
  return {
    name: meta.name,
    namespace: meta.namespace,
    uid: typeof meta.uid === "string" ? meta.uid : "",
    resourceVersion: typeof meta.resourceVersion === "string" ? meta.resourceVersion : undefined,
    raw: meta,
  };
}

/** Name, namespace, uid and (when known) resourceVersion: what every decoded object's metadata starts with. */
function identity(meta: CheckedMeta): { name: string; namespace: string; uid: string; resourceVersion?: string } {
  return {
    name: meta.name,
    namespace: meta.namespace,
    uid: meta.uid,
    ...(meta.resourceVersion !== undefined ? { resourceVersion: meta.resourceVersion } : {}),
  };
}

function arrayOr(v: unknown, kind: string, field: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new TypeError(`Cannot read ${field} of a ${kind}: expected a list`);
  return v;
}

function stringMap(v: unknown): Record<string, string> {
  if (!isRecord(v)) return {};
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) if (typeof val === "string") out[k] = val;
  return out;
}

/**
 * Stable JSON text (object keys sorted), to compare what is stored with what should be.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { canonicalJson } from "./objects.ts";
 * assert(canonicalJson({ b: 1, a: [2] }) === canonicalJson({ a: [2], b: 1 }));
 * ```
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v) => {
    if (!isRecord(v)) return v;
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]]));
  });
}
