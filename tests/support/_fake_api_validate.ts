/**
 * The validation the fake API server applies to written objects: names, labels, EndpointSlice shape, Lease MicroTime
 * and durations. Decoding errors are 400 `BadRequest` and validation errors 422 `Invalid`, as in the real server.
 *
 * Deliberate difference: loopback addresses are allowed in EndpointSlices (the real server refuses them) so that
 * test traffic stays on loopback.
 *
 * @module
 */

import { isObject, type Json, type JsonObject } from "./_fake_api_fields.ts";
import type { ResourceType } from "./_fake_api_resources.ts";
import { badRequest, invalid } from "./_fake_api_status.ts";

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const MICRO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$/;
const RFC3339_MICRO = "2006-01-02T15:04:05.000000Z07:00";
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/**
 * Validates an object about to be stored. `old` is the stored version for an update.
 *
 * @throws {ApiError} 400 for undecodable field types, 422 for invalid values
 */
export function validateObject(type: ResourceType, obj: JsonObject, old?: JsonObject): void {
  const meta = isObject(obj.metadata) ? obj.metadata : {};
  const name = typeof meta.name === "string" ? meta.name : "";
  const target = { kindName: type.kind, group: type.group, name };
  const nameRule = type.resource === "services" ? DNS1035_LABEL : DNS1123_SUBDOMAIN;
  if (name === "") invalid(target, "metadata.name", "Required value: name or generateName is required");
  if (!nameRule.test(name) || name.length > (type.resource === "services" ? 63 : 253)) {
    invalid(target, "metadata.name", `Invalid value: "${name}": must be a lowercase RFC 1123 name`);
  }
  for (const [field, re] of [["labels", LABEL_KEY], ["annotations", LABEL_KEY]] as const) {
    const map = meta[field];
    if (map === undefined || map === null) continue;
    if (!isObject(map)) decodeError(type, `metadata.${field}: expected a map of strings`);
    for (const [k, v] of Object.entries(map)) {
      if (typeof v !== "string") decodeError(type, `metadata.${field}["${k}"]: expected a string`);
      if (!re.test(k)) invalid(target, `metadata.${field}`, `Invalid value: "${k}": name part must be valid`);
      if (field === "labels" && (!LABEL_VALUE.test(v) || v.length > 63)) {
        invalid(target, "metadata.labels", `Invalid value: "${v}": a valid label must be 63 characters or less`);
      }
    }
  }
  if (type.resource === "endpointslices") validateEndpointSlice(type, obj, old, target);
  if (type.resource === "leases") validateLease(type, obj, target);
  if (type.resource === "services") validateService(type, obj, target);
}

type Target = { kindName: string; group: string; name: string };

function decodeError(type: ResourceType, detail: string): never {
  badRequest(`${type.kind} in version "${type.version}" cannot be handled as a ${type.kind}: ${detail}`);
}

function validateEndpointSlice(type: ResourceType, obj: JsonObject, old: JsonObject | undefined, target: Target) {
  const addressType = obj.addressType;
  if (addressType === undefined || addressType === null || addressType === "") {
    invalid(target, "addressType", "Required value");
  }
  if (addressType !== "IPv4" && addressType !== "IPv6" && addressType !== "FQDN") {
    invalid(target, "addressType", `Unsupported value: "${addressType}": supported values: "FQDN", "IPv4", "IPv6"`);
  }
  if (old !== undefined && old.addressType !== addressType) {
    invalid(target, "addressType", `Invalid value: "${addressType}": field is immutable`);
  }
  const endpoints = obj.endpoints ?? [];
  if (!Array.isArray(endpoints)) decodeError(type, "endpoints: expected an array");
  if (endpoints.length > 1000) {
    invalid(target, "endpoints", `Too many: ${endpoints.length}: must have at most 1000 items`);
  }
  endpoints.forEach((ep, i) => {
    if (!isObject(ep)) decodeError(type, `endpoints[${i}]: expected an object`);
    const addresses = ep.addresses;
    if (!Array.isArray(addresses) || addresses.length === 0) {
      invalid(target, `endpoints[${i}].addresses`, "Required value: must contain at least 1 address");
    }
    if (addresses.length > 100) {
      invalid(target, `endpoints[${i}].addresses`, `Too many: ${addresses.length}: must have at most 100 items`);
    }
    addresses.forEach((a, j) => {
      if (typeof a !== "string") decodeError(type, `endpoints[${i}].addresses[${j}]: expected a string`);
      if (!addressValid(addressType, a)) {
        invalid(target, `endpoints[${i}].addresses[${j}]`, `Invalid value: "${a}": must be a valid ${addressType}`);
      }
    });
    const conditions = ep.conditions;
    if (conditions !== undefined && conditions !== null) {
      if (!isObject(conditions)) decodeError(type, `endpoints[${i}].conditions: expected an object`);
      for (const c of ["ready", "serving", "terminating"]) {
        const v = conditions[c];
        if (v !== undefined && v !== null && typeof v !== "boolean") {
          decodeError(type, `endpoints[${i}].conditions.${c}: expected a boolean`);
        }
      }
    }
  });
  const ports = obj.ports ?? [];
  if (!Array.isArray(ports)) decodeError(type, "ports: expected an array");
  ports.forEach((p, i) => {
    if (!isObject(p)) decodeError(type, `ports[${i}]: expected an object`);
    checkPort(type, target, `ports[${i}].port`, p.port, true);
    if (p.name !== undefined && p.name !== null && p.name !== "") {
      if (typeof p.name !== "string") decodeError(type, `ports[${i}].name: expected a string`);
      if (!DNS1123_LABEL.test(p.name)) invalid(target, `ports[${i}].name`, `Invalid value: "${p.name}"`);
    }
  });
}

function addressValid(addressType: Json, a: string): boolean {
  if (addressType === "IPv4") return IPV4.test(a);
  if (addressType === "IPv6") return a.includes(":") && URL.canParse(`http://[${a}]/`);
  return DNS1123_SUBDOMAIN.test(a);
}

function checkPort(type: ResourceType, target: Target, field: string, port: Json | undefined, optional: boolean) {
  if ((port === undefined || port === null) && optional) return;
  if (typeof port !== "number" || !Number.isInteger(port)) decodeError(type, `${field}: expected an integer`);
  if (port < 1 || port > 65535) invalid(target, field, `Invalid value: ${port}: must be between 1 and 65535`);
}

function validateLease(type: ResourceType, obj: JsonObject, target: Target) {
  const spec = obj.spec;
  if (spec === undefined || spec === null) return;
  if (!isObject(spec)) decodeError(type, "spec: expected an object");
  for (const field of ["acquireTime", "renewTime"]) {
    const v = spec[field];
    if (v === undefined || v === null) continue;
    if (typeof v !== "string") decodeError(type, `spec.${field}: expected a string`);
    if (!MICRO_TIME.test(v) || Number.isNaN(Date.parse(v))) {
      decodeError(type, `parsing time "${v}" as "${RFC3339_MICRO}": cannot parse ${microTimeRest(v)}`);
    }
  }
  for (const field of ["leaseDurationSeconds", "leaseTransitions"]) {
    const v = spec[field];
    if (v === undefined || v === null) continue;
    if (typeof v !== "number" || !Number.isInteger(v)) {
      decodeError(type, `json: cannot unmarshal ${JSON.stringify(v)} into Go struct field LeaseSpec.spec.${field}`);
    }
    if (field === "leaseDurationSeconds" && v <= 0) {
      invalid(target, "spec.leaseDurationSeconds", `Invalid value: ${v}: must be greater than 0`);
    }
    if (field === "leaseTransitions" && v < 0) {
      invalid(target, "spec.leaseTransitions", `Invalid value: ${v}: must be greater than or equal to 0`);
    }
  }
  const holder = spec.holderIdentity;
  if (holder !== undefined && holder !== null && typeof holder !== "string") {
    decodeError(type, "spec.holderIdentity: expected a string");
  }
}

/** The `"found" as "expected"` tail of Go's time.Parse error for a value that is not RFC3339Micro. */
function microTimeRest(v: string): string {
  const m = v.match(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d*)?(.*)$/);
  if (m === null) return `"${v}" as "2006"`;
  const fraction = m[1] ?? "";
  if (fraction.length - 1 < 6) return `"${fraction}${m[2] ?? ""}" as ".000000"`;
  return `"${v.slice(v.indexOf(".") + 7)}" as "Z07:00"`;
}

function validateService(type: ResourceType, obj: JsonObject, target: Target) {
  const spec = obj.spec;
  if (spec === undefined || spec === null) return;
  if (!isObject(spec)) decodeError(type, "spec: expected an object");
  const ports = spec.ports ?? [];
  if (!Array.isArray(ports)) decodeError(type, "spec.ports: expected an array");
  ports.forEach((p, i) => {
    if (!isObject(p)) decodeError(type, `spec.ports[${i}]: expected an object`);
    checkPort(type, target, `spec.ports[${i}].port`, p.port, false);
  });
}
