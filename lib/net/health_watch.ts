/**
 * The health port's half of an upgrade's hand-over (the proxy port's is `handover.ts`): an instance that finds a newer
 * one answering on its health port leaves that port to it, so that the new pod's readiness probes are answered by the
 * new instance alone (the old one, still ready, would otherwise vouch for a new version that is not), and answers
 * again once the port is left with no listener (the new one died). Who answers is asked on the port itself
 * (`GET /instance`): the kernel's socket tables would tell too, but Deno opens `/proc/net` only to a process with
 * every permission.
 *
 * An instance looks only while another may be there: it started beside one, or one asked its `/instance`. An instance
 * alone on its port, the steady state of every node, sends nothing. An older version of the program that looks all
 * the time still hands over both ways beside this one: its requests to `/instance` are what wakes this one's watch.
 *
 * @module
 */
import { type Clock, systemClock } from "../clock.ts";
import { endpointKey } from "../endpoint.ts";
import { describeError } from "../errors.ts";
import { getLogger } from "../log.ts";
import { connectTcp } from "./connect_tcp.ts";
import { healthGet } from "./health_get.ts";
import type { HttpServer } from "./http_server.ts";
import { listenShared } from "./listen_shared.ts";

const log = getLogger(["extractedprism", "handover"]);

/** Who an instance is, as its health port's `/instance` says. */
export interface InstanceId {
  /** A random id, new at every start. */
  readonly instance: string;
  /** When it started (wall clock, ms): the later start is the newer instance. */
  readonly startedAt: number;
}

/** Options of {@linkcode HealthPeerWatch}. */
export interface HealthPeerOptions {
  readonly hostname: string;
  readonly port: number;
  /** This instance. */
  readonly me: InstanceId;
  /** Ends the watch. */
  readonly signal: AbortSignal;
  /** Look from the start: another instance held the port when this one bound it (this one is its successor). @default {false} */
  readonly watching?: boolean;
  /** Time between rounds of looks. @default {1000} */
  readonly pollMs?: number;
  /** @default {systemClock} */
  readonly clock?: Clock;
}

/** Requests to the shared health port per round: each lands at one of the listeners, so one alone may miss a peer. */
const LOOKS = 3;

/**
 * Rounds in a row that find only this instance before the watch goes quiet. With two listeners, all the looks of one
 * round land on this one once in 8 rounds: three such rounds in a row, once in 512 (and the peer's own looks wake
 * this watch again).
 */
const ALONE_ROUNDS = 3;

/**
 * Watches who answers the health port: when a newer instance answers there, `server` stops listening (the newer
 * one's probes are its own to answer); when nobody listens while `server` does not, it listens again (the newer one
 * is gone). It looks (a round of `GET /instance`, at most one every `pollMs`) only while another instance may be there: from the
 * start when this one is a successor (`watching`), and after {@linkcode HealthPeerWatch.wake} (another instance
 * asked this one's `/instance`). It goes quiet after a few rounds that find only itself, and when it answers again.
 * An instance alone on its port, the steady state, sends nothing. An older version that looks all the time still
 * hands over both ways beside this one: its looks wake this one. A flood of `/instance` from elsewhere costs at most
 * one round per `pollMs` and never a leave: that needs a newer instance answering on the port, which only a process
 * of the same user sharing it can be. Ends with `signal`; never rejects.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HttpServer } from "./http_server.ts";
 * import { HealthPeerWatch } from "./health_watch.ts";
 * const server = new HttpServer({ hostname: "127.0.0.1", port: 0 }, () => ({ status: 200, body: "ok\n" }));
 * const stop = new AbortController();
 * const me = { instance: crypto.randomUUID(), startedAt: Date.now() };
 * const watch = new HealthPeerWatch(server, { hostname: "127.0.0.1", port: server.addr.port, me, signal: stop.signal });
 * assert(!watch.watching && watch.asked === 0); // alone and not asked: quiet
 * stop.abort();
 * await watch.done;
 * await server.shutdown();
 * ```
 */
export class HealthPeerWatch {
  /** Resolves when the watch has ended (at `signal`); never rejects. */
  readonly done: Promise<void>;
  #watching: boolean;
  #asked = 0;
  #wakeUp: (() => void) | undefined;

  /** Starts the watch, quiet unless `o.watching`. */
  constructor(server: HttpServer, o: HealthPeerOptions) {
    this.#watching = o.watching ?? false;
    this.done = this.#run(server, o);
  }

  /** Whether rounds of looks are under way. */
  get watching(): boolean {
    return this.#watching;
  }

  /** `GET /instance` requests sent since start. */
  get asked(): number {
    return this.#asked;
  }

  /** Someone asked this instance's `/instance`: another instance may share the port. Nothing while looking already. */
  wake(): void {
    if (this.#watching) return;
    this.#watching = true;
    this.#wakeUp?.();
  }

  async #run(server: HttpServer, o: HealthPeerOptions): Promise<void> {
    const clock = o.clock ?? systemClock;
    const at = endpointKey({ host: o.hostname, port: o.port });
    const host = o.hostname === "0.0.0.0" ? "127.0.0.1" : o.hostname === "::" ? "::1" : o.hostname;
    const pollMs = o.pollMs ?? 1000;
    let listening = true;
    let alone = 0;
    let lastLook = -Infinity;
    while (!o.signal.aborted) {
      if (!this.#watching) {
        await this.#quiet(o.signal);
        alone = 0;
        continue;
      }
      // One look per interval however often the watch is woken; the first after a quiet spell at once, so that a
      // successor's first round and the older instance's answering round hand the port over within milliseconds.
      const wait = lastLook + pollMs - clock.now();
      try {
        if (wait > 0) await clock.sleep(wait, o.signal);
      } catch {
        return;
      }
      if (o.signal.aborted) return;
      lastLook = clock.now();
      try {
        if (!listening) {
          if (await portRefuses(host, o.port, o.signal)) {
            await server.resumeListening(listenShared(o.hostname, o.port).listener);
            listening = true;
            this.#watching = false;
            log.info("No instance answers on the health port {address} any more: answering again", { address: at });
          }
          continue;
        }
        const seen = await this.#round(host, o);
        if (seen === "newer") {
          await server.stopListening();
          listening = false;
          log.info("A newer instance answers on the health port {address}: leaving its probes to it", { address: at });
        }
        alone = seen === "alone" ? alone + 1 : 0;
        if (alone >= ALONE_ROUNDS) {
          this.#watching = false;
          log.debug("Only this instance answers on the health port {address}: no more looks until it is asked", {
            address: at,
          });
        }
      } catch (e) {
        if (o.signal.aborted) return;
        log.warn("Cannot change the health port {address}: {error}", { address: at, error: describeError(e) });
      }
    }
  }

  /** Waits for {@linkcode wake} or the end. */
  async #quiet(signal: AbortSignal): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    const onAbort = () => resolve();
    this.#wakeUp = resolve;
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      await promise;
    } finally {
      this.#wakeUp = undefined;
      signal.removeEventListener("abort", onAbort);
    }
  }

  /** One round of looks: whether a newer instance answered, another one, or only this one. */
  async #round(host: string, o: HealthPeerOptions): Promise<"newer" | "peer" | "alone"> {
    let alone = true;
    for (let i = 0; i < LOOKS && !o.signal.aborted; i++) {
      this.#asked++;
      const peer = await askInstance(host, o.port, o.signal);
      if (peer?.instance === o.me.instance) continue;
      // No answer, or a broken one, is not proof of being alone: the round does not count towards quiet.
      if (peer !== undefined && newer(peer, o.me)) return "newer";
      alone = false;
    }
    return alone ? "alone" : "peer";
  }
}

function newer(a: InstanceId, b: InstanceId): boolean {
  return a.instance !== b.instance &&
    (a.startedAt > b.startedAt || (a.startedAt === b.startedAt && a.instance > b.instance));
}

const ASK_TIMEOUT_MS = 1000;

/** `GET /instance` on the health port: who answered, or `undefined` (refused, a timeout, not an instance). */
async function askInstance(hostname: string, port: number, signal: AbortSignal): Promise<InstanceId | undefined> {
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
  } catch {
    return undefined;
  }
}

/**
 * Whether nobody listens on the health port. A connection and no request: an `/instance` request would wake the
 * watch of the instance that answers it.
 */
async function portRefuses(hostname: string, port: number, signal: AbortSignal): Promise<boolean> {
  try {
    const conn = await connectTcp({ hostname, port }, AbortSignal.any([signal, AbortSignal.timeout(ASK_TIMEOUT_MS)]));
    conn.close();
    return false;
  } catch (e) {
    return e instanceof Deno.errors.ConnectionRefused;
  }
}
