/**
 * HTTP/1.1 on one connection, for the Kubernetes API client: writes a request, reads the response head, and streams
 * the body (`Content-Length`, chunked, or to the end of the connection) as a {@linkcode ByteStream}. The parsing is split from the
 * I/O ({@linkcode parseHead}, {@linkcode ChunkedDecoder}, {@linkcode bodyFraming}) so that hostile bytes can be tested
 * without sockets. Everything the peer sends is bounded: a head over 64 KiB, a chunk-size line over 4 KiB, a
 * malformed length or framing is one clear error and the connection is closed, never a crash or unbounded memory.
 *
 * @module
 */
import { clearTimer, setTimer } from "../clock.ts";
import { closeQuietly } from "../net/connect_tcp.ts";
import { errorMessage, escapeControls } from "../errors.ts";
import type { ByteReader, ByteStream } from "./transport.ts";

/** Longest response head (status line and headers) accepted. */
export const MAX_HEAD_BYTES = 64 << 10;
/** Longest chunk-size or trailer line accepted. */
const MAX_LINE_BYTES = 4096;
const READ_BYTES = 16 << 10;
const EMPTY = new Uint8Array(0);
const CR = 13;
const LF = 10;

/** A parsed response head. */
export interface ResponseHead {
  /** `1.0` or `1.1`. */
  readonly version: "1.0" | "1.1";
  readonly status: number;
  readonly statusText: string;
  /** Header fields in order, names lower-cased. */
  readonly headers: readonly (readonly [string, string])[];
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Visible ASCII, space, tab and obs-text (bytes 0x80-0xff read as latin1): what a field value may hold.
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Parses a response head: the bytes before the blank line, read as latin1.
 *
 * @returns The head, or an error message naming what is wrong.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseHead } from "./_http1_client.ts";
 * const head = parseHead("HTTP/1.1 200 OK\r\nContent-Length: 2");
 * assert(typeof head !== "string" && head.status === 200 && head.headers[0]?.[0] === "content-length");
 * assert.equal(parseHead("HTTP/2 200"), "malformed status line 'HTTP/2 200'");
 * ```
 */
export function parseHead(text: string): ResponseHead | string {
  const lines = text.split("\r\n");
  const first = lines[0] ?? "";
  const m = /^HTTP\/1\.([01]) ([1-5]\d\d)(?: ([^\r\n]*))?$/.exec(first);
  if (m === null) return `malformed status line '${printable(first)}'`;
  const headers: [string, string][] = [];
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon);
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
    // A line without a name (also obs-fold, a line starting with whitespace) is refused, as RFC 9112 allows.
    if (colon <= 0 || !TOKEN.test(name) || !FIELD_VALUE.test(value)) {
      return `malformed header line '${printable(line)}'`;
    }
    headers.push([name.toLowerCase(), value]);
  }
  return { version: m[1] === "1" ? "1.1" : "1.0", status: Number(m[2]), statusText: m[3] ?? "", headers };
}

/** How a response body ends. */
export type Framing =
  | { readonly kind: "none" }
  | { readonly kind: "length"; readonly length: number }
  | { readonly kind: "chunked" }
  | { readonly kind: "close" };

/**
 * How the body of a response to `method` with `head` is delimited, and whether the connection can carry another
 * request after it (RFC 9112 section 6.3).
 *
 * @returns The framing and reuse, or an error message.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bodyFraming, parseHead } from "./_http1_client.ts";
 * const head = parseHead("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked");
 * assert(typeof head !== "string");
 * assert.deepEqual(bodyFraming("GET", head), { framing: { kind: "chunked" }, reusable: true });
 * ```
 */
export function bodyFraming(
  method: string,
  head: ResponseHead,
): { framing: Framing; reusable: boolean } | string {
  const values = (name: string) =>
    head.headers.filter(([n]) => n === name).flatMap(([, v]) => v.split(",")).map((v) => v.trim().toLowerCase())
      .filter((v) => v !== "");
  let reusable = head.version === "1.1" && !values("connection").includes("close");
  if (method === "HEAD" || head.status === 204 || head.status === 304 || head.status < 200) {
    return { framing: { kind: "none" }, reusable };
  }
  const codings = values("transfer-encoding");
  // Not `values`: an empty Content-Length (or an empty item of one) is malformed, not absent.
  const lengths = head.headers.filter(([n]) => n === "content-length").flatMap(([, v]) => v.split(","))
    .map((v) => v.trim());
  if (codings.length > 0) {
    if (codings.length !== 1 || codings[0] !== "chunked") {
      return `unsupported transfer-encoding '${printable(codings.join(", "))}'`;
    }
    // Both framings at once may be a smuggling attempt: the body is read as chunked, the connection not reused.
    return { framing: { kind: "chunked" }, reusable: reusable && lengths.length === 0 };
  }
  if (lengths.length > 0) {
    const first = lengths[0] ?? "";
    if (!/^\d{1,15}$/.test(first) || lengths.some((v) => v !== first)) {
      return `malformed content-length '${printable(lengths.join(", "))}'`;
    }
    return { framing: { kind: "length", length: Number(first) }, reusable };
  }
  reusable = false;
  return { framing: { kind: "close" }, reusable };
}

/**
 * Decodes a chunked body incrementally: {@linkcode push} takes the bytes received so far and returns the data they
 * complete and how many bytes it used; the rest stays with the caller until more arrive.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ChunkedDecoder } from "./_http1_client.ts";
 * const d = new ChunkedDecoder();
 * const bytes = new TextEncoder().encode("2\r\nok\r\n0\r\n\r\n");
 * const r = d.push(bytes);
 * assert.equal(new TextDecoder().decode(r.data[0]), "ok");
 * assert(r.used === bytes.length && d.done);
 * ```
 */
export class ChunkedDecoder {
  #state: "size" | "data" | "data-end" | "trailer" | "done" = "size";
  #remaining = 0;
  #trailerBytes = 0;

  /** Whether the last chunk and the trailers have been read. */
  get done(): boolean {
    return this.#state === "done";
  }

  /**
   * Decodes what it can of `buf`.
   *
   * @throws {Error} On malformed framing: a bad chunk size, a missing CRLF, a line or trailers too long.
   */
  push(buf: Uint8Array): { data: Uint8Array[]; used: number } {
    const data: Uint8Array[] = [];
    let at = 0;
    while (at < buf.length && this.#state !== "done") {
      if (this.#state === "data") {
        const n = Math.min(this.#remaining, buf.length - at);
        data.push(buf.subarray(at, at + n));
        at += n;
        this.#remaining -= n;
        if (this.#remaining === 0) this.#state = "data-end";
        continue;
      }
      if (this.#state === "data-end") {
        if (buf.length - at < 2) break;
        if (buf[at] !== CR || buf[at + 1] !== LF) throw new Error("malformed chunked body: no CRLF after a chunk");
        at += 2;
        this.#state = "size";
        continue;
      }
      const line = readLine(buf, at);
      if (line === undefined) {
        // No CRLF within a longest line and its CRLF; one byte short of that, only a CR may still end the line.
        const pending = buf.length - at;
        if (pending > MAX_LINE_BYTES + 1 || (pending === MAX_LINE_BYTES + 1 && buf[buf.length - 1] !== CR)) {
          throw new Error("malformed chunked body: a line too long");
        }
        break;
      }
      at = line.next;
      if (this.#state === "size") {
        const m = /^([0-9a-fA-F]{1,12})[ \t]*(?:;.*)?$/.exec(line.text);
        if (m === null) throw new Error(`malformed chunked body: chunk size '${printable(line.text)}'`);
        this.#remaining = parseInt(m[1] ?? "", 16);
        this.#state = this.#remaining === 0 ? "trailer" : "data";
        continue;
      }
      // Trailer fields are read and dropped, up to the head's limit.
      this.#trailerBytes += line.text.length + 2;
      if (this.#trailerBytes > MAX_HEAD_BYTES) throw new Error("malformed chunked body: trailers too large");
      if (line.text === "") this.#state = "done";
    }
    return { data, used: at };
  }
}

/** The CRLF-terminated line starting at `from`, as latin1, and where the next one starts. */
function readLine(buf: Uint8Array, from: number): { text: string; next: number } | undefined {
  const end = Math.min(buf.length, from + MAX_LINE_BYTES + 2);
  for (let i = from; i + 1 < end; i++) {
    if (buf[i] === CR && buf[i + 1] === LF) return { text: latin1(buf.subarray(from, i)), next: i + 2 };
  }
  return undefined;
}

function latin1(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    s += String.fromCharCode(...bytes.subarray(i, Math.min(bytes.length, i + 4096)));
  }
  return s;
}

/** At most 80 characters of peer-sent text, control characters escaped: safe to put in one log line. */
function printable(text: string): string {
  return text.length > 80 ? `${escapeControls(text.slice(0, 80))}\u2026` : escapeControls(text);
}

/**
 * A response: what the API logic reads of fetch's `Response` (status, `ok`, `headers.get`, a streamed body), as a
 * plain object. A `Response` and its `Headers` cost the program 0.3-0.5 MiB of idle RSS with discovery on (A/B, two rounds).
 */
export interface ClientResponse {
  readonly status: number;
  /** The reason phrase; empty when the server sent none or one with control characters. */
  readonly statusText: string;
  /** Whether the status is 2xx. */
  readonly ok: boolean;
  readonly headers: FieldList;
  /** `null` for a response without content (HEAD, 204, 205, 304). */
  readonly body: ByteStream | null;
}

/** Header fields, read as fetch's `Headers.get` reads them. */
export class FieldList {
  readonly #fields: readonly (readonly [string, string])[];

  /** @param fields Names lower-cased, in order (as {@linkcode parseHead} gives them). */
  constructor(fields: readonly (readonly [string, string])[]) {
    this.#fields = fields;
  }

  /** The values of the field `name` (any case) joined with `, `, or `null` when absent. */
  get(name: string): string | null {
    const lower = name.toLowerCase();
    const values = this.#fields.filter(([n]) => n === lower).map(([, v]) => v);
    return values.length === 0 ? null : values.join(", ");
  }
}

/** A response and what becomes of its connection. */
export interface Exchange {
  readonly response: ClientResponse;
  /**
   * Resolves once the body has ended: `true` when it was read to its end and the connection can carry another
   * request; `false` when the connection was closed (cancelled, failed, aborted, or not reusable).
   */
  readonly settled: Promise<boolean>;
}

/** The connection was closed by the peer before any byte of the response, after an earlier exchange on it. */
export class StaleConnectionError extends Error {
  override name = "StaleConnectionError";
}

/** A request as bytes to write: the method (for the framing of the response) and the whole message. */
export interface RequestBytes {
  readonly method: string;
  readonly bytes: Uint8Array;
}

/**
 * One HTTP/1.1 client connection: one exchange at a time. Closing it ends the exchange in progress.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Http1Conn } from "./_http1_client.ts";
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const served = listener.accept().then(async (c) => {
 *   await c.read(new Uint8Array(1024));
 *   await c.write(new TextEncoder().encode("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
 *   return c;
 * });
 * const http = new Http1Conn(await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }));
 * const request = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
 * const { response, settled } = await http.send({ method: "GET", bytes: request }, AbortSignal.timeout(5000), 5000);
 * const chunk = await response.body!.getReader().read();
 * assert.equal(new TextDecoder().decode(chunk.value), "ok");
 * assert.equal(await settled, true);
 * http.close();
 * (await served).close();
 * listener.close();
 * ```
 */
export class Http1Conn {
  readonly #conn: Deno.Conn;
  #buf: Uint8Array = EMPTY;
  #closed = false;
  #busy = false;
  #exchanges = 0;
  /** Ends the exchange whose body is being streamed, if any (see {@linkcode close}). */
  #endExchange: (() => void) | undefined;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** Whether the connection is closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Writes `request` and reads the response head; the body streams from the returned response's `body`.
   *
   * @param signal Aborts the whole exchange, the body's streaming included: the connection is closed.
   * @param headTimeoutMs Time allowed from the start of the write to the end of the response head.
   * @throws {StaleConnectionError} When a reused connection ends before any byte of the response.
   * @throws {Error} On a malformed response, a closed connection, or the head timeout; `signal`'s reason when it aborts.
   */
  async send(request: RequestBytes, signal: AbortSignal, headTimeoutMs: number): Promise<Exchange> {
    if (this.#closed) throw new Error("the connection is closed");
    if (this.#busy) throw new Error("the connection is carrying another request");
    signal.throwIfAborted();
    this.#busy = true;
    const reused = this.#exchanges++ > 0;
    let timedOut = false;
    const onAbort = () => this.close();
    signal.addEventListener("abort", onAbort, { once: true });
    const timer = setTimer(headTimeoutMs, () => {
      timedOut = true;
      this.close();
    });
    let head: ResponseHead;
    let framing: { framing: Framing; reusable: boolean };
    try {
      for (let off = 0; off < request.bytes.length;) off += await this.#conn.write(request.bytes.subarray(off));
      for (let first = true;; first = false) {
        // After an interim response the server has answered: a close is no longer a stale connection.
        const got = await this.#readHead(reused && first);
        if (typeof got === "string") throw new Error(got);
        // Interim responses (100 Continue, 103 Early Hints) precede the real one; 101 would switch protocols.
        if (got.status === 101) throw new Error("unexpected 101 Switching Protocols");
        if (got.status >= 200) {
          head = got;
          break;
        }
      }
      const f = bodyFraming(request.method, head);
      if (typeof f === "string") throw new Error(f);
      framing = f;
    } catch (e) {
      signal.removeEventListener("abort", onAbort);
      this.close();
      if (signal.aborted) throw signal.reason;
      if (timedOut) throw new Error(`no response headers within ${headTimeoutMs} ms`);
      throw e;
    } finally {
      clearTimer(timer);
    }
    let settle!: (reusable: boolean) => void;
    const settled = new Promise<boolean>((resolve) => settle = resolve);
    let over = false;
    const end = (complete: boolean) => {
      if (over) return;
      over = true;
      this.#endExchange = undefined;
      signal.removeEventListener("abort", onAbort);
      // Bytes after the body (a second response nobody asked for) make the connection unusable.
      const reusable = complete && framing.reusable && this.#buf.length === 0 && !this.#closed;
      if (!reusable) this.close();
      this.#busy = false;
      settle(reusable);
    };
    // Closing the connection ends the exchange even while nobody reads the body.
    this.#endExchange = () => end(false);
    let kind = framing.framing;
    // 205 must carry no content: an empty body is none, any other an error.
    if (head.status === 205 && kind.kind !== "none") {
      if (kind.kind !== "length" || kind.length !== 0) {
        this.close();
        signal.removeEventListener("abort", onAbort);
        throw new Error("unexpected content in a 205 Reset Content response");
      }
      kind = { kind: "none" };
    }
    const body = kind.kind === "none" ? null : this.#body(kind, signal, end);
    if (body === null) end(true);
    const response: ClientResponse = {
      status: head.status,
      statusText: validStatusText(head.statusText),
      ok: head.status >= 200 && head.status < 300,
      headers: new FieldList(head.headers),
      body,
    };
    return { response, settled };
  }

  /** Closes the connection; an exchange in progress fails. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeQuietly(this.#conn);
    this.#endExchange?.();
  }

  async #readHead(reused: boolean): Promise<ResponseHead | string> {
    let scanned = 0;
    for (;;) {
      const end = findHeadEnd(this.#buf, scanned);
      if (end > MAX_HEAD_BYTES) return `response head larger than ${MAX_HEAD_BYTES} bytes`;
      if (end >= 0) {
        const text = latin1(this.#buf.subarray(0, end));
        this.#buf = this.#buf.subarray(end + 4);
        return parseHead(text);
      }
      // A head of MAX_HEAD_BYTES may still be followed by the 3 first bytes of its blank line.
      if (this.#buf.length > MAX_HEAD_BYTES + 3) return `response head larger than ${MAX_HEAD_BYTES} bytes`;
      scanned = Math.max(0, this.#buf.length - 3);
      const before = this.#buf.length;
      let more: boolean;
      try {
        more = await this.#fill();
      } catch (e) {
        if (reused && before === 0 && !this.#closed) throw new StaleConnectionError(errorMessage(e));
        throw e;
      }
      if (!more) {
        if (reused && before === 0) throw new StaleConnectionError("the server closed the kept-alive connection");
        return "the connection closed before a complete response head";
      }
    }
  }

  #body(framing: Framing, signal: AbortSignal, end: (complete: boolean) => void): BodyStream {
    return new BodyStream(framing, signal, end, {
      buffered: () => this.#buf,
      consume: (n) => this.#buf = this.#buf.subarray(n),
      fill: () => this.#fill(),
      closed: () => this.#closed,
    });
  }

  /** Reads more bytes onto the unread ones; `false` at the end of the stream. */
  async #fill(): Promise<boolean> {
    const chunk = new Uint8Array(READ_BYTES);
    let n: number | null;
    try {
      n = await this.#conn.read(chunk);
    } catch (e) {
      if (this.#closed) throw new Error("the connection was closed", { cause: e });
      throw e;
    }
    if (n === null) return false;
    const got = chunk.subarray(0, n);
    if (this.#buf.length === 0) {
      this.#buf = got;
    } else {
      const joined = new Uint8Array(this.#buf.length + n);
      joined.set(this.#buf);
      joined.set(got, this.#buf.length);
      this.#buf = joined;
    }
    return true;
  }
}

/** What a {@linkcode BodyStream} reads from: its connection's unread bytes. */
interface BodySource {
  buffered(): Uint8Array;
  consume(n: number): void;
  fill(): Promise<boolean>;
  closed(): boolean;
}

/**
 * A response body, read one chunk at a time: a {@linkcode ByteStream}, the subset of `ReadableStream` the API logic
 * uses, without a `ReadableStream` (whose first use costs the program about 1 MiB of idle RSS: 43.0 -> 44.0 MiB,
 * `bench/rss_parts.ts --runs=3`, two rounds). Bytes are read from the connection only when a read asks for them.
 */
class BodyStream implements ByteStream, ByteReader {
  readonly #framing: Framing;
  readonly #signal: AbortSignal;
  readonly #end: (complete: boolean) => void;
  readonly #src: BodySource;
  readonly #chunked: ChunkedDecoder | undefined;
  #remaining: number;
  #queue: Uint8Array[] = [];
  /** The body ended (complete or not): the connection was handed back or closed. */
  #ended = false;
  #error: unknown;
  #failed = false;
  #reading = false;
  #cancelled = false;

  constructor(framing: Framing, signal: AbortSignal, end: (complete: boolean) => void, src: BodySource) {
    this.#framing = framing;
    this.#signal = signal;
    this.#end = end;
    this.#src = src;
    this.#chunked = framing.kind === "chunked" ? new ChunkedDecoder() : undefined;
    this.#remaining = framing.kind === "length" ? framing.length : 0;
    if (framing.kind === "length" && framing.length === 0) this.#finish(true);
  }

  getReader(): ByteReader {
    return this;
  }

  releaseLock(): void {}

  /** As `ReadableStream`'s: a read pending or after it gives `done`; the connection is closed. */
  cancel(): Promise<void> {
    this.#cancelled = true;
    this.#queue = [];
    this.#finish(false);
    return Promise.resolve();
  }

  async read(): Promise<ReadableStreamReadResult<Uint8Array>> {
    if (this.#failed) throw this.#error;
    if (this.#cancelled) return { done: true };
    if (this.#reading) throw new TypeError("Cannot read a response body twice at once");
    this.#reading = true;
    try {
      // Bytes read before an abort or a close are not handed out after it.
      if (this.#signal.aborted) throw this.#signal.reason;
      if (this.#src.closed() && !this.#ended) throw new Error("the connection was closed");
      const next = this.#queue.shift() ?? (this.#ended ? undefined : await this.#produce());
      return next === undefined ? { done: true } : { done: false, value: next };
    } catch (e) {
      if (this.#cancelled) return { done: true };
      this.#failed = true;
      this.#error = this.#signal.aborted ? this.#signal.reason : e;
      this.#queue = [];
      this.#finish(false);
      throw this.#error;
    } finally {
      this.#reading = false;
    }
  }

  /** The next chunk of the body, reading the connection as needed; `undefined` at its end. */
  async #produce(): Promise<Uint8Array | undefined> {
    for (;;) {
      if (this.#ended) return this.#queue.shift();
      const buf = this.#src.buffered();
      if (this.#framing.kind === "length" && buf.length > 0) {
        const n = Math.min(this.#remaining, buf.length);
        const out = buf.slice(0, n);
        this.#src.consume(n);
        this.#remaining -= n;
        if (this.#remaining === 0) this.#finish(true);
        return out;
      }
      if (this.#chunked !== undefined && buf.length > 0) {
        const { data, used } = this.#chunked.push(buf);
        // Copied before consuming: the decoder's pieces are views of the connection's buffer.
        for (const d of data) if (d.length > 0) this.#queue.push(d.slice());
        this.#src.consume(used);
        if (this.#chunked.done) this.#finish(true);
        const first = this.#queue.shift();
        if (first !== undefined) return first;
        if (used > 0) continue;
      }
      if (this.#framing.kind === "close" && buf.length > 0) {
        const out = buf.slice();
        this.#src.consume(buf.length);
        return out;
      }
      if (!(await this.#src.fill())) {
        if (this.#framing.kind !== "close") {
          throw new Error("the connection closed before the end of the response body");
        }
        this.#finish(true);
      }
    }
  }

  #finish(complete: boolean): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#end(complete);
  }
}

/** The index of the `\r\n\r\n` that ends a head, searching from `from`, or -1. */
function findHeadEnd(buf: Uint8Array, from: number): number {
  for (let i = from; i + 3 < buf.length; i++) {
    if (buf[i] === CR && buf[i + 1] === LF && buf[i + 2] === CR && buf[i + 3] === LF) return i;
  }
  return -1;
}

/** A reason phrase of visible ASCII, space and tab, else none. */
function validStatusText(text: string): string {
  return /^[\t\x20-\x7e]*$/.test(text) ? text : "";
}
