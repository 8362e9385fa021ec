/**
 * A validated configuration as log fields, derived from its own keys: a flag added to a mode's table and config
 * shows up in the start-up log line without a hand-kept list.
 *
 * @module
 */
import { type Endpoint, endpointKey } from "../endpoint.ts";
import { formatDuration } from "./duration.ts";

/** One logged value: what the user would type, or `null` for a flag left unset. */
export type ConfigField = string | number | boolean | null;

function isEndpoint(v: unknown): v is Endpoint {
  return typeof v === "object" && v !== null && typeof (v as Endpoint).host === "string" &&
    typeof (v as Endpoint).port === "number";
}

function field(v: unknown): ConfigField {
  if (v === undefined || v === null) return null;
  if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") return v;
  if (isEndpoint(v)) return endpointKey(v);
  if (Array.isArray(v)) return v.map((e) => String(field(e))).join(",");
  if (typeof v === "object") {
    return Object.entries(v).map(([k, e]) => `${k}=${field(e)}`).join(" ");
  }
  return String(v);
}

/**
 * Every key of a config as a log field, written the way its flag takes it: `...Ms` durations as `healthInterval: "1s"`,
 * endpoints as `host:port` lists, unset values as `null`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeConfig } from "./describe.ts";
 * const d = describeConfig({ drainTimeoutMs: 30_000, endpoints: [{ host: "::1", port: 6443 }], kubeconfig: undefined });
 * assert(d.drainTimeout === "30s" && d.endpoints === "[::1]:6443" && d.kubeconfig === null);
 * ```
 */
export function describeConfig(config: object): Record<string, ConfigField> {
  const out: Record<string, ConfigField> = {};
  for (const [key, value] of Object.entries(config)) {
    if (key.endsWith("Ms") && typeof value === "number") out[key.slice(0, -2)] = formatDuration(value);
    else out[key] = field(value);
  }
  return out;
}
