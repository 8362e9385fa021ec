/**
 * A real client's watch across an API server crash: `@kubernetes/client-node`'s informer in the node namespace,
 * through the proxy, watching ConfigMaps; the kube-apiserver that carries its watch is killed with SIGKILL while the
 * same client sends requests. The informer must resume through another API server and see what was created after
 * the kill; only requests in flight on the killed server may fail.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { HelperEvent, HelperProcess } from "../faults/helper_process.ts";
import type { ControlPlane, KubeApiServer, RequestResult } from "./control_plane.ts";
import { ProxyRun, type UpstreamView } from "./proxy.ts";
import { ALL_ENDPOINTS, e2eReport, kubectl, proxyKubeconfig } from "./scenarios_clients.ts";

const REPO_ROOT = new URL("../../", import.meta.url);
/** How long the informer program waits after an informer error before it starts it again. */
const RESTART_MS = 500;
/** The client's requests around the kill: one every 50 ms for 5 s. */
const REQUESTS = { count: 100, spacingMs: 50, timeoutMs: 5000 };
/** Requests started this long after the kill may still have met the dying process (the existing SIGKILL rule). */
const DYING_MS = 200;
/**
 * How long the informer may take from the kill to delivering an object created after it: its watch ends at the kill
 * (the proxy passes the upstream's end on, or closes it when the upstream turns unhealthy), the program restarts the
 * informer after `RESTART_MS`, the proxy fails a dial to the dead server over at once (refused), and a watch through a
 * survivor takes well under a second; 3 s of margin for a loaded 2-core machine.
 */
const RESUME_BOUND_MS = RESTART_MS + 3000;

/** `/upstreams` also tells the relayed connections open now: the informer's watch is the one that stays open. */
type UpstreamLive = UpstreamView & { readonly activeConnections: number };

/** The clock of the informer's events (`performance.timeOrigin + performance.now()`, in every process). */
function clock(): number {
  return performance.timeOrigin + performance.now();
}

function informerSaw(p: HelperProcess, kind: string, name: string, timeoutMs: number): Promise<HelperEvent> {
  return p.waitForEvent(
    (e) => e.event === "informer" && e.kind === kind && e.name === name,
    timeoutMs,
    `the informer's ${kind} of configmap ${name}`,
  );
}

/** Waits until the proxy relays exactly one connection, the informer's watch, and returns the upstream carrying it. */
async function watchCarrier(proxy: ProxyRun, what: string): Promise<string> {
  const { upstreams } = await proxy.waitUpstreams(
    (ups) => (ups as UpstreamLive[]).reduce((n, u) => n + u.activeConnections, 0) === 1,
    10_000,
    what,
  );
  return (upstreams as UpstreamLive[]).find((u) => u.activeConnections === 1)?.address ?? "";
}

/** Creates ConfigMap `name` through client-node, retried every 100 ms (5 tries); every failed try is returned. */
async function createCounted(informer: HelperProcess, name: string): Promise<RequestResult[]> {
  const failed: RequestResult[] = [];
  for (let i = 0; i < 5; i++) {
    const start = clock();
    try {
      await informer.request("create", { name }, 15_000);
      return failed;
    } catch (e) {
      failed.push({ start, end: clock(), ok: false, status: null, error: e instanceof Error ? e.message : String(e) });
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`Cannot create configmap ${name} in 5 tries: ${failed.map((r) => r.error).join("; ")}`);
}

const INFORMER = new URL("./support/informer_client.ts", import.meta.url).pathname;

/**
 * Caches every npm package of deno.json (client-node, and yaml, which the program loads for a kubeconfig) from the
 * host namespace. The node namespace reaches no registry: on a clean machine a program started there could not fetch
 * them (`Failed caching npm package …: dns error`), and Deno fetches the lock's whole npm set for any one package.
 * Call it once before the first program starts in a namespace.
 *
 * @throws {Error} When `deno install` fails (with its first lines).
 */
export async function cacheNpmPackages(): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["install", "-q", "--frozen"],
    cwd: REPO_ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(180_000),
  }).output();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(0, 3).join(" ");
    throw new Error(`Cannot cache the npm packages of deno.json: 'deno install' exited with ${out.code}: ${err}`);
  }
}

/**
 * Spawns the informer program in the node namespace on namespace `ns`; it fetches nothing there
 * ({@linkcode cacheNpmPackages} first).
 */
function startInformer(plane: ControlPlane, kubeconfig: string, ns: string): HelperProcess {
  const args = ["run", "-q", "--frozen", "--cached-only", "--allow-net", "--allow-read", "--allow-env"];
  return plane.spawnInNode(
    "client-node informer",
    Deno.execPath(),
    [...args, INFORMER, kubeconfig, ns, String(RESTART_MS)],
    true,
    REPO_ROOT,
  );
}

/**
 * Kills `victim` while client-node's request loop runs, creates `after-kill`, waits for the informer to see it, and
 * reports and asserts the resume and the failed requests.
 */
async function killUnderWatch(informer: HelperProcess, victim: KubeApiServer): Promise<void> {
  const mark = informer.events.length;
  const requests = informer.request<{ results: RequestResult[] }>(
    "requests",
    REQUESTS,
    REQUESTS.count * REQUESTS.spacingMs + REQUESTS.timeoutMs * 2 + 20_000,
  );
  let at = 0;
  let creates = 0;
  const failed: RequestResult[] = [];
  try {
    await informer.waitFor(
      () => informer.events.slice(mark).filter((e) => e.event === "progress").length >= 20,
      30_000,
      "20 finished requests",
    );
    at = clock();
    victim.signal("SIGKILL");
    const createdAfter = clock() - at;
    const createFailed = await createCounted(informer, "after-kill");
    failed.push(...createFailed);
    creates = createFailed.length + 1;
    const seen = await informerSaw(informer, "add", "after-kill", 30_000);
    const resumeMs = Math.round(Number(seen.at) - at);
    const after = informer.events.slice(mark).filter((e) => e.event === "informer" && Number(e.at) >= at);
    const errors = after.filter((e) => e.kind === "error");
    const reconnect = after.find((e) => e.kind === "connect");
    const since = (e: HelperEvent | undefined) => e === undefined ? "-" : `${Math.round(Number(e.at) - at)} ms`;
    const reasons = [...new Set(errors.map((e) => String(e.error)))].join("; ");
    const ended = errors.length === 0
      ? "the watch ended without an error"
      : `the watch ended after ${since(errors[0])} (${reasons}; restarted ${RESTART_MS} ms later)`;
    e2eReport(
      "client-node informer: watch resumed after SIGKILL of its API server",
      `create started ${Math.round(createdAfter)} ms after the kill, object seen after ${resumeMs} ms; ${ended}; ` +
        `reconnected after ${since(reconnect)}`,
    );
    assert(reconnect !== undefined, "the informer's watch ended with the killed server and reconnected");
    assert(resumeMs <= RESUME_BOUND_MS, `the informer resumed within ${RESUME_BOUND_MS} ms: took ${resumeMs} ms`);
  } finally {
    const { results } = await requests;
    failed.push(...results.filter((r) => !r.ok));
    if (at !== 0) {
      const reasons = [...new Set(failed.map((r) => r.error ?? `HTTP ${r.status}`))].slice(0, 3).join("; ");
      e2eReport(
        "client-node requests during SIGKILL of an API server",
        `${failed.length}/${results.length + creates} failed${reasons === "" ? "" : ` (${reasons})`}`,
      );
      const late = failed.filter((r) => r.start > at + DYING_MS);
      assert.deepEqual(late, [], `no request started ${DYING_MS} ms after the kill fails`);
      assert(failed.length <= 2, `at most the requests in flight on it fail: ${failed.length} failed`);
    }
  }
}

/**
 * The informer lists (an object created by kubectl before it started), watches (an object created by client-node
 * after its list), then the API server under its watch is SIGKILLed while client-node reads through the proxy: the
 * informer sees an object created after the kill within {@linkcode RESUME_BOUND_MS}, its watch is then carried by
 * another API server, and at most the requests in flight on the killed one fail. The killed server is restarted.
 */
export async function informerResumesAfterKill(plane: ControlPlane): Promise<void> {
  await using proxy = await ProxyRun.start(plane, {
    endpoints: ALL_ENDPOINTS,
    extraFlags: [`--health-ca-file=${plane.pki.caPath}`],
  });
  const kc = await proxyKubeconfig(plane);
  const ns = `e2e-informer-${crypto.randomUUID().slice(0, 8)}`;
  // No controller manager runs, so a deleted namespace would stay Terminating: it is left in the suite's own etcd.
  await kubectl(plane, kc, ["create", "namespace", ns]);
  await kubectl(plane, kc, ["create", "configmap", "listed", "-n", ns, "--from-literal=k=v"]);
  const informer = startInformer(plane, kc, ns);
  try {
    await informerSaw(informer, "add", "listed", 60_000);
    // Created after the list was seen, so only the watch can deliver it.
    await informer.request("create", { name: "watched" }, 15_000);
    await informerSaw(informer, "add", "watched", 10_000);
    // The list's and the create's connections close after their answer; the watch's stays.
    const carrier = await watchCarrier(proxy, "the informer's watch as the only open connection");
    const victim = plane.apis.find((a) => a.address === carrier);
    assert(victim !== undefined, `an API server behind the watch's upstream ${carrier}`);
    try {
      await killUnderWatch(informer, victim);
      const now = await watchCarrier(proxy, "the informer's watch as the only open connection again");
      assert.notDeepEqual(now, victim.address, "the watch is carried by another API server");
      assert.deepEqual(informer.events.filter((e) => e.kind === "delete"), [], "no object vanished from the cache");
    } finally {
      await victim.stop(15_000);
      victim.start();
      await plane.waitReady(victim.index);
    }
  } finally {
    informer.kill("SIGTERM");
    await informer.stop(5000);
  }
}
