/**
 * The sources in use and their watches: which targets copy which source Service (kept from the targets' decisions),
 * and one watch of the source's slices per source in use, started when its first target appears and stopped when
 * its last one goes. A source change is told as the targets that copy it.
 *
 * @module
 */
import { guard } from "../internal_errors.ts";
import { LABEL_MANAGED_BY, MANAGER, objectKey, type SliceInfo } from "./objects.ts";
import type { ServiceRef, TargetDecision } from "./targets.ts";

/** Watches the slices of one source until `signal` aborts, calling `onItems` with every snapshot. */
export type WatchSource = (
  key: string,
  ref: ServiceRef,
  signal: AbortSignal,
  onItems: (items: readonly SliceInfo[]) => void,
) => Promise<void>;

/** A source in use, and the targets that copy it. */
interface Wanted {
  readonly ref: ServiceRef;
  readonly targets: Set<string>;
}

interface SourceWatch {
  readonly ctrl: AbortController;
  done: Promise<void>;
  /** `undefined` until the first LIST. */
  items: readonly SliceInfo[] | undefined;
  /** Name -> resourceVersion of the items, to tell a change from a repeat. */
  versions: Map<string, string>;
}

/** The sources in use and their watches (see the module doc). */
export class SourceWatches {
  readonly #watch: WatchSource;
  readonly #onChange: (targets: readonly string[]) => void;
  /** Source key -> the targets that copy it: exactly the Services whose decision is `copy`. */
  readonly #wanted = new Map<string, Wanted>();
  readonly #watches = new Map<string, SourceWatch>();
  readonly #stopping = new Set<Promise<void>>();

  /**
   * @param watch Runs one source's watch.
   * @param onChange Called with the targets of a source whose slices changed (or were first listed).
   */
  constructor(watch: WatchSource, onChange: (targets: readonly string[]) => void) {
    this.#watch = watch;
    this.#onChange = onChange;
  }

  /** Records (or forgets) that target `key` copies the source of `d`; other decisions are no-ops. */
  want(key: string, d: TargetDecision, on: boolean): void {
    if (d.kind !== "copy") return;
    const sourceKey = objectKey(d.source.namespace, d.source.name);
    let w = this.#wanted.get(sourceKey);
    if (on) {
      if (w === undefined) this.#wanted.set(sourceKey, w = { ref: d.source, targets: new Set() });
      w.targets.add(key);
    } else if (w !== undefined) {
      w.targets.delete(key);
      if (w.targets.size === 0) this.#wanted.delete(sourceKey);
    }
  }

  /** Forgets every target (before a full replace of the Services). */
  clear(): void {
    this.#wanted.clear();
  }

  /** How many targets copy some source. */
  get targetCount(): number {
    let n = 0;
    for (const w of this.#wanted.values()) n += w.targets.size;
    return n;
  }

  /** Whether every source watch has listed. */
  get synced(): boolean {
    for (const s of this.#watches.values()) if (s.items === undefined) return false;
    return true;
  }

  /** The slices of a source, our copies excluded; `undefined` until its watch has listed them. */
  slices(ref: ServiceRef): readonly SliceInfo[] | undefined {
    return this.#watches.get(objectKey(ref.namespace, ref.name))?.items;
  }

  /** Starts a watch per source in use and stops those no target uses any more; none starts once `signal` aborted. */
  sync(signal: AbortSignal): void {
    if (signal.aborted) return;
    for (const [key, w] of this.#watches) {
      if (!this.#wanted.has(key)) {
        w.ctrl.abort();
        this.#watches.delete(key);
        this.#stopping.add(w.done);
        guard(w.done.finally(() => this.#stopping.delete(w.done)), "a stopped source watch");
      }
    }
    for (const [key, { ref }] of this.#wanted) {
      if (this.#watches.has(key)) continue;
      const ctrl = new AbortController();
      const stop = () => ctrl.abort();
      signal.addEventListener("abort", stop, { once: true });
      const w: SourceWatch = { ctrl, done: Promise.resolve(), items: undefined, versions: new Map() };
      w.done = this.#watch(key, ref, ctrl.signal, (items) => this.#onItems(key, w, items))
        .finally(() => signal.removeEventListener("abort", stop));
      this.#watches.set(key, w);
    }
  }

  /** Stops every watch; resolves when they (and those stopped before) have ended. */
  async stop(): Promise<void> {
    const watches = [...this.#watches.values()];
    for (const w of watches) w.ctrl.abort();
    await Promise.all([...watches.map((w) => w.done), ...this.#stopping]);
    this.#watches.clear();
  }

  #onItems(key: string, w: SourceWatch, items: readonly SliceInfo[]): void {
    if (this.#watches.get(key) !== w) return;
    const mine = items.filter((s) => s.metadata.labels[LABEL_MANAGED_BY] !== MANAGER);
    const after = new Map(mine.map((s) => [s.metadata.name, s.metadata.resourceVersion ?? ""]));
    const first = w.items === undefined;
    const changed = first || after.size !== w.versions.size ||
      [...after].some(([name, rv]) => w.versions.get(name) !== rv);
    w.items = mine;
    w.versions = after;
    if (!changed) return;
    this.#onChange([...(this.#wanted.get(key)?.targets ?? [])].sort());
  }
}
