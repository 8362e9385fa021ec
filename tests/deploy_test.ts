/**
 * The Kubernetes deployment (`deploy/helm/extractedprism`, `deploy/kubernetes`), checked without helm or a cluster:
 * every YAML file parses, values.yaml passes values.schema.json, the chart has a value for every flag of the program
 * (by the flag's own name), the chart renders (with the Go-template subset of the test support) into the pod the
 * issue asks for, the plain DaemonSet and RBAC are the chart's render, and every argument is checked by the program's
 * own command-line parser, so a renamed flag fails here.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parse, parseAllDocuments } from "yaml";
import denoJson from "../deno.json" with { type: "json" };
import { parseProxyCommandLine as parseCommandLine, PROXY_FLAGS, type ProxyConfig } from "../lib/config/proxy_flags.ts";
import { loadChart, renderChart, renderedObjects } from "./support/deploy_helm_chart.ts";
import { validate } from "./support/deploy_json_schema.ts";
import { REPO_ROOT } from "./support/main_process.ts";

type Obj = Record<string, unknown>;

const CHART_DIR = new URL("deploy/helm/extractedprism/", REPO_ROOT);
const MANIFESTS_DIR = new URL("deploy/kubernetes/", REPO_ROOT);
const chart = await loadChart(CHART_DIR);
const schema = JSON.parse(await Deno.readTextFile(new URL("values.schema.json", CHART_DIR))) as Obj;

async function yamlDocs(url: URL): Promise<Obj[]> {
  const docs = parseAllDocuments(await Deno.readTextFile(url));
  for (const d of docs) assert.equal(d.errors.length, 0, `${url.pathname}: ${d.errors[0]?.message}`);
  return docs.map((d) => d.toJS() as Obj).filter((d) => d !== null);
}

const manifests = new Map<string, Obj[]>();
for await (const e of Deno.readDir(MANIFESTS_DIR)) {
  if (e.name.endsWith(".yaml")) manifests.set(e.name, await yamlDocs(new URL(e.name, MANIFESTS_DIR)));
}

function find(objects: readonly Obj[], kind: string): Obj {
  const found = objects.filter((o) => o["kind"] === kind);
  assert.equal(found.length, 1, `exactly one ${kind}`);
  return found[0]!;
}

const get = (o: unknown, ...path: (string | number)[]): unknown =>
  path.reduce((v: unknown, k) => (v === null || v === undefined ? undefined : (v as Obj)[k]), o);

/** The values a test renders with: the required ones filled in as the plain manifests have them. */
const plainArgs = get(
  find(manifests.get("daemonset.yaml")!, "DaemonSet"),
  "spec",
  "template",
  "spec",
  "containers",
  0,
  "args",
) as string[];
const EXAMPLE = {
  endpoints: plainArgs.find((a) => a.startsWith("--endpoints="))!.slice("--endpoints=".length).split(","),
  image: { repository: "registry.example.com/extractedprism" },
};

function parseArgs(args: readonly string[]): ProxyConfig {
  const outcome = parseCommandLine(args, {}, { version: denoJson.version });
  assert.equal(outcome.kind, "ok", `the program accepts ${JSON.stringify(args)}: ${JSON.stringify(outcome)}`);
  return (outcome as { config: ProxyConfig }).config;
}

/** Checks a pod spec against what the issue asks of the proxy's pod; returns the parsed configuration. */
function assertProxyPod(spec: Obj, opts: { serviceAccount: boolean; dnsPolicy: string }): ProxyConfig {
  assert.equal(spec["hostNetwork"], true);
  assert.equal(spec["dnsPolicy"], opts.dnsPolicy);
  assert.equal(spec["priorityClassName"], "system-node-critical");
  assert.equal(get(spec, "securityContext", "seccompProfile", "type"), "RuntimeDefault");
  if (opts.serviceAccount) {
    assert.equal(typeof spec["serviceAccountName"], "string");
    assert.equal(spec["automountServiceAccountToken"], true);
  } else {
    assert.equal(spec["serviceAccountName"], undefined, "a static pod has no service account");
    assert.equal(spec["automountServiceAccountToken"], false);
  }
  const containers = spec["containers"] as Obj[];
  assert.equal(containers.length, 1);
  const c = containers[0]!;
  assert.deepEqual(c["securityContext"], {
    runAsNonRoot: true,
    runAsUser: 65534,
    runAsGroup: 65534,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ["ALL"] },
    seccompProfile: { type: "RuntimeDefault" },
  });
  assert.deepEqual(c["resources"], { requests: { cpu: "10m", memory: "32Mi" }, limits: { memory: "64Mi" } });

  const config = parseArgs(c["args"] as string[]);
  // On a hostNetwork pod every container port is defaulted to a hostPort, and the scheduler would keep the upgrade's
  // surge pod off a node whose old pod holds it: no ports are declared.
  assert.equal(c["ports"], undefined, "no container ports (they would be hostPorts)");
  const probeHost = config.healthBindAddress === "0.0.0.0" ? "127.0.0.1" : config.healthBindAddress;
  for (const [probe, path] of [["livenessProbe", "/healthz"], ["readinessProbe", "/readyz"]] as const) {
    assert.deepEqual(
      get(c, probe, "httpGet"),
      { host: probeHost, path, port: config.healthPort },
      `${probe} on the health port`,
    );
  }

  const volumes = new Map((spec["volumes"] as Obj[]).map((v) => [v["name"], v]));
  const mounts = new Map((c["volumeMounts"] as Obj[]).map((m) => [m["mountPath"], m["name"]]));
  assert.ok(get(volumes.get(mounts.get("/tmp")), "emptyDir"), "/tmp is an emptyDir under a read-only root");
  if (config.stateFile !== undefined) {
    const dir = config.stateFile.slice(0, config.stateFile.lastIndexOf("/"));
    assert.match(dir, /^\/var\/lib\/extractedprism$/);
    assert.deepEqual(get(volumes.get(mounts.get(dir)), "hostPath"), { path: dir, type: "DirectoryOrCreate" });
    const init = (spec["initContainers"] as Obj[] | undefined) ?? [];
    assert.equal(init.length, 1, "an init container makes the state directory the proxy's");
    assert.deepEqual(init[0]!["command"], ["chown", "65534:65534", dir]);
    assert.deepEqual(get(init[0], "securityContext", "capabilities"), { drop: ["ALL"], add: ["CHOWN"] });
    assert.equal(get(init[0], "securityContext", "allowPrivilegeEscalation"), false);
    assert.equal(get(init[0], "securityContext", "readOnlyRootFilesystem"), true);
  }
  if (config.kubeconfig !== undefined) {
    assert.equal(get(volumes.get(mounts.get(config.kubeconfig)), "hostPath", "type"), "File");
  }
  return config;
}

/** Checks the RBAC objects: a ClusterRole with exactly get/list/watch on endpointslices, bound to the pod's account. */
function assertRbac(objects: readonly Obj[], serviceAccount: string, namespace: string): void {
  const role = find(objects, "ClusterRole");
  assert.deepEqual(role["rules"], [{
    apiGroups: ["discovery.k8s.io"],
    resources: ["endpointslices"],
    verbs: ["get", "list", "watch"],
  }]);
  const binding = find(objects, "ClusterRoleBinding");
  assert.deepEqual(binding["roleRef"], {
    apiGroup: "rbac.authorization.k8s.io",
    kind: "ClusterRole",
    name: get(role, "metadata", "name"),
  });
  assert.deepEqual(binding["subjects"], [{ kind: "ServiceAccount", name: serviceAccount, namespace }]);
  const sa = find(objects, "ServiceAccount");
  assert.equal(get(sa, "metadata", "name"), serviceAccount);
  assert.equal(get(sa, "metadata", "namespace"), namespace);
}

Deno.test("every YAML file of the deployment parses", async () => {
  for (const name of ["Chart.yaml", "values.yaml"]) assert.ok(parse(await Deno.readTextFile(new URL(name, CHART_DIR))));
  assert.deepEqual([...manifests.keys()].sort(), ["daemonset.yaml", "node-token.yaml", "rbac.yaml", "static-pod.yaml"]);
  for (const [name, docs] of manifests) {
    for (const d of docs) assert.ok(typeof d["apiVersion"] === "string" && typeof d["kind"] === "string", name);
  }
  assert.equal(chart.meta["apiVersion"], "v2");
  assert.equal(chart.meta["appVersion"], denoJson.version, "the chart's appVersion is the program's version");
});

Deno.test("values.yaml passes values.schema.json, and the schema refuses values the program would refuse", () => {
  assert.deepEqual(validate(schema, chart.values), []);
  const bad: [string, Obj][] = [
    ["a flag the program does not have", { flags: { "no-such-flag": "1" } }],
    ["an endpoint without a port", { endpoints: ["10.0.0.1"] }],
    ["a port out of range", { ports: { proxy: 65536, health: 7446 } }],
    ["a digest that is not sha256", { image: { digest: "latest" } }],
    ["an unknown top-level key", { endpoint: [] }],
  ];
  for (const [what, values] of bad) {
    assert.notDeepEqual(validate(schema, { ...chart.values, ...values }), [], `the schema refuses ${what}`);
  }
  assert.deepEqual(validate(schema, { ...chart.values, ...EXAMPLE }), [], "the example values pass");
});

/** Flags the chart sets from its own values: the literal `--name=` in its templates. */
async function chartManagedFlags(): Promise<string[]> {
  const out = new Set<string>();
  for await (const e of Deno.readDir(new URL("templates/", CHART_DIR))) {
    const text = await Deno.readTextFile(new URL(`templates/${e.name}`, CHART_DIR));
    for (const m of text.matchAll(/"--([a-z][a-z0-9-]*)=/g)) out.add(m[1]!);
  }
  return [...out].sort();
}

Deno.test("the chart has a value for every flag of the program, under the flag's own name", async () => {
  const managed = await chartManagedFlags();
  const flagValues = Object.keys(chart.values["flags"] as Obj).sort();
  const names = PROXY_FLAGS.map((f) => f.name).sort();
  assert.deepEqual([...managed, ...flagValues].sort(), names, "chart-managed flags and flags.* are the flag table");
  assert.deepEqual(managed.filter((m) => flagValues.includes(m)), [], "no flag is set twice");
  assert.deepEqual(managed, ["bind-port", "enable-discovery", "endpoints", "health-port", "state-file"]);
  const schemaFlags = Object.keys(get(schema, "properties", "flags", "properties") as Obj).sort();
  assert.deepEqual(schemaFlags, flagValues, "the schema lists exactly the flags");
});

Deno.test("the chart renders the DaemonSet, its RBAC and NOTES as asked", async (t) => {
  await t.step("default values", () => {
    const rendered = renderChart(chart, { values: EXAMPLE });
    const objects = renderedObjects(rendered);
    const ds = find(objects, "DaemonSet");
    assert.equal(get(ds, "metadata", "namespace"), "kube-system");
    assert.equal(get(ds, "spec", "updateStrategy", "type"), "RollingUpdate");
    // The zero-gap upgrade: the new pod beside the old one, the old one stopped only after the new one was ready.
    assert.deepEqual(get(ds, "spec", "updateStrategy", "rollingUpdate"), { maxSurge: 1, maxUnavailable: 0 });
    assert.ok((get(ds, "spec", "minReadySeconds") as number) >= 5, "minReadySeconds covers the new process's bind");
    const spec = get(ds, "spec", "template", "spec") as Obj;
    assert.deepEqual(spec["tolerations"], [{ operator: "Exists" }], "every taint is tolerated");
    const config = assertProxyPod(spec, { serviceAccount: true, dnsPolicy: "Default" });
    assert.deepEqual(
      config.endpoints.map((e) => `${e.host.includes(":") ? `[${e.host}]` : e.host}:${e.port}`),
      EXAMPLE.endpoints,
    );
    assert.equal(config.enableDiscovery, true);
    assert.equal(config.stateFile, "/var/lib/extractedprism/endpoints.json");
    assert.equal(config.healthCaFile, "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt");
    assert.equal(get(spec, "containers", 0, "image"), `${EXAMPLE.image.repository}:${chart.meta["appVersion"]}`);
    assertRbac(objects, spec["serviceAccountName"] as string, "kube-system");
    assert.equal(objects.filter((o) => o["kind"] === "PodMonitor").length, 0);
    assert.match(rendered.get("NOTES.txt")!, /curl -s http:\/\/127\.0\.0\.1:7446\/readyz/);
  });

  await t.step("every flag set through values reaches the program", () => {
    const flags = Object.fromEntries(
      PROXY_FLAGS.filter((f) => f.name in (chart.values["flags"] as Obj) && f.default !== undefined).map((
        f,
      ) => [f.name, f.default]),
    );
    const objects = renderedObjects(renderChart(chart, { values: { ...EXAMPLE, flags } }));
    const args = get(find(objects, "DaemonSet"), "spec", "template", "spec", "containers", 0, "args") as string[];
    for (const [name, value] of Object.entries(flags)) assert.ok(args.includes(`--${name}=${value}`), `--${name}`);
    parseArgs(args);
  });

  await t.step("a digest, other ports, no discovery, no state file and a PodMonitor", () => {
    const digest = `sha256:${"ab".repeat(32)}`;
    const objects = renderedObjects(renderChart(chart, {
      values: {
        ...EXAMPLE,
        image: { ...EXAMPLE.image, digest },
        ports: { proxy: 17445, health: 17446 },
        discovery: { enabled: false },
        stateFile: { enabled: false },
        flags: { "health-bind-address": "0.0.0.0" },
        podMonitor: { enabled: true },
      },
    }));
    const spec = get(find(objects, "DaemonSet"), "spec", "template", "spec") as Obj;
    assert.equal(get(spec, "containers", 0, "image"), `${EXAMPLE.image.repository}@${digest}`);
    const config = parseArgs(get(spec, "containers", 0, "args") as string[]);
    assert.equal(config.bindPort, 17445);
    assert.equal(config.healthPort, 17446);
    assert.equal(config.enableDiscovery, false);
    assert.equal(config.stateFile, undefined);
    assert.equal(spec["initContainers"], undefined);
    assert.equal(get(spec, "containers", 0, "readinessProbe", "httpGet", "host"), "127.0.0.1", "wildcard → loopback");
    assert.equal(objects.filter((o) => o["kind"] === "ClusterRole").length, 0, "no RBAC without discovery");
    const endpoint = get(find(objects, "PodMonitor"), "spec", "podMetricsEndpoints", 0) as Obj;
    assert.equal(endpoint["port"], undefined, "the pod declares no ports to name");
    const rewrites = (endpoint["relabelings"] as Obj[]).filter((r) => r["targetLabel"] === "__address__");
    const health = get(find(objects, "DaemonSet"), "spec", "template", "spec", "containers", 0, "readinessProbe");
    const port = (health as Obj)["httpGet"] as Obj;
    assert.deepEqual(rewrites.map((r) => r["replacement"]), [`$1:${port["port"]}`, `[$1]:${port["port"]}`]);
  });

  await t.step("missing required values and a PodMonitor on loopback fail with a clear message", () => {
    assert.throws(
      () => renderChart(chart, { values: { image: EXAMPLE.image } }),
      /endpoints is required: list the API servers/,
    );
    assert.throws(
      () => renderChart(chart, { values: { endpoints: EXAMPLE.endpoints } }),
      /image\.repository is required/,
    );
    assert.throws(
      () => renderChart(chart, { values: { ...EXAMPLE, podMonitor: { enabled: true } } }),
      /podMonitor\.enabled needs flags\.health-bind-address/,
    );
  });
});

/** Drops what only Helm adds (its labels), to compare a render with the plain manifests. */
function withoutHelmLabels(o: Obj): Obj {
  return JSON.parse(JSON.stringify(o), (k, v) => {
    if ((k === "labels" || k === "matchLabels") && typeof v === "object" && v !== null) {
      return { "app.kubernetes.io/name": v["app.kubernetes.io/name"] };
    }
    return v;
  });
}

Deno.test("the plain DaemonSet and RBAC are the chart's render, and hold the invariants", () => {
  const plain = [...manifests.get("daemonset.yaml")!, ...manifests.get("rbac.yaml")!];
  const rendered = renderedObjects(
    renderChart(chart, { values: { ...EXAMPLE, image: { repository: "registry.example.com/extractedprism" } } }),
  );
  for (const kind of ["DaemonSet", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"]) {
    assert.deepEqual(find(plain, kind), withoutHelmLabels(find(rendered, kind)), `${kind} as the chart renders it`);
  }
  const spec = get(find(plain, "DaemonSet"), "spec", "template", "spec") as Obj;
  assertProxyPod(spec, { serviceAccount: true, dnsPolicy: "Default" });
  assertRbac(plain, "extractedprism", "kube-system");
  const token = find(manifests.get("node-token.yaml")!, "Secret");
  assert.equal(token["type"], "kubernetes.io/service-account-token");
  assert.equal(get(token, "metadata", "annotations", "kubernetes.io/service-account.name"), "extractedprism");
});

Deno.test("the static pod runs without a service account, from static endpoints, the state file and a kubeconfig", () => {
  const pod = find(manifests.get("static-pod.yaml")!, "Pod");
  assert.equal(get(pod, "metadata", "namespace"), "kube-system");
  const config = assertProxyPod(get(pod, "spec") as Obj, { serviceAccount: false, dnsPolicy: "Default" });
  assert.equal(config.stateFile, "/var/lib/extractedprism/endpoints.json");
  assert.equal(config.kubeconfig, "/etc/extractedprism/kubeconfig");
  assert.ok(config.endpoints.length >= 1);
});

Deno.test("the chart's README values table is values.yaml", async () => {
  const readme = await Deno.readTextFile(new URL("README.md", CHART_DIR));
  const rows = readme.split("\n").filter((l) => /^\|\s*`[^`]+`\s*\|/.test(l)).map((l) =>
    l.split("|").map((c) => c.trim())
  );
  const table = new Map(rows.map((r) => [r[1]!.slice(1, -1), r[3]!.slice(1, -1)]));
  const leaves = new Map<string, unknown>();
  const walk = (v: Obj, s: Obj, prefix: string) => {
    for (const [k, x] of Object.entries(v)) {
      const sub = get(s, "properties", k) as Obj | undefined;
      const isMap = typeof x === "object" && x !== null && !Array.isArray(x);
      if (isMap && sub?.["additionalProperties"] === false && sub["properties"]) walk(x as Obj, sub, `${prefix}${k}.`);
      else leaves.set(`${prefix}${k}`, x);
    }
  };
  walk(chart.values, schema, "");
  assert.deepEqual([...table.keys()], [...leaves.keys()], "one row per value, in values.yaml's order");
  for (const [key, value] of leaves) assert.equal(table.get(key), JSON.stringify(value), `the default of ${key}`);
});
