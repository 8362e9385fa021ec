/**
 * The e2e suite: the real program in a node network namespace in front of three real kube-apiserver 1.20 processes
 * (built from Debian's `kubernetes` source package) on a real etcd, each in a namespace of its own, with real kubectl
 * as a client. Each scenario asserts its outcome and prints one `E2E <scenario>: <figure>` line.
 *
 * Runs only as root with the fixtures built: `tests/e2e/build_fixtures.sh` writes a manifest, and
 * `EXTRACTEDPRISM_E2E_FIXTURES` names it; otherwise the suite is skipped with the reason. It spawns `ip`,
 * `setpriv`, `openssl`, etcd, kube-apiserver and kubectl: the test permissions of deno.json (`-P`) allow that.
 *
 * @module
 */
import { reportLine } from "./faults/report.ts";
import { ControlPlane } from "./e2e/control_plane.ts";
import { findFixtures, FIXTURES_ENV } from "./e2e/fixtures.ts";
import { checkNetTools } from "./e2e/net.ts";
import {
  discoversApiServers,
  kubectlThroughProxy,
  readyzProbing,
  readyzUnauthorized,
  staticEndpointsServe,
} from "./e2e/scenarios_clients.ts";
import { apiServerFrozen, apiServerGracefulShutdown, apiServerKilled } from "./e2e/scenarios_failures.ts";
import { cacheNpmPackages, informerResumesAfterKill } from "./e2e/scenarios_informer.ts";
import { discoveryAgainstV1, v1WatchGone } from "./e2e/scenarios_v1.ts";
import {
  copierCopies,
  copierLeaderElection,
  copierRepairsHandEdits,
  copierSourceReplaced,
} from "./e2e/scenarios_copier.ts";
import { copierWatchCompacted } from "./e2e/copier_compaction.ts";
import { parityWithKube120, parityWithV1 } from "./e2e/scenarios_parity.ts";

const asked = Deno.env.get(FIXTURES_ENV) !== undefined;
const tools = await checkNetTools();
const found = findFixtures();
const skip = !tools.ok ? tools.reason : !found.ok ? found.reason : "";
// Not asked for (no manifest named, as in the plain `deno task test`): no test is registered, so that a run which
// goes on to `deno task test:e2e` (as .ci/run does) counts no skip for it; the console says how to run it.
if (!asked) console.log(`E2E suite not run: ${FIXTURES_ENV} is not set (deno task test:e2e builds and runs it)`);
else if (skip !== "") reportLine(`E2E suite skipped: ${skip}`);

if (asked) {
  Deno.test({
    name: "the proxy keeps its promises in front of real kube-apiservers",
    ignore: skip !== "",
    async fn(t) {
      if (!found.ok) return;
      await cacheNpmPackages();
      await using plane = await ControlPlane.create(tools, found.fixtures);
      await t.step(
        "one static endpoint and a kubeconfig: discovery finds all three API servers (1.20: discovery.k8s.io/v1beta1)",
        () => discoversApiServers(plane),
      );
      await t.step({
        name: "v1 API server: discovery lists and watches real discovery.k8s.io/v1 slices changed by server-side apply",
        ignore: found.fixtures.v1Apiserver === undefined,
        fn: () => discoveryAgainstV1(plane),
      });
      await t.step({
        name: "v1 API server restarted while etcd moved on: the watch gets 410, discovery relists and keeps routing",
        ignore: found.fixtures.v1Apiserver === undefined,
        fn: () => v1WatchGone(plane),
      });
      await t.step({
        name: "v1 API server: the endpoint copier copies default/kubernetes by server-side apply, source changes too",
        ignore: found.fixtures.v1Apiserver === undefined,
        fn: () => copierCopies(plane),
      });
      await t.step({
        name: "v1 API server: the copier keeps its copy while the source is gone, re-creates it for a new address type",
        ignore: found.fixtures.v1Apiserver === undefined,
        fn: () => copierSourceReplaced(plane),
      });
      await t.step({
        name: "v1 API server: the copier repairs a hand edit of a copy (forced apply of another manager, a PUT)",
        ignore: found.fixtures.v1Apiserver === undefined,
        fn: () => copierRepairsHandEdits(plane),
      });
      await t.step({
        name: "v1 API server: two copiers elect one writer on a real Lease, SIGTERM hands over",
        ignore: found.fixtures.v1Apiserver === undefined,
        fn: () => copierLeaderElection(plane),
      });
      await t.step({
        name: "v1 API server without watch cache: after an etcd compaction the copier and discovery get 410 and relist",
        ignore: found.fixtures.v1Apiserver === undefined,
        fn: () => copierWatchCompacted(plane),
      });
      await t.step(
        "the fake API server answers the probe script as kube-apiserver 1.20 does",
        () => parityWithKube120(plane),
      );
      await t.step({
        name: "the fake API server answers the probe script as the v1 API server does",
        ignore: found.fixtures.v1Apiserver === undefined,
        fn: () => parityWithV1(plane),
      });
      await t.step(
        "all three as static endpoints: probed healthy, requests through the proxy succeed",
        () => staticEndpointsServe(plane),
      );
      await t.step(
        "kubectl 1.20 through 127.0.0.1:7445 with tls-server-name: list, create, watch",
        () => kubectlThroughProxy(plane),
      );
      await t.step(
        "client-node informer through 127.0.0.1:7445: SIGKILL of the API server under its watch, the watch resumes",
        () => informerResumesAfterKill(plane),
      );
      await t.step(
        "readyz probes: healthy with the cluster CA, with no CA (one warning), unhealthy with an unrelated CA",
        () => readyzProbing(plane),
      );
      await t.step(
        "SIGSTOP: out of rotation within --health-fall probes, later requests succeed",
        () => apiServerFrozen(plane),
      );
      await t.step(
        "SIGTERM: readyz 503 during the shutdown delay takes it out first, no client request fails",
        () => apiServerGracefulShutdown(plane),
      );
      await t.step(
        "SIGKILL: only in-flight requests fail, later ones fail over, the reconciler drops its address",
        () => apiServerKilled(plane),
      );
      await t.step(
        "--anonymous-auth=false: readyz 401 counts as up, with one warning naming the upstream",
        () => readyzUnauthorized(plane),
      );
    },
  });
}
