/**
 * What the readyz probe's TLS costs, per TLS path of the probe: Deno's own TLS (a CA, no client certificate),
 * `node:tls` without a CA (no verification) and `node:tls` with a client certificate.
 *
 * - `probe`: in a fresh process per sample (the first probe is the one that initialises TLS), with the start task's
 *   V8 flags: how long the first probe holds the event loop (the longest gap of a 1 ms `setInterval` while it runs),
 *   its duration, the same for the second probe, and the RSS (anonymous and file-backed) and heap it adds.
 * - `proxy`: the real program (`deno task start`'s command) probing one upstream with each path, plus
 *   `--health-check=tcp`: VmRSS and RssAnon 2 s after its upstream turned healthy.
 *
 * The upstream is `tests/support/_readyz_tls_server.ts` in its own process, so its work is not counted. Not part of
 * the tests; loopback only; bounded.
 *
 * ```sh
 * deno run -A bench/probe_tls.ts                         # 5 rounds of both, interleaved; medians (max)
 * deno run -A bench/probe_tls.ts --rounds=9 --only=probe
 * ```
 *
 * @module
 */
import { ReadyzProbe, type ReadyzProbeOptions } from "../lib/upstream/probe_readyz.ts";
import { createTestPki, type TestPki } from "../tests/support/test_pki.ts";
import { startCommand } from "../tests/support/main_process.ts";

/** The probe's TLS paths, named as in the report. */
const PATHS = ["deno-tls (CA)", "node:tls (no CA)", "node:tls (client cert)"] as const;
type PathName = typeof PATHS[number];

/** One fresh process's figures. */
export interface ProbeSample {
  readonly ok: boolean;
  /** Longest gap between two 1 ms ticks during the first probe, minus the 1 ms period. */
  readonly firstLagMs: number;
  readonly firstProbeMs: number;
  /** The same for the second probe (the connection is kept alive: a request, no handshake). */
  readonly secondLagMs: number;
  readonly before: Memory;
  readonly after: Memory;
}

/** Resident memory in KiB: total, anonymous, file-backed; and the V8 heap in use. */
interface Memory {
  readonly rss: number;
  readonly anon: number;
  readonly file: number;
  readonly heap: number;
}

function memory(pid: number | "self" = "self"): Memory {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kib = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
  return {
    rss: kib("VmRSS"),
    anon: kib("RssAnon"),
    file: kib("RssFile"),
    heap: pid === "self" ? Math.round(Deno.memoryUsage().heapUsed / 1024) : NaN,
  };
}

/** Runs `f` while a 1 ms interval ticks; returns `f`'s value and the longest gap between ticks minus the period. */
async function withLagMonitor<T>(f: () => Promise<T>): Promise<{ value: T; lagMs: number; ms: number }> {
  let last = performance.now();
  let worst = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last - 1);
    last = now;
  }, 1);
  // A few ticks first, so that the monitor's own start is not counted.
  await new Promise((r) => setTimeout(r, 20));
  worst = 0;
  const t0 = performance.now();
  const value = await f();
  const ms = performance.now() - t0;
  // The gap that ends with the probe is seen by the next tick.
  await new Promise((r) => setTimeout(r, 5));
  clearInterval(timer);
  return { value, lagMs: worst, ms };
}

function probeOptions(path: PathName, pkiDir: string): ReadyzProbeOptions {
  const read = (name: string) => Deno.readTextFileSync(`${pkiDir}/${name}`);
  if (path === "deno-tls (CA)") return { ca: read("ca.crt") };
  if (path === "node:tls (client cert)") {
    return { ca: read("ca.crt"), cert: read("client.crt"), key: read("client.key") };
  }
  return {};
}

async function probeChild(path: PathName, port: number, pkiDir: string): Promise<ProbeSample> {
  const probe = new ReadyzProbe(probeOptions(path, pkiDir));
  const endpoint = { host: "127.0.0.1", port };
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const before = memory();
  const first = await withLagMonitor(() => probe.check(endpoint, AbortSignal.timeout(5000)));
  const second = await withLagMonitor(() => probe.check(endpoint, AbortSignal.timeout(5000)));
  gc?.();
  const after = memory();
  probe.release(endpoint);
  return {
    ok: first.value.ok && second.value.ok,
    firstLagMs: first.lagMs,
    firstProbeMs: first.ms,
    secondLagMs: second.lagMs,
    before,
    after,
  };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

const fmt = (xs: number[], digits = 1) => `${median(xs).toFixed(digits)} (${Math.max(...xs).toFixed(digits)})`;
const mib = (kib: number) => kib / 1024;

async function probeSection(rounds: number, port: number, pki: TestPki): Promise<void> {
  const start = startCommand();
  const v8 = start.args.find((a) => a.startsWith("--v8-flags="));
  const results = new Map<PathName, ProbeSample[]>(PATHS.map((p) => [p, []]));
  for (let round = 0; round < rounds; round++) {
    for (const path of PATHS) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-q",
          "-A",
          v8 === undefined ? "--v8-flags=--expose-gc" : `${v8},--expose-gc`,
          new URL(import.meta.url).pathname,
          "--child",
          path,
          String(port),
          pki.dir,
        ],
        env: start.env,
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(30_000),
      }).output();
      if (!out.success) throw new Error(`The ${path} sample failed: ${new TextDecoder().decode(out.stderr)}`);
      results.get(path)!.push(JSON.parse(new TextDecoder().decode(out.stdout)) as ProbeSample);
    }
  }
  console.log(`\nFirst probe, ${rounds} fresh processes per path, interleaved; ${loadAverage()}; medians (max)`);
  console.log(
    "| path | event loop held, first probe (ms) | first probe (ms) | held, second probe (ms) | RSS added (MiB) | " +
      "of which anonymous | file-backed | heap added (MiB) | ok |",
  );
  console.log("|---|---:|---:|---:|---:|---:|---:|---:|---|");
  for (const [path, s] of results) {
    const added = (k: keyof Memory) => s.map((x) => mib(x.after[k] - x.before[k]));
    console.log(
      `| ${path} | ${fmt(s.map((x) => x.firstLagMs))} | ${fmt(s.map((x) => x.firstProbeMs))} | ` +
        `${fmt(s.map((x) => x.secondLagMs))} | ${fmt(added("rss"))} | ${fmt(added("anon"))} | ${
          fmt(added("file"))
        } | ` +
        `${fmt(added("heap"))} | ${s.every((x) => x.ok)} |`,
    );
  }
}

/** The proxy's flags for each probe path (and the TCP probe, which loads no TLS at all). */
function proxyFlags(path: PathName | "tcp", pki: TestPki): string[] {
  if (path === "tcp") return ["--health-check=tcp"];
  if (path === "deno-tls (CA)") return [`--health-ca-file=${pki.ca.certPath}`];
  if (path === "node:tls (client cert)") {
    return [
      `--health-ca-file=${pki.ca.certPath}`,
      `--health-client-cert=${pki.client.certPath}`,
      `--health-client-key=${pki.client.keyPath}`,
    ];
  }
  return [];
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = l.addr.port;
  l.close();
  return p;
}

/** Starts the program probing `port`, waits until the upstream is healthy, then 2 s; returns its memory. */
async function proxyOnce(path: PathName | "tcp", port: number, pki: TestPki): Promise<Memory> {
  const start = startCommand();
  const health = freePort();
  const child = new Deno.Command(start.command, {
    args: [
      ...start.args,
      `--endpoints=127.0.0.1:${port}`,
      `--bind-port=${freePort()}`,
      `--health-port=${health}`,
      "--enable-discovery=false",
      "--log-level=error",
      ...proxyFlags(path, pki),
    ],
    cwd: new URL("../", import.meta.url),
    env: start.env,
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    const deadline = performance.now() + 15_000;
    for (;;) {
      if (performance.now() > deadline) throw new Error(`The proxy (${path}) did not see its upstream healthy in 15 s`);
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

async function proxySection(rounds: number, port: number, pki: TestPki): Promise<void> {
  const kinds = [...PATHS, "tcp"] as const;
  const results = new Map<string, Memory[]>(kinds.map((k) => [k, []]));
  for (let round = 0; round < rounds; round++) {
    for (const kind of kinds) results.get(kind)!.push(await proxyOnce(kind, port, pki));
  }
  console.log(
    `\nThe program, idle 2 s after its upstream turned healthy; ${rounds} runs each, interleaved; ` +
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

function loadAverage(): string {
  return `load average ${Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ")} (2 cores)`;
}

async function main(rounds: number, only: readonly string[]): Promise<void> {
  // The child reads ca.crt, client.crt and client.key from the PKI's directory; the server certificate names only
  // kubernetes* (verified as kubernetes.default.svc, the probe's default).
  await using pki = await createTestPki();
  const server = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-q",
      "--allow-net=127.0.0.1",
      `--allow-read=${pki.dir}`,
      new URL("../tests/support/_readyz_tls_server.ts", import.meta.url).pathname,
      pki.serverDns.certPath,
      pki.serverDns.keyPath,
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  try {
    const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    const timer = setTimeout(() => server.kill(), 10_000);
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("The readyz server exited (or took 10 s) before printing its port");
      text += value;
    }
    clearTimeout(timer);
    reader.releaseLock();
    server.stdout.cancel().catch(() => {});
    const port = Number(text.trim().split("\n")[0]);
    if (only.includes("probe")) await probeSection(rounds, port, pki);
    if (only.includes("proxy")) await proxySection(rounds, port, pki);
  } finally {
    server.kill();
    await server.status;
  }
}

if (import.meta.main) {
  if (Deno.args[0] === "--child") {
    const [, path, port, dir] = Deno.args;
    console.log(JSON.stringify(await probeChild(path as PathName, Number(port), dir as string)));
  } else {
    const rounds = Number(Deno.args.find((a) => a.startsWith("--rounds="))?.slice(9) ?? "5");
    if (!Number.isInteger(rounds) || rounds < 1 || rounds > 50) throw new Error("--rounds: expected 1 to 50");
    const only = (Deno.args.find((a) => a.startsWith("--only="))?.slice(7) ?? "probe,proxy").split(",");
    await main(rounds, only);
  }
}
