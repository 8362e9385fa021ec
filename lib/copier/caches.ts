/**
 * What the copier knows about the cluster, kept current by list+watch: every Service (cluster-wide), the copies it
 * manages (selected by its `managed-by` label), and the slices of each source Service in use (namespace-scoped,
 * selected by `kubernetes.io/service-name`), whose watches start and stop as targets come and go. Each change is
 * mapped to the targets it concerns, so that a source change reaches every target that copies it.
 *
 * @module
 */
import { listWatch, type ListWatchOptions, type ListWatchRetry } from "../kubernetes/list_watch.ts";
import type { KubeTransport } from "../kubernetes/transport.ts";
import { guard } from "../internal_errors.ts";
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

interface SourceWatch {
  readonly ctrl: AbortController;
  readonly done: Promise<void>;
  /** `undefined` until the first LIST. */
  items: readonly SliceInfo[] | undefined;
  versions: Map<string, string>;
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
  #services: ReadonlyMap<string, ServiceInfo> | undefined;
  #copies: ReadonlyMap<string, SliceInfo> | undefined;
  readonly #sources = new Map<string, SourceWatch>();
  readonly #stopping = new Set<Promise<void>>();
  #signal: AbortSignal | undefined;

  /** Builds the caches; nothing is watched before {@linkcode CopierCaches.run}. */
  constructor(options: CopierCachesOptions) {
    this.#o = options;
  }

  /** Watches until `signal` aborts; never rejects. */
  async run(signal: AbortSignal): Promise<void> {
    this.#signal = signal;
    const services = this.#pump<ServiceInfo>(
      "Services",
      {
        path: SERVICES_PATH,
        decode: decodeService,
      },
      signal,
      (items) => this.#onServices(items),
    );
    const copies = this.#pump<SliceInfo>(
      "managed EndpointSlices",
      {
        path: ALL_SLICES_PATH,
        labelSelector: `${LABEL_MANAGED_BY}=${MANAGER}`,
        decode: decodeSlice,
      },
      signal,
      (items) => this.#onCopies(items),
    );
    await Promise.all([services, copies]);
    const sources = [...this.#sources.values()];
    for (const s of sources) s.ctrl.abort();
    await Promise.all([...sources.map((s) => s.done), ...this.#stopping]);
    this.#sources.clear();
  }

  /** Whether Services, copies and every source in use have been listed. */
  get synced(): boolean {
    if (this.#services === undefined || this.#copies === undefined) return false;
    for (const s of this.#sources.values()) if (s.items === undefined) return false;
    return true;
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

  /** Our copies for the target `key`. */
  copiesOf(key: string): SliceInfo[] {
    return [...(this.#copies?.values() ?? [])].filter((c) => copyOwnerKey(c) === key);
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
    return this.#sources.get(objectKey(ref.namespace, ref.name))?.items;
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
    let targets = 0;
    for (const svc of this.#services?.values() ?? []) {
      if (decideTarget(svc, this.#o.defaults).kind === "copy") targets++;
    }
    return { targets, copies: this.#copies?.size ?? 0 };
  }

  async #pump<T extends ServiceInfo | SliceInfo>(
    what: string,
    o: Pick<ListWatchOptions<T>, "path" | "labelSelector" | "decode">,
    signal: AbortSignal,
    apply: (items: readonly T[]) => void,
  ): Promise<void> {
    const options: ListWatchOptions<T> = {
      ...(this.#o.watch ?? {}),
      ...o,
      transport: this.#o.transport,
      onRetry: (r) => this.#o.onWatchRetry?.(what, r),
    };
    for await (const snap of listWatch(options, signal)) apply(snap.items);
  }

  #onServices(items: readonly ServiceInfo[]): void {
    const first = this.#services === undefined;
    const before = this.#services ?? new Map<string, ServiceInfo>();
    const after = new Map(items.map((s) => [objectKey(s.metadata.namespace, s.metadata.name), s]));
    this.#services = after;
    const keys: string[] = first ? this.keys() : [];
    for (const key of changedKeys(before, after)) {
      const was = decideTarget(before.get(key), this.#o.defaults);
      const is = decideTarget(after.get(key), this.#o.defaults);
      if (was.kind !== "ignore" || is.kind !== "ignore" || this.copiesOf(key).length > 0) keys.push(key);
    }
    this.#syncSourceWatches();
    this.#o.onChange(keys);
  }

  #onCopies(items: readonly SliceInfo[]): void {
    const first = this.#copies === undefined;
    const before = this.#copies ?? new Map<string, SliceInfo>();
    const after = new Map(items.map((s) => [objectKey(s.metadata.namespace, s.metadata.name), s]));
    this.#copies = after;
    // The first list of either cache makes every key worth a look: the other cache may have been waiting for it.
    const keys = new Set<string>(first ? this.keys() : []);
    for (const key of changedKeys(before, after)) {
      for (const c of [before.get(key), after.get(key)]) if (c !== undefined) keys.add(copyOwnerKey(c));
    }
    this.#o.onChange([...keys]);
  }

  /** Starts a watch per source in use and stops those no target uses any more. */
  #syncSourceWatches(): void {
    const signal = this.#signal;
    if (signal === undefined || signal.aborted) return;
    const wanted = new Map<string, ServiceRef>();
    for (const svc of this.#services?.values() ?? []) {
      const d = decideTarget(svc, this.#o.defaults);
      if (d.kind === "copy") wanted.set(objectKey(d.source.namespace, d.source.name), d.source);
    }
    for (const [key, w] of this.#sources) {
      if (!wanted.has(key)) {
        w.ctrl.abort();
        this.#sources.delete(key);
        this.#stopping.add(w.done);
        guard(w.done.finally(() => this.#stopping.delete(w.done)), "a stopped source watch");
      }
    }
    for (const [key, ref] of wanted) {
      if (this.#sources.has(key)) continue;
      const ctrl = new AbortController();
      const stop = () => ctrl.abort();
      signal.addEventListener("abort", stop, { once: true });
      const w: SourceWatch = { ctrl, done: Promise.resolve(), items: undefined, versions: new Map() };
      const done = this.#pump<SliceInfo>(
        `the source '${key}'`,
        {
          path: slicesPath(ref.namespace),
          labelSelector: `${LABEL_SERVICE_NAME}=${ref.name}`,
          decode: decodeSlice,
        },
        ctrl.signal,
        (items) => this.#onSource(key, w, items),
      ).finally(() => signal.removeEventListener("abort", stop));
      this.#sources.set(key, Object.assign(w, { done }));
    }
  }

  #onSource(key: string, w: SourceWatch, items: readonly SliceInfo[]): void {
    if (this.#sources.get(key) !== w) return;
    const mine = items.filter((s) => s.metadata.labels[LABEL_MANAGED_BY] !== MANAGER);
    const after = new Map(mine.map((s) => [s.metadata.name, s.metadata.resourceVersion ?? ""]));
    const first = w.items === undefined;
    const changed = first || changedKeys(w.versions, after).length > 0;
    w.items = mine;
    w.versions = after;
    if (!changed) return;
    const targets: string[] = [];
    for (const [tk, svc] of this.#services ?? []) {
      const d = decideTarget(svc, this.#o.defaults);
      if (d.kind === "copy" && objectKey(d.source.namespace, d.source.name) === key) targets.push(tk);
    }
    this.#o.onChange(targets);
  }
}

/** The target key of a copy: its namespace and its `kubernetes.io/service-name` label. */
export function copyOwnerKey(c: SliceInfo): string {
  return objectKey(c.metadata.namespace, c.metadata.labels[LABEL_SERVICE_NAME] ?? "");
}

/** Keys added, removed, or whose resourceVersion changed. */
function changedKeys<V extends { metadata: { resourceVersion?: string } } | string>(
  before: ReadonlyMap<string, V>,
  after: ReadonlyMap<string, V>,
): string[] {
  const rv = (v: V | undefined) => (typeof v === "string" ? v : v?.metadata.resourceVersion ?? "");
  const out: string[] = [];
  for (const [k, v] of after) if (!before.has(k) || rv(before.get(k)) !== rv(v)) out.push(k);
  for (const k of before.keys()) if (!after.has(k)) out.push(k);
  return out;
}
