/**
 * The copier's EndpointSlice paths and writes: server-side apply, and delete with a uid precondition, over the
 * client's one JSON request path ({@linkcode requestJson}).
 *
 * @module
 */
import { KubeApiError, requestJson } from "../kubernetes/api.ts";
import type { KubeTransport } from "../kubernetes/transport.ts";
import { type JsonValue, MANAGER } from "./objects.ts";

/** The collection path of EndpointSlices in a namespace. */
export function slicesPath(namespace: string): string {
  return `/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/endpointslices`;
}

/** The path of one EndpointSlice. */
export function slicePath(namespace: string, name: string): string {
  return `${slicesPath(namespace)}/${encodeURIComponent(name)}`;
}

/**
 * Writes a slice with server-side apply (`fieldManager=extractedprism-endpoint-copier`, `force=true`): creates it,
 * or takes its fields over from any other manager (the Go operator's `endpoint-copier-operator` included).
 */
export async function applySlice(
  transport: KubeTransport,
  manifest: Readonly<Record<string, JsonValue>>,
  options: { readonly namespace: string; readonly name: string; readonly signal?: AbortSignal },
): Promise<void> {
  const q = new URLSearchParams({ fieldManager: MANAGER, force: "true" });
  await requestJson(transport, {
    method: "PATCH",
    path: `${slicePath(options.namespace, options.name)}?${q}`,
    body: manifest,
    contentType: "application/apply-patch+yaml",
  }, { what: `apply EndpointSlice '${options.namespace}/${options.name}'`, ...signalOf(options) });
}

/**
 * Deletes a slice if it is still the object with `uid` (so a stale cache never deletes its replacement).
 *
 * @returns `false` when it was already gone.
 * @throws {KubeApiError} 409 when the slice now stored has another uid.
 */
export async function deleteSlice(
  transport: KubeTransport,
  options: { readonly namespace: string; readonly name: string; readonly uid: string; readonly signal?: AbortSignal },
): Promise<boolean> {
  try {
    await requestJson(transport, {
      method: "DELETE",
      path: slicePath(options.namespace, options.name),
      body: {
        apiVersion: "v1",
        kind: "DeleteOptions",
        ...(options.uid ? { preconditions: { uid: options.uid } } : {}),
      },
    }, { what: `delete EndpointSlice '${options.namespace}/${options.name}'`, ...signalOf(options) });
    return true;
  } catch (e) {
    if (e instanceof KubeApiError && e.status === 404) return false;
    throw e;
  }
}

function signalOf(o: { readonly signal?: AbortSignal }): { signal?: AbortSignal } {
  return o.signal === undefined ? {} : { signal: o.signal };
}
