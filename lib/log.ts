/**
 * A small structured logger: levels, categories, message templates with named values, JSON lines or text, and a sink
 * that never blocks the process on a slow stderr. Libraries get a logger with {@linkcode getLogger}; only `main.ts`
 * configures where records go ({@linkcode configureLogging}). Before that, and for categories no route names, records
 * are dropped at the cost of one comparison.
 *
 * The API follows logtape's (`getLogger(["extractedprism", "pool"]).info("Upstream {upstream} added", { upstream })`),
 * which this replaces: logtape's build pulls in Node's `util` and cost 11 MiB of a 64 MiB process.
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
  /** The template split at its placeholders: text, value, text, value, …, text (always odd in length). */
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

const JSON_LEVEL: Readonly<Record<LogLevel, string>> = {
  trace: "TRACE",
  debug: "DEBUG",
  info: "INFO",
  warning: "WARN",
  error: "ERROR",
  fatal: "FATAL",
};

function jsonSafe(_key: string, v: unknown): unknown {
  if (v instanceof Error) return v.message;
  if (typeof v === "bigint") return v.toString();
  return v;
}

/**
 * One JSON object per line: `@timestamp`, `level`, `message` (plain words, values filled in), `logger` (the
 * category joined with dots), then every property as its own field.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatJsonLine, getLogger } from "./log.ts";
 * const line = formatJsonLine({
 *   category: ["extractedprism", "pool"],
 *   level: "info",
 *   message: ["Upstream ", "[::1]:6443", " added"],
 *   rawMessage: "Upstream {upstream} added",
 *   properties: { upstream: "[::1]:6443" },
 *   timestamp: 0,
 * });
 * assert(JSON.parse(line).message === "Upstream [::1]:6443 added");
 * ```
 */
export function formatJsonLine(record: LogRecord): string {
  const head = {
    "@timestamp": new Date(record.timestamp).toISOString(),
    level: JSON_LEVEL[record.level],
    message: renderMessage(record),
    logger: record.category.join("."),
  };
  const fields: Properties = { ...head };
  // A property named like a head field (a Kubernetes warning's `message`) keeps its value under another name.
  for (const [k, v] of Object.entries(record.properties)) fields[Object.hasOwn(head, k) ? `property.${k}` : k] = v;
  try {
    return `${JSON.stringify(fields, jsonSafe)}\n`;
  } catch {
    // A property that cannot be written (a cycle): the line still says what happened.
    return `${JSON.stringify(head)}\n`;
  }
}

const TEXT_LEVEL: Readonly<Record<LogLevel, string>> = {
  trace: "TRC",
  debug: "DBG",
  info: "INF",
  warning: "WRN",
  error: "ERR",
  fatal: "FTL",
};

/**
 * One line of text: `2026-12-03 22:32:56.194 +00:00 [INF] extractedprism.pool: Upstream [::1]:6443 added`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatTextLine } from "./log.ts";
 * const line = formatTextLine({
 *   category: ["extractedprism", "pool"],
 *   level: "warning",
 *   message: ["Upstream ", "10.0.0.1:6443", " down"],
 *   rawMessage: "Upstream {upstream} down",
 *   properties: { upstream: "10.0.0.1:6443" },
 *   timestamp: 0,
 * });
 * assert(line === "1970-01-01 00:00:00.000 +00:00 [WRN] extractedprism.pool: Upstream 10.0.0.1:6443 down\n");
 * ```
 */
export function formatTextLine(record: LogRecord): string {
  const iso = new Date(record.timestamp).toISOString();
  const when = `${iso.slice(0, 10)} ${iso.slice(11, 23)} +00:00`;
  return `${when} [${TEXT_LEVEL[record.level]}] ${record.category.join(".")}: ${renderMessage(record)}\n`;
}

/** Options of {@linkcode StreamSink}. */
export interface StreamSinkOptions {
  /** Writes some bytes and says how many. @default {Deno.stderr.write} */
  readonly write?: (bytes: Uint8Array) => Promise<number>;
  /** Bytes waiting to be written past which new lines are dropped (and counted). @default {1048576} */
  readonly maxQueuedBytes?: number;
}

/**
 * A sink that queues formatted lines and writes them in the background, so that a slow or stuck reader of stderr
 * (a full pipe, a paused journald) never blocks the proxy. Past `maxQueuedBytes` lines are dropped, and once the
 * queue is written a warning line says how many were lost. Dispose of it to write what is queued.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { configureLogging, formatJsonLine, getLogger, resetLogging, StreamSink } from "./log.ts";
 * const out: string[] = [];
 * await using sink = new StreamSink(formatJsonLine, {
 *   write: (b) => {
 *     out.push(new TextDecoder().decode(b));
 *     return Promise.resolve(b.length);
 *   },
 * });
 * configureLogging([{ category: [], lowestLevel: "info", sinks: [sink.sink] }]);
 * getLogger("demo").info("hello {who}", { who: "operator" });
 * await sink.flush();
 * assert(JSON.parse(out.join("")).message === "hello operator");
 * resetLogging();
 * ```
 */
export class StreamSink implements AsyncDisposable {
  /** The sink to put in a route. */
  readonly sink: Sink;
  readonly #format: (record: LogRecord) => string;
  readonly #write: (bytes: Uint8Array) => Promise<number>;
  readonly #max: number;
  readonly #encoder = new TextEncoder();
  #queue: string[] = [];
  #queued = 0;
  #dropped = 0;
  #writing: Promise<void> | undefined;

  /**
   * @param format Turns a record into one line (with its newline).
   */
  constructor(format: (record: LogRecord) => string, options: StreamSinkOptions = {}) {
    this.#format = format;
    this.#write = options.write ?? ((b) => Deno.stderr.write(b));
    this.#max = options.maxQueuedBytes ?? 1 << 20;
    this.sink = (record) => this.#push(this.#format(record));
  }

  /** Lines dropped so far because the queue was full. */
  get dropped(): number {
    return this.#dropped;
  }

  #push(line: string): void {
    if (this.#queued + line.length > this.#max) {
      this.#dropped++;
      return;
    }
    this.#queue.push(line);
    this.#queued += line.length;
    this.#writing ??= this.#drain();
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const text = this.#queue.join("");
        this.#queue = [];
        this.#queued = 0;
        let bytes = this.#encoder.encode(text);
        while (bytes.length > 0) bytes = bytes.subarray(await this.#write(bytes));
        if (this.#dropped > 0 && this.#queue.length === 0) {
          const lost = this.#dropped;
          this.#dropped = 0;
          const rawMessage = "{dropped} log lines dropped: stderr did not keep up";
          this.#queue.push(this.#format({
            category: ["extractedprism", "log"],
            level: "warning",
            message: ["", lost, " log lines dropped: stderr did not keep up"],
            rawMessage,
            properties: { dropped: lost },
            timestamp: Date.now(),
          }));
        }
      }
    } catch {
      // stderr is gone (closed pipe): nothing more can be said, and the proxy goes on.
      this.#queue = [];
      this.#queued = 0;
    } finally {
      this.#writing = undefined;
    }
  }

  /** Resolves when every queued line has been written. */
  async flush(): Promise<void> {
    while (this.#writing !== undefined) await this.#writing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.flush();
  }
}
