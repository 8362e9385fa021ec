/**
 * Leaks a soak found, each held to a per-round heap figure (tests/support/heap_growth.ts): a long-lived object that
 * collects something per event keeps it for the life of the process.
 */
import assert from "node:assert/strict";
import { heapGrowth } from "./support/heap_growth.ts";

const lib = (path: string) => JSON.stringify(new URL(`../lib/${path}`, import.meta.url).href);

Deno.test("heap growth: requests on one keep-alive connection to the health server leave nothing behind", async () => {
  // Each answer is a new 4 KiB: a server that kept something per request (a reaction on the connection's close, holding
  // the answer) would grow by at least that much per request. Prometheus scrapes /metrics this way, for days.
  const growth = await heapGrowth(
    `
    import { HttpServer } from ${lib("net/http_server.ts")};
    let server, conn, n = 0;
    const buf = new Uint8Array(65536);
    const request = new TextEncoder().encode("GET /metrics HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n");
    async function setup() {
      server = new HttpServer({ hostname: "127.0.0.1", port: 0 }, () => ({ status: 200, body: String(n++).padStart(4096, "x") }));
      conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    }
    async function round() {
      await conn.write(request);
      let got = 0, need = Infinity;
      while (got < need) {
        const n = await conn.read(buf.subarray(got));
        if (n === null) throw new Error("the server closed the keep-alive connection");
        got += n;
        const text = new TextDecoder().decode(buf.subarray(0, got));
        const end = text.indexOf("\\r\\n\\r\\n");
        if (end >= 0) need = end + 4 + Number(/content-length: (\\d+)/i.exec(text)[1]);
      }
    }
    async function teardown() {
      conn.close();
      await server.shutdown();
    }
  `,
    { warmup: 1000, rounds: 2000 },
  );
  console.log(`FIGURE heap growth: ${growth.bytesPerRound.toFixed(0)} B per keep-alive request`);
  assert.ok(
    growth.bytesPerRound < 512,
    `the heap grew ${growth.bytesPerRound.toFixed(0)} B per request (${growth.beforeBytes} to ${growth.afterBytes})`,
  );
});
