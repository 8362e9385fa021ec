/**
 * Error helpers every room may use: a short description of any thrown value, and the configuration error that every
 * mode reports as one line with exit status 2.
 *
 * @module
 */

/**
 * Short text for an error, for logs and `/upstreams`: the error's name and first line; a timeout or abort is
 * `timeout`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeError } from "./errors.ts";
 * assert(describeError(new TypeError("bad\nmore")) === "TypeError: bad");
 * assert(describeError(new Error("plain")) === "plain");
 * assert(describeError("text") === "text");
 * ```
 */
export function describeError(e: unknown): string {
  if (e instanceof Error) {
    if (e.name === "TimeoutError" || e.name === "AbortError") return "timeout";
    const msg = e.message.split("\n")[0] ?? "";
    return e.name && e.name !== "Error" ? `${e.name}: ${msg}` : msg;
  }
  return String(e);
}

/**
 * The message of a thrown value, whole: `message` for an `Error`, else its text. Use it where the message is shown
 * as its writer phrased it (a configuration error, a file that cannot be read); {@linkcode describeError} where a
 * short cause is wanted.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { errorMessage } from "./errors.ts";
 * assert(errorMessage(new RangeError("expected a port")) === "expected a port");
 * assert(errorMessage(42) === "42");
 * ```
 */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Escapes control characters (C0, DEL, C1, and the Unicode line and paragraph separators) as `\n`, `\r`, `\t` or
 * `\xNN` / `\uNNNN`, so that a value quoted in a message can neither break its line nor drive the terminal.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { escapeControls } from "./errors.ts";
 * assert(escapeControls("a\nb\x1b[31m") === "a\\nb\\x1b[31m");
 * ```
 */
export function escapeControls(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\x00-\x1f\x7f-\x9f\u2028\u2029]/g, (c) => {
    if (c === "\n") return "\\n";
    if (c === "\r") return "\\r";
    if (c === "\t") return "\\t";
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16)}`;
  });
}

/**
 * A user's configuration mistake: main prints `message` as one line and exits with status 2. Control characters in
 * the message (a quoted value with a newline or an escape sequence) are escaped here, for every configuration error.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ConfigError } from "./errors.ts";
 * assert(new ConfigError("Invalid --x 'a\nb'").message === "Invalid --x 'a\\nb'");
 * ```
 */
export class ConfigError extends Error {
  override name = "ConfigError";

  constructor(message: string, options?: ErrorOptions) {
    super(escapeControls(message), options);
  }
}
