/**
 * Load generators: wrk (keep-alive or `Connection: close`), iperf3 for bulk throughput with a Deno sender/sink when
 * iperf3 is absent, and the start-up probe that loops connect → request until the first relayed response.
 *
 * @module
 */
import { BACKEND_BODY } from "./_configs.ts";
import { type Children, delay, lastLines } from "./_process.ts";

/** What one wrk run measured. */
export interface WrkResult {
  /** Completed requests. */
  readonly requests: number;
  /** Length of the run as wrk measured it. */
  readonly seconds: number;
  /** Requests per second. */
  readonly rps: number;
  /** Median latency, ms. */
  readonly p50Ms: number;
  /** 90th percentile latency, ms. */
  readonly p90Ms: number;
  /** 99th percentile latency, ms. */
  readonly p99Ms: number;
  /** Socket errors (connect, read, write, timeout) plus non-2xx answers. */
  readonly errors: number;
}

/** Options of one wrk run. */
export interface WrkOptions {
  /** What to request. */
  readonly url: string;
  /** Concurrent connections (`-c`). */
  readonly connections: number;
  /** Length of the run (`-d`). */
  readonly seconds: number;
  /** Path of the reporting script (`WRK_REPORT_LUA`). */
  readonly script: string;
  /** `taskset` CPU list for wrk. */
  readonly cpus: string | undefined;
  /** Sends `Connection: close`: one request per connection. */
  readonly close?: boolean;
}

/** Runs wrk with one thread and parses the JSON line its `done` hook prints. */
export async function runWrk(children: Children, opts: WrkOptions): Promise<WrkResult> {
  const argv = [
    "wrk",
    "-t1",
    `-c${opts.connections}`,
    `-d${opts.seconds}s`,
    "--timeout",
    "5s",
    "-s",
    opts.script,
    ...(opts.close ? ["-H", "Connection: close"] : []),
    opts.url,
  ];
  const out = await children.run("wrk", argv, { cpus: opts.cpus, timeoutMs: (opts.seconds + 30) * 1000 });
  const line = out.split("\n").find((l) => l.startsWith("WRK_JSON "));
  if (line === undefined) {
    throw new Error(`Cannot read wrk's report: expected a WRK_JSON line, got '${lastLines(out)}'`);
  }
  const j = JSON.parse(line.slice("WRK_JSON ".length)) as Record<string, number>;
  const n = (k: string) => j[k] ?? 0;
  const seconds = n("duration_us") / 1e6;
  return {
    requests: n("requests"),
    seconds,
    rps: seconds > 0 ? n("requests") / seconds : 0,
    p50Ms: n("p50_us") / 1000,
    p90Ms: n("p90_us") / 1000,
    p99Ms: n("p99_us") / 1000,
    errors: n("connect") + n("read") + n("write") + n("timeout") + n("status"),
  };
}

/** Runs an iperf3 client (one stream, client sends) against `port` and returns the received rate in Gbit/s. */
export async function runIperf(
  children: Children,
  opts: { port: number; seconds: number; cpus: string | undefined },
): Promise<number> {
  const argv = ["iperf3", "-c", "127.0.0.1", "-p", String(opts.port), "-t", String(opts.seconds), "-J"];
  const out = await children.run("iperf3", argv, { cpus: opts.cpus, timeoutMs: (opts.seconds + 30) * 1000 });
  const j = JSON.parse(out) as { end?: { sum_received?: { bits_per_second?: number } }; error?: string };
  const bps = j.end?.sum_received?.bits_per_second;
  if (j.error || bps === undefined) throw new Error(`Cannot read iperf3's result: ${j.error ?? "no sum_received"}`);
  return bps / 1e9;
}

/** Runs the Deno bulk sender (`_bulk.ts send`) against `port` and returns the delivered rate in Gbit/s. */
export async function runDenoBulk(
  children: Children,
  opts: { port: number; seconds: number; cpus: string | undefined },
): Promise<number> {
  const script = new URL("./_bulk.ts", import.meta.url).pathname;
  const argv = [Deno.execPath(), "run", "-A", script, "send", String(opts.port), String(opts.seconds)];
  const out = await children.run("bulk sender", argv, { cpus: opts.cpus, timeoutMs: (opts.seconds + 30) * 1000 });
  const j = JSON.parse(out.trim().split("\n").at(-1) ?? "{}") as { bytes?: number; seconds?: number };
  if (!j.bytes || !j.seconds) throw new Error(`Cannot read the bulk sender's result: '${lastLines(out)}'`);
  return (j.bytes * 8) / j.seconds / 1e9;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const REQUEST = encoder.encode("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");

/**
 * One HTTP request over a fresh connection (HTTPS when `caCert` is given, verified against it); true when the
 * backend's `200 ok` came back through.
 */
export async function requestOnce(port: number, timeoutMs: number, caCert?: string): Promise<boolean> {
  let conn: Deno.Conn | undefined;
  const timer = setTimeout(() => conn?.close(), timeoutMs);
  try {
    conn = caCert === undefined
      ? await Deno.connect({ hostname: "127.0.0.1", port })
      : await Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [caCert] });
    await conn.write(REQUEST);
    const buf = new Uint8Array(4096);
    let text = "";
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += decoder.decode(buf.subarray(0, n));
      if (text.startsWith("HTTP/1.1 200") && text.endsWith(BACKEND_BODY)) return true;
    }
    return false;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch { /* closed by the timer or the peer */ }
  }
}

/**
 * Milliseconds from `spawn()` to the first backend response relayed through the port it returns, looping
 * connect → request (HTTPS when `caCert` is given) until one succeeds, bounded by `timeoutMs`; `undefined` if none
 * came in time.
 */
export async function timeToFirstResponse(
  spawn: () => { port: number },
  opts: { timeoutMs: number; caCert?: string },
): Promise<number | undefined> {
  const t0 = performance.now();
  const { port } = spawn();
  const deadline = t0 + opts.timeoutMs;
  while (performance.now() < deadline) {
    if (await requestOnce(port, Math.max(1, deadline - performance.now()), opts.caCert)) {
      return performance.now() - t0;
    }
    await delay(1);
  }
  return undefined;
}
