/**
 * Upstream choice: the order in which one client's dial tries the upstreams.
 *
 * @module
 */
import type { Upstream } from "./upstream.ts";

/**
 * Orders dial candidates. Healthy upstreams first: least active connections, ties broken round-robin by `turn`.
 * Then every other upstream that is not draining, most recent success first, so that a stale health view never
 * refuses a client while some upstream might still answer.
 *
 * @param upstreams The pool's upstreams, in a stable order.
 * @param turn A counter that advances once per client connection.
 *
 * @example
 * ```ts
 * import { orderCandidates } from "./choose.ts";
 * import { Upstream } from "./upstream.ts";
 * const a = new Upstream({ host: "10.0.0.1", port: 6443 }, { rise: 2, fall: 2 });
 * const b = new Upstream({ host: "10.0.0.2", port: 6443 }, { rise: 2, fall: 2 });
 * a.recordSuccess(1, 0);
 * console.assert(orderCandidates([a, b], 0)[0] === a);
 * ```
 */
export function orderCandidates(upstreams: readonly Upstream[], turn: number): Upstream[] {
  const healthy: Upstream[] = [];
  const rest: Upstream[] = [];
  for (const u of upstreams) {
    if (u.draining) continue;
    (u.state === "healthy" ? healthy : rest).push(u);
  }
  if (healthy.length > 1) {
    // Rotate first so that the stable sort breaks ties round-robin.
    const k = turn % healthy.length;
    const rotated = healthy.slice(k).concat(healthy.slice(0, k));
    rotated.sort((x, y) => x.activeConnections - y.activeConnections);
    healthy.splice(0, healthy.length, ...rotated);
  }
  rest.sort((x, y) => y.lastSuccessAt - x.lastSuccessAt || 0);
  return healthy.concat(rest);
}
