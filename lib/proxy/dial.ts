/**
 * The dial: connect one client to the first upstream that answers, within one budget. Candidates are tried in order;
 * when one has neither connected nor failed after the hedge delay, the next starts in parallel, so a blackholed
 * upstream that health checks have not caught yet costs a client about one hedge delay, not the whole budget.
 *
 * @module
 */
import { describeError } from "../errors.ts";
import type { Endpoint } from "../endpoint.ts";
import { reportInternalError } from "../internal_errors.ts";
import type { Upstream } from "../upstream/upstream.ts";
import type { CoarseTimer, TimerEntry } from "./coarse_timer.ts";

/** The reason given to dials that lost or ran out of time. */
const CANCELLED = new DOMException("dial cancelled", "AbortError");

/** Opens a TCP connection; must reject soon after `signal` aborts. */
export type DialConnect = (endpoint: Endpoint, signal: AbortSignal) => Promise<Deno.TcpConn>;

/** Options of one dial. */
export interface DialOptions {
  /** The whole time one client may wait for an upstream. */
  readonly budgetMs: number;
  /** Time before starting the next candidate in parallel; at least this, or 3 * the upstream's last RTT. */
  readonly hedgeDelayMs: number;
  readonly connect: DialConnect;
  /** The budget's and the hedge's timer, shared by every dial of a proxy. */
  readonly timer: CoarseTimer;
  /** A candidate failed (refused, unreachable, or still pending when the budget ran out). */
  readonly onFailure: (upstream: Upstream, reason: string) => void;
  /**
   * Where each attempt's abort controller comes from, and goes back to once the attempt settled (see
   * `ConnectSignals` in lib/net/connect_tcp.ts). @default a new `AbortController` per attempt
   */
  readonly signals?: { take(): AbortController; give(ctrl: AbortController): void } | undefined;
}

/** The winner of a dial. */
export interface Dialed {
  readonly conn: Deno.TcpConn;
  readonly upstream: Upstream;
  /** How many candidates were started. */
  readonly attempts: number;
}

/**
 * Dials the candidates with failover and hedging; resolves `undefined` when every candidate failed or the budget ran
 * out. Connections that win after another already won are closed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dial } from "./dial.ts";
 * import { CoarseTimer } from "./coarse_timer.ts";
 * import { systemClock } from "../clock.ts";
 * import { Upstream } from "../upstream/upstream.ts";
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const up = new Upstream({ host: "127.0.0.1", port: listener.addr.port }, { rise: 2, fall: 2 });
 * const timer = new CoarseTimer(systemClock); // one per proxy, shared by its dials
 * const r = await dial([up], { budgetMs: 1000, hedgeDelayMs: 100, timer, onFailure: () => {},
 *   connect: (e, signal) => Deno.connect({ hostname: e.host, port: e.port, signal }) });
 * assert(r?.upstream === up);
 * r?.conn.close();
 * (await listener.accept()).close();
 * ```
 */
export function dial(candidates: readonly Upstream[], opts: DialOptions): Promise<Dialed | undefined> {
  const { promise, resolve } = Promise.withResolvers<Dialed | undefined>();
  if (candidates.length === 0) {
    resolve(undefined);
    return promise;
  }
  const attempts: AbortController[] = [];
  let next = 0;
  let pending = 0;
  let done = false;
  let outOfTime = false;
  const { timer, signals } = opts;
  let hedge: TimerEntry | undefined;

  const finish = (result: Dialed | undefined, winner?: AbortController) => {
    if (done) return;
    done = true;
    hedge?.cancel();
    budget.cancel();
    // Only the losers, with a shared reason: a DOMException per connection is a measurable share of the CPU under
    // new connections.
    for (const a of attempts) if (a !== winner) a.abort(CANCELLED);
    resolve(result);
  };
  const budget = timer.at(timer.now() + opts.budgetMs, () => {
    outOfTime = true;
    finish(undefined);
  });

  const launch = () => {
    hedge?.cancel();
    hedge = undefined;
    if (done || next >= candidates.length) return;
    const up = candidates[next++] as Upstream;
    const ctrl = signals?.take() ?? new AbortController();
    attempts.push(ctrl);
    pending++;
    opts.connect(up.endpoint, ctrl.signal).then((conn) => {
      pending--;
      if (done) conn.close();
      else finish({ conn, upstream: up, attempts: next }, ctrl);
      signals?.give(ctrl);
    }, (e: unknown) => {
      pending--;
      // An attempt we cancelled because another won says nothing about its upstream; one the budget ran out on does.
      if (!ctrl.signal.aborted) opts.onFailure(up, `dial: ${describeError(e)}`);
      else if (outOfTime) opts.onFailure(up, `dial: no connection within ${opts.budgetMs} ms`);
      if (done) return;
      if (next < candidates.length) launch();
      else if (pending === 0) finish(undefined);
    }).catch((e: unknown) => reportInternalError("a dial attempt", e));
    if (next < candidates.length) {
      const rtt = up.lastRttMs ?? 0;
      hedge = timer.at(timer.now() + Math.max(opts.hedgeDelayMs, 3 * rtt), launch);
    }
  };
  launch();
  return promise;
}
