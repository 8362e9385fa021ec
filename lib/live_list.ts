/**
 * A doubly linked list of live things (connections, pending deadlines), with O(1) add and remove.
 *
 * Why not a `Set`: the owners of these collections live for the whole process, so they sit in V8's old generation,
 * while what they hold lives for milliseconds. A `Set` with that churn rehashes into a new table every few dozen adds
 * and abandons the old one in the old generation, still pointing at the entries it held. A young-generation collection
 * treats every old-to-young pointer as a root, dead holder or not, so those entries and everything they reach survive
 * and are promoted, and they keep newer ones alive in turn, until the next full collection. Measured under new
 * connections: 127 KiB promoted per young collection with `Set`s, 3 KiB without; see the GC account in docs/performance.md. A list
 * allocates one small node per entry, never reallocates, and unlinks a removed node completely, so nothing dead
 * points at anything young.
 *
 * @module
 */

/** A place in a {@link LiveList}; `remove()` takes it out (idempotent). */
export class LiveNode<T> {
  value: T | undefined;
  prev: LiveNode<T> | undefined;
  next: LiveNode<T> | undefined;
  list: LiveList<T> | undefined;

  constructor(list: LiveList<T>, value: T) {
    this.list = list;
    this.value = value;
  }

  /** Takes the node out of its list; true if it was in it. */
  remove(): boolean {
    const list = this.list;
    if (list === undefined) return false;
    list.unlink(this);
    return true;
  }
}

/**
 * Insertion-ordered live entries.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LiveList } from "./live_list.ts";
 * const list = new LiveList<string>();
 * const a = list.add("a");
 * list.add("b");
 * a.remove();
 * assert(list.size === 1 && list.values()[0] === "b");
 * ```
 */
export class LiveList<T> {
  #head: LiveNode<T> | undefined;
  #tail: LiveNode<T> | undefined;
  #size = 0;

  /** Number of entries. */
  get size(): number {
    return this.#size;
  }

  /** Appends `value`; the node removes it again. */
  add(value: T): LiveNode<T> {
    const node = new LiveNode(this, value);
    node.prev = this.#tail;
    if (this.#tail) this.#tail.next = node;
    else this.#head = node;
    this.#tail = node;
    this.#size++;
    return node;
  }

  /** @internal Use {@link LiveNode.remove}. */
  unlink(node: LiveNode<T>): void {
    if (node.prev) node.prev.next = node.next;
    else this.#head = node.next;
    if (node.next) node.next.prev = node.prev;
    else this.#tail = node.prev;
    // Fully detached: a removed node that was promoted must not keep its neighbours or its value alive.
    node.prev =
      node.next =
      node.list =
      node.value =
        undefined;
    this.#size--;
  }

  /** The entries, oldest first, as a copy (safe to remove while iterating it). */
  values(): T[] {
    const out: T[] = [];
    for (let n = this.#head; n; n = n.next) out.push(n.value as T);
    return out;
  }
}
