/**
 * Scenarios where one real kube-apiserver fails while clients send requests through the proxy: SIGKILL (a crash),
 * SIGSTOP (a frozen process whose kernel still accepts connections) and SIGTERM (graceful shutdown: `/readyz` 503
 * while it still serves for `--shutdown-delay-duration`). Each restores the API server at its end, also when it fails,
 * so that the next scenario starts with all three.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ControlPlane, KubeApiServer, RequestResult } from "./control_plane.ts";
import { pollUntil, ProxyRun } from "./proxy.ts";
import { ALL_ENDPOINTS, e2eReport, kubectl, proxyKubeconfig } from "./scenarios_clients.ts";

const INTERVAL_MS = 500;
const TIMEOUT_MS = 400;
const FALL = 2;
/** Requests of one scenario's load: one every 50 ms for 8 s. */
const LOAD = { count: 160, spacingMs: 50, timeoutMs: 5000 };

/** The API server that took most of the proxy's connections: the one whose failure clients would feel. */
async function busiest(plane: ControlPlane, proxy: ProxyRun): Promise<KubeApiServer> {
  await plane.load({ count: 20, spacingMs: 10 });
  const ups = await proxy.upstreams();
  const top = [...ups].sort((a, b) => b.totalConnections - a.totalConnections)[0];
  const api = plane.apis.find((a) => a.address === top?.address);
  assert(api !== undefined, `an API server behind ${top?.address}`);
  return api;
}

/** Starts the load, waits until `warmup` requests are done, runs `fault`, and returns the results and fault time. */
async function loadAround(
  plane: ControlPlane,
  warmup: number,
  fault: () => Promise<void> | void,
): Promise<{ results: RequestResult[]; at: number }> {
  const mark = plane.client.events.length;
  const loading = plane.load(LOAD);
  try {
    await plane.waitProgress(warmup, mark, 30_000);
  } catch (e) {
    await loading.catch(() => {});
    throw e;
  }
  const at = Date.now();
  await fault();
  return { results: await loading, at };
}

function summary(results: readonly RequestResult[]): string {
  const failed = results.filter((r) => !r.ok);
  const errors = [...new Set(failed.map((r) => r.error ?? `HTTP ${r.status}`))].slice(0, 3).join("; ");
  return `${failed.length}/${results.length} failed${errors === "" ? "" : ` (${errors})`}`;
}

/** Brings `api` back (started afresh) and waits until the proxy of the next scenario can count on it. */
async function restore(plane: ControlPlane, api: KubeApiServer): Promise<void> {
  await api.stop(15_000);
  api.start();
  await plane.waitReady(api.index);
}

/**
 * SIGKILL of the busiest API server under load: only requests in flight on it may fail; every request that starts
 * later succeeds (the proxy's dial meets a refused connection and fails over at once); the proxy marks it unhealthy
 * within fall probes; and the real lease reconciler removes its address from `default/kubernetes`.
 */
export async function apiServerKilled(plane: ControlPlane): Promise<void> {
  await using proxy = await ProxyRun.start(plane, {
    endpoints: ALL_ENDPOINTS,
    intervalMs: INTERVAL_MS,
    timeoutMs: TIMEOUT_MS,
    fall: FALL,
    extraFlags: [`--health-ca-file=${plane.pki.caPath}`],
  });
  const victim = await busiest(plane, proxy);
  try {
    const ip = victim.address.split(":")[0] ?? "";
    let detectedAt = 0;
    const { results, at } = await loadAround(plane, 40, async () => {
      victim.signal("SIGKILL");
      detectedAt = await proxy.waitState(victim.address, "unhealthy", 15_000);
    });
    const failed = results.filter((r) => !r.ok);
    const lastFailEnd = failed.reduce((t, r) => Math.max(t, r.end), at);
    e2eReport(
      "kube-apiserver SIGKILL under load",
      `${summary(results)}; marked unhealthy after ${detectedAt - at} ms; ` +
        `clients recovered ${lastFailEnd - at} ms after the kill`,
    );
    // Requests that had started before the kill may have been on it; later ones meet a refused dial and fail over.
    const lateFailures = failed.filter((r) => r.start > at + 200);
    assert.deepEqual(lateFailures, [], "no request started 200 ms after the kill fails");
    assert(failed.length <= 3, `at most the requests in flight fail: ${summary(results)}`);
    assert(detectedAt - at <= (FALL + 1) * INTERVAL_MS * 1.2 + TIMEOUT_MS + 2000, "marked down within fall probes");

    // The reconciler of the survivors drops the dead instance once its lease (15 s TTL) expires.
    const kc = await proxyKubeconfig(plane);
    await pollUntil(async () => {
      const out = await kubectl(plane, kc, [
        "get",
        "endpoints",
        "kubernetes",
        "-n",
        "default",
        "-o",
        "jsonpath={.subsets[*].addresses[*].ip}",
      ]);
      return out.split(/\s+/).includes(ip) ? undefined : true;
    }, { timeoutMs: 60_000, everyMs: 500, what: `${ip} to leave default/kubernetes` });
    e2eReport("kube-apiserver SIGKILL: its address leaves default/kubernetes", `${Date.now() - at} ms after the kill`);
  } finally {
    await restore(plane, victim);
  }
}

/**
 * SIGSTOP of the busiest API server under load: its kernel still accepts connections, so only `/readyz` timing out
 * takes it out of rotation, within `--health-fall` probes; every request that starts after that succeeds.
 */
export async function apiServerFrozen(plane: ControlPlane): Promise<void> {
  await using proxy = await ProxyRun.start(plane, {
    endpoints: ALL_ENDPOINTS,
    intervalMs: INTERVAL_MS,
    timeoutMs: TIMEOUT_MS,
    fall: FALL,
    extraFlags: [`--health-ca-file=${plane.pki.caPath}`],
  });
  const victim = await busiest(plane, proxy);
  let detectedAt = 0;
  try {
    const { results, at } = await loadAround(plane, 40, async () => {
      victim.signal("SIGSTOP");
      detectedAt = await proxy.waitState(victim.address, "unhealthy", 15_000);
    });
    const failed = results.filter((r) => !r.ok);
    e2eReport(
      "kube-apiserver SIGSTOP under load",
      `${summary(results)}; out of rotation after ${detectedAt - at} ms (interval ${INTERVAL_MS} ms, timeout ` +
        `${TIMEOUT_MS} ms, fall ${FALL})`,
    );
    const bound = FALL * INTERVAL_MS * 1.2 + TIMEOUT_MS + 1500;
    assert(detectedAt - at <= bound, `out of rotation within ${bound} ms: took ${detectedAt - at} ms`);
    const late = failed.filter((r) => r.start > detectedAt + 200);
    assert.deepEqual(late, [], "no request started after it left the rotation fails");
  } finally {
    victim.signal("SIGCONT");
  }
  await proxy.waitState(victim.address, "healthy", 30_000);
}

/**
 * SIGTERM of the busiest API server under load: with `--shutdown-delay-duration=5s` its `/readyz` answers 503 while
 * it still serves, the proxy takes it out of rotation before it stops listening, and no client request fails.
 */
export async function apiServerGracefulShutdown(plane: ControlPlane): Promise<void> {
  await using proxy = await ProxyRun.start(plane, {
    endpoints: ALL_ENDPOINTS,
    intervalMs: INTERVAL_MS,
    timeoutMs: TIMEOUT_MS,
    fall: FALL,
    extraFlags: [`--health-ca-file=${plane.pki.caPath}`],
  });
  const victim = await busiest(plane, proxy);
  try {
    let detectedAt = 0;
    const { results, at } = await loadAround(plane, 40, async () => {
      victim.signal("SIGTERM");
      detectedAt = await proxy.waitState(victim.address, "unhealthy", 15_000);
    });
    e2eReport(
      "kube-apiserver SIGTERM (graceful) under load",
      `${summary(results)}; out of rotation after ${detectedAt - at} ms`,
    );
    assert.deepEqual(results.filter((r) => !r.ok), [], "no client request fails on a graceful shutdown");
    assert(detectedAt - at < 5000, "out of rotation before the shutdown delay ends");
  } finally {
    await restore(plane, victim);
  }
}
