/**
 * The relay on its own: bytes through buffer tiers, and the tier rule (up on a full read, down on a read that fits
 * twice into the tier below), seen through the pools the pumps give their buffers back to.
 */
import assert from "node:assert/strict";
import { BufferPool } from "../lib/proxy/buffer_pool.ts";
import { type RelayBuffers, relayBuffers, startRelay } from "../lib/proxy/relay.ts";
import { withDeadline } from "./support/deadline.ts";
import { EchoServer, randomBytes, readAll, writeAll } from "./support/net.ts";

/** A client connected through `startRelay` to an echo server; resolves with the client and the relay's end. */
async function relayed(buffers: RelayBuffers, echo: EchoServer, wrap = (c: Deno.Conn) => c) {
  const front = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({ hostname: "127.0.0.1", port: front.addr.port });
  const accepted = await front.accept();
  front.close();
  const upstream = await Deno.connect({ hostname: "127.0.0.1", port: echo.port });
  const ended = Promise.withResolvers<unknown>();
  startRelay(wrap(accepted), wrap(upstream), { buffers, onEnd: (e) => ended.resolve(e) });
  return { client, ended: ended.promise };
}

async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let off = 0;
  while (off < n) {
    const got = await withDeadline(conn.read(out.subarray(off)), `byte ${off} of ${n}`);
    if (got === null) throw new Error(`EOF after ${off} of ${n} bytes`);
    off += got;
  }
  return out;
}

Deno.test("relay: several MiB both ways through the production tiers arrive intact", async () => {
  await using echo = new EchoServer();
  const { client, ended } = await relayed(relayBuffers(), echo);
  const payload = randomBytes(5 * 1024 * 1024 + 123);
  const [, back] = await withDeadline(
    Promise.all([writeAll(client, payload).then(() => client.closeWrite()), readAll(client)]),
    "the echo to end",
  );
  client.close();
  assert.equal(await withDeadline(ended, "the relay to end"), undefined);
  assert.equal(back.length, payload.length);
  assert.ok(back.every((b, i) => b === payload[i]), "echoed bytes differ");
});

/** A pool that counts what the pumps take from it. */
class CountingPool extends BufferPool {
  taken = 0;
  override take(): Uint8Array {
    this.taken++;
    return super.take();
  }
}

Deno.test("relay: a pump climbs the tiers on full reads and steps back down on small ones", async () => {
  await using echo = new EchoServer();
  const tiers = [new CountingPool(8, 8), new CountingPool(32, 8), new CountingPool(128, 8)];
  const { client, ended } = await relayed(tiers, echo);
  // 1000 bytes in one write: reads of 8, then 32, then 128 bytes each fill their buffer.
  const bulk = randomBytes(1000);
  await writeAll(client, bulk);
  assert.deepEqual(await readExactly(client, bulk.length), bulk);
  // Each 3-byte message fits twice into the tier below: 128 → 32, then 32 → 8.
  for (const msg of ["abc", "def", "ghi"]) {
    const bytes = new TextEncoder().encode(msg);
    await writeAll(client, bytes);
    assert.deepEqual(await readExactly(client, bytes.length), bytes);
  }
  await client.closeWrite();
  assert.equal((await withDeadline(readAll(client), "the half-close to come back")).length, 0);
  client.close();
  assert.equal(await withDeadline(ended, "the relay to end"), undefined);
  // Each pump took from every tier on the way up, then from the middle and the smallest on the way down.
  assert.deepEqual(tiers.map((t) => t.taken), [4, 4, 2]);
  // Both ended on the smallest tier and gave their buffers back there.
  assert.equal(tiers[0]!.free, 2);
});

/** `conn` with a `write` that takes at most `max` bytes per call, as a kernel under memory pressure may. */
function shortWrites(conn: Deno.Conn, max: number): Deno.Conn {
  return new Proxy(conn, {
    get(target, prop) {
      if (prop === "write") return (p: Uint8Array) => target.write(p.subarray(0, Math.min(max, p.length)));
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

Deno.test("relay: bytes arrive intact both ways when every write takes at most 7 bytes", async () => {
  await using echo = new EchoServer();
  const { client, ended } = await relayed(relayBuffers(), echo, (c) => shortWrites(c, 7));
  const payload = randomBytes(64 * 1024 + 5);
  const [, back] = await withDeadline(
    Promise.all([writeAll(client, payload).then(() => client.closeWrite()), readAll(client)]),
    "the echo through short writes to end",
  );
  client.close();
  assert.equal(await withDeadline(ended, "the relay to end"), undefined);
  assert.equal(back.length, payload.length);
  assert.ok(back.every((b, i) => b === payload[i]), "echoed bytes differ");
});
