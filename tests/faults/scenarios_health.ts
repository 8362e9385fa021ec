/**
 * Fault scenarios of the health checks: an API server whose `/readyz` fails or hangs while its TCP port still
 * accepts, and an upstream whose network flaps faster than the thresholds.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { FaultLab, ProbeRecord } from "./lab.ts";
import { pollUntil } from "./proxy_run.ts";
import { countByServer, describeFailures, ms, report } from "./report.ts";
import { wallNow } from "./support/https_client.ts";
import { BRIDGE_ADDRESS } from "./netns.ts";

const RISE = 2;
const FALL = 2;

/**
 * The probes answered in `mode` since the last one answered otherwise, in the order the API server received them. No
 * clock of another process is compared (the wall clocks of two processes can disagree by milliseconds on a VM, and a
 * probe stamped 1 ms early was once left out of the count).
 */
function latestRun(probes: readonly ProbeRecord[], mode: ProbeRecord["mode"]): number {
  let n = 0;
  for (const p of probes) n = p.mode === mode ? n + 1 : 0;
  return n;
}

/**
 * `/readyz` turns 500 (`fail`) or stops answering (`hang`) while TCP stays up: out of rotation within 3 probes, and
 * back after exactly the rise threshold once it answers 200 again.
 */
export async function readyzFails(lab: FaultLab, mode: "fail" | "hang"): Promise<void> {
  await lab.clearFaults();
  const scenario = mode === "fail" ? "readyz-500" : "readyz-hang";
  await using proxy = await lab.startProxy({
    intervalMs: 200,
    timeoutMs: 100,
    rise: RISE,
    fall: FALL,
    // Round robin: "in rotation" then simply means "gets its share", whatever the latency tiers say.
    extraFlags: ["--health-check=readyz", "--upstream-selection=round-robin"],
  });
  const victim = lab.apis[1]!;
  const faultAt = await victim.readyz(mode);
  const downAt = await proxy.waitState(victim.address, "unhealthy", 5000);
  const badProbes = latestRun(await victim.probes(), mode);
  const during = await lab.load({ count: 30, spacingMs: 5, concurrency: 3 });

  const fixedAt = await victim.readyz("ok");
  const upAt = await proxy.waitState(victim.address, "healthy", 5000);
  const goodProbes = latestRun(await victim.probes(), "ok");
  const after = await lab.load({ count: 30, spacingMs: 5, concurrency: 3 });
  const what = mode === "fail" ? "answering 500" : "hanging";
  report(
    scenario,
    `out of rotation after ${badProbes} probes ${what} (${ms(downAt - faultAt)}), back after ${goodProbes} good ` +
      `probes (${ms(upAt - fixedAt)}) with --health-fall=${FALL} --health-rise=${RISE}; ` +
      `${countByServer(during).get(victim.name) ?? 0} of ${during.length} connections reached it while out, ` +
      `${countByServer(after).get(victim.name) ?? 0} of ${after.length} once back`,
  );
  assert.ok(badProbes >= 1 && badProbes <= 3, `${badProbes} probes ${what} before it left the rotation (bound 3)`);
  assert.equal(during.filter((r) => !r.ok).length, 0, `client connections failed: ${describeFailures(during)}`);
  assert.equal(countByServer(during).get(victim.name) ?? 0, 0, "a new connection reached the unready API server");
  // The rise threshold, plus at most one probe that landed while the test was reading /upstreams (the same slack as
  // the fall's bound of 3 above).
  assert.ok(goodProbes >= RISE && goodProbes <= RISE + 1, `back after ${goodProbes} good probes (rise ${RISE})`);
  assert.ok((countByServer(after).get(victim.name) ?? 0) > 0, "no new connection reached it once it was back");
}

/**
 * The network of one upstream flaps (blackholed, then clear) every 500 ms for 5 s: its state may follow each flap at
 * most once, and never more often than the probes that got through allow with the rise threshold.
 */
export async function upstreamFlaps(lab: FaultLab): Promise<void> {
  await lab.clearFaults();
  const intervalMs = 200;
  const flapMs = 500;
  const flaps = 10;
  await using proxy = await lab.startProxy({ intervalMs, timeoutMs: 100, rise: RISE, fall: FALL });
  const victim = lab.apis[2]!;
  // `/upstreams` may say healthy before the log line of that change has come through the program's stderr pipe.
  await pollUntil(
    () => Promise.resolve(proxy.stateChanges().some((c) => c.upstream === victim.address) ? true : undefined),
    { timeoutMs: 5000, what: "state changes in the program's log (JSON lines with upstream/to)" },
  );
  const mark = proxy.logMark();
  // Probes are counted by the API server's own record (its clock is another process's: not compared with ours).
  const probedBefore = (await victim.probes()).length;
  const running = lab.load({ count: 100, spacingMs: 50, concurrency: 4, timeoutMs: 3000 });
  running.catch(() => {});
  const startAt = wallNow();
  for (let k = 0; k < flaps; k++) {
    if (k % 2 === 0) await lab.net.blackhole(victim.index);
    else await lab.net.clear(victim.index);
    // The fault's own schedule: the next flap is due at a fixed time, whatever the commands cost.
    const wait = startAt + (k + 1) * flapMs - wallNow();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  await lab.net.clear(victim.index);
  await proxy.waitState(victim.address, "healthy", 5000);
  const changes = proxy.stateChanges(mark).filter((c) => c.upstream === victim.address);
  const through = (await victim.probes()).length - probedBefore;
  const results = await running;
  // Each change needs a new run of probe results, and the results can only change kind when the network does.
  // Each change back to healthy needs RISE probes that got through.
  const bound = Math.min(flaps + 1, 2 * Math.floor(through / RISE) + 1);
  report(
    "flap",
    `${changes.length} state changes of ${victim.name} over ${flaps} flaps of ${flapMs} ms (bound ${bound}; ` +
      `${through} probes got through; --health-interval=${intervalMs}ms --health-fall=${FALL} ` +
      `--health-rise=${RISE}); ${results.filter((r) => !r.ok).length} of ${results.length} client connections failed`,
  );
  assert.ok(changes.length <= bound, `${changes.length} state changes (bound ${bound}): ${JSON.stringify(changes)}`);
}

/**
 * `--bind-address` set to the node's own (non-loopback) address: the liveness self-check is recognised by its exact
 * addresses, so `/healthz` answers 200 and the self connection is never relayed to an API server. Until the hardening,
 * only loopback peers were recognised: the self connection was relayed, `/healthz` answered 503 and kubelet restarted
 * the pod in a loop.
 */
export async function healthzOnNodeAddress(lab: FaultLab): Promise<void> {
  await lab.clearFaults();
  await using proxy = await lab.startProxy({
    intervalMs: 200,
    timeoutMs: 100,
    bindAddress: BRIDGE_ADDRESS,
    // The health port follows --bind-address by default; the suite's client reads it on loopback.
    extraFlags: ["--health-bind-address=127.0.0.1"],
  });
  const relayed = async () => (await proxy.upstreams()).reduce((n, u) => n + u.totalConnections, 0);
  const before = await relayed();
  const statuses: number[] = [];
  for (let i = 0; i < 5; i++) statuses.push(await proxy.healthz());
  const after = await relayed();
  report(
    "node-address",
    `with --bind-address=${BRIDGE_ADDRESS}, /healthz answered ${statuses.join(", ")}; ` +
      `${after - before} self-check connections were relayed to an API server`,
  );
  assert.deepEqual(statuses, [200, 200, 200, 200, 200], "/healthz with a node address as the bind address");
  assert.equal(after - before, 0, "a self-check connection was relayed to an API server");
}
