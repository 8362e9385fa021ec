/**
 * The readyz probe's connections: one kept-alive HTTPS connection per upstream, over Deno's own TLS (this file) or
 * Node's (`_probe_conn_node.ts`, loaded only without a CA: Deno's TLS always verifies).
 *
 * @module
 */
import type { Endpoint } from "../endpoint.ts";
import { type Http1Response, parseResponse } from "./_http1.ts";
import { connectTls, type TlsClientOptions } from "../net/connect_tls.ts";
import { closeQuietly } from "../net/connect_tcp.ts";

/** One kept-alive HTTPS connection that carries probe requests. */
export interface ProbeConn {
  readonly usable: boolean;
  request(head: string, signal: AbortSignal): Promise<Http1Response>;
  close(): void;
}

/**
 * Deno's own TLS, used whenever a CA is given (`lib/net/connect_tls.ts`), a client certificate or not. It avoids
 * loading Node's TLS module (about 3 MiB of the program's idle RSS, and some 80 ms of CPU on the event loop's thread
 * at the first probe: `bench/probe_tls.ts`).
 */
export class DenoProbeConn implements ProbeConn {
  readonly #conn: Deno.TlsConn;
  readonly #buf = new Uint8Array(16 * 1024);
  readonly #decoder = new TextDecoder("latin1");
  #closed = false;

  private constructor(conn: Deno.TlsConn) {
    this.#conn = conn;
  }

  static async open(endpoint: Endpoint, tls: TlsClientOptions, signal: AbortSignal): Promise<DenoProbeConn> {
    return new DenoProbeConn(await connectTls({ hostname: endpoint.host, port: endpoint.port }, tls, signal));
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
    closeQuietly(this.#conn);
  }
}
