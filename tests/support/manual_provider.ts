/**
 * An endpoint provider driven by the test: push sets, fail, or end it, and see whether it was started and stopped.
 *
 * @module
 */
import type { Endpoint } from "../../lib/endpoint.ts";
import type { EndpointProvider } from "../../lib/discovery/provider.ts";

type Command =
  | { readonly kind: "set"; readonly set: readonly Endpoint[] }
  | { readonly kind: "fail"; readonly error: Error }
  | { readonly kind: "end" };

/** A provider whose every step the test commands. Only one `run` at a time. */
export class ManualProvider implements EndpointProvider {
  readonly name: string;
  readonly #queue: Command[] = [];
  #wake = Promise.withResolvers<void>();
  /** How many times `run` started. */
  started = 0;
  /** How many runs reached their `finally` (returned, ended, failed or aborted). */
  stopped = 0;
  /** How many sets the consumer took (the generator resumed after a `yield`). */
  delivered = 0;
  /** Whether the generator is parked waiting for the next command with an empty queue. */
  idle = false;
  /** The signal of the latest run. */
  signal: AbortSignal | undefined;

  constructor(name = "manual") {
    this.name = name;
  }

  /** Makes the provider yield `set`. */
  push(set: readonly Endpoint[]): void {
    this.#send({ kind: "set", set });
  }

  /** Makes the provider throw `error`. */
  fail(error: Error): void {
    this.#send({ kind: "fail", error });
  }

  /** Makes the provider end normally. */
  end(): void {
    this.#send({ kind: "end" });
  }

  /** Commands not yet taken by the generator. */
  get pending(): number {
    return this.#queue.length;
  }

  #send(c: Command): void {
    this.#queue.push(c);
    this.#wake.resolve();
  }

  async *run(signal: AbortSignal): AsyncGenerator<readonly Endpoint[], void, undefined> {
    this.started++;
    this.signal = signal;
    // The abort wakes the current wait: a race per wait against a promise that settles only at the abort would
    // leave a reaction on it per set (tests/heap_growth_test.ts runs thousands of sets through this provider).
    const onAbort = () => this.#wake.resolve();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        while (this.#queue.length === 0) {
          if (signal.aborted) return;
          this.idle = true;
          await this.#wake.promise;
          this.idle = false;
          this.#wake = Promise.withResolvers<void>();
          if (signal.aborted) return;
        }
        if (signal.aborted) return;
        const c = this.#queue.shift() as Command;
        if (c.kind === "end") return;
        if (c.kind === "fail") throw c.error;
        yield c.set;
        this.delivered++;
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      this.idle = false;
      this.stopped++;
    }
  }
}
