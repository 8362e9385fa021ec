/**
 * The HTTP/1.1 heads of `http_server.ts`, apart from its connections: finding a whole request head in the bytes read so
 * far (within a size limit), turning it into an {@linkcode HttpRequest} or the 4xx/5xx status that refuses it, and
 * writing response heads. Strict where RFC 9112 asks a server to be: whatever is not plainly well formed is refused,
 * never guessed at. Plain objects, not fetch's `Request` and `Response`: their first use costs the process about 3 MiB
 * of code and heap (URL parsing, header guards, body streams) that a probe port has no use for (issue 14).
 *
 * @module
 */
import { httpDate } from "../time_format.ts";

/**
 * Reason phrases (RFC 9110 section 15) of the statuses a probe or metrics handler answers with; others get an empty
 * one.
 */
const REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  413: "Content Too Large",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Control characters other than tab are not allowed in a field value (RFC 9110 section 5.5).
// deno-lint-ignore no-control-regex
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
const HEAD_END = /\r?\n\r?\n/;
/** Response fields the server writes itself. */
const FRAMING = new Set(["content-length", "connection", "transfer-encoding", "date"]);

/** What {@linkcode scanHead} found in the buffered text. */
export type HeadScan =
  /** No whole head yet: keep `buffered` (empty lines before the request line dropped) and read more. */
  | { readonly kind: "more"; readonly buffered: string }
  /** The head is longer than the limit: answer 431 and close. */
  | { readonly kind: "too large" }
  /** A whole head (without its blank line), and the bytes after it (the next pipelined request). */
  | { readonly kind: "head"; readonly head: string; readonly rest: string };

/**
 * Looks for a whole request head in `buffered` (latin1 text). Empty lines before a request line are ignored (RFC 9112
 * section 2.2), so they count against no limit; a head, its blank line included, may be `maxHeadBytes` long.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { scanHead } from "./_http_head.ts";
 * const scan = scanHead("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nGET", 8192);
 * assert(scan.kind === "head" && scan.head === "GET / HTTP/1.1\r\nHost: a" && scan.rest === "GET");
 * assert(scanHead("GET / HTTP/1.1\r\n", 8192).kind === "more");
 * assert(scanHead("x".repeat(20), 16).kind === "too large");
 * ```
 */
export function scanHead(buffered: string, maxHeadBytes: number): HeadScan {
  const text = buffered.replace(/^(\r?\n)+/, "");
  const end = HEAD_END.exec(text);
  if (end === null) return text.length > maxHeadBytes ? { kind: "too large" } : { kind: "more", buffered: text };
  const after = end.index + end[0].length;
  if (after > maxHeadBytes) return { kind: "too large" };
  return { kind: "head", head: text.slice(0, end.index), rest: text.slice(after) };
}

/** A request as a handler sees it. No body: the server refuses requests that carry one. */
export interface HttpRequest {
  /**
   * The method; GET, HEAD, POST, PUT, DELETE and OPTIONS upper-cased as fetch does. A HEAD request is passed as GET
   * (see `head`), so that its answer's `content-length` is the one GET would send (RFC 9110 section 9.3.2).
   */
  readonly method: string;
  /** The target's path, without its query (`/readyz` of `/readyz?verbose`). */
  readonly path: string;
  /** Whether the method was HEAD: the server sends no body. */
  readonly head: boolean;
  /** Header fields by lower-case name; a repeated field's values joined with `, `. */
  readonly headers: ReadonlyMap<string, string>;
}

/** A handler's answer. The server adds `date`, `content-length` and, when it closes, `connection: close`. */
export interface HttpAnswer {
  /** The status code. */
  readonly status: number;
  /** Header fields by lower-case name (framing fields are the server's and are dropped). */
  readonly headers?: Readonly<Record<string, string>>;
  /** The body, sent as UTF-8 (not for HEAD). @default "" */
  readonly body?: string;
}

/** A request head the handler can answer. */
export interface RequestHead {
  /** The request. */
  readonly request: HttpRequest;
  /** Whether the connection closes after the answer (HTTP/1.0, or `Connection: close`). */
  readonly close: boolean;
}

/**
 * Parses a request head (without its blank line) into the request to answer, or the status to refuse it with and close:
 * 400 for anything malformed, 405 for a method fetch forbids (CONNECT, TRACE, TRACK), 413 for a body (no endpoint
 * takes one), 505 for an HTTP version other than 1.0 and 1.1.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseRequestHead } from "./_http_head.ts";
 * const parsed = parseRequestHead("HEAD /readyz?x=1 HTTP/1.1\r\nHost: a");
 * assert(typeof parsed !== "number" && parsed.request.method === "GET" && parsed.request.head && !parsed.close);
 * assert(typeof parsed !== "number" && parsed.request.path === "/readyz");
 * assert(parseRequestHead("GET / HTTP/2.0") === 505);
 * ```
 */
export function parseRequestHead(head: string): RequestHead | number {
  const parsed = parseLines(head);
  return typeof parsed === "number" ? parsed : toRequest(parsed);
}

/**
 * The request a handler gets for `method target`, as if sent over HTTP/1.1: for tests and examples of handlers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { requestFor } from "./_http_head.ts";
 * assert.equal(requestFor("/readyz?x").path, "/readyz");
 * assert.equal(requestFor("/", "HEAD").method, "GET");
 * ```
 *
 * @throws {TypeError} When the request would be refused (with the status it would get).
 */
export function requestFor(target: string, method = "GET"): HttpRequest {
  const parsed = parseRequestHead(`${method} ${target} HTTP/1.1\r\nHost: localhost`);
  if (typeof parsed === "number") throw new TypeError(`The request '${method} ${target}' would be refused: ${parsed}`);
  return parsed.request;
}

interface ParsedHead {
  readonly method: string;
  readonly target: string;
  readonly minor: number;
  readonly fields: [string, string][];
}

function parseLines(head: string): ParsedHead | number {
  const lines = head.split(/\r?\n/);
  const parts = (lines[0] ?? "").split(" ");
  const [method, target, version] = parts;
  if (parts.length !== 3 || method === undefined || target === undefined || version === undefined) return 400;
  if (!TOKEN.test(method) || !/^[\x21-\x7e]+$/.test(target)) return 400;
  const v = /^HTTP\/1\.([01])$/.exec(version);
  if (v === null) return /^HTTP\/\d(\.\d)?$/.test(version) ? 505 : 400;
  const fields: [string, string][] = [];
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon);
    // Also refuses obsolete line folding and whitespace before the colon, as RFC 9112 asks of a server.
    if (colon <= 0 || !TOKEN.test(name)) return 400;
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
    if (BAD_VALUE.test(value)) return 400;
    fields.push([name.toLowerCase(), value]);
  }
  return { method, target, minor: Number(v[1]), fields };
}

function values(fields: readonly [string, string][], name: string): string[] {
  return fields.filter(([n]) => n === name).flatMap(([, v]) => v.split(",").map((s) => s.trim()));
}

/** Methods fetch upper-cases whatever their case (the Fetch standard's "normalize a method"). */
const NORMALIZED = new Set(["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"]);
/** Methods fetch refuses to carry. */
const FORBIDDEN = new Set(["CONNECT", "TRACE", "TRACK"]);
/**
 * An absolute-form target (RFC 9112 section 3.2.2): scheme, authority (a name, an IPv4 or a bracketed IPv6 literal,
 * and a port), then the rest.
 */
const ABSOLUTE = /^https?:\/\/(?:[^/?#@[\]]*@)?(?:\[[0-9A-Fa-f:.]+\]|[^/?#@[\]:]+)(?::\d*)?([/?#].*)?$/i;

/** The path of a request target (origin or absolute form), or `undefined` for another form. */
function pathOf(target: string): string | undefined {
  let rest: string;
  if (target.startsWith("/")) rest = target;
  else {
    const m = ABSOLUTE.exec(target);
    if (m === null) return undefined;
    rest = m[1] ?? "";
  }
  const end = rest.search(/[?#]/);
  const path = end < 0 ? rest : rest.slice(0, end);
  if (path === "") return "/";
  return path.startsWith("/") ? path : undefined;
}

function toRequest(p: ParsedHead): RequestHead | number {
  const hosts = p.fields.filter(([n]) => n === "host");
  if (hosts.length > 1 || (p.minor === 1 && hosts.length === 0)) return 400;
  const lengths = values(p.fields, "content-length");
  if (lengths.some((l) => !/^\d+$/.test(l)) || new Set(lengths.map(Number)).size > 1) return 400;
  // No endpoint takes a body: refuse one rather than read it (no framing to get wrong), and close.
  if (p.fields.some(([n]) => n === "transfer-encoding") || Number(lengths[0] ?? 0) > 0) return 413;
  const path = pathOf(p.target);
  if (path === undefined) return 400;
  const upper = p.method.toUpperCase();
  if (FORBIDDEN.has(upper)) return 405;
  const method = NORMALIZED.has(upper) ? upper : p.method;
  const headers = new Map<string, string>();
  for (const [n, v] of p.fields) {
    const before = headers.get(n);
    headers.set(n, before === undefined ? v : `${before}, ${v}`);
  }
  const head = method === "HEAD";
  const close = p.minor === 0 || values(p.fields, "connection").some((t) => t.toLowerCase() === "close");
  return { request: { method: head ? "GET" : method, path, head, headers }, close };
}

/**
 * The head of a handler's answer: status line, `date`, the handler's fields except the framing ones the server owns,
 * `content-length`, and `connection: close` when the connection closes after it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { responseHead } from "./_http_head.ts";
 * const head = responseHead(200, { "content-type": "text/plain" }, { bodyLength: 3, close: true });
 * assert(head.startsWith("HTTP/1.1 200 OK\r\n") && head.endsWith("content-length: 3\r\nconnection: close\r\n\r\n"));
 * ```
 */
export function responseHead(
  status: number,
  headers: Readonly<Record<string, string>>,
  options: { readonly bodyLength: number; readonly close: boolean },
): string {
  let text = `HTTP/1.1 ${status} ${REASONS[status] ?? ""}\r\ndate: ${httpDate(Date.now())}\r\n`;
  for (const name in headers) {
    const key = name.toLowerCase();
    if (!FRAMING.has(key)) text += `${key}: ${headers[name]}\r\n`;
  }
  return `${text}content-length: ${options.bodyLength}\r\n${options.close ? "connection: close\r\n" : ""}\r\n`;
}

/**
 * A whole plain-text answer that closes the connection, for a refusal that never reaches the handler; its body is the
 * lower-case reason phrase unless `body` is given. A 405 carries `Allow`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { refusal } from "./_http_head.ts";
 * assert(refusal(400).endsWith("connection: close\r\n\r\nbad request\n"));
 * ```
 */
export function refusal(status: number, body = REASONS[status]?.toLowerCase() ?? "error"): string {
  return `HTTP/1.1 ${status} ${REASONS[status] ?? ""}\r\ncontent-type: text/plain; charset=utf-8\r\n` +
    (status === 405 ? "allow: GET, HEAD\r\n" : "") +
    `content-length: ${body.length + 1}\r\nconnection: close\r\n\r\n${body}\n`;
}
