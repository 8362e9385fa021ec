/**
 * Address patterns for "never dial this", as the caller names them: discovery passes the proxy's own listener (a
 * client that goes through the proxy it feeds cannot recover once the proxy's endpoints are stale) and the
 * `kubernetes` ClusterIP (it needs the CNI).
 *
 * @module
 */
import { type Endpoint, isIpv4, normaliseIpv6 } from "../endpoint.ts";

/** A host, and a port unless every port of the host is meant. */
export interface AddressPattern {
  /** The host: an IP address or a name. */
  readonly host: string;
  /** The port; unset: every port. */
  readonly port?: number;
  /** What the address is, for messages: `this proxy's own listener`. @default {"an address never to dial"} */
  readonly label?: string;
}

/**
 * Whether `ep` is an address `pattern` names. An unspecified pattern host (`0.0.0.0`, `::`) stands for every local
 * address this process can tell apart: loopback, unspecified and `localhost`; a loopback pattern host also matches
 * `localhost`, which resolves to loopback.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { matchesAddress } from "./_addresses.ts";
 * assert(matchesAddress({ host: "localhost", port: 7445 }, { host: "127.0.0.1", port: 7445 }));
 * assert(!matchesAddress({ host: "10.0.0.1", port: 6443 }, { host: "10.0.0.1", port: 443 }));
 * ```
 */
export function matchesAddress(ep: Endpoint, pattern: AddressPattern): boolean {
  if (pattern.port !== undefined && pattern.port !== ep.port) return false;
  const h = canonical(ep.host);
  const p = canonical(pattern.host);
  if (h === p) return true;
  if (isUnspecified(p)) return isLoopback(h) || isUnspecified(h);
  if (isLoopback(p)) return h === "localhost" || h.endsWith(".localhost");
  return false;
}

/** Whether the host is a loopback address or the name `localhost`. */
export function isLoopback(host: string): boolean {
  const h = canonical(host);
  return h === "::1" || h === "localhost" || h.endsWith(".localhost") || (isIpv4(h) && h.startsWith("127."));
}

/** Whether the host is an IP address literal (IPv4, or IPv6 with or without brackets). */
export function isIpLiteral(host: string): boolean {
  return isIpv4(host) || normaliseIpv6(host.replace(/^\[(.*)\]$/, "$1")) !== undefined;
}

function isUnspecified(h: string): boolean {
  return h === "0.0.0.0" || h === "::";
}

function canonical(host: string): string {
  const bare = host.replace(/^\[(.*)\]$/, "$1");
  return normaliseIpv6(bare) ?? bare.toLowerCase().replace(/\.$/, "");
}
