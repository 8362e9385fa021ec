/**
 * Value parsers of the endpoint copier's flags: Kubernetes names and Go-style bind addresses, as
 * endpoint-copier-operator and controller-runtime take them.
 *
 * @module
 */
import { normaliseHost } from "../endpoint.ts";

/** A listen address; `host` `""` means every interface. */
export interface BindAddress {
  /** An IP address, or `""` for every interface. */
  readonly host: string;
  /** The port; 0 picks a free one. */
  readonly port: number;
}

/** A Service by namespace and name. */
export interface ServiceName {
  /** The namespace. */
  readonly namespace: string;
  /** The name. */
  readonly name: string;
}

const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * Parses a Service name (an RFC 1035 label).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { serviceName } from "./copier_values.ts";
 * assert(serviceName("kubernetes-vip") === "kubernetes-vip");
 * ```
 */
export function serviceName(text: string): string {
  if (text.length > 63 || !DNS1035_LABEL.test(text)) {
    throw new RangeError("expected a Service name: lowercase letters, digits and '-', starting with a letter");
  }
  return text;
}

/**
 * Parses a namespace (an RFC 1123 label).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { namespaceName } from "./copier_values.ts";
 * assert(namespaceName("kube-system") === "kube-system");
 * ```
 */
export function namespaceName(text: string): string {
  if (text.length > 63 || !DNS1123_LABEL.test(text)) {
    throw new RangeError("expected a namespace: lowercase letters, digits and '-', at most 63 characters");
  }
  return text;
}

/**
 * Parses an object name (an RFC 1123 subdomain), such as a Lease's.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { objectName } from "./copier_values.ts";
 * assert(objectName("f668ae63.endpoint-copier-operator") !== "");
 * ```
 */
export function objectName(text: string): string {
  if (text.length > 253 || !DNS1123_SUBDOMAIN.test(text)) {
    throw new RangeError("expected a name of lowercase letters, digits, '-' and '.'");
  }
  return text;
}

/**
 * Parses a Go-style bind address: `:8081` (every interface), `127.0.0.1:8081`, `[::1]:8081`, `localhost:8081`,
 * or `0` (off). Port 0 picks a free port.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bindAddress } from "./copier_values.ts";
 * assert(bindAddress(":8081")?.port === 8081 && bindAddress(":8081")?.host === "");
 * assert(bindAddress("0") === undefined);
 * ```
 */
export function bindAddress(text: string): BindAddress | undefined {
  const t = text.trim();
  if (t === "0") return undefined;
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):(\d{1,5})$/.exec(t);
  const expected = "expected host:port such as ':8081' or '127.0.0.1:8081', or 0 to turn it off";
  if (m === null) throw new RangeError(expected);
  const p = Number(m[3]);
  if (p > 65535) throw new RangeError("expected a port number from 0 to 65535");
  const rawHost = m[1] ?? m[2] ?? "";
  if (rawHost === "") return { host: "", port: p };
  if (rawHost === "localhost") return { host: "127.0.0.1", port: p };
  let host: string;
  try {
    host = normaliseHost(rawHost);
  } catch {
    throw new RangeError(expected);
  }
  if (!/^[\d.]+$/.test(host) && !host.includes(":")) throw new RangeError("expected an IP address, not a host name");
  return { host, port: p };
}
