/**
 * A clock that moves only when the test says so: `sleep` timers fire in `advance`.
 *
 * @module
 */
import type { Clock } from "../../lib/clock.ts";

/** A manual {@linkcode Clock}. */
export class ManualClock implements Clock {
  #now = 0;
  readonly #timers: { at: number; resolve: () => void }[] = [];

  now(): number {
    return this.#now;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const t = {
        at: this.#now + Math.max(0, ms),
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        const i = this.#timers.indexOf(t);
        if (i >= 0) this.#timers.splice(i, 1);
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#timers.push(t);
    });
  }

  /** Moves time on in steps of at most `stepMs`, firing due timers and letting their callbacks run after each. */
  async advance(ms: number, stepMs = 10): Promise<void> {
    const end = this.#now + ms;
    // What is already due (or about to sleep) runs at the current time first.
    await new Promise((r) => setTimeout(r, 0));
    do {
      this.#now = Math.min(end, this.#now + stepMs);
      for (const t of [...this.#timers].sort((a, b) => a.at - b.at)) {
        if (t.at <= this.#now) {
          this.#timers.splice(this.#timers.indexOf(t), 1);
          t.resolve();
        }
      }
      await new Promise((r) => setTimeout(r, 0));
    } while (this.#now < end);
  }

  /** Timers waiting. */
  get pending(): number {
    return this.#timers.length;
  }
}
