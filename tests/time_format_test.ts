/** Our timestamps are `Date`'s, character for character, over the years they are used for and at the edges. */
import assert from "node:assert/strict";
import fc from "fast-check";
import { httpDate, isoTimestamp } from "../lib/time_format.ts";

const LAST_MS = 253_402_300_799_999;

Deno.test("isoTimestamp and httpDate write what Date writes, for any millisecond of 1970–9999", () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: LAST_MS }), (ms) => {
      assert.equal(isoTimestamp(ms), new Date(ms).toISOString());
      assert.equal(httpDate(ms), new Date(ms).toUTCString());
    }),
    { numRuns: 20_000 },
  );
});

Deno.test("the edges: leap days, year ends, the last four-digit year, and times outside it through Date", () => {
  const cases = [
    0,
    Date.UTC(2000, 1, 29, 23, 59, 59, 999),
    Date.UTC(2100, 1, 28, 12),
    Date.UTC(2024, 11, 31, 23, 59, 59, 999),
    Date.UTC(2026, 11, 4, 5, 6, 7, 89),
    LAST_MS,
    LAST_MS + 1,
    -1,
    1.5,
  ];
  for (const ms of cases) {
    assert.equal(isoTimestamp(ms), new Date(ms).toISOString(), String(ms));
    assert.equal(httpDate(ms), new Date(ms).toUTCString(), String(ms));
  }
  assert.throws(() => isoTimestamp(NaN), RangeError, "an invalid time throws as Date's does");
});
