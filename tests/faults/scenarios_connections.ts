/**
 * Fault scenarios about where connections go and when they end: live connections on an upstream that gets
 * blackholed, an upstream that turns slow, and an upstream removed from the endpoint set by discovery.
 *
 * @module
 */
import assert from "node:assert/strict";
import { API_PORT, type FaultLab, type HeldConnection } from "./lab.ts";
import { API_ADDRESSES } from "./netns.ts";
import { busiest, countByServer, describeFailures, max, ms, report } from "./report.ts";
import { wallNow } from "./support/https_client.ts";

function byServer(held: readonly HeldConnection[]): Map<string, HeldConnection[]> {
  const out = new Map<string, HeldConnection[]>();
  for (const h of held) out.set(h.server, [...(out.get(h.server) ?? []), h]);
  return out;
}

/** Waits until every connection in `holds` has a `closed` event after `mark`, or until `deadline` (wall clock). */
async function waitClosed(lab: FaultLab, holds: readonly HeldConnection[], mark: number, deadline: number) {
  const all = () => holds.every((h) => lab.closedSince(mark).has(h.hold));
  await lab.client.waitFor(all, Math.max(1, deadline - wallNow()), "held connections to close").catch(() => {});
  return lab.closedSince(mark);
}

/**
 * Live keep-alive connections through an upstream that is then blackholed: closed by the proxy at most 3 s after it
 * was marked down (not left to TCP timeouts), while connections to other upstreams live on; the clients reconnect to
 * healthy upstreams.
 */
export async function liveConnectionsOnBlackholedUpstream(lab: FaultLab): Promise<void> {
  await lab.clearFaults();
  await using proxy = await lab.startProxy({
    intervalMs: 200,
    timeoutMs: 100,
    extraFlags: ["--close-on-unhealthy=true"],
  });
  const held = await lab.hold(12);
  try {
    const groups = [...byServer(held)].sort((a, b) => b[1].length - a[1].length);
    const [victimName, victimHolds] = groups[0]!;
    const victim = lab.apis.find((a) => a.name === victimName)!;
    const others = held.filter((h) => h.server !== victimName);
    const mark = lab.eventMark();
    const faultAt = await lab.net.blackhole(victim.index);
    const downAt = await proxy.waitState(victim.address, "unhealthy", 5000);
    const closed = await waitClosed(lab, victimHolds, mark, downAt + 3000 + 1000);
    const closeTimes = victimHolds.map((h) => closed.get(h.hold)).filter((t) => t !== undefined).map((t) => t - downAt);
    const stillOpen = victimHolds.length - closeTimes.length;
    const answers = [];
    for (const h of others) answers.push({ want: h.server, got: await lab.ping(h.hold) });
    const reconnects = await lab.load({ count: victimHolds.length, spacingMs: 0, concurrency: victimHolds.length });
    const elsewhere = reconnects.filter((r) => r.ok && r.server !== victimName).length;
    report(
      "held-blackhole",
      `${closeTimes.length} of ${victimHolds.length} live connections on the blackholed ${victimName} closed ` +
        `${ms(Math.min(...closeTimes))}–${ms(max(closeTimes))} after it was marked down (${ms(downAt - faultAt)} ` +
        `after the fault); ${elsewhere} of ${reconnects.length} reconnected to healthy upstreams; ` +
        `${others.length} connections on other upstreams untouched`,
    );
    assert.equal(stillOpen, 0, `${stillOpen} connections on ${victimName} still open 4 s after it was marked down`);
    assert.ok(max(closeTimes) <= 3000, `closed ${ms(max(closeTimes))} after detection (bound 3000 ms)`);
    for (const h of others) assert.equal(closed.has(h.hold), false, `connection ${h.hold} on ${h.server} was closed`);
    for (const a of answers) assert.equal(a.got, a.want, "a connection on a healthy upstream changed server");
    assert.equal(elsewhere, reconnects.length, `reconnects: ${describeFailures(reconnects)}`);
  } finally {
    await lab.release();
  }
}

/**
 * The upstream that gets the most new connections becomes 100 ms slower (a delaying relay in front of it): with
 * `--upstream-selection=latency`, new connections move to the faster ones, while the slow one stays healthy. Every
 * upstream sits behind a relay, so that before the delay they differ only by the relays' own noise.
 */
export async function slowUpstream(lab: FaultLab): Promise<void> {
  await lab.clearFaults();
  const relayPort = 7443;
  const addresses = API_ADDRESSES.map((a) => `${a}:${relayPort}`);
  await using relay1 = await lab.startRelay(0, relayPort);
  await using relay2 = await lab.startRelay(1, relayPort);
  await using relay3 = await lab.startRelay(2, relayPort);
  // A fresh TLS connection through a delaying relay takes two delayed round trips: the timeout must allow them.
  await using proxy = await lab.startProxy({
    endpoints: addresses,
    intervalMs: 250,
    timeoutMs: 200,
    extraFlags: ["--upstream-selection=latency"],
  });
  const before = await lab.load({ count: 60, spacingMs: 5, concurrency: 3 });
  assert.equal(before.filter((r) => !r.ok).length, 0, `client connections failed: ${describeFailures(before)}`);
  const victim = busiest(before);
  const victimName = lab.apis[victim]!.name;
  const slowAddress = addresses[victim]!;
  const slowAt = wallNow();
  await [relay1, relay2, relay3][victim]!.request("delay", { ms: 100 });
  const seen = await proxy.waitUpstreams(
    (ups) => {
      const slow = ups.find((u) => u.address === slowAddress);
      // Tier membership is only recomputed when a client connects, so the smoothed RTT is what shows the measurement.
      return slow !== undefined && (slow.lastProbeRttMs ?? 0) >= 80 && (slow.smoothedRttMs ?? 100) >= 50;
    },
    5000,
    "the proxy to measure the delay",
  );
  const after = await lab.load({ count: 60, spacingMs: 5, concurrency: 3 });
  const ups = await proxy.upstreams();
  const slow = ups.find((u) => u.address === slowAddress);
  const fastRtt = Math.max(...ups.filter((u) => u.address !== slowAddress).map((u) => u.lastProbeRttMs ?? 0));
  const slowBefore = countByServer(before).get(victimName) ?? 0;
  const slowAfter = countByServer(after).get(victimName) ?? 0;
  report(
    "delay",
    `${slowAfter} of ${after.length} new connections went to ${victimName} once it was 100 ms slower (${slowBefore} ` +
      `of ${before.length} before); probe RTT ${slow?.lastProbeRttMs} ms vs at most ${fastRtt} ms; ` +
      `the proxy saw it ${ms(seen.at - slowAt)} after the delay began`,
  );
  assert.equal(after.filter((r) => !r.ok).length, 0, `client connections failed: ${describeFailures(after)}`);
  assert.equal(slow?.state, "healthy", "the slow upstream must stay healthy: it is slow, not down");
  assert.ok(slowAfter <= after.length * 0.05, `${slowAfter} of ${after.length} new connections went to the slow one`);
}

/**
 * An upstream that discovery removes while clients hold connections to it: no new connections go there, the live
 * ones keep working, and they are closed at `--drain-timeout` after the removal.
 */
export async function removedWhileConnected(lab: FaultLab): Promise<void> {
  await lab.clearFaults();
  const drainMs = 1500;
  const dir = await Deno.makeTempDir({ prefix: "extractedprism_faults_" });
  try {
    const kubeconfig = `${dir}/kubeconfig`;
    await using api = await lab.startDiscoveryApi(kubeconfig);
    const all = lab.apis.map((a) => a.address.split(":")[0]!);
    await api.request("endpoints", { addresses: all, port: API_PORT });
    // The static endpoint is api1 alone: api2 and api3 come from discovery only, so discovery can take them away.
    await using proxy = await lab.startProxy({
      endpoints: [lab.apis[0]!.address],
      expectUpstreams: 3,
      intervalMs: 200,
      timeoutMs: 100,
      drainTimeoutMs: drainMs,
      // Least connections spreads the held connections, so that some sit on a discovered upstream.
      // The lab's API servers and the discovery API have CAs of their own: the probe is given the lab's (without it,
      // the probe would verify with the kubeconfig's cluster CA, which in a real cluster is the API servers' CA).
      extraFlags: [
        "--enable-discovery=true",
        `--kubeconfig=${kubeconfig}`,
        `--health-ca-file=${lab.pki.ca.certPath}`,
        "--upstream-selection=least-connections",
      ],
    });
    const held = await lab.hold(12);
    try {
      const groups = [...byServer(held)].filter(([name]) => name !== "api1").sort((a, b) => b[1].length - a[1].length);
      assert.ok(groups.length > 0, "no held connection went to a discovered upstream");
      const [victimName, victimHolds] = groups[0]!;
      const victim = lab.apis.find((a) => a.name === victimName)!;
      const others = held.filter((h) => h.server !== victimName);
      const mark = lab.eventMark();
      const removedAt = wallNow();
      await api.request("endpoints", {
        addresses: all.filter((a) => `${a}:${API_PORT}` !== victim.address),
        port: API_PORT,
      });
      const seen = await proxy.waitUpstreams(
        (ups) => ups.find((u) => u.address === victim.address)?.draining === true,
        5000,
        `${victim.address} to be draining`,
      );
      const during = await lab.load({ count: 30, spacingMs: 5, concurrency: 3 });
      const pingsDuring = [];
      for (const h of victimHolds) pingsDuring.push(await lab.ping(h.hold));
      const closed = await waitClosed(lab, victimHolds, mark, removedAt + drainMs + 3000);
      const closeTimes = victimHolds.map((h) => closed.get(h.hold)).filter((t) => t !== undefined)
        .map((t) => t - removedAt);
      report(
        "removed",
        `${closeTimes.length} of ${victimHolds.length} live connections on the removed ${victimName} kept working, ` +
          `then closed ${ms(Math.min(...closeTimes))}–${ms(max(closeTimes))} after the removal ` +
          `(--drain-timeout=${drainMs}ms; discovery delivered it in ${ms(seen.at - removedAt)}); ` +
          `${countByServer(during).get(victimName) ?? 0} of ${during.length} new connections went there`,
      );
      assert.deepEqual(pingsDuring, victimHolds.map(() => victimName), "a draining connection stopped working");
      assert.equal(countByServer(during).get(victimName) ?? 0, 0, "a new connection went to the removed upstream");
      assert.equal(during.filter((r) => !r.ok).length, 0, `client connections failed: ${describeFailures(during)}`);
      assert.equal(closeTimes.length, victimHolds.length, "a drained connection outlived the drain timeout by 3 s");
      assert.ok(Math.min(...closeTimes) >= drainMs - 50, `closed ${ms(Math.min(...closeTimes))} after removal`);
      assert.ok(max(closeTimes) <= drainMs + 1000, `closed ${ms(max(closeTimes))} after removal (drain ${drainMs})`);
      for (const h of others) assert.equal(closed.has(h.hold), false, `connection ${h.hold} on ${h.server} was closed`);
    } finally {
      await lab.release();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
