/**
 * The probe interface: one health check of one endpoint. TCP connect now; the HTTPS `/readyz` probe slots in here.
 *
 * @module
 */
import type { Endpoint } from "../config/endpoint.ts";

/** The result of one probe. */
export type ProbeResult =
  | { readonly ok: true; readonly rttMs: number; readonly detail?: string }
  | { readonly ok: false; readonly reason: string };

/** One kind of health check. `check` must settle soon after `signal` aborts (it carries the probe timeout). */
export interface Probe {
  readonly name: string;
  check(endpoint: Endpoint, signal: AbortSignal): Promise<ProbeResult>;
  /** Frees what the probe keeps for an endpoint (a kept-alive connection) once it is no longer probed. */
  release?(endpoint: Endpoint): void;
}

/** Short text for an error, for logs and `/upstreams`: the error's name and first line. */
export function describeError(e: unknown): string {
  if (e instanceof Error) {
    if (e.name === "TimeoutError" || e.name === "AbortError") return "timeout";
    const msg = e.message.split("\n")[0] ?? "";
    return e.name && e.name !== "Error" ? `${e.name}: ${msg}` : msg;
  }
  return String(e);
}
