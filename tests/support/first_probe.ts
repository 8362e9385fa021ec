/**
 * The first readyz probe of a fresh process, observed from inside it: how long it holds the event loop (the longest
 * gap of a 1 ms `setInterval` while it runs), the RSS and heap it adds, and whether `node:tls` got loaded (the V8
 * inspector's list of parsed scripts). The probe is built as the program builds it ({@linkcode buildProbe}), for each
 * TLS path. Used by `tests/probe_first_test.ts`, `tests/layout_test.ts` and `bench/probe_tls.ts`; the upstream is
 * `_readyz_tls_server.ts` in its own process, so that its work is not counted.
 *
 * Run as a child: `deno run -A [--v8-flags=--expose-gc] first_probe.ts <path> <port> <pki dir>` prints one JSON
 * {@linkcode ProbeSample}.
 *
 * @module
 */
import { readKubeconfigCa } from "../../lib/discovery/kubeconfig_ca.ts";
import { buildProbe, type CaSources } from "../../lib/upstream/build_probe.ts";
import { testConfig } from "./net.ts";
import type { TestPki } from "./test_pki.ts";

/** The probe's TLS paths: what the configuration gives it. */
export const PROBE_PATHS = [
  "deno-tls (CA)",
  "deno-tls (kubeconfig CA)",
  "node:tls (no CA)",
  "deno-tls (client cert)",
] as const;
/** One of {@linkcode PROBE_PATHS}. */
export type ProbePath = typeof PROBE_PATHS[number];

/** Resident memory in KiB: total, anonymous, file-backed; and the V8 heap in use. */
export interface Memory {
  readonly rss: number;
  readonly anon: number;
  readonly file: number;
  readonly heap: number;
}

/** One fresh process's figures. */
export interface ProbeSample {
  /** Both probes answered 200 (verified, where the path verifies). */
  readonly ok: boolean;
  /** Longest gap between two 1 ms ticks during the first probe, minus the 1 ms period. */
  readonly firstLagMs: number;
  /**
   * CPU time of the main thread (the event loop's) during the first probe: unlike the gap, the machine's load does not
   * add to it.
   */
  readonly firstMainCpuMs: number;
  readonly firstProbeMs: number;
  /** The same for the second probe (the connection is kept alive: a request, no handshake). */
  readonly secondLagMs: number;
  readonly before: Memory;
  readonly after: Memory;
  /** Whether the process loaded `node:tls` by the end. */
  readonly nodeTlsLoaded: boolean;
}

/** This process's memory, or another's (without its heap). */
export function memory(pid: number | "self" = "self"): Memory {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kib = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
  return {
    rss: kib("VmRSS"),
    anon: kib("RssAnon"),
    file: kib("RssFile"),
    heap: pid === "self" ? Math.round(Deno.memoryUsage().heapUsed / 1024) : NaN,
  };
}

/** CPU time the main thread (the event loop's, whose id is the process id) has used, in milliseconds. */
function mainThreadCpuMs(): number {
  return Number(Deno.readTextFileSync(`/proc/self/task/${Deno.pid}/schedstat`).split(" ")[0]) / 1e6;
}

/**
 * Runs `f` while a 1 ms interval ticks; returns `f`'s value, the longest gap between ticks minus the period, and the
 * main thread's CPU time meanwhile.
 */
async function withLagMonitor<T>(f: () => Promise<T>): Promise<{ value: T; lagMs: number; cpuMs: number; ms: number }> {
  let last = performance.now();
  let worst = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last - 1);
    last = now;
  }, 1);
  try {
    // A few ticks first, so that the monitor's own start is not counted.
    await new Promise((r) => setTimeout(r, 20));
    worst = 0;
    const cpu0 = mainThreadCpuMs();
    const t0 = performance.now();
    const value = await f();
    const ms = performance.now() - t0;
    const cpuMs = mainThreadCpuMs() - cpu0;
    // The gap that ends with the probe is seen by the next tick.
    await new Promise((r) => setTimeout(r, 5));
    return { value, lagMs: worst, cpuMs, ms };
  } finally {
    clearInterval(timer);
  }
}

/** The URLs of every script V8 has parsed in this process (`node:tls` among them once it is loaded). */
async function parsedScripts(): Promise<string[]> {
  const { Session } = await import("node:inspector");
  const session = new Session();
  session.connect();
  const urls: string[] = [];
  session.on("Debugger.scriptParsed", (m: { params: { url: string } }) => urls.push(m.params.url));
  await new Promise<void>((resolve) => session.post("Debugger.enable", () => resolve()));
  session.disconnect();
  return urls;
}

async function kubeconfigWithCa(dir: string): Promise<string> {
  const path = `${dir}/first_probe.kubeconfig`;
  await Deno.writeTextFile(
    path,
    `clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443", certificate-authority: ca.crt}}]
users: [{name: u, user: {}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`,
  );
  return path;
}

/** The first two probes of `127.0.0.1:port` in this process, on `path`; `pkiDir` holds a {@linkcode TestPki}. */
export async function sampleFirstProbe(path: ProbePath, port: number, pkiDir: string): Promise<ProbeSample> {
  const sources: CaSources = {
    serviceAccountCa: `${pkiDir}/no-service-account/ca.crt`,
    ...(path === "deno-tls (kubeconfig CA)"
      ? { kubeconfigCa: async () => readKubeconfigCa(await kubeconfigWithCa(pkiDir)) }
      : {}),
  };
  const probe = buildProbe(
    testConfig([], {
      healthCheck: "readyz",
      ...(path === "deno-tls (CA)" || path === "deno-tls (client cert)" ? { healthCaFile: `${pkiDir}/ca.crt` } : {}),
      ...(path === "deno-tls (client cert)"
        ? { healthClientCert: `${pkiDir}/client.crt`, healthClientKey: `${pkiDir}/client.key` }
        : {}),
    }),
    sources,
  );
  const endpoint = { host: "127.0.0.1", port };
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const before = memory();
  // As the check loop does: preparation first, outside the probe's timeout; its time is in the figures all the same.
  const first = await withLagMonitor(async () => {
    await probe.prepare?.();
    return await probe.check(endpoint, AbortSignal.timeout(5000));
  });
  const second = await withLagMonitor(() => probe.check(endpoint, AbortSignal.timeout(5000)));
  gc?.();
  const after = memory();
  probe.release?.(endpoint);
  return {
    ok: first.value.ok && second.value.ok,
    firstLagMs: first.lagMs,
    firstMainCpuMs: first.cpuMs,
    firstProbeMs: first.ms,
    secondLagMs: second.lagMs,
    before,
    after,
    nodeTlsLoaded: (await parsedScripts()).includes("node:tls"),
  };
}

/** Runs {@linkcode sampleFirstProbe} in a fresh `deno` process with `v8Flags` (e.g. the start task's). */
export async function sampleInChild(
  path: ProbePath,
  port: number,
  pki: TestPki,
  v8Flags: readonly string[] = [],
  env: Readonly<Record<string, string>> = {},
): Promise<ProbeSample> {
  const flags = [...v8Flags, "--expose-gc"];
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-q",
      "-A",
      `--v8-flags=${flags.join(",")}`,
      new URL(import.meta.url).pathname,
      path,
      `${port}`,
      pki.dir,
    ],
    env,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  if (!out.success) throw new Error(`The ${path} sample failed: ${new TextDecoder().decode(out.stderr)}`);
  return JSON.parse(new TextDecoder().decode(out.stdout)) as ProbeSample;
}

/** `_readyz_tls_server.ts` in its own process with the PKI's `kubernetes*`-only certificate; dispose to stop it. */
export async function startReadyzServer(pki: TestPki): Promise<{ readonly port: number } & AsyncDisposable> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-q",
      "--allow-net=127.0.0.1",
      `--allow-read=${pki.dir}`,
      new URL("./_readyz_tls_server.ts", import.meta.url).pathname,
      pki.serverDns.certPath,
      pki.serverDns.keyPath,
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const stop = async () => {
    try {
      child.kill();
    } catch { /* exited */ }
    await child.status;
  };
  const timer = setTimeout(() => stop(), 30_000);
  try {
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("The readyz server exited (or took 30 s) before printing its port");
      text += value;
    }
    await reader.cancel();
    return { port: Number(text.trim()), [Symbol.asyncDispose]: stop };
  } catch (e) {
    await stop();
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

if (import.meta.main) {
  const [path, port, dir] = Deno.args;
  if (!PROBE_PATHS.includes(path as ProbePath) || dir === undefined) {
    throw new Error(`usage: first_probe.ts <${PROBE_PATHS.join("|")}> <port> <pki dir>`);
  }
  console.log(JSON.stringify(await sampleFirstProbe(path as ProbePath, Number(port), dir)));
}
