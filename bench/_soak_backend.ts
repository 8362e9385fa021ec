/**
 * The soak run's backends: loopback TLS servers that look enough like an API server for the proxy's readyz probe
 * (`GET /readyz` → 200 or 503) and for the soak's clients (`GET /` → `200 ok`, then close; `STREAM\n` → a watch-like
 * stream: every line is echoed back as `e <line>`, and the server adds its own `t <n>` line every `tickMs`). A backend
 * can flap two ways: its readyz answer (`ready = false`) or its listener (`stopListening()`: connections are refused
 * until `startListening()`).
 *
 * @module
 */
import { writeAll } from "../tests/support/net.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What a backend needs to serve TLS. */
export interface BackendTls {
  readonly cert: string;
  readonly key: string;
}

/** One soak backend on `hostname:port`. */
export class SoakBackend {
  /** Where it listens. */
  readonly hostname: string;
  /** Its port (fixed once chosen, so that the listener can come back on it). */
  readonly port: number;
  /** What `GET /readyz` answers: 200 when true, 503 when false. */
  ready = true;
  /** Connections accepted (probes included). */
  accepted = 0;
  /** Connections that were not probes (`GET /` or `STREAM`). */
  served = 0;
  /** Failures to listen again after a flap. */
  relistenFailures = 0;
  readonly #tls: BackendTls;
  readonly #tickMs: number;
  readonly #conns = new Set<Deno.Conn>();
  readonly #tasks = new Set<Promise<void>>();
  #listener: Deno.TlsListener | undefined;
  #closed = false;

  /** Listens at once on `hostname:port` (port 0 picks one). */
  constructor(hostname: string, port: number, tls: BackendTls, tickMs = 1000) {
    this.hostname = hostname;
    this.#tls = tls;
    this.#tickMs = tickMs;
    this.#listener = Deno.listenTls({ hostname, port, cert: tls.cert, key: tls.key });
    this.port = this.#listener.addr.port;
    this.#track(this.#acceptLoop(this.#listener));
  }

  /** Whether the listener is open. */
  get listening(): boolean {
    return this.#listener !== undefined;
  }

  /** Closes the listener (new connections are refused); live connections go on. */
  stopListening(): void {
    try {
      this.#listener?.close();
    } catch { /* closed */ }
    this.#listener = undefined;
  }

  /** Listens again on the same port; false (and counted) when the port cannot be bound now. */
  startListening(): boolean {
    if (this.#closed || this.#listener !== undefined) return this.#listener !== undefined;
    try {
      this.#listener = Deno.listenTls({
        hostname: this.hostname,
        port: this.port,
        cert: this.#tls.cert,
        key: this.#tls.key,
      });
    } catch {
      this.relistenFailures++;
      return false;
    }
    this.#track(this.#acceptLoop(this.#listener));
    return true;
  }

  /** Closes the listener and every connection, and waits for their tasks. */
  async close(): Promise<void> {
    this.#closed = true;
    this.stopListening();
    for (const c of this.#conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
  }

  #track(p: Promise<void>): void {
    this.#tasks.add(p);
    p.finally(() => this.#tasks.delete(p));
  }

  async #acceptLoop(listener: Deno.TlsListener): Promise<void> {
    for (;;) {
      let conn: Deno.TlsConn;
      try {
        conn = await listener.accept();
      } catch {
        return; // closed (a flap or the end)
      }
      this.accepted++;
      this.#conns.add(conn);
      this.#track(
        this.#serve(conn).finally(() => {
          this.#conns.delete(conn);
          try {
            conn.close();
          } catch { /* closed */ }
        }),
      );
    }
  }

  async #serve(conn: Deno.Conn): Promise<void> {
    const buf = new Uint8Array(16 * 1024);
    let text = "";
    try {
      // The first line says what the client wants; a request head ends with an empty line.
      while (!text.includes("\n")) {
        const n = await conn.read(buf);
        if (n === null || text.length > 8192) return;
        text += decoder.decode(buf.subarray(0, n));
      }
      if (text.startsWith("STREAM\n")) {
        this.served++;
        await this.#stream(conn, buf, text.slice("STREAM\n".length));
        return;
      }
      while (!text.includes("\r\n\r\n")) {
        const n = await conn.read(buf);
        if (n === null || text.length > 8192) return;
        text += decoder.decode(buf.subarray(0, n));
      }
      let status = 200, body = "ok";
      if (text.startsWith("GET /readyz ")) {
        if (!this.ready) [status, body] = [503, "not ready"];
      } else if (text.startsWith("GET / ")) {
        this.served++;
      } else {
        [status, body] = [404, "not found"];
      }
      const reason = status === 200 ? "OK" : status === 503 ? "Service Unavailable" : "Not Found";
      await writeAll(
        conn,
        encoder.encode(
          `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n` +
            `Connection: close\r\n\r\n${body}`,
        ),
      );
    } catch { /* the peer went away (a probe timing out, the proxy closing an unhealthy upstream's connections) */ }
  }

  /** Echoes every line as `e <line>` and adds `t <n>` every tick, until the peer ends the stream. */
  async #stream(conn: Deno.Conn, buf: Uint8Array, pending: string): Promise<void> {
    let n = 0;
    let writing = Promise.resolve();
    const send = (line: string) => {
      writing = writing.then(() => writeAll(conn, encoder.encode(`${line}\n`))).catch(() => {});
    };
    const timer = setInterval(() => send(`t ${++n}`), this.#tickMs);
    try {
      let rest = pending;
      for (;;) {
        let nl: number;
        while ((nl = rest.indexOf("\n")) >= 0) {
          send(`e ${rest.slice(0, nl)}`);
          rest = rest.slice(nl + 1);
        }
        if (rest.length > 65536) return;
        const got = await conn.read(buf);
        if (got === null) break;
        rest += decoder.decode(buf.subarray(0, got));
      }
      await writing;
      try {
        await conn.closeWrite();
      } catch { /* gone */ }
    } finally {
      clearInterval(timer);
      await writing;
    }
  }
}

/**
 * Backends on `hosts` (e.g. 127.0.0.2 … 127.0.0.5) sharing one port, as the API servers of one EndpointSlice do:
 * the port is chosen on the first host and bound on the others; tried again on another port when one is taken.
 */
export function backendsOnOnePort(hosts: readonly string[], tls: BackendTls, tickMs?: number): SoakBackend[] {
  for (let attempt = 0; attempt < 20; attempt++) {
    const made: SoakBackend[] = [];
    try {
      for (const host of hosts) made.push(new SoakBackend(host, made[0]?.port ?? 0, tls, tickMs));
      return made;
    } catch {
      for (const b of made) void b.close();
    }
  }
  throw new Error(`Cannot listen on one port on every one of '${hosts.join(",")}': expected a free port`);
}
