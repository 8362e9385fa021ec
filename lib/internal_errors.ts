/**
 * Internal errors: a bug that reaches a detached promise, a timer callback or an event handler must never end a
 * boot-critical process. Each one is logged at error level with its stack and counted
 * (`extractedprism_internal_errors_total` on the proxy's `/metrics`), and the process keeps running: the proxy keeps
 * serving, the copier keeps copying. The count is process-wide, like the `unhandledrejection` event that feeds it as a
 * last resort.
 *
 * @module
 */
import { getLogger } from "./log.ts";

const log = getLogger(["extractedprism", "internal"]);

let count = 0;

/**
 * Internal errors since the process started.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { internalErrorCount } from "./internal_errors.ts";
 * assert(internalErrorCount() >= 0);
 * ```
 */
export function internalErrorCount(): number {
  return count;
}

/** The stack of an error (its message when it has none), or the text of anything else thrown. */
function errorText(error: unknown): string {
  if (error instanceof Error) return error.stack ?? `${error.name}: ${error.message}`;
  try {
    return String(error);
  } catch {
    return Object.prototype.toString.call(error);
  }
}

/**
 * Logs an internal error with its stack at error level and counts it. Never throws.
 *
 * @param what Where it happened, e.g. `"health checks of 10.0.0.1:6443"`.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { internalErrorCount, reportInternalError } from "./internal_errors.ts";
 * const before = internalErrorCount();
 * reportInternalError("an example", new Error("boom"));
 * assert(internalErrorCount() === before + 1);
 * ```
 */
export function reportInternalError(what: string, error: unknown): void {
  count++;
  try {
    log.error("Internal error in {what} (the process keeps running): {error}", { what, error: errorText(error) });
  } catch { /* a logger that throws must not turn a counted error into an uncounted one */ }
}

/**
 * Detaches a promise safely: a rejection is reported as an internal error instead of ending the process.
 *
 * @param what Where it runs, for the log line.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { guard, internalErrorCount } from "./internal_errors.ts";
 * const before = internalErrorCount();
 * guard(Promise.reject(new Error("boom")), "an example");
 * await new Promise((r) => setTimeout(r, 0));
 * assert(internalErrorCount() === before + 1);
 * ```
 */
export function guard(promise: Promise<unknown>, what: string): void {
  promise.catch((e: unknown) => reportInternalError(what, e));
}

/**
 * Runs a callback (a timer's, an event handler's) and reports what it throws instead of letting it escape.
 *
 * @example
 * ```ts
 * import { guarded } from "./internal_errors.ts";
 * const f = guarded("an example", () => {
 *   throw new Error("boom");
 * });
 * f(); // reported, not thrown
 * ```
 */
export function guarded<A extends unknown[]>(what: string, fn: (...args: A) => void): (...args: A) => void {
  return (...args: A) => {
    try {
      fn(...args);
    } catch (e) {
      reportInternalError(what, e);
    }
  };
}

/**
 * The last resort: reports every unhandled rejection and uncaught exception as an internal error and prevents the
 * exit Deno would otherwise take. For the program's entry point (`main.ts`), never for a library. Returns a function
 * that removes the handlers.
 *
 * @example
 * ```ts
 * import { installLastResort } from "./internal_errors.ts";
 * const uninstall = installLastResort();
 * uninstall();
 * ```
 */
export function installLastResort(target: EventTarget = globalThis): () => void {
  const onRejection = (e: Event) => {
    e.preventDefault();
    reportInternalError("an unhandled promise rejection", (e as PromiseRejectionEvent).reason);
  };
  const onError = (e: Event) => {
    e.preventDefault();
    const ev = e as ErrorEvent;
    reportInternalError("an uncaught exception", ev.error ?? ev.message);
  };
  target.addEventListener("unhandledrejection", onRejection);
  target.addEventListener("error", onError);
  return () => {
    target.removeEventListener("unhandledrejection", onRejection);
    target.removeEventListener("error", onError);
  };
}
