/**
 * The probe interface: one health check of one endpoint, made by the TCP connect probe (`probe_tcp.ts`) or the HTTPS
 * `/readyz` probe (`probe_readyz.ts`); and `abortable`, which keeps either within its timeout when a step ignores the
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

/**
 * Settles with `p`, or rejects with the signal's reason as soon as `signal` aborts, for a step that may ignore its
 * signal. A value that arrives after the abort goes to `dispose` (a connection to close); a late rejection is ignored.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { abortable } from "./probe.ts";
 * const never = new Promise<number>(() => {});
 * const r = await abortable(never, AbortSignal.abort(new Error("gone"))).catch((e) => e.message);
 * assert(r === "gone");
 * ```
 */
export function abortable<T>(p: Promise<T>, signal: AbortSignal, dispose?: (value: T) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const onAbort = () => {
      done = true;
      reject(signal.reason);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    p.then((v) => {
      signal.removeEventListener("abort", onAbort);
      if (done) dispose?.(v);
      else resolve(v);
    }, (e) => {
      signal.removeEventListener("abort", onAbort);
      if (!done) reject(e);
    });
  });
}
