/**
 * The copier's two HTTP faces, as controller-runtime's: `/healthz` and `/readyz` on the probe address, Prometheus
 * text on `/metrics` of the metrics address; and their server for a Go-style bind address (`:8081` means every
 * interface).
 *
 * @module
 */
import { endpointKey } from "../endpoint.ts";
import { errorMessage } from "../errors.ts";
import type { BindAddress } from "../config/copier_values.ts";
import { metricsAnswer, refuseMethod, textAnswer as text } from "../net/http_responses.ts";
import { type HttpAnswer, type HttpHandler, type HttpRequest, HttpServer } from "../net/http_server.ts";

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
 * import assert from "node:assert/strict";
 * import { requestFor } from "../net/http_server.ts";
 * import { probeHandler } from "./http.ts";
 * const handler = probeHandler({ notReadyReason: () => "caches are not synced" });
 * assert(handler(requestFor("/readyz")).status === 503);
 * ```
 */
export function probeHandler(source: ProbeSource): (req: HttpRequest) => HttpAnswer {
  return (req) => {
    const path = req.path;
    if (path !== "/healthz" && path !== "/readyz") return text(404, "not found");
    const refused = refuseMethod(req);
    if (refused !== undefined) return refused;
    if (path === "/healthz") return text(200, "ok");
    const reason = source.notReadyReason();
    return reason === undefined ? text(200, "ok") : text(503, reason);
  };
}

/**
 * The metrics handler: `/metrics` answers the exposition text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { requestFor } from "../net/http_server.ts";
 * import { metricsHandler } from "./http.ts";
 * const answer = metricsHandler(() => "up 1\n")(requestFor("/metrics"));
 * assert(answer.status === 200);
 * ```
 */
export function metricsHandler(render: () => string): (req: HttpRequest) => HttpAnswer {
  return (req) => {
    if (req.path !== "/metrics") return text(404, "not found");
    const refused = refuseMethod(req);
    if (refused !== undefined) return refused;
    return metricsAnswer(render());
  };
}

/**
 * Serves `handler` on `address` with the small HTTP/1.1 server of `lib/net/`, whose accept loop outlives accept errors
 * (EMFILE) where `Deno.serve`'s would end the process. An empty host listens on `::` (dual-stack on Linux), falling
 * back to `0.0.0.0` where IPv6 is off, as Go's `:8081` does. `name` says which face it is, in log lines and errors.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { probeHandler, serveHttp } from "./http.ts";
 * const server = serveHttp({ host: "127.0.0.1", port: 0 }, "probes", probeHandler({ notReadyReason: () => undefined }));
 * const res = await fetch(`http://127.0.0.1:${server.addr.port}/healthz`, { headers: { connection: "close" } });
 * assert(res.status === 200 && (await res.text()) === "ok\n");
 * await server.shutdown();
 * ```
 *
 * @throws {Error} When the address cannot be bound: `Cannot listen on ':8081' for the probes: ...`.
 */
export function serveHttp(address: BindAddress, name: string, handler: HttpHandler): HttpServer {
  const hosts = address.host === "" ? ["::", "0.0.0.0"] : [address.host];
  let last: unknown;
  for (const hostname of hosts) {
    try {
      return new HttpServer({ name, logCategory: ["extractedprism", "copier"], hostname, port: address.port }, handler);
    } catch (e) {
      last = e;
      if (e instanceof Deno.errors.AddrInUse || e instanceof Deno.errors.NotCapable) break;
    }
  }
  throw new Error(`Cannot listen on '${endpointKey(address)}' for the ${name}: ${errorMessage(last)}`);
}
