import assert from "node:assert/strict";
import { bindAddress } from "../lib/config/copier_values.ts";
import {
  COPIER_FLAGS,
  type CopierConfig,
  GO_OPERATOR_FLAG_NAMES,
  parseCopierCommandLine,
} from "../lib/config/copier_flags.ts";

type Env = Record<string, string | undefined>;
const INFO = { version: "1.2.3" };

function config(argv: readonly string[], env: Env = {}): CopierConfig {
  const r = parseCopierCommandLine(argv, env, INFO);
  if (r.kind !== "ok") {
    assert.fail(`expected a config for ${JSON.stringify(argv)}, got exit ${r.code}: ${r.stderr}`);
  }
  return r.config;
}

/** Expects a configuration error: status 2, nothing on stdout, exactly one line on stderr. */
function failure(argv: readonly string[], env: Env = {}): string {
  const r = parseCopierCommandLine(argv, env, INFO);
  if (r.kind !== "exit") assert.fail(`expected an error for ${JSON.stringify(argv)}, got a config`);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, "");
  assert.match(r.stderr, /^error: [^\n]+\n$/);
  return r.stderr.slice(0, -1);
}

const DEFAULTS: CopierConfig = {
  defaultSource: { namespace: "default", name: "kubernetes" },
  managedTarget: { namespace: "default", name: "kubernetes-vip" },
  leaderElect: false,
  leaderElectionId: "f668ae63.endpoint-copier-operator",
  leaderElectionNamespace: undefined,
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2000,
  healthProbeBindAddress: { host: "", port: 8081 },
  metricsBindAddress: { host: "", port: 8080 },
  kubeconfig: undefined,
  kubeContext: undefined,
  resyncPeriodMs: 60_000,
  logLevel: "info",
  logFormat: "json",
};

Deno.test("the defaults are endpoint-copier-operator's, with controller-runtime's lease timings", () => {
  assert.deepEqual(config([]), DEFAULTS);
});

Deno.test("endpoint-copier-operator's flags are accepted as they are", async (t) => {
  await t.step("its Deployment's args", () => {
    assert.deepEqual(config(["--leader-elect"]), { ...DEFAULTS, leaderElect: true });
  });

  // Every flag of its cmd/main.go with a non-default value, plus controller-runtime's --kubeconfig and zap's flags.
  const goArgs: Record<string, string> = {
    "default-endpoint-name": "kube-apiserver",
    "default-endpoint-namespace": "kube-system",
    "managed-endpoint-name": "api-vip",
    "managed-endpoint-namespace": "edge",
    "leader-elect": "true",
    "health-probe-bind-address": "127.0.0.1:9081",
    "metrics-bind-address": ":9080",
    "kubeconfig": "/etc/rancher/rke2/rke2.yaml",
    "apiserver-port": "9345",
    "apiserver-protocol": "TCP",
    "zap-devel": "false",
    "zap-encoder": "console",
    "zap-log-level": "debug",
    "zap-stacktrace-level": "error",
    "zap-time-encoding": "iso8601",
  };
  assert.deepEqual(Object.keys(goArgs).sort(), [...GO_OPERATOR_FLAG_NAMES].sort());
  const expected: CopierConfig = {
    ...DEFAULTS,
    defaultSource: { namespace: "kube-system", name: "kube-apiserver" },
    managedTarget: { namespace: "edge", name: "api-vip" },
    leaderElect: true,
    healthProbeBindAddress: { host: "127.0.0.1", port: 9081 },
    metricsBindAddress: { host: "", port: 9080 },
    kubeconfig: "/etc/rancher/rke2/rke2.yaml",
    logLevel: "debug",
    logFormat: "text",
  };
  for (
    const [form, argv] of [
      ["--name=value", Object.entries(goArgs).map(([k, v]) => `--${k}=${v}`)],
      ["--name value", Object.entries(goArgs).flatMap(([k, v]) => [`--${k}`, v])],
      ["-name=value (Go's single dash)", Object.entries(goArgs).map(([k, v]) => `-${k}=${v}`)],
      ["-name value (Go's single dash)", Object.entries(goArgs).flatMap(([k, v]) => [`-${k}`, v])],
    ] as const
  ) {
    await t.step(form, () => assert.deepEqual(config(argv), expected));
  }

  await t.step("the Go flag package's boolean forms", () => {
    assert.equal(config(["-leader-elect"]).leaderElect, true);
    assert.equal(config(["--leader-elect=false"]).leaderElect, false);
    assert.equal(config(["-leader-elect=1"]).leaderElect, true);
  });

  await t.step("0 turns the probe and metrics listeners off, as in controller-runtime", () => {
    const c = config(["--health-probe-bind-address=0", "--metrics-bind-address", "0"]);
    assert.equal(c.healthProbeBindAddress, undefined);
    assert.equal(c.metricsBindAddress, undefined);
  });
});

Deno.test("every flag falls back to its EP_* variable, and the command line wins", () => {
  for (const f of COPIER_FLAGS) assert.equal(f.env, `EP_${f.name.toUpperCase().replaceAll("-", "_")}`);
  const env = {
    EP_MANAGED_ENDPOINT_NAME: "from-env",
    EP_LEADER_ELECT: "true",
    EP_LEADER_ELECTION_NAMESPACE: "edge",
    EP_RESYNC_PERIOD: "5m",
    EP_LOG_LEVEL: "warn",
  };
  const c = config(["--managed-endpoint-name=from-cli"], env);
  assert.equal(c.managedTarget.name, "from-cli");
  assert.equal(c.leaderElect, true);
  assert.equal(c.leaderElectionNamespace, "edge");
  assert.equal(c.resyncPeriodMs, 300_000);
  assert.equal(c.logLevel, "warn");
  assert.equal(
    failure([], { EP_RESYNC_PERIOD: "soon" }),
    "error: Invalid --resync-period (from EP_RESYNC_PERIOD) 'soon': Cannot parse duration 'soon': expected a value " +
      "such as '500ms', '2s' or '1m'",
  );
});

Deno.test("--log-level and --log-format win over zap's flags, which win over the defaults", () => {
  assert.equal(config(["--zap-log-level=3"]).logLevel, "debug");
  assert.equal(config(["--zap-log-level=panic"]).logLevel, "error");
  assert.equal(config(["--zap-log-level=debug", "--log-level=warn"]).logLevel, "warn");
  assert.equal(config(["--zap-encoder=console"], { EP_LOG_FORMAT: "json" }).logFormat, "json");
  assert.equal(config(["--zap-encoder=json"]).logFormat, "json");
});

Deno.test("a bad value is one line naming the flag, the value and what is expected", () => {
  assert.equal(
    failure(["--health-probe-bind-address=8081"]),
    "error: Invalid --health-probe-bind-address '8081': expected host:port such as ':8081' or '127.0.0.1:8081', " +
      "or 0 to turn it off",
  );
  assert.equal(
    failure(["--metrics-bind-address=:65536"]),
    "error: Invalid --metrics-bind-address ':65536': expected a port number from 0 to 65535",
  );
  assert.equal(
    failure(["--metrics-bind-address=[::]:8081"]),
    "error: Invalid --metrics-bind-address '[::]:8081': must differ from --health-probe-bind-address",
  );
  assert.equal(
    failure(["--managed-endpoint-name=Kubernetes_VIP"]),
    "error: Invalid --managed-endpoint-name 'Kubernetes_VIP': expected a Service name: lowercase letters, digits " +
      "and '-', starting with a letter",
  );
  assert.equal(
    failure(["--leader-elect-renew-deadline=15s"]),
    "error: Invalid --leader-elect-renew-deadline '15s': must be shorter than --leader-elect-lease-duration",
  );
  assert.equal(
    failure(["--leader-elect-retry-period=9s"]),
    "error: Invalid --leader-elect-retry-period '9s': must be shorter than --leader-elect-renew-deadline divided by 1.2",
  );
  assert.equal(failure(["--leader-elect=maybe"]), "error: Invalid --leader-elect 'maybe': expected 'true' or 'false'");
  assert.equal(failure(["--webhook-port=9443"]), "error: unknown option '--webhook-port=9443'");
  assert.equal(failure(["extra"]), "error: unexpected argument 'extra'");
  assert.equal(failure(["--kube-context= "]), "error: Invalid --kube-context ' ': expected a context name");
});

Deno.test("bind addresses take Go's forms", () => {
  assert.deepEqual(bindAddress(":0"), { host: "", port: 0 });
  assert.deepEqual(bindAddress("[::1]:8081"), { host: "::1", port: 8081 });
  assert.deepEqual(bindAddress("localhost:65535"), { host: "127.0.0.1", port: 65535 });
  assert.equal(bindAddress("0"), undefined);
  assert.throws(() => bindAddress("example.com:80"), /expected an IP address, not a host name/);
});

Deno.test("--help lists every flag with its default and variable, --version prints the version", () => {
  const help = parseCopierCommandLine(["--help"], {}, INFO);
  assert.ok(help.kind === "exit" && help.code === 0);
  assert.match(help.stdout, /^Usage: extractedprism endpoint-copier \[options\]/);
  const flat = help.stdout.replace(/\s+/g, " "); // long descriptions wrap
  for (const f of COPIER_FLAGS) {
    assert.ok(flat.includes(`--${f.name}`), `--help shows --${f.name}`);
    assert.ok(flat.includes(`env: ${f.env}`), `--help shows ${f.env}`);
  }
  const version = parseCopierCommandLine(["--version"], {}, { version: "1.2.3", revision: "abc" });
  assert.deepEqual(version, { kind: "exit", code: 0, stdout: "1.2.3 (abc)\n", stderr: "" });
});
