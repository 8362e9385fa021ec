/**
 * One upstream API server: its health state machine, its counters and its live connections.
 *
 * @module
 */
import { isoTimestamp } from "../time_format.ts";
import { type Endpoint, endpointKey } from "../endpoint.ts";
import { LiveList, type LiveNode } from "../live_list.ts";

/** Health of an upstream. `unknown` until its first probe: never reported healthy before it proved it. */
export type UpstreamState = "unknown" | "healthy" | "unhealthy";

/** A state change, for the log line and for the lifecycle actions it triggers. */
export interface StateChange {
  readonly upstream: Upstream;
  readonly from: UpstreamState;
  readonly to: UpstreamState;
  readonly reason: string;
}

/** Anything that can be closed: a relayed connection. */
export interface Closable {
  close(): void;
}

/** Options of an upstream's state machine. */
export interface UpstreamOptions {
  /** Consecutive successes that make an unhealthy upstream healthy. @default 2 */
  readonly rise: number;
  /** Consecutive failures that make a healthy upstream unhealthy. @default 2 */
  readonly fall: number;
  /**
   * Wall-clock milliseconds since the epoch, for `stateSince`: another process (`extractedprism status`) turns it
   * into an age, so it cannot be the monotonic clock of the probes. @default Date.now
   */
  readonly wallClock?: () => number;
}

/** A JSON view of one upstream, as `/upstreams` shows it. */
export interface UpstreamSnapshot {
  readonly address: string;
  readonly state: UpstreamState;
  readonly reason: string;
  /** When the current state began (at creation for `unknown`), as an ISO 8601 UTC time. */
  readonly stateSince: string;
  readonly draining: boolean;
  readonly lastProbeRttMs: number | null;
  readonly smoothedRttMs: number | null;
  /** 0 when in the fastest latency tier, 1 otherwise (only meaningful for healthy upstreams). */
  readonly tier: number;
  readonly lastResult: string | null;
  readonly consecutiveSuccesses: number;
  readonly consecutiveFailures: number;
  readonly activeConnections: number;
  readonly totalConnections: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly lastError: string | null;
}

/**
 * One upstream. The first probe result decides `unknown`; after that `rise` / `fall` consecutive results are needed
 * to change state (hysteresis), so one lost probe never flips it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Upstream } from "./upstream.ts";
 * const u = new Upstream({ host: "10.0.0.1", port: 6443 }, { rise: 2, fall: 2 });
 * u.recordSuccess(1.2, 0);
 * assert(u.state === "healthy");
 * ```
 */
export class Upstream {
  readonly endpoint: Endpoint;
  readonly key: string;
  readonly #opts: UpstreamOptions;
  readonly #conns = new LiveList<Closable>();
  readonly #wallClock: () => number;
  #stateSince: number;

  state: UpstreamState = "unknown";
  reason = "added, not probed yet";
  consecutiveSuccesses = 0;
  consecutiveFailures = 0;
  lastRttMs: number | undefined;
  /** Exponentially smoothed probe RTT (alpha = 0.3). */
  srttMs: number | undefined;
  /** Membership of the fastest latency tier, kept with hysteresis by the chooser. */
  inBestTier = true;
  /** The last probe or dial outcome, as text. */
  lastResult: string | undefined;
  lastError: string | undefined;
  /** Clock time of the last success (probe or dial); `-Infinity` when never. */
  lastSuccessAt = -Infinity;
  totalConnections = 0;
  /** Bytes from the client to this upstream. */
  bytesOut = 0;
  /** Bytes from this upstream to clients. */
  bytesIn = 0;
  /** True once removed from the endpoint set: no new connections, live ones drain. */
  draining = false;

  constructor(endpoint: Endpoint, opts: UpstreamOptions) {
    this.endpoint = endpoint;
    this.key = endpointKey(endpoint);
    this.#opts = opts;
    this.#wallClock = opts.wallClock ?? Date.now;
    this.#stateSince = this.#wallClock();
  }

  /** Number of live relayed connections. */
  get activeConnections(): number {
    return this.#conns.size;
  }

  /** Records a successful probe; returns the state change it caused, if any. */
  recordSuccess(rttMs: number, now: number, detail?: string): StateChange | undefined {
    this.lastRttMs = rttMs;
    this.srttMs = this.srttMs === undefined ? rttMs : 0.7 * this.srttMs + 0.3 * rttMs;
    this.lastResult = detail === undefined ? "ok" : `ok (${detail})`;
    this.lastSuccessAt = now;
    this.consecutiveFailures = 0;
    this.consecutiveSuccesses++;
    if (this.state === "healthy") return undefined;
    if (this.state === "unknown" || this.consecutiveSuccesses >= this.#opts.rise) {
      const why = this.state === "unknown"
        ? "first probe succeeded"
        : `${this.consecutiveSuccesses} consecutive probes succeeded`;
      return this.#set("healthy", why);
    }
    return undefined;
  }

  /** Records a failed probe or client dial; returns the state change it caused, if any. */
  recordFailure(error: string): StateChange | undefined {
    this.lastError = error;
    this.lastResult = error;
    this.consecutiveSuccesses = 0;
    this.consecutiveFailures++;
    if (this.state === "unhealthy") return undefined;
    if (this.state === "unknown" || this.consecutiveFailures >= this.#opts.fall) {
      return this.#set("unhealthy", `${this.consecutiveFailures} consecutive failures, last: ${error}`);
    }
    return undefined;
  }

  #set(to: UpstreamState, reason: string): StateChange {
    const from = this.state;
    this.state = to;
    this.reason = reason;
    this.#stateSince = this.#wallClock();
    return { upstream: this, from, to, reason };
  }

  /** Registers a live connection; it counts until the returned node is removed, when the connection ends. */
  track(conn: Closable): LiveNode<Closable> {
    this.totalConnections++;
    return this.#conns.add(conn);
  }

  /** The live connections, as a copy. */
  connections(): Closable[] {
    return this.#conns.values();
  }

  /** Closes every live connection (each is untracked when its relay ends). */
  closeAll(): number {
    const conns = this.#conns.values();
    for (const c of conns) c.close();
    return conns.length;
  }

  /** A JSON-ready view. */
  snapshot(): UpstreamSnapshot {
    return {
      address: this.key,
      state: this.state,
      reason: this.reason,
      stateSince: isoTimestamp(this.#stateSince),
      draining: this.draining,
      lastProbeRttMs: round3(this.lastRttMs),
      smoothedRttMs: round3(this.srttMs),
      tier: this.inBestTier ? 0 : 1,
      lastResult: this.lastResult ?? null,
      consecutiveSuccesses: this.consecutiveSuccesses,
      consecutiveFailures: this.consecutiveFailures,
      activeConnections: this.activeConnections,
      totalConnections: this.totalConnections,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      lastError: this.lastError ?? null,
    };
  }
}

function round3(v: number | undefined): number | null {
  return v === undefined ? null : Math.round(v * 1000) / 1000;
}
