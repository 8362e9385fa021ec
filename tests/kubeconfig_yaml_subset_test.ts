/**
 * The kubeconfig YAML subset parser against js-yaml (CORE_SCHEMA), its oracle: the kubeconfigs that kubeadm, k3s,
 * kubectl and the cloud CLIs write parse to exactly what js-yaml gives; any other text gives BEYOND_SUBSET or, again,
 * exactly what js-yaml gives, and BEYOND_SUBSET whenever js-yaml throws; the parser never throws.
 */
import assert from "node:assert/strict";
import { CORE_SCHEMA, load } from "js-yaml";
import { BEYOND_SUBSET, parseYamlSubset } from "../lib/kubernetes/_yaml_subset.ts";

const show = (text: string) => {
  const s = JSON.stringify(text);
  return s.length > 400 ? `${s.slice(0, 300)}…(${text.length} chars)…${s.slice(-80)}` : s;
};
const inspect = (v: unknown) => {
  const s = Deno.inspect(v, { depth: 8, strAbbreviateSize: 200, iterableLimit: 20 });
  return s.length > 600 ? `${s.slice(0, 600)}…` : s;
};

function jsYaml(text: string): { value: unknown } | { error: string } {
  try {
    return { value: load(text, { schema: CORE_SCHEMA }) };
  } catch (e) {
    return { error: String(e).split("\n")[0]! };
  }
}

function subset(text: string): { value: unknown } | { error: string } {
  try {
    return { value: parseYamlSubset(text) };
  } catch (e) {
    return {
      error: `throws ${(e instanceof Error ? e.stack ?? String(e) : String(e)).split("\n").slice(0, 4).join("\n")}`,
    };
  }
}

/**
 * Points 1–3 of the contract: the parser returns, with js-yaml's value or BEYOND_SUBSET (always, where js-yaml throws).
 * Returns what is wrong, or undefined.
 */
function contractViolation(text: string): string | undefined {
  const expected = jsYaml(text);
  const got = subset(text);
  if ("error" in got) return `${show(text)}: the subset parser ${got.error}`;
  if (got.value === BEYOND_SUBSET) return undefined;
  if ("error" in expected) {
    return `${show(text)}: js-yaml throws (${expected.error}), the subset parser gives ${inspect(got.value)}`;
  }
  try {
    assert.deepStrictEqual(got.value, expected.value);
  } catch {
    return `${show(text)}: js-yaml gives ${inspect(expected.value)}, the subset parser ${inspect(got.value)}`;
  }
}

/** Point 4 as well: the text is in the subset, so the parser returns js-yaml's value, not BEYOND_SUBSET. */
function acceptanceFailure(text: string): string | undefined {
  const expected = jsYaml(text);
  if ("error" in expected) return `the fixture ${show(text)} is not YAML: ${expected.error}`;
  const got = subset(text);
  if (!("error" in got) && got.value === BEYOND_SUBSET) return `${show(text)}: BEYOND_SUBSET`;
  return contractViolation(text);
}

/** Fails with every problem `check` finds in `texts`, one paragraph each. */
function assertNone(texts: Iterable<string>, check: (text: string) => string | undefined): void {
  const problems = [...texts].map(check).filter((p) => p !== undefined);
  if (problems.length > 0) assert.fail(`${problems.length} of them:\n\n${problems.join("\n\n")}`);
}

const assertContract = (text: string) => assertNone([text], contractViolation);

/** Deterministic base64 of a PEM block of about `bytes` bytes of DER, on one line as kubeconfigs hold it. */
function pemData(label: string, bytes: number, salt: number): string {
  const der = new Uint8Array(bytes);
  let x = salt;
  for (let i = 0; i < bytes; i++) der[i] = (x = (x * 1103515245 + 12345) % 2147483648) >>> 16;
  const body = btoa(String.fromCharCode(...der)).replace(/.{64}/g, "$&\n").trimEnd();
  return btoa(`-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`);
}

const CA = pemData("CERTIFICATE", 1100, 1);
const CERT = pemData("CERTIFICATE", 800, 2);
const KEY = pemData("RSA PRIVATE KEY", 1190, 3);
const EC_KEY = pemData("EC PRIVATE KEY", 121, 4);
const TOKEN =
  "eyJhbGciOiJSUzI1NiIsImtpZCI6Ik1fYk4tX3oifQ.eyJpc3MiOiJrdWJlcm5ldGVzL3NlcnZpY2VhY2NvdW50In0.c2ln-bmF_0dXJl";

/** Kubeconfigs as the tools write them (invented data, documentation and loopback addresses). */
const KUBECONFIGS: [string, string][] = [
  [
    "kubeadm kubelet.conf",
    `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: ${CA}
    server: https://127.0.2.10:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: system:node:node1
  name: system:node:node1@kubernetes
current-context: system:node:node1@kubernetes
kind: Config
preferences: {}
users:
- name: system:node:node1
  user:
    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem
    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem
`,
  ],
  [
    "kubeadm admin.conf",
    `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: ${CA}
    server: https://127.0.2.10:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: kubernetes-admin
  name: kubernetes-admin@kubernetes
current-context: kubernetes-admin@kubernetes
kind: Config
users:
- name: kubernetes-admin
  user:
    client-certificate-data: ${CERT}
    client-key-data: ${KEY}
`,
  ],
  [
    "kubeadm bootstrap-kubelet.conf (a bootstrap token starting with digits)",
    `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: ${CA}
    server: https://127.0.2.10:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: tls-bootstrap-token-user
  name: tls-bootstrap-token-user@kubernetes
current-context: tls-bootstrap-token-user@kubernetes
kind: Config
preferences: {}
users:
- name: tls-bootstrap-token-user
  user:
    token: 07401b.f395accd246ae52d
`,
  ],
  [
    "k3s /etc/rancher/k3s/k3s.yaml",
    `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: ${CA}
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: ${CERT}
    client-key-data: ${EC_KEY}
`,
  ],
  [
    "kubectl with several contexts, insecure-skip-tls-verify and an empty user",
    `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: ${CA}
    server: https://127.0.0.1:6443
  name: kind-kind
- cluster:
    insecure-skip-tls-verify: true
    server: https://127.0.2.20:443
  name: staging
contexts:
- context:
    cluster: kind-kind
    user: kind-kind
  name: kind-kind
- context:
    cluster: staging
    namespace: team-a
    user: staging-admin
  name: staging
- context:
    cluster: staging
    user: ""
  name: staging-anonymous
current-context: kind-kind
kind: Config
preferences: {}
users:
- name: kind-kind
  user:
    client-certificate-data: ${CERT}
    client-key-data: ${KEY}
- name: staging-admin
  user:
    token: ${TOKEN}
- name: nobody
  user: {}
`,
  ],
  [
    "aws eks update-kubeconfig (exec plugin with args and env: null)",
    `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: ${CA}
    server: https://127.0.2.30
  name: arn:aws:eks:us-west-2:111122223333:cluster/demo
contexts:
- context:
    cluster: arn:aws:eks:us-west-2:111122223333:cluster/demo
    user: arn:aws:eks:us-west-2:111122223333:cluster/demo
  name: arn:aws:eks:us-west-2:111122223333:cluster/demo
current-context: arn:aws:eks:us-west-2:111122223333:cluster/demo
kind: Config
preferences: {}
users:
- name: arn:aws:eks:us-west-2:111122223333:cluster/demo
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      args:
      - --region
      - us-west-2
      - eks
      - get-token
      - --cluster-name
      - demo
      - --output
      - json
      command: aws
      env: null
      interactiveMode: IfAvailable
      provideClusterInfo: false
`,
  ],
  [
    "eksctl (exec plugin with an env list of name/value maps)",
    `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: ${CA}
    server: https://127.0.2.31
  name: demo.us-west-2.eksctl.io
contexts:
- context:
    cluster: demo.us-west-2.eksctl.io
    user: ci@demo.us-west-2.eksctl.io
  name: ci@demo.us-west-2.eksctl.io
current-context: ci@demo.us-west-2.eksctl.io
kind: Config
preferences: {}
users:
- name: ci@demo.us-west-2.eksctl.io
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      args:
      - eks
      - get-token
      - --output
      - json
      - --cluster-name
      - demo
      - --region
      - us-west-2
      command: aws
      env:
      - name: AWS_STS_REGIONAL_ENDPOINTS
        value: regional
      - name: AWS_PROFILE
        value: ci
      interactiveMode: IfAvailable
      provideClusterInfo: false
`,
  ],
  [
    "gcloud for GKE (gke-gcloud-auth-plugin)",
    `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: ${CA}
    server: https://127.0.2.40
  name: gke_demo-project_us-central1-a_demo
contexts:
- context:
    cluster: gke_demo-project_us-central1-a_demo
    user: gke_demo-project_us-central1-a_demo
  name: gke_demo-project_us-central1-a_demo
current-context: gke_demo-project_us-central1-a_demo
kind: Config
preferences: {}
users:
- name: gke_demo-project_us-central1-a_demo
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: gke-gcloud-auth-plugin
      installHint: Install gke-gcloud-auth-plugin for use with kubectl by following https://cloud.google.com/kubernetes-engine/docs/how-to/cluster-access-for-kubectl#install_plugin
      provideClusterInfo: true
`,
  ],
  [
    "az aks get-credentials with kubelogin (an argument starting with digits)",
    `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: ${CA}
    server: https://127.0.2.50:443
  name: demo-aks
contexts:
- context:
    cluster: demo-aks
    user: clusterUser_demo-rg_demo-aks
  name: demo-aks
current-context: demo-aks
kind: Config
preferences: {}
users:
- name: clusterUser_demo-rg_demo-aks
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      args:
      - get-token
      - --environment
      - AzurePublicCloud
      - --server-id
      - 6dae42f8-4368-4678-94ff-3960e28e3630
      - --login
      - azurecli
      command: kubelogin
      env: null
      provideClusterInfo: false
`,
  ],
  [
    "the legacy gcp auth-provider (quoted JSONPath, a quoted timestamp, plain values with spaces)",
    `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: ${CA}
    server: https://127.0.2.41
  name: gke_legacy
contexts:
- context:
    cluster: gke_legacy
    user: gke_legacy
  name: gke_legacy
current-context: gke_legacy
kind: Config
preferences: {}
users:
- name: gke_legacy
  user:
    auth-provider:
      config:
        access-token: ya29.a0AfH6SMB-example_token
        cmd-args: config config-helper --format=json
        cmd-path: /usr/lib/google-cloud-sdk/bin/gcloud
        expiry: "2024-01-01T00:00:00Z"
        expiry-key: '{.credential.token_expiry}'
        token-key: '{.credential.access_token}'
      name: gcp
`,
  ],
  [
    "minikube (cluster extensions, a plain timestamp with commas and spaces)",
    `apiVersion: v1
clusters:
- cluster:
    certificate-authority: /home/dev/.minikube/ca.crt
    extensions:
    - extension:
        last-update: Mon, 01 Jan 2024 10:00:00 UTC
        provider: minikube.sigs.k8s.io
        version: v1.32.0
      name: cluster_info
    server: https://127.0.2.49:8443
  name: minikube
contexts:
- context:
    cluster: minikube
    extensions:
    - extension:
        last-update: Mon, 01 Jan 2024 10:00:00 UTC
        provider: minikube.sigs.k8s.io
        version: v1.32.0
      name: context_info
    namespace: default
    user: minikube
  name: minikube
current-context: minikube
kind: Config
preferences: {}
users:
- name: minikube
  user:
    client-certificate: /home/dev/.minikube/profiles/minikube/client.crt
    client-key: /home/dev/.minikube/profiles/minikube/client.key
`,
  ],
  [
    "oc login (names with colons and slashes)",
    `apiVersion: v1
clusters:
- cluster:
    server: https://127.0.2.60:6443
  name: 127-0-2-60:6443
contexts:
- context:
    cluster: 127-0-2-60:6443
    namespace: default
    user: kubeadmin/127-0-2-60:6443
  name: default/127-0-2-60:6443/kubeadmin
current-context: default/127-0-2-60:6443/kubeadmin
kind: Config
preferences: {}
users:
- name: kubeadmin/127-0-2-60:6443
  user:
    token: sha256~AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcde
`,
  ],
  [
    "tls-server-name, proxy-url, an IPv6 server and a namespace in the context",
    `apiVersion: v1
clusters:
- cluster:
    certificate-authority: /etc/kubernetes/pki/ca.crt
    proxy-url: socks5://127.0.0.1:1080
    server: https://[::1]:6443
    tls-server-name: kubernetes.default.svc
  name: v6
contexts:
- context:
    cluster: v6
    namespace: kube-system
    user: v6-admin
  name: v6
current-context: v6
kind: Config
preferences: {}
users:
- name: v6-admin
  user:
    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token
`,
  ],
  [
    "Rancher (every string double-quoted, keys in its own order, blank lines between sections)",
    `apiVersion: v1
kind: Config
clusters:
- name: "demo"
  cluster:
    server: "https://127.0.2.70/k8s/clusters/c-m-abcd1234"
    certificate-authority-data: "${CA}"

users:
- name: "demo"
  user:
    token: "kubeconfig-user-abc12:${TOKEN}"


contexts:
- name: "demo"
  context:
    user: "demo"
    cluster: "demo"

current-context: "demo"
`,
  ],
  [
    "hand-written (comments, blank lines, 4-space indentation, indented sequences, quoted values)",
    `# Lab cluster, edited by hand.
apiVersion: v1
kind: Config

clusters:
    # The lab's API server.
    - name: 'lab'   # named after the rack
      cluster:
          server: 'https://127.0.2.7:6443'
          certificate-authority: "/etc/lab/ca.pem"
          insecure-skip-tls-verify: false
# Users.
users:
    - name: lab-admin
      user:
          token: "abc.def.ghi"
          # client-certificate: /tmp/old.pem

    - name: "lab-exec"
      user:
          exec:
              apiVersion: "client.authentication.k8s.io/v1"
              command: /usr/local/bin/lab-login
              args:
                  - "--cluster=lab"
                  - 'it''s ok'
                  - "tab\\there \\u00e9"
              env: []
              interactiveMode: Never
contexts:
    - name: lab
      context:
          cluster: lab
          user: lab-admin
          namespace: ~
current-context: lab   # the default
preferences: {}
`,
  ],
];

Deno.test("kubeconfigs written by kubeadm, k3s, kubectl, cloud CLIs and by hand parse as js-yaml parses them", async (t) => {
  for (const [name, text] of KUBECONFIGS) {
    await t.step(name, () => {
      assert.equal(typeof load(text, { schema: CORE_SCHEMA }), "object");
      assertNone([text], acceptanceFailure);
    });
  }
});

Deno.test("a kubeconfig parses the same with CRLF endings, a leading ---, or no final newline", async (t) => {
  const variants: [string, (s: string) => string][] = [
    ["CRLF", (s) => s.replaceAll("\n", "\r\n")],
    ["---", (s) => `---\n${s}`],
    ["--- and CRLF", (s) => `---\r\n${s.replaceAll("\n", "\r\n")}`],
    ["no final newline", (s) => s.trimEnd()],
    ["CRLF and no final newline", (s) => s.trimEnd().replaceAll("\n", "\r\n")],
  ];
  for (const [name, text] of KUBECONFIGS) {
    await t.step(name, () => {
      assertNone(variants.map(([, variant]) => variant(text)), acceptanceFailure);
    });
  }
});

/** One feature of the subset each (point 4 of the contract): accepted, and equal to js-yaml. */
const IN_SUBSET = [
  "a: b",
  "a: b\n",
  "a: b\n\n\n",
  "\n\na: b",
  "apiVersion: v1\nkind: Config",
  "a:\n  b: c",
  "a:\n  b:\n    c: d\n  e: f\ng: h",
  "a:\n   b: c\n   d:\n      e: f",
  "a:\n    b:\n        c: d",
  "a:\n- b: c\n  d: e\n- f: g",
  "a:\n  - b: c\n    d: e\n  - f: g",
  "a:\n    - b: c\n      d: e",
  "a:\n- b:\n    c: d\n  e: f",
  "a:\n- b:\n  - c\n  - d\n  e: f",
  "a:\n  - b:\n      - c\n    e: f",
  "a:\n  b:\n  - c\n  d: e",
  "a:\n- b\nc: d",
  "args:\n- eks\n- get-token\nenv: null",
  "args:\n  - eks\n  - get-token",
  "args:\n- --region\n- us-west-2",
  "a:\n- b\n- true\n- 3\n- null\n- 'c'\n- \"d\"",
  "a:\n- name: x\n  user: {}\n- name: y\n  user:\n    token: t",
  "a: system:node:node1@kubernetes",
  "a: https://[::1]:6443",
  "a: https://127.0.0.1:6443/k8s/clusters/c-1",
  "a: client.authentication.k8s.io/v1beta1",
  "a: 127.0.0.10",
  "a: 127.0.2.1:443",
  "a: --format=json",
  "a: x=y",
  "a: a-b-c",
  "a: /var/lib/kubelet/pki/kubelet-client-current.pem",
  "a: ./pki/ca.crt",
  "a: 07401b.f395accd246ae52d",
  "a: arn:aws:eks:us-west-2:111122223333:cluster/demo",
  "a: 6dae42f8-4368-4678-94ff-3960e28e3630",
  "a: v1.32.0",
  "a: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==",
  "a: b c",
  "a: config config-helper --format=json",
  "system:node:node1: a",
  "certificate-authority-data: a",
  "a: 'it''s'",
  "a: ''",
  'a: ""',
  "a: '''quoted'''",
  "a: 'b: c # d'",
  'a: "b: c # d"',
  "a: ' x '",
  "a: 'true'",
  'a: "12"',
  'a: "null"',
  'a: "https://127.0.0.1:6443"',
  'a: "\\\\ \\" \\/ \\n \\t \\r \\0 \\b"',
  'a: "\\u00e9\\u0041\\x41\\x7e"',
  "a: 'é 😀'",
  'a: "é 😀"',
  "a: é",
  "a: null",
  "a: ~",
  "a: Null",
  "a: NULL",
  "a:",
  "a: ",
  "a:\n",
  "a:\nb: c",
  "a:\n  b:\n  c: d",
  "a:\n- b:\n  c: d",
  "a: true",
  "a: True",
  "a: TRUE",
  "a: false",
  "a: False",
  "a: FALSE",
  "a: 0",
  "a: 42",
  "a: -1",
  "a: 6443",
  "a: {}",
  "a: []",
  "a:\n  b: {}\n  c: []",
  "preferences: {}\nusers: []",
  "# c\na: b",
  "a: b # c",
  "a: b # c: d",
  "a: b\n# c",
  "a: b\n# c\n",
  "a:\n  # c\n  b: c",
  "a:\n# c\n  b: c",
  "a:\n  b: c\n      # c\n  d: e",
  "a:\n- b # c\n# c\n- c",
  "a: 'b' # c",
  'a: "b" # c',
  "a: {} # c",
  "a: [] # c",
  "a: null # c",
  "a: 12 # c",
  "a: # c\n  b: c",
  "a:\n\n  b: c",
  "a:\n  \n  b: c\n   \n",
  "a: b\n   \nc: d",
  "---\na: b",
  "---\r\na: b",
  "a:\r\n  b: c\r\n",
  "a:\r\n- b\r\n- c\r\n",
  "a: b\r\n# c\r\n\r\nd: 'e'\r\n",
];

Deno.test("each feature of the kubeconfig subset is accepted and parses as js-yaml parses it", () => {
  assertNone(IN_SUBSET, acceptanceFailure);
});

/** Texts beyond (or at the edge of) the subset: BEYOND_SUBSET or js-yaml's value, never a different value. */
const EDGES = [
  // anchors, aliases, tags
  "a: &x b\nc: *x",
  "a: &x b",
  "a: *x",
  "&x a: b",
  "a: &x\n  b: c\nd: *x",
  "a: !!str 1",
  "a: !!int '1'",
  "a: !x b",
  "!!map\na: b",
  "a: !!binary aGk=",
  "a: !",
  "a: &",
  "a: *",
  // block scalars, including the AKS installHint shape
  "a: |\n  x\n  y\n",
  "a: >-\n  x\n  y",
  "a: |",
  "a: >",
  "installHint: |2\n\n  kubelogin is not installed.\n\n  go https://example.invalid\n",
  // flow collections with content
  "a: [b, c]",
  "a: {b: c}",
  "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443'}}]",
  "a: [",
  "a: {",
  "a: ]",
  "a: }",
  "a: [b]x",
  "a: []x",
  "a: {}x",
  "a: [] x",
  "a: [ ]",
  "a: { }",
  "a: [\n]",
  "a:\n  {}",
  "a:\n  []",
  "a:\n- {}\n- []",
  "- {}",
  // multi-line scalars, including the folded installHint gcloud writes
  "a: b\n  c",
  "a: b\n\n  c",
  "a: 'b\n  c'",
  'a: "b\n  c"',
  'a: "b\\\n  c"',
  "installHint: Install gke-gcloud-auth-plugin for use with kubectl by following\n  https://cloud.google.com/kubernetes-engine/docs",
  "a:\n  b",
  "a:\n  -b",
  "a:\n  b\n  c",
  "a:\n- b\n  - c",
  "a:\n- b\n  c",
  "a: 'b",
  'a: "b',
  "a: 'b\n",
  // tabs
  "a:\tb",
  "a: b\t# c",
  "a: b\t",
  "\ta: b",
  "a:\n\tb: c",
  "a:\n  b:\tc",
  "a:\n \tb: c",
  "a:\n  \t\n  b: c",
  'a: "b\tc"',
  "a: 'b\tc'",
  "a: b\tc",
  "- \ta",
  "-\ta",
  // duplicate keys
  "a: 1\na: 2",
  "a:\n  b: 1\n  b: 2",
  "- a: 1\n  a: 2",
  "a: 1\n'a': 2",
  'a: 1\n"a": 2',
  "null: 1\n~: 2",
  "1: a\n01: b",
  "true: a\nTrue: b",
  "a: 1\nb:\n  a: 2\na: 3",
  // keys that are not plain names
  "__proto__: x",
  "__proto__:\n  polluted: true",
  "a:\n  __proto__:\n    polluted: true",
  "- __proto__: x",
  "'__proto__': x",
  "constructor: x",
  "toString: x\nhasOwnProperty: y\nvalueOf: z",
  "~: a",
  "null: a",
  "Null: a",
  "TRUE: a",
  "false: a",
  "1: a",
  "-1: a",
  "0x1F: a",
  "012: a",
  "1.5: a",
  "-0: a",
  ".inf: a",
  '"a": b',
  "'a': b",
  '"a b": c',
  "'a''b': c",
  '"": a',
  "'': a",
  ": a",
  "a b: c",
  "-a: b",
  "a#: b",
  "a #b: c",
  "é: a",
  "<<: a",
  "? a\n: b",
  "[a]: b",
  "{a: b}: c",
  "k".repeat(1025) + ": v",
  // numbers and other scalar types of the core schema
  "a: 1.5",
  "a: .5",
  "a: 1.",
  "a: -1.5e-3",
  "a: .inf",
  "a: -.Inf",
  "a: .nan",
  "a: .NaN",
  "a: 1e3",
  "a: 0x1F",
  "a: -0x1F",
  "a: 0o17",
  "a: 0b101",
  "a: +1",
  "a: -0",
  "a: +0",
  "a: 012",
  "a: 08",
  "a: 00",
  "a: 1_000",
  "a: 0x_1F",
  "a: 0x",
  "a: 0o",
  "a: +",
  "a: 99999999999999999999",
  "a: 9007199254740993",
  "a: 1:30",
  "a: 2001-12-14",
  "a: yes",
  "a: no",
  "a: on",
  "a: off",
  "a: y",
  "a: Yes",
  "a: tRUE",
  "a: nULL",
  "a: ~x",
  "a: <<",
  // quoted scalars
  'a: "\\u00e9"',
  'a: "\\U0001F600"',
  'a: "\\uD83D\\uDE00"',
  'a: "\\uD800"',
  'a: "\\uDE00x"',
  'a: "\\u0000"',
  'a: "\\e\\a\\v\\f"',
  'a: "\\N\\_\\L\\P"',
  'a: "\\ "',
  'a: "\\q"',
  'a: "\\x4"',
  'a: "\\u12"',
  'a: "\\u12G4"',
  'a: "\\"',
  'a: "b\\"',
  "a: 'a''b'",
  "a: ''''",
  "a: 'b''",
  "a: ': x'",
  'a: ": x"',
  "a: '#'",
  "a: ' # '",
  'a: " # "',
  "a: 'b' c",
  "a: 'b'c",
  "a: 'b'#c",
  'a: "b"# c',
  'a: "b"c',
  'a: "b" "c"',
  'a: "\u0001"',
  "a: '\u0001'",
  // plain scalars at the edges
  "a: b:",
  "a: b: c",
  "a: b :c",
  "a: b :",
  "a: :b",
  "a: ::1",
  "a: b#c",
  "a: b #c",
  "a: b # c # d",
  "a: #",
  "a: b\n#",
  "#a: b\nc: d",
  "a: @b",
  "a: `b",
  "a: %b",
  "a: ,b",
  "a: b,c",
  "a: ?b",
  "a: ? b",
  "a: -",
  "a: - b",
  "a: - ",
  "a: -b",
  "a: --",
  "a: ---",
  "a: ...",
  "a: b'c",
  'a: b"c',
  "a: b\\c",
  "a: {b",
  "a: [b",
  "a: b]",
  "a: b}",
  "a: !b",
  "a: |b",
  "a: >b",
  "a: *b",
  "a: &b c",
  // trailing spaces and stray spaces
  "a : b",
  "a  : b",
  "a:  b  ",
  "a: b   \n",
  "a:   \n  b: c",
  "a: 'b'   ",
  'a: "b"   ',
  "a:    # c",
  // `key:value` and other top levels that are not mappings
  "key:value",
  "a:b\nc: d",
  "https://127.0.0.1:6443",
  "- a",
  "- a\n- b",
  "- a: b",
  "- a: b\n- c: d\ne: f",
  "-",
  "- ",
  "a",
  "12",
  "true",
  "~",
  "'a: b'",
  '"a"',
  "{}",
  "[]",
  "{a: b}",
  // empty documents, markers, directives, several documents
  "",
  "\n",
  "   ",
  "\r\n",
  "# only a comment\n# and another",
  "---",
  "---\n",
  "--- # c",
  "...",
  "... ",
  "---\n...\n",
  "---\n---\n",
  "a: b\n---\nc: d",
  "a: b\n---",
  "a: b\n---\n",
  "a: b\n# c\n---",
  "a: b\n...\n",
  "a: b\n...",
  "a: b\n... # c",
  "a: b\n...\nc",
  "a: b\n...\n---\nc: d",
  "%YAML 1.2\n---\na: b",
  "%YAML 1.1\n---\na: b",
  "%TAG ! tag:example.invalid,2000:\n---\na: b",
  "--- a: b",
  "---a: b",
  "--- |\n  x",
  "--- \na: b",
  "----\na: b",
  "---\n\na: b",
  "---\n# c\na: b",
  // indentation that does not line up
  " a: b",
  "  a: b\nc: d",
  "a: b\n c: d",
  "a: b\n  c: d",
  "a:\n  b: c\n d: e",
  "a:\n    b: c\n  d: e",
  "a:\n  b: c\n    d: e",
  "a:\n  b: c\n   d: e",
  "a:\nb:\n  c: d\n d: e",
  "a:\n  - b\n  c: d",
  "a:\n  - b\n- c",
  "a:\n - b\n  - c",
  "a:\n  - b\n   - c",
  "a:\n  - b\n - c",
  "- a\n - b",
  "a:\n  b:\n  - c\n   - d",
  "a:\n- b: c\n   d: e",
  "a:\n- b: c\n    d: e",
  "a:\n- b: c\n d: e",
  "a:\n-   b: c\n    d: e",
  "a:\n-  b: c\n  d: e",
  "- a: b\n    c: d",
  "a:\n    - b\n  c: d",
  "a:\n  b:\n      c: d\n    e: f",
  // sequence entries with nothing, or with their content on the next lines
  "a:\n-",
  "a:\n- ",
  "a:\n-\n- b",
  "a:\n-\n  b: c",
  "a:\n-\n  b: c\n  d: e",
  "a:\n-\n  - b",
  "a:\n-\n  b",
  "a:\n- # c\n  b: c",
  "a:\n- - b\n  - c",
  "a:\n- - b: c\n    d: e",
  "a:\n-b",
  "a:\n- -b",
  "a:\n- - ",
  "a:\n- b:\n  - c\n  - d",
  "a:\n- b:\n- c",
  // document markers where they are not markers
  "a:\n  ---b: c",
  "a:\n  ---: c",
  "a:\n  ...: c",
  "a:\n- ---",
  "a:\n- ...",
  "- ---",
  "-a: ---",
  // comments in odd places
  "a: b\n  # c",
  "a:\n  # c\n- b",
  "a:\n    # c\n  b: c\n",
  "a: # c\n- b",
  "a: # c\nb: c",
  "a: b # c\n  # d\nc: e",
  "a:\n  b: c\n# c\n  d: e",
  "a: 'b' # c\n  d",
  // byte-order marks, control characters, line breaks other than LF and CRLF
  "\ufeffa: b",
  "\ufeff---\na: b",
  "a: b\ufeff",
  "a:\n  \ufeffb: c",
  "a: b\u0001",
  "a: b\u0000c",
  "a: b\u007f",
  "a: b\u0085c",
  "a: b\u2028c",
  "a: \ud800",
  "a: \udc00x",
  "a: b\rc: d",
  "a: b\r\r\nc: d",
  "a:\r  b: c",
  "a: b\n\rc: d",
  "a: b\r",
  "a: 'b\r\n  c'",
  // U+00A0 is not YAML white space: not after "---", not as indentation, and part of a plain scalar
  "---\u00a0#x\na: b\n",
  "---\u00a0\na: b\n",
  "\u00a0a: b\n",
  "a: b\u00a0\n",
  "a:\u00a0b\n",
  "a: b\u00a0#c\n",
  // an empty last entry, then a "-" at a shallower column: js-yaml takes it into the inner sequence (found by the
  // property test, seed 255081441)
  "a:\n- k:\n  -\n- 2\n",
  "a:\n- k:\n  - 1\n  -\n- 2\n",
  "a:\n  - k:\n    - # c\n  - 2\n",
  '\n"": []  # c8\n\'a\':\n- "":  # c8\n  -   # c0\n- null  # c5',
  // the same shapes that js-yaml reads as YAML does: the subset answers them
  "a:\n- k:\n  -\n  - 1\n- 2\n",
  "a:\n- k:\n- 2\n",
];

Deno.test("texts beyond the subset give BEYOND_SUBSET or js-yaml's value, and BEYOND_SUBSET where js-yaml throws", () => {
  assertNone(EDGES, contractViolation);
});

/** `levels` nested mappings (`a:` under `a:`), `step` spaces deeper each, ending in `a: leaf`. */
function nestedMappings(levels: number, step: number): string {
  const lines: string[] = [];
  for (let i = 0; i < levels; i++) lines.push(`${" ".repeat(i * step)}a:`);
  lines.push(`${" ".repeat(levels * step)}a: leaf`);
  return lines.join("\n");
}

/** `levels` nested sequences of one-entry mappings, kubectl style (`- ` at the parent key's column). */
function nestedKubectlSequences(levels: number): string {
  const lines = ["a:"];
  for (let i = 0; i < levels; i++) lines.push(`${" ".repeat(i * 2)}- a:`);
  lines.push(`${" ".repeat(levels * 2)}- leaf`);
  return lines.join("\n");
}

Deno.test("very deep nesting never throws out of the parser", async (t) => {
  const cases: [string, () => string][] = [
    ["200 levels of mappings", () => nestedMappings(200, 2)],
    ["200 levels of kubectl-style sequences of mappings", () => nestedKubectlSequences(200)],
    ["200 levels of compact sequences", () => `a:\n${"- ".repeat(200)}leaf`],
    ["3000 levels of mappings, one space deeper each", () => nestedMappings(3000, 1)],
    ["50000 compact sequences on one line", () => `a:\n${"- ".repeat(50_000)}leaf`],
    ["100000 nested flow sequences", () => `a: ${"[".repeat(100_000)}${"]".repeat(100_000)}`],
    ["100000 nested flow mappings", () => `a: ${"{a: ".repeat(100_000)}b${"}".repeat(100_000)}`],
  ];
  for (const [name, make] of cases) await t.step(name, () => assertContract(make()));
});

Deno.test("a 1 MiB line is read whole", async (t) => {
  const MiB = 1 << 20;
  await t.step("a plain value, a base64 value, a quoted value and a comment are accepted", () => {
    assertNone([
      `a: ${"x".repeat(MiB)}`,
      `certificate-authority-data: ${btoa("k".repeat(MiB * 3 / 4))}\nb: c`,
      `a: '${"x".repeat(MiB)}'`,
      `a: "${"\\u00e9".repeat(Math.floor(MiB / 6))}"`,
      `# ${"#".repeat(MiB)}\na: b`,
    ], acceptanceFailure);
  });
  await t.step("other 1 MiB lines give BEYOND_SUBSET or js-yaml's value", () => {
    assertNone([
      `${"k".repeat(MiB)}: v`,
      `a: ${"x ".repeat(MiB / 2)}`,
      `a: ${"x:".repeat(MiB / 2)}`,
      ":".repeat(MiB),
      `a: ${"'".repeat(MiB)}`,
      `a: "${"\\".repeat(MiB)}`,
      `a: ${" ".repeat(MiB)}b`,
      `${" ".repeat(MiB)}a: b`,
      `a:\n${" ".repeat(MiB)}\n  b: c`,
      "\n".repeat(MiB) + "a: b",
    ], contractViolation);
  });
});
