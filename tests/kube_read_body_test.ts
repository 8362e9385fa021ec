import assert from "node:assert/strict";
import { readBodyLimited, readStreamLimited } from "../lib/kubernetes/read_body.ts";

/** A stream of `total` bytes in chunks of `chunk`, recording what was pulled and whether it was cancelled. */
function source(total: number, chunk: number) {
  const state = { pulled: 0, cancelled: false };
  const stream = new ReadableStream<Uint8Array>({
    pull(ctrl) {
      if (state.pulled >= total) return ctrl.close();
      const n = Math.min(chunk, total - state.pulled);
      state.pulled += n;
      ctrl.enqueue(new Uint8Array(n).fill(0x61));
    },
    cancel() {
      state.cancelled = true;
    },
  }, { highWaterMark: 0 });
  return { stream, state };
}

Deno.test("readStreamLimited takes exactly max bytes and refuses max + 1, cancelling the stream", async () => {
  const ok = source(1000, 300);
  assert.equal((await readStreamLimited(ok.stream, 1000, "read it")).length, 1000);
  const over = source(1001, 300);
  await assert.rejects(readStreamLimited(over.stream, 1000, "read it"), {
    message: "Cannot read it: expected at most 1000 bytes, found more",
  });
  assert.equal(over.state.cancelled, true);
  assert.equal(over.state.pulled, 1001);
});

Deno.test("readBodyLimited refuses a declared content-length over the bound without reading", async () => {
  const s = source(10_000, 100);
  const res = new Response(s.stream, { headers: { "content-length": "10000" } });
  await assert.rejects(readBodyLimited(res, 1000, "list '/x'"), {
    message: "Cannot list '/x': expected a response body of at most 1000 bytes, found more",
  });
  assert.equal(s.state.pulled, 0);
  assert.equal(s.state.cancelled, true);
});

Deno.test("readBodyLimited decodes UTF-8 split across chunks and reads an empty body as ''", async () => {
  const bytes = new TextEncoder().encode("héllo wörld 🎉");
  const chunks = [...bytes].map((b) => new Uint8Array([b]));
  let i = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(ctrl) {
      const c = chunks[i++];
      if (c === undefined) ctrl.close();
      else ctrl.enqueue(c);
    },
  });
  assert.equal(await readBodyLimited(new Response(stream), 1000, "read it"), "héllo wörld 🎉");
  assert.equal(await readBodyLimited(new Response(null, { status: 204 }), 1000, "read it"), "");
});
