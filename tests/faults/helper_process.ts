/**
 * The test's side of a helper process (API server, load client, delay relay): commands out on stdin, answers and
 * events in on stdout, stderr kept for error messages. Also used for the proxy itself, whose stderr is its log.
 *
 * @module
 */

/** One JSON line from stdout that is not an answer. */
export type HelperEvent = { readonly event: string } & Record<string, unknown>;

/** How to start a helper. */
export interface HelperSpawn {
  /** What the error messages call it, e.g. `api1`. */
  readonly label: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd?: string | URL;
  readonly env?: Readonly<Record<string, string>>;
  /** Whether the helper takes commands on stdin. @default true */
  readonly commands?: boolean;
}

type Waiter = { readonly test: () => boolean; readonly wake: () => void };

/** A running helper process; disposing of it ends it (stdin closed, then SIGKILL after a grace period). */
export class HelperProcess implements AsyncDisposable {
  readonly label: string;
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array> | undefined;
  readonly #answers = new Map<number, PromiseWithResolvers<unknown>>();
  readonly #events: HelperEvent[] = [];
  readonly #stderrLines: string[] = [];
  readonly #waiters = new Set<Waiter>();
  readonly #reading: Promise<void>;
  readonly #exited: Promise<Deno.CommandStatus>;
  #status: Deno.CommandStatus | undefined;
  #nextId = 1;

  constructor(spec: HelperSpawn) {
    this.label = spec.label;
    const commands = spec.commands ?? true;
    this.#child = new Deno.Command(spec.command, {
      args: [...spec.args],
      ...(spec.cwd !== undefined ? { cwd: spec.cwd } : {}),
      clearEnv: true,
      env: { ...runtimeEnv(), ...spec.env },
      stdin: commands ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stdin = commands ? this.#child.stdin.getWriter() : undefined;
    this.#reading = Promise.all([
      this.#lines(this.#child.stdout, (l) => this.#onStdout(l)),
      this.#lines(this.#child.stderr, (l) => this.#stderrLines.push(l)),
    ]).then(() => {});
    this.#exited = this.#child.status.then((s) => {
      this.#status = s;
      for (const a of this.#answers.values()) a.reject(this.#exitError("answering"));
      this.#answers.clear();
      this.#notify();
      return s;
    });
  }

  /** The process id (the program itself: `ip netns exec` replaces itself with it). */
  get pid(): number {
    return this.#child.pid;
  }

  /** The exit status, once exited. */
  get status(): Deno.CommandStatus | undefined {
    return this.#status;
  }

  /** Complete stderr lines so far. */
  get stderrLines(): readonly string[] {
    return this.#stderrLines;
  }

  /** Events so far, oldest first. */
  get events(): readonly HelperEvent[] {
    return this.#events;
  }

  /**
   * Sends a command and waits for its answer.
   *
   * @throws {Error} When the helper answers with an error, exits, or does not answer within `timeoutMs`.
   */
  async request<T>(op: string, fields: Record<string, unknown> = {}, timeoutMs = 10_000): Promise<T> {
    if (this.#stdin === undefined) throw new Error(`Cannot send '${op}' to ${this.label}: it takes no commands`);
    if (this.#status !== undefined) throw this.#exitError(`running '${op}'`);
    const id = this.#nextId++;
    const answer = Promise.withResolvers<unknown>();
    this.#answers.set(id, answer);
    await this.#stdin.write(new TextEncoder().encode(JSON.stringify({ ...fields, id, op }) + "\n"));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${this.label} to answer '${op}'`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([answer.promise, timeout]) as T;
    } finally {
      clearTimeout(timer);
      this.#answers.delete(id);
    }
  }

  /**
   * Waits until `test` holds, re-checked on every line the helper prints and when it exits.
   *
   * @throws {Error} When the helper exits first (with `failOnExit`) or after `timeoutMs`, naming `what`.
   */
  waitFor(test: () => boolean, timeoutMs: number, what: string, failOnExit = true): Promise<void> {
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const waiter: Waiter = {
      test,
      wake: () => {
        if (test()) resolve();
        else if (failOnExit && this.#status !== undefined) reject(this.#exitError(`${what}`));
      },
    };
    const timer = setTimeout(
      () => reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${what} from ${this.label}${this.#tail()}`)),
      timeoutMs,
    );
    this.#waiters.add(waiter);
    waiter.wake();
    return promise.finally(() => {
      clearTimeout(timer);
      this.#waiters.delete(waiter);
    });
  }

  /** Waits for an event that passes `test` and returns it. */
  async waitForEvent(test: (e: HelperEvent) => boolean, timeoutMs: number, what: string): Promise<HelperEvent> {
    let found: HelperEvent | undefined;
    await this.waitFor(() => (found = this.#events.find(test)) !== undefined, timeoutMs, what);
    return found as HelperEvent;
  }

  /** Sends a signal if the process still runs. */
  kill(signal: Deno.Signal): void {
    if (this.#status !== undefined) return;
    try {
      this.#child.kill(signal);
    } catch { /* exited meanwhile */ }
  }

  /** Waits for the exit (and the end of its output), killing it with SIGKILL after `graceMs`. */
  async stop(graceMs = 3000): Promise<Deno.CommandStatus> {
    try {
      await this.#stdin?.close();
    } catch { /* the process is gone: its stdin is broken */ }
    const timer = setTimeout(() => this.kill("SIGKILL"), graceMs);
    try {
      const status = await this.#exited;
      await this.#reading;
      return status;
    } finally {
      clearTimeout(timer);
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop().then(() => {});
  }

  #onStdout(line: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      return; // not a protocol line (the proxy prints nothing there; a helper might print a warning)
    }
    if (typeof parsed !== "object" || parsed === null) return;
    const msg = parsed as { id?: unknown; ok?: unknown; result?: unknown; error?: unknown; event?: unknown };
    if (typeof msg.id === "number" && typeof msg.ok === "boolean") {
      const answer = this.#answers.get(msg.id);
      if (msg.ok) answer?.resolve(msg.result);
      else answer?.reject(new Error(`${this.label}: ${String(msg.error)}`));
    } else if (typeof msg.event === "string") {
      this.#events.push(parsed as HelperEvent);
    }
  }

  async #lines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
    let rest = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      const parts = (rest + text).split("\n");
      rest = parts.pop() ?? "";
      for (const p of parts) onLine(p);
      this.#notify();
    }
    if (rest !== "") onLine(rest);
    this.#notify();
  }

  #notify(): void {
    for (const w of [...this.#waiters]) w.wake();
  }

  #tail(): string {
    const tail = this.#stderrLines.slice(-15);
    return tail.length === 0 ? "" : `; last stderr lines:\n${tail.join("\n")}`;
  }

  #exitError(what: string): Error {
    return new Error(`${this.label} exited (code ${this.#status?.code}) before ${what}${this.#tail()}`);
  }
}

/** What Deno needs to find its cache: HOME, DENO_DIR, XDG_CACHE_HOME, PATH; nothing else is inherited. */
function runtimeEnv(): Record<string, string> {
  const out: Record<string, string> = { NO_COLOR: "1" };
  for (const name of ["HOME", "DENO_DIR", "XDG_CACHE_HOME", "PATH"]) {
    const v = Deno.env.get(name);
    if (v !== undefined) out[name] = v;
  }
  return out;
}
