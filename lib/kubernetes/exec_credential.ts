/**
 * Exec credential plugins (`users[].user.exec`): runs the command with `KUBERNETES_EXEC_INFO`, reads an
 * `ExecCredential` (`client.authentication.k8s.io/v1` or `v1beta1`) from its stdout, and caches the result until its
 * `expirationTimestamp` (or, without one, until the credential is invalidated after a 401). Never interactive: stdin
 * is closed. Needs `--allow-run`. The plugin runs in its own process group, killed as a whole at the timeout, on
 * close, when stdout passes 1 MiB, and once the plugin itself has exited: no child of it outlives the run.
 *
 * @module
 */
import { abortable } from "../abortable.ts";
import { errorMessage } from "../errors.ts";
import { clearTimer, setTimer } from "../clock.ts";
import type { ExecApiVersion, ExecConfig } from "./connection.ts";
import { MAX_ERROR_BODY_BYTES, MAX_EXEC_STDOUT_BYTES, readStreamLimited } from "./read_body.ts";

/** What a plugin returned: a bearer token, a client certificate, or both. */
export interface ExecCredentialResult {
  /** A bearer token. */
  readonly token?: string;
  /** PEM certificate chain. */
  readonly certPem?: string;
  /** PEM private key. */
  readonly keyPem?: string;
  /** Wall-clock milliseconds since the epoch after which the plugin is run again; `undefined`: until a 401. */
  readonly expiresAt?: number;
}

/** Options of {@linkcode ExecPlugin}. */
export interface ExecPluginOptions {
  /** Wall clock in milliseconds since the epoch, compared with `expirationTimestamp`. @default {Date.now} */
  readonly now?: () => number;
  /** The plugin is killed after this many milliseconds. @default {60000} */
  readonly timeoutMs?: number;
}

/**
 * Runs an exec credential plugin when its cached result is missing or expired; concurrent callers share one run.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ExecPlugin } from "./exec_credential.ts";
 * const plugin = new ExecPlugin({
 *   apiVersion: "client.authentication.k8s.io/v1",
 *   command: "sh",
 *   args: ["-c", `echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"t"}}'`],
 *   env: [],
 * });
 * assert((await plugin.get(new AbortController().signal)).token === "t");
 * plugin.close();
 * ```
 */
export class ExecPlugin {
  readonly #config: ExecConfig;
  readonly #now: () => number;
  readonly #timeoutMs: number;
  readonly #stop = new AbortController();
  #cached: ExecCredentialResult | undefined;
  #running: Promise<ExecCredentialResult> | undefined;
  #runs = 0;

  /** Runs nothing yet: the first `get` does. */
  constructor(config: ExecConfig, options: ExecPluginOptions = {}) {
    this.#config = config;
    this.#now = options.now ?? Date.now;
    this.#timeoutMs = options.timeoutMs ?? 60_000;
  }

  /** How many times the plugin has been started. */
  get runs(): number {
    return this.#runs;
  }

  /** The cached credential if it has not expired, else the result of a new run. */
  get(signal: AbortSignal): Promise<ExecCredentialResult> {
    const c = this.#cached;
    if (c !== undefined && (c.expiresAt === undefined || this.#now() < c.expiresAt)) return Promise.resolve(c);
    this.#running ??= this.#run().finally(() => {
      this.#running = undefined;
    });
    return abortable(this.#running, signal);
  }

  /** Forgets the cached credential (the API server refused it): the next `get` runs the plugin again. */
  invalidate(): void {
    this.#cached = undefined;
  }

  /** Kills a running plugin. */
  close(): void {
    this.#stop.abort(new Error("Exec credential plugin closed"));
  }

  async #run(): Promise<ExecCredentialResult> {
    const { command, args, env, apiVersion, installHint, cluster } = this.#config;
    if (this.#stop.signal.aborted) throw this.#stop.signal.reason;
    const info = {
      apiVersion,
      kind: "ExecCredential",
      spec: { interactive: false, ...(cluster !== undefined ? { cluster } : {}) },
    };
    const killer = new AbortController();
    const onStop = () => killer.abort();
    this.#stop.signal.addEventListener("abort", onStop, { once: true });
    let timedOut = false;
    const timer = setTimer(this.#timeoutMs, () => {
      timedOut = true;
      killer.abort();
    });
    this.#runs++;
    try {
      let child: Deno.ChildProcess;
      try {
        child = new Deno.Command(command, {
          args: [...args],
          env: { ...Object.fromEntries(env.map((e) => [e.name, e.value])), KUBERNETES_EXEC_INFO: JSON.stringify(info) },
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
          // A new session, so a process group of its own: killing it reaches every child that holds stdout open.
          detached: true,
        }).spawn();
      } catch (e) {
        const hint = installHint ? `\n${installHint}` : "";
        const why = e instanceof Deno.errors.NotFound ? "not found" : errorMessage(e);
        throw new Error(`Cannot run exec credential plugin '${command}': ${why}${hint}`);
      }
      const killGroup = () => {
        try {
          Deno.kill(-child.pid, "SIGKILL");
        } catch {
          // Already gone.
        }
      };
      killer.signal.addEventListener("abort", killGroup, { once: true });
      const outputs = Promise.allSettled([
        readStreamLimited(child.stdout, MAX_EXEC_STDOUT_BYTES, `read the stdout of '${command}'`)
          .catch((e) => {
            killGroup();
            throw e;
          }),
        readTail(child.stderr, MAX_ERROR_BODY_BYTES),
      ]);
      const status = await child.status;
      // Whatever the plugin left behind must not hold its pipes (or anything else) open.
      killGroup();
      const [stdout, stderr] = await outputs;
      killer.signal.removeEventListener("abort", killGroup);
      if (timedOut) {
        throw new Error(
          `Cannot get credentials from exec plugin '${command}': it did not finish in ${this.#timeoutMs} ms`,
        );
      }
      if (this.#stop.signal.aborted) throw this.#stop.signal.reason;
      if (stdout.status === "rejected") {
        throw new Error(
          `Cannot get credentials from exec plugin '${command}': expected at most ${MAX_EXEC_STDOUT_BYTES} bytes ` +
            `on stdout, found more`,
        );
      }
      if (!status.success) {
        const tail = stderr.status === "fulfilled" ? stderr.value : "";
        const err = tail.trim().split("\n").at(-1) ?? "";
        throw new Error(
          `Cannot get credentials from exec plugin '${command}': exited with status ${status.code}${
            err ? `: ${err}` : ""
          }`,
        );
      }
      const out = { stdout: stdout.value };
      const result = parseExecCredential(new TextDecoder().decode(out.stdout), apiVersion, command);
      this.#cached = result;
      return result;
    } finally {
      clearTimer(timer);
      this.#stop.signal.removeEventListener("abort", onStop);
    }
  }
}

/**
 * Parses the stdout of an exec plugin.
 *
 * @throws {Error} When it is not an `ExecCredential` of `apiVersion` with a token or a certificate and key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseExecCredential } from "./exec_credential.ts";
 * const r = parseExecCredential(
 *   '{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential",' +
 *     '"status":{"token":"t","expirationTimestamp":"2030-01-01T00:00:00Z"}}',
 *   "client.authentication.k8s.io/v1beta1",
 *   "my-plugin",
 * );
 * assert(r.token === "t" && r.expiresAt === Date.UTC(2030, 0, 1));
 * ```
 */
export function parseExecCredential(text: string, apiVersion: ExecApiVersion, command: string): ExecCredentialResult {
  const fail = (what: string): never => {
    throw new Error(`Cannot use the output of exec plugin '${command}': ${what}`);
  };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return fail("expected ExecCredential JSON on stdout");
  }
  if (typeof doc !== "object" || doc === null) return fail("expected ExecCredential JSON on stdout");
  const d = doc as Record<string, unknown>;
  if (d.kind !== "ExecCredential") return fail(`expected kind 'ExecCredential', got '${String(d.kind)}'`);
  if (d.apiVersion !== apiVersion) {
    return fail(`expected apiVersion '${apiVersion}' as in the kubeconfig, got '${String(d.apiVersion)}'`);
  }
  const status = d.status;
  if (typeof status !== "object" || status === null) return fail("expected a status");
  const s = status as Record<string, unknown>;
  const str = (k: string): string | undefined => {
    const v = s[k];
    if (v === undefined || v === null || v === "") return undefined;
    if (typeof v !== "string") return fail(`status.${k}: expected a string`);
    return v;
  };
  const token = str("token");
  const certPem = str("clientCertificateData");
  const keyPem = str("clientKeyData");
  if ((certPem === undefined) !== (keyPem === undefined)) {
    return fail("expected both status.clientCertificateData and status.clientKeyData, or neither");
  }
  if (token === undefined && certPem === undefined) {
    return fail("expected status.token or status.clientCertificateData and status.clientKeyData");
  }
  const exp = str("expirationTimestamp");
  const expiresAt = exp === undefined ? undefined : Date.parse(exp);
  if (expiresAt !== undefined && Number.isNaN(expiresAt)) {
    return fail(`status.expirationTimestamp '${exp}': expected an RFC 3339 time`);
  }
  return {
    ...(token !== undefined ? { token } : {}),
    ...(certPem !== undefined && keyPem !== undefined ? { certPem, keyPem } : {}),
    ...(expiresAt !== undefined ? { expiresAt } : {}),
  };
}

/** Reads `stream` to its end, keeping only its last `max` bytes (a plugin's last stderr line is what is shown). */
async function readTail(stream: ReadableStream<Uint8Array>, max: number): Promise<string> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  for await (const chunk of stream) {
    chunks.push(chunk);
    length += chunk.length;
    while (length - (chunks[0]?.length ?? 0) >= max && chunks.length > 1) length -= chunks.shift()?.length ?? 0;
  }
  const bytes = new Uint8Array(length);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.length;
  }
  return new TextDecoder().decode(bytes.subarray(Math.max(0, length - max)));
}
