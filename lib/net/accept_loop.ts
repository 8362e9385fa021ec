/**
 * The accept loop: one explicit loop per listener that never dies while the process lives. An accept error (EMFILE,
 * ENFILE, ENOBUFS...) is logged and retried with backoff from 10 ms to 1 s. It also answers the liveness self-check:
 * a connection the loop makes to itself, recognised by its exact addresses (whatever the bind address: loopback, a
 * node IP, a wildcard) and closed, proves the loop still accepts.
 *
 * @module
 */
import { describeError } from "../errors.ts";
import { getLogger } from "../log.ts";
import { type Clock, systemClock } from "../clock.ts";
import { endpointKey } from "../endpoint.ts";
import { LogLimit } from "../log_limit.ts";
import { guard, reportInternalError } from "../internal_errors.ts";
import { connectTcp } from "./connect_tcp.ts";

const log = getLogger(["extractedprism", "accept"]);

/** What the loop needs of a listener (a `Deno.TcpListener`, or a fake in tests). */
export interface AcceptSource {
  /** The bound address. */
  readonly addr: Deno.Addr;
  /** The next connection. */
  accept(): Promise<Deno.TcpConn>;
  /** Stops listening; a pending `accept()` rejects. */
  close(): void;
}

/** A self-check connection's own end (its local address) and the listener's end (its remote address). */
type Ends = { local: Deno.NetAddr; remote: Deno.NetAddr };

interface SelfCheck {
  /** One per self-check connection; `undefined` once it failed or the check ended. */
  ends: Promise<Ends | undefined>[];
  seen: PromiseWithResolvers<void>;
  /** The connections the loop has seen (and closed): never "late", whatever comes later from their addresses. */
  matched: Set<Ends>;
}

/**
 * Connections one self-check makes at once. A port shared with another instance (`SO_REUSEPORT`, during an upgrade's
 * hand-over) gets each new connection at one of the two listeners, so a single connection would miss this loop half
 * of the time; four miss it together once in 16 checks, and kubelet's three failed probes in a row once in 4,096.
 */
const SELF_CHECK_CONNECTIONS = 4;

/**
 * Accepts connections and hands each to `handle` until `stop()`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AcceptLoop } from "./accept_loop.ts";
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const loop = new AcceptLoop(listener, (conn) => conn.close());
 * const running = loop.run();
 * assert(await loop.selfCheck(1000));
 * loop.stop();
 * await running;
 * ```
 */
export class AcceptLoop {
  readonly #source: AcceptSource;
  readonly #handle: (conn: Deno.TcpConn) => void;
  #stopping = false;
  readonly #stopped = new AbortController();
  #running = false;
  #self: SelfCheck | undefined;
  #selfRunning: Promise<boolean> | undefined;
  /** The last check's connections not seen yet: until the next check, they are recognised and closed. */
  #lateSelf: Ends[] = [];
  /** Accept errors since start. */
  errors = 0;
  /** Connections accepted since start (self-checks excluded). */
  accepted = 0;

  readonly #name: string;
  readonly #clock: Clock;
  readonly #logLimit: LogLimit;

  /**
   * Makes a loop over `source`; it accepts once `run()` is called.
   *
   * @param source The listener.
   * @param handle Takes each accepted connection; must not throw (a throw is reported and that connection closed).
   * @param options `name` says which listener this is in log lines (@default "tcp"); `clock` times the accept
   * backoff, the self-check and the log limit (@default systemClock).
   */
  constructor(
    source: AcceptSource,
    handle: (conn: Deno.TcpConn) => void,
    options: { readonly name?: string; readonly clock?: Clock } = {},
  ) {
    this.#source = source;
    this.#handle = handle;
    this.#name = options.name ?? "tcp";
    const clock = this.#clock = options.clock ?? systemClock;
    this.#logLimit = new LogLimit({ intervalMs: 1000, burst: 5, now: () => clock.now() });
  }

  /** Whether `run()` is looping. */
  get running(): boolean {
    return this.#running;
  }

  /** Runs until `stop()`; resolves when the loop has ended. */
  async run(): Promise<void> {
    this.#running = true;
    let backoff = 0;
    try {
      while (!this.#stopping) {
        let conn: Deno.TcpConn;
        try {
          conn = await this.#source.accept();
        } catch (e) {
          if (this.#stopping) return;
          this.errors++;
          backoff = backoff === 0 ? 10 : Math.min(backoff * 2, 1000);
          // At most five lines a second: descriptor exhaustion can fail every accept, dozens of times a second.
          const error = describeError(e);
          const suppressed = this.#logLimit.take(error);
          if (suppressed !== undefined) {
            log.error(
              "Accept failed on the {listener} listener {address}, retrying in {delayMs} ms: {error} " +
                "({suppressed} more like it since the last line)",
              { listener: this.#name, address: listenerText(this.#source.addr), delayMs: backoff, error, suppressed },
            );
          }
          await this.#clock.sleep(backoff, this.#stopped.signal).catch(() => {}); // stop() cuts the backoff short
          continue;
        }
        backoff = 0;
        if (this.#self !== undefined) guard(this.#maybeSelf(conn, this.#self), "the liveness self-check");
        else if (this.#isLateSelf(conn)) conn.close();
        else this.#handOver(conn);
      }
    } finally {
      this.#running = false;
    }
  }

  #handOver(conn: Deno.TcpConn): void {
    this.accepted++;
    try {
      this.#handle(conn);
    } catch (e) {
      // The loop must outlive a bug in the handler; the connection it did not take is closed.
      reportInternalError("the connection handler", e);
      try {
        conn.close();
      } catch { /* closed */ }
    }
  }

  /** One of the last check's connections that arrived after it ended (another of them was seen first). */
  #isLateSelf(conn: Deno.TcpConn): boolean {
    const i = this.#lateSelf.findIndex((e) => sameAddr(conn.remoteAddr, e.local) && sameAddr(conn.localAddr, e.remote));
    if (i < 0) return false;
    this.#lateSelf.splice(i, 1);
    return true;
  }

  async #maybeSelf(conn: Deno.TcpConn, self: SelfCheck): Promise<void> {
    // Its own connection has the mirror image of a self-check connection's addresses: no other client can.
    for (const ends of await Promise.all(self.ends)) {
      if (ends !== undefined && sameAddr(conn.remoteAddr, ends.local) && sameAddr(conn.localAddr, ends.remote)) {
        conn.close();
        self.matched.add(ends);
        // Seen after the check ended: it is no longer to come.
        this.#lateSelf = this.#lateSelf.filter((e) => e !== ends);
        self.seen.resolve();
        return;
      }
    }
    this.#handOver(conn);
  }

  /**
   * Proves the loop accepts: connects to the listener and waits until the loop has seen that very connection.
   * Concurrent calls share one check.
   */
  selfCheck(timeoutMs: number): Promise<boolean> {
    this.#selfRunning ??= this.#selfCheck(timeoutMs).finally(() => (this.#selfRunning = undefined));
    return this.#selfRunning;
  }

  async #selfCheck(timeoutMs: number): Promise<boolean> {
    if (!this.#running || this.#stopping) return false;
    const addr = this.#source.addr as Deno.NetAddr;
    const hostname = addr.hostname === "0.0.0.0" ? "127.0.0.1" : addr.hostname === "::" ? "::1" : addr.hostname;
    const attempts = Array.from({ length: SELF_CHECK_CONNECTIONS }, () => Promise.withResolvers<Ends | undefined>());
    const self: SelfCheck = {
      ends: attempts.map((a) => a.promise),
      seen: Promise.withResolvers<void>(),
      matched: new Set(),
    };
    this.#self = self;
    // Up to timeoutMs to connect, then up to timeoutMs for the loop to see one of the connections.
    const connecting = new AbortController();
    const connectTimer = this.#clock.setTimer(timeoutMs, () => {
      connecting.abort(new DOMException(`no connection within ${timeoutMs} ms`, "TimeoutError"));
    });
    const waiting = new AbortController();
    const conns: Deno.TcpConn[] = [];
    const made: Ends[] = [];
    try {
      const opened = await Promise.allSettled(attempts.map(async (attempt) => {
        try {
          const conn = await connectTcp({ hostname, port: addr.port }, connecting.signal);
          conns.push(conn);
          const ends = { local: conn.localAddr, remote: conn.remoteAddr };
          made.push(ends);
          attempt.resolve(ends);
        } catch (e) {
          attempt.resolve(undefined);
          throw e;
        }
      }));
      this.#clock.clearTimer(connectTimer);
      if (conns.length === 0) {
        const first = opened.find((o) => o.status === "rejected");
        log.warn("Liveness self-check could not connect to the listener: {error}", {
          error: describeError(first?.status === "rejected" ? first.reason : "no connection"),
        });
        return false;
      }
      const timedOut = this.#clock.sleep(timeoutMs, waiting.signal).then(() => false, () => false);
      return await Promise.race([self.seen.promise.then(() => true), timedOut]);
    } finally {
      this.#clock.clearTimer(connectTimer);
      waiting.abort();
      for (const a of attempts) a.resolve(undefined);
      if (this.#self === self) this.#self = undefined;
      // Its other connections may still sit in the accept queue: they are closed there, never relayed. Only those: the
      // address pair of one the loop has seen may come again from a client (loopback reuses TIME_WAIT ports at once).
      this.#lateSelf = made.filter((e) => !self.matched.has(e));
      for (const c of conns) c.close();
    }
  }

  /** Stops accepting and closes the listener. */
  stop(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#stopped.abort();
    try {
      this.#source.close();
    } catch { /* already closed */ }
  }
}

function sameAddr(a: Deno.NetAddr, b: Deno.NetAddr): boolean {
  return a.port === b.port && unmapped(a.hostname) === unmapped(b.hostname);
}

/** `::ffff:10.0.0.1` (an IPv4 peer seen by a dual-stack socket) as `10.0.0.1`. */
function unmapped(host: string): string {
  const h = host.toLowerCase();
  return h.startsWith("::ffff:") && h.includes(".") ? h.slice(7) : h;
}

function listenerText(a: Deno.Addr): string {
  return a.transport === "tcp" || a.transport === "udp" ? endpointKey({ host: a.hostname, port: a.port }) : a.transport;
}
