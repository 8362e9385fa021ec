/**
 * The engine of {@linkcode listWatch}: the LIST / WATCH / retry loop and the cache.
 *
 * @module
 */
import { isRecord, type KubeObject } from "./types.ts";
import { describeError } from "../errors.ts";
import { getLogger } from "../log.ts";
import { Backoff, type Clock, jitter, type Random, setTimer, systemClock } from "../clock.ts";
import { LogLimit } from "../log_limit.ts";
import { IdleDeadline, readLines } from "./_watch_stream.ts";
import { KubeApiError, requestJson, responseError } from "./api.ts";
import type { ListWatchOptions } from "./list_watch_types.ts";
import { MAX_LIST_BODY_BYTES } from "./read_body.ts";

const log = getLogger(["extractedprism", "kubernetes"]);

/** The resource version is too old: only a new LIST can go on. */
class GoneError extends Error {
  override name = "GoneError";
}

const MAX_PAGES = 10_000;
/** Longest run of watch events handled without giving the event loop a turn. */
const YIELD_EVERY_MS = 20;

/** Where the reflector tells what changed; called synchronously, so it must not throw. */
export interface ReflectorSink<T extends KubeObject> {
  /** After a (re)list: `cache` replaces the old one (it is the reflector's own map: read it, do not keep it). */
  synced(cache: ReadonlyMap<string, T>, resourceVersion: string): void;
  /** After a watch event changed the cache. */
  changed(kind: "upsert" | "delete", key: string, object: T, resourceVersion: string): void;
}

/** Keeps the cache of one collection in step with the API server and tells its sink after every change. */
export class Reflector<T extends KubeObject> {
  #cache = new Map<string, T>();
  #rv = "";
  readonly #o: ListWatchOptions<T>;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #sink: ReflectorSink<T>;
  readonly #backoff: Backoff;
  readonly #idleMs: number;
  readonly #maxBodyBytes: number;
  /** A flood of bad objects or events is one line per interval, not one per object. */
  readonly #logLimit: LogLimit;

  constructor(options: ListWatchOptions<T>, sink: ReflectorSink<T>) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#sink = sink;
    this.#backoff = new Backoff(options.backoffBaseMs ?? 1000, options.backoffMaxMs ?? 30_000, this.#random);
    this.#idleMs = options.idleTimeoutMs ?? 180_000;
    this.#maxBodyBytes = options.maxListBodyBytes ?? MAX_LIST_BODY_BYTES;
    this.#logLimit = new LogLimit({ intervalMs: 10_000, burst: 10, now: () => this.#clock.now() });
  }

  /**
   * Runs until `signal` aborts; never rejects. With `stopWhenNotServed`, a LIST answered 404 ends the run early and
   * its error is the result.
   */
  async run(signal: AbortSignal): Promise<KubeApiError | undefined> {
    let needList = true;
    let goneInARow = 0;
    while (!signal.aborted) {
      let phase: "list" | "watch" = needList ? "list" : "watch";
      let reason: string;
      try {
        if (needList) {
          await this.#list(signal);
          needList = false;
          this.#sink.synced(this.#cache, this.#rv);
        }
        phase = "watch";
        const healthy = await this.#watch(signal, () => {
          this.#backoff.reset();
          goneInARow = 0;
        });
        if (healthy) this.#backoff.reset();
        reason = "the watch stream ended";
      } catch (e) {
        if (signal.aborted) return undefined;
        if (e instanceof KubeApiError && e.status === 404) {
          if (phase === "list" && this.#o.stopWhenNotServed) return e;
          // The collection is no longer served (the API server was upgraded under the watch): only a LIST can tell.
          needList = true;
        }
        if (e instanceof GoneError) {
          needList = true;
          // Relist at once, unless the fresh list's own watch was also Gone: then back off like any failure.
          if (++goneInARow === 1) {
            log.info("Relisting {path}: {reason}", { path: this.#o.path, reason: e.message });
            continue;
          }
        }
        // An answer of the API server is said as its message: the status and the server's words are all there is.
        reason = e instanceof KubeApiError ? e.message : describeError(e);
      }
      const delayMs = this.#backoff.next();
      try {
        this.#o.onRetry?.({ phase, reason, delayMs });
      } catch {
        // An observer's failure must not stop the loop.
      }
      const level = reason === "the watch stream ended" ? "debug" : "warn";
      log[level]("Retrying the {phase} of {path} in {delayMs} ms: {reason}", {
        phase,
        path: this.#o.path,
        reason,
        delayMs: Math.round(delayMs),
      });
      try {
        await this.#clock.sleep(delayMs, signal);
      } catch {
        return undefined;
      }
    }
    return undefined;
  }

  #query(extra: Record<string, string>): string {
    const q = new URLSearchParams();
    if (this.#o.labelSelector) q.set("labelSelector", this.#o.labelSelector);
    if (this.#o.fieldSelector) q.set("fieldSelector", this.#o.fieldSelector);
    for (const [k, v] of Object.entries(extra)) q.set(k, v);
    return `${this.#o.path}?${q}`;
  }

  /** Lists every page into a new cache; the old cache stays until the whole list succeeded. */
  async #list(signal: AbortSignal): Promise<void> {
    const items = new Map<string, T>();
    let cont = "";
    let rv = "";
    for (let page = 0;; page++) {
      if (page >= MAX_PAGES) throw new Error(`Cannot list '${this.#o.path}': expected fewer than ${MAX_PAGES} pages`);
      const extra: Record<string, string> = { limit: String(this.#o.pageLimit ?? 500) };
      if (cont) extra.continue = cont;
      const body = await this.#getJson(this.#query(extra), signal);
      const meta = isRecord(body) && isRecord(body.metadata) ? body.metadata : undefined;
      if (meta === undefined || !isRecord(body) || !Array.isArray(body.items)) {
        throw new TypeError(`Cannot list '${this.#o.path}': expected a list with metadata and items`);
      }
      for (const raw of body.items as unknown[]) {
        const obj = this.#decode(raw);
        if (obj !== undefined) items.set(objectKey(obj), obj);
      }
      if (typeof meta.resourceVersion === "string") rv = meta.resourceVersion;
      const next = typeof meta.continue === "string" ? meta.continue : "";
      if (next === "") break;
      if (next === cont) throw new Error(`Cannot list '${this.#o.path}': the server repeated continue token`);
      cont = next;
    }
    if (rv === "") throw new TypeError(`Cannot list '${this.#o.path}': expected metadata.resourceVersion`);
    this.#cache = items;
    this.#rv = rv;
  }

  async #getJson(path: string, signal: AbortSignal): Promise<unknown> {
    const what = `list '${this.#o.path}'`;
    try {
      return await requestJson(this.#o.transport, { method: "GET", path }, {
        what,
        signal,
        timeoutMs: this.#idleMs,
        maxBodyBytes: this.#maxBodyBytes,
        clock: this.#clock,
      });
    } catch (e) {
      if (e instanceof KubeApiError && e.status === 410) throw goneError(e, what);
      throw e;
    }
  }

  /**
   * Watches from the cached resourceVersion until the stream ends (resolves) or fails (rejects).
   *
   * @returns Whether the watch was healthy: it delivered an event or bookmark, or lasted half its server timeout.
   */
  async #watch(signal: AbortSignal, onFirstEvent: () => void): Promise<boolean> {
    const ctrl = new AbortController();
    const deadline = new IdleDeadline(this.#clock, this.#idleMs, () => ctrl.abort());
    const timeoutSeconds = Math.max(1, Math.round(jitter(this.#o.watchTimeoutSeconds ?? 120, 0.2, this.#random)));
    const path = this.#query({
      watch: "1",
      allowWatchBookmarks: "true",
      resourceVersion: this.#rv,
      timeoutSeconds: String(timeoutSeconds),
    });
    let events = 0;
    const started = this.#clock.now();
    try {
      const res = await this.#o.transport.request({
        method: "GET",
        path,
        signal: AbortSignal.any([signal, ctrl.signal]),
      });
      if (res.status === 410) {
        await res.body?.cancel();
        throw new GoneError(`watch from resourceVersion ${this.#rv} answered 410 Gone`);
      }
      if (!res.ok) throw await responseError(res, `watch '${this.#o.path}'`);
      if (res.body === null) throw new Error(`Cannot watch '${this.#o.path}': the response has no body`);
      deadline.touch();
      let busySince = performance.now();
      for await (const line of readLines(res.body)) {
        if (signal.aborted) break; // mid-chunk of a flood: do not apply what is left of it
        // A flood whose bytes are always ready would never leave the event loop a turn: relays, probes and timers
        // (shutdown's among them) wait at most this long.
        if (performance.now() - busySince > YIELD_EVERY_MS) {
          await new Promise<void>((resolve) => setTimer(0, resolve));
          busySince = performance.now();
          if (signal.aborted) break;
        }
        deadline.touch();
        if (line.trim() === "") continue;
        let event: unknown;
        try {
          event = JSON.parse(line);
        } catch {
          throw new SyntaxError(`Cannot read watch event: expected JSON, found ${JSON.stringify(line.slice(0, 40))}`);
        }
        this.#apply(event);
        if (events++ === 0) onFirstEvent();
      }
      return events > 0 || this.#clock.now() - started >= timeoutSeconds * 500;
    } catch (e) {
      if (ctrl.signal.aborted && !signal.aborted) {
        throw new Error(`Cannot watch '${this.#o.path}': no event or bookmark for ${this.#idleMs} ms`);
      }
      throw e;
    } finally {
      deadline.stop();
    }
  }

  /** Applies one watch event to the cache, and tells the sink when the cache changed. */
  #apply(event: unknown): void {
    if (!isRecord(event) || typeof event.type !== "string" || !isRecord(event.object)) {
      throw new TypeError("Cannot read watch event: expected an object with 'type' and 'object'");
    }
    const { type, object } = event;
    if (type === "ERROR") {
      const code = object.code;
      const message = typeof object.message === "string" ? object.message : "";
      if (code === 410 || object.reason === "Expired" || object.reason === "Gone") {
        throw new GoneError(`watch ERROR event 410: ${message}`);
      }
      throw new Error(`Cannot watch '${this.#o.path}': ERROR event ${String(code)}: ${message}`);
    }
    if (type === "BOOKMARK") {
      const rv = isRecord(object.metadata) ? object.metadata.resourceVersion : undefined;
      if (typeof rv === "string" && rv !== "") this.#rv = rv;
      log.trace("Bookmark of {path} at resourceVersion {resourceVersion}", { path: this.#o.path, resourceVersion: rv });
      return;
    }
    if (type !== "ADDED" && type !== "MODIFIED" && type !== "DELETED") {
      if (this.#logLimit.take(`type ${type}`) === undefined) return;
      log.debug("Ignoring watch event of type {type}", { type });
      return;
    }
    const obj = this.#decode(object);
    if (obj === undefined) return;
    if (obj.metadata.resourceVersion) this.#rv = obj.metadata.resourceVersion;
    log.trace("{type} {name} of {path} at resourceVersion {resourceVersion}", {
      type,
      name: objectKey(obj),
      path: this.#o.path,
      resourceVersion: obj.metadata.resourceVersion,
    });
    const key = objectKey(obj);
    if (type === "DELETED") {
      if (this.#cache.delete(key)) this.#sink.changed("delete", key, obj, this.#rv);
      return;
    }
    this.#cache.set(key, obj);
    this.#sink.changed("upsert", key, obj, this.#rv);
  }

  /** Checks metadata and runs the caller's decoder; logs and returns `undefined` for an unusable object. */
  #decode(raw: unknown): T | undefined {
    const meta = isRecord(raw) && isRecord(raw.metadata) ? raw.metadata : undefined;
    const ok = meta !== undefined && typeof meta.name === "string" && meta.name !== "" &&
      (meta.namespace === undefined || typeof meta.namespace === "string") &&
      (meta.resourceVersion === undefined || typeof meta.resourceVersion === "string");
    if (!ok) {
      const suppressed = this.#logLimit.take("no name");
      if (suppressed !== undefined) {
        log.warn("Skipping an object of {path}: expected metadata with a name", { path: this.#o.path, suppressed });
      }
      return undefined;
    }
    try {
      return this.#o.decode ? this.#o.decode(raw as unknown as KubeObject) : raw as unknown as T;
    } catch (e) {
      const error = describeError(e);
      const suppressed = this.#logLimit.take(`${String(meta.name)}\n${error}`);
      if (suppressed !== undefined) {
        log.warn("Skipping {name} of {path}: {error}", { name: meta.name, path: this.#o.path, error, suppressed });
      }
      return undefined;
    }
  }
}

function objectKey(o: KubeObject): string {
  return `${o.metadata.namespace ?? ""}/${o.metadata.name}`;
}

/** A 410 of a LIST: only a new LIST from scratch can go on. */
function goneError(e: KubeApiError, what: string): GoneError {
  const detail = e.serverMessage === undefined ? "" : `: ${e.serverMessage}`;
  return new GoneError(`${what} answered 410 Gone${detail}`);
}
