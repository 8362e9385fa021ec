/**
 * The two halves of an upgrade's hand-over between two instances of the program on one node, with no word between
 * them: both listen on the same ports (`SO_REUSEPORT`), and each must make the readiness kubelet sees its own.
 *
 * - A new instance that finds the proxy port held joins it only once it has a healthy upstream
 *   ({@linkcode joinWhenReady}): a new version that cannot serve never takes a connection from the one that can.
 * - An instance that finds a newer one answering on its health port leaves that port to it (`HealthPeerWatch`, in
 *   `health_watch.ts`), so that the new pod's readiness probes are answered by the new instance alone.
 *
 * @module
 */
import { type Clock, systemClock } from "../clock.ts";
import { endpointKey } from "../endpoint.ts";
import { describeError } from "../errors.ts";
import { getLogger } from "../log.ts";
import type { AcceptSource } from "./accept_loop.ts";
import { listenShared, portHeld } from "./listen_shared.ts";

const log = getLogger(["extractedprism", "handover"]);

/** An accept source whose listener comes later: `accept()` waits for {@linkcode DeferredSource.join}. */
export class DeferredSource implements AcceptSource {
  readonly addr: Deno.NetAddr;
  #listener: Deno.TcpListener | undefined;
  readonly #joined = Promise.withResolvers<Deno.TcpListener>();
  #closed = false;

  /** @param addr The address the listener will have. */
  constructor(addr: Deno.NetAddr) {
    this.addr = addr;
    this.#joined.promise.catch(() => {}); // a close before the join is not an error of anyone's
  }

  /** Whether the listener has come. */
  get joined(): boolean {
    return this.#listener !== undefined;
  }

  /** Hands over the listener; one that comes after a close is closed. */
  join(listener: Deno.TcpListener): void {
    if (this.#closed || this.#listener !== undefined) {
      listener.close();
      return;
    }
    this.#listener = listener;
    this.#joined.resolve(listener);
  }

  async accept(): Promise<Deno.TcpConn> {
    return await (this.#listener ?? await this.#joined.promise).accept();
  }

  close(): void {
    this.#closed = true;
    if (this.#listener !== undefined) this.#listener.close();
    else this.#joined.reject(new Deno.errors.Interrupted("the listener was closed before it was joined"));
  }
}

/** Options of {@linkcode joinWhenReady}. */
export interface JoinOptions {
  readonly hostname: string;
  readonly port: number;
  /** Whether this instance can serve (some upstream is healthy). */
  readonly ready: () => boolean;
  /** Ends the wait. */
  readonly signal: AbortSignal;
  /** @default {50} */
  readonly pollMs?: number;
  /** @default {systemClock} */
  readonly clock?: Clock;
}

/**
 * Joins the held port `hostname:port` into `source` once `ready()`, or at once when the port is left free (the other
 * instance stopped: this one is all there is). Never rejects; a failed bind is logged and tried again.
 */
export async function joinWhenReady(source: DeferredSource, o: JoinOptions): Promise<void> {
  const clock = o.clock ?? systemClock;
  const at = endpointKey({ host: o.hostname, port: o.port });
  log.info("Another instance listens on {address}: joining it once an upstream is healthy", { address: at });
  let lastError = "";
  while (!o.signal.aborted) {
    let waitMs = o.pollMs ?? 50;
    const ready = o.ready();
    let held = true;
    try {
      held = portHeld(o.hostname, o.port);
    } catch (e) {
      log.warn("Cannot tell whether {address} is still held: {error}", { address: at, error: describeError(e) });
    }
    if (ready || !held) {
      try {
        source.join(listenShared(o.hostname, o.port).listener);
        log.info(
          ready
            ? "Joined {address} beside the instance there: an upstream is healthy"
            : "Listening on {address}: the instance that held it is gone",
          { address: at },
        );
        return;
      } catch (e) {
        // Once per kind of failure, and a second between tries: a port taken by another program must not flood.
        const error = describeError(e);
        if (error !== lastError) log.warn("Cannot join {address} yet: {error}", { address: at, error });
        lastError = error;
        waitMs = Math.max(waitMs, 1000);
      }
    }
    try {
      await clock.sleep(waitMs, o.signal);
    } catch {
      return;
    }
  }
}
