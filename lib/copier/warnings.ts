/**
 * Warnings about targets, said once and remembered: a new (or changed) warning is logged and recorded as a
 * Kubernetes `Warning` Event on the target Service; one that persists is repeated (log line, Event `count` + 1) only
 * every `repeatIntervalMs`, so a periodic resync does not flood either. Events are best effort: a failed Event write
 * is logged at debug level and never retried.
 *
 * @module
 */
import { describeError } from "../errors.ts";
import { getLogger } from "../log.ts";
import { type Clock, systemClock } from "../clock.ts";
import type { KubeTransport } from "../kubernetes/transport.ts";
import { KubeApiError, requestJson } from "../kubernetes/api.ts";
import { MANAGER } from "./objects.ts";
import type { CopierWarning } from "./targets.ts";

const log = getLogger(["extractedprism", "copier"]);

/** The Service a warning is about. */
export interface WarningSubject {
  /** The Service's namespace. */
  readonly namespace: string;
  /** The Service's name. */
  readonly name: string;
  /** The Service's uid; without it no Event is written (the Service is gone). */
  readonly uid?: string;
}

/** Options of {@linkcode WarningReporter}. */
export interface WarningReporterOptions {
  /** Where Events are written; without it, warnings are only logged. */
  readonly transport?: KubeTransport;
  /** Sent as the Event's `reportingInstance` (the leader-election identity). @default {"unknown"} */
  readonly instance?: string;
  /** How often a persisting warning is repeated. @default {600000} (10 minutes) */
  readonly repeatIntervalMs?: number;
  /** Time for the repeat interval. @default {systemClock} */
  readonly clock?: Clock;
  /** Wall-clock milliseconds for Event timestamps. @default {Date.now} */
  readonly wallClock?: () => number;
  /** Called after every Event write attempt (metrics, tests). */
  readonly onEvent?: (ok: boolean) => void;
}

interface Remembered {
  message: string;
  saidAt: number;
  count: number;
  event: string | undefined;
}

/**
 * Reports the current warnings of each target.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WarningReporter } from "./warnings.ts";
 * const reporter = new WarningReporter();
 * const said = await reporter.report({ namespace: "default", name: "vip" }, [{ reason: "EmptySource", message: "m" }]);
 * assert(said === 1);
 * assert(await reporter.report({ namespace: "default", name: "vip" }, [{ reason: "EmptySource", message: "m" }]) === 0);
 * ```
 */
export class WarningReporter {
  readonly #o: WarningReporterOptions;
  readonly #clock: Clock;
  readonly #wall: () => number;
  readonly #memory = new Map<string, Map<string, Remembered>>();
  #sequence = 0;

  /** Builds a reporter that remembers nothing yet. */
  constructor(options: WarningReporterOptions = {}) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#wall = options.wallClock ?? Date.now;
  }

  /**
   * Logs (and records as Events) the warnings of `subject` that are new, changed, or due for a repeat; forgets those
   * no longer in `warnings`, so that a warning that comes back is said again.
   *
   * @returns How many warnings were said now.
   */
  async report(subject: WarningSubject, warnings: readonly CopierWarning[], signal?: AbortSignal): Promise<number> {
    const key = `${subject.namespace}/${subject.name}`;
    const known = this.#memory.get(key) ?? new Map<string, Remembered>();
    const now = this.#clock.now();
    const current = new Set<string>();
    let said = 0;
    for (const w of warnings) {
      current.add(w.reason);
      const before = known.get(w.reason);
      const fresh = before === undefined || before.message !== w.message;
      if (!fresh && now - before.saidAt < (this.#o.repeatIntervalMs ?? 600_000)) continue;
      log.warn("{message}", { message: w.message, reason: w.reason, service: key });
      said++;
      const entry: Remembered = fresh
        ? { message: w.message, saidAt: now, count: 1, event: undefined }
        : { ...before, saidAt: now, count: before.count + 1 };
      known.set(w.reason, entry);
      entry.event = await this.#record(subject, w, entry, signal);
    }
    for (const reason of [...known.keys()]) if (!current.has(reason)) known.delete(reason);
    if (known.size > 0) this.#memory.set(key, known);
    else this.#memory.delete(key);
    return said;
  }

  /** Forgets everything about a Service (it is gone). */
  forget(namespace: string, name: string): void {
    this.#memory.delete(`${namespace}/${name}`);
  }

  /** Creates the Event, or bumps its count; returns its name (undefined when it could not be written). */
  async #record(
    subject: WarningSubject,
    w: CopierWarning,
    entry: Remembered,
    signal: AbortSignal | undefined,
  ): Promise<string | undefined> {
    const transport = this.#o.transport;
    if (transport === undefined || subject.uid === undefined || subject.uid === "") return undefined;
    const nowIso = new Date(this.#wall()).toISOString().replace(/\.\d{3}Z$/, "Z");
    const base = `/api/v1/namespaces/${encodeURIComponent(subject.namespace)}/events`;
    const opts = { what: `record Event ${w.reason} on Service '${subject.namespace}/${subject.name}'`, signal };
    try {
      if (entry.event !== undefined && entry.count > 1) {
        try {
          await requestJson(transport, {
            method: "PATCH",
            path: `${base}/${encodeURIComponent(entry.event)}`,
            body: { count: entry.count, lastTimestamp: nowIso, message: w.message },
            contentType: "application/merge-patch+json",
          }, opts);
          this.#o.onEvent?.(true);
          return entry.event;
        } catch (e) {
          if (!(e instanceof KubeApiError && e.status === 404)) throw e;
          // The Event expired (its TTL is an hour): write a new one.
        }
      }
      const name = `${subject.name}.${
        (BigInt(Math.round(this.#wall())) * 1_000_000n + BigInt(this.#sequence++ % 1_000_000))
          .toString(16)
      }`;
      await requestJson(transport, {
        method: "POST",
        path: base,
        body: {
          apiVersion: "v1",
          kind: "Event",
          metadata: { name, namespace: subject.namespace },
          involvedObject: {
            apiVersion: "v1",
            kind: "Service",
            name: subject.name,
            namespace: subject.namespace,
            uid: subject.uid,
          },
          reason: w.reason,
          message: w.message,
          type: "Warning",
          source: { component: MANAGER },
          reportingComponent: MANAGER,
          reportingInstance: this.#o.instance ?? "unknown",
          firstTimestamp: nowIso,
          lastTimestamp: nowIso,
          count: entry.count,
        },
      }, opts);
      this.#o.onEvent?.(true);
      return name;
    } catch (e) {
      if (signal?.aborted) return entry.event;
      this.#o.onEvent?.(false);
      log.debug("Cannot record the {reason} Event on {service}: {error}", {
        reason: w.reason,
        service: `${subject.namespace}/${subject.name}`,
        error: describeError(e),
      });
      return entry.event;
    }
  }
}
