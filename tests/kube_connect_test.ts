import assert from "node:assert/strict";
import type { Endpoint } from "../lib/endpoint.ts";
import { type AddressPattern, connectKubernetes } from "../lib/kubernetes/connect.ts";
import type { HttpKubeTransport } from "../lib/kubernetes/http_transport.ts";
import { DEFAULT_TOKEN_USER, startFakeApiServer } from "./support/fake_apiserver.ts";
import { canUnshare, runInOwnNetns, SilentListener, tempDir } from "./support/kube_client_fixtures.ts";
import { LogCapture } from "./support/log_capture.ts";
import { createTestPki, TEST_NODE_USER } from "./support/test_pki.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };
const SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";
const at = (port: number, host = "127.0.0.1"): Endpoint => ({ host, port });
const ownListener = (port: number): AddressPattern => ({ host: "127.0.0.1", port, label: "this proxy's own listener" });

async function listStatus(t: HttpKubeTransport): Promise<number> {
  const res = await t.request({ method: "GET", path: SLICES, signal: AbortSignal.timeout(10_000) });
  await res.body?.cancel();
  return res.status;
}

Deno.test("without service-account files or a kubeconfig, discovery is off and says so once", opts, async () => {
  await using logs = await LogCapture.start();
  await using dir = await tempDir();
  const transport = await connectKubernetes({
    serviceAccountDir: dir.path,
    endpoints: () => [],
  });
  assert.equal(transport, undefined);
  assert.deepEqual(logs.messages("info"), [
    `Kubernetes discovery is off: no service-account token in ${dir.path} and no --kubeconfig`,
  ]);
});

Deno.test("the in-cluster path never dials the ClusterIP or this proxy's own listener", opts, async (t) => {
  await using pki = await createTestPki();
  await using api = await startFakeApiServer({ pki, serverCert: "ip", tokens: ["sa-token"] });
  await using sa = await tempDir();
  await Deno.writeTextFile(`${sa.path}/token`, "sa-token");
  await Deno.writeTextFile(`${sa.path}/ca.crt`, pki.ca.cert);
  // Stand-ins, on loopback, for this proxy's listener and for the kubernetes ClusterIP (another address).
  await using own = new SilentListener("127.0.0.1");
  await using clusterIp = new SilentListener("127.0.0.2");
  let endpoints: Endpoint[] = [at(own.port), at(clusterIp.port, "127.0.0.2"), at(api.port)];
  const transport = await connectKubernetes({
    serviceAccountDir: sa.path,
    neverDial: [ownListener(own.port)],
    clusterIp: "127.0.0.2",
    // An IP as the name keeps this test free of DNS lookups (see runInOwnNetns); the default name is tested there.
    tlsServerName: "::1",
    endpoints: () => endpoints,
  });
  assert.ok(transport !== undefined);
  await using _ = transport;

  await t.step("the request reaches the API server endpoint, verified as the TLS name", async () => {
    assert.equal(await listStatus(transport), 200);
    assert.equal(api.requests.at(-1)?.user, DEFAULT_TOKEN_USER);
  });
  await t.step("with only those two addresses known, nothing is dialled", async () => {
    endpoints = [at(own.port), at(clusterIp.port, "127.0.0.2")];
    await assert.rejects(listStatus(transport), /no API server endpoint to dial/);
  });
  assert.equal(own.accepted, 0, "own listener dialled");
  assert.equal(clusterIp.accepted, 0, "ClusterIP dialled");
});

/** Writes a kubeconfig for `server` using the PKI's combined client certificate; returns its path. */
async function writeKubeconfig(dir: string, server: string, tlsServerName: string | undefined, caPath: string) {
  const path = `${dir}/kubelet.conf`;
  await Deno.writeTextFile(
    path,
    [
      "apiVersion: v1",
      "kind: Config",
      "clusters:",
      "- name: default-cluster",
      "  cluster:",
      `    server: ${server}`,
      `    certificate-authority: ${caPath}`,
      ...(tlsServerName ? [`    tls-server-name: "${tlsServerName}"`] : []),
      "users:",
      "- name: default-auth",
      "  user:",
      "    client-certificate: kubelet-client-current.pem",
      "    client-key: kubelet-client-current.pem",
      "contexts:",
      "- name: default-context",
      "  context: {cluster: default-cluster, user: default-auth, namespace: default}",
      "current-context: default-context",
    ].join("\n"),
  );
  return path;
}

Deno.test("a kubeconfig whose server is this proxy dials the known endpoints instead", opts, async () => {
  await using logs = await LogCapture.start();
  await using pki = await createTestPki();
  await using api = await startFakeApiServer({ pki, serverCert: "ip" });
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/kubelet-client-current.pem`, pki.client.combined);
  await using own = new SilentListener();
  const path = await writeKubeconfig(dir.path, `https://127.0.0.1:${own.port}`, "::1", pki.ca.certPath);
  const transport = await connectKubernetes({
    kubeconfigPath: path,
    serviceAccountDir: dir.path,
    neverDial: [ownListener(own.port)],
    endpoints: () => [at(own.port), at(api.port)],
  });
  assert.ok(transport !== undefined);
  await using _ = transport;
  assert.equal(await listStatus(transport), 200);
  assert.equal(api.requests.at(-1)?.user, TEST_NODE_USER);
  assert.equal(own.accepted, 0);
  const info = logs.messages("info");
  assert.ok(
    info.includes(
      `The kubeconfig server https://127.0.0.1:${own.port} is this proxy's own listener: dialling the known API ` +
        "server endpoints directly",
    ),
    info.join("\n"),
  );
  assert.ok(info.some((m) => m.endsWith("verified as ::1")), info.join("\n"));
});

Deno.test("a kubeconfig with another server dials it as given", opts, async (t) => {
  await using pki = await createTestPki();
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/kubelet-client-current.pem`, pki.client.combined);
  const connect = async (path: string) =>
    (await connectKubernetes({
      kubeconfigPath: path,
      serviceAccountDir: dir.path,
      neverDial: [ownListener(7445)],
      // Known endpoints are not used for a kubeconfig server that is not this proxy.
      endpoints: () => [at(1)],
    }))!;
  await t.step("with tls-server-name, the certificate is checked against it", async () => {
    await using api = await startFakeApiServer({ pki, serverCert: "ip" });
    const path = await writeKubeconfig(dir.path, `https://127.0.0.1:${api.port}`, "::1", pki.ca.certPath);
    await using transport = await connect(path);
    assert.equal(await listStatus(transport), 200);
    assert.equal(api.requests.at(-1)?.user, TEST_NODE_USER);
  });
  await t.step("without it, against the server's own address", async () => {
    await using api = await startFakeApiServer({ pki, serverCert: "ip" });
    const path = await writeKubeconfig(dir.path, `https://127.0.0.1:${api.port}`, undefined, pki.ca.certPath);
    await using transport = await connect(path);
    assert.equal(await listStatus(transport), 200);
  });
  await t.step("and a name the certificate lacks is refused", async () => {
    await using api = await startFakeApiServer({ pki, serverCert: "dns" });
    const path = await writeKubeconfig(dir.path, `https://127.0.0.1:${api.port}`, undefined, pki.ca.certPath);
    await using transport = await connect(path);
    await assert.rejects(listStatus(transport), /certificate not valid for name "127\.0\.0\.1"/);
    assert.equal(api.requests.length, 0);
  });
});

Deno.test("a kubeconfig that cannot be used is a configuration error", opts, async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/config`, "users: [{name: u, user: {auth-provider: {name: oidc}}}]\n");
  await assert.rejects(
    () =>
      connectKubernetes({
        kubeconfigPath: `${dir.path}/config`,
        context: "missing",
        neverDial: [ownListener(7445)],
        endpoints: () => [],
      }),
    {
      message: `Cannot use kubeconfig '${dir.path}/config': context 'missing' is not defined; expected one of: (none)`,
    },
  );
});

const unshareMissing = !(await canUnshare());

Deno.test({
  name: "proxy variables play no part: the endpoint itself is dialled whatever NO_PROXY or HTTPS_PROXY say",
  ...opts,
  ignore: unshareMissing,
  async fn() {
    // In a namespace with loopback only, so that nothing could leave the machine even if a variable were obeyed.
    const probe = [
      "const t = new HttpKubeTransport({",
      "  endpoints: () => [{ host: '127.0.0.1', port: 1 }],",
      "  tlsServerName: 'kubernetes.default.svc',",
      "  credentials: createCredentialSource({ origin: 'probe', auth: { token: 't' } }),",
      "  origin: 'probe',",
      "});",
      "try {",
      "  await t.request({ method: 'GET', path: '/version', signal: AbortSignal.timeout(5000) });",
      "} catch (e) {",
      "  console.log((e as Error).message);",
      "}",
      "await t[Symbol.asyncDispose]();",
    ];
    for (
      const env of [
        {},
        { NO_PROXY: "*" },
        { no_proxy: "kubernetes.default.svc" },
        { HTTPS_PROXY: "http://127.0.0.1:9", https_proxy: "http://127.0.0.1:9", ALL_PROXY: "http://127.0.0.1:9" },
      ]
    ) {
      assert.deepEqual(
        await runInOwnNetns(probe, { env }),
        [
          "Cannot reach the Kubernetes API as 'kubernetes.default.svc' (probe): 127.0.0.1:1: cannot connect to " +
          "127.0.0.1:1: Connection refused (os error 111)",
        ],
        JSON.stringify(env),
      );
    }
  },
});

Deno.test({
  name: "an endpoint that never answers the TCP handshake is given up after the connect timeout",
  ...opts,
  ignore: unshareMissing,
  async fn() {
    // 10.255.255.1 is routed to loopback inside the namespace, where no address owns it: SYNs vanish.
    const [message, elapsed] = await runInOwnNetns(
      [
        "const t = new HttpKubeTransport({",
        "  endpoints: () => [{ host: '10.255.255.1', port: 6443 }, { host: '127.0.0.1', port: 1 }],",
        "  tlsServerName: 'kubernetes.default.svc',",
        "  credentials: createCredentialSource({ origin: 'probe', auth: { token: 't' } }),",
        "  origin: 'probe',",
        "  connectTimeoutMs: 300,",
        "});",
        "const started = performance.now();",
        "try {",
        "  await t.request({ method: 'POST', path: '/x', body: '{}', signal: AbortSignal.timeout(10000) });",
        "} catch (e) {",
        "  console.log((e as Error).message);",
        "}",
        "console.log(Math.round(performance.now() - started));",
        "await t[Symbol.asyncDispose]();",
      ],
      { setup: "&& ip route add 10.255.255.0/24 dev lo" },
    );
    // A dial failure is safe to retry even for a POST: nothing was sent.
    assert.equal(
      message,
      "Cannot reach the Kubernetes API as 'kubernetes.default.svc' (probe): 10.255.255.1:6443: cannot connect to " +
        "10.255.255.1:6443: no answer within 300 ms; 127.0.0.1:1: cannot connect to 127.0.0.1:1: Connection refused " +
        "(os error 111)",
    );
    assert.ok(Number(elapsed) >= 300 && Number(elapsed) < 3000, `took ${elapsed} ms`);
  },
});

Deno.test({
  name: "an unreachable DNS resolver does not delay requests to API servers given as addresses",
  ...opts,
  ignore: unshareMissing,
  async fn() {
    // A resolver whose packets vanish (a pod whose cluster DNS is down) would make any lookup wait for its timeout,
    // here 1 s per query: the name is only verified in TLS, never looked up.
    const lines = await runInOwnNetns([
      "await using pki = await createTestPki();",
      "await using api = await startFakeApiServer({ pki, serverCert: 'dns', tokens: ['t'] });",
      "const t = new HttpKubeTransport({",
      "  endpoints: () => [{ host: '127.0.0.1', port: api.port }],",
      "  tlsServerName: 'kubernetes.default.svc',",
      "  credentials: createCredentialSource({ origin: 'probe', ca: { data: pki.ca.cert }, auth: { token: 't' } }),",
      "  origin: 'probe',",
      "  headerTimeoutMs: 800,",
      "});",
      "const started = performance.now();",
      "const res = await t.request({ method: 'GET', path: '/version', signal: AbortSignal.timeout(5000) });",
      "await res.body?.cancel();",
      "console.log(res.status, performance.now() - started < 800);",
      "await t[Symbol.asyncDispose]();",
    ], {
      setup: "&& ip route add 10.255.255.0/24 dev lo",
      resolvConf: "nameserver 10.255.255.53\noptions timeout:1 attempts:1\n",
    });
    assert.deepEqual(lines, ["200 true"]);
  },
});

Deno.test({
  name: "in a pod, API server certificates are verified as kubernetes.default.svc by default",
  ...opts,
  ignore: unshareMissing,
  async fn() {
    const lines = await runInOwnNetns([
      "await using pki = await createTestPki();",
      "await using api = await startFakeApiServer({ pki, serverCert: 'dns', tokens: ['sa-token'] });",
      "const sa = await Deno.makeTempDir();",
      "await Deno.writeTextFile(`${sa}/token`, 'sa-token');",
      "await Deno.writeTextFile(`${sa}/ca.crt`, pki.ca.cert);",
      "const t = (await connectKubernetes({",
      "  serviceAccountDir: sa,",
      "  neverDial: [{ host: '127.0.0.1', port: 7445 }],",
      "  endpoints: () => [{ host: '127.0.0.1', port: api.port }],",
      "}))!;",
      "const res = await t.request({ method: 'GET', path: '/api/v1/namespaces/default/services', " +
      "signal: AbortSignal.timeout(10000) });",
      "await res.body?.cancel();",
      "console.log(res.status, api.requests.at(-1)?.user);",
      "await t[Symbol.asyncDispose]();",
      "await Deno.remove(sa, { recursive: true });",
    ]);
    assert.deepEqual(lines, [`200 ${DEFAULT_TOKEN_USER}`]);
  },
});
