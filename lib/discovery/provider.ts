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
