/**
 * The clients of the fault suite, run inside the proxy's network namespace (the test process cannot enter it).
 * Commands arrive as JSON lines on stdin, each with an `id`; the answer is one JSON line on stdout with the same `id`.
 * Events (`{"event": ...}`) are pushed unasked: `progress` while a load runs, `closed` when a held connection ends.
 * The process exits when stdin closes.
 *
 * Commands:
 * - `{"op":"upstreams"}`: the proxy's `/upstreams` JSON.
 * - `{"op":"healthz"}`: the status code of the proxy's `/healthz`, as `{"status": N}`.
 * - `{"op":"load","count":N,"spacingMs":S,"concurrency":C,"timeoutMs":T,"stopAfterOk":K}`: opens N connections, one
 *   every S ms (at most C at a time), each doing one HTTPS request; answers with one result per connection.
 * - `{"op":"hold","count":N}`: opens N keep-alive connections, one request each, and keeps them open.
 * - `{"op":"ping","hold":I}`: another request on held connection I.
 * - `{"op":"release"}`: closes every held connection.
 * - `{"op":"direct","host":H,"port":P}`: one request straight to an API server, bypassing the proxy.
 *
 * Usage: `load_client.ts <proxy-port> <health-port> <ca-file> <server-name>`
 *
 * @module
 */
import { type Command, emit, message, num, serveCommands } from "./_lines.ts";
import { answeringServer, HttpsConnection, type HttpsTarget, wallNow } from "./https_client.ts";

const MAX_CONNECTIONS = 2000;

/** One client connection's outcome. Times are wall-clock milliseconds ({@linkcode wallNow}). */
export interface ConnectionResult {
  readonly start: number;
  /** Until the TLS handshake with the API server completed: the proxy had found an upstream. */
  readonly handshakeMs: number | null;
  /** Until the reply was complete, or until the failure. */
  readonly totalMs: number;
  readonly ok: boolean;
  readonly server: string | null;
  readonly error: string | null;
}

const [proxyPort, healthPort, caFile, serverName] = Deno.args;
const target: HttpsTarget = {
  hostname: "127.0.0.1",
  port: Number(proxyPort),
  serverName: serverName ?? "kubernetes.default.svc",
  caCert: Deno.readTextFileSync(caFile ?? ""),
};
const held: { conn: HttpsConnection; server: string; closedAt: number | null }[] = [];

async function once(t: HttpsTarget, timeoutMs: number): Promise<ConnectionResult> {
  const start = wallNow();
  const t0 = performance.now();
  const signal = AbortSignal.timeout(timeoutMs);
  let handshakeMs: number | null = null;
  let conn: HttpsConnection | undefined;
  try {
    const opened = await HttpsConnection.open(t, signal);
    conn = opened.conn;
    handshakeMs = opened.handshakeMs;
    const reply = await conn.get("/api/v1/namespaces/default", { keepAlive: false, host: t.serverName }, signal);
    const server = answeringServer(reply);
    return { start, handshakeMs, totalMs: performance.now() - t0, ok: true, server, error: null };
  } catch (e) {
    return { start, handshakeMs, totalMs: performance.now() - t0, ok: false, server: null, error: message(e) };
  } finally {
    conn?.close();
    await conn?.closed;
  }
}

interface LoadCommand {
  readonly id: number;
  readonly count: number;
  readonly spacingMs: number;
  readonly concurrency: number;
  readonly timeoutMs: number;
  readonly stopAfterOk?: number;
}

async function load(cmd: LoadCommand): Promise<ConnectionResult[]> {
  const count = Math.min(cmd.count, MAX_CONNECTIONS);
  const results: ConnectionResult[] = [];
  const running = new Set<Promise<void>>();
  let oks = 0;
  const begin = performance.now();
  for (let i = 0; i < count; i++) {
    if (cmd.stopAfterOk !== undefined && oks >= cmd.stopAfterOk) break;
    const due = begin + i * cmd.spacingMs;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    while (running.size >= Math.max(1, cmd.concurrency)) await Promise.race(running);
    const p = once(target, cmd.timeoutMs).then((r) => {
      results.push(r);
      if (r.ok) oks++;
      running.delete(p);
      emit({ event: "progress", id: cmd.id, done: results.length, ok: oks });
    });
    running.add(p);
  }
  await Promise.all(running);
  return results.sort((a, b) => a.start - b.start);
}

async function hold(count: number, timeoutMs: number): Promise<{ hold: number; server: string }[]> {
  const out: { hold: number; server: string }[] = [];
  for (let i = 0; i < Math.min(count, 200); i++) {
    const signal = AbortSignal.timeout(timeoutMs);
    const { conn } = await HttpsConnection.open(target, signal);
    const server = answeringServer(
      await conn.get("/api/v1/pods", { keepAlive: true, host: target.serverName }, signal),
    );
    const index = held.length;
    const entry = { conn, server, closedAt: null as number | null };
    held.push(entry);
    conn.closed.then((at) => {
      entry.closedAt = at;
      emit({ event: "closed", hold: index, server, at });
    });
    out.push({ hold: index, server });
  }
  return out;
}

async function ping(index: number, timeoutMs: number): Promise<string> {
  const entry = held[index];
  if (entry === undefined) throw new Error(`Cannot ping held connection ${index}: expected 0..${held.length - 1}`);
  const reply = await entry.conn.get(
    "/version",
    { keepAlive: true, host: target.serverName },
    AbortSignal.timeout(timeoutMs),
  );
  return answeringServer(reply);
}

async function release(): Promise<number> {
  const n = held.length;
  for (const h of held) h.conn.close();
  await Promise.all(held.map((h) => h.conn.closed));
  held.length = 0;
  return n;
}

async function handle(cmd: Command): Promise<unknown> {
  switch (cmd.op) {
    case "upstreams": {
      const res = await fetch(`http://127.0.0.1:${healthPort}/upstreams`, { signal: AbortSignal.timeout(2000) });
      return await res.json();
    }
    case "healthz": {
      const res = await fetch(`http://127.0.0.1:${healthPort}/healthz`, { signal: AbortSignal.timeout(5000) });
      await res.body?.cancel();
      return { status: res.status };
    }
    case "load": {
      const stop = cmd.stopAfterOk === undefined ? {} : { stopAfterOk: num(cmd, "stopAfterOk") };
      return {
        results: await load({
          id: cmd.id,
          count: num(cmd, "count"),
          spacingMs: num(cmd, "spacingMs"),
          concurrency: num(cmd, "concurrency", 1),
          timeoutMs: num(cmd, "timeoutMs", 3000),
          ...stop,
        }),
      };
    }
    case "hold":
      return { held: await hold(num(cmd, "count"), num(cmd, "timeoutMs", 3000)) };
    case "ping":
      return { server: await ping(num(cmd, "hold"), num(cmd, "timeoutMs", 2000)) };
    case "release":
      return { released: await release() };
    case "direct": {
      const host = String(cmd.host);
      const port = num(cmd, "port");
      const r = await once({ ...target, hostname: host, port }, num(cmd, "timeoutMs", 3000));
      if (!r.ok) throw new Error(`Cannot reach ${host}:${port} directly: ${r.error}`);
      return { server: r.server };
    }
    default:
      throw new Error(
        `Cannot run command '${cmd.op}': expected upstreams, healthz, load, hold, ping, release or direct`,
      );
  }
}

await serveCommands(handle);
await release();
