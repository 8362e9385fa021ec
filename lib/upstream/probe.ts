/**
 * The probe interface: one health check of one endpoint, made by the TCP connect probe (`probe_tcp.ts`) or the HTTPS
 * `/readyz` probe (`probe_readyz.ts`). `lib/abortable.ts` keeps either within its timeout when a step ignores the
 * signal.
 *
 * @module
 */
import type { Endpoint } from "../endpoint.ts";

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
  /**
   * One-time work before the first check (finding the CA, initialising TLS off the event loop), awaited by every check
   * loop before its first probe, outside the probe timeout. The same promise for every caller; never rejects.
   */
  prepare?(): Promise<void>;
}
