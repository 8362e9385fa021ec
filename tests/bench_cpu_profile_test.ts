/** bench/cpu_profile.ts's pure parts: self time per function from a V8 CPU profile, and the report's parts. */
import assert from "node:assert/strict";
import { partOf, selfTimes } from "../bench/cpu_profile.ts";

const frame = (functionName: string, url = "", lineNumber = -1) => ({ functionName, url, lineNumber });

Deno.test("self time is summed per function over its nodes; ops and V8's entries keep their bare names", () => {
  const times = selfTimes({
    nodes: [
      { id: 1, callFrame: frame("(root)") },
      { id: 2, callFrame: frame("pump", "file:///repo/lib/proxy/relay.ts", 67) },
      { id: 3, callFrame: frame("op_write") },
      // The same function reached by another path: one row.
      { id: 4, callFrame: frame("pump", "file:///repo/lib/proxy/relay.ts", 67) },
      { id: 5, callFrame: frame("", "ext:deno_web/03_abort_signal.js", 0) },
      { id: 6, callFrame: frame("(idle)") },
    ],
    samples: [2, 3, 3, 4, 5, 6, 6, 6],
    timeDeltas: [10, 20, 30, 5, 7, 100, 100, 100],
  });
  assert.deepEqual(Object.fromEntries(times), {
    "pump relay.ts:68": 15,
    "op_write": 50,
    "(anonymous) 03_abort_signal.js:1": 7,
    "(idle)": 300,
  });
});

Deno.test("ops, JavaScript, the collector and idle are told apart by key", () => {
  assert.equal(partOf("op_net_connect_tcp"), "ops");
  assert.equal(partOf("pump relay.ts:68"), "javascript");
  assert.equal(partOf("(anonymous) 03_abort_signal.js:1"), "javascript");
  // A script's function is JavaScript even when its name looks like an op.
  assert.equal(partOf("op_like helper.ts:3"), "javascript");
  assert.equal(partOf("(garbage collector)"), "gc");
  assert.equal(partOf("(idle)"), "idle");
  assert.equal(partOf("(program)"), "other");
  assert.equal(partOf("(root)"), "other");
});
