/**
 * The readyz probe: `GET /readyz` over HTTPS on one kept-alive connection per upstream, so the RTT measures the API
 * server, not a TLS handshake. An API server that accepts TCP but is shutting down or cannot reach etcd answers 503 here,
 * which a TCP probe never sees.
 *
 * The certificate is verified against a CA and a chosen name (`kubernetes.default.svc`, since API server certificates
 * seldom list every IP). With a CA and no client certificate that is Deno's own TLS; without a CA (verification
 * skipped) or with a client certificate, which Deno's `startTls` cannot do, it is `node:tls`, loaded on first use. The
 * probe only decides routing; clients verify their own TLS end to end.
 *
 * @module
 */
import type tls from "node:tls";
import { describeError } from "../errors.ts";
import { getLogger } from "../log.ts";
import { type Endpoint, endpointKey } from "../endpoint.ts";
import { type Http1Response, parseResponse } from "./_http1.ts";
import { abortable, type Probe, type ProbeResult } from "./probe.ts";
import { connectTcp } from "../net/connect_tcp.ts";
import { warmTls } from "./_tls_warmup.ts";

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

/** One kept-alive HTTPS connection that carries probe requests. */
interface ProbeConn {
  readonly usable: boolean;
  request(head: string, signal: AbortSignal): Promise<Http1Response>;
  close(): void;
}

/**
 * Deno's own TLS, used when a CA is given and no client certificate: `Deno.startTls` on a TCP connection to the IP,
 * with the certificate verified against the server name. It avoids loading Node's TLS module (about 3 MiB of the
 * program's idle RSS, and some 80 ms of CPU on the event loop's thread at the first probe: `bench/probe_tls.ts`).
 */
class DenoProbeConn implements ProbeConn {
  readonly #conn: Deno.TlsConn;
  readonly #buf = new Uint8Array(16 * 1024);
  readonly #decoder = new TextDecoder("latin1");
  #closed = false;

  private constructor(conn: Deno.TlsConn) {
    this.#conn = conn;
  }

  static async open(endpoint: Endpoint, ca: string, serverName: string, signal: AbortSignal): Promise<DenoProbeConn> {
    const tcp = await connectTcp({ hostname: endpoint.host, port: endpoint.port }, signal);
    // `startTls` consumes the TCP connection: from then on only closing the TLS connection cancels a pending
    // handshake (a frozen server completes TCP handshakes from its backlog but never answers TLS).
    let tls: Deno.TlsConn | undefined;
    const close = () => {
      try {
        (tls ?? tcp).close();
      } catch { /* consumed or closed */ }
    };
    signal.addEventListener("abort", close, { once: true });
    try {
      if (signal.aborted) throw signal.reason;
      tls = await Deno.startTls(tcp, { hostname: serverName, caCerts: [ca], alpnProtocols: ["http/1.1"] });
      if (signal.aborted) throw signal.reason;
      await tls.handshake();
      return new DenoProbeConn(tls);
    } catch (e) {
      close();
      throw signal.aborted ? signal.reason : e;
    } finally {
      signal.removeEventListener("abort", close);
    }
  }

  get usable(): boolean {
    return !this.#closed;
  }

  async request(head: string, signal: AbortSignal): Promise<Http1Response> {
    const onAbort = () => this.close();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      const bytes = new TextEncoder().encode(head);
      for (let off = 0; off < bytes.length;) off += await this.#conn.write(bytes.subarray(off));
      let data = "";
      for (;;) {
        const n = await this.#conn.read(this.#buf);
        if (n !== null) data += this.#decoder.decode(this.#buf.subarray(0, n));
        const r = parseResponse(data, n === null);
        if (r.kind === "done") return r.response;
        if (r.kind === "error") throw new Error(r.message);
      }
    } catch (e) {
      this.close();
      throw signal.aborted ? signal.reason : e;
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch { /* closed */ }
  }
}

/** Node's TLS: needed to skip verification (no CA) or to present a client certificate. */
class NodeProbeConn implements ProbeConn {
  readonly #socket: tls.TLSSocket;
  #data = "";
  #ended = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;

  private constructor(socket: tls.TLSSocket) {
    this.#socket = socket;
    socket.setEncoding("latin1");
    socket.on("data", (d: string) => {
      this.#data += d;
      this.#wake?.();
    });
    socket.on("end", () => {
      this.#ended = true;
      this.#wake?.();
    });
    socket.on("close", () => {
      this.#ended = true;
      this.#wake?.();
    });
    socket.on("error", (e: Error) => {
      this.#error ??= e;
      this.#wake?.();
    });
  }

  static async open(endpoint: Endpoint, opts: tls.ConnectionOptions, signal: AbortSignal): Promise<NodeProbeConn> {
    // Loaded on first use, so that start-up does not wait for Node's TLS module.
    const { connect } = await import("node:tls");
    return new Promise((resolve, reject) => {
      const socket = connect({ ...opts, host: endpoint.host, port: endpoint.port });
      const onAbort = () => {
        socket.destroy();
        reject(signal.reason);
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      socket.once("secureConnect", () => {
        signal.removeEventListener("abort", onAbort);
        resolve(new NodeProbeConn(socket));
      });
      socket.once("error", (e: Error) => {
        signal.removeEventListener("abort", onAbort);
        socket.destroy();
        reject(e);
      });
    });
  }

  get usable(): boolean {
    return !this.#ended && this.#error === undefined && !this.#socket.destroyed;
  }

  async request(head: string, signal: AbortSignal): Promise<Http1Response> {
    this.#data = "";
    this.#socket.write(head);
    for (;;) {
      if (this.#error) throw this.#error;
      const r = parseResponse(this.#data, this.#ended);
      if (r.kind === "done") return r.response;
      if (r.kind === "error") throw new Error(r.message);
      if (signal.aborted) throw signal.reason;
      await new Promise<void>((resolve) => {
        const onAbort = () => resolve();
        signal.addEventListener("abort", onAbort, { once: true });
        this.#wake = () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }

  close(): void {
    this.#socket.destroy();
  }
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
  /** Set when Deno's TLS can do the job (a CA, no client certificate). */
  readonly #denoCa: string | undefined;
  readonly #token: (() => Promise<string | undefined>) | undefined;
  readonly #conns = new Map<string, ProbeConn>();
  readonly #warned = new Set<string>();

  constructor(opts: ReadyzProbeOptions = {}) {
    this.#serverName = opts.serverName ?? "kubernetes.default.svc";
    this.#token = opts.token;
    this.#denoCa = opts.ca !== undefined && opts.cert === undefined ? opts.ca : undefined;
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

  /** Initialises TLS off the event loop (see `_tls_warmup.ts`); the check loops await it before the first probe. */
  prepare(): Promise<void> {
    return warmTls();
  }

  async #open(endpoint: Endpoint, signal: AbortSignal): Promise<ProbeConn> {
    // Already done when the check loop awaited prepare(); a caller that did not waits here, within its timeout.
    await abortable(warmTls(), signal);
    return this.#denoCa !== undefined
      ? DenoProbeConn.open(endpoint, this.#denoCa, this.#serverName, signal)
      : NodeProbeConn.open(endpoint, this.#tls, signal);
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
