/**
 * The table of `extractedprism status`, in kubectl's style: upper-case headers, columns padded by three spaces, an
 * age (`5s`, `3m`, `2h`) for how long a state has held, `<none>` for what is not known yet. Pure: the upstreams and
 * the time in, text out.
 *
 * @module
 */
import { escapeControls } from "../errors.ts";
import type { UpstreamSnapshot } from "../upstream/upstream.ts";

/**
 * One upstream as `/upstreams` lists it: the fields of {@linkcode UpstreamSnapshot}, each of which may be missing or
 * odd (an older or newer proxy) and is then shown as unknown.
 */
export type UpstreamRow = { readonly [K in keyof UpstreamSnapshot]?: unknown };

const NONE = "<none>";

/**
 * An age as kubectl prints one (its `HumanDuration`): seconds up to 2 minutes, then minutes and seconds up to 10
 * minutes, minutes up to 3 hours, hours and minutes up to 8 hours, hours up to 2 days, and so on up to years.
 *
 * @param ms The age in milliseconds; 2 s or more in the future (clocks that disagree) it is `<invalid>`, less is `0s`.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { humanAge } from "./status_format.ts";
 * assert.deepEqual([5_000, 150_000, 7_200_000, 14_400_000].map((ms) => humanAge(ms)), ["5s", "2m30s", "120m", "4h"]);
 * ```
 */
export function humanAge(ms: number): string {
  if (!Number.isFinite(ms)) return NONE;
  // Truncated toward zero as Go converts: up to 1.999 s in the future still reads as now.
  const seconds = Math.trunc(ms / 1000);
  if (seconds < -1) return "<invalid>";
  if (seconds <= 0) return "0s";
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m${seconds % 60}s`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return minutes % 60 === 0 ? `${hours}h` : `${hours}h${minutes % 60}m`;
  if (hours < 48) return `${hours}h`;
  const days = Math.floor(hours / 24);
  if (days < 8) return hours % 24 === 0 ? `${days}d` : `${days}d${hours % 24}h`;
  if (days < 730) return `${days}d`;
  const years = Math.floor(days / 365);
  if (years < 8) return days % 365 === 0 ? `${years}y` : `${years}y${days % 365}d`;
  return `${years}y`;
}

/**
 * A round-trip time in milliseconds, to two significant figures below 10 ms: `0.42ms`, `1.2ms`, `37ms`, `1.5s`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatRtt } from "./status_format.ts";
 * assert.deepEqual([0.421, 1.234, 37.4, 1500, null].map((ms) => formatRtt(ms)), ["0.42ms", "1.2ms", "37ms", "1.5s", "<none>"]);
 * ```
 */
export function formatRtt(ms: unknown): string {
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) return NONE;
  if (ms >= 1000) return `${Number((ms / 1000).toPrecision(2))}s`;
  if (ms >= 10) return `${Math.round(ms)}ms`;
  return `${Number(ms.toPrecision(2))}ms`;
}

/** A cell from text the proxy sent: one line, no control characters, `<none>` when absent. */
function text(v: unknown): string {
  return typeof v === "string" && v !== "" ? escapeControls(v) : NONE;
}

function count(v: unknown): string {
  return typeof v === "number" && Number.isFinite(v) ? String(v) : NONE;
}

function since(v: unknown, now: number): string {
  const t = typeof v === "string" ? Date.parse(v) : NaN;
  return Number.isNaN(t) ? NONE : humanAge(now - t);
}

/** The tier is only meaningful for a healthy upstream (0: the fastest). */
function tier(u: UpstreamRow): string {
  return u.state === "healthy" && typeof u.tier === "number" ? String(u.tier) : "-";
}

/**
 * Aligns rows under their headers as kubectl does: each column as wide as its widest cell, then three spaces; the
 * last column is not padded.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { alignColumns } from "./status_format.ts";
 * assert(alignColumns([["A", "BB"], ["ccc", "d"]]) === "A     BB\nccc   d\n");
 * ```
 */
export function alignColumns(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => widths[i] = Math.max(widths[i] ?? 0, cell.length));
  return rows.map((row) => row.map((cell, i) => i === row.length - 1 ? cell : cell.padEnd((widths[i] ?? 0) + 3)))
    .map((line) => `${line.join("")}\n`).join("");
}

/**
 * The status table: `UPSTREAM STATE TIER RTT CONNS REASON SINCE`, and with `wide` also the total connections, the
 * bytes each way, whether it drains, the last probe's RTT and the last probe or dial result.
 *
 * @param upstreams As `/upstreams` lists them, in its order.
 * @param now Wall-clock milliseconds since the epoch, for the ages.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatStatusTable } from "./status_format.ts";
 * const table = formatStatusTable([{ address: "10.0.0.1:6443", state: "healthy", tier: 0, smoothedRttMs: 1.25,
 *   activeConnections: 3, reason: "first probe succeeded", stateSince: "2026-01-01T00:00:00Z" }],
 *   { now: Date.parse("2026-01-01T00:05:00Z") });
 * assert(table.split("\n")[1] === "10.0.0.1:6443   healthy   0      1.3ms   3       first probe succeeded   5m");
 * ```
 */
export function formatStatusTable(
  upstreams: readonly UpstreamRow[],
  options: { readonly now: number; readonly wide?: boolean },
): string {
  const head = ["UPSTREAM", "STATE", "TIER", "RTT", "CONNS", "REASON", "SINCE"];
  const wideHead = ["TOTAL", "BYTES-IN", "BYTES-OUT", "DRAINING", "LAST-RTT", "LAST-RESULT"];
  const rows = upstreams.map((u) => {
    const row = [
      text(u.address),
      text(u.state),
      tier(u),
      formatRtt(u.smoothedRttMs),
      count(u.activeConnections),
      text(u.reason),
      since(u.stateSince, options.now),
    ];
    if (!options.wide) return row;
    const draining = typeof u.draining === "boolean" ? String(u.draining) : NONE;
    return [
      ...row,
      count(u.totalConnections),
      count(u.bytesIn),
      count(u.bytesOut),
      draining,
      formatRtt(u.lastProbeRttMs),
      text(u.lastResult),
    ];
  });
  return alignColumns([options.wide ? [...head, ...wideHead] : head, ...rows]);
}
