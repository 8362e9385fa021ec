/**
 * The generic part of every command line: a flag's spec, where its raw value comes from (command line, then its
 * `EP_*` variable, then its default), the reader that turns raw values into one-line `ConfigError`s, and the one
 * outcome type every mode's parser returns. Each mode's table lives in its own file (`proxy_flags.ts`,
 * `copier_flags.ts`); the argv parser and `--help` are in `command_line.ts`.
 *
 * @module
 */
import { ConfigError, errorMessage } from "../errors.ts";

/** One flag: its names, default and help. A mode's table is a list of these, in the order `--help` shows them. */
export interface FlagSpec {
  /** The long flag without dashes, e.g. `bind-port`. */
  readonly name: string;
  /** The environment variable read when the flag is absent. */
  readonly env: string;
  /** The default as the user would type it; `undefined` means required or derived (see `help`). */
  readonly default: string | undefined;
  /** Placeholder shown in `--help`; `bool` makes the flag a switch whose value may be left out. */
  readonly valueName: string;
  /** One line for `--help` and the README. */
  readonly help: string;
}

/**
 * Builds a flag spec whose variable is `EP_` + the name in upper snake case.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { flag } from "./flags.ts";
 * assert(flag("bind-port", "7445", "port", "port the proxy listens on").env === "EP_BIND_PORT");
 * ```
 */
export function flag(
  name: string,
  def: string | undefined,
  valueName: string,
  help: string,
): FlagSpec {
  return { name, env: `EP_${name.toUpperCase().replaceAll("-", "_")}`, default: def, valueName, help };
}

/** The flags every mode has, in the same words: which kubeconfig context, and how to log. */
export const SHARED_FLAGS: {
  readonly kubeContext: FlagSpec;
  readonly logLevel: FlagSpec;
  readonly logFormat: FlagSpec;
} = {
  kubeContext: flag("kube-context", undefined, "name", "kubeconfig context to use (default: its current-context)"),
  logLevel: flag("log-level", "info", "level", "debug, info, warn or error"),
  logFormat: flag("log-format", "json", "format", "json (one object per line) or text"),
};

/** Where a raw value came from, for error messages. */
export type ValueSource = "cli" | "env" | "default";

/** One raw value with its origin. */
export interface RawValue {
  readonly text: string;
  readonly source: ValueSource;
}

/** Raw values by flag name. */
export type RawValues = ReadonlyMap<string, RawValue>;

/**
 * Picks each flag's raw value: command line, else environment (an empty variable counts as unset), else default.
 *
 * @param cli Values given on the command line, by flag name.
 * @param env The environment (only the flags' `EP_*` names are read).
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { flag, resolveRaw } from "./flags.ts";
 * const flags = [flag("bind-port", "7445", "port", "port"), flag("health-port", "7446", "port", "port")];
 * const raw = resolveRaw(flags, { "bind-port": "1" }, { EP_HEALTH_PORT: "2" });
 * assert(raw.get("bind-port")?.source === "cli" && raw.get("health-port")?.text === "2");
 * ```
 */
export function resolveRaw(
  flags: readonly FlagSpec[],
  cli: Readonly<Record<string, string | undefined>>,
  env: Readonly<Record<string, string | undefined>>,
): Map<string, RawValue> {
  const out = new Map<string, RawValue>();
  for (const f of flags) {
    const c = cli[f.name];
    const e = env[f.env];
    if (c !== undefined) out.set(f.name, { text: c, source: "cli" });
    else if (e !== undefined && e !== "") out.set(f.name, { text: e, source: "env" });
    else if (f.default !== undefined) out.set(f.name, { text: f.default, source: "default" });
  }
  return out;
}

/**
 * Reads and converts raw values, turning every failure into a one-line `ConfigError` naming flag, value and source.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ConfigError } from "../errors.ts";
 * import { flag, FlagReader, resolveRaw } from "./flags.ts";
 * const flags = [flag("bind-port", "7445", "port", "port the proxy listens on")];
 * const r = new FlagReader(flags, resolveRaw(flags, {}, { EP_BIND_PORT: "x" }));
 * const e = (() => { try { r.get("bind-port", (t) => { throw new RangeError(`not ${t}`); }); } catch (e) { return e; } })();
 * assert(e instanceof ConfigError && e.message === "Invalid --bind-port (from EP_BIND_PORT) 'x': not x");
 * ```
 */
export class FlagReader {
  readonly #raw: RawValues;
  readonly #flags: ReadonlyMap<string, FlagSpec>;

  constructor(flags: readonly FlagSpec[], raw: RawValues) {
    this.#raw = raw;
    this.#flags = new Map(flags.map((f) => [f.name, f]));
  }

  /** The raw text of a flag, or `undefined` when unset and without default. */
  text(name: string): string | undefined {
    return this.#raw.get(name)?.text;
  }

  /** Whether the flag was given on the command line or in the environment (not its default). */
  explicit(name: string): boolean {
    const source = this.#raw.get(name)?.source;
    return source !== undefined && source !== "default";
  }

  /** Converts a flag with `parse`; its error message becomes the reason in the ConfigError. */
  get<T>(name: string, parse: (text: string) => T): T {
    const raw = this.#raw.get(name);
    if (raw === undefined) throw new ConfigError(`Missing ${this.label(name)}: ${this.#flags.get(name)?.help ?? ""}`);
    try {
      return parse(raw.text);
    } catch (e) {
      throw this.error(name, errorMessage(e));
    }
  }

  /** A flag without default: `undefined` when unset, else converted with `parse`. */
  optional<T>(name: string, parse: (text: string) => T): T | undefined {
    return this.text(name) === undefined ? undefined : this.get(name, parse);
  }

  /** A ConfigError about a flag's current value (control characters escaped: the message stays one line). */
  error(name: string, reason: string): ConfigError {
    const raw = this.#raw.get(name);
    return new ConfigError(`Invalid ${this.label(name)} '${raw?.text ?? ""}': ${reason}`);
  }

  /** `--flag` or `--flag (from EP_FLAG)` depending on where the value came from. */
  label(name: string): string {
    const spec = this.#flags.get(name);
    const raw = this.#raw.get(name);
    return raw?.source === "env" && spec !== undefined ? `--${name} (from ${spec.env})` : `--${name}`;
  }
}

/** The outcome of reading one command's configuration: its config, or an exit with status and text. */
export type ParseOutcome<C> =
  | { readonly kind: "ok"; readonly config: C }
  | { readonly kind: "exit"; readonly code: number; readonly stdout: string; readonly stderr: string };

/**
 * Runs a config builder: its result, or for a `ConfigError` an exit with status 2 and the one line
 * `error: <message>`. Other errors are bugs and propagate.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ConfigError } from "../errors.ts";
 * import { configOutcome } from "./flags.ts";
 * const r = configOutcome(() => {
 *   throw new ConfigError("Invalid --x 'y': expected z");
 * });
 * assert(r.kind === "exit" && r.code === 2 && r.stderr === "error: Invalid --x 'y': expected z\n");
 * ```
 */
export function configOutcome<C>(build: () => C): ParseOutcome<C> {
  try {
    return { kind: "ok", config: build() };
  } catch (e) {
    if (e instanceof ConfigError) return { kind: "exit", code: 2, stdout: "", stderr: `error: ${e.message}\n` };
    throw e;
  }
}
