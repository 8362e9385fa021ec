/**
 * `extractedprism status`: reads `/upstreams` and `/readyz` from the health port of the proxy on this node and says,
 * for a person, what they say for machines. The exit status answers "is it ready": 0 ready, 1 not ready (the reason
 * on stderr), 2 the health port cannot be reached or does not answer like one.
 *
 * @module
 */
import { clearTimer, setTimer } from "../clock.ts";
import { endpointKey } from "../endpoint.ts";
import { escapeControls } from "../errors.ts";
import { healthGet } from "../net/health_get.ts";
import { formatStatusTable, type UpstreamRow } from "./status_format.ts";

/** Where to look and how to print. */
export interface StatusOptions {
  /** The address to connect to (a wildcard bind address already turned into loopback). */
  readonly host: string;
  /** The health port. */
  readonly port: number;
  /** Bounds both requests together. */
  readonly timeoutMs: number;
  /** `table`, `wide` (more columns) or `json` (the `/upstreams` body as it came). */
  readonly output: "table" | "wide" | "json";
  /** Wall-clock milliseconds since the epoch, for the ages. @default Date.now */
  readonly now?: () => number;
}

/** What to print and the exit status. */
export interface StatusResult {
  /** 0 ready, 1 not ready, 2 the health port cannot be reached or is not one. */
  readonly code: 0 | 1 | 2;
  /** The table, or the JSON. */
  readonly stdout: string;
  /** Why it is not ready, or why the port cannot be read: one line each. */
  readonly stderr: string;
}

/** A timeout as it was probably typed: `3s`, `1.5s`, `250ms`. */
function seconds(ms: number): string {
  return ms >= 1000 ? `${ms / 1000}s` : `${ms}ms`;
}

/** The reason of a failed connect in the words an operator knows (`connection refused`), without `os error 111`. */
function connectReason(e: unknown): string {
  if (e instanceof Deno.errors.ConnectionRefused) return "connection refused";
  const message = e instanceof Error ? e.message : String(e);
  const plain = message.replace(/\s*\(os error \d+\)$/, "");
  return escapeControls(plain.charAt(0).toLowerCase() + plain.slice(1));
}

/** The `/upstreams` list, or a reason why the body is not one. */
function readUpstreams(body: string): UpstreamRow[] | string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return "its /upstreams answer is not JSON";
  }
  const list = (parsed as { upstreams?: unknown } | null)?.upstreams;
  if (!Array.isArray(list) || !list.every((u) => typeof u === "object" && u !== null)) {
    return "its /upstreams answer has no list of upstreams";
  }
  return list as UpstreamRow[];
}

/**
 * Asks the health port and renders the answer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runStatus } from "./status_command.ts";
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const port = listener.addr.port;
 * listener.close();
 * const r = await runStatus({ host: "127.0.0.1", port, timeoutMs: 1000, output: "table" });
 * assert(r.code === 2 && r.stderr === `Cannot reach the health port at 127.0.0.1:${port}: connection refused\n`);
 * ```
 */
export async function runStatus(options: StatusOptions): Promise<StatusResult> {
  const where = endpointKey({ host: options.host, port: options.port });
  const unreachable = (reason: string): StatusResult => ({
    code: 2,
    stdout: "",
    stderr: `Cannot reach the health port at ${where}: ${reason}\n`,
  });
  // One budget for both requests; the first failure ends the other request too, and is the one reported.
  const timeout = new AbortController();
  const timedOut = new DOMException("timeout", "TimeoutError");
  const timer = setTimer(options.timeoutMs, () => timeout.abort(timedOut));
  const failures: unknown[] = [];
  const get = (path: string) =>
    healthGet(options, path, timeout.signal).catch((e: unknown) => {
      failures.push(e);
      timeout.abort();
      return undefined;
    });
  const [upstreams, readyz] = await Promise.all([get("/upstreams"), get("/readyz")]);
  clearTimer(timer);
  if (upstreams === undefined || readyz === undefined) {
    const first = failures[0];
    return unreachable(first === timedOut ? `no answer within ${seconds(options.timeoutMs)}` : connectReason(first));
  }
  if (upstreams.status !== 200) {
    return unreachable(`GET /upstreams answered ${upstreams.status}: is this the proxy's health port?`);
  }
  const list = readUpstreams(upstreams.body);
  if (typeof list === "string") return unreachable(list);
  const ready = readyz.status === 200;
  const why = ready
    ? ""
    : `Not ready: ${escapeControls(readyz.body.trim()) || `GET /readyz answered ${readyz.status}`}\n`;
  if (options.output === "json") return { code: ready ? 0 : 1, stdout: upstreams.body, stderr: why };
  const now = (options.now ?? Date.now)();
  const table = list.length === 0 ? "" : formatStatusTable(list, { now, wide: options.output === "wide" });
  return { code: ready ? 0 : 1, stdout: table, stderr: (list.length === 0 ? "No upstreams\n" : "") + why };
}
