/**
 * Upstream choice: the order in which one client's dial tries the upstreams.
 *
 * @module
 */
import type { Upstream } from "./upstream.ts";

/** How healthy upstreams are ordered. */
export type SelectionPolicy = "latency" | "least-connections" | "round-robin";

/** Hysteresis before an upstream leaves the fastest tier: its RTT must exceed the tier bound by this factor. */
export const TIER_HYSTERESIS = 1.25;

/**
 * Orders dial candidates. Healthy upstreams first, by policy:
 * - `latency`: the fastest tier (smoothed RTT <= max(best + 2 ms, 2 * best), with 25 % hysteresis before leaving it),
 *   least active connections, ties round-robin; then the slower healthy ones, fastest first.
 * - `least-connections`: least active connections, ties round-robin.
 * - `round-robin`: rotation by `turn`.
 * Then every other upstream that is not draining, most recent success first, so that a stale health view never
 * refuses a client while some upstream might still answer. Updates each upstream's tier membership.
 *
 * @param upstreams The pool's upstreams, in a stable order.
 * @param turn A counter that advances once per client connection.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { orderCandidates } from "./choose.ts";
 * import { Upstream } from "./upstream.ts";
 * const a = new Upstream({ host: "10.0.0.1", port: 6443 }, { rise: 2, fall: 2 });
 * const b = new Upstream({ host: "10.0.0.2", port: 6443 }, { rise: 2, fall: 2 });
 * a.recordSuccess(1, 0);
 * assert(orderCandidates([a, b], 0)[0] === a);
 * ```
 */
export function orderCandidates(
  upstreams: readonly Upstream[],
  turn: number,
  policy: SelectionPolicy = "latency",
): Upstream[] {
  const healthy: Upstream[] = [];
  const rest: Upstream[] = [];
  for (const u of upstreams) {
    if (u.draining) continue;
    (u.state === "healthy" ? healthy : rest).push(u);
  }
  rest.sort((x, y) => y.lastSuccessAt - x.lastSuccessAt);
  if (policy === "round-robin") return rotate(healthy, turn).concat(rest);
  if (policy === "least-connections") return leastConnections(healthy, turn).concat(rest);
  updateTiers(healthy);
  const fast = healthy.filter((u) => u.inBestTier);
  const slow = healthy.filter((u) => !u.inBestTier).sort((x, y) => (x.srttMs ?? 0) - (y.srttMs ?? 0));
  return leastConnections(fast, turn).concat(slow, rest);
}

function rotate<T>(list: T[], turn: number): T[] {
  if (list.length < 2) return list;
  const k = turn % list.length;
  return list.slice(k).concat(list.slice(0, k));
}

function leastConnections(list: Upstream[], turn: number): Upstream[] {
  // Rotate first so that the stable sort breaks ties round-robin.
  return rotate(list, turn).sort((x, y) => x.activeConnections - y.activeConnections);
}

/**
 * Recomputes fastest-tier membership from smoothed RTTs, with hysteresis.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { updateTiers } from "./choose.ts";
 * import { Upstream } from "./upstream.ts";
 * const near = new Upstream({ host: "10.0.0.1", port: 6443 }, { rise: 1, fall: 1 });
 * const far = new Upstream({ host: "10.0.0.2", port: 6443 }, { rise: 1, fall: 1 });
 * near.recordSuccess(1, 0);
 * far.recordSuccess(50, 0);
 * updateTiers([near, far]);
 * assert(near.inBestTier && !far.inBestTier);
 * ```
 */
export function updateTiers(healthy: readonly Upstream[]): void {
  let best = Infinity;
  for (const u of healthy) if (u.srttMs !== undefined && u.srttMs < best) best = u.srttMs;
  if (best === Infinity) {
    for (const u of healthy) u.inBestTier = true;
    return;
  }
  const bound = Math.max(best + 2, 2 * best);
  for (const u of healthy) {
    const rtt = u.srttMs;
    if (rtt === undefined) u.inBestTier = true;
    else if (u.inBestTier) u.inBestTier = rtt <= bound * TIER_HYSTERESIS;
    else u.inBestTier = rtt <= bound;
  }
}
