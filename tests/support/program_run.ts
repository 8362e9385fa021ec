/**
 * What the fault suite and the e2e suite share about the real program they run in a network namespace: its command
 * line for a scenario, polling with a deadline, and watching it through `/upstreams` (read by a client inside the
 * namespace, which each suite provides) and its log.
 *
 * @module
 */
import type { HelperProcess } from "../faults/helper_process.ts";
import { wallNow } from "../faults/support/https_client.ts";

/** The proxy port inside the program's namespace (a namespace of its own: nothing else can hold it). */
export const PROXY_PORT = 7445;
/** The health port (`/upstreams`) inside the program's namespace. */
export const HEALTH_PORT = 7446;

/** `/upstreams` entry fields the suites read (the program shows more). */
export interface UpstreamView {
  readonly address: string;
  readonly state: "unknown" | "healthy" | "unhealthy";
  readonly draining: boolean;
  readonly lastProbeRttMs: number | null;
  readonly smoothedRttMs?: number | null;
  /** Client connections open now. */
  readonly activeConnections: number;
  /** Client connections relayed to it since it was added. */
  readonly totalConnections: number;
}

/** The settings a scenario gives the program; everything else is a flag in `extraFlags`. */
export interface ProgramFlags {
  readonly endpoints: readonly string[];
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** @default 2 */
  readonly rise?: number;
  /** @default 2 */
  readonly fall?: number;
  /** @default 2000 */
  readonly drainTimeoutMs?: number;
  /** The proxy listener's address. @default "127.0.0.1" */
  readonly bindAddress?: string;
  /** Flags of the feature a scenario exercises; discovery is off unless one of them names it. */
  readonly extraFlags?: readonly string[];
}

/** The program's command-line flags for a scenario: fixed ports, JSON log at info, discovery off unless asked. */
export function programFlags(o: ProgramFlags): string[] {
  return [
    `--endpoints=${o.endpoints.join(",")}`,
    `--bind-address=${o.bindAddress ?? "127.0.0.1"}`,
    `--bind-port=${PROXY_PORT}`,
    `--health-port=${HEALTH_PORT}`,
    `--health-interval=${o.intervalMs}ms`,
    `--health-timeout=${o.timeoutMs}ms`,
    `--health-rise=${o.rise ?? 2}`,
    `--health-fall=${o.fall ?? 2}`,
    `--drain-timeout=${o.drainTimeoutMs ?? 2000}ms`,
    ...(o.extraFlags?.some((f) => f.startsWith("--enable-discovery")) ? [] : ["--enable-discovery=false"]),
    "--log-format=json",
    "--log-level=info",
    ...(o.extraFlags ?? []),
  ];
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

/** The running program, watched through `/upstreams` and its log; how `/upstreams` is read is the suite's. */
export abstract class ProgramRun implements AsyncDisposable {
  readonly process: HelperProcess;
  readonly #stopGraceMs: number;

  /** @param stopGraceMs How long a stop waits after SIGTERM before SIGKILL: above the run's `--drain-timeout`. */
  protected constructor(process: HelperProcess, stopGraceMs: number) {
    this.process = process;
    this.#stopGraceMs = stopGraceMs;
  }

  /** `/upstreams` as the suite's client inside the namespace reads it. */
  protected abstract readUpstreams(): Promise<UpstreamView[]>;

  /** `/upstreams`; fails with the program's last log lines once it has exited. */
  upstreams(): Promise<UpstreamView[]> {
    if (this.process.status !== undefined) {
      const tail = this.process.stderrLines.slice(-20).join("\n");
      throw new Error(`The program exited (code ${this.process.status.code}); its last log lines:\n${tail}`);
    }
    return this.readUpstreams();
  }

  /**
   * Waits until `check` holds, or fails with the command line and the program's last log lines (having stopped it),
   * also when the program exits first.
   */
  protected async waitStarted(check: () => Promise<boolean>, timeoutMs: number, what: string, flags: string[]) {
    try {
      await pollUntil(async () => {
        if (this.process.status !== undefined) throw new Error(`it exited with code ${this.process.status.code}`);
        return (await check()) ? true : undefined;
      }, { timeoutMs, what });
    } catch (e) {
      await this.stop();
      throw new Error(
        `Cannot start the program with ${flags.join(" ")}: ${e instanceof Error ? e.message : String(e)}\n` +
          this.process.stderrLines.slice(-20).join("\n"),
      );
    }
  }

  /** A start check on `/upstreams`; false while the health port does not answer yet. */
  protected upstreamsCheck(ready: (ups: UpstreamView[]) => boolean): () => Promise<boolean> {
    return async () => {
      try {
        return ready(await this.upstreams());
      } catch (e) {
        if (this.process.status !== undefined) throw e;
        return false;
      }
    };
  }

  /**
   * Polls `/upstreams` until `test` holds and returns the wall-clock time it was seen (the reply's arrival: the state
   * changed at or before it) and the entries; a timeout names the program's last log lines.
   */
  waitUpstreams(
    test: (ups: UpstreamView[]) => boolean,
    timeoutMs: number,
    what: string,
  ): Promise<{ at: number; upstreams: UpstreamView[] }> {
    return pollUntil(async () => {
      const ups = await this.upstreams();
      return test(ups) ? { at: Math.round(wallNow()), upstreams: ups } : undefined;
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

  /** Stops the program with SIGTERM (it drains for up to its `--drain-timeout`), SIGKILL if it hangs. */
  async stop(): Promise<Deno.CommandStatus> {
    this.process.kill("SIGTERM");
    return await this.process.stop(this.#stopGraceMs);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop().then(() => {});
  }
}
