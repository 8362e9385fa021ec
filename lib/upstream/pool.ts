/**
 * The set of upstreams: replaced as a whole by each endpoint set, without disturbing the ones that stay.
 *
 * @module
 */
import { getLogger } from "../log.ts";
import type { Clock, Random } from "../clock.ts";
import { type Endpoint, endpointKey } from "../endpoint.ts";
import { reportInternalError } from "../internal_errors.ts";
import { orderCandidates, type SelectionPolicy, updateTiers } from "./choose.ts";
import { type StateChange, Upstream, type UpstreamSnapshot } from "./upstream.ts";

const log = getLogger(["extractedprism", "pool"]);

/** Options of a pool. */
export interface PoolOptions {
  readonly rise: number;
  readonly fall: number;
  /** How long a removed upstream's connections may live before they are closed. */
  readonly drainTimeoutMs: number;
  readonly clock: Clock;
  /** @default Math.random */
  readonly random?: Random;
  /** @default "latency" */
  readonly policy?: SelectionPolicy;
  /**
   * Close the live connections of an upstream that turns unhealthy, spread over `closeSpreadMs`, as long as another
   * upstream is healthy. @default true
   */
  readonly closeOnUnhealthy?: boolean;
  /** @default 1000 */
  readonly closeSpreadMs?: number;
  /**
   * Most upstreams kept; beyond it the pool keeps `pinned` endpoints first, then the others ordered by address, and
   * counts the rest as dropped. @default 64
   */
  readonly maxUpstreams?: number;
  /** Endpoints kept first when the set exceeds `maxUpstreams` (the static `--endpoints`). @default [] */
  readonly pinned?: readonly Endpoint[];
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
  readonly #lifecycle = new AbortController();
  readonly #closing = new Set<string>();
  /** Upstreams whose first verdict was "unhealthy": their connections from before that verdict are spared. */
  readonly #unproven = new Set<string>();
  readonly #pinned: ReadonlySet<string>;
  #turn = 0;
  #closed = false;
  #dropped = 0;

  constructor(opts: PoolOptions) {
    this.#opts = opts;
    this.#pinned = new Set((opts.pinned ?? []).map(endpointKey));
  }

  /** How many endpoints of the last set were left out by `maxUpstreams`. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Replaces the endpoint set. An empty set is refused (kept as it was) with a warning. */
  update(endpoints: readonly Endpoint[]): void {
    if (this.#closed) return;
    if (endpoints.length === 0) {
      log.warn("Ignoring an empty endpoint set; keeping {count} upstreams", { count: this.#ups.size });
      return;
    }
    const wanted = this.#capped(new Map(endpoints.map((e) => [endpointKey(e), e])));
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

  /** The deterministic subset of at most `maxUpstreams` endpoints: pinned ones first, then by address. */
  #capped(all: Map<string, Endpoint>): Map<string, Endpoint> {
    const max = this.#opts.maxUpstreams ?? 64;
    const dropped = Math.max(0, all.size - max);
    if (dropped !== this.#dropped) {
      if (dropped > 0) {
        log.warn(
          "{count} endpoints exceed --max-upstreams={max}; keeping the static ones first, then the others by " +
            "address, and dropping {dropped}",
          { count: all.size, max, dropped },
        );
      } else log.info("The endpoint set fits --max-upstreams={max} again; none dropped", { max });
      this.#dropped = dropped;
    }
    if (dropped === 0) return all;
    const keys = [...all.keys()];
    const pinned = [...this.#pinned].filter((k) => all.has(k));
    const rest = keys.filter((k) => !this.#pinned.has(k)).sort();
    return new Map([...pinned, ...rest].slice(0, max).map((k) => [k, all.get(k) as Endpoint]));
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
    }, () => {}).catch((e) => reportInternalError("the drain deadline", e));
  }

  #forget(up: Upstream): void {
    if (this.#ups.get(up.key) !== up) return;
    this.#ups.delete(up.key);
    this.#checks.get(up.key)?.abort();
    this.#checks.delete(up.key);
    this.#drains.get(up.key)?.abort();
    this.#drains.delete(up.key);
    this.#unproven.delete(up.key);
  }

  /** Called by the data path when a connection of `up` ended: a drained upstream goes once it is empty. */
  connectionEnded(up: Upstream): void {
    if (up.draining && up.activeConnections === 0) this.#forget(up);
  }

  /** Dial candidates for one new client connection, best first. */
  candidates(): Upstream[] {
    return orderCandidates([...this.#ups.values()], this.#turn++, this.#opts.policy ?? "latency");
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

  /** JSON views of every upstream (latency tiers recomputed first, so they are current even without traffic). */
  snapshot(): UpstreamSnapshot[] {
    updateTiers(this.upstreams().filter((u) => u.state === "healthy" && !u.draining));
    return this.upstreams().map((u) => u.snapshot());
  }

  /**
   * Handles a state change from a probe or a client dial: logs it, and closes connections that sit on a dead upstream.
   * A removed upstream that turns unhealthy is closed at once. Connections are never closed when no other upstream
   * is healthy (a probe hiccup on every upstream must not cut every client, k3s#10240); they are closed when one
   * becomes healthy again.
   */
  stateChanged(change: StateChange): void {
    logStateChange(change);
    if (this.#closed || this.#opts.closeOnUnhealthy === false) return;
    const up = change.upstream;
    // An upstream whose very first verdict is "unhealthy" leaves the rotation at once, but the connections opened to it
    // before any verdict stay: a first probe can be slow (a cold TLS stack, a busy new process beside the old one in a
    // hand-over), and a live connection proves the upstream reachable. Only a proven upstream that falls is cut.
    if (change.from === "unknown" && change.to === "unhealthy") this.#unproven.add(up.key);
    else if (change.to === "healthy") this.#unproven.delete(up.key);
    if (change.to === "unhealthy" && up.activeConnections > 0 && !this.#unproven.has(up.key)) {
      if (up.draining) {
        const n = up.closeAll();
        log.info("Upstream {upstream} is draining and unhealthy; closed {connections} connections at once", {
          upstream: up.key,
          connections: n,
        });
      } else if (this.hasHealthy()) this.#closeSpread(up);
      else {
        log.warn("Every upstream looks unhealthy; keeping the {connections} connections of {upstream} open", {
          upstream: up.key,
          connections: up.activeConnections,
        });
      }
    } else if (change.to === "healthy" && !up.draining) {
      for (const other of this.#ups.values()) {
        if (other.state === "unhealthy" && other.activeConnections > 0 && !this.#unproven.has(other.key)) {
          this.#closeSpread(other);
        }
      }
    }
  }

  #closeSpread(up: Upstream): void {
    if (this.#closing.has(up.key)) return;
    this.#closing.add(up.key);
    const spread = this.#opts.closeSpreadMs ?? 1000;
    const random = this.#opts.random ?? Math.random;
    const conns = up.connections();
    log.info("Upstream {upstream} is unhealthy; closing its {connections} connections over {spreadMs} ms", {
      upstream: up.key,
      connections: conns.length,
      spreadMs: spread,
    });
    let left = conns.length;
    for (const c of conns) {
      this.#opts.clock.sleep(random() * spread, this.#lifecycle.signal).then(() => {
        // Spared if the upstream recovered meanwhile.
        if (up.state === "unhealthy" || up.draining) c.close();
      }, () => {}).finally(() => {
        if (--left === 0) this.#closing.delete(up.key);
      }).catch((e) => reportInternalError("the spread close", e));
    }
  }

  /** Stops every health check and drain timer. Connections are the caller's to close. */
  close(): void {
    this.#closed = true;
    this.#lifecycle.abort();
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
