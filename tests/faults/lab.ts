/**
 * The fault lab: the namespaces of {@linkcode FaultNet}, three HTTPS API servers in them, a load client in the proxy's
 * namespace, and the real program started there per scenario with its own flags. Scenarios talk to it only through
 * the program's command line, its `/upstreams` and its log, like an operator would.
 *
 * @module
 */
import { createTestPki, type TestPki } from "../support/test_pki.ts";
import { HelperProcess } from "./helper_process.ts";
import { API_ADDRESSES, API_PORT, FaultNet, type Prerequisites } from "./netns.ts";
import { HEALTH_PORT, PROXY_PORT, ProxyRun, type ProxyRunOptions } from "./proxy_run.ts";
import { wallNow } from "./support/https_client.ts";
import type { ConnectionResult } from "./support/load_client.ts";

export type { ConnectionResult } from "./support/load_client.ts";
export { API_PORT } from "./netns.ts";
export type { ProxyRun, ProxyRunOptions, UpstreamView } from "./proxy_run.ts";

/** The name clients and probes use for the API servers (their certificate names only DNS names). */
export const SERVER_NAME = "kubernetes.default.svc";

const REPO_ROOT = new URL("../../", import.meta.url);
const SUPPORT = new URL("./support/", import.meta.url);

/** One `/readyz` request an API server received. */
export interface ProbeRecord {
  readonly at: number;
  readonly mode: "ok" | "fail" | "hang";
}

/** A connection the load client keeps open, and the API server that answered its first request. */
export interface HeldConnection {
  readonly hold: number;
  readonly server: string;
}

/** One API server of the lab. */
export class ApiServer {
  readonly index: number;
  readonly name: string;
  readonly address: string;
  readonly #process: HelperProcess;

  constructor(index: number, process: HelperProcess) {
    this.index = index;
    this.name = `api${index + 1}`;
    this.address = `${API_ADDRESSES[index]}:${API_PORT}`;
    this.#process = process;
  }

  /**
   * Switches how `/readyz` answers. Returns the wall-clock time just before the switch: every probe answered in the
   * new mode came after it, and a delay measured from it is never too short.
   */
  async readyz(mode: "ok" | "fail" | "hang"): Promise<number> {
    const before = wallNow();
    await this.#process.request("readyz", { mode });
    return before;
  }

  /** Every `/readyz` request received so far. */
  async probes(): Promise<ProbeRecord[]> {
    return (await this.#process.request<{ probes: ProbeRecord[] }>("probes")).probes;
  }
}

/** Everything a scenario needs. Create with {@linkcode FaultLab.create}; `await using` it. */
export class FaultLab implements AsyncDisposable {
  readonly net: FaultNet;
  readonly pki: TestPki;
  readonly apis: readonly ApiServer[];
  /** The load client, in the proxy's namespace. */
  readonly client: HelperProcess;
  readonly #helpers: HelperProcess[];

  private constructor(net: FaultNet, pki: TestPki, helpers: HelperProcess[], apis: ApiServer[], client: HelperProcess) {
    this.net = net;
    this.pki = pki;
    this.#helpers = helpers;
    this.apis = apis;
    this.client = client;
  }

  /**
   * Builds the namespaces, starts the API servers and the load client, and checks that the proxy's namespace reaches
   * every API server directly.
   *
   * @throws {Error} When any of it fails; what was started is stopped and removed first.
   */
  static async create(tools: Prerequisites): Promise<FaultLab> {
    const net = await FaultNet.create(tools);
    const helpers: HelperProcess[] = [];
    let pki: TestPki | undefined;
    try {
      pki = await createTestPki();
      const dir = pki.dir;
      const apiProcesses = API_ADDRESSES.map((addr, i) => {
        const script = new URL("api_server.ts", SUPPORT).pathname;
        const args = [`api${i + 1}`, addr, String(API_PORT), pki!.serverDns.certPath, pki!.serverDns.keyPath];
        return helper(net, net.apiNs[i] ?? "", `api${i + 1}`, script, ["--allow-net", `--allow-read=${dir}`], args);
      });
      helpers.push(...apiProcesses);
      const client = helper(
        net,
        net.proxyNs,
        "load client",
        new URL("load_client.ts", SUPPORT).pathname,
        ["--allow-net", `--allow-read=${dir}`],
        [String(PROXY_PORT), String(HEALTH_PORT), pki.ca.certPath, SERVER_NAME],
      );
      helpers.push(client);
      await Promise.all(apiProcesses.map((p) => p.waitForEvent((e) => e.event === "listening", 20_000, "listening")));
      for (const [i, addr] of API_ADDRESSES.entries()) {
        const r = await client.request<{ server: string }>("direct", { host: addr, port: API_PORT }, 15_000);
        if (r.server !== `api${i + 1}`) throw new Error(`Cannot trust the topology: ${addr} answered as ${r.server}`);
      }
      const apis = apiProcesses.map((p, i) => new ApiServer(i, p));
      return new FaultLab(net, pki, helpers, apis, client);
    } catch (e) {
      await Promise.allSettled(helpers.map((h) => h.stop()));
      await pki?.cleanup();
      await net.destroy();
      throw e;
    }
  }

  /** Starts the real program in the proxy namespace and waits until every upstream it was given is healthy. */
  startProxy(options: ProxyRunOptions): Promise<ProxyRun> {
    return ProxyRun.start(this.net, this.client, options);
  }

  /** Starts a delaying relay in API server `host`'s namespace, from `listenPort` to its API port. */
  async startRelay(host: number, listenPort: number): Promise<HelperProcess> {
    const addr = API_ADDRESSES[host] ?? "";
    const relay = helper(
      this.net,
      this.net.apiNs[host] ?? "",
      `delay relay of api${host + 1}`,
      new URL("delay_relay.ts", SUPPORT).pathname,
      ["--allow-net"],
      [addr, String(listenPort), addr, String(API_PORT)],
    );
    try {
      await relay.waitForEvent((e) => e.event === "listening", 20_000, "listening");
    } catch (e) {
      await relay.stop();
      throw e;
    }
    return relay;
  }

  /** Starts the fake Kubernetes API in the proxy's namespace; it writes a kubeconfig for itself to `kubeconfig`. */
  async startDiscoveryApi(kubeconfig: string): Promise<HelperProcess> {
    const script = new URL("discovery_api.ts", SUPPORT).pathname;
    const deno = Deno.execPath();
    // The fake API server imports npm packages, so it runs with the repository's configuration and its lockfile: the
    // namespace has no DNS, and without the lockfile (`--no-lock`) Deno asks the npm registry for the packages'
    // metadata unless an earlier process happened to cache it (CI failed on it once). It also runs openssl for its own
    // PKI and writes the kubeconfig: a test helper, given every permission.
    const cmd = this.net.exec(this.net.proxyNs, deno, ["run", "-q", "--frozen", "-A", script, kubeconfig]);
    const api = new HelperProcess({ label: "the Kubernetes API", ...cmd, cwd: REPO_ROOT });
    try {
      await api.waitForEvent((e) => e.event === "listening", 30_000, "listening");
    } catch (e) {
      await api.stop();
      throw e;
    }
    return api;
  }

  /** Opens `count` keep-alive connections through the proxy and keeps them; `closed` events report their end. */
  async hold(count: number): Promise<HeldConnection[]> {
    return (await this.client.request<{ held: HeldConnection[] }>("hold", { count }, 30_000)).held;
  }

  /** Another request on a held connection; returns the answering server. */
  async ping(hold: number): Promise<string> {
    return (await this.client.request<{ server: string }>("ping", { hold })).server;
  }

  /** Closes every held connection. */
  async release(): Promise<void> {
    await this.client.request("release");
  }

  /** Wall-clock close times of held connections, from the `closed` events after event mark `since`. */
  closedSince(since: number): Map<number, number> {
    const out = new Map<number, number>();
    for (const e of this.client.events.slice(since)) {
      if (e.event === "closed" && typeof e.hold === "number" && typeof e.at === "number") out.set(e.hold, e.at);
    }
    return out;
  }

  /** Every API server reachable and ready again: faults cleared, `/readyz` 200. */
  async clearFaults(): Promise<void> {
    await this.net.clearAll();
    for (const api of this.apis) await api.readyz("ok");
  }

  /**
   * Runs client connections through the proxy (see `load_client.ts`): `count` of them, one every `spacingMs`, at most
   * `concurrency` at a time; each finished one is a `progress` event ({@linkcode FaultLab.waitProgress}).
   */
  async load(
    opts: { count: number; spacingMs: number; concurrency: number; timeoutMs?: number; stopAfterOk?: number },
  ): Promise<ConnectionResult[]> {
    const budget = opts.count * opts.spacingMs + (opts.timeoutMs ?? 3000) * 2 + 10_000;
    return (await this.client.request<{ results: ConnectionResult[] }>("load", { ...opts }, budget)).results;
  }

  /** A mark in the load client's events, for {@linkcode FaultLab.waitProgress}. */
  eventMark(): number {
    return this.client.events.length;
  }

  /** Waits until `done` client connections have finished since event mark `since`. */
  waitProgress(done: number, since: number, timeoutMs: number): Promise<void> {
    return this.client.waitFor(
      () => this.client.events.slice(since).filter((e) => e.event === "progress").length >= done,
      timeoutMs,
      `${done} finished client connections`,
    );
  }

  /** Stops every helper and removes the namespaces and the PKI. */
  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.allSettled(this.#helpers.map((h) => h.stop()));
    await this.pki.cleanup();
    await this.net.destroy();
  }
}

/** Starts one of the support scripts with `deno run` inside namespace `ns`, with only the permissions given. */
function helper(
  net: FaultNet,
  ns: string,
  label: string,
  script: string,
  permissions: readonly string[],
  args: readonly string[],
): HelperProcess {
  const deno = Deno.execPath();
  const cmd = net.exec(ns, deno, ["run", "-q", "--no-config", "--no-lock", ...permissions, script, ...args]);
  return new HelperProcess({ label, ...cmd });
}
