import assert from "node:assert/strict";
import { requestFor } from "../lib/net/http_server.ts";
import { statusHandler } from "../lib/status/server.ts";

const handler = (live: boolean, ready: boolean) =>
  statusHandler({
    live: () => Promise.resolve(live),
    ready: () => ready,
    upstreams: () => [],
    metrics: () => "extractedprism_ready 1\n",
  });

Deno.test("health routes answer with the right status codes", async (t) => {
  const cases: [string, string, boolean, boolean, number, string][] = [
    ["GET", "/healthz", true, false, 200, "ok\n"],
    ["GET", "/healthz", false, true, 503, "listener is not accepting\n"],
    ["GET", "/readyz", true, true, 200, "ok\n"],
    ["GET", "/readyz", true, false, 503, "no healthy upstream\n"],
    // The handler answers HEAD as GET; the server drops the body (tests/http_server_test.ts).
    ["HEAD", "/readyz", true, true, 200, "ok\n"],
    ["HEAD", "/healthz", false, true, 503, "listener is not accepting\n"],
    ["POST", "/readyz", true, true, 405, "method not allowed\n"],
    ["DELETE", "/upstreams", true, true, 405, "method not allowed\n"],
    ["GET", "/nope", true, true, 404, "not found\n"],
    ["GET", "/upstreams", true, true, 200, '{\n  "upstreams": []\n}\n'],
    ["GET", "/metrics", true, true, 200, "extractedprism_ready 1\n"],
    ["POST", "/metrics", true, true, 405, "method not allowed\n"],
  ];
  for (const [method, path, live, ready, status, body] of cases) {
    await t.step(`${method} ${path} (live ${live}, ready ${ready}) → ${status}`, async () => {
      const answer = await handler(live, ready)(requestFor(path, method));
      assert.equal(answer.status, status);
      assert.equal(answer.body, body);
      if (status === 405) assert.equal(answer.headers?.["allow"], "GET, HEAD");
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
    await handle(requestFor(path));
  }
  await handle(requestFor("/instance", "POST"));
  assert.equal(asked, 0, "only a GET or HEAD of /instance");
  const answer = await handle(requestFor("/instance"));
  assert.deepEqual(JSON.parse(answer.body ?? ""), me);
  assert.equal(asked, 1);
});
