/**
 * Runs the real program exactly as `deno task start` does: the `start` task's words from `deno.json`, with this
 * test's `deno` binary, from the repository root, with a cleared environment plus what the test passes.
 *
 * @module
 */
import denoJson from "../../deno.json" with { type: "json" };
import { withDeadline } from "./deadline.ts";
import { ENTRY_POINT, readStartTask } from "../../deploy/compile.ts";

/** The repository root (where `deno.json` and `main.ts` live), found from this file's place in it. */
export const REPO_ROOT: URL = new URL("../../", import.meta.url);

/** The `start` task split into words, `deno` replaced by the running binary. */
export interface StartCommand {
  readonly command: string;
  /** Everything after `deno`, ending with the main module. */
  readonly args: readonly string[];
  /** `NAME=value` assignments written before `deno` in the task. */
  readonly env: Readonly<Record<string, string>>;
}

/**
 * Reads the `start` task (`readStartTask`: a plain `[NAME=value ...] deno run ... main.ts`, no other shell syntax), so
 * that a test can run the very same words without a shell. `denoFlags` go right after `run`, before the task's own
 * flags.
 */
export function startCommand(denoFlags: readonly string[] = []): StartCommand {
  const { env, flags } = readStartTask(denoJson.tasks.start);
  return {
    command: Deno.execPath(),
    args: ["run", ...denoFlags, ...flags, ENTRY_POINT],
    env: Object.fromEntries(env),
  };
}

/** What Deno itself may need to find its cache; the program cannot read these (they are not in its env list). */
function runtimeEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of ["HOME", "DENO_DIR", "XDG_CACHE_HOME"]) {
    const v = Deno.env.get(name);
    if (v !== undefined) out[name] = v;
  }
  return out;
}

/** Options of {@linkcode MainProcess.start} and {@linkcode runMain}. */
export interface MainOptions {
  /** Environment of the program; the test's own environment is not inherited. @default {} */
  readonly env?: Readonly<Record<string, string>>;
  /** Flags of `deno run` put before the task's own (the soak's `--inspect=…`). @default [] */
  readonly denoFlags?: readonly string[];
}

/** How a finished run ended. */
export interface MainResult {
  readonly code: number;
  readonly signal: Deno.Signal | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The program running as a child process; stderr is collected line by line as it arrives. */
export class MainProcess implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #lines: string[] = [];
  #stdout = "";
  #stderrRest = "";
  readonly #reading: Promise<void>;
  #status: Deno.CommandStatus | undefined;
  readonly #exited: Promise<Deno.CommandStatus>;
  readonly #changed = new Set<() => void>();

  private constructor(args: readonly string[], options: MainOptions) {
    const start = startCommand(options.denoFlags);
    this.#child = new Deno.Command(start.command, {
      args: [...start.args, ...args],
      cwd: REPO_ROOT,
      clearEnv: true,
      env: { ...runtimeEnv(), ...start.env, ...options.env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#reading = Promise.all([this.#readStdout(), this.#readStderr()]).then(() => {});
    this.#exited = this.#child.status.then((s) => {
      this.#status = s;
      this.#notify();
      return s;
    });
  }

  /** Starts `deno task start`'s command line with `args` appended. */
  static start(args: readonly string[], options: MainOptions = {}): MainProcess {
    return new MainProcess(args, options);
  }

  /** The child's process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Complete stderr lines so far. */
  get lines(): readonly string[] {
    return this.#lines;
  }

  /** The exit status, once the process has exited. */
  get status(): Deno.CommandStatus | undefined {
    return this.#status;
  }

  /** Sends a signal. */
  kill(signal: Deno.Signal): void {
    this.#child.kill(signal);
  }

  /** Waits for a stderr line that passes `test`; fails when the process exits first or after `timeoutMs`. */
  waitForLine(test: (line: string) => boolean, timeoutMs = 15_000): Promise<string> {
    return this.#until(() => this.#lines.find(test), timeoutMs, "a matching stderr line");
  }

  /** Waits for the process to exit and its output to end; fails after `timeoutMs`. */
  async exited(timeoutMs = 15_000): Promise<MainResult> {
    const status = await this.#until(() => this.#status, timeoutMs, "the process to exit", false);
    await this.#reading;
    const stderr = this.#lines.map((l) => `${l}\n`).join("") + this.#stderrRest;
    return { code: status.code, signal: status.signal, stdout: this.#stdout, stderr };
  }

  /** Kills the process if it still runs and waits for it and its pipes: nothing is left open. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#status === undefined) {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* exited meanwhile */ }
    }
    await this.#exited;
    await this.#reading;
  }

  #until<T>(get: () => T | undefined, timeoutMs: number, what: string, failOnExit = true): Promise<T> {
    const { promise, resolve, reject } = Promise.withResolvers<T>();
    const check = () => {
      const v = get();
      if (v !== undefined) resolve(v);
      else if (failOnExit && this.#status !== undefined) {
        reject(
          new Error(`The program exited (${this.#status.code}) before ${what}; stderr:\n${this.#lines.join("\n")}`),
        );
      }
    };
    const timer = setTimeout(() => {
      reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${what}; stderr:\n${this.#lines.join("\n")}`));
    }, timeoutMs);
    this.#changed.add(check);
    check();
    return promise.finally(() => {
      clearTimeout(timer);
      this.#changed.delete(check);
    });
  }

  #notify(): void {
    for (const check of [...this.#changed]) check();
  }

  async #readStdout(): Promise<void> {
    for await (const text of this.#child.stdout.pipeThrough(new TextDecoderStream())) this.#stdout += text;
  }

  async #readStderr(): Promise<void> {
    for await (const text of this.#child.stderr.pipeThrough(new TextDecoderStream())) {
      const parts = (this.#stderrRest + text).split("\n");
      this.#stderrRest = parts.pop() ?? "";
      this.#lines.push(...parts);
      this.#notify();
    }
  }
}

/** Runs the program to its end (for `--version`, `--help` and configuration errors). */
export async function runMain(args: readonly string[], options: MainOptions = {}): Promise<MainResult> {
  await using proc = MainProcess.start(args, options);
  return await proc.exited();
}

/** `n` different ports that were free a moment ago: all are bound at once, then released. */
export function freePorts(n: number): number[] {
  const listeners = Array.from({ length: n }, () => Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  const ports = listeners.map((l) => l.addr.port);
  for (const l of listeners) l.close();
  return ports;
}

/**
 * The real program, started as the start task does (under `prlimit` when `nofile` is given), its stderr collected
 * in `log` as it comes, so that a test can wait for a line.
 */
export class LimitedProgram {
  log = "";
  exited = false;
  readonly #child: Deno.ChildProcess;
  readonly #reading: Promise<void>;

  /** @param args The program's arguments (after `main.ts`). */
  constructor(args: readonly string[], nofile?: number) {
    const start = startCommand();
    const all = [...start.args, ...args];
    const child = this.#child = new Deno.Command(nofile === undefined ? start.command : "prlimit", {
      args: nofile === undefined ? all : [`--nofile=${nofile}:${nofile}`, start.command, ...all],
      cwd: REPO_ROOT,
      env: start.env,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    child.status.then(() => this.exited = true);
    this.#reading = (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) this.log += chunk;
    })();
  }

  /** Sends SIGTERM (unless it exited already) and returns the exit code once stderr has ended. */
  async stop(): Promise<number> {
    try {
      this.#child.kill("SIGTERM");
    } catch { /* it exited already: the status says how */ }
    const { code } = await withDeadline(this.#child.status, "the program to exit on SIGTERM");
    await withDeadline(this.#reading, "the end of the program's stderr");
    return code;
  }
}
