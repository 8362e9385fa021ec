/**
 * The in-cluster credentials of a pod: the projected service-account token (rotated by the kubelet), the cluster CA
 * and the namespace. No server address comes from here: in-cluster, the known API server endpoints are dialled
 * directly, never the `kubernetes.default.svc` ClusterIP (it needs the CNI, which may need this proxy).
 *
 * @module
 */
import { errorMessage } from "../errors.ts";
import type { KubeConnection } from "./connection.ts";
import { readRegularFileSync } from "../read_file.ts";

/** Where the kubelet mounts a pod's service-account token, CA and namespace. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/**
 * Loads the service-account files of `dir`, or returns `undefined` when there is no `token` file (not in a pod, or
 * `automountServiceAccountToken: false`). The token and CA are returned as files, so that rotations are picked up.
 *
 * @param dir The service-account directory. @default {SERVICE_ACCOUNT_DIR}
 * @throws {Error} When `token` exists but `ca.crt` does not, or a file cannot be read.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadInCluster } from "./in_cluster.ts";
 * const dir = await Deno.makeTempDir();
 * assert(loadInCluster(dir) === undefined);
 * await Deno.writeTextFile(`${dir}/token`, "t");
 * await Deno.writeTextFile(`${dir}/ca.crt`, "-----BEGIN CERTIFICATE-----\n");
 * assert(loadInCluster(dir)?.auth.tokenFile === `${dir}/token`);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function loadInCluster(dir: string = SERVICE_ACCOUNT_DIR): KubeConnection | undefined {
  const token = `${dir}/token`;
  const ca = `${dir}/ca.crt`;
  if (!isFile(token, dir)) return undefined;
  if (!isFile(ca, dir)) {
    throw new Error(`Cannot use service account '${dir}': expected 'ca.crt' beside 'token'`);
  }
  let namespace: string | undefined;
  if (isFile(`${dir}/namespace`, dir)) {
    try {
      namespace = readRegularFileSync(`${dir}/namespace`, 4096).trim() || undefined;
    } catch (e) {
      throw new Error(`Cannot use service account '${dir}': ${errorMessage(e)}`);
    }
  }
  return {
    origin: `service account '${dir}'`,
    ca: { file: ca },
    auth: { tokenFile: token },
    ...(namespace ? { namespace } : {}),
  };
}

function isFile(path: string, dir: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw new Error(`Cannot use service account '${dir}': ${errorMessage(e)}`);
  }
}
