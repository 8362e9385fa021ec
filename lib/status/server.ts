/**
 * The health port: `/healthz` (the accept loop still accepts), `/readyz` (some upstream is healthy and we are not
 * shutting down), `/upstreams` (JSON state of every upstream) and `/metrics` (Prometheus text).
 *
 * @module
 */
import { PROMETHEUS_TEXT } from "../prometheus.ts";
import type { UpstreamSnapshot } from "../upstream/upstream.ts";

/** What the status handler reads. */
export interface StatusSource {
  /** Proves the proxy listener still accepts (a self-connect through the accept loop). */
  live(): Promise<boolean>;
  /** Whether the proxy should get traffic now. */
  ready(): boolean;
  /** Every upstream's state. */
  upstreams(): UpstreamSnapshot[];
  /** The Prometheus exposition text. */
  metrics(): string;
}

const TEXT = { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" };
const JSON_TYPE = { "content-type": "application/json", "cache-control": "no-store" };

function text(status: number, body: string, head: boolean, extra: HeadersInit = {}): Response {
  return new Response(head ? null : `${body}\n`, { status, headers: { ...TEXT, ...extra } });
}

/**
 * Builds the handler of the health port.
 *
 * @example
 * ```ts
 * import { statusHandler } from "./server.ts";
 * const handler = statusHandler({
 *   live: () => Promise.resolve(true),
 *   ready: () => false,
 *   upstreams: () => [],
 *   metrics: () => "",
 * });
 * const res = await handler(new Request("http://localhost/readyz"));
 * console.assert(res.status === 503);
 * ```
 */
export function statusHandler(source: StatusSource): (req: Request) => Promise<Response> {
  return async (req) => {
    const path = new URL(req.url).pathname;
    const head = req.method === "HEAD";
    const routes: Record<string, boolean> = { "/healthz": true, "/readyz": true, "/upstreams": true, "/metrics": true };
    if (!routes[path]) return text(404, "not found", head);
    if (req.method !== "GET" && !head) return text(405, "method not allowed", false, { allow: "GET, HEAD" });
    switch (path) {
      case "/healthz":
        return (await source.live()) ? text(200, "ok", head) : text(503, "listener is not accepting", head);
      case "/readyz":
        return source.ready() ? text(200, "ok", head) : text(503, "no healthy upstream", head);
      case "/metrics":
        return new Response(head ? null : source.metrics(), {
          status: 200,
          headers: { "content-type": PROMETHEUS_TEXT, "cache-control": "no-store" },
        });
      default: {
        const body = JSON.stringify({ upstreams: source.upstreams() }, null, 2);
        return new Response(head ? null : `${body}\n`, { status: 200, headers: JSON_TYPE });
      }
    }
  };
}
