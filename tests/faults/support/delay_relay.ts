/**
 * A delaying TCP relay for the fault suite (the CI kernel has no `netem`): it listens on one address, connects each
 * client to a target, and holds every chunk the target sends back for the current delay before passing it on, in
 * order. So one request/reply round trip through it takes the delay longer, while TCP connects stay instant (as with a
 * distant server whose kernel answers SYNs, but whose replies take time).
 *
 * Commands (JSON lines on stdin, see `_lines.ts`): `{"op":"delay","ms":N}` sets the delay for chunks read from now on.
 * Prints `{"event":"listening","port":P}` once it accepts. Exits when stdin closes.
 *
 * Usage: `delay_relay.ts <listen-address> <listen-port> <target-address> <target-port>`
 *
 * @module
 */
import { emit, num, serveCommands } from "./_lines.ts";

const [listenHost, listenPort, targetHost, targetPort] = Deno.args;
let delayMs = 0;
const live = new Set<Deno.Conn>();

const listener = Deno.listen({ hostname: listenHost ?? "127.0.0.1", port: Number(listenPort ?? 0) });
emit({ event: "listening", port: listener.addr.port });

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let off = 0; off < data.length;) off += await conn.write(data.subarray(off));
}

/** Copies `from` to `to`; with `delayed`, each chunk leaves `delayMs` (as set when it arrived) after it arrived. */
async function pump(from: Deno.Conn, to: Deno.Conn, delayed: boolean): Promise<void> {
  const queue: { data: Uint8Array; due: number }[] = [];
  let readerDone = false;
  let wake: (() => void) | undefined;
  const writer = (async () => {
    for (;;) {
      const item = queue.shift();
      if (item === undefined) {
        if (readerDone) break;
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
        continue;
      }
      const wait = item.due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      await writeAll(to, item.data);
    }
    await to.closeWrite();
  })();
  writer.catch(() => {}); // observed below; this only keeps an early failure from counting as unhandled
  try {
    const buf = new Uint8Array(16 * 1024);
    for (;;) {
      const n = await from.read(buf);
      if (n === null) break;
      queue.push({ data: buf.slice(0, n), due: performance.now() + (delayed ? delayMs : 0) });
      wake?.();
    }
  } finally {
    readerDone = true;
    wake?.();
    await writer;
  }
}

async function relay(client: Deno.Conn): Promise<void> {
  let upstream: Deno.Conn | undefined;
  try {
    upstream = await Deno.connect({ hostname: targetHost ?? "127.0.0.1", port: Number(targetPort) });
    live.add(upstream);
    await Promise.all([pump(client, upstream, false), pump(upstream, client, true)]);
  } catch {
    /* one side went away: close both */
  } finally {
    for (const c of [client, upstream]) {
      if (c === undefined) continue;
      live.delete(c);
      try {
        c.close();
      } catch { /* closed */ }
    }
  }
}

const accepting = (async () => {
  try {
    for (;;) {
      const c = await listener.accept();
      live.add(c);
      relay(c);
    }
  } catch { /* listener closed */ }
})();

await serveCommands((cmd) => {
  if (cmd.op !== "delay") return Promise.reject(new Error(`Cannot run command '${cmd.op}': expected delay`));
  delayMs = num(cmd, "ms");
  return Promise.resolve({ delayMs });
});
listener.close();
for (const c of live) {
  try {
    c.close();
  } catch { /* closed */ }
}
await accepting;
