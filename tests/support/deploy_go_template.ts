/**
 * A strict subset of Go's text/template with the Helm/sprig functions the chart uses, so that tests can render the
 * chart where no `helm` binary exists. Anything outside the subset throws: a template that grows fancier than this
 * file understands fails the test, which keeps the templates simple.
 *
 * Supported: text and `{{ }}` actions with `{{-`/`-}}` trimming and comments; pipelines with `|`; fields (`.A.B`),
 * variables (`$`, `$x`, `$x.A`), string, number, bool and nil literals, parentheses; `:=` and `=`; `if`/`else if`/
 * `else`, `range` (lists, and maps in key order), `with`, `define`; the functions in {@linkcode FUNCTIONS}; methods
 * given as JavaScript functions in the data (Helm's `.Files.Get`).
 *
 * @module
 */
import { stringify } from "yaml";
import { type Node, type Operand, parseTemplate, type Pipeline, type Value } from "./deploy_go_template_parse.ts";

/** Templates by name (`define`d ones and files), and the function that renders one of them. */
export class TemplateSet {
  readonly #templates = new Map<string, Node[]>();

  /** Adds a file: its `define`s become named templates, its body the template named after the file. */
  add(name: string, text: string): void {
    this.#templates.set(name, parseTemplate(text, name, this.#templates));
  }

  /** Renders a template with `dot` as `.` and `$`. */
  render(name: string, dot: Value): string {
    const nodes = this.#templates.get(name);
    if (nodes === undefined) throw new Error(`template: no template "${name}"`);
    return this.#exec(nodes, dot, [new Map([["$", dot]])]);
  }

  #exec(nodes: readonly Node[], dot: Value, scopes: Map<string, Value>[]): string {
    let out = "";
    for (const node of nodes) {
      switch (node.kind) {
        case "text":
          out += node.text;
          break;
        case "action": {
          const v = this.#pipe(node.pipe, dot, scopes);
          if (node.pipe.assign === undefined) out += print(v);
          break;
        }
        case "if": {
          const branch = node.branches.find((b) => truthy(this.#pipe(b.cond, dot, scopes)));
          out += this.#exec(branch ? branch.body : node.otherwise, dot, [...scopes, new Map()]);
          break;
        }
        case "with": {
          const v = this.#pipe({ ...node.pipe, decl: [], assign: undefined }, dot, scopes);
          out += truthy(v)
            ? this.#exec(node.body, v, [...scopes, new Map()])
            : this.#exec(node.otherwise, dot, [...scopes, new Map()]);
          break;
        }
        case "range": {
          const v = this.#pipe({ ...node.pipe, decl: [], assign: undefined }, dot, scopes);
          const entries: [Value, Value][] = Array.isArray(v)
            ? v.map((e, i) => [i, e])
            : isMap(v)
            ? Object.keys(v).sort().map((k) => [k, v[k]])
            : v === null || v === undefined
            ? []
            : fail(`range can't iterate over ${print(v)}`);
          if (entries.length === 0) out += this.#exec(node.otherwise, dot, [...scopes, new Map()]);
          for (const [k, e] of entries) {
            const scope = new Map<string, Value>();
            if (node.pipe.decl.length === 2) scope.set(node.pipe.decl[0]!, k).set(node.pipe.decl[1]!, e);
            else if (node.pipe.decl.length === 1) scope.set(node.pipe.decl[0]!, e);
            out += this.#exec(node.body, e, [...scopes, scope]);
          }
          break;
        }
      }
    }
    return out;
  }

  #pipe(pipe: Pipeline, dot: Value, scopes: Map<string, Value>[]): Value {
    let v: Value = undefined;
    let first = true;
    for (const cmd of pipe.commands) {
      v = this.#command(cmd, dot, scopes, first ? [] : [v]);
      first = false;
    }
    if (pipe.assign === ":=") scopes.at(-1)!.set(pipe.decl[0]!, v);
    if (pipe.assign === "=") {
      const scope = [...scopes].reverse().find((s) => s.has(pipe.decl[0]!));
      if (scope === undefined) fail(`undefined variable: ${pipe.decl[0]}`);
      scope!.set(pipe.decl[0]!, v);
    }
    return v;
  }

  #command(cmd: readonly Operand[], dot: Value, scopes: Map<string, Value>[], piped: Value[]): Value {
    const [head, ...rest] = cmd;
    if (head?.kind === "ident") {
      const args = [...rest.map((o) => this.#operand(o, dot, scopes)), ...piped];
      if (head.name === "include") return this.render(String(args[0]), args[1]);
      const fn = FUNCTIONS[head.name];
      if (fn === undefined) fail(`function "${head.name}" not defined`);
      return fn!(...args);
    }
    const v = this.#operand(head!, dot, scopes);
    // A method reached as a field, such as Helm's `.Files.Get "path"`.
    if (typeof v === "function") return v(...rest.map((o) => this.#operand(o, dot, scopes)), ...piped);
    if (cmd.length !== 1 || piped.length > 0) fail("can't give argument to non-function");
    return v;
  }

  #operand(o: Operand, dot: Value, scopes: Map<string, Value>[]): Value {
    switch (o.kind) {
      case "literal":
        return o.value;
      case "sub":
        return this.#pipe(o.pipe, dot, scopes);
      case "ident":
        return fail(`function "${o.name}" used as a value`);
      case "field": {
        let v: Value = dot;
        if (o.base !== "dot") {
          const scope = [...scopes].reverse().find((s) => s.has(o.base));
          if (scope === undefined) fail(`undefined variable: ${o.base}`);
          v = scope!.get(o.base);
        }
        for (const key of o.path) {
          v = isMap(v) ? v[key] : v === null || v === undefined ? undefined : fail(`can't read .${key} of ${print(v)}`);
        }
        return v;
      }
    }
  }
}

function fail(message: string): never {
  throw new Error(`template: ${message}`);
}

function isMap(v: Value): v is Record<string, Value> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Go's truth: false, 0, nil and empty strings, lists and maps are false. */
export function truthy(v: Value): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === "") return false;
  if (Array.isArray(v)) return v.length > 0;
  if (isMap(v)) return Object.keys(v).length > 0;
  return true;
}

function print(v: Value): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return fail(`refusing to print a ${Array.isArray(v) ? "list" : "map"} (use toYaml)`);
}

function kindOf(v: Value): string {
  if (v === null || v === undefined) return "invalid";
  if (typeof v === "string") return "string";
  if (typeof v === "boolean") return "bool";
  if (typeof v === "number") return Number.isInteger(v) ? "int" : "float64";
  return Array.isArray(v) ? "slice" : "map";
}

function printf(format: string, ...args: Value[]): string {
  let i = 0;
  return format.replace(/%([svd%])/g, (_, verb: string) => {
    if (verb === "%") return "%";
    if (i >= args.length) fail(`printf: missing argument for %${verb}`);
    return print(args[i++]);
  });
}

function indent(n: number, s: Value): string {
  return String(print(s)).split("\n").map((l) => " ".repeat(n) + l).join("\n");
}

/** The functions of the subset (Go builtins and the sprig/Helm ones the chart uses). */
export const FUNCTIONS: Readonly<Record<string, (...args: Value[]) => Value>> = {
  and: (...a) => a.find((x) => !truthy(x)) ?? a.at(-1),
  or: (...a) => a.find((x) => truthy(x)) ?? a.at(-1),
  not: (a) => !truthy(a),
  eq: (a, ...b) => b.some((x) => x === a),
  ne: (a, b) => a !== b,
  empty: (a) => !truthy(a),
  default: (d, v) => truthy(v) ? v : d,
  required: (message, v) => v === null || v === undefined || v === "" ? fail(String(message)) : v,
  fail: (message) => fail(String(message)),
  quote: (...a) => a.map((x) => JSON.stringify(print(x))).join(" "),
  printf: (format, ...a) => printf(String(format), ...a),
  join: (sep, list) => Array.isArray(list) ? list.map(print).join(String(sep)) : print(list),
  list: (...a) => a,
  has: (needle, list) => Array.isArray(list) && list.includes(needle),
  hasPrefix: (prefix, s) => String(print(s)).startsWith(String(prefix)),
  trimSuffix: (suffix, s) => print(s).endsWith(String(suffix)) ? print(s).slice(0, -String(suffix).length) : print(s),
  trunc: (n, s) => print(s).slice(0, Number(n)),
  kindIs: (kind, v) => kindOf(v) === kind,
  index: (v, ...keys) =>
    keys.reduce((acc: Value, k) => (isMap(acc) || Array.isArray(acc) ? (acc as never)[k as never] : undefined), v),
  toYaml: (v) => v === null || v === undefined ? "null" : stringify(v).replace(/\n$/, ""),
  nindent: (n, s) => `\n${indent(Number(n), s)}`,
  indent: (n, s) => indent(Number(n), s),
  toString: (v: Value) => print(v),
};
