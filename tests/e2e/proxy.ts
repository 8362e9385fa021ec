/**
 * The real program in the node namespace, started with `deno task start`'s command line and a scenario's flags, and
 * watched through its `/upstreams` (read by the suite's client inside the namespace) and its JSON log.
 *
 * @module
 */
import { startCommand } from "../support/main_process.ts";
import { programFlags, ProgramRun, type UpstreamView } from "../support/program_run.ts";
import type { ControlPlane } from "./control_plane.ts";

export { pollUntil, type UpstreamView } from "../support/program_run.ts";

const REPO_ROOT = new URL("../../", import.meta.url);

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

/** The program running in the node namespace for one scenario. */
export class ProxyRun extends ProgramRun {
  readonly options: ProxyOptions;
  readonly #plane: ControlPlane;

  private constructor(plane: ControlPlane, options: ProxyOptions, process: ProgramRun["process"]) {
    super(process, (options.drainTimeoutMs ?? 2000) + 5000);
    this.#plane = plane;
    this.options = options;
  }

  /**
   * Starts the program and waits until the expected number of upstreams is healthy.
   *
   * @throws {Error} When it exits or does not get there within 30 s (with its last log lines).
   */
  static async start(plane: ControlPlane, options: ProxyOptions): Promise<ProxyRun> {
    const start = startCommand();
    const flags = programFlags({
      ...options,
      intervalMs: options.intervalMs ?? 500,
      timeoutMs: options.timeoutMs ?? 400,
    });
    const proc = plane.spawnInNode("the program", start.command, [...start.args, ...flags], false, REPO_ROOT);
    const run = new ProxyRun(plane, options, proc);
    const expected = options.expectHealthy ?? options.endpoints.length;
    await run.waitStarted(
      run.upstreamsCheck((ups) => ups.filter((u) => u.state === "healthy").length >= expected),
      30_000,
      `${expected} healthy upstreams`,
      flags,
    );
    return run;
  }

  protected override async readUpstreams(): Promise<UpstreamView[]> {
    return (await this.#plane.client.request<{ upstreams: UpstreamView[] }>("upstreams")).upstreams;
  }
}
