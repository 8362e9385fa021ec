/**
 * Deno 2.9's `Deno.connect` creates the connection, then throws if its signal aborted meanwhile: a probe timeout or a
 * lost hedge that fires in the same tick as the handshake leaked an open socket (seen as a flaky "Leaks detected: A TCP
 * connection" in app_test.ts). The race is replayed here deterministically with a `Deno.connect` that behaves the
 * same way and aborts the caller's signal right after the handshake.
 */
import assert from "node:assert/strict";
import { ConnectSignals, connectTcp } from "../lib/net/connect_tcp.ts";
import { denoConnect } from "../lib/upstream/probe_tcp.ts";

/** Runs `body` with a `Deno.connect` that completes, aborts `ctrl`, and then throws like Deno 2.9 does. */
async function withLateAbort(ctrl: AbortController, body: () => Promise<void>): Promise<void> {
  const real = Deno.connect;
  const late = async (opts: Deno.ConnectOptions & { signal?: AbortSignal }) => {
    const conn = await real({ hostname: opts.hostname ?? "127.0.0.1", port: opts.port });
    ctrl.abort(new DOMException("probe timeout", "TimeoutError"));
    opts.signal?.throwIfAborted(); // what Deno's own finally does
    return conn;
  };
  (Deno as { connect: unknown }).connect = late;
  try {
    await body();
  } finally {
    (Deno as { connect: unknown }).connect = real;
  }
}

Deno.test("a connection that completes as its signal aborts is closed, not leaked", async (t) => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  const accepted: Deno.Conn[] = [];
  const accepting = (async () => {
    try {
      for (;;) accepted.push(await listener.accept());
    } catch { /* listener closed */ }
  })();
  await t.step("connectTcp rejects with the signal's reason", async () => {
    const ctrl = new AbortController();
    await withLateAbort(ctrl, async () => {
      await assert.rejects(connectTcp({ hostname: "127.0.0.1", port }, ctrl.signal), { name: "TimeoutError" });
    });
  });
  await t.step("the TCP probe's connect (the flaky leak) as well", async () => {
    const ctrl = new AbortController();
    await withLateAbort(ctrl, async () => {
      await assert.rejects(denoConnect({ host: "127.0.0.1", port }, ctrl.signal), { name: "TimeoutError" });
    });
  });
  await t.step("an already aborted signal rejects before dialling", async () => {
    const ctrl = new AbortController();
    ctrl.abort(new DOMException("gone", "AbortError"));
    await assert.rejects(connectTcp({ hostname: "127.0.0.1", port }, ctrl.signal), { name: "AbortError" });
  });
  await t.step(
    "the proxy's pooled signals: a late abort closes the connection and rejects with the reason",
    async () => {
      const signals = new ConnectSignals();
      const ctrl = signals.take();
      await withLateAbort(ctrl, async () => {
        await assert.rejects(signals.connect({ hostname: "127.0.0.1", port }, ctrl.signal), { name: "TimeoutError" });
      });
      signals.give(ctrl);
      assert.notEqual(signals.take(), ctrl, "an aborted controller is never handed out again");
    },
  );
  await t.step(
    "the proxy's pooled signals: an aborted one rejects before dialling (Deno's own check is off)",
    async () => {
      const signals = new ConnectSignals();
      const ctrl = signals.take();
      ctrl.abort(new DOMException("gone", "AbortError"));
      let dialled = false;
      const real = Deno.connect;
      (Deno as { connect: unknown }).connect = (opts: Deno.ConnectOptions) => {
        dialled = true;
        return real(opts);
      };
      try {
        await assert.rejects(signals.connect({ hostname: "127.0.0.1", port }, ctrl.signal), { name: "AbortError" });
      } finally {
        (Deno as { connect: unknown }).connect = real;
      }
      assert.equal(dialled, false);
    },
  );
  await t.step("the proxy's pooled signals: one that never aborted is reused", async () => {
    const signals = new ConnectSignals();
    const ctrl = signals.take();
    const conn = await signals.connect({ hostname: "127.0.0.1", port }, ctrl.signal);
    conn.close();
    signals.give(ctrl);
    assert.equal(signals.take(), ctrl);
  });
  listener.close();
  await accepting;
  for (const c of accepted) c.close();
});
