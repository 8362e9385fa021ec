/**
 * A TCP listener that a second instance of the program can share (`SO_REUSEPORT`), so that an upgrade starts the new
 * process beside the old one on the same port instead of after it: the kernel spreads new connections over both until
 * the old one closes its listener. The kernel lets only sockets of the same user that all set the option share a
 * port, so an unrelated program still gets "address in use".
 *
 * @module
 */

/** A listener, and whether another socket held the port when it was bound. */
export interface SharedListener {
  /** The bound listener. */
  readonly listener: Deno.TcpListener;
  /** Another process (an instance that is being replaced, usually) listened on the port at bind time. */
  readonly shared: boolean;
  /** The port could not be shared (the runtime lacks `reusePort`): bound alone, as before. */
  readonly exclusive: boolean;
}

/** The injectable `Deno.listen`, for tests. */
export type ListenFn = (options: { hostname: string; port: number; reusePort?: boolean }) => Deno.TcpListener;

/**
 * Binds `hostname:port` with `SO_REUSEPORT`. A first bind without the option tells whether another socket holds the
 * port (then the port is shared with it); without that socket the probe is closed and the port bound again at once,
 * shareable. Where `reusePort` is unavailable (Deno without `--unstable-net`), the port is bound exclusively.
 *
 * @throws {Error} The error of `Deno.listen` when the port cannot be bound (held by a socket that does not share).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { listenShared } from "./listen_shared.ts";
 * const first = listenShared("127.0.0.1", 0);
 * const second = listenShared("127.0.0.1", first.listener.addr.port);
 * assert(!first.shared && second.shared);
 * first.listener.close();
 * second.listener.close();
 * ```
 */
export function listenShared(
  hostname: string,
  port: number,
  listen: ListenFn = (o) => Deno.listen(o),
): SharedListener {
  let inUse = false;
  if (port !== 0) {
    try {
      listen({ hostname, port }).close();
    } catch (e) {
      if (!(e instanceof Deno.errors.AddrInUse)) throw e;
      inUse = true;
    }
  }
  if (!reusePortAvailable()) {
    return { listener: listen({ hostname, port }), shared: false, exclusive: true };
  }
  const listener = listen({ hostname, port, reusePort: true });
  return { listener, shared: inUse, exclusive: false };
}

/**
 * Whether this runtime has `--unstable-net`, which `reusePort` needs. Asked before use because Deno does not throw
 * for an unstable option it lacks: it exits the process. The unstable net APIs are present exactly when the flag is.
 */
export function reusePortAvailable(): boolean {
  return typeof (Deno as { listenDatagram?: unknown }).listenDatagram === "function";
}

/**
 * Whether another socket listens on `hostname:port` now (a plain bind is refused with "address in use").
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { portHeld } from "./listen_shared.ts";
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * assert(portHeld("127.0.0.1", listener.addr.port));
 * ```
 */
export function portHeld(hostname: string, port: number): boolean {
  try {
    Deno.listen({ hostname, port }).close();
    return false;
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) return true;
    throw e;
  }
}

/**
 * Whether `hostname:port` is held by sockets that share it (another instance of this program, of this user): a plain
 * bind is refused, a sharing one is not (and is closed at once). False when the port is free, held by a socket that
 * does not share, cannot be bound at all, or the runtime cannot share ports.
 */
export function heldBySharers(hostname: string, port: number): boolean {
  if (!reusePortAvailable()) return false;
  try {
    if (!portHeld(hostname, port)) return false;
    Deno.listen({ hostname, port, reusePort: true }).close();
    return true;
  } catch {
    return false;
  }
}
