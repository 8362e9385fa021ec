/**
 * Reads a kubeconfig the way kubectl does for the fields node kubeconfigs use, and refuses everything else by name:
 * a proxy that silently ignored `auth-provider` or `insecure-skip-tls-verify` would fail later, far from the cause.
 *
 * Supported: `current-context` or a named context; `server` (https, optional path prefix), `certificate-authority(-data)`,
 * `tls-server-name`; `client-certificate(-data)`, `client-key(-data)`, `token`, `tokenFile`, `exec`. Relative file
 * paths are resolved against the kubeconfig's directory. `preferences`, `extensions`, `namespace` and
 * `disable-compression` are accepted and have no effect on the connection.
 *
 * @module
 */
import { errorMessage } from "../errors.ts";
import { normaliseIpv6 } from "../endpoint.ts";
import type { KubeConnection, PemSource, UserAuth } from "./connection.ts";
import { checkFields, type Fail, findNamed, type Obj, optString, pemSource } from "./_kubeconfig_fields.ts";
import { parseUser } from "./_kubeconfig_user.ts";
import { isRecord } from "./types.ts";
import { readRegularFile, readRegularFileSync } from "../read_file.ts";
import { getLogger } from "../log.ts";
import { BEYOND_SUBSET, parseYamlSubset } from "./_yaml_subset.ts";

const log = getLogger(["extractedprism", "kubernetes"]);

/** Far above any real kubeconfig, even one with many clusters and embedded certificates. */
const MAX_KUBECONFIG_BYTES = 16 << 20;

/** Options of {@linkcode loadKubeconfig}. */
export interface LoadKubeconfigOptions {
  /** The context to use instead of `current-context` (`--kube-context`). */
  readonly context?: string;
}

const TOP_FIELDS = [
  "apiVersion",
  "kind",
  "clusters",
  "contexts",
  "users",
  "current-context",
  "preferences",
  "extensions",
];
const CLUSTER_FIELDS = [
  "server",
  "certificate-authority",
  "certificate-authority-data",
  "tls-server-name",
  "insecure-skip-tls-verify",
  "disable-compression",
  "extensions",
];
const CONTEXT_FIELDS = ["cluster", "user", "namespace", "extensions"];
/** A kubeconfig that cannot be used; the message names the file, the entry and the field. */
export class KubeconfigError extends Error {
  /** The error's name. */
  override name = "KubeconfigError";
}

/**
 * Reads and validates a kubeconfig file into a {@linkcode KubeConnection}.
 *
 * @param path The kubeconfig file (`--kubeconfig`).
 * @throws {KubeconfigError} `Cannot use kubeconfig 'PATH': user 'x' uses unsupported field 'auth-provider'` style.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadKubeconfig } from "./kubeconfig.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/config`, `
 * clusters: [{name: c, cluster: {server: "https://10.0.0.1:6443", certificate-authority: ca.crt}}]
 * users: [{name: u, user: {tokenFile: token}}]
 * contexts: [{name: x, context: {cluster: c, user: u}}]
 * current-context: x
 * `);
 * const conn = await loadKubeconfig(`${dir}/config`);
 * assert(conn.server?.port === 6443 && conn.auth.tokenFile === `${dir}/token`);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadKubeconfig(path: string, options: LoadKubeconfigOptions = {}): Promise<KubeConnection> {
  let text: string;
  try {
    text = await readRegularFile(path, MAX_KUBECONFIG_BYTES);
  } catch (e) {
    throw new KubeconfigError(`Cannot read kubeconfig '${path}': ${errorMessage(e)}`);
  }
  return await parseKubeconfig(text, path, options);
}

/**
 * Validates kubeconfig text; `path` is used in messages and to resolve relative file names (it is not read). Reads
 * the CA file only when an exec plugin asks for `provideClusterInfo`.
 *
 * The YAML that kubectl, kubeadm, k3s and client-go write is read by `_yaml_subset.ts`; anything else (anchors, block
 * scalars, flow mappings, invalid YAML ...) by js-yaml, as in @kubernetes/client-node, with YAML 1.2's core schema (no
 * timestamps, no merge keys), loaded only then: the npm package and Deno's npm loading cost about 2.7 MiB of RSS
 * (issue 14). Both give the same document wherever the subset answers (differential tests). Not the `yaml` package:
 * Deno loads its Node build, which is CommonJS, through the Node compatibility layer, 14 MiB of RSS.
 *
 * @throws {KubeconfigError} When the text is not a usable kubeconfig.
 */
export async function parseKubeconfig(
  text: string,
  path: string,
  options: LoadKubeconfigOptions = {},
): Promise<KubeConnection> {
  const doc = parseYamlSubset(text);
  if (doc !== BEYOND_SUBSET) return fromDocument(() => doc, path, options);
  log.debug("Kubeconfig {path} uses YAML beyond what kubectl writes: parsing it with js-yaml", { path });
  const { CORE_SCHEMA, load } = await import("js-yaml");
  return fromDocument(() => load(text, { schema: CORE_SCHEMA }), path, options);
}

function fromDocument(parse: () => unknown, path: string, options: LoadKubeconfigOptions): KubeConnection {
  const fail = (what: string): never => {
    throw new KubeconfigError(`Cannot use kubeconfig '${path}': ${what}`);
  };
  let doc: unknown;
  try {
    doc = parse();
  } catch (e) {
    // A missing permission is not the file's fault; everything else is (a YAMLException: syntax, an alias without
    // its anchor, a duplicate key, an unknown tag).
    if (!(e instanceof Error) || e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
      throw e;
    }
    const first = e.message.split("\n")[0];
    return fail(`expected YAML, got an error: ${first}`);
  }
  if (!isRecord(doc)) return fail("expected a mapping with clusters, contexts and users");
  checkFields(doc, TOP_FIELDS, "the file", fail);
  const dir = dirname(path);
  const resolve = (p: string) => (p.startsWith("/") ? p : `${dir === "/" ? "" : dir}/${p.replace(/^(\.\/)+/, "")}`);

  const contextName = options.context ?? optString(doc, "current-context", "the file", fail);
  if (contextName === undefined || contextName === "") {
    return fail("no current-context is set; expected one, or --kube-context");
  }
  const context = findNamed(doc, "contexts", "context", contextName, fail);
  checkFields(context, CONTEXT_FIELDS, `context '${contextName}'`, fail);
  const clusterName = optString(context, "cluster", `context '${contextName}'`, fail);
  if (!clusterName) return fail(`context '${contextName}' names no cluster`);
  const cluster = findNamed(doc, "clusters", "cluster", clusterName, fail);
  const where = `cluster '${clusterName}'`;
  checkFields(cluster, CLUSTER_FIELDS, where, fail);
  if (cluster["insecure-skip-tls-verify"] === true) {
    fail(
      `${where} uses unsupported field 'insecure-skip-tls-verify: true' (Deno always verifies the certificate chain)`,
    );
  }
  const server = parseServer(optString(cluster, "server", where, fail), where, fail);
  const ca = pemSource(cluster, "certificate-authority", where, resolve, fail);
  const tlsServerName = optString(cluster, "tls-server-name", where, fail) || undefined;

  const userName = optString(context, "user", `context '${contextName}'`, fail);
  let auth: UserAuth = userName
    ? parseUser(findNamed(doc, "users", "user", userName, fail), `user '${userName}'`, resolve, fail)
    : {};
  if (auth.exec?.cluster !== undefined) {
    // provideClusterInfo: the plugin gets the same facts kubectl would pass it.
    const info: Obj = { server: server.url };
    if (tlsServerName) info["tls-server-name"] = tlsServerName;
    if (ca) info["certificate-authority-data"] = new TextEncoder().encode(readPem(ca, fail)).toBase64();
    auth = { ...auth, exec: { ...auth.exec, cluster: info } };
  }
  const namespace = optString(context, "namespace", `context '${contextName}'`, fail) || undefined;
  return {
    origin: `kubeconfig '${path}' (context '${contextName}')`,
    server,
    ...(tlsServerName ? { tlsServerName } : {}),
    ...(ca ? { ca } : {}),
    auth,
    ...(namespace ? { namespace } : {}),
  };
}

function parseServer(url: string | undefined, where: string, fail: Fail): NonNullable<
  KubeConnection["server"]
> {
  if (!url) return fail(`${where} has no server`);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return fail(`${where} has server '${url}': expected an https:// URL`);
  }
  if (u.protocol !== "https:") return fail(`${where} has server '${url}': expected an https:// URL`);
  if (u.search || u.hash || u.username || u.password) {
    return fail(`${where} has server '${url}': expected no query, fragment or user info`);
  }
  // The URL parser accepts port 0, which nothing can dial.
  if (u.port === "0") return fail(`${where} has server '${url}': expected a port from 1 to 65535`);
  const bracketed = u.hostname.startsWith("[");
  const host = bracketed ? normaliseIpv6(u.hostname.slice(1, -1)) ?? u.hostname : u.hostname;
  return { host, port: u.port ? Number(u.port) : 443, pathPrefix: u.pathname.replace(/\/+$/, ""), url };
}

function readPem(source: PemSource, fail: Fail): string {
  if ("data" in source) return source.data;
  try {
    return readRegularFileSync(source.file, 1 << 20);
  } catch (e) {
    return fail(`cannot read certificate-authority '${source.file}': ${errorMessage(e)}`);
  }
}

function dirname(path: string): string {
  const i = path.lastIndexOf("/");
  if (i < 0) return ".";
  return i === 0 ? "/" : path.slice(0, i);
}
