/**
 * The proxy's own listener as an endpoint: an upstream that is the proxy itself makes every connection dial itself
 * again, until descriptors run out. Static endpoints that are the listener are refused at start; discovered ones are
 * skipped.
 *
 * @module
 */
import { type Endpoint, normaliseIpv6 } from "../endpoint.ts";

/** Where the proxy listens. */
export interface Listener {
  /** The bind address, an IP address (`0.0.0.0` and `::` listen on every local address). */
  readonly host: string;
  /** The bound port. */
  readonly port: number;
}

/**
 * The node's own addresses (every interface's), or none when they cannot be read (the permission set lacks
 * `--allow-sys=networkInterfaces`): loopback addresses are recognised without them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { localAddresses } from "./own_listener.ts";
 * assert(Array.isArray(localAddresses()));
 * ```
 */
export function localAddresses(): string[] {
  try {
    return Deno.networkInterfaces().map((i) => i.address);
  } catch {
    return [];
  }
}

/**
 * Whether dialling `e` reaches `listener`: the same address and port, or with a wildcard bind address, any local
 * address on that port (loopback, the wildcard itself, or one of `local`, read only then).
 *
 * @param local The node's addresses, asked for only when the bind address is a wildcard.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isOwnListener } from "./own_listener.ts";
 * const l = { host: "0.0.0.0", port: 7445 };
 * assert(isOwnListener({ host: "127.0.0.1", port: 7445 }, l, () => []));
 * assert(!isOwnListener({ host: "127.0.0.1", port: 6443 }, l, () => []));
 * ```
 */
export function isOwnListener(e: Endpoint, listener: Listener, local: () => readonly string[]): boolean {
  if (e.port !== listener.port) return false;
  const host = canonical(e.host);
  const bind = canonical(listener.host);
  if (host === bind) return true;
  if (bind === "0.0.0.0") {
    return !host.includes(":") && (isLoopback(host) || host === "0.0.0.0" || local().map(canonical).includes(host));
  }
  // `::` is dual-stack on Linux: it takes IPv4 connections too.
  if (bind === "::") return isLoopback(host) || host === "0.0.0.0" || local().map(canonical).includes(host);
  return false;
}

function isLoopback(host: string): boolean {
  return /^127\.\d+\.\d+\.\d+$/.test(host) || host === "::1" || host === "localhost";
}

/** Lower case, IPv6 in its canonical text, an IPv4-mapped IPv6 address as IPv4. */
function canonical(host: string): string {
  const h = host.toLowerCase().replace(/\.$/, "");
  if (!h.includes(":")) return h;
  const v6 = normaliseIpv6(h) ?? h;
  // The canonical text writes the IPv4 part in hex: ::ffff:7f00:1.
  const m = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(v6);
  if (m === null) return v6;
  const hi = parseInt(m[1] as string, 16);
  const lo = parseInt(m[2] as string, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}
