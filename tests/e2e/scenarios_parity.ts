/**
 * Parity of the fake API server (tests/support/fake_apiserver.ts) with the real ones: the same probe script
 * (tests/support/api_parity.ts) runs against kube-apiserver 1.20 or the v1 API server, from inside the node
 * namespace, and against the fake in-process; the normalised answers must be equal, so the fake cannot drift from
 * what the real servers do where our client depends on it.
 *
 * With `EP_PARITY_RECORD=<dir>` the real answers are also written to `<dir>/<profile>.json` (to refresh the recorded
 * answers the unit test compares the fake with: tests/support/api_parity_<profile>.json).
 *
 * @module
 */
import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import {
  BOOKMARK_WATCH_S,
  differences,
  PARITY_NAMESPACE,
  type ProbeAnswer,
  type ProbeProfile,
} from "../support/api_parity.ts";
import { runProbesOnFake } from "../support/api_parity_fake.ts";
import { type ControlPlane, V1_PORT } from "./control_plane.ts";
import { API_ADDRESSES, API_PORT, ETCD_ADDRESS } from "./net.ts";
import { e2eReport } from "./scenarios_clients.ts";

async function runOnReal(plane: ControlPlane, profile: ProbeProfile, baseUrl: string, token?: string) {
  const out = await plane.runInNode(Deno.execPath(), [
    "run",
    "-q",
    "--no-config",
    "--no-lock",
    "--allow-net",
    `--allow-read=${plane.pki.dir}`,
    new URL("./support/parity_client.ts", import.meta.url).pathname,
    profile,
    baseUrl,
    plane.pki.caPath,
    ...(token === undefined ? [] : [token]),
  ], 90_000 + BOOKMARK_WATCH_S * 1000);
  if (!out.success) {
    throw new Error(`Cannot run the parity probes against ${baseUrl}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return JSON.parse(new TextDecoder().decode(out.stdout)) as ProbeAnswer[];
}

async function compare(plane: ControlPlane, profile: ProbeProfile, baseUrl: string, token?: string): Promise<void> {
  const real = await runOnReal(plane, profile, baseUrl, token);
  const record = Deno.env.get("EP_PARITY_RECORD");
  if (record) await Deno.writeTextFile(`${record}/${profile}.json`, JSON.stringify(real, null, 1) + "\n");
  const fake = await runProbesOnFake(profile);
  const diff = differences(real, fake, isDeepStrictEqual);
  e2eReport(
    `parity of the fake API server with ${profile}`,
    `${real.length - diff.length}/${real.length} probes equal`,
  );
  assert.equal(diff.length, 0, `the fake answers as the real server does:\n${diff.join("\n")}`);
}

/** kube-apiserver 1.20: discovery, Leases (conflicts, pages, selectors, watches, 410), the unserved v1 slices. */
export async function parityWithKube120(plane: ControlPlane): Promise<void> {
  const api = API_ADDRESSES[0] ?? "";
  const ns = await plane.get({
    host: api,
    port: API_PORT,
    method: "POST",
    path: "/api/v1/namespaces",
    contentType: "application/json",
    body: JSON.stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name: PARITY_NAMESPACE } }),
  });
  assert(ns.status === 201 || ns.status === 409, `namespace ${PARITY_NAMESPACE} created: HTTP ${ns.status}`);
  await compare(plane, "kube120", `https://${api}:${API_PORT}`, plane.pki.token);
}

/** The v1 API server: the same, plus discovery.k8s.io/v1 EndpointSlices with server-side apply. */
export async function parityWithV1(plane: ControlPlane): Promise<void> {
  if (plane.v1Server === undefined || plane.v1Server.status !== undefined) await plane.startV1Server();
  await compare(plane, "v1", `https://${ETCD_ADDRESS}:${V1_PORT}`);
}
