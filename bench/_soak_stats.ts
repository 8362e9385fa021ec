/**
 * The pure parts of the soak run (bench/soak.ts): reading a sample from `/proc/PID/status`, the least-squares slope,
 * the growth after warm-up, counting the proxy's log lines by level, the verdict and the Markdown report. No I/O here,
 * so that tests/bench_soak_test.ts checks all of it in CI in milliseconds.
 *
 * @module
 */
import { median } from "./_report.ts";

/** One sample of the proxy process. */
export interface Sample {
  /** Milliseconds since the load started. */
  readonly atMs: number;
  /** Resident memory (`VmRSS`), KiB. */
  readonly rssKiB: number;
  /** Anonymous resident memory (`RssAnon`: V8 heap, malloc, stacks; not the program's file pages), KiB. */
  readonly anonKiB: number;
  /** Open descriptors (entries of `/proc/PID/fd`). */
  readonly fds: number;
  /** Anonymous resident memory split by owner (from `/proc/PID/smaps`), KiB, when read. */
  readonly parts?: SmapsParts;
}

/**
 * `RssAnon` split by who owns each mapping, KiB. The owner is inferred from the mapping's shape on x86_64 Linux
 * (Deno's V8 has no pointer-compression cage):
 * - `v8Heap`: V8's pages, which it maps at random hints below 2^46 (256 KiB pages and large objects);
 * - `v8Code`: executable anonymous memory (V8's code space, `rwxp`);
 * - `mallocMain`: malloc's main arena (`[heap]`);
 * - `mallocThreads`: malloc's per-thread arenas (readable, not executable, starting on a 64 MiB boundary);
 * - `stacks`: the main thread's `[stack]`, and every mapping right after a 4 KiB guard (`---p`): a thread's stack;
 * - `file`: copy-on-write pages of mapped files (the binary's data);
 * - `other`: the rest (the binary's `.bss` and small runtime maps).
 */
export interface SmapsParts {
  readonly v8Heap: number;
  readonly v8Code: number;
  readonly mallocMain: number;
  readonly mallocThreads: number;
  readonly stacks: number;
  readonly file: number;
  readonly other: number;
}

/** The keys of {@linkcode SmapsParts} with their labels in the report, in the report's order. */
export const SMAPS_PARTS: readonly (readonly [keyof SmapsParts, string])[] = [
  ["v8Heap", "V8's heap pages"],
  ["v8Code", "V8's code space (`rwxp`)"],
  ["mallocMain", "malloc's main arena (`[heap]`)"],
  ["mallocThreads", "malloc's thread arenas"],
  ["stacks", "thread stacks"],
  ["file", "files' copy-on-write pages"],
  ["other", "other anonymous"],
];

const ARENA_ALIGN = 64 * 1024 * 1024;
const V8_HINT_LIMIT = 2 ** 46;

/** Splits the `Anonymous:` KiB of `/proc/PID/smaps` text by {@linkcode SmapsParts}. */
export function parseSmapsParts(text: string): SmapsParts {
  const parts = { v8Heap: 0, v8Code: 0, mallocMain: 0, mallocThreads: 0, stacks: 0, file: 0, other: 0 };
  let owner: keyof SmapsParts = "other";
  let prevEnd = -1, prevGuard = false;
  for (const line of text.split("\n")) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) {
      const start = parseInt(m[1]!, 16), end = parseInt(m[2]!, 16), perms = m[3]!, name = m[4]!.trim();
      if (name.startsWith("/")) owner = "file";
      else if (name === "[heap]") owner = "mallocMain";
      else if (name === "[stack]" || (prevGuard && prevEnd === start)) owner = "stacks";
      else if (perms.includes("x")) owner = "v8Code";
      else if (start % ARENA_ALIGN === 0 && perms.startsWith("r")) owner = "mallocThreads";
      else if (start < V8_HINT_LIMIT && name === "") owner = "v8Heap";
      else owner = "other";
      prevGuard = perms === "---p" && end - start === 4096 && name === "";
      prevEnd = end;
    } else if (line.startsWith("Anonymous:")) {
      parts[owner] += Number(/(\d+) kB/.exec(line)?.[1] ?? 0);
    }
  }
  return parts;
}

/** The fields of `/proc/PID/status` a sample needs, KiB; throws when one is missing (the process is gone or not Linux). */
export function parseProcStatus(text: string): { rssKiB: number; anonKiB: number } {
  const field = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB$`, "m").exec(text);
    if (!m) throw new TypeError(`Cannot read '${name}' from /proc/PID/status: expected a line '${name}: N kB'`);
    return Number(m[1]);
  };
  return { rssKiB: field("VmRSS"), anonKiB: field("RssAnon") };
}

/** Parses a soak duration such as `10m`, `90s`, `1500ms` or `1h` (a bare number is seconds) into milliseconds. */
export function parseSoakDuration(flag: string, text: string, minMs: number, maxMs: number): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new RangeError(`Cannot parse --${flag} '${text}': expected a duration like '10m', '60s' or '1h'`);
  const unit = m[2] === "ms" ? 1 : m[2] === "m" ? 60_000 : m[2] === "h" ? 3_600_000 : 1000;
  const ms = Math.round(Number(m[1]) * unit);
  if (ms < minMs || ms > maxMs) {
    throw new RangeError(`Cannot use --${flag} '${text}': expected from ${minMs / 1000}s to ${maxMs / 1000}s`);
  }
  return ms;
}

/**
 * The default window of the growth figure: a sixth of the time after warm-up, from 60 s to 5 min. V8's committed heap
 * swings by 1–2 MiB between collections, so a one-minute median at either end moves the growth by about 1 MiB in a
 * long run (measured: 4.02 MiB with 60 s windows, 2.32 with 5 min, for one 60-minute run).
 */
export function defaultWindowMs(durationMs: number, warmupMs: number): number {
  return Math.min(300_000, Math.max(60_000, Math.round((durationMs - warmupMs) / 6 / 1000) * 1000));
}

/** Least-squares slope of `ys` over `xs` (units of y per unit of x); 0 for fewer than two distinct x. */
export function slope(xs: readonly number[], ys: readonly number[]): number {
  const n = Math.min(xs.length, ys.length);
  if (n < 2) return 0;
  let sx = 0, sy = 0;
  for (let i = 0; i < n; i++) {
    sx += xs[i]!;
    sy += ys[i]!;
  }
  const mx = sx / n, my = sy / n;
  let sxy = 0, sxx = 0;
  for (let i = 0; i < n; i++) {
    const dx = xs[i]! - mx;
    sxy += dx * (ys[i]! - my);
    sxx += dx * dx;
  }
  return sxx === 0 ? 0 : sxy / sxx;
}

/** What one series did after warm-up. */
export interface Trend {
  /** Least-squares slope over every sample after warm-up, per minute. */
  readonly perMinute: number;
  /**
   * Median of the samples in the last window minus the median of the samples in the first window after warm-up (the
   * robust growth the verdict uses: one GC more or less at either end does not move it).
   */
  readonly growth: number;
  /** Last sample minus the first sample after warm-up. */
  readonly firstToLast: number;
  /** Largest sample after warm-up. */
  readonly max: number;
  /** Median of the first window after warm-up. */
  readonly startMedian: number;
  /** Median of the last window. */
  readonly endMedian: number;
}

/** The three series after warm-up, in MiB (memory) and descriptors. */
export interface Trends {
  /** Samples after warm-up. */
  readonly samples: number;
  /** Minutes from the first to the last sample after warm-up. */
  readonly minutes: number;
  readonly rssMiB: Trend;
  readonly anonMiB: Trend;
  /** When every sample after warm-up has `parts`: the anonymous memory by owner. */
  readonly partsMiB?: { readonly [K in keyof SmapsParts]: Trend };
  readonly fds: Trend;
}

/**
 * Trends of the samples taken at or after `warmupMs`; the first and last windows are `windowMs` long (each at least
 * one sample). Throws when fewer than two samples follow the warm-up.
 */
export function trends(all: readonly Sample[], warmupMs: number, windowMs: number): Trends {
  const s = all.filter((x) => x.atMs >= warmupMs);
  if (s.length < 2) {
    throw new RangeError(`Cannot compute a trend from ${s.length} samples after warm-up: expected at least 2`);
  }
  const t0 = s[0]!.atMs, tEnd = s.at(-1)!.atMs;
  const first = s.filter((x) => x.atMs < t0 + windowMs);
  const last = s.filter((x) => x.atMs > tEnd - windowMs);
  const minutes = s.map((x) => (x.atMs - t0) / 60_000);
  const trend = (get: (x: Sample) => number): Trend => {
    const ys = s.map(get);
    const startMedian = median(first.map(get));
    const endMedian = median(last.map(get));
    return {
      perMinute: slope(minutes, ys),
      growth: endMedian - startMedian,
      firstToLast: ys.at(-1)! - ys[0]!,
      max: Math.max(...ys),
      startMedian,
      endMedian,
    };
  };
  return {
    samples: s.length,
    minutes: (tEnd - t0) / 60_000,
    rssMiB: trend((x) => x.rssKiB / 1024),
    anonMiB: trend((x) => x.anonKiB / 1024),
    ...(s.every((x) => x.parts !== undefined)
      ? {
        partsMiB: Object.fromEntries(
          SMAPS_PARTS.map(([k]) => [k, trend((x) => (x.parts?.[k] ?? 0) / 1024)]),
        ) as { [K in keyof SmapsParts]: Trend },
      }
      : {}),
    fds: trend((x) => x.fds),
  };
}

/** The proxy's stderr lines counted by level; a line that is not a JSON log record is `other` (a crash, a panic). */
export interface LogCounts {
  readonly debug: number;
  readonly info: number;
  readonly warning: number;
  readonly error: number;
  readonly other: number;
  /** Up to five distinct error and other lines, for the report. */
  readonly examples: readonly string[];
}

/** Counts `lines` (the JSON-lines log format) by level. */
export function countLogLevels(lines: Iterable<string>): LogCounts {
  const c = { debug: 0, info: 0, warning: 0, error: 0, other: 0 };
  const examples = new Set<string>();
  for (const line of lines) {
    if (line.trim() === "") continue;
    let level: unknown;
    try {
      level = (JSON.parse(line) as { level?: unknown }).level;
    } catch { /* not JSON */ }
    switch (typeof level === "string" ? level.toUpperCase() : undefined) {
      case "TRACE":
      case "DEBUG":
        c.debug++;
        continue;
      case "INFO":
        c.info++;
        continue;
      case "WARN":
      case "WARNING":
        c.warning++;
        continue;
      case "ERROR":
      case "FATAL":
        c.error++;
        break;
      default:
        c.other++;
    }
    if (examples.size < 5) examples.add(line.length > 300 ? `${line.slice(0, 300)}…` : line);
  }
  return { ...c, examples: [...examples] };
}

/** What the load and the fault injection did. */
export interface LoadCounts {
  /** Short connections that completed their request and response. */
  readonly churnOk: number;
  /** Short connections that failed (connect, TLS, no or a wrong response, timeout). */
  readonly churnFailed: number;
  /** Long-lived streams opened. */
  readonly streamsOpened: number;
  /** Streams that ended before their planned lifetime (the proxy closed them: upstream unhealthy or removed). */
  readonly streamsCut: number;
  /** Streams that could not be opened at all. */
  readonly streamsFailed: number;
  /** Lines echoed back through streams. */
  readonly streamEchoes: number;
  /** Echoes that came back different from what was sent (a corrupting relay). */
  readonly streamMismatches: number;
  /** EndpointSlice changes written to the fake API server. */
  readonly discoveryChanges: number;
  /** Probe flaps (readyz answer or listener toggled). */
  readonly flaps: number;
  /** Upstream state changes seen on `/upstreams` between samples. */
  readonly stateChangesSeen: number;
  /** Samples whose `/upstreams` request failed. */
  readonly statusFailures: number;
}

/** The verdict: a list of reasons to fail (empty: pass). */
export function verdict(
  t: Trends,
  opts: { rssBarMiB: number; proxyExitedEarly: boolean; logs: LogCounts },
): string[] {
  const why: string[] = [];
  if (opts.proxyExitedEarly) why.push("the proxy exited during the run");
  if (t.rssMiB.growth > opts.rssBarMiB) {
    why.push(`RSS grew ${t.rssMiB.growth.toFixed(2)} MiB after warm-up (bar: ${opts.rssBarMiB} MiB)`);
  }
  if (opts.logs.error > 0 || opts.logs.other > 0) {
    why.push(`the proxy logged ${opts.logs.error} error lines and ${opts.logs.other} lines that are no log record`);
  }
  return why;
}

const f = (n: number, digits: number) => (Object.is(n, -0) ? 0 : n).toFixed(digits);
const signed = (n: number, digits: number) => `${n >= 0 ? "+" : ""}${f(n, digits)}`;

/** Renders the trends as a Markdown table. */
export function renderTrends(t: Trends, windowMs: number): string {
  const w = `${Math.round(windowMs / 1000)} s`;
  type Row = [string, Trend, number, string];
  const rows: Row[] = [
    ["RSS (`VmRSS`, MiB)", t.rssMiB, 2, "MiB/min"],
    ["anonymous RSS (`RssAnon`: heap, stacks; MiB)", t.anonMiB, 2, "MiB/min"],
    ...(t.partsMiB
      ? SMAPS_PARTS.map(([k, label]) => [`of which ${label}, MiB`, t.partsMiB![k], 2, "MiB/min"] as Row)
      : []),
    ["open descriptors", t.fds, 0, "fds/min"],
  ];
  return [
    `| series | slope (least squares) | growth (median last ${w} − median first ${w}) | first → last | start / end median | max |`,
    "|---|---:|---:|---:|---:|---:|",
    ...rows.map(([label, x, d, unit]) =>
      `| ${label} | ${signed(x.perMinute, d === 0 ? 2 : 3)} ${unit} | ${signed(x.growth, d)} | ${
        signed(x.firstToLast, d)
      } | ${f(x.startMedian, d)} / ${f(x.endMedian, d)} | ${f(x.max, d)} |`
    ),
  ].join("\n");
}

/** Renders the load and error counts as a Markdown table. */
export function renderCounts(load: LoadCounts, logs: LogCounts): string {
  const rows: [string, number | string][] = [
    ["short connections completed", load.churnOk],
    ["short connections failed", load.churnFailed],
    ["long-lived streams opened", load.streamsOpened],
    ["  ended early by the proxy (upstream unhealthy or removed; re-opened)", load.streamsCut],
    ["  failed to open", load.streamsFailed],
    ["  lines echoed through them", load.streamEchoes],
    ["  echoes that differed from what was sent", load.streamMismatches],
    ["EndpointSlice changes", load.discoveryChanges],
    ["probe flaps (readyz answer or listener toggled)", load.flaps],
    ["upstream state changes seen on /upstreams", load.stateChangesSeen],
    ["failed /upstreams requests", load.statusFailures],
    ["proxy log lines: error", logs.error],
    ["proxy log lines: not a log record (crash output)", logs.other],
    ["proxy log lines: warning", logs.warning],
    ["proxy log lines: info", logs.info],
  ];
  return ["| count | value |", "|---|---:|", ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join("\n");
}

/** One collection from V8's `--trace-gc` output. */
export interface GcEvent {
  /** Milliseconds since the isolate started. */
  readonly atMs: number;
  /** `Scavenge`, `Mark-Compact`, `Minor Mark-Sweep`... as V8 names it. */
  readonly kind: string;
  /** Heap in use after the collection, MB as V8 prints it (MiB). */
  readonly afterMiB: number;
}

/** Parses V8's `--trace-gc` lines (`[pid:isolate] 123 ms: Mark-Compact 9.8 (12.1) -> 7.6 (12.3) MB, ...`). */
export function parseGcTrace(text: string): GcEvent[] {
  const out: GcEvent[] = [];
  const re = /\]\s+(\d+) ms: ([A-Za-z][A-Za-z -]*?)(?: \([^)]*\))? ([\d.]+) \(([\d.]+)\) -> ([\d.]+) \(([\d.]+)\) MB/g;
  for (const m of text.matchAll(re)) out.push({ atMs: Number(m[1]), kind: m[2]!, afterMiB: Number(m[5]) });
  return out;
}

/** What the full collections say: the heap still in use after each one is the live heap, the truest leak signal. */
export interface HeapTrend {
  /** Full collections after warm-up. */
  readonly fullGcs: number;
  /** Live heap after the first and the last of them, MiB. */
  readonly firstMiB: number;
  readonly lastMiB: number;
  /** Largest live heap after one of them, MiB. */
  readonly maxMiB: number;
  /** Least-squares slope of the live heap over them, MiB/min (0 with fewer than two). */
  readonly perMinute: number;
  /** Young-generation collections after warm-up. */
  readonly youngGcs: number;
}

/** The heap trend of the collections at or after `fromMs` (isolate time); `undefined` when no full one happened. */
export function heapTrend(events: readonly GcEvent[], fromMs: number): HeapTrend | undefined {
  const after = events.filter((e) => e.atMs >= fromMs);
  const full = after.filter((e) => e.kind.includes("Mark-Compact") || /^(Incremental )?Mark-Sweep/.test(e.kind));
  if (full.length === 0) return undefined;
  return {
    fullGcs: full.length,
    firstMiB: full[0]!.afterMiB,
    lastMiB: full.at(-1)!.afterMiB,
    maxMiB: Math.max(...full.map((e) => e.afterMiB)),
    perMinute: slope(full.map((e) => e.atMs / 60_000), full.map((e) => e.afterMiB)),
    youngGcs: after.length - full.length,
  };
}
