/**
 * Runs the parity probes ({@linkcode runProbes}) against a fresh fake API server, in-process.
 *
 * @module
 */
import { fetchTransport, type ProbeAnswer, type ProbeProfile, runProbes } from "./api_parity.ts";
import { startFakeApiServer } from "./fake_apiserver.ts";
import { createTestPki } from "./test_pki.ts";

/** The normalised answers of a fresh fake to the script of `profile`. */
export async function runProbesOnFake(profile: ProbeProfile): Promise<ProbeAnswer[]> {
  await using pki = await createTestPki();
  await using api = await startFakeApiServer({
    pki,
    tokens: ["parity", "anonymous"],
    // kube-apiserver's anonymous user has no rights on resources: here a token stands for that user.
    tokenUsers: [["anonymous", "system:anonymous"]],
    rbac: [["system:anonymous", []]],
    // Neither real server sent a bookmark on a quiet 65 s watch (the fake's default is one a second, for quick tests).
    bookmarkIntervalMs: 600_000,
    // kube-apiserver 1.20 serves EndpointSlices only as discovery.k8s.io/v1beta1.
    ...(profile === "kube120" ? { unservedGroupVersions: ["discovery.k8s.io/v1"] } : {}),
  });
  const send = fetchTransport(api.url, { caCert: pki.ca.cert, token: "parity", anonymousToken: "anonymous" });
  try {
    return await runProbes(send, profile);
  } finally {
    send.close();
  }
}
