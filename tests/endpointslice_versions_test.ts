/**
 * Discovery across Kubernetes releases: EndpointSlices are `discovery.k8s.io/v1` from 1.21 and only `v1beta1` before
 * (kube-apiserver 1.20 answers the v1 list 404). A scripted API server plays each release; the real 1.20 is in the
 * e2e suite.
 */
import assert from "node:assert/strict";
import { endpointKey } from "../lib/endpoint.ts";
import { kubernetesProvider } from "../lib/discovery/kubernetes/provider.ts";
import { KubeApiError } from "../lib/kubernetes/api.ts";
import { servedVersions } from "../lib/kubernetes/api_discovery.ts";
import { listWatch, type ListWatchRetry } from "../lib/kubernetes/list_watch.ts";
import type { KubeRequest, KubeTransport } from "../lib/kubernetes/transport.ts";
import { withDeadline } from "./support/deadline.ts";
import { LogCapture } from "./support/log_capture.ts";
import { waitFor } from "./support/net.ts";

const GROUP_PATH = "/apis/discovery.k8s.io";
const SLICES = (v: string) => `/apis/discovery.k8s.io/${v}/namespaces/default/endpointslices`;
const FAST = { random: () => 0.5, backoffBaseMs: 10, backoffMaxMs: 40, idleTimeoutMs: 5000 } as const;

/** A v1beta1 slice as kube-apiserver 1.20's reconciler writes it (`topology`, no `nodeName`/`zone`). */
function v1beta1Slice(addresses: string[]) {
  return {
    apiVersion: "discovery.k8s.io/v1beta1",
    kind: "EndpointSlice",
    metadata: { name: "kubernetes", namespace: "default", labels: { "kubernetes.io/service-name": "kubernetes" } },
    addressType: "IPv4",
    endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready: true }, topology: {} })),
    ports: [{ name: "https", port: 6443, protocol: "TCP" }],
  };
}

function apiGroup(versions: string[], preferred = versions[0]) {
  const gv = (v: string) => ({ groupVersion: `discovery.k8s.io/${v}`, version: v });
  return {
    kind: "APIGroup",
    apiVersion: "v1",
    name: "discovery.k8s.io",
    versions: versions.map(gv),
    ...(preferred === undefined ? {} : { preferredVersion: gv(preferred) }),
  };
}

function notFound(): Response {
  return Response.json({
    kind: "Status",
    apiVersion: "v1",
    status: "Failure",
    message: "the server could not find the requested resource",
    reason: "NotFound",
    code: 404,
  }, { status: 404 });
}

/** A watch that sends nothing until the request is aborted, or until `end` closes it cleanly. */
function quietWatch(req: KubeRequest, ends: Set<() => void>): Response {
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      const end = () => {
        ends.delete(end);
        c.close();
      };
      ends.add(end);
      req.signal.addEventListener("abort", () => {
        ends.delete(end);
        c.error(req.signal.reason);
      }, { once: true });
    },
  });
  return new Response(body, { headers: { "content-type": "application/json" } });
}

/**
 * An API server whose answers a test scripts per collection: `served` lists the EndpointSlice versions, `slices` the
 * objects of every served version; paths are recorded without their query.
 */
class ScriptedApi implements KubeTransport {
  served: string[];
  slices: unknown[];
  /** When set, API discovery fails with this status. */
  discoveryStatus: number | undefined;
  readonly paths: string[] = [];
  readonly #watchEnds = new Set<() => void>();

  constructor(served: string[], slices: unknown[]) {
    this.served = served;
    this.slices = slices;
  }

  request(req: KubeRequest): Promise<Response> {
    const [path = "", query = ""] = req.path.split("?");
    const watch = new URLSearchParams(query).get("watch") !== null;
    this.paths.push(watch ? `WATCH ${path}` : path);
    if (path === GROUP_PATH) {
      if (this.discoveryStatus !== undefined) {
        return Promise.resolve(new Response("no", { status: this.discoveryStatus }));
      }
      return Promise.resolve(this.served.length === 0 ? notFound() : Response.json(apiGroup(this.served)));
    }
    const version = this.served.find((v) => path === SLICES(v));
    if (version === undefined) return Promise.resolve(notFound());
    if (watch) return Promise.resolve(quietWatch(req, this.#watchEnds));
    return Promise.resolve(
      Response.json({ kind: "EndpointSliceList", metadata: { resourceVersion: "7" }, items: this.slices }),
    );
  }

  /** Ends every open watch stream cleanly, as an API server that restarts does. */
  endWatches(): void {
    for (const end of [...this.#watchEnds]) end();
  }

  close(): void {}
}

/** Runs the kubernetes provider over `api` until disposed; its sets as `host:port,...` strings. */
class Sets implements AsyncDisposable {
  readonly all: string[] = [];
  readonly #ctrl = new AbortController();
  readonly #pumping: Promise<void>;

  constructor(api: ScriptedApi) {
    const provider = kubernetesProvider({ transport: api, fallbackPort: 443, ...FAST });
    this.#pumping = (async () => {
      for await (const set of provider.run(this.#ctrl.signal)) this.all.push(set.map(endpointKey).join(","));
    })();
  }

  async until(expected: string): Promise<void> {
    await waitFor(() => this.all.at(-1) === expected, 5000, `the set '${expected}' (last: '${this.all.at(-1)}')`);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#ctrl.abort();
    await withDeadline(this.#pumping, "the provider to stop");
  }
}

Deno.test("before Kubernetes 1.21 (no discovery.k8s.io/v1) discovery reads v1beta1, saying so in one line", async () => {
  await using logs = await LogCapture.start();
  const api = new ScriptedApi(["v1beta1"], [v1beta1Slice(["127.0.0.2", "127.0.0.1"])]);
  {
    await using sets = new Sets(api);
    await sets.until("127.0.0.1:6443,127.0.0.2:6443");
    await waitFor(() => api.paths.includes(`WATCH ${SLICES("v1beta1")}`), 5000, "the v1beta1 watch");
  }
  assert.deepEqual(api.paths, [SLICES("v1"), GROUP_PATH, SLICES("v1beta1"), `WATCH ${SLICES("v1beta1")}`]);
  assert.deepEqual(logs.messages("info").filter((m) => m.includes("EndpointSlices as")), [
    "Reading EndpointSlices as discovery.k8s.io/v1beta1: the API server does not serve discovery.k8s.io/v1",
  ]);
  assert.deepEqual(logs.messages("warning"), [], "a known older release is not a warning");
});

Deno.test("a cluster upgraded to 1.25 (no v1beta1) under the watch is read as v1 again", async () => {
  await using logs = await LogCapture.start();
  const api = new ScriptedApi(["v1beta1"], [v1beta1Slice(["127.0.0.1"])]);
  await using sets = new Sets(api);
  await sets.until("127.0.0.1:6443");
  await waitFor(() => api.paths.includes(`WATCH ${SLICES("v1beta1")}`), 5000, "the v1beta1 watch");
  // The upgrade: the API server restarts serving v1 only. The re-opened v1beta1 watch is answered 404, so the loop
  // lists again; that LIST's 404 sends it to API discovery.
  api.served = ["v1"];
  api.slices = [{ ...v1beta1Slice(["127.0.0.3"]), apiVersion: "discovery.k8s.io/v1" }];
  api.endWatches();
  await sets.until("127.0.0.3:6443");
  const after = api.paths.slice(api.paths.indexOf(`WATCH ${SLICES("v1beta1")}`) + 1);
  assert.deepEqual(after.slice(0, 4), [`WATCH ${SLICES("v1beta1")}`, SLICES("v1beta1"), GROUP_PATH, SLICES("v1")]);
  assert.ok(
    logs.messages("info").includes(
      "Reading EndpointSlices as discovery.k8s.io/v1: the API server does not serve discovery.k8s.io/v1beta1",
    ),
  );
});

Deno.test("a 404 on a version that discovery says is served is retried with a warning naming both", async () => {
  await using logs = await LogCapture.start();
  const api = new ScriptedApi(["v1"], [{ ...v1beta1Slice(["127.0.0.1"]), apiVersion: "discovery.k8s.io/v1" }]);
  let lists = 0;
  const real = api.request.bind(api);
  api.request = (req) =>
    (req.path.startsWith(`${SLICES("v1")}?`) && !req.path.includes("watch=") && ++lists <= 2)
      ? Promise.resolve(notFound())
      : real(req);
  await using sets = new Sets(api);
  await sets.until("127.0.0.1:6443");
  const warnings = logs.messages("warning").filter((m) => m.startsWith("Cannot discover API servers"));
  assert.equal(warnings.length, 2);
  assert.match(
    warnings[0] ?? "",
    /found 404: the server could not find the requested resource; served: v1; asking again in/,
  );
  assert.equal(api.paths.filter((p) => p === GROUP_PATH).length, 2);
});

Deno.test("an API server with no EndpointSlices at all, or a failing API discovery, is retried and said so", async () => {
  await using logs = await LogCapture.start();
  const api = new ScriptedApi([], []);
  const ctrl = new AbortController();
  const provider = kubernetesProvider({ transport: api, fallbackPort: 443, ...FAST });
  const pumping = (async () => {
    for await (const _ of provider.run(ctrl.signal)) throw new Error("no set expected");
  })();
  await logs.waitFor((r) => String(r.properties.reason ?? "").includes("is not served at all"));
  api.discoveryStatus = 500;
  await logs.waitFor((r) => String(r.properties.reason ?? "").includes("read API discovery of 'discovery.k8s.io'"));
  ctrl.abort();
  await withDeadline(pumping, "the provider to stop");
  assert.ok(api.paths.filter((p) => p === SLICES("v1")).length >= 2, "the list was tried again");
});

Deno.test("listWatch stops on a 404 LIST only when asked to; otherwise it retries", async () => {
  const api = new ScriptedApi(["v1beta1"], []);
  const stopped = listWatch({ transport: api, path: SLICES("v1"), stopWhenNotServed: true, ...FAST });
  await assert.rejects(
    () => stopped.next(),
    (e) => e instanceof KubeApiError && e.status === 404 && /Cannot list/.test(e.message),
  );
  await using _logs = await LogCapture.start();
  const retries: ListWatchRetry[] = [];
  const ctrl = new AbortController();
  const kept = listWatch({ transport: api, path: SLICES("v1"), ...FAST, onRetry: (r) => retries.push(r) }, ctrl.signal);
  const first = kept.next();
  await waitFor(() => retries.length >= 2, 5000, "two retries of the 404 list");
  ctrl.abort();
  assert.equal((await withDeadline(first, "the iteration to end")).done, true);
});

Deno.test("servedVersions puts the server's preferred version first and reads a missing group as none", async () => {
  const answer = (body: unknown, status = 200): KubeTransport => ({
    request: () => Promise.resolve(status === 404 ? notFound() : Response.json(body, { status })),
    close: () => {},
  });
  assert.deepEqual(await servedVersions(answer(apiGroup(["v1beta1", "v1"], "v1")), "discovery.k8s.io"), [
    "v1",
    "v1beta1",
  ]);
  assert.deepEqual(await servedVersions(answer(apiGroup(["v1"], undefined)), "discovery.k8s.io"), ["v1"]);
  assert.deepEqual(await servedVersions(answer({}, 404), "discovery.k8s.io"), []);
  await assert.rejects(() => servedVersions(answer({ kind: "APIGroup" }), "x"), /expected an APIGroup with versions/);
  await assert.rejects(() => servedVersions(answer({ message: "boom" }, 500), "x"), /found 500: boom/);
});
