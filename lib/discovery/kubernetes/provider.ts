/**
 * The kubernetes provider: the API servers the cluster itself lists, from the EndpointSlices of `default/kubernetes`.
 *
 * @module
 */
import { type KubeObject } from "../../kubernetes/types.ts";
import { getLogger } from "../../log.ts";
import { Backoff, type Clock, systemClock } from "../../clock.ts";
import { type Endpoint, endpointKey } from "../../endpoint.ts";
import { describeError } from "../../errors.ts";
import { LogLimit } from "../../log_limit.ts";
import type { EndpointProvider } from "../provider.ts";
import { endpointsFromSlices } from "./endpointslices.ts";
import { KubeApiError } from "../../kubernetes/api.ts";
import { servedVersions } from "../../kubernetes/api_discovery.ts";
import { listWatch, type ListWatchOptions, type ListWatchSnapshot } from "../../kubernetes/list_watch.ts";

const log = getLogger(["extractedprism", "discovery", "kubernetes"]);

/** The wait after a look that yielded nothing: bounds the looks of a flood that changes nothing to 40 a second. */
const QUIET_LOOK_MS = 25;
/** Sets let through at once before the interval applies. */
const BURST = 3;
/** The API group of EndpointSlices. */
const GROUP = "discovery.k8s.io";
/** The versions of EndpointSlices read, most preferred first: `v1` from Kubernetes 1.21, `v1beta1` from 1.17 to 1.24. */
const SLICE_VERSIONS: readonly string[] = ["v1", "v1beta1"];

/** Options of {@linkcode kubernetesProvider}; the tunables are those of {@linkcode ListWatchOptions}. */
export interface KubernetesProviderOptions
  extends Omit<ListWatchOptions<KubeObject>, "path" | "labelSelector" | "fieldSelector" | "decode"> {
  /** The port used for a slice without ports: the static endpoints' port. */
  readonly fallbackPort: number;
  /** Namespace of the Service. @default {"default"} */
  readonly namespace?: string;
  /** Name of the Service whose EndpointSlices list the API servers. @default {"kubernetes"} */
  readonly serviceName?: string;
  /**
   * Sets are yielded at most once per this interval on average (three may go at once): a flood of watch events
   * becomes one set per interval, always the latest (the last change is never lost, only merged with the ones
   * before it). A look that yields nothing waits 25 ms at most. @default {250}
   */
  readonly minIntervalMs?: number;
}

/**
 * Lists and watches the EndpointSlices labelled `kubernetes.io/service-name=<serviceName>` in `namespace` and yields
 * their ready endpoints whenever the set changes. An empty set is never yielded (a warning is logged and the last set
 * stands); discovery retries for as long as the signal lives. Changes are coalesced: after a burst of three, at
 * most one set per `minIntervalMs`, the latest.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { kubernetesProvider } from "./provider.ts";
 * const slice = {
 *   metadata: { name: "kubernetes", namespace: "default" },
 *   addressType: "IPv4",
 *   endpoints: [{ addresses: ["10.0.0.1"], conditions: { ready: true } }],
 *   ports: [{ name: "https", port: 6443 }],
 * };
 * const transport = {
 *   request: () => Promise.resolve(Response.json({ metadata: { resourceVersion: "1" }, items: [slice] })),
 *   close: () => {},
 * };
 * const ctrl = new AbortController();
 * for await (const set of kubernetesProvider({ transport, fallbackPort: 6443 }).run(ctrl.signal)) {
 *   assert(set[0]?.host === "10.0.0.1");
 *   ctrl.abort();
 * }
 * ```
 */
export function kubernetesProvider(options: KubernetesProviderOptions): EndpointProvider {
  const {
    transport,
    fallbackPort,
    namespace = "default",
    serviceName: service = "kubernetes",
    minIntervalMs = 250,
    ...tunables
  } = options;
  const clock = tunables.clock ?? systemClock;
  return {
    name: "kubernetes",
    async *run(signal: AbortSignal) {
      let last = "";
      const emptyLog = new LogLimit({ intervalMs: 10_000, burst: 5, now: () => clock.now() });
      // One line per slice and kind of problem a minute: the same bad slices are read again on every change.
      const sliceLog = new LogLimit({ intervalMs: 60_000, now: () => clock.now() });
      const pick = (items: readonly KubeObject[], resourceVersion: string): Endpoint[] | undefined => {
        const set: Endpoint[] = endpointsFromSlices(items, fallbackPort, sliceLog);
        if (set.length === 0) {
          const suppressed = emptyLog.take("empty");
          if (suppressed !== undefined) {
            log.warn("Ignoring an empty endpoint set from the EndpointSlices of {service}; keeping the last one", {
              service: `${namespace}/${service}`,
              slices: items.length,
              resourceVersion,
              suppressed,
            });
          }
          return undefined;
        }
        const key = set.map(endpointKey).join(",");
        if (key === last) return undefined;
        last = key;
        log.info("Discovered {count} API server endpoints: {endpoints}", { count: set.length, endpoints: key });
        return set;
      };
      const snapshots = sliceSnapshots(
        {
          ...tunables,
          transport,
          path: "",
          labelSelector: `kubernetes.io/service-name=${service}`,
        },
        namespace,
        clock,
        signal,
      );
      // A token bucket: BURST sets at once, then one per interval. listWatch keeps only the latest snapshot while
      // this waits, so the next look takes the latest state: a flood becomes one set per interval and its last
      // change is delayed by at most the interval, while a lone change goes through at once.
      let credit = BURST;
      let refilled = clock.now();
      let quiet = false;
      for await (const snap of snapshots) {
        const set = pick(snap.items, snap.resourceVersion);
        if (set !== undefined) yield set;
        const now = clock.now();
        credit = Math.min(BURST, credit + (now - refilled) / minIntervalMs);
        refilled = now;
        if (set !== undefined) credit -= 1;
        const quietBefore = quiet;
        quiet = set === undefined;
        // A look that changed nothing (an unchanged or empty set) costs no credit but still waits a little, so a
        // flood that changes nothing is not looked at per event either.
        // (The first such look goes on at once: a removal followed by an add is one change.)
        const wait = set !== undefined
          ? (1 - credit) * minIntervalMs
          : quietBefore
          ? Math.min(QUIET_LOOK_MS, minIntervalMs)
          : 0;
        if (wait <= 0) continue;
        try {
          await clock.sleep(wait, signal);
        } catch {
          return;
        }
      }
    },
  };
}

/**
 * The snapshots of `listWatch` over the served version of EndpointSlices: `v1` first; when a LIST is answered 404,
 * API discovery names the versions served and the loop goes on with another one (one log line), or asks again after
 * a backoff. A cluster in the middle of an upgrade serves `v1` on some API servers and not on others: after a 404 the
 * other version is taken, since it is the one every server of that cluster serves.
 */
async function* sliceSnapshots(
  options: ListWatchOptions<KubeObject>,
  namespace: string,
  clock: Clock,
  signal: AbortSignal,
): AsyncGenerator<ListWatchSnapshot<KubeObject>, void, undefined> {
  const backoff = new Backoff(options.backoffBaseMs ?? 1000, options.backoffMaxMs ?? 30_000, options.random);
  let version = SLICE_VERSIONS[0] ?? "v1";
  while (!signal.aborted) {
    const path = `/apis/${GROUP}/${version}/namespaces/${encodeURIComponent(namespace)}/endpointslices`;
    let reason: string;
    try {
      yield* listWatch({ ...options, path, stopWhenNotServed: true }, signal);
      return;
    } catch (e) {
      if (!(e instanceof KubeApiError)) throw e;
      reason = e.message;
    }
    let served: string[] = [];
    try {
      served = await servedVersions(options.transport, GROUP, { signal, clock });
      reason += served.length === 0 ? `; ${GROUP} is not served at all` : `; served: ${served.join(", ")}`;
    } catch (e) {
      if (signal.aborted) return;
      reason += `; ${describeError(e)}`;
    }
    const next = SLICE_VERSIONS.find((v) => v !== version && served.includes(v));
    if (next !== undefined) {
      log.info("Reading EndpointSlices as {group}/{version}: the API server does not serve {group}/{failed}", {
        group: GROUP,
        version: next,
        failed: version,
        served: served.join(","),
      });
      version = next;
      continue;
    }
    const delayMs = backoff.next();
    log.warn("Cannot discover API servers: {reason}; asking again in {delayMs} ms", {
      reason,
      delayMs: Math.round(delayMs),
    });
    try {
      await clock.sleep(delayMs, signal);
    } catch {
      return;
    }
  }
}
