/**
 * Schedules the probes of one upstream: at once when added, then every interval ±20 %, each with its own timeout,
 * independent of every other upstream (a blackholed one never delays the rest).
 *
 * @module
 */
import { type Clock, jitter, type Random } from "../clock.ts";
import type { Probe } from "./probe.ts";
import type { StateChange, Upstream } from "./upstream.ts";

/** Options of the probe loop. */
export interface CheckerOptions {
  readonly probe: Probe;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly clock: Clock;
  readonly random: Random;
  /** Called with every state change a probe causes. */
  readonly onChange: (change: StateChange) => void;
}

/**
 * Probes `upstream` until `signal` aborts.
 *
 * @example
 * ```ts
 * import { runChecks } from "./checker.ts";
 * import { Upstream } from "./upstream.ts";
 * import { systemClock } from "../clock.ts";
 * const up = new Upstream({ host: "127.0.0.1", port: 1 }, { rise: 2, fall: 2 });
 * const ctrl = new AbortController();
 * const probe = { name: "fake", check: () => Promise.resolve({ ok: true as const, rttMs: 1 }) };
 * const done = runChecks(up, { probe, intervalMs: 1000, timeoutMs: 100, clock: systemClock, random: Math.random,
 *   onChange: () => ctrl.abort() }, ctrl.signal);
 * await done;
 * console.assert(up.state === "healthy");
 * ```
 */
export async function runChecks(upstream: Upstream, opts: CheckerOptions, signal: AbortSignal): Promise<void> {
  try {
    await loop(upstream, opts, signal);
  } finally {
    opts.probe.release?.(upstream.endpoint);
  }
}

async function loop(upstream: Upstream, opts: CheckerOptions, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    const timeout = new AbortController();
    const onAbort = () => timeout.abort(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    const timer = setTimeout(() => timeout.abort(new DOMException("probe timeout", "TimeoutError")), opts.timeoutMs);
    let result;
    try {
      result = await opts.probe.check(upstream.endpoint, timeout.signal);
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
    }
    if (signal.aborted) return;
    const change = result.ok
      ? upstream.recordSuccess(result.rttMs, opts.clock.now(), result.detail)
      : upstream.recordFailure(`${opts.probe.name} probe: ${result.reason}`);
    if (change !== undefined) opts.onChange(change);
    try {
      await opts.clock.sleep(jitter(opts.intervalMs, 0.2, opts.random), signal);
    } catch {
      return;
    }
  }
}
