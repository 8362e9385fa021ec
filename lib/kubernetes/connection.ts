/**
 * The typed result of reading a kubeconfig or the in-cluster service-account files: where the API server is, how its
 * certificate is verified, and how this client authenticates. Loaders produce it; the credential source and the HTTP
 * transport consume it.
 *
 * @module
 */

/** PEM text that is either given inline (`*-data`, decoded) or read from a file that may be rotated. */
export type PemSource = { readonly file: string } | { readonly data: string };

/** One `env` entry of an exec credential plugin. */
export interface ExecEnvVar {
  /** The variable's name. */
  readonly name: string;
  /** The variable's value. */
  readonly value: string;
}

/** The `client.authentication.k8s.io` versions of `ExecCredential` this client speaks. */
export type ExecApiVersion = "client.authentication.k8s.io/v1" | "client.authentication.k8s.io/v1beta1";

/** An exec credential plugin (kubeconfig `users[].user.exec`). */
export interface ExecConfig {
  /** The `ExecCredential` version the plugin speaks. */
  readonly apiVersion: ExecApiVersion;
  /** The program; a relative path with a `/` has already been resolved against the kubeconfig's directory. */
  readonly command: string;
  /** The plugin's arguments. */
  readonly args: readonly string[];
  /** Variables added to the plugin's environment (which it otherwise inherits). */
  readonly env: readonly ExecEnvVar[];
  /** Shown when the command cannot be started. */
  readonly installHint?: string;
  /** The `spec.cluster` object passed in `KUBERNETES_EXEC_INFO` when `provideClusterInfo` is true. */
  readonly cluster?: Readonly<Record<string, unknown>>;
}

/**
 * How the client authenticates. Any combination of a bearer token (inline or file) and a client certificate is
 * allowed, as in client-go; an exec plugin may supply either.
 */
export interface UserAuth {
  /** A static bearer token. Ignored when `tokenFile` is set (the file wins, as in client-go). */
  readonly token?: string;
  /** A bearer token file, re-read when it changes and after a 401. */
  readonly tokenFile?: string;
  /** A client certificate chain and its key; both may name the same file (kubelet's `kubelet-client-current.pem`). */
  readonly clientCert?: { readonly cert: PemSource; readonly key: PemSource };
  /** An exec credential plugin that supplies a token or a client certificate. */
  readonly exec?: ExecConfig;
}

/** A fixed API server taken from a kubeconfig's `server` URL. */
export interface ServerAddress {
  /** Host as written (a DNS name or an IP address, IPv6 without brackets). */
  readonly host: string;
  /** The port, 443 when the URL names none. */
  readonly port: number;
  /** Path prefix of the server URL without a trailing `/` (`""` for most clusters, e.g. `/k8s/clusters/c-1`). */
  readonly pathPrefix: string;
  /** The URL as written in the kubeconfig, for messages. */
  readonly url: string;
}

/** Everything needed to talk to an API server, from a kubeconfig or the service-account files. */
export interface KubeConnection {
  /** Where it came from, for messages: `kubeconfig '/etc/kubernetes/kubelet.conf' (context 'default')`. */
  readonly origin: string;
  /** The kubeconfig's server; `undefined` for in-cluster, where the known API server endpoints are dialled. */
  readonly server?: ServerAddress;
  /** The name the server certificate must carry (kubeconfig `tls-server-name`). */
  readonly tlsServerName?: string;
  /** The CA bundle; `undefined` means the system roots. */
  readonly ca?: PemSource;
  /** How the client authenticates. */
  readonly auth: UserAuth;
  /** The namespace of the context or service account, if any. */
  readonly namespace?: string;
}
