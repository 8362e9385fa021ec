/**
 * Assembles Kubernetes discovery from the configuration: the transport (kubeconfig or service account), the
 * EndpointSlice provider, and the state file that bridges the boot until the API answers.
 *
 * @module
 */
import { errorMessage } from "../errors.ts";
import { getLogger } from "../log.ts";
import type { ProxyConfig } from "../config/proxy_flags.ts";
import type { Endpoint } from "../endpoint.ts";
import { Backoff, sleep } from "../clock.ts";
import { withFallback } from "./fallback.ts";
import type { KubeTransport } from "../kubernetes/transport.ts";
import { type EndpointProvider, untilAborted } from "./provider.ts";
import { persistToStateFile, stateFileProvider } from "./state_file.ts";

const log = getLogger(["extractedprism", "discovery"]);

/** Discovery's providers, and what must be released at shutdown. */
export interface Discovery {
  readonly providers: readonly EndpointProvider[];
  /** Releases the API connection, resolved once its sockets are closed; call after the providers have stopped. */
  close(): Promise<void>;
}

/** What discovery needs beyond the configuration. */
export interface DiscoveryOptions {
  /** Known API servers, best first: discovery dials these directly, never the ClusterIP or our own listener. */
  readonly endpoints: () => readonly Endpoint[];
  /** `KUBERNETES_SERVICE_HOST`, never dialled. */
  readonly clusterIp?: string;
  /** @default "/var/run/secrets/kubernetes.io/serviceaccount" */
  readonly serviceAccountDir?: string;
  /** A transport to use instead of connecting (tests). */
  readonly transport?: KubeTransport;
}

/**
 * Builds discovery without waiting for it: the proxy listens and serves its static endpoints at once, while the
 * kubernetes provider sets up its connection in the background, retrying with backoff (1 s -> 30 s) when the
 * kubeconfig or service-account files are not usable yet. With `--enable-discovery=false` there are no providers.
 */
export function startDiscovery(config: ProxyConfig, opts: DiscoveryOptions): Discovery {
  if (!config.enableDiscovery) {
    log.info("Kubernetes discovery is disabled (--enable-discovery=false); using the static endpoints only");
    return { providers: [], close: () => Promise.resolve() };
  }
  let transport: KubeTransport | undefined;
  let closed = false;
  const kube: EndpointProvider = {
    name: "kubernetes",
    async *run(signal: AbortSignal) {
      const backoff = new Backoff(1000, 30_000);
      while (!signal.aborted && transport === undefined) {
        try {
          // Loaded on use: the API client (and, for a kubeconfig, the YAML parser) costs memory a proxy without
          // discovery never needs.
          const { connectKubernetes } = await import("../kubernetes/connect.ts");
          transport = opts.transport ?? await connectKubernetes({
            ...(config.kubeconfig !== undefined ? { kubeconfigPath: config.kubeconfig } : {}),
            ...(config.kubeContext !== undefined ? { context: config.kubeContext } : {}),
            ...(opts.serviceAccountDir !== undefined ? { serviceAccountDir: opts.serviceAccountDir } : {}),
            ...(opts.clusterIp !== undefined ? { clusterIp: opts.clusterIp } : {}),
            tlsServerName: config.discoveryTlsServerName,
            // A client that went through this proxy could not recover once the proxy's endpoints are stale.
            neverDial: [{ host: config.bindAddress, port: config.bindPort, label: "this proxy's own listener" }],
            endpoints: opts.endpoints,
          });
          if (transport === undefined) {
            // Neither kubeconfig nor service account (connectKubernetes said so). Discovery never answers: it stays
            // silent rather than ending, so that a state file still counts (an ended primary would stop it).
            await untilAborted(signal);
            return;
          }
        } catch (e) {
          const delayMs = Math.round(backoff.next());
          log.error("Cannot set up Kubernetes discovery, retrying in {delayMs} ms: {error}", {
            delayMs,
            error: errorMessage(e),
          });
          await sleep(delayMs, signal).catch(() => {});
        }
      }
      if (transport === undefined || closed) return;
      // Loaded once there is an API to watch: a proxy whose discovery finds no credentials never pays for it.
      const { kubernetesProvider } = await import("./kubernetes/provider.ts");
      if (closed) return;
      const fallbackPort = config.endpoints[0]?.port ?? 6443;
      yield* kubernetesProvider({ transport, fallbackPort }).run(signal);
    },
  };
  const provider = config.stateFile === undefined
    ? kube
    : withFallback(persistToStateFile(kube, config.stateFile), stateFileProvider(config.stateFile));
  return {
    providers: [provider],
    close: async () => {
      closed = true;
      const t = transport as (KubeTransport & Partial<AsyncDisposable>) | undefined;
      // Wait for the sockets where the transport can say when they are closed (the HTTP transport can).
      const dispose = t?.[Symbol.asyncDispose];
      if (dispose !== undefined) await dispose.call(t);
      else t?.close();
    },
  };
}
