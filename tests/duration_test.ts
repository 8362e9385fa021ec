import assert from "node:assert/strict";
import { formatDuration, parseDuration } from "../lib/config/duration.ts";

const expected = (text: string) => `Cannot parse duration '${text}': expected a value such as '500ms', '2s' or '1m'`;

function assertRefused(text: string, message = expected(text)): void {
  assert.throws(() => parseDuration(text), (e: unknown) => {
    assert.ok(e instanceof RangeError, `'${text}' should throw a RangeError, got ${String(e)}`);
    assert.equal(e.message, message);
    return true;
  });
}

Deno.test("every Go unit is read as the right number of milliseconds", () => {
  const units: [string, number][] = [
    ["1ns", 0.000001],
    ["1us", 0.001],
    ["1\u00b5s", 0.001], // micro sign, as Go's time package writes it
    ["1\u03bcs", 0.001], // Greek small letter mu, which Go accepts too
    ["1ms", 1],
    ["1s", 1000],
    ["1m", 60_000],
    ["1h", 3_600_000],
  ];
  for (const [text, ms] of units) assert.equal(parseDuration(text), ms, text);
});

Deno.test("compound durations add their parts", () => {
  assert.equal(parseDuration("500ms"), 500);
  assert.equal(parseDuration("1m30s"), 90_000);
  assert.equal(parseDuration("1h2m3s4ms"), 3_723_004);
  assert.equal(parseDuration("2s500ms"), 2500);
  assert.equal(parseDuration("1h1h"), 7_200_000); // Go does not insist on descending units either
});

Deno.test("fractions are read in every unit", () => {
  assert.equal(parseDuration("1.5s"), 1500);
  assert.equal(parseDuration(".5s"), 500);
  assert.equal(parseDuration("0.5ms"), 0.5);
  assert.equal(parseDuration("1.5h"), 5_400_000);
  assert.equal(parseDuration("1m0.25s"), 60_250);
});

Deno.test("the same duration written two ways parses to the same number", async (t) => {
  // Timeout-shorter-than-interval checks compare these numbers: 1.001s and 1001ms must be equal, not 1 ulp apart.
  await t.step("seconds with three decimals equal whole milliseconds", () => {
    for (let ms = 1; ms < 10_000; ms++) {
      assert.equal(parseDuration(`${ms / 1000}s`), ms, `${ms / 1000}s`);
    }
  });
  await t.step("nanoseconds, microseconds and fractional milliseconds agree", () => {
    assert.equal(parseDuration("1500000ns"), parseDuration("1.5ms"));
    assert.equal(parseDuration("1500us"), parseDuration("1.5ms"));
    assert.equal(parseDuration("0.3s"), parseDuration("300ms"));
    assert.equal(parseDuration("1.2m"), parseDuration("72s"));
    assert.equal(parseDuration("0.1h"), parseDuration("6m"));
  });
});

Deno.test("zero is accepted bare and with a unit", () => {
  for (const text of ["0", "0s", "0ms", "0h0m0s", " 0 "]) assert.equal(parseDuration(text), 0, `'${text}'`);
});

Deno.test("surrounding white space is ignored", () => {
  assert.equal(parseDuration("  2s\t"), 2000);
});

Deno.test("garbage is refused with one line naming the value", () => {
  const garbage = [
    "abc",
    "5", // Go refuses a number without unit too, except a bare 0
    "1.5",
    "1S",
    "1sec",
    "s",
    "1 s",
    "1s 2s",
    "1e3ms",
    "1..5s",
    "1s2",
    "0x10s",
    "ms1",
    "2d",
    "1s!",
  ];
  for (const text of garbage) assertRefused(text);
});

Deno.test("an empty duration is refused", () => {
  assertRefused("");
  assertRefused("   ");
});

Deno.test("a negative duration is refused where it is parsed", () => {
  for (const text of ["-1s", "-0.5s", "-0", "--1s"]) assertRefused(text);
});

Deno.test("a duration too large for a number is refused", () => {
  const text = `${"9".repeat(400)}h`;
  assertRefused(text, `Cannot parse duration '${text}': value is too large`);
});

Deno.test("formatDuration prints what Go prints and parses back to the same value", () => {
  const cases: [number, string][] = [
    [0, "0s"],
    [1, "1ms"],
    [250, "250ms"],
    [999, "999ms"],
    [1000, "1s"],
    [1500, "1.5s"],
    [59_999, "59.999s"],
    [60_000, "1m0s"],
    [90_000, "1m30s"],
    [3_600_000, "1h0m0s"],
    [3_723_004, "1h2m3.004s"],
    [2 ** 31 - 1, "596h31m23.647s"],
  ];
  for (const [ms, text] of cases) {
    assert.equal(formatDuration(ms), text, `formatDuration(${ms})`);
    assert.equal(parseDuration(text), ms, `parseDuration('${text}')`);
  }
});
