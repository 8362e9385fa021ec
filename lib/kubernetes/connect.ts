/**
 * Chooses how a client reaches the API: a kubeconfig when one is given (bare nodes, systemd), else the pod's
 * service account (DaemonSet, Deployment), else nothing (the caller decides what that means).
 *
 * @module
 */
import { getLogger } from "../log.ts";
import { type Endpoint, endpointKey } from "../endpoint.ts";
import { type AddressPattern, matchesAddress } from "./_addresses.ts";
import type { KubeConnection } from "./connection.ts";

export type { AddressPattern } from "./_addresses.ts";
import type { CredentialSourceOptions } from "./credentials.ts";
import type { HttpKubeTransport } from "./http_transport.ts";
import { loadInCluster, SERVICE_ACCOUNT_DIR } from "./in_cluster.ts";

const log = getLogger(["extractedprism", "kubernetes"]);

const NEVER_DIAL_LABEL = "an address never to dial";

/** The name in-cluster API server certificates carry (kube-apiserver always adds it). */
export const DEFAULT_TLS_SERVER_NAME = "kubernetes.default.svc";

/** Options of {@linkcode connectKubernetes}. */
export interface ConnectKubernetesOptions {
  /** `--kubeconfig` / `EP_KUBECONFIG`; wins over the service account. */
  readonly kubeconfigPath?: string;
  /** `--kube-context`: a context other than the kubeconfig's `current-context`. */
  readonly context?: string;
  /** The service-account directory. @default {SERVICE_ACCOUNT_DIR} */
  readonly serviceAccountDir?: string;
  /**
   * The name API server certificates are verified against when the known endpoints are dialled
   * (`--discovery-tls-server-name`); a kubeconfig's `tls-server-name` wins. @default {DEFAULT_TLS_SERVER_NAME}
   */
  readonly tlsServerName?: string;
  /**
   * Addresses never dialled, whatever `endpoints` returns; a kubeconfig server among them is replaced by the known
   * endpoints. The proxy names its own listener here: a client that went through the proxy it feeds could not
   * recover once the proxy's endpoints are stale. @default {[]}
   */
  readonly neverDial?: readonly AddressPattern[];
  /** The `kubernetes` ClusterIP (`KUBERNETES_SERVICE_HOST`), never dialled on any port. */
  readonly clusterIp?: string;
  /** The known API server endpoints, preferred first (static + last discovered); read before every request. */
  readonly endpoints: () => readonly Endpoint[];
  /** Time allowed to open a TCP connection to one endpoint. @default {5000} */
  readonly connectTimeoutMs?: number;
  /** Time allowed from a request to its response headers. @default {30000} */
  readonly headerTimeoutMs?: number;
  /** Re-read intervals and clocks of the credentials. */
  readonly credentials?: CredentialSourceOptions;
}

/**
 * Builds a transport to the API, or returns `undefined` (after one log line) when there is neither a
 * kubeconfig nor a service account. Never dials the ClusterIP or an address of `neverDial`: in-cluster, and for a
 * kubeconfig whose server is one of those, the known endpoints are dialled directly and verified against the TLS
 * name.
 *
 * @throws {Error} When the kubeconfig or the service-account files cannot be used (a configuration error).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { connectKubernetes } from "./connect.ts";
 * const dir = await Deno.makeTempDir();
 * const transport = await connectKubernetes({
 *   serviceAccountDir: dir,
 *   neverDial: [{ host: "127.0.0.1", port: 7445, label: "this proxy's own listener" }],
 *   endpoints: () => [],
 * });
 * assert(transport === undefined);
 * await Deno.remove(dir);
 * ```
 */
export async function connectKubernetes(options: ConnectKubernetesOptions): Promise<HttpKubeTransport | undefined> {
  const saDir = options.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  // The kubeconfig reader, the credentials and the HTTP transport load only once there is something to connect with:
  // a proxy on static endpoints without credentials never pays for them (16 modules).
  const conn: KubeConnection | undefined = options.kubeconfigPath !== undefined
    ? await (await import("./kubeconfig.ts")).loadKubeconfig(
      options.kubeconfigPath,
      options.context === undefined ? {} : { context: options.context },
    )
    : loadInCluster(saDir);
  if (conn === undefined) {
    log.info("Kubernetes discovery is off: no service-account token in {dir} and no --kubeconfig", { dir: saDir });
    return undefined;
  }
  const avoid = options.neverDial ?? [];
  const neverDial: AddressPattern[] = [...avoid];
  if (options.clusterIp) neverDial.push({ host: options.clusterIp, label: "the kubernetes ClusterIP" });
  const defaultName = options.tlsServerName ?? DEFAULT_TLS_SERVER_NAME;

  let endpoints = options.endpoints;
  let tlsServerName = conn.tlsServerName ?? defaultName;
  let target = "the known API server endpoints";
  const server = conn.server;
  const avoided = server === undefined ? undefined : avoid.find((p) => matchesAddress(server, p));
  if (server !== undefined && avoided === undefined) {
    const fixed: readonly Endpoint[] = [{ host: server.host, port: server.port }];
    endpoints = () => fixed;
    tlsServerName = conn.tlsServerName ?? server.host;
    target = endpointKey(fixed[0] as Endpoint);
  } else if (server !== undefined) {
    log.info("The kubeconfig server {server} is {what}: dialling the known API server endpoints directly", {
      server: server.url,
      what: avoided?.label ?? NEVER_DIAL_LABEL,
    });
  }
  log.info("Kubernetes API client: {origin}, dialling {target}, verified as {name}", {
    origin: conn.origin,
    target,
    name: tlsServerName,
  });
  const [{ createCredentialSource }, { HttpKubeTransport }] = await Promise.all([
    import("./credentials.ts"),
    import("./http_transport.ts"),
  ]);
  return new HttpKubeTransport({
    endpoints,
    tlsServerName,
    credentials: createCredentialSource(conn, options.credentials ?? {}),
    origin: conn.origin,
    neverDial,
    ...(server?.pathPrefix ? { pathPrefix: server.pathPrefix } : {}),
    ...(options.connectTimeoutMs !== undefined ? { connectTimeoutMs: options.connectTimeoutMs } : {}),
    ...(options.headerTimeoutMs !== undefined ? { headerTimeoutMs: options.headerTimeoutMs } : {}),
  });
}
