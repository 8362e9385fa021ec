/** bench/copier_scale.ts in a quick mode, so that it cannot rot: a small cluster, a few updates, one run in process. */
import assert from "node:assert/strict";
import { measure, renderScaleTable, type ScaleResult } from "../bench/copier_scale.ts";

Deno.test("the copier scale bench lists, follows every update and reports finite figures", async () => {
  const r = await measure({ services: 250, updates: 30 });
  assert.equal(r.services, 250);
  assert.equal(r.updates, 30);
  for (const v of [r.listCpuMs, r.cpuUsPerUpdate, r.rssPeakMiB, r.rssAfterMiB]) {
    assert.ok(Number.isFinite(v) && v > 0, JSON.stringify(r));
  }
  assert.ok(r.rssPeakMiB >= r.rssAfterMiB, JSON.stringify(r));
});

Deno.test("the table shows the median of each tree's runs", () => {
  const run = (cpu: number): ScaleResult => ({
    services: 10_000,
    updates: 2_000,
    listCpuMs: 900,
    cpuUsPerUpdate: cpu,
    rssPeakMiB: 80,
    rssAfterMiB: 70,
  });
  const table = renderScaleTable(new Map([["this tree", [run(10), run(300), run(20)]]]));
  assert.match(table, /\| this tree \| 10000 \| 2000 \| 900 \| 20 \| 80\.0 \| 70\.0 \|/);
});
