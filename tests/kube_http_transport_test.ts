import assert from "node:assert/strict";
import type { Endpoint } from "../lib/endpoint.ts";
import { createCredentialSource, type CredentialSource } from "../lib/kubernetes/credentials.ts";
import { HttpKubeTransport, type HttpTransportOptions } from "../lib/kubernetes/http_transport.ts";
import type { KubeResponse } from "../lib/kubernetes/transport.ts";
import { DEFAULT_TOKEN_USER, type FakeApiServer, startFakeApiServer } from "./support/fake_apiserver.ts";
import {
  bodyText,
  canUnshare,
  MuteTlsListener,
  runInOwnNetns,
  SilentListener,
  tempDir,
} from "./support/kube_client_fixtures.ts";
import { LogCapture } from "./support/log_capture.ts";
import { freePort } from "./support/net.ts";
import { createTestPki, TEST_NODE_USER, type TestPki } from "./support/test_pki.ts";
import { withDeadline } from "./support/deadline.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };
/**
 * The TLS name of these in-process tests: an IP (the test certificate lists `::1`) while `127.0.0.1` is dialled.
 * DNS names as TLS names are tested by `runInOwnNetns` (see kube_connect_test.ts), where nothing can leave the machine.
 */
const NAME = "::1";
const SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";
const at = (port: number, host = "127.0.0.1"): Endpoint => ({ host, port });

function transport(
  endpoints: readonly Endpoint[] | (() => readonly Endpoint[]),
  credentials: CredentialSource,
  extra: Partial<HttpTransportOptions> = {},
): HttpKubeTransport {
  return new HttpKubeTransport({
    endpoints: typeof endpoints === "function" ? endpoints : () => endpoints,
    tlsServerName: NAME,
    credentials,
    origin: "test",
    ...extra,
  });
}

function tokenAuth(pki: TestPki, token: string): CredentialSource {
  return createCredentialSource({ origin: "test", ca: { data: pki.ca.cert }, auth: { token } });
}

async function list(t: HttpKubeTransport, signal = AbortSignal.timeout(10_000)): Promise<KubeResponse> {
  return await t.request({ method: "GET", path: SLICES, signal });
}

/** The whole body of a response, parsed as JSON. */
const json = async (res: KubeResponse) => JSON.parse(await bodyText(res.body));

/** The status of a LIST, its body discarded. */
async function listStatus(t: HttpKubeTransport): Promise<number> {
  const res = await list(t);
  await res.body?.cancel();
  return res.status;
}

/** Status codes the fake server answered, in order. */
const statuses = (api: FakeApiServer) => api.requests.map((r) => r.status);

Deno.test("an endpoint is dialled at its address and its certificate verified as the TLS name", opts, async () => {
  await using pki = await createTestPki();
  await using api = await startFakeApiServer({ pki, serverCert: "ip", tokens: ["t"] });
  await using kube = transport([at(api.port)], tokenAuth(pki, "t"));
  const res = await list(kube);
  assert.equal(res.status, 200);
  const body = await json(res);
  assert.equal(body.kind, "EndpointSliceList");
  assert.equal(api.requests[0]?.user, DEFAULT_TOKEN_USER);
  assert.equal(api.requests[0]?.path, SLICES);
  assert.equal(api.requests[0]?.remoteAddress.replace(/^::ffff:/, ""), "127.0.0.1");
});

Deno.test("a certificate that does not carry the TLS name is refused", opts, async (t) => {
  await using pki = await createTestPki();
  await t.step("an IP certificate checked against another IP", async () => {
    await using api = await startFakeApiServer({ pki, serverCert: "ip", tokens: ["t"] });
    await using kube = transport([at(api.port)], tokenAuth(pki, "t"), { tlsServerName: "127.0.0.2" });
    await assert.rejects(list(kube), (e: Error) => {
      assert.match(e.message, /^Cannot reach the Kubernetes API as '127\.0\.0\.2' \(test\): 127\.0\.0\.1:\d+: /);
      assert.match(e.message, /certificate not valid for name "127\.0\.0\.2"/);
      return true;
    });
    assert.equal(api.requests.length, 0, "no request reached the server");
  });
  await t.step("a DNS-only certificate checked against an IP", async () => {
    await using api = await startFakeApiServer({ pki, serverCert: "dns", tokens: ["t"] });
    await using kube = transport([at(api.port)], tokenAuth(pki, "t"));
    await assert.rejects(list(kube), /certificate not valid for name "::1"/);
  });
  await t.step("a certificate from another CA", async () => {
    await using api = await startFakeApiServer({ pki, serverCert: "ip", tokens: ["t"] });
    const creds = createCredentialSource({ origin: "test", ca: { data: pki.otherCa.cert }, auth: { token: "t" } });
    await using kube = transport([at(api.port)], creds);
    await assert.rejects(list(kube), /invalid peer certificate/);
  });
  await t.step("the dialled IP itself as the name", async () => {
    await using api = await startFakeApiServer({ pki, serverCert: "ip", tokens: ["t"] });
    await using kube = transport([at(api.port)], tokenAuth(pki, "t"), { tlsServerName: "127.0.0.1" });
    assert.equal(await listStatus(kube), 200);
  });
});

Deno.test({
  name: "a DNS name: the certificate is verified as kubernetes.default.svc and refused as another name",
  ...opts,
  ignore: !(await canUnshare()),
  async fn() {
    const lines = await runInOwnNetns([
      "await using pki = await createTestPki();",
      "await using api = await startFakeApiServer({ pki, serverCert: 'dns', tokens: ['t'] });",
      "for (const name of ['kubernetes.default.svc', 'api.example.com']) {",
      "  await using t = new HttpKubeTransport({",
      "    endpoints: () => [{ host: '127.0.0.1', port: api.port }],",
      "    tlsServerName: name,",
      "    credentials: createCredentialSource({ origin: 'probe', ca: { data: pki.ca.cert }, auth: { token: 't' } }),",
      "    origin: 'probe',",
      "  });",
      "  try {",
      "    const res = await t.request({ method: 'GET', path: '/version', signal: AbortSignal.timeout(10000) });",
      "    await res.body?.cancel();",
      "    console.log(res.status);",
      "  } catch (e) {",
      "    console.log((e as Error).message);",
      "  }",
      "}",
      "console.log(api.requests.length);",
    ]);
    assert.equal(lines.length, 3, lines.join("\n"));
    assert.equal(lines[0], "200");
    assert.match(
      lines[1] ?? "",
      /^Cannot reach the Kubernetes API as 'api\.example\.com' \(probe\): 127\.0\.0\.1:\d+: /,
    );
    assert.match(lines[1] ?? "", /certificate not valid for name "api\.example\.com\.?"/);
    assert.equal(lines[2], "1", "the refused request never reached the server");
  },
});

Deno.test("requests share a kept-alive connection; one the server closed is replaced for a GET", opts, async () => {
  await using logs = await LogCapture.start();
  await using pki = await createTestPki();
  await using api = await startFakeApiServer({ pki, serverCert: "ip", tokens: ["t"] });
  await using kube = transport([at(api.port)], tokenAuth(pki, "t"));
  const readList = async () => (await json(await list(kube))).kind;
  for (let i = 0; i < 3; i++) assert.equal(await readList(), "EndpointSliceList");
  const ports = () => new Set(api.requests.map((r) => r.remotePort));
  assert.equal(ports().size, 1, "three requests, one connection");
  // Whether or not the close has reached this side yet, the kept-alive connection fails before any byte of an answer.
  api.dropConnections();
  assert.equal(await readList(), "EndpointSliceList");
  assert.equal(api.requests.length, 4);
  assert.equal(ports().size, 2, "a new connection after the server closed the kept-alive one");
  assert.deepEqual(logs.messages("warning"), [], "not an endpoint failure");
});

Deno.test("a token that an HTTP header cannot carry is refused with one line, before dialling", opts, async () => {
  await using pki = await createTestPki();
  await using api = await startFakeApiServer({ pki, serverCert: "ip", tokens: ["t"] });
  await using kube = transport([at(api.port)], tokenAuth(pki, "t\r\nX-Injected: 1"));
  await assert.rejects(list(kube), {
    message: "Cannot use the token of test: it holds characters an HTTP header cannot carry (spaces, control or " +
      "non-ASCII characters)",
  });
  assert.equal(api.requests.length, 0);
});

Deno.test("a refused endpoint is skipped for the next one, which is then preferred", opts, async () => {
  await using logs = await LogCapture.start();
  await using pki = await createTestPki();
  await using api = await startFakeApiServer({ pki, serverCert: "ip", tokens: ["t"] });
  const dead = freePort();
  await using kube = transport([at(dead), at(api.port)], tokenAuth(pki, "t"));
  assert.equal(await listStatus(kube), 200);
  const warnings = logs.messages("warning");
  assert.equal(warnings.length, 1);
  assert.match(
    warnings[0] ?? "",
    new RegExp(`127\\.0\\.0\\.1:${dead} failed: cannot connect to 127\\.0\\.0\\.1:${dead}`),
  );
  await listStatus(kube);
  assert.equal(logs.messages("warning").length, 1, "the second request went to the live endpoint first");
  assert.equal(api.requests.length, 2);
});

Deno.test("when every endpoint fails the error names each one", opts, async () => {
  await using pki = await createTestPki();
  const [a, b] = [freePort(), freePort()];
  await using kube = transport([at(a), at(b)], tokenAuth(pki, "t"));
  await assert.rejects(list(kube), (e: Error) => {
    assert.match(e.message, new RegExp(`127\\.0\\.0\\.1:${a}: cannot connect to 127\\.0\\.0\\.1:${a}: .*; 127`));
    assert.match(e.message, new RegExp(`127\\.0\\.0\\.1:${b}: cannot connect`));
    return true;
  });
});

Deno.test("no endpoint at all is an error, not a hang", opts, async () => {
  await using pki = await createTestPki();
  await using kube = transport([], tokenAuth(pki, "t"));
  await assert.rejects(list(kube), /no API server endpoint to dial/);
});

Deno.test("an endpoint that completes TLS but never answers hits the header timeout", opts, async (t) => {
  await using pki = await createTestPki();
  await using api = await startFakeApiServer({ pki, serverCert: "ip", tokens: ["t"] });
  await using mute = new MuteTlsListener(pki.serverIp);
  await using kube = transport([at(mute.port), at(api.port)], tokenAuth(pki, "t"), { headerTimeoutMs: 300 });
  await t.step("a GET moves on to the next endpoint", async () => {
    const started = performance.now();
    assert.equal(await listStatus(kube), 200);
    assert.ok(performance.now() - started >= 300);
    assert.equal(mute.handshakes, 1);
  });
  await t.step("a POST that may have been sent is not repeated elsewhere", async () => {
    await using again = transport([at(mute.port), at(api.port)], tokenAuth(pki, "t"), { headerTimeoutMs: 300 });
    const before = api.requests.length;
    await assert.rejects(
      again.request({
        method: "POST",
        path: "/api/v1/namespaces/default/events",
        body: "{}",
        contentType: "application/json",
        signal: AbortSignal.timeout(5000),
      }),
      /no response headers within 300 ms/,
    );
    assert.equal(api.requests.length, before);
  });
});

Deno.test(
  "an endpoint that accepts TCP but never answers TLS is given up after the connect timeout",
  opts,
  async () => {
    await using pki = await createTestPki();
    await using api = await startFakeApiServer({ pki, serverCert: "ip", tokens: ["t"] });
    await using silent = new SilentListener();
    await using kube = transport([at(silent.port), at(api.port)], tokenAuth(pki, "t"), { connectTimeoutMs: 300 });
    const started = performance.now();
    // Nothing was sent to the silent one: even a POST moves on.
    const res = await kube.request({
      method: "POST",
      path: "/api/v1/namespaces/default/events",
      body: "{}",
      contentType: "application/json",
      signal: AbortSignal.timeout(5000),
    });
    await res.body?.cancel();
    assert.ok(performance.now() - started >= 300);
    assert.equal(silent.accepted, 1);
    assert.equal(api.requests.at(-1)?.path, "/api/v1/namespaces/default/events");
  },
);

Deno.test("a 401 re-reads the rotated token file and retries once", opts, async (t) => {
  await using pki = await createTestPki();
  await using dir = await tempDir();
  await using api = await startFakeApiServer({ pki, serverCert: "ip", tokens: ["old"] });
  const tokenFile = `${dir.path}/token`;
  await Deno.writeTextFile(tokenFile, "old");
  const creds = createCredentialSource(
    { origin: "test", ca: { file: pki.ca.certPath }, auth: { tokenFile } },
    { recheckMs: 3_600_000 },
  );
  await using kube = transport([at(api.port)], creds);
  assert.equal(await listStatus(kube), 200);
  await t.step("the server stops accepting the old token and the file rotates", async () => {
    api.tokens.clear();
    api.tokens.add("new");
    await Deno.writeTextFile(tokenFile, "new");
    const res = await list(kube);
    assert.equal(res.status, 200);
    await res.body?.cancel();
    assert.deepEqual(statuses(api), [200, 401, 200]);
  });
  await t.step("a 401 with unchanged credentials is returned without a retry", async () => {
    api.tokens.clear();
    const res = await list(kube);
    assert.equal(res.status, 401);
    assert.equal((await json(res)).reason, "Unauthorized");
    assert.deepEqual(statuses(api), [200, 401, 200, 401]);
  });
});

Deno.test("a rotated client certificate file is used on new connections", opts, async () => {
  await using pki = await createTestPki();
  await using dir = await tempDir();
  await using api = await startFakeApiServer({ pki, serverCert: "ip" });
  const pem = `${dir.path}/kubelet-client-current.pem`;
  await Deno.writeTextFile(pem, pki.client.combined);
  let now = 0;
  const creds = createCredentialSource(
    {
      origin: "test",
      ca: { file: pki.ca.certPath },
      auth: { clientCert: { cert: { file: pem }, key: { file: pem } } },
    },
    { recheckMs: 1000, monotonicNow: () => now },
  );
  await using kube = transport([at(api.port)], creds);
  await listStatus(kube);
  assert.equal(api.requests.at(-1)?.user, TEST_NODE_USER);

  const rotated = await pki.issueClientCert({ commonName: "system:node:rotated" });
  await Deno.writeTextFile(pem, rotated.combined);
  now += 1000;
  await listStatus(kube);
  assert.equal(api.requests.at(-1)?.user, "system:node:rotated");
});

Deno.test("an exec plugin token is refreshed after a 401 and cached otherwise", opts, async () => {
  await using pki = await createTestPki();
  await using dir = await tempDir();
  await using api = await startFakeApiServer({ pki, serverCert: "ip", tokens: ["tok-2"] });
  const script = `${dir.path}/plugin.sh`;
  await Deno.writeTextFile(
    script,
    `#!/bin/sh\nn=$(cat "${dir.path}/count" 2>/dev/null || echo 0); n=$((n+1)); echo "$n" > "${dir.path}/count"\n` +
      `printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"tok-%s"}}' "$n"\n`,
    { mode: 0o755 },
  );
  const creds = createCredentialSource({
    origin: "test",
    ca: { data: pki.ca.cert },
    auth: { exec: { apiVersion: "client.authentication.k8s.io/v1", command: script, args: [], env: [] } },
  });
  await using kube = transport([at(api.port)], creds);
  assert.equal(await listStatus(kube), 200);
  await listStatus(kube);
  assert.deepEqual(statuses(api), [401, 200, 200]);
  assert.equal(Number(await Deno.readTextFile(`${dir.path}/count`)), 2);
});

Deno.test("a watch streams until the caller aborts it", opts, async () => {
  await using pki = await createTestPki();
  await using api = await startFakeApiServer({ pki, serverCert: "ip", tokens: ["t"] });
  await using kube = transport([at(api.port)], tokenAuth(pki, "t"));
  const stop = new AbortController();
  const res = await kube.request({ method: "GET", path: `${SLICES}?watch=1&resourceVersion=0`, signal: stop.signal });
  assert.equal(res.status, 200);
  await api.waitForOpenWatches(1);
  api.upsert({
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name: "kubernetes", namespace: "default", labels: { "kubernetes.io/service-name": "kubernetes" } },
    addressType: "IPv4",
    endpoints: [{ addresses: ["127.0.0.1"], conditions: { ready: true } }],
    ports: [{ name: "https", port: 6443, protocol: "TCP" }],
  });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await withDeadline(reader.read(), "the first watch line");
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  assert.equal(JSON.parse(text.split("\n")[0] ?? "").type, "ADDED");
  stop.abort();
  await withDeadline(assert.rejects(reader.read()), "the aborted read to fail");
});

Deno.test("close() ends in-flight responses and refuses new requests", opts, async () => {
  await using pki = await createTestPki();
  await using api = await startFakeApiServer({ pki, serverCert: "ip", tokens: ["t"] });
  const kube = transport([at(api.port)], tokenAuth(pki, "t"));
  const res = await kube.request({ method: "GET", path: `${SLICES}?watch=1`, signal: AbortSignal.timeout(10_000) });
  const reader = res.body!.getReader();
  await kube[Symbol.asyncDispose]();
  await withDeadline(
    assert.rejects(async () => {
      while (!(await reader.read()).done) { /* drain */ }
      throw new Error("ended cleanly");
    }),
    "the closed transport's stream to fail",
  );
  await assert.rejects(list(kube), { message: "Cannot send a Kubernetes API request: the transport is closed" });
});
