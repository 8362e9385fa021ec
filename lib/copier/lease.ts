/**
 * The `coordination.k8s.io/v1` Lease as leader election reads and writes it: its spec, the MicroTime format its
 * timestamps must have (exactly six fractional digits, else the API server answers 400), and the request body.
 *
 * @module
 */
import { isRecord } from "../kubernetes/types.ts";
import { type JsonValue } from "./objects.ts";

/** The Lease's spec. */
export interface LeaseRecord {
  /** Who holds the Lease; `""` when it is free (released). */
  readonly holderIdentity: string;
  /** How long the holder's hold lasts without a renewal; 0 when unset. */
  readonly leaseDurationSeconds: number;
  /** When the holder took the Lease (MicroTime). */
  readonly acquireTime: string | undefined;
  /** When the holder last renewed it (MicroTime). */
  readonly renewTime: string | undefined;
  /** How many times the holder changed. */
  readonly leaseTransitions: number;
}

/**
 * Formats a wall-clock time as a Kubernetes MicroTime: RFC 3339 with exactly six fractional digits.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { microTime } from "./lease.ts";
 * assert(microTime(Date.UTC(2026, 0, 1)) === "2026-01-01T00:00:00.000000Z");
 * ```
 */
export function microTime(ms: number): string {
  const whole = Math.floor(ms);
  const micros = Math.floor((ms - whole) * 1000);
  return new Date(whole).toISOString().replace(
    /\.(\d{3})Z$/,
    (_, m: string) => `.${m}${String(micros).padStart(3, "0")}Z`,
  );
}

/** Reads a Lease from the API: its spec and resourceVersion (missing fields read as empty). */
export function readLease(raw: unknown): { record: LeaseRecord; resourceVersion: string } {
  const meta = isRecord(raw) && isRecord(raw.metadata) ? raw.metadata : {};
  const spec = isRecord(raw) && isRecord(raw.spec) ? raw.spec : {};
  const str = (v: unknown) => (typeof v === "string" && v !== "" ? v : undefined);
  const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : 0);
  return {
    resourceVersion: typeof meta.resourceVersion === "string" ? meta.resourceVersion : "",
    record: {
      holderIdentity: typeof spec.holderIdentity === "string" ? spec.holderIdentity : "",
      leaseDurationSeconds: num(spec.leaseDurationSeconds),
      acquireTime: str(spec.acquireTime),
      renewTime: str(spec.renewTime),
      leaseTransitions: num(spec.leaseTransitions),
    },
  };
}

/**
 * The body of a Lease create or update; with `resourceVersion`, an update that fails with 409 if the Lease changed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { leaseBody, readLease } from "./lease.ts";
 * const record = { holderIdentity: "a", leaseDurationSeconds: 15, acquireTime: undefined, renewTime: undefined, leaseTransitions: 0 };
 * assert(readLease(leaseBody({ namespace: "kube-system", name: "lock", record })).record.holderIdentity === "a");
 * ```
 */
export function leaseBody(o: {
  readonly namespace: string;
  readonly name: string;
  readonly record: LeaseRecord;
  readonly resourceVersion?: string | undefined;
}): Record<string, JsonValue> {
  const r = o.record;
  const spec: Record<string, JsonValue> = {
    holderIdentity: r.holderIdentity,
    leaseDurationSeconds: r.leaseDurationSeconds,
    leaseTransitions: r.leaseTransitions,
  };
  if (r.acquireTime !== undefined) spec.acquireTime = r.acquireTime;
  if (r.renewTime !== undefined) spec.renewTime = r.renewTime;
  return {
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: {
      name: o.name,
      namespace: o.namespace,
      ...(o.resourceVersion !== undefined ? { resourceVersion: o.resourceVersion } : {}),
    },
    spec,
  };
}
