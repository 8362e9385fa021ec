/**
 * The proxy's validated configuration, built from raw flag values (command line, then environment, then default).
 *
 * @module
 */
import { ConfigError, errorMessage } from "../errors.ts";
import { formatDuration, parseDuration } from "./duration.ts";
import { dedupeEndpoints, type Endpoint, endpointKey, normaliseHost, parseEndpoint, parsePort } from "../endpoint.ts";
import { type FlagSpec, PROXY_FLAGS } from "./flags.ts";
import { isOwnListener, localAddresses } from "./own_listener.ts";

/** Log levels the program accepts. */
export type LogLevel = "debug" | "info" | "warn" | "error";
/** Log formats the program accepts. */
export type LogFormat = "json" | "text";

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

/** Where a raw value came from, for error messages. */
export type ValueSource = "cli" | "env" | "default";

/** One raw value with its origin. */
export interface RawValue {
  readonly text: string;
  readonly source: ValueSource;
}

/** Raw values by flag name. */
export type RawValues = ReadonlyMap<string, RawValue>;

/**
 * Picks each flag's raw value: command line, else environment, else default.
 *
 * @param cli Values given on the command line, by flag name.
 * @param env The environment (only the flags' `EP_*` names are read).
 */
export function resolveRaw(
  flags: readonly FlagSpec[],
  cli: Readonly<Record<string, string | undefined>>,
  env: Readonly<Record<string, string | undefined>>,
): Map<string, RawValue> {
  const out = new Map<string, RawValue>();
  for (const f of flags) {
    const c = cli[f.name];
    const e = env[f.env];
    if (c !== undefined) out.set(f.name, { text: c, source: "cli" });
    else if (e !== undefined && e !== "") out.set(f.name, { text: e, source: "env" });
    else if (f.default !== undefined) out.set(f.name, { text: f.default, source: "default" });
  }
  return out;
}

/** Reads and converts raw values, turning every failure into a one-line `ConfigError` naming flag, value and source. */
export class FlagReader {
  readonly #raw: RawValues;
  readonly #flags: ReadonlyMap<string, FlagSpec>;

  constructor(flags: readonly FlagSpec[], raw: RawValues) {
    this.#raw = raw;
    this.#flags = new Map(flags.map((f) => [f.name, f]));
  }

  /** The raw text of a flag, or `undefined` when unset and without default. */
  text(name: string): string | undefined {
    return this.#raw.get(name)?.text;
  }

  /** Converts a flag with `parse`; its error message becomes the reason in the ConfigError. */
  get<T>(name: string, parse: (text: string) => T): T {
    const raw = this.#raw.get(name);
    if (raw === undefined) throw new ConfigError(`Missing ${this.label(name)}: ${this.#flags.get(name)?.help ?? ""}`);
    try {
      return parse(raw.text);
    } catch (e) {
      throw this.error(name, errorMessage(e));
    }
  }

  /** A ConfigError about a flag's current value (control characters escaped: the message stays one line). */
  error(name: string, reason: string): ConfigError {
    const raw = this.#raw.get(name);
    return new ConfigError(`Invalid ${this.label(name)} '${raw?.text ?? ""}': ${reason}`);
  }

  /** `--flag` or `--flag (from EP_FLAG)` depending on where the value came from. */
  label(name: string): string {
    const spec = this.#flags.get(name);
    const raw = this.#raw.get(name);
    return raw?.source === "env" && spec !== undefined ? `--${name} (from ${spec.env})` : `--${name}`;
  }
}

/**
 * The longest duration a flag may hold: 2^31 − 1 ms (596h31m23.647s). `setTimeout` fires at once for anything longer,
 * so a longer `--drain-timeout` would cut connections at once and a longer `--health-interval` would probe in a loop.
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/** Parses a duration greater than zero and at most {@link MAX_DURATION_MS}. */
export function positiveDuration(text: string): number {
  const ms = parseDuration(text);
  if (ms <= 0) throw new RangeError("expected a duration greater than zero, such as '500ms' or '2s'");
  if (ms > MAX_DURATION_MS) {
    throw new RangeError(`expected a duration of at most ${formatDuration(MAX_DURATION_MS)}`);
  }
  return ms;
}

/** Parses a port 1–65535. */
export function port(text: string): number {
  const p = parsePort(text.trim());
  if (p === undefined) throw new RangeError("expected a port number from 1 to 65535");
  return p;
}

/** Parses an integer count in [min, max]. */
export function count(min: number, max: number): (text: string) => number {
  return (text) => {
    if (!/^\d+$/.test(text.trim()) || Number(text) < min || Number(text) > max) {
      throw new RangeError(`expected a whole number from ${min} to ${max}`);
    }
    return Number(text);
  };
}

/** Parses a boolean the way Go's flag package does. */
export function bool(text: string): boolean {
  const t = text.trim().toLowerCase();
  if (["true", "1", "t", "yes"].includes(t)) return true;
  if (["false", "0", "f", "no"].includes(t)) return false;
  throw new RangeError("expected 'true' or 'false'");
}

/** Parses one of the allowed words. */
export function oneOf<T extends string>(...allowed: T[]): (text: string) => T {
  return (text) => {
    const t = text.trim().toLowerCase();
    if ((allowed as string[]).includes(t)) return t as T;
    throw new RangeError(`expected one of ${allowed.map((a) => `'${a}'`).join(", ")}`);
  };
}

/** Parses an IP address to listen on (not a host name: the listener must not depend on DNS). */
export function listenAddress(text: string): string {
  const host = text.trim().replace(/^\[(.*)\]$/, "$1");
  let norm: string;
  try {
    norm = normaliseHost(host);
  } catch {
    throw new RangeError("expected an IP address such as 127.0.0.1 or ::1");
  }
  if (!/^[\d.]+$/.test(norm) && !norm.includes(":")) throw new RangeError("expected an IP address, not a host name");
  return norm;
}

/** A flag without default: `undefined` when unset, else parsed. */
function optional<T>(r: FlagReader, name: string, parse: (text: string) => T): T | undefined {
  return r.text(name) === undefined ? undefined : r.get(name, parse);
}

/** Accepts a file path (existence is checked when the file is read, so a file may appear after start). */
export function path(text: string): string {
  if (text.trim() === "") throw new RangeError("expected a file path");
  return text;
}

/** Parses a TLS server name (a DNS name or an IP address). */
export function serverName(text: string): string {
  try {
    return normaliseHost(text.trim());
  } catch {
    throw new RangeError("expected a DNS name such as 'kubernetes.default.svc'");
  }
}

/** Parses a comma-separated endpoint list; duplicates are removed, an empty list is refused. */
export function endpointList(text: string): Endpoint[] {
  const parts = text.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (parts.length === 0) throw new RangeError("expected at least one host:port");
  return dedupeEndpoints(parts.map((p) => parseEndpoint(p)));
}

/**
 * Builds and validates the proxy configuration from raw values.
 *
 * @param local The node's addresses, read only with a wildcard bind address (to refuse the proxy's own listener).
 * @throws {ConfigError} On the first invalid or inconsistent value.
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
  const healthClientCert = optional(r, "health-client-cert", path);
  const healthClientKey = optional(r, "health-client-key", path);
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
    healthCaFile: optional(r, "health-ca-file", path),
    healthTlsServerName: r.get("health-tls-server-name", serverName),
    healthClientCert,
    healthClientKey,
    healthTokenFile: optional(r, "health-token-file", path),
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
    kubeconfig: optional(r, "kubeconfig", path),
    kubeContext: optional(r, "kube-context", (t) => {
      if (t.trim() === "") throw new RangeError("expected a context name");
      return t.trim();
    }),
    discoveryTlsServerName: r.get("discovery-tls-server-name", serverName),
    stateFile: optional(r, "state-file", path),
    logLevel: r.get("log-level", oneOf<LogLevel>("debug", "info", "warn", "error")),
    logFormat: r.get("log-format", oneOf<LogFormat>("json", "text")),
  };
}

/** The outcome of reading one command's configuration: its config, or an exit with status and text. */
export type ParseOutcome<C> =
  | { readonly kind: "ok"; readonly config: C }
  | { readonly kind: "exit"; readonly code: number; readonly stdout: string; readonly stderr: string };

/**
 * Runs a config builder: its result, or for a `ConfigError` an exit with status 2 and the one line
 * `error: <message>`. Other errors are bugs and propagate.
 *
 * @example
 * ```ts
 * import { ConfigError } from "../errors.ts";
 * import { configOutcome } from "./config.ts";
 * const r = configOutcome(() => {
 *   throw new ConfigError("Invalid --x 'y': expected z");
 * });
 * console.assert(r.kind === "exit" && r.code === 2 && r.stderr === "error: Invalid --x 'y': expected z\n");
 * ```
 */
export function configOutcome<C>(build: () => C): ParseOutcome<C> {
  try {
    return { kind: "ok", config: build() };
  } catch (e) {
    if (e instanceof ConfigError) return { kind: "exit", code: 2, stdout: "", stderr: `error: ${e.message}\n` };
    throw e;
  }
}
