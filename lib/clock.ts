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

/** Returns a float in [0, 1). */
export type Random = () => number;

/** The primitive timers of Deno's core, reached through `Deno[Deno.internal]`. */
interface CoreTimers {
  createTimer(fn: () => void, ms: number, args: undefined, repeat: boolean, refed: boolean): object;
  cancelTimer(timer: object): void;
}

/**
 * Deno's core timers when this runtime exposes them, else `undefined`. Deno's global `setTimeout` is Node's: its first
 * call loads Node's timers module and the error and inspection code that comes with it, about 3 MiB of a process
 * that otherwise loads nothing of Node (issue 14). Core's timers are the ones that `setTimeout` itself ends in: same
 * clock, same ordering, same effect on the event loop and on the test sanitizers. A runtime without them (an
 * internal API may move) falls back to `setTimeout`, which only costs memory.
 */
function findCoreTimers(): CoreTimers | undefined {
  try {
    const deno = Deno as unknown as { internal?: unknown } & Record<symbol, unknown>;
    const internal = deno.internal;
    if (typeof internal !== "symbol") return undefined;
    const core = (deno[internal] as { core?: Partial<CoreTimers> } | undefined)?.core;
    if (typeof core?.createTimer !== "function" || typeof core.cancelTimer !== "function") return undefined;
    return core as CoreTimers;
  } catch {
    return undefined;
  }
}

const core = findCoreTimers();

/** Which timers this process uses: `"core"` (Deno's own) or `"setTimeout"` (the fallback). */
export const timerKind: "core" | "setTimeout" = core === undefined ? "setTimeout" : "core";

/** A pending timer of {@linkcode setTimer}. */
export type TimerId = unknown;

/**
 * Calls `fn` once after `ms` (at least 1 ms, like `setTimeout`) unless {@linkcode clearTimer} gets the id first. The
 * timer keeps the process alive while pending, as `setTimeout` does.
 *
 * @example
 * ```ts
 * import { clearTimer, setTimer } from "./clock.ts";
 * const fired = Promise.withResolvers<void>();
 * setTimer(1, fired.resolve);
 * clearTimer(setTimer(1, () => { throw new Error("cancelled"); }));
 * await fired.promise;
 * ```
 */
export function setTimer(ms: number, fn: () => void): TimerId {
  if (core === undefined) return setTimeout(fn, Math.max(0, ms));
  return core.createTimer(fn, Math.max(0, ms), undefined, false, true);
}

/** Cancels a timer of {@linkcode setTimer}; harmless once it fired, and for `undefined`. */
export function clearTimer(id: TimerId): void {
  if (id === undefined) return;
  if (core === undefined) clearTimeout(id as number);
  else core.cancelTimer(id as object);
}

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
      clearTimer(id);
      reject(signal?.reason);
    };
    const id = setTimer(ms, () => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    });
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * The real clock: `performance.now()` and {@linkcode setTimer}.
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
  setTimer,
  clearTimer,
};

/**
 * Spreads `ms` uniformly over +/-`fraction` so that many timers started together do not fire together.
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

/** Exponential backoff with full jitter: the n-th delay (from 0) is uniform in [0, min(max, base*2^n)]. */
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
