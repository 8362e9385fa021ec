/**
 * The two halves of an upgrade's hand-over between two instances of the program on one node, with no word between
 * them: both listen on the same ports (`SO_REUSEPORT`), and each must make the readiness kubelet sees its own.
 *
 * - A new instance that finds the proxy port held joins it only once it has a healthy upstream
 *   ({@linkcode joinWhenReady}): a new version that cannot serve never takes a connection from the one that can.
 * - An instance that finds a newer one answering on its health port leaves that port to it
 *   ({@linkcode watchHealthPeers}), so that the new pod's readiness probes are answered by the new instance alone:
 *   the old one, still ready, would otherwise vouch for a new version that is not. It answers again if the port is
 *   left with no listener (the new one died). Who answers is asked on the port itself (`GET /instance`): the
 *   kernel's socket tables would tell too, but Deno opens `/proc/net` only to a process with every permission.
 *
 * @module
 */
import { type Clock, systemClock } from "../clock.ts";
import { endpointKey } from "../endpoint.ts";
import { describeError } from "../errors.ts";
import { getLogger } from "../log.ts";
import type { AcceptSource } from "./accept_loop.ts";
import type { HttpServer } from "./http_server.ts";
import { listenShared, portHeld } from "./listen_shared.ts";
import { healthGet } from "./health_get.ts";

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

/** Who an instance is, as its health port's `/instance` says. */
export interface InstanceId {
  /** A random id, new at every start. */
  readonly instance: string;
  /** When it started (wall clock, ms): the later start is the newer instance. */
  readonly startedAt: number;
}

/** Options of {@linkcode watchHealthPeers}. */
export interface HealthPeerOptions {
  readonly hostname: string;
  readonly port: number;
  /** This instance. */
  readonly me: InstanceId;
  /** Ends the watch. */
  readonly signal: AbortSignal;
  /** @default {1000} */
  readonly pollMs?: number;
  /** @default {systemClock} */
  readonly clock?: Clock;
}

/** Requests to the shared health port per look: each lands at one of the listeners, so one alone may miss a peer. */
const LOOKS = 3;

/**
 * Watches who answers the health port: when a newer instance answers there, `server` stops listening (the newer
 * one's probes are its own to answer); when nobody listens while `server` does not, it listens again (the newer one
 * is gone). Asks `GET /instance` a few times a second. Ends with `signal`; never rejects.
 */
export async function watchHealthPeers(server: HttpServer, o: HealthPeerOptions): Promise<void> {
  const clock = o.clock ?? systemClock;
  const at = endpointKey({ host: o.hostname, port: o.port });
  const host = o.hostname === "0.0.0.0" ? "127.0.0.1" : o.hostname === "::" ? "::1" : o.hostname;
  let listening = true;
  while (!o.signal.aborted) {
    try {
      await clock.sleep(o.pollMs ?? 1000, o.signal);
    } catch {
      return;
    }
    try {
      if (listening) {
        for (let i = 0; i < LOOKS && !o.signal.aborted; i++) {
          const peer = await askInstance(host, o.port, o.signal);
          if (peer === undefined || peer === "refused" || !newer(peer, o.me)) continue;
          await server.stopListening();
          listening = false;
          log.info("A newer instance answers on the health port {address}: leaving its probes to it", { address: at });
          break;
        }
      } else if (await askInstance(host, o.port, o.signal) === "refused") {
        await server.resumeListening(listenShared(o.hostname, o.port).listener);
        listening = true;
        log.info("No instance answers on the health port {address} any more: answering again", { address: at });
      }
    } catch (e) {
      if (o.signal.aborted) return;
      log.warn("Cannot change the health port {address}: {error}", { address: at, error: describeError(e) });
    }
  }
}

function newer(a: InstanceId, b: InstanceId): boolean {
  return a.instance !== b.instance &&
    (a.startedAt > b.startedAt || (a.startedAt === b.startedAt && a.instance > b.instance));
}

const ASK_TIMEOUT_MS = 1000;

/**
 * `GET /instance` on the health port: who answered, `"refused"` when nobody listens, `undefined` for anything else
 * (a timeout, an answer that is not an instance).
 */
async function askInstance(
  hostname: string,
  port: number,
  signal: AbortSignal,
): Promise<InstanceId | "refused" | undefined> {
  try {
    const answer = await healthGet(
      { host: hostname, port },
      "/instance",
      AbortSignal.any([signal, AbortSignal.timeout(ASK_TIMEOUT_MS)]),
    );
    if (answer.status !== 200) return undefined;
    const id: unknown = JSON.parse(answer.body);
    if (typeof id !== "object" || id === null) return undefined;
    const { instance, startedAt } = id as Record<string, unknown>;
    return typeof instance === "string" && typeof startedAt === "number" ? { instance, startedAt } : undefined;
  } catch (e) {
    return e instanceof Deno.errors.ConnectionRefused ? "refused" : undefined;
  }
}
