/**
 * The Kubernetes API that the program discovers its upstreams from, for the removal scenario: the project's fake API
 * server (real HTTPS, token auth, LIST + WATCH of EndpointSlices), run inside the proxy's namespace on 127.0.0.1, with
 * a kubeconfig for it written where the test asks.
 *
 * Commands (JSON lines on stdin, see `_lines.ts`): `{"op":"endpoints","addresses":[...],"port":P}` replaces the
 * `default/kubernetes` EndpointSlice. Prints `{"event":"listening","port":P}` once the kubeconfig is written.
 * Exits when stdin closes.
 *
 * Usage: `discovery_api.ts <kubeconfig-path-to-write>`
 *
 * @module
 */
import { endpointSlice, startFakeApiServer } from "../../support/fake_apiserver.ts";
import { createTestPki } from "../../support/test_pki.ts";
import { emit, num, serveCommands } from "./_lines.ts";

const [kubeconfigPath] = Deno.args;
const token = crypto.randomUUID();
const pki = await createTestPki();
const api = await startFakeApiServer({ pki, tokens: [token], bookmarkIntervalMs: 500 });
await Deno.writeTextFile(
  kubeconfigPath ?? "kubeconfig",
  JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "faults", cluster: { server: api.url, "certificate-authority-data": btoa(pki.ca.cert) } }],
    users: [{ name: "node", user: { token } }],
    contexts: [{ name: "faults", context: { cluster: "faults", user: "node" } }],
    "current-context": "faults",
  }),
);
emit({ event: "listening", port: api.port });

await serveCommands((cmd) => {
  if (cmd.op !== "endpoints" || !Array.isArray(cmd.addresses)) {
    return Promise.reject(new Error(`Cannot run command '${cmd.op}': expected endpoints with an addresses list`));
  }
  api.upsert(endpointSlice("kubernetes", cmd.addresses.map(String), num(cmd, "port")));
  return Promise.resolve({ resourceVersion: api.resourceVersion });
});
await api.close();
await pki.cleanup();
