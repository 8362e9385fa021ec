/**
 * The soak run's clients, all through the proxy to loopback backends, over TLS verified against the test CA (as
 * Kubernetes clients verify the API server): short connections (connect, `GET /`, read `200 ok`, close) and
 * long-lived watch-like streams (a line each way every second or so, re-opened now and then). Every loop ends by
 * itself at its deadline, after at most `maxCount` iterations, or when `signal` aborts.
 *
 * @module
 */
import { sleep } from "../lib/clock.ts";
import { writeAll } from "../tests/support/net.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const REQUEST = encoder.encode("GET / HTTP/1.1\r\nHost: kubernetes.default.svc\r\nConnection: close\r\n\r\n");

/** Where and how the clients connect. */
export interface ClientTarget {
  /** The proxy's port on 127.0.0.1. */
  readonly port: number;
  /** The CA the backends' certificate chains to. */
  readonly caCert: string;
  /** The name in the backends' certificate. */
  readonly serverName: string;
}

/** Counters the loops add to. */
export interface ClientCounts {
  churnOk: number;
  churnFailed: number;
  streamsOpened: number;
  streamsCut: number;
  streamsFailed: number;
  streamEchoes: number;
  streamMismatches: number;
  /** The last few failure messages, for the report. */
  readonly failures: string[];
}

/** Fresh zero counters. */
export function clientCounts(): ClientCounts {
  return {
    churnOk: 0,
    churnFailed: 0,
    streamsOpened: 0,
    streamsCut: 0,
    streamsFailed: 0,
    streamEchoes: 0,
    streamMismatches: 0,
    failures: [],
  };
}

function noteFailure(counts: ClientCounts, what: string, e: unknown): void {
  counts.failures.push(`${new Date().toISOString()} ${what}: ${e instanceof Error ? e.message : String(e)}`);
  if (counts.failures.length > 20) counts.failures.shift();
}

/** Resolves after `ms` or at once when `signal` aborts (never rejects): the project's `sleep`, made quiet. */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return sleep(ms, signal).catch(() => {});
}

/** Opens a TLS connection through the proxy; closes it (and throws) past `timeoutMs`. */
async function open(target: ClientTarget, timeoutMs: number): Promise<Deno.TlsConn> {
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port: target.port });
  const timer = setTimeout(() => {
    try {
      tcp.close();
    } catch { /* closed */ }
  }, timeoutMs);
  try {
    const tls = await Deno.startTls(tcp, { hostname: target.serverName, caCerts: [target.caCert] });
    await tls.handshake();
    return tls;
  } catch (e) {
    try {
      tcp.close();
    } catch { /* closed */ }
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/** One short connection: connect, TLS, `GET /`, read until close; throws unless `200 ok` came back in `timeoutMs`. */
export async function shortRequest(target: ClientTarget, timeoutMs: number): Promise<void> {
  const t0 = performance.now();
  const conn = await open(target, timeoutMs);
  const timer = setTimeout(() => {
    try {
      conn.close();
    } catch { /* closed */ }
  }, Math.max(1, timeoutMs - (performance.now() - t0)));
  try {
    await writeAll(conn, REQUEST);
    const buf = new Uint8Array(4096);
    let text = "";
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += decoder.decode(buf.subarray(0, n));
      if (text.length > 65536) break;
    }
    if (!text.startsWith("HTTP/1.1 200 ") || !text.endsWith("\r\n\r\nok")) {
      throw new Error(`unexpected response '${text.slice(0, 40).replace(/\r\n/g, " ")}'`);
    }
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

/** Options of the churn loop. */
export interface ChurnOptions {
  /** Concurrent workers. */
  readonly workers: number;
  /** Target rate over all workers, connections per second. */
  readonly perSecond: number;
  /** Timeout of one connection. */
  readonly timeoutMs: number;
  /** When the loop stops (performance.now() value). */
  readonly deadline: number;
  /** Upper bound on connections per worker. */
  readonly maxCount: number;
}

/** Short connections at about `perSecond`, from `workers` workers, until the deadline. */
export async function churn(
  target: ClientTarget,
  opts: ChurnOptions,
  counts: ClientCounts,
  signal: AbortSignal,
): Promise<void> {
  const gapMs = (1000 * opts.workers) / opts.perSecond;
  const worker = async () => {
    for (let i = 0; i < opts.maxCount && !signal.aborted && performance.now() < opts.deadline; i++) {
      const t0 = performance.now();
      try {
        await shortRequest(target, opts.timeoutMs);
        counts.churnOk++;
      } catch (e) {
        if (signal.aborted) return;
        counts.churnFailed++;
        noteFailure(counts, "short connection", e);
      }
      await pause(Math.max(0, gapMs - (performance.now() - t0)), signal);
    }
  };
  await Promise.all(Array.from({ length: opts.workers }, worker));
}

/** Options of the stream loops. */
export interface StreamOptions {
  /** Streams held open at once. */
  readonly streams: number;
  /** A stream's planned lifetime is drawn from this range, ms; then it is closed and re-opened. */
  readonly lifetimeMs: readonly [number, number];
  /** The client sends a line this often. */
  readonly lineEveryMs: number;
  /** When the loops stop (performance.now() value). */
  readonly deadline: number;
  /** Upper bound on streams opened per loop. */
  readonly maxCount: number;
  /** Random numbers in [0, 1). */
  readonly random: () => number;
}

/**
 * One watch-like stream: opens it, sends a numbered line every `lineEveryMs` and checks each echo, until its planned
 * end (returns "planned") or until the proxy ends it (returns "cut").
 */
async function oneStream(
  target: ClientTarget,
  id: string,
  lifetimeMs: number,
  opts: StreamOptions,
  counts: ClientCounts,
  signal: AbortSignal,
): Promise<"planned" | "cut"> {
  const conn = await open(target, 5000);
  counts.streamsOpened++;
  const end = Math.min(performance.now() + lifetimeMs, opts.deadline);
  const sent: string[] = [];
  let cut = false;
  const reading = (async () => {
    const buf = new Uint8Array(16 * 1024);
    let rest = "";
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        rest += decoder.decode(buf.subarray(0, n));
        let nl: number;
        while ((nl = rest.indexOf("\n")) >= 0) {
          const line = rest.slice(0, nl);
          rest = rest.slice(nl + 1);
          if (!line.startsWith("e ")) continue; // the server's own ticks
          counts.streamEchoes++;
          if (line.slice(2) !== sent.shift()) counts.streamMismatches++;
        }
        if (rest.length > 65536) break;
      }
    } catch { /* closed by us or by the proxy */ }
    cut = true;
  })();
  try {
    await writeAll(conn, encoder.encode("STREAM\n"));
    for (let seq = 0; !cut && !signal.aborted && performance.now() < end; seq++) {
      const line = `${id} ${seq} ${"x".repeat(64)}`;
      sent.push(line);
      await writeAll(conn, encoder.encode(`${line}\n`));
      await pause(opts.lineEveryMs, signal);
    }
  } catch { /* the proxy closed it while we wrote */ }
  const wasCut = cut;
  try {
    conn.close();
  } catch { /* closed */ }
  await reading;
  return wasCut ? "cut" : "planned";
}

/** `opts.streams` loops, each holding one stream open and re-opening it after it ends, until the deadline. */
export async function streams(
  target: ClientTarget,
  opts: StreamOptions,
  counts: ClientCounts,
  signal: AbortSignal,
): Promise<void> {
  const loop = async (k: number) => {
    for (let i = 0; i < opts.maxCount && !signal.aborted && performance.now() < opts.deadline; i++) {
      const [lo, hi] = opts.lifetimeMs;
      try {
        const how = await oneStream(target, `s${k}.${i}`, lo + opts.random() * (hi - lo), opts, counts, signal);
        if (how === "cut" && !signal.aborted && performance.now() < opts.deadline) counts.streamsCut++;
      } catch (e) {
        if (signal.aborted) return;
        counts.streamsFailed++;
        noteFailure(counts, "stream open", e);
      }
      await pause(500, signal);
    }
  };
  await Promise.all(Array.from({ length: opts.streams }, (_, k) => loop(k)));
}
