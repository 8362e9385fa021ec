/**
 * The set of upstreams: replaced as a whole by each endpoint set, without disturbing the ones that stay.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { Clock } from "../clock.ts";
import { type Endpoint, endpointKey } from "../config/endpoint.ts";
import { orderCandidates } from "./choose.ts";
import { type StateChange, Upstream, type UpstreamSnapshot } from "./upstream.ts";

const log = getLogger(["extractedprism", "pool"]);

/** Options of a pool. */
export interface PoolOptions {
  readonly rise: number;
  readonly fall: number;
  /** How long a removed upstream's connections may live before they are closed. */
  readonly drainTimeoutMs: number;
  readonly clock: Clock;
  /** Starts health checks of a new upstream; they must stop when `signal` aborts. */
  readonly startChecks?: (upstream: Upstream, signal: AbortSignal) => void;
}

/**
 * The live upstream set. `update` adds new endpoints (probed at once, unknown until then), keeps existing ones
 * untouched, and drains removed ones: no new connections, live ones close at the drain deadline.
 */
export class Pool {
  readonly #opts: PoolOptions;
  readonly #ups = new Map<string, Upstream>();
  readonly #checks = new Map<string, AbortController>();
  readonly #drains = new Map<string, AbortController>();
  #turn = 0;
  #closed = false;

  constructor(opts: PoolOptions) {
    this.#opts = opts;
  }

  /** Replaces the endpoint set. An empty set is refused (kept as it was) with a warning. */
  update(endpoints: readonly Endpoint[]): void {
    if (this.#closed) return;
    if (endpoints.length === 0) {
      log.warn("Ignoring an empty endpoint set; keeping {count} upstreams", { count: this.#ups.size });
      return;
    }
    const wanted = new Map(endpoints.map((e) => [endpointKey(e), e]));
    for (const [key, e] of wanted) {
      const have = this.#ups.get(key);
      if (have === undefined) {
        const up = new Upstream(e, { rise: this.#opts.rise, fall: this.#opts.fall });
        this.#ups.set(key, up);
        const ctrl = new AbortController();
        this.#checks.set(key, ctrl);
        log.info("Upstream {upstream} added", { upstream: key });
        this.#opts.startChecks?.(up, ctrl.signal);
      } else if (have.draining) {
        have.draining = false;
        this.#drains.get(key)?.abort();
        this.#drains.delete(key);
        log.info("Upstream {upstream} added again while draining; its connections stay", { upstream: key });
      }
    }
    for (const [key, up] of this.#ups) {
      if (!wanted.has(key) && !up.draining) this.#drain(up);
    }
  }

  #drain(up: Upstream): void {
    up.draining = true;
    log.info("Upstream {upstream} removed; draining {connections} connections for up to {drainMs} ms", {
      upstream: up.key,
      connections: up.activeConnections,
      drainMs: this.#opts.drainTimeoutMs,
    });
    if (up.activeConnections === 0) return this.#forget(up);
    const ctrl = new AbortController();
    this.#drains.set(up.key, ctrl);
    this.#opts.clock.sleep(this.#opts.drainTimeoutMs, ctrl.signal).then(() => {
      this.#drains.delete(up.key);
      const n = up.closeAll();
      log.info("Upstream {upstream} drain deadline reached; closed {connections} connections", {
        upstream: up.key,
        connections: n,
      });
      this.#forget(up);
    }, () => {});
  }

  #forget(up: Upstream): void {
    if (this.#ups.get(up.key) !== up) return;
    this.#ups.delete(up.key);
    this.#checks.get(up.key)?.abort();
    this.#checks.delete(up.key);
    this.#drains.get(up.key)?.abort();
    this.#drains.delete(up.key);
  }

  /** Called by the data path when a connection of `up` ended: a drained upstream goes once it is empty. */
  connectionEnded(up: Upstream): void {
    if (up.draining && up.activeConnections === 0) this.#forget(up);
  }

  /** Dial candidates for one new client connection, best first. */
  candidates(): Upstream[] {
    return orderCandidates([...this.#ups.values()], this.#turn++);
  }

  /** Every upstream, draining ones included. */
  upstreams(): Upstream[] {
    return [...this.#ups.values()];
  }

  /** Whether at least one upstream that takes new connections is healthy. */
  hasHealthy(): boolean {
    for (const u of this.#ups.values()) if (u.state === "healthy" && !u.draining) return true;
    return false;
  }

  /** The upstream for a key, if present. */
  get(key: string): Upstream | undefined {
    return this.#ups.get(key);
  }

  /** JSON views of every upstream. */
  snapshot(): UpstreamSnapshot[] {
    return this.upstreams().map((u) => u.snapshot());
  }

  /** Stops every health check and drain timer. Connections are the caller's to close. */
  close(): void {
    this.#closed = true;
    for (const c of this.#checks.values()) c.abort();
    for (const c of this.#drains.values()) c.abort();
    this.#checks.clear();
    this.#drains.clear();
  }
}

/** Logs a state change at the level it deserves. */
export function logStateChange(change: StateChange): void {
  const fields = { upstream: change.upstream.key, from: change.from, to: change.to, reason: change.reason };
  if (change.to === "unhealthy") log.warn("Upstream {upstream} is {to} (was {from}): {reason}", fields);
  else log.info("Upstream {upstream} is {to} (was {from}): {reason}", fields);
}
