/**
 * Child processes of the bench: spawned pinned to a core, registered so that every one of them is killed on the way
 * out (even when the bench fails); plus the small helpers the bench needs around them.
 *
 * @module
 */

import { processTree, treeCpuTicks } from "./_proc_stats.ts";

const decoder = new TextDecoder();

/** A spawned child, pinned to one core; its output is kept (last 64 KiB of each stream) for error messages. */
export class Child {
  /** A name for messages. */
  readonly name: string;
  readonly #proc: Deno.ChildProcess;
  readonly #out: Promise<string>;
  readonly #err: Promise<string>;
  readonly #status: Promise<Deno.CommandStatus>;
  #exited = false;

  /** Wraps a spawned process and starts collecting its output. */
  constructor(name: string, proc: Deno.ChildProcess, outputLimit = 64 * 1024) {
    this.name = name;
    this.#proc = proc;
    this.#out = collect(proc.stdout, outputLimit);
    this.#err = collect(proc.stderr, outputLimit);
    this.#status = proc.status.then((s) => {
      this.#exited = true;
      return s;
    });
  }

  /** The process id (after `taskset` has exec'ed: the program itself). */
  get pid(): number {
    return this.#proc.pid;
  }

  /** Whether the process has exited. */
  get exited(): boolean {
    return this.#exited;
  }

  /** Resolves with the exit status. */
  get status(): Promise<Deno.CommandStatus> {
    return this.#status;
  }

  /** Waits for the exit and returns the status with everything the child wrote. */
  async output(): Promise<{ status: Deno.CommandStatus; stdout: string; stderr: string }> {
    const [status, stdout, stderr] = await Promise.all([this.#status, this.#out, this.#err]);
    return { status, stdout, stderr };
  }

  /** What the child wrote to stderr so far is only known after exit; this waits for it. */
  async stderrText(): Promise<string> {
    return await this.#err;
  }

  /** Sends `signal` to the child and its descendants (nginx forks workers), without throwing if they are gone. */
  signalTree(signal: Deno.Signal): void {
    for (const pid of processTree(this.pid).reverse()) {
      try {
        Deno.kill(pid, signal);
      } catch { /* already gone */ }
    }
  }

  /** Stops the child: `SIGTERM`, then `SIGKILL` to the whole tree after `graceMs`. */
  async stop(graceMs = 3000): Promise<void> {
    if (this.#exited) return;
    const tree = processTree(this.pid);
    try {
      Deno.kill(this.pid, "SIGTERM");
    } catch { /* gone */ }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), graceMs)));
    const ended = await Promise.race([this.#status.then(() => true), late]);
    clearTimeout(timer);
    // A master that exited may leave workers behind; SIGKILL whatever of the tree is still alive.
    for (const pid of tree.reverse()) {
      if (!ended || pid !== this.pid) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch { /* gone */ }
      }
    }
    await this.#status;
  }
}

/** The stream's text, its last `limit` characters at most. */
async function collect(stream: ReadableStream<Uint8Array>, limit: number): Promise<string> {
  let text = "";
  try {
    for await (const chunk of stream) {
      text += decoder.decode(chunk, { stream: true });
      if (text.length > 2 * limit) text = text.slice(-limit);
    }
  } catch { /* the stream broke with the process */ }
  return text.slice(-limit);
}

/** Options of `Children.spawn`. */
export interface SpawnOptions {
  /** The CPU list for `taskset -c` (e.g. `"1"`); `undefined` runs unpinned. */
  readonly cpus: string | undefined;
  /** Working directory (default: the bench's). */
  readonly cwd?: string;
  /** Extra environment variables (added to the bench's). */
  readonly env?: Record<string, string>;
  /** Kills the child when it aborts. */
  readonly signal?: AbortSignal;
  /** How much of stdout and of stderr is kept, from the end, in characters. @default 65536 */
  readonly outputLimit?: number;
}

/** Every child the bench started, so that `close()` can end all of them whatever happened. */
export class Children {
  readonly #all = new Set<Child>();

  /** Spawns `argv`, pinned with `taskset` when `opts.cpus` is set, stdin closed, stdout and stderr collected. */
  spawn(name: string, argv: readonly string[], opts: SpawnOptions): Child {
    const full = opts.cpus === undefined ? [...argv] : ["taskset", "-c", opts.cpus, ...argv];
    const [cmd, ...args] = full;
    if (cmd === undefined) throw new TypeError(`Cannot spawn '${name}': expected a command`);
    const proc = new Deno.Command(cmd, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
      ...(opts.env === undefined ? {} : { env: opts.env }),
      ...(opts.signal === undefined ? {} : { signal: opts.signal }),
    }).spawn();
    const child = new Child(name, proc, opts.outputLimit);
    this.#all.add(child);
    child.status.finally(() => this.#all.delete(child));
    return child;
  }

  /** Runs `argv` to completion (bounded by `timeoutMs`) and returns its output; throws if it fails. */
  async run(name: string, argv: readonly string[], opts: SpawnOptions & { timeoutMs: number }): Promise<string> {
    const signal = AbortSignal.timeout(opts.timeoutMs);
    const child = this.spawn(name, argv, { ...opts, signal });
    const { status, stdout, stderr } = await child.output();
    if (!status.success) {
      const why = signal.aborted ? `timed out after ${opts.timeoutMs} ms` : `exit code ${status.code}`;
      throw new Error(`Cannot run ${name} '${argv.join(" ")}': ${why}: ${lastLines(stderr || stdout)}`);
    }
    return stdout;
  }

  /**
   * CPU time (clock ticks) of everything the bench runs: its live children's process trees plus the bench itself and
   * the children it has already reaped. Subtracted from the machine's busy time, it leaves what other processes used.
   */
  ticks(): number {
    let sum = 0;
    for (const c of this.#all) if (!c.exited) sum += treeCpuTicks(c.pid);
    try {
      const stat = Deno.readTextFileSync("/proc/self/stat");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      // utime, stime, cutime, cstime: fields 14-17.
      sum += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    } catch { /* no /proc */ }
    return sum;
  }

  /** Stops every child still running. */
  async close(): Promise<void> {
    await Promise.all([...this.#all].map((c) => c.stop(2000)));
  }
}

/**
 * The telling part of a program's output, on one line, for an error message: its `error:` line if it printed one
 * (Deno's style), else its last few lines; a Rust backtrace (printed when `RUST_BACKTRACE` is set) is left out.
 */
export function lastLines(text: string, n = 3): string {
  // deno-lint-ignore no-control-regex
  const lines = text.replace(/\x1b\[[0-9;]*m/g, "").split("\n");
  const cut = lines.findIndex((l) => l.startsWith("Stack backtrace:"));
  const kept = (cut === -1 ? lines : lines.slice(0, cut)).map((l) => l.trim()).filter(Boolean);
  const error = kept.find((l) => /^error: /i.test(l));
  return error ?? (kept.slice(-n).join(" | ") || "(no output)");
}

/** Pins the bench process itself (all its threads) to `cpus`, so its sampling stays off the proxy's core. */
export async function pinSelf(cpus: string): Promise<void> {
  const out = await new Deno.Command("taskset", { args: ["-a", "-cp", cpus, String(Deno.pid)], stdout: "null" })
    .output();
  if (!out.success) throw new Error(`Cannot pin the bench to CPU '${cpus}': ${decoder.decode(out.stderr).trim()}`);
}

/** Whether `name` is an executable on `PATH`. */
export function which(name: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":")) {
    const path = `${dir}/${name}`;
    try {
      const info = Deno.statSync(path);
      if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) return path;
    } catch { /* not here */ }
  }
  return undefined;
}

/** A free TCP port on 127.0.0.1 (bound and released; good enough on a machine the bench owns). */
export function freePort(): number {
  using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return l.addr.port;
}

/** Resolves after `ms`, or rejects when `signal` aborts. */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** A whole number from `min` to `max` given to `--flag`; throws a one-line RangeError naming the flag otherwise. */
export function parseCount(flag: string, text: string, max: number, min = 1): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new RangeError(`Cannot parse --${flag} '${text}': expected a whole number from ${min} to ${max}`);
  }
  return n;
}
