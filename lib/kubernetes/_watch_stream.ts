/**
 * Helpers of the list+watch loop: splitting a watch body into lines, and an idle deadline on the injected clock.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import { guard } from "../internal_errors.ts";
import type { ByteStream } from "./transport.ts";

/** Longest watch line accepted; a longer one is garbage (a real event is far smaller). */
const MAX_LINE = 16 << 20;

const NEWLINE = 0x0a;

/** Options of {@linkcode readLines}, for tests. */
export interface ReadLinesOptions {
  /** Longest line accepted, in bytes. @default {16777216} */
  readonly maxLineBytes?: number;
  /** Called with the size of each chunk as it is searched for newlines: each byte is searched once. */
  readonly onScanned?: (bytes: number) => void;
}

/**
 * Yields the newline-terminated lines of `body`. A partial last line (a stream cut mid-event) is dropped. The body is
 * cancelled when the consumer stops. Linear in the bytes received: a chunk is searched once for its last newline,
 * the complete lines it ends (with the pending bytes of the first one) are decoded in one piece and split, and the
 * rest waits as bytes; a newline byte never occurs inside a multi-byte UTF-8 character.
 *
 * @throws {RangeError} When a line grows past 16 MiB.
 */
export async function* readLines(
  body: ByteStream,
  options: ReadLinesOptions = {},
): AsyncGenerator<string, void, undefined> {
  const max = options.maxLineBytes ?? MAX_LINE;
  const tooLong = () => new RangeError(`Cannot read watch stream: expected lines under ${max} bytes`);
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let parts: Uint8Array[] = [];
  let pending = 0;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      options.onScanned?.(value.length);
      const last = value.lastIndexOf(NEWLINE);
      if (last < 0) {
        pending += value.length;
        if (pending > max) throw tooLong();
        parts.push(value);
        continue;
      }
      let bytes = value.subarray(0, last);
      if (parts.length > 0) {
        if (pending + value.indexOf(NEWLINE) > max) throw tooLong();
        const joined = new Uint8Array(pending + bytes.length);
        let at = 0;
        for (const p of parts) {
          joined.set(p, at);
          at += p.length;
        }
        joined.set(bytes, at);
        bytes = joined;
        parts = [];
      }
      const lines = decoder.decode(bytes).split("\n");
      const rest = value.subarray(last + 1);
      pending = rest.length;
      if (rest.length > 0) parts.push(rest);
      for (const line of lines) {
        if (line.length > max) throw tooLong(); // a huge line inside one huge chunk
        yield line;
      }
      if (pending > max) throw tooLong();
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
