/**
 * What the readyz probe's TLS costs, per TLS path of the probe: Deno's own TLS (a CA from `--health-ca-file`, or from
 * the kubeconfig), `node:tls` without a CA (no verification) and `node:tls` with a client certificate.
 *
 * - `probe`: in a fresh process per sample (the first probe is the one that initialises TLS), with the start task's
 *   V8 flags (`tests/support/first_probe.ts`): how long the first probe holds the event loop (the longest gap of a
 *   1 ms `setInterval` while it runs), its duration, the same for the second probe, the RSS (anonymous and
 *   file-backed) and heap it adds, and whether `node:tls` was loaded.
 * - `proxy`: the real program (`deno task start`'s command) probing one upstream with each path, plus
 *   `--health-check=tcp`: VmRSS, RssAnon and RssFile 2 s after its upstream turned healthy. The kubeconfig path runs
 *   with discovery on (towards a closed loopback port), the others with discovery off.
 * - `startup`: the real program again: from its spawn to the first HTTPS response relayed through it (connect →
 *   request, looped every millisecond), with a CA, without one, and with `--health-check=tcp`.
 *
 * The upstream is `tests/support/_readyz_tls_server.ts` in its own process, so its work is not counted. Not part of
 * the tests; loopback only; bounded.
 *
 * ```sh
 * deno run -A bench/probe_tls.ts                         # 5 rounds of each section, interleaved; medians (max)
 * deno run -A bench/probe_tls.ts --rounds=9 --only=probe
 * deno run -A bench/probe_tls.ts --only=proxy --repo=/tmp/before   # the program of another checkout (before/after)
 * ```
 *
 * @module
 */
import {
  type Memory,
  memory,
  PROBE_PATHS,
  type ProbePath,
  type ProbeSample,
  sampleInChild,
  startReadyzServer,
} from "../tests/support/first_probe.ts";
import { startCommand } from "../tests/support/main_process.ts";
import { createTestPki, type TestPki } from "../tests/support/test_pki.ts";

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

const fmt = (xs: number[], digits = 1) => `${median(xs).toFixed(digits)} (${Math.max(...xs).toFixed(digits)})`;
const mib = (kib: number) => kib / 1024;

async function probeSection(rounds: number, port: number, pki: TestPki): Promise<void> {
  const start = startCommand();
  const v8 = start.args.find((a) => a.startsWith("--v8-flags="))?.slice("--v8-flags=".length).split(",") ?? [];
  const results = new Map<ProbePath, ProbeSample[]>(PROBE_PATHS.map((p) => [p, []]));
  for (let round = 0; round < rounds; round++) {
    for (const path of PROBE_PATHS) results.get(path)!.push(await sampleInChild(path, port, pki, v8, start.env));
  }
  console.log(`\nFirst probe, ${rounds} fresh processes per path, interleaved; ${loadAverage()}; medians (max)`);
  console.log(
    "| path | event loop held, first probe (ms) | main thread CPU, first probe (ms) | first probe (ms) | " +
      "held, second probe (ms) | RSS added (MiB) | " +
      "of which anonymous | file-backed | heap added (MiB) | node:tls loaded | ok |",
  );
  console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|");
  for (const [path, s] of results) {
    const added = (k: keyof Memory) => s.map((x) => mib(x.after[k] - x.before[k]));
    console.log(
      `| ${path} | ${fmt(s.map((x) => x.firstLagMs))} | ${fmt(s.map((x) => x.firstMainCpuMs))} | ` +
        `${fmt(s.map((x) => x.firstProbeMs))} | ` +
        `${fmt(s.map((x) => x.secondLagMs))} | ${fmt(added("rss"))} | ${fmt(added("anon"))} | ${
          fmt(added("file"))
        } | ` +
        `${fmt(added("heap"))} | ${[...new Set(s.map((x) => x.nodeTlsLoaded))].join("/")} | ${s.every((x) => x.ok)} |`,
    );
  }
}

const PROXY_KINDS = [...PROBE_PATHS, "tcp"] as const;
type ProxyKind = typeof PROXY_KINDS[number];

/** The program's flags for each probe path (and the TCP probe, which loads no TLS at all). */
async function proxyFlags(kind: ProxyKind, pki: TestPki): Promise<string[]> {
  switch (kind) {
    case "tcp":
      return ["--health-check=tcp"];
    case "deno-tls (CA)":
      return [`--health-ca-file=${pki.ca.certPath}`];
    case "deno-tls (kubeconfig CA)": {
      // Discovery on (the kubeconfig is read only then), towards a closed loopback port: it retries with backoff.
      const path = `${pki.dir}/bench.kubeconfig`;
      await Deno.writeTextFile(
        path,
        `clusters: [{name: c, cluster: {server: "https://127.0.0.1:${freePort()}", certificate-authority: ca.crt}}]
users: [{name: u, user: {}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`,
      );
      return ["--enable-discovery=true", `--kubeconfig=${path}`];
    }
    case "deno-tls (client cert)":
      return [
        `--health-ca-file=${pki.ca.certPath}`,
        `--health-client-cert=${pki.client.certPath}`,
        `--health-client-key=${pki.client.keyPath}`,
      ];
    case "node:tls (no CA)":
      return [];
  }
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = l.addr.port;
  l.close();
  return p;
}

/** The program (the start task's command line) probing `port` with the probe's `flags`, output discarded. */
function spawnProgram(
  flags: readonly string[],
  port: number,
  repo: URL,
  ports: { bind: number; health: number },
): Deno.ChildProcess {
  const start = startCommand();
  return new Deno.Command(start.command, {
    args: [
      ...start.args,
      `--endpoints=127.0.0.1:${port}`,
      `--bind-port=${ports.bind}`,
      `--health-port=${ports.health}`,
      "--log-level=error",
      ...flags,
      ...(flags.includes("--enable-discovery=true") ? [] : ["--enable-discovery=false"]),
    ],
    cwd: repo,
    env: start.env,
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/** Starts the program probing `port`, waits until the upstream is healthy, then 2 s; returns its memory. */
async function proxyOnce(kind: ProxyKind, port: number, pki: TestPki, repo: URL): Promise<Memory> {
  const health = freePort();
  const child = spawnProgram(await proxyFlags(kind, pki), port, repo, { bind: freePort(), health });
  try {
    const deadline = performance.now() + 15_000;
    for (;;) {
      if (performance.now() > deadline) {
        throw new Error(`The program (${kind}) did not see its upstream healthy in 15 s`);
      }
      const r = await fetch(`http://127.0.0.1:${health}/upstreams`).then((r) => r.json(), () => undefined);
      if (r?.upstreams?.[0]?.state === "healthy") break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 2000));
    return memory(child.pid);
  } finally {
    child.kill();
    await child.status;
  }
}

async function proxySection(rounds: number, port: number, pki: TestPki, repo: URL): Promise<void> {
  const results = new Map<ProxyKind, Memory[]>(PROXY_KINDS.map((k) => [k, []]));
  for (let round = 0; round < rounds; round++) {
    for (const kind of PROXY_KINDS) results.get(kind)!.push(await proxyOnce(kind, port, pki, repo));
  }
  console.log(
    `\nThe program (${repo.pathname}), idle 2 s after its upstream turned healthy; ${rounds} runs each, interleaved; ` +
      `${loadAverage()}; medians (max)`,
  );
  console.log("| probe | VmRSS (MiB) | RssAnon (MiB) | RssFile (MiB) |");
  console.log("|---|---:|---:|---:|");
  for (const [kind, m] of results) {
    const label = kind === "tcp" ? "--health-check=tcp" : `readyz, ${kind}`;
    console.log(
      `| ${label} | ${fmt(m.map((x) => mib(x.rss)))} | ${fmt(m.map((x) => mib(x.anon)))} | ` +
        `${fmt(m.map((x) => mib(x.file)))} |`,
    );
  }
}

/** One HTTPS `GET /readyz` through the proxy on `port`, verified as `kubernetes.default.svc`; true on a 200. */
async function requestThrough(port: number, ca: string): Promise<boolean> {
  let conn: Deno.Conn | undefined;
  const timer = setTimeout(() => conn?.close(), 2000);
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn = await Deno.startTls(conn as Deno.TcpConn, { hostname: "kubernetes.default.svc", caCerts: [ca] });
    await conn.write(new TextEncoder().encode("GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    const buf = new Uint8Array(4096);
    const n = await conn.read(buf);
    return n !== null && new TextDecoder().decode(buf.subarray(0, n)).startsWith("HTTP/1.1 200");
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch { /* closed */ }
  }
}

/** Milliseconds from spawning the program to the first response relayed through it (connect → request, looped). */
async function startupOnce(kind: ProxyKind, port: number, pki: TestPki, repo: URL): Promise<number> {
  const bind = freePort();
  const flags = await proxyFlags(kind, pki);
  const t0 = performance.now();
  const child = spawnProgram(flags, port, repo, { bind, health: freePort() });
  try {
    while (performance.now() - t0 < 15_000) {
      if (await requestThrough(bind, pki.ca.cert)) return performance.now() - t0;
      await new Promise((r) => setTimeout(r, 1));
    }
    throw new Error(`The program (${kind}) relayed no response within 15 s`);
  } finally {
    child.kill();
    await child.status;
  }
}

async function startupSection(rounds: number, port: number, pki: TestPki, repo: URL): Promise<void> {
  const kinds = ["deno-tls (CA)", "node:tls (no CA)", "tcp"] as const;
  const results = new Map<ProxyKind, number[]>(kinds.map((k) => [k, []]));
  // This process's own first TLS connection is made before any timing.
  await requestThrough(port, pki.ca.cert);
  for (let round = 0; round <= rounds; round++) {
    for (const kind of kinds) {
      const ms = await startupOnce(kind, port, pki, repo);
      if (round > 0) results.get(kind)!.push(ms);
    }
  }
  console.log(
    `\nThe program (${repo.pathname}): start → first relayed HTTPS response; ${rounds} runs each after one ` +
      `uncounted, interleaved; ${loadAverage()}; medians (max)`,
  );
  console.log("| probe | start → first relayed response (ms) | runs (ms) |");
  console.log("|---|---:|---|");
  for (const [kind, ms] of results) {
    const label = kind === "tcp" ? "--health-check=tcp" : `readyz, ${kind}`;
    console.log(`| ${label} | ${fmt(ms)} | ${ms.map((x) => x.toFixed(0)).join(", ")} |`);
  }
}

function loadAverage(): string {
  return `load average ${Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ")} (2 cores)`;
}

if (import.meta.main) {
  const rounds = Number(Deno.args.find((a) => a.startsWith("--rounds="))?.slice(9) ?? "5");
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 50) throw new Error("--rounds: expected 1 to 50");
  const only = (Deno.args.find((a) => a.startsWith("--only="))?.slice(7) ?? "probe,proxy,startup").split(",");
  await using pki = await createTestPki();
  await using server = await startReadyzServer(pki);
  if (only.includes("probe")) await probeSection(rounds, server.port, pki);
  const repoArg = Deno.args.find((a) => a.startsWith("--repo="))?.slice(7);
  const repo = repoArg === undefined
    ? new URL("../", import.meta.url)
    : new URL(`file://${Deno.realPathSync(repoArg)}/`);
  if (only.includes("proxy")) await proxySection(rounds, server.port, pki, repo);
  if (only.includes("startup")) await startupSection(rounds, server.port, pki, repo);
}
