/**
 * What the copier knows about the cluster, kept current by list+watch: every Service (cluster-wide), the copies it
 * manages (selected by its `managed-by` label), and the slices of each source Service in use (namespace-scoped,
 * selected by `kubernetes.io/service-name`), whose watches start and stop as targets come and go. Each change is
 * mapped to the targets it concerns, so that a source change reaches every target that copies it.
 *
 * Services and copies are watched in delta mode and indexed (source -> targets, target -> copies): a change of one
 * Service costs the same in a cluster of ten Services or of ten thousand. The slices of one source are a small set,
 * watched as snapshots.
 *
 * @module
 */
import {
  listWatch,
  type ListWatchDelta,
  listWatchDeltas,
  type ListWatchOptions,
  type ListWatchRetry,
} from "../kubernetes/list_watch.ts";
import type { KubeTransport } from "../kubernetes/transport.ts";
import { slicesPath } from "./slice_api.ts";
import {
  decodeService,
  decodeSlice,
  LABEL_MANAGED_BY,
  LABEL_SERVICE_NAME,
  MANAGER,
  objectKey,
  type ServiceInfo,
  type SliceInfo,
} from "./objects.ts";
import { type CopierDefaults, decideTarget, type ServiceRef, type TargetDecision } from "./targets.ts";
import { SourceWatches } from "./_source_watches.ts";
import type { KubeObject } from "../kubernetes/types.ts";

/** Tuning of the watches (the list+watch defaults otherwise). */
export type WatchTuning = Pick<
  ListWatchOptions<SliceInfo>,
  "clock" | "random" | "backoffBaseMs" | "backoffMaxMs" | "idleTimeoutMs" | "watchTimeoutSeconds"
>;

/** Options of {@linkcode CopierCaches}. */
export interface CopierCachesOptions {
  /** How requests reach the API server. */
  readonly transport: KubeTransport;
  /** The flag defaults that decide targets and sources. */
  readonly defaults: CopierDefaults;
  /** Called with the target keys (`namespace/name`) a change concerns. */
  readonly onChange: (keys: readonly string[]) => void;
  /** Called before every retry of a watch. */
  readonly onWatchRetry?: (what: string, retry: ListWatchRetry) => void;
  /** Tuning of every watch. */
  readonly watch?: WatchTuning;
}

const SERVICES_PATH = "/api/v1/services";
const ALL_SLICES_PATH = "/apis/discovery.k8s.io/v1/endpointslices";

/**
 * The copier's caches.
 *
 * @example
 * ```ts ignore
 * const caches = new CopierCaches({ transport, defaults, onChange: (keys) => keys.forEach((k) => queue.add(k)) });
 * await caches.run(signal);
 * ```
 */
export class CopierCaches {
  readonly #o: CopierCachesOptions;
  #services: Map<string, ServiceInfo> | undefined;
  #copies: Map<string, SliceInfo> | undefined;
  /** Target key -> its copies by copy key. */
  readonly #copiesByOwner = new Map<string, Map<string, SliceInfo>>();
  readonly #sources: SourceWatches;
  #signal: AbortSignal | undefined;

  /** Builds the caches; nothing is watched before {@linkcode CopierCaches.run}. */
  constructor(options: CopierCachesOptions) {
    this.#o = options;
    this.#sources = new SourceWatches(
      (key, ref, signal, onItems) =>
        this.#pump<SliceInfo>(
          `the source '${key}'`,
          { path: slicesPath(ref.namespace), labelSelector: `${LABEL_SERVICE_NAME}=${ref.name}`, decode: decodeSlice },
          signal,
          onItems,
        ),
      (targets) => this.#o.onChange(targets),
    );
  }

  /** Watches until `signal` aborts; never rejects. */
  async run(signal: AbortSignal): Promise<void> {
    this.#signal = signal;
    const services = this.#pumpDeltas<ServiceInfo>(
      "Services",
      { path: SERVICES_PATH, decode: decodeService },
      signal,
      (d) => this.#onService(d),
    );
    const copies = this.#pumpDeltas<SliceInfo>(
      "managed EndpointSlices",
      { path: ALL_SLICES_PATH, labelSelector: `${LABEL_MANAGED_BY}=${MANAGER}`, decode: decodeSlice },
      signal,
      (d) => this.#onCopy(d),
    );
    await Promise.all([services, copies]);
    await this.#sources.stop();
  }

  /** Whether Services, copies and every source in use have been listed. */
  get synced(): boolean {
    return this.#services !== undefined && this.#copies !== undefined && this.#sources.synced;
  }

  /** Whether Services and copies have been listed (sources aside). */
  get baseSynced(): boolean {
    return this.#services !== undefined && this.#copies !== undefined;
  }

  /** The cached Service. */
  service(key: string): ServiceInfo | undefined {
    return this.#services?.get(key);
  }

  /** What to do with the Service of `key`. */
  decision(key: string): TargetDecision {
    return decideTarget(this.service(key), this.#o.defaults);
  }

  /** Our copies for the target `key`, in namespace/name order. */
  copiesOf(key: string): SliceInfo[] {
    const mine = this.#copiesByOwner.get(key);
    if (mine === undefined) return [];
    return [...mine].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, c]) => c);
  }

  /** Names of our copies in `namespace` that belong to targets other than `name`. */
  takenNames(namespace: string, name: string): Set<string> {
    const out = new Set<string>();
    for (const c of this.#copies?.values() ?? []) {
      if (c.metadata.namespace === namespace && c.metadata.labels[LABEL_SERVICE_NAME] !== name) {
        out.add(c.metadata.name);
      }
    }
    return out;
  }

  /** The slices of a source Service, our copies excluded; `undefined` until its watch has listed them. */
  sourceSlices(ref: ServiceRef): readonly SliceInfo[] | undefined {
    return this.#sources.slices(ref);
  }

  /** Every key worth a reconcile: targets, refused targets, and Services that still have copies. */
  keys(): string[] {
    const out = new Set<string>();
    for (const [key, svc] of this.#services ?? []) {
      if (decideTarget(svc, this.#o.defaults).kind !== "ignore") out.add(key);
    }
    for (const c of this.#copies?.values() ?? []) out.add(copyOwnerKey(c));
    return [...out].sort();
  }

  /** Counts for the gauges. */
  counts(): { targets: number; copies: number } {
    return { targets: this.#sources.targetCount, copies: this.#copies?.size ?? 0 };
  }

  #options<T extends ServiceInfo | SliceInfo>(
    what: string,
    o: Pick<ListWatchOptions<T>, "path" | "labelSelector" | "decode">,
  ): ListWatchOptions<T> {
    return {
      ...(this.#o.watch ?? {}),
      ...o,
      transport: this.#o.transport,
      onRetry: (r) => this.#o.onWatchRetry?.(what, r),
    };
  }

  async #pump<T extends ServiceInfo | SliceInfo>(
    what: string,
    o: Pick<ListWatchOptions<T>, "path" | "labelSelector" | "decode">,
    signal: AbortSignal,
    apply: (items: readonly T[]) => void,
  ): Promise<void> {
    for await (const snap of listWatch(this.#options(what, o), signal)) apply(snap.items);
  }

  async #pumpDeltas<T extends ServiceInfo | SliceInfo>(
    what: string,
    o: Pick<ListWatchOptions<T>, "path" | "labelSelector" | "decode">,
    signal: AbortSignal,
    apply: (delta: ListWatchDelta<T>) => void,
  ): Promise<void> {
    for await (const d of listWatchDeltas(this.#options(what, o), signal)) apply(d);
  }

  #onService(d: ListWatchDelta<ServiceInfo>): void {
    const keys: string[] = [];
    if (d.kind === "synced") {
      const first = this.#services === undefined;
      const before = this.#services ?? new Map<string, ServiceInfo>();
      const after = byKey(d.items);
      this.#services = after;
      if (first) keys.push(...this.keys());
      for (const key of changedKeys(before, after)) this.#serviceChanged(key, before.get(key), after.get(key), keys);
      // A full replace: the index is rebuilt, not patched.
      this.#sources.clear();
      for (const [key, svc] of after) this.#sources.want(key, decideTarget(svc, this.#o.defaults), true);
    } else {
      const services = this.#services ?? new Map<string, ServiceInfo>();
      this.#services = services;
      const key = keyOf(d.object);
      const was = services.get(key);
      if (d.kind === "upsert") services.set(key, d.object);
      else services.delete(key);
      const is = services.get(key);
      if (!changed(was, is)) {
        this.#o.onChange(keys);
        return;
      }
      const [wasD, isD] = this.#serviceChanged(key, was, is, keys);
      this.#sources.want(key, wasD, false);
      this.#sources.want(key, isD, true);
    }
    this.#syncSourceWatches();
    this.#o.onChange(keys);
  }

  /** Adds `key` to `keys` when the change concerns a target; returns the decisions before and after. */
  #serviceChanged(
    key: string,
    was: ServiceInfo | undefined,
    is: ServiceInfo | undefined,
    keys: string[],
  ): [TargetDecision, TargetDecision] {
    const wasD = decideTarget(was, this.#o.defaults);
    const isD = decideTarget(is, this.#o.defaults);
    if (wasD.kind !== "ignore" || isD.kind !== "ignore" || this.#copiesByOwner.has(key)) keys.push(key);
    return [wasD, isD];
  }

  #onCopy(d: ListWatchDelta<SliceInfo>): void {
    const keys = new Set<string>();
    if (d.kind === "synced") {
      const first = this.#copies === undefined;
      const before = this.#copies ?? new Map<string, SliceInfo>();
      const after = byKey(d.items);
      this.#copies = after;
      this.#copiesByOwner.clear();
      for (const [key, c] of after) this.#own(key, c, true);
      // The first list of either cache makes every key worth a look: the other cache may have been waiting for it.
      if (first) { for (const k of this.keys()) keys.add(k); }
      for (const key of changedKeys(before, after)) {
        for (const c of [before.get(key), after.get(key)]) if (c !== undefined) keys.add(copyOwnerKey(c));
      }
    } else {
      const copies = this.#copies ?? new Map<string, SliceInfo>();
      this.#copies = copies;
      const key = keyOf(d.object);
      const was = copies.get(key);
      if (was !== undefined) this.#own(key, was, false);
      if (d.kind === "upsert") {
        copies.set(key, d.object);
        this.#own(key, d.object, true);
      } else copies.delete(key);
      const is = copies.get(key);
      if (changed(was, is)) { for (const c of [was, is]) if (c !== undefined) keys.add(copyOwnerKey(c)); }
    }
    this.#o.onChange([...keys]);
  }

  /** Indexes (or unindexes) the copy `key` under its target. */
  #own(key: string, c: SliceInfo, on: boolean): void {
    const owner = copyOwnerKey(c);
    let mine = this.#copiesByOwner.get(owner);
    if (on) {
      if (mine === undefined) this.#copiesByOwner.set(owner, mine = new Map());
      mine.set(key, c);
    } else if (mine !== undefined) {
      mine.delete(key);
      if (mine.size === 0) this.#copiesByOwner.delete(owner);
    }
  }

  #syncSourceWatches(): void {
    if (this.#signal !== undefined) this.#sources.sync(this.#signal);
  }
}

/** The target key of a copy: its namespace and its `kubernetes.io/service-name` label. */
export function copyOwnerKey(c: SliceInfo): string {
  return objectKey(c.metadata.namespace, c.metadata.labels[LABEL_SERVICE_NAME] ?? "");
}

/** The reflector's key of an object: `namespace/name`. */
function keyOf(o: KubeObject): string {
  return objectKey(o.metadata.namespace ?? "", o.metadata.name);
}

function byKey<T extends KubeObject>(items: readonly T[]): Map<string, T> {
  return new Map(items.map((o) => [keyOf(o), o]));
}

/** Whether an object appeared, went, or changed its resourceVersion. */
function changed(was: KubeObject | undefined, is: KubeObject | undefined): boolean {
  if (was === undefined || is === undefined) return was !== is;
  return (was.metadata.resourceVersion ?? "") !== (is.metadata.resourceVersion ?? "");
}

/** Keys added, removed, or whose resourceVersion changed. */
function changedKeys<V extends KubeObject>(before: ReadonlyMap<string, V>, after: ReadonlyMap<string, V>): string[] {
  const out: string[] = [];
  for (const [k, v] of after) if (changed(before.get(k), v)) out.push(k);
  for (const k of before.keys()) if (!after.has(k)) out.push(k);
  return out;
}
