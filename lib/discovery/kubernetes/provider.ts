/**
 * The kubernetes provider: the API servers the cluster itself lists, from the EndpointSlices of `default/kubernetes`.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { systemClock } from "../../clock.ts";
import { type Endpoint, endpointKey } from "../../config/endpoint.ts";
import type { EndpointProvider } from "../provider.ts";
import { endpointsFromSlices } from "./endpointslices.ts";
import { type KubeObject, listWatch, type ListWatchOptions } from "./list_watch.ts";

const log = getLogger(["extractedprism", "discovery", "kubernetes"]);

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
   * Least time between two looks at the EndpointSlices: a flood of watch events becomes one set per interval, always
   * the latest (the last change is never lost, only merged with the ones before it). @default {250}
   */
  readonly minIntervalMs?: number;
}

/**
 * Lists and watches the EndpointSlices labelled `kubernetes.io/service-name=<serviceName>` in `namespace` and yields
 * their ready endpoints whenever the set changes. An empty set is never yielded (a warning is logged and the last set
 * stands); discovery retries for as long as the signal lives. Changes are coalesced: at most one set per
 * `minIntervalMs`, the latest.
 *
 * @example
 * ```ts
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
 *   console.assert(set[0]?.host === "10.0.0.1");
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
  const path = `/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/endpointslices`;
  return {
    name: "kubernetes",
    async *run(signal: AbortSignal) {
      let last = "";
      const pick = (items: readonly KubeObject[], resourceVersion: string): Endpoint[] | undefined => {
        const set: Endpoint[] = endpointsFromSlices(items, fallbackPort);
        if (set.length === 0) {
          log.warn("Ignoring an empty endpoint set from the EndpointSlices of {service}; keeping the last one", {
            service: `${namespace}/${service}`,
            slices: items.length,
            resourceVersion,
          });
          return undefined;
        }
        const key = set.map(endpointKey).join(",");
        if (key === last) return undefined;
        last = key;
        log.info("Discovered {count} API server endpoints: {endpoints}", { count: set.length, endpoints: key });
        return set;
      };
      const snapshots = listWatch({
        ...tunables,
        transport,
        path,
        labelSelector: `kubernetes.io/service-name=${service}`,
      }, signal);
      for await (const snap of snapshots) {
        const set = pick(snap.items, snap.resourceVersion);
        if (set !== undefined) yield set;
        // listWatch keeps only the latest snapshot while this waits: one look per interval whatever the event rate,
        // and the next look takes the latest state, so the last change is delayed by at most the interval.
        try {
          await clock.sleep(minIntervalMs, signal);
        } catch {
          return;
        }
      }
    },
  };
}
