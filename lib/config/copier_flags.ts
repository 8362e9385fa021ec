/**
 * The flag table of `extractedprism endpoint-copier`, once: SUSE endpoint-copier-operator's flags with the same
 * names and defaults (so its Deployment args work unchanged), then the copier's own. It feeds the command line, the
 * `EP_*` environment fallbacks, `--help` and the README.
 *
 * @module
 */
import { flag, type FlagSpec } from "./flags.ts";

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
  flag("kube-context", undefined, "name", "kubeconfig context to use (default: its current-context)"),
  flag("resync-period", "60s", "duration", "time between full resyncs of every target (jittered ±10%)"),
  flag("log-level", "info", "level", "debug, info, warn or error"),
  flag("log-format", "json", "format", "json (one object per line) or text"),
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
