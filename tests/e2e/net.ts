/**
 * The hosts of the e2e suite: one network namespace per kube-apiserver, one for etcd, and one "node" namespace for the
 * proxy and its clients, joined by veth pairs to a bridge inside the node namespace, on 198.18.0.0/24 (RFC 2544's
 * range for network tests). Nothing is added to the host's own namespace. The names start with {@linkcode NET_PREFIX},
 * which the fault suite's leftover sweep (`ep-fault-`) never matches, and this module's sweep never touches theirs.
 *
 * ```
 *  node namespace: 127.0.0.1 (proxy :7445, health :7446, clients)   br0 198.18.0.254
 *                                                                     ├─ v0 ══ eth0 198.18.0.10 (etcd namespace)
 *                                                                     ├─ v1 ══ eth0 198.18.0.1  (api1 namespace)
 *                                                                     ├─ v2 ══ eth0 198.18.0.2  (api2 namespace)
 *                                                                     └─ v3 ══ eth0 198.18.0.3  (api3 namespace)
 * ```
 *
 * @module
 */
import { findExecutable, run } from "../faults/netns.ts";

/** Every namespace of this suite starts with this; then the creating process id, a random tag and the role. */
export const NET_PREFIX = "ep-e2e-";
/** The kube-apiservers' addresses, one per namespace; each advertises its own. */
export const API_ADDRESSES: readonly string[] = ["198.18.0.1", "198.18.0.2", "198.18.0.3"];
/** The kube-apiservers' secure port. */
export const API_PORT = 6443;
/** etcd's address (its own namespace). */
export const ETCD_ADDRESS = "198.18.0.10";
/** etcd's client port. */
export const ETCD_PORT = 2379;
/** The node namespace's address on the bridge. */
export const NODE_ADDRESS = "198.18.0.254";
const PREFIX_LENGTH = 24;
const NAME_PATTERN = new RegExp(`^${NET_PREFIX}(\\d+)-[a-z0-9]+-[a-z0-9]+$`);
/** A run lasts minutes; a namespace of this suite older than this whose process is gone is a leftover. */
const LEFTOVER_AGE_MS = 30 * 60 * 1000;

/** The tools the suite needs, or why it cannot run here. */
export interface NetTools {
  readonly ok: boolean;
  readonly reason: string;
  readonly ip: string;
  /** `setpriv` (util-linux) or `""`: with it, processes in the namespaces die with the test process. */
  readonly setpriv: string;
}

/** Checks for Linux, root and `ip netns`; changes nothing. */
export async function checkNetTools(): Promise<NetTools> {
  const ip = findExecutable("ip") ?? "";
  const setpriv = findExecutable("setpriv") ?? "";
  const no = (reason: string): NetTools => ({ ok: false, reason, ip, setpriv });
  if (Deno.build.os !== "linux") return no(`network namespaces need Linux, not ${Deno.build.os}`);
  if (Deno.uid() !== 0) return no(`network namespaces need root (uid is ${Deno.uid()})`);
  if (ip === "") return no("'ip' was not found (install iproute2)");
  const probe = await new Deno.Command(ip, { args: ["netns", "list"], stdout: "null", stderr: "piped" }).output();
  if (!probe.success) return no(`'ip netns list' failed: ${new TextDecoder().decode(probe.stderr).trim()}`);
  return { ok: true, reason: "", ip, setpriv };
}

async function deleteNamespace(ip: string, name: string): Promise<string | undefined> {
  try {
    const pids = (await run(ip, ["netns", "pids", name])).split("\n").map((s) => Number(s.trim())).filter((n) => n > 0);
    for (const pid of pids) {
      try {
        Deno.kill(pid, "SIGKILL"); // a process this suite started in its own namespace, outliving its run
      } catch { /* gone meanwhile */ }
    }
    await run(ip, ["netns", "delete", name]);
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

async function removeLeftovers(ip: string): Promise<void> {
  const names = (await run(ip, ["netns", "list"])).split("\n").map((l) => l.trim().split(/\s+/)[0] ?? "");
  for (const n of names) {
    const m = NAME_PATTERN.exec(n);
    if (m === null) continue;
    try {
      Deno.statSync(`/proc/${m[1]}`);
      continue; // its run is still going
    } catch { /* its process is gone */ }
    try {
      const created = Deno.statSync(`/run/netns/${n}`).mtime?.getTime() ?? Date.now();
      if (Date.now() - created > LEFTOVER_AGE_MS) await deleteNamespace(ip, n);
    } catch { /* removed meanwhile */ }
  }
}

/** The namespaces of one run. Create with {@linkcode E2eNet.create}; `await using` it so that teardown always runs. */
export class E2eNet implements AsyncDisposable {
  /** The proxy's and clients' namespace. */
  readonly nodeNs: string;
  readonly etcdNs: string;
  /** Index i holds {@linkcode API_ADDRESSES}[i]. */
  readonly apiNs: readonly string[];
  readonly #tools: NetTools;
  readonly #created: string[] = [];
  #destroyed = false;

  private constructor(tools: NetTools) {
    const tag = crypto.getRandomValues(new Uint32Array(1))[0]?.toString(36) ?? "0";
    const base = `${NET_PREFIX}${Deno.pid}-${tag}-`;
    this.nodeNs = `${base}node`;
    this.etcdNs = `${base}etcd`;
    this.apiNs = API_ADDRESSES.map((_, i) => `${base}api${i + 1}`);
    this.#tools = tools;
  }

  /**
   * Removes leftovers of crashed runs, then builds the namespaces, the bridge and the veth pairs.
   *
   * @throws {Error} When a step fails; what was built is removed first.
   */
  static async create(tools: NetTools): Promise<E2eNet> {
    await removeLeftovers(tools.ip);
    const net = new E2eNet(tools);
    try {
      await net.#build();
    } catch (e) {
      await net.destroy();
      throw e;
    }
    return net;
  }

  async #build(): Promise<void> {
    const ip = (...args: string[]) => run(this.#tools.ip, args);
    const node = this.nodeNs;
    await ip("netns", "add", node);
    this.#created.push(node);
    await ip("-n", node, "link", "set", "lo", "up");
    await ip("-n", node, "link", "add", "br0", "type", "bridge");
    await ip("-n", node, "addr", "add", `${NODE_ADDRESS}/${PREFIX_LENGTH}`, "dev", "br0");
    await ip("-n", node, "link", "set", "br0", "up");
    const hosts = [[this.etcdNs, ETCD_ADDRESS], ...this.apiNs.map((ns, i) => [ns, API_ADDRESSES[i] ?? ""])];
    for (const [i, [ns, addr]] of hosts.entries()) {
      await ip("netns", "add", ns as string);
      this.#created.push(ns as string);
      await ip("-n", ns as string, "link", "set", "lo", "up");
      await ip("-n", node, "link", "add", `v${i}`, "type", "veth", "peer", "name", "eth0", "netns", ns as string);
      await ip("-n", node, "link", "set", `v${i}`, "master", "br0");
      await ip("-n", node, "link", "set", `v${i}`, "up");
      await ip("-n", ns as string, "addr", "add", `${addr}/${PREFIX_LENGTH}`, "dev", "eth0");
      await ip("-n", ns as string, "link", "set", "eth0", "up");
    }
  }

  /**
   * The command line that runs `command args` in namespace `ns`. `ip netns exec` and `setpriv` replace themselves with
   * the command, so a spawned process id is the command's (signals reach it); `--pdeathsig KILL` ends it should the
   * test process die without its teardown.
   */
  exec(ns: string, command: string, args: readonly string[]): { command: string; args: string[] } {
    const guard = this.#tools.setpriv === "" ? [] : [this.#tools.setpriv, "--pdeathsig", "KILL"];
    return { command: this.#tools.ip, args: ["netns", "exec", ns, ...guard, command, ...args] };
  }

  /**
   * Deletes every namespace of this run (veths and bridge go with them), killing what still runs inside.
   *
   * @throws {Error} When a namespace could not be deleted (after trying all of them).
   */
  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    const errors: string[] = [];
    for (const ns of this.#created.reverse()) {
      const err = await deleteNamespace(this.#tools.ip, ns);
      if (err !== undefined) errors.push(err);
    }
    if (errors.length > 0) throw new Error(`Cannot remove the e2e namespaces: ${errors.join("; ")}`);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.destroy();
  }
}
