import assert from "node:assert/strict";
import { configureLogging, getLogger, type LogRecord, resetLogging } from "../lib/log.ts";
import { formatJsonLine, formatTextLine, StreamSink } from "../lib/log_output.ts";
import { withDeadline } from "./support/deadline.ts";

function record(over: Partial<LogRecord> = {}): LogRecord {
  return {
    category: ["extractedprism", "pool"],
    level: "info",
    message: ["Upstream ", "[::1]:6443", " added"],
    rawMessage: "Upstream {upstream} added",
    properties: { upstream: "[::1]:6443" },
    timestamp: Date.UTC(2026, 11, 3, 22, 32, 56, 194),
    ...over,
  };
}

Deno.test("JSON lines read as plain words, keep every value in its own field, and survive odd values", () => {
  const line = formatJsonLine(record());
  assert.ok(line.endsWith("\n"));
  assert.deepEqual(JSON.parse(line), {
    "@timestamp": "2026-12-03T22:32:56.194Z",
    level: "INFO",
    message: "Upstream [::1]:6443 added",
    logger: "extractedprism.pool",
    upstream: "[::1]:6443",
  });
  const collide = JSON.parse(formatJsonLine(record({ properties: { message: "from the API", level: 3 } })));
  assert.equal(collide.message, "Upstream [::1]:6443 added");
  assert.equal(collide["property.message"], "from the API");
  assert.equal(collide["property.level"], 3);
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  const odd = JSON.parse(formatJsonLine(record({
    level: "warning",
    message: ["failed: ", new TypeError("bad"), ""],
    properties: { error: new TypeError("bad"), big: 2n, cyclic },
  })));
  assert.equal(odd.level, "WARN");
  assert.equal(odd.message, "failed: bad");
  assert.equal(odd.error, undefined, "a line with a cycle keeps only its head");
  const plain = JSON.parse(formatJsonLine(record({ properties: { error: new TypeError("bad"), big: 2n } })));
  assert.deepEqual([plain.error, plain.big], ["bad", "2"]);
});

Deno.test("text lines carry time, level, category and the message", () => {
  assert.equal(
    formatTextLine(record({ level: "error" })),
    "2026-12-03 22:32:56.194 +00:00 [ERR] extractedprism.pool: Upstream [::1]:6443 added\n",
  );
});

Deno.test("StreamSink never blocks its caller on a stuck writer, drops past its bound and says how many", async () => {
  const stuck = Promise.withResolvers<void>();
  const written: string[] = [];
  let calls = 0;
  const sink = new StreamSink(formatTextLine, {
    maxQueuedBytes: 300,
    write: async (bytes) => {
      if (calls++ === 0) await stuck.promise;
      written.push(new TextDecoder().decode(bytes));
      return bytes.length;
    },
  });
  try {
    configureLogging([{ category: [], lowestLevel: "info", sinks: [sink.sink] }]);
    const log = getLogger("t");
    log.info("first"); // taken by the stuck write
    for (let i = 0; i < 20; i++) log.info("line {i}", { i }); // returns at once; most are dropped
    assert.ok(sink.dropped > 0, `dropped ${sink.dropped}`);
    const dropped = sink.dropped;
    stuck.resolve();
    await withDeadline(sink.flush(), "the sink to write its queue");
    const text = written.join("");
    assert.ok(text.includes(": first\n"));
    assert.ok(text.includes(": line 0\n"));
    assert.match(
      text,
      new RegExp(`\\[WRN\\] extractedprism\\.log: ${dropped} log lines dropped: stderr did not keep up\\n$`),
    );
    assert.equal(sink.dropped, 0);
  } finally {
    resetLogging();
    stuck.resolve();
    await sink[Symbol.asyncDispose]();
  }
});

Deno.test("StreamSink writes partial writes whole and stops quietly when its writer fails", async () => {
  const out: string[] = [];
  const partial = new StreamSink(formatTextLine, {
    write: (bytes) => {
      const n = Math.min(5, bytes.length);
      out.push(new TextDecoder().decode(bytes.subarray(0, n)));
      return Promise.resolve(n);
    },
  });
  const failing = new StreamSink(formatTextLine, { write: () => Promise.reject(new Error("EPIPE")) });
  try {
    configureLogging([{ category: [], lowestLevel: "info", sinks: [partial.sink, failing.sink] }]);
    getLogger("t").info("a longer line than five bytes");
    await withDeadline(Promise.all([partial.flush(), failing.flush()]), "both sinks to settle");
    assert.ok(out.join("").endsWith("t: a longer line than five bytes\n"));
    getLogger("t").info("after the failure");
    await withDeadline(failing.flush(), "the failed sink to settle again");
  } finally {
    resetLogging();
  }
});
