/**
 * A minimal HTTPS/1.1 client over one TCP connection, as a Kubernetes client would use the proxy: connect to the
 * proxy, TLS with the API server's name, `GET` requests, and the answering server's name from the reply body. Used by
 * the load client (inside the proxy's namespace) and by the in-process drain scenario.
 *
 * @module
 */

/** Milliseconds since the epoch with sub-millisecond precision: comparable between processes on one host. */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Where and how to reach an API server through the proxy. */
export interface HttpsTarget {
  readonly hostname: string;
  readonly port: number;
  /** The name the server certificate is verified against (and sent as SNI). */
  readonly serverName: string;
  /** The CA certificate (PEM) that signed the API servers' certificates. */
  readonly caCert: string;
}

/** The parts of a reply the suite needs. */
export interface Reply {
  readonly status: number;
  readonly body: string;
}

const HEADER_END = "\r\n\r\n";

/**
 * One TLS connection that can carry several requests (keep-alive). A background reader collects bytes, so a closed
 * connection is noticed at once, even between requests ({@linkcode HttpsConnection.closed}).
 */
export class HttpsConnection {
  readonly #conn: Deno.TlsConn;
  readonly #decoder = new TextDecoder("latin1");
  #buffer = "";
  #ended = false;
  #error: string | undefined;
  #wake: (() => void) | undefined;
  /** Resolves with the wall-clock time at which the peer closed the connection (or it failed). */
  readonly closed: Promise<number>;

  private constructor(conn: Deno.TlsConn) {
    this.#conn = conn;
    this.closed = this.#read();
  }

  /**
   * Connects through TCP, then TLS (handshake included), and returns the connection with the time each step took.
   *
   * @throws {Error} When the TCP connection, the TLS handshake or `signal` fails first.
   */
  static async open(
    target: HttpsTarget,
    signal: AbortSignal,
  ): Promise<{ conn: HttpsConnection; tcpMs: number; handshakeMs: number }> {
    const start = performance.now();
    const tcp = await Deno.connect({ hostname: target.hostname, port: target.port, signal });
    const tcpMs = performance.now() - start;
    let tls: Deno.TlsConn | undefined;
    const onAbort = () => (tls ?? tcp).close();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      tls = await Deno.startTls(tcp, { hostname: target.serverName, caCerts: [target.caCert] });
      await tls.handshake();
    } catch (e) {
      try {
        (tls ?? tcp).close();
      } catch { /* closed by the abort */ }
      throw signal.aborted ? new Error("timeout") : e;
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
    return { conn: new HttpsConnection(tls), tcpMs, handshakeMs: performance.now() - start };
  }

  async #read(): Promise<number> {
    const buf = new Uint8Array(16 * 1024);
    try {
      for (;;) {
        const n = await this.#conn.read(buf);
        if (n === null) break;
        this.#buffer += this.#decoder.decode(buf.subarray(0, n), { stream: true });
        this.#wake?.();
      }
    } catch (e) {
      this.#error = e instanceof Error ? e.message : String(e);
    }
    this.#ended = true;
    this.#wake?.();
    return wallNow();
  }

  /** Whether the peer has closed the connection. */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Sends `GET path` and waits for the whole reply (Content-Length framing, as the test API servers send).
   *
   * @throws {Error} When the connection ends or `signal` aborts before the reply is complete.
   */
  async get(path: string, opts: { keepAlive: boolean; host: string }, signal: AbortSignal): Promise<Reply> {
    this.#buffer = "";
    const head = `GET ${path} HTTP/1.1\r\nHost: ${opts.host}\r\nUser-Agent: fault-suite\r\n` +
      `Connection: ${opts.keepAlive ? "keep-alive" : "close"}\r\n\r\n`;
    await this.#conn.write(new TextEncoder().encode(head));
    for (;;) {
      const reply = parseReply(this.#buffer);
      if (reply !== undefined) {
        this.#buffer = "";
        return reply;
      }
      if (this.#ended) throw new Error(this.#error ?? "connection closed before the reply was complete");
      if (signal.aborted) throw new Error("timeout");
      await new Promise<void>((resolve) => {
        const done = () => {
          signal.removeEventListener("abort", done);
          this.#wake = undefined;
          resolve();
        };
        this.#wake = done;
        signal.addEventListener("abort", done, { once: true });
      });
    }
  }

  /** Closes the connection; `closed` resolves soon after. */
  close(): void {
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }
}

/** Parses a complete reply from `text`, or returns `undefined` when more bytes are needed. */
function parseReply(text: string): Reply | undefined {
  const end = text.indexOf(HEADER_END);
  if (end < 0) return undefined;
  const lines = text.slice(0, end).split("\r\n");
  const status = Number(lines[0]?.split(" ")[1]);
  if (!Number.isInteger(status)) throw new Error(`Cannot parse status line '${lines[0]}': expected 'HTTP/1.1 200 OK'`);
  const lengthLine = lines.find((l) => l.toLowerCase().startsWith("content-length:"));
  if (lengthLine === undefined) throw new Error(`Cannot read reply '${lines[0]}': expected a Content-Length header`);
  const length = Number(lengthLine.slice(lengthLine.indexOf(":") + 1).trim());
  const body = text.slice(end + HEADER_END.length);
  if (body.length < length) return undefined;
  return { status, body: body.slice(0, length) };
}

/** Which API server answered, from the JSON body `{"server":"api1",...}` the test API servers send. */
export function answeringServer(reply: Reply): string {
  const parsed: unknown = JSON.parse(reply.body);
  const server = (parsed as { server?: unknown }).server;
  if (reply.status !== 200 || typeof server !== "string") {
    throw new Error(`Cannot tell the answering server from '${reply.body.slice(0, 80)}': expected {"server": name}`);
  }
  return server;
}
