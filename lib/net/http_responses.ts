/**
 * The answers both HTTP faces give (the proxy's health port and the copier's probe and metrics addresses): plain
 * text that no cache keeps, `405` for anything but `GET` and `HEAD`, and the Prometheus exposition.
 *
 * @module
 */
import { PROMETHEUS_TEXT } from "../prometheus.ts";

const TEXT = { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" };

/**
 * A plain-text answer: `body` and a newline, or no body for a `HEAD` request.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { textResponse } from "./http_responses.ts";
 * const res = textResponse(503, "no healthy upstream", false);
 * assert(res.status === 503 && (await res.text()) === "no healthy upstream\n");
 * ```
 */
export function textResponse(status: number, body: string, head: boolean, headers: HeadersInit = {}): Response {
  return new Response(head ? null : `${body}\n`, { status, headers: { ...TEXT, ...headers } });
}

/**
 * `405 method not allowed` for a method other than `GET` and `HEAD`, else `undefined`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { refuseMethod } from "./http_responses.ts";
 * assert(refuseMethod(new Request("http://localhost/", { method: "POST" }))?.status === 405);
 * assert(refuseMethod(new Request("http://localhost/")) === undefined);
 * ```
 */
export function refuseMethod(req: Request): Response | undefined {
  if (req.method === "GET" || req.method === "HEAD") return undefined;
  return textResponse(405, "method not allowed", false, { allow: "GET, HEAD" });
}

/**
 * The Prometheus exposition text as an answer (no body for `HEAD`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { metricsResponse } from "./http_responses.ts";
 * assert(metricsResponse("up 1\n", false).headers.get("content-type")?.startsWith("text/plain; version=0.0.4"));
 * ```
 */
export function metricsResponse(body: string, head: boolean): Response {
  return new Response(head ? null : body, {
    status: 200,
    headers: { "content-type": PROMETHEUS_TEXT, "cache-control": "no-store" },
  });
}
