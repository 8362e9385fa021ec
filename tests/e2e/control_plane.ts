/**
 * A real control plane in network namespaces: one etcd, three kube-apiserver 1.20 processes on it (each in its own
 * namespace, advertising its own address, so the lease endpoint reconciler writes all three into `default/kubernetes`),
 * and the suite's client in the node namespace. Processes are started with `ip netns exec … setpriv --pdeathsig KILL`,
 * so signals sent to a child reach the server itself and nothing outlives the test process.
 *
 * @module
 */
import { HelperProcess } from "../faults/helper_process.ts";
import type { Fixtures } from "./fixtures.ts";
import { API_ADDRESSES, API_PORT, E2eNet, ETCD_ADDRESS, ETCD_PORT, type NetTools } from "./net.ts";
import { createE2ePki, type E2ePki, SERVER_NAME } from "./pki.ts";
import type { RequestResult } from "./support/client.ts";
import { HEALTH_PORT, PROXY_PORT } from "../support/program_run.ts";

export type { RequestResult } from "./support/client.ts";

/** The proxy's ports inside the node namespace. */
export { HEALTH_PORT, PROXY_PORT };
/** The v1 API server's port, in the etcd namespace. */
export const V1_PORT = 6443;
/** How long one kube-apiserver may take from exec to `/readyz` 200 on a loaded 2-core machine. */
const API_START_MS = 180_000;

/** Extra kube-apiserver flags for one instance, e.g. `--anonymous-auth=false`. */
export interface ApiOptions {
  readonly extraFlags?: readonly string[];
}

/** One kube-apiserver of the control plane. */
export class KubeApiServer {
  readonly index: number;
  readonly name: string;
  readonly address: string;
  readonly #plane: ControlPlane;
  #process: HelperProcess | undefined;

  constructor(plane: ControlPlane, index: number) {
    this.#plane = plane;
    this.index = index;
    this.name = `api${index + 1}`;
    this.address = `${API_ADDRESSES[index]}:${API_PORT}`;
  }

  /** The running process, if any. */
  get process(): HelperProcess | undefined {
    return this.#process;
  }

  /** Starts the process (does not wait for readiness: {@linkcode ControlPlane.waitReady}). */
  start(opts: ApiOptions = {}): void {
    if (this.#process !== undefined && this.#process.status === undefined) {
      throw new Error(`Cannot start ${this.name}: it is running`);
    }
    this.#process = this.#plane.spawnApi(this.index, opts.extraFlags ?? []);
  }

  /** Sends a signal to the kube-apiserver process itself. */
  signal(sig: Deno.Signal): void {
    if (this.#process === undefined) throw new Error(`Cannot signal ${this.name}: it was never started`);
    this.#process.kill(sig);
  }

  /** Waits for the process to exit (SIGKILL after `graceMs`). */
  async stop(graceMs = 15_000): Promise<Deno.CommandStatus | undefined> {
    const p = this.#process;
    if (p === undefined) return undefined;
    p.kill("SIGTERM");
    return await p.stop(graceMs);
  }
}

/** The control plane; `await using` it: every process stopped, namespaces and files removed, even on failure. */
export class ControlPlane implements AsyncDisposable {
  readonly net: E2eNet;
  readonly pki: E2ePki;
  readonly fixtures: Fixtures;
  readonly apis: readonly KubeApiServer[];
  readonly client: HelperProcess;
  readonly #etcd: HelperProcess;
  readonly #dataDir: string;
  readonly #others: HelperProcess[] = [];
  #v1: HelperProcess | undefined;

  private constructor(net: E2eNet, pki: E2ePki, fixtures: Fixtures, etcd: HelperProcess, dataDir: string) {
    this.net = net;
    this.pki = pki;
    this.fixtures = fixtures;
    this.#etcd = etcd;
    this.#dataDir = dataDir;
    this.apis = API_ADDRESSES.map((_, i) => new KubeApiServer(this, i));
    this.client = this.spawnInNode("e2e client", Deno.execPath(), [
      "run",
      "-q",
      "--no-config",
      "--no-lock",
      "--allow-net",
      `--allow-read=${pki.dir}`,
      new URL("./support/client.ts", import.meta.url).pathname,
      String(PROXY_PORT),
      String(HEALTH_PORT),
      pki.caPath,
      SERVER_NAME,
      pki.token,
    ], true);
  }

  /**
   * Builds the namespaces and the PKI, starts etcd and the three kube-apiservers, and waits until every one answers
   * `/readyz` 200 straight from the node namespace.
   *
   * @throws {Error} When any of it fails; what was started is stopped and removed first.
   */
  static async create(tools: NetTools, fixtures: Fixtures): Promise<ControlPlane> {
    const net = await E2eNet.create(tools);
    let pki: E2ePki | undefined;
    let plane: ControlPlane | undefined;
    let etcd: HelperProcess | undefined;
    const dataDir = await Deno.makeTempDir({ prefix: "extractedprism_e2e_etcd_" });
    try {
      pki = await createE2ePki();
      const url = `http://${ETCD_ADDRESS}:${ETCD_PORT}`;
      const cmd = net.exec(net.etcdNs, fixtures.etcd, [
        "--name=e2e",
        `--data-dir=${dataDir}/data`,
        `--listen-client-urls=${url}`,
        `--advertise-client-urls=${url}`,
        "--listen-peer-urls=http://127.0.0.1:2380",
        "--initial-advertise-peer-urls=http://127.0.0.1:2380",
        "--initial-cluster=e2e=http://127.0.0.1:2380",
        "--log-level=warn",
      ]);
      etcd = new HelperProcess({ label: "etcd", ...cmd, commands: false });
      plane = new ControlPlane(net, pki, fixtures, etcd, dataDir);
      for (const api of plane.apis) api.start();
      await Promise.all(plane.apis.map((a) => plane!.waitReady(a.index)));
      return plane;
    } catch (e) {
      if (plane !== undefined) await plane[Symbol.asyncDispose]();
      else {
        await etcd?.stop();
        await pki?.cleanup();
        await Deno.remove(dataDir, { recursive: true }).catch(() => {});
        await net.destroy();
      }
      throw e;
    }
  }

  /** @internal Spawns kube-apiserver `index` with the suite's flags and `extra`. */
  spawnApi(index: number, extra: readonly string[]): HelperProcess {
    const addr = API_ADDRESSES[index] ?? "";
    const p = this.pki;
    const flags = [
      `--etcd-servers=http://${ETCD_ADDRESS}:${ETCD_PORT}`,
      `--advertise-address=${addr}`,
      `--bind-address=${addr}`,
      `--secure-port=${API_PORT}`,
      "--insecure-port=0",
      `--tls-cert-file=${p.servingCertPath}`,
      `--tls-private-key-file=${p.servingKeyPath}`,
      `--client-ca-file=${p.caPath}`,
      `--token-auth-file=${p.tokenFilePath}`,
      `--service-account-key-file=${p.saPubPath}`,
      `--service-account-signing-key-file=${p.saKeyPath}`,
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      // ClusterIPs only, inside the benchmark range the suite's namespaces use: nothing dials an address in it.
      "--service-cluster-ip-range=198.19.0.0/16",
      "--authorization-mode=RBAC",
      "--endpoint-reconciler-type=lease",
      // The lease reconciler's TTL is 15 s; graceful shutdown keeps serving this long while /readyz says 503.
      "--shutdown-delay-duration=5s",
      "--profiling=false",
      `--cert-dir=${this.#dataDir}/api${index + 1}`,
      "-v=1",
      ...extra,
    ];
    const cmd = this.net.exec(this.net.apiNs[index] ?? "", this.fixtures.kubeApiserver, flags);
    const proc = new HelperProcess({ label: `kube-apiserver api${index + 1}`, ...cmd, commands: false });
    this.#others.push(proc);
    return proc;
  }

  /**
   * Starts the v1 API server (discovery.k8s.io/v1, coordination.k8s.io/v1) in the etcd namespace on
   * {@linkcode V1_PORT}, on the same etcd under a prefix of its own, and waits until it serves EndpointSlices.
   *
   * `extraFlags` adds flags, e.g. `--watch-cache=false` (watches then go to etcd itself).
   *
   * @throws {Error} When the fixtures have none, or it does not answer within 120 s.
   */
  async startV1Server(opts: { extraFlags?: readonly string[] } = {}): Promise<HelperProcess> {
    const bin = this.fixtures.v1Apiserver;
    if (bin === undefined) throw new Error("Cannot start the v1 API server: the fixtures manifest names none");
    const cmd = this.net.exec(this.net.etcdNs, bin, [
      `--etcd-servers=http://${ETCD_ADDRESS}:${ETCD_PORT}`,
      "--etcd-prefix=/registry-e2e-v1",
      `--bind-address=${ETCD_ADDRESS}`,
      `--secure-port=${V1_PORT}`,
      `--tls-cert-file=${this.pki.servingCertPath}`,
      `--tls-private-key-file=${this.pki.servingKeyPath}`,
      ...(opts.extraFlags ?? []),
    ]);
    const proc = new HelperProcess({ label: "v1 API server", ...cmd, commands: false });
    this.#others.push(proc);
    this.#v1 = proc;
    const deadline = performance.now() + 120_000;
    let last = "no answer yet";
    for (;;) {
      if (proc.status !== undefined) {
        throw new Error(
          `The v1 API server exited (code ${proc.status.code}):\n${proc.stderrLines.slice(-15).join("\n")}`,
        );
      }
      try {
        const r = await this.get({
          host: ETCD_ADDRESS,
          port: V1_PORT,
          path: "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
        });
        if (r.status === 200) return proc;
        last = `HTTP ${r.status}: ${r.body.slice(0, 200)}`;
      } catch (e) {
        last = e instanceof Error ? e.message : String(e);
      }
      if (performance.now() > deadline) {
        throw new Error(
          `Timed out after 120000 ms waiting for the v1 API server (${last}):\n${
            proc.stderrLines.slice(-15).join("\n")
          }`,
        );
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** The v1 API server last started, if any. */
  get v1Server(): HelperProcess | undefined {
    return this.#v1;
  }

  /** Spawns a process in the node namespace (kept for teardown). */
  spawnInNode(label: string, command: string, args: readonly string[], commands = false, cwd?: URL): HelperProcess {
    const cmd = this.net.exec(this.net.nodeNs, command, args);
    const proc = new HelperProcess({ label, ...cmd, commands, ...(cwd !== undefined ? { cwd } : {}) });
    this.#others.push(proc);
    return proc;
  }

  /** Runs a command in the node namespace to its end (with a deadline); returns its output. */
  async runInNode(command: string, args: readonly string[], timeoutMs = 60_000): Promise<Deno.CommandOutput> {
    const cmd = this.net.exec(this.net.nodeNs, command, args);
    return await new Deno.Command(cmd.command, {
      args: cmd.args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(timeoutMs),
    }).output();
  }

  /** One request from the node namespace: straight to `host:port`, or through the proxy by default. */
  get(
    opts: {
      host?: string;
      port?: number;
      path?: string;
      auth?: boolean;
      timeoutMs?: number;
      method?: string;
      body?: string;
      contentType?: string;
    } = {},
  ): Promise<{ status: number; body: string }> {
    return this.client.request("get", { ...opts }, (opts.timeoutMs ?? 5000) + 5000);
  }

  /** `/readyz` of API server `index`, straight from the node namespace, anonymously. */
  async readyz(index: number): Promise<number> {
    return (await this.get({ host: API_ADDRESSES[index] ?? "", port: API_PORT, path: "/readyz", auth: false })).status;
  }

  /** Waits until API server `index` answers `/readyz` 200. */
  async waitReady(index: number, timeoutMs = API_START_MS): Promise<void> {
    const api = this.apis[index];
    const deadline = performance.now() + timeoutMs;
    let last = "no answer yet";
    for (;;) {
      if (api?.process?.status !== undefined) {
        const tail = api.process.stderrLines.slice(-15).join("\n");
        throw new Error(`kube-apiserver api${index + 1} exited (code ${api.process.status.code}):\n${tail}`);
      }
      try {
        const status = await this.readyz(index);
        if (status === 200) return;
        last = `HTTP ${status}`;
      } catch (e) {
        last = e instanceof Error ? e.message : String(e);
      }
      if (performance.now() > deadline) {
        const tail = api?.process?.stderrLines.slice(-15).join("\n") ?? "";
        throw new Error(`Timed out after ${timeoutMs} ms waiting for api${index + 1} /readyz 200 (${last}):\n${tail}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** Requests through the proxy, one every `spacingMs`; `progress` events on {@linkcode ControlPlane.client}. */
  async load(opts: { count: number; spacingMs: number; timeoutMs?: number }): Promise<RequestResult[]> {
    const budget = opts.count * opts.spacingMs + (opts.timeoutMs ?? 5000) * 2 + 20_000;
    return (await this.client.request<{ results: RequestResult[] }>("load", { ...opts }, budget)).results;
  }

  /** Waits until `done` requests of the load started after event mark `since` have finished. */
  waitProgress(done: number, since: number, timeoutMs: number): Promise<void> {
    return this.client.waitFor(
      () => this.client.events.slice(since).filter((e) => e.event === "progress").length >= done,
      timeoutMs,
      `${done} finished requests`,
    );
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.allSettled(this.#others.map((h) => {
      h.kill("SIGTERM");
      return h.stop(5000);
    }));
    this.#etcd.kill("SIGTERM");
    await this.#etcd.stop(5000);
    await this.pki.cleanup().catch(() => {});
    await Deno.remove(this.#dataDir, { recursive: true }).catch(() => {});
    await this.net.destroy();
  }
}
