/**
 * Does a program keep serving inside a memory limit (the chart's 64Mi, systemd's MemoryMax=64M), and how much memory
 * does it need? Runs extractedprism (the `start` task) or the floor relay (`bench/_floor_relay.ts`, the same `deno`
 * and V8 flags) in a fresh memory cgroup with a limit, loads it with wrk over HTTPS keep-alive on loopback, and holds
 * the run to one of the same program without a limit made just before it (see {@linkcode verdict}): throughput,
 * p99, errors, OOM kills, reclaims, major page faults under the load, peak usage (anonymous and file pages), and
 * whether it still serves afterwards.
 *
 * Page caches are dropped before each run, and both programs run a private copy of `deno`, so that every page of the
 * binary the program reads (read-ahead included) is charged to its own cgroup, as on a node. `--find-min` bisects
 * the smallest limit that holds, for each program: resident size counts every page of the binary a process ever
 * ran, and a limit makes the kernel take back the clean ones it does not keep using, so this measures what a
 * process needs rather than what it once touched. Root only; cgroup v1 or v2.
 *
 * ```sh
 * deno run -A bench/memory_limit.ts [--system=extractedprism|floor] [--limit-mib=64] [--connections=512] [--seconds=10]
 * deno run -A bench/memory_limit.ts --find-min [--system=extractedprism|floor] [--connections=32] [--seconds=8]
 * # either, with more flags for extractedprism (repeated): --proxy-arg=--health-check=tcp
 * # or another command for it (a compiled binary; the floor then gets its V8 flags): --proxy-cmd='dist/extractedprism'
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { makeCertificate, startBackend } from "./_backend.ts";
import { WRK_REPORT_LUA } from "./_configs.ts";
import { requestOnce, runWrk } from "./_load.ts";
import { Children, delay, freePort, lastLines, parseCount, which } from "./_process.ts";
import { type Command, floorArgv, parseCommand, startTask } from "./_systems.ts";

/** A memory cgroup made for one run. */
interface MemoryCgroup {
  readonly path: string;
  /** Peak usage, bytes. */
  peak(): number;
  /** Anonymous and file-backed bytes now. */
  usage(): { anon: number; file: number };
  /** How many times usage hit the limit (v1 failcnt, v2 events `max`). */
  limitHits(): number;
  /**
   * Page faults that had to read from the disk (`pgmajfault` of `memory.stat`, what cAdvisor exports as
   * `container_memory_failures_total{failure_type="pgmajfault",scope="container"}`).
   */
  majorFaults(): number;
  /** Processes the kernel killed for memory. */
  oomKills(): number;
}

function fieldOf(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\d+)$`, "m").exec(text);
  return Number(m?.[1] ?? 0);
}

function read(path: string): string {
  return Deno.readTextFileSync(path);
}

/** Creates a cgroup with `limit` bytes of memory (v2 when the unified hierarchy has the memory controller, else v1). */
function createCgroup(limit: number): MemoryCgroup {
  const name = `extractedprism_memlimit_${Deno.pid}`;
  let v2 = false;
  try {
    v2 = read("/sys/fs/cgroup/cgroup.controllers").split(/\s+/).includes("memory");
  } catch { /* not v2 */ }
  if (v2) {
    const path = `/sys/fs/cgroup/${name}`;
    Deno.mkdirSync(path);
    Deno.writeTextFileSync(`${path}/memory.max`, String(limit));
    return {
      path,
      peak: () => Number(read(`${path}/memory.peak`).trim()),
      usage: () => {
        const s = read(`${path}/memory.stat`);
        return { anon: fieldOf(s, "anon"), file: fieldOf(s, "file") };
      },
      limitHits: () => fieldOf(read(`${path}/memory.events`), "max"),
      majorFaults: () => fieldOf(read(`${path}/memory.stat`), "pgmajfault"),
      oomKills: () => fieldOf(read(`${path}/memory.events`), "oom_kill"),
    };
  }
  const path = `/sys/fs/cgroup/memory/${name}`;
  Deno.mkdirSync(path);
  Deno.writeTextFileSync(`${path}/memory.limit_in_bytes`, String(limit));
  return {
    path,
    peak: () => Number(read(`${path}/memory.max_usage_in_bytes`).trim()),
    usage: () => {
      const s = read(`${path}/memory.stat`);
      return { anon: fieldOf(s, "rss"), file: fieldOf(s, "cache") };
    },
    limitHits: () => Number(read(`${path}/memory.failcnt`).trim()),
    majorFaults: () => fieldOf(read(`${path}/memory.stat`), "pgmajfault"),
    oomKills: () => fieldOf(read(`${path}/memory.oom_control`), "oom_kill"),
  };
}

async function ready(healthPort: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${healthPort}/readyz`);
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  }
}

/** extractedprism's `extractedprism_event_loop_stalled_seconds_total`; NaN when it cannot be read. */
async function stalledSeconds(healthPort: number): Promise<number> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${healthPort}/metrics`, { signal: AbortSignal.timeout(5000) }))
      .text();
    return Number(/^extractedprism_event_loop_stalled_seconds_total (\S+)$/m.exec(text)?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

const mib = (bytes: number) => (bytes / 1048576).toFixed(1);

/** The programs this bench can run. */
export type Subject = "extractedprism" | "floor";

/** One run under one limit. */
export interface LimitRun {
  readonly subject: Subject;
  readonly limitMib: number;
  readonly rps: number;
  readonly p99Ms: number;
  /** wrk's socket errors and non-2xx answers. */
  readonly errors: number;
  /** Peak usage once ready, before the load (bytes). */
  readonly idlePeak: number;
  /** Peak usage of the whole run (bytes). */
  readonly peak: number;
  /** Anonymous memory, sampled every 50 ms (bytes). */
  readonly anonPeak: number;
  readonly fileEnd: number;
  readonly limitHits: number;
  /** Major page faults per second under the load: a program re-reading its own binary from the disk. */
  readonly majorFaultsPerSecond: number;
  /** The seconds extractedprism says it did not run, in stalls of 100 ms or more, by the load's end (NaN: floor). */
  readonly stalledSeconds: number;
  readonly oomKills: number;
  /** Alive, relays a request, and (extractedprism) answers `/readyz` 200 after the load. */
  readonly servesAfter: boolean;
  /** The exit status after SIGTERM. */
  readonly exitCode: number;
  /** It did not relay within 15 s of its start (nothing else was measured then). */
  readonly notStarted?: boolean;
}

/** What a run under a limit is held to: the same program's run without one, just before. */
export interface Baseline {
  readonly rps: number;
  readonly p99Ms: number;
}

/** At least this share of the unconstrained run's requests per second. */
export const MIN_RPS_SHARE = 0.9;

/**
 * Why a run failed whatever its speed, or `undefined`: an OOM kill, no relaying 15 s after its start, an error, not
 * serving after the load, or (extractedprism) an exit status other than 0 on SIGTERM; the floor has no handler (it
 * dies of the signal). A run without a limit that fails so leaves nothing to compare with.
 */
export function failure(run: LimitRun): string | undefined {
  if (run.oomKills > 0) return `${run.oomKills} OOM kill(s)`;
  if (run.notStarted) return "not relaying 15 s after its start";
  if (run.errors > 0) return `${run.errors} errors`;
  if (!run.servesAfter) return "not serving after the load";
  if (run.subject === "extractedprism" && run.exitCode !== 0) return `exit ${run.exitCode} after SIGTERM`;
  return undefined;
}

/**
 * Why a run under a limit does not count as serving the load as well as without one, or `undefined` when it does:
 * no {@linkcode failure}, and, when the limit was reached at all, at least 90 % of the unconstrained requests per
 * second and a p99 latency at most twice the unconstrained one or 2 ms above it (the larger: a p99 of 2 ms moves by
 * 1 ms between runs on this VM).
 */
export function verdict(run: LimitRun, base: Baseline): string | undefined {
  const failed = failure(run);
  if (failed !== undefined) return failed;
  // A limit that was never reached cannot have slowed the program: any difference in speed is this VM's noise.
  if (run.limitHits === 0) return undefined;
  if (run.rps < MIN_RPS_SHARE * base.rps) {
    return `${Math.round(run.rps)} req/s < ${MIN_RPS_SHARE * 100} % of ${Math.round(base.rps)}`;
  }
  const p99Limit = Math.max(2 * base.p99Ms, base.p99Ms + 2);
  if (run.p99Ms > p99Limit) return `p99 ${run.p99Ms.toFixed(2)} ms > ${p99Limit.toFixed(2)} ms`;
  return undefined;
}

/**
 * The smallest whole number in (`lo`, `hi`] for which `holds` is true, by bisection, assuming it is false at and below
 * some point and true above it; `hi` is tried first, and `undefined` returned when even it does not hold.
 */
export async function smallestHolding(
  lo: number,
  hi: number,
  holds: (n: number) => Promise<boolean>,
): Promise<number | undefined> {
  if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo >= hi) {
    throw new RangeError(`expected whole numbers lo < hi, got ${lo} and ${hi}`);
  }
  if (!(await holds(hi))) return undefined;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (await holds(mid)) hi = mid;
    else lo = mid;
  }
  return hi;
}

/** What every run shares: the backend, wrk's script, the start task. */
interface Bench {
  readonly children: Children;
  readonly start: Command;
  /** A private copy of the `deno` binary (see {@linkcode privateCopy}), for the header's read-ahead. */
  readonly deno: string;
  /** Private copies of the programs the runs start (`deno`, and a `--proxy-cmd` binary), by their given paths. */
  readonly copies: ReadonlyMap<string, string>;
  readonly backendPort: number;
  readonly cert: string;
  /** The backend's certificate as a file, the readyz probe's CA. */
  readonly caPath: string;
  readonly script: string;
  readonly connections: number;
  readonly seconds: number;
  /** More flags for extractedprism (`--proxy-arg`, for experiments). */
  readonly proxyArgs: readonly string[];
  /** Aborted by SIGINT or SIGTERM: no run starts after it. */
  readonly signal: AbortSignal;
}

let cachesWarned = false;

/**
 * Copies the program at `from` into `dir` as `name`, written through to disk, and returns the copy's path. A page of
 * a file is charged to the cgroup that first reads it, and a mapped page survives dropping the caches: every page of
 * `deno` that this bench's own process runs (TLS, HTTP, the loader) would be used for free by the program measured,
 * and never be reclaimed under its limit. The copy's pages are read first by the program, in its own cgroup.
 */
function privateCopy(dir: string, from: string, name: string): string {
  const path = `${dir}/${name}`;
  Deno.copyFileSync(from, path);
  Deno.chmodSync(path, 0o755);
  using file = Deno.openSync(path, { read: true });
  file.syncSync();
  return path;
}

/** Runs `subject` once in a fresh cgroup of `limitMib`; `undefined` when no cgroup can be made (not root, no controller). */
async function runUnder(b: Bench, subject: Subject, limitMib: number): Promise<LimitRun | undefined> {
  b.signal.throwIfAborted();
  let cgroup: MemoryCgroup;
  try {
    cgroup = createCgroup(limitMib * 1048576);
  } catch (e) {
    console.error(`Skipping: cannot create a memory cgroup: ${e instanceof Error ? e.message : e}`);
    return undefined;
  }
  try {
    // The program's file pages are charged to the cgroup that first reads them: its own, as on a fresh node.
    try {
      Deno.writeTextFileSync("/proc/sys/vm/drop_caches", "1");
    } catch (e) {
      if (!cachesWarned) console.error(`Page caches NOT dropped: ${e instanceof Error ? e.message : e}`);
      cachesWarned = true;
    }
    const port = freePort();
    const healthPort = freePort();
    const argv = subject === "floor" ? floorArgv(b.start, port, b.backendPort) : [
      ...b.start.argv,
      `--endpoints=127.0.0.1:${b.backendPort}`,
      `--bind-port=${port}`,
      `--health-port=${healthPort}`,
      "--log-level=warn",
      // The readyz probe verifies with a CA, on Deno's TLS, as recommended (and as a pod's service account or a
      // node's kubeconfig gives it); without one it loads Node's TLS module, about 5 MiB more anonymous memory.
      `--health-ca-file=${b.caPath}`,
      "--health-tls-server-name=localhost",
      ...b.proxyArgs,
    ];
    argv[0] = b.copies.get(argv[0] as string) ?? (argv[0] as string);
    // The shell joins the cgroup, then becomes the program: nothing else is charged to it.
    const proc = b.children.spawn(subject, [
      "sh",
      "-c",
      `echo $$ > ${cgroup.path}/cgroup.procs && exec "$@"`,
      "sh",
      ...argv,
    ], {
      cpus: "1",
      cwd: new URL("../", import.meta.url).pathname,
      env: b.start.env,
    });
    // The run's own figures, with the cgroup's counters read now: the same whether the program started or not.
    const measured = (
      found: Omit<LimitRun, "subject" | "limitMib" | "peak" | "limitHits" | "oomKills">,
    ): LimitRun => ({
      subject,
      limitMib,
      peak: cgroup.peak(),
      limitHits: cgroup.limitHits(),
      oomKills: cgroup.oomKills(),
      ...found,
    });
    const serving = async () =>
      !proc.exited && (subject === "floor" || await ready(healthPort)) && await requestOnce(port, 2000, b.cert);
    const deadline = performance.now() + 15_000;
    while (!(await serving())) {
      if (proc.exited || performance.now() > deadline) {
        // Too little memory to start is this limit's answer, not the bench's failure.
        await proc.stop();
        const { status, stderr } = await proc.output();
        console.error(`${subject} did not start relaying under ${limitMib} MiB: ${lastLines(stderr)}`);
        const usage = cgroup.usage();
        return measured({
          rps: 0,
          p99Ms: 0,
          errors: 0,
          idlePeak: cgroup.peak(),
          anonPeak: usage.anon,
          fileEnd: usage.file,
          majorFaultsPerSecond: NaN,
          stalledSeconds: NaN,
          servesAfter: false,
          exitCode: status.code,
          notStarted: true,
        });
      }
      await delay(20);
    }
    const idlePeak = cgroup.peak();
    // The cgroup keeps no peak per kind: anonymous memory (what reclaim cannot drop) is sampled every 50 ms.
    let anonPeak = cgroup.usage().anon;
    const sampler = setInterval(() => {
      anonPeak = Math.max(anonPeak, cgroup.usage().anon);
    }, 50);
    const faultsBefore = cgroup.majorFaults();
    const loadStart = performance.now();
    const wrk = await runWrk(b.children, {
      url: `https://127.0.0.1:${port}/`,
      connections: b.connections,
      seconds: b.seconds,
      script: b.script,
      cpus: "0",
    }).finally(() => clearInterval(sampler));
    b.signal.throwIfAborted();
    const majorFaultsPerSecond = (cgroup.majorFaults() - faultsBefore) / ((performance.now() - loadStart) / 1000);
    const stalled = subject === "floor" ? NaN : await stalledSeconds(healthPort);
    const usage = cgroup.usage();
    const servesAfter = await serving();
    await proc.stop(5000);
    const { status } = await proc.output();
    return measured({
      rps: wrk.rps,
      p99Ms: wrk.p99Ms,
      errors: wrk.errors,
      idlePeak,
      anonPeak: Math.max(anonPeak, usage.anon),
      fileEnd: usage.file,
      majorFaultsPerSecond,
      stalledSeconds: stalled,
      servesAfter,
      exitCode: status.code,
    });
  } finally {
    // The directory can go once its processes have exited.
    for (let i = 0; i < 50; i++) {
      try {
        Deno.removeSync(cgroup.path);
        break;
      } catch {
        await delay(100);
      }
    }
  }
}

/** Linux's encoding of a device number into major and minor (glibc's `gnu_dev_major` and `gnu_dev_minor`). */
export function deviceNumbers(dev: number): { major: number; minor: number } {
  const d = BigInt(dev);
  return {
    major: Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & 0xfffff000n)),
    minor: Number((d & 0xffn) | ((d >> 12n) & 0xffffff00n)),
  };
}

/**
 * The read-ahead in KiB of the device that holds `path` (`/sys/class/bdi/MAJ:MIN/read_ahead_kb`): how much of a file
 * one page fault may read in. `undefined` when it cannot be told (a file system without a backing device of its
 * own, such as an overlay, may have none). Deno reads `/sys` only with every permission: the proxy cannot tell this
 * itself under its permission set, so only this bench (`-A`) reports it.
 */
export function readAheadKib(path: string): number | undefined {
  try {
    const { major, minor } = deviceNumbers(Deno.statSync(path).dev);
    const kib = Number(Deno.readTextFileSync(`/sys/class/bdi/${major}:${minor}/read_ahead_kb`).trim());
    return Number.isSafeInteger(kib) && kib >= 0 ? kib : undefined;
  } catch {
    return undefined;
  }
}

function header(b: Bench, what: string): void {
  const ra = readAheadKib(b.deno);
  console.log(`${what}; extractedprism: \`${[b.start.text, ...b.proxyArgs].join(" ")}\``);
  console.log(
    "Page caches dropped before each run (stderr says when they cannot be); both programs run a private copy of " +
      `\`deno\`, whose every page is charged to them; read-ahead of its device ${ra ?? "unknown"} KiB (a page fault ` +
      "reads up to that much of the binary, and the limit is charged for it)",
  );
  console.log(
    "\n| program | limit (MiB) | req/s | p99 (ms) | errors | usage when ready (MiB) | anonymous peak (MiB) | " +
      "file pages at the end (MiB) | reclaims | major faults/s under load | stalled (s) | OOM kills | verdict |\n" +
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
  );
}

function row(r: LimitRun, why: string | undefined): void {
  console.log(
    `| ${r.subject} | ${r.limitMib} | ${Math.round(r.rps)} | ${r.p99Ms.toFixed(2)} | ${r.errors} | ` +
      `${mib(r.idlePeak)} | ${mib(r.anonPeak)} | ${mib(r.fileEnd)} | ${r.limitHits} | ${
        Number.isFinite(r.majorFaultsPerSecond) ? Math.round(r.majorFaultsPerSecond) : "—"
      } | ${Number.isFinite(r.stalledSeconds) ? r.stalledSeconds.toFixed(1) : "—"} | ${r.oomKills} | ${
        why ?? "serves"
      } |`,
  );
}

/** The outcome of {@linkcode servesUnder}: its last pair of runs, and why the limited one fell short. */
interface PairOutcome {
  readonly reference: LimitRun;
  readonly limited: LimitRun;
  readonly why: string | undefined;
}

/**
 * Runs `subject` without a limit and then under `limitMib`, and holds the second to the first: a reference taken
 * just before shares this VM's speed of the moment, which drifts by a third over minutes. A miss in speed alone may
 * still be noise: such a limit gets a second pair. Each run is a table row.
 */
async function servesUnder(b: Bench, subject: Subject, limitMib: number): Promise<PairOutcome | undefined> {
  let outcome: PairOutcome | undefined;
  for (let attempt = 0; attempt < 2; attempt++) {
    const reference = await runUnder(b, subject, UNCONSTRAINED_MIB);
    if (reference === undefined) return undefined;
    const broken = failure(reference);
    row(reference, broken === undefined ? "reference" : `fails without a limit: ${broken}`);
    if (broken !== undefined) {
      throw new Error(`${subject} does not serve even under ${UNCONSTRAINED_MIB} MiB (see the row)`);
    }
    const limited = await runUnder(b, subject, limitMib);
    if (limited === undefined) return undefined;
    const why = verdict(limited, reference);
    row(limited, why);
    outcome = { reference, limited, why };
    if (why === undefined || failure(limited) !== undefined) break;
  }
  return outcome;
}

/** One program under one limit, held to its own runs without one. */
async function checkLimit(b: Bench, subject: Subject, limitMib: number): Promise<boolean> {
  header(
    b,
    `${subject} under a ${limitMib} MiB memory limit, wrk -c${b.connections} -d${b.seconds}s over HTTPS keep-alive, ` +
      `each run against one under ${UNCONSTRAINED_MIB} MiB just before it`,
  );
  const outcome = await servesUnder(b, subject, limitMib);
  if (outcome === undefined) return true;
  const { limited: r, why } = outcome;
  console.log(
    `\n${why === undefined ? "PASS" : "FAIL"} ${limitMib} MiB limit, ${b.connections} connections: serves as without ` +
      `a limit (no OOM kill, no error, serving after, req/s ≥ ${MIN_RPS_SHARE * 100} %, p99 ≤ 2× or +2 ms)` +
      `${why === undefined ? "" : `: ${why}`}; anonymous peak ${mib(r.anonPeak)} MiB, peak usage ${mib(r.peak)} MiB`,
  );
  return why === undefined;
}

/** The unconstrained run's limit: far above what either program uses, so that nothing is reclaimed. */
const UNCONSTRAINED_MIB = 512;

async function findMinimum(b: Bench, subjects: readonly Subject[]): Promise<boolean> {
  header(
    b,
    `Smallest memory limit under which each program serves wrk -c${b.connections} -d${b.seconds}s over HTTPS ` +
      `keep-alive as well as under ${UNCONSTRAINED_MIB} MiB just before (req/s ≥ ${MIN_RPS_SHARE * 100} %, p99 ≤ 2× ` +
      "or +2 ms, no error, no OOM kill, serving after)",
  );
  const found = new Map<Subject, number | undefined>();
  for (const subject of subjects) {
    // The first run only sets the top of the search: twice its peak, since just above it the usage's swings still
    // meet the limit.
    const first = await runUnder(b, subject, UNCONSTRAINED_MIB);
    if (first === undefined) return false;
    const broken = failure(first);
    row(first, broken === undefined ? "sets the search's top" : `fails without a limit: ${broken}`);
    if (broken !== undefined) {
      throw new Error(`${subject} does not serve under ${UNCONSTRAINED_MIB} MiB (see the row)`);
    }
    const holds = async (limitMib: number) => {
      const outcome = await servesUnder(b, subject, limitMib);
      if (outcome === undefined) throw new Error("the memory cgroup went away");
      return outcome.why === undefined;
    };
    found.set(subject, await smallestHolding(0, 2 * Math.ceil(first.peak / 1048576), holds));
  }
  const floor = found.get("floor");
  const ep = found.get("extractedprism");
  console.log("");
  for (const [subject, limit] of found) {
    console.log(`${subject}: ${limit === undefined ? "no limit found (see the rows)" : `${limit} MiB`}`);
  }
  if (floor !== undefined && ep !== undefined) {
    console.log(`extractedprism needs ${ep - floor >= 0 ? "+" : ""}${ep - floor} MiB over the floor`);
  }
  return [...found.values()].every((limit) => limit !== undefined);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      "limit-mib": { type: "string", default: "64" },
      connections: { type: "string" },
      seconds: { type: "string" },
      system: { type: "string" },
      "find-min": { type: "boolean", default: false },
      "proxy-arg": { type: "string", multiple: true, default: [] },
      "proxy-cmd": { type: "string" },
    },
  });
  const findMin = values["find-min"];
  let limitMib: number, connections: number, seconds: number;
  try {
    limitMib = parseCount("limit-mib", values["limit-mib"], 4096);
    connections = parseCount("connections", values.connections ?? (findMin ? "32" : "512"), 4096);
    seconds = parseCount("seconds", values.seconds ?? (findMin ? "8" : "10"), 120);
    if (values.system !== undefined && values.system !== "extractedprism" && values.system !== "floor") {
      throw new Error(`Invalid --system '${values.system}': expected extractedprism or floor`);
    }
  } catch (e) {
    console.error(`error: ${e instanceof Error ? e.message : e}`);
    return 2;
  }
  if (Deno.uid() !== 0) {
    console.error("Skipping: a memory cgroup needs root");
    return 0;
  }
  if (!which("wrk") || !which("openssl")) {
    console.error("error: wrk and openssl are needed (apt-get install -y wrk openssl)");
    return 1;
  }
  const repoRoot = new URL("../", import.meta.url).pathname;
  const proxyCmd = values["proxy-cmd"];
  let start: Command;
  try {
    start = proxyCmd === undefined ? await startTask(`${repoRoot}deno.json`) : parseCommand(proxyCmd);
  } catch (e) {
    console.error(`error: ${e instanceof Error ? e.message : e}`);
    return 2;
  }
  const children = new Children();
  const stop = new AbortController();
  const onSignal = () => {
    console.error("Interrupted: stopping every process the bench started");
    stop.abort(new Error("Interrupted"));
    children.close();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const dir = await Deno.makeTempDir({ prefix: "ep_memlimit_" });
  try {
    const cert = await makeCertificate(children, dir); // the backend's HTTPS certificate
    const backend = await startBackend(children, { dir, cpus: "0" });
    const script = `${dir}/report.lua`;
    await Deno.writeTextFile(script, WRK_REPORT_LUA);
    const deno = privateCopy(dir, Deno.execPath(), "deno");
    const copies = new Map([[Deno.execPath(), deno]]);
    const program = start.argv[0] as string;
    if (program !== Deno.execPath()) {
      // A compiled binary (`--proxy-cmd=dist/extractedprism`), relative to the repository as the runs' cwd is.
      const path = new URL(program, `file://${repoRoot}`).pathname;
      try {
        copies.set(program, privateCopy(dir, path, "proxy"));
      } catch (e) {
        throw new Error(`Cannot copy --proxy-cmd's program '${path}': ${e instanceof Error ? e.message : e}`);
      }
    }
    const caPath = `${dir}/cert.pem`; // written by makeCertificate
    const b: Bench = {
      children,
      start,
      deno,
      copies,
      backendPort: backend.tlsPort,
      cert,
      caPath,
      script,
      connections,
      seconds,
      proxyArgs: values["proxy-arg"],
      signal: stop.signal,
    };
    const system = values.system as Subject | undefined;
    if (findMin) return (await findMinimum(b, system === undefined ? ["floor", "extractedprism"] : [system])) ? 0 : 1;
    return (await checkLimit(b, system ?? "extractedprism", limitMib)) ? 0 : 1;
  } catch (e) {
    if (stop.signal.aborted) return 130;
    console.error(`Memory-limit bench failed: ${e instanceof Error ? e.message : e}`);
    return 1;
  } finally {
    await children.close();
    await Deno.remove(dir, { recursive: true });
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}

if (import.meta.main) Deno.exit(await main());
