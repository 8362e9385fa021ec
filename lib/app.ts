/**
 * The running proxy, assembled: pool -> health checks -> accept loop -> relay, plus the health server; then fed by the
 * endpoint providers. `main.ts` builds one from the command line; tests build one in-process with port 0.
 *
 * @module
 */
import { describeError } from "./errors.ts";
import { getLogger } from "./log.ts";
import { type Clock, sleep, systemClock } from "./clock.ts";
import type { ProxyConfig } from "./config/proxy_flags.ts";
import { type Endpoint, endpointKey } from "./endpoint.ts";
import { formatDuration } from "./config/duration.ts";
import { isOwnListener, localAddresses } from "./config/own_listener.ts";
import { internalErrorCount, reportInternalError } from "./internal_errors.ts";
import { readKubeconfigCa } from "./discovery/kubeconfig_ca.ts";
import { mergeProviders } from "./discovery/merge.ts";
import type { EndpointProvider } from "./discovery/provider.ts";
import { staticProvider } from "./discovery/static.ts";
import { AcceptLoop } from "./net/accept_loop.ts";
import type { DialConnect } from "./proxy/dial.ts";
import { Proxy } from "./proxy/proxy.ts";
import { renderProxyMetrics } from "./status/metrics.ts";
import { LoopStallWatch } from "./loop_stall.ts";
import { HttpServer } from "./net/http_server.ts";
import { heldBySharers, listenShared, type SharedListener } from "./net/listen_shared.ts";
import { DeferredSource, joinWhenReady } from "./net/handover.ts";
import { HealthPeerWatch } from "./net/health_watch.ts";
import type { AcceptSource } from "./net/accept_loop.ts";
import { statusHandler } from "./status/server.ts";
import { ProbeSlots, runChecks } from "./upstream/checker.ts";
import { Pool } from "./upstream/pool.ts";
import type { Upstream } from "./upstream/upstream.ts";
import { buildProbe, type CaSources } from "./upstream/build_probe.ts";
import type { Probe, ProbeResult } from "./upstream/probe.ts";

const log = getLogger(["extractedprism", "app"]);

/** What can be swapped when starting the proxy (tests); everything has a production default. */
export interface AppDeps {
  readonly clock?: Clock;
  readonly random?: () => number;
  /** The health probe. @default TCP connect */
  readonly probe?: Probe;
  /** How the data path connects to upstreams. @default Deno.connect */
  readonly connect?: DialConnect;
  /** How often the hand-over looks at the shared ports (see `lib/net/handover.ts`). @default 1000 */
  readonly handoverPollMs?: number;
}

/** Probes in flight at once across every upstream, so that a huge endpoint set cannot starve the event loop. */
export const MAX_PROBES_IN_FLIGHT = 16;

/**
 * How long after listening the work that no early client needs begins (see {@linkcode ProxyApp.quiet}): loading
 * discovery's code, initialising the readyz probes' TLS, reading the kubeconfig's CA. Each holds the event loop's
 * thread for 5-15 ms and competes for its core (`deno task bench --only=startup`): clients that connect at boot
 * (kubelet, restarted with the node) go first. The first readyz probe comes that much later; upstreams are unknown,
 * and relayed to, meanwhile.
 */
export const QUIET_AFTER_MS = 100;

/** How long failing accepts (of a kind that leaves descriptors free) may hold that work back. */
const QUIET_AT_MOST_MS = 10_000;

/**
 * Whether the process has a file descriptor to spare. Deno 2.9 panics when it loads a module without one (its stack
 * probe cannot read /proc/self/maps: `stacker ... left: 24`), so no module is loaded in a storm of connections that
 * exhausts them (tests/emfile_test.ts starts one as soon as the proxy relays).
 */
function descriptorToSpare(): boolean {
  try {
    Deno.openSync("/dev/null").close();
    return true;
  } catch {
    return false;
  }
}

/**
 * The probe, with its one-time preparation (finding the CA, initialising TLS) held until `quiet` resolves. A probe
 * without one (TCP) is returned as it is: it costs the first clients nothing and starts at once.
 */
function preparedWhenQuiet(probe: Probe, quiet: () => Promise<void>): Probe {
  const prepare = probe.prepare;
  if (prepare === undefined) return probe;
  let prepared: Promise<void> | undefined;
  return {
    name: probe.name,
    check: (endpoint: Endpoint, signal: AbortSignal): Promise<ProbeResult> => probe.check(endpoint, signal),
    release: (endpoint: Endpoint): void => probe.release?.(endpoint),
    prepare: () => prepared ??= quiet().then(() => prepare.call(probe)),
  };
}

/**
 * Binds a listener that a next instance may share (the hand-over of an upgrade), and says when this instance is that
 * next one, or when the runtime cannot share the port.
 */
function listen(hostname: string, port: number, what: string): SharedListener {
  const at = endpointKey({ host: hostname, port });
  let bound: SharedListener;
  try {
    bound = listenShared(hostname, port);
  } catch (e) {
    throw new Error(`Cannot listen on ${at} (${what}): ${describeError(e)}`);
  }
  if (bound.shared) {
    log.info("Sharing {address} with another instance that listens there (SO_REUSEPORT): a hand-over", {
      address: at,
    });
  }
  if (bound.exclusive) {
    log.warn("Listening on {address} without SO_REUSEPORT (Deno runs without --unstable-net): no zero-gap hand-over", {
      address: at,
    });
  }
  return bound;
}

/** How long a stop waits for the endpoint feed to end. */
const FEED_STOP_MS = 1000;

/**
 * Drops discovered endpoints that are the proxy's own listener (each connection would dial itself again), with one
 * warning per endpoint, not one per update.
 */
function ownListenerFilter(listener: { host: string; port: number }): (e: Endpoint) => boolean {
  let local: readonly string[] | undefined;
  const addresses = () => (local ??= localAddresses());
  const warned = new Set<string>();
  return (e) => {
    if (!isOwnListener(e, listener, addresses)) return true;
    const key = endpointKey(e);
    if (!warned.has(key)) {
      warned.add(key);
      log.warn("Skipping discovered endpoint {endpoint}: it is this proxy's own listener", { endpoint: key });
    }
    return false;
  };
}

/**
 * The kubeconfig discovery uses (`--kubeconfig`, discovery on) gives the readyz probe its cluster CA when
 * `--health-ca-file` is not given, so that a bare node needs neither that flag nor Node's TLS module. With discovery
 * off it is not read: its YAML parser would cost more memory (about 5 MiB) than Node's TLS module saves.
 */
function probeCaSources(config: ProxyConfig): CaSources {
  const path = config.kubeconfig;
  if (path === undefined || !config.enableDiscovery) return {};
  return { kubeconfigCa: () => readKubeconfigCa(path, config.kubeContext) };
}

/** A started proxy. */
export class ProxyApp {
  readonly pool: Pool;
  readonly proxy: Proxy;
  readonly loop: AcceptLoop;
  /** The proxy listener's address (useful with port 0). */
  readonly addr: Deno.NetAddr;
  /** The health server's address. */
  readonly healthAddr: Deno.NetAddr;
  readonly #config: ProxyConfig;
  readonly #clock: Clock;
  readonly #stop = new AbortController();
  readonly #accepting: Promise<void>;
  /** The endpoint feed started by {@linkcode feed}; nothing to wait for until then. */
  #feeding: Promise<void> | undefined;
  readonly #health: HttpServer;
  /** The proxy port while another instance holds it and this one has not joined it yet. */
  #deferred: DeferredSource | undefined;
  /** This instance, as the health port's `/instance` says. */
  readonly #me = { instance: crypto.randomUUID(), startedAt: Date.now() };
  /** Ends the hand-over's waits and watches at the stop. */
  readonly #handover = new AbortController();
  readonly #handing: Promise<void>[] = [];
  /** Resolved at the quiet moment after listening (see {@linkcode quiet}). */
  #quiet: Promise<void> | undefined;
  /** Who answers the shared health port (none with port 0: nobody can share it). */
  #watch: HealthPeerWatch | undefined;
  #instanceAsked = 0;
  /** Counts the moments this process did not run (for `/metrics`), from the start to the end of the drain. */
  readonly #stalls: LoopStallWatch;
  #shuttingDown = false;
  #stopped: Promise<void> | undefined;

  private constructor(config: ProxyConfig, deps: AppDeps) {
    this.#config = config;
    const clock = this.#clock = deps.clock ?? systemClock;
    const probe = preparedWhenQuiet(deps.probe ?? buildProbe(config, probeCaSources(config)), () => this.quiet());
    const slots = new ProbeSlots(MAX_PROBES_IN_FLIGHT);
    // Both listeners are bound before anything runs: a failed bind leaves no probe, timer or socket behind. A proxy
    // port that another instance holds (an upgrade's hand-over) is joined later, once this one can serve.
    let source: AcceptSource;
    let deferred: DeferredSource | undefined;
    if (config.bindPort !== 0 && heldBySharers(config.bindAddress, config.bindPort)) {
      source = deferred = new DeferredSource({ transport: "tcp", hostname: config.bindAddress, port: config.bindPort });
      this.#deferred = deferred;
    } else {
      source = listen(config.bindAddress, config.bindPort, "--bind-address/--bind-port").listener;
    }
    this.addr = source.addr as Deno.NetAddr;
    const random = deps.random ?? Math.random;
    // A check loop that throws (a bug) is reported and started again after one interval: an upstream whose checks
    // died would keep its last state forever.
    const check = (up: Upstream, signal: AbortSignal): void => {
      runChecks(up, {
        probe,
        intervalMs: config.healthIntervalMs,
        timeoutMs: config.healthTimeoutMs,
        clock,
        random,
        slots,
        onChange: (change) => pool.stateChanged(change),
      }, signal).catch((e) => {
        reportInternalError(`the health checks of ${up.key}`, e);
        clock.sleep(config.healthIntervalMs, signal).then(() => check(up, signal), () => {});
      });
    };
    const pool: Pool = this.pool = new Pool({
      rise: config.healthRise,
      fall: config.healthFall,
      drainTimeoutMs: config.drainTimeoutMs,
      clock,
      random: deps.random ?? Math.random,
      policy: config.upstreamSelection,
      closeOnUnhealthy: config.closeOnUnhealthy,
      maxUpstreams: config.maxUpstreams,
      pinned: config.endpoints,
      startChecks: check,
    });
    this.proxy = new Proxy({
      pool: this.pool,
      dialTimeoutMs: config.dialTimeoutMs,
      hedgeDelayMs: config.hedgeDelayMs,
      fallbackBudgetMs: config.healthTimeoutMs,
      clock,
      ...(deps.connect ? { connect: deps.connect } : {}),
    });
    this.loop = new AcceptLoop(source, (conn) => this.proxy.handle(conn), { name: "proxy", clock });
    // A health port that another instance holds (the same test as the proxy port's, made by the bind itself) makes
    // this instance a successor: its hand-over watch looks from the start.
    let successor = false;
    try {
      const health = listen(config.healthBindAddress, config.healthPort, "--health-bind-address/--health-port");
      successor = health.shared;
      this.#health = new HttpServer(
        { name: "health", hostname: config.healthBindAddress, port: config.healthPort, listener: health.listener },
        statusHandler({
          // Waiting to join the proxy port is alive: the accept loop is idle by design until then.
          live: () => deferred === undefined || deferred.joined ? this.loop.selfCheck(1000) : Promise.resolve(true),
          ready: () => this.ready,
          shuttingDown: () => this.#shuttingDown,
          instance: () => this.#me,
          // Another instance is looking: look too (it may be newer, or an older one waiting for this one to look).
          onInstanceAsked: () => {
            this.#instanceAsked++;
            this.#watch?.wake();
          },
          upstreams: () => this.pool.snapshot(),
          metrics: () =>
            renderProxyMetrics({
              ready: this.ready,
              upstreams: this.pool.snapshot(),
              accepted: this.loop.accepted,
              acceptErrors: this.loop.errors,
              failedDials: this.proxy.failedDials,
              activeConnections: this.proxy.active,
              upstreamsDropped: this.pool.dropped,
              internalErrors: internalErrorCount(),
              loopStalls: { count: this.#stalls.stalls, ms: this.#stalls.stalledMs },
              health: {
                acceptErrors: this.#health.acceptErrors,
                refused: this.#health.refused,
                evicted: this.#health.evicted,
              },
            }),
        }),
      );
    } catch (e) {
      this.loop.stop();
      throw e;
    }
    this.healthAddr = this.#health.addr;
    this.#stalls = new LoopStallWatch({ clock });
    this.#stalls.start();
    // The quiet moment counts from here, whoever asks for it first (a readyz probe's preparation does, just below).
    this.quiet();
    // The static endpoints before the first accept, so that no early client finds an empty pool.
    pool.update(config.endpoints);
    // The loop never throws (a bug would): reported rather than left as a rejection for shutdown to find.
    this.#accepting = this.loop.run().catch((e) => reportInternalError("the accept loop", e));
    const pollMs = deps.handoverPollMs ?? 1000;
    if (deferred !== undefined) {
      const joining = joinWhenReady(deferred, {
        hostname: config.bindAddress,
        port: config.bindPort,
        ready: () => pool.hasHealthy(),
        signal: this.#handover.signal,
        pollMs: Math.min(pollMs, 50),
        clock,
      });
      this.#handing.push(joining.catch((e) => reportInternalError("the join of the proxy port", e)));
    }
    if (config.healthPort !== 0) {
      const watch = this.#watch = new HealthPeerWatch(this.#health, {
        hostname: config.healthBindAddress,
        port: config.healthPort,
        me: this.#me,
        signal: this.#handover.signal,
        watching: successor,
        pollMs,
        clock,
      });
      this.#handing.push(watch.done.catch((e) => reportInternalError("the watch of the health port", e)));
    }
  }

  /**
   * Feeds the pool from endpoint providers (discovery, a state file), merged with the static `--endpoints`, until
   * shutdown. Apart from {@linkcode start} because discovery needs {@linkcode knownEndpoints} to reach the API
   * servers, and the app needs discovery's providers: the app first, then discovery, then this.
   *
   * @throws {Error} When called a second time (the pool has one feed).
   */
  feed(providers: readonly EndpointProvider[]): void {
    if (this.#feeding !== undefined) throw new Error("The endpoint feed is already running");
    const all = [staticProvider(this.#config.endpoints), ...providers];
    const notSelf = ownListenerFilter({ host: this.#config.bindAddress, port: this.addr.port });
    const pool = this.pool;
    this.#feeding = (async () => {
      for await (const set of mergeProviders(all, this.#stop.signal)) pool.update(set.filter(notSelf));
    })().catch((e) => reportInternalError("the endpoint feed", e)); // the merge never throws: a bug
  }

  /**
   * Starts listening and probing.
   *
   * @throws {Error} When a port cannot be bound (one line naming the address and flag).
   */
  static start(config: ProxyConfig, deps: AppDeps = {}): ProxyApp {
    return new ProxyApp(config, deps);
  }

  /**
   * Resolves at a quiet moment for the work no early client needs (discovery's code, the probes' TLS and CA):
   * {@linkcode QUIET_AFTER_MS} after listening, later while no descriptor is free, or while the proxy's accepts keep
   * failing (for at most 10 s: a steady trickle of other accept errors must not starve that work); never once the
   * app stops before that (nothing started then would be of use). The same promise for every caller.
   */
  quiet(): Promise<void> {
    return this.#quiet ??= this.#untilQuiet();
  }

  async #untilQuiet(): Promise<void> {
    const signal = this.#handover.signal;
    let errors = this.loop.errors;
    const since = performance.now();
    while (!signal.aborted) {
      // The runtime's timer, not the app's clock: a test's manual clock must not hold the probes back for good.
      await sleep(QUIET_AFTER_MS, signal).catch(() => {});
      if (signal.aborted) break;
      const quiet = this.loop.errors === errors || performance.now() - since >= QUIET_AT_MOST_MS;
      errors = this.loop.errors;
      if (quiet && descriptorToSpare()) return;
    }
    await new Promise<never>(() => {});
  }

  /** Every known endpoint, healthy ones first: what discovery dials directly (never this proxy's own listener). */
  knownEndpoints(): Endpoint[] {
    const ups = this.pool.upstreams();
    return [...ups.filter((u) => u.state === "healthy"), ...ups.filter((u) => u.state !== "healthy")].map((u) =>
      u.endpoint
    );
  }

  /**
   * The hand-over's traffic on the health port, for tests and diagnostics: `GET /instance` requests this instance's
   * watch sent (`asked`) and its health port answered (`answered`), and whether the watch is looking now.
   */
  get instanceRequests(): { readonly asked: number; readonly answered: number; readonly watching: boolean } {
    return { asked: this.#watch?.asked ?? 0, answered: this.#instanceAsked, watching: this.#watch?.watching ?? false };
  }

  /** Whether `/readyz` says 200: not shutting down and some upstream is healthy. */
  get ready(): boolean {
    // A new instance beside an old one is ready once it has joined the proxy port, not before: readiness is what
    // lets the old one be stopped.
    return !this.#shuttingDown && this.pool.hasHealthy() && (this.#deferred === undefined || this.#deferred.joined);
  }

  /**
   * Graceful stop: not ready, listener closed, live connections drain up to `--drain-timeout`, the rest are closed,
   * health server shut down. Idempotent.
   */
  shutdown(reason = "shutdown"): Promise<void> {
    this.#stopped ??= this.#shutdown(reason);
    return this.#stopped;
  }

  async #shutdown(reason: string): Promise<void> {
    this.#shuttingDown = true;
    log.info("{reason}: not ready, closing the health and proxy listeners", { reason });
    // The health port first: kubelet's next probes reach the instance that takes over (the ports are shared), not
    // this one, which is going. Then the proxy port: new connections go to that instance, and live ones drain here.
    this.#handover.abort();
    await Promise.all(this.#handing);
    await this.#health.stopListening();
    this.loop.stop();
    await this.#accepting;
    log.info("Listeners closed; draining {connections} connections for up to {drain}", {
      connections: this.proxy.active,
      drain: formatDuration(this.#config.drainTimeoutMs),
    });
    const timer = new AbortController();
    const drained = await Promise.race([
      this.proxy.idle().then(() => true),
      this.#clock.sleep(this.#config.drainTimeoutMs, timer.signal).then(() => false, () => false),
    ]);
    timer.abort();
    if (!drained) {
      log.warn("Drain timeout reached; closing {connections} connections", { connections: this.proxy.closeAll() });
      await this.proxy.idle();
    }
    this.#stop.abort();
    this.pool.close();
    // Bounded: a provider that ignores its abort signal must not hold the stop (main bounds discovery the same way).
    const feedTimer = new AbortController();
    const fed = await Promise.race([
      (this.#feeding ?? Promise.resolve()).then(() => true),
      this.#clock.sleep(FEED_STOP_MS, feedTimer.signal).then(() => false, () => false),
    ]);
    feedTimer.abort();
    if (!fed) log.warn("Endpoint discovery did not stop within {ms} ms; not waiting for it", { ms: FEED_STOP_MS });
    await this.#health.shutdown();
    this.#stalls.stop();
    log.info("Stopped");
  }

  /** Same as `shutdown()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }
}
