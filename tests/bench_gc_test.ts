/** bench/gc.ts's pure parts: reading V8's --trace-gc-nvp lines, the load window, and adding the flag to a task. */
import assert from "node:assert/strict";
import { parseGcTrace, renderGcTable, summarize, withGcTrace } from "../bench/gc.ts";
import { parseCommand } from "../bench/_systems.ts";

const TRACE = [
  '[1600:0x5645:0]      900 ms: GC: {"pause":0.5,"gc":"s","promoted":1024,"reason":"allocation failure"}',
  "[1600:0x5645:0]     1000 ms: Memory pool: Removed pages: 0, removed large pages: 0",
  '[1600:0x5645:0]     1200 ms: GC: {"pause":1.0,"gc":"s","promoted":2048}',
  '[1600:0x5645:0]     1300 ms: GC: {"pause":3.0,"gc":"mc","promoted":0}',
  '[1600:0x5645:0]     1400 ms: GC: {"pause":2.0,"gc":"s","promoted":4096}',
  '[1600:0x5645:0]     2500 ms: GC: {"pause":9.0,"gc":"s","promoted":0}',
].join("\n");

Deno.test("GC trace lines are read with their isolate time; other lines are skipped", () => {
  const records = parseGcTrace(TRACE);
  assert.deepEqual(records.map((r) => [r.atMs, r.gc, r.pause, r.promoted]), [
    [900, "s", 0.5, 1024],
    [1200, "s", 1.0, 2048],
    [1300, "mc", 3.0, 0],
    [1400, "s", 2.0, 4096],
    [2500, "s", 9.0, 0],
  ]);
});

Deno.test("only collections inside the load window count, per connection", () => {
  const run = summarize(parseGcTrace(TRACE), { fromMs: 1000, toMs: 2000 }, {
    connections: 2000,
    seconds: 1,
    cpuSeconds: 0.4,
  });
  assert.equal(run.connRps, 2000);
  assert.equal(run.cpuUsPerConn, 200);
  assert.equal(run.scavengesPer1000, 1); // the two young GCs at 1200 and 1400 ms
  assert.equal(run.scavengePauseMs, 1.5);
  assert.equal(run.promotedKiBPerScavenge, 3);
  assert.equal(run.fullGcs, 1);
  assert.equal(run.gcUsPerConn, 3); // (1 + 3 + 2) ms over 2,000 connections
});

Deno.test("--trace-gc-nvp joins the task's V8 flags, or gets its own flag after 'run'", () => {
  const task = parseCommand("X=1 deno run -q -P --v8-flags=--max-semi-space-size=2 main.ts");
  assert.ok(withGcTrace(task).argv.includes("--v8-flags=--max-semi-space-size=2,--trace-gc-nvp"));
  const bare = withGcTrace(parseCommand("deno run -P main.ts")).argv;
  assert.deepEqual(bare.slice(1), ["run", "--v8-flags=--trace-gc-nvp", "-P", "main.ts"]);
  assert.throws(() => withGcTrace(parseCommand("./extractedprism")), /expected a 'deno run' command/);
});

Deno.test("the table shows the median of each system's runs", () => {
  const run = (promoted: number) => ({
    connRps: 1000,
    cpuUsPerConn: 200,
    scavengesPer1000: 20,
    scavengePauseMs: 0.5,
    promotedKiBPerScavenge: promoted,
    fullGcs: 0,
    gcUsPerConn: 10,
  });
  const table = renderGcTable(new Map([["extractedprism", [run(1), run(100), run(3)]]]));
  assert.match(table, /\| extractedprism \| 1000 \| 200\.0 \| 20\.0 \| 0\.500 \| 3\.0 \| 0 \| 10\.0 \|/);
});
