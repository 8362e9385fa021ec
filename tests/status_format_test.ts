import assert from "node:assert/strict";
import { alignColumns, formatRtt, formatStatusTable, humanAge } from "../lib/status/status_format.ts";

const NOW = Date.parse("2026-01-01T12:00:00Z");
const ago = (ms: number) => new Date(NOW - ms).toISOString();

const HEALTHY = {
  address: "127.0.0.1:6443",
  state: "healthy",
  reason: "first probe succeeded",
  stateSince: ago(5_000),
  draining: false,
  lastProbeRttMs: 0.8,
  smoothedRttMs: 0.912,
  tier: 0,
  lastResult: "ok (200)",
  activeConnections: 12,
  totalConnections: 40,
  bytesIn: 123456,
  bytesOut: 7890,
};

Deno.test("ages read as kubectl's: seconds, then minutes, hours, days, years", () => {
  const cases: [number, string][] = [
    [-5_000, "<invalid>"],
    [-500, "0s"],
    [-1_999, "0s"],
    [-2_000, "<invalid>"],
    [0, "0s"],
    [5_000, "5s"],
    [119_000, "119s"],
    [120_000, "2m"],
    [185_000, "3m5s"],
    [600_000, "10m"],
    [179 * 60_000, "179m"],
    [3 * 3600_000, "3h"],
    [7 * 3600_000 + 59 * 60_000, "7h59m"],
    [8 * 3600_000 + 59 * 60_000, "8h"],
    [47 * 3600_000, "47h"],
    [2 * 86400_000, "2d"],
    [3 * 86400_000 + 5 * 3600_000, "3d5h"],
    [400 * 86400_000, "400d"],
    [3 * 365 * 86400_000 + 86400_000, "3y1d"],
    [10 * 365 * 86400_000, "10y"],
    [NaN, "<none>"],
  ];
  assert.deepEqual(cases.map(([ms]) => humanAge(ms)), cases.map(([, want]) => want));
});

Deno.test("round trips keep two figures below 10 ms and switch to seconds at 1 s", () => {
  assert.deepEqual([0.0123, 0.5, 9.96, 10, 999.4, 1000, 2345, null, undefined, -1, "1"].map((v) => formatRtt(v)), [
    "0.012ms",
    "0.5ms",
    "10ms",
    "10ms",
    "999ms",
    "1s",
    "2.3s",
    "<none>",
    "<none>",
    "<none>",
    "<none>",
  ]);
});

Deno.test("columns are as wide as their widest cell plus three spaces, the last one unpadded", () => {
  assert.equal(alignColumns([["NAME", "AGE"], ["a-long-name", "5s"]]), "NAME          AGE\na-long-name   5s\n");
});

Deno.test("the table has kubectl's headers and one row per upstream, in the proxy's order", () => {
  const down = {
    ...HEALTHY,
    address: "[fd00::2]:6443",
    state: "unhealthy",
    reason: "2 consecutive failures, last: readyz probe: timeout",
    stateSince: ago(3 * 60_000),
    smoothedRttMs: 14.2,
    tier: 1,
    activeConnections: 0,
  };
  const table = formatStatusTable([HEALTHY, down], { now: NOW });
  assert.equal(
    table,
    "UPSTREAM         STATE       TIER   RTT      CONNS   REASON                                                SINCE\n" +
      "127.0.0.1:6443   healthy     0      0.91ms   12      first probe succeeded                                 5s\n" +
      "[fd00::2]:6443   unhealthy   -      14ms     0       2 consecutive failures, last: readyz probe: timeout   3m\n",
  );
});

Deno.test("-o wide adds totals, bytes, draining, the last probe's RTT and result", () => {
  const lines = formatStatusTable([{ ...HEALTHY, draining: true }], { now: NOW, wide: true }).split("\n");
  assert.deepEqual(lines[0]?.split(/\s{3,}/), [
    "UPSTREAM",
    "STATE",
    "TIER",
    "RTT",
    "CONNS",
    "REASON",
    "SINCE",
    "TOTAL",
    "BYTES-IN",
    "BYTES-OUT",
    "DRAINING",
    "LAST-RTT",
    "LAST-RESULT",
  ]);
  assert.deepEqual(lines[1]?.split(/\s{3,}/), [
    "127.0.0.1:6443",
    "healthy",
    "0",
    "0.91ms",
    "12",
    "first probe succeeded",
    "5s",
    "40",
    "123456",
    "7890",
    "true",
    "0.8ms",
    "ok (200)",
  ]);
});

Deno.test("missing or odd fields show <none>, and text from the proxy cannot break a line or drive the terminal", () => {
  const table = formatStatusTable([{ address: "127.0.0.3:6443", reason: "bad\nline\x1b[31m", stateSince: "never" }], {
    now: NOW,
  });
  const lines = table.trimEnd().split("\n");
  assert.equal(lines.length, 2, table);
  assert.deepEqual(lines[1]?.split(/\s{3,}/), [
    "127.0.0.3:6443",
    "<none>",
    "-",
    "<none>",
    "<none>",
    "bad\\nline\\x1b[31m",
    "<none>",
  ]);
});
