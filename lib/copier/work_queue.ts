/**
 * A work queue keyed by target, as client-go's: a key is queued at most once, never handed to two workers at once
 * (a key added while it is being processed is queued again when the worker is done), and a failed key comes back
 * after a per-key exponential backoff with full jitter.
 *
 * @module
 */
import { type Clock, type Random, systemClock } from "../clock.ts";
import { reportInternalError } from "../internal_errors.ts";

/** Options of {@linkcode WorkQueue}. */
export interface WorkQueueOptions {
  /** Time for delayed adds. @default {systemClock} */
  readonly clock?: Clock;
  /** Randomness of the retry delays. @default {Math.random} */
  readonly random?: Random;
  /** The first retry's delay cap; each further failure doubles it. @default {250} */
  readonly retryBaseMs?: number;
  /** The largest retry delay cap. @default {30000} */
  readonly retryMaxMs?: number;
}

/**
 * Keys waiting for a worker.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WorkQueue } from "./work_queue.ts";
 * const q = new WorkQueue();
 * q.add("default/vip");
 * q.add("default/vip");
 * assert(q.length === 1);
 * const key = await q.get();
 * q.done(key as string);
 * q.close();
 * ```
 */
export class WorkQueue {
  readonly #queue: string[] = [];
  readonly #dirty = new Set<string>();
  readonly #processing = new Set<string>();
  readonly #failures = new Map<string, number>();
  readonly #timers = new Map<string, { at: number; ctrl: AbortController }>();
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #baseMs: number;
  readonly #maxMs: number;
  #wake = Promise.withResolvers<void>();
  #closed = false;

  /** Builds an empty queue. */
  constructor(options: WorkQueueOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#baseMs = options.retryBaseMs ?? 250;
    this.#maxMs = options.retryMaxMs ?? 30_000;
  }

  /** Keys queued and not yet handed out. */
  get length(): number {
    return this.#queue.length;
  }

  /** Queues `key` unless it is queued already. */
  add(key: string): void {
    if (this.#closed || this.#dirty.has(key)) return;
    this.#dirty.add(key);
    if (this.#processing.has(key)) return;
    this.#queue.push(key);
    this.#notify();
  }

  /** Queues `key` after `ms`; an earlier pending add of the same key wins. */
  addAfter(key: string, ms: number): void {
    if (this.#closed) return;
    if (ms <= 0) return this.add(key);
    const at = this.#clock.now() + ms;
    const pending = this.#timers.get(key);
    if (pending !== undefined && pending.at <= at) return;
    pending?.ctrl.abort();
    const ctrl = new AbortController();
    this.#timers.set(key, { at, ctrl });
    this.#clock.sleep(ms, ctrl.signal).then(() => {
      if (this.#timers.get(key)?.ctrl === ctrl) this.#timers.delete(key);
      this.add(key);
    }, () => {}).catch((e) => reportInternalError("a delayed work-queue add", e));
  }

  /**
   * Queues `key` again after its backoff (uniform in [0, min(max, base*2^n)] after the n-th failure in a row).
   *
   * @returns The delay in milliseconds.
   */
  retry(key: string): number {
    const n = this.#failures.get(key) ?? 0;
    this.#failures.set(key, n + 1);
    const cap = Math.min(this.#maxMs, this.#baseMs * 2 ** Math.min(n, 30));
    const delay = Math.max(1, cap * this.#random());
    this.addAfter(key, delay);
    return delay;
  }

  /** Forgets the failures of `key` (after a success). */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  /** Failures of `key` in a row. */
  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /**
   * Waits for the next key and marks it as being processed; call {@linkcode done} after.
   *
   * @returns The key, or `undefined` when `signal` aborts or the queue closes.
   */
  async get(signal?: AbortSignal): Promise<string | undefined> {
    const aborted = Promise.withResolvers<void>();
    const onAbort = () => aborted.resolve();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      while (!this.#closed && !signal?.aborted) {
        const key = this.#queue.shift();
        if (key !== undefined) {
          this.#dirty.delete(key);
          this.#processing.add(key);
          return key;
        }
        await Promise.race([this.#wake.promise, aborted.promise]);
      }
      return undefined;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Wakes every waiting `get`. */
  #notify(): void {
    const woken = this.#wake;
    this.#wake = Promise.withResolvers<void>();
    woken.resolve();
  }

  /** Marks `key` as processed; if it was added meanwhile, it is queued again. */
  done(key: string): void {
    this.#processing.delete(key);
    if (this.#dirty.has(key) && !this.#closed) {
      this.#queue.push(key);
      this.#notify();
    }
  }

  /** Drops every queued key, pending delayed add and failure count (keys being processed stay until done). */
  clear(): void {
    this.#queue.length = 0;
    this.#dirty.clear();
    this.#failures.clear();
    for (const t of this.#timers.values()) t.ctrl.abort();
    this.#timers.clear();
  }

  /** Clears the queue and wakes every waiting `get` with `undefined`. */
  close(): void {
    this.clear();
    this.#closed = true;
    this.#notify();
  }
}
