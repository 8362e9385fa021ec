/**
 * The endpoint copier as the real program (`main.ts endpoint-copier`, `deno task start`'s command line) in the node
 * namespace against the v1 API server, watched through its JSON log and its `/metrics` (read by a short-lived
 * `deno eval` in the namespace, which also reaches etcd's JSON gateway).
 *
 * @module
 */
import type { HelperProcess } from "../faults/helper_process.ts";
import { startCommand } from "../support/main_process.ts";
import { type ControlPlane, V1_PORT } from "./control_plane.ts";
import type { ApiObject } from "./copier_objects.ts";
import { ETCD_ADDRESS, ETCD_PORT } from "./net.ts";
import { pollUntil } from "./proxy.ts";

const REPO_ROOT = new URL("../../", import.meta.url);

/** A JSON line of the program's log, or `undefined` for a line that is not one. */
export function logRecord(line: string): ApiObject | undefined {
  try {
    const r = JSON.parse(line);
    return typeof r === "object" && r !== null ? r as ApiObject : undefined;
  } catch {
    return undefined;
  }
}

/** The wall-clock time of a JSON log line, in milliseconds. */
export function logTime(line: string): number {
  const t = Date.parse(String(logRecord(line)?.["@timestamp"] ?? ""));
  if (Number.isNaN(t)) throw new Error(`Cannot read the time of the log line '${line}'`);
  return t;
}

/**
 * One HTTP request (no TLS) made from inside the node namespace by a short-lived `deno eval`: the copier's
 * `/metrics` on loopback, etcd's JSON gateway on the bridge.
 */
export async function nodeHttp(
  plane: ControlPlane,
  url: string,
  init: { method?: string; body?: string } = {},
): Promise<{ status: number; body: string }> {
  const code = `const r = await fetch(${JSON.stringify(url)}, { ...${JSON.stringify(init)}, ` +
    `signal: AbortSignal.timeout(5000) }); ` +
    `console.log(JSON.stringify({ status: r.status, body: await r.text() }));`;
  const out = await plane.runInNode(Deno.execPath(), ["eval", "--no-config", "-q", code], 30_000);
  const stdout = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) {
    throw new Error(`Cannot fetch ${url} in the node namespace: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return JSON.parse(stdout) as { status: number; body: string };
}

/** etcd's current revision, read through its JSON gateway from the node namespace. */
export async function etcdRevision(plane: ControlPlane): Promise<number> {
  const r = await nodeHttp(plane, `http://${ETCD_ADDRESS}:${ETCD_PORT}/v3/kv/range`, {
    method: "POST",
    body: JSON.stringify({ key: btoa("e2e-revision"), count_only: true }),
  });
  const rev = Number(JSON.parse(r.body)?.header?.revision);
  if (r.status !== 200 || !Number.isInteger(rev)) throw new Error(`Cannot read etcd's revision: ${r.status} ${r.body}`);
  return rev;
}

/** Compacts etcd to `revision` (physically: the old revisions are gone from its store). */
export async function compactEtcd(plane: ControlPlane, revision: number): Promise<void> {
  const r = await nodeHttp(plane, `http://${ETCD_ADDRESS}:${ETCD_PORT}/v3/kv/compaction`, {
    method: "POST",
    body: JSON.stringify({ revision: String(revision), physical: true }),
  });
  if (r.status !== 200) throw new Error(`Cannot compact etcd to ${revision}: HTTP ${r.status}: ${r.body}`);
}

/** Options of one copier process. */
export interface CopierOptions {
  /** Names it in error messages, e.g. `copier A`. */
  readonly label: string;
  readonly kubeconfig: string;
  /** Its `/metrics` on 127.0.0.1 in the node namespace. */
  readonly metricsPort: number;
  /** Leader election on `kube-system`'s Lease with these timings (milliseconds), else none. */
  readonly election?: { readonly leaseMs: number; readonly renewMs: number; readonly retryMs: number };
}

/** The copier running in the node namespace. */
export class CopierRun implements AsyncDisposable {
  readonly options: CopierOptions;
  readonly process: HelperProcess;
  /** Its leader-election identity, from its start line. */
  readonly identity: string;
  readonly #plane: ControlPlane;

  private constructor(plane: ControlPlane, options: CopierOptions, process: HelperProcess, identity: string) {
    this.#plane = plane;
    this.options = options;
    this.process = process;
    this.identity = identity;
  }

  /**
   * Starts the copier and waits for its start line.
   *
   * @throws {Error} When it exits or does not start within 30 s (with its last log lines).
   */
  static async start(plane: ControlPlane, options: CopierOptions): Promise<CopierRun> {
    const start = startCommand();
    const e = options.election;
    const flags = [
      "endpoint-copier",
      `--kubeconfig=${options.kubeconfig}`,
      "--health-probe-bind-address=0",
      `--metrics-bind-address=127.0.0.1:${options.metricsPort}`,
      "--log-format=json",
      "--log-level=info",
      ...(e === undefined ? [] : [
        "--leader-elect=true",
        "--leader-election-namespace=kube-system",
        `--leader-elect-lease-duration=${e.leaseMs}ms`,
        `--leader-elect-renew-deadline=${e.renewMs}ms`,
        `--leader-elect-retry-period=${e.retryMs}ms`,
      ]),
    ];
    const proc = plane.spawnInNode(options.label, start.command, [...start.args, ...flags], false, REPO_ROOT);
    let identity = "";
    try {
      await proc.waitFor(
        () => {
          const line = proc.stderrLines.find((l) => l.includes("Endpoint copier started as"));
          identity = line === undefined ? "" : String(logRecord(line)?.identity ?? "");
          return identity !== "";
        },
        30_000,
        "the start line",
      );
    } catch (err) {
      proc.kill("SIGKILL");
      await proc.stop(5000);
      throw new Error(
        `Cannot start ${options.label} with ${flags.join(" ")}: ${err instanceof Error ? err.message : String(err)}\n` +
          proc.stderrLines.slice(-20).join("\n"),
      );
    }
    return new CopierRun(plane, options, proc, identity);
  }

  /** The log lines (raw) containing `text`, from line `since` on. */
  logLines(text: string, since = 0): string[] {
    return this.process.stderrLines.slice(since).filter((l) => l.includes(text));
  }

  /** How many log lines there are now: a mark for {@linkcode CopierRun.logLines} and {@linkcode CopierRun.waitLog}. */
  mark(): number {
    return this.process.stderrLines.length;
  }

  /** Waits for a log line from `since` on that passes `test`; returns it. */
  async waitLog(test: (line: string) => boolean, timeoutMs: number, what: string, since = 0): Promise<string> {
    let found: string | undefined;
    await this.process.waitFor(
      () => {
        found = this.process.stderrLines.slice(since).find(test);
        return found !== undefined;
      },
      timeoutMs,
      what,
    );
    return found as string;
  }

  /** Log lines that tell of an apply conflict (409) or a failed reconcile: none is expected. */
  conflictLines(): string[] {
    // The message only, and 409 as a word: a timestamp such as `02:59:20.409Z` holds "409" too, and so may the
    // copier's random identity (`vm_c567a8ee-409b-…`) in its start-up line.
    const said = (line: string, text: RegExp) => {
      try {
        const rec = JSON.parse(line) as { message?: unknown };
        return typeof rec.message === "string" && text.test(rec.message);
      } catch {
        return text.test(line);
      }
    };
    return this.process.stderrLines.filter((l) => said(l, /\b409\b/) || said(l, /Cannot reconcile/));
  }

  /** A metric's value (no labels, or the exact label text such as `{verb="apply",result="success"}`). */
  async metric(name: string, labels = ""): Promise<number | undefined> {
    const r = await nodeHttp(this.#plane, `http://127.0.0.1:${this.options.metricsPort}/metrics`);
    if (r.status !== 200) throw new Error(`${this.options.label} answered /metrics with HTTP ${r.status}`);
    const line = r.body.split("\n").find((l) => l.startsWith(`${name}${labels} `));
    return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
  }

  /** Waits until every cache of the copier has been listed (its `caches_synced` gauge). */
  async waitSynced(timeoutMs = 30_000): Promise<void> {
    await pollUntil(
      async () => (await this.metric("extractedprism_copier_caches_synced")) === 1 ? true : undefined,
      { timeoutMs, what: `${this.options.label}'s caches to be synced`, everyMs: 100 },
    ).catch((e) => {
      throw new Error(
        `${e instanceof Error ? e.message : String(e)}\n${this.process.stderrLines.slice(-10).join("\n")}`,
      );
    });
  }

  /** Sends a signal to the copier process itself. */
  signal(sig: Deno.Signal): void {
    this.process.kill(sig);
  }

  /** Stops it with SIGTERM (SIGKILL after 10 s). */
  async stop(): Promise<Deno.CommandStatus> {
    if (this.process.status !== undefined) return this.process.status;
    this.process.kill("SIGTERM");
    return await this.process.stop(10_000);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop().then(() => {});
  }
}

/** Starts the v1 API server unless it runs. */
export async function ensureV1(plane: ControlPlane): Promise<void> {
  if (plane.v1Server === undefined || plane.v1Server.status !== undefined) await plane.startV1Server();
}

/** Starts a copier against the v1 API server (with a kubeconfig of its own), metrics on `metricsPort`. */
export async function startCopier(
  plane: ControlPlane,
  label: string,
  metricsPort: number,
  election?: { leaseMs: number; renewMs: number; retryMs: number },
): Promise<CopierRun> {
  const kubeconfig = await plane.pki.kubeconfig(`copier-${metricsPort}`, `https://${ETCD_ADDRESS}:${V1_PORT}`);
  return await CopierRun.start(plane, { label, kubeconfig, metricsPort, ...(election ? { election } : {}) });
}
