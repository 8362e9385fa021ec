/**
 * Helpers of the list+watch loop: splitting a watch body into lines, and an idle deadline on the injected clock.
 *
 * @module
 */
import type { Clock } from "../../clock.ts";

/** Longest watch line accepted; a longer one is garbage (a real event is far smaller). */
const MAX_LINE = 16 << 20;

const NEWLINE = 0x0a;

/** Options of {@linkcode readLines}, for tests. */
export interface ReadLinesOptions {
  /** Longest line accepted, in bytes. @default {16777216} */
  readonly maxLineBytes?: number;
  /** Called with the number of bytes searched for a newline each time: their sum is linear in the input. */
  readonly onScanned?: (bytes: number) => void;
}

/**
 * Yields the newline-terminated lines of `body`. A partial last line (a stream cut mid-event) is dropped. The body is
 * cancelled when the consumer stops. Linear in the bytes received: each byte is searched once, and a line's chunks
 * are joined once, when its newline comes (a newline byte never occurs inside a multi-byte UTF-8 character).
 *
 * @throws {RangeError} When a line grows past 16 MiB.
 */
export async function* readLines(
  body: ReadableStream<Uint8Array>,
  options: ReadLinesOptions = {},
): AsyncGenerator<string, void, undefined> {
  const max = options.maxLineBytes ?? MAX_LINE;
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let parts: Uint8Array[] = [];
  let pending = 0;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      let start = 0;
      while (start < value.length) {
        const nl = value.indexOf(NEWLINE, start);
        options.onScanned?.((nl < 0 ? value.length : nl + 1) - start);
        if (nl < 0) {
          const rest = value.subarray(start);
          pending += rest.length;
          if (pending > max) {
            throw new RangeError(`Cannot read watch stream: expected lines under ${max} bytes`);
          }
          parts.push(rest);
          break;
        }
        const tail = value.subarray(start, nl);
        if (pending + tail.length > max) {
          throw new RangeError(`Cannot read watch stream: expected lines under ${max} bytes`);
        }
        let line: string;
        if (parts.length === 0) {
          line = decoder.decode(tail);
        } else {
          const bytes = new Uint8Array(pending + tail.length);
          let at = 0;
          for (const p of parts) {
            bytes.set(p, at);
            at += p.length;
          }
          bytes.set(tail, at);
          line = decoder.decode(bytes);
          parts = [];
          pending = 0;
        }
        start = nl + 1;
        yield line;
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
    void this.#run();
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
