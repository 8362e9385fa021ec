/**
 * One connection of `http_server.ts`: its state, its single pending deadline, and whole writes.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { describeError } from "../errors.ts";
import { clearTimer, setTimer, type TimerId } from "../clock.ts";

const encoder = new TextEncoder();

/** One accepted connection: its state and its single pending deadline. */
export class Connection {
  /** The accepted connection. */
  readonly conn: Deno.Conn;
  readonly #log: Logger;
  readonly #server: string;
  /** Called once at the close; each caller removes its own (see {@linkcode onClose}). */
  readonly #onClose = new Set<() => void>();
  /** `idle` waits for a request, `head` reads one, `busy` answers one. */
  state: "idle" | "head" | "busy" = "idle";
  /** Since when it has waited for a request head (at accept, then after each answer). */
  waitingSince: number = performance.now();
  #timer: TimerId | undefined;
  #isClosed = false;

  /** Wraps `conn`; `log` and `server` (the server's name) are for its log lines. */
  constructor(conn: Deno.Conn, log: Logger, server: string) {
    this.conn = conn;
    this.#log = log;
    this.#server = server;
  }

  /** Whether `close()` has run. */
  get isClosed(): boolean {
    return this.#isClosed;
  }

  /**
   * Calls `fn` once when the connection closes (at once when it is closed already); the returned function cancels
   * the call. Per request, not one promise for the connection's life: a `Promise.race` against such a promise on
   * every request of a keep-alive connection leaves a reaction on it each time, holding that request's answer, until
   * the connection closes (found by the soak: a scraper on one connection grew the heap by each answer's size).
   */
  onClose(fn: () => void): () => void {
    if (this.#isClosed) {
      fn();
      return () => {};
    }
    this.#onClose.add(fn);
    return () => this.#onClose.delete(fn);
  }

  /** Closes the connection after `ms` unless another deadline replaces this one. */
  deadline(ms: number, why: string): void {
    clearTimer(this.#timer);
    this.#timer = setTimer(ms, () => {
      this.#log.debug("Closing a connection to the {server} server: {why}", { server: this.#server, why });
      this.close();
    });
  }

  /** Closes the connection and clears its deadline. Idempotent. */
  close(): void {
    clearTimer(this.#timer);
    if (this.#isClosed) return;
    this.#isClosed = true;
    try {
      this.conn.close();
    } catch { /* already closed */ }
    for (const fn of this.#onClose) fn();
    this.#onClose.clear();
  }

  /** Writes all of `data`; false when the connection failed or closed. */
  async write(data: Uint8Array | string): Promise<boolean> {
    let bytes = typeof data === "string" ? encoder.encode(data) : data;
    try {
      while (bytes.length > 0) bytes = bytes.subarray(await this.conn.write(bytes));
      return true;
    } catch (e) {
      if (!this.#isClosed) {
        this.#log.debug("Writing to a connection to the {server} server failed: {error}", {
          server: this.#server,
          error: describeError(e),
        });
      }
      return false;
    }
  }
}
