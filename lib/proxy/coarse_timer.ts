/**
 * One interval timer for the deadlines of every pending dial (its budget and its hedge), instead of two
 * `setTimeout`s per client connection. In Deno 2.9 each `setTimeout` builds a Node-compat `Timeout` object; per
 * connection those were about 2 of the 21 young-generation collections per 1,000 connections (`--trace-gc`). A
 * deadline fires at its time or up to one tick later, which is nothing against budgets of hundreds of milliseconds.
 *
 * @module
 */
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
 * Calls functions at given times, checked by one interval timer that runs only while a call is pending.
 *
 * @example
 * ```ts
 * import { CoarseTimer } from "./coarse_timer.ts";
 * const timer = new CoarseTimer(5);
 * const fired = Promise.withResolvers<void>();
 * timer.at(timer.now() + 10, () => fired.resolve());
 * await fired.promise; // the interval stops by itself: nothing is pending
 * ```
 */
export class CoarseTimer {
  readonly #tickMs: number;
  readonly #now: () => number;
  readonly #pending = new LiveList<TimerEntry>();
  #interval: ReturnType<typeof setInterval> | undefined;

  /**
   * @param tickMs How often pending calls are checked: their resolution.
   * @param now The clock, in milliseconds.
   */
  constructor(tickMs = 10, now: () => number = () => performance.now()) {
    this.#tickMs = tickMs;
    this.#now = now;
  }

  /** The clock the times are measured on. */
  now(): number {
    return this.#now();
  }

  /** Calls `fn` once, at `at` or up to one tick later, unless the entry is cancelled first. */
  at(at: number, fn: () => void): TimerEntry {
    const entry = new TimerEntry(this, at, fn);
    entry.node = this.#pending.add(entry);
    this.#interval ??= setInterval(() => this.#tick(), this.#tickMs);
    return entry;
  }

  #tick(): void {
    const now = this.#now();
    // Collected first: a call may cancel other entries, or add new ones (they wait for a later tick).
    for (const e of this.#pending.values()) {
      if (e.at > now || e.node === undefined) continue;
      const fn = e.fn as () => void;
      e.node.remove();
      e.node = e.fn = undefined;
      try {
        fn();
      } catch (err) {
        reportInternalError("a timer callback", err); // an interval's throw would end the process
      }
    }
    this.stopIfIdle();
  }

  /** @internal Stops the interval when nothing is pending. */
  stopIfIdle(): void {
    if (this.#pending.size === 0 && this.#interval !== undefined) {
      clearInterval(this.#interval);
      this.#interval = undefined;
    }
  }
}

/** The timer dials use unless they are given another. */
export const dialTimer: CoarseTimer = new CoarseTimer();
