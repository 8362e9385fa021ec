/**
 * Endpoint providers: each is a stream of complete endpoint sets that stops when its signal aborts.
 *
 * @module
 */
import type { Endpoint } from "../endpoint.ts";

/** A named source of endpoint sets. Every yielded array is the provider's whole current set. */
export interface EndpointProvider {
  readonly name: string;
  run(signal: AbortSignal): AsyncIterable<readonly Endpoint[]>;
}

/**
 * Resolves when `signal` aborts (at once if it has): where a provider that has said all it has waits, so that a merge
 * keeps its contribution until the end.
 *
 * @example
 * ```ts
 * import { untilAborted } from "./provider.ts";
 * const ctrl = new AbortController();
 * const waiting = untilAborted(ctrl.signal);
 * ctrl.abort();
 * await waiting;
 * ```
 */
export function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}
