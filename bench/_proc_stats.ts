/**
 * What the bench reads from `/proc`: process trees, their CPU time and resident memory (sampled and high-water mark),
 * and the machine's per-CPU busy time.
 *
 * @module
 */

const decoder = new TextDecoder();

/** `pid` and its descendants, parents first. */
export function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    const p = out[i]!;
    let tasks: string[] = [];
    try {
      tasks = [...Deno.readDirSync(`/proc/${p}/task`)].map((e) => e.name);
    } catch {
      continue;
    }
    for (const t of tasks) {
      try {
        const kids = Deno.readTextFileSync(`/proc/${p}/task/${t}/children`).trim();
        if (kids) { for (const k of kids.split(/\s+/)) out.push(Number(k)); }
      } catch { /* thread ended */ }
    }
  }
  return out;
}

let clockTicks: number | undefined;

/** Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`, 100 on Linux). */
export async function clockTicksPerSecond(): Promise<number> {
  if (clockTicks !== undefined) return clockTicks;
  try {
    const out = await new Deno.Command("getconf", { args: ["CLK_TCK"], stdout: "piped", stderr: "null" }).output();
    const n = Number(decoder.decode(out.stdout).trim());
    clockTicks = Number.isInteger(n) && n > 0 ? n : 100;
  } catch {
    clockTicks = 100;
  }
  return clockTicks;
}

/** CPU time (user + system, clock ticks) of one process, or 0 if it is gone. */
function processCpuTicks(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/** CPU time (user + system, clock ticks) of `pid` and its descendants. */
export function treeCpuTicks(pid: number): number {
  return processTree(pid).reduce((sum, p) => sum + processCpuTicks(p), 0);
}

function statusKiB(pid: number, field: "VmRSS" | "VmHWM" | "RssAnon"): number {
  try {
    const text = Deno.readTextFileSync(`/proc/${pid}/status`);
    const m = text.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Resident memory (KiB) of `pid` and its descendants. */
export function treeRssKiB(pid: number): number {
  return processTree(pid).reduce((sum, p) => sum + statusKiB(p, "VmRSS"), 0);
}

/** Anonymous resident memory (KiB, `RssAnon`: heap, stacks — not the program's file pages) of a process tree. */
export function treeRssAnonKiB(pid: number): number {
  return processTree(pid).reduce((sum, p) => sum + statusKiB(p, "RssAnon"), 0);
}

/** High-water mark of resident memory (KiB, `VmHWM`) summed over `pid` and its descendants. */
export function treeHwmKiB(pid: number): number {
  return processTree(pid).reduce((sum, p) => sum + statusKiB(p, "VmHWM"), 0);
}

/** Samples a process tree's RSS every `everyMs` until disposed; `peakKiB` is the larger of samples and `VmHWM`. */
export class RssSampler implements Disposable {
  readonly #pid: number;
  readonly #timer: ReturnType<typeof setInterval>;
  #peak = 0;

  /** Starts sampling at once, then every `everyMs`. */
  constructor(pid: number, everyMs = 50) {
    this.#pid = pid;
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), everyMs);
  }

  #sample(): void {
    this.#peak = Math.max(this.#peak, treeRssKiB(this.#pid));
  }

  /** The peak so far: the largest sample, or the kernel's high-water mark if that is larger. */
  get peakKiB(): number {
    this.#sample();
    return Math.max(this.#peak, treeHwmKiB(this.#pid));
  }

  /** Stops sampling. */
  [Symbol.dispose](): void {
    clearInterval(this.#timer);
  }
}

/**
 * Clock ticks the whole machine spent in processes (user + nice + system, from `/proc/stat`) plus the ticks the
 * hypervisor stole; interrupt time is left out because processes' own counters may not include it either.
 */
export function machineProcessTicks(): number {
  const line = Deno.readTextFileSync("/proc/stat").split("\n")[0] ?? "";
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  return (v[0] ?? 0) + (v[1] ?? 0) + (v[2] ?? 0) + (v[7] ?? 0);
}

/** Busy and total clock ticks of each CPU listed in `cpus` (e.g. `"0"` or `"0,1"`), summed, from `/proc/stat`. */
export function cpuTicks(cpus: string): { busy: number; total: number } {
  const wanted = new Set(cpus.split(",").map((c) => `cpu${c.trim()}`));
  let busy = 0, total = 0;
  for (const line of Deno.readTextFileSync("/proc/stat").split("\n")) {
    const f = line.trim().split(/\s+/);
    if (!wanted.has(f[0] ?? "")) continue;
    const v = f.slice(1).map(Number);
    const all = v.reduce((a, b) => a + b, 0);
    total += all;
    busy += all - (v[3] ?? 0) - (v[4] ?? 0);
  }
  return { busy, total };
}
