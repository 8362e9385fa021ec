/**
 * Properties of the kubeconfig YAML subset parser, with js-yaml (CORE_SCHEMA) as the oracle: on any text it returns,
 * and gives BEYOND_SUBSET or exactly js-yaml's value (BEYOND_SUBSET where js-yaml throws); on kubeconfig-shaped
 * documents, as js-yaml's dump and kubectl write them, it gives the document itself.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { CORE_SCHEMA, dump, type DumpOptions, load } from "js-yaml";
import { BEYOND_SUBSET, parseYamlSubset } from "../lib/kubernetes/_yaml_subset.ts";
import { check } from "./support/properties.ts";

const inspect = (v: unknown) => Deno.inspect(v, { depth: 8, strAbbreviateSize: 200, iterableLimit: 20 });

/** Points 1–3 of the contract: the parser returns, with js-yaml's value or BEYOND_SUBSET (always, where js-yaml throws). */
function assertContract(text: string): void {
  let expected: { value: unknown } | { error: string };
  try {
    expected = { value: load(text, { schema: CORE_SCHEMA }) };
  } catch (e) {
    expected = { error: String(e).split("\n")[0]! };
  }
  const got = parseYamlSubset(text);
  if (got === BEYOND_SUBSET) return;
  if ("error" in expected) assert.fail(`js-yaml throws (${expected.error}), the subset parser gives ${inspect(got)}`);
  try {
    assert.deepStrictEqual(got, expected.value);
  } catch {
    assert.fail(`js-yaml gives ${inspect(expected.value)}, the subset parser ${inspect(got)}`);
  }
}

/** Point 4: the text is in the subset, and means `value`. */
function assertAccepted(text: string, value: unknown): void {
  assert.deepStrictEqual(load(text, { schema: CORE_SCHEMA }), value, "the generator wrote what it meant");
  const got = parseYamlSubset(text);
  if (got === BEYOND_SUBSET) assert.fail(`BEYOND_SUBSET for ${JSON.stringify(text)}`);
  try {
    assert.deepStrictEqual(got, value);
  } catch {
    assert.fail(`${JSON.stringify(text)}: js-yaml gives ${inspect(value)}, the subset parser ${inspect(got)}`);
  }
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Characters that mean something in YAML, and some that mean nothing. */
const SIGNIFICANT = [..."abZ09 :#-'\"\\/.@[]{},&*!|>%?~=`", "é", "😀", "\u00a0", "\u3000"];
const LAYOUT = [" ", " ", "\n", "\t", "\r"];

/** Strings that are, or look like, something else in YAML. */
const lookalike = fc.constantFrom(
  "true",
  "False",
  "null",
  "NULL",
  "~",
  "12",
  "-0",
  "+1",
  "012",
  "1.5",
  ".inf",
  "1e3",
  "0x1F",
  "0o17",
  "yes",
  "",
  " ",
  "-",
  "- a",
  "a: b",
  "a:",
  "#",
  "a #b",
  "'",
  '"',
  "::1",
  "https://[::1]:6443",
  "---",
  "...",
  "<<",
  "__proto__",
);

const anyString = fc.oneof(
  { arbitrary: fc.string({ unit: fc.constantFrom(...SIGNIFICANT), maxLength: 10 }), weight: 6 },
  { arbitrary: fc.string({ unit: fc.constantFrom(...SIGNIFICANT, ...LAYOUT), maxLength: 10 }), weight: 2 },
  { arbitrary: lookalike, weight: 3 },
);

/** An object as a plain object, whatever its keys (`__proto__` included, as its own key). */
const objectOf = <T>(key: fc.Arbitrary<string>, value: fc.Arbitrary<T>, minKeys = 0) =>
  fc.uniqueArray(fc.tuple(key, value), { selector: ([k]) => k, minLength: minKeys, maxLength: 4 })
    .map((entries) => Object.fromEntries(entries) as Record<string, T>);

const anyScalar: fc.Arbitrary<Json> = fc.oneof(
  { arbitrary: anyString, weight: 6 },
  fc.boolean(),
  fc.constant(null),
  fc.integer({ min: -1000, max: 100_000 }),
  fc.constantFrom(0.5, -0, 1e21),
);

const anyValue: fc.Arbitrary<Json> = fc.letrec<{ value: Json; object: Json; array: Json }>((tie) => ({
  value: fc.oneof({ depthSize: "small" }, anyScalar, tie("object"), tie("array")),
  object: objectOf(anyString, tie("value")),
  array: fc.array(tie("value"), { maxLength: 4 }),
})).value;

const anyDocument = objectOf(anyString, anyValue, 1);

const DUMP_OPTIONS: DumpOptions[] = [
  {},
  { lineWidth: -1 },
  { lineWidth: -1, noArrayIndent: true },
  { flowLevel: 1 },
  { quotingType: '"' },
  { forceQuotes: true },
  { indent: 4 },
  { indent: 3, noArrayIndent: true, lineWidth: 20 },
  { noCompatMode: true, lineWidth: -1 },
];

/** Kubeconfig-like strings: what server URLs, names, paths and usernames are made of. */
const kubeString = fc.string({
  unit: fc.constantFrom(..."abcxyzABCXYZ0123456789:/._@-"),
  minLength: 1,
  maxLength: 16,
}).filter((s) => !/^[0-9-]/.test(s));
const base64 = fc.uint8Array({ minLength: 1, maxLength: 60 }).map((b) => btoa(String.fromCharCode(...b)));
/** Keys kubectl writes unquoted (js-yaml's dump agrees: no key that reads as another type). */
const kubeKey = fc.string({ unit: fc.constantFrom(..."abcxyzABCXYZ019._-"), minLength: 1, maxLength: 12 })
  .filter((k) => /^[a-zA-Z]/.test(k) && dump({ [k]: null }) === `${k}: null\n`);

const kubeScalar: fc.Arbitrary<Json> = fc.oneof(
  { arbitrary: kubeString, weight: 6 },
  { arbitrary: base64, weight: 2 },
  fc.boolean(),
  fc.constant(null),
  fc.integer({ min: -1000, max: 100_000 }),
);

/**
 * Kubeconfig-shaped documents: mappings of scalars, mappings, sequences and empty `{}` / `[]` values; sequences hold
 * scalars and non-empty mappings (kubectl writes no sequence of sequences, no `- {}`).
 */
const kubeDocument = fc.letrec<{ value: Json; object: Record<string, Json>; array: Json[] }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    kubeScalar,
    tie("object"),
    tie("array"),
    fc.constantFrom("{}", "[]").map((s): Json => s === "{}" ? {} : []),
  ),
  object: objectOf(kubeKey, tie("value"), 1),
  array: fc.array(fc.oneof(kubeScalar, tie("object")), { minLength: 1, maxLength: 4 }),
})).object;

/** A small deterministic generator of choices, from a seed fast-check can shrink. */
function chooser(seed: number): (n: number) => number {
  let x = seed >>> 0;
  return (n) => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return (x >>> 16) % n;
  };
}

interface Layout {
  /** Spaces per level of mapping. */
  indent: number;
  /** Sequences one level deeper than their key (`key:\n  - x`) rather than at its column (`key:\n- x`). */
  indentedSequences: boolean;
  crlf: boolean;
  header: boolean;
  finalNewline: boolean;
  /** Sprinkle full-line comments, trailing comments and blank lines. */
  decorate: boolean;
  seed: number;
}

/**
 * Writes `doc` as kubectl's go-yaml writes a kubeconfig, but for the layout; `scalar` and `key` spell scalars and keys.
 * With `decorate`, adds what people add by hand: comments at any column, trailing comments, blank lines.
 */
function kubectlStyle(
  doc: Record<string, Json>,
  layout: Layout,
  scalar: (v: Json, pick: (n: number) => number) => string,
  key: (k: string, pick: (n: number) => number) => string = (k) => k,
): string {
  const pick = chooser(layout.seed);
  const lines: string[] = [];
  const trailing = () => (layout.decorate && pick(4) === 0 ? `${" ".repeat(1 + pick(2))}# c${pick(10)}` : "");
  const extra = () => {
    if (!layout.decorate) return;
    const r = pick(6);
    if (r === 0) lines.push("");
    if (r === 1) lines.push(" ".repeat(pick(8)));
    if (r === 2) lines.push(`${" ".repeat(pick(8))}# note: ${pick(100)}`);
  };
  const isEmpty = (v: Json) => typeof v === "object" && v !== null && Object.keys(v).length === 0;
  const inline = (v: Json) => Array.isArray(v) ? "[]" : typeof v === "object" && v !== null ? "{}" : scalar(v, pick);

  function mapping(obj: Record<string, Json>, col: number, first = "") {
    let lead = first;
    for (const [k, v] of Object.entries(obj)) {
      extra();
      const head = `${lead || " ".repeat(col)}${key(k, pick)}:`;
      lead = "";
      if (v === null || typeof v !== "object" || isEmpty(v)) lines.push(`${head} ${inline(v)}${trailing()}`);
      else if (Array.isArray(v)) {
        lines.push(`${head}${trailing()}`);
        sequence(v, layout.indentedSequences ? col + layout.indent : col);
      } else {
        lines.push(`${head}${trailing()}`);
        mapping(v, col + layout.indent);
      }
    }
  }
  function sequence(arr: Json[], col: number) {
    for (const v of arr) {
      extra();
      if (v !== null && typeof v === "object" && !Array.isArray(v) && !isEmpty(v)) {
        mapping(v, col + 2, `${" ".repeat(col)}- `);
      } else lines.push(`${" ".repeat(col)}- ${inline(v)}${trailing()}`);
    }
  }

  mapping(doc, 0);
  extra();
  const eol = layout.crlf ? "\r\n" : "\n";
  return (layout.header ? `---${eol}` : "") + lines.join(eol) + (layout.finalNewline ? eol : "");
}

const layout: fc.Arbitrary<Layout> = fc.record({
  indent: fc.integer({ min: 2, max: 4 }),
  indentedSequences: fc.boolean(),
  crlf: fc.boolean(),
  header: fc.boolean(),
  finalNewline: fc.boolean(),
  decorate: fc.boolean(),
  seed: fc.nat(),
});

/** How kubectl spells a scalar: plain when that reads back as the same value, else quoted one way or the other. */
function kubectlScalar(v: Json, pick: (n: number) => number): string {
  if (typeof v !== "string") return String(v);
  if (/^[a-zA-Z/._]/.test(v) && pick(3) > 0) {
    try {
      if ((load(`k: ${v}`, { schema: CORE_SCHEMA }) as { k: unknown }).k === v) return v;
    } catch {
      // not a plain scalar: quoted below
    }
  }
  return pick(2) === 0 ? `'${v.replaceAll("'", "''")}'` : JSON.stringify(v);
}

/** Any spelling of a scalar, right or wrong: raw, single-quoted, double-quoted. */
function anySpelling(v: Json, pick: (n: number) => number): string {
  if (typeof v !== "string") return String(v);
  const r = pick(3);
  return r === 0 ? v : r === 1 ? `'${v.replaceAll("'", "''")}'` : JSON.stringify(v);
}

const dumped = fc.tuple(anyDocument, fc.constantFrom(...DUMP_OPTIONS)).map(([doc, options]) => dump(doc, options));
const handWritten = fc.tuple(anyDocument, layout).map(([doc, l]) => kubectlStyle(doc, l, anySpelling, anySpelling));
const kubeconfigText = fc.oneof(
  fc.tuple(kubeDocument, fc.constantFrom<DumpOptions>({ lineWidth: -1, noArrayIndent: true }, { lineWidth: -1 }))
    .map(([doc, options]) => dump(doc, options)),
  fc.tuple(kubeDocument, layout).map(([doc, l]) => kubectlStyle(doc, l, kubectlScalar)),
);

const MUTATION_CHARS = [...SIGNIFICANT, ...LAYOUT];
type Mutation =
  | { op: "insert"; at: number; text: string }
  | { op: "replace"; at: number; text: string }
  | { op: "delete"; at: number; length: number }
  | { op: "duplicate-line"; line: number }
  | { op: "delete-line"; line: number }
  | { op: "reindent"; line: number; by: number; tab: boolean };

const inserted = fc.string({ unit: fc.constantFrom(...MUTATION_CHARS), minLength: 1, maxLength: 3 });
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant("insert" as const), at: fc.nat(), text: inserted }),
  fc.record({ op: fc.constant("replace" as const), at: fc.nat(), text: inserted }),
  fc.record({ op: fc.constant("delete" as const), at: fc.nat(), length: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ op: fc.constant("duplicate-line" as const), line: fc.nat() }),
  fc.record({ op: fc.constant("delete-line" as const), line: fc.nat() }),
  fc.record({
    op: fc.constant("reindent" as const),
    line: fc.nat(),
    by: fc.integer({ min: -3, max: 3 }),
    tab: fc.boolean(),
  }),
);

function mutate(text: string, m: Mutation): string {
  if (m.op === "delete") {
    const at = m.at % (text.length + 1);
    return text.slice(0, at) + text.slice(at + m.length);
  }
  if (m.op === "insert" || m.op === "replace") {
    const at = m.at % (text.length + 1);
    return text.slice(0, at) + m.text + text.slice(m.op === "insert" ? at : at + m.text.length);
  }
  const lines = text.split("\n");
  const i = m.line % lines.length;
  const line = lines[i]!;
  if (m.op === "duplicate-line") lines.splice(i, 0, line);
  else if (m.op === "delete-line") lines.splice(i, 1);
  else {
    const body = line.trimStart();
    const width = Math.max(0, line.length - body.length + m.by);
    lines[i] = (m.tab ? "\t" : "") + " ".repeat(width) + body;
  }
  return lines.join("\n");
}

const mutated = fc.tuple(
  fc.oneof(dumped, handWritten, { arbitrary: kubeconfigText, weight: 3 }),
  fc.array(mutation, { minLength: 1, maxLength: 4 }),
)
  .map(([text, ms]) => ms.reduce(mutate, text));

/** Lines of YAML-ish tokens at random indentation: a denser source of near-misses than random characters. */
const TOKENS = [
  "a",
  "b",
  "key",
  "a:",
  "b:",
  ":",
  ": ",
  "- ",
  "-",
  "#",
  " # c",
  "'x'",
  "'",
  '"y"',
  '"',
  '"\\u00e9"',
  "{}",
  "[]",
  "{",
  "[",
  "null",
  "~",
  "12",
  "-1",
  "1.5",
  "true",
  "x:y",
  "https://[::1]:6443",
  "&a",
  "*a",
  "!!str",
  "|",
  ">",
  "---",
  "...",
  "? ",
  "\t",
  " ",
  "  ",
  "é",
  "__proto__",
];
const tokenLines = fc.array(
  fc.tuple(fc.nat(6), fc.array(fc.constantFrom(...TOKENS), { minLength: 1, maxLength: 5 })).map(([indent, tokens]) =>
    " ".repeat(indent) + tokens.join("")
  ),
  { maxLength: 8 },
).map((lines) => lines.join("\n"));

const randomText = fc.string({ unit: fc.constantFrom(...MUTATION_CHARS, "\n", "\n", "\r\n"), maxLength: 60 });

Deno.test("kubeconfig YAML subset properties", async (t) => {
  await t.step("js-yaml's dump of any document, under any options, parses as js-yaml parses it back", () => {
    check(fc.property(dumped, assertContract));
  });
  await t.step(
    "any document written kubectl-style with any spelling of its scalars parses as js-yaml parses it",
    () => {
      check(fc.property(handWritten, assertContract));
    },
  );
  await t.step("a kubeconfig-shaped document as js-yaml's dump writes it is accepted and reads back whole", () => {
    check(
      fc.property(kubeDocument, fc.boolean(), (doc, noArrayIndent) => {
        assertAccepted(dump(doc, { lineWidth: -1, noArrayIndent }), doc);
      }),
    );
  });
  await t.step("a kubeconfig-shaped document as kubectl or a person writes it is accepted and reads back whole", () => {
    check(
      fc.property(kubeDocument, layout, (doc, l) => assertAccepted(kubectlStyle(doc, l, kubectlScalar), doc)),
    );
  });
  await t.step("a mutated document gives BEYOND_SUBSET or js-yaml's value, and never throws", () => {
    check(fc.property(mutated, assertContract));
  });
  await t.step("lines of YAML tokens give BEYOND_SUBSET or js-yaml's value", () => {
    check(fc.property(tokenLines, assertContract));
  });
  await t.step("random text gives BEYOND_SUBSET or js-yaml's value", () => {
    check(fc.property(randomText, assertContract));
  });
});
