/**
 * Field-level helpers of the fake API server: the field paths of an object (what `managedFields` records), JSON merge
 * patch (RFC 7386), and a simplified server-side apply merge.
 *
 * The fake's server-side apply tracks ownership per leaf field (a scalar, a list, or an empty map; maps are walked),
 * not per list item as the real structured-merge-diff does: lists are atomic here.
 *
 * @module
 */

/** A JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
/** A JSON object. */
export type JsonObject = { [key: string]: Json };

/** Whether `v` is a JSON object (not an array, not null). */
export function isObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Field paths of an object that managers own: every field but `apiVersion`, `kind` and system metadata. */
export function leafPaths(obj: JsonObject, options: { skipStatus: boolean }): string[][] {
  const out: string[][] = [];
  for (const [key, value] of Object.entries(obj)) {
    if (key === "apiVersion" || key === "kind") continue;
    if (key === "status" && options.skipStatus) continue;
    if (key === "metadata") {
      if (!isObject(value)) continue;
      for (const metaKey of ["labels", "annotations"]) {
        const map = value[metaKey];
        if (isObject(map)) { for (const k of Object.keys(map)) out.push(["metadata", metaKey, k]); }
      }
      for (const metaKey of ["ownerReferences", "finalizers"]) {
        if (value[metaKey] !== undefined) out.push(["metadata", metaKey]);
      }
      continue;
    }
    walk(value, [key], out);
  }
  return out;
}

function walk(value: Json, path: string[], out: string[][]): void {
  if (isObject(value) && Object.keys(value).length > 0) {
    for (const [k, v] of Object.entries(value)) walk(v, [...path, k], out);
  } else {
    out.push(path);
  }
}

/** The value at `path`, or undefined. */
export function getPath(obj: JsonObject, path: readonly string[]): Json | undefined {
  let cur: Json | undefined = obj;
  for (const key of path) {
    if (!isObject(cur)) return undefined;
    cur = cur[key];
  }
  return cur;
}

/** Sets the value at `path`, making maps on the way. */
export function setPath(obj: JsonObject, path: readonly string[], value: Json): void {
  let cur = obj;
  for (const key of path.slice(0, -1)) {
    const next = cur[key];
    if (isObject(next)) {
      cur = next;
    } else {
      const made: JsonObject = {};
      cur[key] = made;
      cur = made;
    }
  }
  const last = path[path.length - 1];
  if (last !== undefined) cur[last] = structuredClone(value);
}

/** Deletes the value at `path` and every map that it leaves empty. */
export function deletePath(obj: JsonObject, path: readonly string[]): void {
  const [head, ...rest] = path;
  if (head === undefined) return;
  if (rest.length === 0) {
    delete obj[head];
    return;
  }
  const next = obj[head];
  if (!isObject(next)) return;
  deletePath(next, rest);
  if (Object.keys(next).length === 0) delete obj[head];
}

/** Stable JSON text (object keys sorted), for equality tests. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v) => {
    if (!isObject(v)) return v;
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]]));
  });
}

/** A path as a string key for sets. */
export function pathKey(path: readonly string[]): string {
  return JSON.stringify(path);
}

/** `managedFields[].fieldsV1` for a set of paths: `{"f:spec":{"f:holderIdentity":{}}}`. */
export function toFieldsV1(paths: Iterable<readonly string[]>): JsonObject {
  const root: JsonObject = {};
  for (const path of paths) {
    let cur = root;
    for (const key of path) {
      const f = `f:${key}`;
      const next = cur[f];
      if (isObject(next)) {
        cur = next;
      } else {
        const made: JsonObject = {};
        cur[f] = made;
        cur = made;
      }
    }
  }
  return root;
}

/** The leaf paths recorded in a `fieldsV1` made by {@linkcode toFieldsV1}. */
export function fromFieldsV1(fields: Json | undefined): string[][] {
  const out: string[][] = [];
  const visit = (node: Json, path: string[]) => {
    if (!isObject(node)) return;
    const children = Object.keys(node).filter((k) => k.startsWith("f:"));
    if (children.length === 0) {
      if (path.length > 0) out.push(path);
      return;
    }
    for (const k of children) visit(node[k] ?? null, [...path, k.slice(2)]);
  };
  visit(fields ?? null, []);
  return out;
}

/** Applies a JSON merge patch (RFC 7386) and returns the result; the target is not modified. */
export function mergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return structuredClone(patch);
  const out: JsonObject = isObject(target) ? structuredClone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key] ?? null, value);
  }
  return out;
}
