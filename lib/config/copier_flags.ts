/**
 * The flag table of `extractedprism endpoint-copier`, once: SUSE endpoint-copier-operator's flags with the same
 * names and defaults (so its Deployment args work unchanged), then the copier's own. It feeds the command line, the
 * `EP_*` environment fallbacks, `--help` and the README. Then the validated {@linkcode CopierConfig} and its builder.
 *
 * @module
 */
import { type CommandSpec, parseCommand, type VersionInfo } from "./command_line.ts";
import {
  type BindAddress,
  bindAddress,
  namespaceName,
  objectName,
  type ServiceName,
  serviceName,
} from "./copier_values.ts";
import { flag, FlagReader, type FlagSpec, type ParseOutcome, type RawValues, SHARED_FLAGS } from "./flags.ts";
import {
  bool,
  contextName,
  type LogFormat,
  logFormat,
  type LogLevel,
  logLevel,
  oneOf,
  path,
  port,
  positiveDuration,
} from "./values.ts";

/** The Lease name of endpoint-copier-operator, so that old and new never lead side by side during a migration. */
export const GO_OPERATOR_LEASE_ID = "f668ae63.endpoint-copier-operator";

/** Flags of endpoint-copier-operator v0.3.0 (its `cmd/main.go`, controller-runtime's `--kubeconfig`, zap's). */
export const GO_OPERATOR_FLAG_NAMES: readonly string[] = [
  "default-endpoint-name",
  "default-endpoint-namespace",
  "managed-endpoint-name",
  "managed-endpoint-namespace",
  "leader-elect",
  "health-probe-bind-address",
  "metrics-bind-address",
  "kubeconfig",
  "apiserver-port",
  "apiserver-protocol",
  "zap-devel",
  "zap-encoder",
  "zap-log-level",
  "zap-stacktrace-level",
  "zap-time-encoding",
];

/** The copier's flags, in the order `--help` shows them. */
export const COPIER_FLAGS: readonly FlagSpec[] = [
  flag("default-endpoint-name", "kubernetes", "name", "source Service of a target whose annotations name none"),
  flag("default-endpoint-namespace", "default", "namespace", "namespace of that source Service"),
  flag(
    "managed-endpoint-name",
    "kubernetes-vip",
    "name",
    "Service that is a target even without the endpoint-copier/enabled annotation",
  ),
  flag("managed-endpoint-namespace", "default", "namespace", "namespace of that Service"),
  flag("leader-elect", "false", "bool", "elect a leader on a Lease, so that only one replica writes"),
  flag(
    "leader-election-id",
    GO_OPERATOR_LEASE_ID,
    "name",
    "name of the Lease (endpoint-copier-operator's: old and new exclude each other)",
  ),
  flag(
    "leader-election-namespace",
    undefined,
    "namespace",
    "namespace of the Lease (default: the pod's service-account namespace, else kube-system)",
  ),
  flag("leader-elect-lease-duration", "15s", "duration", "how long an unrenewed Lease keeps other replicas out"),
  flag("leader-elect-renew-deadline", "10s", "duration", "how long the leader tries to renew before it steps down"),
  flag("leader-elect-retry-period", "2s", "duration", "time between Lease tries (renewals and candidates)"),
  flag("health-probe-bind-address", ":8081", "address", "address of /healthz and /readyz; 0 turns them off"),
  flag("metrics-bind-address", ":8080", "address", "address of the Prometheus /metrics; 0 turns it off"),
  flag("kubeconfig", undefined, "path", "kubeconfig to use (default: the pod's service account)"),
  SHARED_FLAGS.kubeContext,
  flag("resync-period", "60s", "duration", "time between full resyncs of every target (jittered \u00b110%)"),
  SHARED_FLAGS.logLevel,
  SHARED_FLAGS.logFormat,
  flag("apiserver-port", "6443", "port", "accepted for compatibility with endpoint-copier-operator; unused"),
  flag("apiserver-protocol", "TCP", "protocol", "accepted for compatibility with endpoint-copier-operator; unused"),
  flag("zap-devel", "false", "bool", "accepted for compatibility with endpoint-copier-operator; unused"),
  flag("zap-encoder", undefined, "encoder", "json or console: the log format when --log-format is not set"),
  flag(
    "zap-log-level",
    undefined,
    "level",
    "debug, info, error, panic or a verbosity: the log level when --log-level is not set",
  ),
  flag("zap-stacktrace-level", undefined, "level", "accepted for compatibility with endpoint-copier-operator; unused"),
  flag("zap-time-encoding", undefined, "encoding", "accepted for compatibility with endpoint-copier-operator; unused"),
];

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
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveRaw } from "./flags.ts";
 * import { buildCopierConfig, COPIER_FLAGS } from "./copier_flags.ts";
 * const c = buildCopierConfig(resolveRaw(COPIER_FLAGS, { "zap-log-level": "2" }, {}));
 * assert(c.logLevel === "debug" && !c.leaderElect);
 * ```
 */
export function buildCopierConfig(raw: RawValues): CopierConfig {
  const r = new FlagReader(COPIER_FLAGS, raw);
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
  r.optional("zap-stacktrace-level", oneOf("info", "error", "panic"));
  r.optional("zap-time-encoding", oneOf("epoch", "millis", "nano", "iso8601", "rfc3339", "rfc3339nano"));
  const zapLog = r.optional("zap-log-level", zapLevel);
  const zapEncoder = r.optional("zap-encoder", oneOf("json", "console"));
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
    leaderElectionNamespace: r.optional("leader-election-namespace", namespaceName),
    leaseDurationMs,
    renewDeadlineMs,
    retryPeriodMs,
    healthProbeBindAddress: probe,
    metricsBindAddress: metrics,
    kubeconfig: r.optional("kubeconfig", path),
    kubeContext: r.optional("kube-context", contextName),
    resyncPeriodMs: r.get("resync-period", positiveDuration),
    logLevel: !r.explicit("log-level") && zapLog !== undefined ? zapLog : r.get("log-level", logLevel),
    logFormat: !r.explicit("log-format") && zapEncoder !== undefined
      ? (zapEncoder === "console" ? "text" : "json")
      : r.get("log-format", logFormat),
  };
}

/** The copier as a command: what `--help` shows and how its values are checked. */
export const COPIER_COMMAND: CommandSpec<CopierConfig> = {
  name: "extractedprism endpoint-copier",
  description:
    "Keeps the EndpointSlices of selector-less Services (such as a MetalLB VIP in front of the API servers) equal " +
    "to those of a source Service: a drop-in replacement for SUSE's endpoint-copier-operator.",
  flags: COPIER_FLAGS,
  build: buildCopierConfig,
};

/**
 * Parses the arguments after `endpoint-copier` and the environment into the copier's configuration. Go-style
 * single-dash long flags (`-kubeconfig`) are accepted, as Go's flag package does.
 *
 * @param argv The arguments after `endpoint-copier`.
 * @param env Environment variables (only the flags' `EP_*` names are read).
 * @returns Either a validated config, or an exit with its status and text (help, version, or a one-line error).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCopierCommandLine } from "./copier_flags.ts";
 * const r = parseCopierCommandLine(["--leader-elect"], {}, { version: "0.0.0" });
 * assert(r.kind === "ok" && r.config.leaderElect && r.config.managedTarget.name === "kubernetes-vip");
 * ```
 */
export function parseCopierCommandLine(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  info: VersionInfo,
): ParseOutcome<CopierConfig> {
  return parseCommand(COPIER_COMMAND, argv, env, info);
}
