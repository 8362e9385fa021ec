/**
 * The real program for one scenario: started in the proxy's namespace with `deno task start`'s command line and the
 * scenario's flags, watched through `/upstreams` (read by the load client inside the namespace) and its JSON log.
 *
 * @module
 */
import { startCommand } from "../support/main_process.ts";
import { HelperProcess } from "./helper_process.ts";
import { API_ADDRESSES, API_PORT, type FaultNet } from "./netns.ts";
import { wallNow } from "./support/https_client.ts";

/** The proxy's ports inside its namespace (a namespace of its own: nothing else can hold them). */
export const PROXY_PORT = 7445;
/** The health port (`/upstreams`) inside the proxy's namespace. */
export const HEALTH_PORT = 7446;

const REPO_ROOT = new URL("../../", import.meta.url);

/** `/upstreams` entry fields the suite reads (the program may show more). */
export interface UpstreamView {
  readonly address: string;
  readonly state: "unknown" | "healthy" | "unhealthy";
  readonly draining: boolean;
  readonly lastProbeRttMs: number | null;
  readonly smoothedRttMs?: number | null;
  /** Client connections relayed to it since it was added. */
  readonly totalConnections: number;
}

/** A state change of an upstream, as the program logged it. */
export interface LoggedChange {
  readonly upstream: string;
  readonly from: string;
  readonly to: string;
}

/** Options of one proxy run. */
export interface ProxyRunOptions {
  /** @default the three API servers on {@linkcode API_PORT} */
  readonly endpoints?: readonly string[];
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** @default 2 */
  readonly rise?: number;
  /** @default 2 */
  readonly fall?: number;
  /** @default 2000 */
  readonly drainTimeoutMs?: number;
  /** Flags of the feature a scenario exercises, e.g. `--upstream-selection=latency`. */
  readonly extraFlags?: readonly string[];
  /** The proxy listener's address. @default "127.0.0.1" */
  readonly bindAddress?: string;
  /** How many healthy upstreams to wait for before the scenario starts. @default the number of endpoints */
  readonly expectUpstreams?: number;
  /**
   * Where readiness is read: `/upstreams` (answered by whichever instance holds the shared health port), or this
   * process's own log of state changes (for a second instance beside a first one). @default "upstreams"
   */
  readonly readyFrom?: "upstreams" | "log";
}

/** Polls `get` every `everyMs` until it returns a value; fails after `timeoutMs` naming `what`. */
export async function pollUntil<T>(
  get: () => Promise<T | undefined>,
  opts: { timeoutMs: number; what: string; everyMs?: number },
): Promise<T> {
  const deadline = performance.now() + opts.timeoutMs;
  for (;;) {
    const v = await get();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`Timed out after ${opts.timeoutMs} ms waiting for ${opts.what}`);
    await new Promise((r) => setTimeout(r, opts.everyMs ?? 10));
  }
}

/** The program running in the proxy namespace for one scenario. */
export class ProxyRun implements AsyncDisposable {
  readonly options: ProxyRunOptions;
  readonly process: HelperProcess;
  readonly #client: HelperProcess;

  constructor(options: ProxyRunOptions, process: HelperProcess, client: HelperProcess) {
    this.options = options;
    this.process = process;
    this.#client = client;
  }

  /**
   * Starts the real program (`deno task start`'s command line) in the proxy namespace and waits until every upstream
   * it was given is healthy.
   *
   * @param client The load client, which reads `/upstreams` from inside the namespace.
   * @throws {Error} When the program exits or its upstreams are not all healthy within 20 s (with its last log lines).
   */
  static async start(net: FaultNet, client: HelperProcess, options: ProxyRunOptions): Promise<ProxyRun> {
    const start = startCommand();
    const endpoints = options.endpoints ?? API_ADDRESSES.map((a) => `${a}:${API_PORT}`);
    const flags = [
      `--endpoints=${endpoints.join(",")}`,
      `--bind-address=${options.bindAddress ?? "127.0.0.1"}`,
      `--bind-port=${PROXY_PORT}`,
      `--health-port=${HEALTH_PORT}`,
      `--health-interval=${options.intervalMs}ms`,
      `--health-timeout=${options.timeoutMs}ms`,
      `--health-rise=${options.rise ?? 2}`,
      `--health-fall=${options.fall ?? 2}`,
      `--drain-timeout=${options.drainTimeoutMs ?? 2000}ms`,
      ...(options.extraFlags?.some((f) => f.startsWith("--enable-discovery")) ? [] : ["--enable-discovery=false"]),
      "--log-format=json",
      "--log-level=info",
      ...(options.extraFlags ?? []),
    ];
    const cmd = net.exec(net.proxyNs, start.command, [...start.args, ...flags]);
    const process = new HelperProcess({ label: "the program", ...cmd, cwd: REPO_ROOT, commands: false });
    const run = new ProxyRun(options, process, client);
    try {
      const expected = options.expectUpstreams ?? endpoints.length;
      if (options.readyFrom === "log") {
        await pollUntil(() => {
          if (process.status !== undefined) throw new Error(`it exited with code ${process.status.code}`);
          const healthy = new Set(run.stateChanges().filter((c) => c.to === "healthy").map((c) => c.upstream));
          return Promise.resolve(healthy.size >= expected ? healthy : undefined);
        }, { timeoutMs: 20_000, what: "every upstream to be logged healthy" });
        return run;
      }
      await pollUntil(async () => {
        let ups: UpstreamView[];
        try {
          ups = await run.upstreams();
        } catch (e) {
          if (process.status !== undefined) throw e;
          return undefined; // the health port may not listen yet
        }
        return ups.length === expected && ups.every((u) => u.state === "healthy") ? ups : undefined;
      }, { timeoutMs: 20_000, what: "every upstream to be healthy" });
    } catch (e) {
      await run.stop();
      throw new Error(
        `Cannot start the program with ${flags.join(" ")}: ${e instanceof Error ? e.message : String(e)}\n` +
          process.stderrLines.slice(-20).join("\n"),
      );
    }
    return run;
  }

  /** `/upstreams`, read from inside the namespace. */
  async upstreams(): Promise<UpstreamView[]> {
    if (this.process.status !== undefined) {
      const tail = this.process.stderrLines.slice(-20).join("\n");
      throw new Error(`The program exited (code ${this.process.status.code}); its last log lines:\n${tail}`);
    }
    return (await this.#client.request<{ upstreams: UpstreamView[] }>("upstreams")).upstreams;
  }

  /** The status code of `/healthz`, read from inside the namespace. */
  async healthz(): Promise<number> {
    return (await this.#client.request<{ status: number }>("healthz")).status;
  }

  /** One upstream's entry in `/upstreams`. */
  async upstream(address: string): Promise<UpstreamView> {
    const u = (await this.upstreams()).find((x) => x.address === address);
    if (u === undefined) throw new Error(`Cannot find upstream '${address}' in /upstreams`);
    return u;
  }

  /**
   * Polls `/upstreams` until `test` holds and returns the wall-clock time it was seen (the reply's arrival: the state
   * changed at or before it) and the entries.
   */
  waitUpstreams(
    test: (ups: UpstreamView[]) => boolean,
    timeoutMs: number,
    what: string,
  ): Promise<{ at: number; upstreams: UpstreamView[] }> {
    return pollUntil(async () => {
      const ups = await this.upstreams();
      return test(ups) ? { at: wallNow(), upstreams: ups } : undefined;
    }, { timeoutMs, what });
  }

  /** Waits until `address` is in `state`; returns when it was seen. */
  async waitState(address: string, state: UpstreamView["state"], timeoutMs: number): Promise<number> {
    const r = await this.waitUpstreams(
      (ups) => ups.find((u) => u.address === address)?.state === state,
      timeoutMs,
      `${address} to be ${state}`,
    );
    return r.at;
  }

  /** How many stderr lines the program has written: a mark for {@linkcode ProxyRun.stateChanges}. */
  logMark(): number {
    return this.process.stderrLines.length;
  }

  /** The state changes logged after line `from` (JSON log lines with `upstream`, `from` and `to`). */
  stateChanges(from = 0): LoggedChange[] {
    const out: LoggedChange[] = [];
    for (const line of this.process.stderrLines.slice(from)) {
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line);
      } catch {
        continue;
      }
      const props = (typeof rec.properties === "object" && rec.properties !== null ? rec.properties : rec) as Record<
        string,
        unknown
      >;
      const { upstream, from: was, to } = props;
      const states = ["unknown", "healthy", "unhealthy"];
      if (typeof upstream === "string" && states.includes(String(was)) && states.includes(String(to))) {
        out.push({ upstream, from: String(was), to: String(to) });
      }
    }
    return out;
  }

  /** Stops the program with SIGTERM (it drains for up to its `--drain-timeout`), SIGKILL if it hangs. */
  async stop(): Promise<Deno.CommandStatus> {
    this.process.kill("SIGTERM");
    return await this.process.stop((this.options.drainTimeoutMs ?? 2000) + 3000);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop().then(() => {});
  }
}
