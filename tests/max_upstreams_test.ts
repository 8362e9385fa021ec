/**
 * 10,000 discovered endpoints must not take the node off the API. The pool keeps
 * --max-upstreams of them (static ones first), says how many it dropped, warns once per change, and the healthy static
 * upstream stays healthy and relays.
 */
import assert from "node:assert/strict";
import { ProxyApp } from "../lib/app.ts";
import { type Endpoint, endpointKey } from "../lib/endpoint.ts";
import { LogCapture } from "./support/log_capture.ts";
import { ManualProvider } from "./support/manual_provider.ts";
import { EchoServer, freePort, testConfig, waitFor, writeAll } from "./support/net.ts";

/** `n` loopback endpoints (127.1.x.y) on a port nobody listens on. */
function deadEndpoints(n: number, port: number): Endpoint[] {
  return Array.from({ length: n }, (_, i) => ({ host: `127.1.${i >> 8}.${i & 255}`, port }));
}

Deno.test("10,000 discovered endpoints: the pool keeps 64 with the static one, says 9,937 dropped, and relays", async () => {
  await using logs = await LogCapture.start();
  await using api = new EchoServer();
  const discovery = new ManualProvider("discovery");
  await using app = ProxyApp.start(testConfig([api.endpoint], { healthIntervalMs: 200, healthTimeoutMs: 100 }));
  app.feed([discovery]);
  const port = freePort();
  const discovered = deadEndpoints(10_000, port);
  discovery.push(discovered);
  await waitFor(() => app.pool.upstreams().length > 1, 10_000, "the discovered set");
  const keys = app.pool.upstreams().map((u) => u.key);
  assert.equal(keys.length, 64);
  assert.ok(keys.includes(endpointKey(api.endpoint)), "the static endpoint is kept");
  const expected = [endpointKey(api.endpoint), ...discovered.map(endpointKey).sort().slice(0, 63)];
  assert.deepEqual([...keys].sort(), expected.sort(), "the rest in address order");
  assert.equal(app.pool.dropped, 10_001 - 64);

  await waitFor(() => app.pool.get(endpointKey(api.endpoint))?.state === "healthy", 10_000, "static upstream healthy");
  const res = await fetch(`http://127.0.0.1:${app.healthAddr.port}/metrics`);
  const text = await res.text();
  assert.match(text, /^extractedprism_upstreams_dropped 9937$/m);
  const ready = await fetch(`http://127.0.0.1:${app.healthAddr.port}/readyz`);
  await ready.body?.cancel();
  assert.equal(ready.status, 200);

  // The same count again (one endpoint swapped for one that sorts first): no second warning.
  const swapped = [{ host: "127.0.0.2", port }, ...discovered.slice(1)];
  discovery.push(swapped);
  await waitFor(() => app.pool.get(`127.0.0.2:${port}`) !== undefined, 10_000, "the swapped set");
  assert.equal(app.pool.dropped, 9937);
  const warned = () => logs.messages("warning").filter((m) => m.includes("--max-upstreams"));
  assert.equal(warned().length, 1, warned().join("\n"));
  // A different count: one more warning.
  discovery.push([...swapped, { host: "127.2.0.1", port }]);
  await waitFor(() => app.pool.dropped === 9938, 10_000, "one more dropped");
  assert.equal(warned().length, 2);

  for (let i = 0; i < 3; i++) {
    const c = await Deno.connect({ hostname: "127.0.0.1", port: app.addr.port });
    try {
      await writeAll(c, new TextEncoder().encode("x"));
      const buf = new Uint8Array(1);
      assert.equal(await c.read(buf), 1, "relayed to the healthy static upstream");
    } finally {
      c.close();
    }
  }
  assert.equal(app.pool.get(endpointKey(api.endpoint))?.state, "healthy");
  assert.equal(app.pool.get(endpointKey(api.endpoint))?.totalConnections, 3);
});
