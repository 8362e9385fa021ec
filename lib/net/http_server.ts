/**
 * A small HTTP/1.1 server for probe and metrics ports (the proxy's health port, the copier's probe and metrics
 * addresses): `Deno.listen` and an accept loop of our own instead of `Deno.serve`, whose internal accept loop ends the
 * process on the first accept error (EMFILE). It takes requests without a body, bounds what a client can hold (a head
 * must complete within a timeout, idle keep-alive connections are closed, a cap on concurrent connections, a cap on
 * the head's size) and never throws from a connection: bad input gets a 4xx and a close. This file admits and serves
 * connections (admission, eviction at the cap, shutdown); `_http_connection.ts` holds one connection and its
 * deadline, `_http_head.ts` reads and writes the heads.
 *
 * @module
 */
import { describeError } from "../errors.ts";
import { getLogger, type Logger } from "../log.ts";
import { AcceptLoop } from "./accept_loop.ts";
import { Connection } from "./_http_connection.ts";
import {
  type HttpAnswer,
  type HttpRequest,
  parseRequestHead,
  refusal,
  type RequestHead,
  responseHead,
  scanHead,
} from "./_http_head.ts";

export { type HttpAnswer, type HttpRequest, requestFor } from "./_http_head.ts";

/** What the server needs of a listener: a `Deno.TcpListener`, or a fake in tests. */
export interface HttpListener {
  /** The bound address. */
  readonly addr: Deno.Addr;
  /** The next connection. */
  accept(): Promise<Deno.TcpConn>;
  /** Stops listening. */
  close(): void;
}

/** Options of {@linkcode HttpServer}. */
export interface HttpServerOptions {
  /** What this server is, in its log lines ("the health server") and its accept loop's. @default "http" */
  readonly name?: string;
  /** The category of its log lines. @default ["extractedprism", name] */
  readonly logCategory?: readonly string[];
  /** The address to bind. */
  readonly hostname: string;
  /** The port to bind (0 picks one). */
  readonly port: number;
  /** Time from a connection's first byte of a request (or its accept) to the end of the request head. @default 10000 */
  readonly headerTimeoutMs?: number;
  /** Time a keep-alive connection may wait for its next request. @default 30000 */
  readonly idleTimeoutMs?: number;
  /** Time for the handler and the write of its answer. @default 10000 */
  readonly responseTimeoutMs?: number;
  /**
   * Concurrent connections. At the cap, a new connection takes the place of the one that has waited longest for a
   * request head, if that one has waited `evictAfterMs`; otherwise it is answered 503 and closed. @default 64
   */
  readonly maxConnections?: number;
  /** How long a connection must have waited for a request head before a newcomer at the cap may drop it. @default 1000 */
  readonly evictAfterMs?: number;
  /** Size of a request head (request line and headers); beyond it the answer is 431. @default 8192 */
  readonly maxHeadBytes?: number;
  /** The listener; tests pass a fake whose `accept()` fails. @default Deno.listen({ hostname, port }) */
  readonly listener?: HttpListener;
}

/** A request handler: the server passes GET for a HEAD request and drops the body it returns. */
export type HttpHandler = (req: HttpRequest) => HttpAnswer | Promise<HttpAnswer>;

/** The answer when a handler throws. */
const INTERNAL_ERROR: HttpAnswer = {
  status: 500,
  headers: { "content-type": "text/plain; charset=utf-8" },
  body: "internal error\n",
};

const READ_CHUNK = 1024;
const encoder = new TextEncoder();

function latin1(bytes: Uint8Array): string {
  return String.fromCharCode(...bytes);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * A small HTTP/1.1 server that survives accept errors and bounds slow or idle clients.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HttpServer } from "./http_server.ts";
 * const server = new HttpServer({ hostname: "127.0.0.1", port: 0 }, () => ({ status: 200, body: "ok\n" }));
 * const res = await fetch(`http://127.0.0.1:${server.addr.port}/`, { headers: { connection: "close" } });
 * assert((await res.text()) === "ok\n");
 * await server.shutdown();
 * ```
 */
export class HttpServer {
  /** The bound address (useful with port 0). */
  readonly addr: Deno.NetAddr;
  readonly #handler: HttpHandler;
  readonly #name: string;
  readonly #log: Logger;
  #loop: AcceptLoop;
  #running: Promise<void>;
  /** Accept errors of the listeners before the current one (see {@linkcode resumeListening}). */
  #earlierAcceptErrors = 0;
  readonly #headerTimeoutMs: number;
  readonly #idleTimeoutMs: number;
  readonly #responseTimeoutMs: number;
  readonly #maxConnections: number;
  readonly #maxHeadBytes: number;
  readonly #evictAfterMs: number;
  readonly #served = new Set<Connection>();
  readonly #refusing = new Set<Promise<void>>();
  #draining = false;
  #allClosed: PromiseWithResolvers<void> | undefined;
  #lastCapWarning = -Infinity;
  #stopped: Promise<void> | undefined;
  /** Connections refused because the cap was reached, since start. */
  refused = 0;
  /** Connections dropped at the cap for a newcomer, since start. */
  evicted = 0;

  /**
   * Binds and starts accepting.
   *
   * @throws {Deno.errors.AddrInUse} And the other errors of `Deno.listen` when the address cannot be bound.
   */
  constructor(options: HttpServerOptions, handler: HttpHandler) {
    this.#handler = handler;
    this.#name = options.name ?? "http";
    this.#log = getLogger(options.logCategory ?? ["extractedprism", this.#name]);
    this.#headerTimeoutMs = options.headerTimeoutMs ?? 10_000;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
    this.#responseTimeoutMs = options.responseTimeoutMs ?? 10_000;
    this.#maxConnections = options.maxConnections ?? 64;
    this.#maxHeadBytes = options.maxHeadBytes ?? 8192;
    this.#evictAfterMs = options.evictAfterMs ?? 1000;
    const listener = options.listener ??
      Deno.listen({ hostname: options.hostname, port: options.port, transport: "tcp" });
    this.addr = listener.addr as Deno.NetAddr;
    this.#loop = new AcceptLoop(listener, (conn) => this.#accept(conn), { name: this.#name });
    this.#running = this.#loop.run();
  }

  /** Accept errors since start (each one logged and retried with backoff). */
  get acceptErrors(): number {
    return this.#earlierAcceptErrors + this.#loop.errors;
  }

  /** Connections being served now. */
  get connections(): number {
    return this.#served.size;
  }

  #accept(conn: Deno.Conn): void {
    try {
      this.#admit(conn);
    } catch (e) {
      // Never let one connection end the accept loop.
      this.#log.error("Cannot serve a connection to the {server} server: {error}", {
        server: this.#name,
        error: describeError(e),
      });
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  }

  #admit(conn: Deno.Conn): void {
    if (this.#served.size >= this.#maxConnections && !this.#evict()) {
      this.refused++;
      this.#warnAtCap();
      // A 503 fits in any fresh socket's send buffer, so this write does not wait on the client.
      const refused = conn.write(encoder.encode(refusal(503, "too many connections"))).then(
        () => {},
        () => {},
      ).finally(() => {
        try {
          conn.close();
        } catch { /* already closed */ }
        this.#refusing.delete(refused);
        this.#checkAllClosed();
      });
      this.#refusing.add(refused);
      return;
    }
    const c = new Connection(conn, this.#log, this.#name);
    this.#served.add(c);
    this.#serve(c).catch((e) =>
      this.#log.error("A connection to the {server} server failed: {error}", {
        server: this.#name,
        error: describeError(e),
      })
    )
      .finally(() => {
        c.close();
        this.#served.delete(c);
        this.#checkAllClosed();
      });
  }

  /**
   * Drops the connection that has waited longest for a request head, if it has waited long enough: a client that
   * holds connections without sending requests cannot lock a prober out for a whole header timeout, while a client
   * that sends its request at once (kubelet, Prometheus) is never dropped for it.
   */
  #evict(): boolean {
    let oldest: Connection | undefined;
    for (const c of this.#served) {
      if (c.state !== "busy" && (oldest === undefined || c.waitingSince < oldest.waitingSince)) oldest = c;
    }
    if (oldest === undefined || performance.now() - oldest.waitingSince < this.#evictAfterMs) return false;
    this.evicted++;
    this.#warnAtCap();
    this.#log.debug("The {server} server is at its cap: dropping a connection that waited {ms} ms for a request", {
      server: this.#name,
      ms: Math.round(performance.now() - oldest.waitingSince),
    });
    oldest.close();
    this.#served.delete(oldest);
    return true;
  }

  #warnAtCap(): void {
    const now = performance.now();
    if (now - this.#lastCapWarning < 60_000) return;
    this.#lastCapWarning = now;
    this.#log.warn(
      "The {server} server is at its cap of {max} connections: {evicted} dropped for waiting without a request, " +
        "{refused} refused so far",
      { server: this.#name, max: this.#maxConnections, evicted: this.evicted, refused: this.refused },
    );
  }

  async #serve(c: Connection): Promise<void> {
    const chunk = new Uint8Array(READ_CHUNK);
    let buffered = "";
    c.deadline(this.#headerTimeoutMs, "no request head within the header timeout");
    c.state = "head";
    while (!c.isClosed) {
      let scan = scanHead(buffered, this.#maxHeadBytes);
      while (scan.kind === "more") {
        let n: number | null;
        try {
          n = await c.conn.read(chunk);
        } catch (e) {
          if (!c.isClosed) {
            this.#log.debug("Reading from a connection to the {server} server failed: {error}", {
              server: this.#name,
              error: describeError(e),
            });
          }
          return;
        }
        if (n === null) return;
        if (c.state === "idle") {
          c.state = "head";
          c.deadline(this.#headerTimeoutMs, "no request head within the header timeout");
        }
        scan = scanHead(scan.buffered + latin1(chunk.subarray(0, n)), this.#maxHeadBytes);
      }
      c.state = "busy";
      c.deadline(this.#responseTimeoutMs, "the answer took longer than the response timeout");
      if (scan.kind === "too large") {
        await c.write(refusal(431, "request head too large"));
        return;
      }
      buffered = scan.rest;
      const req = parseRequestHead(scan.head);
      if (typeof req === "number") {
        await c.write(refusal(req));
        return;
      }
      const answer = await this.#answer(c, req);
      if (answer === undefined || !(await c.write(answer)) || req.close || this.#draining) return;
      c.state = buffered.length > 0 ? "head" : "idle";
      c.waitingSince = performance.now();
      c.deadline(
        c.state === "idle" ? this.#idleTimeoutMs : this.#headerTimeoutMs,
        c.state === "idle" ? "idle longer than the idle timeout" : "no request head within the header timeout",
      );
    }
  }

  /** Runs the handler and renders its answer; `undefined` when the connection closed meanwhile. */
  async #answer(c: Connection, req: RequestHead): Promise<Uint8Array | undefined> {
    let answer: HttpAnswer;
    const closed = Promise.withResolvers<undefined>();
    const off = c.onClose(() => closed.resolve(undefined));
    try {
      const handled = await Promise.race([this.#handler(req.request), closed.promise]);
      if (handled === undefined) return undefined;
      answer = handled;
    } catch (e) {
      this.#log.error("The {server} server's handler failed: {error}", { server: this.#name, error: describeError(e) });
      answer = INTERNAL_ERROR;
    } finally {
      off();
    }
    const body = encoder.encode(answer.body ?? "");
    // Draining may have begun while the handler ran.
    const head = encoder.encode(
      responseHead(answer.status, answer.headers ?? {}, {
        bodyLength: body.length,
        close: req.close || this.#draining,
      }),
    );
    return req.request.head ? head : concat(head, body);
  }

  #checkAllClosed(): void {
    if (this.#served.size === 0 && this.#refusing.size === 0) this.#allClosed?.resolve();
  }

  /**
   * Stops accepting: the listener closes (another instance sharing the port takes every new connection), while the
   * connections already open are still served until {@linkcode shutdown}.
   */
  async stopListening(): Promise<void> {
    this.#loop.stop();
    await this.#running;
  }

  /**
   * Accepts again, on `listener` (the same address), after {@linkcode stopListening}; ignored once a shutdown began.
   * A listener it does not take is closed.
   */
  async resumeListening(listener: HttpListener): Promise<void> {
    await this.stopListening();
    if (this.#draining) {
      listener.close();
      return;
    }
    this.#earlierAcceptErrors += this.#loop.errors;
    this.#loop = new AcceptLoop(listener, (conn) => this.#accept(conn), { name: this.#name });
    this.#running = this.#loop.run();
  }

  /**
   * Stops accepting, lets the requests being answered finish (within the response timeout), closes idle and
   * unfinished connections, and resolves once every connection is closed. Idempotent.
   */
  shutdown(): Promise<void> {
    this.#stopped ??= this.#shutdown();
    return this.#stopped;
  }

  async #shutdown(): Promise<void> {
    this.#draining = true;
    this.#loop.stop();
    await this.#running;
    this.#allClosed = Promise.withResolvers<void>();
    for (const c of this.#served) if (c.state !== "busy") c.close();
    this.#checkAllClosed();
    await this.#allClosed.promise;
  }

  /** Same as `shutdown()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }
}
