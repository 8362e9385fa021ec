import assert from "node:assert/strict";
import { KubeconfigError, loadKubeconfig, parseKubeconfig } from "../lib/kubernetes/kubeconfig.ts";
import { readInChild } from "./support/read_in_child.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };
const b64 = (s: string) => btoa(s);
const CA_PEM = "-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n";

/** A kubeconfig with one cluster `c`, one user `u` and one context `x`, each body given as a YAML flow mapping. */
function config(cluster: string, user: string, extra = ""): string {
  return [
    "apiVersion: v1",
    "kind: Config",
    `clusters: [{name: c, cluster: ${cluster}}]`,
    `users: [{name: u, user: ${user}}]`,
    "contexts: [{name: x, context: {cluster: c, user: u, namespace: kube-system}}]",
    "current-context: x",
    "preferences: {}",
    extra,
  ].join("\n");
}

async function errorOf(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof KubeconfigError, `expected a KubeconfigError, got ${e}`);
    return e.message;
  }
  assert.fail("expected an error");
}

Deno.test("a kubelet kubeconfig resolves relative file paths against the kubeconfig's directory", opts, async () => {
  const conn = await parseKubeconfig(
    config(
      "{server: 'https://10.0.0.1:6443', certificate-authority: pki/ca.crt, tls-server-name: kubernetes}",
      "{client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem, client-key: kubelet-client-current.pem}",
    ),
    "/etc/kubernetes/kubelet.conf",
  );
  assert.deepEqual(conn.server, {
    host: "10.0.0.1",
    port: 6443,
    pathPrefix: "",
    url: "https://10.0.0.1:6443",
  });
  assert.deepEqual(conn.ca, { file: "/etc/kubernetes/pki/ca.crt" });
  assert.equal(conn.tlsServerName, "kubernetes");
  assert.deepEqual(conn.auth.clientCert, {
    cert: { file: "/var/lib/kubelet/pki/kubelet-client-current.pem" },
    key: { file: "/etc/kubernetes/kubelet-client-current.pem" },
  });
  assert.equal(conn.namespace, "kube-system");
  assert.equal(conn.origin, "kubeconfig '/etc/kubernetes/kubelet.conf' (context 'x')");
});

Deno.test("inline data fields are decoded, and data wins over the file as in client-go", opts, async () => {
  const conn = await parseKubeconfig(
    config(
      `{server: 'https://api.example:443/k8s/clusters/c-1/', certificate-authority-data: ${
        b64(CA_PEM)
      }, certificate-authority: ignored.crt}`,
      `{client-certificate-data: ${b64("CERT")}, client-key-data: ${b64("KEY")}, token: abc}`,
    ),
    "kubeconfig",
  );
  assert.deepEqual(conn.ca, { data: CA_PEM });
  assert.deepEqual(conn.auth.clientCert, { cert: { data: "CERT" }, key: { data: "KEY" } });
  assert.equal(conn.auth.token, "abc");
  assert.equal(conn.server?.pathPrefix, "/k8s/clusters/c-1");
  assert.equal(conn.server?.port, 443);
});

Deno.test("a token file and an IPv6 server are read as kubectl reads them", opts, async () => {
  const conn = await parseKubeconfig(config("{server: 'https://[fd00:0::1]:6443'}", "{tokenFile: token}"), "/k/config");
  assert.equal(conn.server?.host, "fd00::1");
  assert.equal(conn.auth.tokenFile, "/k/token");
  assert.equal(conn.ca, undefined);
});

Deno.test("the context is the current one unless --kube-context names another", opts, async (t) => {
  const text = [
    "clusters: [{name: a, cluster: {server: 'https://10.0.0.1'}}, {name: b, cluster: {server: 'https://10.0.0.2'}}]",
    "users: [{name: u, user: {token: t}}]",
    "contexts: [{name: one, context: {cluster: a, user: u}}, {name: two, context: {cluster: b}}]",
    "current-context: one",
  ].join("\n");
  await t.step("current-context", async () => {
    assert.equal((await parseKubeconfig(text, "/k")).server?.host, "10.0.0.1");
  });
  await t.step("a named context, without a user: no credentials", async () => {
    const conn = await parseKubeconfig(text, "/k", { context: "two" });
    assert.equal(conn.server?.host, "10.0.0.2");
    assert.deepEqual(conn.auth, {});
  });
  await t.step("an unknown context lists the defined ones", async () => {
    assert.equal(
      await errorOf(() => parseKubeconfig(text, "/k", { context: "three" })),
      "Cannot use kubeconfig '/k': context 'three' is not defined; expected one of: 'one', 'two'",
    );
  });
  await t.step("no current-context and no --kube-context", async () => {
    assert.equal(
      await errorOf(() => parseKubeconfig(text.replace("current-context: one", ""), "/k")),
      "Cannot use kubeconfig '/k': no current-context is set; expected one, or --kube-context",
    );
  });
});

Deno.test("an exec plugin is parsed with its env, args, hint and cluster info", opts, async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/ca.crt`, CA_PEM);
    const conn = await parseKubeconfig(
      config(
        "{server: 'https://10.0.0.1:6443', certificate-authority: ca.crt}",
        `{exec: {apiVersion: client.authentication.k8s.io/v1, command: ./bin/cred, args: [--a, b],
          env: [{name: K, value: v}], installHint: 'install cred', interactiveMode: Never, provideClusterInfo: true}}`,
      ),
      `${dir}/config`,
    );
    assert.deepEqual(conn.auth.exec, {
      apiVersion: "client.authentication.k8s.io/v1",
      command: `${dir}/bin/cred`,
      args: ["--a", "b"],
      env: [{ name: "K", value: "v" }],
      installHint: "install cred",
      cluster: { server: "https://10.0.0.1:6443", "certificate-authority-data": btoa(CA_PEM) },
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test(
  "an exec command without a slash is looked up in PATH, and v1beta1 defaults to IfAvailable",
  opts,
  async () => {
    const conn = await parseKubeconfig(
      config("{server: 'https://h'}", "{exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: aws}}"),
      "/k/config",
    );
    assert.equal(conn.auth.exec?.command, "aws");
    assert.equal(conn.auth.exec?.cluster, undefined);
  },
);

Deno.test("unsupported fields are refused with the file, the entry and the field", opts, async (t) => {
  const cases: [string, string, string][] = [
    [
      "auth-provider",
      config("{server: 'https://h'}", "{auth-provider: {name: oidc}}"),
      "user 'u' uses unsupported field 'auth-provider'",
    ],
    [
      "username",
      config("{server: 'https://h'}", "{username: a, password: b}"),
      "user 'u' uses unsupported field 'username'",
    ],
    ["impersonation", config("{server: 'https://h'}", "{token: t, as: admin}"), "user 'u' uses unsupported field 'as'"],
    [
      "proxy-url",
      config("{server: 'https://h', proxy-url: 'http://p'}", "{}"),
      "cluster 'c' uses unsupported field 'proxy-url'",
    ],
    [
      "insecure-skip-tls-verify",
      config("{server: 'https://h', insecure-skip-tls-verify: true}", "{}"),
      "cluster 'c' uses unsupported field 'insecure-skip-tls-verify: true' (Deno always verifies the certificate chain)",
    ],
    [
      "interactiveMode Always",
      config(
        "{server: 'https://h'}",
        "{exec: {apiVersion: client.authentication.k8s.io/v1, command: x, interactiveMode: Always}}",
      ),
      "user 'u' exec uses unsupported field 'interactiveMode: Always' (the proxy has no terminal; expected Never)",
    ],
    [
      "unknown top-level field",
      config("{server: 'https://h'}", "{}", "proxies: []"),
      "the file uses unsupported field 'proxies'",
    ],
    [
      "an http server",
      config("{server: 'http://h:8080'}", "{}"),
      "cluster 'c' has server 'http://h:8080': expected an https:// URL",
    ],
    [
      "a v1 exec without interactiveMode",
      config("{server: 'https://h'}", "{exec: {apiVersion: client.authentication.k8s.io/v1, command: x}}"),
      "user 'u' exec has no interactiveMode; expected 'Never' (required by client.authentication.k8s.io/v1)",
    ],
    [
      "a certificate without a key",
      config("{server: 'https://h'}", "{client-certificate: c.pem}"),
      "user 'u' has client-certificate but no client-key",
    ],
    [
      "CA data that is not base64",
      config("{server: 'https://h', certificate-authority-data: 'Q0E=*'}", "{}"),
      "cluster 'c' has certificate-authority-data that is not base64 PEM",
    ],
    [
      "CA data that is base64 of bytes that are not UTF-8",
      config("{server: 'https://h', certificate-authority-data: '//4='}", "{}"),
      "cluster 'c' has certificate-authority-data that is not base64 PEM",
    ],
    [
      "client key data cut in the middle of a base64 quantum",
      config("{server: 'https://h'}", "{client-certificate-data: Q0E=, client-key-data: Q0E9P}"),
      "user 'u' has client-key-data that is not base64 PEM",
    ],
  ];
  for (const [name, text, message] of cases) {
    await t.step(name, async () => {
      assert.equal(await errorOf(() => parseKubeconfig(text, "/k")), `Cannot use kubeconfig '/k': ${message}`);
    });
  }
});

Deno.test("insecure-skip-tls-verify: false and the harmless kubectl fields are accepted", opts, async () => {
  const conn = await parseKubeconfig(
    config(
      "{server: 'https://h', insecure-skip-tls-verify: false, disable-compression: true, extensions: []}",
      "{token: t, extensions: []}",
      "extensions: []",
    ),
    "/k",
  );
  assert.equal(conn.auth.token, "t");
});

Deno.test("fields of entries the context does not use are not checked", opts, async () => {
  const text = config("{server: 'https://h'}", "{token: t}").replace(
    "users: [",
    "users: [{name: other, user: {auth-provider: {name: gcp}}}, ",
  );
  assert.equal((await parseKubeconfig(text, "/k")).auth.token, "t");
});

Deno.test("a missing file and a file that is not YAML give one-line errors", opts, async () => {
  const dir = await Deno.makeTempDir();
  try {
    const missing = await errorOf(() => loadKubeconfig(`${dir}/nope`));
    assert.match(missing, new RegExp(`^Cannot read kubeconfig '${dir}/nope': No such file`));
    await Deno.writeTextFile(`${dir}/bad`, "clusters: [\n");
    assert.match(
      await errorOf(() => loadKubeconfig(`${dir}/bad`)),
      /^Cannot use kubeconfig '.*\/bad': expected YAML, got an error: /,
    );
    await Deno.writeTextFile(`${dir}/list`, "- a\n- b\n");
    assert.equal(
      await errorOf(() => loadKubeconfig(`${dir}/list`)),
      `Cannot use kubeconfig '${dir}/list': expected a mapping with clusters, contexts and users`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a kubeconfig or token file that is a device or a FIFO is refused at once, never read", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "kube_fifo_" });
  try {
    const fifo = `${dir}/fifo`;
    assert.ok((await new Deno.Command("mkfifo", { args: [fifo] }).output()).success, "mkfifo");
    const kubeconfig = "(m, p) => m.loadKubeconfig(p)";
    const token = "(m, p) => new m.WatchedFile(p, 'token file', 1000, () => 0).read(true)";
    const cases: [string, string, string, string, string][] = [
      ["a kubeconfig at /dev/zero", "../lib/kubernetes/kubeconfig.ts", kubeconfig, "/dev/zero", "kubeconfig"],
      ["a kubeconfig that is a FIFO", "../lib/kubernetes/kubeconfig.ts", kubeconfig, fifo, "kubeconfig"],
      ["a token file at /dev/zero", "../lib/watched_file.ts", token, "/dev/zero", "token file"],
      ["a token file that is a FIFO", "../lib/watched_file.ts", token, fifo, "token file"],
    ];
    for (const [name, module, call, path, what] of cases) {
      await t.step(name, async () => {
        const { message: line } = await readInChild(new URL(module, import.meta.url).href, call, path, {
          maxRssKiB: 512 * 1024,
        });
        const kind = path === fifo ? "a FIFO" : "a character device";
        assert.equal(line, `Cannot read ${what} '${path}': expected a regular file, found ${kind}`);
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
