/**
 * EndpointSlices -> API server endpoints: the pure rules (readiness, port choice, address types), applied to untrusted
 * JSON. A malformed slice or address is logged and skipped, never a crash.
 *
 * @module
 */
import { isRecord } from "../../kubernetes/types.ts";
import { getLogger } from "../../log.ts";
import { type Endpoint, endpointKey, isIpv4, normaliseIpv6 } from "../../endpoint.ts";
import type { LogLimit } from "../../log_limit.ts";

const log = getLogger(["extractedprism", "discovery", "kubernetes"]);

/** The fields of a `discovery.k8s.io/v1` EndpointSlice that discovery reads; everything else is ignored. */
export interface EndpointSlice {
  /** Name and namespace, for log lines. */
  readonly metadata: { readonly name: string; readonly namespace?: string };
  /** `IPv4`, `IPv6` or `FQDN` (skipped). */
  readonly addressType: string;
  /** The endpoints; absent or null means none. */
  readonly endpoints?: readonly SliceEndpoint[] | null;
  /** The ports; absent, null or empty means the fallback port. */
  readonly ports?: readonly SlicePort[] | null;
}

/** One endpoint of a slice. A missing condition means ready and not terminating. */
export interface SliceEndpoint {
  /** Addresses of the slice's address type; each is one endpoint. */
  readonly addresses: readonly string[];
  /** `ready: false` or `terminating: true` skips the endpoint; `serving` is not read. */
  readonly conditions?: {
    readonly ready?: boolean | null;
    readonly serving?: boolean | null;
    readonly terminating?: boolean | null;
  } | null;
}

/** One port of a slice. */
export interface SlicePort {
  /** The port named `https` is preferred. */
  readonly name?: string | null;
  /** 1-65535; absent means "all ports" in the API, here the fallback port. */
  readonly port?: number | null;
  /** Not read (the API servers' port is TCP). */
  readonly protocol?: string | null;
}

/**
 * Collects the endpoints of `slices`: skips endpoints with `ready: false` or `terminating: true`, takes the port named
 * `https` (else the slice's first port, else `fallbackPort`), keeps IPv4 and IPv6 slices (an FQDN slice is skipped with
 * a debug log), normalises IPv6, dedupes, and sorts (IPv4 before IPv6, then by address and port).
 *
 * @param slices Untrusted objects from the API; anything that is not a valid slice is logged and skipped.
 * @param fallbackPort The port used when a slice lists no ports (the static endpoints' port).
 * @param limit Rate-limits the warnings, per slice and kind (a hostile slice can hold thousands of bad addresses, and
 *   the same slices are read again on every change). @default every warning is written
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { endpointsFromSlices } from "./endpointslices.ts";
 * const eps = endpointsFromSlices([{
 *   metadata: { name: "kubernetes" },
 *   addressType: "IPv4",
 *   endpoints: [{ addresses: ["10.0.0.2"] }, { addresses: ["10.0.0.1"], conditions: { ready: false } }],
 *   ports: [{ name: "https", port: 6443 }],
 * }], 443);
 * assert(eps.length === 1 && eps[0]?.host === "10.0.0.2" && eps[0]?.port === 6443);
 * ```
 */
export function endpointsFromSlices(
  slices: readonly unknown[],
  fallbackPort: number,
  limit?: LogLimit,
): Endpoint[] {
  const found = new Map<string, Endpoint>();
  const warn = (key: string, message: string, fields: Record<string, unknown>): void => {
    const suppressed = limit === undefined ? 0 : limit.take(key);
    if (suppressed === undefined) return;
    log.warn(suppressed > 0 ? `${message} ({suppressed} more like it not logged)` : message, { ...fields, suppressed });
  };
  for (const raw of slices) {
    for (const e of endpointsFromSlice(raw, fallbackPort, warn)) found.set(endpointKey(e), e);
  }
  return [...found.values()].sort(compareEndpoints);
}

type Warn = (key: string, message: string, fields: Record<string, unknown>) => void;

function endpointsFromSlice(raw: unknown, fallbackPort: number, warn: Warn): Endpoint[] {
  const name = sliceName(raw);
  if (!isRecord(raw) || name === undefined) {
    warn("?:shape", "Skipping EndpointSlice {slice}: expected an object with metadata.name", { slice: name ?? "?" });
    return [];
  }
  const addressType = raw.addressType;
  if (addressType === "FQDN") {
    log.debug("Skipping EndpointSlice {slice}: FQDN addresses are not used", { slice: name });
    return [];
  }
  if (addressType !== "IPv4" && addressType !== "IPv6") {
    warn(
      `${name}:addressType`,
      "Skipping EndpointSlice {slice}: addressType '{addressType}' is not IPv4, IPv6 or FQDN",
      {
        slice: name,
        addressType: String(addressType),
      },
    );
    return [];
  }
  const port = slicePort(raw.ports, fallbackPort);
  if (typeof port === "string") {
    warn(`${name}:port`, "Skipping EndpointSlice {slice}: {problem}", { slice: name, problem: port });
    return [];
  }
  if (raw.endpoints !== undefined && raw.endpoints !== null && !Array.isArray(raw.endpoints)) {
    warn(`${name}:endpoints`, "Skipping EndpointSlice {slice}: endpoints is not a list", { slice: name });
    return [];
  }
  const out: Endpoint[] = [];
  for (const ep of (raw.endpoints ?? []) as unknown[]) {
    if (!isRecord(ep) || !Array.isArray(ep.addresses)) {
      warn(`${name}:endpoint`, "Skipping an endpoint of EndpointSlice {slice}: expected an object with addresses", {
        slice: name,
      });
      continue;
    }
    const conditions = isRecord(ep.conditions) ? ep.conditions : {};
    if (conditions.ready === false || conditions.terminating === true) continue;
    for (const address of ep.addresses as unknown[]) {
      const host = parseAddress(address, addressType);
      if (host === undefined) {
        warn(
          `${name}:address`,
          "Skipping address '{address}' of EndpointSlice {slice}: expected an {addressType} address",
          {
            address: String(address),
            slice: name,
            addressType,
          },
        );
        continue;
      }
      out.push({ host, port });
    }
  }
  return out;
}

function sliceName(raw: unknown): string | undefined {
  if (!isRecord(raw) || !isRecord(raw.metadata)) return undefined;
  const { name, namespace } = raw.metadata;
  if (typeof name !== "string" || name === "") return undefined;
  return typeof namespace === "string" && namespace !== "" ? `${namespace}/${name}` : name;
}

/** The port to use, or a description of why the slice's ports are unusable. */
function slicePort(ports: unknown, fallbackPort: number): number | string {
  if (ports === undefined || ports === null) return fallbackPort;
  if (!Array.isArray(ports)) return "ports is not a list";
  if (ports.length === 0) return fallbackPort;
  const chosen: unknown = ports.find((p) => isRecord(p) && p.name === "https") ?? ports[0];
  if (!isRecord(chosen)) return "a port is not an object";
  // A slice port without a number means "all ports" in the API: the static port is the best guess.
  if (chosen.port === undefined || chosen.port === null) return fallbackPort;
  const n = chosen.port;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 65535) {
    return `port '${String(n)}' is not a number from 1 to 65535`;
  }
  return n;
}

function parseAddress(address: unknown, addressType: "IPv4" | "IPv6"): string | undefined {
  if (typeof address !== "string") return undefined;
  if (addressType === "IPv4") return isIpv4(address) ? address : undefined;
  return normaliseIpv6(address);
}

function compareEndpoints(a: Endpoint, b: Endpoint): number {
  const fa = a.host.includes(":") ? 1 : 0;
  const fb = b.host.includes(":") ? 1 : 0;
  if (fa !== fb) return fa - fb;
  const ha = fa ? a.host : a.host.split(".").map((o) => o.padStart(3, "0")).join(".");
  const hb = fb ? b.host : b.host.split(".").map((o) => o.padStart(3, "0")).join(".");
  if (ha !== hb) return ha < hb ? -1 : 1;
  return a.port - b.port;
}
