/**
 * The copier's requests beyond list+watch: JSON in, JSON out over a {@linkcode KubeTransport}, each bounded by a
 * timeout, a non-2xx answer turned into a {@linkcode KubeApiError} that carries the status code and the server's
 * message. The slice writes (server-side apply, delete with a uid precondition) live here too.
 *
 * @module
 */
import { isRecord } from "../kubernetes/types.ts";
import { MAX_ERROR_BODY_BYTES, MAX_OBJECT_BODY_BYTES, readBodyLimited } from "../kubernetes/read_body.ts";
import type { KubeTransport } from "../kubernetes/transport.ts";
import { type JsonValue, MANAGER } from "./objects.ts";

/** A non-2xx answer of the API server. */
export class KubeApiError extends Error {
  /** The error's name. */
  override name = "KubeApiError";
  /** The HTTP status. */
  readonly status: number;
  /** The `Status` reason (`NotFound`, `Conflict`, ...), when the body had one. */
  readonly reason: string | undefined;

  /**
   * Builds the error of one answer.
   *
   * @param message One line.
   * @param status The HTTP status.
   * @param reason The `Status` reason, if any.
   */
  constructor(message: string, status: number, reason: string | undefined) {
    super(message);
    this.status = status;
    this.reason = reason;
  }
}

/** One JSON request. */
export interface JsonRequest {
  /** The HTTP method. */
  readonly method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** Absolute API path with query. */
  readonly path: string;
  /** Sent as JSON (also valid YAML, for server-side apply). */
  readonly body?: JsonValue | Readonly<Record<string, JsonValue>>;
  /** @default {"application/json"} when there is a body */
  /** The body's media type. @default {"application/json"} */
  readonly contentType?: string;
}

/** The default bound of one request, response body included. */
export const REQUEST_TIMEOUT_MS = 10_000;

/** Options of {@linkcode requestJson}. */
export interface RequestJsonOptions {
  /** What is being done, for the error message: `apply EndpointSlice 'default/vip-kubernetes'`. */
  readonly what: string;
  /** Aborts the request. */
  readonly signal?: AbortSignal | undefined;
  /** Bound of the whole request, body included. @default {10000} */
  readonly timeoutMs?: number;
  /** Largest 2xx body accepted (one object). @default {4194304} */
  readonly maxBodyBytes?: number;
}

/**
 * Sends one request and reads its JSON answer. A 2xx body must be JSON (or empty) and at most `maxBodyBytes`; an
 * error body is read up to 64 KiB for its message.
 *
 * @throws {KubeApiError} On a non-2xx answer.
 * @throws {Error} On a network failure, a timeout (`no answer within N ms`), a 2xx body that is not JSON or too
 *   large, or when `signal` aborts.
 */
export async function requestJson(
  transport: KubeTransport,
  req: JsonRequest,
  options: RequestJsonOptions,
): Promise<unknown> {
  const timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT_MS;
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  const onAbort = () => ctrl.abort(options.signal?.reason);
  if (options.signal?.aborted) onAbort();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const res = await transport.request({
      method: req.method,
      path: req.path,
      signal: ctrl.signal,
      ...(req.body !== undefined
        ? { body: JSON.stringify(req.body), contentType: req.contentType ?? "application/json" }
        : {}),
    });
    if (res.ok) {
      const text = await readBodyLimited(res, options.maxBodyBytes ?? MAX_OBJECT_BODY_BYTES, options.what);
      if (text === "") return undefined;
      try {
        return JSON.parse(text);
      } catch {
        // Never read as "no object": a Lease GET that returned garbage is not a free Lease.
        throw new Error(`Cannot ${options.what}: expected JSON, found ${JSON.stringify(text.slice(0, 40))}`);
      }
    }
    let body: unknown = undefined;
    try {
      body = JSON.parse(await readBodyLimited(res, MAX_ERROR_BODY_BYTES, options.what));
    } catch {
      // Not JSON, or too large: the status says enough.
    }
    const message = isRecord(body) && typeof body.message === "string" ? `: ${body.message}` : "";
    const reason = isRecord(body) && typeof body.reason === "string" ? body.reason : undefined;
    throw new KubeApiError(
      `Cannot ${options.what}: the API server answered ${res.status}${message}`,
      res.status,
      reason,
    );
  } catch (e) {
    if (e instanceof KubeApiError || options.signal?.aborted || !ctrl.signal.aborted) throw e;
    throw new Error(`Cannot ${options.what}: no answer within ${timeoutMs} ms`, { cause: e });
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
  }
}

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

/**
 * Reads one object; `undefined` when it does not exist (404 only).
 *
 * @throws {Error} When the answer is not a JSON object (an empty or garbage 200 is an error, never "not found").
 */
export async function getObject(
  transport: KubeTransport,
  path: string,
  options: RequestJsonOptions,
): Promise<unknown> {
  let body: unknown;
  try {
    body = await requestJson(transport, { method: "GET", path }, options);
  } catch (e) {
    if (e instanceof KubeApiError && e.status === 404) return undefined;
    throw e;
  }
  if (!isRecord(body)) {
    const found = body === undefined ? "an empty body" : Array.isArray(body) ? "an array" : JSON.stringify(body);
    throw new Error(`Cannot ${options.what}: expected a JSON object, found ${found.slice(0, 40)}`);
  }
  return body;
}

function signalOf(o: { readonly signal?: AbortSignal }): { signal?: AbortSignal } {
  return o.signal === undefined ? {} : { signal: o.signal };
}
