/** The dial's failover, hedge and budget, on a manual clock: every time below is exact, not a wall-clock bound. */
import assert from "node:assert/strict";
import type { Endpoint } from "../lib/endpoint.ts";
import { dial, type DialConnect, type Dialed, type DialOptions } from "../lib/proxy/dial.ts";
import { CoarseTimer } from "../lib/proxy/coarse_timer.ts";
import { Upstream } from "../lib/upstream/upstream.ts";
import { withDeadline } from "./support/deadline.ts";
import { ManualClock } from "./support/manual_clock.ts";

/** The dials' tick, as the proxy's. */
const TICK_MS = 10;

const ups = (n: number) =>
  Array.from({ length: n }, (_, i) => new Upstream({ host: `127.0.0.${i + 1}`, port: 6443 }, { rise: 2, fall: 2 }));

/** A stand-in connection that remembers whether it was closed. */
function fakeConn(host: string): Deno.TcpConn & { readonly closed: boolean; readonly host: string } {
  let closed = false;
  return {
    close: () => (closed = true),
    get closed() {
      return closed;
    },
    host,
  } as unknown as Deno.TcpConn & { readonly closed: boolean; readonly host: string };
}

/** A fake connect on `clock`: per host, "refuse", "hang" (until aborted) or "ok", after `delayMs` of the clock. */
function fakeConnect(
  clock: ManualClock,
  behaviour: Record<string, { kind: "refuse" | "hang" | "ok"; delayMs?: number }>,
  log: { host: string; at: number }[],
): DialConnect {
  return (e: Endpoint, signal: AbortSignal) => {
    log.push({ host: e.host, at: clock.now() });
    const b = behaviour[e.host] ?? { kind: "refuse" };
    return new Promise<Deno.TcpConn>((resolve, reject) => {
      const abort = () => reject(new DOMException("aborted", "AbortError"));
      signal.addEventListener("abort", abort, { once: true });
      if (b.kind === "hang") return;
      clock.setTimer(b.delayMs ?? 0, () => {
        signal.removeEventListener("abort", abort);
        if (b.kind === "refuse") reject(new Deno.errors.ConnectionRefused("Connection refused"));
        else resolve(fakeConn(e.host));
      });
    });
  };
}

/** Starts a dial on `clock`; `outcome` says whether and when (clock time) it settled. */
function start(clock: ManualClock, candidates: readonly Upstream[], opts: Omit<DialOptions, "timer">) {
  const outcome: { settled: boolean; at?: number; result?: Dialed | undefined } = { settled: false };
  const done = dial(candidates, { ...opts, timer: new CoarseTimer(clock, TICK_MS) }).then((result) => {
    Object.assign(outcome, { settled: true, at: clock.now(), result });
    return result;
  });
  return { outcome, done: () => withDeadline(done, "the dial") };
}

Deno.test("dial fails over to the next upstream when the first refuses, and counts the failure", async () => {
  const clock = new ManualClock();
  const [a, b] = ups(2) as [Upstream, Upstream];
  const tried: { host: string; at: number }[] = [];
  const failures: string[] = [];
  const d = start(clock, [a, b], {
    budgetMs: 1000,
    hedgeDelayMs: 500,
    connect: fakeConnect(clock, { "127.0.0.1": { kind: "refuse", delayMs: 5 }, "127.0.0.2": { kind: "ok" } }, tried),
    onFailure: (u, why) => failures.push(`${u.key} ${why}`),
  });
  await clock.advance(5);
  const r = await d.done();
  assert.equal(r?.upstream, b);
  assert.equal(d.outcome.at, 5, "at once after the refusal, not after the hedge delay");
  assert.deepEqual(tried, [{ host: "127.0.0.1", at: 0 }, { host: "127.0.0.2", at: 5 }]);
  assert.deepEqual(failures, ["127.0.0.1:6443 dial: ConnectionRefused: Connection refused"]);
  assert.equal(clock.pending, 0, "the budget and hedge are cancelled: no tick left");
});

Deno.test("a hanging first dial is hedged: the next upstream starts after the hedge delay and wins", async () => {
  const clock = new ManualClock();
  const [a, b] = ups(2) as [Upstream, Upstream];
  const tried: { host: string; at: number }[] = [];
  const failures: string[] = [];
  const d = start(clock, [a, b], {
    budgetMs: 2000,
    hedgeDelayMs: 50,
    connect: fakeConnect(clock, { "127.0.0.1": { kind: "hang" }, "127.0.0.2": { kind: "ok" } }, tried),
    onFailure: (u) => failures.push(u.key),
  });
  await clock.advance(49);
  assert.deepEqual(tried.map((t) => t.host), ["127.0.0.1"], "no hedge before the hedge delay");
  await clock.advance(1);
  assert.equal((await d.done())?.upstream, b);
  assert.deepEqual(tried, [{ host: "127.0.0.1", at: 0 }, { host: "127.0.0.2", at: 50 }]);
  assert.deepEqual(failures, [], "the cancelled loser is not counted as a failure");
});

Deno.test("the hedge delay grows to three times the upstream's RTT", async () => {
  const clock = new ManualClock();
  const [a, b] = ups(2) as [Upstream, Upstream];
  a.recordSuccess(60, 0);
  const tried: { host: string; at: number }[] = [];
  const d = start(clock, [a, b], {
    budgetMs: 2000,
    hedgeDelayMs: 10,
    connect: fakeConnect(clock, { "127.0.0.1": { kind: "hang" }, "127.0.0.2": { kind: "ok" } }, tried),
    onFailure: () => {},
  });
  await clock.advance(179);
  assert.equal(tried.length, 1, "not hedged before 3 × 60 ms");
  await clock.advance(1);
  assert.equal((await d.done())?.upstream, b);
  assert.deepEqual(tried.map((t) => t.at), [0, 180]);
});

Deno.test("when the budget runs out the dial gives up and counts every pending attempt as failed", async () => {
  const clock = new ManualClock();
  const list = ups(2);
  const failures: string[] = [];
  const d = start(clock, list, {
    budgetMs: 150,
    hedgeDelayMs: 20,
    connect: (_, signal) =>
      new Promise((_, reject) => signal.addEventListener("abort", () => reject(new Error("aborted")), { once: true })),
    onFailure: (u, why) => failures.push(`${u.key} ${why}`),
  });
  await clock.advance(149);
  assert.equal(d.outcome.settled, false, "not before the budget");
  assert.deepEqual(failures, []);
  await clock.advance(1);
  assert.equal(await d.done(), undefined);
  assert.equal(d.outcome.at, 150);
  assert.deepEqual(failures.sort(), [
    "127.0.0.1:6443 dial: no connection within 150 ms",
    "127.0.0.2:6443 dial: no connection within 150 ms",
  ]);
  assert.equal(clock.pending, 0);
});

Deno.test("every candidate refusing ends the dial without waiting for the budget or the hedge", async () => {
  const clock = new ManualClock();
  const list = ups(3);
  const failures: string[] = [];
  const d = start(clock, list, {
    budgetMs: 5000,
    hedgeDelayMs: 1000,
    connect: fakeConnect(clock, {}, []),
    onFailure: (u) => failures.push(u.key),
  });
  await clock.advance(0);
  assert.equal(await d.done(), undefined);
  assert.equal(d.outcome.at, 0, "no time passed");
  assert.equal(failures.length, 3);
  assert.equal(clock.pending, 0);
});

Deno.test("a connection that completes after another won is closed", async () => {
  const clock = new ManualClock();
  const [a, b] = ups(2) as [Upstream, Upstream];
  const conns: { closed: boolean; host: string }[] = [];
  const connect: DialConnect = (e) =>
    new Promise((resolve) => {
      clock.setTimer(e.host === "127.0.0.1" ? 80 : 10, () => {
        const c = fakeConn(e.host);
        conns.push(c);
        resolve(c);
      });
    });
  const d = start(clock, [a, b], { budgetMs: 1000, hedgeDelayMs: 20, connect, onFailure: () => {} });
  await clock.advance(30); // b starts at 20 and connects at 30
  assert.equal((await d.done())?.upstream, b);
  assert.deepEqual(conns.map((c) => [c.host, c.closed]), [["127.0.0.2", false]]);
  await clock.advance(50); // a connects at 80, after b won
  assert.deepEqual(conns.map((c) => [c.host, c.closed]), [["127.0.0.2", false], ["127.0.0.1", true]]);
});

Deno.test("no candidates means no dial, and no timer", async () => {
  const clock = new ManualClock();
  const d = start(clock, [], {
    budgetMs: 10,
    hedgeDelayMs: 5,
    connect: fakeConnect(clock, {}, []),
    onFailure: () => {},
  });
  assert.equal(await d.done(), undefined);
  assert.equal(clock.pending, 0);
});

/** A pool of attempt controllers that records what it hands out and what comes back. */
function recordingSignals() {
  const given: AbortController[] = [];
  const taken: AbortController[] = [];
  return {
    given,
    taken,
    take: () => {
      const c = new AbortController();
      taken.push(c);
      return c;
    },
    give: (c: AbortController) => void given.push(c),
  };
}

Deno.test("only the winner's controller goes back to the pool: a loser's is aborted, a refused one may be later", async (t) => {
  await t.step("hedged: the hanging loser's is kept out", async () => {
    const clock = new ManualClock();
    const [a, b] = ups(2) as [Upstream, Upstream];
    const signals = recordingSignals();
    const d = start(clock, [a, b], {
      budgetMs: 2000,
      hedgeDelayMs: 50,
      connect: fakeConnect(clock, { "127.0.0.1": { kind: "hang" }, "127.0.0.2": { kind: "ok" } }, []),
      onFailure: () => {},
      signals,
    });
    await clock.advance(50);
    assert.equal((await d.done())?.upstream, b);
    assert.deepEqual(signals.given, [signals.taken[1]]);
    assert.equal(signals.taken[0]?.signal.aborted, true);
  });
  await t.step("failed over: the refused attempt's is kept out (the dial's end aborts it)", async () => {
    const clock = new ManualClock();
    const [a, b] = ups(2) as [Upstream, Upstream];
    const signals = recordingSignals();
    const d = start(clock, [a, b], {
      budgetMs: 1000,
      hedgeDelayMs: 500,
      connect: fakeConnect(clock, { "127.0.0.1": { kind: "refuse" }, "127.0.0.2": { kind: "ok", delayMs: 5 } }, []),
      onFailure: () => {},
      signals,
    });
    await clock.advance(5);
    assert.equal((await d.done())?.upstream, b);
    assert.deepEqual(signals.given, [signals.taken[1]]);
    assert.equal(signals.taken[0]?.signal.aborted, true, "aborted at the dial's end: reusing it would cancel another");
  });
  await t.step("out of time: nothing goes back", async () => {
    const clock = new ManualClock();
    const [a] = ups(1) as [Upstream];
    const signals = recordingSignals();
    const d = start(clock, [a], {
      budgetMs: 100,
      hedgeDelayMs: 50,
      connect: fakeConnect(clock, { "127.0.0.1": { kind: "hang" } }, []),
      onFailure: () => {},
      signals,
    });
    await clock.advance(110);
    assert.equal(await d.done(), undefined);
    assert.deepEqual(signals.given, []);
  });
});
