/**
 * The static provider: the `--endpoints` list, available before anything else (no DNS, no CNI, no API).
 *
 * @module
 */
import type { Endpoint } from "../endpoint.ts";
import { type EndpointProvider, untilAborted } from "./provider.ts";

/**
 * Yields `endpoints` once, then waits until `signal` aborts (so a merge keeps its contribution).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { staticProvider } from "./static.ts";
 * const ctrl = new AbortController();
 * for await (const set of staticProvider([{ host: "10.0.0.1", port: 6443 }]).run(ctrl.signal)) {
 *   assert(set.length === 1);
 *   ctrl.abort();
 * }
 * ```
 */
export function staticProvider(endpoints: readonly Endpoint[]): EndpointProvider {
  return {
    name: "static",
    async *run(signal: AbortSignal) {
      if (signal.aborted) return;
      yield endpoints;
      await untilAborted(signal);
    },
  };
}
