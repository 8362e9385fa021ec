/**
 * Scenarios with the control plane whole: the proxy with static endpoints in front of three real kube-apiservers,
 * discovery (through discovery.k8s.io/v1beta1, which 1.20 serves instead of v1), real kubectl through 127.0.0.1:7445, and `/readyz`
 * probing with and without the cluster CA.
 *
 * @module
 */
import assert from "node:assert/strict";
import { reportLine } from "../faults/report.ts";
import { type ControlPlane, PROXY_PORT } from "./control_plane.ts";
import { API_ADDRESSES, API_PORT } from "./net.ts";
import { SERVER_NAME } from "./pki.ts";
import { pollUntil, ProxyRun } from "./proxy.ts";

/** Prints one figure of the suite (and appends it to the fault suite's report file, which CI prints). */
export function e2eReport(scenario: string, figure: string): void {
  reportLine(`E2E ${scenario}: ${figure}`);
}

/** Every API server, as `--endpoints` takes them. */
export const ALL_ENDPOINTS: readonly string[] = API_ADDRESSES.map((a) => `${a}:${API_PORT}`);

/** Runs the Debian kubectl 1.20 in the node namespace against the proxy; returns stdout, or throws with stderr. */
export async function kubectl(plane: ControlPlane, kubeconfig: string, args: readonly string[]): Promise<string> {
  const out = await plane.runInNode(plane.fixtures.kubectl, [
    `--kubeconfig=${kubeconfig}`,
    "--request-timeout=10s",
    ...args,
  ]);
  const stdout = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`Cannot run 'kubectl ${args.join(" ")}': exit ${out.code}: ${err}`);
  }
  return stdout;
}

/** The kubeconfig of a node-local client: the proxy's address, the API server certificate's name. */
export function proxyKubeconfig(plane: ControlPlane): Promise<string> {
  return plane.pki.kubeconfig("via-proxy", `https://127.0.0.1:${PROXY_PORT}`, { tlsServerName: SERVER_NAME });
}

/** With one static endpoint and a kubeconfig, the proxy finds the other two API servers through discovery. */
export async function discoversApiServers(plane: ControlPlane): Promise<void> {
  // The real reconcilers write their addresses within their 10 s interval of the start: wait for all three first,
  // so that the figure is discovery's own time, not the control plane's start-up.
  const slicePath = "/apis/discovery.k8s.io/v1beta1/namespaces/default/endpointslices/kubernetes";
  await pollUntil(async () => {
    const r = await plane.get({ host: API_ADDRESSES[0] ?? "", port: API_PORT, path: slicePath, auth: true });
    if (r.status !== 200) return undefined;
    const slice = JSON.parse(r.body) as { endpoints?: { addresses?: string[] }[] };
    const listed = (slice.endpoints ?? []).flatMap((e) => e.addresses ?? []);
    return API_ADDRESSES.every((a) => listed.includes(a)) ? true : undefined;
  }, { timeoutMs: 60_000, what: "the reconcilers to list all three API servers", everyMs: 250 });
  const kubeconfig = await plane.pki.kubeconfig("discovery", `https://${ALL_ENDPOINTS[0]}`);
  await using proxy = await ProxyRun.start(plane, {
    endpoints: [ALL_ENDPOINTS[0] ?? ""],
    expectHealthy: 1,
    extraFlags: ["--enable-discovery=true", `--kubeconfig=${kubeconfig}`, `--health-ca-file=${plane.pki.caPath}`],
  });
  const t0 = Date.now();
  const { upstreams } = await proxy.waitUpstreams(
    (ups) => ALL_ENDPOINTS.every((e) => ups.some((u) => u.address === e && u.state === "healthy")),
    30_000,
    "every API server discovered and healthy",
  );
  e2eReport("discovery finds the API servers from one static endpoint", `${Date.now() - t0} ms`);
  assert.deepEqual(upstreams.map((u) => u.address).sort(), [...ALL_ENDPOINTS].sort());
  // 1.20 serves EndpointSlices only as discovery.k8s.io/v1beta1: one line says so, and nothing is retried.
  assert.equal(proxy.logLines("Reading EndpointSlices as discovery.k8s.io/v1beta1").length, 1);
  assert.deepEqual(proxy.logLines("Retrying the"), [], "no list or watch was retried");
}

/** With all three as static endpoints, every one is probed healthy and requests through the proxy succeed. */
export async function staticEndpointsServe(plane: ControlPlane): Promise<void> {
  await using proxy = await ProxyRun.start(plane, {
    endpoints: ALL_ENDPOINTS,
    extraFlags: [`--health-ca-file=${plane.pki.caPath}`],
  });
  const results = await plane.load({ count: 30, spacingMs: 20 });
  const failed = results.filter((r) => !r.ok);
  assert.deepEqual(failed, [], "requests through the proxy to real API servers");
  const ups = await proxy.upstreams();
  assert.deepEqual(ups.filter((u) => u.state === "healthy").length, 3);
  assert(ups.reduce((n, u) => n + u.totalConnections, 0) >= 30, "the proxy relayed every request");
}

/**
 * kubectl 1.20 through 127.0.0.1:7445 with `tls-server-name`: lists what the real endpoint reconciler wrote (all three
 * advertise addresses in `default/kubernetes`, and a discovery.k8s.io/v1beta1 EndpointSlice), creates a ConfigMap,
 * reads it back, and sees it arrive on a watch.
 */
export async function kubectlThroughProxy(plane: ControlPlane): Promise<void> {
  await using _proxy = await ProxyRun.start(plane, {
    endpoints: ALL_ENDPOINTS,
    extraFlags: [`--health-ca-file=${plane.pki.caPath}`],
  });
  const kc = await proxyKubeconfig(plane);
  // The reconciler of each instance adds its own address; all three are there once each has started.
  const ips = await pollUntil(async () => {
    const out = await kubectl(plane, kc, [
      "get",
      "endpoints",
      "kubernetes",
      "-n",
      "default",
      "-o",
      "jsonpath={.subsets[*].addresses[*].ip}",
    ]);
    const found = out.trim().split(/\s+/).sort();
    return found.length === 3 ? found : undefined;
  }, { timeoutMs: 30_000, everyMs: 500, what: "three addresses in default/kubernetes" });
  assert.deepEqual(ips, [...API_ADDRESSES].sort());
  const slices = JSON.parse(
    await kubectl(plane, kc, [
      "get",
      "endpointslices",
      "-n",
      "default",
      "-l",
      "kubernetes.io/service-name=kubernetes",
      "-o",
      "json",
    ]),
  ) as { items: { apiVersion?: string; endpoints?: { addresses: string[] }[] }[] };
  assert(slices.items.length >= 1, "the reconciler wrote an EndpointSlice for default/kubernetes");
  const sliceIps = slices.items.flatMap((s) => (s.endpoints ?? []).flatMap((e) => e.addresses)).sort();
  assert.deepEqual(sliceIps, [...API_ADDRESSES].sort());
  const resources = await kubectl(plane, kc, ["api-versions"]);
  assert(resources.split("\n").includes("discovery.k8s.io/v1beta1"), "1.20 serves discovery.k8s.io/v1beta1");
  assert(!resources.split("\n").includes("discovery.k8s.io/v1"), "1.20 does not serve discovery.k8s.io/v1");

  const watch = plane.spawnInNode("kubectl watch", "/bin/sh", [
    "-c",
    'exec "$0" "$@" 1>&2',
    plane.fixtures.kubectl,
    `--kubeconfig=${kc}`,
    "get",
    "configmaps",
    "-n",
    "default",
    "--watch",
    "-o",
    "name",
  ]);
  try {
    const name = `e2e-${crypto.randomUUID().slice(0, 8)}`;
    // A watch prints the existing objects before it watches: seeing a first new object proves it is live, so the
    // time measured for the second is the watch's own.
    const first = `${name}-first`;
    await kubectl(plane, kc, ["create", "configmap", first, "-n", "default", "--from-literal=k=v"]);
    await watch.waitFor(() => watch.stderrLines.includes(`configmap/${first}`), 30_000, `configmap/${first}`);
    const t0 = Date.now();
    await kubectl(plane, kc, ["create", "configmap", name, "-n", "default", "--from-literal=k=v"]);
    await watch.waitFor(() => watch.stderrLines.includes(`configmap/${name}`), 30_000, `configmap/${name}`);
    e2eReport("kubectl through the proxy: create seen on a watch", `${Date.now() - t0} ms`);
    const got = await kubectl(plane, kc, ["get", "configmap", name, "-n", "default", "-o", "jsonpath={.data.k}"]);
    assert.deepEqual(got, "v");
    await kubectl(plane, kc, ["delete", "configmap", name, first, "-n", "default"]);
  } finally {
    watch.kill("SIGTERM");
    await watch.stop(5000);
  }
}

/**
 * `/readyz` probing of real API servers: with the cluster CA every one is healthy; without a CA every one is healthy
 * and the program says once that it does not verify; with an unrelated CA none is.
 */
export async function readyzProbing(plane: ControlPlane): Promise<void> {
  {
    await using proxy = await ProxyRun.start(plane, {
      endpoints: ALL_ENDPOINTS,
      extraFlags: [`--health-ca-file=${plane.pki.caPath}`],
    });
    assert.deepEqual(proxy.logLines("readyz probes do not verify"), []);
  }
  {
    await using proxy = await ProxyRun.start(plane, { endpoints: ALL_ENDPOINTS });
    assert.deepEqual(proxy.logLines("No --health-ca-file: readyz probes do not verify").length, 1);
  }
  {
    await using proxy = await ProxyRun.start(plane, {
      endpoints: ALL_ENDPOINTS,
      expectHealthy: 0,
      extraFlags: [`--health-ca-file=${plane.pki.base.otherCa.certPath}`],
    });
    await proxy.waitUpstreams(
      (ups) => ups.length === 3 && ups.every((u) => u.state === "unhealthy"),
      15_000,
      "every upstream unhealthy with an unrelated CA",
    );
  }
}

/**
 * `--anonymous-auth=false` on one API server: its `/readyz` answers 401 to an anonymous probe; the proxy counts it as
 * up and warns once, naming it.
 */
export async function readyzUnauthorized(plane: ControlPlane): Promise<void> {
  const api = plane.apis[2];
  assert(api !== undefined);
  await api.stop();
  api.start({ extraFlags: ["--anonymous-auth=false"] });
  // /readyz answers 401 only once the server is up: wait for an authenticated 200 first.
  await pollUntil(async () => {
    try {
      const r = await plane.get({ host: API_ADDRESSES[2] ?? "", port: API_PORT, path: "/readyz", auth: true });
      return r.status === 200 ? true : undefined;
    } catch {
      return undefined;
    }
  }, { timeoutMs: 180_000, everyMs: 500, what: "api3 ready with --anonymous-auth=false" });
  assert.deepEqual(await plane.readyz(2), 401);
  await using proxy = await ProxyRun.start(plane, {
    endpoints: ALL_ENDPOINTS,
    extraFlags: [`--health-ca-file=${plane.pki.caPath}`],
  });
  const warned = proxy.logLines("anonymous access is disabled");
  assert.deepEqual(warned.length, 1, "one warning for the one upstream answering 401");
  assert(warned[0]?.includes(ALL_ENDPOINTS[2] ?? "?"), `the warning names ${ALL_ENDPOINTS[2]}: ${warned[0]}`);
  assert.deepEqual((await proxy.upstreams()).find((u) => u.address === ALL_ENDPOINTS[2])?.state, "healthy");
}
