import assert from "node:assert/strict";
import { configureLogging, getLogger, type LogRecord, renderMessage, resetLogging, splitTemplate } from "../lib/log.ts";

Deno.test("a logger made before configuration writes once routes exist, by category prefix and level", () => {
  const early = getLogger(["extractedprism", "pool"]);
  const other = getLogger(["elsewhere"]);
  const seen: LogRecord[] = [];
  try {
    early.info("dropped while nothing is configured");
    configureLogging([{ category: ["extractedprism"], lowestLevel: "info", sinks: [(r) => seen.push(r)] }]);
    early.debug("below the level");
    early.info("Upstream {upstream} added", { upstream: "127.0.0.1:6443" });
    early.warn("a warning");
    other.error("not under the route");
    assert.deepEqual(seen.map((r) => [r.level, renderMessage(r)]), [
      ["info", "Upstream 127.0.0.1:6443 added"],
      ["warning", "a warning"],
    ]);
    assert.equal(early.isEnabledFor("debug"), false);
    configureLogging([{ category: [], lowestLevel: "trace", sinks: [(r) => seen.push(r)] }]);
    assert.equal(early.isEnabledFor("debug"), true);
    assert.equal(other.isEnabledFor("trace"), true);
  } finally {
    resetLogging();
  }
});

Deno.test("properties given as a function are built only when the record is written", () => {
  let built = 0;
  const props = () => {
    built++;
    return { n: built };
  };
  try {
    configureLogging([{ category: ["t"], lowestLevel: "warning", sinks: [() => {}] }]);
    const log = getLogger("t");
    log.debug("skipped {n}", props);
    assert.equal(built, 0);
    log.error("written {n}", props);
    assert.equal(built, 1);
  } finally {
    resetLogging();
  }
});

Deno.test("a sink or a property builder that throws does not reach the caller", () => {
  const seen: string[] = [];
  try {
    configureLogging([{
      category: [],
      lowestLevel: "info",
      sinks: [() => {
        throw new Error("broken sink");
      }, (r) => seen.push(renderMessage(r))],
    }]);
    getLogger("t").info("still {x}", () => {
      throw new Error("no properties");
    });
    assert.deepEqual(seen, ["still undefined"]);
  } finally {
    resetLogging();
  }
});

Deno.test("splitTemplate keeps text and values apart, with escaped and unclosed braces", () => {
  assert.deepEqual(splitTemplate("Upstream {upstream} added", { upstream: "a" }), ["Upstream ", "a", " added"]);
  assert.deepEqual(splitTemplate("{{literal}} and {x}", { x: 1 }), ["{literal} and ", 1, ""]);
  assert.deepEqual(splitTemplate("open { brace", {}), ["open { brace"]);
  assert.deepEqual(splitTemplate("{missing}", {}), ["", undefined, ""]);
});
