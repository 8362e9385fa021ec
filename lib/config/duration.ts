/**
 * Go-style durations (`500ms`, `20s`, `1m30s`), the form every duration flag accepts.
 *
 * @module
 */

// Nanoseconds per unit, as in Go's time package (which accepts both the micro sign and the Greek mu).
const UNIT_NS: Readonly<Record<string, bigint>> = {
  ns: 1n,
  us: 1_000n,
  "\u00b5s": 1_000n,
  "\u03bcs": 1_000n,
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};

const PART = /(\d+)?(?:\.(\d+))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/y;

/**
 * Parses a Go-style duration into milliseconds.
 *
 * The sum is taken in whole nanoseconds, as Go does, so that one duration written two ways (`1.001s`, `1001ms`)
 * gives the very same number.
 *
 * @param text The duration, e.g. `1m30s`; a bare `0` is zero.
 * @returns The duration in milliseconds.
 * @throws {RangeError} When the text is not a duration.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseDuration } from "./duration.ts";
 * assert(parseDuration("1m30s") === 90_000);
 * assert(parseDuration("1.001s") === parseDuration("1001ms"));
 * ```
 */
export function parseDuration(text: string): number {
  const s = text.trim();
  if (s === "0") return 0;
  const invalid = () =>
    new RangeError(`Cannot parse duration '${text}': expected a value such as '500ms', '2s' or '1m'`);
  if (s === "") throw invalid();
  let totalNs = 0n;
  PART.lastIndex = 0;
  while (PART.lastIndex < s.length) {
    const at = PART.lastIndex;
    const m = PART.exec(s);
    const [, whole, fraction, unit] = m ?? [];
    if (m === null || m.index !== at || (whole === undefined && fraction === undefined)) throw invalid();
    const perUnit = UNIT_NS[unit as string] as bigint;
    totalNs += BigInt(whole ?? "0") * perUnit;
    // Digits below a nanosecond are dropped, as Go drops them.
    if (fraction !== undefined) totalNs += (BigInt(fraction) * perUnit) / 10n ** BigInt(fraction.length);
  }
  const ms = Number(totalNs) / 1e6;
  if (!Number.isFinite(ms)) throw new RangeError(`Cannot parse duration '${text}': value is too large`);
  return ms;
}

/**
 * Formats milliseconds the way Go prints durations, for logs and `--help`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatDuration } from "./duration.ts";
 * assert(formatDuration(1500) === "1.5s");
 * assert(formatDuration(250) === "250ms");
 * ```
 */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  if (ms < 1000) return `${+ms.toFixed(3)}ms`;
  if (ms < 60_000) return `${+(ms / 1000).toFixed(3)}s`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = +((ms % 60_000) / 1000).toFixed(3);
  return `${h > 0 ? `${h}h` : ""}${h > 0 || m > 0 ? `${m}m` : ""}${s}s`;
}
