/**
 * A small file (token, certificate, key, CA) re-read at most every `recheckMs`, or at once when forced (after a 401).
 * A failed re-read keeps the last good content: rotations replace files, and a reader may land between two renames.
 * A foundation file for every room that reads such a file (the Kubernetes client's credentials, the readyz probe's
 * token), so its warnings go to the category `extractedprism.files`, which belongs to no one room.
 *
 * @module
 */
import { errorMessage } from "./errors.ts";
import { getLogger } from "./log.ts";
import { readRegularFile } from "./read_file.ts";

/** A token, CA bundle, certificate or key: far smaller in practice. */
const MAX_CREDENTIAL_FILE_BYTES = 1 << 20;

const log = getLogger(["extractedprism", "files"]);

/** What a {@linkcode WatchedFile.poll} found: the last good content, and why the latest read failed if it did. */
export interface FileState {
  /** The last content read successfully; `undefined` until one read succeeds. */
  readonly text: string | undefined;
  /** The latest read's error, or `undefined` when it succeeded. */
  readonly error: string | undefined;
}

/**
 * A file whose content is cached and re-read when it may have changed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WatchedFile } from "./watched_file.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "one");
 * const token = new WatchedFile(path, "token file", 60_000, () => 0);
 * assert((await token.read(false)) === "one");
 * await Deno.writeTextFile(path, "two");
 * assert((await token.read(false)) === "one"); // within recheckMs: the cached content
 * assert((await token.read(true)) === "two"); // forced, as after a 401
 * await Deno.remove(path);
 * assert((await token.read(true)) === "two"); // a failed re-read keeps the last good content
 * ```
 */
export class WatchedFile {
  /** The file's path. */
  readonly path: string;
  /** What the file is, for messages (`token file`). */
  readonly what: string;
  readonly #recheckMs: number;
  readonly #now: () => number;
  #text: string | undefined;
  #error: string | undefined;
  #checkedAt = -Infinity;
  #warned = false;
  #refreshing: Promise<void> | undefined;

  /**
   * Reads nothing yet: the first `read` or `poll` does.
   *
   * @param path The file.
   * @param what What it is, for messages (`token file`).
   * @param recheckMs The least time between two reads unless forced; 0 reads on every call.
   * @param now A monotonic clock in milliseconds.
   */
  constructor(path: string, what: string, recheckMs: number, now: () => number) {
    this.path = path;
    this.what = what;
    this.#recheckMs = recheckMs;
    this.#now = now;
  }

  /**
   * The file's content, read again when `force` is set or `recheckMs` has passed since the last read. A failed
   * re-read is logged once until a read succeeds again.
   *
   * @throws {Error} `Cannot read token file 'PATH': ...` when the file has never been read successfully.
   */
  async read(force: boolean): Promise<string> {
    await this.#refreshIfDue(force);
    if (this.#text === undefined) throw new Error(`Cannot read ${this.what} '${this.path}': ${this.#error}`);
    if (this.#error !== undefined && !this.#warned) {
      log.warn("Cannot re-read {what} {path}, keeping the last content: {error}", {
        what: this.what,
        path: this.path,
        error: this.#error,
      });
      this.#warned = true;
    }
    return this.#text;
  }

  /**
   * Like {@linkcode read}, but never throws and logs nothing: for a caller with its own warning policy (the readyz
   * probe's token warns once per new error and keeps probing without a token).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { WatchedFile } from "./watched_file.ts";
   * const state = await new WatchedFile("/nonexistent/token", "token file", 0, () => 0).poll();
   * assert(state.text === undefined && state.error !== undefined);
   * ```
   */
  async poll(force = false): Promise<FileState> {
    await this.#refreshIfDue(force);
    return { text: this.#text, error: this.#error };
  }

  #refreshIfDue(force: boolean): Promise<void> {
    // Callers that read the same file together (a combined certificate and key) share one read.
    if (this.#refreshing !== undefined) return this.#refreshing;
    if (this.#text !== undefined && !force && this.#now() - this.#checkedAt < this.#recheckMs) return Promise.resolve();
    this.#refreshing = this.#refresh().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  async #refresh(): Promise<void> {
    this.#checkedAt = this.#now();
    try {
      this.#text = await readRegularFile(this.path, MAX_CREDENTIAL_FILE_BYTES);
      this.#error = undefined;
      this.#warned = false;
    } catch (e) {
      this.#error = errorMessage(e);
    }
  }
}
