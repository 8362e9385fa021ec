/**
 * Leaks a soak found, each held to a per-round heap figure (tests/support/heap_growth.ts): a long-lived object that
 * collects something per event keeps it for the life of the process.
 */
import assert from "node:assert/strict";
import { type HeapGrowth, heapGrowth } from "./support/heap_growth.ts";

const lib = (path: string) => JSON.stringify(new URL(`../lib/${path}`, import.meta.url).href);
const support = (path: string) => JSON.stringify(new URL(`./support/${path}`, import.meta.url).href);
/** Above this a scenario leaks: the leaks these tests stand for kept 300 B to several KiB per round. */
const MAX_BYTES_PER_ROUND = 100;

/**
 * Runs `scenario` (see {@linkcode heapGrowth}), prints its figure, and fails when the heap grew by
 * `MAX_BYTES_PER_ROUND` or more per `round` (a noun, for the messages).
 */
async function assertFlat(
  round: string,
  scenario: string,
  options: { readonly warmup: number; readonly rounds: number },
): Promise<void> {
  const growth: HeapGrowth = await heapGrowth(scenario, options);
  const per = growth.bytesPerRound.toFixed(1);
  console.log(`FIGURE heap growth: ${per} B per ${round}`);
  assert.ok(
    growth.bytesPerRound < MAX_BYTES_PER_ROUND,
    `the heap grew ${per} B per ${round} (${growth.beforeBytes} to ${growth.afterBytes} B)`,
  );
}

Deno.test("heap growth: requests on one keep-alive connection to the health server leave nothing behind", async () => {
  // Each answer is a new 4 KiB: a server that kept something per request (a reaction on the connection's close, holding
  // the answer) would grow by at least that much per request. Prometheus scrapes /metrics this way, for days.
  await assertFlat(
    "keep-alive request",
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
});

Deno.test("heap growth: endpoint sets through the merge of providers leave nothing behind", async () => {
  // The merge once raced each wait against a promise that settles only at the stop: ~330 B per endpoint change.
  await assertFlat(
    "merged endpoint set",
    `
    import { mergeProviders } from ${lib("discovery/merge.ts")};
    import { ManualProvider } from ${support("manual_provider.ts")};
    const provider = new ManualProvider();
    const stop = new AbortController();
    const merged = mergeProviders([provider], stop.signal)[Symbol.asyncIterator]();
    async function round(i) {
      provider.push([{ host: "127.0.0.1", port: 1 + (i % 60000) }]);
      if ((await merged.next()).done) throw new Error("the merge ended");
    }
    async function teardown() {
      stop.abort();
      await merged.return();
    }
  `,
    { warmup: 2000, rounds: 5000 },
  );
});

Deno.test("heap growth: watch events through listWatch's snapshots leave nothing behind", async () => {
  // listWatch's loop once raced each wait the same way. The transport is a stub: one LIST, then one watch stream
  // that the scenario writes an event to per round.
  await assertFlat(
    "watch event",
    `
    import { listWatch } from ${lib("kubernetes/list_watch.ts")};
    const encoder = new TextEncoder();
    let send;
    const transport = {
      request(req) {
        if (!req.path.includes("watch=1")) {
          return Promise.resolve(Response.json({ metadata: { resourceVersion: "1" }, items: [] }));
        }
        const body = new ReadableStream({
          start(c) {
            send = (line) => c.enqueue(encoder.encode(line + "\\n"));
            req.signal?.addEventListener("abort", () => c.error(new Error("aborted")), { once: true });
          },
        });
        return Promise.resolve(new Response(body));
      },
      close() {},
    };
    const stop = new AbortController();
    const snapshots = listWatch({ transport, path: "/api/v1/namespaces/default/pods" }, stop.signal)[Symbol.asyncIterator]();
    async function setup() {
      await snapshots.next();
      while (send === undefined) await new Promise((r) => setTimeout(r, 1));
    }
    async function round(i) {
      const rv = String(i + 2);
      send(JSON.stringify({ type: "MODIFIED", object: { metadata: { name: "a", namespace: "default", resourceVersion: rv } } }));
      const r = await snapshots.next();
      if (r.done || r.value.resourceVersion !== rv) throw new Error("expected the snapshot of resourceVersion " + rv);
    }
    async function teardown() {
      stop.abort();
      await snapshots.return();
    }
  `,
    { warmup: 2000, rounds: 5000 },
  );
});
