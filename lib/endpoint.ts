/**
 * An API server address (`host:port`): parsing, normalisation and the canonical key used to dedupe, which is also
 * the `[host]:port` text of any address with a host and a port (a listener's, a connection's).
 *
 * @module
 */

/** One API server endpoint. `host` is an IPv4 address, an IPv6 address (no brackets) or a lowercase DNS name. */
export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Returns the canonical text of an IPv6 address (RFC 5952 via the URL parser), or `undefined` if it is not one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { normaliseIpv6 } from "./endpoint.ts";
 * assert(normaliseIpv6("FD00:0:0::1") === "fd00::1" && normaliseIpv6("10.0.0.1") === undefined);
 * ```
 */
export function normaliseIpv6(text: string): string | undefined {
  if (!text.includes(":") || /[^0-9a-fA-F:.]/.test(text)) return undefined;
  try {
    const host = new URL(`http://[${text}]/`).hostname;
    return host.slice(1, -1);
  } catch {
    return undefined;
  }
}

/**
 * Whether the text is a dotted-quad IPv4 address without leading zeros.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isIpv4 } from "./endpoint.ts";
 * assert(isIpv4("10.0.0.1") && !isIpv4("10.0.0.01") && !isIpv4("10.0.0.256"));
 * ```
 */
export function isIpv4(text: string): boolean {
  return IPV4.test(text);
}

/**
 * Whether the text is an RFC 1123 host name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isHostname } from "./endpoint.ts";
 * assert(isHostname("api.example") && !isHostname("1.2.3.256") && !isHostname("-bad"));
 * ```
 */
export function isHostname(text: string): boolean {
  if (text.length === 0 || text.length > 253) return false;
  const labels = (text.endsWith(".") ? text.slice(0, -1) : text).split(".");
  // An all-numeric last label would make "1.2.3.256" a host name; refuse it.
  if (/^\d+$/.test(labels[labels.length - 1] ?? "")) return false;
  return labels.every((l) => LABEL.test(l));
}

/**
 * Normalises a host: IPv6 to its canonical form, names to lower case.
 *
 * @throws {TypeError} When the host is not an IP address or a valid host name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { normaliseHost } from "./endpoint.ts";
 * assert(normaliseHost("API.Example.") === "api.example" && normaliseHost("0:0::1") === "::1");
 * ```
 */
export function normaliseHost(host: string): string {
  if (isIpv4(host)) return host;
  const v6 = normaliseIpv6(host);
  if (v6 !== undefined) return v6;
  const name = host.toLowerCase().replace(/\.$/, "");
  if (isHostname(name)) return name;
  throw new TypeError(`Cannot parse host '${host}': expected an IP address or an RFC 1123 host name`);
}

/**
 * Parses `host:port` (IPv6 as `[::1]:6443`) into a normalised endpoint.
 *
 * @throws {TypeError} With a one-line message naming the value and what was expected.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { endpointKey, parseEndpoint } from "./endpoint.ts";
 * const e = parseEndpoint("[0:0:0:0:0:0:0:1]:6443");
 * assert(endpointKey(e) === "[::1]:6443");
 * ```
 */
export function parseEndpoint(text: string): Endpoint {
  const s = text.trim();
  let host: string;
  let portText: string;
  if (s.startsWith("[")) {
    const close = s.indexOf("]");
    if (close < 0 || s[close + 1] !== ":") {
      throw new TypeError(`Cannot parse endpoint '${text}': expected '[ipv6]:port'`);
    }
    host = s.slice(1, close);
    portText = s.slice(close + 2);
    if (normaliseIpv6(host) === undefined) {
      throw new TypeError(`Cannot parse endpoint '${text}': '${host}' is not an IPv6 address`);
    }
  } else {
    const colon = s.lastIndexOf(":");
    if (colon < 0) throw new TypeError(`Cannot parse endpoint '${text}': expected 'host:port'`);
    host = s.slice(0, colon);
    portText = s.slice(colon + 1);
    if (host.includes(":")) {
      throw new TypeError(`Cannot parse endpoint '${text}': an IPv6 address must be in brackets, as '[::1]:6443'`);
    }
  }
  const port = parsePort(portText);
  if (port === undefined) {
    throw new TypeError(`Cannot parse endpoint '${text}': port '${portText}' is not a number from 1 to 65535`);
  }
  try {
    return { host: normaliseHost(host), port };
  } catch {
    throw new TypeError(`Cannot parse endpoint '${text}': '${host}' is not an IP address or an RFC 1123 host name`);
  }
}

/**
 * Parses a decimal port 1-65535, or returns `undefined`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parsePort } from "./endpoint.ts";
 * assert(parsePort("6443") === 6443 && parsePort("0") === undefined && parsePort("65536") === undefined);
 * ```
 */
export function parsePort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const n = Number(text);
  return n >= 1 && n <= 65535 ? n : undefined;
}

/**
 * A host as it is written before `:port`: an IPv6 address in brackets, anything else (and an already bracketed
 * address) as it is.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bracketHost } from "./endpoint.ts";
 * assert(bracketHost("::1") === "[::1]" && bracketHost("[::1]") === "[::1]");
 * assert(bracketHost("10.0.0.1") === "10.0.0.1");
 * ```
 */
export function bracketHost(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/**
 * The canonical `host:port` text of an endpoint (or of any address with a host and a port: a listener's, a
 * connection's), IPv6 in brackets; equal keys mean the same endpoint.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { endpointKey } from "./endpoint.ts";
 * assert(endpointKey({ host: "::1", port: 6443 }) === "[::1]:6443");
 * ```
 */
export function endpointKey(e: Endpoint): string {
  return `${bracketHost(e.host)}:${e.port}`;
}

/**
 * Removes duplicates (by canonical key), keeping the first occurrence's order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dedupeEndpoints } from "./endpoint.ts";
 * const a = { host: "10.0.0.1", port: 6443 };
 * assert(dedupeEndpoints([a, { host: "10.0.0.2", port: 6443 }, { ...a }]).length === 2);
 * ```
 */
export function dedupeEndpoints(list: Iterable<Endpoint>): Endpoint[] {
  const seen = new Map<string, Endpoint>();
  for (const e of list) {
    const k = endpointKey(e);
    if (!seen.has(k)) seen.set(k, e);
  }
  return [...seen.values()];
}
