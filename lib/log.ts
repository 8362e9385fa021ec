/**
 * A small structured logger: levels, categories, and message templates with named values. Libraries get a logger
 * with {@linkcode getLogger}; only `main.ts` configures where records go ({@linkcode configureLogging}, with the
 * formats and the stderr sink of `log_output.ts`). Before that, and for categories no route names, a record costs
 * one comparison and is dropped.
 *
 * The API follows logtape's (`getLogger(["extractedprism", "pool"]).info("Upstream {upstream} added", { upstream })`),
 * which this replaces: logtape's build pulls in Node's `util` (5.8 MiB of idle RSS measured on the program), and its
 * stream sink buffered without bound and spun when stderr's reader went away.
 *
 * @module
 */

/** Severity, lowest first. */
export type LogLevel = "trace" | "debug" | "info" | "warning" | "error" | "fatal";

const RANK: Readonly<Record<LogLevel, number>> = { trace: 0, debug: 1, info: 2, warning: 3, error: 4, fatal: 5 };
const NEVER = 6;

/** Named values of one record. */
export type Properties = Record<string, unknown>;

/** One log line before it is formatted. */
export interface LogRecord {
  /** The logger's category, e.g. `["extractedprism", "pool"]`. */
  readonly category: readonly string[];
  /** Severity. */
  readonly level: LogLevel;
  /** The template split at its placeholders: text, value, text, value, ..., text (always odd in length). */
  readonly message: readonly unknown[];
  /** The template as written. */
  readonly rawMessage: string;
  /** The named values. */
  readonly properties: Readonly<Properties>;
  /** Milliseconds since the epoch. */
  readonly timestamp: number;
}

/** Where records go. It must not throw and must not block. */
export type Sink = (record: LogRecord) => void;

/** One route: records of `category` (a prefix) at `lowestLevel` or above go to `sinks`. */
export interface LogRoute {
  /** A category prefix; `[]` matches every category. */
  readonly category: readonly string[];
  /** The lowest level let through. */
  readonly lowestLevel: LogLevel;
  /** Where the records go. */
  readonly sinks: readonly Sink[];
}

let routes: readonly LogRoute[] = [];
let generation = 0;

/**
 * Replaces the routes of every logger, those made before included.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { configureLogging, getLogger, type LogRecord, resetLogging } from "./log.ts";
 * const seen: LogRecord[] = [];
 * configureLogging([{ category: ["app"], lowestLevel: "info", sinks: [(r) => seen.push(r)] }]);
 * getLogger(["app", "pool"]).info("Upstream {upstream} added", { upstream: "10.0.0.1:6443" });
 * getLogger(["app", "pool"]).debug("not written");
 * assert(seen.length === 1 && seen[0]?.message[1] === "10.0.0.1:6443");
 * resetLogging();
 * ```
 */
export function configureLogging(next: readonly LogRoute[]): void {
  routes = next;
  generation++;
}

/** Drops every route: records go nowhere. */
export function resetLogging(): void {
  configureLogging([]);
}

/** Writes records of one category. */
export interface Logger {
  /** The category. */
  readonly category: readonly string[];
  /** Whether a record at `level` would be written: guard costly work with it. */
  isEnabledFor(level: LogLevel): boolean;
  /** Logs at `trace`. `properties` may be a function, called only when the record is written. */
  trace(message: string, properties?: Properties | (() => Properties)): void;
  /** Logs at `debug`. */
  debug(message: string, properties?: Properties | (() => Properties)): void;
  /** Logs at `info`. */
  info(message: string, properties?: Properties | (() => Properties)): void;
  /** Logs at `warning`. */
  warn(message: string, properties?: Properties | (() => Properties)): void;
  /** Logs at `warning`. */
  warning(message: string, properties?: Properties | (() => Properties)): void;
  /** Logs at `error`. */
  error(message: string, properties?: Properties | (() => Properties)): void;
  /** Logs at `fatal`. */
  fatal(message: string, properties?: Properties | (() => Properties)): void;
}

class CategoryLogger implements Logger {
  readonly category: readonly string[];
  #generation = -1;
  #lowest = NEVER;
  #routes: readonly LogRoute[] = [];

  constructor(category: readonly string[]) {
    this.category = category;
  }

  #refresh(): void {
    if (this.#generation === generation) return;
    this.#generation = generation;
    this.#routes = routes.filter((r) => r.category.every((c, i) => this.category[i] === c));
    this.#lowest = Math.min(NEVER, ...this.#routes.map((r) => RANK[r.lowestLevel]));
  }

  isEnabledFor(level: LogLevel): boolean {
    this.#refresh();
    return RANK[level] >= this.#lowest;
  }

  #log(level: LogLevel, rawMessage: string, properties: Properties | (() => Properties) | undefined): void {
    if (!this.isEnabledFor(level)) return;
    let props: Properties = {};
    try {
      props = typeof properties === "function" ? properties() : properties ?? {};
    } catch (e) {
      props = { propertiesError: String(e) };
    }
    const record: LogRecord = {
      category: this.category,
      level,
      message: splitTemplate(rawMessage, props),
      rawMessage,
      properties: props,
      timestamp: Date.now(),
    };
    for (const route of this.#routes) {
      if (RANK[level] < RANK[route.lowestLevel]) continue;
      for (const sink of route.sinks) {
        try {
          sink(record);
        } catch {
          // A sink that throws must not take the caller (a relay, a probe) down with it.
        }
      }
    }
  }

  trace(m: string, p?: Properties | (() => Properties)): void {
    this.#log("trace", m, p);
  }
  debug(m: string, p?: Properties | (() => Properties)): void {
    this.#log("debug", m, p);
  }
  info(m: string, p?: Properties | (() => Properties)): void {
    this.#log("info", m, p);
  }
  warn(m: string, p?: Properties | (() => Properties)): void {
    this.#log("warning", m, p);
  }
  warning(m: string, p?: Properties | (() => Properties)): void {
    this.#log("warning", m, p);
  }
  error(m: string, p?: Properties | (() => Properties)): void {
    this.#log("error", m, p);
  }
  fatal(m: string, p?: Properties | (() => Properties)): void {
    this.#log("fatal", m, p);
  }
}

/**
 * The logger of a category. Cheap to call at module level: it reads the routes when it first logs after a change.
 *
 * @example
 * ```ts
 * import { getLogger } from "./log.ts";
 * const log = getLogger(["extractedprism", "pool"]);
 * log.info("Upstream {upstream} added", { upstream: "[::1]:6443" }); // dropped: nothing is configured
 * ```
 */
export function getLogger(category: string | readonly string[]): Logger {
  return new CategoryLogger(typeof category === "string" ? [category] : category);
}

/**
 * Splits a template at its `{name}` placeholders: `["Upstream ", value, " added"]`. `{{` and `}}` stand for
 * literal braces; a name with no value in `properties` becomes `undefined`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { splitTemplate } from "./log.ts";
 * const parts = splitTemplate("{a} of {b}", { a: 1, b: "x" });
 * assert(JSON.stringify(parts) === JSON.stringify(["", 1, " of ", "x", ""]));
 * ```
 */
export function splitTemplate(template: string, properties: Readonly<Properties>): unknown[] {
  const parts: unknown[] = [];
  let text = "";
  let i = 0;
  while (i < template.length) {
    const c = template[i] as string;
    if ((c === "{" || c === "}") && template[i + 1] === c) {
      text += c;
      i += 2;
      continue;
    }
    if (c === "{") {
      const end = template.indexOf("}", i + 1);
      if (end > i) {
        parts.push(text, properties[template.slice(i + 1, end).trim()]);
        text = "";
        i = end + 1;
        continue;
      }
    }
    text += c;
    i++;
  }
  parts.push(text);
  return parts;
}

/**
 * A value as it reads in a message: strings as they are (an address reads `[::1]:6443`, not `"[::1]:6443"`), errors
 * by their message, everything else as JSON.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { valueText } from "./log.ts";
 * assert(valueText("[::1]:6443") === "[::1]:6443" && valueText(2) === "2" && valueText(null) === "null");
 * ```
 */
export function valueText(v: unknown): string {
  if (typeof v === "string") return v;
  if (v instanceof Error) return v.message;
  if (v === undefined) return "undefined";
  if (typeof v === "bigint" || typeof v === "symbol" || typeof v === "function") return String(v);
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/** The record's message with its values filled in. */
export function renderMessage(record: LogRecord): string {
  let out = "";
  for (let i = 0; i < record.message.length; i++) {
    out += i % 2 === 0 ? record.message[i] as string : valueText(record.message[i]);
  }
  return out;
}
