/**
 * The hand-over of an upgrade between two real processes of the program: the new one starts with the very same
 * arguments beside the old one (both listen on 7445 and 7446 with `SO_REUSEPORT`), turns ready, and the old one gets
 * SIGTERM, closes its health port, then its proxy port, and drains. A client loop runs TLS requests through 7445 all
 * along; connections in the old listener's accept queue at its close are moved to the new listener by the kernel only
 * with `net.ipv4.tcp_migrate_req=1` (set here in the proxy's own namespace, never on the host).
 *
 * @module
 */
import assert from "node:assert/strict";
import type { FaultLab } from "./lab.ts";
import { run } from "./netns.ts";
import { describeFailures, max, ms, report } from "./report.ts";
import { wallNow } from "./support/https_client.ts";

const PROBES = { intervalMs: 200, timeoutMs: 150, drainTimeoutMs: 5000 } as const;

/** Sets `net.ipv4.tcp_migrate_req` in the proxy's namespace (the sysctl is per network namespace). */
async function setMigrateReq(lab: FaultLab, on: boolean): Promise<void> {
  const file = "/proc/sys/net/ipv4/tcp_migrate_req";
  await run("ip", ["netns", "exec", lab.net.proxyNs, "sh", "-c", `echo ${on ? 1 : 0} > ${file}`]);
  const read = await run("ip", ["netns", "exec", lab.net.proxyNs, "cat", file]);
  assert.equal(read.trim(), on ? "1" : "0", "the sysctl took");
}

/**
 * Runs one hand-over under a client loop and returns the loop's failures; with `migrate` there must be none. Long-lived
 * connections on the old instance are drained, not cut: each still answers after the SIGTERM.
 */
export async function handOver(lab: FaultLab, migrate: boolean): Promise<void> {
  await lab.clearFaults();
  await setMigrateReq(lab, migrate);
  const old = await lab.startProxy(PROBES);
  let oldStopped = false;
  try {
    const held = await lab.hold(3);
    const mark = lab.eventMark();
    // About 5 s of load: 200 connections, one every 25 ms, each a TLS handshake and a request through 7445.
    const loading = lab.load({ count: 200, spacingMs: 25, concurrency: 6, timeoutMs: 3000 });
    await lab.waitProgress(20, mark, 15_000);
    await using next = await lab.startProxy({ ...PROBES, readyFrom: "log" });
    const signalledAt = performance.now();
    const signalledWall = wallNow();
    old.process.kill("SIGTERM");
    await old.process.waitFor(
      () => old.process.stderrLines.some((l) => l.includes("Listeners closed; draining")),
      5000,
      "the old instance to close its listeners",
    );
    // Drained, not cut: every held connection on the old instance still answers, from the same API server.
    for (const h of held) assert.equal(await lab.ping(h.hold), h.server, `held connection ${h.hold} still served`);
    const results = await loading;
    await lab.release();
    const status = await old.process.stop(PROBES.drainTimeoutMs + 3000);
    oldStopped = true;
    const stoppedMs = performance.now() - signalledAt;
    assert.equal(status.code, 0, "the old instance exits 0 once its connections are gone");
    assert.ok(stoppedMs < PROBES.drainTimeoutMs, `the old instance stopped when drained (${ms(stoppedMs)})`);
    const failed = results.filter((r) => !r.ok);
    const afterSignal = results.filter((r) => r.start >= signalledWall).length;
    assert.ok(afterSignal >= 20, `the loop ran on across the SIGTERM (${afterSignal} connections after it)`);
    const connects = results.flatMap((r) => (r.handshakeMs === null ? [] : [r.handshakeMs]));
    report(
      `hand-over between two processes, tcp_migrate_req=${migrate ? 1 : 0}`,
      `${failed.length}/${results.length} client connections failed (${afterSignal} started after the SIGTERM); ` +
        `slowest TLS connect ${ms(max(connects))}; ` +
        `${held.length} held connections drained; old instance stopped ${ms(stoppedMs)} after SIGTERM` +
        (failed.length > 0 ? ` (${describeFailures(failed)})` : ""),
    );
    if (migrate) assert.deepEqual(failed, [], "no client connection fails across the hand-over");
    // The new instance serves alone now, with every upstream healthy.
    const ups = await next.upstreams();
    assert.ok(ups.length === 3 && ups.every((u) => u.state === "healthy"), "the new instance serves on");
    const after = await lab.load({ count: 10, spacingMs: 10, concurrency: 2 });
    assert.deepEqual(after.filter((r) => !r.ok), [], "requests after the hand-over");
  } finally {
    if (!oldStopped) await old.stop();
    await setMigrateReq(lab, false);
  }
}
