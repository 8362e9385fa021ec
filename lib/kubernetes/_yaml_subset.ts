/**
 * The YAML that tools write for kubeconfigs, read without a YAML library. kubectl, kubeadm, k3s and client-go write a
 * kubeconfig as block mappings and sequences of one-line scalars; this parser reads that subset and gives up on
 * anything else (anchors, tags, block scalars, flow collections with content, multi-line scalars, floats, duplicate
 * keys ...), so that the caller parses the text with js-yaml instead. Where it does answer, it answers what js-yaml
 * with YAML 1.2's core schema answers (checked by differential tests). Why it exists: loading js-yaml, an npm package,
 * costs the proxy about 2.7 MiB of RSS for the few dozen lines of a node's kubeconfig (issue 14).
 *
 * @module
 */

/** Returned when the text uses YAML beyond the subset: the caller parses it with js-yaml instead. */
export const BEYOND_SUBSET: unique symbol = Symbol("beyond the YAML subset");

/** Thrown inside the parser on anything outside the subset; never escapes {@linkcode parseYamlSubset}. */
class Beyond extends Error {}

const beyond = (): never => {
  throw new Beyond();
};

/** Deeper nesting than any kubeconfig has; beyond it, js-yaml decides. */
const MAX_DEPTH = 32;

/** One line with content: its indentation and the rest (a comment-only or blank line is not one). */
interface Line {
  readonly indent: number;
  readonly text: string;
}

/**
 * Parses the block-style YAML subset that kubectl, kubeadm, k3s and client-go write for kubeconfigs: a top-level
 * mapping; block mappings and sequences (with `- ` at the parent key's column or indented); one-line plain,
 * single-quoted and double-quoted scalars; `null`, `~`, booleans and decimal integers as YAML 1.2's core schema
 * resolves them; `{}` and `[]`; comments, blank lines, one leading `---`, CRLF. Never throws.
 *
 * @returns The document, or {@linkcode BEYOND_SUBSET} when the text uses anything else (or is not valid YAML).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BEYOND_SUBSET, parseYamlSubset } from "./_yaml_subset.ts";
 * assert.deepEqual(parseYamlSubset("users:\n- name: a\n  user:\n    token: t\n"), {
 *   users: [{ name: "a", user: { token: "t" } }],
 * });
 * assert.equal(parseYamlSubset("a: &x 1\nb: *x\n"), BEYOND_SUBSET);
 * ```
 */
export function parseYamlSubset(text: string): unknown {
  try {
    const lines = contentLines(text);
    if (lines.length === 0 || (lines[0] as Line).indent !== 0) return BEYOND_SUBSET;
    const parser = new Parser(lines);
    const doc = parser.mapping(0, 0);
    if (!parser.done) return BEYOND_SUBSET;
    return doc;
  } catch {
    // Beyond, or anything unforeseen (a RangeError, say): js-yaml decides, and reports what is wrong.
    return BEYOND_SUBSET;
  }
}

/** Characters outside the subset anywhere in the text: controls, tabs, BOM, line and paragraph separators. */
const FOREIGN_CHARS = /[^\n\x20-\x7E\u00A0-\u2027\u202A-\uFEFE\uFF00-\uFFFD\uD800-\uDFFF]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function contentLines(text: string): Line[] {
  const raw = text.replaceAll("\r\n", "\n");
  if (FOREIGN_CHARS.test(raw) || LONE_SURROGATE.test(raw)) beyond();
  const out: Line[] = [];
  let first = true;
  for (const line of raw.split("\n")) {
    // YAML's white space is the space (and the tab, which is beyond); String's trim would also take U+00A0 and such.
    const body = trimSpaces(line);
    if (body === "" || body.startsWith("#")) continue;
    const indent = line.indexOf(body);
    if (indent === 0 && (body.startsWith("---") || body.startsWith("...") || body.startsWith("%"))) {
      // One leading "---", alone or before a comment, starts the document; any other marker or directive is beyond.
      // (Spaces only: js-yaml reads "---" and U+00A0 as the start of a plain scalar.)
      if (!first || !/^---(?: +#.*)?$/.test(body)) beyond();
      first = false;
      continue;
    }
    first = false;
    out.push({ indent, text: body });
  }
  return out;
}

class Parser {
  #at = 0;

  constructor(readonly lines: readonly Line[]) {}

  get done(): boolean {
    return this.#at >= this.lines.length;
  }

  #peek(): Line | undefined {
    return this.lines[this.#at];
  }

  /**
   * A block mapping whose keys sit at column `indent`; its first entry is `first` (the rest of a `- ` line) or the
   * next line.
   */
  mapping(indent: number, depth: number, first?: string): Record<string, unknown> {
    if (depth > MAX_DEPTH) beyond();
    const out: Record<string, unknown> = {};
    let entry = first;
    if (entry === undefined) {
      const line = this.#peek();
      if (line === undefined || line.indent !== indent) return beyond();
      entry = line.text;
      this.#at++;
    }
    for (;;) {
      const { key, rest } = splitEntry(entry);
      if (Object.hasOwn(out, key)) beyond();
      out[key] = this.#value(rest, indent, depth, true);
      const next = this.#peek();
      if (next === undefined || next.indent < indent) return out;
      if (next.indent > indent || isSequenceEntry(next.text)) beyond();
      entry = next.text;
      this.#at++;
    }
  }

  /** A block sequence whose `-` sit at column `indent`; the current line is its first entry. */
  #sequence(indent: number, depth: number): unknown[] {
    if (depth > MAX_DEPTH) beyond();
    const out: unknown[] = [];
    for (;;) {
      const line = this.#peek();
      if (line === undefined || line.indent !== indent || !isSequenceEntry(line.text)) return out;
      this.#at++;
      const after = line.text.slice(1);
      const content = trimSpaces(after);
      if (content === "" || content.startsWith("#")) {
        const value = this.#nested(indent, depth, false);
        // js-yaml reads a `-` at a shallower column right after an empty last entry as one more entry of this
        // sequence (YAML says it belongs to the outer one): js-yaml decides such a text.
        const next = this.#peek();
        if (value === null && next !== undefined && next.indent < indent && isSequenceEntry(next.text)) beyond();
        out.push(value);
      } else if (isSequenceEntry(content)) {
        return beyond();
      } else if (isMappingEntry(content)) {
        out.push(this.mapping(indent + 1 + after.length - content.length, depth + 1, content));
      } else {
        out.push(scalar(content));
      }
      const next = this.#peek();
      if (next !== undefined && next.indent > indent) beyond();
    }
  }

  /** The value after `key:` (`rest`), or the block on the lines below it when `rest` is empty. */
  #value(rest: string, indent: number, depth: number, inMapping: boolean): unknown {
    if (rest !== "" && !rest.startsWith("#")) return scalar(rest);
    return this.#nested(indent, depth, inMapping);
  }

  /** A block below a key or a `-` at column `indent`: deeper, or a sequence at the key's own column; else null. */
  #nested(indent: number, depth: number, inMapping: boolean): unknown {
    const next = this.#peek();
    if (next === undefined || next.indent < indent) return null;
    if (next.indent === indent) {
      return inMapping && isSequenceEntry(next.text) ? this.#sequence(indent, depth + 1) : null;
    }
    return isSequenceEntry(next.text) ? this.#sequence(next.indent, depth + 1) : this.mapping(next.indent, depth + 1);
  }
}

/** The text without its leading and trailing spaces (a loop: a regular expression for it is quadratic on spaces). */
function trimSpaces(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && text.charCodeAt(start) === 0x20) start++;
  while (end > start && text.charCodeAt(end - 1) === 0x20) end--;
  return text.slice(start, end);
}

function isSequenceEntry(text: string): boolean {
  return text === "-" || text.startsWith("- ");
}

function isMappingEntry(text: string): boolean {
  if (text.startsWith('"') || text.startsWith("'")) {
    const end = quotedEnd(text);
    return text[end] === ":" && (end + 1 === text.length || text[end + 1] === " ");
  }
  return keyEnd(text) >= 0;
}

/** Where a plain key's `:` is (followed by a space or the end), or -1; a comment before it means no key. */
function keyEnd(text: string): number {
  for (let i = 0; i < text.length; i++) {
    if (text[i] === ":" && (i + 1 === text.length || text[i + 1] === " ")) return i;
    if (text[i] === "#" && i > 0 && text[i - 1] === " ") return -1;
  }
  return -1;
}

/** Splits `key: rest` (rest trimmed); a key the subset cannot name exactly is beyond. */
function splitEntry(text: string): { key: string; rest: string } {
  let key: string;
  let end: number;
  if (text.startsWith('"') || text.startsWith("'")) {
    end = quotedEnd(text);
    key = unquote(text.slice(0, end));
  } else {
    end = keyEnd(text);
    if (end < 0) beyond();
    key = text.slice(0, end);
    if (key.endsWith(" ") || resolvePlain(key) !== key) beyond();
  }
  if (text[end] !== ":" || (end + 1 < text.length && text[end + 1] !== " ")) beyond();
  // `__proto__` and `<<` (a merge key elsewhere) are keys that YAML libraries treat specially.
  if (key === "__proto__" || key === "<<") beyond();
  return { key, rest: trimSpaces(text.slice(end + 1)) };
}

/** A scalar value that fills the rest of a line (a comment may follow it). */
function scalar(text: string): unknown {
  if (text.startsWith('"') || text.startsWith("'")) {
    const end = quotedEnd(text);
    const after = text.slice(end);
    if (after !== "" && !/^ +#/.test(after)) beyond();
    return unquote(text.slice(0, end));
  }
  const comment = text.indexOf(" #");
  const plain = trimSpaces(comment < 0 ? text : text.slice(0, comment));
  if (plain === "{}") return {};
  if (plain === "[]") return [];
  if (plain.includes(": ") || plain.endsWith(":")) beyond();
  return resolvePlain(plain);
}

/** Indicators a plain scalar of the subset may not start with (some would be plain in YAML, but rarely are). */
const PLAIN_FIRST_FORBIDDEN = new Set("-?:,[]{}#&*!|>'\"%@`".split(""));

/** Every plain scalar the core schema reads as an integer or a float (js-yaml's patterns, widened). */
const NUMBER_LIKE =
  /^(?:[-+]?(?:0b[01_]*|0x[0-9a-fA-F_]*|0o[0-7_]*|[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?)|\.[0-9]+(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/;

/** A plain scalar as the core schema resolves it: null, a boolean, a decimal integer, or the string itself. */
function resolvePlain(plain: string): unknown {
  const first = plain[0];
  if (first === undefined) return null;
  if (/^(?:0|-?[1-9][0-9]{0,14})$/.test(plain)) return Number(plain);
  // Any other spelling the core schema may read as a number is left to js-yaml; `10.0.0.1`, a bootstrap token
  // `07401b.f395accd246ae52d` or base64 `0AA=` are strings.
  if (NUMBER_LIKE.test(plain)) beyond();
  // `-` starts a plain scalar when a letter or `-` follows it: an exec plugin's `--region`.
  if (/^-(?![A-Za-z-])/.test(plain) || (first !== "-" && PLAIN_FIRST_FORBIDDEN.has(first))) beyond();
  switch (plain) {
    case "~":
    case "null":
    case "Null":
    case "NULL":
      return null;
    case "true":
    case "True":
    case "TRUE":
      return true;
    case "false":
    case "False":
    case "FALSE":
      return false;
  }
  return plain;
}

/** The index just past the closing quote of the quoted scalar `text` starts with; beyond when it is not closed. */
function quotedEnd(text: string): number {
  const q = text[0];
  for (let i = 1; i < text.length; i++) {
    const c = text[i];
    if (q === '"' && c === "\\") {
      i++;
    } else if (c === q) {
      if (q === "'" && text[i + 1] === "'") i++;
      else return i + 1;
    }
  }
  return beyond();
}

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = {
  "\\": "\\",
  '"': '"',
  "/": "/",
  n: "\n",
  t: "\t",
  r: "\r",
  "0": "\0",
  b: "\b",
};
const HEX_ESCAPE_LENGTH: Readonly<Record<string, number>> = { x: 2, u: 4, U: 8 };

/** The value of a whole quoted scalar, quotes included. */
function unquote(quoted: string): string {
  const body = quoted.slice(1, -1);
  if (quoted[0] === "'") return body.replaceAll("''", "'");
  let out = "";
  for (let i = 0; i < body.length; i++) {
    const c = body[i] as string;
    if (c !== "\\") {
      out += c;
      continue;
    }
    const e = body[++i] ?? beyond();
    const simple = SIMPLE_ESCAPES[e];
    if (simple !== undefined) {
      out += simple;
      continue;
    }
    const length = HEX_ESCAPE_LENGTH[e] ?? beyond();
    const hex = body.slice(i + 1, i + 1 + length);
    if (!/^[0-9A-Fa-f]+$/.test(hex) || hex.length !== length) beyond();
    const code = parseInt(hex, 16);
    if (code > 0x10FFFF) beyond();
    out += String.fromCodePoint(code);
    i += length;
  }
  return out;
}
