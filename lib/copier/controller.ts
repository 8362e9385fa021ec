/**
 * The copier's controller: caches kept by watches feed a work queue keyed by target; while this process leads,
 * workers reconcile each queued target (plan, then write), a failed target comes back after a per-target backoff, and
 * a periodic resync queues every target as a safety net. Writes happen only while leading.
 *
 * @module
 */
import { describeError } from "../errors.ts";
import { getLogger } from "../log.ts";
import { type Clock, jitter, type Random, systemClock } from "../clock.ts";
import type { KubeTransport } from "../kubernetes/transport.ts";
import { CopierCaches, type WatchTuning } from "./caches.ts";
import type { CopierMetrics } from "./metrics.ts";
import { planCleanup, planTarget, type SliceAction } from "./reconcile.ts";
import { SliceWriter } from "./slice_writer.ts";
import type { CopierDefaults, CopierWarning } from "./targets.ts";
import { WorkQueue } from "./work_queue.ts";
import type { WarningReporter } from "./warnings.ts";

const log = getLogger(["extractedprism", "copier"]);

/** Options of {@linkcode CopierController}. */
export interface CopierControllerOptions {
  /** How requests reach the API server. */
  readonly transport: KubeTransport;
  /** The flag defaults that decide targets and sources. */
  readonly defaults: CopierDefaults;
  /** Counters and gauges to update. */
  readonly metrics: CopierMetrics;
  /** Says warnings once and records them as Events. */
  readonly warnings: WarningReporter;
  /** Time between full resyncs (jittered +/-10 %). @default {60000} */
  readonly resyncPeriodMs?: number;
  /** First retry delay cap of a failed target. @default {250} */
  readonly retryBaseMs?: number;
  /** Largest retry delay cap of a failed target. @default {30000} */
  readonly retryMaxMs?: number;
  /** Targets reconciled at once. @default {2} */
  readonly workers?: number;
  /** Monotonic time and sleeps. @default {systemClock} */
  readonly clock?: Clock;
  /** Randomness for jitter. @default {Math.random} */
  readonly random?: Random;
  /** Tuning of the watches. */
  readonly watch?: WatchTuning;
}

/**
 * Keeps the copies of every target equal to its source.
 *
 * @example
 * ```ts ignore
 * const controller = new CopierController({ transport, defaults, metrics, warnings });
 * const watching = controller.run(signal);
 * await controller.lead(leadingSignal); // writes only while this runs
 * ```
 */
export class CopierController {
  readonly #o: CopierControllerOptions;
  readonly #caches: CopierCaches;
  readonly #queue: WorkQueue;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #writer: SliceWriter;

  /** Builds the controller; nothing is watched before {@linkcode CopierController.run}. */
  constructor(options: CopierControllerOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#writer = new SliceWriter({ transport: options.transport, metrics: options.metrics, clock: this.#clock });
    this.#queue = new WorkQueue({
      clock: this.#clock,
      random: this.#random,
      ...(options.retryBaseMs !== undefined ? { retryBaseMs: options.retryBaseMs } : {}),
      ...(options.retryMaxMs !== undefined ? { retryMaxMs: options.retryMaxMs } : {}),
    });
    this.#caches = new CopierCaches({
      transport: options.transport,
      defaults: options.defaults,
      onChange: (keys) => {
        for (const k of keys) this.#queue.add(k);
      },
      onWatchRetry: () => options.metrics.error("watch"),
      ...(options.watch !== undefined ? { watch: options.watch } : {}),
    });
  }

  /** Whether every cache in use has been listed. */
  get synced(): boolean {
    return this.#caches.synced;
  }

  /** Runs the watches until `signal` aborts; never rejects. */
  async run(signal: AbortSignal): Promise<void> {
    await this.#caches.run(signal);
    this.#queue.close();
  }

  /** Brings the gauges up to date (before metrics are rendered). */
  updateGauges(): void {
    const { targets, copies } = this.#caches.counts();
    this.#o.metrics.set("extractedprism_copier_targets", targets);
    this.#o.metrics.set("extractedprism_copier_managed_slices", copies);
    this.#o.metrics.set("extractedprism_copier_queue_depth", this.#queue.length);
    this.#o.metrics.set("extractedprism_copier_caches_synced", this.synced ? 1 : 0);
  }

  /**
   * Reconciles while `signal` is not aborted: queues every known target at once, runs the workers and the periodic
   * resync, and returns when `signal` aborts and the writes in flight have stopped.
   */
  async lead(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    this.#queue.clear();
    this.#writer.newLeadership();
    for (const k of this.#caches.keys()) this.#queue.add(k);
    const workers = Array.from({ length: Math.max(1, this.#o.workers ?? 2) }, () => this.#work(signal));
    await Promise.all([...workers, this.#resync(signal)]);
    this.#queue.clear();
  }

  async #resync(signal: AbortSignal): Promise<void> {
    const period = this.#o.resyncPeriodMs ?? 60_000;
    while (!signal.aborted) {
      try {
        await this.#clock.sleep(jitter(period, 0.1, this.#random), signal);
      } catch {
        return;
      }
      const keys = this.#caches.keys();
      log.debug("Resync: queueing {count} targets", { count: keys.length });
      for (const k of keys) this.#queue.add(k);
    }
  }

  async #work(signal: AbortSignal): Promise<void> {
    for (;;) {
      const key = await this.#queue.get(signal);
      if (key === undefined) return;
      try {
        await this.#process(key, signal);
      } finally {
        this.#queue.done(key);
      }
    }
  }

  async #process(key: string, signal: AbortSignal): Promise<void> {
    if (!this.#caches.baseSynced) return; // every key is queued again when the caches are listed
    try {
      const done = await this.#reconcile(key, signal);
      if (!done) return;
      this.#queue.forget(key);
      this.#o.metrics.reconcile("success");
    } catch (e) {
      if (signal.aborted) return;
      this.#o.metrics.reconcile("error");
      const delayMs = Math.round(this.#queue.retry(key));
      log.warn("Cannot reconcile {target}, retrying in {delayMs} ms: {error}", {
        target: key,
        delayMs,
        error: describeError(e),
        failures: this.#queue.failures(key),
      });
    }
  }

  /** One reconcile of a target; false when its source is not listed yet (it is queued again when it is). */
  async #reconcile(key: string, signal: AbortSignal): Promise<boolean> {
    const svc = this.#caches.service(key);
    const decision = this.#caches.decision(key);
    const copies = this.#caches.copiesOf(key);
    let actions: readonly SliceAction[];
    let warnings: readonly CopierWarning[] = [];
    let desired: ReadonlySet<string> | undefined;
    if (decision.kind === "copy" && svc !== undefined) {
      const sources = this.#caches.sourceSlices(decision.source);
      if (sources === undefined) return false;
      const [namespace, name] = [svc.metadata.namespace, svc.metadata.name];
      const plan = planTarget({
        target: svc,
        source: decision.source,
        sourceSlices: sources,
        copies,
        takenNames: this.#caches.takenNames(namespace, name),
      });
      actions = plan.actions;
      warnings = plan.warnings;
      if (plan.kept === undefined) desired = new Set(plan.desired.map((d) => d.name));
    } else {
      if (decision.kind === "refuse") warnings = [decision.warning];
      const why = svc === undefined
        ? "its Service is gone"
        : decision.kind === "refuse"
        ? `the Service is refused (${decision.warning.reason})`
        : `the Service is no longer a target`;
      actions = planCleanup(copies, why);
    }
    try {
      await this.#writer.execute(key, actions, signal);
      if (svc !== undefined && desired !== undefined) await this.#writer.retireLegacyCopy(svc, desired, signal);
    } finally {
      // After the writes: an Event is best effort and must not delay them.
      if (svc !== undefined && !signal.aborted) {
        const subject = { namespace: svc.metadata.namespace, name: svc.metadata.name, uid: svc.metadata.uid };
        await this.#o.warnings.report(subject, warnings, signal);
      } else if (svc === undefined) {
        const [namespace = "", name = ""] = key.split("/");
        this.#o.warnings.forget(namespace, name);
      }
    }
    return true;
  }
}
