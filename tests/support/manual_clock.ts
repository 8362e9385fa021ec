/**
 * The tests' one fake clock: time moves only in `advance`, which fires the due timers in order of their time, each at
 * its own time, and lets what they started run before it moves on.
 *
 * @module
 */
import type { Clock, TimerId } from "../../lib/clock.ts";

interface Timer {
  readonly at: number;
  /** Breaks ties between timers due at the same time: the one set first fires first. */
  readonly seq: number;
  readonly fire: () => void;
}

/** How many rounds of "fire what is due, let it run" one instant may take before the clock calls it a loop. */
const MAX_ROUNDS = 100;

/** A manual {@linkcode Clock}. */
export class ManualClock implements Clock {
  #now: number;
  #seq = 0;
  readonly #timers = new Set<Timer>();

  /** @param start The time `now()` reads until the first `advance`. */
  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimer(ms: number, fn: () => void): TimerId {
    const t: Timer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fire: fn };
    this.#timers.add(t);
    return t;
  }

  clearTimer(id: TimerId): void {
    this.#timers.delete(id as Timer);
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.clearTimer(id);
        reject(signal?.reason);
      };
      const id = this.setTimer(ms, () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      });
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * Moves time on by `ms`: jumps from one due timer to the next, fires it at its own time, and lets the code it
   * wakes run (a macrotask turn, so callbacks, promise chains and ready I/O events run) before the next. Timers due
   * now run first, so `advance(0)` settles the present.
   */
  async advance(ms: number): Promise<void> {
    const end = this.#now + Math.max(0, ms);
    for (;;) {
      await this.#settle();
      const next = this.#next();
      if (next === undefined || next.at > end) break;
      this.#now = next.at;
    }
    this.#now = end;
    await this.#settle();
  }

  /**
   * Advances in steps of `stepMs` until `cond()` holds (checked first, at the present), for what timers drive (health
   * checks, say); fails once `maxMs` of clock time passed without it. Returns the clock time it held at.
   */
  async advanceUntil(cond: () => boolean, what: string, maxMs = 10_000, stepMs = 10): Promise<number> {
    const end = this.#now + maxMs;
    await this.#settle();
    while (!cond()) {
      if (this.#now >= end) throw new Error(`ManualClock: no ${what} within ${maxMs} ms of clock time`);
      await this.advance(Math.min(stepMs, end - this.#now));
    }
    return this.#now;
  }

  /**
   * Moves time on in steps of `stepMs` until `p` settles, and returns what it gives; fails once `maxMs` of clock time
   * passed. For ends that wait on the clock, such as an app's shutdown waiting on its drain deadline.
   */
  async advanceUntilSettled<T>(p: Promise<T>, what: string, maxMs = 60_000, stepMs = 100): Promise<T> {
    let settled = false;
    const watched = p.finally(() => (settled = true));
    watched.catch(() => {}); // rethrown by the await below
    await this.advanceUntil(() => settled, what, maxMs, stepMs);
    return await watched;
  }

  /**
   * A disposable that runs `stop` with the clock moving: declare it after what it stops, so a test that fails half-way
   * does not hang in a shutdown that waits on this clock.
   */
  stopsWith(stop: () => Promise<unknown>, what: string): AsyncDisposable {
    return { [Symbol.asyncDispose]: async () => void await this.advanceUntilSettled(stop(), what) };
  }

  /**
   * Fires every timer due now, and lets what they wake run; timers they set for now fire in the next round, so a
   * zero-delay loop is caught by the round limit instead of spinning.
   */
  async #settle(): Promise<void> {
    for (let round = 0;; round++) {
      await new Promise((r) => setTimeout(r, 0));
      const due = [...this.#timers].filter((t) => t.at <= this.#now).sort((a, b) => a.at - b.at || a.seq - b.seq);
      if (due.length === 0) return;
      if (round >= MAX_ROUNDS) {
        throw new Error(`ManualClock: timers keep firing at ${this.#now} ms (a zero-delay loop)`);
      }
      for (const t of due) if (this.#timers.delete(t)) t.fire(); // skipped if an earlier one cancelled it
    }
  }

  #next(): Timer | undefined {
    let best: Timer | undefined;
    for (const t of this.#timers) {
      if (best === undefined || t.at < best.at || (t.at === best.at && t.seq < best.seq)) best = t;
    }
    return best;
  }

  /** Timers waiting (sleeps and timeouts). */
  get pending(): number {
    return this.#timers.size;
  }
}
