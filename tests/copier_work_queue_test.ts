import assert from "node:assert/strict";
import { WorkQueue } from "../lib/copier/work_queue.ts";
import { withDeadline } from "./support/deadline.ts";
import { ManualClock } from "./support/manual_clock.ts";

Deno.test("a key is queued once and never handed to two workers at once", async () => {
  const q = new WorkQueue();
  q.add("a");
  q.add("b");
  q.add("a");
  assert.equal(q.length, 2);
  assert.equal(await withDeadline(q.get(), "an item"), "a");
  q.add("a"); // changed while being processed: waits for done()
  assert.equal(await withDeadline(q.get(), "an item"), "b");
  assert.equal(q.length, 0);
  q.done("a");
  assert.equal(await withDeadline(q.get(), "an item"), "a");
  q.done("a");
  q.done("b");
  assert.equal(q.length, 0);
  q.close();
  assert.equal(await withDeadline(q.get(), "an item"), undefined);
});

Deno.test("every waiting worker wakes, and get returns undefined when its signal aborts", async () => {
  const q = new WorkQueue();
  const ctrl = new AbortController();
  const one = q.get(ctrl.signal);
  const two = q.get();
  q.add("x");
  q.add("y");
  assert.deepEqual((await withDeadline(Promise.all([one, two]), "both workers")).sort(), ["x", "y"]);
  const three = q.get(ctrl.signal);
  ctrl.abort();
  assert.equal(await withDeadline(three, "the aborted get"), undefined);
  q.close();
});

Deno.test("a failed key comes back after a doubling backoff; success forgets it; clear drops pending retries", async () => {
  const clock = new ManualClock();
  const q = new WorkQueue({ clock, random: () => 1, retryBaseMs: 100, retryMaxMs: 350 });
  assert.deepEqual([q.retry("k"), q.retry("k"), q.retry("k"), q.retry("k")], [100, 200, 350, 350]);
  assert.equal(q.failures("k"), 4);
  assert.equal(clock.pending, 1, "one pending add per key: the earliest wins");
  await clock.advance(99);
  assert.equal(q.length, 0);
  await clock.advance(1);
  assert.equal(q.length, 1);
  q.forget("k");
  assert.equal(q.retry("k"), 100);
  q.clear();
  assert.equal(clock.pending, 0);
  assert.equal(q.failures("k"), 0);
  q.close();
});
