/**
 * A real Kubernetes client in the node namespace: `@kubernetes/client-node`'s informer (its own list, watch and
 * reconnect logic) on the ConfigMaps of one namespace, and its generated `CoreV1Api` for creates and a request loop.
 * Everything goes through the proxy: the kubeconfig names `https://127.0.0.1:7445` with `tls-server-name` (client-node
 * reads it into its cluster's `tlsServerName` and uses it as the TLS server name of every request and watch).
 *
 * Line protocol of the fault suite (`_lines.ts`). Events, each with `at` (wall-clock milliseconds read from the
 * process's monotonic clock, `performance.timeOrigin + performance.now()`, comparable with the test's):
 * - `{"event":"informer","kind":"connect"}` when the informer (re)connects: before its list, or before a watch;
 * - `{"event":"informer","kind":"add"|"update"|"delete","name":N,"rv":R}` per object;
 * - `{"event":"informer","kind":"error","error":E}` when its list or watch fails; the program restarts the informer
 *   after `<restart-ms>`, as client-node's documentation does (an error stops a client-node informer);
 * - `{"event":"progress","done":N}` per finished request of a request loop.
 *
 * Commands:
 * - `{"op":"create","name":N}`: creates ConfigMap N; answers its resourceVersion.
 * - `{"op":"requests","count":N,"spacingMs":S,"timeoutMs":T}`: N reads of the namespace, one started every S ms
 *   (they may overlap), each failed after T ms; one result per request.
 *
 * Usage: `informer_client.ts <kubeconfig> <namespace> <restart-ms>`
 *
 * @module
 */
import { CoreV1Api, KubeConfig, makeInformer, type V1ConfigMap } from "@kubernetes/client-node";
import { type Command, emit, message, num, serveCommands } from "../../faults/support/_lines.ts";
import { paced, type RequestResult } from "./_paced.ts";

const MAX_REQUESTS = 2000;

const [kubeconfigPath, namespace, restartArg] = Deno.args;
const restartMs = Number(restartArg);
if (kubeconfigPath === undefined || namespace === undefined || !Number.isFinite(restartMs)) {
  throw new Error("Usage: informer_client.ts <kubeconfig> <namespace> <restart-ms>");
}
const kc = new KubeConfig();
kc.loadFromFile(kubeconfigPath);
const api = kc.makeApiClient(CoreV1Api);

function now(): number {
  return performance.timeOrigin + performance.now();
}

function informerEvent(kind: string, fields: Record<string, unknown> = {}): void {
  emit({ event: "informer", kind, at: now(), ...fields });
}

const informer = makeInformer(
  kc,
  `/api/v1/namespaces/${namespace}/configmaps`,
  () => api.listNamespacedConfigMap({ namespace }),
);
for (const kind of ["add", "update", "delete"] as const) {
  informer.on(kind, (cm: V1ConfigMap) => {
    informerEvent(kind, { name: cm.metadata?.name ?? "", rv: cm.metadata?.resourceVersion ?? "" });
  });
}
informer.on("connect", () => informerEvent("connect"));
let stopped = false;
informer.on("error", (e: unknown) => {
  informerEvent("error", { error: message(e) || String((e as { code?: unknown })?.code ?? e) });
  setTimeout(() => {
    if (!stopped) {
      informer.start().catch((err: unknown) => informerEvent("error", { error: message(err) }));
    }
  }, restartMs);
});

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function requests(id: number, count: number, spacingMs: number, timeoutMs: number): Promise<RequestResult[]> {
  return paced({ id, count, max: MAX_REQUESTS, spacingMs, now }, async () => {
    await withTimeout(api.readNamespace({ name: namespace ?? "" }), timeoutMs);
    return 200;
  });
}

async function handle(cmd: Command): Promise<unknown> {
  switch (cmd.op) {
    case "create": {
      const name = String(cmd.name ?? "");
      const created = await withTimeout(
        api.createNamespacedConfigMap({ namespace: namespace ?? "", body: { metadata: { name }, data: { k: "v" } } }),
        10_000,
      );
      return { rv: created.metadata?.resourceVersion ?? "", at: now() };
    }
    case "requests":
      return {
        results: await requests(cmd.id, num(cmd, "count"), num(cmd, "spacingMs"), num(cmd, "timeoutMs", 5000)),
      };
    default:
      throw new Error(`Cannot run command '${cmd.op}': expected create or requests`);
  }
}

informer.start().catch((e: unknown) => informerEvent("error", { error: message(e) }));
await serveCommands(handle);
stopped = true;
await informer.stop();
