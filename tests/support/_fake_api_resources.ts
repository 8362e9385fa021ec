/**
 * The resource types the fake API server serves, and the parsing of API paths into (type, namespace, name).
 *
 * @module
 */

/** One served resource type. */
export interface ResourceType {
  /** Plural resource name, as in URLs and RBAC rules: `endpointslices`. */
  readonly resource: string;
  /** API group, `""` for the core group. */
  readonly group: string;
  readonly version: string;
  readonly kind: string;
  readonly listKind: string;
  /** Whether writes to the main resource keep the stored `status` (the type has a status subresource). */
  readonly hasStatusSubresource: boolean;
  /** Whether the server keeps `metadata.generation` (kube-apiserver's strategy sets it for EndpointSlices only). */
  readonly hasGeneration: boolean;
  /** Whether PUT of an absent object creates it (the type strategy's `AllowCreateOnUpdate`). */
  readonly createOnUpdate: boolean;
}

/** Every type the fake serves. All are namespaced. */
export const RESOURCE_TYPES: readonly ResourceType[] = [
  {
    resource: "endpointslices",
    group: "discovery.k8s.io",
    version: "v1",
    kind: "EndpointSlice",
    listKind: "EndpointSliceList",
    hasStatusSubresource: false,
    hasGeneration: true,
    createOnUpdate: false,
  },
  {
    resource: "services",
    group: "",
    version: "v1",
    kind: "Service",
    listKind: "ServiceList",
    hasStatusSubresource: true,
    hasGeneration: false,
    createOnUpdate: true,
  },
  {
    resource: "leases",
    group: "coordination.k8s.io",
    version: "v1",
    kind: "Lease",
    listKind: "LeaseList",
    hasStatusSubresource: false,
    hasGeneration: false,
    createOnUpdate: true,
  },
  {
    resource: "events",
    group: "",
    version: "v1",
    kind: "Event",
    listKind: "EventList",
    hasStatusSubresource: false,
    hasGeneration: false,
    createOnUpdate: true,
  },
  {
    resource: "events",
    group: "events.k8s.io",
    version: "v1",
    kind: "Event",
    listKind: "EventList",
    hasStatusSubresource: false,
    hasGeneration: false,
    createOnUpdate: true,
  },
];

/** `apiVersion` of a type: `v1` or `group/version`. */
export function apiVersionOf(type: ResourceType): string {
  return type.group === "" ? type.version : `${type.group}/${type.version}`;
}

/** A unique key of a type: `endpointslices.discovery.k8s.io`, or `services` for the core group. */
export function qualifiedResource(type: ResourceType): string {
  return type.group === "" ? type.resource : `${type.resource}.${type.group}`;
}

/**
 * Finds a type by qualified resource (`endpointslices.discovery.k8s.io`, `events.events.k8s.io`), plural
 * (`endpointslices`; `events` means the core one), kind (`EndpointSlice`), or `apiVersion` + kind.
 */
export function findType(name: string, apiVersion?: string): ResourceType | undefined {
  if (apiVersion !== undefined) {
    return RESOURCE_TYPES.find((t) => t.kind === name && apiVersionOf(t) === apiVersion);
  }
  return RESOURCE_TYPES.find((t) => qualifiedResource(t) === name) ??
    RESOURCE_TYPES.find((t) => t.resource === name || t.kind === name);
}

/** A resource path, parsed. */
export interface ResourcePath {
  readonly type: ResourceType;
  /** Absent for a cluster-wide collection (`/api/v1/services`). */
  readonly namespace?: string;
  /** Absent for a collection. */
  readonly name?: string;
}

/**
 * Parses `/api/v1/[namespaces/NS/]RESOURCE[/NAME]` and `/apis/GROUP/VERSION/[namespaces/NS/]RESOURCE[/NAME]`.
 *
 * @returns undefined when the path names no served resource
 */
export function parseResourcePath(pathname: string): ResourcePath | undefined {
  const parts = pathname.split("/").slice(1).map((p) => decodeURIComponent(p));
  let group: string;
  let version: string;
  let rest: string[];
  if (parts[0] === "api") {
    group = "";
    version = parts[1] ?? "";
    rest = parts.slice(2);
  } else if (parts[0] === "apis") {
    group = parts[1] ?? "";
    version = parts[2] ?? "";
    rest = parts.slice(3);
  } else {
    return undefined;
  }
  let namespace: string | undefined;
  if (rest[0] === "namespaces" && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  if (rest.length < 1 || rest.length > 2 || rest.some((p) => p === "")) return undefined;
  if (namespace === undefined && rest.length === 2) return undefined;
  const type = RESOURCE_TYPES.find((t) => t.group === group && t.version === version && t.resource === rest[0]);
  if (type === undefined) return undefined;
  const out: { type: ResourceType; namespace?: string; name?: string } = { type };
  if (namespace !== undefined) out.namespace = namespace;
  if (rest[1] !== undefined) out.name = rest[1];
  return out;
}

/** The collection path of a type in a namespace (or cluster-wide). */
export function collectionPath(type: ResourceType, namespace?: string): string {
  const base = type.group === "" ? `/api/${type.version}` : `/apis/${type.group}/${type.version}`;
  return namespace === undefined ? `${base}/${type.resource}` : `${base}/namespaces/${namespace}/${type.resource}`;
}
