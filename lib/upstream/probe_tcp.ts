/**
 * The TCP connect probe: an upstream is up when it completes a handshake in time.
 *
 * @module
 */
import { describeError } from "../errors.ts";
import type { Endpoint } from "../endpoint.ts";
import { abortable } from "../abortable.ts";
import type { Probe, ProbeResult } from "./probe.ts";
import { closeQuietly, connectTcp } from "../net/connect_tcp.ts";

/** How the probe opens a connection; tests inject failures here. */
export type Connect = (endpoint: Endpoint, signal: AbortSignal) => Promise<Deno.Conn>;

/** Opens a TCP connection with Deno. */
export const denoConnect: Connect = (e, signal) => connectTcp({ hostname: e.host, port: e.port }, signal);

/**
 * A probe that connects and closes at once.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TcpProbe } from "./probe_tcp.ts";
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const r = await new TcpProbe().check({ host: "127.0.0.1", port: listener.addr.port }, AbortSignal.timeout(1000));
 * assert(r.ok);
 * ```
 */
export class TcpProbe implements Probe {
  readonly name = "tcp";
  readonly #connect: Connect;

  constructor(connect: Connect = denoConnect) {
    this.#connect = connect;
  }

  async check(endpoint: Endpoint, signal: AbortSignal): Promise<ProbeResult> {
    const start = performance.now();
    try {
      // Raced against the signal: a connect that ignores it cannot hold the probe past its timeout.
      const conn = await abortable(this.#connect(endpoint, signal), signal, closeQuietly);
      const rttMs = performance.now() - start;
      conn.close();
      return { ok: true, rttMs };
    } catch (e) {
      return { ok: false, reason: signal.aborted ? "timeout" : describeError(e) };
    }
  }
}
