/**
 * The copier's pure plan for one target: which slices should exist and what must be written or deleted to get there.
 * No I/O: the controller feeds it cached objects and executes the plan.
 *
 * @module
 */
import {
  canonicalJson,
  type JsonValue,
  LABEL_MANAGED_BY,
  LABEL_SERVICE_NAME,
  LABEL_SOURCE,
  MANAGER,
  type OwnerReference,
  type ServiceInfo,
  type SliceInfo,
  type SlicePortInfo,
} from "./objects.ts";
import { copyName, sourceLabelValue } from "./slice_name.ts";
import type { CopierWarning, ServiceRef } from "./targets.ts";

/** A port of a copy. */
export interface CopyPort {
  /** The Service port's name. */
  readonly name: string;
  /** The Service port's protocol. */
  readonly protocol: string;
  /** `targetPort` when numeric, else `port`. */
  readonly port: number;
  /** The Service port's `appProtocol`. */
  readonly appProtocol?: string;
}

/** One slice as it should be. */
export interface DesiredSlice {
  /** The target's namespace. */
  readonly namespace: string;
  /** `<target>-<source slice>`, maybe shortened. */
  readonly name: string;
  /** The service-name, managed-by and source labels. */
  readonly labels: Readonly<Record<string, string>>;
  /** The target Service, as controller. */
  readonly ownerReference: OwnerReference;
  /** The source slice's address type. */
  readonly addressType: string;
  /** The source slice's endpoints, verbatim. */
  readonly endpoints: readonly JsonValue[];
  /** The target Service's ports. */
  readonly ports: readonly CopyPort[];
  /** The source slice's name. */
  readonly source: string;
}

/** One write. */
export type SliceAction =
  | { readonly kind: "apply"; readonly slice: DesiredSlice; readonly why: "create" | "update" | "recreate" }
  | { readonly kind: "delete"; readonly name: string; readonly uid: string; readonly why: string };

/** The input of {@linkcode planTarget}. */
export interface PlanInput {
  /** The target Service. */
  readonly target: ServiceInfo;
  /** Its source Service. */
  readonly source: ServiceRef;
  /** The source's slices (a synced cache), our own copies excluded. */
  readonly sourceSlices: readonly SliceInfo[];
  /** Our copies for this target, as stored. */
  readonly copies: readonly SliceInfo[];
  /** Names of our copies for other targets in the target's namespace: never reused. */
  readonly takenNames?: ReadonlySet<string>;
}

/** What {@linkcode planTarget} decided. */
export interface TargetPlan {
  /** The slices that should exist (empty when `kept`). */
  readonly desired: readonly DesiredSlice[];
  /** Writes, in order: deletes before a re-create, then applies, then deletes of stale copies. */
  readonly actions: readonly SliceAction[];
  /** Warnings to log and record as Events. */
  readonly warnings: readonly CopierWarning[];
  /** Set when the source has no endpoints: the copies are kept as they are, and this says why. */
  readonly kept?: string;
}

/**
 * Plans one target: a copy per source slice that has endpoints, named `<target>-<source slice>`, carrying the
 * Service's ports (`targetPort` when numeric, else `port`); copies whose source is gone are deleted, an address type
 * change is a delete then a create, and a copy that already matches is left alone. When the source has no endpoints
 * at all, nothing is written: the last copy stays.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { planTarget } from "./reconcile.ts";
 * import { decodeService, decodeSlice } from "./objects.ts";
 * const target = decodeService({
 *   metadata: { name: "vip", namespace: "default", uid: "u1" },
 *   spec: { ports: [{ name: "https", port: 443, targetPort: 6443 }] },
 * });
 * const src = decodeSlice({
 *   metadata: { name: "kubernetes", namespace: "default", uid: "u2" },
 *   addressType: "IPv4",
 *   endpoints: [{ addresses: ["10.0.0.1"] }],
 * });
 * const plan = planTarget({ target, source: { namespace: "default", name: "kubernetes" }, sourceSlices: [src], copies: [] });
 * assert(plan.actions[0]?.kind === "apply" && plan.desired[0]?.ports[0]?.port === 6443);
 * ```
 */
export function planTarget(input: PlanInput): TargetPlan {
  const { target, source } = input;
  const { ports, warnings } = copyPorts(target);
  const withEndpoints = input.sourceSlices.filter((s) => s.endpoints.length > 0);
  if (withEndpoints.length === 0) {
    const what = input.sourceSlices.length === 0 ? "no EndpointSlices" : "no endpoints";
    const kept = `the source Service '${source.namespace}/${source.name}' has ${what}: keeping the last copy ` +
      `(${input.copies.length} ${input.copies.length === 1 ? "slice" : "slices"})`;
    return { desired: [], actions: [], warnings: [...warnings, { reason: "EmptySource", message: kept }], kept };
  }
  const owner: OwnerReference = {
    apiVersion: "v1",
    kind: "Service",
    name: target.metadata.name,
    uid: target.metadata.uid,
    controller: true,
  };
  const taken = input.takenNames ?? new Set<string>();
  const desired = withEndpoints.map((s): DesiredSlice => {
    const plain = copyName(target.metadata.name, s.metadata.name);
    return {
      namespace: target.metadata.namespace,
      name: taken.has(plain) ? copyName(target.metadata.name, s.metadata.name, true) : plain,
      labels: {
        [LABEL_SERVICE_NAME]: target.metadata.name,
        [LABEL_MANAGED_BY]: MANAGER,
        [LABEL_SOURCE]: sourceLabelValue(s.metadata.name),
      },
      ownerReference: owner,
      addressType: s.addressType,
      endpoints: s.endpoints,
      ports,
      source: s.metadata.name,
    };
  }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  const stored = new Map(input.copies.map((c) => [c.metadata.name, c]));
  const recreate: SliceAction[] = [];
  const applies: SliceAction[] = [];
  for (const d of desired) {
    const have = stored.get(d.name);
    if (have === undefined) {
      applies.push({ kind: "apply", slice: d, why: "create" });
    } else if (have.addressType !== d.addressType) {
      const why = `its address type changes from ${have.addressType} to ${d.addressType}`;
      recreate.push({ kind: "delete", name: d.name, uid: have.metadata.uid, why });
      applies.push({ kind: "apply", slice: d, why: "recreate" });
    } else if (!copyIsCurrent(have, d)) {
      applies.push({ kind: "apply", slice: d, why: "update" });
    }
  }
  const wanted = new Set(desired.map((d) => d.name));
  const stale = input.copies.filter((c) => !wanted.has(c.metadata.name)).map((c): SliceAction => ({
    kind: "delete",
    name: c.metadata.name,
    uid: c.metadata.uid,
    why: `its source slice '${c.metadata.labels[LABEL_SOURCE] ?? "?"}' is gone or has no endpoints`,
  }));
  return { desired, actions: [...recreate, ...applies, ...stale], warnings };
}

/** Deletes every copy of a Service that is no longer a target. */
export function planCleanup(copies: readonly SliceInfo[], why: string): SliceAction[] {
  return copies.map((c) => ({ kind: "delete", name: c.metadata.name, uid: c.metadata.uid, why }));
}

/** The ports of every copy of `target`, and a warning per named `targetPort`. */
export function copyPorts(target: ServiceInfo): { ports: CopyPort[]; warnings: CopierWarning[] } {
  const warnings: CopierWarning[] = [];
  const ports = target.ports.map((p): CopyPort => {
    let port = p.port;
    if (typeof p.targetPort === "number") {
      port = p.targetPort;
    } else if (typeof p.targetPort === "string") {
      warnings.push({
        reason: "NamedTargetPort",
        message: `Service '${target.metadata.namespace}/${target.metadata.name}' port '${p.name || p.port}' has ` +
          `the named targetPort '${p.targetPort}', which means nothing without a selector: the copies use port ${p.port}`,
      });
    }
    return {
      name: p.name,
      protocol: p.protocol,
      port,
      ...(p.appProtocol !== undefined ? { appProtocol: p.appProtocol } : {}),
    };
  });
  return { ports, warnings };
}

/** Whether a stored copy already has what `desired` says (other writers' extra labels are ignored). */
export function copyIsCurrent(have: SliceInfo, desired: DesiredSlice): boolean {
  for (const [k, v] of Object.entries(desired.labels)) if (have.metadata.labels[k] !== v) return false;
  if (have.addressType !== desired.addressType) return false;
  if (canonicalJson(have.endpoints) !== canonicalJson(desired.endpoints)) return false;
  if (canonicalJson(have.ports.map(defaultedPort)) !== canonicalJson(desired.ports.map(defaultedPort))) return false;
  const own = desired.ownerReference;
  const refs = have.metadata.ownerReferences;
  if (!refs.some((r) => r.uid === own.uid && r.kind === own.kind && r.name === own.name && r.controller === true)) {
    return false;
  }
  // A reference to an earlier Service of the same name (deleted and re-created) must go.
  return !refs.some((r) => r.kind === "Service" && r.name === own.name && r.uid !== own.uid);
}

/** A port with the API server's defaults applied (name `""`, protocol `TCP`), for comparison. */
function defaultedPort(p: SlicePortInfo | CopyPort): Record<string, JsonValue> {
  return {
    name: p.name ?? "",
    protocol: p.protocol ?? "TCP",
    port: p.port ?? null,
    appProtocol: p.appProtocol ?? null,
  };
}

/**
 * The server-side apply body of a copy: every field the copier owns, and nothing else.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sliceManifest } from "./reconcile.ts";
 * const body = sliceManifest({
 *   namespace: "default", name: "vip-kubernetes", labels: {}, source: "kubernetes",
 *   ownerReference: { apiVersion: "v1", kind: "Service", name: "vip", uid: "u", controller: true },
 *   addressType: "IPv4", endpoints: [{ addresses: ["10.0.0.1"] }], ports: [],
 * });
 * assert(body.kind === "EndpointSlice");
 * ```
 */
export function sliceManifest(d: DesiredSlice): Record<string, JsonValue> {
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: {
      name: d.name,
      namespace: d.namespace,
      labels: d.labels,
      ownerReferences: [{ ...d.ownerReference }],
    },
    addressType: d.addressType,
    endpoints: d.endpoints,
    ports: d.ports.map((p) => ({ ...p })),
  };
}
