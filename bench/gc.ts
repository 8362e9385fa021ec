/**
 * What the garbage collector costs per new connection: extractedprism (the `start` task) against the Deno floor relay,
 * each under wrk's `Connection: close` load (16 clients, plain HTTP backend), with V8's `--trace-gc-nvp` added to the
 * task's `--v8-flags`. Reports young collections per 1,000 connections, their average pause, what each promoted to
 * the old generation, the full collections, and the GC pause and process CPU per connection. Promotion is the number
 * to watch: the floor promotes almost nothing, so what extractedprism promotes is per-connection state that outlives
 * its connection (see lib/live_list.ts for the case that found it). Not part of the tests; loopback only.
 *
 * ```sh
 * deno task bench:gc                     # 3 rounds of 5 s, medians
 * deno task bench:gc --rounds=5 --duration=10s
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type Backend, makeCertificate, startBackend } from "./_backend.ts";
import { WRK_REPORT_LUA } from "./_configs.ts";
import { runWrk } from "./_load.ts";
import { clockTicksPerSecond, treeCpuTicks } from "./_proc_stats.ts";
import { Children, parseCount, pinSelf, which } from "./_process.ts";
import { median } from "./_report.ts";
import { type Command, extractedprism, floorRelay, parseCommand, startTask, type System } from "./_systems.ts";
import { parseSeconds } from "./run.ts";

const HELP = `Usage: deno task bench:gc [options]

GC cost per new connection, extractedprism against the Deno floor relay (V8 --trace-gc-nvp).

Options:
  --duration=DUR   length of each load run (default 5s)
  --rounds=N       runs per system, interleaved; the table shows medians (default 3)
  --proxy-cmd=CMD  run extractedprism with CMD instead of deno.json's start task
  -h, --help       this text
`;

/** One V8 `--trace-gc-nvp` record (the fields used here). */
interface GcRecord {
  /** "s" for a young-generation scavenge, "ms"/"mc" for full collections. */
  readonly gc: string;
  readonly pause: number;
  readonly promoted: number;
  /** Milliseconds since the isolate started (from the line's prefix). */
  readonly atMs: number;
}

/** Parses the `--trace-gc-nvp` lines of a process's output. */
export function parseGcTrace(text: string): GcRecord[] {
  const out: GcRecord[] = [];
  for (const m of text.matchAll(/(\d+) ms: GC: (\{[^}]*\})/g)) {
    const j = JSON.parse(m[2]!) as { gc?: unknown; pause?: unknown; promoted?: unknown };
    if (typeof j.gc !== "string" || typeof j.pause !== "number") continue;
    out.push({
      gc: j.gc,
      pause: j.pause,
      promoted: typeof j.promoted === "number" ? j.promoted : 0,
      atMs: Number(m[1]),
    });
  }
  return out;
}

/** The figures of one run. */
export interface GcRun {
  readonly connRps: number;
  readonly cpuUsPerConn: number;
  readonly scavengesPer1000: number;
  readonly scavengePauseMs: number;
  readonly promotedKiBPerScavenge: number;
  readonly fullGcs: number;
  readonly gcUsPerConn: number;
}

/** Sums the collections that started inside the load window (isolate clock, milliseconds). */
export function summarize(
  records: readonly GcRecord[],
  window: { fromMs: number; toMs: number },
  load: { connections: number; seconds: number; cpuSeconds: number },
): GcRun {
  const inside = records.filter((r) => r.atMs >= window.fromMs && r.atMs <= window.toMs);
  const young = inside.filter((r) => r.gc === "s");
  const n = Math.max(1, load.connections);
  const pauseMs = inside.reduce((s, r) => s + r.pause, 0);
  return {
    connRps: load.connections / load.seconds,
    cpuUsPerConn: (load.cpuSeconds * 1e6) / n,
    scavengesPer1000: (young.length * 1000) / n,
    scavengePauseMs: young.length === 0 ? 0 : young.reduce((s, r) => s + r.pause, 0) / young.length,
    promotedKiBPerScavenge: young.length === 0 ? 0 : young.reduce((s, r) => s + r.promoted, 0) / young.length / 1024,
    fullGcs: inside.length - young.length,
    gcUsPerConn: (pauseMs * 1000) / n,
  };
}

/** The command with `--trace-gc-nvp` added to its `--v8-flags` (or given them). */
export function withGcTrace(command: Command): Command {
  let found = false;
  const argv = command.argv.map((a) => {
    if (!a.startsWith("--v8-flags=")) return a;
    found = true;
    return `${a},--trace-gc-nvp`;
  });
  if (!found) {
    const run = argv.indexOf("run");
    if (run < 0) throw new TypeError(`Cannot add V8 flags to '${command.text}': expected a 'deno run' command`);
    argv.splice(run + 1, 0, "--v8-flags=--trace-gc-nvp");
  }
  return { ...command, argv };
}

async function measureOnce(
  sys: System,
  ctx: { children: Children; dir: string; backend: Backend; wrkScript: string; seconds: number; hz: number },
): Promise<GcRun> {
  const spawnedAt = performance.now();
  const start = {
    children: ctx.children,
    dir: ctx.dir,
    proxyCpus: "1",
    signal: new AbortController().signal,
    outputLimit: 64 * 1024 * 1024, // the whole GC trace: about 2 KB per collection
  };
  const r = await sys.start(ctx.backend.plainPort, start, { tcpHealthCheck: true });
  let load: { fromMs: number; toMs: number; requests: number; seconds: number; cpuSeconds: number };
  try {
    // The window starts with the load, on the isolate's clock: start-up collections fall before it.
    const pid = r.child!.pid;
    const cpu0 = treeCpuTicks(pid);
    const fromMs = performance.now() - spawnedAt;
    const w = await runWrk(ctx.children, {
      url: `http://127.0.0.1:${r.port}/`,
      connections: 16,
      seconds: ctx.seconds,
      script: ctx.wrkScript,
      cpus: "0",
      close: true,
    });
    if (w.errors > 0) console.error(`${sys.key}: ${w.errors} wrk errors`);
    const toMs = performance.now() - spawnedAt;
    load = { fromMs, toMs, requests: w.requests, seconds: w.seconds, cpuSeconds: (treeCpuTicks(pid) - cpu0) / ctx.hz };
  } finally {
    await r.stop(); // V8 flushes the trace at exit
  }
  const { stdout } = await r.child!.output();
  return summarize(parseGcTrace(stdout), load, {
    connections: load.requests,
    seconds: load.seconds,
    cpuSeconds: load.cpuSeconds,
  });
}

/** Markdown rows: one per system, medians of its runs. */
export function renderGcTable(runs: ReadonlyMap<string, GcRun[]>): string {
  const cols: [string, (r: GcRun) => number, number][] = [
    ["new connections/s", (r) => r.connRps, 0],
    ["CPU µs / connection", (r) => r.cpuUsPerConn, 1],
    ["young GCs / 1,000 connections", (r) => r.scavengesPer1000, 1],
    ["young GC pause (ms)", (r) => r.scavengePauseMs, 3],
    ["promoted / young GC (KiB)", (r) => r.promotedKiBPerScavenge, 1],
    ["full GCs per run", (r) => r.fullGcs, 0],
    ["GC pause µs / connection", (r) => r.gcUsPerConn, 1],
  ];
  const lines = [`| system | ${cols.map((c) => c[0]).join(" | ")} |`, `|---|${cols.map(() => "---:").join("|")}|`];
  for (const [name, rs] of runs) {
    lines.push(`| ${name} | ${cols.map(([, f, d]) => median(rs.map(f)).toFixed(d)).join(" | ")} |`);
  }
  return lines.join("\n");
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      duration: { type: "string", default: "5s" },
      rounds: { type: "string", default: "3" },
      "proxy-cmd": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const seconds = parseSeconds(values.duration ?? "5s");
  const rounds = parseCount("rounds", values.rounds ?? "3", 20);
  for (const tool of ["wrk", "taskset", "openssl"]) {
    if (!which(tool)) throw new Error(`Cannot run bench:gc: '${tool}' is not installed (apt-get install -y ${tool})`);
  }
  if (navigator.hardwareConcurrency < 2) throw new Error("Cannot run bench:gc: it pins the proxy and the load apart");
  await pinSelf("0");
  const repoRoot = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const task = values["proxy-cmd"] === undefined
    ? await startTask(`${repoRoot}/deno.json`)
    : parseCommand(values["proxy-cmd"]);
  const traced = withGcTrace(task);
  const systems = [extractedprism(traced, repoRoot), floorRelay(traced)];
  const children = new Children();
  const dir = await Deno.makeTempDir({ prefix: "ep_bench_gc_" });
  try {
    const wrkScript = `${dir}/report.lua`;
    await Deno.writeTextFile(wrkScript, WRK_REPORT_LUA);
    await makeCertificate(children, dir); // the backend serves HTTPS too, though only its plain port is used here
    const backend = await startBackend(children, { dir, cpus: "0" });
    const ctx = { children, dir, backend, wrkScript, seconds, hz: await clockTicksPerSecond() };
    const runs = new Map<string, GcRun[]>(systems.map((s) => [s.key, []]));
    for (let i = 0; i < rounds; i++) {
      for (const s of systems) {
        const run = await measureOnce(s, ctx);
        runs.get(s.key)!.push(run);
        console.error(
          `round ${i + 1}/${rounds} ${s.key}: ${run.connRps.toFixed(0)} conn/s, ` +
            `${run.promotedKiBPerScavenge.toFixed(1)} KiB promoted per young GC, ${
              run.gcUsPerConn.toFixed(1)
            } µs GC/conn`,
        );
      }
    }
    console.log(
      `\`deno task bench:gc ${args.join(" ")}\`: ${rounds} round(s) of ${seconds} s, medians; extractedprism: ` +
        `\`${traced.argv.slice(1).join(" ")}\`; wrk -t1 -c16 \`Connection: close\` on CPU 0, proxy on CPU 1.\n`,
    );
    console.log(renderGcTable(runs));
    return 0;
  } finally {
    await children.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    Deno.exit(1);
  }
}
