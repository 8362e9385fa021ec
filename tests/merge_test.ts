import assert from "node:assert/strict";
import { type Endpoint, endpointKey } from "../lib/endpoint.ts";
import { mergeProviders } from "../lib/discovery/merge.ts";
import type { EndpointProvider } from "../lib/discovery/provider.ts";
import { staticProvider } from "../lib/discovery/static.ts";
import { LogCapture } from "./support/log_capture.ts";
import { ManualProvider } from "./support/manual_provider.ts";
import { waitFor } from "./support/net.ts";
import { withDeadline } from "./support/deadline.ts";

const ep = (host: string, port = 6443): Endpoint => ({ host, port });
const keys = (r: IteratorResult<readonly Endpoint[]>) => r.done ? "done" : r.value.map(endpointKey).join(",");

Deno.test("the merge yields the deduplicated union of the latest sets, IPv6 normalised", async () => {
  const a = new ManualProvider("a");
  const b = new ManualProvider("b");
  const ctrl = new AbortController();
  const it = mergeProviders([a, b], ctrl.signal);
  a.push([ep("10.0.0.1"), ep("::1")]);
  assert.equal(keys(await it.next()), "10.0.0.1:6443,[::1]:6443");
  b.push([ep("0:0:0:0:0:0:0:1"), ep("10.0.0.2"), ep("10.0.0.1")]);
  assert.equal(keys(await it.next()), "10.0.0.1:6443,[::1]:6443,10.0.0.2:6443");
  a.push([ep("10.0.0.3")]);
  assert.equal(keys(await it.next()), "10.0.0.3:6443,[::1]:6443,10.0.0.2:6443,10.0.0.1:6443");
  ctrl.abort();
  assert.equal(keys(await it.next()), "done");
  assert.equal(a.stopped + b.stopped, 2);
});

Deno.test("the merge never yields an empty set", async () => {
  const a = new ManualProvider("a");
  const b = new ManualProvider("b");
  const ctrl = new AbortController();
  const it = mergeProviders([a, b], ctrl.signal);
  const first = it.next();
  a.push([]);
  b.push([]);
  await waitFor(() => a.delivered + b.delivered === 2 && a.idle && b.idle, 5000, "both empty sets taken");
  a.push([ep("10.0.0.1")]);
  assert.equal(keys(await first), "10.0.0.1:6443");
  // Everything empty again: the last union stands; the next yield is the next non-empty union.
  const second = it.next();
  a.push([]);
  await waitFor(() => a.delivered === 3 && a.idle, 5000, "the empty set taken");
  b.push([ep("10.0.0.2")]);
  assert.equal(keys(await second), "10.0.0.2:6443");
  ctrl.abort();
  assert.equal(keys(await it.next()), "done");
});

Deno.test("the merge drops a failing provider's endpoints and goes on with the others", async () => {
  await using logs = await LogCapture.start();
  const a = new ManualProvider("a");
  const b = new ManualProvider("b");
  const ctrl = new AbortController();
  const it = mergeProviders([a, b], ctrl.signal);
  a.push([ep("10.0.0.1")]);
  assert.equal(keys(await it.next()), "10.0.0.1:6443");
  b.push([ep("10.0.0.2")]);
  assert.equal(keys(await it.next()), "10.0.0.1:6443,10.0.0.2:6443");
  b.fail(new Error("boom"));
  assert.equal(keys(await it.next()), "10.0.0.1:6443");
  assert.deepEqual(logs.messages("error"), ["Endpoint provider b failed; dropping its endpoints: boom"]);
  a.push([ep("10.0.0.3")]);
  assert.equal(keys(await it.next()), "10.0.0.3:6443");
  ctrl.abort();
  assert.equal(keys(await it.next()), "done");
});

Deno.test("the merge keeps the last set when the only other provider fails, rather than go empty", async () => {
  await using _logs = await LogCapture.start();
  const a = new ManualProvider("a");
  const ctrl = new AbortController();
  const it = mergeProviders([a, staticProvider([])], ctrl.signal);
  a.push([ep("10.0.0.1")]);
  assert.equal(keys(await it.next()), "10.0.0.1:6443");
  a.fail(new Error("boom"));
  await waitFor(() => a.stopped === 1, 5000, "the failure");
  let settled = false;
  const next = it.next().then((r) => (settled = true, r));
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(settled, false);
  ctrl.abort();
  assert.equal(keys(await next), "done");
});

Deno.test("the merge coalesces a burst: a slow consumer never blocks a provider and gets the latest set", async () => {
  const a = new ManualProvider("a");
  const ctrl = new AbortController();
  const it = mergeProviders([a], ctrl.signal);
  a.push([ep("10.0.0.1")]);
  assert.equal(keys(await it.next()), "10.0.0.1:6443");
  // The consumer does not pull while 100 sets arrive; the provider is drained anyway.
  for (let i = 2; i <= 101; i++) a.push([ep(`10.0.1.${i}`)]);
  await waitFor(() => a.pending === 0 && a.idle, 5000, "the provider drained by the merge");
  assert.equal(a.delivered, 101);
  assert.equal(keys(await it.next()), "10.0.1.101:6443");
  a.push([ep("10.0.0.9")]);
  assert.equal(keys(await it.next()), "10.0.0.9:6443");
  ctrl.abort();
  assert.equal(keys(await it.next()), "done");
});

Deno.test("the merge does not lose an update that lands while the consumer holds a set", async () => {
  const a = new ManualProvider("a");
  const it = mergeProviders([a], new AbortController().signal);
  a.push([ep("10.0.0.1")]);
  assert.equal(keys(await it.next()), "10.0.0.1:6443");
  a.push([ep("10.0.0.2")]);
  a.end();
  await waitFor(() => a.stopped === 1, 5000, "the provider ended");
  assert.equal(keys(await it.next()), "10.0.0.2:6443");
  assert.equal(keys(await it.next()), "done");
});

Deno.test("stopping the merge calls return() on every source", async (t) => {
  await t.step("when the consumer breaks", async () => {
    const a = new ManualProvider("a");
    const b = new ManualProvider("b");
    const ctrl = new AbortController();
    a.push([ep("10.0.0.1")]);
    await withDeadline(
      (async () => {
        for await (const _ of mergeProviders([a, b], ctrl.signal)) break;
      })(),
      "the first merged set",
    );
    assert.equal(a.stopped, 1);
    assert.equal(b.stopped, 1);
    assert.equal(a.signal?.aborted, true);
    assert.equal(ctrl.signal.aborted, false);
  });
  await t.step("on iterators that are not generators and ignore the signal", async () => {
    const returned: string[] = [];
    const manual = (name: string): EndpointProvider => ({
      name,
      run: () => {
        let sent = false;
        return {
          [Symbol.asyncIterator]() {
            return {
              next: () => {
                if (!sent) {
                  sent = true;
                  return Promise.resolve({ done: false, value: [ep(`10.0.0.${returned.length + 1}`)] });
                }
                return new Promise<IteratorResult<readonly Endpoint[]>>(() => {});
              },
              return: () => {
                returned.push(name);
                return Promise.resolve({ done: true as const, value: undefined });
              },
            };
          },
        };
      },
    });
    const it = mergeProviders([manual("x"), manual("y")], new AbortController().signal);
    assert.notEqual(keys(await it.next()), "done");
    await it.return();
    assert.deepEqual(returned.sort(), ["x", "y"]);
  });
  await t.step("when the signal aborts", async () => {
    const a = new ManualProvider("a");
    const ctrl = new AbortController();
    const it = mergeProviders([a, staticProvider([ep("10.0.0.5")])], ctrl.signal);
    assert.equal(keys(await it.next()), "10.0.0.5:6443");
    ctrl.abort();
    assert.equal(keys(await it.next()), "done");
    assert.equal(a.stopped, 1);
  });
});

Deno.test("the merge ends at once on an aborted signal or without providers", async () => {
  const a = new ManualProvider("a");
  const ctrl = new AbortController();
  ctrl.abort();
  a.push([ep("10.0.0.1")]);
  assert.equal(keys(await mergeProviders([a], ctrl.signal).next()), "done");
  assert.equal(a.started, 0);
  assert.equal(keys(await mergeProviders([], new AbortController().signal).next()), "done");
});

Deno.test("the merge treats a provider that throws on start as a failed provider", async () => {
  await using logs = await LogCapture.start();
  const broken: EndpointProvider = {
    name: "broken",
    run: () => {
      throw new TypeError("no way");
    },
  };
  const ctrl = new AbortController();
  const it = mergeProviders([broken, staticProvider([ep("10.0.0.1")])], ctrl.signal);
  assert.equal(keys(await it.next()), "10.0.0.1:6443");
  await logs.waitFor((r) => r.level === "error");
  ctrl.abort();
  assert.equal(keys(await it.next()), "done");
});
