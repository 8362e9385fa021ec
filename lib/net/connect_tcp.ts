/**
 * `Deno.connect` with an abort signal, minus a leak: Deno 2.9 creates the connection and then throws if the signal
 * aborted meanwhile (`signal.throwIfAborted()` in its `finally`), so a timeout or a lost hedge that fires in the same
 * tick as the handshake completes leaves an open socket nobody can close.
 *
 * @module
 */

/**
 * Opens a TCP connection; rejects with `signal.reason` once `signal` aborts, and closes a connection that completed
 * too late instead of leaking it.
 *
 * @example
 * ```ts
 * import { connectTcp } from "./connect_tcp.ts";
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const conn = await connectTcp({ hostname: "127.0.0.1", port: listener.addr.port }, new AbortController().signal);
 * conn.close();
 * ```
 */
export async function connectTcp(
  addr: { readonly hostname: string; readonly port: number },
  signal: AbortSignal,
): Promise<Deno.TcpConn> {
  signal.throwIfAborted();
  const inner = new AbortController();
  // Deno still cancels the pending connect through this signal; only its late throw is disarmed, so that the
  // connection comes back here and can be closed.
  Object.defineProperty(inner.signal, "throwIfAborted", { value: () => {} });
  const onAbort = () => inner.abort(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname: addr.hostname, port: addr.port, signal: inner.signal });
  } catch (e) {
    throw signal.aborted ? signal.reason : e;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
  if (signal.aborted) {
    conn.close();
    throw signal.reason;
  }
  return conn;
}

/** Controllers kept for reuse: enough for every dial of a burst of new connections. */
const MAX_FREE = 1024;

/**
 * Abort controllers whose signal `Deno.connect` can take directly, without {@linkcode connectTcp}'s wrapper: each
 * signal's late `throwIfAborted` is disarmed once, when the controller is made, and a controller whose signal never
 * aborted goes back to the pool after its attempt (Deno's `connect` removes its listener before it returns). The
 * proxy dials every client's upstream through one of these: a fresh controller, a disarmed copy and a listener per
 * connection were a measurable share of the CPU per new connection (issue 14).
 *
 * @example
 * ```ts
 * import { ConnectSignals } from "./connect_tcp.ts";
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const signals = new ConnectSignals();
 * const ctrl = signals.take();
 * const conn = await signals.connect({ hostname: "127.0.0.1", port: listener.addr.port }, ctrl.signal);
 * signals.give(ctrl);
 * conn.close();
 * ```
 */
export class ConnectSignals {
  readonly #free: AbortController[] = [];

  /** A controller whose signal has never aborted. */
  take(): AbortController {
    const reused = this.#free.pop();
    if (reused !== undefined) return reused;
    const ctrl = new AbortController();
    Object.defineProperty(ctrl.signal, "throwIfAborted", { value: () => {} });
    return ctrl;
  }

  /** Takes back a controller after its attempt settled; one whose signal aborted is dropped (it cannot be reset). */
  give(ctrl: AbortController): void {
    if (!ctrl.signal.aborted && this.#free.length < MAX_FREE) this.#free.push(ctrl);
  }

  /**
   * `Deno.connect` with a signal of {@linkcode take}: rejects with the signal's reason once it aborts, and closes a
   * connection that completed too late instead of leaking it, as {@linkcode connectTcp} does.
   */
  async connect(
    addr: { readonly hostname: string; readonly port: number },
    signal: AbortSignal,
  ): Promise<Deno.TcpConn> {
    // A disarmed signal does not stop Deno's connect from starting: an aborted one must not reach it.
    if (signal.aborted) throw signal.reason;
    let conn: Deno.TcpConn;
    try {
      conn = await Deno.connect({ hostname: addr.hostname, port: addr.port, signal });
    } catch (e) {
      throw signal.aborted ? signal.reason : e;
    }
    if (signal.aborted) {
      conn.close();
      throw signal.reason;
    }
    return conn;
  }
}

/**
 * Closes a connection (or a listener) that may be closed already.
 *
 * @example
 * ```ts
 * import { closeQuietly } from "./connect_tcp.ts";
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * closeQuietly(listener);
 * closeQuietly(listener); // no error the second time
 * ```
 */
export function closeQuietly(c: { close(): void }): void {
  try {
    c.close();
  } catch { /* closed already */ }
}
