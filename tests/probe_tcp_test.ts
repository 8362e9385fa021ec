import assert from "node:assert/strict";
import { TcpProbe } from "../lib/upstream/probe_tcp.ts";

const END = { host: "127.0.0.1", port: 1 };

Deno.test("a TCP probe whose connect ignores its signal still ends at the timeout, and a late connection is closed", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const late = Promise.withResolvers<Deno.Conn>();
  const probe = new TcpProbe(() => late.promise);
  const ctrl = new AbortController();
  const result = probe.check(END, ctrl.signal);
  ctrl.abort(new DOMException("probe timeout", "TimeoutError"));
  assert.deepEqual(await result, { ok: false, reason: "timeout" });
  // The connect completes after all: the probe must not leak it (the resource sanitizer checks).
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  using accepted = await listener.accept();
  late.resolve(conn);
  assert.equal(await accepted.read(new Uint8Array(1)), null, "closed by the probe");
});
