/**
 * The HTTP/1.1 heads of `http_server.ts`, apart from its connections: finding a whole request head in the bytes read so
 * far (within a size limit), turning it into a `Request` or the 4xx/5xx status that refuses it, and writing response
 * heads. Strict where RFC 9112 asks a server to be: whatever is not plainly well formed is refused, never guessed at.
 *
 * @module
 */

/** Reason phrases (RFC 9110 §15) of the statuses a probe or metrics handler answers with; others get an empty one. */
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
// Control characters other than tab are not allowed in a field value (RFC 9110 §5.5).
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
 * §2.2), so they count against no limit; a head, its blank line included, may be `maxHeadBytes` long.
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

/** A request head the handler can answer. */
export interface RequestHead {
  /** The request; a HEAD request is asked as GET so that Content-Length is the one GET would send (RFC 9110 §8.6). */
  readonly request: Request;
  /** Whether the method was HEAD: the answer carries no body. */
  readonly head: boolean;
  /** Whether the connection closes after the answer (HTTP/1.0, or `Connection: close`). */
  readonly close: boolean;
}

/**
 * Parses a request head (without its blank line) into the request to answer, or the status to refuse it with and close:
 * 400 for anything malformed, 405 for a method fetch forbids, 413 for a body (no endpoint takes one), 505 for an HTTP
 * version other than 1.0 and 1.1.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseRequestHead } from "./_http_head.ts";
 * const parsed = parseRequestHead("HEAD /readyz HTTP/1.1\r\nHost: a");
 * assert(typeof parsed !== "number" && parsed.request.method === "GET" && parsed.head && !parsed.close);
 * assert(parseRequestHead("GET / HTTP/2.0") === 505);
 * ```
 */
export function parseRequestHead(head: string): RequestHead | number {
  const parsed = parseLines(head);
  return typeof parsed === "number" ? parsed : toRequest(parsed);
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

function toRequest(p: ParsedHead): RequestHead | number {
  const hosts = p.fields.filter(([n]) => n === "host");
  if (hosts.length > 1 || (p.minor === 1 && hosts.length === 0)) return 400;
  const lengths = values(p.fields, "content-length");
  if (lengths.some((l) => !/^\d+$/.test(l)) || new Set(lengths.map(Number)).size > 1) return 400;
  // No endpoint takes a body: refuse one rather than read it (no framing to get wrong), and close.
  if (p.fields.some(([n]) => n === "transfer-encoding") || Number(lengths[0] ?? 0) > 0) return 413;
  let url: string;
  if (p.target.startsWith("/")) url = `http://localhost${p.target}`;
  else if (/^https?:\/\//i.test(p.target)) url = p.target;
  else return 400;
  if (!URL.canParse(url)) return 400;
  const headers = new Headers();
  try {
    for (const [n, v] of p.fields) headers.append(n, v);
  } catch {
    return 400;
  }
  const head = p.method === "HEAD";
  let request: Request;
  try {
    request = new Request(url, { method: head ? "GET" : p.method, headers });
  } catch {
    return 405; // a method fetch forbids (CONNECT, TRACE, TRACK)
  }
  const close = p.minor === 0 || values(p.fields, "connection").some((t) => t.toLowerCase() === "close");
  return { request, head, close };
}

/**
 * The head of a handler's answer: status line, `date`, the handler's fields except the framing ones the server owns,
 * `content-length`, and `connection: close` when the connection closes after it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { responseHead } from "./_http_head.ts";
 * const head = responseHead(200, new Headers({ "content-type": "text/plain" }), { bodyLength: 3, close: true });
 * assert(head.startsWith("HTTP/1.1 200 OK\r\n") && head.endsWith("content-length: 3\r\nconnection: close\r\n\r\n"));
 * ```
 */
export function responseHead(
  status: number,
  headers: Headers,
  options: { readonly bodyLength: number; readonly close: boolean },
): string {
  let text = `HTTP/1.1 ${status} ${REASONS[status] ?? ""}\r\ndate: ${new Date().toUTCString()}\r\n`;
  for (const [name, value] of headers) {
    if (!FRAMING.has(name)) text += `${name}: ${value}\r\n`;
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
