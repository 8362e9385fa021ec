/**
 * The flag table: every option of the proxy, once. It feeds the command line, the environment fallbacks, `--help`,
 * and the checks that keep the README, the chart and the systemd example in step with the program.
 *
 * @module
 */

/** How a flag's text turns into a value; `parse` throws a `TypeError`/`RangeError` whose message says what is expected. */
export interface FlagSpec {
  /** The long flag without dashes, e.g. `bind-port`. */
  readonly name: string;
  /** The environment variable read when the flag is absent. */
  readonly env: string;
  /** The default as the user would type it; `undefined` means required or derived (see `help`). */
  readonly default: string | undefined;
  /** Placeholder shown in `--help`. */
  readonly valueName: string;
  /** One line for `--help` and the README. */
  readonly help: string;
}

/** Builds a flag spec whose variable is `EP_` + the name in upper snake case. */
export function flag(
  name: string,
  def: string | undefined,
  valueName: string,
  help: string,
): FlagSpec {
  return { name, env: `EP_${name.toUpperCase().replaceAll("-", "_")}`, default: def, valueName, help };
}

/** The proxy's flags, in the order `--help` shows them. */
export const PROXY_FLAGS: readonly FlagSpec[] = [
  flag("bind-address", "127.0.0.1", "ip", "address the proxy listens on"),
  flag("bind-port", "7445", "port", "port the proxy listens on"),
  flag("health-bind-address", undefined, "ip", "address of the health server (default: --bind-address)"),
  flag("health-port", "7446", "port", "port of the health server (/healthz, /readyz, /upstreams)"),
  flag("endpoints", undefined, "list", "required: API servers as comma-separated host:port, IPv6 as [::1]:6443"),
  flag("health-interval", "1s", "duration", "time between health probes of one upstream (jittered ±20%)"),
  flag("health-timeout", "500ms", "duration", "timeout of one health probe; must be shorter than --health-interval"),
  flag("health-rise", "2", "count", "consecutive successful probes that make an upstream healthy"),
  flag("health-fall", "2", "count", "consecutive failed probes (or client dials) that make an upstream unhealthy"),
  flag("health-check", "readyz", "kind", "readyz (HTTPS GET /readyz, the API's own verdict) or tcp (connect only)"),
  flag(
    "health-ca-file",
    undefined,
    "path",
    "CA bundle to verify upstreams' certificates in readyz probes (default: no verification, logged once)",
  ),
  flag(
    "health-tls-server-name",
    "kubernetes.default.svc",
    "name",
    "name the upstream certificate is verified against in readyz probes",
  ),
  flag("health-client-cert", undefined, "path", "client certificate (PEM) for readyz probes, with --health-client-key"),
  flag("health-client-key", undefined, "path", "client key (PEM) for readyz probes, with --health-client-cert"),
  flag("health-token-file", undefined, "path", "bearer token file for readyz probes (re-read when it changes)"),
  flag(
    "upstream-selection",
    "latency",
    "policy",
    "latency (fastest tier, then least connections), least-connections or round-robin",
  ),
  flag(
    "close-on-unhealthy",
    "true",
    "bool",
    "close the connections of an upstream that turns unhealthy (spread over 1s) while another is healthy",
  ),
  flag(
    "max-upstreams",
    "64",
    "count",
    "most upstreams kept and probed: --endpoints first, then the others by address",
  ),
  flag("dial-timeout", "2s", "duration", "whole budget to connect one client to a live upstream, failover included"),
  flag(
    "hedge-delay",
    "100ms",
    "duration",
    "start a parallel dial to the next upstream when the first has not connected by then",
  ),
  flag(
    "drain-timeout",
    "30s",
    "duration",
    "how long live connections may finish on shutdown or after their upstream is removed",
  ),
  flag("enable-discovery", "true", "bool", "watch the default/kubernetes EndpointSlices for API servers"),
  flag("kubeconfig", undefined, "path", "kubeconfig for discovery on bare nodes (default: the pod's service account)"),
  flag("kube-context", undefined, "name", "kubeconfig context to use (default: its current-context)"),
  flag(
    "discovery-tls-server-name",
    "kubernetes.default.svc",
    "name",
    "name API server certificates are verified against when discovery dials their IPs",
  ),
  flag(
    "state-file",
    undefined,
    "path",
    "keep the last discovered API servers here (atomic writes) and use them at boot",
  ),
  flag("log-level", "info", "level", "debug, info, warn or error"),
  flag("log-format", "json", "format", "json (one object per line) or text"),
];
