/**
 * Figures of the fault suite: each scenario prints one `FAULT <scenario>: <figure>` line (for the README) and asserts
 * its bound. `deno test -q` swallows test output, so the lines also go to the file named by
 * {@linkcode REPORT_ENV}, when it is set (CI prints that file after the tests).
 *
 * @module
 */
import type { ConnectionResult } from "./support/load_client.ts";

/** The environment variable naming a file that collects the `FAULT` lines (appended to). */
export const REPORT_ENV = "EXTRACTEDPRISM_FAULT_REPORT";

/** Prints a line of the suite's report, and appends it to the report file when one is named. */
export function reportLine(line: string): void {
  console.log(line);
  const file = Deno.env.get(REPORT_ENV);
  if (file) Deno.writeTextFileSync(file, `${line}\n`, { append: true });
}

/** Prints a scenario's measured figure. */
export function report(scenario: string, figure: string): void {
  reportLine(`FAULT ${scenario}: ${figure}`);
}

/** Milliseconds, rounded for a report line. */
export function ms(v: number): string {
  return `${Math.round(v)} ms`;
}

/** The largest value, or 0 for none. */
export function max(values: readonly number[]): number {
  return values.reduce((a, b) => Math.max(a, b), 0);
}

/** The `p`-th percentile (0..100, nearest rank), or 0 for none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0;
}

/** How many connections each API server answered, by name. */
export function countByServer(results: readonly ConnectionResult[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of results) if (r.server !== null) out.set(r.server, (out.get(r.server) ?? 0) + 1);
  return out;
}

/** The API server that answered the most connections (index 0 for `api1`). */
export function busiest(results: readonly ConnectionResult[]): number {
  const counts = [...countByServer(results)].sort((a, b) => b[1] - a[1]);
  const name = counts[0]?.[0];
  if (name === undefined) throw new Error("Cannot pick the busiest API server: no connection succeeded");
  return Number(name.replace("api", "")) - 1;
}

/** One failed connection as a short text, for assertion messages. */
export function describeFailures(results: readonly ConnectionResult[], limit = 5): string {
  const failed = results.filter((r) => !r.ok);
  const shown = failed.slice(0, limit).map((r) => `${r.error} after ${ms(r.totalMs)}`);
  return failed.length > limit ? `${shown.join("; ")}; and ${failed.length - limit} more` : shown.join("; ");
}
