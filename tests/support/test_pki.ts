/**
 * A throwaway PKI for tests, made with the `openssl` CLI: a cluster CA, two API server certificates (one naming only
 * the `kubernetes*` DNS names, one naming only the loopback IPs), a node client certificate (also as one combined
 * cert+key PEM like kubelet's `kubelet-client-current.pem`), an unrelated second CA with a client certificate of its
 * own, and a function that issues more client certificates (for rotation tests).
 *
 * EC P-256 keys make generation fast (~50 ms); the PEM material is still generated once per process and cached, and
 * every {@linkcode createTestPki} call writes it into a fresh temporary directory that its disposal removes.
 *
 * @example
 * ```ts
 * import { createTestPki } from "./test_pki.ts";
 * await using pki = await createTestPki();
 * const client = Deno.createHttpClient({ caCerts: [pki.ca.cert], cert: pki.client.cert, key: pki.client.key });
 * client.close();
 * ```
 *
 * @module
 */

/** A certificate and its private key, as PEM text and as files in the PKI's directory. */
export interface CertKeyPair {
  /** PEM of the certificate. */
  readonly cert: string;
  /** PEM of the private key (PKCS#8, `BEGIN PRIVATE KEY`). */
  readonly key: string;
  /** File holding {@linkcode cert}. */
  readonly certPath: string;
  /** File holding {@linkcode key} (mode 0600). */
  readonly keyPath: string;
}

/** A client certificate, with the combined form kubelet writes (certificate, then an `EC PRIVATE KEY` block). */
export interface ClientCertificate extends CertKeyPair {
  /** The certificate followed by the key in SEC1 form (`BEGIN EC PRIVATE KEY`), as kubelet's rotated file. */
  readonly combined: string;
  /** File holding {@linkcode combined}. */
  readonly combinedPath: string;
  /** The certificate's subject common name, the user name the API server sees. */
  readonly commonName: string;
  /** The certificate's subject organisations, the groups the API server sees. */
  readonly organizations: readonly string[];
}

/** Options of {@linkcode TestPki.issueClientCert}. */
export interface IssueClientCertOptions {
  /** Subject CN: the user name. @default {"system:node:test-node"} */
  readonly commonName?: string;
  /** Subject O values: the groups. @default {["system:nodes"]} */
  readonly organizations?: readonly string[];
  /** Which CA signs it. @default {"ca"} */
  readonly signer?: "ca" | "otherCa";
  /** Validity in days. @default {2} */
  readonly days?: number;
}

/** The DNS names of {@linkcode TestPki.serverDns}: what kubeadm puts in an API server certificate, without IPs. */
export const SERVER_DNS_NAMES: readonly string[] = [
  "kubernetes",
  "kubernetes.default",
  "kubernetes.default.svc",
  "kubernetes.default.svc.cluster.local",
];

/** The user name of {@linkcode TestPki.client}. */
export const TEST_NODE_USER = "system:node:test-node";
/** The group of {@linkcode TestPki.client}. */
export const TEST_NODE_GROUP = "system:nodes";

/** A PKI in a temporary directory; disposing of it removes the directory. */
export interface TestPki extends AsyncDisposable {
  /** The temporary directory that holds every file. */
  readonly dir: string;
  /** The cluster CA (self-signed). */
  readonly ca: CertKeyPair;
  /** Server certificate with SAN only {@linkcode SERVER_DNS_NAMES}: dialling `127.0.0.1` must fail verification. */
  readonly serverDns: CertKeyPair;
  /** Server certificate with SAN only `IP:127.0.0.1, IP:::1`. */
  readonly serverIp: CertKeyPair;
  /** Client certificate signed by {@linkcode ca}: CN `system:node:test-node`, O `system:nodes`. */
  readonly client: ClientCertificate;
  /** A second, unrelated CA, for "wrong CA" tests. */
  readonly otherCa: CertKeyPair;
  /** A client certificate with the same subject as {@linkcode client}, signed by {@linkcode otherCa}. */
  readonly otherClient: ClientCertificate;
  /** Issues a new client certificate (new key) into {@linkcode dir}. */
  issueClientCert(options?: IssueClientCertOptions): Promise<ClientCertificate>;
  /** Removes {@linkcode dir}. Safe to call twice. */
  cleanup(): Promise<void>;
}

interface Material {
  readonly ca: Pem;
  readonly serverDns: Pem;
  readonly serverIp: Pem;
  readonly client: ClientPem;
  readonly otherCa: Pem;
  readonly otherClient: ClientPem;
}

interface Pem {
  readonly cert: string;
  readonly key: string;
}

interface ClientPem extends Pem {
  readonly keySec1: string;
  readonly commonName: string;
  readonly organizations: readonly string[];
}

let cached: Promise<Material> | undefined;

/**
 * Creates a PKI in a new temporary directory. The keys and certificates are the same for every call in a process.
 *
 * @returns the PKI; `await using` it, or call `cleanup()`
 */
export async function createTestPki(): Promise<TestPki> {
  cached ??= generateMaterial().catch((e) => {
    cached = undefined;
    throw e;
  });
  const material = await cached;
  const dir = await Deno.makeTempDir({ prefix: "extractedprism_pki_" });
  try {
    return await writePki(dir, material);
  } catch (e) {
    await Deno.remove(dir, { recursive: true });
    throw e;
  }
}

async function writePki(dir: string, m: Material): Promise<TestPki> {
  const ca = await writePair(dir, "ca", m.ca);
  const otherCa = await writePair(dir, "other_ca", m.otherCa);
  const serverDns = await writePair(dir, "server_dns", m.serverDns);
  const serverIp = await writePair(dir, "server_ip", m.serverIp);
  const client = await writeClient(dir, "client", m.client);
  const otherClient = await writeClient(dir, "other_client", m.otherClient);
  let issued = 0;
  let removed = false;
  const cleanup = async () => {
    if (removed) return;
    removed = true;
    await Deno.remove(dir, { recursive: true });
  };
  return {
    dir,
    ca,
    serverDns,
    serverIp,
    client,
    otherCa,
    otherClient,
    async issueClientCert(options: IssueClientCertOptions = {}) {
      const signer = options.signer === "otherCa" ? m.otherCa : m.ca;
      const pem = await makeClient(dir, signer, options);
      issued += 1;
      return writeClient(dir, `issued_${issued}`, pem);
    },
    cleanup,
    [Symbol.asyncDispose]: cleanup,
  };
}

async function writePair(dir: string, stem: string, pem: Pem): Promise<CertKeyPair> {
  const certPath = `${dir}/${stem}.crt`;
  const keyPath = `${dir}/${stem}.key`;
  await Deno.writeTextFile(certPath, pem.cert);
  await Deno.writeTextFile(keyPath, pem.key, { mode: 0o600 });
  return { cert: pem.cert, key: pem.key, certPath, keyPath };
}

async function writeClient(dir: string, stem: string, pem: ClientPem): Promise<ClientCertificate> {
  const pair = await writePair(dir, stem, pem);
  const combined = pem.cert + pem.keySec1;
  const combinedPath = `${dir}/${stem}_combined.pem`;
  await Deno.writeTextFile(combinedPath, combined, { mode: 0o600 });
  return {
    ...pair,
    combined,
    combinedPath,
    commonName: pem.commonName,
    organizations: pem.organizations,
  };
}

async function generateMaterial(): Promise<Material> {
  const work = await Deno.makeTempDir({ prefix: "extractedprism_pki_gen_" });
  try {
    const ca = await makeCa(work, "extractedprism-test-ca");
    const otherCa = await makeCa(work, "unrelated-test-ca");
    const dnsSan = SERVER_DNS_NAMES.map((n) => `DNS:${n}`).join(",");
    const serverDns = await makeLeaf(work, ca, {
      subject: "/CN=kube-apiserver",
      extensions: [`subjectAltName=${dnsSan}`, "extendedKeyUsage=serverAuth"],
    });
    const serverIp = await makeLeaf(work, ca, {
      subject: "/CN=kube-apiserver",
      extensions: ["subjectAltName=IP:127.0.0.1,IP:::1", "extendedKeyUsage=serverAuth"],
    });
    const client = await makeClient(work, ca, {});
    const otherClient = await makeClient(work, otherCa, {});
    return { ca, serverDns, serverIp, client, otherCa, otherClient };
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

async function makeCa(work: string, commonName: string): Promise<Pem> {
  const stem = `${work}/${crypto.randomUUID()}`;
  await openssl([
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    `${stem}.key`,
    "-out",
    `${stem}.crt`,
    "-subj",
    `/CN=${commonName}`,
    "-days",
    "3",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  return { cert: await Deno.readTextFile(`${stem}.crt`), key: await Deno.readTextFile(`${stem}.key`) };
}

async function makeClient(work: string, signer: Pem, options: IssueClientCertOptions): Promise<ClientPem> {
  const commonName = options.commonName ?? TEST_NODE_USER;
  const organizations = options.organizations ?? [TEST_NODE_GROUP];
  for (const part of [commonName, ...organizations]) {
    if (/[/=\\+,]/.test(part)) {
      throw new TypeError(`Cannot issue a client certificate for '${part}': expected no '/', '=', '\\', '+' or ','`);
    }
  }
  const subject = organizations.map((o) => `/O=${o}`).join("") + `/CN=${commonName}`;
  const leaf = await makeLeaf(work, signer, {
    subject,
    extensions: ["extendedKeyUsage=clientAuth"],
    days: options.days ?? 2,
  });
  const keyPath = `${work}/${crypto.randomUUID()}.key`;
  await Deno.writeTextFile(keyPath, leaf.key);
  await openssl(["ec", "-in", keyPath, "-out", `${keyPath}.sec1`]);
  const keySec1 = await Deno.readTextFile(`${keyPath}.sec1`);
  return { ...leaf, keySec1, commonName, organizations };
}

async function makeLeaf(
  work: string,
  signer: Pem,
  options: { subject: string; extensions: string[]; days?: number },
): Promise<Pem> {
  const stem = `${work}/${crypto.randomUUID()}`;
  await Deno.writeTextFile(`${stem}.ca.crt`, signer.cert);
  await Deno.writeTextFile(`${stem}.ca.key`, signer.key);
  const extensions = [
    ...options.extensions,
    "basicConstraints=critical,CA:FALSE",
    "keyUsage=critical,digitalSignature",
  ];
  await Deno.writeTextFile(`${stem}.ext`, extensions.join("\n") + "\n");
  await openssl([
    "req",
    "-new",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    `${stem}.key`,
    "-out",
    `${stem}.csr`,
    "-subj",
    options.subject,
  ]);
  const serial = Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, "0"));
  await openssl([
    "x509",
    "-req",
    "-in",
    `${stem}.csr`,
    "-CA",
    `${stem}.ca.crt`,
    "-CAkey",
    `${stem}.ca.key`,
    "-set_serial",
    `0x7${serial.join("")}`,
    "-days",
    String(options.days ?? 2),
    "-extfile",
    `${stem}.ext`,
    "-out",
    `${stem}.crt`,
  ]);
  return { cert: await Deno.readTextFile(`${stem}.crt`), key: await Deno.readTextFile(`${stem}.key`) };
}

async function openssl(args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, stdin: "null", stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n")[0] ?? "";
    throw new Error(`Cannot run 'openssl ${args[0]}': expected exit status 0, got ${out.code}: ${err}`);
  }
}
