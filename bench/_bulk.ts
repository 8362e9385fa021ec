/**
 * The bulk-throughput fallback when iperf3 is absent, run as its own process (pinned like iperf3 would be):
 *
 * - `deno run -A bench/_bulk.ts sink PORT`: accepts connections on 127.0.0.1:PORT, reads and discards everything,
 *   closes each connection at EOF.
 * - `deno run -A bench/_bulk.ts send PORT SECONDS`: writes 128 KiB chunks for SECONDS, half-closes, waits until the
 *   sink has closed (every byte delivered) and prints `{"bytes":N,"seconds":S}`.
 *
 * @module
 */

async function sink(port: number): Promise<void> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port });
  for await (const conn of listener) {
    (async () => {
      const buf = new Uint8Array(256 * 1024);
      try {
        while ((await conn.read(buf)) !== null) { /* discard */ }
      } catch { /* a health probe that reset, or the sender gone */ }
      try {
        conn.close();
      } catch { /* closed */ }
    })();
  }
}

async function send(port: number, seconds: number): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const chunk = new Uint8Array(128 * 1024).fill(0x61);
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  let bytes = 0;
  while (performance.now() < end) {
    const n = await conn.write(chunk);
    bytes += n;
  }
  await conn.closeWrite();
  // The sink closes at EOF: once our read ends, every byte has arrived.
  while ((await conn.read(new Uint8Array(1))) !== null) { /* nothing is sent back */ }
  const elapsed = (performance.now() - t0) / 1000;
  conn.close();
  console.log(JSON.stringify({ bytes, seconds: elapsed }));
}

if (import.meta.main) {
  const [mode, port, seconds] = Deno.args;
  if (mode === "sink" && port) await sink(Number(port));
  else if (mode === "send" && port && seconds) await send(Number(port), Number(seconds));
  else {
    console.error(`Cannot run bulk '${Deno.args.join(" ")}': expected 'sink PORT' or 'send PORT SECONDS'`);
    Deno.exit(2);
  }
}
