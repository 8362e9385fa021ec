/**
 * The health port: `/healthz` (the accept loop still accepts), `/readyz` (some upstream is healthy and we are not
 * shutting down), `/upstreams` (JSON state of every upstream) and `/metrics` (Prometheus text).
 *
 * @module
 */
import { metricsResponse, refuseMethod, textResponse as text } from "../net/http_responses.ts";
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

const JSON_TYPE = { "content-type": "application/json", "cache-control": "no-store" };

/**
 * Builds the handler of the health port.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { statusHandler } from "./server.ts";
 * const handler = statusHandler({
 *   live: () => Promise.resolve(true),
 *   ready: () => false,
 *   upstreams: () => [],
 *   metrics: () => "",
 * });
 * const res = await handler(new Request("http://localhost/readyz"));
 * assert(res.status === 503);
 * ```
 */
export function statusHandler(source: StatusSource): (req: Request) => Promise<Response> {
  return async (req) => {
    const path = new URL(req.url).pathname;
    const head = req.method === "HEAD";
    const routes: Record<string, boolean> = {
      "/healthz": true,
      "/readyz": true,
      "/upstreams": true,
      "/metrics": true,
      "/instance": source.instance !== undefined,
    };
    if (!routes[path]) return text(404, "not found", head);
    const refused = refuseMethod(req);
    if (refused !== undefined) return refused;
    switch (path) {
      case "/healthz":
        return (await source.live()) ? text(200, "ok", head) : text(503, "listener is not accepting", head);
      case "/readyz":
        if (source.shuttingDown?.()) return text(503, "shutting down", head);
        return source.ready() ? text(200, "ok", head) : text(503, "no healthy upstream", head);
      case "/metrics":
        return metricsResponse(source.metrics(), head);
      case "/instance": {
        source.onInstanceAsked?.();
        const body = JSON.stringify(source.instance?.());
        return new Response(head ? null : `${body}\n`, { status: 200, headers: JSON_TYPE });
      }
      default: {
        const body = JSON.stringify({ upstreams: source.upstreams() }, null, 2);
        return new Response(head ? null : `${body}\n`, { status: 200, headers: JSON_TYPE });
      }
    }
  };
}
