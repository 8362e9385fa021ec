import assert from "node:assert/strict";
import type { Clock } from "../lib/clock.ts";
import { WorkQueue } from "../lib/copier/work_queue.ts";
import { withDeadline } from "./support/deadline.ts";

/** A clock whose sleeps end only when the test advances it. */
class ManualClock implements Clock {
  #now = 0;
  readonly #timers: { at: number; resolve: () => void; reject: (e: unknown) => void; signal?: AbortSignal }[] = [];

  now(): number {
    return this.#now;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const t = { at: this.#now + ms, resolve, reject, ...(signal ? { signal } : {}) };
      this.#timers.push(t);
      signal?.addEventListener("abort", () => {
        this.#timers.splice(this.#timers.indexOf(t), 1);
        reject(signal.reason);
      }, { once: true });
    });
  }

  /** Moves time on and fires the timers that are due. */
  async advance(ms: number): Promise<void> {
    this.#now += ms;
    for (const t of [...this.#timers]) {
      if (t.at <= this.#now) {
        this.#timers.splice(this.#timers.indexOf(t), 1);
        t.resolve();
      }
    }
    await new Promise((r) => setTimeout(r, 0));
  }

  get pending(): number {
    return this.#timers.length;
  }
}

Deno.test("a key is queued once and never handed to two workers at once", async () => {
  const q = new WorkQueue();
  q.add("a");
  q.add("b");
  q.add("a");
  assert.equal(q.length, 2);
  assert.equal(await withDeadline(q.get(), "an item"), "a");
  q.add("a"); // changed while being processed: waits for done()
  assert.equal(await withDeadline(q.get(), "an item"), "b");
  assert.equal(q.length, 0);
  q.done("a");
  assert.equal(await withDeadline(q.get(), "an item"), "a");
  q.done("a");
  q.done("b");
  assert.equal(q.length, 0);
  q.close();
  assert.equal(await withDeadline(q.get(), "an item"), undefined);
});

Deno.test("every waiting worker wakes, and get returns undefined when its signal aborts", async () => {
  const q = new WorkQueue();
  const ctrl = new AbortController();
  const one = q.get(ctrl.signal);
  const two = q.get();
  q.add("x");
  q.add("y");
  assert.deepEqual((await withDeadline(Promise.all([one, two]), "both workers")).sort(), ["x", "y"]);
  const three = q.get(ctrl.signal);
  ctrl.abort();
  assert.equal(await withDeadline(three, "the aborted get"), undefined);
  q.close();
});

Deno.test("a failed key comes back after a doubling backoff; success forgets it; clear drops pending retries", async () => {
  const clock = new ManualClock();
  const q = new WorkQueue({ clock, random: () => 1, retryBaseMs: 100, retryMaxMs: 350 });
  assert.deepEqual([q.retry("k"), q.retry("k"), q.retry("k"), q.retry("k")], [100, 200, 350, 350]);
  assert.equal(q.failures("k"), 4);
  assert.equal(clock.pending, 1, "one pending add per key: the earliest wins");
  await clock.advance(99);
  assert.equal(q.length, 0);
  await clock.advance(1);
  assert.equal(q.length, 1);
  q.forget("k");
  assert.equal(q.retry("k"), 100);
  q.clear();
  assert.equal(clock.pending, 0);
  assert.equal(q.failures("k"), 0);
  q.close();
});
