/** bench/soak.ts's pure parts: reading /proc status, the slope, the growth after warm-up, log levels, the verdict. */
import assert from "node:assert/strict";
import {
  countLogLevels,
  defaultWindowMs,
  heapTrend,
  type LogCounts,
  parseGcTrace,
  parseProcStatus,
  parseSmapsParts,
  parseSoakDuration,
  renderCounts,
  renderTrends,
  type Sample,
  slope,
  trends,
  verdict,
} from "../bench/_soak_stats.ts";

const STATUS = [
  "Name:\tdeno",
  "VmPeak:\t 1234567 kB",
  "VmHWM:\t   75000 kB",
  "VmRSS:\t   71680 kB",
  "RssAnon:\t   25600 kB",
  "RssFile:\t   46080 kB",
  "Threads:\t9",
].join("\n");

Deno.test("a sample reads VmRSS and RssAnon from /proc/PID/status, and names a missing field", () => {
  assert.deepEqual(parseProcStatus(STATUS), { rssKiB: 71680, anonKiB: 25600 });
  assert.throws(
    () => parseProcStatus("Name:\tdeno\nVmRSS:\t 10 kB\n"),
    /Cannot read 'RssAnon' from \/proc\/PID\/status/,
  );
  // VmRSS must not be matched inside another field's name.
  assert.throws(() => parseProcStatus("XVmRSS:\t 10 kB\nRssAnon:\t 5 kB\n"), /'VmRSS'/);
});

Deno.test("soak durations take ms, s, m, h or bare seconds, within bounds", () => {
  assert.equal(parseSoakDuration("duration", "10m", 0, 3_600_000), 600_000);
  assert.equal(parseSoakDuration("warmup", "60", 0, 3_600_000), 60_000);
  assert.equal(parseSoakDuration("warmup", "1500ms", 0, 3_600_000), 1500);
  assert.equal(parseSoakDuration("duration", "1h", 0, 3_600_000), 3_600_000);
  assert.throws(() => parseSoakDuration("duration", "ten", 0, 1000), /Cannot parse --duration 'ten'/);
  assert.throws(() => parseSoakDuration("duration", "2h", 0, 3_600_000), /Cannot use --duration '2h'/);
  assert.throws(() => parseSoakDuration("duration", "-1s", 0, 3_600_000), RangeError);
});

Deno.test("the least-squares slope of a line is its gradient; noise around a flat line gives about zero", () => {
  assert.equal(slope([0, 1, 2, 3], [1, 3, 5, 7]), 2);
  assert.equal(slope([0, 1, 2, 3], [5, 5, 5, 5]), 0);
  assert.equal(slope([0], [5]), 0);
  assert.equal(slope([2, 2], [1, 9]), 0); // no spread in x
  assert.ok(Math.abs(slope([0, 1, 2, 3, 4, 5], [10, 11, 10, 11, 10, 11]) - 0.0857) < 1e-3);
});

/** One sample every 5 s for `minutes`, RSS from `rssMiB(t in minutes)`. */
function series(minutes: number, rssMiB: (m: number) => number, fds = (_m: number) => 40): Sample[] {
  const out: Sample[] = [];
  for (let atMs = 0; atMs <= minutes * 60_000; atMs += 5000) {
    const m = atMs / 60_000;
    out.push({ atMs, rssKiB: rssMiB(m) * 1024, anonKiB: (rssMiB(m) - 40) * 1024, fds: fds(m) });
  }
  return out;
}

Deno.test("warm-up is left out: growth during warm-up does not count, growth after it does", () => {
  // 20 MiB of growth in the first minute, flat after.
  const flat = trends(series(10, (m) => (m < 1 ? 50 + 20 * m : 70)), 60_000, 60_000);
  assert.equal(flat.rssMiB.growth, 0);
  assert.equal(flat.rssMiB.perMinute, 0);
  assert.equal(flat.samples, 109);
  assert.equal(flat.minutes, 9);
  // 0.5 MiB a minute after warm-up: the medians of the first and last minute (12 samples each) are 8 min 5 s apart.
  const leak = trends(series(10, (m) => 70 + 0.5 * m, (m) => 40 + Math.floor(m)), 60_000, 60_000);
  assert.ok(Math.abs(leak.rssMiB.perMinute - 0.5) < 1e-9);
  assert.ok(Math.abs(leak.rssMiB.growth - 0.5 * 8) < 0.05, `growth ${leak.rssMiB.growth}`);
  assert.ok(Math.abs(leak.anonMiB.perMinute - 0.5) < 1e-9);
  assert.equal(leak.fds.growth, 8);
  assert.equal(leak.fds.max, 50);
});

Deno.test("growth is robust: one spike in the last minute moves first-to-last and max, not the median growth", () => {
  const s = series(5, () => 70);
  const last = s.at(-1)!;
  s[s.length - 1] = { ...last, rssKiB: 80 * 1024 };
  const t = trends(s, 60_000, 60_000);
  assert.equal(t.rssMiB.growth, 0);
  assert.equal(t.rssMiB.firstToLast, 10);
  assert.equal(t.rssMiB.max, 80);
});

Deno.test("a trend needs two samples after warm-up", () => {
  assert.throws(() => trends(series(1, () => 70), 60_000, 60_000), /from 1 samples after warm-up/);
  assert.throws(() => trends([], 0, 60_000), /from 0 samples/);
});

Deno.test("the proxy's log lines are counted by level; a line that is no JSON record counts as unexpected", () => {
  const c = countLogLevels([
    '{"level":"INFO","message":"a"}',
    '{"level":"WARN","message":"b"}',
    '{"level":"ERROR","message":"c"}',
    '{"level":"FATAL","message":"d"}',
    '{"level":"DEBUG","message":"e"}',
    "error: Uncaught (in promise) Http: Error: Too many open files (os error 24)",
    '{"message":"no level"}',
    "",
  ]);
  assert.deepEqual({ ...c, examples: c.examples.length }, {
    debug: 1,
    info: 1,
    warning: 1,
    error: 2,
    other: 2,
    examples: 4,
  });
  assert.ok(c.examples.some((l) => l.startsWith("error: Uncaught")));
});

const NO_LOGS: LogCounts = { debug: 0, info: 10, warning: 3, error: 0, other: 0, examples: [] };

Deno.test("the verdict fails on RSS growth over the bar, on error lines and on a dead proxy, and passes otherwise", () => {
  const flat = trends(series(10, () => 70), 60_000, 60_000);
  assert.deepEqual(verdict(flat, { rssBarMiB: 1, proxyExitedEarly: false, logs: NO_LOGS }), []);
  const grown = trends(series(10, (m) => 70 + 0.2 * m), 60_000, 60_000);
  assert.match(
    verdict(grown, { rssBarMiB: 1, proxyExitedEarly: false, logs: NO_LOGS }).join(),
    /RSS grew 1\.62 MiB after warm-up \(bar: 1 MiB\)/,
  );
  assert.equal(verdict(grown, { rssBarMiB: 2, proxyExitedEarly: false, logs: NO_LOGS }).length, 0);
  assert.match(
    verdict(flat, { rssBarMiB: 1, proxyExitedEarly: false, logs: { ...NO_LOGS, error: 1 } }).join(),
    /1 error lines/,
  );
  assert.match(verdict(flat, { rssBarMiB: 1, proxyExitedEarly: true, logs: NO_LOGS }).join(), /exited/);
});

Deno.test("the report shows slope, growth, first-to-last and max of each series, and every count", () => {
  const t = trends(series(10, (m) => 70 + 0.1 * m, () => 40), 60_000, 60_000);
  const table = renderTrends(t, 60_000);
  assert.match(table, /median last 60 s − median first 60 s/);
  assert.match(
    table,
    /\| RSS \(`VmRSS`, MiB\) \| \+0\.100 MiB\/min \| \+0\.81 \| \+0\.90 \| 70\.\d\d \/ 70\.\d\d \| 71\.00 \|/,
  );
  assert.match(table, /\| open descriptors \| \+0\.00 fds\/min \| \+0 \| \+0 \| 40 \/ 40 \| 40 \|/);
  assert.doesNotMatch(table, /of which/);
  const parts = { v8Heap: 0, v8Code: 0, mallocMain: 0, mallocThreads: 0, stacks: 0, file: 0, other: 0 };
  const withParts = series(10, (m) => 70 + 0.1 * m, () => 40).map((x) => ({
    ...x,
    parts: { ...parts, mallocThreads: 1024 + 102.4 * (x.atMs / 60_000) },
  }));
  const partsTable = renderTrends(trends(withParts, 60_000, 60_000), 60_000);
  assert.match(partsTable, /\| of which malloc's thread arenas, MiB \| \+0\.100 MiB\/min \| \+0\.81 \| \+0\.90 \|/);
  assert.match(partsTable, /\| of which V8's heap pages, MiB \| \+0\.000 MiB\/min \| \+0\.00 \|/);
  assert.equal(partsTable.match(/of which/g)?.length, 7);
  const counts = renderCounts({
    churnOk: 100,
    churnFailed: 2,
    streamsOpened: 5,
    streamsCut: 1,
    streamsFailed: 0,
    streamEchoes: 300,
    streamMismatches: 0,
    discoveryChanges: 9,
    flaps: 12,
    stateChangesSeen: 6,
    statusFailures: 0,
  }, NO_LOGS);
  assert.match(counts, /\| short connections failed \| 2 \|/);
  assert.match(counts, /\| proxy log lines: error \| 0 \|/);
  assert.match(counts, /\| probe flaps \(readyz answer or listener toggled\) \| 12 \|/);
});

const GC_TRACE = [
  "[7:0x55] 1000 ms: Scavenge 3.9 (4.8) -> 3.5 (5.5) MB, pooled: 0.0 MB, 3.82 / 0.00 ms allocation failure;",
  "[7:0x55] 50000 ms: Mark-Compact (reduce) 9.0 (12.0) -> 6.0 (11.0) MB, pooled: 0.0 MB, 5.00 / 0.00 ms",
  "some other line",
  "[7:0x55] 70000 ms: Scavenge 7.9 (12.0) -> 6.5 (12.0) MB, pooled: 0.0 MB, 1.00 / 0.00 ms allocation failure;",
  "[7:0x55] 71000 ms: Minor Mark-Sweep 7.9 (12.0) -> 6.6 (12.0) MB, pooled: 0.0 MB, 1.00 / 0.00 ms",
  "[7:0x55] 120000 ms: Incremental Mark-Compact 10.5 (13.0) -> 6.2 (12.0) MB, pooled: 0.0 MB, 2.17 / 0.00 ms (+ 0.0 ms)",
  "[7:0x55] 240000 ms: Incremental Mark-Compact 11.0 (13.0) -> 6.4 (12.0) MB, pooled: 0.0 MB, 2.00 / 0.00 ms",
].join("\n");

Deno.test("V8's --trace-gc lines are read with their kind and the heap after; full collections give the live heap", () => {
  const events = parseGcTrace(GC_TRACE);
  assert.deepEqual(events.map((e) => [e.atMs, e.kind, e.afterMiB]), [
    [1000, "Scavenge", 3.5],
    [50000, "Mark-Compact", 6.0],
    [70000, "Scavenge", 6.5],
    [71000, "Minor Mark-Sweep", 6.6],
    [120000, "Incremental Mark-Compact", 6.2],
    [240000, "Incremental Mark-Compact", 6.4],
  ]);
  const h = heapTrend(events, 60_000);
  assert.ok(h !== undefined);
  assert.deepEqual({ ...h, perMinute: Math.round(h.perMinute * 1000) / 1000 }, {
    fullGcs: 2,
    youngGcs: 2,
    firstMiB: 6.2,
    lastMiB: 6.4,
    maxMiB: 6.4,
    perMinute: 0.1,
  });
  assert.equal(heapTrend(events, 300_000), undefined);
});

Deno.test("soak: /proc/PID/smaps's anonymous KiB split by the owner each mapping's shape names", () => {
  const map = (range: string, perms: string, name: string, anonKiB: number) =>
    `${range} ${perms} 00000000 00:00 0 ${name}\nSize: 9 kB\nRss: ${anonKiB + 1} kB\nAnonymous: ${anonKiB} kB`;
  const smaps = [
    map("c63c7c0000-c63c800000", "rw-p", "", 256), // V8 page at a random hint
    map("3d8264e00000-3d8264e20000", "r--p", "", 128), // V8 read-only page
    map("55d0c0000000-55d0c2000000", "r-xp", "/usr/bin/deno", 0),
    map("55d0c2000000-55d0c2100000", "rw-p", "/usr/bin/deno", 64), // the binary's data, copied on write
    map("55d0c2100000-55d0c2140000", "rw-p", "", 40), // .bss, right after the binary
    map("55d0c4000000-55d0c4400000", "rw-p", "[heap]", 3072),
    map("7f3884000000-7f3884021000", "rw-p", "", 132), // a thread arena, 64 MiB-aligned
    map("7f3884021000-7f3888000000", "---p", "", 0),
    map("7f389c000000-7f38bc000000", "rwxp", "", 92), // V8's code space, 64 MiB-aligned too
    map("7f38da1ff000-7f38da200000", "---p", "", 0), // a stack's guard page
    map("7f38da200000-7f38da400000", "rw-p", "", 12), // its stack
    map("7f38da400000-7f38da410000", "rw-p", "", 8), // not after a guard: other
    map("7ffebbaf9000-7ffebbb63000", "rw-p", "[stack]", 424),
  ].join("\n");
  assert.deepEqual(parseSmapsParts(smaps), {
    v8Heap: 384,
    v8Code: 92,
    mallocMain: 3072,
    mallocThreads: 132,
    stacks: 436,
    file: 64,
    other: 48,
  });
  assert.deepEqual(Object.values(parseSmapsParts("")), [0, 0, 0, 0, 0, 0, 0]);
});

Deno.test("soak: the growth's default window is a sixth of the time after warm-up, from 60 s to 5 min", () => {
  assert.equal(defaultWindowMs(10 * 60_000, 3 * 60_000), 70_000);
  assert.equal(defaultWindowMs(5 * 60_000, 3 * 60_000), 60_000, "at least a minute");
  assert.equal(defaultWindowMs(24 * 60_000, 12 * 60_000), 120_000);
  assert.equal(defaultWindowMs(110 * 60_000, 12 * 60_000), 300_000, "at most five minutes");
});
