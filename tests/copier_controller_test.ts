import assert from "node:assert/strict";
import { endpointSlice, type KubeObject } from "./support/fake_apiserver.ts";
import { addressesOf, CopierEnv, enabled, labelsOf, MANAGED_BY, service } from "./support/copier_env.ts";
import { LogCapture } from "./support/log_capture.ts";
import type { KubeTransport } from "../lib/kubernetes/transport.ts";
import { SimpleTransport } from "./support/simple_transport.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };
const SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";

/** The API servers' own slice of `default/kubernetes`. */
function source(addresses: string[], name = "kubernetes"): ReturnType<typeof endpointSlice> {
  return endpointSlice(name, addresses, 6443);
}

async function send(
  t: SimpleTransport,
  method: "PATCH" | "DELETE",
  path: string,
  body?: unknown,
  contentType = "application/merge-patch+json",
): Promise<number> {
  const res = await t.request({
    method,
    path,
    signal: AbortSignal.timeout(5000),
    ...(body !== undefined ? { body: JSON.stringify(body), contentType } : {}),
  });
  await res.body?.cancel();
  return res.status;
}

function uidOf(o: KubeObject | undefined): string {
  return String(o?.metadata.uid ?? "");
}

function eventsOf(env: CopierEnv, reason: string): KubeObject[] {
  return env.api.list("events").filter((e) => e.reason === reason);
}

Deno.test("an annotated Service gets a copy of the source slice with its own ports", opts, async () => {
  await using env = await CopierEnv.start();
  env.api.upsert(source(["127.0.0.1", "127.0.0.2"]));
  const vip = env.api.upsert(service("vip", {
    annotations: enabled(),
    ports: [
      { name: "https", port: 443, protocol: "TCP", targetPort: 6443 },
      { name: "rke2", port: 9345, protocol: "TCP", targetPort: 9345, appProtocol: "https" },
      { name: "named", port: 8443, protocol: "TCP", targetPort: "https" },
    ],
  }));
  env.api.upsert(service("not-a-target"));
  await env.copier();
  const copy = await env.until(() => env.copies().get("vip-kubernetes"), "the copy of vip");
  assert.deepEqual(labelsOf(copy), {
    "kubernetes.io/service-name": "vip",
    "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
    "endpoint-copier/source": "kubernetes",
  });
  assert.equal(copy.addressType, "IPv4");
  assert.deepEqual(copy.endpoints, env.api.get("endpointslices", "default", "kubernetes")?.endpoints);
  assert.deepEqual(copy.ports, [
    { name: "https", protocol: "TCP", port: 6443 },
    { name: "rke2", protocol: "TCP", port: 9345, appProtocol: "https" },
    { name: "named", protocol: "TCP", port: 8443 },
  ]);
  assert.deepEqual(copy.metadata.ownerReferences, [
    { apiVersion: "v1", kind: "Service", name: "vip", uid: vip.metadata.uid, controller: true },
  ]);
  const managers = (copy.metadata.managedFields as KubeObject[]).map((m) => `${m.manager}/${m.operation}`);
  assert.deepEqual(managers, [`${MANAGED_BY}/Apply`]);
  // The named targetPort is warned about, on the Service itself.
  const warned = await env.until(() => eventsOf(env, "NamedTargetPort")[0], "a NamedTargetPort Event");
  assert.equal(warned.type, "Warning");
  assert.deepEqual(warned.involvedObject, {
    apiVersion: "v1",
    kind: "Service",
    name: "vip",
    namespace: "default",
    uid: vip.metadata.uid,
  });
  assert.match(String(warned.message), /port 'named' has the named targetPort 'https'.*use port 8443/);
  assert.deepEqual([...env.copies().keys()], ["vip-kubernetes"]);
});

Deno.test(
  "the flag-named Service is a target without the annotation, and other annotations name the source",
  opts,
  async () => {
    await using env = await CopierEnv.start();
    env.api.upsert(source(["127.0.0.1"]));
    env.api.upsert(endpointSlice("etcd-abcde", ["127.0.0.9"], 2379, { namespace: "kube-system", serviceName: "etcd" }));
    env.api.upsert(service("kubernetes-vip"));
    env.api.upsert(service("etcd-vip", { annotations: enabled({ name: "etcd", namespace: "kube-system" }) }));
    env.api.upsert(service("exactly-true", { annotations: { "endpoint-copier/enabled": "True" } }));
    await env.copier();
    await env.until(() => env.copies().size === 2, "two copies");
    assert.deepEqual([...env.copies().keys()].sort(), ["etcd-vip-etcd-abcde", "kubernetes-vip-kubernetes"]);
    assert.deepEqual(addressesOf(env.copies().get("etcd-vip-etcd-abcde")), ["127.0.0.9"]);
    assert.deepEqual(addressesOf(env.copies().get("kubernetes-vip-kubernetes")), ["127.0.0.1"]);
  },
);

Deno.test("a source change reaches two different annotated targets within 1 s", opts, async () => {
  await using env = await CopierEnv.start();
  env.api.upsert(source(["127.0.0.1"]));
  env.api.upsert(service("vip-a", { annotations: enabled() }));
  env.api.upsert(
    service("vip-b", { namespace: "other", annotations: enabled({ name: "kubernetes", namespace: "default" }) }),
  );
  await env.copier();
  await env.until(() => env.copies().has("vip-a-kubernetes") && env.copies("other").has("vip-b-kubernetes"), "copies");
  const changed = performance.now();
  env.api.upsert(source(["127.0.0.1", "127.0.0.3"]));
  const both = () =>
    addressesOf(env.copies().get("vip-a-kubernetes")).length === 2 &&
    addressesOf(env.copies("other").get("vip-b-kubernetes")).length === 2;
  // Event-driven, not the 60 s resync: a window far below the resync tells them apart on a loaded machine too.
  await env.until(both, "both copies updated", 10_000);
  assert.ok(performance.now() - changed < 10_000);
  assert.deepEqual(addressesOf(env.copies("other").get("vip-b-kubernetes")), ["127.0.0.1", "127.0.0.3"]);
});

Deno.test("a hand-deleted copy is re-created and a hand-edited one is repaired", opts, async (t) => {
  await using env = await CopierEnv.start();
  env.api.upsert(source(["127.0.0.1", "127.0.0.2"]));
  env.api.upsert(service("vip", { annotations: enabled() }));
  await env.copier();
  const first = await env.until(() => env.copies().get("vip-kubernetes"), "the copy");

  await t.step("deleted", async () => {
    assert.equal(await send(env.transport, "DELETE", `${SLICES}/vip-kubernetes`), 200);
    const again = await env.until(
      () => uidOf(env.copies().get("vip-kubernetes")) !== uidOf(first) && env.copies().get("vip-kubernetes"),
      "the re-created copy",
    );
    assert.deepEqual(addressesOf(again), ["127.0.0.1", "127.0.0.2"]);
  });

  await t.step("edited: endpoints, ports and a label are put back, another writer's extra label stays", async () => {
    const status = await send(env.transport, "PATCH", `${SLICES}/vip-kubernetes`, {
      metadata: { labels: { "endpoint-copier/source": "edited", "team": "ops" } },
      endpoints: [{ addresses: ["127.0.0.66"] }],
      ports: [{ name: "https", port: 1, protocol: "TCP" }],
    });
    assert.equal(status, 200);
    const repaired = await env.until(() => {
      const c = env.copies().get("vip-kubernetes");
      return c !== undefined && labelsOf(c)["endpoint-copier/source"] === "kubernetes" &&
        addressesOf(c).join() === "127.0.0.1,127.0.0.2" && c;
    }, "the repaired copy");
    assert.deepEqual(repaired.ports, [{ name: "https", protocol: "TCP", port: 6443 }]);
    assert.equal(labelsOf(repaired).team, "ops");
  });
});

Deno.test("removing the annotation deletes the copies; the flag-named target keeps its own", opts, async () => {
  await using env = await CopierEnv.start();
  env.api.upsert(source(["127.0.0.1"]));
  env.api.upsert(service("vip", { annotations: enabled() }));
  env.api.upsert(service("kubernetes-vip"));
  await env.copier();
  await env.until(() => env.copies().size === 2, "two copies");
  env.api.upsert(service("vip", { annotations: { "endpoint-copier/enabled": "false" } }));
  await env.until(() => !env.copies().has("vip-kubernetes"), "the copy of vip deleted");
  assert.deepEqual([...env.copies().keys()], ["kubernetes-vip-kubernetes"]);
  assert.equal(env.api.get("endpointslices", "default", "kubernetes")?.metadata.name, "kubernetes");
});

Deno.test(
  "deleting the target deletes its copies; a new Service of that name gets a copy owned by it",
  opts,
  async () => {
    await using env = await CopierEnv.start();
    env.api.upsert(source(["127.0.0.1"]));
    env.api.upsert(service("vip", { annotations: enabled() }));
    await env.copier();
    await env.until(() => env.copies().get("vip-kubernetes"), "the copy");
    env.api.remove("services", "default", "vip");
    await env.until(() => env.copies().size === 0, "no copies");
    const reborn = env.api.upsert(service("vip", { annotations: enabled() }));
    const copy = await env.until(() => env.copies().get("vip-kubernetes"), "the copy of the new Service");
    assert.equal((copy.metadata.ownerReferences as KubeObject[])[0]?.uid, reborn.metadata.uid);
  },
);

Deno.test("a write that fails twice is retried with backoff and lands", opts, async () => {
  await using env = await CopierEnv.start();
  env.api.upsert(source(["127.0.0.1"]));
  env.api.failNext(2, 500, { match: (r) => r.method === "PATCH" && r.path.includes("/endpointslices/vip-kubernetes") });
  env.api.upsert(service("vip", { annotations: enabled() }));
  const copier = await env.copier();
  await env.until(() => env.copies().get("vip-kubernetes"), "the copy");
  const applies = env.api.requests.filter((r) => r.method === "PATCH" && r.path.includes("/vip-kubernetes"));
  assert.deepEqual(applies.map((r) => r.status), [500, 500, 201]);
  const applied = (result: string) =>
    copier.metrics.value("extractedprism_copier_writes_total", { verb: "apply", result });
  await env.until(() => applied("success") === 1, "the successful apply counted");
  assert.equal(applied("error"), 2);
});

Deno.test("an IPv4 → IPv6 source change re-creates the copy with the new address type", opts, async () => {
  await using env = await CopierEnv.start();
  env.api.upsert(source(["127.0.0.1"]));
  env.api.upsert(service("vip", { annotations: enabled() }));
  await env.copier();
  const v4 = await env.until(() => env.copies().get("vip-kubernetes"), "the IPv4 copy");
  // addressType is immutable: the API servers' slice is deleted and written anew.
  env.api.remove("endpointslices", "default", "kubernetes");
  env.api.upsert(source(["fd00::1", "fd00::2"]));
  const v6 = await env.until(() => {
    const c = env.copies().get("vip-kubernetes");
    return c?.addressType === "IPv6" && c;
  }, "the IPv6 copy");
  assert.notEqual(uidOf(v6), uidOf(v4));
  assert.deepEqual(addressesOf(v6), ["fd00::1", "fd00::2"]);
  const deletes = env.api.requests.filter((r) => r.method === "DELETE" && r.path.endsWith("/vip-kubernetes"));
  assert.equal(deletes.length, 1);
});

Deno.test("several source slices give one copy each, and the copy of a removed source slice goes", opts, async () => {
  await using env = await CopierEnv.start();
  env.api.upsert(source(["127.0.0.1"], "kubernetes-a"));
  env.api.upsert(source(["127.0.0.2"], "kubernetes-b"));
  env.api.upsert(service("vip", { annotations: enabled() }));
  await env.copier();
  await env.until(() => env.copies().size === 2, "two copies");
  assert.deepEqual(addressesOf(env.copies().get("vip-kubernetes-b")), ["127.0.0.2"]);
  env.api.remove("endpointslices", "default", "kubernetes-b");
  await env.until(() => env.copies().size === 1, "one copy");
  assert.deepEqual([...env.copies().keys()], ["vip-kubernetes-a"]);
});

Deno.test("a target with a selector is refused with a warning and an Event; its copies go", opts, async () => {
  await using logs = await LogCapture.start();
  await using env = await CopierEnv.start();
  env.api.upsert(source(["127.0.0.1"]));
  env.api.upsert(service("vip", { annotations: enabled() }));
  await env.copier();
  await env.until(() => env.copies().get("vip-kubernetes"), "the copy");
  env.api.upsert(service("vip", { annotations: enabled(), selector: { app: "apiserver" } }));
  await env.until(() => env.copies().size === 0, "the copy deleted");
  const event = await env.until(() => eventsOf(env, "SelectorRefused")[0], "a SelectorRefused Event");
  assert.equal(event.type, "Warning");
  const warning = "Service 'default/vip' has a selector: the endpointslice controller manages its slices, so the " +
    "copier leaves it alone (remove the selector or the annotation)";
  assert.equal(event.message, warning);
  assert.ok(logs.messages("warning").includes(warning));
});

Deno.test("an empty or missing source keeps the last copy and says so", opts, async (t) => {
  await using logs = await LogCapture.start();
  await using env = await CopierEnv.start();
  env.api.upsert(source(["127.0.0.1", "127.0.0.2"]));
  env.api.upsert(service("vip", { annotations: enabled() }));
  await env.copier();
  const copy = await env.until(() => env.copies().get("vip-kubernetes"), "the copy");

  await t.step("no endpoints", async () => {
    env.api.upsert({ ...source([]), endpoints: [] });
    const said = "the source Service 'default/kubernetes' has no endpoints: keeping the last copy (1 slice)";
    await logs.waitFor((r) => r.level === "warning" && String(r.properties.message) === said);
    assert.equal(env.copies().get("vip-kubernetes")?.metadata.resourceVersion, copy.metadata.resourceVersion);
  });

  await t.step("no slices at all", async () => {
    env.api.remove("endpointslices", "default", "kubernetes");
    const said = "the source Service 'default/kubernetes' has no EndpointSlices: keeping the last copy (1 slice)";
    await logs.waitFor((r) => r.level === "warning" && String(r.properties.message) === said);
    assert.deepEqual(addressesOf(env.copies().get("vip-kubernetes")), ["127.0.0.1", "127.0.0.2"]);
  });

  await t.step("the source comes back", async () => {
    env.api.upsert(source(["127.0.0.5"]));
    await env.until(() => addressesOf(env.copies().get("vip-kubernetes")).join() === "127.0.0.5", "the new copy");
  });
  const writes = env.api.requests.filter((r) => r.path.includes("/vip-kubernetes") && r.method !== "GET");
  assert.deepEqual(writes.map((r) => `${r.method} ${r.status}`), ["PATCH 201", "PATCH 200"]);
});

Deno.test("the slice endpoint-copier-operator wrote is replaced by the copies", opts, async () => {
  await using env = await CopierEnv.start();
  env.api.upsert(source(["127.0.0.1"]));
  env.api.upsert(service("kubernetes-vip"));
  // What the Go operator applies: named after the target, no managed-by label, its own field manager.
  const legacy = {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: {
      name: "kubernetes-vip",
      namespace: "default",
      labels: { "kubernetes.io/service-name": "kubernetes-vip", "endpoint-copier/source": "kubernetes" },
    },
    addressType: "IPv4",
    endpoints: [{ addresses: ["127.0.0.1"] }],
    ports: [{ name: "https", port: 6443, protocol: "TCP" }],
  };
  const q = "?fieldManager=endpoint-copier-operator&force=true";
  assert.equal(
    await send(env.transport, "PATCH", `${SLICES}/kubernetes-vip${q}`, legacy, "application/apply-patch+yaml"),
    201,
  );
  await env.copier();
  await env.until(() => env.api.get("endpointslices", "default", "kubernetes-vip") === undefined, "the old slice gone");
  assert.deepEqual([...env.copies().keys()], ["kubernetes-vip-kubernetes"]);
  const order = env.api.requests.filter((r) => r.method !== "GET" && r.path.startsWith(SLICES)).map((r) =>
    `${r.method} ${new URL(r.path, "https://x").pathname.split("/").pop()}`
  );
  assert.deepEqual(order, [
    "PATCH kubernetes-vip",
    "PATCH kubernetes-vip-kubernetes",
    "DELETE kubernetes-vip",
  ]);
});

Deno.test("the periodic resync reconciles every target again without a change", opts, async () => {
  await using env = await CopierEnv.start();
  env.api.upsert(source(["127.0.0.1"]));
  env.api.upsert(service("vip", { annotations: enabled() }));
  const copier = await env.copier({ resyncPeriodMs: 50 });
  await env.until(() => env.copies().get("vip-kubernetes"), "the copy");
  const reconciles = () => copier.metrics.value("extractedprism_copier_reconciles_total", { result: "success" });
  const before = reconciles();
  await env.until(() => reconciles() >= before + 3, "three more reconciles");
  const writes = env.api.requests.filter((r) => r.path.startsWith(SLICES) && r.method !== "GET");
  assert.equal(writes.length, 1);
});

/** A transport that drops `labelSelector` from the cluster-wide slice LIST and WATCH, as a broken server would. */
function ignoringLabelSelector(inner: KubeTransport): KubeTransport {
  return {
    request: (req) => {
      const [path = "", query = ""] = req.path.split("?");
      if (path !== "/apis/discovery.k8s.io/v1/endpointslices") return inner.request(req);
      const q = new URLSearchParams(query);
      q.delete("labelSelector");
      return inner.request({ ...req, path: `${path}?${q}` });
    },
    close: () => inner.close(),
  };
}

Deno.test("the copier never overwrites or deletes a slice without its managed-by label", opts, async () => {
  await using env = await CopierEnv.start();
  await using logs = await LogCapture.start();
  const foreign = (name: string, serviceName: string) => ({
    ...source(["127.0.0.9"], name),
    metadata: {
      name,
      namespace: "default",
      labels: { "kubernetes.io/service-name": serviceName, "endpointslice.kubernetes.io/managed-by": "someone-else" },
    },
  });
  const kept = [
    env.api.upsert(source(["127.0.0.1"])), // the API servers' own slice: listed as a "copy" of a Service that is gone
    env.api.upsert(foreign("vip-kubernetes", "vip")), // the name of the copy: an apply would take it over
    env.api.upsert(foreign("vip-other", "vip")), // a stale "copy" of vip: would be deleted
  ];
  env.api.upsert(service("vip", { annotations: enabled() }));
  const transport = new SimpleTransport({ baseUrl: env.api.url, caCert: env.pki.ca.cert, token: "copier-x-token" });
  env.api.tokens.add("copier-x-token");
  const copier = await env.copier({}, { transport: ignoringLabelSelector(transport) });
  try {
    const refused = (verb: string, name: string) =>
      logs.waitFor(
        (r) => r.level === "warning" && r.properties.verb === verb && r.properties.slice === `default/${name}`,
        10_000,
      );
    await refused("delete", "kubernetes");
    await refused("overwrite", "vip-kubernetes");
    await refused("delete", "vip-other");
    for (const k of kept) {
      const now = env.api.get("endpointslices", "default", k.metadata.name as string);
      assert.equal(now?.metadata.resourceVersion, k.metadata.resourceVersion, `${k.metadata.name} was written`);
    }
    const writes = env.api.requests.filter((r) => r.method === "PATCH" || r.method === "DELETE");
    assert.deepEqual(writes.filter((r) => r.path.includes("/endpointslices/")).map((r) => r.path), []);
  } finally {
    await env.stop(copier);
    transport.close();
  }
});
