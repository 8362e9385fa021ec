/**
 * The argv parser and `--help`, both driven by a mode's flag table: one parser for every command line, so the
 * spellings cannot drift apart between modes.
 *
 * Spellings (those of Go's flag package, which endpoint-copier-operator's Deployments use, plus the GNU double dash):
 * `--name=value`, `--name value`, `-name=value`, `-name value`. A `bool` flag alone means true; it takes the next
 * argument as its value only when that is a boolean word (`--leader-elect false`), so a stray argument after a switch
 * is reported as stray. A flag given twice: the last one wins. `--` ends the options. `-h`/`--help` and
 * `-v`/`--version` answer wherever they stand, even beside mistakes. Nothing here reads `Deno.args` or `Deno.env`.
 *
 * @module
 */
import { ConfigError } from "../errors.ts";
import { configOutcome, type FlagSpec, type ParseOutcome, type RawValues, resolveRaw } from "./flags.ts";
import { isBoolWord } from "./values.ts";

/** Build facts shown by `--version`. */
export interface VersionInfo {
  readonly version: string;
  readonly revision?: string | undefined;
}

/** Another mode of the program, chosen by its word as the first argument (`extractedprism endpoint-copier`). */
export interface CommandMode {
  readonly name: string;
  /** One line for `--help`. */
  readonly summary: string;
}

/** One command: its name and help text, its flag table, and how raw values become its config. */
export interface CommandSpec<C> {
  /** As typed, e.g. `extractedprism endpoint-copier`. */
  readonly name: string;
  readonly description: string;
  readonly flags: readonly FlagSpec[];
  /** Validates raw values; throws `ConfigError` with a one-line message. */
  readonly build: (raw: RawValues) => C;
  /** The other modes, listed in `--help` and named when an unknown word comes first (the caller dispatches them). */
  readonly modes?: readonly CommandMode[];
}

/** What argv asks for, before any value is converted. */
export type ArgvReading =
  | { readonly kind: "values"; readonly values: Readonly<Record<string, string>> }
  | { readonly kind: "help" }
  | { readonly kind: "version" };

/**
 * Reads argv against a flag table into flag-name -> text.
 *
 * @param modes The other modes' words: a first argument that looks like one is reported as an unknown command.
 * @throws {ConfigError} The first mistake, one line: `unknown option '--x'`, `unexpected argument 'x'`,
 *   `unknown command 'x' (modes: a, b)`, `option '--bind-port <port>' argument missing`; unless `-h`/`--help` or
 *   `-v`/`--version` comes too.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readArgv } from "./command_line.ts";
 * import { flag } from "./flags.ts";
 * const flags = [flag("leader-elect", "false", "bool", "elect"), flag("kubeconfig", undefined, "path", "file")];
 * const r = readArgv(["-kubeconfig", "/k", "--leader-elect", "--kubeconfig=/last"], flags);
 * assert(r.kind === "values" && r.values["kubeconfig"] === "/last" && r.values["leader-elect"] === "true");
 * assert(readArgv(["--bogus", "-h"], flags).kind === "help");
 * ```
 */
export function readArgv(
  argv: readonly string[],
  flags: readonly FlagSpec[],
  modes: readonly string[] = [],
): ArgvReading {
  const known = new Map(flags.map((f) => [f.name, f]));
  const values: Record<string, string> = {};
  let mistake: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--") {
      mistake ??= argv.length > i + 1 ? `unexpected argument '${argv[i + 1]}'` : undefined;
      break;
    }
    if (arg === "-" || !arg.startsWith("-")) {
      const command = i === 0 && modes.length > 0 && /^[a-z][a-z0-9-]*$/.test(arg);
      mistake ??= command ? `unknown command '${arg}' (modes: ${modes.join(", ")})` : `unexpected argument '${arg}'`;
      continue;
    }
    const eq = arg.indexOf("=");
    const name = (eq < 0 ? arg : arg.slice(0, eq)).replace(/^--?/, "");
    const inline = eq < 0 ? undefined : arg.slice(eq + 1);
    const spec = known.get(name);
    if (spec === undefined) {
      if (inline === undefined && (name === "h" || name === "help")) return { kind: "help" };
      if (inline === undefined && (name === "v" || name === "version")) return { kind: "version" };
      mistake ??= `unknown option '${arg}'`;
    } else if (inline !== undefined) {
      values[name] = inline;
    } else if (spec.valueName === "bool") {
      const next = argv[i + 1];
      values[name] = next !== undefined && isBoolWord(next) ? (i++, next) : "true";
    } else if (i + 1 < argv.length) {
      values[name] = argv[++i] as string;
    } else {
      mistake ??= `option '--${name} <${spec.valueName}>' argument missing`;
    }
  }
  if (mistake !== undefined) throw new ConfigError(mistake);
  return { kind: "values", values };
}

/**
 * Parses argv against a command's flag table, fills gaps from the environment, and builds the config. `--help` and
 * `--version` exit 0 with their text on stdout; any mistake exits 2 with one line `error: ...` on stderr.
 *
 * @param env Environment variables (only the flags' `EP_*` names are read).
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCommand } from "./command_line.ts";
 * import { flag } from "./flags.ts";
 * import { port } from "./values.ts";
 * const spec = {
 *   name: "demo",
 *   description: "A demo.",
 *   flags: [flag("port", "80", "port", "port to use")],
 *   build: (raw: ReadonlyMap<string, { text: string }>) => port(raw.get("port")?.text ?? ""),
 * };
 * const ok = parseCommand(spec, ["-port", "8080"], {}, { version: "1.0.0" });
 * assert(ok.kind === "ok" && ok.config === 8080);
 * const bad = parseCommand(spec, ["--prot=1"], {}, { version: "1.0.0" });
 * assert(bad.kind === "exit" && bad.code === 2 && bad.stderr === "error: unknown option '--prot=1'\n");
 * ```
 */
export function parseCommand<C>(
  spec: CommandSpec<C>,
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  info: VersionInfo,
): ParseOutcome<C> {
  const read = configOutcome(() => readArgv(argv, spec.flags, spec.modes?.map((m) => m.name)));
  if (read.kind === "exit") return read;
  const r = read.config;
  if (r.kind === "help") return { kind: "exit", code: 0, stdout: renderHelp(spec), stderr: "" };
  if (r.kind === "version") {
    const text = info.revision ? `${info.version} (${info.revision})` : info.version;
    return { kind: "exit", code: 0, stdout: `${text}\n`, stderr: "" };
  }
  return configOutcome(() => spec.build(resolveRaw(spec.flags, r.values, env)));
}

/** `--help` is plain text of this width whatever the terminal: no colour, nothing read from the environment. */
const WIDTH = 100;
const INDENT = "      ";

const SPELLINGS = "Each flag may be written --name=value, --name value, -name=value or -name value; a [bool] flag " +
  "alone means true. A flag given twice: the last one wins. A flag not given takes its EP_* variable (an empty one " +
  "counts as unset), else its default. -- ends the options.";

/** Words of `text` in lines of at most {@link WIDTH} characters, each line starting with `indent`. */
function wrap(text: string, indent: string): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter((w) => w !== "")) {
    if (line !== "" && indent.length + line.length + 1 + word.length > WIDTH) {
      lines.push(indent + line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  if (line !== "") lines.push(indent + line);
  return lines;
}

/**
 * `--help` from a command's table: usage, description, each flag with its value name, help, default and variable.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { renderHelp } from "./command_line.ts";
 * import { flag } from "./flags.ts";
 * const help = renderHelp({ name: "demo", description: "A demo.", flags: [flag("port", "80", "port", "port to use")] });
 * assert(help.startsWith("Usage: demo [options]\n") && help.includes("[default: 80; env: EP_PORT]"));
 * ```
 */
export function renderHelp(spec: Pick<CommandSpec<unknown>, "name" | "description" | "flags" | "modes">): string {
  const lines = [`Usage: ${spec.name} [options]`];
  for (const m of spec.modes ?? []) lines.push(`       ${spec.name} ${m.name} [options]`);
  lines.push("", ...wrap(spec.description, ""), "");
  if (spec.modes !== undefined && spec.modes.length > 0) {
    lines.push("Modes (the first argument; each has its own --help):");
    for (const m of spec.modes) lines.push(`  ${m.name}`, ...wrap(m.summary, INDENT));
    lines.push("");
  }
  lines.push("Options:");
  for (const f of spec.flags) {
    lines.push(`  --${f.name} ${f.valueName === "bool" ? `[${f.valueName}]` : `<${f.valueName}>`}`);
    lines.push(...wrap(f.help, INDENT));
    lines.push(`${INDENT}[${f.default !== undefined ? `default: ${f.default}; ` : ""}env: ${f.env}]`);
  }
  lines.push("  -h, --help", `${INDENT}show this help and exit`);
  lines.push("  -v, --version", `${INDENT}print the version (and build revision) and exit`, "");
  lines.push(...wrap(SPELLINGS, ""));
  return `${lines.join("\n")}\n`;
}
