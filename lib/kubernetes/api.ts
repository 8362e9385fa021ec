/**
 * One request to the API with a JSON answer, the way every part of the client makes it: bounded in time and in body
 * size, a body that is not JSON is an error (never "no object"), and a non-2xx answer becomes a
 * {@linkcode KubeApiError} carrying the status, the `Status` reason and the server's message.
 *
 * @module
 */
import { type Clock, systemClock } from "../clock.ts";
import { MAX_ERROR_BODY_BYTES, MAX_OBJECT_BODY_BYTES, readBodyLimited } from "./read_body.ts";
import type { KubeRequest, KubeResponse, KubeTransport } from "./transport.ts";
import { isRecord } from "./types.ts";

/** A non-2xx answer of the API server. */
export class KubeApiError extends Error {
  /** The error's name. */
  override name = "KubeApiError";
  /** The HTTP status. */
  readonly status: number;
  /** The `Status` reason (`NotFound`, `Conflict`, ...), when the body had one. */
  readonly reason: string | undefined;
  /** The `Status` message, when the body had one. */
  readonly serverMessage: string | undefined;

  /**
   * Builds the error of one answer.
   *
   * @param message One line.
   * @param status The HTTP status.
   * @param reason The `Status` reason, if any.
   * @param serverMessage The `Status` message, if any.
   */
  constructor(message: string, status: number, reason?: string, serverMessage?: string) {
    super(message);
    this.status = status;
    this.reason = reason;
    this.serverMessage = serverMessage;
  }
}

/**
 * Reads the `Status` of a failed answer (at most 64 KiB; only its reason and message are used) into a
 * {@linkcode KubeApiError}: `Cannot <what>: expected 200, found <status>[: <message>]`.
 *
 * @param what What was being done, for the message: `list '/api/v1/services'`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { responseError } from "./api.ts";
 * const e = await responseError(Response.json({ reason: "NotFound", message: "gone" }, { status: 404 }), "read it");
 * assert(e.message === "Cannot read it: expected 200, found 404: gone" && e.reason === "NotFound");
 * ```
 */
export async function responseError(res: KubeResponse, what: string): Promise<KubeApiError> {
  let body: unknown = undefined;
  try {
    // A body past the bound (or one that never ends) leaves the status line alone.
    body = JSON.parse(await readBodyLimited(res, MAX_ERROR_BODY_BYTES, what));
  } catch {
    // Not JSON, or too large: the status says enough.
  }
  const message = isRecord(body) && typeof body.message === "string" ? body.message : undefined;
  const reason = isRecord(body) && typeof body.reason === "string" ? body.reason : undefined;
  const detail = message === undefined ? "" : `: ${message}`;
  return new KubeApiError(`Cannot ${what}: expected 200, found ${res.status}${detail}`, res.status, reason, message);
}

/** One JSON request. */
export interface JsonRequest {
  /** The HTTP method. */
  readonly method: KubeRequest["method"];
  /** Absolute API path with query. */
  readonly path: string;
  /** Sent as JSON (also valid YAML, for server-side apply). */
  readonly body?: unknown;
  /** The body's media type, when there is a body. @default {"application/json"} */
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
  /** Largest 2xx body accepted. @default {4194304} (one object) */
  readonly maxBodyBytes?: number;
  /** Time for the timeout. @default {systemClock} */
  readonly clock?: Clock;
}

/**
 * Sends one request and reads its JSON answer; an empty 2xx body is `undefined`.
 *
 * @throws {KubeApiError} On a non-2xx answer.
 * @throws {Error} On a network failure, a timeout (`Cannot <what>: no answer within <N> ms`), a 2xx body that is
 *   not JSON (`Cannot <what>: expected JSON, found "<start>"`) or too large, or when `signal` aborts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { requestJson } from "./api.ts";
 * const transport = { request: () => Promise.resolve(Response.json({ kind: "Lease" })), close: () => {} };
 * const lease = await requestJson(transport, { method: "GET", path: "/x" }, { what: "read the Lease" });
 * assert((lease as { kind: string }).kind === "Lease");
 * ```
 */
export async function requestJson(
  transport: KubeTransport,
  req: JsonRequest,
  options: RequestJsonOptions,
): Promise<unknown> {
  const timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT_MS;
  const clock = options.clock ?? systemClock;
  const ctrl = new AbortController();
  const timerStop = new AbortController();
  clock.sleep(timeoutMs, timerStop.signal).then(
    () => ctrl.abort(new Error(`no answer within ${timeoutMs} ms`)),
    () => {},
  );
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
    if (!res.ok) throw await responseError(res, options.what);
    const text = await readBodyLimited(res, options.maxBodyBytes ?? MAX_OBJECT_BODY_BYTES, options.what);
    if (text === "") return undefined;
    try {
      return JSON.parse(text);
    } catch {
      // Never read as "no object": a Lease GET that returned garbage is not a free Lease.
      throw new SyntaxError(`Cannot ${options.what}: expected JSON, found ${JSON.stringify(text.slice(0, 40))}`);
    }
  } catch (e) {
    if (e instanceof KubeApiError || options.signal?.aborted || !ctrl.signal.aborted) throw e;
    throw new Error(`Cannot ${options.what}: no answer within ${timeoutMs} ms`, { cause: e });
  } finally {
    timerStop.abort();
    options.signal?.removeEventListener("abort", onAbort);
  }
}

/**
 * Reads one object; `undefined` when it does not exist (404 only).
 *
 * @throws {Error} When the answer is not a JSON object (an empty or garbage 200 is an error, never "not found").
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getObject } from "./api.ts";
 * const transport = { request: () => Promise.resolve(new Response("{}", { status: 404 })), close: () => {} };
 * assert(await getObject(transport, "/x", { what: "read it" }) === undefined);
 * ```
 */
export async function getObject(
  transport: KubeTransport,
  path: string,
  options: RequestJsonOptions,
): Promise<Record<string, unknown> | undefined> {
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
