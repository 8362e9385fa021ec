/**
 * The answers both HTTP faces give (the proxy's health port and the copier's probe and metrics addresses): plain
 * text that no cache keeps, `405` for anything but `GET` and `HEAD`, JSON, and the Prometheus exposition. The server
 * drops the body of an answer to `HEAD`, so none of these need to know.
 *
 * @module
 */
import { PROMETHEUS_TEXT } from "../prometheus.ts";
import type { HttpAnswer, HttpRequest } from "./_http_head.ts";

const TEXT = { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" };
const JSON_TYPE = { "content-type": "application/json", "cache-control": "no-store" };

/**
 * A plain-text answer: `body` and a newline.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { textAnswer } from "./http_responses.ts";
 * const answer = textAnswer(503, "no healthy upstream");
 * assert(answer.status === 503 && answer.body === "no healthy upstream\n");
 * ```
 */
export function textAnswer(status: number, body: string, headers: Readonly<Record<string, string>> = {}): HttpAnswer {
  return { status, headers: { ...TEXT, ...headers }, body: `${body}\n` };
}

/**
 * `405 method not allowed` for a method other than `GET` and `HEAD`, else `undefined`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { requestFor } from "./_http_head.ts";
 * import { refuseMethod } from "./http_responses.ts";
 * assert(refuseMethod(requestFor("/", "POST"))?.status === 405);
 * assert(refuseMethod(requestFor("/", "HEAD")) === undefined);
 * ```
 */
export function refuseMethod(req: HttpRequest): HttpAnswer | undefined {
  if (req.method === "GET") return undefined;
  return textAnswer(405, "method not allowed", { allow: "GET, HEAD" });
}

/**
 * A JSON answer: `value` serialised (with `indent` spaces, if any) and a newline.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { jsonAnswer } from "./http_responses.ts";
 * assert.equal(jsonAnswer({ a: 1 }).body, '{"a":1}\n');
 * ```
 */
export function jsonAnswer(value: unknown, indent?: number): HttpAnswer {
  return { status: 200, headers: JSON_TYPE, body: `${JSON.stringify(value, null, indent)}\n` };
}

/**
 * The Prometheus exposition text as an answer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { metricsAnswer } from "./http_responses.ts";
 * assert(metricsAnswer("up 1\n").headers?.["content-type"]?.startsWith("text/plain; version=0.0.4"));
 * ```
 */
export function metricsAnswer(body: string): HttpAnswer {
  return { status: 200, headers: { "content-type": PROMETHEUS_TEXT, "cache-control": "no-store" }, body };
}
