/**
 * Helpers of the list+watch loop: splitting a watch body into lines, and an idle deadline on the injected clock.
 *
 * @module
 */
import type { Clock } from "../../clock.ts";
import { guard } from "../../internal_errors.ts";

/** Longest watch line accepted; a longer one is garbage (a real event is far smaller). */
const MAX_LINE = 16 << 20;

/**
 * Yields the newline-terminated lines of `body`. A partial last line (a stream cut mid-event) is dropped. The body is
 * cancelled when the consumer stops.
 *
 * @throws {RangeError} When a line grows past 16 MiB.
 */
export async function* readLines(body: ReadableStream<Uint8Array>): AsyncGenerator<string, void, undefined> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        yield line;
      }
      if (buf.length > MAX_LINE) {
        throw new RangeError(`Cannot read watch stream: expected lines under ${MAX_LINE} bytes`);
      }
    }
  } finally {
    await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

/** Calls `onExpire` once when `touch()` has not been called for `ms` (measured on `clock`), unless stopped first. */
export class IdleDeadline {
  #last: number;
  readonly #stop = new AbortController();
  readonly #clock: Clock;
  readonly #ms: number;
  readonly #onExpire: () => void;

  constructor(clock: Clock, ms: number, onExpire: () => void) {
    this.#clock = clock;
    this.#ms = ms;
    this.#onExpire = onExpire;
    this.#last = clock.now();
    guard(this.#run(), "a watch's idle deadline");
  }

  /** Records activity: the deadline moves to `ms` from now. */
  touch(): void {
    this.#last = this.#clock.now();
  }

  /** Cancels the deadline and its timer. */
  stop(): void {
    this.#stop.abort();
  }

  async #run(): Promise<void> {
    while (!this.#stop.signal.aborted) {
      const wait = this.#last + this.#ms - this.#clock.now();
      if (wait <= 0) {
        this.#onExpire();
        return;
      }
      try {
        await this.#clock.sleep(wait, this.#stop.signal);
      } catch {
        return;
      }
    }
  }
}
