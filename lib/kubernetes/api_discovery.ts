/**
 * API discovery: which versions of an API group the server serves (`GET /apis/<group>`), for a client that must work
 * across Kubernetes releases (EndpointSlices are `discovery.k8s.io/v1` from 1.21, only `v1beta1` before).
 *
 * @module
 */
import { getObject, type RequestJsonOptions } from "./api.ts";
import type { KubeTransport } from "./transport.ts";
import { isRecord } from "./types.ts";

/**
 * The versions of `group` the server serves, in the server's order of preference (its `preferredVersion` first);
 * `[]` when the group is not served at all (404).
 *
 * @throws {Error} When the server cannot be asked, or answers something that is not an `APIGroup`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { servedVersions } from "./api_discovery.ts";
 * const group = {
 *   kind: "APIGroup",
 *   name: "discovery.k8s.io",
 *   versions: [{ groupVersion: "discovery.k8s.io/v1beta1", version: "v1beta1" }],
 *   preferredVersion: { groupVersion: "discovery.k8s.io/v1beta1", version: "v1beta1" },
 * };
 * const transport = { request: () => Promise.resolve(Response.json(group)), close: () => {} };
 * assert.deepEqual(await servedVersions(transport, "discovery.k8s.io"), ["v1beta1"]);
 * ```
 */
export async function servedVersions(
  transport: KubeTransport,
  group: string,
  options: Omit<RequestJsonOptions, "what"> = {},
): Promise<string[]> {
  const what = `read API discovery of '${group}'`;
  const body = await getObject(transport, `/apis/${encodeURIComponent(group)}`, { ...options, what });
  if (body === undefined) return [];
  if (!Array.isArray(body.versions)) throw new TypeError(`Cannot ${what}: expected an APIGroup with versions`);
  const versions = body.versions.flatMap((v) => isRecord(v) && typeof v.version === "string" ? [v.version] : []);
  const preferred = isRecord(body.preferredVersion) ? body.preferredVersion.version : undefined;
  return typeof preferred === "string" && versions.includes(preferred)
    ? [preferred, ...versions.filter((v) => v !== preferred)]
    : versions;
}
