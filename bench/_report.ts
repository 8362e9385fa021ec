/**
 * The report: the metrics, one Markdown table row each (one column per system plus extractedprism's ratios to the
 * direct connection and to HAProxy), and the PASS/FAIL verdict of each target.
 *
 * @module
 */
import type { SystemKey } from "./_systems.ts";

/** Every measured quantity. */
export type MetricKey =
  | "smallRps"
  | "smallP50"
  | "smallP99"
  | "smallCpuUs"
  | "smallCpuPct"
  | "smallLoadPct"
  | "connLoadPct"
  | "idleRss"
  | "idleRssAnon"
  | "peakRss32"
  | "rps512"
  | "p99at512"
  | "peakRss512"
  | "bulkGbps"
  | "connRps"
  | "connCpuUs"
  | "startupMs";

/** One row of the table. */
export interface MetricDef {
  /** What is measured. */
  readonly key: MetricKey;
  /** The row's text. */
  readonly label: string;
  /** Decimals shown. */
  readonly digits: number;
}

/** The rows of the table, in order. */
export const METRICS: readonly MetricDef[] = [
  { key: "smallRps", label: "small HTTPS req/s (32 keep-alive conns)", digits: 0 },
  { key: "smallP50", label: "small HTTPS p50 latency (ms)", digits: 3 },
  { key: "smallP99", label: "small HTTPS p99 latency (ms)", digits: 3 },
  { key: "bulkGbps", label: "bulk single stream (Gbit/s)", digits: 2 },
  { key: "connRps", label: "new connections/s (16 clients, connect→request→close)", digits: 0 },
  { key: "smallCpuUs", label: "proxy CPU per small request (µs)", digits: 2 },
  { key: "smallCpuPct", label: "proxy CPU busy during small requests (% of a core)", digits: 0 },
  { key: "smallLoadPct", label: "load CPU busy during small requests (%)", digits: 0 },
  { key: "connCpuUs", label: "proxy CPU per new connection (µs)", digits: 1 },
  { key: "connLoadPct", label: "load CPU busy during new connections (%)", digits: 0 },
  { key: "idleRss", label: "proxy idle RSS (MiB)", digits: 1 },
  { key: "idleRssAnon", label: "  of which anonymous (heap, stacks; the rest is program file pages) (MiB)", digits: 1 },
  { key: "peakRss32", label: "proxy peak RSS, 32 keep-alive conns (MiB)", digits: 1 },
  { key: "peakRss512", label: "proxy peak RSS, 512 keep-alive conns (MiB)", digits: 1 },
  { key: "rps512", label: "small HTTPS req/s (512 keep-alive conns)", digits: 0 },
  { key: "p99at512", label: "small HTTPS p99 latency, 512 conns (ms)", digits: 2 },
  { key: "startupMs", label: "process start → first relayed response (ms)", digits: 1 },
];

/** The columns, in order. */
export const SYSTEM_KEYS: readonly SystemKey[] = [
  "direct",
  "extractedprism",
  "floor",
  "floor-probe",
  "haproxy",
  "nginx",
];

/** The median of a non-empty list (the mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Samples per system and metric; a cell shows the median. */
export class Results {
  readonly #samples = new Map<string, number[]>();
  /** Per system, why it was skipped. */
  readonly skipped = new Map<SystemKey, string>();
  /** Per system and metric, a note shown in the cell (e.g. errors seen). */
  readonly #flags = new Map<string, string>();

  /** Adds one sample. */
  add(system: SystemKey, metric: MetricKey, value: number): void {
    const k = `${system}/${metric}`;
    const list = this.#samples.get(k) ?? [];
    list.push(value);
    this.#samples.set(k, list);
  }

  /** Marks a cell (shown after the value), e.g. `" (!)"` for a run with errors; marks accumulate, each once. */
  flag(system: SystemKey, metric: MetricKey, mark: string): void {
    const k = `${system}/${metric}`;
    const have = this.#flags.get(k) ?? "";
    if (!have.includes(mark)) this.#flags.set(k, have + mark);
  }

  /** The median of the samples, or `undefined`. */
  get(system: SystemKey, metric: MetricKey): number | undefined {
    const list = this.#samples.get(`${system}/${metric}`);
    return !list || list.length === 0 ? undefined : median(list);
  }

  /** The smallest and largest sample, or `undefined` with fewer than two samples. */
  range(system: SystemKey, metric: MetricKey): [number, number] | undefined {
    const list = this.#samples.get(`${system}/${metric}`);
    if (!list || list.length < 2) return undefined;
    return [Math.min(...list), Math.max(...list)];
  }

  /** The cell's mark, if any. */
  mark(system: SystemKey, metric: MetricKey): string {
    return this.#flags.get(`${system}/${metric}`) ?? "";
  }
}

function fmt(v: number | undefined, digits: number): string {
  if (v === undefined || !Number.isFinite(v)) return "—";
  return v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function ratio(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || b === 0 || !Number.isFinite(a) || !Number.isFinite(b)) return "—";
  return `${(a / b).toFixed(2)}×`;
}

/** The Markdown table: one row per metric, one column per system, then ep/direct, ep/floor, ep/haproxy, floor/haproxy. */
export function renderTable(r: Results): string {
  const head = ["metric", ...SYSTEM_KEYS, "ep/direct", "ep/floor", "ep/haproxy", "floor/haproxy"];
  const lines = [`| ${head.join(" | ")} |`, `|${head.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|`];
  for (const m of METRICS) {
    const cells = SYSTEM_KEYS.map((s) => {
      if (r.skipped.has(s)) return "skipped";
      return fmt(r.get(s, m.key), m.digits) + r.mark(s, m.key);
    });
    const ep = r.get("extractedprism", m.key);
    lines.push(
      `| ${m.label} | ${cells.join(" | ")} | ${ratio(ep, r.get("direct", m.key))} | ${
        ratio(ep, r.get("floor", m.key))
      } | ${ratio(ep, r.get("haproxy", m.key))} | ${ratio(r.get("floor", m.key), r.get("haproxy", m.key))} |`,
    );
  }
  return lines.join("\n");
}

/** With several rounds: one line per headline metric giving each system's min–max over the rounds. */
export function spreadLines(r: Results, rounds: number): string[] {
  if (rounds < 2) return [];
  const out: string[] = [];
  for (const key of ["smallRps", "smallP99", "bulkGbps", "connRps"] as const) {
    const m = METRICS.find((d) => d.key === key)!;
    const parts = SYSTEM_KEYS.flatMap((s) => {
      const range = r.range(s, key);
      return range ? [`${s} ${fmt(range[0], m.digits)}–${fmt(range[1], m.digits)}`] : [];
    });
    if (parts.length) out.push(`Spread over ${rounds} rounds, ${m.label}: ${parts.join("; ")}.`);
  }
  return out;
}

/** One target's verdict line. */
export interface Verdict {
  /** `true` PASS, `false` FAIL, `undefined` SKIP (a measurement is missing). */
  readonly pass: boolean | undefined;
  /** The line printed under the table. */
  readonly line: string;
}

/** A load CPU at least this busy (percent) set the pace of its workload: the row is load-bound. */
export const LOAD_BOUND_PCT = 90;

/** The workloads whose load CPU is measured, with the rows that the load's pace decides. */
const LOAD_ROWS = [
  { load: "smallLoadPct", what: "small requests", rows: "req/s, latency" },
  { load: "connLoadPct", what: "new connections", rows: "connections/s" },
] as const;

/**
 * Which workloads were load-bound (the load CPU ≥ {@linkcode LOAD_BOUND_PCT} % for extractedprism or the floor):
 * their throughput rows measure the load generator, and CPU per request or per connection is the deciding figure.
 */
export function loadBound(r: Results): string[] {
  const out: string[] = [];
  for (const { load, what, rows } of LOAD_ROWS) {
    const parts = (["extractedprism", "floor", "haproxy", "nginx"] as const).flatMap((s) => {
      const pct = r.get(s, load);
      return pct === undefined ? [] : [`${s} ${pct.toFixed(1)} %`];
    });
    const bound = (["extractedprism", "floor"] as const).some((s) => (r.get(s, load) ?? 0) >= LOAD_BOUND_PCT);
    if (parts.length === 0) continue;
    out.push(
      `${what}: ${bound ? "load-bound" : "not load-bound"} (load CPU ${parts.join(", ")}; ` +
        `threshold ${LOAD_BOUND_PCT} %)${bound ? `: its ${rows} rows show the load's limit` : ""}`,
    );
  }
  return out;
}

/**
 * Checks every target; `pass` is `undefined` when a needed measurement is missing (SKIP). First memory, start-up and
 * CPU, relative to the floor relay of the same run (the floor is what Deno costs, the rest is ours), then throughput
 * against HAProxy.
 */
export function verdicts(r: Results): Verdict[] {
  const ep = (m: MetricKey) => r.get("extractedprism", m);
  const fl = (m: MetricKey) => r.get("floor", m);
  const ha = (m: MetricKey) => r.get("haproxy", m);
  const out: Verdict[] = [];
  const add = (name: string, pass: boolean | undefined, detail: string) =>
    out.push({ pass, line: `${pass === undefined ? "SKIP" : pass ? "PASS" : "FAIL"} ${name}: ${detail}` });
  const boundNote = (load: MetricKey) => {
    const a = ep(load), b = fl(load);
    if (a === undefined && b === undefined) return "";
    const bound = (a ?? 0) >= LOAD_BOUND_PCT || (b ?? 0) >= LOAD_BOUND_PCT;
    return `; ${bound ? "load-bound" : "not load-bound"} (load CPU ${fmt(a, 1)} / ${fmt(b, 1)} %)`;
  };
  const overFloor = (name: string, m: MetricKey, max: number, unit: string, digits: number) => {
    const a = ep(m), b = fl(m);
    if (a === undefined || b === undefined) return add(name, undefined, "no floor or no measurement");
    add(
      name,
      a - b <= max,
      `${fmt(a, digits)} vs floor ${fmt(b, digits)} ${unit} = +${
        fmt(a - b, digits)
      } ${unit} (target ≤ +${max} ${unit})`,
    );
  };
  const timesFloor = (name: string, m: MetricKey, max: number, unit: string, digits: number, load: MetricKey) => {
    const a = ep(m), b = fl(m);
    if (a === undefined || b === undefined || b === 0) return add(name, undefined, "no floor or no measurement");
    add(
      name,
      a <= max * b,
      `${fmt(a, digits)} vs floor ${fmt(b, digits)} ${unit} = ${(a / b).toFixed(2)}× (target ≤ ${max.toFixed(2)}×)` +
        boundNote(load),
    );
  };
  overFloor("idle RSS ≤ floor + 6 MiB", "idleRss", 6, "MiB", 1);
  overFloor("peak RSS, 32 connections ≤ floor + 6 MiB", "peakRss32", 6, "MiB", 1);
  overFloor("peak RSS, 512 connections ≤ floor + 8 MiB", "peakRss512", 8, "MiB", 1);
  overFloor("start → first relayed response ≤ floor + 40 ms", "startupMs", 40, "ms", 1);
  timesFloor("CPU per new connection ≤ 1.1× floor", "connCpuUs", 1.1, "µs", 1, "connLoadPct");
  timesFloor("CPU per small request ≤ 1.05× floor", "smallCpuUs", 1.05, "µs", 2, "smallLoadPct");
  const vsHaproxy = (name: string, m: MetricKey, min: number, unit: string, digits: number) => {
    const a = ep(m), b = ha(m);
    if (a === undefined || b === undefined || b === 0) return add(name, undefined, "no HAProxy or no measurement");
    add(
      name,
      a >= min * b,
      `${fmt(a, digits)} vs HAProxy ${fmt(b, digits)} ${unit} = ${(a / b).toFixed(2)}× (target ≥ ${min.toFixed(2)}×)`,
    );
  };
  {
    const a = ep("smallRps"), b = ha("smallRps"), p = ep("smallP99"), q = ha("smallP99");
    if (a === undefined || b === undefined || p === undefined || q === undefined || b === 0) {
      add("small requests ≥ 1.1× HAProxy req/s, p99 ≤ HAProxy's", undefined, "no HAProxy or no measurement");
    } else {
      add(
        "small requests ≥ 1.1× HAProxy req/s, p99 ≤ HAProxy's",
        a >= 1.1 * b && p <= q,
        `${fmt(a, 0)} vs ${fmt(b, 0)} req/s = ${(a / b).toFixed(2)}× (target ≥ 1.10×); p99 ${fmt(p, 3)} vs ${
          fmt(q, 3)
        } ms (target ≤)`,
      );
    }
  }
  vsHaproxy("bulk ≥ 1.5× HAProxy", "bulkGbps", 1.5, "Gbit/s", 2);
  vsHaproxy("new connections/s ≥ 0.75× HAProxy", "connRps", 0.75, "conn/s", 0);
  return out;
}

/**
 * For each memory target, how much of its allowance the readyz probe alone takes: the floor with the probe on Deno's
 * TLS (what issue 14 requires of any Deno proxy here) against the floor, and extractedprism against that floor of the
 * job. Context for the verdicts, not a target: the lines say what part of a FAIL is the probe's and what is
 * extractedprism's own.
 */
export function probeShareLines(r: Results): string[] {
  const out: string[] = [];
  const signed = (v: number) => `${v < 0 ? "−" : "+"}${fmt(Math.abs(v), 1)}`;
  const rows = [
    ["idle RSS", "idleRss", 6],
    ["peak RSS at 32 connections", "peakRss32", 6],
    ["peak RSS at 512 connections", "peakRss512", 8],
  ] as const;
  for (const [what, m, allowed] of rows) {
    const ep = r.get("extractedprism", m), fl = r.get("floor", m), fp = r.get("floor-probe", m);
    if (ep === undefined || fl === undefined || fp === undefined) continue;
    out.push(
      `${what}: the floor with a readyz probe ${fmt(fp, 1)} MiB, ${signed(fp - fl)} over the floor (the target ` +
        `allows +${allowed}); extractedprism ${signed(ep - fp)} MiB over it`,
    );
  }
  return out;
}
