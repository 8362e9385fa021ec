/**
 * The readyz probe: `GET /readyz` over HTTPS on one kept-alive connection per upstream, so the RTT measures the API
 * server, not a TLS handshake. An API server that accepts TCP but is shutting down or cannot reach etcd answers 503 here,
 * which a TCP probe never sees.
 *
 * The certificate is verified against a CA and a chosen name (`kubernetes.default.svc`, since API server certificates
 * seldom list every IP). With a CA that is Deno's own TLS, with a client certificate or not; without a CA (verification
 * skipped, which Deno's TLS cannot do) it is `node:tls`, loaded on first use. The probe only decides routing; clients
 * verify their own TLS end to end.
 *
 * @module
 */
import type tls from "node:tls";
import { describeError } from "../errors.ts";
import { getLogger } from "../log.ts";
import { type Endpoint, endpointKey } from "../endpoint.ts";
import type { Http1Response } from "./_http1.ts";
import { abortable } from "../abortable.ts";
import type { Probe, ProbeResult } from "./probe.ts";
import { DenoProbeConn, type ProbeConn } from "./_probe_conn.ts";
import { type TlsClientOptions, warmTls } from "../net/connect_tls.ts";

const log = getLogger(["extractedprism", "probe"]);

/** TLS and identity settings of the readyz probe (PEM text, already read). */
export interface ReadyzProbeOptions {
  /** CA bundle; without it the chain is not verified. */
  readonly ca?: string;
  /** Name the certificate must carry. @default "kubernetes.default.svc" */
  readonly serverName?: string;
  readonly cert?: string;
  readonly key?: string;
  /** Returns the bearer token for the next probe (e.g. re-read from a file), or undefined. */
  readonly token?: () => Promise<string | undefined>;
}

/**
 * Probes `GET /readyz`. 200 is up; 401/403 mean the server is up and speaking TLS but refuses anonymous `/readyz`,
 * counted as up with a warning once per upstream; anything else, a timeout or a TLS failure is down, with the reason.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ReadyzProbe } from "./probe_readyz.ts";
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const endpoint = { host: "127.0.0.1", port: listener.addr.port };
 * listener.close(); // nothing listens there now: the probe says down, with the reason
 * const probe = new ReadyzProbe();
 * const result = await probe.check(endpoint, AbortSignal.timeout(2000));
 * assert(!result.ok);
 * probe.release(endpoint);
 * ```
 */
export class ReadyzProbe implements Probe {
  readonly name = "readyz";
  readonly #tls: tls.ConnectionOptions;
  readonly #serverName: string;
  /** Set when Deno's TLS can do the job: a CA is given. */
  readonly #denoTls: TlsClientOptions | undefined;
  readonly #token: (() => Promise<string | undefined>) | undefined;
  readonly #conns = new Map<string, ProbeConn>();
  readonly #warned = new Set<string>();

  constructor(opts: ReadyzProbeOptions = {}) {
    this.#serverName = opts.serverName ?? "kubernetes.default.svc";
    this.#token = opts.token;
    this.#denoTls = opts.ca === undefined ? undefined : {
      serverName: this.#serverName,
      caCerts: [opts.ca],
      ...(opts.cert !== undefined && opts.key !== undefined ? { cert: opts.cert, key: opts.key } : {}),
    };
    this.#tls = {
      servername: this.#serverName,
      rejectUnauthorized: opts.ca !== undefined,
      ...(opts.ca !== undefined ? { ca: opts.ca } : {}),
      ...(opts.cert !== undefined ? { cert: opts.cert } : {}),
      ...(opts.key !== undefined ? { key: opts.key } : {}),
      ALPNProtocols: ["http/1.1"],
    };
  }

  async check(endpoint: Endpoint, signal: AbortSignal): Promise<ProbeResult> {
    const key = endpointKey(endpoint);
    try {
      // A token source that hangs (a FIFO, a stuck file system) must not hold the probe past its timeout.
      const token = this.#token === undefined ? undefined : await abortable(this.#token(), signal);
      const head = `GET /readyz HTTP/1.1\r\nHost: ${this.#serverName}\r\nUser-Agent: extractedprism\r\n` +
        `Accept: text/plain\r\n${token ? `Authorization: Bearer ${token}\r\n` : ""}\r\n`;
      let conn = this.#conns.get(key);
      if (conn !== undefined && !conn.usable) {
        conn.close();
        conn = undefined;
      }
      let res: Http1Response;
      let rttMs: number;
      for (let attempt = 0;; attempt++) {
        const reused = conn !== undefined;
        conn ??= await this.#open(endpoint, signal);
        this.#conns.set(key, conn);
        const start = performance.now();
        try {
          res = await conn.request(head, signal);
          rttMs = performance.now() - start;
          break;
        } catch (e) {
          // The server may have closed an idle kept-alive connection: one more try on a fresh one.
          this.release(endpoint);
          conn = undefined;
          if (!reused || attempt > 0 || signal.aborted) throw e;
        }
      }
      if (!res.reusable) this.release(endpoint);
      if (res.status === 200) return { ok: true, rttMs };
      if (res.status === 401 || res.status === 403) {
        if (!this.#warned.has(key)) {
          this.#warned.add(key);
          log.warn(
            "Upstream {upstream} answers /readyz with {status}: anonymous access is disabled, so the probe counts it " +
              "as up without knowing its readiness. Fix: --health-client-cert/--health-client-key or " +
              "--health-token-file, or bind system:public-info-viewer for anonymous",
            { upstream: key, status: res.status },
          );
        }
        return { ok: true, rttMs, detail: `HTTP ${res.status}` };
      }
      return { ok: false, reason: `HTTP ${res.status}${failedChecks(res.body)}` };
    } catch (e) {
      this.release(endpoint);
      return { ok: false, reason: signal.aborted ? "timeout" : describeError(e) };
    }
  }

  /** Initialises TLS off the event loop (see `lib/net/connect_tls.ts`); the check loops await it before the first probe. */
  prepare(): Promise<void> {
    return warmTls();
  }

  async #open(endpoint: Endpoint, signal: AbortSignal): Promise<ProbeConn> {
    // Deno's TLS dial waits for the warm-up itself (already done when the check loop awaited prepare()).
    if (this.#denoTls !== undefined) return await DenoProbeConn.open(endpoint, this.#denoTls, signal);
    await abortable(warmTls(), signal);
    return (await import("./_probe_conn_node.ts")).NodeProbeConn.open(endpoint, this.#tls, signal);
  }

  /** Closes the kept-alive connection of an endpoint (when it leaves the pool, or after an error). */
  release(endpoint: Endpoint): void {
    const key = endpointKey(endpoint);
    this.#conns.get(key)?.close();
    this.#conns.delete(key);
  }
}

/** The failing checks of a `/readyz` body (`[-]etcd failed: ...`), shortened for the reason text. */
function failedChecks(body: string): string {
  const failed = body.split("\n").filter((l) => l.startsWith("[-]")).map((l) => l.slice(3).split(/[\s:]/)[0]);
  return failed.length > 0 ? ` (${failed.join(", ").slice(0, 120)})` : "";
}
