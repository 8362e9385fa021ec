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
