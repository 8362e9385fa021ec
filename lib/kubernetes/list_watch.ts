/**
 * A generic list+watch loop (a small reflector) over a {@linkcode KubeTransport}: LIST (paginated), then WATCH from the
 * list's resourceVersion, a cache keyed by namespace/name, and a stream of whole-cache snapshots. It never gives up:
 * every failure is retried with backoff, and a 410 Gone (as a status or as an event) forces a relist.
 *
 * @module
 */
import type { Clock, Random } from "../clock.ts";
import { Reflector } from "./_reflector.ts";
import type { KubeTransport } from "./transport.ts";
import type { KubeObject } from "./types.ts";

/** The whole cache after a change, in namespace/name order. Only synced states (after a LIST) are ever emitted. */
export interface ListWatchSnapshot<T extends KubeObject> {
  /** Every cached object, sorted by namespace/name. */
  readonly items: readonly T[];
  /** The resourceVersion the cache reflects. */
  readonly resourceVersion: string;
}

/** What a retry is about to do, for logs, metrics and tests. */
export interface ListWatchRetry {
  /** What failed: the LIST (first or relist) or the WATCH. */
  readonly phase: "list" | "watch";
  /** One line: the error, or `the watch stream ended`. */
  readonly reason: string;
  /** The backoff delay before the next attempt. */
  readonly delayMs: number;
}

/** Options of {@linkcode listWatch}. */
export interface ListWatchOptions<T extends KubeObject> {
  /** How requests reach an API server. */
  readonly transport: KubeTransport;
  /** Collection path without query, e.g. `/apis/discovery.k8s.io/v1/namespaces/default/endpointslices`. */
  readonly path: string;
  /** Sent as `labelSelector` on the LIST and the WATCH, e.g. `kubernetes.io/service-name=kubernetes`. */
  readonly labelSelector?: string;
  /** Sent as `fieldSelector` on the LIST and the WATCH. */
  readonly fieldSelector?: string;
  /** Checks one untrusted object (its metadata already checked); throw a `TypeError` to skip it. @default identity */
  readonly decode?: (raw: KubeObject) => T;
  /** Time for backoff sleeps and the idle deadline. @default {systemClock} */
  readonly clock?: Clock;
  /** Randomness for backoff and watch-timeout jitter. @default {Math.random} */
  readonly random?: Random;
  /** First backoff cap; delays are uniform in [0, cap] (full jitter) and the cap doubles. @default {1000} */
  readonly backoffBaseMs?: number;
  /** Largest backoff cap. @default {30000} */
  readonly backoffMaxMs?: number;
  /** A watch with no bytes (no event, no bookmark) for this long is dropped; above the server's bookmark cadence
   * (about a minute). Also bounds a LIST request. @default {180000} */
  readonly idleTimeoutMs?: number;
  /** Server-side watch timeout, jittered ±20 % per watch. @default {300} */
  readonly watchTimeoutSeconds?: number;
  /** Page size of a LIST. @default {500} */
  readonly pageLimit?: number;
  /** Largest LIST page body accepted; a larger one fails the LIST (retried with backoff). @default {33554432} */
  readonly maxListBodyBytes?: number;
  /** Called before every backoff sleep. */
  readonly onRetry?: (retry: ListWatchRetry) => void;
}

/**
 * Lists and watches a collection until `signal` aborts, yielding a snapshot of the whole cache after the first LIST
 * and after every change. Snapshots coalesce: a slow consumer never stalls the watch and always gets the latest.
 * Stopping the iteration (or aborting `signal`) cancels the request in flight.
 *
 * @example
 * ```ts
 * import { listWatch } from "./list_watch.ts";
 * const transport = {
 *   request: () => Promise.resolve(Response.json({ metadata: { resourceVersion: "1" }, items: [{ metadata: { name: "a" } }] })),
 *   close: () => {},
 * };
 * const ctrl = new AbortController();
 * for await (const snap of listWatch({ transport, path: "/api/v1/namespaces/default/pods" }, ctrl.signal)) {
 *   console.assert(snap.items[0]?.metadata.name === "a");
 *   ctrl.abort();
 * }
 * ```
 */
export async function* listWatch<T extends KubeObject = KubeObject>(
  options: ListWatchOptions<T>,
  signal?: AbortSignal,
): AsyncGenerator<ListWatchSnapshot<T>, void, undefined> {
  if (signal?.aborted) return;
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal?.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  let latest: ListWatchSnapshot<T> | undefined;
  let version = 0;
  let wake = Promise.withResolvers<void>();
  // The stop wakes whichever wait is current. Racing each wait against one promise that settles only at the stop
  // would leave a reaction on that promise per wait: a leak of about 330 bytes per endpoint change (found by the soak).
  stop.signal.addEventListener("abort", () => wake.resolve(), { once: true });
  const reflector = new Reflector(options, (snap) => {
    latest = snap;
    version++;
    wake.resolve();
  });
  const running = reflector.run(stop.signal);
  let seen = 0;
  try {
    while (!stop.signal.aborted) {
      if (version === seen || latest === undefined) {
        await wake.promise;
        wake = Promise.withResolvers<void>();
        continue;
      }
      seen = version;
      yield latest;
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    stop.abort();
    await running;
  }
}
