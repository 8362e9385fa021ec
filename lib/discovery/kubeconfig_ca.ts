/**
 * The cluster CA of the kubeconfig discovery uses (`--kubeconfig`, `--kube-context`), for the readyz probe: the CA that
 * signs the API servers' certificates on a bare node, where there is no service-account CA. Read on demand: the
 * kubeconfig parser (YAML) is loaded only here and in discovery.
 *
 * @module
 */
import { errorMessage } from "../errors.ts";
import { readRegularFile } from "../read_file.ts";

/** The kubeconfig's cluster CA as PEM text with where it came from, or why there is none. */
export type KubeconfigCa =
  | { readonly ca: string; readonly origin: string }
  | { readonly ca?: undefined; readonly reason: string };

/** Far above any CA bundle (the same bound discovery reads it with). */
const MAX_CA_BYTES = 1 << 20;

/**
 * Reads the cluster CA (`certificate-authority-data`, or the `certificate-authority` file) of the kubeconfig's
 * current context, or of `context`. Never throws: an unusable kubeconfig, or one without a CA, is a reason.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readKubeconfigCa } from "./kubeconfig_ca.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/config`, `
 * clusters: [{name: c, cluster: {server: "https://10.0.0.1:6443"}}]
 * users: [{name: u, user: {}}]
 * contexts: [{name: x, context: {cluster: c, user: u}}]
 * current-context: x
 * `);
 * const r = await readKubeconfigCa(`${dir}/config`);
 * assert(r.ca === undefined && r.reason.includes("names no certificate-authority"));
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readKubeconfigCa(path: string, context?: string): Promise<KubeconfigCa> {
  try {
    const { loadKubeconfig } = await import("../kubernetes/kubeconfig.ts");
    const conn = await loadKubeconfig(path, context === undefined ? {} : { context });
    if (conn.ca === undefined) return { reason: `${conn.origin} names no certificate-authority` };
    if ("data" in conn.ca) return { ca: conn.ca.data, origin: `the certificate-authority-data of ${conn.origin}` };
    const file = conn.ca.file;
    try {
      return { ca: await readRegularFile(file, MAX_CA_BYTES), origin: `'${file}', the CA of ${conn.origin}` };
    } catch (e) {
      return { reason: `cannot read the certificate-authority '${file}' of ${conn.origin}: ${errorMessage(e)}` };
    }
  } catch (e) {
    return { reason: errorMessage(e) };
  }
}
