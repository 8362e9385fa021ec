/**
 * What every part of the client knows about an object of the Kubernetes API: its metadata, and how untrusted JSON is
 * told apart from an object.
 *
 * @module
 */

/** The metadata every listed object carries. */
export interface KubeObjectMeta {
  /** The object's name, unique in its namespace. */
  readonly name: string;
  /** The namespace; absent for cluster-scoped objects. */
  readonly namespace?: string;
  /** The version of this object, for resuming a watch. */
  readonly resourceVersion?: string;
}

/** An object of the Kubernetes API, as far as the loop needs to know it. */
export interface KubeObject {
  /** Name, namespace and version. */
  readonly metadata: KubeObjectMeta;
}

/**
 * Whether `v` is a plain object (not an array, not null): the first check of any JSON that came off the wire.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isRecord } from "./types.ts";
 * assert(isRecord({ a: 1 }) && !isRecord([]) && !isRecord(null));
 * ```
 */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
