/**
 * The side-by-side benchmark: a direct connection to the backend, extractedprism (started exactly like
 * `deno task start`), the Deno floor (`_floor_relay.ts`), the same floor with a readyz probe on Deno's TLS (for
 * memory only: the floor of the job), HAProxy (`mode tcp`) and nginx `stream`, on loopback only, in one run. Prints a
 * Markdown table, one PASS/FAIL line per target (memory, start-up and CPU against the floor of the same run, then
 * throughput against HAProxy), how much of each memory allowance the probe alone takes, and which workloads were
 * load-bound; exits 0 even when a target fails (it is a report), non-zero when the bench broke.
 *
 * ```sh
 * deno task bench                      # 10 s per load run
 * deno task bench --quick              # 3 s per run, 3 start-up runs
 * deno task bench --duration=20s --repeat=3 --out=bench.md
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type Backend, makeCertificate, startBackend } from "./_backend.ts";
import { BACKEND_BODY, WRK_REPORT_LUA } from "./_configs.ts";
import { Children, freePort, parseCount, pinSelf, which } from "./_process.ts";
import { loadBound, probeShareLines, renderTable, Results, spreadLines, SYSTEM_KEYS, verdicts } from "./_report.ts";
import {
  direct,
  extractedprism,
  floorRelay,
  haproxy,
  nginxStream,
  parseCommand,
  startTask,
  type System,
  type SystemKey,
} from "./_systems.ts";
import { type Bench, bulk, manyConnections, measure, newConnections, smallRequests, startup } from "./_workloads.ts";

const WORKLOADS = ["small", "bulk", "conn", "rss512", "startup"] as const;
type Workload = typeof WORKLOADS[number];
/** The systems that `deno run` starts: their first start in a checkout is not measured (see `bench`). */
const WARMED: ReadonlySet<SystemKey> = new Set(["extractedprism", "floor", "floor-probe"]);
/** The workloads that measure memory over the HTTPS backend: the only ones a `memoryOnly` system runs. */
const MEMORY_WORKLOADS: ReadonlySet<Workload> = new Set(["small", "rss512"]);

const HELP = `Usage: deno task bench [options]

Compares direct, extractedprism, the Deno floor relay (alone, and with a readyz probe: memory only), haproxy and
nginx (stream) on loopback, side by side.

Options:
  --duration=DUR       length of each load run: 10s, 1500ms, 1m (default 10s; --quick: 3s)
  --quick              short runs: 3 s per load, 3 start-up runs
  --repeat=N           run every load N times per system (interleaved) and report medians (default 1)
  --startup-runs=N     fresh processes timed for start → first response (default 5; --quick: 3)
  --only=LIST          workloads to run: ${WORKLOADS.join(",")} (default all)
  --systems=LIST       systems to compare: ${SYSTEM_KEYS.join(",")} (default all)
  --max-noise=PCT      a run during which other processes used more than PCT% of a core is measured again (default 10)
  --noise-retries=N    how many times a disturbed run is measured again, the quietest kept (default 2; 0 = never)
  --quiet-wait=DUR     how long to wait before each run for other processes to quiet down (default 30s)
  --proxy-cpus=LIST    taskset CPU list of the proxies (default 1)
  --load-cpus=LIST     taskset CPU list of the backend and load generators (default 0)
  --proxy-cmd=CMD      run extractedprism with CMD instead of deno.json's start task (for experiments)
  --out=FILE           also write the report to FILE
  -h, --help           this text
`;

interface Options {
  seconds: number;
  repeat: number;
  startupRuns: number;
  only: Set<Workload>;
  systems: Set<SystemKey>;
  maxNoisePct: number;
  noiseRetries: number;
  quietWaitMs: number;
  proxyCpus: string;
  loadCpus: string;
  proxyCmd: string | undefined;
  out: string | undefined;
}

/** Parses `10s`, `1500ms`, `1m` or a bare number of seconds into whole seconds (at least `min`). */
export function parseSeconds(text: string, min = 1): number {
  const m = text.trim().match(/^(\d+(?:\.\d+)?)(ms|s|m)?$/);
  if (!m) throw new RangeError(`Cannot parse duration '${text}': expected e.g. '10s', '1500ms' or '1m'`);
  const n = Number(m[1]) * (m[2] === "ms" ? 0.001 : m[2] === "m" ? 60 : 1);
  const s = Math.round(n);
  if (s < min || s > 600) throw new RangeError(`Cannot use duration '${text}': expected between ${min}s and 10m`);
  return s;
}

function parseList<T extends string>(flag: string, text: string, allowed: readonly T[]): Set<T> {
  const items = text.split(",").map((s) => s.trim()).filter(Boolean);
  for (const i of items) {
    if (!allowed.includes(i as T)) {
      throw new RangeError(`Cannot parse --${flag} '${text}': expected a list of ${allowed.join(", ")}`);
    }
  }
  return new Set(items as T[]);
}

function parseCpus(flag: string, text: string): string {
  if (!/^\d+(,\d+)*$/.test(text)) {
    throw new RangeError(`Cannot parse --${flag} '${text}': expected CPU numbers like '1' or '0,2'`);
  }
  return text;
}

function parseOptions(args: string[]): Options | undefined {
  const { values } = parseArgs({
    args,
    options: {
      duration: { type: "string" },
      quick: { type: "boolean", default: false },
      repeat: { type: "string", default: "1" },
      "startup-runs": { type: "string" },
      only: { type: "string" },
      systems: { type: "string" },
      "max-noise": { type: "string", default: "10" },
      "noise-retries": { type: "string", default: "2" },
      "quiet-wait": { type: "string", default: "30s" },
      "proxy-cpus": { type: "string", default: "1" },
      "load-cpus": { type: "string", default: "0" },
      "proxy-cmd": { type: "string" },
      out: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return undefined;
  const quick = values.quick === true;
  return {
    seconds: parseSeconds(values.duration ?? (quick ? "3s" : "10s")),
    repeat: parseCount("repeat", values.repeat ?? "1", 20),
    startupRuns: parseCount("startup-runs", values["startup-runs"] ?? (quick ? "3" : "5"), 50),
    only: values.only === undefined ? new Set(WORKLOADS) : parseList("only", values.only, WORKLOADS),
    systems: values.systems === undefined ? new Set(SYSTEM_KEYS) : parseList("systems", values.systems, SYSTEM_KEYS),
    maxNoisePct: parseCount("max-noise", values["max-noise"] ?? "10", 200),
    noiseRetries: parseCount("noise-retries", values["noise-retries"] ?? "2", 10, 0),
    quietWaitMs: parseSeconds(values["quiet-wait"] ?? "30s", 0) * 1000,
    proxyCpus: parseCpus("proxy-cpus", values["proxy-cpus"] ?? "1"),
    loadCpus: parseCpus("load-cpus", values["load-cpus"] ?? "0"),
    proxyCmd: values["proxy-cmd"],
    out: values.out,
  };
}

function log(line: string): void {
  console.error(line);
}

async function bench(
  opts: Options,
  children: Children,
  signal: AbortSignal,
  failures: string[],
): Promise<string> {
  const repoRoot = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const ep = opts.proxyCmd === undefined ? await startTask(`${repoRoot}/deno.json`) : parseCommand(opts.proxyCmd);
  const epCommand = ep.text;

  for (const tool of ["wrk", "taskset", "openssl"]) {
    if (!which(tool)) throw new Error(`Cannot run the bench: '${tool}' is not installed (apt-get install -y ${tool})`);
  }
  const cpus = navigator.hardwareConcurrency;
  const pinned = cpus >= 2;
  const proxyCpus = pinned ? opts.proxyCpus : undefined;
  const loadCpus = pinned ? opts.loadCpus : undefined;
  if (pinned) await pinSelf(opts.loadCpus);
  const pinning = pinned
    ? `Pinning (taskset): proxies on CPU ${opts.proxyCpus}; backend, load generators and this bench on CPU ${opts.loadCpus}` +
      ` (${cpus} CPUs online).`
    : `Pinning: none — only ${cpus} CPU online, proxies share it with the backend and load generators.`;

  const all: System[] = [
    direct,
    extractedprism(ep, repoRoot),
    floorRelay(ep),
    floorRelay(ep, true),
    haproxy(),
    nginxStream(),
  ];
  const systems = all.filter((s) => opts.systems.has(s.key));
  const results = new Results();
  for (const s of all) {
    if (!opts.systems.has(s.key)) results.skipped.set(s.key, "not selected (--systems)");
    else if (s.absent) {
      results.skipped.set(s.key, s.absent);
      log(`Skipping ${s.key}: ${s.absent}`);
    }
  }
  const active = systems.filter((s) => !s.absent);

  const dir = await Deno.makeTempDir({ prefix: "ep_bench_" });
  try {
    const caCert = await makeCertificate(children, dir);
    const wrkScript = `${dir}/report.lua`;
    await Deno.writeTextFile(wrkScript, WRK_REPORT_LUA);
    const backend: Backend = await startBackend(children, { dir, cpus: loadCpus });
    const bulkPort = freePort();
    const bulkTool = which("iperf3") ? "iperf3" : "deno";
    if (opts.only.has("bulk")) {
      const argv = bulkTool === "iperf3"
        ? ["iperf3", "-s", "-p", String(bulkPort)]
        : [Deno.execPath(), "run", "-A", new URL("./_bulk.ts", import.meta.url).pathname, "sink", String(bulkPort)];
      children.spawn(`bulk server (${bulkTool})`, argv, { cpus: loadCpus });
      if (bulkTool === "deno") log("iperf3 not installed: bulk throughput uses the Deno sender/sink (bench/_bulk.ts)");
    }
    const b: Bench = {
      children,
      results,
      start: { children, dir, proxyCpus, signal },
      backend,
      caCert,
      bulkPort,
      bulkTool,
      loadCpus,
      seconds: opts.seconds,
      wrkScript,
      maxNoisePct: opts.maxNoisePct,
      noiseRetries: opts.noiseRetries,
      quietWaitMs: opts.quietWaitMs,
      noise: [],
      notes: [],
      failures,
      log,
    };
    log(pinning);
    log(`extractedprism: ${epCommand} --endpoints=… --bind-port=… --health-port=… --log-level=warn`);
    // The first run of a TypeScript program in a fresh checkout transpiles its modules and fills V8's code cache, and
    // stays 2-6 MiB larger than every later run (42.4 MiB idle against 48.6 for the first, in a fresh worktree). Not
    // what a node runs day to day: one unmeasured start of each Deno system first, as the program is run in the bench.
    for (const s of active.filter((s) => WARMED.has(s.key))) {
      log(`Warming Deno's caches: one unmeasured start of ${s.key}`);
      await (await s.start(backend.tlsPort, b.start)).stop();
    }

    const rounds = async (title: string, w: Workload, probe: Parameters<typeof measure>[2]) => {
      if (!opts.only.has(w)) return;
      const measured = MEMORY_WORKLOADS.has(w) ? active : active.filter((s) => !s.memoryOnly);
      for (let i = 0; i < opts.repeat; i++) {
        log(`${title}${opts.repeat > 1 ? ` (round ${i + 1}/${opts.repeat})` : ""}`);
        for (const s of measured) await measure(b, s, probe);
      }
    };
    await rounds(
      `Small HTTPS requests, 32 keep-alive connections, ${opts.seconds} s`,
      "small",
      smallRequests,
    );
    await rounds(`Bulk single stream (${bulkTool}), ${opts.seconds} s`, "bulk", bulk);
    await rounds(`New connections, 16 clients, ${opts.seconds} s`, "conn", newConnections);
    await rounds(`512 keep-alive HTTPS connections, ${opts.seconds} s`, "rss512", manyConnections);
    if (opts.only.has("startup")) {
      log(`Start → first relayed response, ${opts.startupRuns} fresh processes each`);
      for (const s of active) if (s.key !== "direct" && !s.memoryOnly) await startup(b, s, opts.startupRuns);
    }

    const when = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    const lines = [
      `Bench of ${when}: \`deno task bench ${Deno.args.join(" ")}\`, ${opts.seconds} s per load run, ` +
      `${opts.repeat} round(s) (medians), ${opts.startupRuns} start-up runs.`,
      "",
      pinning,
      `Backend: ${backend.kind} on loopback, answering \`${BACKEND_BODY.trim()}\` to every path (\`/readyz\` included): ` +
      "HTTPS with a self-signed P-256 certificate for the small-request, 512-connection and start-up workloads, plain " +
      `HTTP for new connections; bulk: ${bulkTool}. Load: wrk -t1 (32 / 512 keep-alive connections; 16 with ` +
      "`Connection: close`).",
      `extractedprism: \`${epCommand}\` plus \`--endpoints --bind-port --health-port --log-level=warn\` and the ` +
      "backend's certificate as `--health-ca-file` (the readyz probe verifies, on Deno's TLS, as the README " +
      "recommends); for the bulk and new-connection workloads `--health-check=tcp` instead, since iperf3 and plain " +
      "HTTP cannot answer the default HTTPS `/readyz` probe. floor: bench/_floor_relay.ts, the smallest correct Deno relay, with the same " +
      "`deno` and `--v8-flags`; floor-probe: the same relay probing the backend's `/readyz` once a second on one " +
      "kept-alive connection over Deno's TLS, verified with the same certificate (memory workloads only). HAProxy: " +
      "`mode tcp`, one thread; nginx: `stream`, one worker; all four one backend, no health checks but floor-probe's.",
      "Proxy CPU and RSS cover the whole process tree (nginx: master + worker), from /proc; peak RSS = max(VmRSS " +
      "sampled every 50 ms, VmHWM). Each load run uses a fresh proxy process; runs disturbed by other processes are " +
      `measured again (see the last note).`,
      "",
      renderTable(results),
      "",
      ...verdicts(results).map((v) => `- ${v.line}`),
      ...probeShareLines(results).map((l) => `- Context: ${l}`),
      ...loadBound(results).map((l) => `- Load: ${l}`),
    ];
    lines.push("", ...spreadLines(results, opts.repeat));
    for (const [k, why] of [...results.skipped].filter(([k]) => opts.systems.has(k))) {
      lines.push(`Note: ${k} skipped: ${why}.`);
    }
    for (const n of new Set(b.notes)) lines.push(`Note: ${n.replace(/\.$/, "")}.`);
    for (const f of failures) lines.push(`Not measured: ${f}`);
    const noisy = b.noise.filter((p) => p > opts.maxNoisePct).length;
    const worst = Math.max(0, ...b.noise);
    lines.push(
      `Note: other processes used at most ${worst.toFixed(0)}% of a core during a recorded load run` +
        (noisy > 0
          ? `; ${noisy} of ${b.noise.length} recorded runs stayed above ${opts.maxNoisePct}% after ${opts.noiseRetries} ` +
            "retries — their values are marked `~` and are noisy; rerun on an idle machine."
          : ` (every recorded run ≤ ${opts.maxNoisePct}%).`),
    );
    return lines.join("\n") + "\n";
  } finally {
    await children.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function main(): Promise<number> {
  let opts: Options | undefined;
  try {
    opts = parseOptions(Deno.args);
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    return 2;
  }
  if (opts === undefined) {
    console.log(HELP);
    return 0;
  }
  const children = new Children();
  const stop = new AbortController();
  const onSignal = () => {
    log("Interrupted: stopping every process the bench started");
    stop.abort(new Error("Interrupted"));
    children.close();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const failures: string[] = [];
  try {
    const report = await bench(opts, children, stop.signal, failures);
    console.log(report);
    if (opts.out !== undefined) await Deno.writeTextFile(opts.out, report);
    if (failures.length > 0) {
      console.error(`Bench incomplete: ${failures.length} measurement(s) could not be made (see 'Not measured')`);
      return 1;
    }
    return 0;
  } catch (e) {
    console.error(`Bench failed: ${e instanceof Error ? e.message : String(e)}`);
    return stop.signal.aborted ? 130 : 1;
  } finally {
    await children.close();
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}

if (import.meta.main) Deno.exit(await main());
