/**
 * Label and field selectors, parsed as the API server parses them (`k8s.io/apimachinery/pkg/labels` and
 * `pkg/fields`): a bad selector is a 400 `BadRequest`.
 *
 * @module
 */

import { badRequest } from "./_fake_api_status.ts";

/** A predicate over an object (its labels and its name/namespace). */
export type ObjectPredicate = (obj: SelectableObject) => boolean;

/** The parts of an object selectors read. */
export interface SelectableObject {
  metadata: { name?: string; namespace?: string; labels?: Record<string, string> };
}

const KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/**
 * Parses a label selector: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, joined by commas.
 * An empty selector matches everything.
 */
export function parseLabelSelector(selector: string): ObjectPredicate {
  const terms = splitTerms(selector);
  const tests = terms.map(parseLabelTerm);
  return (obj) => {
    const labels = obj.metadata.labels ?? {};
    return tests.every((t) => t(labels));
  };
}

type LabelTest = (labels: Record<string, string>) => boolean;

function parseLabelTerm(raw: string): LabelTest {
  const term = raw.trim();
  let m: RegExpMatchArray | null;
  if ((m = term.match(/^!\s*(\S+)$/)) !== null) {
    const key = checkKey(m[1] ?? "", raw);
    return (l) => !Object.hasOwn(l, key);
  }
  if ((m = term.match(/^(\S+?)\s+(in|notin)\s*\((.*)\)$/)) !== null) {
    const key = checkKey(m[1] ?? "", raw);
    const values = new Set((m[3] ?? "").split(",").map((v) => checkValue(v.trim(), raw)));
    if (m[2] === "in") return (l) => Object.hasOwn(l, key) && values.has(l[key] ?? "");
    return (l) => !Object.hasOwn(l, key) || !values.has(l[key] ?? "");
  }
  if ((m = term.match(/^([^!=\s]+)\s*(==|!=|=)\s*(\S*)$/)) !== null) {
    const key = checkKey(m[1] ?? "", raw);
    const value = checkValue(m[3] ?? "", raw);
    if (m[2] === "!=") return (l) => l[key] !== value;
    return (l) => Object.hasOwn(l, key) && l[key] === value;
  }
  const key = checkKey(term, raw);
  return (l) => Object.hasOwn(l, key);
}

function checkKey(key: string, term: string): string {
  const name = key.includes("/") ? key.slice(key.indexOf("/") + 1) : key;
  if (!KEY.test(key) || name.length > 63 || key.length > 253 + 1 + 63) {
    badRequest(`unable to parse requirement: invalid label key "${key}" in '${term}'`);
  }
  return key;
}

function checkValue(value: string, term: string): string {
  if (!VALUE.test(value) || value.length > 63) {
    badRequest(`unable to parse requirement: invalid label value: "${value}" in '${term}'`);
  }
  return value;
}

/** Splits on commas that are not inside parentheses; an empty string gives no terms. */
function splitTerms(selector: string): string[] {
  if (selector.trim() === "") return [];
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < selector.length; i++) {
    const c = selector[i];
    if (c === "(") depth++;
    else if (c === ")") depth--;
    else if (c === "," && depth === 0) {
      out.push(selector.slice(start, i));
      start = i + 1;
    }
    if (depth < 0 || depth > 1) badRequest(`unable to parse requirement: unbalanced parentheses in '${selector}'`);
  }
  if (depth !== 0) badRequest(`unable to parse requirement: unbalanced parentheses in '${selector}'`);
  out.push(selector.slice(start));
  if (out.some((t) => t.trim() === "")) badRequest(`unable to parse requirement: empty term in '${selector}'`);
  return out;
}

/** Parses a field selector over `metadata.name` and `metadata.namespace` (`=`, `==`, `!=`, comma-joined). */
export function parseFieldSelector(selector: string): ObjectPredicate {
  const tests = splitTerms(selector).map((raw) => {
    const m = raw.trim().match(/^([^!=\s]+)\s*(==|!=|=)\s*(.*)$/);
    if (m === null) badRequest(`invalid selector: '${selector}'; can't understand '${raw}'`);
    const [, field = "", op, value = ""] = m;
    if (field !== "metadata.name" && field !== "metadata.namespace") {
      badRequest(`field label not supported: ${field}`);
    }
    const read = (o: SelectableObject) => (field === "metadata.name" ? o.metadata.name : o.metadata.namespace) ?? "";
    return op === "!=" ? (o: SelectableObject) => read(o) !== value : (o: SelectableObject) => read(o) === value;
  });
  return (obj) => tests.every((t) => t(obj));
}
