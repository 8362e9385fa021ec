/**
 * The e2e control plane's PKI, on top of the shared test PKI's cluster CA: a kube-apiserver serving certificate that
 * names the three API server IPs and the `kubernetes*` DNS names (as kubeadm's does, without 127.0.0.1: clients of
 * the node-local proxy must use `tls-server-name`; the etcd namespace's address too, where the v1 API server runs), a service-account signing key, an admin client certificate
 * (group `system:masters`), a static bearer token for the load client, and kubeconfigs.
 *
 * @module
 */
import { type ClientCertificate, createTestPki, SERVER_DNS_NAMES, type TestPki } from "../support/test_pki.ts";
import { API_ADDRESSES, ETCD_ADDRESS } from "./net.ts";

/** The name every client verifies API server certificates against. */
export const SERVER_NAME = "kubernetes.default.svc";

/** Files of the e2e PKI, all in one temporary directory. */
export interface E2ePki extends AsyncDisposable {
  readonly dir: string;
  readonly base: TestPki;
  readonly caPath: string;
  readonly servingCertPath: string;
  readonly servingKeyPath: string;
  readonly saKeyPath: string;
  readonly saPubPath: string;
  readonly admin: ClientCertificate;
  /** The load client's bearer token (user `e2e-load`, group `system:masters`). */
  readonly token: string;
  /** `--token-auth-file` for the kube-apiservers. */
  readonly tokenFilePath: string;
  /** Writes a kubeconfig with the admin certificate; `server` e.g. `https://127.0.0.1:7445`. */
  kubeconfig(name: string, server: string, opts?: { tlsServerName?: string }): Promise<string>;
  cleanup(): Promise<void>;
}

/** Creates the PKI in the shared test PKI's temporary directory (removed with it). */
export async function createE2ePki(): Promise<E2ePki> {
  const base = await createTestPki();
  try {
    const dir = base.dir;
    const servingKeyPath = `${dir}/apiserver.key`;
    const servingCertPath = `${dir}/apiserver.crt`;
    const san = [...SERVER_DNS_NAMES.map((n) => `DNS:${n}`), ...[...API_ADDRESSES, ETCD_ADDRESS].map((a) => `IP:${a}`)]
      .join(",");
    await Deno.writeTextFile(
      `${dir}/apiserver.ext`,
      `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\n` +
        "keyUsage=critical,digitalSignature\n",
    );
    await openssl([
      "req",
      "-new",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      servingKeyPath,
      "-out",
      `${dir}/apiserver.csr`,
      "-subj",
      "/CN=kube-apiserver",
    ]);
    await openssl([
      "x509",
      "-req",
      "-in",
      `${dir}/apiserver.csr`,
      "-CA",
      base.ca.certPath,
      "-CAkey",
      base.ca.keyPath,
      "-set_serial",
      `0x${Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, "0")).join("")}`,
      "-days",
      "2",
      "-extfile",
      `${dir}/apiserver.ext`,
      "-out",
      servingCertPath,
    ]);
    const saKeyPath = `${dir}/sa.key`;
    const saPubPath = `${dir}/sa.pub`;
    await openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", saKeyPath]);
    await openssl(["pkey", "-in", saKeyPath, "-pubout", "-out", saPubPath]);
    const admin = await base.issueClientCert({ commonName: "e2e-admin", organizations: ["system:masters"] });
    const token = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0"))
      .join("");
    const tokenFilePath = `${dir}/tokens.csv`;
    await Deno.writeTextFile(tokenFilePath, `${token},e2e-load,e2e-load,"system:masters"\n`, { mode: 0o600 });
    return {
      dir,
      base,
      caPath: base.ca.certPath,
      servingCertPath,
      servingKeyPath,
      saKeyPath,
      saPubPath,
      admin,
      token,
      tokenFilePath,
      async kubeconfig(name, server, opts = {}) {
        const path = `${dir}/${name}.kubeconfig`;
        const cluster: Record<string, string> = { server, "certificate-authority": base.ca.certPath };
        if (opts.tlsServerName !== undefined) cluster["tls-server-name"] = opts.tlsServerName;
        const config = {
          apiVersion: "v1",
          kind: "Config",
          clusters: [{ name: "e2e", cluster }],
          users: [{ name: "admin", user: { "client-certificate": admin.certPath, "client-key": admin.keyPath } }],
          contexts: [{ name: "e2e", context: { cluster: "e2e", user: "admin" } }],
          "current-context": "e2e",
        };
        await Deno.writeTextFile(path, JSON.stringify(config, null, 2));
        return path;
      },
      cleanup: () => base.cleanup(),
      [Symbol.asyncDispose]: () => base.cleanup(),
    };
  } catch (e) {
    await base.cleanup();
    throw e;
  }
}

async function openssl(args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, stdin: "null", stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n")[0] ?? "";
    throw new Error(`Cannot run 'openssl ${args[0]}': expected exit status 0, got ${out.code}: ${err}`);
  }
}
