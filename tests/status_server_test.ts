import assert from "node:assert/strict";
import { statusHandler } from "../lib/status/server.ts";

const handler = (live: boolean, ready: boolean) =>
  statusHandler({
    live: () => Promise.resolve(live),
    ready: () => ready,
    upstreams: () => [],
    metrics: () => "extractedprism_ready 1\n",
  });

Deno.test("health routes answer with the right status codes", async (t) => {
  const cases: [string, string, boolean, boolean, number, string | null][] = [
    ["GET", "/healthz", true, false, 200, "ok\n"],
    ["GET", "/healthz", false, true, 503, "listener is not accepting\n"],
    ["GET", "/readyz", true, true, 200, "ok\n"],
    ["GET", "/readyz", true, false, 503, "no healthy upstream\n"],
    ["HEAD", "/readyz", true, true, 200, ""],
    ["HEAD", "/healthz", false, true, 503, ""],
    ["POST", "/readyz", true, true, 405, "method not allowed\n"],
    ["DELETE", "/upstreams", true, true, 405, "method not allowed\n"],
    ["GET", "/nope", true, true, 404, "not found\n"],
    ["GET", "/upstreams", true, true, 200, '{\n  "upstreams": []\n}\n'],
    ["GET", "/metrics", true, true, 200, "extractedprism_ready 1\n"],
    ["POST", "/metrics", true, true, 405, "method not allowed\n"],
  ];
  for (const [method, path, live, ready, status, body] of cases) {
    await t.step(`${method} ${path} (live ${live}, ready ${ready}) → ${status}`, async () => {
      const res = await handler(live, ready)(new Request(`http://x${path}`, { method }));
      assert.equal(res.status, status);
      assert.equal(await res.text(), body);
      if (status === 405) assert.equal(res.headers.get("allow"), "GET, HEAD");
    });
  }
});

Deno.test("/instance says who this instance is and tells the source it was asked; no other route does", async () => {
  let asked = 0;
  const me = { instance: "a", startedAt: 1 };
  const handle = statusHandler({
    live: () => Promise.resolve(true),
    ready: () => true,
    instance: () => me,
    onInstanceAsked: () => asked++,
    upstreams: () => [],
    metrics: () => "",
  });
  for (const path of ["/healthz", "/readyz", "/upstreams", "/metrics", "/nope"]) {
    await (await handle(new Request(`http://x${path}`))).arrayBuffer();
  }
  await (await handle(new Request("http://x/instance", { method: "POST" }))).arrayBuffer();
  assert.equal(asked, 0, "only a GET or HEAD of /instance");
  const res = await handle(new Request("http://x/instance"));
  assert.deepEqual(await res.json(), me);
  assert.equal(asked, 1);
});
