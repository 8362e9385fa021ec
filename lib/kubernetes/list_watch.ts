/**
 * A generic list+watch loop (a small reflector) over a `KubeTransport`: LIST (paginated), then WATCH from the
 * list's resourceVersion, and a cache keyed by namespace/name. It never gives up: every failure is retried with
 * backoff (unless told to stop on a collection the server does not serve), and a 410 Gone (as a status or as an event) forces a relist. Two ways to consume it: {@linkcode listWatch}
 * yields whole-cache snapshots (right for one small set, such as the EndpointSlices of one Service);
 * {@linkcode listWatchDeltas} yields what changed (right for a large set, such as every Service of a cluster).
 *
 * @module
 */
import { Reflector, type ReflectorSink } from "./_reflector.ts";
import type { ListWatchDelta, ListWatchOptions, ListWatchSnapshot } from "./list_watch_types.ts";
import type { KubeObject } from "./types.ts";

export type { ListWatchDelta, ListWatchOptions, ListWatchRetry, ListWatchSnapshot } from "./list_watch_types.ts";

/**
 * Lists and watches a collection until `signal` aborts, yielding a snapshot of the whole cache after the first LIST
 * and after every change. Snapshots coalesce: a slow consumer never stalls the watch and always gets the latest.
 * Stopping the iteration (or aborting `signal`) cancels the request in flight.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { listWatch } from "./list_watch.ts";
 * const transport = {
 *   request: () => Promise.resolve(Response.json({ metadata: { resourceVersion: "1" }, items: [{ metadata: { name: "a" } }] })),
 *   close: () => {},
 * };
 * const ctrl = new AbortController();
 * for await (const snap of listWatch({ transport, path: "/api/v1/namespaces/default/pods" }, ctrl.signal)) {
 *   assert(snap.items[0]?.metadata.name === "a");
 *   ctrl.abort();
 * }
 * ```
 */
export function listWatch<T extends KubeObject = KubeObject>(
  options: ListWatchOptions<T>,
  signal?: AbortSignal,
): AsyncGenerator<ListWatchSnapshot<T>, void, undefined> {
  let cache: ReadonlyMap<string, T> | undefined;
  let resourceVersion = "";
  let dirty = false;
  return drive(options, signal, (wake) => ({
    synced(c, rv) {
      cache = c;
      resourceVersion = rv;
      dirty = true;
      wake();
    },
    changed(_kind, _key, _object, rv) {
      resourceVersion = rv;
      dirty = true;
      wake();
    },
  }), () => {
    if (!dirty || cache === undefined) return undefined;
    dirty = false;
    // Sorted when the consumer takes it, not per event: a burst between two of its turns costs one sort.
    return { items: sortedValues(cache), resourceVersion };
  });
}

/**
 * Lists and watches a collection until `signal` aborts, yielding what changed: `synced` with every object after each
 * (re)list (replace what you hold), then `upsert` or `delete` per changed object. Changes coalesce per object while
 * the consumer is busy (it gets the latest state of each, so what waits is bounded by the collection's size), and a
 * relist drops the changes that waited before it. Folding the deltas gives the same cache as {@linkcode listWatch}'s
 * latest snapshot. Stopping the iteration (or aborting `signal`) cancels the request in flight.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { listWatchDeltas } from "./list_watch.ts";
 * const transport = {
 *   request: () => Promise.resolve(Response.json({ metadata: { resourceVersion: "1" }, items: [{ metadata: { name: "a" } }] })),
 *   close: () => {},
 * };
 * const ctrl = new AbortController();
 * for await (const delta of listWatchDeltas({ transport, path: "/api/v1/services" }, ctrl.signal)) {
 *   assert(delta.kind === "synced" && delta.items[0]?.metadata.name === "a");
 *   ctrl.abort();
 * }
 * ```
 */
export function listWatchDeltas<T extends KubeObject = KubeObject>(
  options: ListWatchOptions<T>,
  signal?: AbortSignal,
): AsyncGenerator<ListWatchDelta<T>, void, undefined> {
  let synced: ListWatchDelta<T> | undefined;
  const changes = new Map<string, ListWatchDelta<T>>();
  return drive(options, signal, (wake) => ({
    synced(cache, resourceVersion) {
      // A full replace supersedes every change that waited for the consumer.
      changes.clear();
      synced = { kind: "synced", items: sortedValues(cache), resourceVersion };
      wake();
    },
    changed(kind, key, object, resourceVersion) {
      // Coalesced per object: a later change replaces an earlier one that has not been taken (in its place).
      changes.set(key, { kind, object, resourceVersion });
      wake();
    },
  }), () => {
    if (synced !== undefined) {
      const s = synced;
      synced = undefined;
      return s;
    }
    const first = changes.entries().next();
    if (first.done) return undefined;
    changes.delete(first.value[0]);
    return first.value[1];
  });
}

/**
 * Runs a reflector into `sink` and yields what `take` returns until `signal` aborts or the consumer stops; `take`
 * returning `undefined` waits for the sink's next `wake`.
 */
async function* drive<T extends KubeObject, E>(
  options: ListWatchOptions<T>,
  signal: AbortSignal | undefined,
  sink: (wake: () => void) => ReflectorSink<T>,
  take: () => E | undefined,
): AsyncGenerator<E, void, undefined> {
  if (signal?.aborted) return;
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal?.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  let wake = Promise.withResolvers<void>();
  // The stop wakes whichever wait is current. Racing each wait against one promise that settles only at the stop
  // would leave a reaction on that promise per wait: a leak of about 330 bytes per endpoint change (found by the soak).
  stop.signal.addEventListener("abort", () => wake.resolve(), { once: true });
  const reflector = new Reflector(options, sink(() => wake.resolve()));
  let notServed: Error | undefined;
  const running = reflector.run(stop.signal).then((e) => {
    notServed = e;
    wake.resolve();
  });
  try {
    while (!stop.signal.aborted) {
      // What was taken before the collection turned out not to be served still goes out; then the error.
      const next = take();
      if (next === undefined && notServed !== undefined) throw notServed;
      if (next === undefined) {
        await wake.promise;
        wake = Promise.withResolvers<void>();
        continue;
      }
      yield next;
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    stop.abort();
    await running;
  }
}

function sortedValues<T>(cache: ReadonlyMap<string, T>): T[] {
  return [...cache.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v);
}
