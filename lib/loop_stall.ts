/**
 * Notices when the process did not run. A timer fires every half second and measures how late it is: a tick late by
 * 100 ms or more means the thread was held, and every client connection waited as long. What holds a proxy's thread
 * is seldom the proxy: CPU throttling by a CPU limit, a memory limit too small for the disk's read-ahead (the kernel
 * keeps taking back the program's code and reading it in again: seconds of latency, no OOM kill; docs/performance.md),
 * swap, a paused machine. Counted for `/metrics`, and a stall of a second or more is logged.
 *
 * @module
 */
import type { Clock, TimerId } from "./clock.ts";
import { getLogger } from "./log.ts";
import { LogLimit } from "./log_limit.ts";

const log = getLogger(["extractedprism", "process"]);

/** The two counters a watch's totals are exported as, in both modes: name and help text. */
export const STALL_COUNTERS = {
  stalls: [
    "extractedprism_event_loop_stalls_total",
    "Times the process did not run for 100 ms or more (a CPU limit, a memory limit taking back its code, swap).",
  ],
  seconds: [
    "extractedprism_event_loop_stalled_seconds_total",
    "Seconds the process did not run, summed over those stalls: whatever it serves waited as long.",
  ],
} as const;

/** Options of {@linkcode LoopStallWatch}. */
export interface LoopStallOptions {
  readonly clock: Clock;
  /** How often the timer fires. @default {500} */
  readonly intervalMs?: number;
  /** How late a tick must be to count as a stall. @default {100} */
  readonly stallMs?: number;
  /** How late a tick must be to be logged (at most one line a minute, with the count of those not logged). @default {1000} */
  readonly warnMs?: number;
  /** What the log line calls the process. @default {"proxy"} */
  readonly what?: string;
  /** What the log line says waited. @default {"its clients"} */
  readonly waiting?: string;
}

/**
 * A timer that counts its own lateness.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { systemClock } from "./clock.ts";
 * import { LoopStallWatch } from "./loop_stall.ts";
 * const watch = new LoopStallWatch({ clock: systemClock, intervalMs: 10 });
 * watch.start();
 * const until = performance.now() + 150;
 * while (performance.now() < until) {} // the thread is held
 * await new Promise((r) => setTimeout(r, 20));
 * watch.stop();
 * assert(watch.stalls >= 1 && watch.stalledMs >= 100);
 * ```
 */
export class LoopStallWatch {
  /** Ticks late by `stallMs` or more, since `start`. */
  stalls = 0;
  /** Their lateness, summed (ms). */
  stalledMs = 0;
  readonly #clock: Clock;
  readonly #intervalMs: number;
  readonly #stallMs: number;
  readonly #warnMs: number;
  readonly #logLimit: LogLimit;
  readonly #what: string;
  readonly #waiting: string;
  #due = 0;
  #timer: TimerId | undefined;

  constructor(options: LoopStallOptions) {
    this.#clock = options.clock;
    this.#intervalMs = options.intervalMs ?? 500;
    this.#stallMs = options.stallMs ?? 100;
    this.#warnMs = options.warnMs ?? 1000;
    this.#logLimit = new LogLimit({ intervalMs: 60_000, now: () => options.clock.now() });
    this.#what = options.what ?? "proxy";
    this.#waiting = options.waiting ?? "its clients";
  }

  /** Starts the timer; harmless when started. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#arm(this.#clock.now());
  }

  /** Stops the timer; harmless when stopped. */
  stop(): void {
    this.#clock.clearTimer(this.#timer);
    this.#timer = undefined;
  }

  #arm(now: number): void {
    this.#due = now + this.#intervalMs;
    this.#timer = this.#clock.setTimer(this.#intervalMs, this.#tick);
  }

  readonly #tick = (): void => {
    const now = this.#clock.now();
    const late = now - this.#due;
    if (late >= this.#stallMs) {
      this.stalls++;
      this.stalledMs += late;
      if (late >= this.#warnMs) this.#warn(late);
    }
    this.#arm(now);
  };

  #warn(lateMs: number): void {
    const suppressed = this.#logLimit.take("stall");
    if (suppressed === undefined) return;
    log.warn(
      `The ${this.#what} did not run for {ms} ms, and ${this.#waiting} waited as long: its thread was held (a CPU ` +
        "limit, a memory limit taking back its code, swap, or a paused machine; README: Troubleshoot)" +
        (suppressed > 0 ? " ({suppressed} more stalls of a second or more not logged)" : ""),
      { ms: Math.round(lateMs), suppressed, stalls: this.stalls },
    );
  }
}
