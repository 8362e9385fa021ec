/**
 * The health port: `/healthz` (the accept loop still accepts), `/readyz` (some upstream is healthy and we are not
 * shutting down), `/upstreams` (JSON state of every upstream) and `/metrics` (Prometheus text).
 *
 * @module
 */
import { jsonAnswer, metricsAnswer, refuseMethod, textAnswer as text } from "../net/http_responses.ts";
import type { HttpAnswer, HttpRequest } from "../net/http_server.ts";
import type { UpstreamSnapshot } from "../upstream/upstream.ts";

/** What the status handler reads. */
export interface StatusSource {
  /** Proves the proxy listener still accepts (a self-connect through the accept loop). */
  live(): Promise<boolean>;
  /** Whether the proxy should get traffic now. */
  ready(): boolean;
  /** Whether a stop has begun (then `/readyz` says so rather than blaming the upstreams). @default never */
  shuttingDown?(): boolean;
  /** Who this instance is, for `/instance` (how instances sharing the port tell each other apart). @default none */
  instance?(): { readonly instance: string; readonly startedAt: number };
  /** Called for each `/instance` request answered (another instance may share the port and be looking). @default none */
  onInstanceAsked?(): void;
  /** Every upstream's state. */
  upstreams(): UpstreamSnapshot[];
  /** The Prometheus exposition text. */
  metrics(): string;
}

/**
 * Builds the handler of the health port.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { requestFor } from "../net/http_server.ts";
 * import { statusHandler } from "./server.ts";
 * const handler = statusHandler({
 *   live: () => Promise.resolve(true),
 *   ready: () => false,
 *   upstreams: () => [],
 *   metrics: () => "",
 * });
 * const answer = await handler(requestFor("/readyz"));
 * assert(answer.status === 503);
 * ```
 */
export function statusHandler(source: StatusSource): (req: HttpRequest) => Promise<HttpAnswer> {
  return async (req) => {
    const path = req.path;
    const known = path === "/healthz" || path === "/readyz" || path === "/upstreams" || path === "/metrics" ||
      (path === "/instance" && source.instance !== undefined);
    if (!known) return text(404, "not found");
    const refused = refuseMethod(req);
    if (refused !== undefined) return refused;
    switch (path) {
      case "/healthz":
        return (await source.live()) ? text(200, "ok") : text(503, "listener is not accepting");
      case "/readyz":
        if (source.shuttingDown?.()) return text(503, "shutting down");
        return source.ready() ? text(200, "ok") : text(503, "no healthy upstream");
      case "/metrics":
        return metricsAnswer(source.metrics());
      case "/instance":
        source.onInstanceAsked?.();
        return jsonAnswer(source.instance?.());
      default:
        return jsonAnswer({ upstreams: source.upstreams() }, 2);
    }
  };
}
