/**
 * Merges endpoint providers into one stream: the deduplicated union of every provider's latest set.
 *
 * @module
 */
import { describeError } from "../errors.ts";
import { getLogger } from "../log.ts";
import { dedupeEndpoints, type Endpoint, endpointKey, normaliseIpv6 } from "../endpoint.ts";
import { guard } from "../internal_errors.ts";
import type { EndpointProvider } from "./provider.ts";

const log = getLogger(["extractedprism", "discovery"]);

/**
 * Runs every provider at once and yields their union whenever it changes. Bursts coalesce: a slow consumer never
 * blocks a provider and always gets the latest union. IPv6 hosts are normalised before deduplication. An empty union
 * is never yielded. A provider that fails loses its contribution; the others go on. A provider that ends keeps its
 * last set; the merge ends when every provider has ended. When the consumer stops (or `signal` aborts), every source
 * is returned.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mergeProviders } from "./merge.ts";
 * import { staticProvider } from "./static.ts";
 * const ctrl = new AbortController();
 * const merged = mergeProviders([
 *   staticProvider([{ host: "10.0.0.1", port: 6443 }]),
 *   staticProvider([{ host: "10.0.0.1", port: 6443 }]),
 * ], ctrl.signal);
 * for await (const set of merged) {
 *   assert(set.length === 1);
 *   break;
 * }
 * ctrl.abort();
 * ```
 */
export async function* mergeProviders(
  providers: readonly EndpointProvider[],
  signal: AbortSignal,
): AsyncGenerator<Endpoint[], void, undefined> {
  if (signal.aborted || providers.length === 0) return;
  const inner = new AbortController();
  const onAbort = () => inner.abort(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  const latest = new Map<number, readonly Endpoint[]>();
  let wake = Promise.withResolvers<void>();
  let running = providers.length;
  // Bumped on every change of `latest`, so that an update that lands while the consumer holds a yield is not lost.
  let version = 0;
  const iterators = providers.map((p): AsyncIterator<readonly Endpoint[]> => {
    try {
      return p.run(inner.signal)[Symbol.asyncIterator]();
    } catch (e) {
      // A provider that throws before it starts is a provider that failed: its pump logs it.
      return { next: () => Promise.reject(e) };
    }
  });

  const pumpOne = async (i: number) => {
    const it = iterators[i] as AsyncIterator<readonly Endpoint[]>;
    const name = providers[i]?.name ?? String(i);
    try {
      // Never ask a source for more once stopping: a source parked at a yield may not see an abort that came then.
      while (!inner.signal.aborted) {
        const r = await it.next();
        if (r.done) break;
        latest.set(i, r.value);
        version++;
        wake.resolve();
      }
    } catch (e) {
      if (!inner.signal.aborted) {
        log.error("Endpoint provider {provider} failed; dropping its endpoints: {error}", {
          provider: name,
          error: describeError(e),
        });
        latest.delete(i);
        version++;
      }
    } finally {
      running--;
      wake.resolve();
    }
  };
  providers.forEach((_, i) => guard(pumpOne(i), "an endpoint provider's pump"));

  let lastKey = "";
  // The abort wakes whichever wait is current (a race against one promise that settles only at the abort would leave
  // a reaction on it per wait: a slow leak).
  inner.signal.addEventListener("abort", () => wake.resolve(), { once: true });
  try {
    for (;;) {
      await wake.promise;
      wake = Promise.withResolvers<void>();
      if (inner.signal.aborted) break;
      const seen = version;
      const union = dedupeEndpoints(
        [...latest.entries()].sort(([a], [b]) => a - b).flatMap(([, set]) => set.map(normaliseEndpoint)),
      );
      const key = union.map(endpointKey).sort().join(",");
      if (union.length > 0 && key !== lastKey) {
        lastKey = key;
        yield union;
      }
      if (running === 0 && version === seen) break;
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    inner.abort();
    await Promise.allSettled(iterators.map((it) => it.return?.()));
  }
}

/** Gives IPv6 hosts their canonical text, so that `0:0::1` and `::1` dedupe as one endpoint. */
function normaliseEndpoint(e: Endpoint): Endpoint {
  if (!e.host.includes(":")) return e;
  const host = normaliseIpv6(e.host);
  return host === undefined || host === e.host ? e : { host, port: e.port };
}
