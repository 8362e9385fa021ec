/**
 * The copier's counters and gauges, rendered in the Prometheus text exposition format (version 0.0.4).
 *
 * @module
 */

import { familyLines, type Labels, labelText } from "../prometheus.ts";
import { STALL_COUNTERS } from "../loop_stall.ts";

/** What failed: a slice write, a watch (before its retry), a Lease request, an Event write. */
export type ErrorKind = "write" | "watch" | "lease" | "event";

interface Family {
  readonly help: string;
  readonly type: "counter" | "gauge";
  readonly values: Map<string, { labels: Labels; value: number }>;
}

/**
 * Metrics of one copier process.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CopierMetrics } from "./metrics.ts";
 * const m = new CopierMetrics();
 * m.write("apply", "success");
 * assert(m.render().includes('extractedprism_copier_writes_total{verb="apply",result="success"} 1'));
 * ```
 */
export class CopierMetrics {
  readonly #families = new Map<string, Family>();

  constructor() {
    this.#family("extractedprism_copier_reconciles_total", "counter", "Reconciles of a target, by result.");
    this.#family("extractedprism_copier_writes_total", "counter", "EndpointSlice writes, by verb and result.");
    this.#family(
      "extractedprism_copier_errors_total",
      "counter",
      "Errors, by kind: write, watch, lease, event.",
    );
    this.#family("extractedprism_copier_leader", "gauge", "1 while this process leads (or runs without election).");
    this.#family("extractedprism_copier_targets", "gauge", "Services the copier keeps copies for.");
    this.#family("extractedprism_copier_managed_slices", "gauge", "EndpointSlices managed by the copier.");
    this.#family("extractedprism_copier_queue_depth", "gauge", "Targets waiting to be reconciled.");
    this.#family("extractedprism_copier_caches_synced", "gauge", "1 once every watched cache has been listed.");
    for (const [name, help] of Object.values(STALL_COUNTERS)) this.#family(name, "counter", help);
    this.stalls(0, 0);
    this.leader(false);
    this.set("extractedprism_copier_caches_synced", 0);
    for (const result of ["success", "error"]) {
      for (const verb of ["apply", "delete"]) this.#add("extractedprism_copier_writes_total", { verb, result }, 0);
      this.#add("extractedprism_copier_reconciles_total", { result }, 0);
    }
  }

  /** Counts one reconcile of a target. */
  reconcile(result: "success" | "error"): void {
    this.#add("extractedprism_copier_reconciles_total", { result }, 1);
  }

  /** Counts one slice write; a failed one is also an error of kind `write`. */
  write(verb: "apply" | "delete", result: "success" | "error"): void {
    this.#add("extractedprism_copier_writes_total", { verb, result }, 1);
    if (result === "error") this.error("write");
  }

  /** Counts one error of a kind: `write`, `watch`, `lease`, `event` (the kinds the help text names). */
  error(kind: ErrorKind): void {
    this.#add("extractedprism_copier_errors_total", { kind }, 1);
  }

  /** Sets the stall counters to a stall watch's totals: how many stalls, and their length summed (ms). */
  stalls(count: number, ms: number): void {
    this.#families.get(STALL_COUNTERS.stalls[0])!.values.set("", { labels: {}, value: count });
    this.#families.get(STALL_COUNTERS.seconds[0])!.values.set("", { labels: {}, value: ms / 1000 });
  }

  /** Sets the leader gauge. */
  leader(on: boolean): void {
    this.set("extractedprism_copier_leader", on ? 1 : 0);
  }

  /** Sets a gauge (without labels). */
  set(name: string, value: number): void {
    const f = this.#families.get(name);
    if (f === undefined) throw new RangeError(`Cannot set metric '${name}': expected a known gauge`);
    f.values.set("", { labels: {}, value });
  }

  /** The value of a metric with these labels (tests, status). */
  value(name: string, labels: Labels = {}): number {
    return this.#families.get(name)?.values.get(labelText(labels))?.value ?? 0;
  }

  /** The exposition text. */
  render(): string {
    const lines: string[] = [];
    for (const [name, f] of this.#families) lines.push(...familyLines(name, f.type, f.help, f.values.values()));
    return `${lines.join("\n")}\n`;
  }

  #family(name: string, type: "counter" | "gauge", help: string): void {
    this.#families.set(name, { help, type, values: new Map() });
  }

  #add(name: string, labels: Labels, by: number): void {
    const f = this.#families.get(name);
    if (f === undefined) throw new RangeError(`Cannot count metric '${name}': expected a known counter`);
    const key = labelText(labels);
    const cur = f.values.get(key);
    f.values.set(key, { labels, value: (cur?.value ?? 0) + by });
  }
}
