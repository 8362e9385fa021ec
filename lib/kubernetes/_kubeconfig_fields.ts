/**
 * Reading the mappings of a kubeconfig: only known fields, strings where strings belong, named entries found once,
 * and PEM given as a file or as base64 data. Every failure goes through `fail`, which throws with the file's name.
 *
 * @module
 */
import type { PemSource } from "./connection.ts";
import { isRecord } from "./types.ts";

/** A mapping of the document. */
export type Obj = Record<string, unknown>;

/** Throws the error of the kubeconfig being read, with `what` as its reason. */
export type Fail = (what: string) => never;

/** The entry `name` of the list `list` (`clusters`, ...): its `item` mapping; exactly one must exist. */
export function findNamed(doc: Obj, list: string, item: string, name: string, fail: Fail): Obj {
  const entries = doc[list] ?? [];
  if (!Array.isArray(entries)) return fail(`${list}: expected a list`);
  const found = entries.filter((e) => isRecord(e) && e.name === name);
  if (found.length === 0) {
    const names = entries.filter(isRecord).map((e) => `'${String(e.name)}'`).join(", ");
    return fail(`${item} '${name}' is not defined; expected one of: ${names || "(none)"}`);
  }
  if (found.length > 1) return fail(`${item} '${name}' is defined more than once`);
  const body = (found[0] as Obj)[item] ?? {};
  if (!isRecord(body)) return fail(`${item} '${name}': expected a mapping`);
  return body;
}

/** Refuses any field not in `allowed`, by name. */
export function checkFields(o: Obj, allowed: readonly string[], where: string, fail: Fail): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) fail(`${where} uses unsupported field '${k}'`);
  }
}

/** A string field, or `undefined` when absent or null. */
export function optString(o: Obj, key: string, where: string, fail: Fail): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") return fail(`${where} field '${key}': expected a string`);
  return v;
}

/** `field` (a file, resolved) or `field-data` (base64 PEM); the data wins when both are set, as in client-go. */
export function pemSource(
  o: Obj,
  field: string,
  where: string,
  resolve: (p: string) => string,
  fail: Fail,
): PemSource | undefined {
  const data = optString(o, `${field}-data`, where, fail);
  if (data) {
    try {
      return { data: new TextDecoder("utf-8", { fatal: true }).decode(base64Bytes(data)) };
    } catch {
      return fail(`${where} has ${field}-data that is not base64 PEM`);
    }
  }
  const file = optString(o, field, where, fail);
  return file ? { file: resolve(file) } : undefined;
}

/**
 * V8's own decoder, forgiving as `atob` is (no padding needed) and strict about other characters; `atob` would load
 * Deno's base64 module and its runtime paths, 1.1 MiB more of RSS (issue 14).
 */
function base64Bytes(text: string): Uint8Array {
  return Uint8Array.fromBase64(text.replace(/\s+/g, ""));
}
