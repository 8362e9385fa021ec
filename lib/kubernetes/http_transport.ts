/**
 * The {@linkcode KubeTransport} over Deno's own TLS sockets and a small HTTP/1.1 client (`_http1_client.ts`): fresh
 * credentials per request (a 401 refreshes them and retries once), TLS verified against a server name that the
 * dialled address need not carry, and the address chosen from a list the caller keeps current (static + last
 * discovered), rotating to the next on a connection failure.
 *
 * How the name and the address are kept apart: the transport dials the endpoint's address itself and starts TLS on
 * that socket with the name as SNI and as the name the certificate must carry (`Deno.startTls`; with a client
 * certificate, `Deno.connectTls` and its server-name option, as Deno's `node:tls` does). Nothing is looked up in DNS
 * when an endpoint is an address, and `HTTPS_PROXY`/`NO_PROXY` play no part. Connections are kept alive (one per
 * request in flight, idle ones for 30 s) and carry one request at a time.
 *
 * @module
 */
import { errorMessage, escapeControls } from "../errors.ts";
import { clearTimer, setTimer, type TimerId } from "../clock.ts";
import { getLogger } from "../log.ts";
import { bracketHost, dedupeEndpoints, type Endpoint, endpointKey } from "../endpoint.ts";
import { type AddressPattern, matchesAddress } from "./_addresses.ts";
import { connectTls, type TlsClientOptions, TlsHandshakeError } from "../net/connect_tls.ts";
import { Http1Conn, StaleConnectionError } from "./_http1_client.ts";
import type { Credentials, CredentialSource, TlsMaterial } from "./credentials.ts";
import type { KubeRequest, KubeResponse, KubeTransport } from "./transport.ts";

const log = getLogger(["extractedprism", "kubernetes"]);

/** How long an idle kept-alive connection is kept: well under the API server's 90 s idle timeout. */
const IDLE_MS = 30_000;
/** Idle connections kept per endpoint. */
const MAX_IDLE = 4;

/** Options of {@linkcode HttpKubeTransport}. */
export interface HttpTransportOptions {
  /** The addresses to dial, preferred first; read before every request (static + last discovered endpoints). */
  readonly endpoints: () => readonly Endpoint[];
  /** The name the server certificate must carry, sent as SNI (`tls-server-name`, else `kubernetes.default.svc`). */
  readonly tlsServerName: string;
  /** Where the token and TLS material of each request come from. */
  readonly credentials: CredentialSource;
  /** Where the credentials come from, for messages. */
  readonly origin: string;
  /** Prepended to every request path (the path of a kubeconfig server URL). @default {""} */
  readonly pathPrefix?: string;
  /** Addresses never dialled whatever `endpoints` returns (the proxy's own listener, the `kubernetes` ClusterIP). */
  readonly neverDial?: readonly AddressPattern[];
  /** Time allowed to open a TCP connection to one endpoint. @default {5000} */
  readonly connectTimeoutMs?: number;
  /**
   * Time allowed from sending a request to its response headers; a watch's body may then stream for long.
   * @default {30000}
   */
  readonly headerTimeoutMs?: number;
  /** The `User-Agent` of every request. @default {"extractedprism"} */
  readonly userAgent?: string;
}

/** A kept-alive connection waiting for its next request. */
interface Idle {
  readonly http: Http1Conn;
  readonly tlsVersion: number;
  readonly timer: TimerId;
}

/** Dialling failed before anything was sent: safe to try the next endpoint, whatever the method. */
class DialError extends Error {
  override name = "DialError";
}

/**
 * Sends Kubernetes API requests, dialling the endpoints given by the caller.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HttpKubeTransport } from "./http_transport.ts";
 * import { createCredentialSource } from "./credentials.ts";
 * const transport = new HttpKubeTransport({
 *   endpoints: () => [],
 *   tlsServerName: "kubernetes.default.svc",
 *   credentials: createCredentialSource({ origin: "example", auth: { token: "t" } }),
 *   origin: "example",
 * });
 * const failed = await transport.request({ method: "GET", path: "/version", signal: AbortSignal.timeout(1000) })
 *   .then(() => false, () => true);
 * assert(failed); // no endpoint to dial
 * await transport[Symbol.asyncDispose]();
 * ```
 */
export class HttpKubeTransport implements KubeTransport, AsyncDisposable {
  readonly #opts: HttpTransportOptions;
  readonly #idle = new Map<string, Idle[]>();
  /** Connections carrying a request or streaming a body: closed by {@linkcode close}. */
  readonly #active = new Set<Http1Conn>();
  /** Settles when no connection is active any more (for {@linkcode Symbol.asyncDispose}). */
  readonly #settling = new Set<Promise<unknown>>();
  readonly #serverName: string;
  readonly #neverDial: readonly AddressPattern[];
  readonly #warnedSkipped = new Set<string>();
  #preferred: string | undefined;
  #closed = false;

  /** Connections are opened by the first request. */
  constructor(options: HttpTransportOptions) {
    this.#opts = options;
    // rustls takes an IPv6 name without brackets; a DNS name is used as given.
    this.#serverName = options.tlsServerName.replace(/^\[(.*)\]$/, "$1");
    this.#neverDial = options.neverDial ?? [];
  }

  /** Sends one request; see {@linkcode KubeTransport.request}. */
  async request(req: KubeRequest): Promise<KubeResponse> {
    if (this.#closed) throw new Error("Cannot send a Kubernetes API request: the transport is closed");
    const creds = await this.#opts.credentials.current(req.signal);
    const res = await this.#send(req, creds);
    if (res.status !== 401) return res;
    this.#opts.credentials.invalidate();
    const fresh = await this.#opts.credentials.current(req.signal);
    // Same token and same TLS identity: a retry would get the same answer.
    if (fresh.token === creds.token && fresh.tls.version === creds.tls.version) return res;
    await res.body?.cancel();
    log.info("The API server answered 401; retrying once with refreshed credentials of {origin}", {
      origin: this.#opts.origin,
    });
    return await this.#send(req, fresh);
  }

  /** Closes every connection; in-flight responses end. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const key of [...this.#idle.keys()]) this.#dropIdle(key);
    for (const http of this.#active) http.close();
    this.#opts.credentials.close();
  }

  /** Closes, then waits until every exchange has ended. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    while (this.#settling.size > 0) await Promise.allSettled([...this.#settling]);
  }

  async #send(req: KubeRequest, creds: Credentials): Promise<KubeResponse> {
    const list = this.#candidates();
    if (list.length === 0) {
      throw new Error(
        `Cannot send a Kubernetes API request: no API server endpoint to dial (none known, or only addresses that must not be dialled)`,
      );
    }
    const bytes = this.#requestBytes(req, creds);
    const errors: string[] = [];
    for (const [i, ep] of list.entries()) {
      const key = endpointKey(ep);
      try {
        const res = await this.#exchange(key, ep, req, bytes, creds.tls);
        this.#preferred = key;
        return res;
      } catch (e) {
        if (req.signal.aborted) throw req.signal.reason;
        if (this.#closed) throw new Error("Cannot send a Kubernetes API request: the transport is closed");
        const dialFailed = e instanceof DialError;
        const why = errorMessage(e);
        errors.push(`${key}: ${why}`);
        this.#dropIdle(key);
        const next = list[i + 1];
        this.#preferred = next === undefined ? list[0] && endpointKey(list[0]) : endpointKey(next);
        // A write that may have reached the server is not repeated on another one.
        const retry = next !== undefined && (dialFailed || req.method === "GET");
        log.warn("Kubernetes API endpoint {endpoint} failed: {error}{retry}", {
          endpoint: key,
          error: why,
          retry: retry ? `; trying ${endpointKey(next)}` : "",
        });
        if (!retry) break;
      }
    }
    throw new Error(
      `Cannot reach the Kubernetes API as '${this.#opts.tlsServerName}' (${this.#opts.origin}): ${errors.join("; ")}`,
    );
  }

  /**
   * One request to one endpoint, on a kept-alive connection when there is one. A kept-alive connection that the
   * server closed before answering is replaced by a new one once, for a GET (a write may have been received).
   */
  async #exchange(
    key: string,
    ep: Endpoint,
    req: KubeRequest,
    bytes: Uint8Array,
    tls: TlsMaterial,
  ): Promise<KubeResponse> {
    const headTimeoutMs = this.#opts.headerTimeoutMs ?? 30_000;
    let http = this.#takeIdle(key, tls.version);
    for (;;) {
      const reused = http !== undefined;
      http ??= new Http1Conn(await this.#dial(ep, tls, req.signal));
      if (this.#closed) {
        http.close();
        throw new Error("the transport is closed");
      }
      this.#active.add(http);
      try {
        const { response, settled } = await http.send({ method: req.method, bytes }, req.signal, headTimeoutMs);
        const conn = http;
        const done = settled.then((reusable) => {
          this.#active.delete(conn);
          this.#settling.delete(done);
          if (reusable) this.#putIdle(key, conn, tls.version);
        });
        this.#settling.add(done);
        return response;
      } catch (e) {
        this.#active.delete(http);
        http.close();
        if (reused && e instanceof StaleConnectionError && req.method === "GET") {
          http = undefined;
          continue;
        }
        throw e;
      }
    }
  }

  /** Opens a TLS connection to `ep`, verified as the TLS name, within the connect timeout. */
  async #dial(ep: Endpoint, tls: TlsMaterial, signal: AbortSignal): Promise<Deno.TlsConn> {
    const timeoutMs = this.#opts.connectTimeoutMs ?? 5000;
    const timeout = new AbortController();
    const timer = setTimer(timeoutMs, () => timeout.abort(new Error(`no answer within ${timeoutMs} ms`)));
    const options: TlsClientOptions = {
      serverName: this.#serverName,
      caCerts: tls.caPem !== undefined ? [tls.caPem] : [],
      ...(tls.certPem !== undefined && tls.keyPem !== undefined ? { cert: tls.certPem, key: tls.keyPem } : {}),
    };
    const key = endpointKey(ep);
    try {
      return await connectTls({ hostname: ep.host, port: ep.port }, options, AbortSignal.any([signal, timeout.signal]));
    } catch (e) {
      if (signal.aborted) throw signal.reason;
      if (e instanceof TlsHandshakeError) throw new DialError(`TLS with ${key} failed: ${e.message}`);
      // The timeout covers the TCP connect and the TLS handshake: a server that accepts but never answers TLS is dead.
      throw new DialError(`cannot connect to ${key}: ${errorMessage(e)}`);
    } finally {
      clearTimer(timer);
    }
  }

  /** The request's bytes: head and body. */
  #requestBytes(req: KubeRequest, creds: Credentials): Uint8Array {
    const target = `${this.#opts.pathPrefix ?? ""}${req.path}`;
    if (!/^\/[\x21-\x7e]*$/.test(target)) {
      throw new Error(
        `Cannot send a Kubernetes API request: the path '${escapeControls(target)}' is not a valid URL path`,
      );
    }
    const host = bracketHost(this.#serverName);
    const lines = [
      `${req.method} ${target} HTTP/1.1`,
      `Host: ${host}`,
      `User-Agent: ${this.#opts.userAgent ?? "extractedprism"}`,
      "Accept: application/json",
    ];
    if (creds.token !== undefined) {
      if (!/^[\x21-\x7e]+$/.test(creds.token)) {
        throw new Error(
          `Cannot use the token of ${this.#opts.origin}: it holds characters an HTTP header cannot carry (spaces, ` +
            `control or non-ASCII characters)`,
        );
      }
      lines.push(`Authorization: Bearer ${creds.token}`);
    }
    const body = req.body === undefined ? undefined : new TextEncoder().encode(req.body);
    if (req.contentType !== undefined) lines.push(`Content-Type: ${req.contentType}`);
    if (body !== undefined) lines.push(`Content-Length: ${body.length}`);
    const head = new TextEncoder().encode(`${lines.join("\r\n")}\r\n\r\n`);
    if (body === undefined) return head;
    const bytes = new Uint8Array(head.length + body.length);
    bytes.set(head);
    bytes.set(body, head.length);
    return bytes;
  }

  #candidates(): Endpoint[] {
    const list: Endpoint[] = [];
    for (const ep of dedupeEndpoints(this.#opts.endpoints())) {
      const avoided = this.#neverDial.find((p) => matchesAddress(ep, p));
      if (avoided !== undefined) {
        const key = endpointKey(ep);
        if (!this.#warnedSkipped.has(key)) {
          this.#warnedSkipped.add(key);
          log.warn("Not dialling {endpoint} for the Kubernetes API: it is {what}", {
            endpoint: key,
            what: avoided.label ?? "an address never to dial",
          });
        }
        continue;
      }
      list.push(ep);
    }
    const keys = new Set(list.map(endpointKey));
    for (const key of [...this.#idle.keys()]) if (!keys.has(key)) this.#dropIdle(key);
    const i = list.findIndex((ep) => endpointKey(ep) === this.#preferred);
    return i > 0 ? [...list.slice(i), ...list.slice(0, i)] : list;
  }

  /** A kept-alive connection to `key` made with the current TLS material, if one waits. */
  #takeIdle(key: string, tlsVersion: number): Http1Conn | undefined {
    const list = this.#idle.get(key);
    while (list !== undefined && list.length > 0) {
      const idle = list.pop()!;
      clearTimer(idle.timer);
      if (idle.tlsVersion === tlsVersion && !idle.http.closed) return idle.http;
      idle.http.close();
    }
    return undefined;
  }

  #putIdle(key: string, http: Http1Conn, tlsVersion: number): void {
    if (this.#closed) {
      http.close();
      return;
    }
    const list = this.#idle.get(key) ?? [];
    this.#idle.set(key, list);
    const idle: Idle = {
      http,
      tlsVersion,
      timer: setTimer(IDLE_MS, () => {
        const at = list.indexOf(idle);
        if (at >= 0) list.splice(at, 1);
        http.close();
      }),
    };
    list.push(idle);
    while (list.length > MAX_IDLE) {
      const oldest = list.shift()!;
      clearTimer(oldest.timer);
      oldest.http.close();
    }
  }

  /** Closes the idle connections to `key`; its in-flight responses go on until they end. */
  #dropIdle(key: string): void {
    const list = this.#idle.get(key);
    if (list === undefined) return;
    this.#idle.delete(key);
    for (const idle of list) {
      clearTimer(idle.timer);
      idle.http.close();
    }
  }
}
