/**
 * Where log records go in the program: one JSON object per line or one line of text, through a sink that queues
 * and never blocks the process on a slow or stuck stderr. `main.ts` puts one in a route; libraries never see it.
 *
 * @module
 */
import { isoTimestamp } from "./time_format.ts";
import { type LogLevel, type LogRecord, type Properties, renderMessage, type Sink } from "./log.ts";

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
 * import { formatJsonLine } from "./log_output.ts";
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
    "@timestamp": isoTimestamp(record.timestamp),
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
 * import { formatTextLine } from "./log_output.ts";
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
  const iso = isoTimestamp(record.timestamp);
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
 * import { configureLogging, getLogger, resetLogging } from "./log.ts";
 * import { formatJsonLine, StreamSink } from "./log_output.ts";
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
