/**
 * The {@linkcode KubeTransport} over Deno `fetch`: fresh credentials per request (a 401 refreshes them and retries
 * once), TLS verified against a server name that the dialled address need not carry, and the address chosen from a
 * list the caller keeps current (static + last discovered), rotating to the next on a connection failure.
 *
 * How the name and the address are kept apart: every request goes to `https://<tls name>/...` through an in-process
 * CONNECT hop on loopback (`_connect_hop.ts`) that dials the chosen endpoint whatever host the tunnel asks for, so
 * `fetch` sends the name as SNI and checks the certificate against it. `NO_PROXY` would make Deno's `fetch` skip an
 * explicit proxy and resolve the name itself (for `kubernetes.default.svc`: the ClusterIP), so the first request
 * sends a canary through the hop to `extractedprism-hop-check.<name>` (a subdomain: `NO_PROXY` matches it whenever it
 * matches the name) and refuses to go on if the hop did not see it; every response on a new connection is checked the
 * same way. The name is written with a trailing dot, which usual `NO_PROXY` entries do not match (only `*` does).
 * With a scoped `--allow-net`, list the name and that subdomain (port 443) besides the endpoints.
 *
 * Deno's `fetch` also looks the name up in DNS before it uses the hop (a best-effort `--deny-net` check; the answer is
 * not used): where the resolver is unreachable, each new connection waits for the resolver's timeout first.
 *
 * @module
 */
import { errorMessage } from "../errors.ts";
import { clearTimer, setTimer } from "../clock.ts";
import { getLogger } from "../log.ts";
import { bracketHost, dedupeEndpoints, type Endpoint, endpointKey } from "../endpoint.ts";
import { type AddressPattern, isIpLiteral, matchesAddress } from "./_addresses.ts";
import { ConnectHop, type HopRoute } from "./_connect_hop.ts";
import type { Credentials, CredentialSource, TlsMaterial } from "./credentials.ts";
import type { KubeRequest, KubeTransport } from "./transport.ts";

const log = getLogger(["extractedprism", "kubernetes"]);

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

interface Client {
  readonly http: Deno.HttpClient;
  readonly route: HopRoute;
  readonly tlsVersion: number;
}

/** The request did not go through the hop (see the module documentation): never retried. */
class HopBypassedError extends Error {
  override name = "HopBypassedError";
}

/**
 * Sends Kubernetes API requests over `fetch`, dialling the endpoints given by the caller.
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
  readonly #hop: ConnectHop;
  readonly #clients = new Map<string, Client>();
  readonly #urlHost: string;
  readonly #neverDial: readonly AddressPattern[];
  readonly #warnedSkipped = new Set<string>();
  #preferred: string | undefined;
  #canary: Promise<void> | undefined;
  /** Set once fetch is seen bypassing the hop: every later request fails with it, as the environment cannot change. */
  #bypassed: HopBypassedError | undefined;
  #closing: Promise<void> | undefined;

  /** Starts the CONNECT hop; connections are opened by the first request. */
  constructor(options: HttpTransportOptions) {
    this.#opts = options;
    this.#hop = new ConnectHop(options.connectTimeoutMs ?? 5000);
    const name = options.tlsServerName;
    // A DNS name is written absolute (trailing dot). fetch looks the URL host up even through a proxy (the answer is
    // unused); absolute, it is one query instead of one per resolv.conf search domain, which matters when the pod's
    // resolver is unreachable. NO_PROXY entries (`.svc`, `kubernetes.default.svc`) do not match it either. TLS is
    // unchanged: rustls sends SNI without the dot and matches the certificate as for the bare name.
    this.#urlHost = isIpLiteral(name) ? bracketHost(name) : name.endsWith(".") ? name : `${name}.`;
    this.#neverDial = options.neverDial ?? [];
  }

  /** Sends one request; see {@linkcode KubeTransport.request}. */
  async request(req: KubeRequest): Promise<Response> {
    if (this.#closing) throw new Error("Cannot send a Kubernetes API request: the transport is closed");
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

  /** Closes every connection and the hop; in-flight responses end. */
  close(): void {
    this.#closing ??= (async () => {
      for (const key of [...this.#clients.keys()]) this.#drop(key);
      this.#opts.credentials.close();
      await this.#hop.close();
    })();
  }

  /** Closes, then waits until every socket is closed. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.#closing;
  }

  async #send(req: KubeRequest, creds: Credentials): Promise<Response> {
    if (this.#bypassed !== undefined) throw this.#bypassed;
    const list = this.#candidates();
    if (list.length === 0) {
      throw new Error(
        `Cannot send a Kubernetes API request: no API server endpoint to dial (none known, or only addresses that must not be dialled)`,
      );
    }
    const errors: string[] = [];
    for (const [i, ep] of list.entries()) {
      if (ep.host !== this.#opts.tlsServerName && !isIpLiteral(this.#opts.tlsServerName)) {
        this.#canary ??= this.#checkHopIsUsed(req.signal).catch((e) => {
          this.#canary = undefined; // an aborted canary proves nothing: try again next time
          throw e;
        });
        await this.#canary;
      }
      const key = endpointKey(ep);
      const client = this.#client(key, ep, creds.tls);
      const dialFailuresBefore = client.route.dialFailures;
      try {
        const res = await this.#fetch(client, ep, req, creds);
        this.#preferred = key;
        return res;
      } catch (e) {
        if (req.signal.aborted) throw req.signal.reason;
        if (e instanceof HopBypassedError) throw e;
        const dialFailed = client.route.dialFailures > dialFailuresBefore;
        const why = dialFailed ? client.route.lastDialError ?? "cannot connect" : describeFetchError(e);
        errors.push(`${key}: ${why}`);
        this.#drop(key);
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

  async #fetch(client: Client, ep: Endpoint, req: KubeRequest, creds: Credentials): Promise<Response> {
    const timeoutMs = this.#opts.headerTimeoutMs ?? 30_000;
    const timeout = new AbortController();
    const timer = setTimer(timeoutMs, () => timeout.abort(new Error(`no response headers within ${timeoutMs} ms`)));
    const headers = new Headers({ accept: "application/json", "user-agent": this.#opts.userAgent ?? "extractedprism" });
    if (creds.token !== undefined) headers.set("authorization", `Bearer ${creds.token}`);
    if (req.contentType !== undefined) headers.set("content-type", req.contentType);
    // With the name as URL host the port is the endpoint's only when the name is the endpoint (see #checkHopIsUsed).
    const direct = ep.host === this.#opts.tlsServerName;
    const url = `https://${this.#urlHost}${direct ? `:${ep.port}` : ""}${this.#opts.pathPrefix ?? ""}${req.path}`;
    const init: RequestInit & { client: Deno.HttpClient } = {
      method: req.method,
      headers,
      signal: AbortSignal.any([req.signal, timeout.signal]),
      client: client.http,
    };
    if (req.body !== undefined) init.body = req.body;
    try {
      const res = await fetch(url, init);
      if (client.route.connects === 0 && !direct) {
        await res.body?.cancel();
        throw this.#bypassError();
      }
      return res;
    } catch (e) {
      if (timeout.signal.aborted && !req.signal.aborted) throw timeout.signal.reason;
      throw e;
    } finally {
      clearTimer(timer);
    }
  }

  /** Checks once that fetch really goes through the hop for the TLS name (see the module documentation). */
  async #checkHopIsUsed(signal: AbortSignal): Promise<void> {
    const timeoutMs = this.#opts.headerTimeoutMs ?? 30_000;
    if (!(await this.#hop.isUsedFor(this.#urlHost, timeoutMs, signal))) throw this.#bypassError();
  }

  #bypassError(): HopBypassedError {
    return this.#bypassed ??= new HopBypassedError(
      `Cannot verify the API server as '${this.#opts.tlsServerName}' through the in-process hop: fetch bypassed it, ` +
        `most likely because NO_PROXY or no_proxy matches '${this.#urlHost}' (e.g. NO_PROXY='*'); ` +
        `remove that entry from the environment of extractedprism`,
    );
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
    for (const key of [...this.#clients.keys()]) if (!keys.has(key)) this.#drop(key);
    const i = list.findIndex((ep) => endpointKey(ep) === this.#preferred);
    return i > 0 ? [...list.slice(i), ...list.slice(0, i)] : list;
  }

  #client(key: string, ep: Endpoint, tls: TlsMaterial): Client {
    const existing = this.#clients.get(key);
    if (existing !== undefined && existing.tlsVersion === tls.version) return existing;
    if (existing !== undefined) this.#drop(key);
    const route = this.#hop.addRoute(ep);
    // HTTP/1.1: Deno's socket to the hop has Nagle on, and HTTP/2's small frames then wait ~40 ms for a delayed ACK.
    const options: Deno.CreateHttpClientOptions & Partial<Deno.TlsCertifiedKeyPem> = {
      proxy: route.proxy,
      http2: false,
    };
    if (tls.caPem !== undefined) options.caCerts = [tls.caPem];
    if (tls.certPem !== undefined && tls.keyPem !== undefined) {
      options.cert = tls.certPem;
      options.key = tls.keyPem;
    }
    let http: Deno.HttpClient;
    try {
      http = Deno.createHttpClient(options as Deno.CreateHttpClientOptions);
    } catch (e) {
      this.#hop.removeRoute(route);
      // A certificate and a key rotated as two files may have been read between the two writes: read both again.
      this.#opts.credentials.invalidate();
      throw new Error(`Cannot use the TLS credentials of ${this.#opts.origin}: ${describeFetchError(e)}`);
    }
    const client = { http, route, tlsVersion: tls.version };
    this.#clients.set(key, client);
    return client;
  }

  /** Forgets a client: new requests get a new one; its in-flight responses go on until they end. */
  #drop(key: string): void {
    const c = this.#clients.get(key);
    if (c === undefined) return;
    this.#clients.delete(key);
    this.#hop.removeRoute(c.route);
    c.http.close();
  }
}

/** The useful part of a fetch error: `invalid peer certificate: ...` rather than `fetch failed`. */
function describeFetchError(e: unknown): string {
  const cause = e instanceof Error && e.cause instanceof Error ? e.cause : e;
  const text = errorMessage(cause);
  return (text.split("\n")[0] ?? "")
    .replace(/^error sending request .*?\): /, "")
    .replace(/^client error \((\w+)\): /, "");
}
