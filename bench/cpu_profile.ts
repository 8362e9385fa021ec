/**
 * Where the main thread's time goes per new connection: extractedprism and the floor relay each run with V8's
 * inspector (`--inspect` on a free loopback port), take the new-connection workload of `bench/instructions.ts` (a
 * warm-up, then a fixed number of connections), and V8's sampling profiler records it. The report splits the time
 * per connection into Deno's ops (its Rust functions, with the system calls they make: on loopback a write or a close
 * also runs the peer's TCP processing), JavaScript (ours and Deno's own modules), the garbage collector, and the
 * rest, and lists the functions with the most time of their own.
 *
 * Why: `bench/instructions.ts` counts instructions in user space but cannot name them (the `deno` binary is
 * stripped); this names the JavaScript and the ops, and it includes the kernel's share of each op. The profiler
 * samples, so a figure under about 1 µs per connection is noise. The profiler also slows JavaScript down a little:
 * compare the two systems in one run, not against other benches. Fewer connections than the default measure V8 still
 * tiering up extractedprism's code: with 2,000, its JavaScript read 33 µs per connection against 10–15 with 4,000.
 * Loopback only; every process is stopped at the end.
 *
 * ```sh
 * deno run -A bench/cpu_profile.ts [--connections=4000] [--warmup=1200] [--clients=4] [--rounds=2] [--top=15]
 *   [--systems=extractedprism,floor]
 * ```
 *
 * @module
 */
import { median } from "./_report.ts";
import { openInspector } from "./_inspector.ts";
import { freePort, parseCount } from "./_process.ts";
import { load, startBackend, type Subject, SUBJECTS, untilRelaying } from "./_new_connections.ts";

const flag = (name: string) => Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const count = (name: string, fallback: number, max: number) => {
  const raw = flag(name);
  try {
    return raw === undefined ? fallback : parseCount(name, raw, max);
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    Deno.exit(2);
  }
};
const connections = count("connections", 4000, 100_000);
const warmup = count("warmup", 1200, 100_000);
const clients = count("clients", 4, 64);
const rounds = count("rounds", 2, 10);
const top = count("top", 15, 200);
const systems = (flag("systems") ?? "extractedprism,floor").split(",");
if (systems.length === 0 || systems.some((x) => !SUBJECTS.some((s) => s.name === x))) {
  console.error(`--systems must name extractedprism and/or floor, got '${systems.join(",")}'`);
  Deno.exit(2);
}

/** The parts of a CPU profile that this report reads. */
interface Profile {
  readonly nodes: readonly {
    readonly id: number;
    readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  }[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** Microseconds of its own per function (`name file:line`, or `(idle)`, `(garbage collector)`, `(program)`). */
export function selfTimes(profile: Profile): Map<string, number> {
  const byNode = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    byNode.set(id, (byNode.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const out = new Map<string, number>();
  for (const n of profile.nodes) {
    const t = byNode.get(n.id);
    if (t === undefined) continue;
    const { functionName, url, lineNumber } = n.callFrame;
    const key = url === ""
      ? functionName || "(anonymous)"
      : `${functionName || "(anonymous)"} ${url.replace(/^.*\//, "")}:${lineNumber + 1}`;
    out.set(key, (out.get(key) ?? 0) + t);
  }
  return out;
}

/**
 * Which part of the report a key of {@linkcode selfTimes} counts in. Ops and V8's own entries have no script, so
 * their keys have no file; a function in a script is JavaScript, whatever its name.
 */
export function partOf(key: string): "ops" | "javascript" | "gc" | "idle" | "other" {
  if (/ \S+:\d+$/.test(key)) return "javascript";
  if (key.startsWith("op_")) return "ops";
  if (key === "(garbage collector)") return "gc";
  if (key === "(idle)") return "idle";
  return "other";
}

const PARTS = ["ops", "javascript", "gc", "other", "idle"] as const;

/** One round of one subject: its self times in µs per connection. */
async function measure(subject: Subject, backendPort: number): Promise<Map<string, number>> {
  const port = freePort();
  const inspectPort = freePort();
  const [command, ...args] = subject.argv(port, backendPort, [`--inspect=127.0.0.1:${inspectPort}`]);
  const child = new Deno.Command(command!, {
    args,
    cwd: subject.cwd,
    env: subject.env,
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await untilRelaying(port, 30_000, subject.name);
    await load(port, warmup, clients);
    const v8 = await openInspector(`127.0.0.1:${inspectPort}`);
    try {
      await v8.call("Profiler.enable");
      await v8.call("Profiler.setSamplingInterval", { interval: 50 });
      await v8.call("Profiler.start");
      const failures = await load(port, connections, clients);
      if (failures.length > 0) console.error(`${subject.name}: ${failures.length} connections failed: ${failures[0]}`);
      const { profile } = await v8.call("Profiler.stop") as { profile: Profile };
      const perConnection = new Map<string, number>();
      for (const [k, t] of selfTimes(profile)) perConnection.set(k, t / connections);
      return perConnection;
    } finally {
      v8.close();
    }
  } finally {
    child.kill("SIGTERM");
    await child.status;
  }
}

if (import.meta.main) {
  const backend = startBackend();
  try {
    const runs: Record<string, Map<string, number>[]> = {};
    for (let r = 0; r < rounds; r++) {
      for (const s of SUBJECTS.filter((x) => systems.includes(x.name))) {
        (runs[s.name] ??= []).push(await measure(s, backend.port));
        console.error(`round ${r + 1}/${rounds}: ${s.name} done`);
      }
    }
    const names = Object.keys(runs);
    /** The median over rounds of what `f` makes of each round. */
    const med = (name: string, f: (m: Map<string, number>) => number) => median(runs[name]!.map(f));
    const part = (p: string) => (m: Map<string, number>) =>
      [...m].filter(([k]) => partOf(k) === p).reduce((a, [, t]) => a + t, 0);
    console.log(
      `Main-thread time per new connection, µs (V8's sampling profiler, ${connections} connections after ` +
        `${warmup} of warm-up, ${clients} clients, medians of ${rounds} rounds):`,
    );
    console.log("");
    console.log(`| part | ${names.join(" | ")} |`);
    console.log(`|---|${names.map(() => "---:").join("|")}|`);
    for (const p of PARTS) console.log(`| ${p} | ${names.map((n) => med(n, part(p)).toFixed(1)).join(" | ")} |`);
    const keys = new Set(names.flatMap((n) => runs[n]!.flatMap((m) => [...m.keys()])));
    const rows = [...keys].filter((k) => partOf(k) !== "idle").map((k) => ({
      k,
      v: names.map((n) => med(n, (m) => m.get(k) ?? 0)),
    })).sort((a, b) => Math.max(...b.v) - Math.max(...a.v)).slice(0, top);
    console.log("");
    console.log(`| function (self time) | ${names.join(" | ")} |`);
    console.log(`|---|${names.map(() => "---:").join("|")}|`);
    for (const { k, v } of rows) console.log(`| \`${k}\` | ${v.map((x) => x.toFixed(2)).join(" | ")} |`);
  } finally {
    backend.close();
  }
}
