/**
 * A minimal HTTP/1.1 response reader for the readyz probe: status, headers, and a small body (Content-Length,
 * chunked, or until close). Anything malformed or larger than the limit is an error, never a crash.
 *
 * @module
 */

/** A parsed response. */
export interface Http1Response {
  readonly status: number;
  readonly headers: ReadonlyMap<string, string>;
  readonly body: string;
  /** Whether the connection can carry another request. */
  readonly reusable: boolean;
}

/** Result of trying to parse buffered bytes: a response, "need more", or an error message. */
export type ParseResult =
  | { readonly kind: "done"; readonly response: Http1Response; readonly rest: string }
  | { readonly kind: "more" }
  | { readonly kind: "error"; readonly message: string };

const MAX = 64 * 1024;

/**
 * Parses one response from `data` (latin1 text). `ended` says the peer closed, which completes a body without length.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseResponse } from "./_http1.ts";
 * const r = parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false);
 * assert(r.kind === "done" && r.response.status === 200 && r.response.body === "ok");
 * ```
 */
export function parseResponse(data: string, ended: boolean): ParseResult {
  const headEnd = data.indexOf("\r\n\r\n");
  if (headEnd < 0) {
    if (data.length > MAX) return { kind: "error", message: "response head too large" };
    return ended ? { kind: "error", message: "connection closed before a response" } : { kind: "more" };
  }
  const lines = data.slice(0, headEnd).split("\r\n");
  const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? "");
  if (!m) {
    return { kind: "error", message: `not an HTTP/1.1 response: '${printable((lines[0] ?? "").slice(0, 40))}'` };
  }
  const status = Number(m[1]);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0) return { kind: "error", message: "malformed response header" };
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const keep = (headers.get("connection") ?? "").toLowerCase() !== "close" && lines[0]?.startsWith("HTTP/1.1");
  const bodyStart = headEnd + 4;
  const te = (headers.get("transfer-encoding") ?? "").toLowerCase();
  if (te.includes("chunked")) return parseChunked(data, bodyStart, status, headers, keep === true, ended);
  const cl = headers.get("content-length");
  if (cl !== undefined) {
    if (!/^\d+$/.test(cl) || Number(cl) > MAX) {
      return { kind: "error", message: `bad content-length '${printable(cl.slice(0, 40))}'` };
    }
    const end = bodyStart + Number(cl);
    if (data.length < end) return ended ? { kind: "error", message: "truncated body" } : { kind: "more" };
    return {
      kind: "done",
      response: { status, headers, body: data.slice(bodyStart, end), reusable: keep === true },
      rest: data.slice(end),
    };
  }
  if (status === 204 || status === 304) {
    return {
      kind: "done",
      response: { status, headers, body: "", reusable: keep === true },
      rest: data.slice(bodyStart),
    };
  }
  // No length: the body runs until the peer closes.
  if (data.length - bodyStart > MAX) return { kind: "error", message: "response body too large" };
  if (!ended) return { kind: "more" };
  return { kind: "done", response: { status, headers, body: data.slice(bodyStart), reusable: false }, rest: "" };
}

/** The peer's bytes for a message: control and non-ASCII characters become '?', so a reason stays one printable line. */
function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, "?");
}

function parseChunked(
  data: string,
  at: number,
  status: number,
  headers: Map<string, string>,
  keep: boolean,
  ended: boolean,
): ParseResult {
  let body = "";
  let pos = at;
  for (;;) {
    const eol = data.indexOf("\r\n", pos);
    if (eol < 0) break;
    const size = parseInt(data.slice(pos, eol).split(";")[0] ?? "", 16);
    if (!Number.isFinite(size) || size < 0) return { kind: "error", message: "malformed chunk size" };
    if (size === 0) {
      const end = data.indexOf("\r\n\r\n", eol);
      if (end < 0 && !data.startsWith("\r\n", eol + 2)) break;
      const after = data.startsWith("\r\n", eol + 2) ? eol + 4 : end + 4;
      return { kind: "done", response: { status, headers, body, reusable: keep }, rest: data.slice(after) };
    }
    if (data.length < eol + 2 + size + 2) break;
    body += data.slice(eol + 2, eol + 2 + size);
    if (body.length > MAX) return { kind: "error", message: "response body too large" };
    pos = eol + 2 + size + 2;
  }
  if (data.length - at > MAX) return { kind: "error", message: "response body too large" };
  return ended ? { kind: "error", message: "truncated chunked body" } : { kind: "more" };
}
