/**
 * The real program in the node namespace, started with `deno task start`'s command line and a scenario's flags, and
 * watched through its `/upstreams` (read by the suite's client inside the namespace) and its JSON log.
 *
 * @module
 */
import type { HelperProcess } from "../faults/helper_process.ts";
import { startCommand } from "../support/main_process.ts";
import { type ControlPlane, HEALTH_PORT, PROXY_PORT } from "./control_plane.ts";

const REPO_ROOT = new URL("../../", import.meta.url);

/** `/upstreams` entry fields the suite reads. */
export interface UpstreamView {
  readonly address: string;
  readonly state: "unknown" | "healthy" | "unhealthy";
  readonly draining: boolean;
  readonly totalConnections: number;
}

/** Options of one proxy run. */
export interface ProxyOptions {
  readonly endpoints: readonly string[];
  /** @default 500 */
  readonly intervalMs?: number;
  /** @default 400 */
  readonly timeoutMs?: number;
  /** @default 2 */
  readonly fall?: number;
  /** @default 2 */
  readonly rise?: number;
  /** @default 2000 */
  readonly drainTimeoutMs?: number;
  /** Healthy upstreams to wait for before the scenario starts. @default the number of endpoints */
  readonly expectHealthy?: number;
  readonly extraFlags?: readonly string[];
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
    await new Promise((r) => setTimeout(r, opts.everyMs ?? 50));
  }
}

/** The program running in the node namespace for one scenario. */
export class ProxyRun implements AsyncDisposable {
  readonly options: ProxyOptions;
  readonly process: HelperProcess;
  readonly #plane: ControlPlane;

  private constructor(plane: ControlPlane, options: ProxyOptions, process: HelperProcess) {
    this.#plane = plane;
    this.options = options;
    this.process = process;
  }

  /**
   * Starts the program and waits until the expected number of upstreams is healthy.
   *
   * @throws {Error} When it exits or does not get there within 30 s (with its last log lines).
   */
  static async start(plane: ControlPlane, options: ProxyOptions): Promise<ProxyRun> {
    const start = startCommand();
    const flags = [
      `--endpoints=${options.endpoints.join(",")}`,
      "--bind-address=127.0.0.1",
      `--bind-port=${PROXY_PORT}`,
      `--health-port=${HEALTH_PORT}`,
      `--health-interval=${options.intervalMs ?? 500}ms`,
      `--health-timeout=${options.timeoutMs ?? 400}ms`,
      `--health-rise=${options.rise ?? 2}`,
      `--health-fall=${options.fall ?? 2}`,
      `--drain-timeout=${options.drainTimeoutMs ?? 2000}ms`,
      ...(options.extraFlags?.some((f) => f.startsWith("--enable-discovery")) ? [] : ["--enable-discovery=false"]),
      "--log-format=json",
      "--log-level=info",
      ...(options.extraFlags ?? []),
    ];
    const proc = plane.spawnInNode("the program", start.command, [...start.args, ...flags], false, REPO_ROOT);
    const run = new ProxyRun(plane, options, proc);
    const expected = options.expectHealthy ?? options.endpoints.length;
    try {
      await pollUntil(async () => {
        let ups: UpstreamView[];
        try {
          ups = await run.upstreams();
        } catch (e) {
          if (proc.status !== undefined) throw e;
          return undefined; // the health port may not listen yet
        }
        return ups.filter((u) => u.state === "healthy").length >= expected ? ups : undefined;
      }, { timeoutMs: 30_000, what: `${expected} healthy upstreams` });
    } catch (e) {
      await run.stop();
      throw new Error(
        `Cannot start the program with ${flags.join(" ")}: ${e instanceof Error ? e.message : String(e)}\n` +
          proc.stderrLines.slice(-20).join("\n"),
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
    return (await this.#plane.client.request<{ upstreams: UpstreamView[] }>("upstreams")).upstreams;
  }

  /** Polls `/upstreams` until `test` holds; returns the wall-clock time it was seen and the entries. */
  waitUpstreams(
    test: (ups: UpstreamView[]) => boolean,
    timeoutMs: number,
    what: string,
  ): Promise<{ at: number; upstreams: UpstreamView[] }> {
    return pollUntil(async () => {
      const ups = await this.upstreams();
      return test(ups) ? { at: Date.now(), upstreams: ups } : undefined;
    }, { timeoutMs, what }).catch((e) => {
      const tail = this.process.stderrLines.slice(-10).join("\n");
      throw new Error(`${e instanceof Error ? e.message : String(e)}; the program's last log lines:\n${tail}`);
    });
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

  /** The log lines (raw) containing `text`. */
  logLines(text: string): string[] {
    return this.process.stderrLines.filter((l) => l.includes(text));
  }

  /** Stops the program with SIGTERM (it drains up to its `--drain-timeout`), SIGKILL if it hangs. */
  async stop(): Promise<Deno.CommandStatus> {
    this.process.kill("SIGTERM");
    return await this.process.stop((this.options.drainTimeoutMs ?? 2000) + 5000);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop().then(() => {});
  }
}
