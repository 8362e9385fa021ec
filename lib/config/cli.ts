/**
 * The command line: commander reads argv, the flag table supplies options and help, and the environment fills gaps.
 * Nothing here touches `Deno.args` or `Deno.env`: main passes them in.
 *
 * @module
 */
import { escapeControls } from "../errors.ts";
import { Command, CommanderError, Option } from "commander";
import {
  buildProxyConfig,
  configOutcome,
  type ParseOutcome,
  type ProxyConfig,
  type RawValues,
  resolveRaw,
} from "./config.ts";

export type { ParseOutcome } from "./config.ts";
import { type FlagSpec, PROXY_FLAGS } from "./flags.ts";

/** What main should do after parsing the command line. */
export type CliOutcome =
  | { readonly kind: "proxy"; readonly config: ProxyConfig }
  | { readonly kind: "exit"; readonly code: number; readonly stdout: string; readonly stderr: string };

/** Build facts shown by `--version`. */
export interface VersionInfo {
  readonly version: string;
  readonly revision?: string;
}

function addFlags(cmd: Command, flags: readonly FlagSpec[]): void {
  for (const f of flags) {
    const boolean = f.valueName === "bool";
    const opt = new Option(
      boolean ? `--${f.name} [${f.valueName}]` : `--${f.name} <${f.valueName}>`,
      `${f.help} [${f.default !== undefined ? `default: ${f.default}; ` : ""}env: ${f.env}]`,
    );
    if (boolean) opt.preset("true");
    cmd.addOption(opt);
  }
}

/** Reads commander's parsed options back into flag-name → text. */
function cliValues(cmd: Command, flags: readonly FlagSpec[]): Record<string, string | undefined> {
  const opts = cmd.opts<Record<string, unknown>>();
  const out: Record<string, string | undefined> = {};
  for (const f of flags) {
    const key = f.name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    const v = opts[key];
    if (v !== undefined) out[f.name] = String(v);
  }
  return out;
}

/** One command: its name and help text, its flag table, and how raw values become its config. */
export interface CommandSpec<C> {
  readonly name: string;
  readonly description: string;
  readonly flags: readonly FlagSpec[];
  /** Validates raw values; throws `ConfigError` with a one-line message. */
  readonly build: (raw: RawValues) => C;
}

/**
 * Parses argv with commander from a flag table, fills gaps from the environment, and builds the config. `--help`
 * and `--version` exit 0; any mistake exits 2 with one line and no stack trace.
 */
export function parseFlags<C>(
  spec: CommandSpec<C>,
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  info: VersionInfo,
): ParseOutcome<C> {
  let stdout = "";
  let stderr = "";
  const program = new Command()
    .name(spec.name)
    .description(spec.description)
    .version(info.revision ? `${info.version} (${info.revision})` : info.version, "-v, --version")
    .helpOption("-h, --help")
    .allowExcessArguments(false)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => (stdout += s),
      writeErr: (s) => (stderr += s),
      outputError: () => {},
      // Plain text, fixed width: commander would otherwise read FORCE_COLOR/NO_COLOR/COLUMNS, outside our env set.
      getOutHasColors: () => false,
      getErrHasColors: () => false,
      getOutHelpWidth: () => 100,
      getErrHelpWidth: () => 100,
    });
  addFlags(program, spec.flags);
  try {
    program.parse([...argv], { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.exitCode === 0) return { kind: "exit", code: 0, stdout, stderr };
      return { kind: "exit", code: 2, stdout: "", stderr: `${escapeControls(oneLine(e.message))}\n` };
    }
    throw e;
  }
  return configOutcome(() => spec.build(resolveRaw(spec.flags, cliValues(program, spec.flags), env)));
}

/**
 * Parses the proxy's command line and environment into what to run.
 *
 * @param argv The arguments after the program name.
 * @param env Environment variables (only `EP_*` names are read).
 * @returns Either a validated config, or an exit with its status and text (help, version, or a one-line error).
 *
 * @example
 * ```ts
 * import { parseCommandLine } from "./cli.ts";
 * const r = parseCommandLine(["--endpoints=10.0.0.1:6443"], {}, { version: "0.0.0" });
 * console.assert(r.kind === "proxy");
 * ```
 */
export function parseCommandLine(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  info: VersionInfo,
): CliOutcome {
  const r = parseFlags(
    {
      name: "extractedprism",
      description: "Per-node TCP load balancer for the Kubernetes API servers: listens on 127.0.0.1:7445.",
      flags: PROXY_FLAGS,
      build: buildProxyConfig,
    },
    argv,
    env,
    info,
  );
  return r.kind === "ok" ? { kind: "proxy", config: r.config } : r;
}

function oneLine(message: string): string {
  const first = message.split("\n")[0] ?? message;
  return first.startsWith("error:") ? first : `error: ${first}`;
}
