/**
 * The command line of `extractedprism endpoint-copier`: commander reads argv (Go-style single-dash long flags such
 * as `-kubeconfig` are accepted, as Go's flag package does), the {@linkcode COPIER_FLAGS} table supplies options and
 * help, the environment fills gaps, and the result is one validated {@linkcode CopierConfig}.
 *
 * @module
 */
import { parseFlags, type VersionInfo } from "./cli.ts";
import {
  bool,
  FlagReader,
  type LogFormat,
  type LogLevel,
  oneOf,
  path,
  port,
  positiveDuration,
  type RawValues,
} from "./config.ts";
import { COPIER_FLAGS } from "./copier_flags.ts";
import { normaliseHost } from "../endpoint.ts";
import type { FlagSpec } from "./flags.ts";

/** A listen address; `host` `""` means every interface. */
export interface BindAddress {
  /** An IP address, or `""` for every interface. */
  readonly host: string;
  /** The port; 0 picks a free one. */
  readonly port: number;
}

/** A Service by namespace and name. */
export interface ServiceName {
  /** The namespace. */
  readonly namespace: string;
  /** The name. */
  readonly name: string;
}

/** Everything the copier needs to run, validated. Durations are in milliseconds. */
export interface CopierConfig {
  /** `--default-endpoint-namespace/--default-endpoint-name`. */
  readonly defaultSource: ServiceName;
  /** `--managed-endpoint-namespace/--managed-endpoint-name`. */
  readonly managedTarget: ServiceName;
  /** `--leader-elect`: only the holder of the Lease writes. */
  readonly leaderElect: boolean;
  /** `--leader-election-id`: the Lease's name. */
  readonly leaderElectionId: string;
  /** `undefined`: the service-account namespace, else `kube-system` (decided at run time). */
  readonly leaderElectionNamespace: string | undefined;
  /** `--leader-elect-lease-duration`. */
  readonly leaseDurationMs: number;
  /** `--leader-elect-renew-deadline`. */
  readonly renewDeadlineMs: number;
  /** `--leader-elect-retry-period`. */
  readonly retryPeriodMs: number;
  /** `undefined` when turned off with `0`. */
  readonly healthProbeBindAddress: BindAddress | undefined;
  /** `undefined` when turned off with `0`. */
  readonly metricsBindAddress: BindAddress | undefined;
  /** `--kubeconfig`; `undefined`: the service account. */
  readonly kubeconfig: string | undefined;
  /** `--kube-context`; `undefined`: the kubeconfig's current context. */
  readonly kubeContext: string | undefined;
  /** `--resync-period`. */
  readonly resyncPeriodMs: number;
  /** `--log-level`, or what `--zap-log-level` says. */
  readonly logLevel: LogLevel;
  /** `--log-format`, or what `--zap-encoder` says. */
  readonly logFormat: LogFormat;
}

/** What main should do after parsing the copier's command line. */
export type CopierCliOutcome =
  | { readonly kind: "copier"; readonly config: CopierConfig }
  | { readonly kind: "exit"; readonly code: number; readonly stdout: string; readonly stderr: string };

const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Parses a Service name (an RFC 1035 label). */
export function serviceName(text: string): string {
  if (text.length > 63 || !DNS1035_LABEL.test(text)) {
    throw new RangeError("expected a Service name: lowercase letters, digits and '-', starting with a letter");
  }
  return text;
}

/** Parses a namespace (an RFC 1123 label). */
export function namespaceName(text: string): string {
  if (text.length > 63 || !DNS1123_LABEL.test(text)) {
    throw new RangeError("expected a namespace: lowercase letters, digits and '-', at most 63 characters");
  }
  return text;
}

/** Parses an object name (an RFC 1123 subdomain), such as a Lease's. */
export function objectName(text: string): string {
  if (text.length > 253 || !DNS1123_SUBDOMAIN.test(text)) {
    throw new RangeError("expected a name of lowercase letters, digits, '-' and '.'");
  }
  return text;
}

/**
 * Parses a Go-style bind address: `:8081` (every interface), `127.0.0.1:8081`, `[::1]:8081`, `localhost:8081`,
 * or `0` (off). Port 0 picks a free port.
 *
 * @example
 * ```ts
 * import { bindAddress } from "./copier_cli.ts";
 * console.assert(bindAddress(":8081")?.port === 8081 && bindAddress(":8081")?.host === "");
 * console.assert(bindAddress("0") === undefined);
 * ```
 */
export function bindAddress(text: string): BindAddress | undefined {
  const t = text.trim();
  if (t === "0") return undefined;
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):(\d{1,5})$/.exec(t);
  const expected = "expected host:port such as ':8081' or '127.0.0.1:8081', or 0 to turn it off";
  if (m === null) throw new RangeError(expected);
  const p = Number(m[3]);
  if (p > 65535) throw new RangeError("expected a port number from 0 to 65535");
  const rawHost = m[1] ?? m[2] ?? "";
  if (rawHost === "") return { host: "", port: p };
  if (rawHost === "localhost") return { host: "127.0.0.1", port: p };
  let host: string;
  try {
    host = normaliseHost(rawHost);
  } catch {
    throw new RangeError(expected);
  }
  if (!/^[\d.]+$/.test(host) && !host.includes(":")) throw new RangeError("expected an IP address, not a host name");
  return { host, port: p };
}

/** Go's flag package accepts `-name` for `--name`: rewrite the copier's long flags so commander sees them. */
function goStyle(argv: readonly string[], flags: readonly FlagSpec[]): string[] {
  const names = new Set(flags.map((f) => f.name));
  const out: string[] = [];
  let rest = false;
  for (const a of argv) {
    if (!rest && a === "--") rest = true;
    const m = rest ? null : /^-([a-z][a-z0-9-]+)(=.*)?$/.exec(a);
    out.push(m !== null && names.has(m[1] as string) ? `-${a}` : a);
  }
  return out;
}

/** zap's `--zap-log-level`: a level name, or a verbosity (any integer above 0 is debug). */
function zapLevel(text: string): LogLevel {
  const t = text.trim().toLowerCase();
  if (t === "debug" || t === "info" || t === "error") return t;
  if (t === "panic" || t === "dpanic" || t === "fatal") return "error";
  if (/^\d+$/.test(t)) return Number(t) > 0 ? "debug" : "info";
  throw new RangeError("expected 'debug', 'info', 'error', 'panic' or a verbosity such as 2");
}

/**
 * Builds and validates the copier configuration from raw values.
 *
 * @throws {ConfigError} On the first invalid or inconsistent value.
 */
export function buildCopierConfig(raw: RawValues): CopierConfig {
  const r = new FlagReader(COPIER_FLAGS, raw);
  const explicit = (name: string) => raw.get(name) !== undefined && raw.get(name)?.source !== "default";
  const optional = <T>(name: string, parse: (t: string) => T) =>
    r.text(name) === undefined ? undefined : r.get(name, parse);
  const leaseDurationMs = r.get("leader-elect-lease-duration", positiveDuration);
  const renewDeadlineMs = r.get("leader-elect-renew-deadline", positiveDuration);
  const retryPeriodMs = r.get("leader-elect-retry-period", positiveDuration);
  if (renewDeadlineMs >= leaseDurationMs) {
    throw r.error("leader-elect-renew-deadline", `must be shorter than ${r.label("leader-elect-lease-duration")}`);
  }
  if (retryPeriodMs * 1.2 >= renewDeadlineMs) {
    throw r.error(
      "leader-elect-retry-period",
      `must be shorter than ${r.label("leader-elect-renew-deadline")} divided by 1.2`,
    );
  }
  const probe = r.get("health-probe-bind-address", bindAddress);
  const metrics = r.get("metrics-bind-address", bindAddress);
  if (
    probe !== undefined && metrics !== undefined && probe.port !== 0 && probe.port === metrics.port &&
    (probe.host === metrics.host || probe.host === "" || metrics.host === "")
  ) {
    throw r.error("metrics-bind-address", `must differ from ${r.label("health-probe-bind-address")}`);
  }
  r.get("apiserver-port", port);
  r.get("apiserver-protocol", oneOf("tcp", "udp", "sctp"));
  r.get("zap-devel", bool);
  optional("zap-stacktrace-level", oneOf("info", "error", "panic"));
  optional("zap-time-encoding", oneOf("epoch", "millis", "nano", "iso8601", "rfc3339", "rfc3339nano"));
  const zapLog = optional("zap-log-level", zapLevel);
  const zapEncoder = optional("zap-encoder", oneOf("json", "console"));
  return {
    defaultSource: {
      namespace: r.get("default-endpoint-namespace", namespaceName),
      name: r.get("default-endpoint-name", serviceName),
    },
    managedTarget: {
      namespace: r.get("managed-endpoint-namespace", namespaceName),
      name: r.get("managed-endpoint-name", serviceName),
    },
    leaderElect: r.get("leader-elect", bool),
    leaderElectionId: r.get("leader-election-id", objectName),
    leaderElectionNamespace: optional("leader-election-namespace", namespaceName),
    leaseDurationMs,
    renewDeadlineMs,
    retryPeriodMs,
    healthProbeBindAddress: probe,
    metricsBindAddress: metrics,
    kubeconfig: optional("kubeconfig", path),
    kubeContext: optional("kube-context", (t) => t.trim()),
    resyncPeriodMs: r.get("resync-period", positiveDuration),
    logLevel: !explicit("log-level") && zapLog !== undefined
      ? zapLog
      : r.get("log-level", oneOf<LogLevel>("debug", "info", "warn", "error")),
    logFormat: !explicit("log-format") && zapEncoder !== undefined
      ? (zapEncoder === "console" ? "text" : "json")
      : r.get("log-format", oneOf<LogFormat>("json", "text")),
  };
}

/**
 * Parses the arguments after `endpoint-copier` and the environment into the copier's configuration.
 *
 * @param argv The arguments after `endpoint-copier`.
 * @param env Environment variables (only the flags' `EP_*` names are read).
 * @returns Either a validated config, or an exit with its status and text (help, version, or a one-line error).
 *
 * @example
 * ```ts
 * import { parseCopierCommandLine } from "./copier_cli.ts";
 * const r = parseCopierCommandLine(["--leader-elect"], {}, { version: "0.0.0" });
 * console.assert(r.kind === "copier" && r.config.leaderElect && r.config.managedTarget.name === "kubernetes-vip");
 * ```
 */
export function parseCopierCommandLine(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  info: VersionInfo,
): CopierCliOutcome {
  const r = parseFlags(
    {
      name: "extractedprism endpoint-copier",
      description:
        "Keeps the EndpointSlices of selector-less Services (such as a MetalLB VIP in front of the API servers) equal " +
        "to those of a source Service: a drop-in replacement for SUSE's endpoint-copier-operator.",
      flags: COPIER_FLAGS,
      build: buildCopierConfig,
    },
    goStyle(argv, COPIER_FLAGS),
    env,
    info,
  );
  return r.kind === "ok" ? { kind: "copier", config: r.config } : r;
}
