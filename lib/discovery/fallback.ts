/**
 * A provider that stands in for another until that one has spoken: the state file bridges the boot, then the live
 * discovery alone decides (so an API server removed from the cluster does not live on through an old file).
 *
 * @module
 */
import { describeError } from "../errors.ts";
import { getLogger } from "../log.ts";
import type { Endpoint } from "../endpoint.ts";
import type { EndpointProvider } from "./provider.ts";

const log = getLogger(["extractedprism", "discovery"]);

type Step =
  | { readonly from: "primary"; readonly r: IteratorResult<readonly Endpoint[]> }
  | { readonly from: "fallback"; readonly r: IteratorResult<readonly Endpoint[]> };

/**
 * Runs `primary` and `fallback` together and yields the fallback's sets until the primary yields its first set; from
 * then on the fallback is stopped and only the primary's sets are yielded. A failing fallback is logged and dropped;
 * a failing primary fails this provider (the merge then drops its contribution).
 *
 * @example
 * ```ts
 * import { withFallback } from "./fallback.ts";
 * import { staticProvider } from "./static.ts";
 * const ctrl = new AbortController();
 * const p = withFallback(staticProvider([{ host: "10.0.0.2", port: 6443 }]), staticProvider([]));
 * for await (const set of p.run(ctrl.signal)) {
 *   if (set[0]?.host === "10.0.0.2") ctrl.abort();
 * }
 * ```
 */
export function withFallback(primary: EndpointProvider, fallback: EndpointProvider): EndpointProvider {
  return {
    name: primary.name,
    async *run(signal: AbortSignal) {
      if (signal.aborted) return;
      // Our own signals: a consumer that stops by return() (not abort) must still stop both sources.
      const stop = new AbortController();
      const onAbort = () => stop.abort(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      const stopFallback = new AbortController();
      const prim = primary.run(stop.signal)[Symbol.asyncIterator]();
      const fb = fallback.run(AbortSignal.any([stop.signal, stopFallback.signal]))[Symbol.asyncIterator]();
      let fallbackLive = true;
      const endFallback = async () => {
        if (!fallbackLive) return;
        fallbackLive = false;
        stopFallback.abort();
        await fb.return?.().catch(() => {});
      };
      const primaryStep = (): Promise<Step> => prim.next().then((r) => ({ from: "primary" as const, r }));
      const fallbackStep = (): Promise<Step> =>
        fb.next().then(
          (r) => ({ from: "fallback" as const, r }),
          (e) => {
            log.warn("Fallback provider {provider} failed; dropping it: {error}", {
              provider: fallback.name,
              error: describeError(e),
            });
            return { from: "fallback" as const, r: { done: true, value: undefined } };
          },
        );
      let nextPrimary = primaryStep();
      let nextFallback: Promise<Step> | undefined = fallbackStep();
      try {
        while (nextFallback !== undefined) {
          const step: Step = await Promise.race([nextPrimary, nextFallback]);
          if (step.from === "primary") {
            await endFallback();
            nextFallback = undefined;
            if (step.r.done) return;
            yield step.r.value;
            if (stop.signal.aborted) return;
            nextPrimary = primaryStep();
          } else if (step.r.done) {
            fallbackLive = false;
            nextFallback = undefined;
          } else {
            yield step.r.value;
            if (stop.signal.aborted) return;
            nextFallback = fallbackStep();
          }
        }
        for (;;) {
          const step = await nextPrimary;
          if (step.r.done) return;
          yield step.r.value;
          // A source parked at a yield may not notice an abort that came meanwhile: do not ask it for more.
          if (stop.signal.aborted) return;
          nextPrimary = primaryStep();
        }
      } finally {
        // A step still pending may yet reject (a source that throws on abort): that is not an unhandled rejection.
        nextPrimary.catch(() => {});
        signal.removeEventListener("abort", onAbort);
        stop.abort();
        await endFallback();
        await prim.return?.().catch(() => {});
      }
    },
  };
}
