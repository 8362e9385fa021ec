/**
 * The copier's two HTTP faces, as controller-runtime's: `/healthz` and `/readyz` on the probe address, Prometheus
 * text on `/metrics` of the metrics address; and the listener for a Go-style bind address (`:8081` means every
 * interface).
 *
 * @module
 */
import { endpointKey } from "../endpoint.ts";
import { errorMessage } from "../errors.ts";
import type { BindAddress } from "../config/copier_values.ts";
import { metricsResponse, refuseMethod, textResponse as text } from "../http_responses.ts";

/** What the probe handler reads. */
export interface ProbeSource {
  /** `undefined` when ready, else why not (one line). */
  notReadyReason(): string | undefined;
}

/**
 * The probe handler: `/healthz` answers 200 while the process serves; `/readyz` 200 when ready, else 503 and why.
 *
 * @example
 * ```ts
 * import { probeHandler } from "./http.ts";
 * const handler = probeHandler({ notReadyReason: () => "caches are not synced" });
 * console.assert((await handler(new Request("http://localhost/readyz"))).status === 503);
 * ```
 */
export function probeHandler(source: ProbeSource): (req: Request) => Response {
  return (req) => {
    const path = new URL(req.url).pathname;
    const head = req.method === "HEAD";
    if (path !== "/healthz" && path !== "/readyz") return text(404, "not found", head);
    const refused = refuseMethod(req);
    if (refused !== undefined) return refused;
    if (path === "/healthz") return text(200, "ok", head);
    const reason = source.notReadyReason();
    return reason === undefined ? text(200, "ok", head) : text(503, reason, head);
  };
}

/**
 * The metrics handler: `/metrics` answers the exposition text.
 *
 * @example
 * ```ts
 * import { metricsHandler } from "./http.ts";
 * const res = metricsHandler(() => "up 1\n")(new Request("http://localhost/metrics"));
 * console.assert(res.status === 200);
 * ```
 */
export function metricsHandler(render: () => string): (req: Request) => Response {
  return (req) => {
    const head = req.method === "HEAD";
    if (new URL(req.url).pathname !== "/metrics") return text(404, "not found", head);
    const refused = refuseMethod(req);
    if (refused !== undefined) return refused;
    return metricsResponse(render(), head);
  };
}

/**
 * Serves `handler` on `address`. An empty host listens on `::` (dual-stack on Linux), falling back to `0.0.0.0`
 * where IPv6 is off, as Go's `:8081` does.
 *
 * @throws {Error} When the address cannot be bound: `Cannot listen on ':8081' for the probes: ...`.
 */
export function serveHttp(
  address: BindAddress,
  what: string,
  handler: (req: Request) => Response | Promise<Response>,
): Deno.HttpServer<Deno.NetAddr> {
  const hosts = address.host === "" ? ["::", "0.0.0.0"] : [address.host];
  let last: unknown;
  for (const hostname of hosts) {
    try {
      return Deno.serve({ hostname, port: address.port, onListen: () => {} }, handler);
    } catch (e) {
      last = e;
      if (e instanceof Deno.errors.AddrInUse || e instanceof Deno.errors.NotCapable) break;
    }
  }
  throw new Error(`Cannot listen on '${endpointKey(address)}' for ${what}: ${errorMessage(last)}`);
}
