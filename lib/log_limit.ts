/**
 * Rate limits for log lines that an outside party can repeat at will (a flood of malformed watch events, a refused
 * write retried on every change): the same key is let through at most `burst` times per interval, and the line that
 * is let through says how many were suppressed since the last one.
 *
 * @module
 */

/** Options of {@linkcode LogLimit}. */
export interface LogLimitOptions {
  /** The length of one window. @default {10000} */
  readonly intervalMs?: number;
  /** Lines let through per key per window. @default {1} */
  readonly burst?: number;
  /** Monotonic milliseconds. @default {performance.now} */
  readonly now?: () => number;
  /** Keys remembered; past it the oldest are forgotten (their next line goes through). @default {1000} */
  readonly maxKeys?: number;
}

/**
 * Decides which repetitions of a log line are written.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LogLimit } from "./log_limit.ts";
 * let t = 0;
 * const limit = new LogLimit({ intervalMs: 1000, now: () => t });
 * assert(limit.take("bad object") === 0); // write it
 * assert(limit.take("bad object") === undefined); // suppressed
 * t = 1000;
 * assert(limit.take("bad object") === 1); // write it: 1 suppressed since the last one
 * ```
 */
export class LogLimit {
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #maxKeys: number;
  readonly #burst: number;
  readonly #seen = new Map<string, { at: number; count: number; suppressed: number }>();

  /** Remembers nothing yet: the first line of every key goes through. */
  constructor(options: LogLimitOptions = {}) {
    this.#intervalMs = options.intervalMs ?? 10_000;
    this.#now = options.now ?? (() => performance.now());
    this.#maxKeys = options.maxKeys ?? 1000;
    this.#burst = options.burst ?? 1;
  }

  /**
   * Records one occurrence of `key`.
   *
   * @returns `undefined` when the line must be suppressed, else how many were suppressed since the last one written.
   */
  take(key: string): number | undefined {
    const now = this.#now();
    const entry = this.#seen.get(key);
    if (entry !== undefined && now - entry.at < this.#intervalMs) {
      if (entry.count >= this.#burst) {
        entry.suppressed++;
        return undefined;
      }
      entry.count++;
      const suppressed = entry.suppressed;
      entry.suppressed = 0;
      return suppressed;
    }
    const suppressed = entry?.suppressed ?? 0;
    this.#seen.delete(key);
    if (this.#seen.size >= this.#maxKeys) {
      const oldest = this.#seen.keys().next();
      if (!oldest.done) this.#seen.delete(oldest.value);
    }
    this.#seen.set(key, { at: now, count: 1, suppressed: 0 });
    return suppressed;
  }
}
