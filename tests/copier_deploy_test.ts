import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { COPIER_FLAGS, parseCopierCommandLine } from "../lib/config/copier_flags.ts";
import type { Grant } from "./support/fake_apiserver.ts";
import { endpointSlice } from "./support/fake_apiserver.ts";
import { CopierEnv, enabled, service } from "./support/copier_env.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };
const DIR = new URL("../deploy/endpoint-copier/", import.meta.url);

// deno-lint-ignore no-explicit-any
type Doc = any;

async function manifests(): Promise<Doc[]> {
  const docs: Doc[] = [];
  for await (const e of Deno.readDir(DIR)) {
    if (!e.isFile || !e.name.endsWith(".yaml")) continue;
    const text = await Deno.readTextFile(new URL(e.name, DIR));
    for (const d of parseAllDocuments(text)) {
      assert.deepEqual(d.errors, [], `${e.name} parses`);
      docs.push(d.toJS());
    }
  }
  return docs;
}

function one(docs: Doc[], kind: string, name?: string): Doc {
  const found = docs.filter((d) => d.kind === kind && (name === undefined || d.metadata.name === name));
  assert.equal(found.length, 1, `exactly one ${kind} ${name ?? ""}`);
  return found[0];
}

/** The rules of a role as `group/resource: verbs` lines, sorted. */
function rulesOf(role: Doc): string[] {
  return role.rules.flatMap((r: Doc) =>
    r.resources.flatMap((res: string) =>
      r.apiGroups.map((g: string) => `${g || "core"}/${res}: ${[...r.verbs].sort().join(",")}`)
    )
  ).sort();
}

Deno.test("the RBAC is exactly the issue's: a ClusterRole of its own, and a Role for the Lease", async () => {
  const docs = await manifests();
  const sa = one(docs, "ServiceAccount");
  const clusterRole = one(docs, "ClusterRole");
  assert.equal(clusterRole.metadata.name, "extractedprism-endpoint-copier");
  assert.deepEqual(rulesOf(clusterRole), [
    "core/events: create,patch",
    "core/services: get,list,watch",
    "discovery.k8s.io/endpointslices: create,delete,get,list,patch,update,watch",
  ]);
  const role = one(docs, "Role");
  assert.equal(role.metadata.namespace, sa.metadata.namespace);
  assert.deepEqual(rulesOf(role), ["coordination.k8s.io/leases: create,get,update"]);
  for (const [bindingKind, roleRef] of [["ClusterRoleBinding", clusterRole], ["RoleBinding", role]]) {
    const b = one(docs, bindingKind);
    assert.deepEqual(b.roleRef, {
      apiGroup: "rbac.authorization.k8s.io",
      kind: roleRef.kind,
      name: roleRef.metadata.name,
    });
    assert.deepEqual(b.subjects, [{
      kind: "ServiceAccount",
      name: sa.metadata.name,
      namespace: sa.metadata.namespace,
    }]);
  }
});

Deno.test("the Deployment: 2 replicas, a PDB, locked down, probes where the copier serves them", async () => {
  const docs = await manifests();
  const deploy = one(docs, "Deployment");
  const pod = deploy.spec.template.spec;
  const [container, ...others] = pod.containers;
  assert.deepEqual(others, []);
  assert.equal(deploy.spec.replicas, 2);
  assert.equal(pod.serviceAccountName, one(docs, "ServiceAccount").metadata.name);
  assert.deepEqual(pod.securityContext.seccompProfile, { type: "RuntimeDefault" });
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.deepEqual(container.securityContext, {
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ["ALL"] },
  });
  const selector = deploy.spec.selector.matchLabels;
  for (const [k, v] of Object.entries(selector)) assert.equal(deploy.spec.template.metadata.labels[k], v);
  const pdb = one(docs, "PodDisruptionBudget");
  assert.deepEqual(pdb.spec.selector.matchLabels, selector);
  assert.equal(pdb.spec.minAvailable, 1);

  // The args are the program's: `endpoint-copier`, then flags the copier accepts.
  assert.equal(container.args[0], "endpoint-copier");
  const parsed = parseCopierCommandLine(container.args.slice(1), {}, { version: "0" });
  assert.ok(parsed.kind === "ok", parsed.kind === "exit" ? parsed.stderr : "");
  assert.equal(parsed.config.leaderElect, true);
  const portOf = (p: number | string) =>
    typeof p === "number" ? p : container.ports.find((c: Doc) => c.name === p)?.containerPort;
  assert.equal(portOf(container.livenessProbe.httpGet.port), parsed.config.healthProbeBindAddress?.port);
  assert.equal(container.livenessProbe.httpGet.path, "/healthz");
  assert.equal(portOf(container.readinessProbe.httpGet.port), parsed.config.healthProbeBindAddress?.port);
  assert.equal(container.readinessProbe.httpGet.path, "/readyz");
  assert.equal(portOf("metrics"), parsed.config.metricsBindAddress?.port);
});

Deno.test("the manifests' RBAC is enough for every request the copier makes", opts, async () => {
  const docs = await manifests();
  const grants: Grant[] = [one(docs, "ClusterRole"), one(docs, "Role")].flatMap((r: Doc) =>
    r.rules.flatMap((rule: Doc) =>
      rule.resources.flatMap((res: string) => rule.verbs.map((verb: string) => ({ verb, resource: res })))
    )
  );
  await using env = await CopierEnv.start();
  env.api.rbac.set("copier-1", grants);
  env.api.upsert(endpointSlice("kubernetes", ["127.0.0.1"], 6443));
  const ports = [{ name: "https", port: 443, targetPort: "https" }];
  env.api.upsert(service("vip", { annotations: enabled(), ports }));
  const copier = await env.copier({ leaderElect: true });
  await env.until(() => env.copies().get("vip-kubernetes"), "the copy");
  await env.until(() => env.api.list("events").length === 1, "the NamedTargetPort Event");
  env.api.upsert(service("vip", { ports }));
  await env.until(() => env.copies().size === 0, "the copy deleted");
  await env.stop(copier);
  const mine = env.api.requests.filter((r) => r.user === "copier-1");
  assert.ok(mine.length > 0);
  assert.deepEqual(mine.filter((r) => r.status === 403).map((r) => `${r.method} ${r.path}`), []);
  // Every kind of request happened: watches, apply, delete, Event, Lease create and update (the release).
  const resourceOf = (path: string) =>
    ["endpointslices", "services", "leases", "events"].find((x) => path.includes(`/${x}`));
  const kinds = new Set(mine.map((r) => `${r.watch ? "WATCH" : r.method} ${resourceOf(r.path)}`));
  const expected = [
    "WATCH services",
    "WATCH endpointslices",
    "PATCH endpointslices",
    "DELETE endpointslices",
    "POST events",
    "POST leases",
  ];
  for (const k of expected) {
    assert.ok(kinds.has(k), `${k} in ${[...kinds].join(", ")}`);
  }
  assert.ok(mine.some((r) => r.method === "PUT" && r.path.includes("/leases/") && r.status === 200), "Lease released");
});

Deno.test("the README's flag table has every flag with its variable and default", async () => {
  const readme = await Deno.readTextFile(new URL("README.md", DIR));
  const rows = new Map(
    readme.split("\n").filter((l) => l.startsWith("| `--")).map((l) => {
      const cells = l.split("|").map((c) => c.trim());
      return [cells[1]?.replaceAll("`", "") ?? "", cells] as const;
    }),
  );
  assert.deepEqual([...rows.keys()], COPIER_FLAGS.map((f) => `--${f.name}`));
  for (const f of COPIER_FLAGS) {
    const cells = rows.get(`--${f.name}`) ?? [];
    assert.equal(cells[2], `\`${f.env}\``);
    if (f.default !== undefined) assert.equal(cells[3], `\`${f.default}\``, `default of --${f.name}`);
  }
});
