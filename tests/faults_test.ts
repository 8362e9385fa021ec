/**
 * The fault-injection suite: the real program, in a network namespace of its own with its clients, in front of three
 * HTTPS API servers in namespaces of theirs, with faults injected by iptables (DROP, RST), by the API servers
 * themselves (`/readyz` 500 or hanging), by a delaying relay, and by discovery removing an upstream. Each scenario
 * prints one `FAULT <scenario>: <figure>` line and asserts its bound. Needs root, `ip` and `iptables`; skipped with a
 * message otherwise.
 *
 * @module
 */
import { FaultLab } from "./faults/lab.ts";
import { checkPrerequisites } from "./faults/netns.ts";
import { reportLine } from "./faults/report.ts";
import {
  liveConnectionsOnBlackholedUpstream,
  removedWhileConnected,
  slowUpstream,
} from "./faults/scenarios_connections.ts";
import { allDownThenOneBack, upstreamBlackholed, upstreamResets } from "./faults/scenarios_dial.ts";
import { healthzOnNodeAddress, readyzFails, upstreamFlaps } from "./faults/scenarios_health.ts";
import { handOver } from "./faults/scenarios_upgrade.ts";

const tools = await checkPrerequisites();
if (!tools.ok) reportLine(`FAULT suite skipped: ${tools.reason}`);

Deno.test({
  name: "the proxy keeps its promises under injected network and API faults",
  ignore: !tools.ok,
  async fn(t) {
    await using lab = await FaultLab.create(tools);
    await t.step("no client fails while one upstream resets every connection", () => upstreamResets(lab));
    await t.step(
      "a blackholed upstream costs a client at most one hedge delay and is marked down within 3 intervals",
      () => upstreamBlackholed(lab),
    );
    await t.step(
      "live connections on a blackholed upstream are closed within 3 s of detection and clients reconnect elsewhere",
      () => liveConnectionsOnBlackholedUpstream(lab),
    );
    await t.step(
      "an API server answering readyz with 500 leaves the rotation within 3 probes and returns after the rise",
      () => readyzFails(lab, "fail"),
    );
    await t.step(
      "an API server whose readyz hangs leaves the rotation within 3 probes and returns after the rise",
      () => readyzFails(lab, "hang"),
    );
    await t.step(
      "with the node's own address as --bind-address, /healthz answers 200 and no self-check is relayed",
      () => healthzOnNodeAddress(lab),
    );
    await t.step("new connections move away from an upstream that turns 100 ms slower", () => slowUpstream(lab));
    await t.step("an upstream flapping every 500 ms changes state at most once per flap", () => upstreamFlaps(lab));
    await t.step(
      "an upstream removed by discovery keeps its live connections until the drain timeout, then closes them",
      () => removedWhileConnected(lab),
    );
    await t.step(
      "with every upstream down clients fail fast, and traffic resumes as soon as one returns",
      () => allDownThenOneBack(lab),
    );
    await t.step(
      "upgrade: a second process takes over the shared ports, the first drains; no client fails with tcp_migrate_req=1",
      () => handOver(lab, true),
    );
    await t.step(
      "upgrade without tcp_migrate_req: the same hand-over, the failures in the old accept queue counted",
      () => handOver(lab, false),
    );
  },
});
