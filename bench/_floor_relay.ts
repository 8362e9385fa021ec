/**
 * The floor: the smallest correct Deno relay, the pattern platform.md measured (one accept loop, pooled 16 KiB
 * buffers given back only after a clean EOF, read → write all → `closeWrite`, `setNoDelay`, no `Promise.all`). No
 * health checks, no choice, no health server, no logging, one backend. The bench runs it with the `start` task's
 * `deno run` and V8 flags, so that the gap between it and extractedprism is what extractedprism's own work costs.
 *
 * Usage: deno run --allow-net=127.0.0.1 bench/_floor_relay.ts <listen port> <backend port>
 *
 * @module
 */

const [listenPort, backendPort] = Deno.args.map(Number);
if (!Number.isInteger(listenPort) || !Number.isInteger(backendPort)) {
  console.error("usage: _floor_relay.ts <listen port> <backend port>");
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

const listener = Deno.listen({ hostname: "127.0.0.1", port: listenPort! });
for (;;) {
  try {
    void relay(await listener.accept());
  } catch {
    await new Promise((r) => setTimeout(r, 10));
  }
}
