/**
 * Deterministic names of the copies: `<target>-<source slice>`, shortened to 63 characters with a hash when longer,
 * and source label values that always fit a label.
 *
 * @module
 */

/** The longest name (and label value) the copier writes. */
export const MAX_NAME = 63;
const HASH_LENGTH = 10;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/**
 * The name of the copy of `sourceSlice` for the Service `target`: `<target>-<source slice>` when it fits in 63
 * characters and `hashed` is false, else its first characters, `-` and a 10-character hash of `<target>/<source>`
 * (unambiguous, unlike the dash-joined form: `a-b`+`c` and `a`+`b-c` hash differently).
 *
 * @param hashed Use the hashed form even when the plain name fits (the plain name is taken by another target).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { copyName } from "./slice_name.ts";
 * assert(copyName("kubernetes-vip", "kubernetes") === "kubernetes-vip-kubernetes");
 * assert(copyName("t".repeat(40), "s".repeat(40)).length === 63);
 * ```
 */
export function copyName(target: string, sourceSlice: string, hashed = false): string {
  const plain = `${target}-${sourceSlice}`;
  if (plain.length <= MAX_NAME && !hashed) return plain;
  return `${trimEnd(plain.slice(0, MAX_NAME - HASH_LENGTH - 1))}-${hash(`${target}/${sourceSlice}`)}`;
}

/**
 * The value of the `endpoint-copier/source` label for a source slice: its name when that is a valid label value,
 * else a shortened form with a hash (slice names may be up to 253 characters, label values only 63).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sourceLabelValue } from "./slice_name.ts";
 * assert(sourceLabelValue("kubernetes") === "kubernetes");
 * assert(sourceLabelValue("a".repeat(100)).length === 63);
 * ```
 */
export function sourceLabelValue(sourceSlice: string): string {
  if (sourceSlice.length <= MAX_NAME && LABEL_VALUE.test(sourceSlice)) return sourceSlice;
  const head = trimEnd(sourceSlice.slice(0, MAX_NAME - HASH_LENGTH - 1).replace(/[^-A-Za-z0-9_.]/g, "-"));
  return `${head.replace(/^[-_.]+/, "")}-${hash(sourceSlice)}`.replace(/^-/, "");
}

function trimEnd(s: string): string {
  return s.replace(/[-_.]+$/, "");
}

/** FNV-1a, 64 bits, as 10 lowercase base-36 digits: short, stable across runs and platforms. */
function hash(text: string): string {
  let h = 0xcbf29ce484222325n;
  for (const b of new TextEncoder().encode(text)) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(36).padStart(13, "0").slice(-HASH_LENGTH);
}
