/**
 * The real program for one scenario: started in the proxy's namespace with `deno task start`'s command line and the
 * scenario's flags, watched through `/upstreams` (read by the load client inside the namespace) and its JSON log.
 *
 * @module
 */
import { startCommand } from "../support/main_process.ts";
import { programFlags, ProgramRun, PROXY_PORT, type UpstreamView } from "../support/program_run.ts";
import { HelperProcess } from "./helper_process.ts";
import { API_ADDRESSES, API_PORT, type FaultNet } from "./netns.ts";

export { HEALTH_PORT, pollUntil, PROXY_PORT, type UpstreamView } from "../support/program_run.ts";

const REPO_ROOT = new URL("../../", import.meta.url);

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

/** The program running in the proxy namespace for one scenario. */
export class ProxyRun extends ProgramRun {
  readonly options: ProxyRunOptions;
  readonly #client: HelperProcess;

  constructor(options: ProxyRunOptions, process: HelperProcess, client: HelperProcess) {
    super(process, (options.drainTimeoutMs ?? 2000) + 3000);
    this.options = options;
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
    const flags = programFlags({ ...options, endpoints });
    const cmd = net.exec(net.proxyNs, start.command, [...start.args, ...flags]);
    const process = new HelperProcess({ label: "the program", ...cmd, cwd: REPO_ROOT, commands: false });
    const run = new ProxyRun(options, process, client);
    const expected = options.expectUpstreams ?? endpoints.length;
    if (options.readyFrom === "log") {
      // Beside another instance, the program joins the proxy port once an upstream is healthy, and says so.
      const logged = () => new Set(run.stateChanges().filter((c) => c.to === "healthy").map((c) => c.upstream));
      const joined = () => run.logLines(`Joined 127.0.0.1:${PROXY_PORT} beside the instance there`).length > 0;
      await run.waitStarted(
        () => Promise.resolve(logged().size >= expected && joined()),
        20_000,
        "every upstream logged healthy and the proxy port joined",
        flags,
      );
    } else {
      await run.waitStarted(
        run.upstreamsCheck((ups) => ups.length === expected && ups.every((u) => u.state === "healthy")),
        20_000,
        "every upstream to be healthy",
        flags,
      );
    }
    return run;
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

  protected override async readUpstreams(): Promise<UpstreamView[]> {
    return (await this.#client.request<{ upstreams: UpstreamView[] }>("upstreams")).upstreams;
  }
}
