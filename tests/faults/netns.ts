/**
 * Test hosts for the fault suite: one network namespace per API server and one for the proxy and its clients, joined
 * by veth pairs to a bridge inside the proxy's namespace, on 198.18.0.0/24 (RFC 2544's range for network tests).
 * Nothing is added to the host's own namespace, so no test packet can leave the namespaces made here. Faults are
 * iptables rules inside an API server's namespace. Teardown always runs, and also removes what a crashed run left.
 *
 * ```
 *  proxy namespace: 127.0.0.1 (proxy :7445, health :7446, clients)   br0 198.18.0.254
 *                                                                      ├─ h1 ══ eth0 198.18.0.1  (api1 namespace)
 *                                                                      ├─ h2 ══ eth0 198.18.0.2  (api2 namespace)
 *                                                                      └─ h3 ══ eth0 198.18.0.3  (api3 namespace)
 * ```
 *
 * @module
 */
import { wallNow } from "./support/https_client.ts";

/** Every namespace of this suite starts with this; then the creating process id, a random tag and the role. */
export const NET_PREFIX = "ep-fault-";

/** The API servers' addresses, one per namespace. */
export const API_ADDRESSES: readonly string[] = ["198.18.0.1", "198.18.0.2", "198.18.0.3"];
/** The API servers' port. */
export const API_PORT = 6443;

/** The proxy namespace's own address on the bridge: a node address that is not loopback. */
export const BRIDGE_ADDRESS = "198.18.0.254";
const PREFIX_LENGTH = 24;
const NAME_PATTERN = new RegExp(`^${NET_PREFIX}(\\d+)-[a-z0-9]+-[a-z0-9]+$`);

/** Whether the suite can run here, and why not. */
export interface Prerequisites {
  readonly ok: boolean;
  readonly reason: string;
  /** Absolute path of `ip` (when found). */
  readonly ip: string;
  /** Absolute path of `iptables` (when found). */
  readonly iptables: string;
  /** Absolute path of `setpriv` (util-linux), or `""`: with it, processes in the namespaces die with the test. */
  readonly setpriv: string;
}

/** Finds an executable in PATH or the usual sbin folders (root's tools are often outside a test's PATH). */
export function findExecutable(name: string): string | undefined {
  const dirs = (Deno.env.get("PATH") ?? "").split(":").concat(["/usr/sbin", "/sbin", "/usr/bin", "/bin"]);
  for (const dir of dirs) {
    if (dir === "") continue;
    try {
      const st = Deno.statSync(`${dir}/${name}`);
      if (st.isFile && ((st.mode ?? 0o111) & 0o111) !== 0) return `${dir}/${name}`;
    } catch { /* not there */ }
  }
  return undefined;
}

/** Checks for root, `ip` with netns support, and `iptables`; never changes anything. */
export async function checkPrerequisites(): Promise<Prerequisites> {
  const ip = findExecutable("ip") ?? "";
  const iptables = findExecutable("iptables") ?? "";
  const setpriv = findExecutable("setpriv") ?? "";
  const no = (reason: string): Prerequisites => ({ ok: false, reason, ip, iptables, setpriv });
  if (Deno.build.os !== "linux") return no(`network namespaces need Linux, not ${Deno.build.os}`);
  if (Deno.uid() !== 0) return no(`network namespaces and iptables need root (uid is ${Deno.uid()})`);
  if (ip === "") return no("'ip' was not found (install iproute2)");
  if (iptables === "") return no("'iptables' was not found (install iptables)");
  const probe = await new Deno.Command(ip, { args: ["netns", "list"], stdout: "null", stderr: "piped" }).output();
  if (!probe.success) return no(`'ip netns list' failed: ${firstLine(probe.stderr)}`);
  return { ok: true, reason: "", ip, iptables, setpriv };
}

function firstLine(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes).trim().split("\n")[0] ?? "";
}

/**
 * Runs a command to its end.
 *
 * @throws {Error} When it exits with a failure, naming the command and its first line of stderr.
 */
export async function run(command: string, args: readonly string[]): Promise<string> {
  const out = await new Deno.Command(command, { args: [...args], stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`Cannot run '${command} ${args.join(" ")}': exit ${out.code}: ${firstLine(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/**
 * A run lasts a few minutes; a namespace of this suite older than this whose creating process is gone is a leftover.
 * The age matters as much as the process: a run in another PID namespace (another container sharing `/run/netns`)
 * has a process this one cannot see.
 */
const LEFTOVER_AGE_MS = 15 * 60 * 1000;

/** The namespaces of this suite that are left over by runs that crashed. */
async function leftovers(ip: string): Promise<string[]> {
  const names = (await run(ip, ["netns", "list"])).split("\n").map((l) => l.trim().split(/\s+/)[0] ?? "");
  return names.filter((n) => {
    const m = NAME_PATTERN.exec(n);
    if (m === null) return false;
    try {
      Deno.statSync(`/proc/${m[1]}`);
      return false; // its run is still going
    } catch { /* its process is gone, or in a PID namespace we cannot see */ }
    try {
      const created = Deno.statSync(`/run/netns/${n}`).mtime?.getTime() ?? Date.now();
      return Date.now() - created > LEFTOVER_AGE_MS;
    } catch {
      return false;
    }
  });
}

/** Ends what still runs in one of our namespaces and deletes it; never throws (teardown must go on). */
async function deleteNamespace(ip: string, name: string): Promise<string | undefined> {
  try {
    const pids = (await run(ip, ["netns", "pids", name])).split("\n").map((s) => Number(s.trim())).filter((n) => n > 0);
    for (const pid of pids) {
      try {
        Deno.kill(pid, "SIGKILL"); // a helper this suite started in this namespace, outliving its run
      } catch { /* gone meanwhile */ }
    }
    await run(ip, ["netns", "delete", name]);
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/** Removes the namespaces crashed earlier runs left behind; returns their names. */
export async function removeLeftovers(ip: string): Promise<string[]> {
  const names = await leftovers(ip);
  for (const n of names) await deleteNamespace(ip, n);
  return names;
}

/** The hosts of one run. Create with {@linkcode FaultNet.create}; `await using` it so that teardown always runs. */
export class FaultNet implements AsyncDisposable {
  /** The proxy's (and clients') namespace. */
  readonly proxyNs: string;
  /** One namespace per API server, index i holds {@linkcode API_ADDRESSES}[i]. */
  readonly apiNs: readonly string[];
  readonly #ip: string;
  readonly #iptables: string;
  readonly #setpriv: string;
  readonly #created: string[] = [];
  #destroyed = false;

  private constructor(tools: Prerequisites) {
    const tag = crypto.getRandomValues(new Uint32Array(1))[0]?.toString(36) ?? "0";
    const base = `${NET_PREFIX}${Deno.pid}-${tag}-`;
    this.proxyNs = `${base}proxy`;
    this.apiNs = API_ADDRESSES.map((_, i) => `${base}api${i + 1}`);
    this.#ip = tools.ip;
    this.#iptables = tools.iptables;
    this.#setpriv = tools.setpriv;
  }

  /**
   * Removes leftovers of crashed runs, then builds the namespaces, the bridge and the veth pairs.
   *
   * @throws {Error} When a step fails; what was built is removed first.
   */
  static async create(tools: Prerequisites): Promise<FaultNet> {
    await removeLeftovers(tools.ip);
    const net = new FaultNet(tools);
    try {
      await net.#build();
    } catch (e) {
      await net.destroy();
      throw e;
    }
    return net;
  }

  async #build(): Promise<void> {
    const ip = (...args: string[]) => run(this.#ip, args);
    const p = this.proxyNs;
    await ip("netns", "add", p);
    this.#created.push(p);
    await ip("-n", p, "link", "set", "lo", "up");
    await ip("-n", p, "link", "add", "br0", "type", "bridge");
    await ip("-n", p, "addr", "add", `${BRIDGE_ADDRESS}/${PREFIX_LENGTH}`, "dev", "br0");
    await ip("-n", p, "link", "set", "br0", "up");
    for (const [i, ns] of this.apiNs.entries()) {
      await ip("netns", "add", ns);
      this.#created.push(ns);
      await ip("-n", ns, "link", "set", "lo", "up");
      await ip("-n", p, "link", "add", `h${i + 1}`, "type", "veth", "peer", "name", "eth0", "netns", ns);
      await ip("-n", p, "link", "set", `h${i + 1}`, "master", "br0");
      await ip("-n", p, "link", "set", `h${i + 1}`, "up");
      await ip("-n", ns, "addr", "add", `${API_ADDRESSES[i]}/${PREFIX_LENGTH}`, "dev", "eth0");
      await ip("-n", ns, "link", "set", "eth0", "up");
      await this.#rule(i, ["-F", "INPUT"]); // proves iptables works in a namespace before any scenario needs it
    }
  }

  /**
   * The command line that runs `command args` inside namespace `ns`. `ip netns exec` and `setpriv` replace themselves
   * with the command, so the spawned process id is the command's; `setpriv --pdeathsig KILL` ends it should the test
   * process die without its teardown.
   */
  exec(ns: string, command: string, args: readonly string[]): { command: string; args: string[] } {
    const guard = this.#setpriv === "" ? [] : [this.#setpriv, "--pdeathsig", "KILL"];
    return { command: this.#ip, args: ["netns", "exec", ns, ...guard, command, ...args] };
  }

  async #rule(host: number, args: readonly string[]): Promise<number> {
    const ns = this.apiNs[host];
    if (ns === undefined) throw new RangeError(`Cannot change host ${host}: expected 0..${this.apiNs.length - 1}`);
    await run(this.#ip, ["netns", "exec", ns, this.#iptables, "-w", "5", ...args]);
    return wallNow();
  }

  /** Drops every TCP packet that reaches API server `host` from the network; returns when the rule is in force. */
  blackhole(host: number): Promise<number> {
    return this.#rule(host, ["-A", "INPUT", "-i", "eth0", "-p", "tcp", "-j", "DROP"]);
  }

  /** Answers every TCP packet that reaches API server `host` with a RST; returns when the rule is in force. */
  reset(host: number): Promise<number> {
    return this.#rule(host, ["-A", "INPUT", "-i", "eth0", "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"]);
  }

  /** Removes every fault of API server `host`; returns when it is gone. */
  clear(host: number): Promise<number> {
    return this.#rule(host, ["-F", "INPUT"]);
  }

  /** Removes every fault of every API server. */
  async clearAll(): Promise<void> {
    for (const i of this.apiNs.keys()) await this.clear(i);
  }

  /**
   * Deletes every namespace of this run (their veths and bridge go with them), ending anything still inside.
   *
   * @throws {Error} When a namespace could not be deleted (after trying all of them).
   */
  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    const errors: string[] = [];
    for (const ns of this.#created.reverse()) {
      const err = await deleteNamespace(this.#ip, ns);
      if (err !== undefined) errors.push(err);
    }
    if (errors.length > 0) throw new Error(`Cannot remove the test namespaces: ${errors.join("; ")}`);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.destroy();
  }
}
