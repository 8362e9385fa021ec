/**
 * Fault scenarios of the dial path: an upstream that resets, one that is blackholed before the health checks notice,
 * and every upstream down at once, then one back.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ConnectionResult, FaultLab } from "./lab.ts";
import { busiest, countByServer, describeFailures, max, ms, report } from "./report.ts";

/** The program's default `--hedge-delay`, which these scenarios rely on. */
const HEDGE_DELAY_MS = 100;
/** The program's default `--dial-timeout`. */
const DIAL_TIMEOUT_MS = 2000;

/** Connections that started after `at` (those in flight at a fault may legitimately break). */
function startedAfter(results: readonly ConnectionResult[], at: number): ConnectionResult[] {
  return results.filter((r) => r.start >= at);
}

/** A load that runs while the scenario injects its fault: never left unobserved if the scenario fails first. */
function background(lab: FaultLab, opts: Parameters<FaultLab["load"]>[0]): Promise<ConnectionResult[]> {
  const p = lab.load(opts);
  p.catch(() => {});
  return p;
}

/** One upstream starts answering every packet with a RST while clients keep connecting: none of them may fail. */
export async function upstreamResets(lab: FaultLab): Promise<void> {
  await lab.clearFaults();
  await using proxy = await lab.startProxy({ intervalMs: 200, timeoutMs: 100 });
  const warm = await lab.load({ count: 30, spacingMs: 5, concurrency: 3 });
  assert.equal(warm.filter((r) => !r.ok).length, 0, `warm-up failed: ${describeFailures(warm)}`);
  const victim = lab.apis[busiest(warm)]!;
  const mark = lab.eventMark();
  const running = background(lab, { count: 150, spacingMs: 10, concurrency: 8, timeoutMs: 3000 });
  await lab.waitProgress(20, mark, 10_000);
  const faultAt = await lab.net.reset(victim.index);
  const downAt = await proxy.waitState(victim.address, "unhealthy", 5000);
  const after = startedAfter(await running, faultAt);
  const failed = after.filter((r) => !r.ok);
  report(
    "rst",
    `${failed.length} of ${after.length} client connections failed while ${victim.name} reset every packet ` +
      `(it was marked down ${ms(downAt - faultAt)} after the fault)`,
  );
  assert.ok(after.length >= 50, `only ${after.length} connections started after the fault`);
  assert.equal(failed.length, 0, `client connections failed: ${describeFailures(after)}`);
  assert.equal(countByServer(after).get(victim.name) ?? 0, 0, "a connection was answered by the resetting upstream");
}

/**
 * One upstream is blackholed (every packet dropped) while clients connect at a steady rate: a client's dial that goes
 * there first is hedged to another upstream, so no client waits more than 300 ms, and the probes mark it down within
 * 3 probe intervals.
 */
export async function upstreamBlackholed(lab: FaultLab): Promise<void> {
  await lab.clearFaults();
  // The unluckiest fault (just after a probe, both jitters at +20 %) is seen after 2.4 intervals of sleep and two probe
  // timeouts: 720 + 120 ms, inside 3 intervals (900 ms) with room for timer and polling lag.
  const intervalMs = 300;
  await using proxy = await lab.startProxy({ intervalMs, timeoutMs: 60 });
  const warm = await lab.load({ count: 30, spacingMs: 5, concurrency: 3 });
  assert.equal(warm.filter((r) => !r.ok).length, 0, `warm-up failed: ${describeFailures(warm)}`);
  const victim = lab.apis[busiest(warm)]!;
  const mark = lab.eventMark();
  const running = background(lab, { count: 120, spacingMs: 15, concurrency: 8, timeoutMs: 3000 });
  await lab.waitProgress(10, mark, 10_000);
  const faultAt = await lab.net.blackhole(victim.index);
  const downAt = await proxy.waitState(victim.address, "unhealthy", 10 * intervalMs);
  const after = startedAfter(await running, faultAt);
  const beforeDetection = after.filter((r) => r.start < downAt);
  const connectMs = after.map((r) => r.handshakeMs ?? r.totalMs);
  const hedged = after.filter((r) => (r.handshakeMs ?? 0) >= HEDGE_DELAY_MS);
  const detectMs = downAt - faultAt;
  report(
    "blackhole",
    `${victim.name} marked down ${ms(detectMs)} after the fault (${(detectMs / intervalMs).toFixed(1)} probe ` +
      `intervals of ${intervalMs} ms); slowest client connect ${ms(max(connectMs))} over ${after.length} connections ` +
      `(${beforeDetection.length} before detection, ${hedged.length} hedged past the blackholed upstream)`,
  );
  assert.equal(after.filter((r) => !r.ok).length, 0, `client connections failed: ${describeFailures(after)}`);
  assert.ok(max(connectMs) <= 300, `a client waited ${ms(max(connectMs))} for its upstream (bound 300 ms)`);
  assert.ok(detectMs <= 3 * intervalMs, `marked down after ${ms(detectMs)} (bound ${3 * intervalMs} ms)`);
}

/**
 * Every upstream refuses (RST): clients are closed at once, not after the dial budget. Then one comes back: traffic
 * resumes within one probe interval. Last, every upstream blackholed: clients are closed within the dial budget.
 */
export async function allDownThenOneBack(lab: FaultLab): Promise<void> {
  await lab.clearFaults();
  const intervalMs = 200;
  await using proxy = await lab.startProxy({ intervalMs, timeoutMs: 100 });
  for (const api of lab.apis) await lab.net.reset(api.index);
  await proxy.waitUpstreams((ups) => ups.every((u) => u.state === "unhealthy"), 5000, "every upstream to be down");
  const down = await lab.load({ count: 20, spacingMs: 20, concurrency: 4, timeoutMs: 3000 });
  const failMs = max(down.map((r) => r.totalMs));

  const back = lab.apis[1]!;
  const mark = lab.eventMark();
  const spacingMs = 10;
  const running = background(lab, { count: 300, spacingMs, concurrency: 4, timeoutMs: 3000, stopAfterOk: 5 });
  await lab.waitProgress(5, mark, 10_000);
  const returnAt = await lab.net.clear(back.index);
  const resumed = await running;
  const firstOk = resumed.find((r) => r.ok);
  // Until the first successful connection had its reply: what a client retrying every 10 ms experiences.
  const resumeMs = firstOk === undefined ? Infinity : firstOk.start + firstOk.totalMs - returnAt;
  const healthyAt = await proxy.waitState(back.address, "healthy", 5000);

  for (const api of lab.apis) {
    await lab.net.clear(api.index);
    await lab.net.blackhole(api.index);
  }
  await proxy.waitUpstreams((ups) => ups.every((u) => u.state === "unhealthy"), 5000, "every upstream to be down");
  const blackholed = await lab.load({ count: 4, spacingMs: 0, concurrency: 4, timeoutMs: DIAL_TIMEOUT_MS + 3000 });
  const blackholedMs = max(blackholed.map((r) => r.totalMs));
  report(
    "all-down",
    `with every upstream refusing, clients failed after at most ${ms(failMs)} (${down.length} tried); traffic ` +
      `resumed ${ms(resumeMs)} after ${back.name} came back (probe interval ${intervalMs} ms; healthy again after ` +
      `${ms(healthyAt - returnAt)}); with every upstream blackholed, clients were closed after ` +
      `${ms(blackholedMs)} (dial budget ${DIAL_TIMEOUT_MS} ms)`,
  );
  assert.equal(down.filter((r) => r.ok).length, 0, "a connection succeeded while every upstream refused");
  assert.ok(failMs <= 300, `a client waited ${ms(failMs)} to be refused (bound 300 ms)`);
  assert.ok(firstOk !== undefined, `no connection succeeded after ${back.name} came back`);
  assert.equal(firstOk.server, back.name);
  // One interval, plus its jitter (+20 %) and the clients' own spacing.
  const resumeBound = intervalMs * 1.2 + spacingMs;
  assert.ok(resumeMs <= resumeBound, `traffic resumed after ${ms(resumeMs)} (bound ${ms(resumeBound)})`);
  assert.equal(blackholed.filter((r) => r.ok).length, 0, "a connection succeeded while every upstream was blackholed");
  assert.ok(
    blackholedMs <= DIAL_TIMEOUT_MS + 300,
    `a client waited ${ms(blackholedMs)} with every upstream blackholed (bound: the ${DIAL_TIMEOUT_MS} ms dial budget)`,
  );
}
