import assert from "node:assert/strict";
import { decodeService, decodeSlice, type ServiceInfo, type SliceInfo } from "../lib/copier/objects.ts";
import { copyIsCurrent, type DesiredSlice, planCleanup, planTarget } from "../lib/copier/reconcile.ts";
import { type CopierDefaults, decideTarget } from "../lib/copier/targets.ts";
import { copyName, sourceLabelValue } from "../lib/copier/slice_name.ts";

const DEFAULTS: CopierDefaults = {
  managedTarget: { namespace: "default", name: "kubernetes-vip" },
  defaultSource: { namespace: "default", name: "kubernetes" },
};
const SOURCE = { namespace: "default", name: "kubernetes" };

function svc(
  name: string,
  o: { annotations?: Record<string, string>; selector?: Record<string, string>; ports?: unknown[]; uid?: string } = {},
): ServiceInfo {
  return decodeService({
    metadata: { name, namespace: "default", uid: o.uid ?? `uid-${name}`, annotations: o.annotations ?? {} },
    spec: { ports: o.ports ?? [{ name: "https", port: 443, targetPort: 6443 }], selector: o.selector },
  });
}

function slice(
  name: string,
  addresses: string[],
  o: { addressType?: string; labels?: Record<string, string>; uid?: string; owner?: string } = {},
): SliceInfo {
  return decodeSlice({
    metadata: {
      name,
      namespace: "default",
      uid: o.uid ?? `uid-${name}`,
      labels: o.labels ?? {},
      ...(o.owner
        ? { ownerReferences: [{ apiVersion: "v1", kind: "Service", name: "vip", uid: o.owner, controller: true }] }
        : {}),
    },
    addressType: o.addressType ?? "IPv4",
    endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready: true } })),
    ports: [{ name: "https", port: 6443, protocol: "TCP" }],
  });
}

/** A stored copy exactly as the plan would write it. */
function stored(d: DesiredSlice, uid = `uid-${d.name}`): SliceInfo {
  return decodeSlice({
    metadata: { name: d.name, namespace: d.namespace, uid, labels: d.labels, ownerReferences: [d.ownerReference] },
    addressType: d.addressType,
    endpoints: d.endpoints,
    ports: d.ports,
  });
}

const enabled = { "endpoint-copier/enabled": "true" };

Deno.test("targets: the flag-named Service, or the annotation exactly 'true'; a selector or itself is refused", () => {
  assert.deepEqual(decideTarget(svc("kubernetes-vip"), DEFAULTS), { kind: "copy", source: SOURCE });
  assert.deepEqual(decideTarget(svc("vip", { annotations: enabled }), DEFAULTS), { kind: "copy", source: SOURCE });
  assert.equal(
    decideTarget(svc("vip", { annotations: { "endpoint-copier/enabled": "True" } }), DEFAULTS).kind,
    "ignore",
  );
  assert.equal(decideTarget(svc("vip"), DEFAULTS).kind, "ignore");
  assert.equal(decideTarget(undefined, DEFAULTS).kind, "ignore");
  const named = svc("vip", {
    annotations: {
      ...enabled,
      "endpoint-copier/default-service-name": "etcd",
      "endpoint-copier/default-service-namespace": "kube-system",
    },
  });
  assert.deepEqual(decideTarget(named, DEFAULTS), { kind: "copy", source: { namespace: "kube-system", name: "etcd" } });
  const selector = decideTarget(svc("vip", { annotations: enabled, selector: { app: "x" } }), DEFAULTS);
  assert.equal(selector.kind === "refuse" && selector.warning.reason, "SelectorRefused");
  const self = decideTarget(svc("kubernetes", { annotations: enabled }), DEFAULTS);
  assert.equal(self.kind === "refuse" && self.warning.reason, "SourceIsTarget");
});

Deno.test("names are <target>-<source slice>, shortened to 63 characters with a hash", () => {
  assert.equal(copyName("vip", "kubernetes"), "vip-kubernetes");
  const long = copyName("a".repeat(40), "b".repeat(40));
  assert.equal(long.length, 63);
  assert.match(long, /^a{40}-b{11}-[0-9a-z]{10}$/);
  assert.equal(copyName("a".repeat(40), "b".repeat(40)), long, "deterministic");
  assert.notEqual(copyName("a".repeat(40), "b".repeat(41)), long);
  // The dash-joined forms collide; the hashed forms do not.
  assert.equal(copyName("a-b", "c"), copyName("a", "b-c"));
  assert.notEqual(copyName("a-b", "c", true), copyName("a", "b-c", true));
  // A cut that ends on the joining dash drops it: never "--" before the hash.
  assert.equal(
    copyName("x".repeat(51), "y".repeat(20)),
    `${"x".repeat(51)}-${copyName("x".repeat(51), "y".repeat(20)).slice(-10)}`,
  );
  assert.equal(sourceLabelValue("kubernetes"), "kubernetes");
  const label = sourceLabelValue(`s.${"x".repeat(250)}`);
  assert.equal(label.length, 63);
  assert.match(label, /^[A-Za-z0-9][-A-Za-z0-9_.]*[A-Za-z0-9]$/);
});

Deno.test("a copy carries the target's ports: targetPort when numeric, else port with a warning; appProtocol", () => {
  const target = svc("vip", {
    ports: [
      { name: "https", port: 443, targetPort: 6443, protocol: "TCP" },
      { name: "rke2", port: 9345, appProtocol: "https" },
      { name: "named", port: 8443, targetPort: "https" },
      { name: "dns", port: 53, targetPort: 5353, protocol: "UDP" },
    ],
  });
  const plan = planTarget({ target, source: SOURCE, sourceSlices: [slice("kubernetes", ["10.0.0.1"])], copies: [] });
  assert.deepEqual(plan.desired[0]?.ports, [
    { name: "https", protocol: "TCP", port: 6443 },
    { name: "rke2", protocol: "TCP", port: 9345, appProtocol: "https" },
    { name: "named", protocol: "TCP", port: 8443 },
    { name: "dns", protocol: "UDP", port: 5353 },
  ]);
  assert.deepEqual(plan.warnings.map((w) => w.reason), ["NamedTargetPort"]);
});

Deno.test("the plan creates what is missing, leaves what matches, deletes what has no source", () => {
  const target = svc("vip", { annotations: enabled });
  const sources = [slice("kubernetes-a", ["10.0.0.1"]), slice("kubernetes-b", ["10.0.0.2"])];
  const first = planTarget({ target, source: SOURCE, sourceSlices: sources, copies: [] });
  assert.deepEqual(first.actions.map((a) => `${a.kind} ${a.kind === "apply" ? `${a.slice.name} ${a.why}` : a.name}`), [
    "apply vip-kubernetes-a create",
    "apply vip-kubernetes-b create",
  ]);
  const [a, b] = first.desired as [DesiredSlice, DesiredSlice];
  assert.deepEqual(a.labels, {
    "kubernetes.io/service-name": "vip",
    "endpointslice.kubernetes.io/managed-by": "extractedprism-endpoint-copier",
    "endpoint-copier/source": "kubernetes-a",
  });
  assert.deepEqual(a.ownerReference, {
    apiVersion: "v1",
    kind: "Service",
    name: "vip",
    uid: "uid-vip",
    controller: true,
  });

  const steady = planTarget({ target, source: SOURCE, sourceSlices: sources, copies: [stored(a), stored(b)] });
  assert.deepEqual(steady.actions, []);

  const orphan = stored({ ...a, name: "vip-kubernetes-old" }, "uid-old");
  const later = planTarget({
    target,
    source: SOURCE,
    sourceSlices: sources.slice(0, 1),
    copies: [stored(a), stored(b), orphan],
  });
  assert.deepEqual(later.actions.map((x) => `${x.kind} ${x.kind === "delete" ? `${x.name} ${x.uid}` : x.slice.name}`), [
    "delete vip-kubernetes-b uid-vip-kubernetes-b",
    "delete vip-kubernetes-old uid-old",
  ]);
});

Deno.test("an address type change is a delete, then a create, before other writes", () => {
  const target = svc("vip");
  const v4 = planTarget({ target, source: SOURCE, sourceSlices: [slice("kubernetes", ["10.0.0.1"])], copies: [] });
  const copy = stored(v4.desired[0] as DesiredSlice);
  const v6 = planTarget({
    target,
    source: SOURCE,
    sourceSlices: [
      slice("kubernetes", ["fd00::1"], { addressType: "IPv6" }),
      slice("kubernetes-2", ["fd00::2"], {
        addressType: "IPv6",
      }),
    ],
    copies: [copy],
  });
  assert.deepEqual(v6.actions.map((a) => `${a.kind} ${a.kind === "apply" ? `${a.slice.name} ${a.why}` : a.name}`), [
    "delete vip-kubernetes",
    "apply vip-kubernetes recreate",
    "apply vip-kubernetes-2 create",
  ]);
});

Deno.test("an empty or missing source writes nothing and keeps the copies; empty source slices lose theirs", () => {
  const target = svc("vip");
  const full = planTarget({ target, source: SOURCE, sourceSlices: [slice("kubernetes", ["10.0.0.1"])], copies: [] });
  const copy = stored(full.desired[0] as DesiredSlice);
  const empty = planTarget({ target, source: SOURCE, sourceSlices: [slice("kubernetes", [])], copies: [copy] });
  assert.deepEqual(empty.actions, []);
  assert.equal(empty.kept, "the source Service 'default/kubernetes' has no endpoints: keeping the last copy (1 slice)");
  assert.deepEqual(empty.warnings.map((w) => w.reason), ["EmptySource"]);
  const missing = planTarget({ target, source: SOURCE, sourceSlices: [], copies: [copy, copy] });
  assert.equal(
    missing.kept,
    "the source Service 'default/kubernetes' has no EndpointSlices: keeping the last copy (2 slices)",
  );
  const partly = planTarget({
    target,
    source: SOURCE,
    sourceSlices: [slice("kubernetes", []), slice("kubernetes-2", ["10.0.0.2"])],
    copies: [copy],
  });
  assert.deepEqual(partly.actions.map((a) => `${a.kind} ${a.kind === "apply" ? a.slice.name : a.name}`), [
    "apply vip-kubernetes-2",
    "delete vip-kubernetes",
  ]);
  assert.ok(partly.desired.every((d) => d.endpoints.length > 0), "never an empty slice");
});

Deno.test("a copy is current unless a field the copier owns differs", () => {
  const target = svc("vip");
  const d = planTarget({ target, source: SOURCE, sourceSlices: [slice("kubernetes", ["10.0.0.1"])], copies: [] })
    .desired[0] as DesiredSlice;
  assert.ok(copyIsCurrent(stored(d), d));
  const extraLabel = { ...d, labels: { ...d.labels, team: "ops" } };
  assert.ok(copyIsCurrent(stored(extraLabel), d), "another writer's label is not ours to remove");
  // The API server defaults a port's protocol and name.
  const defaulted = decodeSlice({
    metadata: { name: d.name, namespace: "default", uid: "u", labels: d.labels, ownerReferences: [d.ownerReference] },
    addressType: "IPv4",
    endpoints: d.endpoints,
    ports: [{ name: "https", port: 6443 }],
  });
  assert.ok(copyIsCurrent(defaulted, d));
  assert.ok(!copyIsCurrent(stored({ ...d, labels: { ...d.labels, "endpoint-copier/source": "x" } }), d));
  assert.ok(!copyIsCurrent(stored({ ...d, endpoints: [{ addresses: ["10.0.0.9"] }] }), d));
  assert.ok(!copyIsCurrent(stored({ ...d, ports: [] }), d));
  const oldOwner = { ...d, ownerReference: { ...d.ownerReference, uid: "uid-of-a-deleted-vip" } };
  assert.ok(!copyIsCurrent(stored(oldOwner), d));
});

Deno.test("a name taken by another target's copy gets the hashed form", () => {
  const target = svc("a-b");
  const plan = planTarget({
    target,
    source: SOURCE,
    sourceSlices: [slice("c", ["10.0.0.1"])],
    copies: [],
    takenNames: new Set(["a-b-c"]),
  });
  assert.equal(plan.desired[0]?.name, copyName("a-b", "c", true));
  assert.deepEqual(planCleanup([slice("a-b-c", ["10.0.0.1"])], "gone").map((a) => a.kind), ["delete"]);
});

Deno.test("untrusted objects are checked", () => {
  assert.throws(() => decodeService({ metadata: { name: "x" } }), /expected metadata with a name and a namespace/);
  assert.throws(() => decodeService({ metadata: { name: "x", namespace: "d" }, spec: { ports: [{}] } }), TypeError);
  assert.throws(() => decodeSlice({ metadata: { name: "x", namespace: "d" } }), /expected an addressType/);
  assert.throws(
    () => decodeSlice({ metadata: { name: "x", namespace: "d" }, addressType: "IPv4", endpoints: {} }),
    TypeError,
  );
});
