/**
 * The copier's writes of one target's plan, each guarded: a slice stored under the name without our `managed-by`
 * label belongs to someone else and is never written (one warning per slice per minute), a failed delete skips the
 * re-create of the same name, and once the target's own copies are in place the slice the Go
 * endpoint-copier-operator wrote for it is retired.
 *
 * @module
 */
import { describeError } from "../errors.ts";
import { getLogger } from "../log.ts";
import type { Clock } from "../clock.ts";
import { getObject } from "../kubernetes/api.ts";
import type { KubeTransport } from "../kubernetes/transport.ts";
import { LogLimit } from "../log_limit.ts";
import type { CopierMetrics } from "./metrics.ts";
import {
  decodeSlice,
  LABEL_MANAGED_BY,
  LABEL_SERVICE_NAME,
  LABEL_SOURCE,
  MANAGER,
  type ServiceInfo,
} from "./objects.ts";
import { type SliceAction, sliceManifest } from "./reconcile.ts";
import { applySlice, deleteSlice, slicePath } from "./slice_api.ts";

const log = getLogger(["extractedprism", "copier"]);

/** Options of {@linkcode SliceWriter}. */
export interface SliceWriterOptions {
  /** How requests reach the API server. */
  readonly transport: KubeTransport;
  /** Counts every write. */
  readonly metrics: CopierMetrics;
  /** Time of the refusal warnings' rate limit. */
  readonly clock: Clock;
}

/**
 * Writes the plans of targets.
 *
 * @example
 * ```ts ignore
 * const writer = new SliceWriter({ transport, metrics, clock });
 * await writer.execute("default/kubernetes-vip", actions, signal);
 * ```
 */
export class SliceWriter {
  readonly #o: SliceWriterOptions;
  /** Targets whose copy from the Go operator has been looked for during this leadership. */
  readonly #legacyChecked = new Set<string>();
  /** A refused write comes back with every change of its target: one warning per slice per minute. */
  readonly #refusals: LogLimit;

  /** Builds the writer. */
  constructor(options: SliceWriterOptions) {
    this.#o = options;
    this.#refusals = new LogLimit({ intervalMs: 60_000, now: () => options.clock.now() });
  }

  /** Forgets which legacy copies were looked for: a new leadership looks again. */
  newLeadership(): void {
    this.#legacyChecked.clear();
  }

  /** Runs the writes of target `key`; a failed delete skips the re-create of the same name. Throws if any write failed. */
  async execute(key: string, actions: readonly SliceAction[], signal: AbortSignal): Promise<void> {
    const [namespace = ""] = key.split("/");
    const failed: string[] = [];
    const blocked = new Set<string>();
    for (const a of actions) {
      const name = a.kind === "apply" ? a.slice.name : a.name;
      if (a.kind === "apply" && blocked.has(name)) continue;
      const slice = `${namespace}/${name}`;
      try {
        // The copier's own check, whatever the caches (and the server's label selector) said: a slice stored under
        // this name without our managed-by label belongs to someone else and is never written.
        const stored = await getObject(this.#o.transport, slicePath(namespace, name), {
          what: `read EndpointSlice '${slice}'`,
          signal,
        });
        const managedBy = stored === undefined ? undefined : decodeSlice(stored).metadata.labels[LABEL_MANAGED_BY];
        if (stored !== undefined && managedBy !== MANAGER) {
          if (a.kind === "delete") blocked.add(name);
          const suppressed = this.#refusals.take(`${a.kind} ${slice}`);
          if (suppressed !== undefined) {
            log.warn("Refusing to {verb} EndpointSlice {slice}: it is labelled {label}={managedBy}, not {manager}", {
              verb: a.kind === "apply" ? "overwrite" : "delete",
              slice,
              label: LABEL_MANAGED_BY,
              managedBy: managedBy ?? "(none)",
              manager: MANAGER,
              target: key,
              suppressed,
            });
          }
          continue;
        }
        if (a.kind === "delete" && stored === undefined) {
          log.debug("EndpointSlice {slice} is already gone: {why}", { slice, why: a.why, target: key });
          continue;
        }
        if (a.kind === "apply") {
          await applySlice(this.#o.transport, sliceManifest(a.slice), { namespace, name, signal });
          this.#o.metrics.write("apply", "success");
          log.info("Applied EndpointSlice {slice} ({why}) from the source slice {source} for {target}", {
            slice,
            why: a.why,
            source: a.slice.source,
            target: key,
            endpoints: a.slice.endpoints.length,
          });
        } else {
          const existed = await deleteSlice(this.#o.transport, { namespace, name, uid: a.uid, signal });
          this.#o.metrics.write("delete", "success");
          log.info("Deleted EndpointSlice {slice}: {why}", { slice, why: a.why, existed, target: key });
        }
      } catch (e) {
        if (signal.aborted) throw e;
        this.#o.metrics.write(a.kind, "error");
        if (a.kind === "delete") blocked.add(name);
        failed.push(describeError(e));
      }
    }
    if (failed.length > 0) throw new Error(failed.join("; "));
  }

  /**
   * Deletes the slice the Go endpoint-copier-operator wrote for this target (named after the Service, labelled
   * `endpoint-copier/source`, not ours), once this target's own copies are in place: old and new must not both
   * serve endpoints after a migration.
   */
  async retireLegacyCopy(svc: ServiceInfo, desired: ReadonlySet<string>, signal: AbortSignal): Promise<void> {
    const { namespace, name } = svc.metadata;
    const key = `${namespace}/${name}`;
    if (this.#legacyChecked.has(key) || desired.has(name)) return;
    const raw = await getObject(this.#o.transport, slicePath(namespace, name), {
      what: `read EndpointSlice '${key}'`,
      signal,
    });
    if (raw !== undefined) {
      const old = decodeSlice(raw);
      const labels = old.metadata.labels;
      if (
        labels[LABEL_SOURCE] !== undefined && labels[LABEL_MANAGED_BY] !== MANAGER &&
        labels[LABEL_SERVICE_NAME] === name
      ) {
        try {
          await deleteSlice(this.#o.transport, { namespace, name, uid: old.metadata.uid, signal });
          this.#o.metrics.write("delete", "success");
        } catch (e) {
          this.#o.metrics.write("delete", "error");
          throw e;
        }
        log.info("Deleted EndpointSlice {slice}, written by endpoint-copier-operator: replaced by {copies}", {
          slice: key,
          copies: [...desired].join(", "),
        });
      }
    }
    this.#legacyChecked.add(key);
  }
}
