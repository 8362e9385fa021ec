/**
 * Small socket helpers for tests: an echo server, reading until EOF, and a test proxy config on port 0.
 *
 * @module
 */
import type { ProxyConfig } from "../../lib/config/proxy_flags.ts";
import type { Endpoint } from "../../lib/endpoint.ts";
import { WAIT_MS, withDeadline } from "./deadline.ts";

/**
 * A TCP echo server on 127.0.0.1 that echoes until EOF, then half-closes back; with `echo` false it only reads (a
 * silent peer that never answers).
 */
export class EchoServer {
  readonly listener: Deno.TcpListener;
  readonly conns = new Set<Deno.TcpConn>();
  readonly #done: Promise<void>;
  accepted = 0;

  readonly #echoes: boolean;

  constructor(port = 0, hostname = "127.0.0.1", echo = true) {
    this.#echoes = echo;
    this.listener = Deno.listen({ hostname, port });
    this.#done = this.#serve();
  }

  get port(): number {
    return this.listener.addr.port;
  }

  get endpoint(): Endpoint {
    return { host: this.listener.addr.hostname, port: this.port };
  }

  async #serve(): Promise<void> {
    const tasks: Promise<void>[] = [];
    try {
      for (;;) {
        const c = await this.listener.accept();
        this.accepted++;
        this.conns.add(c);
        tasks.push(this.#echo(c));
      }
    } catch { /* listener closed */ }
    await Promise.all(tasks);
  }

  async #echo(c: Deno.TcpConn): Promise<void> {
    const buf = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await c.read(buf);
        if (n === null) break;
        let off = 0;
        while (this.#echoes && off < n) off += await c.write(buf.subarray(off, n));
      }
      if (this.#echoes) await c.closeWrite();
    } catch { /* peer gone */ }
    try {
      c.close();
    } catch { /* closed */ }
    this.conns.delete(c);
  }

  /** Closes the listener and every connection. */
  async close(): Promise<void> {
    try {
      this.listener.close();
    } catch { /* closed */ }
    for (const c of this.conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await this.#done;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Reads until EOF; rejects when EOF has not come within `ms`. */
export function readAll(conn: Deno.Conn, ms = WAIT_MS): Promise<Uint8Array> {
  return withDeadline(readToEnd(conn), "EOF", ms);
}

async function readToEnd(conn: Deno.Conn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buf = new Uint8Array(64 * 1024);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    chunks.push(buf.slice(0, n));
    total += n;
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** Writes all bytes; rejects when the peer has not taken them within `ms`. */
export function writeAll(conn: Deno.Conn, data: Uint8Array, ms = WAIT_MS): Promise<void> {
  return withDeadline(writeEvery(conn, data), `${data.length} bytes to be written`, ms);
}

async function writeEvery(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

/** Random bytes of any length (crypto.getRandomValues is limited to 64 KiB per call). */
export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let off = 0; off < n; off += 65536) crypto.getRandomValues(out.subarray(off, Math.min(n, off + 65536)));
  return out;
}

/** A port that was free a moment ago (for an upstream that should refuse). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = l.addr.port;
  l.close();
  return p;
}

/** A proxy config for in-process tests: loopback, port 0, fast probes. */
export function testConfig(endpoints: readonly Endpoint[], overrides: Partial<ProxyConfig> = {}): ProxyConfig {
  return {
    bindAddress: "127.0.0.1",
    bindPort: 0,
    healthBindAddress: "127.0.0.1",
    healthPort: 0,
    endpoints,
    healthIntervalMs: 50,
    healthTimeoutMs: 40,
    healthCheck: "tcp",
    healthCaFile: undefined,
    healthTlsServerName: "kubernetes.default.svc",
    healthClientCert: undefined,
    healthClientKey: undefined,
    healthTokenFile: undefined,
    upstreamSelection: "latency",
    closeOnUnhealthy: true,
    maxUpstreams: 64,
    healthRise: 2,
    healthFall: 2,
    dialTimeoutMs: 1000,
    hedgeDelayMs: 100,
    drainTimeoutMs: 1000,
    enableDiscovery: false,
    kubeconfig: undefined,
    kubeContext: undefined,
    discoveryTlsServerName: "kubernetes.default.svc",
    stateFile: undefined,
    logLevel: "error",
    logFormat: "json",
    ...overrides,
  };
}

/** Polls `cond` every 10 ms until it holds, failing after `timeoutMs`. */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = "condition",
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  // A condition that never settles (a read that hangs) must not outlive the deadline either.
  const check = () => withDeadline(Promise.resolve(cond()), what, Math.max(1, deadline - performance.now()));
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
