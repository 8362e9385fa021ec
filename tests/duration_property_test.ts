/** Properties of Go-style durations: any text is a RangeError or a finite, non-negative number of milliseconds. */
import assert from "node:assert/strict";
import fc from "fast-check";
import { formatDuration, parseDuration } from "../lib/config/duration.ts";
import { anyText, check, returnsOr } from "./support/properties.ts";

const unit = fc.constantFrom("ns", "us", "\u00b5s", "\u03bcs", "ms", "s", "m", "h");
/** Durations as written in flags: parts such as `1h`, `2.5s`, `.5ms`, concatenated; or garbage. */
const durationText = fc.oneof(
  fc.array(
    fc.tuple(fc.option(fc.nat(100_000), { nil: undefined }), fc.option(fc.nat(999_999), { nil: undefined }), unit),
    {
      minLength: 1,
      maxLength: 4,
    },
  ).map((parts) => parts.map(([w, f, u]) => `${w ?? ""}${f === undefined ? "" : `.${f}`}${u}`).join("")),
  anyText,
  fc.tuple(fc.stringMatching(/^[0-9]{1,40}$/), unit).map(([n, u]) => `${n}${u}`),
);

Deno.test("duration properties", async (t) => {
  await t.step("any text is a RangeError or a finite number of milliseconds, at least zero", () => {
    check(fc.property(durationText, (text) => {
      const ms = returnsOr(RangeError, () => parseDuration(text));
      if (ms !== undefined) assert.ok(Number.isFinite(ms) && ms >= 0, `'${text}' → ${ms}`);
    }));
  });
  await t.step("a formatted whole number of milliseconds parses back to itself", () => {
    check(fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), (ms) => {
      assert.equal(parseDuration(formatDuration(ms)), ms, formatDuration(ms));
    }));
  });
  await t.step("parts add up: 'a' followed by 'b' is a + b", () => {
    const part = fc.tuple(fc.nat(10_000), fc.constantFrom("ms", "s", "m", "h")).map(([n, u]) => `${n}${u}`);
    check(fc.property(part, part, (a, b) => {
      const sum = parseDuration(a) + parseDuration(b);
      assert.ok(Math.abs(parseDuration(a + b) - sum) <= sum * 1e-12, `${a}${b}`);
    }));
  });
});
