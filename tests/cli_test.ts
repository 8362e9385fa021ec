import assert from "node:assert/strict";
import { parseProxyCommandLine as parseCommandLine, PROXY_FLAGS, type ProxyConfig } from "../lib/config/proxy_flags.ts";

type Env = Record<string, string | undefined>;

const INFO = { version: "1.2.3" };
const ENDPOINTS = "--endpoints=127.0.0.1:6443";

/** Parses and expects a configuration. */
function config(argv: readonly string[], env: Env = {}): ProxyConfig {
  const r = parseCommandLine(argv, env, INFO);
  if (r.kind !== "ok") assert.fail(`expected a config for ${JSON.stringify(argv)}, got exit ${r.code}: ${r.stderr}`);
  return r.config;
}

/** Parses and expects a configuration error: status 2, nothing on stdout, exactly one line on stderr. */
function failure(argv: readonly string[], env: Env = {}): string {
  const r = parseCommandLine(argv, env, INFO);
  if (r.kind !== "exit") assert.fail(`expected an error for ${JSON.stringify(argv)}, got a config`);
  assert.equal(r.code, 2, `exit status for ${JSON.stringify(argv)}`);
  assert.equal(r.stdout, "");
  assert.match(r.stderr, /^error: [^\n]+\n$/, "one line starting with 'error: '");
  return r.stderr.slice(0, -1);
}

function flagsWith(valueName: string): string[] {
  return PROXY_FLAGS.filter((f) => f.valueName === valueName).map((f) => f.name);
}

const DEFAULTS: ProxyConfig = {
  bindAddress: "127.0.0.1",
  bindPort: 7445,
  healthBindAddress: "127.0.0.1",
  healthPort: 7446,
  endpoints: [{ host: "127.0.0.1", port: 6443 }],
  healthIntervalMs: 1000,
  healthTimeoutMs: 500,
  healthCheck: "readyz",
  healthCaFile: undefined,
  healthTlsServerName: "kubernetes.default.svc",
  healthClientCert: undefined,
  healthClientKey: undefined,
  healthTokenFile: undefined,
  upstreamSelection: "latency",
  closeOnUnhealthy: true,
  maxUpstreams: 64,
  healthRise: 2,
  healthFall: 2,
  dialTimeoutMs: 2000,
  hedgeDelayMs: 100,
  drainTimeoutMs: 30_000,
  enableDiscovery: true,
  kubeconfig: undefined,
  kubeContext: undefined,
  discoveryTlsServerName: "kubernetes.default.svc",
  stateFile: undefined,
  logLevel: "info",
  logFormat: "json",
};

Deno.test("with only --endpoints every other option takes its documented default", () => {
  assert.deepEqual(config([ENDPOINTS]), DEFAULTS);
});

Deno.test("the defaults in the flag table are the values applied when a flag is absent", () => {
  for (const f of PROXY_FLAGS) {
    if (f.default === undefined) continue;
    assert.deepEqual(config([ENDPOINTS, `--${f.name}=${f.default}`]), DEFAULTS, `--${f.name}=${f.default}`);
  }
});

Deno.test("the health server's address defaults to --bind-address and can be set apart", () => {
  assert.equal(config([ENDPOINTS, "--bind-address=::1"]).healthBindAddress, "::1");
  const c = config([ENDPOINTS, "--bind-address=0.0.0.0", "--health-bind-address=127.0.0.2"]);
  assert.equal(c.bindAddress, "0.0.0.0");
  assert.equal(c.healthBindAddress, "127.0.0.2");
});

Deno.test("ports: 1 and 65535 are accepted; 0, 65536, empty and words are refused", async (t) => {
  await t.step("bounds accepted", () => {
    assert.equal(config([ENDPOINTS, "--bind-port=1"]).bindPort, 1);
    assert.equal(config([ENDPOINTS, "--bind-port=65535"]).bindPort, 65535);
    assert.equal(config([ENDPOINTS, "--health-port=1"]).healthPort, 1);
    assert.equal(config([ENDPOINTS, "--health-port=65535"]).healthPort, 65535);
  });
  for (const name of flagsWith("port")) {
    await t.step(`--${name} out of range`, () => {
      for (const value of ["0", "65536", "", "abc", "-1", "80.5"]) {
        assert.equal(
          failure([ENDPOINTS, `--${name}=${value}`]),
          `error: Invalid --${name} '${value}': expected a port number from 1 to 65535`,
        );
      }
    });
  }
});

Deno.test("the proxy and health ports must differ", () => {
  assert.equal(
    failure([ENDPOINTS, "--bind-port=7446"]),
    "error: Invalid --health-port '7446': must differ from --bind-port, which is 7446",
  );
  assert.equal(
    failure([ENDPOINTS, "--health-port=7445"]),
    "error: Invalid --health-port '7445': must differ from --bind-port, which is 7445",
  );
  assert.equal(
    failure([ENDPOINTS], { EP_BIND_PORT: "9000", EP_HEALTH_PORT: "9000" }),
    "error: Invalid --health-port (from EP_HEALTH_PORT) '9000': must differ from --bind-port (from EP_BIND_PORT), which is 9000",
  );
});

Deno.test("the health timeout must be shorter than the health interval", async (t) => {
  await t.step("equal is an error", () => {
    assert.equal(
      failure([ENDPOINTS, "--health-timeout=1s"]),
      "error: Invalid --health-timeout '1s': must be shorter than --health-interval ('1s')",
    );
    assert.equal(
      failure([ENDPOINTS, "--health-interval=2s", "--health-timeout=2s"]),
      "error: Invalid --health-timeout '2s': must be shorter than --health-interval ('2s')",
    );
  });
  await t.step("equal written two ways is an error too", () => {
    assert.equal(
      failure([ENDPOINTS, "--health-interval=1001ms", "--health-timeout=1.001s"]),
      "error: Invalid --health-timeout '1.001s': must be shorter than --health-interval ('1001ms')",
    );
    assert.equal(
      failure([ENDPOINTS, "--health-interval=1m", "--health-timeout=60000ms"]),
      "error: Invalid --health-timeout '60000ms': must be shorter than --health-interval ('1m')",
    );
  });
  await t.step("longer is an error", () => {
    assert.equal(
      failure([ENDPOINTS, "--health-interval=1s"], { EP_HEALTH_TIMEOUT: "3s" }),
      "error: Invalid --health-timeout (from EP_HEALTH_TIMEOUT) '3s': must be shorter than --health-interval ('1s')",
    );
  });
  await t.step("one millisecond shorter is accepted", () => {
    const c = config([ENDPOINTS, "--health-interval=1s", "--health-timeout=999ms"]);
    assert.equal(c.healthIntervalMs, 1000);
    assert.equal(c.healthTimeoutMs, 999);
  });
});

Deno.test("every duration flag refuses zero, negative, garbage and over-long values", async (t) => {
  const durations = flagsWith("duration");
  assert.ok(durations.length >= 5, "the flag table has duration flags");
  for (const name of durations) {
    await t.step(`--${name}`, () => {
      // A long interval keeps the timeout check out of the way of the other flags' messages.
      const base = name === "health-interval" ? [ENDPOINTS] : [ENDPOINTS, "--health-interval=500h"];
      for (const zero of ["0", "0s", "0ms", "0.0000001ns"]) {
        assert.equal(
          failure([...base, `--${name}=${zero}`]),
          `error: Invalid --${name} '${zero}': expected a duration greater than zero, such as '500ms' or '2s'`,
        );
      }
      for (const bad of ["-1s", "xyz", "5", "1 s", ""]) {
        assert.equal(
          failure([...base, `--${name}=${bad}`]),
          `error: Invalid --${name} '${bad}': Cannot parse duration '${bad}': expected a value such as '500ms', '2s' or '1m'`,
        );
      }
      // setTimeout fires at once for anything above 2^31 - 1 ms: a 600h drain would be no drain at all.
      for (const long of ["600h", "596h31m23.648s"]) {
        assert.equal(
          failure([...base, `--${name}=${long}`]),
          `error: Invalid --${name} '${long}': expected a duration of at most 596h31m23.647s`,
        );
      }
    });
  }
  await t.step("the longest timer is accepted", () => {
    const c = config([ENDPOINTS, "--drain-timeout=596h31m23.647s", "--dial-timeout=596h31m23.647s"]);
    assert.equal(c.drainTimeoutMs, 2 ** 31 - 1);
    assert.equal(c.dialTimeoutMs, 2 ** 31 - 1);
  });
});

Deno.test("endpoints: a bad entry, an empty list and a missing flag are refused", async (t) => {
  await t.step("a bad entry names the list and the entry", () => {
    assert.equal(
      failure(["--endpoints=127.0.0.1"]),
      "error: Invalid --endpoints '127.0.0.1': Cannot parse endpoint '127.0.0.1': expected 'host:port'",
    );
    assert.equal(
      failure(["--endpoints=127.0.0.1:6443,::1:6443"]),
      "error: Invalid --endpoints '127.0.0.1:6443,::1:6443': Cannot parse endpoint '::1:6443': " +
        "an IPv6 address must be in brackets, as '[::1]:6443'",
    );
    assert.equal(
      failure(["--endpoints=127.0.0.1:0"]),
      "error: Invalid --endpoints '127.0.0.1:0': Cannot parse endpoint '127.0.0.1:0': port '0' is not a number from 1 to 65535",
    );
  });
  await t.step("an empty list", () => {
    assert.equal(failure(["--endpoints="]), "error: Invalid --endpoints '': expected at least one host:port");
    assert.equal(failure(["--endpoints=, ,"]), "error: Invalid --endpoints ', ,': expected at least one host:port");
  });
  await t.step("no endpoints at all", () => {
    const missing =
      "error: Missing --endpoints: required: API servers as comma-separated host:port, IPv6 as [::1]:6443";
    assert.equal(failure([]), missing);
    assert.equal(failure([], { EP_ENDPOINTS: "" }), missing);
  });
  await t.step("an empty entry: a trailing comma, two commas in a row", () => {
    assert.equal(
      failure(["--endpoints=127.0.0.1:6443,"]),
      "error: Invalid --endpoints '127.0.0.1:6443,': expected host:port at entry 2 of 2, found nothing",
    );
    assert.equal(
      failure(["--endpoints=127.0.0.1:6443, ,[::1]:6443"]),
      "error: Invalid --endpoints '127.0.0.1:6443, ,[::1]:6443': expected host:port at entry 2 of 3, found nothing",
    );
    assert.equal(
      failure([], { EP_ENDPOINTS: ",127.0.0.1:6443" }),
      "error: Invalid --endpoints (from EP_ENDPOINTS) ',127.0.0.1:6443': expected host:port at entry 1 of 2, found nothing",
    );
  });
  await t.step("a good list is trimmed, normalised and deduplicated in order", () => {
    const c = config(["--endpoints=127.0.0.2:6443, [0:0:0:0:0:0:0:1]:6443,[::1]:6443 ,Example.COM:443,127.0.0.2:6443"]);
    assert.deepEqual(c.endpoints, [
      { host: "127.0.0.2", port: 6443 },
      { host: "::1", port: 6443 },
      { host: "example.com", port: 443 },
    ]);
  });
});

Deno.test("listen addresses must be IP addresses", () => {
  for (const name of ["bind-address", "health-bind-address"]) {
    assert.equal(
      failure([ENDPOINTS, `--${name}=localhost`]),
      `error: Invalid --${name} 'localhost': expected an IP address, not a host name`,
    );
    for (const bad of ["1.2.3", "256.0.0.1", "", "a_b"]) {
      assert.equal(
        failure([ENDPOINTS, `--${name}=${bad}`]),
        `error: Invalid --${name} '${bad}': expected an IP address such as 127.0.0.1 or ::1`,
      );
    }
  }
  assert.equal(config([ENDPOINTS, "--bind-address=[::1]"]).bindAddress, "::1");
  assert.equal(config([ENDPOINTS, "--bind-address=0:0:0:0:0:0:0:1"]).bindAddress, "::1");
});

Deno.test("counts are whole numbers from 1 to 100", () => {
  for (const name of flagsWith("count").filter((n) => n !== "max-upstreams")) {
    for (const bad of ["0", "101", "1.5", "-1", "two", ""]) {
      assert.equal(
        failure([ENDPOINTS, `--${name}=${bad}`]),
        `error: Invalid --${name} '${bad}': expected a whole number from 1 to 100`,
      );
    }
  }
  assert.equal(config([ENDPOINTS, "--health-rise=1"]).healthRise, 1);
  assert.equal(config([ENDPOINTS, "--health-fall=100"]).healthFall, 100);
});

Deno.test("--max-upstreams is a whole number from 1 to 1000, 64 by default", () => {
  for (const bad of ["0", "1001", "1.5", "-1", "two", ""]) {
    assert.equal(
      failure([ENDPOINTS, `--max-upstreams=${bad}`]),
      `error: Invalid --max-upstreams '${bad}': expected a whole number from 1 to 1000`,
    );
  }
  assert.equal(config([ENDPOINTS]).maxUpstreams, 64);
  assert.equal(config([ENDPOINTS, "--max-upstreams=1"]).maxUpstreams, 1);
  assert.equal(config([ENDPOINTS, "--max-upstreams=1000"]).maxUpstreams, 1000);
  assert.equal(config([ENDPOINTS], { EP_MAX_UPSTREAMS: "7" }).maxUpstreams, 7);
});

Deno.test("log level and format accept only their words, in any case", () => {
  assert.equal(
    failure([ENDPOINTS, "--log-level=trace"]),
    "error: Invalid --log-level 'trace': expected one of 'debug', 'info', 'warn', 'error'",
  );
  assert.equal(
    failure([ENDPOINTS, "--log-format=xml"]),
    "error: Invalid --log-format 'xml': expected one of 'json', 'text'",
  );
  for (const level of ["debug", "info", "warn", "error"] as const) {
    assert.equal(config([ENDPOINTS, `--log-level=${level.toUpperCase()}`]).logLevel, level);
  }
  assert.equal(config([ENDPOINTS, "--log-format=Text"]).logFormat, "text");
});

Deno.test("health check kind and upstream selection accept only their words", () => {
  assert.equal(
    failure([ENDPOINTS, "--health-check=http"]),
    "error: Invalid --health-check 'http': expected one of 'readyz', 'tcp'",
  );
  assert.equal(config([ENDPOINTS, "--health-check=TCP"]).healthCheck, "tcp");
  assert.equal(
    failure([ENDPOINTS, "--upstream-selection=random"]),
    "error: Invalid --upstream-selection 'random': expected one of 'latency', 'least-connections', 'round-robin'",
  );
  for (const policy of ["latency", "least-connections", "round-robin"] as const) {
    assert.equal(config([ENDPOINTS, `--upstream-selection=${policy}`]).upstreamSelection, policy);
  }
});

Deno.test("every path flag refuses a blank path and keeps any other text as given", async (t) => {
  const paths = flagsWith("path");
  assert.ok(paths.length >= 5, "the flag table has path flags");
  for (const name of paths) {
    await t.step(`--${name}`, () => {
      for (const blank of ["", "  "]) {
        assert.equal(
          failure([...baseArgs(name), `--${name}=${blank}`]),
          `error: Invalid --${name} '${blank}': expected a file path`,
        );
      }
      const c = config([...baseArgs(name), `--${name}=/a dir/file.pem`]) as unknown as Record<string, unknown>;
      assert.ok(Object.values(c).includes("/a dir/file.pem"), `--${name} keeps the path`);
    });
  }
});

Deno.test("TLS server names must be DNS names or IP addresses", () => {
  for (const name of ["health-tls-server-name", "discovery-tls-server-name"]) {
    for (const bad of ["a_b", "-x", "", "a..b"]) {
      assert.equal(
        failure([ENDPOINTS, `--${name}=${bad}`]),
        `error: Invalid --${name} '${bad}': expected a DNS name such as 'kubernetes.default.svc'`,
      );
    }
  }
  const c = config([ENDPOINTS, "--health-tls-server-name=Kubernetes"]);
  assert.equal(c.healthTlsServerName, "kubernetes");
  assert.equal(config([ENDPOINTS, "--discovery-tls-server-name=127.0.0.1"]).discoveryTlsServerName, "127.0.0.1");
});

Deno.test("a probe client certificate and key come as a pair", () => {
  assert.equal(
    failure([ENDPOINTS, "--health-client-cert=/c.pem"]),
    "error: Invalid --health-client-cert '/c.pem': needs --health-client-key too",
  );
  assert.equal(
    failure([ENDPOINTS], { EP_HEALTH_CLIENT_KEY: "/k.pem" }),
    "error: Invalid --health-client-key (from EP_HEALTH_CLIENT_KEY) '/k.pem': needs --health-client-cert too",
  );
  const c = config([ENDPOINTS, "--health-client-cert=/c.pem"], { EP_HEALTH_CLIENT_KEY: "/k.pem" });
  assert.equal(c.healthClientCert, "/c.pem");
  assert.equal(c.healthClientKey, "/k.pem");
});

Deno.test("--close-on-unhealthy is a boolean like --enable-discovery", () => {
  assert.equal(config([ENDPOINTS, "--close-on-unhealthy"], { EP_CLOSE_ON_UNHEALTHY: "false" }).closeOnUnhealthy, true);
  assert.equal(config([ENDPOINTS, "--close-on-unhealthy=false"]).closeOnUnhealthy, false);
  assert.equal(
    failure([ENDPOINTS, "--close-on-unhealthy=sometimes"]),
    "error: Invalid --close-on-unhealthy 'sometimes': expected 'true' or 'false'",
  );
});

Deno.test("--enable-discovery is a boolean: bare means true, =false turns it off", async (t) => {
  await t.step("bare", () => {
    assert.equal(config([ENDPOINTS, "--enable-discovery"]).enableDiscovery, true);
    assert.equal(config([ENDPOINTS, "--enable-discovery"], { EP_ENABLE_DISCOVERY: "false" }).enableDiscovery, true);
  });
  await t.step("bare before another flag does not swallow it", () => {
    const c = config(["--enable-discovery", "--log-level=debug", ENDPOINTS]);
    assert.equal(c.enableDiscovery, true);
    assert.equal(c.logLevel, "debug");
  });
  await t.step("with a value", () => {
    assert.equal(config([ENDPOINTS, "--enable-discovery=false"]).enableDiscovery, false);
    assert.equal(config([ENDPOINTS, "--enable-discovery", "false"]).enableDiscovery, false);
    for (const yes of ["true", "TRUE", "1", "t", "yes"]) {
      assert.equal(config([ENDPOINTS, `--enable-discovery=${yes}`]).enableDiscovery, true, yes);
    }
    for (const no of ["false", "False", "0", "f", "no"]) {
      assert.equal(config([ENDPOINTS, `--enable-discovery=${no}`]).enableDiscovery, false, no);
    }
  });
  await t.step("anything else is refused", () => {
    for (const bad of ["maybe", "", "on", "2"]) {
      assert.equal(
        failure([ENDPOINTS, `--enable-discovery=${bad}`]),
        `error: Invalid --enable-discovery '${bad}': expected 'true' or 'false'`,
      );
    }
  });
});

Deno.test("command line mistakes are one line with status 2", async (t) => {
  await t.step("an unknown flag", () => {
    assert.equal(failure([ENDPOINTS, "--bind-prot=1"]), "error: unknown option '--bind-prot=1'");
    assert.equal(failure(["--nope", ENDPOINTS]), "error: unknown option '--nope'");
  });
  await t.step("an extra positional argument", () => {
    assert.equal(failure([ENDPOINTS, "extra"]), "error: unexpected argument 'extra'");
    assert.equal(failure(["127.0.0.1:6443"]), "error: unexpected argument '127.0.0.1:6443'");
  });
  await t.step("an unknown mode word first names the modes", () => {
    assert.equal(failure(["bogus-mode"]), "error: unknown command 'bogus-mode' (modes: endpoint-copier, status)");
    assert.equal(failure(["stats", ENDPOINTS]), "error: unknown command 'stats' (modes: endpoint-copier, status)");
    // Not first, or not a word: a stray argument.
    assert.equal(failure([ENDPOINTS, "bogus-mode"]), "error: unexpected argument 'bogus-mode'");
  });
  await t.step("a flag without its value", () => {
    assert.equal(failure([ENDPOINTS, "--bind-port"]), "error: option '--bind-port <port>' argument missing");
  });
});

/** For every flag: a valid value from the environment, another from the command line, one that is refused. */
interface Sample {
  readonly env: string;
  readonly cli: string;
  /** A value the flag refuses; omit only for a flag that accepts any text. */
  readonly bad?: string;
  readonly read: (c: ProxyConfig) => unknown;
  readonly fromEnv: unknown;
  readonly fromCli: unknown;
}

const SAMPLES: Readonly<Record<string, Sample>> = {
  "bind-address": {
    env: "0.0.0.0",
    cli: "::1",
    bad: "localhost",
    read: (c) => c.bindAddress,
    fromEnv: "0.0.0.0",
    fromCli: "::1",
  },
  "bind-port": { env: "8001", cli: "8002", bad: "0", read: (c) => c.bindPort, fromEnv: 8001, fromCli: 8002 },
  "health-bind-address": {
    env: "::1",
    cli: "127.0.0.2",
    bad: "1.2.3",
    read: (c) => c.healthBindAddress,
    fromEnv: "::1",
    fromCli: "127.0.0.2",
  },
  "health-port": { env: "9001", cli: "9002", bad: "65536", read: (c) => c.healthPort, fromEnv: 9001, fromCli: 9002 },
  endpoints: {
    env: "10.9.9.9:6443",
    cli: "[::1]:6443",
    bad: "10.9.9.9",
    read: (c) => c.endpoints,
    fromEnv: [{ host: "10.9.9.9", port: 6443 }],
    fromCli: [{ host: "::1", port: 6443 }],
  },
  "health-interval": { env: "3s", cli: "4s", bad: "3", read: (c) => c.healthIntervalMs, fromEnv: 3000, fromCli: 4000 },
  "health-timeout": {
    env: "250ms",
    cli: "750ms",
    bad: "0s",
    read: (c) => c.healthTimeoutMs,
    fromEnv: 250,
    fromCli: 750,
  },
  "health-rise": { env: "5", cli: "7", bad: "0", read: (c) => c.healthRise, fromEnv: 5, fromCli: 7 },
  "health-fall": { env: "4", cli: "6", bad: "101", read: (c) => c.healthFall, fromEnv: 4, fromCli: 6 },
  "dial-timeout": { env: "5s", cli: "7s", bad: "-5s", read: (c) => c.dialTimeoutMs, fromEnv: 5000, fromCli: 7000 },
  "hedge-delay": { env: "50ms", cli: "75ms", bad: "soon", read: (c) => c.hedgeDelayMs, fromEnv: 50, fromCli: 75 },
  "drain-timeout": {
    env: "1m",
    cli: "90s",
    bad: "1y",
    read: (c) => c.drainTimeoutMs,
    fromEnv: 60_000,
    fromCli: 90_000,
  },
  "enable-discovery": {
    env: "false",
    cli: "true",
    bad: "maybe",
    read: (c) => c.enableDiscovery,
    fromEnv: false,
    fromCli: true,
  },
  "log-level": {
    env: "debug",
    cli: "error",
    bad: "trace",
    read: (c) => c.logLevel,
    fromEnv: "debug",
    fromCli: "error",
  },
  "log-format": { env: "text", cli: "json", bad: "xml", read: (c) => c.logFormat, fromEnv: "text", fromCli: "json" },
  "health-check": {
    env: "tcp",
    cli: "readyz",
    bad: "http",
    read: (c) => c.healthCheck,
    fromEnv: "tcp",
    fromCli: "readyz",
  },
  "health-ca-file": {
    env: "/etc/kubernetes/pki/ca.crt",
    cli: "/tmp/ca.pem",
    bad: "  ",
    read: (c) => c.healthCaFile,
    fromEnv: "/etc/kubernetes/pki/ca.crt",
    fromCli: "/tmp/ca.pem",
  },
  "health-tls-server-name": {
    env: "API.Example.com",
    cli: "127.0.0.1",
    bad: "a_b",
    read: (c) => c.healthTlsServerName,
    fromEnv: "api.example.com",
    fromCli: "127.0.0.1",
  },
  "health-client-cert": {
    env: "/etc/probe/env.crt",
    cli: "/etc/probe/cli.crt",
    bad: " ",
    read: (c) => c.healthClientCert,
    fromEnv: "/etc/probe/env.crt",
    fromCli: "/etc/probe/cli.crt",
  },
  "health-client-key": {
    env: "/etc/probe/env.key",
    cli: "/etc/probe/cli.key",
    bad: " ",
    read: (c) => c.healthClientKey,
    fromEnv: "/etc/probe/env.key",
    fromCli: "/etc/probe/cli.key",
  },
  "health-token-file": {
    env: "/var/run/secrets/token",
    cli: "/tmp/token",
    bad: " ",
    read: (c) => c.healthTokenFile,
    fromEnv: "/var/run/secrets/token",
    fromCli: "/tmp/token",
  },
  "upstream-selection": {
    env: "round-robin",
    cli: "least-connections",
    bad: "random",
    read: (c) => c.upstreamSelection,
    fromEnv: "round-robin",
    fromCli: "least-connections",
  },
  "close-on-unhealthy": {
    env: "false",
    cli: "true",
    bad: "sometimes",
    read: (c) => c.closeOnUnhealthy,
    fromEnv: false,
    fromCli: true,
  },
  "max-upstreams": {
    env: "3",
    cli: "1",
    bad: "0",
    read: (c) => c.maxUpstreams,
    fromEnv: 3,
    fromCli: 1,
  },
  kubeconfig: {
    env: "/etc/kubernetes/kubelet.conf",
    cli: "/root/.kube/config",
    bad: " ",
    read: (c) => c.kubeconfig,
    fromEnv: "/etc/kubernetes/kubelet.conf",
    fromCli: "/root/.kube/config",
  },
  // Any text names a context; kubeconfig loading decides whether it exists.
  "kube-context": {
    env: "admin@prod",
    cli: "staging",
    read: (c) => c.kubeContext,
    fromEnv: "admin@prod",
    fromCli: "staging",
  },
  "discovery-tls-server-name": {
    env: "api.internal",
    cli: "kubernetes",
    bad: "-bad-",
    read: (c) => c.discoveryTlsServerName,
    fromEnv: "api.internal",
    fromCli: "kubernetes",
  },
  "state-file": {
    env: "/var/lib/extractedprism/endpoints.json",
    cli: "/tmp/endpoints.json",
    bad: " ",
    read: (c) => c.stateFile,
    fromEnv: "/var/lib/extractedprism/endpoints.json",
    fromCli: "/tmp/endpoints.json",
  },
};

function sampleOf(name: string): Sample {
  const s = SAMPLES[name];
  if (s === undefined) assert.fail(`--${name} is in PROXY_FLAGS but has no entry in SAMPLES: add one to cover it`);
  return s;
}

/** Other flags needed for a valid config when `name` is the one under test. */
function baseArgs(name: string): string[] {
  switch (name) {
    case "endpoints":
      return [];
    case "health-client-cert": // the pair is given together
      return [ENDPOINTS, "--health-client-key=/etc/probe/pair.key"];
    case "health-client-key":
      return [ENDPOINTS, "--health-client-cert=/etc/probe/pair.crt"];
    default:
      return [ENDPOINTS];
  }
}

Deno.test("every flag's environment variable is named EP_ plus the flag in upper snake case", () => {
  for (const f of PROXY_FLAGS) assert.equal(f.env, `EP_${f.name.toUpperCase().replaceAll("-", "_")}`);
  assert.equal(new Set(PROXY_FLAGS.map((f) => f.env)).size, PROXY_FLAGS.length, "no two flags share a variable");
});

Deno.test("every flag falls back to its environment variable", async (t) => {
  for (const f of PROXY_FLAGS) {
    const s = sampleOf(f.name);
    await t.step(`${f.env} sets --${f.name}`, () => {
      const unset = parseCommandLine(baseArgs(f.name), {}, INFO);
      const c = config(baseArgs(f.name), { [f.env]: s.env });
      assert.deepEqual(s.read(c), s.fromEnv);
      if (unset.kind === "ok") {
        assert.notDeepEqual(s.read(unset.config), s.fromEnv, "the sample differs from the default");
      }
    });
  }
});

Deno.test("an invalid environment value is reported with the variable's name", async (t) => {
  for (const f of PROXY_FLAGS) {
    const s = sampleOf(f.name);
    if (s.bad === undefined) continue;
    const bad = s.bad;
    await t.step(f.env, () => {
      const line = failure(baseArgs(f.name), { [f.env]: bad });
      assert.ok(
        line.startsWith(`error: Invalid --${f.name} (from ${f.env}) '${bad}': `),
        `${line} should name --${f.name} and ${f.env}`,
      );
    });
  }
});

Deno.test("the command line wins over the environment", async (t) => {
  for (const f of PROXY_FLAGS) {
    const s = sampleOf(f.name);
    await t.step(`--${f.name} over ${f.env}`, () => {
      assert.deepEqual(s.read(config([...baseArgs(f.name), `--${f.name}=${s.cli}`], { [f.env]: s.env })), s.fromCli);
      // The environment's value is not even read when the flag is given: a bad one does not matter.
      if (s.bad !== undefined) {
        assert.deepEqual(s.read(config([...baseArgs(f.name), `--${f.name}=${s.cli}`], { [f.env]: s.bad })), s.fromCli);
      }
    });
  }
});

Deno.test("an empty environment variable counts as unset", async (t) => {
  for (const f of PROXY_FLAGS) {
    if (f.name === "endpoints") continue; // required: covered by "no endpoints at all"
    await t.step(f.env, () => {
      assert.deepEqual(config([ENDPOINTS], { [f.env]: "" }), DEFAULTS);
    });
  }
  await t.step("all of them at once", () => {
    const empty = Object.fromEntries(PROXY_FLAGS.filter((f) => f.name !== "endpoints").map((f) => [f.env, ""]));
    assert.deepEqual(config([ENDPOINTS], empty), DEFAULTS);
  });
});

Deno.test("variables outside the flag table are ignored", () => {
  assert.deepEqual(
    config([ENDPOINTS], { EP_BIND_PROT: "1", BIND_PORT: "1", ep_bind_port: "1", PATH: "/bin" }),
    DEFAULTS,
  );
});

Deno.test("--help lists every flag with its environment variable and default", async (t) => {
  const r = parseCommandLine(["--help"], {}, INFO);
  assert.equal(r.kind, "exit");
  if (r.kind !== "exit") return;
  assert.equal(r.code, 0);
  assert.equal(r.stderr, "");
  assert.ok(r.stdout.startsWith("Usage: extractedprism [options]\n"), r.stdout);
  // Long help lines wrap: compare with white space folded.
  const text = r.stdout.replace(/\s+/g, " ");
  const starts = PROXY_FLAGS.map((f) => {
    const usage = f.valueName === "bool" ? `--${f.name} [${f.valueName}]` : `--${f.name} <${f.valueName}>`;
    const at = text.indexOf(` ${usage} `);
    assert.ok(at >= 0, `--help shows '${usage}'`);
    return at;
  });
  assert.deepEqual([...starts].sort((a, b) => a - b), starts, "flags appear in the table's order");
  for (const [i, f] of PROXY_FLAGS.entries()) {
    await t.step(`--${f.name}`, () => {
      const entry = text.slice(starts[i], starts[i + 1] ?? text.indexOf(" -h, --help "));
      assert.ok(entry.includes(f.help.replace(/\s+/g, " ")), `${entry} has the help text`);
      assert.ok(entry.includes(`env: ${f.env}]`), `${entry} names ${f.env}`);
      if (f.default !== undefined) assert.ok(entry.includes(`[default: ${f.default}; `), `${entry} shows the default`);
      else assert.ok(!entry.includes("[default:"), `${entry} shows no default of its own`);
    });
  }
  await t.step("-h and --version are listed, and -h prints the same text", () => {
    assert.ok(text.includes(" -h, --help "));
    assert.ok(text.includes(" -v, --version "));
    assert.deepEqual(parseCommandLine(["-h"], {}, INFO), r);
  });
});

Deno.test("--help lists the modes with their usage", () => {
  const r = parseCommandLine(["--help"], {}, INFO);
  assert.ok(r.kind === "exit" && r.code === 0);
  assert.match(r.stdout, /^Usage: extractedprism \[options\]\n {7}extractedprism endpoint-copier \[options\]\n/);
  assert.match(r.stdout, /\nModes \(the first argument; each has its own --help\):\n {2}endpoint-copier\n/);
  assert.match(r.stdout, /\n {7}extractedprism status \[options\]\n/);
  assert.match(r.stdout, /\n {2}status\n {6}show the upstreams of the proxy on this node/);
});

Deno.test("--help says how flags are spelled and that a repeated flag's last value wins", () => {
  const r = parseCommandLine(["--help"], {}, INFO);
  const text = r.kind === "exit" ? r.stdout.replace(/\s+/g, " ") : "";
  assert.ok(text.includes("--name=value, --name value, -name=value or -name value"), text);
  assert.ok(text.includes("A flag given twice: the last one wins."), text);
  assert.deepEqual(config([ENDPOINTS, "--bind-port=1000", "-bind-port", "2000"]).bindPort, 2000);
});

Deno.test("--help and --version answer even when other flags are wrong", () => {
  for (const first of ["--help", "--version"]) {
    const r = parseCommandLine(["--bind-port=abc", first], { EP_HEALTH_PORT: "x" }, INFO);
    assert.equal(r.kind, "exit");
    assert.equal(r.kind === "exit" && r.code, 0, first);
  }
});

Deno.test("--version prints the version, and the revision when known", () => {
  for (const flag of ["--version", "-v"]) {
    assert.deepEqual(parseCommandLine([flag], {}, INFO), { kind: "exit", code: 0, stdout: "1.2.3\n", stderr: "" });
  }
  assert.deepEqual(
    parseCommandLine(["--version"], {}, { version: "1.2.3", revision: "abc1234" }),
    { kind: "exit", code: 0, stdout: "1.2.3 (abc1234)\n", stderr: "" },
  );
});
