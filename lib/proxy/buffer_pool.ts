/**
 * A free list of relay buffers of one size; the relay keeps one list per tier (4, 32 and 256 KiB, see `relay.ts`).
 * Zeroing a fresh buffer for every new connection is the largest per-connection cost of a relay, and reusing buffers
 * lifts new connections per second by about half (platform.md: 0.47x to 0.75x of HAProxy).
 *
 * @module
 */

/**
 * Buffers of one size, reused. Return a buffer only after a clean EOF: after an error a pending op may still hold it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BufferPool } from "./buffer_pool.ts";
 * const pool = new BufferPool(4 * 1024, 4);
 * const b = pool.take();
 * pool.give(b);
 * assert(pool.take() === b);
 * ```
 */
export class BufferPool {
  readonly size: number;
  readonly #max: number;
  readonly #free: Uint8Array[] = [];

  /**
   * @param size Bytes per buffer.
   * @param max Most buffers kept on the free list; more are left to the garbage collector.
   */
  constructor(size: number, max: number) {
    this.size = size;
    this.#max = max;
  }

  /** A buffer from the free list, or a new one. */
  take(): Uint8Array {
    return this.#free.pop() ?? new Uint8Array(this.size);
  }

  /** Returns a buffer that no operation holds any more. */
  give(buf: Uint8Array): void {
    if (this.#free.length < this.#max && buf.byteLength === this.size) this.#free.push(buf);
  }

  /** Buffers on the free list now. */
  get free(): number {
    return this.#free.length;
  }
}
