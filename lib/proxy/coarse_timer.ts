/**
 * One ticking timer for the deadlines of every pending dial (its budget and its hedge), instead of two timers per
 * client connection. In Deno 2.9 each `setTimeout` builds a Node-compat `Timeout` object; per connection those were
 * about 2 of the 21 young-generation collections per 1,000 connections (`--trace-gc`). A deadline fires at its time
 * or up to one tick later, which is nothing against budgets of hundreds of milliseconds. The tick is a
 * {@linkcode Clock} timeout, so a test's manual clock drives dial budgets and hedges.
 *
 * @module
 */
import type { Clock, TimerId } from "../clock.ts";
import { reportInternalError } from "../internal_errors.ts";
import { LiveList, type LiveNode } from "../live_list.ts";

/** A scheduled call; `cancel()` it when it is no longer needed. */
export class TimerEntry {
  readonly at: number;
  fn: (() => void) | undefined;
  /** @internal Its place in the timer's list; `undefined` once it fired or was cancelled. */
  node: LiveNode<TimerEntry> | undefined;
  readonly #owner: CoarseTimer;

  constructor(owner: CoarseTimer, at: number, fn: () => void) {
    this.#owner = owner;
    this.at = at;
    this.fn = fn;
  }

  /** Drops the call if it has not fired yet. */
  cancel(): void {
    if (this.node === undefined) return;
    this.node.remove();
    this.node = this.fn = undefined;
    this.#owner.stopIfIdle();
  }
}

/**
 * Calls functions at given times, checked on a tick of the clock that runs only while a call is pending.
 *
 * @example
 * ```ts
 * import { systemClock } from "../clock.ts";
 * import { CoarseTimer } from "./coarse_timer.ts";
 * const timer = new CoarseTimer(systemClock, 5);
 * const fired = Promise.withResolvers<void>();
 * timer.at(timer.now() + 10, () => fired.resolve());
 * await fired.promise; // the tick stops by itself: nothing is pending
 * ```
 */
export class CoarseTimer {
  readonly #clock: Clock;
  readonly #tickMs: number;
  readonly #pending = new LiveList<TimerEntry>();
  /** The armed tick, if any. */
  #tick: TimerId;
  #armed = false;
  readonly #onTick = () => this.#fire();

  /**
   * @param clock Where time and the tick come from.
   * @param tickMs How often pending calls are checked: their resolution.
   */
  constructor(clock: Clock, tickMs = 10) {
    this.#clock = clock;
    this.#tickMs = tickMs;
  }

  /** The clock the times are measured on. */
  now(): number {
    return this.#clock.now();
  }

  /** Calls `fn` once, at `at` or up to one tick later, unless the entry is cancelled first. */
  at(at: number, fn: () => void): TimerEntry {
    const entry = new TimerEntry(this, at, fn);
    entry.node = this.#pending.add(entry);
    this.#arm();
    return entry;
  }

  #arm(): void {
    if (this.#armed) return;
    this.#armed = true;
    this.#tick = this.#clock.setTimer(this.#tickMs, this.#onTick);
  }

  #fire(): void {
    this.#armed = false;
    const now = this.#clock.now();
    // Collected first: a call may cancel other entries, or add new ones (they wait for a later tick).
    for (const e of this.#pending.values()) {
      if (e.at > now || e.node === undefined) continue;
      const fn = e.fn as () => void;
      e.node.remove();
      e.node = e.fn = undefined;
      try {
        fn();
      } catch (err) {
        reportInternalError("a timer callback", err); // a timer callback's throw would end the process
      }
    }
    if (this.#pending.size > 0) this.#arm(); // a no-op if a call that added an entry armed it already
  }

  /** @internal Stops the tick when nothing is pending. */
  stopIfIdle(): void {
    if (this.#pending.size === 0 && this.#armed) {
      this.#armed = false;
      this.#clock.clearTimer(this.#tick);
    }
  }
}
