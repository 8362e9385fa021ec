/**
 * Kubeconfig text as kubectl and kubeadm write it (keys sorted, sequences at their key's column), for the tests and
 * benches that start the program with one: the program reads it with its own YAML subset parser, as it reads a
 * node's kubeconfig, and loads no js-yaml.
 *
 * @module
 */

/** One cluster `c`, one user `u` and one context `x` between them. */
export interface KubectlKubeconfig {
  /** The cluster's `server`. */
  readonly server: string;
  /** The cluster CA, PEM text, written as `certificate-authority-data`. */
  readonly caPem?: string;
  /** `tls-server-name` of the cluster. */
  readonly tlsServerName?: string;
  /** The user's bearer token; a user without one has `user: {}`. */
  readonly token?: string;
}

/**
 * The kubeconfig text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { kubectlKubeconfig } from "./kubeconfig_text.ts";
 * assert.match(kubectlKubeconfig({ server: "https://127.0.0.1:1", token: "t" }), /^- name: u\n  user:\n    token: t$/m);
 * ```
 */
export function kubectlKubeconfig(k: KubectlKubeconfig): string {
  return [
    "apiVersion: v1",
    "clusters:",
    "- cluster:",
    ...(k.caPem === undefined
      ? []
      : [`    certificate-authority-data: ${new TextEncoder().encode(k.caPem).toBase64()}`]),
    `    server: ${k.server}`,
    ...(k.tlsServerName === undefined ? [] : [`    tls-server-name: ${k.tlsServerName}`]),
    "  name: c",
    "contexts:",
    "- context:",
    "    cluster: c",
    "    user: u",
    "  name: x",
    "current-context: x",
    "kind: Config",
    "preferences: {}",
    "users:",
    "- name: u",
    ...(k.token === undefined ? ["  user: {}"] : ["  user:", `    token: ${k.token}`]),
    "",
  ].join("\n");
}
