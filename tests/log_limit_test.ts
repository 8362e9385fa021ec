import assert from "node:assert/strict";
import { LogLimit } from "../lib/log_limit.ts";

Deno.test("LogLimit lets a key through once per interval and counts what it suppressed", () => {
  let t = 0;
  const limit = new LogLimit({ intervalMs: 1000, now: () => t });
  assert.equal(limit.take("a"), 0);
  for (let i = 0; i < 5; i++) assert.equal(limit.take("a"), undefined);
  assert.equal(limit.take("b"), 0, "another key has its own budget");
  t = 999;
  assert.equal(limit.take("a"), undefined);
  t = 1000;
  assert.equal(limit.take("a"), 6, "the six suppressed since the last line");
  assert.equal(limit.take("a"), undefined);
});

Deno.test("LogLimit with a burst lets that many through per window", () => {
  let t = 0;
  const limit = new LogLimit({ intervalMs: 1000, burst: 3, now: () => t });
  assert.deepEqual([1, 2, 3, 4, 5].map(() => limit.take("k")), [0, 0, 0, undefined, undefined]);
  t = 1500;
  assert.equal(limit.take("k"), 2);
  assert.equal(limit.take("k"), 0);
});

Deno.test("LogLimit forgets the oldest keys past maxKeys, so its memory is bounded", () => {
  const t = 0;
  const limit = new LogLimit({ intervalMs: 1000, maxKeys: 2, now: () => t });
  assert.equal(limit.take("a"), 0);
  assert.equal(limit.take("b"), 0);
  assert.equal(limit.take("c"), 0); // "a" is forgotten
  assert.equal(limit.take("a"), 0, "a forgotten key goes through again");
  assert.equal(limit.take("c"), undefined);
});
