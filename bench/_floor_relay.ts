/**
 * The floor: the smallest correct Deno relay, the pattern platform.md measured (one accept loop, pooled 16 KiB
 * buffers given back only after a clean EOF, read → write all → `closeWrite`, `setNoDelay`, no `Promise.all`). No
 * health checks, no choice, no health server, no logging, one backend. The bench runs it with the `start` task's
 * `deno run` and V8 flags, so that the gap between it and extractedprism is what extractedprism's own work costs.
 *
 * With a CA file and a server name it is also the floor of the job: the relay plus what the issue requires of any
 * Deno proxy here, a readyz probe on Deno's TLS. Once a second it sends `GET /readyz` to the backend on one kept-alive
 * TLS connection, verified with the CA for that name, the way extractedprism's probe does (and on Deno's core timer,
 * as extractedprism's clock; the global `setTimeout` would load Node's timers).
 *
 * Usage: deno run --allow-net=127.0.0.1 [--allow-read=CA] bench/_floor_relay.ts <listen port> <backend port>
 * [<CA file> <server name>]
 *
 * @module
 */

const [listenPort, backendPort] = Deno.args.slice(0, 2).map(Number);
const [probeCaFile, probeServerName] = Deno.args.slice(2);
if (
  !Number.isInteger(listenPort) || !Number.isInteger(backendPort) || Deno.args.length > 4 ||
  (probeCaFile !== undefined && probeServerName === undefined)
) {
  console.error("usage: _floor_relay.ts <listen port> <backend port> [<CA file> <server name>]");
  Deno.exit(2);
}

const free: Uint8Array[] = [];

function closeQuietly(...conns: Deno.Conn[]): void {
  for (const c of conns) {
    try {
      c.close();
    } catch { /* closed */ }
  }
}

async function pump(src: Deno.Conn, dst: Deno.Conn, done: () => void): Promise<void> {
  const buf = free.pop() ?? new Uint8Array(16 * 1024);
  try {
    for (;;) {
      const n = await src.read(buf);
      if (n === null) break;
      let off = 0;
      while (off < n) off += await dst.write(buf.subarray(off, n));
    }
    if (free.length < 4096) free.push(buf);
    await dst.closeWrite().catch(() => {});
    done();
  } catch {
    // Reset or closed: end both directions now (the other pump's read fails and it ends too).
    closeQuietly(src, dst);
  }
}

async function relay(client: Deno.TcpConn): Promise<void> {
  let upstream: Deno.TcpConn;
  try {
    upstream = await Deno.connect({ hostname: "127.0.0.1", port: backendPort! });
  } catch {
    client.close();
    return;
  }
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  let open = 2;
  const done = () => {
    if (--open === 0) closeQuietly(client, upstream);
  };
  void pump(client, upstream, done);
  void pump(upstream, client, done);
}

/**
 * Deno's core timers, reached as lib/clock.ts reaches them, else the global ones (which load Node's timers). Not
 * imported from lib/clock.ts: the floor stays one module, and every module the floor loads is memory it would count.
 */
type Timers = { every(ms: number, fn: () => void): void; after(ms: number, fn: () => void): () => void };
function timers(): Timers {
  const internal = (Deno as unknown as { internal?: unknown }).internal;
  const core = typeof internal === "symbol"
    ? (Deno as unknown as Record<symbol, { core?: Record<string, unknown> } | undefined>)[internal]?.core
    : undefined;
  const create = core?.createTimer as
    | ((fn: () => void, ms: number, args: undefined, repeat: boolean, refed: boolean) => unknown)
    | undefined;
  const cancel = core?.cancelTimer as ((id: unknown) => void) | undefined;
  if (create === undefined || cancel === undefined) {
    return {
      every: (ms, fn) => void setInterval(fn, ms),
      after: (ms, fn) => {
        const id = setTimeout(fn, ms);
        return () => clearTimeout(id);
      },
    };
  }
  return {
    every: (ms, fn) => void create(fn, ms, undefined, true, true),
    after: (ms, fn) => {
      const id = create(fn, ms, undefined, false, true);
      return () => cancel(id);
    },
  };
}

/**
 * The probe: one `GET /readyz` a second on a kept-alive TLS connection; a failure drops the connection. The first
 * runs before the relay listens, so that a listening floor has probed once (as a ready extractedprism has), and one
 * that fails ends the process: a floor that never spoke TLS would measure nothing.
 */
async function startProbing(caCerts: string[], serverName: string): Promise<void> {
  const request = new TextEncoder().encode(`GET /readyz HTTP/1.1\r\nHost: ${serverName}\r\n\r\n`);
  const buf = new Uint8Array(4096);
  let conn: Deno.TlsConn | undefined;
  let busy = false;
  const timer = timers();
  // A probe that has no answer within 2 s has failed: its connection is closed, which ends the pending read.
  const once = async () => {
    const stop = timer.after(2000, () => {
      if (conn) closeQuietly(conn);
    });
    try {
      await exchange();
    } finally {
      stop();
    }
  };
  const exchange = async () => {
    if (!conn) {
      const tcp = await Deno.connect({ hostname: "127.0.0.1", port: backendPort! });
      conn = await Deno.startTls(tcp, { hostname: serverName, caCerts });
    }
    await conn.write(request);
    // The head and a Content-Length body; the backend's answer is short.
    let text = "";
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) throw new Error("EOF");
      text += new TextDecoder().decode(buf.subarray(0, n));
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) continue;
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(text)?.[1] ?? 0);
      if (text.length >= end + 4 + length) break;
    }
    if (!text.startsWith("HTTP/1.1 200")) throw new Error(text.split("\r\n")[0]);
  };
  try {
    await once();
  } catch (e) {
    console.error(`The floor's first readyz probe failed: ${e instanceof Error ? e.message : String(e)}`);
    Deno.exit(1);
  }
  timer.every(1000, () => {
    if (busy) return;
    busy = true;
    once().catch(() => {
      if (conn) closeQuietly(conn);
      conn = undefined;
    }).finally(() => busy = false);
  });
}

if (probeCaFile !== undefined) await startProbing([Deno.readTextFileSync(probeCaFile)], probeServerName!);

const listener = Deno.listen({ hostname: "127.0.0.1", port: listenPort! });
for (;;) {
  try {
    void relay(await listener.accept());
  } catch {
    await new Promise((r) => setTimeout(r, 10));
  }
}
