/**
 * A faithful in-process fake of the Kubernetes API server for tests: real HTTPS (the {@linkcode TestPki}), real
 * authentication (client certificate verified against the CA, or a bearer token), a tiny RBAC table, one
 * cluster-wide resourceVersion, LIST with selectors and pagination, WATCH with history, 410 and bookmarks, and the
 * write verbs with their preconditions. Responses follow the real API's JSON shapes; tests/support/api_parity.ts
 * compares them with kube-apiserver 1.20's and a current k8s.io/apiserver's answers (tests/api_parity_test.ts with
 * recorded answers, the e2e suite live).
 *
 * ## Served
 * - Types (all namespaced; the cluster-wide collection, e.g. `/api/v1/services`, serves LIST and WATCH):
 *   `discovery.k8s.io/v1` `endpointslices`, `v1` `services`, `coordination.k8s.io/v1` `leases`, `v1` `events`,
 *   `events.k8s.io/v1` `events` (stored apart from core events). Every namespace exists. `unservedGroupVersions`
 *   takes group versions away (kube-apiserver 1.20 has no `discovery.k8s.io/v1`).
 * - API discovery: `/api`, `/api/v1`, `/apis`, `/apis/GROUP`, `/apis/GROUP/VERSION` (`deletecollection` is listed,
 *   as the real servers list it, but answered 405). An unserved path under a known group is a JSON 404 `NotFound`
 *   with empty `details`; anywhere else the plain-text `404 page not found`.
 * - GET one; LIST (`labelSelector`: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`;
 *   `fieldSelector` on `metadata.name` / `metadata.namespace`; `limit` + opaque `continue`, a consistent snapshot;
 *   `metadata.resourceVersion`; items carry no `kind`/`apiVersion`, as when a real server lists from etcd).
 * - WATCH (`watch=1|true`): `resourceVersion` unset or `0` sends the current objects as ADDED first; `N` sends the
 *   changes after N from a bounded history; when N is older than the history, the stream's one event is an `ERROR`
 *   with a 410 `Expired` Status, as from the real watch cache (`faultExpiredWatchAsHttp410` answers HTTP 410
 *   instead); `allowWatchBookmarks=true` sends a `BOOKMARK` (only `kind`, `apiVersion`,
 *   `metadata.resourceVersion`) every `bookmarkIntervalMs` (a test knob: the real servers in the e2e suite sent none
 *   on a quiet 200 s watch); `timeoutSeconds` ends the response cleanly; `sendInitialEvents=true` (with
 *   `resourceVersionMatch=NotOlderThan`) ends the initial events with the `k8s.io/initial-events-end` bookmark.
 * - POST (201; 409 `AlreadyExists`), PUT (409 `Conflict` on a stale `metadata.resourceVersion`; if absent: 201 for
 *   Leases, Services, Events, which kube-apiserver creates on update, 404 for EndpointSlices),
 *   PATCH `application/merge-patch+json` (also `strategic-merge-patch+json`, with merge-patch semantics) and
 *   `application/apply-patch+yaml` (`fieldManager` required, else 422; `force=true`; creates if absent (201); per-
 *   field ownership in `metadata.managedFields`; 409 on a conflict with another manager without force), DELETE
 *   (200 with a `Success` `Status`; 404; `preconditions` in the body). A write that changes nothing is not stored.
 *   `metadata.generation` is kept for EndpointSlices only, as kube-apiserver's strategies do.
 * - Validation: names, labels, EndpointSlice shape (loopback addresses ARE allowed, unlike the real server), Lease
 *   `spec.acquireTime`/`renewTime` MicroTime with exactly six fractional digits (else 400, as the real server).
 * - `/healthz`, `/livez`, `/readyz` (status from {@linkcode FakeApiServer.readyz}), `/version`: anonymous by default.
 *
 * ## Authentication and authorization
 * A client certificate that chains to `pki.ca` authenticates as user = CN, groups = O (+ `system:authenticated`);
 * otherwise `Authorization: Bearer T` with T in {@linkcode FakeApiServer.tokens} authenticates as
 * `tokenUsers.get(T) ?? "system:serviceaccount:kube-system:extractedprism"`. Neither: 401 `Unauthorized`.
 * {@linkcode FakeApiServer.rbac} maps a user or group name to allowed `{ verb, resource }` pairs (`"*"` wildcards);
 * an identity with no entry may do everything; one with entries but no matching grant gets 403 `Forbidden`.
 *
 * ## Test controls
 * State, as a real cluster could reach it: `upsert(obj)`, `remove(type, ns, name)`, `get`, `list`,
 * `resourceVersion`, `expireHistory()` (a compaction), `tokens`, `tokenUsers`, `rbac`, `readyz`, `requests`,
 * `openWatches`, `waitForRequest(predicate, timeoutMs?, { since }?)`, `waitForOpenWatches(n, timeoutMs?)`,
 * `close()` / `[Symbol.asyncDispose]` (ends every stream, closes every connection).
 *
 * ## Faults (what only a fake can do on demand; the parity probes do not cover them)
 * `sendGoneEvent(reason?)` (a 410 ERROR event on every open watch), `dropStreams()`, `dropConnections()`, `dropMidEvent()`,
 * `sendGarbage(text?)`, `silence(on)`, `failNext(n, status, { match }?)` (a bare Status for any code, with
 * `Retry-After` for 429/503), the option `faultExpiredWatchAsHttp410`, and the timing knob `bookmarkIntervalMs`
 * (real servers on etcd 3.4 sent no bookmark at all on a quiet watch).
 *
 * @example
 * ```ts
 * import { createTestPki } from "./test_pki.ts";
 * import { endpointSlice, startFakeApiServer } from "./fake_apiserver.ts";
 *
 * await using pki = await createTestPki();
 * await using api = await startFakeApiServer({ pki, tokens: ["t0k3n"] });
 * api.upsert(endpointSlice("kubernetes", ["127.0.0.1"], 6443));
 * using client = Deno.createHttpClient({ caCerts: [pki.ca.cert] });
 * const res = await fetch(`${api.url}/apis/discovery.k8s.io/v1/namespaces/default/endpointslices` +
 *   "?labelSelector=kubernetes.io%2Fservice-name%3Dkubernetes", { client, headers: { authorization: "Bearer t0k3n" } });
 * const list = await res.json(); // { kind: "EndpointSliceList", metadata: { resourceVersion: "1001" }, items: [...] }
 * ```
 *
 * @module
 */

import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { parse as parseYaml } from "yaml";
import {
  authenticate,
  authorize,
  DEFAULT_TOKEN_USER,
  forbiddenStatus,
  type Grant,
  type Identity,
  unauthorizedStatus,
} from "./_fake_api_auth.ts";
import { isObject, type Json, type JsonObject } from "./_fake_api_fields.ts";
import { Discovery } from "./_fake_api_discovery.ts";
import { findType, parseResourcePath, type ResourceType } from "./_fake_api_resources.ts";

import { ApiError, badRequest, failureStatus, type KubeStatus, statusForCode } from "./_fake_api_status.ts";
import { type KubeObject, ObjectStore } from "./_fake_api_store.ts";
import { parseBool, parseJson, readBody, verbOf } from "./_fake_api_http.ts";
import { ListPager } from "./_fake_api_list.ts";
import { prepareWatch, WatchStream } from "./_fake_api_watch.ts";
import type { TestPki } from "./test_pki.ts";

export type { Grant, Identity } from "./_fake_api_auth.ts";
export type { KubeStatus, StatusDetails } from "./_fake_api_status.ts";
export type { KubeObject } from "./_fake_api_store.ts";
export type { Json, JsonObject } from "./_fake_api_fields.ts";
export { DEFAULT_TOKEN_USER };

/** Options of {@linkcode startFakeApiServer}. */
export interface FakeApiServerOptions {
  /** The PKI whose CA signs the server certificate and verifies client certificates. */
  readonly pki: TestPki;
  /** Which server certificate to serve: SAN `IP:127.0.0.1` or SAN `DNS:kubernetes.default.svc`... @default {"ip"} */
  readonly serverCert?: "ip" | "dns";
  /** Accepted bearer tokens (the set stays mutable as {@linkcode FakeApiServer.tokens}). @default {[]} */
  readonly tokens?: Iterable<string>;
  /** User names of tokens; others are {@linkcode DEFAULT_TOKEN_USER}. */
  readonly tokenUsers?: Iterable<[string, string]>;
  /** Grants per user or group name. @default {{}} (everyone may do everything) */
  readonly rbac?: Iterable<[string, Grant[]]>;
  /** Bookmark period of watches that allow bookmarks. @default {1000} */
  readonly bookmarkIntervalMs?: number;
  /** Events kept for watches that resume from a resourceVersion. @default {1000} */
  readonly historySize?: number;
  /** Whether `/healthz`, `/livez`, `/readyz`, `/version` answer without credentials. @default {true} */
  readonly anonymousHealth?: boolean;
  /** Objects stored before the server starts (each one bumps the resourceVersion). */
  readonly objects?: readonly JsonObject[];
  /**
   * Group versions not to serve, as `group/version` (e.g. `["discovery.k8s.io/v1"]`, as kube-apiserver 1.20): their
   * paths answer 404 and discovery leaves them out. @default {[]}
   */
  readonly unservedGroupVersions?: Iterable<string>;
  /**
   * Fault (no real server does this): a watch from a resourceVersion older than the history is answered with an HTTP
   * 410 Status instead of a 200 stream whose one event is an `ERROR` carrying the 410 Status (what the real watch
   * cache sends). Keeps the client's HTTP-410 path covered. @default {false}
   */
  readonly faultExpiredWatchAsHttp410?: boolean;
}

/** One request, as logged when its status was sent (for a watch: when the stream started). */
export interface RequestRecord {
  /** HTTP method. */
  readonly method: string;
  /** Path with query, as sent. */
  readonly path: string;
  /** The authenticated user, if any. */
  readonly user: string | undefined;
  /** The HTTP status answered. */
  readonly status: number;
  /** The client's IP address. */
  readonly remoteAddress: string;
  /** The client's port: requests with the same one came on the same kept-alive connection. */
  readonly remotePort: number;
  /** Whether the request opened a watch stream. */
  readonly watch: boolean;
  /** Index in {@linkcode FakeApiServer.requests}. */
  readonly index: number;
}

/** A request a `failNext` predicate sees. */
export interface RequestInfo {
  /** HTTP method. */
  readonly method: string;
  /** Path with query. */
  readonly path: string;
}

const HEALTH_PATHS = new Set(["/healthz", "/livez", "/readyz", "/version"]);

/**
 * Starts a fake API server on `127.0.0.1`, port 0.
 *
 * @returns the running server; `await using` it, or call `close()`
 */
export async function startFakeApiServer(options: FakeApiServerOptions): Promise<FakeApiServer> {
  const server = new FakeApiServer(options);
  await server.listen();
  return server;
}

/** The fake API server. Create it with {@linkcode startFakeApiServer}. */
export class FakeApiServer implements AsyncDisposable {
  /** Accepted bearer tokens; change it to test rotation. */
  readonly tokens: Set<string>;
  /** User name per token. */
  readonly tokenUsers: Map<string, string>;
  /** Grants per user or group name; see the module documentation. */
  readonly rbac: Map<string, Grant[]>;
  /** Every request answered so far, oldest first. */
  readonly requests: RequestRecord[] = [];
  /** The status `/readyz` answers. @default {200} */
  readyz = 200;

  readonly #store: ObjectStore;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #watches = new Set<WatchStream>();
  readonly #bookmarkIntervalMs: number;
  readonly #anonymousHealth: boolean;
  readonly #failures: { remaining: number; status: number; match: (r: RequestInfo) => boolean }[] = [];
  readonly #pager: ListPager;
  readonly #discovery: Discovery;
  readonly #expiredWatchAsHttp410: boolean;
  readonly #changeListeners = new Set<() => void>();
  #port = 0;
  #closed = false;

  /** Use {@linkcode startFakeApiServer}. */
  constructor(options: FakeApiServerOptions) {
    this.tokens = new Set(options.tokens ?? []);
    this.tokenUsers = new Map(options.tokenUsers ?? []);
    this.rbac = new Map(options.rbac ?? []);
    this.#bookmarkIntervalMs = options.bookmarkIntervalMs ?? 1000;
    this.#anonymousHealth = options.anonymousHealth ?? true;
    this.#store = new ObjectStore(options.historySize === undefined ? {} : { historySize: options.historySize });
    this.#pager = new ListPager(this.#store);
    this.#discovery = new Discovery(options.unservedGroupVersions ?? []);
    this.#expiredWatchAsHttp410 = options.faultExpiredWatchAsHttp410 ?? false;
    for (const obj of options.objects ?? []) this.#store.upsert(obj);
    this.#store.subscribe((e) => {
      for (const w of this.#watches) w.deliver(e);
    });
    const cert = options.serverCert === "dns" ? options.pki.serverDns : options.pki.serverIp;
    this.#server = createServer(
      { requestCert: true, rejectUnauthorized: false, ca: options.pki.ca.cert, cert: cert.cert, key: cert.key },
      (req, res) => void this.#handle(req, res),
    );
    this.#server.on("connection", (s: Socket) => this.#track(s));
    this.#server.on("secureConnection", (s: Socket) => this.#track(s));
  }

  /** Binds the listener. Called by {@linkcode startFakeApiServer}. */
  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(0, "127.0.0.1", () => {
        this.#server.off("error", reject);
        resolve();
      });
    });
    const addr = this.#server.address();
    if (addr === null || typeof addr === "string") throw new Error("Cannot read the fake API server's address");
    this.#port = addr.port;
  }

  /** `https://127.0.0.1:PORT`. */
  get url(): string {
    return `https://127.0.0.1:${this.#port}`;
  }

  /** The listening port. */
  get port(): number {
    return this.#port;
  }

  /** The cluster-wide resourceVersion (of the latest write). */
  get resourceVersion(): string {
    return String(this.#store.resourceVersion);
  }

  /** Watches open now. */
  get openWatches(): number {
    return this.#watches.size;
  }

  /** Stores an object (create or replace, no preconditions), emitting ADDED or MODIFIED. Returns it as stored. */
  upsert(obj: JsonObject): KubeObject {
    return this.#store.upsert(obj);
  }

  /** Deletes an object, emitting DELETED. `type` is a plural (`endpointslices`) or a kind. Returns whether it existed. */
  remove(type: string, namespace: string, name: string): boolean {
    return this.#store.remove(typeOf(type), namespace, name);
  }

  /** A copy of a stored object, or undefined. */
  get(type: string, namespace: string, name: string): KubeObject | undefined {
    return this.#store.get(typeOf(type), namespace, name);
  }

  /** Copies of the stored objects of a type, in one namespace or all. */
  list(type: string, namespace?: string): KubeObject[] {
    return this.#store.list(typeOf(type), namespace);
  }

  /** Forgets the history: a watch (or continue token) from a resourceVersion before now then gets HTTP 410. */
  expireHistory(): void {
    this.#store.expireHistory();
    this.#pager.expire();
  }

  /** Sends an `ERROR` event with a 410 `Status` on every open watch, then ends each. */
  sendGoneEvent(reason: "Expired" | "Gone" = "Expired"): void {
    const rv = this.#store.resourceVersion;
    const message = `too old resource version: ${Math.max(0, rv - 1)} (${rv})`;
    for (const w of [...this.#watches]) w.sendError(failureStatus(410, reason, message));
  }

  /** Cuts every open watch's connection mid-stream. */
  dropStreams(): void {
    for (const w of [...this.#watches]) w.destroy();
  }

  /** Closes every client connection, kept-alive idle ones too (as a server's idle timeout does); keeps listening. */
  dropConnections(): void {
    for (const w of [...this.#watches]) w.destroy();
    for (const s of this.#sockets) s.destroy();
  }

  /** Writes half an event line on every open watch, then cuts its connection. */
  dropMidEvent(): void {
    for (const w of [...this.#watches]) w.dropMidEvent();
  }

  /** Writes a line that is not JSON on every open watch (which stays open). */
  sendGarbage(text = "this is not json\n"): void {
    for (const w of this.#watches) w.sendRaw(text);
  }

  /**
   * Silences the watches open now: no events, no bookmarks, connection kept. Watches opened later are not silenced.
   * `silence(false)` delivers what was held back, in order, and resumes bookmarks.
   */
  silence(on: boolean): void {
    for (const w of this.#watches) w.silence(on);
  }

  /** The next `n` requests (those `match` accepts) are answered with `status` and its `Status` body. */
  failNext(n: number, status: number, options: { match?: (r: RequestInfo) => boolean } = {}): void {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`Cannot fail '${n}' requests: expected an integer ≥ 1`);
    this.#failures.push({ remaining: n, status, match: options.match ?? (() => true) });
  }

  /**
   * Resolves with the first logged request that `predicate` accepts, among those logged at index `since` or later
   * (default 0: past requests count). Rejects after `timeoutMs`.
   */
  waitForRequest(
    predicate: (r: RequestRecord) => boolean,
    timeoutMs = 5000,
    options: { since?: number } = {},
  ): Promise<RequestRecord> {
    const since = options.since ?? 0;
    return this.#waitFor(() => this.requests.slice(since).find(predicate), timeoutMs, "a matching request");
  }

  /** Resolves when at least `n` watches are open. Rejects after `timeoutMs`. */
  async waitForOpenWatches(n: number, timeoutMs = 5000): Promise<void> {
    await this.#waitFor(() => (this.#watches.size >= n ? true : undefined), timeoutMs, `${n} open watches`);
  }

  /** Ends every stream, closes every connection and the listener. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of [...this.#watches]) w.destroy();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const s of this.#sockets) s.destroy();
    await closed;
    this.#notify();
  }

  /** Same as {@linkcode close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #track(s: Socket): void {
    this.#sockets.add(s);
    s.once("close", () => this.#sockets.delete(s));
  }

  #notify(): void {
    for (const l of [...this.#changeListeners]) l();
  }

  #waitFor<T>(probe: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const now = probe();
    if (now !== undefined) return Promise.resolve(now);
    const { promise, resolve, reject } = Promise.withResolvers<T>();
    const done = () => {
      clearTimeout(timer);
      this.#changeListeners.delete(check);
    };
    const check = () => {
      const v = probe();
      if (v !== undefined) {
        done();
        resolve(v);
      } else if (this.#closed) {
        done();
        reject(new Error(`Cannot wait for ${what}: expected it before the fake API server closed`));
      }
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`Cannot wait for ${what}: expected it within ${timeoutMs} ms`));
    }, timeoutMs);
    this.#changeListeners.add(check);
    // Rejected at close() even when nobody awaits it (yet): that must not be an unhandled rejection.
    promise.catch(() => {});
    return promise;
  }

  #log(req: IncomingMessage, status: number, identity: Identity | undefined, watch: boolean): void {
    this.requests.push({
      method: req.method ?? "",
      path: req.url ?? "",
      user: identity?.user,
      status,
      remoteAddress: req.socket.remoteAddress ?? "",
      remotePort: req.socket.remotePort ?? 0,
      watch,
      index: this.requests.length,
    });
    this.#notify();
  }

  #send(req: IncomingMessage, res: ServerResponse, status: number, body: unknown, identity?: Identity): void {
    this.#log(req, status, identity, false);
    const text = typeof body === "string" ? body : JSON.stringify(body);
    res.writeHead(status, {
      "content-type": typeof body === "string" ? "text/plain; charset=utf-8" : "application/json",
      "content-length": String(new TextEncoder().encode(text).length),
      "audit-id": crypto.randomUUID(),
      "cache-control": "no-cache, private",
    });
    res.end(text);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let identity: Identity | undefined;
    try {
      const method = req.method ?? "GET";
      const path = req.url ?? "/";
      const injected = this.#failures.find((f) => f.match({ method, path }));
      if (injected !== undefined) {
        injected.remaining -= 1;
        if (injected.remaining === 0) this.#failures.splice(this.#failures.indexOf(injected), 1);
        req.resume();
        const status = statusForCode(injected.status);
        const headers = status.details?.retryAfterSeconds === undefined ? {} : { "retry-after": "1" };
        for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
        return this.#send(req, res, injected.status, status);
      }
      const url = new URL(path, "https://fake.invalid");
      identity = authenticate(req, this);
      if (HEALTH_PATHS.has(url.pathname) && method === "GET") {
        if (identity === undefined && !this.#anonymousHealth) throw new ApiError(unauthorizedStatus());
        req.resume();
        return this.#health(req, res, url.pathname, identity);
      }
      if (identity === undefined) throw new ApiError(unauthorizedStatus());
      await this.#resource(req, res, url, identity);
    } catch (e) {
      if (res.headersSent) {
        res.socket?.destroy();
        return;
      }
      const status = e instanceof ApiError
        ? e.status
        : failureStatus(500, "InternalError", `Internal error occurred: ${e instanceof Error ? e.message : e}`);
      this.#send(req, res, status.code, status, identity);
    }
  }

  #health(req: IncomingMessage, res: ServerResponse, pathname: string, identity: Identity | undefined): void {
    if (pathname === "/version") {
      const version = {
        major: "1",
        minor: "33",
        gitVersion: "v1.33.0-fake",
        gitCommit: "0000000000000000000000000000000000000000",
        gitTreeState: "clean",
        buildDate: "2025-04-23T00:00:00Z",
        goVersion: "go1.24.2",
        compiler: "gc",
        platform: "linux/amd64",
      };
      return this.#send(req, res, 200, version, identity);
    }
    const status = pathname === "/readyz" ? this.readyz : 200;
    const text = status === 200 ? "ok" : `[-]fake-apiserver failed: reason withheld\n${pathname.slice(1)} check failed`;
    this.#send(req, res, status, text, identity);
  }

  async #resource(req: IncomingMessage, res: ServerResponse, url: URL, identity: Identity): Promise<void> {
    const method = req.method ?? "GET";
    const target = parseResourcePath(url.pathname);
    if (target === undefined || !this.#discovery.serves(target.type)) {
      req.resume();
      const doc = method === "GET" ? this.#discovery.document(url.pathname, `127.0.0.1:${this.#port}`) : undefined;
      if (doc !== undefined) return this.#send(req, res, 200, doc, identity);
      // A served group's handler answers a JSON Status; anything else falls through to the mux's plain-text 404.
      if (!this.#discovery.underKnownGroup(url.pathname)) {
        return this.#send(req, res, 404, "404 page not found", identity);
      }
      throw new ApiError(failureStatus(404, "NotFound", "the server could not find the requested resource", {}));
    }
    const { type, namespace, name } = target;
    const q = url.searchParams;
    const watch = method === "GET" && name === undefined && parseBool(q, "watch");
    const verb = verbOf(method, name !== undefined, watch);
    if (verb === undefined || (namespace === undefined && verb !== "list" && verb !== "watch")) {
      throw new ApiError(
        failureStatus(405, "MethodNotAllowed", `the server does not allow this method on the requested resource`),
      );
    }
    const where: { namespace?: string; name?: string } = {};
    if (namespace !== undefined) where.namespace = namespace;
    if (name !== undefined) where.name = name;
    if (!authorize(identity, verb, type.resource, this.rbac)) {
      throw new ApiError(forbiddenStatus(identity, verb, type, where));
    }
    if (q.has("dryRun")) badRequest("dryRun is not supported by the fake API server");
    const body = await readBody(req);
    const ns = namespace ?? "";
    const nm = name ?? "";
    const manager = q.get("fieldManager") ?? (req.headers["user-agent"] ?? "unknown").split("/")[0] ?? "unknown";
    switch (verb) {
      case "get": {
        const obj = this.#store.get(type, ns, nm);
        if (obj === undefined) {
          throw new ApiError(failureStatus(404, "NotFound", `${qualified(type)} "${nm}" not found`, {
            name: nm,
            group: type.group,
            kind: type.resource,
          }));
        }
        return this.#send(req, res, 200, obj, identity);
      }
      case "list":
        return this.#send(req, res, 200, this.#pager.list(type, namespace, q), identity);
      case "watch":
        return this.#watch(req, res, type, namespace, q, identity);
      case "create":
        return this.#send(req, res, 201, this.#store.create(type, ns, parseJson(body, req), { manager }), identity);
      case "update": {
        const out = this.#store.updateOrCreate(type, ns, nm, parseJson(body, req), { manager });
        return this.#send(req, res, out.created ? 201 : 200, out.object, identity);
      }
      case "patch":
        return this.#patch(req, res, type, { namespace: ns, name: nm, body, q, identity });
      case "delete": {
        const options = body.trim() === "" ? {} : parseJson(body, req);
        const pre = isObject(options) && isObject(options.preconditions) ? options.preconditions : {};
        const preconditions: { uid?: string; resourceVersion?: string } = {};
        if (typeof pre.uid === "string") preconditions.uid = pre.uid;
        if (typeof pre.resourceVersion === "string") preconditions.resourceVersion = pre.resourceVersion;
        const gone = this.#store.delete(type, ns, nm, preconditions);
        const status = {
          kind: "Status",
          apiVersion: "v1",
          metadata: {},
          status: "Success",
          details: { name: nm, group: type.group, kind: type.resource, uid: gone.metadata.uid },
        };
        return this.#send(req, res, 200, status, identity);
      }
    }
  }

  #patch(
    req: IncomingMessage,
    res: ServerResponse,
    type: ResourceType,
    p: { namespace: string; name: string; body: string; q: URLSearchParams; identity: Identity },
  ): void {
    const contentType = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
    const manager = p.q.get("fieldManager") ?? "";
    if (contentType === "application/apply-patch+yaml") {
      if (manager === "") {
        throw new ApiError(failureStatus(
          422,
          "Invalid",
          'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
          {
            group: "meta.k8s.io",
            kind: "PatchOptions",
            causes: [{
              reason: "FieldValueRequired",
              message: "Required value: is required for apply patch",
              field: "fieldManager",
            }],
          },
        ));
      }
      let applied: Json;
      try {
        applied = parseYaml(p.body) as Json;
      } catch (e) {
        badRequest(`error decoding YAML: ${e instanceof Error ? e.message.split("\n")[0] : e}`);
      }
      const force = parseBool(p.q, "force");
      const out = this.#store.apply(type, p.namespace, p.name, applied, { manager, force });
      return this.#send(req, res, out.created ? 201 : 200, out.object, p.identity);
    }
    if (contentType === "application/merge-patch+json" || contentType === "application/strategic-merge-patch+json") {
      if (p.q.has("force")) {
        throw new ApiError(failureStatus(
          422,
          "Invalid",
          'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch',
        ));
      }
      const ua = (req.headers["user-agent"] ?? "unknown").split("/")[0] ?? "unknown";
      const obj = this.#store.mergePatch(type, p.namespace, p.name, parseJson(p.body, req), {
        manager: manager === "" ? ua : manager,
      });
      return this.#send(req, res, 200, obj, p.identity);
    }
    throw new ApiError(failureStatus(
      415,
      "UnsupportedMediaType",
      `the body of the request was in an unknown format - accepted media types include: ` +
        "application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml",
    ));
  }

  #watch(
    req: IncomingMessage,
    res: ServerResponse,
    type: ResourceType,
    namespace: string | undefined,
    q: URLSearchParams,
    identity: Identity,
  ): void {
    // Synchronous from here to start(): no write can slip between the backlog and the subscription.
    let prepared: ReturnType<typeof prepareWatch>;
    let expired: KubeStatus | undefined;
    try {
      prepared = prepareWatch(this.#store, type, namespace, q, this.#bookmarkIntervalMs);
    } catch (e) {
      // The watch cache accepts the request and sends the 410 as the stream's only event (an HTTP 410 is a fault).
      if (!(e instanceof ApiError) || e.status.code !== 410 || this.#expiredWatchAsHttp410) throw e;
      expired = e.status;
      prepared = prepareWatch(this.#store, type, namespace, withoutResourceVersion(q), this.#bookmarkIntervalMs);
    }
    const { spec, backlog } = prepared;
    if (res.destroyed || res.socket === null || res.socket.destroyed) return;
    const w = new WatchStream(res, spec, (closed) => this.#watchClosed(closed));
    this.#watches.add(w);
    this.#log(req, 200, identity, true);
    w.start({ "audit-id": crypto.randomUUID() }, expired === undefined ? backlog : []);
    if (expired !== undefined) w.sendError(expired);
  }

  #watchClosed(w: WatchStream): void {
    if (this.#watches.delete(w)) this.#notify();
  }
}

/** The query with `resourceVersion` set to `0`: only to build a stream that sends nothing but its ERROR event. */
function withoutResourceVersion(q: URLSearchParams): URLSearchParams {
  const out = new URLSearchParams(q);
  out.set("resourceVersion", "0");
  out.delete("sendInitialEvents");
  return out;
}

function typeOf(name: string): ResourceType {
  const type = findType(name);
  if (type === undefined) {
    throw new TypeError(`Cannot find resource type '${name}': expected endpointslices, services, leases or events`);
  }
  return type;
}

function qualified(type: ResourceType): string {
  return type.group === "" ? type.resource : `${type.resource}.${type.group}`;
}

/**
 * An EndpointSlice like the one the API servers write for the `kubernetes` Service: label
 * `kubernetes.io/service-name`, one port named `https`, every address `ready: true` unless listed in `notReady`.
 */
export function endpointSlice(
  name: string,
  addresses: readonly string[],
  port: number,
  options: { namespace?: string; serviceName?: string; notReady?: readonly string[]; addressType?: string } = {},
): JsonObject {
  const notReady = new Set(options.notReady ?? []);
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: {
      name,
      namespace: options.namespace ?? "default",
      labels: {
        "kubernetes.io/service-name": options.serviceName ?? "kubernetes",
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
      },
    },
    addressType: options.addressType ?? (addresses.some((a) => a.includes(":")) ? "IPv6" : "IPv4"),
    endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready: !notReady.has(a) } })),
    ports: [{ name: "https", port, protocol: "TCP" }],
  };
}
