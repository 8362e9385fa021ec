/**
 * One open watch of the fake API server: newline-delimited JSON events over a chunked HTTP response, filtered by
 * namespace and selectors the way the API server's watch cache filters them (an object that stops matching is sent
 * as DELETED, one that starts matching as ADDED), periodic bookmarks, `timeoutSeconds`, and the faults the tests
 * inject (silence, garbage, a 410 ERROR event, a cut connection).
 *
 * @module
 */

import type { ServerResponse } from "node:http";
import { apiVersionOf, type ResourceType } from "./_fake_api_resources.ts";
import type { ObjectPredicate } from "./_fake_api_selectors.ts";
import type { KubeStatus } from "./_fake_api_status.ts";
import type { ChangeType, KubeObject, ObjectStore, StoredEvent } from "./_fake_api_store.ts";
import { parseBool, selectorOf } from "./_fake_api_http.ts";
import { ApiError, badRequest, failureStatus } from "./_fake_api_status.ts";

/** A watch event on the wire. */
export interface WireEvent {
  type: ChangeType | "BOOKMARK" | "ERROR";
  object: KubeObject | KubeStatus | { kind: string; apiVersion: string; metadata: Record<string, unknown> };
}

/** What one watch sends. */
export interface WatchSpec {
  readonly type: ResourceType;
  /** Undefined for a cluster-wide watch. */
  readonly namespace: string | undefined;
  readonly matches: ObjectPredicate;
  /** Bookmark period in ms, or undefined when the client did not ask for bookmarks. */
  readonly bookmarkIntervalMs: number | undefined;
  /** Ends the response after this many ms (the `timeoutSeconds` parameter). */
  readonly timeoutMs: number | undefined;
  /** The cluster-wide resourceVersion now, for bookmarks. */
  readonly currentRv: () => number;
}

/**
 * What a watch of `spec` sends for a stored change, or undefined if nothing: the watch cache's rules (an object that
 * stops matching is DELETED with the change's resourceVersion, one that starts matching is ADDED).
 */
export function toWireEvent(
  e: StoredEvent,
  spec: Pick<WatchSpec, "type" | "namespace" | "matches">,
): WireEvent | undefined {
  if (e.type !== spec.type) return undefined;
  const matches = (o: KubeObject | undefined) =>
    o !== undefined && (spec.namespace === undefined || o.metadata.namespace === spec.namespace) &&
    spec.matches(o as Parameters<ObjectPredicate>[0]);
  const now = matches(e.object);
  const before = matches(e.previous);
  switch (e.change) {
    case "ADDED":
      return now ? { type: "ADDED", object: e.object } : undefined;
    case "DELETED":
      return now || before ? { type: "DELETED", object: e.object } : undefined;
    case "MODIFIED": {
      if (now) return { type: before ? "MODIFIED" : "ADDED", object: e.object };
      if (!before || e.previous === undefined) return undefined;
      const gone = structuredClone(e.previous);
      gone.metadata.resourceVersion = String(e.rv);
      return { type: "DELETED", object: gone };
    }
  }
}

/** An open watch. */
export class WatchStream {
  readonly #res: ServerResponse;
  readonly #spec: WatchSpec;
  readonly #onClose: (w: WatchStream) => void;
  #silenced = false;
  #queue: string[] = [];
  #closed = false;
  #bookmarkTimer: ReturnType<typeof setInterval> | undefined;
  #timeoutTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(res: ServerResponse, spec: WatchSpec, onClose: (w: WatchStream) => void) {
    this.#res = res;
    this.#spec = spec;
    this.#onClose = onClose;
    res.on("close", () => this.#cleanup());
  }

  /** Sends the status line and the backlog, then starts the bookmark and timeout timers. */
  start(headers: Record<string, string>, backlog: readonly WireEvent[]): void {
    this.#res.writeHead(200, { "content-type": "application/json", "cache-control": "no-cache", ...headers });
    this.#res.flushHeaders();
    for (const e of backlog) this.#send(JSON.stringify(e) + "\n");
    if (this.#spec.bookmarkIntervalMs !== undefined) {
      this.#bookmarkTimer = setInterval(() => this.#bookmark(), this.#spec.bookmarkIntervalMs);
    }
    if (this.#spec.timeoutMs !== undefined) {
      this.#timeoutTimer = setTimeout(() => this.end(), this.#spec.timeoutMs);
    }
  }

  /** Delivers one stored change if it concerns this watch. */
  deliver(e: StoredEvent): void {
    if (this.#closed) return;
    const out = toWireEvent(e, this.#spec);
    if (out !== undefined) this.#send(JSON.stringify(out) + "\n");
  }

  /** While on, events and bookmarks are held back (events are delivered, in order, when it is turned off). */
  silence(on: boolean): void {
    this.#silenced = on;
    if (on) return;
    const queued = this.#queue;
    this.#queue = [];
    for (const line of queued) this.#write(line);
  }

  /** Sends an `ERROR` event carrying `status`, then ends the response, as the API server does. */
  sendError(status: KubeStatus): void {
    if (this.#closed) return;
    this.#write(JSON.stringify({ type: "ERROR", object: status }) + "\n");
    this.end();
  }

  /** Writes raw text at once, silence or not. */
  sendRaw(text: string): void {
    this.#write(text);
  }

  /** Ends the response cleanly (the final zero-length chunk). */
  end(): void {
    if (this.#closed) return;
    this.#cleanup();
    this.#res.end();
  }

  /** Cuts the connection without ending the chunked body. */
  destroy(): void {
    this.#cleanup();
    this.#res.socket?.destroy();
  }

  /** Writes half of an event line, then cuts the connection. */
  dropMidEvent(): void {
    if (this.#closed) return;
    const line = JSON.stringify({
      type: "MODIFIED",
      object: { kind: this.#spec.type.kind, apiVersion: apiVersionOf(this.#spec.type), metadata: { name: "cut" } },
    });
    const socket = this.#res.socket;
    this.#res.write(line.slice(0, Math.floor(line.length / 2)), () => socket?.destroy());
    this.#cleanup();
  }

  #bookmark(): void {
    if (this.#silenced) return;
    const e: WireEvent = {
      type: "BOOKMARK",
      object: {
        kind: this.#spec.type.kind,
        apiVersion: apiVersionOf(this.#spec.type),
        metadata: { resourceVersion: String(this.#spec.currentRv()) },
      },
    };
    this.#write(JSON.stringify(e) + "\n");
  }

  #send(line: string): void {
    if (this.#silenced) this.#queue.push(line);
    else this.#write(line);
  }

  #write(text: string): void {
    if (this.#closed || this.#res.writableEnded || this.#res.destroyed) return;
    this.#res.write(text);
  }

  #cleanup(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#bookmarkTimer);
    clearTimeout(this.#timeoutTimer);
    this.#queue = [];
    this.#onClose(this);
  }
}

/**
 * Parses a watch request's query (`resourceVersion`, `allowWatchBookmarks`, `timeoutSeconds`, selectors,
 * `sendInitialEvents`) into what the stream sends and the events it starts with: the current objects as ADDED when
 * `resourceVersion` is unset or `0`, else the stored changes after it.
 *
 * @throws {ApiError} 400 for a bad parameter, 410 `Expired` for a resourceVersion older than the history
 */
export function prepareWatch(
  store: ObjectStore,
  type: ResourceType,
  namespace: string | undefined,
  q: URLSearchParams,
  bookmarkIntervalMs: number,
): { spec: WatchSpec; backlog: WireEvent[] } {
  const matches = selectorOf(q);
  const rvText = q.get("resourceVersion") ?? "";
  const bookmarks = parseBool(q, "allowWatchBookmarks");
  const initialEvents = parseBool(q, "sendInitialEvents");
  if (initialEvents && (!bookmarks || q.get("resourceVersionMatch") !== "NotOlderThan")) {
    throw new ApiError(failureStatus(
      422,
      "Invalid",
      'ListOptions.meta.k8s.io "" is invalid: sendInitialEvents: Forbidden: sendInitialEvents requires ' +
        "allowWatchBookmarks=true and resourceVersionMatch=NotOlderThan",
    ));
  }
  const timeoutText = q.get("timeoutSeconds") ?? "";
  const timeoutSeconds = timeoutText === "" ? undefined : Number(timeoutText);
  if (timeoutSeconds !== undefined && (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 0)) {
    badRequest(`invalid timeoutSeconds: '${timeoutText}': expected an integer ≥ 0`);
  }
  const inNamespace = (o: KubeObject) => namespace === undefined || o.metadata.namespace === namespace;
  const selected = (o: KubeObject) => inNamespace(o) && matches(o as Parameters<ObjectPredicate>[0]);
  const spec: WatchSpec = {
    type,
    namespace,
    matches,
    bookmarkIntervalMs: bookmarks ? bookmarkIntervalMs : undefined,
    timeoutMs: timeoutSeconds === undefined || timeoutSeconds === 0 ? undefined : timeoutSeconds * 1000,
    currentRv: () => store.resourceVersion,
  };
  const backlog: WireEvent[] = [];
  if (rvText === "" || rvText === "0" || initialEvents) {
    for (const o of store.list(type, namespace)) if (selected(o)) backlog.push({ type: "ADDED", object: o });
    if (initialEvents) {
      backlog.push({
        type: "BOOKMARK",
        object: {
          kind: type.kind,
          apiVersion: apiVersionOf(type),
          metadata: {
            resourceVersion: String(store.resourceVersion),
            annotations: { "k8s.io/initial-events-end": "true" },
          },
        },
      });
    }
  } else {
    if (!/^\d+$/.test(rvText)) badRequest(`resourceVersion: Invalid value: "${rvText}": invalid resource version`);
    for (const e of store.since(type, Number(rvText))) {
      const out = toWireEvent(e, spec);
      if (out !== undefined) backlog.push(out);
    }
  }
  return { spec, backlog };
}
