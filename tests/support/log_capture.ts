/**
 * Captures log records for tests that check what a library logs ("one warning", "a debug line").
 *
 * @module
 */
import { configureLogging, type LogRecord, renderMessage, resetLogging } from "../../lib/log.ts";

/** A log configuration for one test that records every `extractedprism` record. */
export class LogCapture implements AsyncDisposable {
  readonly records: LogRecord[] = [];
  readonly #listeners = new Set<() => void>();

  private constructor() {}

  /** Routes every record into a new capture; dispose of it to drop the route. */
  static async start(): Promise<LogCapture> {
    const cap = new LogCapture();
    configureLogging([{
      category: ["extractedprism"],
      lowestLevel: "trace",
      sinks: [(r: LogRecord) => {
        cap.records.push(r);
        for (const l of cap.#listeners) l();
      }],
    }]);
    return await Promise.resolve(cap);
  }

  /** Records at `level` (e.g. `"warning"`), as rendered text. */
  messages(level: LogRecord["level"]): string[] {
    return this.records.filter((r) => r.level === level).map(render);
  }

  /** Resolves when a record matching `pred` has been logged (at once if one already was); rejects after `timeoutMs`. */
  waitFor(pred: (r: LogRecord) => boolean, timeoutMs = 5000): Promise<LogRecord> {
    const found = this.records.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const check = () => {
        const r = this.records.find(pred);
        if (r === undefined) return;
        clearTimeout(timer);
        this.#listeners.delete(check);
        resolve(r);
      };
      const timer = setTimeout(() => {
        this.#listeners.delete(check);
        reject(new Error(`Timed out after ${timeoutMs} ms waiting for a log record`));
      }, timeoutMs);
      this.#listeners.add(check);
    });
  }

  [Symbol.asyncDispose](): Promise<void> {
    resetLogging();
    return Promise.resolve();
  }
}

/** A record's message with its values filled in. */
export const render: (r: LogRecord) => string = renderMessage;
