/**
 * What discovery costs: the proxy's idle RSS and its peak RSS under 32 busy connections, with discovery on (a
 * kubeconfig to a local fake API server, an EndpointSlice watch open, and a state file, as every shipped shape has one)
 * and off, and the time from process start to the first discovered upstream. Prints a table and one PASS/FAIL line per
 * target (with discovery on, idle and 32-connection RSS within 3 MiB of discovery off). Loopback only; bounded; run
 * with `deno run -A bench/discovery_cost.ts [--runs=N] [--seconds=N]`.
 *
 * Both variants use `--health-check=tcp` by default (echo servers answer no readyz), so that only discovery differs;
 * then the API client's TLS counts as discovery's. With `--health-check=readyz` (the default deployment: the readyz
 * probe already pays for TLS), the fake API server is the static upstream and the one discovered, both variants probe
 * it with the test CA, and only idle RSS is measured (the API server does not echo the busy connections' bytes).
 *
 * Discovery reaches the API with a kubeconfig by default (a bare node's shape). `--credentials=service-account`
 * measures a DaemonSet pod's shape instead: no kubeconfig, a service-account token and CA where the kubelet mounts
 * them, and the static endpoints dialled as `kubernetes.default.svc`. The program reads that fixed path, so each run
 * (on and off alike) starts in a mount namespace of its own (`unshare -m`) with a tmpfs on `/var/run` and the token's
 * directory bound there; it needs root and `--health-check=readyz` (in a pod the API server is the static upstream).
 *
 * @module
 */
import { EchoServer } from "../tests/support/net.ts";
import { endpointSlice, type FakeApiServer, startFakeApiServer } from "../tests/support/fake_apiserver.ts";
import { createTestPki } from "../tests/support/test_pki.ts";
import { startCommand } from "../tests/support/main_process.ts";
import { kubectlKubeconfig } from "../tests/support/kubeconfig_text.ts";
import { RssSampler, treeRssAnonKiB, treeRssKiB } from "./_proc_stats.ts";
import { median } from "./_report.ts";

const arg = (name: string, fallback: string) =>
  Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const runs = Math.max(1, Math.min(20, Number(arg("runs", "5")) || 5));
const seconds = Math.max(1, Math.min(60, Number(arg("seconds", "5")) || 5));
const healthCheck = arg("health-check", "tcp");
if (healthCheck !== "tcp" && healthCheck !== "readyz") {
  console.error(`--health-check must be tcp or readyz, got '${healthCheck}'`);
  Deno.exit(2);
}
const readyz = healthCheck === "readyz";
const credentials = arg("credentials", "kubeconfig");
if (credentials !== "kubeconfig" && credentials !== "service-account") {
  console.error(`--credentials must be kubeconfig or service-account, got '${credentials}'`);
  Deno.exit(2);
}
const serviceAccount = credentials === "service-account";
if (serviceAccount && !readyz) {
  console.error("--credentials=service-account needs --health-check=readyz (in a pod the API server is the upstream)");
  Deno.exit(2);
}
if (serviceAccount && Deno.uid() !== 0) {
  console.error("--credentials=service-account needs root: each run mounts the token's directory in a namespace");
  Deno.exit(2);
}
/** Where the kubelet mounts a pod's service-account files (the program reads this path, no other). */
const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
/** Runs the rest of its arguments in a mount namespace where `$1` is mounted at the service-account path. */
const IN_POD_SHAPE = `set -e; mount -t tmpfs -o size=1m tmpfs /var/run; mkdir -p ${SERVICE_ACCOUNT_DIR}; ` +
  `mount --bind "$1" ${SERVICE_ACCOUNT_DIR}; shift; exec "$@"`;
/** How close to discovery off the figures with discovery on must be. */
const TARGET_MIB = 3;
/** Connections of the busy measurement, and what each sends per round trip. */
const CONNECTIONS = 32;
const MESSAGE = new Uint8Array(2048).fill(120);

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = l.addr.port;
  l.close();
  return p;
}

async function upstreams(port: number): Promise<{ address: string; state: string }[]> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/upstreams`);
    return (await r.json()).upstreams;
  } catch {
    return [];
  }
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One connection through the proxy: send a message, read it all back, again, until `until` (ms, performance.now). */
async function pingPong(port: number, until: number): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const buf = new Uint8Array(MESSAGE.length);
  let rounds = 0;
  try {
    while (performance.now() < until) {
      await conn.write(MESSAGE);
      let got = 0;
      while (got < MESSAGE.length) {
        const n = await conn.read(buf.subarray(got));
        if (n === null) throw new Error("The proxy closed a busy connection");
        got += n;
      }
      rounds++;
    }
  } finally {
    conn.close();
  }
  return rounds;
}

interface Run {
  idleMiB: number;
  idleAnonMiB: number;
  busyPeakMiB: number;
  roundTrips: number;
  firstDiscoveredMs: number | undefined;
}

async function once(
  discovery: boolean,
  env: {
    kubeconfig: string;
    saDir: string;
    staticPort: number;
    discoveredKey: string;
    api: FakeApiServer;
    caPath: string;
    stateFile: string;
  },
): Promise<Run> {
  const start = startCommand();
  const bind = freePort();
  const health = freePort();
  const args = [
    ...start.args.slice(0, -1),
    "main.ts",
    `--endpoints=127.0.0.1:${env.staticPort}`,
    `--bind-port=${bind}`,
    `--health-port=${health}`,
    ...(readyz ? ["--health-check=readyz", `--health-ca-file=${env.caPath}`] : ["--health-check=tcp"]),
    "--log-level=error",
    `--enable-discovery=${discovery}`,
    // As the chart, the DaemonSet, the static pod and the systemd unit ship it: discovery keeps what it found for the
    // next start. One file for every run, as a node's restarts find it (discovery off ignores it).
    `--state-file=${env.stateFile}`,
    ...(serviceAccount ? [] : [`--kubeconfig=${env.kubeconfig}`]),
  ];
  const watchesBefore = env.api.openWatches;
  const t0 = performance.now();
  const child = new Deno.Command(serviceAccount ? "unshare" : start.command, {
    args: serviceAccount
      ? ["-m", "--propagation=private", "sh", "-c", IN_POD_SHAPE, "sh", env.saDir, start.command, ...args]
      : args,
    cwd: new URL("../", import.meta.url),
    env: start.env,
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    let firstDiscoveredMs: number | undefined;
    const deadline = t0 + 10_000;
    for (;;) {
      if (performance.now() > deadline) throw new Error(`The proxy (discovery ${discovery}) was not ready in 10 s`);
      const ups = await upstreams(health);
      if ((!discovery || readyz) && ups.some((u) => u.state === "healthy")) break;
      if (discovery && ups.some((u) => u.address === env.discoveredKey && u.state === "healthy")) {
        firstDiscoveredMs = performance.now() - t0;
        break;
      }
      await delay(5);
    }
    if (discovery && env.api.openWatches <= watchesBefore) await env.api.waitForOpenWatches(watchesBefore + 1, 10_000);
    await delay(3000); // idle: the start-up garbage collected, the watch open
    const idleMiB = treeRssKiB(child.pid) / 1024;
    const idleAnonMiB = treeRssAnonKiB(child.pid) / 1024;
    if (readyz) return { idleMiB, idleAnonMiB, busyPeakMiB: NaN, roundTrips: NaN, firstDiscoveredMs };
    using rss = new RssSampler(child.pid);
    const until = performance.now() + seconds * 1000;
    const rounds = await Promise.all(Array.from({ length: CONNECTIONS }, () => pingPong(bind, until)));
    return {
      idleMiB,
      idleAnonMiB,
      busyPeakMiB: rss.peakKiB / 1024,
      roundTrips: rounds.reduce((a, b) => a + b, 0),
      firstDiscoveredMs,
    };
  } finally {
    child.kill("SIGTERM");
    await child.status;
  }
}

await using pki = await createTestPki();
// With readyz, the probe verifies the API server as kubernetes.default.svc, and so does discovery.
await using api = await startFakeApiServer({ pki, serverCert: readyz ? "dns" : "ip", tokens: ["bench"] });
await using staticUp = new EchoServer();
await using discovered = new EchoServer(0, "127.0.0.2");
api.upsert(
  readyz
    ? endpointSlice("kubernetes", ["127.0.0.1"], api.port)
    : endpointSlice("kubernetes", ["127.0.0.2"], discovered.port),
);
const dir = await Deno.makeTempDir();
const kubeconfig = `${dir}/kubeconfig`;
const saDir = `${dir}/serviceaccount`;
await Deno.mkdir(saDir);
await Deno.writeTextFile(`${saDir}/token`, "bench");
await Deno.writeTextFile(`${saDir}/ca.crt`, pki.ca.cert);
await Deno.writeTextFile(`${saDir}/namespace`, "kube-system");
await Deno.writeTextFile(
  kubeconfig,
  kubectlKubeconfig({
    server: api.url,
    caPem: pki.ca.cert,
    ...(readyz ? { tlsServerName: "kubernetes.default.svc" } : {}),
    token: "bench",
  }),
);
try {
  const env = {
    kubeconfig,
    saDir,
    api,
    stateFile: `${dir}/endpoints.json`,
    ...(readyz
      ? { staticPort: api.port, discoveredKey: `127.0.0.1:${api.port}`, caPath: pki.ca.certPath }
      : { staticPort: staticUp.port, discoveredKey: `127.0.0.2:${discovered.port}`, caPath: "" }),
  };
  // The first run of each variant in a fresh checkout transpiles its modules and fills V8's code cache, and stays
  // larger than the runs after it (bench/run.ts does the same): one of each first, not measured.
  await once(false, env);
  await once(true, env);
  console.error("warm-up runs done (not measured)");
  const on: Run[] = [];
  const off: Run[] = [];
  for (let i = 0; i < runs; i++) {
    off.push(await once(false, env));
    on.push(await once(true, env));
    console.error(`run ${i + 1}/${runs} done`);
  }
  const med = (rs: Run[], f: (r: Run) => number | undefined) => median(rs.map((r) => f(r) ?? NaN));
  const show = (v: number, digits: number) => (Number.isFinite(v) ? v.toFixed(digits) : "—");
  const row = (label: string, f: (r: Run) => number | undefined, digits = 1) =>
    `| ${label} | ${show(med(off, f), digits)} | ${show(med(on, f), digits)} |`;
  console.log(
    `Medians of ${runs} runs each, after one unmeasured run of each; --health-check=${healthCheck}; ` +
      `--credentials=${credentials}` +
      (readyz
        ? " (busy connections not measured)"
        : `; ${CONNECTIONS} connections ping-ponging ${MESSAGE.length} bytes, ${seconds} s`),
  );
  console.log("");
  console.log(`| | discovery off | discovery on (${serviceAccount ? "service account" : "kubeconfig"}, watch open) |`);
  console.log("|---|---:|---:|");
  console.log(row("idle RSS (MiB)", (r) => r.idleMiB));
  console.log(row("  of which anonymous (MiB)", (r) => r.idleAnonMiB));
  console.log(row(`peak RSS, ${CONNECTIONS} busy connections (MiB)`, (r) => r.busyPeakMiB));
  console.log(row("round trips in the busy run", (r) => r.roundTrips, 0));
  console.log(row("process start → first discovered upstream healthy (ms)", (r) => r.firstDiscoveredMs, 0));
  console.log("");
  // The verdicts below compare medians; how far single runs spread tells how much a verdict near the line means.
  const spread = (rs: Run[], f: (r: Run) => number) => {
    const xs = rs.map(f).filter(Number.isFinite);
    return xs.length === 0 ? "—" : `${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)}`;
  };
  console.log(
    `Spread over ${runs} runs, idle RSS (MiB): off ${spread(off, (r) => r.idleMiB)}, on ${
      spread(on, (r) => r.idleMiB)
    }` +
      `; on − off, run by run: ${on.map((r, i) => (r.idleMiB - off[i]!.idleMiB).toFixed(1)).join(", ")}`,
  );
  console.log("");
  for (
    const [name, f] of [
      ["idle RSS", (r: Run) => r.idleMiB],
      [`peak RSS at ${CONNECTIONS} connections`, (r: Run) => r.busyPeakMiB],
    ] as const
  ) {
    if (readyz && name !== "idle RSS") continue;
    const a = med(on, f), b = med(off, f);
    const pass = a - b <= TARGET_MIB;
    console.log(
      `${pass ? "PASS" : "FAIL"} ${name} with discovery on ≤ off + ${TARGET_MIB} MiB: ${a.toFixed(1)} vs ` +
        `${b.toFixed(1)} MiB = ${a - b >= 0 ? "+" : ""}${(a - b).toFixed(1)} MiB`,
    );
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}
