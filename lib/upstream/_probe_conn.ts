/**
 * The readyz probe's connections: one kept-alive HTTPS connection per upstream, over Deno's own TLS (this file) or
 * Node's (`_probe_conn_node.ts`, loaded only when the probe needs it).
 *
 * @module
 */
import type { Endpoint } from "../endpoint.ts";
import { type Http1Response, parseResponse } from "./_http1.ts";
import { connectTcp } from "../net/connect_tcp.ts";

/** One kept-alive HTTPS connection that carries probe requests. */
export interface ProbeConn {
  readonly usable: boolean;
  request(head: string, signal: AbortSignal): Promise<Http1Response>;
  close(): void;
}

/**
 * Deno's own TLS, used when a CA is given and no client certificate: `Deno.startTls` on a TCP connection to the IP,
 * with the certificate verified against the server name. It avoids loading Node's TLS module (about 3 MiB of the
 * program's idle RSS, and some 80 ms of CPU on the event loop's thread at the first probe: `bench/probe_tls.ts`).
 */
export class DenoProbeConn implements ProbeConn {
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
