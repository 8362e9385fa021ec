/**
 * The Prometheus text exposition format (version 0.0.4): what both the proxy and the endpoint copier serve on
 * `/metrics`.
 *
 * @module
 */

/** The content type of the exposition text. */
export const PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8";

/** Label names to values. */
export type Labels = Readonly<Record<string, string>>;

/** One sample of a metric family. */
export interface Sample {
  readonly labels?: Labels;
  readonly value: number;
}

/**
 * `{a="x",b="y"}` with the format's escapes (backslash, quote, newline); empty for no labels.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { labelText } from "./prometheus.ts";
 * assert(labelText({ upstream: '[::1]:6443' }) === '{upstream="[::1]:6443"}');
 * ```
 */
export function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) =>
    `${k}="${v.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n")}"`
  );
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

/**
 * The lines of one metric family: `# HELP`, `# TYPE`, then one line per sample (a value that is not finite as `NaN`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { familyLines } from "./prometheus.ts";
 * const lines = familyLines("up", "gauge", "1 when up.", [{ labels: { job: "a" }, value: 1 }]);
 * assert(lines.join("\n") === '# HELP up 1 when up.\n# TYPE up gauge\nup{job="a"} 1');
 * ```
 */
export function familyLines(
  name: string,
  type: "counter" | "gauge",
  help: string,
  samples: Iterable<Sample>,
): string[] {
  const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`];
  for (const s of samples) {
    lines.push(`${name}${labelText(s.labels ?? {})} ${Number.isFinite(s.value) ? s.value : "NaN"}`);
  }
  return lines;
}
