/**
 * Tests of the bench's pure helpers (command parsing, durations, medians, the table and the verdicts). Kept outside
 * the repository by the bench's author (its area is bench/ only); proposed as tests/bench_helpers_test.ts.
 */
import assert from "node:assert/strict";
import { parseSeconds } from "../bench/run.ts";
import { parseCommand, splitCommand } from "../bench/_systems.ts";
import {
  loadBound,
  type MetricKey,
  probeShareLines,
  renderTable,
  Results,
  spreadLines,
  verdicts,
} from "../bench/_report.ts";
import type { SystemKey } from "../bench/_systems.ts";

/** Results holding one sample per `[system, metric, value]`. */
function results(samples: readonly (readonly [SystemKey, MetricKey, number])[]): Results {
  const r = new Results();
  for (const [system, metric, value] of samples) r.add(system, metric, value);
  return r;
}

Deno.test("a task string splits into words, quotes grouping", () => {
  assert.deepEqual(splitCommand(`deno run -q "a b" 'c d' main.ts`), ["deno", "run", "-q", "a b", "c d", "main.ts"]);
});

Deno.test("leading NAME=value words become the environment and deno resolves to this binary", () => {
  const c = parseCommand("DENO_NO_UPDATE_CHECK=1 A=b=c deno run -q -P main.ts");
  assert.deepEqual(c.env, { DENO_NO_UPDATE_CHECK: "1", A: "b=c" });
  assert.deepEqual(c.argv, [Deno.execPath(), "run", "-q", "-P", "main.ts"]);
});

Deno.test("a command of only assignments is refused with one line", () => {
  assert.throws(() => parseCommand("A=1"), {
    name: "TypeError",
    message: "Cannot parse command 'A=1': expected a program to run",
  });
});

Deno.test("durations parse to whole seconds within bounds", async (t) => {
  await t.step("units", () => {
    assert.equal(parseSeconds("10s"), 10);
    assert.equal(parseSeconds("1500ms"), 2);
    assert.equal(parseSeconds("1m"), 60);
    assert.equal(parseSeconds("7"), 7);
    assert.equal(parseSeconds("0s", 0), 0);
  });
  await t.step("out of range or malformed", () => {
    assert.throws(() => parseSeconds("0s"), {
      name: "RangeError",
      message: "Cannot use duration '0s': expected between 1s and 10m",
    });
    assert.throws(() => parseSeconds("11m"), RangeError);
    assert.throws(() => parseSeconds("ten"), {
      message: "Cannot parse duration 'ten': expected e.g. '10s', '1500ms' or '1m'",
    });
  });
});

Deno.test("a cell shows the median of its samples and marks accumulate once", () => {
  const r = new Results();
  for (const v of [3, 1, 2]) r.add("haproxy", "smallRps", v);
  assert.equal(r.get("haproxy", "smallRps"), 2);
  r.add("haproxy", "smallRps", 10);
  assert.equal(r.get("haproxy", "smallRps"), 2.5);
  assert.deepEqual(r.range("haproxy", "smallRps"), [1, 10]);
  r.flag("haproxy", "smallRps", " ~");
  r.flag("haproxy", "smallRps", " ~");
  r.flag("haproxy", "smallRps", " (!)");
  assert.equal(r.mark("haproxy", "smallRps"), " ~ (!)");
  assert.equal(r.get("nginx", "smallRps"), undefined);
});

Deno.test("the table has one row per metric with ratios to direct, the Deno floor and HAProxy", () => {
  const r = results([
    ["direct", "smallRps", 40000],
    ["extractedprism", "smallRps", 30000],
    ["floor", "smallRps", 32000],
    ["floor-probe", "smallRps", 31000],
    ["haproxy", "smallRps", 20000],
  ]);
  r.skipped.set("nginx", "nginx not installed");
  const lines = renderTable(r).split("\n");
  assert.equal(
    lines[0],
    "| metric | direct | extractedprism | floor | floor-probe | haproxy | nginx | ep/direct | ep/floor | ep/haproxy | " +
      "floor/haproxy |",
  );
  assert.equal(
    lines.find((l) => l.startsWith("| small HTTPS req/s (32")),
    "| small HTTPS req/s (32 keep-alive conns) | 40,000 | 30,000 | 32,000 | 31,000 | 20,000 | skipped | 0.75× | 0.94× | " +
      "1.50× | 1.60× |",
  );
  // A system measured for memory only shows nothing where it did not run.
  assert.match(
    lines.find((l) => l.startsWith("| bulk single stream"))!,
    /^\| bulk single stream \(Gbit\/s\)( \| —){4} \|/,
  );
});

Deno.test("targets pass, fail or skip from the measurements", () => {
  const r = results([
    ["extractedprism", "smallRps", 22000],
    ["haproxy", "smallRps", 20000],
    ["extractedprism", "smallP99", 1.0],
    ["haproxy", "smallP99", 1.1],
    ["extractedprism", "bulkGbps", 10],
    ["haproxy", "bulkGbps", 10],
    ["extractedprism", "peakRss32", 40],
    ["floor", "peakRss32", 34],
    ["extractedprism", "idleRss", 36.1],
    ["floor", "idleRss", 30],
    ["extractedprism", "smallCpuUs", 30],
    ["floor", "smallCpuUs", 29],
    ["extractedprism", "smallLoadPct", 95],
  ]);
  const lines = verdicts(r).map((v) => v.line.split(":")[0]);
  assert.deepEqual(lines, [
    "FAIL idle RSS ≤ floor + 6 MiB",
    "PASS peak RSS, 32 connections ≤ floor + 6 MiB",
    "SKIP peak RSS, 512 connections ≤ floor + 8 MiB",
    "SKIP start → first relayed response ≤ floor + 40 ms",
    "SKIP CPU per new connection ≤ 1.1× floor",
    "PASS CPU per small request ≤ 1.05× floor",
    "PASS small requests ≥ 1.1× HAProxy req/s, p99 ≤ HAProxy's",
    "FAIL bulk ≥ 1.5× HAProxy",
    "SKIP new connections/s ≥ 0.75× HAProxy",
  ]);
  assert.match(verdicts(r)[5]!.line, /; load-bound \(load CPU 95\.0 \/ — %\)$/);
  assert.deepEqual(loadBound(r), [
    "small requests: load-bound (load CPU extractedprism 95.0 %; threshold 90 %): its req/s, latency rows show the " +
    "load's limit",
  ]);
});

Deno.test("the context lines say how much of each memory allowance the readyz probe alone takes", () => {
  const r = results([
    ["extractedprism", "idleRss", 46.0],
    ["floor", "idleRss", 28.5],
    ["floor-probe", "idleRss", 34.8],
    ["extractedprism", "peakRss32", 52.0],
    ["floor", "peakRss32", 44.0],
    ["floor-probe", "peakRss32", 52.5],
    ["extractedprism", "peakRss512", 70.0],
    ["floor", "peakRss512", 66.0],
  ]);
  assert.deepEqual(probeShareLines(r), [
    "idle RSS: the floor with a readyz probe 34.8 MiB, +6.3 over the floor (the target allows +6); extractedprism " +
    "+11.2 MiB over it",
    "peak RSS at 32 connections: the floor with a readyz probe 52.5 MiB, +8.5 over the floor (the target allows +6); " +
    "extractedprism −0.5 MiB over it",
  ]);
  assert.deepEqual(probeShareLines(new Results()), []);
});

Deno.test("spread lines appear only with several rounds", () => {
  const r = results([
    ["haproxy", "connRps", 100],
    ["haproxy", "connRps", 120],
  ]);
  assert.deepEqual(spreadLines(r, 1), []);
  assert.equal(spreadLines(r, 2).length, 1);
  assert.match(spreadLines(r, 2)[0]!, /haproxy 100–120/);
});

Deno.test("an error line is picked out of a program's output, without colours or a Rust backtrace", async () => {
  const { lastLines } = await import("../bench/_process.ts");
  assert.equal(
    lastLines("\x1b[1m\x1b[31merror\x1b[0m: Module not found\nStack backtrace:\n   0: <unknown>\n"),
    "error: Module not found",
  );
  assert.equal(lastLines("a\nb\nc\nd\n"), "b | c | d");
  assert.equal(lastLines(""), "(no output)");
});
