/**
 * The parser of the Go-template subset in `deploy_go_template.ts`: text and `{{ }}` actions (with `{{-`/`-}}`
 * trimming and comments) into a tree of text, actions, `if`, `range` and `with` nodes; `define`s are collected by name.
 * Anything outside the subset throws.
 *
 * @module
 */

/** A template value: whatever the values and the functions hold. */
export type Value = unknown;
/** A node of a parsed template. */
export type Node =
  | { readonly kind: "text"; readonly text: string }
  | { readonly kind: "action"; readonly pipe: Pipeline }
  | { readonly kind: "if"; readonly branches: { cond: Pipeline; body: Node[] }[]; readonly otherwise: Node[] }
  | { readonly kind: "range"; readonly pipe: Pipeline; readonly body: Node[]; readonly otherwise: Node[] }
  | { readonly kind: "with"; readonly pipe: Pipeline; readonly body: Node[]; readonly otherwise: Node[] };
/** One operand of a command. */
export type Operand =
  | { readonly kind: "field"; readonly base: "dot" | string; readonly path: readonly string[] }
  | { readonly kind: "literal"; readonly value: Value }
  | { readonly kind: "ident"; readonly name: string }
  | { readonly kind: "sub"; readonly pipe: Pipeline };
/** A pipeline: optional variable declaration, then commands joined by `|`. */
export interface Pipeline {
  readonly decl: readonly string[];
  readonly assign: ":=" | "=" | undefined;
  readonly commands: readonly (readonly Operand[])[];
}

function fail(message: string): never {
  throw new Error(`template: ${message}`);
}

/** Parses one template file; its `define`s are added to `defines`, its body is returned. */
export function parseTemplate(text: string, name: string, defines: Map<string, Node[]>): Node[] {
  return parseNodes(lex(text, name), 0, name, defines).nodes;
}

type Token = { readonly kind: "text"; readonly text: string } | { readonly kind: "action"; readonly src: string };

function lex(text: string, name: string): Token[] {
  const tokens: Token[] = [];
  let pos = 0;
  let trimNext = false;
  while (pos < text.length) {
    const open = text.indexOf("{{", pos);
    let chunk = open < 0 ? text.slice(pos) : text.slice(pos, open);
    if (trimNext) chunk = chunk.replace(/^\s+/, "");
    if (open < 0) {
      tokens.push({ kind: "text", text: chunk });
      break;
    }
    const trimPrev = text.startsWith("{{- ", open);
    if (trimPrev) chunk = chunk.replace(/\s+$/, "");
    tokens.push({ kind: "text", text: chunk });
    const close = text.indexOf("}}", open);
    if (close < 0) fail(`${name}: unclosed action`);
    const trimAfter = text[close - 1] === "-" && text[close - 2] === " ";
    let src = text.slice(open + (trimPrev ? 3 : 2), trimAfter ? close - 1 : close).trim();
    if (src.startsWith("/*")) {
      if (!src.endsWith("*/")) fail(`${name}: unclosed comment`);
      src = "";
    }
    if (src !== "") tokens.push({ kind: "action", src });
    trimNext = trimAfter;
    pos = close + 2;
  }
  return tokens.filter((t) => t.kind === "action" || t.text !== "");
}

function parseNodes(
  tokens: Token[],
  start: number,
  name: string,
  defines: Map<string, Node[]>,
): { nodes: Node[]; end: number; stop: string | undefined } {
  const nodes: Node[] = [];
  let i = start;
  while (i < tokens.length) {
    const t = tokens[i]!;
    i++;
    if (t.kind === "text") {
      nodes.push({ kind: "text", text: t.text });
      continue;
    }
    const [word, rest] = splitKeyword(t.src);
    if (word === "end" || word === "else") return { nodes, end: i, stop: t.src };
    if (word === "define") {
      const inner = parseNodes(tokens, i, name, defines);
      if (inner.stop !== "end") fail(`${name}: define without end`);
      defines.set(JSON.parse(rest), inner.nodes);
      i = inner.end;
    } else if (word === "if") {
      const branches: { cond: Pipeline; body: Node[] }[] = [];
      let cond = rest;
      let otherwise: Node[] = [];
      for (;;) {
        const inner = parseNodes(tokens, i, name, defines);
        i = inner.end;
        branches.push({ cond: parsePipeline(cond), body: inner.nodes });
        if (inner.stop === "end") break;
        if (inner.stop?.startsWith("else if ")) {
          cond = inner.stop.slice("else if ".length);
          continue;
        }
        if (inner.stop !== "else") fail(`${name}: if without end`);
        const last = parseNodes(tokens, i, name, defines);
        if (last.stop !== "end") fail(`${name}: else without end`);
        otherwise = last.nodes;
        i = last.end;
        break;
      }
      nodes.push({ kind: "if", branches, otherwise });
    } else if (word === "range" || word === "with") {
      const inner = parseNodes(tokens, i, name, defines);
      i = inner.end;
      let otherwise: Node[] = [];
      if (inner.stop === "else") {
        const last = parseNodes(tokens, i, name, defines);
        if (last.stop !== "end") fail(`${name}: else without end`);
        otherwise = last.nodes;
        i = last.end;
      } else if (inner.stop !== "end") fail(`${name}: ${word} without end`);
      nodes.push({ kind: word, pipe: parsePipeline(rest), body: inner.nodes, otherwise });
    } else if (["template", "block", "break", "continue"].includes(word)) {
      fail(`${name}: '${word}' is outside the subset this renderer supports`);
    } else {
      nodes.push({ kind: "action", pipe: parsePipeline(t.src) });
    }
  }
  return { nodes, end: i, stop: undefined };
}

function splitKeyword(src: string): [string, string] {
  const m = /^([a-z]+)\b\s*(.*)$/s.exec(src);
  return m ? [m[1]!, m[2]!] : ["", src];
}

const TOKEN =
  /\s*(?:("(?:[^"\\]|\\.)*")|(`[^`]*`)|(\()|(\))|(\|)|(:=|=)|(,)|(\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)|(\.[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*|\.)|(-?\d+(?:\.\d+)?)|([A-Za-z_][A-Za-z0-9_]*))/y;

function parsePipeline(src: string): Pipeline {
  const words: string[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < src.length) {
    if (/^\s*$/.test(src.slice(TOKEN.lastIndex))) break;
    const at = TOKEN.lastIndex;
    const m = TOKEN.exec(src);
    if (m === null) fail(`cannot parse '${src.slice(at)}' in '${src}'`);
    words.push(m![0].trim());
  }
  let pos = 0;
  let decl: string[] = [];
  let assign: ":=" | "=" | undefined;
  const declEnd = words.findIndex((w) => w === ":=" || w === "=");
  if (declEnd > 0 && words.slice(0, declEnd).every((w) => w.startsWith("$") || w === ",")) {
    decl = words.slice(0, declEnd).filter((w) => w !== ",");
    assign = words[declEnd] as ":=" | "=";
    pos = declEnd + 1;
  }
  const commands: Operand[][] = [[]];
  const operand = (): Operand => {
    const w = words[pos++]!;
    if (w === "(") {
      let depth = 1;
      const startAt = pos;
      while (depth > 0) {
        if (pos >= words.length) fail(`unclosed ( in '${src}'`);
        if (words[pos] === "(") depth++;
        if (words[pos] === ")") depth--;
        pos++;
      }
      return { kind: "sub", pipe: parsePipeline(words.slice(startAt, pos - 1).join(" ")) };
    }
    if (w.startsWith('"')) return { kind: "literal", value: JSON.parse(w) };
    if (w.startsWith("`")) return { kind: "literal", value: w.slice(1, -1) };
    if (w === ".") return { kind: "field", base: "dot", path: [] };
    if (w.startsWith(".")) return { kind: "field", base: "dot", path: w.slice(1).split(".") };
    if (w.startsWith("$")) {
      const [base, ...path] = w.split(".");
      return { kind: "field", base: base!, path };
    }
    if (/^-?\d/.test(w)) return { kind: "literal", value: Number(w) };
    if (w === "true" || w === "false") return { kind: "literal", value: w === "true" };
    if (w === "nil") return { kind: "literal", value: null };
    return { kind: "ident", name: w };
  };
  while (pos < words.length) {
    if (words[pos] === "|") {
      commands.push([]);
      pos++;
      continue;
    }
    if (words[pos] === ")" || words[pos] === ",") fail(`unexpected '${words[pos]}' in '${src}'`);
    commands.at(-1)!.push(operand());
  }
  if (commands.some((c) => c.length === 0)) fail(`empty command in '${src}'`);
  return { decl, assign, commands };
}
