/**
 * What {@linkcode listWatch} and {@linkcode listWatchDeltas} take and give, apart from the loop that produces it (so
 * that the loop and its public face import the same types, not each other).
 *
 * @module
 */
import type { Clock, Random } from "../clock.ts";
import type { KubeTransport } from "./transport.ts";
import type { KubeObject } from "./types.ts";

/** The whole cache after a change, in namespace/name order. Only synced states (after a LIST) are ever emitted. */
export interface ListWatchSnapshot<T extends KubeObject> {
  /** Every cached object, sorted by namespace/name. */
  readonly items: readonly T[];
  /** The resourceVersion the cache reflects. */
  readonly resourceVersion: string;
}

/**
 * One change of the cache, for a consumer that keeps its own copy: `synced` after every (re)list replaces the whole
 * copy (objects that vanished while the watch was away are simply not in `items`); `upsert` and `delete` apply one
 * object. A `delete` may name an object the consumer never saw (added and deleted between two of its turns).
 */
export type ListWatchDelta<T extends KubeObject> =
  | {
    /** The cache after a LIST: replace everything held. */
    readonly kind: "synced";
    /** Every cached object, sorted by namespace/name. */
    readonly items: readonly T[];
    /** The resourceVersion of the list. */
    readonly resourceVersion: string;
  }
  | {
    /** An object was added or modified (`upsert`), or deleted (`delete`: its last state). */
    readonly kind: "upsert" | "delete";
    /** The object. */
    readonly object: T;
    /** The resourceVersion after the event. */
    readonly resourceVersion: string;
  };

/** What a retry is about to do, for logs, metrics and tests. */
export interface ListWatchRetry {
  /** What failed: the LIST (first or relist) or the WATCH. */
  readonly phase: "list" | "watch";
  /** One line: the error, or `the watch stream ended`. */
  readonly reason: string;
  /** The backoff delay before the next attempt. */
  readonly delayMs: number;
}

/** Options of {@linkcode listWatch} and {@linkcode listWatchDeltas}. */
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
  /** A watch with no bytes (no event, no bookmark) for this long is dropped: keep it above the jittered
   * `watchTimeoutSeconds`, as a quiet watch may see no bookmark at all before the server ends it (kube-apiserver
   * 1.20, or any on an etcd without progress notifications). Also bounds a LIST request. @default {180000} */
  readonly idleTimeoutMs?: number;
  /** Server-side watch timeout, jittered +/-20 % per watch (at most 144 s by default: below the idle deadline).
   * @default {120} */
  readonly watchTimeoutSeconds?: number;
  /** Page size of a LIST. @default {500} */
  readonly pageLimit?: number;
  /** Largest LIST page body accepted; a larger one fails the LIST (retried with backoff). @default {33554432} */
  readonly maxListBodyBytes?: number;
  /** Called before every backoff sleep. */
  readonly onRetry?: (retry: ListWatchRetry) => void;
  /**
   * When a LIST is answered 404 (the API server does not serve the collection: an API version it lacks), end the
   * iteration by throwing that `KubeApiError` instead of retrying, so that the caller can ask API discovery
   * and pick another version. @default {false} (a 404 is retried like any failure)
   */
  readonly stopWhenNotServed?: boolean;
}
