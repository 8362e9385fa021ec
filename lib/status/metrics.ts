/**
 * The proxy's Prometheus metrics: per-upstream state, connections, bytes and probe RTT, plus the accept loop and
 * failed dials, rendered from the same snapshot `/upstreams` shows.
 *
 * @module
 */
import { familyLines } from "../prometheus.ts";
import { STALL_COUNTERS } from "../loop_stall.ts";
import type { UpstreamSnapshot } from "../upstream/upstream.ts";

/** What the metrics are rendered from. */
export interface ProxyMetricsInput {
  readonly ready: boolean;
  readonly upstreams: readonly UpstreamSnapshot[];
  /** Client connections accepted since start. */
  readonly accepted: number;
  /** Accept errors since start (EMFILE and the like). */
  readonly acceptErrors: number;
  /** Client connections closed because no upstream answered within the dial budget. */
  readonly failedDials: number;
  /** Client connections open now. */
  readonly activeConnections: number;
  /** Endpoints of the current set left out by `--max-upstreams`. @default 0 */
  readonly upstreamsDropped?: number;
  /** Internal errors (bugs caught instead of ending the process) since start. @default 0 */
  readonly internalErrors?: number;
  /** Times the process did not run for 100 ms or more, and those stalls' length summed (ms), since start. @default 0 */
  readonly loopStalls?: { readonly count: number; readonly ms: number };
  /** The health port's own counters since start. @default all 0 */
  readonly health?: {
    /** Accept errors of the health listener (EMFILE and the like). */
    readonly acceptErrors: number;
    /** Connections answered 503 and closed at the connection cap. */
    readonly refused: number;
    /** Connections closed at the cap because they waited longest without a request. */
    readonly evicted: number;
  };
}

const STATES = ["unknown", "healthy", "unhealthy"] as const;

/** One metric family: its name, type, help text, and its value (or how to read it from an upstream). */
type Family<V> = readonly [name: string, type: "counter" | "gauge", help: string, value: V];

/** The families with one sample per upstream, labelled with its address. */
const PER_UPSTREAM: readonly Family<(u: UpstreamSnapshot) => number>[] = [
  ["extractedprism_upstream_draining", "gauge", "1 while removed and draining.", (u) => Number(u.draining)],
  ["extractedprism_upstream_active_connections", "gauge", "Relayed connections open now.", (u) => u.activeConnections],
  ["extractedprism_upstream_connections_total", "counter", "Relayed connections.", (u) => u.totalConnections],
  ["extractedprism_upstream_sent_bytes_total", "counter", "Bytes from clients to the upstream.", (u) => u.bytesOut],
  ["extractedprism_upstream_received_bytes_total", "counter", "Bytes from the upstream to clients.", (u) => u.bytesIn],
  [
    "extractedprism_upstream_probe_rtt_seconds",
    "gauge",
    "Smoothed health-probe round trip (NaN before the first success).",
    (u) => (u.smoothedRttMs === null ? NaN : u.smoothedRttMs / 1000),
  ],
];

/**
 * Renders the exposition text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { renderProxyMetrics } from "./metrics.ts";
 * const text = renderProxyMetrics({ ready: true, upstreams: [], accepted: 3, acceptErrors: 0, failedDials: 0,
 *   activeConnections: 1 });
 * assert(text.includes("extractedprism_ready 1"));
 * ```
 */
export function renderProxyMetrics(m: ProxyMetricsInput): string {
  const scalars: Family<number>[] = [
    ["extractedprism_ready", "gauge", "1 when /readyz answers 200.", m.ready ? 1 : 0],
    ["extractedprism_accepted_connections_total", "counter", "Client connections accepted.", m.accepted],
    ["extractedprism_accept_errors_total", "counter", "Accept errors (the loop retries).", m.acceptErrors],
    [
      "extractedprism_failed_dials_total",
      "counter",
      "Client connections closed because no upstream answered in time.",
      m.failedDials,
    ],
    ["extractedprism_active_connections", "gauge", "Client connections open now.", m.activeConnections],
    [
      "extractedprism_upstreams_dropped",
      "gauge",
      "Endpoints of the current set left out by --max-upstreams.",
      m.upstreamsDropped ?? 0,
    ],
    [
      "extractedprism_internal_errors_total",
      "counter",
      "Internal errors caught and logged instead of ending the process.",
      m.internalErrors ?? 0,
    ],
    [STALL_COUNTERS.stalls[0], "counter", STALL_COUNTERS.stalls[1], m.loopStalls?.count ?? 0],
    [STALL_COUNTERS.seconds[0], "counter", STALL_COUNTERS.seconds[1], (m.loopStalls?.ms ?? 0) / 1000],
    [
      "extractedprism_health_accept_errors_total",
      "counter",
      "Accept errors of the health port's listener (the loop retries).",
      m.health?.acceptErrors ?? 0,
    ],
    [
      "extractedprism_health_connections_refused_total",
      "counter",
      "Health port connections answered 503 at the connection cap.",
      m.health?.refused ?? 0,
    ],
    [
      "extractedprism_health_connections_evicted_total",
      "counter",
      "Health port connections closed at the cap for waiting longest without a request.",
      m.health?.evicted ?? 0,
    ],
  ];
  const lines = [
    ...scalars.flatMap(([name, type, help, value]) => familyLines(name, type, help, [{ value }])),
    ...familyLines(
      "extractedprism_upstream_state",
      "gauge",
      "1 for the upstream's current state.",
      m.upstreams.flatMap((u) =>
        STATES.map((state) => ({ labels: { upstream: u.address, state }, value: u.state === state ? 1 : 0 }))
      ),
    ),
    ...PER_UPSTREAM.flatMap(([name, type, help, value]) =>
      familyLines(name, type, help, m.upstreams.map((u) => ({ labels: { upstream: u.address }, value: value(u) })))
    ),
  ];
  return `${lines.join("\n")}\n`;
}
