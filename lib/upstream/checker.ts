/**
 * Schedules the probes of one upstream: at once when added, then every interval +/-20 %, each with its own timeout,
 * independent of every other upstream (a blackholed one never delays the rest). The loop races each probe against its
 * deadline, so a probe that never settles cannot stall it, and shares a bounded number of in-flight probes with every
 * other upstream, so thousands of upstreams cannot starve the event loop.
 *
 * @module
 */
import { describeError } from "../errors.ts";
import { type Clock, jitter, type Random } from "../clock.ts";
import { abortable } from "../abortable.ts";
import type { Probe, ProbeResult } from "./probe.ts";
import type { StateChange, Upstream } from "./upstream.ts";

/** How long past `timeoutMs` the loop waits for a probe that ignores its signal before it counts it as timed out. */
export const PROBE_GRACE_MS = 100;

/**
 * A counting semaphore for in-flight probes, shared by every upstream's loop; waiters are served first come first.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ProbeSlots } from "./checker.ts";
 * const slots = new ProbeSlots(1);
 * const release = await slots.acquire();
 * const second = slots.acquire();
 * assert.equal(slots.inFlight, 1);
 * assert.equal(slots.waiting, 1);
 * release();
 * (await second)();
 * assert.equal(slots.inFlight, 0);
 * ```
 */
export class ProbeSlots {
  readonly #limit: number;
  #inFlight = 0;
  readonly #waiters: { grant: () => void }[] = [];

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1) {
      throw new RangeError(`Cannot limit probes to '${limit}': expected a whole number from 1`);
    }
    this.#limit = limit;
  }

  /** Probes running now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Loops waiting for a slot. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /** Waits for a slot; the returned function frees it (idempotent). Rejects with the reason when `signal` aborts. */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#inFlight < this.#limit) {
      this.#inFlight++;
      return Promise.resolve(this.#releaser());
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        grant: () => {
          signal?.removeEventListener("abort", onAbort);
          this.#inFlight++;
          resolve(this.#releaser());
        },
      };
      const onAbort = () => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  #releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#inFlight--;
      this.#waiters.shift()?.grant();
    };
  }
}

/** Options of the probe loop. */
export interface CheckerOptions {
  readonly probe: Probe;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly clock: Clock;
  readonly random: Random;
  /** Bounds the probes in flight across every upstream that shares it. @default unbounded */
  readonly slots?: ProbeSlots;
  /** Called with every state change a probe causes. */
  readonly onChange: (change: StateChange) => void;
}

/**
 * Probes `upstream` until `signal` aborts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runChecks } from "./checker.ts";
 * import { Upstream } from "./upstream.ts";
 * import { systemClock } from "../clock.ts";
 * const up = new Upstream({ host: "127.0.0.1", port: 1 }, { rise: 2, fall: 2 });
 * const ctrl = new AbortController();
 * const probe = { name: "fake", check: () => Promise.resolve({ ok: true as const, rttMs: 1 }) };
 * const done = runChecks(up, { probe, intervalMs: 1000, timeoutMs: 100, clock: systemClock, random: Math.random,
 *   onChange: () => ctrl.abort() }, ctrl.signal);
 * await done;
 * assert(up.state === "healthy");
 * ```
 */
export async function runChecks(upstream: Upstream, opts: CheckerOptions, signal: AbortSignal): Promise<void> {
  try {
    await loop(upstream, opts, signal);
  } catch (e) {
    if (!signal.aborted) throw e;
  } finally {
    opts.probe.release?.(upstream.endpoint);
  }
}

const LATE: unique symbol = Symbol("late");

async function loop(upstream: Upstream, opts: CheckerOptions, signal: AbortSignal): Promise<void> {
  // The upstream stays unknown meanwhile (clients are still relayed to it): a CA still being read or TLS still
  // initialising must not count against the first probe's timeout and mark it unhealthy.
  const prepare = opts.probe.prepare?.();
  if (prepare !== undefined) await abortable(prepare.catch(() => {}), signal);
  // A probe that outlived its deadline: no new probe of this upstream starts until it settles, so a probe bug can
  // leave at most one pending probe per upstream. Each interval meanwhile counts as a timeout.
  let stuck: { settled: boolean } | undefined;
  while (!signal.aborted) {
    let result: ProbeResult;
    if (stuck !== undefined && !stuck.settled) {
      result = { ok: false, reason: "timeout (the previous probe has not ended)" };
    } else {
      stuck = undefined;
      const release = await opts.slots?.acquire(signal);
      try {
        const r = await probeOnce(upstream, opts, signal);
        if ("late" in r) {
          stuck = r.late;
          result = { ok: false, reason: "timeout" };
        } else result = r.result;
      } finally {
        release?.();
      }
    }
    if (signal.aborted) return;
    const change = result.ok
      ? upstream.recordSuccess(result.rttMs, opts.clock.now(), result.detail)
      : upstream.recordFailure(`${opts.probe.name} probe: ${result.reason}`);
    if (change !== undefined) opts.onChange(change);
    await opts.clock.sleep(jitter(opts.intervalMs, 0.2, opts.random), signal);
  }
}

/** One probe, raced against `timeoutMs` + grace; `late` when it has not settled by then (it may settle later). */
async function probeOnce(
  upstream: Upstream,
  opts: CheckerOptions,
  signal: AbortSignal,
): Promise<{ result: ProbeResult } | { late: { settled: boolean } }> {
  const timeout = new AbortController();
  const timers = new AbortController();
  // Stopping the loop ends the race at once too, even if the probe ignores its signal.
  const onAbort = () => {
    timeout.abort(signal.reason);
    timers.abort();
  };
  signal.addEventListener("abort", onAbort, { once: true });
  opts.clock.sleep(opts.timeoutMs, timers.signal).then(
    () => timeout.abort(new DOMException("probe timeout", "TimeoutError")),
    () => {},
  );
  const late = opts.clock.sleep(opts.timeoutMs + PROBE_GRACE_MS, timers.signal).then(
    (): typeof LATE => LATE,
    (): typeof LATE => LATE,
  );
  let probe: Promise<ProbeResult>;
  try {
    probe = opts.probe.check(upstream.endpoint, timeout.signal);
  } catch (e) {
    probe = Promise.reject(e);
  }
  const state = { settled: false };
  const settled = probe.then(
    (r) => r,
    (e): ProbeResult => ({ ok: false, reason: timeout.signal.aborted ? "timeout" : describeError(e) }),
  ).finally(() => {
    state.settled = true;
  });
  try {
    const r = await Promise.race([settled, late]);
    return r === LATE ? { late: state } : { result: r };
  } finally {
    timers.abort();
    signal.removeEventListener("abort", onAbort);
  }
}
