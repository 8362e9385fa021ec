import assert from "node:assert/strict";
import { AcceptLoop, type AcceptSource } from "../lib/net/accept_loop.ts";
import { waitFor } from "./support/net.ts";
import { withDeadline } from "./support/deadline.ts";
import { LogCapture } from "./support/log_capture.ts";
import { ManualClock } from "./support/manual_clock.ts";

Deno.test("the accept loop survives accept errors such as EMFILE, backing off 10, 20, 40 ms, and keeps accepting", async () => {
  using real = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let failuresLeft = 3;
  const source: AcceptSource = {
    addr: real.addr,
    accept: () => {
      if (failuresLeft-- > 0) return Promise.reject(new Error("Too many open files (os error 24)"));
      return real.accept();
    },
    close: () => {},
  };
  const handled: Deno.TcpConn[] = [];
  const got = Promise.withResolvers<void>();
  const clock = new ManualClock();
  const loop = new AcceptLoop(source, (c) => {
    handled.push(c);
    got.resolve();
  }, { clock });
  const running = loop.run();
  await clock.advance(0);
  assert.equal(loop.errors, 1);
  for (const [backoff, errors] of [[10, 2], [20, 3]] as const) {
    await clock.advance(backoff - 1);
    assert.equal(loop.errors, errors - 1, `not retried before ${backoff} ms`);
    await clock.advance(1);
    assert.equal(loop.errors, errors, `retried after ${backoff} ms`);
  }
  const client = await Deno.connect({ hostname: "127.0.0.1", port: real.addr.port });
  await clock.advance(39);
  assert.equal(handled.length, 0, "not accepted before the 40 ms backoff");
  await clock.advance(1);
  await withDeadline(got.promise, "the accepted connection");
  assert.equal(loop.errors, 3);
  assert.equal(loop.running, true);
  assert.equal(handled.length, 1);
  handled[0]?.close();
  client.close();
  loop.stop();
  real.close();
  await withDeadline(running, "the loop to stop");
  assert.equal(loop.running, false);
});

Deno.test("accept errors are all counted but logged at most five times a second, naming the listener", async () => {
  await using logs = await LogCapture.start();
  const addr: Deno.NetAddr = { transport: "tcp", hostname: "127.0.0.1", port: 7 };
  // Descriptor exhaustion with a client closed after each accept: failures alternate with successes, so the
  // backoff never grows and a line per failure would be a flood.
  let calls = 0;
  const done = Promise.withResolvers<void>();
  const closed = Promise.withResolvers<Deno.TcpConn>();
  const source: AcceptSource = {
    addr,
    accept: () => {
      if (++calls > 120) {
        done.resolve();
        return closed.promise;
      }
      if (calls % 2 === 1) return Promise.reject(new Error("Too many open files (os error 24)"));
      return Promise.resolve({ close: () => {} } as unknown as Deno.TcpConn);
    },
    close: () => closed.reject(new Deno.errors.BadResource("closed")),
  };
  const clock = new ManualClock();
  const loop = new AcceptLoop(source, (c) => c.close(), { name: "health", clock });
  const running = loop.run();
  await clock.advanceUntilSettled(done.promise, "120 accepts", 10_000, 10);
  loop.stop();
  await withDeadline(running, "the loop to stop");
  assert.equal(loop.errors, 60);
  assert.equal(clock.now(), 600, "each failure backed off 10 ms: the backoff restarts after a success");
  const lines = logs.messages("error").filter((m) => m.includes("Accept failed"));
  assert.equal(lines.length, 5, "five lines in the one second of clock time the 60 failures took");
  assert.match(lines[0] ?? "", /Accept failed on the \W*health\W* listener \W*127\.0\.0\.1:7/);
});

Deno.test("the liveness self-check is answered by the loop and not handed to the proxy", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const handled: Deno.TcpConn[] = [];
  const loop = new AcceptLoop(listener, (c) => handled.push(c));
  const running = loop.run();
  assert.equal(await withDeadline(loop.selfCheck(1000), "the self-check"), true);
  assert.equal(
    await withDeadline(Promise.all([loop.selfCheck(1000), loop.selfCheck(1000)]), "two self-checks").then((r) =>
      r.every(Boolean)
    ),
    true,
  );
  assert.equal(handled.length, 0);
  assert.equal(loop.accepted, 0);
  // An ordinary client arriving next is still handed over.
  const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  await waitFor(() => handled.length > 0, 5000, "the client to be handed over");
  handled[0]?.close();
  client.close();
  loop.stop();
  await withDeadline(running, "the loop to stop");
  assert.equal(await withDeadline(loop.selfCheck(200), "the self-check"), false, "a stopped loop fails the self-check");
});

Deno.test("a loop whose accept never returns fails the self-check within its timeout", async () => {
  // A listener that nobody accepts from: the kernel completes the handshake, but the loop never sees it.
  using real = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const stuck = Promise.withResolvers<Deno.TcpConn>();
  const clock = new ManualClock();
  const loop = new AcceptLoop({ addr: real.addr, accept: () => stuck.promise, close: () => {} }, () => {}, { clock });
  const running = loop.run();
  let result: boolean | undefined;
  const checking = loop.selfCheck(150).then((r) => (result = r));
  await clock.advance(149);
  assert.equal(result, undefined, "not given up before its timeout");
  // The connect (real, to loopback) and the wait for the loop each have up to 150 ms of the clock.
  assert.equal(await clock.advanceUntilSettled(checking, "the self-check", 151), false);
  assert.ok(clock.now() >= 150 && clock.now() <= 300, `gave up at ${clock.now()} ms of the clock`);
  assert.equal(clock.pending, 0, "its timers are cancelled");
  loop.stop();
  stuck.reject(new Deno.errors.BadResource("closed"));
  await withDeadline(running, "the loop to stop");
});

Deno.test("the self-check is recognised by its exact addresses: a client with the same port from another address is relayed", async () => {
  const real = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  // The first accept returns an impostor: the self-check's source port, but from another loopback address (as a
  // client on another interface could); then the self-check's real connection.
  let impostor: Deno.TcpConn | undefined;
  const queue: Deno.TcpConn[] = [];
  const source: AcceptSource = {
    addr: real.addr,
    accept: async () => {
      if (impostor !== undefined) return queue.shift() ?? real.accept();
      const self = await real.accept();
      queue.push(self);
      const fake = {
        remoteAddr: { transport: "tcp", hostname: "127.0.0.9", port: self.remoteAddr.port },
        localAddr: self.localAddr,
        close: () => {},
      };
      return impostor = fake as unknown as Deno.TcpConn;
    },
    close: () => real.close(),
  };
  const handled: Deno.TcpConn[] = [];
  const loop = new AcceptLoop(source, (c) => handled.push(c));
  const running = loop.run();
  try {
    const ok = await loop.selfCheck(2000);
    assert.equal(handled[0], impostor, "the impostor is handed to the proxy");
    assert.equal(ok, true, "the self-check's own connection is recognised");
    assert.equal(handled.length, 1);
    assert.equal(loop.accepted, 1);
  } finally {
    loop.stop();
    await running;
    for (const c of [...handled, ...queue]) if (c !== impostor) c.close();
  }
});

function ipv6Loopback(): boolean {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
    return true;
  } catch {
    return false;
  }
}

for (const bind of ["127.0.0.2", "0.0.0.0", "::"]) {
  Deno.test({
    name: `with --bind-address=${bind} /healthz answers 200 and the self connection is not relayed`,
    ignore: bind === "::" && !ipv6Loopback(),
    fn: async () => {
      const upstream = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const relayed: Deno.TcpConn[] = [];
      const accepting = (async () => {
        for await (const c of upstream) relayed.push(c);
      })();
      const { ProxyApp } = await import("../lib/app.ts");
      const { testConfig } = await import("./support/net.ts");
      // A probe that never connects: any connection the upstream sees was relayed.
      const probe = { name: "fake", check: () => Promise.resolve({ ok: true as const, rttMs: 1 }) };
      const app = ProxyApp.start(
        testConfig([{ host: "127.0.0.1", port: upstream.addr.port }], { bindAddress: bind, healthRise: 1 }),
        { probe },
      );
      try {
        for (let i = 0; i < 3; i++) {
          const r = await fetch(`http://127.0.0.1:${app.healthAddr.port}/healthz`);
          await r.body?.cancel();
          assert.equal(r.status, 200);
        }
        assert.equal(app.loop.accepted, 0, "no self connection counted as a client");
        assert.equal(app.proxy.failedDials, 0);
        assert.equal(relayed.length, 0, "no self connection relayed to the upstream");
      } finally {
        await app.shutdown();
        upstream.close();
        await accepting;
        for (const c of relayed) c.close();
      }
    },
  });
}

Deno.test("a client that reuses the addresses of a self-check connection the loop already saw is relayed", async () => {
  // Linux reuses a loopback connection's TIME_WAIT ports at once (tcp_tw_reuse=2): a kubelet connection may come from
  // the very address pair of an earlier self-check connection. Only the check's connections not yet seen may be
  // closed as late ones; a reused pair is a new client. The source records the check's connections, then returns a
  // stand-in with the same addresses as the first of them.
  const real = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const checked: Deno.TcpConn[] = [];
  const reused = Promise.withResolvers<Deno.TcpConn>();
  const closed = Promise.withResolvers<Deno.TcpConn>();
  let served = false;
  const source: AcceptSource = {
    addr: real.addr,
    accept: async () => {
      if (checked.length === 4) {
        if (served) return closed.promise;
        served = true;
        return reused.promise;
      }
      const conn = await real.accept();
      checked.push(conn);
      return conn;
    },
    close: () => {
      real.close();
      reused.reject(new Deno.errors.BadResource("closed"));
      closed.reject(new Deno.errors.BadResource("closed"));
    },
  };
  const handled: Deno.TcpConn[] = [];
  const loop = new AcceptLoop(source, (c) => handled.push(c));
  const running = loop.run();
  try {
    assert.equal(await withDeadline(loop.selfCheck(2000), "the self-check"), true);
    // Every connection of the check reached the loop (4 of them, made at once): none is late.
    await waitFor(() => checked.length === 4, 5000, "the check's four connections to be accepted");
    const first = checked[0] as Deno.TcpConn;
    const stand = { remoteAddr: first.remoteAddr, localAddr: first.localAddr, close: () => {} };
    reused.resolve(stand as unknown as Deno.TcpConn);
    await waitFor(() => handled.length > 0, 5000, "the client to be handed over");
    assert.equal(handled[0], stand as unknown as Deno.TcpConn);
  } finally {
    loop.stop();
    await running.catch(() => {});
  }
});
