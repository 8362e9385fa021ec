/**
 * Waiting on a promise no longer than a signal allows.
 *
 * @module
 */

/**
 * Settles with `p`, or rejects with the signal's reason as soon as `signal` aborts, for a step that may ignore its
 * signal. A value that arrives after the abort goes to `dispose` (a connection to close); a late rejection is ignored.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { abortable } from "./abortable.ts";
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
