/**
 * The chart's optional PrometheusRule and Grafana dashboard: both render, and every metric they name is one the
 * program really exports, spelled as it appears in `/metrics` (counters with `_total`), so a renamed metric fails here
 * rather than in an alert that silently never fires.
 *
 * @module
 */
import assert from "node:assert/strict";
import { renderProxyMetrics } from "../lib/status/metrics.ts";
import { Upstream } from "../lib/upstream/upstream.ts";
import { loadChart, mergeValues, renderChart, renderedObjects } from "./support/deploy_helm_chart.ts";
import { validate } from "./support/deploy_json_schema.ts";
import { REPO_ROOT } from "./support/main_process.ts";

type Obj = Record<string, unknown>;

const CHART_DIR = new URL("deploy/helm/extractedprism/", REPO_ROOT);
const chart = await loadChart(CHART_DIR);
const schema = JSON.parse(await Deno.readTextFile(new URL("values.schema.json", CHART_DIR))) as Obj;

const REQUIRED = {
  endpoints: ["127.0.0.11:6443"],
  image: { repository: "registry.example.com/extractedprism" },
};
const MONITORING = {
  ...REQUIRED,
  flags: { "health-bind-address": "0.0.0.0" },
  podMonitor: { enabled: true },
  prometheusRule: { enabled: true },
  dashboard: { enabled: true },
};

/** The series names of a real `/metrics` text with one upstream, and the label values each label takes there. */
function exported(): { names: Set<string>; labels: Map<string, Set<string>> } {
  const up = new Upstream({ host: "127.0.0.1", port: 6443 }, { rise: 1, fall: 1 });
  up.recordSuccess(1.5, 0);
  const text = renderProxyMetrics({
    ready: true,
    upstreams: [up.snapshot()],
    accepted: 1,
    acceptErrors: 0,
    failedDials: 0,
    activeConnections: 0,
    upstreamsDropped: 0,
    internalErrors: 0,
    health: { acceptErrors: 0, refused: 0, evicted: 0 },
  });
  const names = new Set<string>();
  const labels = new Map<string, Set<string>>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? /.exec(line);
    assert.ok(m, `a sample line: ${line}`);
    names.add(m[1]!);
    for (const [, k, v] of (m[2] ?? "").matchAll(/([a-z_]+)="([^"]*)"/g)) {
      if (!labels.has(k!)) labels.set(k!, new Set());
      labels.get(k!)!.add(v!);
    }
  }
  return { names, labels };
}

/** Metric names and `label="value"` matchers of our own labels in a PromQL expression. */
function used(expr: string): { names: string[]; matchers: [string, string][] } {
  const names = [...expr.matchAll(/\bextractedprism_[a-z0-9_]+/g)].map((m) => m[0]);
  const matchers = [...expr.matchAll(/\b(state|upstream)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!] as [string, string]);
  return { names, matchers };
}

function assertExported(where: string, expr: string, real: ReturnType<typeof exported>): number {
  const { names, matchers } = used(expr);
  for (const name of names) assert.ok(real.names.has(name), `${where}: '${name}' is not a series of /metrics`);
  for (const [label, value] of matchers) {
    assert.ok(real.labels.get(label)?.has(value), `${where}: ${label}="${value}" never appears in /metrics`);
  }
  return names.length;
}

Deno.test("the PrometheusRule and the dashboard are off by default and valid values turn them on", () => {
  const objects = renderedObjects(renderChart(chart, { values: REQUIRED }));
  assert.deepEqual(objects.filter((o) => o["kind"] === "PrometheusRule" || o["kind"] === "ConfigMap"), []);
  assert.deepEqual(validate(schema, mergeValues(chart.values, MONITORING)), []);
  assert.notDeepEqual(
    validate(schema, mergeValues(chart.values, { prometheusRule: { notReadyFor: "five minutes" } })),
    [],
  );
  assert.notDeepEqual(validate(schema, mergeValues(chart.values, { prometheusRule: { majorFaultsPerSecond: 0 } })), []);
  assert.notDeepEqual(validate(schema, mergeValues(chart.values, { prometheusRule: { stalledFraction: 2 } })), []);
  assert.notDeepEqual(validate(schema, mergeValues(chart.values, { dashboard: { enabeld: true } })), []);
});

Deno.test("every metric the alerts and the dashboard use is one the program exports", async (t) => {
  const real = exported();
  const objects = renderedObjects(renderChart(chart, { values: MONITORING, namespace: "monitoring-test" }));

  await t.step("the PrometheusRule's six alerts, with the periods of the values", () => {
    const rule = objects.find((o) => o["kind"] === "PrometheusRule") as Obj;
    assert.equal((rule["metadata"] as Obj)["namespace"], "monitoring-test");
    const rules = ((rule["spec"] as Obj)["groups"] as Obj[]).flatMap((g) => g["rules"] as Obj[]);
    assert.deepEqual(rules.map((r) => [r["alert"], r["for"]]), [
      ["ExtractedprismNotReady", "5m"],
      ["ExtractedprismUpstreamUnhealthy", "10m"],
      ["ExtractedprismAcceptErrors", undefined],
      ["ExtractedprismInternalErrors", undefined],
      ["ExtractedprismStalled", "15m"],
      ["ExtractedprismMemoryThrashing", "15m"],
    ]);
    let count = 0;
    for (const r of rules) count += assertExported(String(r["alert"]), String(r["expr"]), real);
    // The one alert on the kubelet's cAdvisor series: its name, labels and this release's pods and container.
    const thrashing = rules.find((r) => r["alert"] === "ExtractedprismMemoryThrashing")!;
    assert.equal(
      thrashing["expr"],
      'rate(container_memory_failures_total{namespace="monitoring-test", pod=~"extractedprism-[a-z0-9]+", ' +
        'container="extractedprism", failure_type="pgmajfault", scope="container"}[10m]) > 10',
    );
    const daemonSet = objects.find((o) => o["kind"] === "DaemonSet") as Obj;
    assert.equal((daemonSet["metadata"] as Obj)["name"], "extractedprism");
    const pod = ((daemonSet["spec"] as Obj)["template"] as Obj)["spec"] as Obj;
    assert.ok((pod["containers"] as Obj[]).some((c) => c["name"] === "extractedprism"));
    assert.match(String((thrashing["annotations"] as Obj)["description"]), /more than 10 major page faults a second/);
    assert.ok(count >= 6, `${count} metric names checked`);
    for (const r of rules) assert.doesNotMatch(String(r["expr"]), /\{\{|\}\}/, "no template left in an expression");
  });

  await t.step("the dashboard ConfigMap for the Grafana sidecar, its JSON from the chart's file", async () => {
    const cm = objects.find((o) => o["kind"] === "ConfigMap") as Obj;
    assert.equal(((cm["metadata"] as Obj)["labels"] as Obj)["grafana_dashboard"], "1");
    const text = (cm["data"] as Obj)["extractedprism.json"] as string;
    const file = await Deno.readTextFile(new URL("dashboards/extractedprism.json", CHART_DIR));
    assert.equal(text, file.trimEnd(), "the file as it is");
    const dashboard = JSON.parse(text) as Obj;
    const panels = dashboard["panels"] as Obj[];
    const titles = panels.map((p) => String(p["title"]));
    for (
      const want of [
        /readiness per node/i,
        /upstream states/i,
        /connections/i,
        /bytes/i,
        /round trip|rtt/i,
        /did not run/i,
      ]
    ) {
      assert.ok(titles.some((t) => want.test(t)), `a panel for ${want} among ${titles.join(", ")}`);
    }
    let count = 0;
    for (const p of panels) {
      const targets = p["targets"] as Obj[];
      assert.ok(targets.length > 0, `${p["title"]} has queries`);
      for (const q of targets) count += assertExported(`panel '${p["title"]}'`, String(q["expr"]), real);
    }
    const variables = ((dashboard["templating"] as Obj)["list"] as Obj[]).map((v) => String(v["definition"] ?? ""));
    for (const v of variables) count += assertExported("a variable", v, real);
    assert.ok(count >= 10, `${count} metric names checked`);
  });

  await t.step("the PodMonitor gives every series the node's name, which both group by", () => {
    const monitor = objects.find((o) => o["kind"] === "PodMonitor") as Obj;
    const relabelings = (((monitor["spec"] as Obj)["podMetricsEndpoints"] as Obj[])[0] as Obj)["relabelings"] as Obj[];
    assert.ok(
      relabelings.some((r) =>
        r["targetLabel"] === "node" && (r["sourceLabels"] as string[])[0] === "__meta_kubernetes_pod_node_name"
      ),
    );
  });
});

Deno.test("a metric name the program does not export is caught", () => {
  const real = exported();
  assert.throws(() => assertExported("x", "rate(extractedprism_accept_errors[5m])", real), /not a series/);
  assert.throws(() => assertExported("x", 'extractedprism_upstream_state{state="down"}', real), /never appears/);
  assert.equal(assertExported("x", "extractedprism_upstream_sent_bytes_total", real), 1);
});
