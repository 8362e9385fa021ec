/**
 * The soak run: extractedprism started exactly as `deno task start` does, for a given time, under everything a node
 * throws at it at once, all on loopback:
 *
 * - connection churn: short TLS connections (`GET /` → `200 ok`, close) through the proxy, about 20 a second;
 * - long-lived watch-like streams: four connections with a line each way every second, re-opened every 20-90 s;
 * - discovery changes: the proxy's discovery points (kubeconfig, bearer token) at the project's fake API server,
 *   whose default/kubernetes EndpointSlice changes every 4 s among four loopback backends (127.0.0.2-5, one port),
 *   now and then with an address not ready or no address at all; every 60 s the fake server drops its watch streams;
 * - probe flaps: readyz probes verified against the test CA (`--health-ca-file`, the production path); one
 *   discovered backend toggles its `/readyz` answer every 5 s, another closes and re-opens its listener every 6 s.
 *   The static endpoint (127.0.0.1) stays healthy, so no client connection has a reason to fail.
 *
 * Every few seconds it samples the proxy's `VmRSS`, `RssAnon` (V8 heap, malloc, stacks: the program's file pages
 * left out), split by owner from `/proc/PID/smaps` (`parseSmapsParts`), and open descriptors, and its `/upstreams`.
 * After the run it reports, for the samples after warm-up, the least-squares slope of each series, the growth (median
 * of the last window minus the median of the first window after warm-up, each a sixth of that time, from 1 to 5
 * minutes: robust to a garbage collection more or less at either end), first to last, and the max, next to the error
 * counts (failed client connections and streams, the proxy's error-level log lines). It exits 1 when RSS
 * grew more than `--rss-bar` (1 MiB), when the proxy logged an error or died, 2 on a bad flag. Not part of the tests.
 *
 * Why three minutes of warm-up: under this load the proxy's RSS climbs for its first two to three minutes (measured:
 * about 64 MiB at start, 72 at one minute, 78 at three, 77-79.5 to the end of ten) while V8's committed pages (9.8 to
 * 12 MB), glibc's malloc arena (`[heap]` in `/proc/PID/smaps`, +3.8 MiB) and the binary's code pages reach their
 * working size; V8's live heap after each full collection stays at 8.2-8.8 MiB (`--trace-gc`). A 60 s warm-up counts
 * that ramp as growth (2.7-3.5 MiB in two runs). Longer runs show what is left: a 30-minute run grew 0.1 MiB/min, and
 * heap snapshots traced the live part of it to `Promise.race` against a never-settling promise in a loop.
 *
 * ```sh
 * deno task soak                                # 10 minutes, the first 3 minutes warm-up
 * deno task soak --duration=30m --trace-gc --samples-out=/tmp/soak.jsonl
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { endpointSlice, startFakeApiServer } from "../tests/support/fake_apiserver.ts";
import { freePorts, MainProcess, startCommand } from "../tests/support/main_process.ts";
import { createTestPki } from "../tests/support/test_pki.ts";
import { kubectlKubeconfig } from "../tests/support/kubeconfig_text.ts";
import { backendsOnOnePort, SoakBackend } from "./_soak_backend.ts";
import { churn, clientCounts, type ClientTarget, pause, streams } from "./_soak_load.ts";
import {
  countLogLevels,
  defaultWindowMs,
  heapTrend,
  type LoadCounts,
  parseGcTrace,
  parseProcStatus,
  parseSmapsParts,
  parseSoakDuration,
  renderCounts,
  renderTrends,
  type Sample,
  trends,
  verdict,
} from "./_soak_stats.ts";
import { parseCount } from "./_process.ts";

const HELP = `Usage: deno task soak [options]

Runs extractedprism (deno.json's start task) under connection churn, long-lived streams, discovery changes and
probe flaps, all on loopback, and reports the trend of its RSS, anonymous RSS and open descriptors after warm-up.

Options:
  --duration=DUR     whole run, warm-up included (default 10m)
  --warmup=DUR       first part left out of the trend (default 3m: see the module documentation)
  --sample-every=DUR time between samples (default 5s)
  --window=DUR       growth = median of the last window - median of the first window after warm-up (default: a
                     sixth of the time after warm-up, from 60s to 5m: V8's heap swings by 1-2 MiB between
                     collections, and a longer window's median sees through it)
  --churn-rate=N     short connections per second (default 20)
  --streams=N        long-lived streams held open (default 4)
  --rss-bar=MIB      largest RSS growth after warm-up that passes, MiB (default 1)
  --seed=N           seed of the random choices (default 1)
  --samples-out=FILE also write every sample there, one JSON object a line (and the proxy's log to FILE.log)
  --inspect=ADDR     open the proxy's V8 inspector on ADDR (127.x.x.x:port) for bench/heap_snapshot.ts
  --slice-every=DUR  time between EndpointSlice changes (default 4s; 0: no changes and no watch drops)
  --no-flaps         no probe flaps (the readyz answer and the listener of two backends stay as they are)
  --proxy-env=NAME=VALUE
                     also give the proxy this environment variable (repeatable), for experiments such as
                     MALLOC_ARENA_MAX=1 or DENO_V8_FLAGS=--single-threaded (joined with --trace-gc's)
  --trace-gc         give the proxy DENO_V8_FLAGS=--trace-gc (on top of the task's own --v8-flags) and report the
                     live heap after each full collection (off by default: the proxy runs exactly as the task)
  -h, --help         this text
`;

/** The run's settings. */
interface Settings {
  /** Extra environment of the proxy (`--proxy-env`). */
  readonly proxyEnv: Readonly<Record<string, string>>;
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly sampleMs: number;
  readonly windowMs: number;
  readonly churnRate: number;
  readonly streams: number;
  readonly rssBarMiB: number;
  readonly seed: number;
  readonly samplesOut: string | undefined;
  readonly traceGc: boolean;
  readonly inspect: string | undefined;
  readonly sliceMs: number;
  readonly flaps: boolean;
}

function parseSettings(args: string[]): Settings | "help" {
  const { values } = parseArgs({
    args,
    options: {
      duration: { type: "string", default: "10m" },
      warmup: { type: "string", default: "3m" },
      "sample-every": { type: "string", default: "5s" },
      window: { type: "string" },
      "churn-rate": { type: "string", default: "20" },
      streams: { type: "string", default: "4" },
      "rss-bar": { type: "string", default: "1" },
      seed: { type: "string", default: "1" },
      "samples-out": { type: "string" },
      "trace-gc": { type: "boolean", default: false },
      inspect: { type: "string" },
      "slice-every": { type: "string", default: "4s" },
      "no-flaps": { type: "boolean", default: false },
      "proxy-env": { type: "string", multiple: true, default: [] },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return "help";
  const durationMs = parseSoakDuration("duration", values.duration, 20_000, 24 * 3_600_000);
  const warmupMs = parseSoakDuration("warmup", values.warmup, 0, durationMs - 10_000);
  const sampleMs = parseSoakDuration("sample-every", values["sample-every"], 500, 60_000);
  const windowMs = values.window === undefined
    ? Math.max(sampleMs, defaultWindowMs(durationMs, warmupMs))
    : parseSoakDuration("window", values.window, sampleMs, 3_600_000);
  const sliceMs = values["slice-every"] === "0"
    ? 0
    : parseSoakDuration("slice-every", values["slice-every"], 100, 3_600_000);
  if (values.inspect !== undefined && !/^127\.\d+\.\d+\.\d+:\d+$/.test(values.inspect)) {
    throw new RangeError(`Cannot parse --inspect '${values.inspect}': expected 127.x.x.x:port (loopback only)`);
  }
  const rssBarMiB = Number(values["rss-bar"]);
  if (!(rssBarMiB > 0 && rssBarMiB <= 1024)) {
    throw new RangeError(`Cannot parse --rss-bar '${values["rss-bar"]}': expected MiB from 0 to 1024`);
  }
  const proxyEnv: Record<string, string> = {};
  for (const pair of values["proxy-env"]) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(pair);
    if (!m) throw new RangeError(`Cannot parse --proxy-env '${pair}': expected NAME=value`);
    proxyEnv[m[1]!] = m[2]!;
  }
  return {
    proxyEnv,
    durationMs,
    warmupMs,
    sampleMs,
    windowMs,
    churnRate: parseCount("churn-rate", values["churn-rate"], 1000),
    streams: parseCount("streams", values.streams, 64, 0),
    rssBarMiB,
    seed: parseCount("seed", values.seed, 2 ** 31),
    samplesOut: values["samples-out"],
    traceGc: values["trace-gc"],
    inspect: values.inspect,
    sliceMs,
    flaps: !values["no-flaps"],
  };
}

/** A small seeded generator (mulberry32), so that a run's choices can be repeated. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The proxy's extra environment: `--proxy-env`, with `--trace-gc` joined to any `DENO_V8_FLAGS` it sets. */
function proxyEnv(s: Settings): Record<string, string> {
  const env = { ...s.proxyEnv };
  if (s.traceGc) env["DENO_V8_FLAGS"] = [env["DENO_V8_FLAGS"], "--trace-gc"].filter((x) => x).join(",");
  return env;
}

function sampleProcess(pid: number, atMs: number): Sample {
  const status = parseProcStatus(Deno.readTextFileSync(`/proc/${pid}/status`));
  let fds = 0;
  for (const _ of Deno.readDirSync(`/proc/${pid}/fd`)) fds++;
  return { atMs, ...status, fds, parts: parseSmapsParts(Deno.readTextFileSync(`/proc/${pid}/smaps`)) };
}

async function upstreamStates(healthPort: number): Promise<Map<string, string> | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${healthPort}/upstreams`, { signal: AbortSignal.timeout(2000) });
    const json = await res.json() as { upstreams?: { address?: string; state?: string }[] };
    return new Map((json.upstreams ?? []).map((u) => [String(u.address), String(u.state)]));
  } catch {
    return undefined;
  }
}

async function readyz(healthPort: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${healthPort}/readyz`, { signal: AbortSignal.timeout(2000) });
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  }
}

async function gitCommit(): Promise<string> {
  try {
    const root = new URL("../", import.meta.url).pathname;
    const head = await new Deno.Command("git", { args: ["-C", root, "rev-parse", "--short", "HEAD"], stderr: "null" })
      .output();
    const dirty = await new Deno.Command("git", { args: ["-C", root, "status", "--porcelain"], stderr: "null" })
      .output();
    const text = new TextDecoder();
    return `${text.decode(head.stdout).trim()}${text.decode(dirty.stdout).trim() ? " (with uncommitted changes)" : ""}`;
  } catch {
    return "unknown";
  }
}

function loadavg(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    return "unknown";
  }
}

async function run(s: Settings): Promise<number> {
  const random = seeded(s.seed);
  const commit = await gitCommit();
  const loadBefore = loadavg();
  await using pki = await createTestPki();
  await using api = await startFakeApiServer({ pki, tokens: ["soak-token"] });
  const tls = { cert: pki.serverDns.cert, key: pki.serverDns.key };
  const staticBackend = new SoakBackend("127.0.0.1", 0, tls);
  const discovered = backendsOnOnePort(["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"], tls);
  const [, readyzFlapper, listenerFlapper] = discovered as [SoakBackend, SoakBackend, SoakBackend, SoakBackend];
  const backends = [staticBackend, ...discovered];
  const dir = await Deno.makeTempDir({ prefix: "ep_soak_" });
  const stop = new AbortController();
  try {
    const kubeconfig = `${dir}/kubeconfig`;
    await Deno.writeTextFile(
      kubeconfig,
      kubectlKubeconfig({ server: api.url, caPem: pki.ca.cert, token: "soak-token" }),
    );
    const port = discovered[0]!.port;
    api.upsert(endpointSlice("kubernetes", ["127.0.0.2", "127.0.0.3"], port));
    const [bindPort, healthPort] = freePorts(2) as [number, number];
    const args = [
      `--endpoints=127.0.0.1:${staticBackend.port}`,
      `--bind-port=${bindPort}`,
      `--health-port=${healthPort}`,
      `--health-ca-file=${pki.ca.certPath}`,
      `--kubeconfig=${kubeconfig}`,
      `--state-file=${dir}/state.json`,
    ];
    const denoFlags = s.inspect !== undefined ? [`--inspect=${s.inspect}`] : [];
    const start = startCommand(denoFlags);
    const env = proxyEnv(s);
    const commandText = [
      ...Object.entries({ ...start.env, ...env }).map(([k, v]) => `${k}=${v}`),
      "deno",
      ...start.args,
      ...args,
    ].join(" ");
    const spawnedAt = performance.now();
    await using proxy = MainProcess.start(args, { env, denoFlags });
    const readyBy = performance.now() + 30_000;
    while (!(await readyz(healthPort))) {
      if (proxy.status !== undefined || performance.now() > readyBy) {
        throw new Error(
          `Cannot start extractedprism: not ready within 30 s; stderr: ${proxy.lines.slice(-5).join(" | ")}`,
        );
      }
      await pause(50, stop.signal);
    }
    console.error(
      `soak: proxy pid ${proxy.pid} ready; running ${s.durationMs / 1000} s (warm-up ${
        s.warmupMs / 1000
      } s) at ${commit}`,
    );

    const t0 = performance.now();
    const deadline = t0 + s.durationMs;
    const counts = clientCounts();
    let discoveryChanges = 0, flaps = 0, stateChangesSeen = 0, statusFailures = 0;
    const samples: Sample[] = [];
    const target: ClientTarget = { port: bindPort, caCert: pki.ca.cert, serverName: "kubernetes.default.svc" };
    const maxTicks = (ms: number) => Math.ceil(s.durationMs / ms) + 2;

    const watchProxy = (async () => {
      while (proxy.status === undefined && !stop.signal.aborted) await pause(200, stop.signal);
      if (proxy.status !== undefined) stop.abort(); // the proxy died: end the run now
    })();

    const sampler = async () => {
      let last: Map<string, string> | undefined;
      for (let i = 0; i < maxTicks(s.sampleMs) && !stop.signal.aborted; i++) {
        const at = performance.now() - t0;
        if (at > s.durationMs) break;
        let sample: Sample;
        try {
          sample = sampleProcess(proxy.pid, at);
        } catch {
          break; // the process is gone
        }
        samples.push(sample);
        if (s.samplesOut !== undefined) {
          await Deno.writeTextFile(s.samplesOut, `${JSON.stringify(sample)}\n`, { append: i > 0 });
        }
        if (i % Math.max(1, Math.round(60_000 / s.sampleMs)) === 0) {
          console.error(
            `soak: ${(at / 60_000).toFixed(1)} min: RSS ${(sample.rssKiB / 1024).toFixed(1)} MiB, anonymous ${
              (sample.anonKiB / 1024).toFixed(1)
            } MiB, ${sample.fds} fds; ${counts.churnOk} short connections (${counts.churnFailed} failed), ${counts.streamsOpened} streams`,
          );
        }
        const states = await upstreamStates(healthPort);
        if (states === undefined) statusFailures++;
        else {
          if (last) { for (const [k, v] of states) if (last.has(k) && last.get(k) !== v) stateChangesSeen++; }
          last = states;
        }
        const next = t0 + (i + 1) * s.sampleMs;
        await pause(Math.max(0, next - performance.now()), stop.signal);
      }
    };

    const discoveryLoop = async () => {
      const hosts = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"];
      if (s.sliceMs === 0) return;
      for (let i = 1; i < maxTicks(s.sliceMs) && !stop.signal.aborted && performance.now() < deadline; i++) {
        await pause(s.sliceMs, stop.signal);
        if (stop.signal.aborted) break;
        const chosen = i % 11 === 0 ? [] : hosts.filter(() => random() < 0.6);
        if (i % 11 !== 0 && chosen.length === 0) chosen.push(hosts[Math.floor(random() * hosts.length)]!);
        const notReady = chosen.filter(() => random() < 0.15);
        api.upsert(endpointSlice("kubernetes", chosen, port, { notReady }));
        discoveryChanges++;
        if (i % Math.max(1, Math.round(60_000 / s.sliceMs)) === 0) api.dropStreams(); // as an API server restart
      }
    };

    const flapLoop = async (everyMs: number, flip: () => void) => {
      if (!s.flaps) return;
      for (let i = 0; i < maxTicks(everyMs) && !stop.signal.aborted && performance.now() < deadline; i++) {
        await pause(everyMs, stop.signal);
        if (stop.signal.aborted) break;
        flip();
        flaps++;
      }
    };

    await Promise.all([
      sampler(),
      churn(
        target,
        {
          workers: 4,
          perSecond: s.churnRate,
          timeoutMs: 5000,
          deadline,
          maxCount: Math.ceil((s.durationMs / 1000) * s.churnRate) + 10,
        },
        counts,
        stop.signal,
      ),
      streams(
        target,
        {
          streams: s.streams,
          lifetimeMs: [20_000, 90_000],
          lineEveryMs: 1000,
          deadline,
          maxCount: Math.ceil(s.durationMs / 500) + 2,
          random,
        },
        counts,
        stop.signal,
      ),
      discoveryLoop(),
      flapLoop(5000, () => (readyzFlapper.ready = !readyzFlapper.ready)),
      flapLoop(
        6000,
        () => (listenerFlapper.listening ? listenerFlapper.stopListening() : listenerFlapper.startListening()),
      ),
    ]);
    const exitedEarly = proxy.status !== undefined;
    stop.abort();
    await watchProxy;
    const loadAfter = loadavg();
    if (!exitedEarly) proxy.kill("SIGTERM");
    const result = await proxy.exited(45_000);

    const t = trends(samples, s.warmupMs, s.windowMs);
    const logs = countLogLevels(proxy.lines);
    const load: LoadCounts = {
      churnOk: counts.churnOk,
      churnFailed: counts.churnFailed,
      streamsOpened: counts.streamsOpened,
      streamsCut: counts.streamsCut,
      streamsFailed: counts.streamsFailed,
      streamEchoes: counts.streamEchoes,
      streamMismatches: counts.streamMismatches,
      discoveryChanges,
      flaps,
      stateChangesSeen,
      statusFailures,
    };
    const why = verdict(t, { rssBarMiB: s.rssBarMiB, proxyExitedEarly: exitedEarly, logs });
    const served = backends.map((b) => `${b.hostname}:${b.port} ${b.served}`).join(", ");
    console.log(`## Soak: ${(s.durationMs / 60_000).toFixed(1)} min at ${commit}\n`);
    console.log(`- proxy: \`${commandText}\``);
    console.log(`- soak: \`deno task soak ${Deno.args.join(" ")}\`, seed ${s.seed}, deno ${Deno.version.deno}`);
    console.log(
      `- trend over ${t.samples} samples (every ${s.sampleMs / 1000} s) from ${s.warmupMs / 1000} s to ${
        ((s.warmupMs / 60_000) + t.minutes).toFixed(1)
      } min; load average (1/5/15 min) before ${loadBefore}, at the end ${loadAfter}`,
    );
    console.log(`- connections served per backend (non-probe): ${served}`);
    console.log(`- backends' failures to listen again after a flap: ${listenerFlapper.relistenFailures}`);
    console.log(`- proxy exit after SIGTERM: ${exitedEarly ? "DIED DURING THE RUN, " : ""}code ${result.code}\n`);
    console.log(renderTrends(t, s.windowMs));
    if (t.minutes * 60_000 < 2 * s.windowMs) {
      console.log(
        `\nNote: ${(t.minutes * 60).toFixed(0)} s of samples after warm-up hold less than two ${
          s.windowMs / 1000
        } s windows, so the growth figure compares overlapping windows and says little: run longer.`,
      );
    }
    if (s.traceGc) {
      // V8 stamps its lines with the time since the isolate started, a little after the spawn.
      const heap = heapTrend(parseGcTrace(result.stdout), t0 - spawnedAt + s.warmupMs);
      console.log(
        heap === undefined
          ? "\nV8 live heap: no full collection after warm-up"
          : `\nV8 live heap after full collections (after warm-up): ${heap.fullGcs} full, ${heap.youngGcs} young; ` +
            `first ${heap.firstMiB.toFixed(1)} MiB, last ${heap.lastMiB.toFixed(1)} MiB, max ${
              heap.maxMiB.toFixed(1)
            } MiB, slope ${heap.perMinute >= 0 ? "+" : ""}${heap.perMinute.toFixed(3)} MiB/min`,
      );
      if (s.samplesOut !== undefined) await Deno.writeTextFile(`${s.samplesOut}.gc.txt`, result.stdout);
    }
    if (s.samplesOut !== undefined) await Deno.writeTextFile(`${s.samplesOut}.log`, proxy.lines.join("\n") + "\n");
    console.log();
    console.log(renderCounts(load, logs));
    if (logs.examples.length > 0) {
      console.log(`\nUnexpected proxy output:\n${logs.examples.map((l) => `    ${l}`).join("\n")}`);
    }
    if (counts.failures.length > 0) {
      console.log(`\nLast client failures:\n${counts.failures.map((l) => `    ${l}`).join("\n")}`);
    }
    console.log(`\n${why.length === 0 ? "PASS" : `FAIL: ${why.join("; ")}`}`);
    return why.length === 0 ? 0 : 1;
  } finally {
    stop.abort();
    await Promise.all(backends.map((b) => b.close()));
    await Deno.remove(dir, { recursive: true });
  }
}

async function main(args: string[]): Promise<number> {
  let settings: Settings | "help";
  try {
    settings = parseSettings(args);
  } catch (e) {
    console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
    return 2;
  }
  if (settings === "help") {
    console.log(HELP);
    return 0;
  }
  return await run(settings);
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
    Deno.exit(1);
  }
}
