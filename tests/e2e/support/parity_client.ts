/**
 * Runs the parity probes ({@linkcode runProbes}) against one real API server from inside a network namespace, and
 * prints the normalised answers as one JSON array on stdout.
 *
 * Usage: `parity_client.ts <kube120|v1> <https://host:port> <ca-file> [token]`
 *
 * @module
 */
import { fetchTransport, type ProbeProfile, runProbes } from "../../support/api_parity.ts";

const [profile, baseUrl, caFile, token] = Deno.args;
if (profile !== "kube120" && profile !== "v1") {
  throw new Error(`Cannot run the probes of '${profile}': expected kube120 or v1`);
}
const send = fetchTransport(baseUrl ?? "", {
  caCert: Deno.readTextFileSync(caFile ?? ""),
  ...(token ? { token } : {}),
});
try {
  console.log(JSON.stringify(await runProbes(send, profile as ProbeProfile)));
} finally {
  send.close();
}
