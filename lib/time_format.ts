/**
 * Timestamps as text without `Date`'s formatting: `toISOString` and `toUTCString` touch about 1.5 MiB of the runtime
 * that a process which only relays bytes never needs (measured on Deno 2.9 against the bare relay of
 * bench/_floor_relay.ts, issue 14), and every log line and every health answer carries a time. Exactly `Date`'s output
 * for the years 1970 to 9999 (tests/time_format_test.ts compares them); other times go through `Date`.
 *
 * @module
 */

const DAY_MS = 86_400_000;
/** 9999-12-31T23:59:59.999Z: the last time both formats write with four-digit years. */
const LAST_MS = 253_402_300_799_999;
const WEEKDAYS = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

interface Civil {
  readonly year: number;
  readonly month: number;
  readonly day: number;
  readonly hour: number;
  readonly minute: number;
  readonly second: number;
  readonly milli: number;
  /** Days since 1970-01-01 (a Thursday). */
  readonly days: number;
}

/** Splits milliseconds since the epoch into the UTC calendar (H. Hinnant's days-to-civil algorithm). */
function civil(ms: number): Civil {
  const days = Math.floor(ms / DAY_MS);
  let rest = ms - days * DAY_MS;
  const hour = Math.floor(rest / 3_600_000);
  rest -= hour * 3_600_000;
  const minute = Math.floor(rest / 60_000);
  rest -= minute * 60_000;
  const second = Math.floor(rest / 1000);
  const milli = rest - second * 1000;
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  return { year, month, day, hour, minute, second, milli, days };
}

const two = (n: number) => (n < 10 ? `0${n}` : `${n}`);
const three = (n: number) => (n < 10 ? `00${n}` : n < 100 ? `0${n}` : `${n}`);
const four = (n: number) => `${n}`.padStart(4, "0");

function inRange(ms: number): boolean {
  return Number.isInteger(ms) && ms >= 0 && ms <= LAST_MS;
}

/**
 * `new Date(ms).toISOString()`: `2026-12-04T05:06:07.089Z`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isoTimestamp } from "./time_format.ts";
 * assert.equal(isoTimestamp(0), "1970-01-01T00:00:00.000Z");
 * ```
 */
export function isoTimestamp(ms: number): string {
  if (!inRange(ms)) return new Date(ms).toISOString();
  const c = civil(ms);
  return `${four(c.year)}-${two(c.month)}-${two(c.day)}T${two(c.hour)}:${two(c.minute)}:${two(c.second)}.${
    three(c.milli)
  }Z`;
}

/**
 * `new Date(ms).toUTCString()`, the HTTP date (RFC 9110 section 5.6.7): `Fri, 04 Dec 2026 05:06:07 GMT`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { httpDate } from "./time_format.ts";
 * assert.equal(httpDate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
 * ```
 */
export function httpDate(ms: number): string {
  if (!inRange(ms)) return new Date(ms).toUTCString();
  const c = civil(ms);
  return `${WEEKDAYS[c.days % 7]}, ${two(c.day)} ${MONTHS[c.month - 1]} ${four(c.year)} ${two(c.hour)}:${
    two(c.minute)
  }:${two(c.second)} GMT`;
}
