/**
 * Value parsers shared by every mode's flags: each takes the flag's text and returns its value, or throws a
 * `RangeError` whose message says what is expected (the {@linkcode FlagReader} of `flags.ts` adds flag, value and
 * source).
 *
 * @module
 */
import { formatDuration, parseDuration } from "./duration.ts";
import { normaliseHost, parsePort } from "../endpoint.ts";

/** Log levels the program accepts. */
export type LogLevel = "debug" | "info" | "warn" | "error";
/** Log formats the program accepts. */
export type LogFormat = "json" | "text";

/**
 * The longest duration a flag may hold: 2^31 - 1 ms (596h31m23.647s). `setTimeout` fires at once for anything longer,
 * so a longer `--drain-timeout` would cut connections at once and a longer `--health-interval` would probe in a loop.
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/**
 * Parses a duration greater than zero and at most {@link MAX_DURATION_MS}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { positiveDuration } from "./values.ts";
 * assert(positiveDuration("1.5s") === 1500);
 * ```
 */
export function positiveDuration(text: string): number {
  const ms = parseDuration(text);
  if (ms <= 0) throw new RangeError("expected a duration greater than zero, such as '500ms' or '2s'");
  if (ms > MAX_DURATION_MS) {
    throw new RangeError(`expected a duration of at most ${formatDuration(MAX_DURATION_MS)}`);
  }
  return ms;
}

/**
 * Parses a port 1-65535.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { port } from "./values.ts";
 * assert(port("6443") === 6443);
 * ```
 */
export function port(text: string): number {
  const p = parsePort(text.trim());
  if (p === undefined) throw new RangeError("expected a port number from 1 to 65535");
  return p;
}

/**
 * Parses an integer count in [min, max].
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { count } from "./values.ts";
 * assert(count(1, 100)("7") === 7);
 * ```
 */
export function count(min: number, max: number): (text: string) => number {
  return (text) => {
    if (!/^\d+$/.test(text.trim()) || Number(text) < min || Number(text) > max) {
      throw new RangeError(`expected a whole number from ${min} to ${max}`);
    }
    return Number(text);
  };
}

/** The words {@linkcode bool} takes, lower case, as Go's flag package does (plus yes/no). */
const BOOL_WORDS: Readonly<Record<string, boolean>> = {
  true: true,
  "1": true,
  t: true,
  yes: true,
  false: false,
  "0": false,
  f: false,
  no: false,
};

/**
 * Whether `text` is one of the words {@linkcode bool} takes: the argv parser lets a switch take the next argument
 * as its value only then (`--leader-elect false`), so that a stray argument after a switch is reported as such.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isBoolWord } from "./values.ts";
 * assert(isBoolWord("False") && !isBoolWord("extra"));
 * ```
 */
export function isBoolWord(text: string): boolean {
  return Object.hasOwn(BOOL_WORDS, text.trim().toLowerCase());
}

/**
 * Parses a boolean the way Go's flag package does.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bool } from "./values.ts";
 * assert(bool("T") && !bool("no"));
 * ```
 */
export function bool(text: string): boolean {
  const t = text.trim().toLowerCase();
  // hasOwn: `constructor` and the other inherited names are not words.
  if (!Object.hasOwn(BOOL_WORDS, t)) throw new RangeError("expected 'true' or 'false'");
  return BOOL_WORDS[t] as boolean;
}

/**
 * Parses one of the allowed words, in any case.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { oneOf } from "./values.ts";
 * assert(oneOf("json", "text")("Text") === "text");
 * ```
 */
export function oneOf<T extends string>(...allowed: T[]): (text: string) => T {
  return (text) => {
    const t = text.trim().toLowerCase();
    if ((allowed as string[]).includes(t)) return t as T;
    throw new RangeError(`expected one of ${allowed.map((a) => `'${a}'`).join(", ")}`);
  };
}

/** Parses `--log-level`. */
export const logLevel: (text: string) => LogLevel = oneOf<LogLevel>("debug", "info", "warn", "error");
/** Parses `--log-format`. */
export const logFormat: (text: string) => LogFormat = oneOf<LogFormat>("json", "text");

/**
 * Parses an IP address to listen on (not a host name: the listener must not depend on DNS).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { listenAddress } from "./values.ts";
 * assert(listenAddress("[0:0:0:0:0:0:0:1]") === "::1");
 * ```
 */
export function listenAddress(text: string): string {
  const host = text.trim().replace(/^\[(.*)\]$/, "$1");
  let norm: string;
  try {
    norm = normaliseHost(host);
  } catch {
    throw new RangeError("expected an IP address such as 127.0.0.1 or ::1");
  }
  if (!/^[\d.]+$/.test(norm) && !norm.includes(":")) throw new RangeError("expected an IP address, not a host name");
  return norm;
}

/**
 * Accepts a file path (existence is checked when the file is read, so a file may appear after start).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { path } from "./values.ts";
 * assert(path("/a dir/f.pem") === "/a dir/f.pem");
 * ```
 */
export function path(text: string): string {
  if (text.trim() === "") throw new RangeError("expected a file path");
  return text;
}

/**
 * Parses a kubeconfig context name (any non-empty text; surrounding blanks dropped).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { contextName } from "./values.ts";
 * assert(contextName(" admin@prod ") === "admin@prod");
 * assert.throws(() => contextName(" "), RangeError);
 * ```
 */
export function contextName(text: string): string {
  if (text.trim() === "") throw new RangeError("expected a context name");
  return text.trim();
}

/**
 * Parses a TLS server name (a DNS name or an IP address).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { serverName } from "./values.ts";
 * assert(serverName("Kubernetes") === "kubernetes");
 * ```
 */
export function serverName(text: string): string {
  try {
    return normaliseHost(text.trim());
  } catch {
    throw new RangeError("expected a DNS name such as 'kubernetes.default.svc'");
  }
}
