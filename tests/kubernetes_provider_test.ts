import assert from "node:assert/strict";
import { type Endpoint, endpointKey } from "../lib/endpoint.ts";
import { withFallback } from "../lib/discovery/fallback.ts";
import { kubernetesProvider, type KubernetesProviderOptions } from "../lib/discovery/kubernetes/provider.ts";
import { mergeProviders } from "../lib/discovery/merge.ts";
import { persistToStateFile, readStateFile, stateFileProvider } from "../lib/discovery/state_file.ts";
import { staticProvider } from "../lib/discovery/static.ts";
import { endpointSlice } from "./support/fake_apiserver.ts";
import { LogCapture } from "./support/log_capture.ts";
import { freePort, waitFor } from "./support/net.ts";
import { SimpleTransport } from "./support/simple_transport.ts";
import { queryOf, startWatchEnv, type WatchEnv } from "./support/watch_env.ts";
import { withDeadline } from "./support/deadline.ts";

const FAST = { random: () => 0.5, backoffBaseMs: 10, backoffMaxMs: 80, idleTimeoutMs: 5000 } as const;

/** The provider's sets, collected by a background loop. */
class Sets implements AsyncDisposable {
  readonly all: string[] = [];
  readonly #ctrl = new AbortController();
  readonly #pumping: Promise<void>;

  constructor(env: WatchEnv, options: Partial<KubernetesProviderOptions> = {}) {
    const provider = kubernetesProvider({ transport: env.transport, fallbackPort: 443, ...FAST, ...options });
    this.#pumping = (async () => {
      for await (const set of provider.run(this.#ctrl.signal)) this.all.push(set.map(endpointKey).join(","));
    })();
  }

  get last(): string | undefined {
    return this.all[this.all.length - 1];
  }

  async until(expected: string): Promise<void> {
    await waitFor(() => this.last === expected, 5000, `the set '${expected}' (last: '${this.last}')`);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#ctrl.abort();
    await withDeadline(this.#pumping, "the provider to stop");
  }
}

type Conditions = { ready?: boolean; terminating?: boolean };

/** An EndpointSlice of the kubernetes Service with per-address conditions and free-form ports. */
function rawSlice(
  name: string,
  addresses: [string, Conditions?][],
  ports: { name?: string; port: number }[] | undefined,
  addressType = "IPv4",
) {
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name, namespace: "default", labels: { "kubernetes.io/service-name": "kubernetes" } },
    addressType,
    endpoints: addresses.map(([a, c]) => ({ addresses: [a], conditions: c ?? { ready: true } })),
    ...(ports === undefined ? {} : { ports: ports.map((p) => ({ protocol: "TCP", ...p })) }),
  };
}

Deno.test("the provider lists the kubernetes EndpointSlices of namespace default", async () => {
  await using env = await startWatchEnv();
  env.api.upsert(endpointSlice("kubernetes", ["127.0.0.11", "127.0.0.10"], 6443));
  env.api.upsert(endpointSlice("kubernetes-extra", ["127.0.0.12"], 6443, { notReady: ["127.0.0.12"] }));
  env.api.upsert(endpointSlice("kubernetes-more", ["127.0.0.9"], 6443));
  env.api.upsert(endpointSlice("other-service", ["127.0.0.50"], 6443, { serviceName: "other" }));
  env.api.upsert(endpointSlice("kubernetes", ["127.0.0.51"], 6443, { namespace: "kube-system" }));
  await using sets = new Sets(env);
  await sets.until("127.0.0.9:6443,127.0.0.10:6443,127.0.0.11:6443");
  const list = env.api.requests[0];
  assert.equal(list?.path.split("?")[0], "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices");
  assert.equal(queryOf(list?.path ?? "").get("labelSelector"), "kubernetes.io/service-name=kubernetes");
  assert.deepEqual(sets.all, ["127.0.0.9:6443,127.0.0.10:6443,127.0.0.11:6443"]);
});

Deno.test("an update to one slice never loses another slice's endpoints", async () => {
  await using env = await startWatchEnv();
  env.api.upsert(endpointSlice("kubernetes-a", ["127.0.0.1"], 6443));
  env.api.upsert(endpointSlice("kubernetes-b", ["127.0.0.2"], 6443));
  await using sets = new Sets(env);
  await sets.until("127.0.0.1:6443,127.0.0.2:6443");
  await env.api.waitForOpenWatches(1);
  env.api.upsert(endpointSlice("kubernetes-a", ["127.0.0.3"], 6443));
  await sets.until("127.0.0.2:6443,127.0.0.3:6443");
  env.api.remove("endpointslices", "default", "kubernetes-b");
  await sets.until("127.0.0.3:6443");
  env.api.upsert(endpointSlice("kubernetes-c", ["127.0.0.4"], 6443));
  await sets.until("127.0.0.3:6443,127.0.0.4:6443");
});

Deno.test("not-ready and terminating endpoints are filtered as they change", async () => {
  await using env = await startWatchEnv();
  env.api.upsert(
    rawSlice("kubernetes", [["127.0.0.1"], ["127.0.0.2"], ["127.0.0.3"]], [{ name: "https", port: 6443 }]),
  );
  await using sets = new Sets(env);
  await sets.until("127.0.0.1:6443,127.0.0.2:6443,127.0.0.3:6443");
  await env.api.waitForOpenWatches(1);
  env.api.upsert(rawSlice("kubernetes", [
    ["127.0.0.1", { ready: false }],
    ["127.0.0.2", { ready: true, terminating: true }],
    ["127.0.0.3", {}],
  ], [{ name: "https", port: 6443 }]));
  await sets.until("127.0.0.3:6443");
});

Deno.test("the port is the slice's https port, else its first port, else the fallback port", async () => {
  await using env = await startWatchEnv();
  env.api.upsert(
    rawSlice("kubernetes-a", [["127.0.0.1"]], [{ name: "metrics", port: 9000 }, { name: "https", port: 6443 }]),
  );
  env.api.upsert(rawSlice("kubernetes-b", [["127.0.0.2"]], [{ name: "api", port: 8443 }, { name: "x", port: 9000 }]));
  env.api.upsert(rawSlice("kubernetes-c", [["127.0.0.3"]], undefined));
  await using sets = new Sets(env, { fallbackPort: 7443 });
  await sets.until("127.0.0.1:6443,127.0.0.2:8443,127.0.0.3:7443");
});

Deno.test("IPv6 slices are used, normalised and sorted after IPv4", async () => {
  await using env = await startWatchEnv();
  env.api.upsert(
    rawSlice("kubernetes-v6", [["0:0:0:0:0:0:0:1"], ["FD00:0::5"]], [{ name: "https", port: 6443 }], "IPv6"),
  );
  env.api.upsert(rawSlice("kubernetes-v4", [["127.0.0.1"]], [{ name: "https", port: 6443 }]));
  env.api.upsert(rawSlice("kubernetes-names", [["api.example.com"]], [{ name: "https", port: 6443 }], "FQDN"));
  await using sets = new Sets(env);
  await sets.until("127.0.0.1:6443,[::1]:6443,[fd00::5]:6443");
});

Deno.test("an empty discovered set is ignored with a warning", async () => {
  await using logs = await LogCapture.start();
  await using env = await startWatchEnv();
  env.api.upsert(endpointSlice("kubernetes", ["127.0.0.1"], 6443));
  await using sets = new Sets(env);
  await sets.until("127.0.0.1:6443");
  await env.api.waitForOpenWatches(1);
  env.api.upsert(endpointSlice("kubernetes", ["127.0.0.1"], 6443, { notReady: ["127.0.0.1"] }));
  const isEmptyWarning = (m: string) =>
    m.startsWith("Ignoring an empty endpoint set from the EndpointSlices of default");
  await waitFor(() => logs.messages("warning").filter(isEmptyWarning).length === 1, 5000, "the warning");
  env.api.remove("endpointslices", "default", "kubernetes");
  await waitFor(() => logs.messages("warning").filter(isEmptyWarning).length === 2, 5000, "the second warning");
  env.api.upsert(endpointSlice("kubernetes", ["127.0.0.2"], 6443));
  await sets.until("127.0.0.2:6443");
  assert.deepEqual(sets.all, ["127.0.0.1:6443", "127.0.0.2:6443"]);
  assert.equal(logs.messages("warning").length, 2);
});

Deno.test("a change reaches the consumer from the watch, not from a relist", async () => {
  await using env = await startWatchEnv();
  env.api.upsert(endpointSlice("kubernetes", ["127.0.0.1"], 6443));
  await using sets = new Sets(env);
  await sets.until("127.0.0.1:6443");
  await env.api.waitForOpenWatches(1);
  const started = performance.now();
  env.api.upsert(endpointSlice("kubernetes", ["127.0.0.1", "127.0.0.2"], 6443));
  await sets.until("127.0.0.1:6443,127.0.0.2:6443");
  // A relist comes only when the watch ends (its server-side timeout: about two minutes); a window far below that
  // tells the watch from a relist on a loaded machine too. How fast the watch is, the benches say.
  assert.ok(performance.now() - started < 10_000, `took ${performance.now() - started} ms`);
});

Deno.test("a burst of slice updates reaches a slow consumer as the latest set", async () => {
  await using logs = await LogCapture.start();
  await using env = await startWatchEnv();
  env.api.upsert(endpointSlice("kubernetes", ["127.0.0.1"], 6443));
  const ctrl = new AbortController();
  const it = kubernetesProvider({ transport: env.transport, fallbackPort: 443, ...FAST }).run(ctrl.signal)[
    Symbol.asyncIterator
  ]();
  assert.deepEqual((await withDeadline(it.next(), "the next set")).value?.map(endpointKey), ["127.0.0.1:6443"]);
  await env.api.waitForOpenWatches(1);
  for (let i = 2; i <= 40; i++) env.api.upsert(endpointSlice("kubernetes", [`127.0.0.${i}`], 6443));
  const rv = env.api.resourceVersion;
  await logs.waitFor((r) => r.message[1] === "MODIFIED" && r.properties.resourceVersion === rv);
  assert.deepEqual((await withDeadline(it.next(), "the next set")).value?.map(endpointKey), ["127.0.0.40:6443"]);
  env.api.upsert(endpointSlice("kubernetes", ["127.0.0.41"], 6443));
  assert.deepEqual((await withDeadline(it.next(), "the next set")).value?.map(endpointKey), ["127.0.0.41:6443"]);
  ctrl.abort();
  assert.equal((await withDeadline(it.next(), "the next set")).done, true);
});

Deno.test("discovery survives a first LIST that fails and a 410 that needs a relist", async () => {
  await using _logs = await LogCapture.start();
  await using env = await startWatchEnv();
  env.api.upsert(endpointSlice("kubernetes", ["127.0.0.1"], 6443));
  env.api.failNext(3, 500);
  const retries: string[] = [];
  await using sets = new Sets(env, { onRetry: (r) => retries.push(r.phase) });
  await sets.until("127.0.0.1:6443");
  assert.deepEqual(retries, ["list", "list", "list"]);
  await env.api.waitForOpenWatches(1);
  env.api.silence(true);
  env.api.upsert(endpointSlice("kubernetes", ["127.0.0.2"], 6443));
  env.api.sendGoneEvent();
  await sets.until("127.0.0.2:6443");
});

Deno.test("a node that reboots while the API is unreachable finds the control plane through the state file", async (t) => {
  await using _logs = await LogCapture.start();
  const dir = await Deno.makeTempDir({ prefix: "ep_reboot_" });
  const path = `${dir}/endpoints.json`;
  const staticSet = [{ host: "127.0.0.1", port: 6443 }];
  const pipeline = (transport: SimpleTransport | WatchEnv["transport"]) => [
    staticProvider(staticSet),
    withFallback(
      persistToStateFile(kubernetesProvider({ transport, fallbackPort: 6443, ...FAST }), path),
      stateFileProvider(path),
    ),
  ];
  const keys = (r: IteratorResult<readonly Endpoint[]>) => r.done ? "done" : r.value.map(endpointKey).join(",");
  try {
    await t.step("first boot: discovery finds the control plane and saves it", async () => {
      await using env = await startWatchEnv();
      env.api.upsert(endpointSlice("kubernetes", ["127.0.0.21", "127.0.0.22"], 6443));
      const ctrl = new AbortController();
      const it = mergeProviders(pipeline(env.transport), ctrl.signal);
      let r = await withDeadline(it.next(), "the next set");
      if (keys(r) === "127.0.0.1:6443") r = await withDeadline(it.next(), "the next set");
      assert.equal(keys(r), "127.0.0.1:6443,127.0.0.21:6443,127.0.0.22:6443");
      ctrl.abort();
      assert.equal(keys(await withDeadline(it.next(), "the next set")), "done");
      assert.deepEqual((await readStateFile(path)).map(endpointKey), ["127.0.0.21:6443", "127.0.0.22:6443"]);
    });
    await t.step("second boot: no API answers, the saved set is used", async () => {
      using down = new SimpleTransport({ baseUrl: `https://127.0.0.1:${freePort()}`, caCert: "" });
      const ctrl = new AbortController();
      const it = mergeProviders(pipeline(down), ctrl.signal);
      let r = await withDeadline(it.next(), "the next set");
      if (keys(r) === "127.0.0.1:6443") r = await withDeadline(it.next(), "the next set");
      assert.equal(keys(r), "127.0.0.1:6443,127.0.0.21:6443,127.0.0.22:6443");
      ctrl.abort();
      assert.equal(keys(await withDeadline(it.next(), "the next set")), "done");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
