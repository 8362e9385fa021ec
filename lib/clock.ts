/**
 * Time and randomness, passed in so that state machines can be tested without sleeping. Everything in `lib/` that
 * waits or measures a span a test could want to control takes a {@linkcode Clock}; `systemClock` is the real one and
 * the tests' `ManualClock` (tests/support/manual_clock.ts) moves only when told.
 *
 * @module
 */

/** A source of time and timers. */
export interface Clock {
  /** Milliseconds since an arbitrary origin; only differences matter. */
  now(): number;
  /** Waits `ms`, or rejects with the signal's reason as soon as it aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /**
   * Calls `fn` once after `ms` unless `clearTimer` gets the returned id first. No promise, signal or closure: the
   * primitive for code that must not allocate more than the timer itself (the dials' shared tick).
   */
  setTimer(ms: number, fn: () => void): TimerId;
  /** Cancels a timer of this clock; harmless once it fired. */
  clearTimer(id: TimerId): void;
}

/** A timer of a {@linkcode Clock}, opaque to everyone but that clock. */
export type TimerId = unknown;

/** Returns a float in [0, 1). */
export type Random = () => number;

/**
 * Waits `ms` milliseconds, rejecting with the signal's reason when it aborts (std `async/delay.ts` semantics).
 *
 * @example
 * ```ts
 * import { sleep } from "./clock.ts";
 * await sleep(1);
 * ```
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(id);
      reject(signal?.reason);
    };
    const id = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * The real clock: `performance.now()` and `setTimeout`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { systemClock } from "./clock.ts";
 * const start = systemClock.now();
 * const fired = Promise.withResolvers<void>();
 * systemClock.setTimer(1, fired.resolve);
 * systemClock.clearTimer(systemClock.setTimer(1, () => assert(false, "cancelled")));
 * await fired.promise;
 * assert(systemClock.now() >= start);
 * ```
 */
export const systemClock: Clock = {
  now: () => performance.now(),
  sleep,
  setTimer: (ms, fn) => setTimeout(fn, Math.max(0, ms)),
  clearTimer: (id) => clearTimeout(id as number),
};

/**
 * Spreads `ms` uniformly over ±`fraction` so that many timers started together do not fire together.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { jitter } from "./clock.ts";
 * const v = jitter(1000, 0.2, Math.random);
 * assert(v >= 800 && v <= 1200);
 * ```
 */
export function jitter(ms: number, fraction: number, random: Random): number {
  return ms * (1 - fraction + 2 * fraction * random());
}

/** Exponential backoff with full jitter: the n-th delay (from 0) is uniform in [0, min(max, base·2ⁿ)]. */
export class Backoff {
  #attempt = 0;
  constructor(
    readonly baseMs: number,
    readonly maxMs: number,
    readonly random: Random = Math.random,
  ) {}

  /** The next delay in milliseconds. */
  next(): number {
    const cap = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(this.#attempt, 30));
    this.#attempt++;
    return cap * this.random();
  }

  /** Starts again from the base delay (after a success). */
  reset(): void {
    this.#attempt = 0;
  }
}
