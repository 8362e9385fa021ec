import assert from "node:assert/strict";
import type { Endpoint } from "../lib/endpoint.ts";
import { dial as dialNow, type DialConnect } from "../lib/proxy/dial.ts";
import { Upstream } from "../lib/upstream/upstream.ts";
import { withDeadline } from "./support/deadline.ts";

/** The dial under test, with a deadline: a dial that never settles fails the test instead of hanging it. */
const dial = (...args: Parameters<typeof dialNow>) => withDeadline(dialNow(...args), "the dial");

const ups = (n: number) =>
  Array.from({ length: n }, (_, i) => new Upstream({ host: `10.0.0.${i + 1}`, port: 6443 }, { rise: 2, fall: 2 }));

/** A fake connect: per host, "refuse", "hang" (until aborted) or "ok" after a delay. */
function fakeConnect(
  behaviour: Record<string, { kind: "refuse" | "hang" | "ok"; delayMs?: number }>,
  log: string[],
): DialConnect {
  return (e: Endpoint, signal: AbortSignal) => {
    log.push(e.host);
    const b = behaviour[e.host] ?? { kind: "refuse" };
    return new Promise<Deno.TcpConn>((resolve, reject) => {
      const abort = () => reject(new DOMException("aborted", "AbortError"));
      signal.addEventListener("abort", abort, { once: true });
      if (b.kind === "hang") return;
      setTimeout(() => {
        signal.removeEventListener("abort", abort);
        if (b.kind === "refuse") reject(new Deno.errors.ConnectionRefused("Connection refused"));
        else {
          let closed = false;
          resolve({
            close: () => (closed = true),
            get closed() {
              return closed;
            },
            host: e.host,
          } as unknown as Deno.TcpConn);
        }
      }, b.delayMs ?? 0);
    });
  };
}

Deno.test("dial fails over to the next upstream when the first refuses, and counts the failure", async () => {
  const [a, b] = ups(2) as [Upstream, Upstream];
  const tried: string[] = [];
  const failures: string[] = [];
  const r = await dial([a, b], {
    budgetMs: 1000,
    hedgeDelayMs: 500,
    connect: fakeConnect({ "10.0.0.1": { kind: "refuse" }, "10.0.0.2": { kind: "ok" } }, tried),
    onFailure: (u, why) => failures.push(`${u.key} ${why}`),
  });
  assert.equal(r?.upstream, b);
  assert.deepEqual(tried, ["10.0.0.1", "10.0.0.2"]);
  assert.deepEqual(failures, ["10.0.0.1:6443 dial: ConnectionRefused: Connection refused"]);
});

Deno.test("a hanging first dial is hedged: the next upstream starts after the hedge delay and wins", async () => {
  const [a, b] = ups(2) as [Upstream, Upstream];
  const tried: string[] = [];
  const failures: string[] = [];
  const start = performance.now();
  const r = await dial([a, b], {
    budgetMs: 2000,
    hedgeDelayMs: 50,
    connect: fakeConnect({ "10.0.0.1": { kind: "hang" }, "10.0.0.2": { kind: "ok" } }, tried),
    onFailure: (u) => failures.push(u.key),
  });
  const took = performance.now() - start;
  assert.equal(r?.upstream, b);
  assert.ok(took >= 45 && took < 1000, `took ${took} ms`);
  assert.deepEqual(failures, [], "the cancelled loser is not counted as a failure");
});

Deno.test("the hedge delay grows to three times the upstream's RTT", async () => {
  const [a, b] = ups(2) as [Upstream, Upstream];
  a.recordSuccess(60, 0);
  const start = performance.now();
  const r = await dial([a, b], {
    budgetMs: 2000,
    hedgeDelayMs: 10,
    connect: fakeConnect({ "10.0.0.1": { kind: "hang" }, "10.0.0.2": { kind: "ok" } }, []),
    onFailure: () => {},
  });
  assert.equal(r?.upstream, b);
  assert.ok(performance.now() - start >= 170, "waited about 3 × 60 ms before hedging");
});

Deno.test("when the budget runs out the dial gives up and counts every pending attempt as failed", async () => {
  const list = ups(2);
  const failures: string[] = [];
  const start = performance.now();
  const r = await dial(list, {
    budgetMs: 150,
    hedgeDelayMs: 20,
    connect: (_, signal) =>
      new Promise((_, reject) => signal.addEventListener("abort", () => reject(new Error("aborted")), { once: true })),
    onFailure: (u, why) => failures.push(`${u.key} ${why}`),
  });
  assert.equal(r, undefined);
  assert.ok(performance.now() - start < 600);
  assert.deepEqual(failures.sort(), [
    "10.0.0.1:6443 dial: no connection within 150 ms",
    "10.0.0.2:6443 dial: no connection within 150 ms",
  ]);
});

Deno.test("every candidate refusing ends the dial without waiting for the budget", async () => {
  const list = ups(3);
  const start = performance.now();
  const failures: string[] = [];
  const r = await dial(list, {
    budgetMs: 5000,
    hedgeDelayMs: 1000,
    connect: fakeConnect({}, []),
    onFailure: (u) => failures.push(u.key),
  });
  assert.equal(r, undefined);
  assert.equal(failures.length, 3);
  assert.ok(performance.now() - start < 1000);
});

Deno.test("a connection that completes after another won is closed", async () => {
  const [a, b] = ups(2) as [Upstream, Upstream];
  const conns: { closed: boolean; host: string }[] = [];
  const connect: DialConnect = (e) =>
    new Promise((resolve) => {
      setTimeout(() => {
        let closed = false;
        const c = {
          close: () => (closed = true),
          get closed() {
            return closed;
          },
          host: e.host,
        };
        conns.push(c);
        resolve(c as unknown as Deno.TcpConn);
      }, e.host === "10.0.0.1" ? 80 : 10);
    });
  const r = await dial([a, b], { budgetMs: 1000, hedgeDelayMs: 20, connect, onFailure: () => {} });
  assert.equal(r?.upstream, b);
  await new Promise((res) => setTimeout(res, 120));
  assert.equal(conns.find((c) => c.host === "10.0.0.1")?.closed, true);
  assert.equal(conns.find((c) => c.host === "10.0.0.2")?.closed, false);
});

Deno.test("no candidates means no dial", async () => {
  assert.equal(
    await dial([], { budgetMs: 10, hedgeDelayMs: 5, connect: fakeConnect({}, []), onFailure: () => {} }),
    undefined,
  );
});
