/**
 * The proxy's Prometheus metrics: per-upstream state, connections, bytes and probe RTT, plus the accept loop and
 * failed dials, rendered from the same snapshot `/upstreams` shows.
 *
 * @module
 */
import { familyLines } from "../prometheus.ts";
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

/**
 * Renders the exposition text.
 *
 * @example
 * ```ts
 * import { renderProxyMetrics } from "./metrics.ts";
 * const text = renderProxyMetrics({ ready: true, upstreams: [], accepted: 3, acceptErrors: 0, failedDials: 0,
 *   activeConnections: 1 });
 * console.assert(text.includes("extractedprism_ready 1"));
 * ```
 */
export function renderProxyMetrics(m: ProxyMetricsInput): string {
  const per = (f: (u: UpstreamSnapshot) => number) =>
    m.upstreams.map((u) => ({ labels: { upstream: u.address }, value: f(u) }));
  const lines = [
    ...familyLines("extractedprism_ready", "gauge", "1 when /readyz answers 200.", [{ value: m.ready ? 1 : 0 }]),
    ...familyLines("extractedprism_accepted_connections_total", "counter", "Client connections accepted.", [
      { value: m.accepted },
    ]),
    ...familyLines("extractedprism_accept_errors_total", "counter", "Accept errors (the loop retries).", [
      { value: m.acceptErrors },
    ]),
    ...familyLines(
      "extractedprism_failed_dials_total",
      "counter",
      "Client connections closed because no upstream answered in time.",
      [{ value: m.failedDials }],
    ),
    ...familyLines("extractedprism_active_connections", "gauge", "Client connections open now.", [
      { value: m.activeConnections },
    ]),
    ...familyLines(
      "extractedprism_upstreams_dropped",
      "gauge",
      "Endpoints of the current set left out by --max-upstreams.",
      [{ value: m.upstreamsDropped ?? 0 }],
    ),
    ...familyLines(
      "extractedprism_internal_errors_total",
      "counter",
      "Internal errors caught and logged instead of ending the process.",
      [{ value: m.internalErrors ?? 0 }],
    ),
    ...familyLines(
      "extractedprism_health_accept_errors_total",
      "counter",
      "Accept errors of the health port's listener (the loop retries).",
      [{ value: m.health?.acceptErrors ?? 0 }],
    ),
    ...familyLines(
      "extractedprism_health_connections_refused_total",
      "counter",
      "Health port connections answered 503 at the connection cap.",
      [{ value: m.health?.refused ?? 0 }],
    ),
    ...familyLines(
      "extractedprism_health_connections_evicted_total",
      "counter",
      "Health port connections closed at the cap for waiting longest without a request.",
      [{ value: m.health?.evicted ?? 0 }],
    ),
    ...familyLines(
      "extractedprism_upstream_state",
      "gauge",
      "1 for the upstream's current state.",
      m.upstreams.flatMap((u) =>
        STATES.map((state) => ({ labels: { upstream: u.address, state }, value: u.state === state ? 1 : 0 }))
      ),
    ),
    ...familyLines(
      "extractedprism_upstream_draining",
      "gauge",
      "1 while removed and draining.",
      per((u) => Number(u.draining)),
    ),
    ...familyLines(
      "extractedprism_upstream_active_connections",
      "gauge",
      "Relayed connections open now.",
      per((u) => u.activeConnections),
    ),
    ...familyLines(
      "extractedprism_upstream_connections_total",
      "counter",
      "Relayed connections.",
      per((u) => u.totalConnections),
    ),
    ...familyLines(
      "extractedprism_upstream_sent_bytes_total",
      "counter",
      "Bytes from clients to the upstream.",
      per((u) => u.bytesOut),
    ),
    ...familyLines(
      "extractedprism_upstream_received_bytes_total",
      "counter",
      "Bytes from the upstream to clients.",
      per((u) => u.bytesIn),
    ),
    ...familyLines(
      "extractedprism_upstream_probe_rtt_seconds",
      "gauge",
      "Smoothed health-probe round trip (NaN before the first success).",
      per((u) => (u.smoothedRttMs === null ? NaN : u.smoothedRttMs / 1000)),
    ),
  ];
  return `${lines.join("\n")}\n`;
}
