/**
 * The flag table of `extractedprism status`: where the proxy's health port is (the same flags and `EP_*` variables
 * as the proxy, so the environment file of a node serves both), how long to wait, and how to print. Then the
 * validated {@linkcode StatusConfig} and its builder.
 *
 * @module
 */
import { type CommandSpec, parseCommand, type VersionInfo } from "./command_line.ts";
import { flag, FlagReader, type FlagSpec, type ParseOutcome, type RawValues } from "./flags.ts";
import { listenAddress, oneOf, port, positiveDuration } from "./values.ts";

/** How `status` prints the upstreams. */
export type StatusOutput = "table" | "wide" | "json";

/** The status mode's flags, in the order `--help` shows them. */
export const STATUS_FLAGS: readonly FlagSpec[] = [
  flag("bind-address", "127.0.0.1", "ip", "the proxy's --bind-address: the health address when that is not set"),
  flag(
    "health-bind-address",
    undefined,
    "ip",
    "the proxy's health address (default: --bind-address); a wildcard is reached through loopback",
  ),
  flag("health-port", "7446", "port", "the proxy's health port"),
  flag("timeout", "3s", "duration", "how long to wait for the proxy's answers, both requests together"),
  flag("output", "table", "format", "table, wide (more columns) or json (the /upstreams body as it is); -o for short"),
];

/** Where to look and how to print, validated. */
export interface StatusConfig {
  /** The address to connect to: a wildcard bind address already turned into loopback. */
  readonly host: string;
  /** `--health-port`. */
  readonly port: number;
  /** `--timeout`: both requests together. */
  readonly timeoutMs: number;
  /** `--output` / `-o`. */
  readonly output: StatusOutput;
}

/**
 * Builds and validates the status configuration from raw values.
 *
 * @throws {ConfigError} On the first invalid value.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveRaw } from "./flags.ts";
 * import { buildStatusConfig, STATUS_FLAGS } from "./status_flags.ts";
 * const c = buildStatusConfig(resolveRaw(STATUS_FLAGS, {}, { EP_BIND_ADDRESS: "0.0.0.0", EP_HEALTH_PORT: "9" }));
 * assert(c.host === "127.0.0.1" && c.port === 9 && c.timeoutMs === 3000 && c.output === "table");
 * ```
 */
export function buildStatusConfig(raw: RawValues): StatusConfig {
  const r = new FlagReader(STATUS_FLAGS, raw);
  const bind = r.get("bind-address", listenAddress);
  const health = r.optional("health-bind-address", listenAddress) ?? bind;
  return {
    host: health === "0.0.0.0" ? "127.0.0.1" : health === "::" ? "::1" : health,
    port: r.get("health-port", port),
    timeoutMs: r.get("timeout", positiveDuration),
    output: r.get("output", oneOf<StatusOutput>("table", "wide", "json")),
  };
}

/** The status mode as a command: what `--help` shows and how its values are checked. */
export const STATUS_COMMAND: CommandSpec<StatusConfig> = {
  name: "extractedprism status",
  description: "Shows the upstreams of the proxy running on this node, read from its health port (/upstreams and " +
    "/readyz). Exits 0 when the proxy is ready, 1 when it is not (with the reason on stderr), 2 when its health port " +
    "cannot be reached (or a flag is wrong).",
  flags: STATUS_FLAGS,
  build: buildStatusConfig,
};

/** kubectl's `-o wide`, `-o=wide`, `-owide` as `--output`: the flag table has long names only. */
function expandShortOutput(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--") {
      out.push(...argv.slice(i));
      break;
    }
    if (arg === "-o") out.push("--output");
    else if (arg.startsWith("-o=")) out.push(`--output=${arg.slice(3)}`);
    else if (/^-o[a-z]+$/.test(arg)) out.push(`--output=${arg.slice(2)}`);
    else out.push(arg);
  }
  return out;
}

/**
 * Parses the arguments after `status` and the environment into where to look and how to print.
 *
 * @param argv The arguments after `status`.
 * @param env Environment variables (only the flags' `EP_*` names are read).
 * @returns Either a validated config, or an exit with its status and text (help, version, or a one-line error).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseStatusCommandLine } from "./status_flags.ts";
 * const r = parseStatusCommandLine(["-o", "wide", "--health-bind-address=::"], {}, { version: "0.0.0" });
 * assert(r.kind === "ok" && r.config.output === "wide" && r.config.host === "::1" && r.config.port === 7446);
 * ```
 */
export function parseStatusCommandLine(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  info: VersionInfo,
): ParseOutcome<StatusConfig> {
  return parseCommand(STATUS_COMMAND, expandShortOutput(argv), env, info);
}
