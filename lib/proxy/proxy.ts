/**
 * One client connection's life: ask the pool for candidates, dial, relay, account. The only place where the data path
 * meets the control path: it registers the connection with the upstream it got, so the pool can drain or close it.
 *
 * @module
 */
import { endpointKey } from "../endpoint.ts";
import { describeError } from "../errors.ts";
import { getLogger } from "../log.ts";
import type { Clock } from "../clock.ts";
import type { Pool } from "../upstream/pool.ts";
import { reportInternalError } from "../internal_errors.ts";
import { LiveList, type LiveNode } from "../live_list.ts";
import { LogLimit } from "../log_limit.ts";
import type { Closable, Upstream } from "../upstream/upstream.ts";
import { CoarseTimer } from "./coarse_timer.ts";
import { dial, type DialConnect } from "./dial.ts";
import { isNormalEnd, type RelayBuffers, relayBuffers, startRelay } from "./relay.ts";
import { ConnectSignals } from "../net/connect_tcp.ts";

const log = getLogger(["extractedprism", "proxy"]);

/** Options of the proxy's connection handling. */
export interface ProxyOptions {
  readonly pool: Pool;
  readonly dialTimeoutMs: number;
  readonly hedgeDelayMs: number;
  /** The dial budget when no candidate is healthy (the health probe timeout). */
  readonly fallbackBudgetMs: number;
  /** Connection durations, the dials' budgets and hedges, and the "no upstream" log limit. */
  readonly clock: Clock;
  /** How the proxy connects to upstreams. @default Deno.connect */
  readonly connect?: DialConnect;
}

/**
 * No Nagle delay on either side. Keep-alive finds a peer that vanished without a word (a node that lost power under a
 * watch); a client on this host's loopback cannot vanish so (its kernel closes its socket), and skipping the option
 * there saves a syscall per connection. Applied when the relay starts, to both sockets: nothing is written to the client
 * before, and a client whose dial fails is closed without it. It also costs less there than right after the accept
 * (the main thread's time in the option's calls: 10.5-11.7 against 13.0-13.8 us per connection, `bench/cpu_profile.ts`).
 */
function tune(conn: Deno.TcpConn): void {
  try {
    conn.setNoDelay(true);
    if (!isLoopback(conn.remoteAddr.hostname)) conn.setKeepAlive(true);
  } catch { /* the peer may already be gone; the relay will notice */ }
}

function isLoopback(host: string): boolean {
  return host.startsWith("127.") || host === "::1" || host.startsWith("::ffff:127.");
}

/** Relays client connections to upstreams and knows every live one, for draining at shutdown. */
export class Proxy {
  readonly #opts: ProxyOptions;
  readonly #buffers: RelayBuffers;
  readonly #connect: DialConnect;
  /** The attempts' reusable signals, with the default connect only (a test's connect gets plain ones). */
  readonly #signals: ConnectSignals | undefined;
  readonly #timer: CoarseTimer;
  readonly #live = new LiveList<Closable>();
  readonly #noUpstreamLog: LogLimit;
  #idle: PromiseWithResolvers<void> | undefined;
  /** Client connections closed because no upstream could be reached. */
  failedDials = 0;

  constructor(opts: ProxyOptions) {
    this.#opts = opts;
    this.#buffers = relayBuffers();
    if (opts.connect === undefined) {
      const signals = this.#signals = new ConnectSignals();
      this.#connect = (e, signal) => signals.connect({ hostname: e.host, port: e.port }, signal);
    } else {
      this.#signals = undefined;
      this.#connect = opts.connect;
    }
    this.#timer = new CoarseTimer(opts.clock);
    this.#noUpstreamLog = new LogLimit({ intervalMs: 1000, burst: 5, now: () => opts.clock.now() });
  }

  /** Live client connections (dialling included). */
  get active(): number {
    return this.#live.size;
  }

  /** Takes over an accepted client connection. Never throws. */
  handle(client: Deno.TcpConn): void {
    let relay: Closable | undefined;
    let closedEarly = false;
    // Registered before the dial so that shutdown sees it.
    const entry: Closable = {
      close: () => {
        if (relay) relay.close();
        else {
          closedEarly = true;
          try {
            client.close();
          } catch { /* closed */ }
          this.#forget(node);
        }
      },
    };
    const node = this.#live.add(entry);
    const pool = this.#opts.pool;
    const candidates = pool.candidates();
    // With every upstream known unhealthy the dial is a long shot at a stale health view: give it the probe timeout,
    // not the whole budget, so that clients fail fast while everything is down (a blackholed set would cost the full
    // budget). Before the first verdicts (a process that has just started, perhaps beside the one it replaces, with
    // its event loop still busy) an upstream is no long shot: the dial gets the whole budget.
    const worthBudget = candidates.some((u) => u.state !== "unhealthy");
    const budgetMs = worthBudget
      ? this.#opts.dialTimeoutMs
      : Math.min(this.#opts.dialTimeoutMs, this.#opts.fallbackBudgetMs);
    // Set by a failed attempt; when the budget ends the dial, the attempts it cancels report after this client's line.
    let lastFailure: string | undefined;
    dial(candidates, {
      budgetMs,
      hedgeDelayMs: this.#opts.hedgeDelayMs,
      connect: this.#connect,
      signals: this.#signals,
      timer: this.#timer,
      onFailure: (up, reason) => {
        lastFailure = `${up.key}: ${reason}`;
        const change = up.recordFailure(reason);
        if (change) pool.stateChanged(change);
      },
    }).then((dialed) => {
      if (closedEarly) {
        dialed?.conn.close();
        return;
      }
      if (dialed === undefined) {
        this.failedDials++;
        // At most five lines a second: every client fails this way while all upstreams are down.
        const suppressed = this.#noUpstreamLog.take("no upstream");
        if (suppressed !== undefined) {
          log.warn(
            "No upstream reachable for client {client}; closing it ({candidates} candidates, the last failure " +
              "{lastFailure}; {suppressed} more clients closed since the last line)",
            {
              client: addrText(client.remoteAddr),
              candidates: candidates.length,
              lastFailure: lastFailure ?? `none within the dial budget (${budgetMs} ms)`,
              suppressed,
            },
          );
        }
        entry.close();
        return;
      }
      this.#relay(client, dialed.conn, dialed.upstream, node, (r) => (relay = r));
    }, (e: unknown) => {
      log.error("Dial failed unexpectedly: {error}", { error: describeError(e) });
      entry.close();
    }).catch((e: unknown) => {
      // A bug between the dial and the relay: the client is closed, the process serves on.
      reportInternalError("a client connection's start", e);
      try {
        entry.close();
      } catch { /* closed */ }
    });
  }

  #relay(
    client: Deno.TcpConn,
    conn: Deno.TcpConn,
    up: Upstream,
    node: LiveNode<Closable>,
    setRelay: (r: Closable) => void,
  ): void {
    tune(client);
    tune(conn);
    const started = this.#opts.clock.now();
    let bytesIn = 0;
    let bytesOut = 0;
    // Declared before the relay starts: its end must find them whenever it comes.
    let tracked: LiveNode<Closable> | undefined;
    let ended = false;
    const handle = startRelay(client, conn, {
      buffers: this.#buffers,
      onClientBytes: (n) => {
        bytesOut += n;
        up.bytesOut += n;
      },
      onUpstreamBytes: (n) => {
        bytesIn += n;
        up.bytesIn += n;
      },
      onEnd: (error) => {
        ended = true;
        tracked?.remove();
        this.#forget(node);
        this.#opts.pool.connectionEnded(up);
        const normal = isNormalEnd(error);
        // Fields are built only when the line will be written: this runs once per connection.
        if (normal && !log.isEnabledFor("debug")) return;
        const fields = {
          client: addrText(client.remoteAddr),
          upstream: up.key,
          bytesIn,
          bytesOut,
          durationMs: Math.round(this.#opts.clock.now() - started),
          error: error === undefined ? null : describeError(error),
        };
        if (normal) log.debug("Connection from {client} via {upstream} ended", fields);
        else log.info("Connection from {client} via {upstream} ended with an error: {error}", fields);
      },
    });
    if (!ended) tracked = up.track(handle);
    setRelay(handle);
  }

  #forget(node: LiveNode<Closable>): void {
    if (node.remove() && this.#live.size === 0 && this.#idle) {
      this.#idle.resolve();
      this.#idle = undefined;
    }
  }

  /** Resolves when no connection is live (at once if none is). */
  idle(): Promise<void> {
    if (this.#live.size === 0) return Promise.resolve();
    this.#idle ??= Promise.withResolvers<void>();
    return this.#idle.promise;
  }

  /** Closes every live connection. */
  closeAll(): number {
    const n = this.#live.size;
    for (const c of this.#live.values()) c.close();
    return n;
  }
}

function addrText(a: Deno.Addr): string {
  const n = a as Deno.NetAddr;
  return endpointKey({ host: n.hostname, port: n.port });
}
