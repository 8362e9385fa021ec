/**
 * The proxy's command line: its flag table ({@linkcode PROXY_FLAGS}, which also feeds the environment fallbacks,
 * `--help`, and the checks that keep the README, the chart and the systemd example in step with the program), its
 * validated {@linkcode ProxyConfig}, and the builder between them.
 *
 * @module
 */
import { dedupeEndpoints, type Endpoint, endpointKey, parseEndpoint } from "../endpoint.ts";
import { type CommandSpec, parseCommand, type VersionInfo } from "./command_line.ts";
import { flag, FlagReader, type FlagSpec, type ParseOutcome, type RawValues, SHARED_FLAGS } from "./flags.ts";
import { isOwnListener, localAddresses } from "./own_listener.ts";
import {
  bool,
  contextName,
  count,
  listenAddress,
  type LogFormat,
  logFormat,
  type LogLevel,
  logLevel,
  oneOf,
  path,
  port,
  positiveDuration,
  serverName,
} from "./values.ts";

/** The proxy's flags, in the order `--help` shows them. */
export const PROXY_FLAGS: readonly FlagSpec[] = [
  flag("bind-address", "127.0.0.1", "ip", "address the proxy listens on"),
  flag("bind-port", "7445", "port", "port the proxy listens on"),
  flag("health-bind-address", undefined, "ip", "address of the health server (default: --bind-address)"),
  flag("health-port", "7446", "port", "port of the health server (/healthz, /readyz, /upstreams)"),
  flag("endpoints", undefined, "list", "required: API servers as comma-separated host:port, IPv6 as [::1]:6443"),
  flag("health-interval", "1s", "duration", "time between health probes of one upstream (jittered \u00b120%)"),
  flag("health-timeout", "500ms", "duration", "timeout of one health probe; must be shorter than --health-interval"),
  flag("health-rise", "2", "count", "consecutive successful probes that make an upstream healthy"),
  flag("health-fall", "2", "count", "consecutive failed probes (or client dials) that make an upstream unhealthy"),
  flag("health-check", "readyz", "kind", "readyz (HTTPS GET /readyz, the API's own verdict) or tcp (connect only)"),
  flag(
    "health-ca-file",
    undefined,
    "path",
    "CA bundle to verify upstreams' certificates in readyz probes (default: the cluster CA of discovery's " +
      "--kubeconfig, else the service-account CA, else no verification, logged once)",
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
  SHARED_FLAGS.kubeContext,
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
  SHARED_FLAGS.logLevel,
  SHARED_FLAGS.logFormat,
];

/** Which health probe decides an upstream's state. */
export type HealthCheck = "readyz" | "tcp";
/** How healthy upstreams are ordered for a new connection. */
export type UpstreamSelection = "latency" | "least-connections" | "round-robin";

/** Everything the proxy needs to run, validated. Durations are in milliseconds. */
export interface ProxyConfig {
  readonly bindAddress: string;
  readonly bindPort: number;
  readonly healthBindAddress: string;
  readonly healthPort: number;
  readonly endpoints: readonly Endpoint[];
  readonly healthIntervalMs: number;
  readonly healthTimeoutMs: number;
  readonly healthCheck: HealthCheck;
  readonly healthCaFile: string | undefined;
  readonly healthTlsServerName: string;
  readonly healthClientCert: string | undefined;
  readonly healthClientKey: string | undefined;
  readonly healthTokenFile: string | undefined;
  readonly upstreamSelection: UpstreamSelection;
  readonly closeOnUnhealthy: boolean;
  /** Most upstreams kept in the pool (static endpoints first). */
  readonly maxUpstreams: number;
  readonly healthRise: number;
  readonly healthFall: number;
  readonly dialTimeoutMs: number;
  readonly hedgeDelayMs: number;
  readonly drainTimeoutMs: number;
  readonly enableDiscovery: boolean;
  readonly kubeconfig: string | undefined;
  readonly kubeContext: string | undefined;
  readonly discoveryTlsServerName: string;
  readonly stateFile: string | undefined;
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
}

/**
 * Parses a comma-separated endpoint list; spaces around entries are dropped, duplicates removed. An empty list, and
 * an empty entry (`a:1,,b:2`, a trailing comma), are refused: an entry lost in an edit should not pass silently.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { endpointList } from "./proxy_flags.ts";
 * assert(endpointList("10.0.0.1:6443, 10.0.0.1:6443,[::1]:6443").length === 2);
 * ```
 */
export function endpointList(text: string): Endpoint[] {
  const parts = text.split(",").map((s) => s.trim());
  if (parts.every((s) => s === "")) throw new RangeError("expected at least one host:port");
  const empty = parts.indexOf("");
  if (empty >= 0) throw new RangeError(`expected host:port at entry ${empty + 1} of ${parts.length}, found nothing`);
  return dedupeEndpoints(parts.map((p) => parseEndpoint(p)));
}

/**
 * Builds and validates the proxy configuration from raw values.
 *
 * @param local The node's addresses, read only with a wildcard bind address (to refuse the proxy's own listener).
 * @throws {ConfigError} On the first invalid or inconsistent value.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveRaw } from "./flags.ts";
 * import { buildProxyConfig, PROXY_FLAGS } from "./proxy_flags.ts";
 * const c = buildProxyConfig(resolveRaw(PROXY_FLAGS, { endpoints: "10.0.0.1:6443" }, { EP_HEALTH_RISE: "3" }));
 * assert(c.healthRise === 3 && c.healthIntervalMs === 1000);
 * ```
 */
export function buildProxyConfig(raw: RawValues, local: () => readonly string[] = localAddresses): ProxyConfig {
  const r = new FlagReader(PROXY_FLAGS, raw);
  const bindAddress = r.get("bind-address", listenAddress);
  const bindPort = r.get("bind-port", port);
  const healthBindAddress = r.text("health-bind-address") === undefined
    ? bindAddress
    : r.get("health-bind-address", listenAddress);
  const healthPort = r.get("health-port", port);
  if (healthPort === bindPort) {
    throw r.error("health-port", `must differ from ${r.label("bind-port")}, which is ${bindPort}`);
  }
  const endpoints = r.get("endpoints", endpointList);
  const own = endpoints.find((e) => isOwnListener(e, { host: bindAddress, port: bindPort }, local));
  if (own !== undefined) {
    const listen = endpointKey({ host: bindAddress, port: bindPort });
    throw r.error(
      "endpoints",
      `expected API servers, found ${endpointKey(own)}, this proxy's own listener (${listen}): ` +
        "each connection would dial itself",
    );
  }
  const healthIntervalMs = r.get("health-interval", positiveDuration);
  const healthTimeoutMs = r.get("health-timeout", positiveDuration);
  if (healthTimeoutMs >= healthIntervalMs) {
    throw r.error(
      "health-timeout",
      `must be shorter than ${r.label("health-interval")} ('${r.text("health-interval")}')`,
    );
  }
  const dialTimeoutMs = r.get("dial-timeout", positiveDuration);
  const healthClientCert = r.optional("health-client-cert", path);
  const healthClientKey = r.optional("health-client-key", path);
  if ((healthClientCert === undefined) !== (healthClientKey === undefined)) {
    const given = healthClientCert === undefined ? "health-client-key" : "health-client-cert";
    throw r.error(given, `needs ${given === "health-client-key" ? "--health-client-cert" : "--health-client-key"} too`);
  }
  const hedgeDelayMs = r.get("hedge-delay", positiveDuration);
  return {
    bindAddress,
    bindPort,
    healthBindAddress,
    healthPort,
    endpoints,
    healthIntervalMs,
    healthTimeoutMs,
    healthCheck: r.get("health-check", oneOf<HealthCheck>("readyz", "tcp")),
    healthCaFile: r.optional("health-ca-file", path),
    healthTlsServerName: r.get("health-tls-server-name", serverName),
    healthClientCert,
    healthClientKey,
    healthTokenFile: r.optional("health-token-file", path),
    upstreamSelection: r.get(
      "upstream-selection",
      oneOf<UpstreamSelection>("latency", "least-connections", "round-robin"),
    ),
    closeOnUnhealthy: r.get("close-on-unhealthy", bool),
    maxUpstreams: r.get("max-upstreams", count(1, 1000)),
    healthRise: r.get("health-rise", count(1, 100)),
    healthFall: r.get("health-fall", count(1, 100)),
    dialTimeoutMs,
    hedgeDelayMs,
    drainTimeoutMs: r.get("drain-timeout", positiveDuration),
    enableDiscovery: r.get("enable-discovery", bool),
    kubeconfig: r.optional("kubeconfig", path),
    kubeContext: r.optional("kube-context", contextName),
    discoveryTlsServerName: r.get("discovery-tls-server-name", serverName),
    stateFile: r.optional("state-file", path),
    logLevel: r.get("log-level", logLevel),
    logFormat: r.get("log-format", logFormat),
  };
}

/** The proxy as a command: what `--help` shows and how its values are checked. */
export const PROXY_COMMAND: CommandSpec<ProxyConfig> = {
  name: "extractedprism",
  description: "Per-node TCP load balancer for the Kubernetes API servers: listens on 127.0.0.1:7445.",
  flags: PROXY_FLAGS,
  build: (raw) => buildProxyConfig(raw),
  // main.ts dispatches on these words before this parser runs.
  modes: [{
    name: "endpoint-copier",
    summary: "keep the EndpointSlices of selector-less Services (such as a VIP in front of the API servers) equal " +
      "to those of a source Service, as SUSE's endpoint-copier-operator does",
  }, {
    name: "status",
    summary: "show the upstreams of the proxy on this node as a table, from its health port; exit 0 when it is " +
      "ready, 1 when not, 2 when its health port cannot be reached",
  }],
};

/**
 * Parses the proxy's command line and environment into what to run.
 *
 * @param argv The arguments after the program name.
 * @param env Environment variables (only `EP_*` names are read).
 * @returns Either a validated config, or an exit with its status and text (help, version, or a one-line error).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseProxyCommandLine } from "./proxy_flags.ts";
 * const r = parseProxyCommandLine(["--endpoints=10.0.0.1:6443"], {}, { version: "0.0.0" });
 * assert(r.kind === "ok" && r.config.bindPort === 7445);
 * ```
 */
export function parseProxyCommandLine(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  info: VersionInfo,
): ParseOutcome<ProxyConfig> {
  return parseCommand(PROXY_COMMAND, argv, env, info);
}
