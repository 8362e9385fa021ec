/**
 * Examples for the Kubernetes API client's HTTP/1.1 connection (`lib/kubernetes/_http1_client.ts`): the head parser,
 * the body framing rules, the chunked decoder, and `Http1Conn` against a scripted peer on loopback TCP.
 */
import assert from "node:assert/strict";
import {
  bodyFraming,
  ChunkedDecoder,
  Http1Conn,
  MAX_HEAD_BYTES,
  parseHead,
  type ResponseHead,
  StaleConnectionError,
} from "../lib/kubernetes/_http1_client.ts";
import { withDeadline } from "./support/deadline.ts";
import { bodyText } from "./support/kube_client_fixtures.ts";
import type { ByteStream } from "../lib/kubernetes/transport.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** Bytes of a string of latin1 characters (each character one byte). */
const latin1Bytes = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const latin1 = (b: Uint8Array) => String.fromCharCode(...b);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
/** The whole body of a client response, as text. */
const text = (r: { readonly body: ByteStream | null }) => bodyText(r.body);

/** A head that must parse. */
function head(text: string): ResponseHead {
  const h = parseHead(text);
  if (typeof h === "string") throw new Error(`expected a head, got '${h}'`);
  return h;
}

/** What a caller of `ChunkedDecoder.push` does: keeps the unused bytes and appends each new piece to them. */
function feed(d: ChunkedDecoder, pieces: readonly Uint8Array[]): { out: Uint8Array; used: number; rest: Uint8Array } {
  let pending = new Uint8Array(0);
  const out: number[] = [];
  let used = 0;
  for (const piece of pieces) {
    const joined = new Uint8Array(pending.length + piece.length);
    joined.set(pending);
    joined.set(piece, pending.length);
    const r = d.push(joined);
    for (const chunk of r.data) out.push(...chunk);
    used += r.used;
    pending = joined.slice(r.used);
  }
  return { out: Uint8Array.from(out), used, rest: pending };
}

// ---------------------------------------------------------------------------------------------------------------
// parseHead

Deno.test("parseHead reads HTTP/1.1 and 1.0 status lines, with and without a reason", opts, () => {
  assert.deepEqual(parseHead("HTTP/1.1 200 OK"), { version: "1.1", status: 200, statusText: "OK", headers: [] });
  assert.deepEqual(parseHead("HTTP/1.0 404 Not Found"), {
    version: "1.0",
    status: 404,
    statusText: "Not Found",
    headers: [],
  });
  assert.deepEqual(parseHead("HTTP/1.1 503"), { version: "1.1", status: 503, statusText: "", headers: [] });
  assert.deepEqual(parseHead("HTTP/1.1 204 "), { version: "1.1", status: 204, statusText: "", headers: [] });
  assert.equal(head("HTTP/1.1 100 Continue").status, 100);
  assert.equal(head("HTTP/1.1 599 x").status, 599);
});

Deno.test("parseHead lower-cases names, trims values, keeps order and duplicates", opts, () => {
  const h = head(
    "HTTP/1.1 200 OK\r\nContent-Type:application/json\r\nX-Dup:  a \t\r\nx-dup:\tb\r\nEmpty:\r\nObs: caf\xe9\r\n" +
      "Inner: a  b\t c",
  );
  assert.deepEqual(h.headers, [
    ["content-type", "application/json"],
    ["x-dup", "a"],
    ["x-dup", "b"],
    ["empty", ""],
    ["obs", "caf\xe9"],
    ["inner", "a  b\t c"],
  ]);
  // Every token character is allowed in a name.
  assert.deepEqual(head("HTTP/1.1 200 OK\r\n!#$%&'*+-.^_`|~09Az: v").headers, [["!#$%&'*+-.^_`|~09az", "v"]]);
  // A colon inside the value is kept.
  assert.deepEqual(head("HTTP/1.1 200 OK\r\nLocation: https://x:6443/a").headers, [["location", "https://x:6443/a"]]);
});

Deno.test("parseHead refuses malformed status lines with a quoted one-line message", opts, () => {
  const cases: [string, string][] = [
    ["HTTP/2 200", "malformed status line 'HTTP/2 200'"],
    ["HTTP/2.0 200 OK", "malformed status line 'HTTP/2.0 200 OK'"],
    ["HTTP/1.2 200 OK", "malformed status line 'HTTP/1.2 200 OK'"],
    ["http/1.1 200 OK", "malformed status line 'http/1.1 200 OK'"],
    ["HTTP/1.1 099 Low", "malformed status line 'HTTP/1.1 099 Low'"],
    ["HTTP/1.1 600 High", "malformed status line 'HTTP/1.1 600 High'"],
    ["HTTP/1.1 abc OK", "malformed status line 'HTTP/1.1 abc OK'"],
    ["HTTP/1.1 20 OK", "malformed status line 'HTTP/1.1 20 OK'"],
    ["HTTP/1.1 2000 OK", "malformed status line 'HTTP/1.1 2000 OK'"],
    ["HTTP/1.1 200OK", "malformed status line 'HTTP/1.1 200OK'"],
    ["HTTP/1.1  200 OK", "malformed status line 'HTTP/1.1  200 OK'"],
    [" HTTP/1.1 200 OK", "malformed status line ' HTTP/1.1 200 OK'"],
    ["", "malformed status line ''"],
    ["SSH-2.0-OpenSSH_9.6\r\nX: y", "malformed status line 'SSH-2.0-OpenSSH_9.6'"],
  ];
  for (const [text, message] of cases) assert.equal(parseHead(text), message, JSON.stringify(text));
});

Deno.test("parseHead refuses obs-fold, missing colons, bad names and control characters in values", opts, () => {
  const cases: [string, string][] = [
    ["X-A: b\r\n continued", "malformed header line ' continued'"],
    ["X-A: b\r\n\tcontinued", "malformed header line '\\tcontinued'"],
    ["no colon here", "malformed header line 'no colon here'"],
    [": no name", "malformed header line ': no name'"],
    ["", "malformed header line ''"],
    ["Bad Name: v", "malformed header line 'Bad Name: v'"],
    ["X-A : v", "malformed header line 'X-A : v'"],
    ["X(a): v", "malformed header line 'X(a): v'"],
    ['X"a: v', "malformed header line 'X\"a: v'"],
    ["X@a: v", "malformed header line 'X@a: v'"],
    ["caf\xe9: v", "malformed header line 'caf\xe9: v'"],
    ["X\x00: v", "malformed header line 'X\\x00: v'"],
    ["X-A: a\x01b", "malformed header line 'X-A: a\\x01b'"],
    ["X-A: a\rb", "malformed header line 'X-A: a\\rb'"],
    ["X-A: a\nb", "malformed header line 'X-A: a\\nb'"],
    ["X-A: a\x7fb", "malformed header line 'X-A: a\\x7fb'"],
    ["X-A: \x1b[31mred", "malformed header line 'X-A: \\x1b[31mred'"],
  ];
  for (const [line, message] of cases) {
    assert.equal(parseHead(`HTTP/1.1 200 OK\r\nGood: yes\r\n${line}`), message, JSON.stringify(line));
  }
});

Deno.test("parseHead messages escape control characters and stop at 80 characters", opts, () => {
  assert.equal(parseHead("HTTP/1.1 200 O\rK"), "malformed status line 'HTTP/1.1 200 O\\rK'");
  assert.equal(parseHead("HTTP/9\x1b[2J 200"), "malformed status line 'HTTP/9\\x1b[2J 200'");
  assert.equal(parseHead("\nHTTP/1.1 200 OK"), "malformed status line '\\nHTTP/1.1 200 OK'");
  const long = "Y".repeat(200);
  assert.equal(parseHead(long), `malformed status line '${"Y".repeat(80)}…'`);
  const eighty = "Z".repeat(80);
  assert.equal(parseHead(eighty), `malformed status line '${eighty}'`);
  assert.equal(parseHead(`${eighty}!`), `malformed status line '${eighty}…'`);
  // The cut is made on the peer's characters, then escaped: an escape at character 80 is shown whole.
  assert.equal(parseHead(`${"A".repeat(79)}\x1b${"B".repeat(10)}`), `malformed status line '${"A".repeat(79)}\\x1b…'`);
  const badHeader = `X-Long: ${"v".repeat(100)}\x00`;
  assert.equal(
    parseHead(`HTTP/1.1 200 OK\r\n${badHeader}`),
    `malformed header line '${badHeader.slice(0, 80)}…'`,
  );
  for (const text of ["\u2028", "HTTP/1.1 200 OK\r\nX: \u2029", "HTTP/1.1 200 OK\r\nX\x85: v"]) {
    const m = parseHead(text);
    assert.equal(typeof m, "string");
    assert.doesNotMatch(m as string, /[\r\n\u2028\u2029\x85]/);
  }
});

// ---------------------------------------------------------------------------------------------------------------
// bodyFraming

Deno.test("bodyFraming: HEAD, 1xx, 204 and 304 have no body, whatever the headers say", opts, () => {
  const cl = "\r\nContent-Length: 5";
  assert.deepEqual(bodyFraming("HEAD", head(`HTTP/1.1 200 OK${cl}`)), { framing: { kind: "none" }, reusable: true });
  assert.deepEqual(bodyFraming("HEAD", head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked")), {
    framing: { kind: "none" },
    reusable: true,
  });
  assert.deepEqual(bodyFraming("GET", head(`HTTP/1.1 204 No Content${cl}`)), {
    framing: { kind: "none" },
    reusable: true,
  });
  assert.deepEqual(bodyFraming("GET", head(`HTTP/1.1 304 Not Modified${cl}`)), {
    framing: { kind: "none" },
    reusable: true,
  });
  assert.deepEqual(bodyFraming("GET", head("HTTP/1.1 100 Continue")), { framing: { kind: "none" }, reusable: true });
  assert.deepEqual(bodyFraming("GET", head("HTTP/1.1 204 No Content\r\nConnection: close")), {
    framing: { kind: "none" },
    reusable: false,
  });
  assert.deepEqual(bodyFraming("HEAD", head("HTTP/1.0 200 OK")), { framing: { kind: "none" }, reusable: false });
});

Deno.test("bodyFraming: chunked, and chunked with a content-length is read chunked but not reused", opts, () => {
  assert.deepEqual(bodyFraming("GET", head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked")), {
    framing: { kind: "chunked" },
    reusable: true,
  });
  assert.deepEqual(bodyFraming("GET", head("HTTP/1.1 200 OK\r\nTransfer-Encoding:  Chunked ")), {
    framing: { kind: "chunked" },
    reusable: true,
  });
  assert.deepEqual(bodyFraming("GET", head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked")), {
    framing: { kind: "chunked" },
    reusable: false,
  });
  assert.deepEqual(bodyFraming("POST", head("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked")), {
    framing: { kind: "chunked" },
    reusable: false,
  });
});

Deno.test("bodyFraming: a transfer-coding other than one chunked is refused", opts, () => {
  const cases: [string, string][] = [
    ["Transfer-Encoding: gzip", "unsupported transfer-encoding 'gzip'"],
    ["Transfer-Encoding: gzip, chunked", "unsupported transfer-encoding 'gzip, chunked'"],
    ["Transfer-Encoding: chunked, gzip", "unsupported transfer-encoding 'chunked, gzip'"],
    ["Transfer-Encoding: chunked, chunked", "unsupported transfer-encoding 'chunked, chunked'"],
    ["Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked", "unsupported transfer-encoding 'chunked, chunked'"],
    ["Transfer-Encoding: identity", "unsupported transfer-encoding 'identity'"],
    ["Transfer-Encoding: GZIP\r\nContent-Length: 4", "unsupported transfer-encoding 'gzip'"],
    [`Transfer-Encoding: ${"x".repeat(100)}`, `unsupported transfer-encoding '${"x".repeat(80)}…'`],
  ];
  for (const [headers, message] of cases) {
    assert.equal(bodyFraming("GET", head(`HTTP/1.1 200 OK\r\n${headers}`)), message, headers);
  }
});

Deno.test("bodyFraming: content-length single, repeated equal, conflicting, malformed, too long", opts, () => {
  const framing = (headers: string, version = "1.1") =>
    bodyFraming("GET", head(`HTTP/${version} 200 OK${headers === "" ? "" : `\r\n${headers}`}`));
  assert.deepEqual(framing("Content-Length: 5"), { framing: { kind: "length", length: 5 }, reusable: true });
  assert.deepEqual(framing("Content-Length: 0"), { framing: { kind: "length", length: 0 }, reusable: true });
  assert.deepEqual(framing("Content-Length: 5, 5"), { framing: { kind: "length", length: 5 }, reusable: true });
  assert.deepEqual(framing("Content-Length: 5\r\nContent-Length: 5"), {
    framing: { kind: "length", length: 5 },
    reusable: true,
  });
  assert.deepEqual(framing("Content-Length: 999999999999999"), {
    framing: { kind: "length", length: 999999999999999 },
    reusable: true,
  });
  assert.equal(framing("Content-Length: 5, 6"), "malformed content-length '5, 6'");
  assert.equal(framing("Content-Length: 5\r\nContent-Length: 6"), "malformed content-length '5, 6'");
  assert.equal(framing("Content-Length: abc"), "malformed content-length 'abc'");
  assert.equal(framing("Content-Length: -1"), "malformed content-length '-1'");
  assert.equal(framing("Content-Length: +5"), "malformed content-length '+5'");
  assert.equal(framing("Content-Length: 0x10"), "malformed content-length '0x10'");
  assert.equal(framing("Content-Length: 5 5"), "malformed content-length '5 5'");
  assert.equal(framing("Content-Length: 1.5"), "malformed content-length '1.5'");
  assert.equal(framing("Content-Length: 1234567890123456"), "malformed content-length '1234567890123456'");
  assert.equal(framing("Content-Length: 5, abc"), "malformed content-length '5, abc'");
});

Deno.test("bodyFraming: no length means until close; HTTP/1.0 and Connection: close are not reused", opts, () => {
  const get = (text: string) => bodyFraming("GET", head(text));
  assert.deepEqual(get("HTTP/1.1 200 OK"), { framing: { kind: "close" }, reusable: false });
  assert.deepEqual(get("HTTP/1.1 200 OK\r\nX: y"), { framing: { kind: "close" }, reusable: false });
  assert.deepEqual(get("HTTP/1.0 200 OK\r\nContent-Length: 2"), {
    framing: { kind: "length", length: 2 },
    reusable: false,
  });
  // HTTP/1.0 keep-alive is not supported: the connection is never reused.
  assert.deepEqual(get("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2"), {
    framing: { kind: "length", length: 2 },
    reusable: false,
  });
  for (const connection of ["close", "Close", "keep-alive, close", " CLOSE ", "upgrade,close"]) {
    assert.deepEqual(get(`HTTP/1.1 200 OK\r\nConnection: ${connection}\r\nContent-Length: 2`), {
      framing: { kind: "length", length: 2 },
      reusable: false,
    }, connection);
  }
  assert.deepEqual(get("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2"), {
    framing: { kind: "length", length: 2 },
    reusable: true,
  });
  assert.deepEqual(get("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nConnection: close\r\nContent-Length: 2"), {
    framing: { kind: "length", length: 2 },
    reusable: false,
  });
  // "closed" is not "close".
  assert.deepEqual(get("HTTP/1.1 200 OK\r\nConnection: closed\r\nContent-Length: 2"), {
    framing: { kind: "length", length: 2 },
    reusable: true,
  });
});

// Found by these tests: an empty Content-Length (or an empty item of one) was taken as absent (a body read until
// close); RFC 9112 §6.3 makes it a framing error.
Deno.test({
  name: "bodyFraming: an empty content-length is a framing error, not a close-delimited body",
  ...opts,
  fn() {
    assert.equal(bodyFraming("GET", head("HTTP/1.1 200 OK\r\nContent-Length:")), "malformed content-length ''");
    assert.equal(bodyFraming("GET", head("HTTP/1.1 200 OK\r\nContent-Length: ,")), "malformed content-length ', '");
    assert.equal(bodyFraming("GET", head("HTTP/1.1 200 OK\r\nContent-Length: 5,")), "malformed content-length '5, '");
    assert.equal(
      bodyFraming("GET", head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length:")),
      "malformed content-length '5, '",
    );
    // With chunked, an empty Content-Length still counts as a second framing: the connection is not reused.
    assert.deepEqual(bodyFraming("GET", head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length:")), {
      framing: { kind: "chunked" },
      reusable: false,
    });
  },
});

// ---------------------------------------------------------------------------------------------------------------
// ChunkedDecoder

const CHUNKED = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";

Deno.test("ChunkedDecoder decodes a whole body in one push and leaves what follows", opts, () => {
  const d = new ChunkedDecoder();
  assert.equal(d.done, false);
  const r = d.push(encoder.encode(`${CHUNKED}HTTP/1.1 200 OK`));
  assert.deepEqual(r.data.map((b) => decoder.decode(b)), ["hello", " world"]);
  assert.equal(r.used, CHUNKED.length);
  assert.equal(d.done, true);
  // Once done, nothing more is taken.
  assert.deepEqual(d.push(encoder.encode("5\r\nhello\r\n")), { data: [], used: 0 });
  assert.equal(d.done, true);
});

Deno.test("ChunkedDecoder decodes the same body pushed one byte at a time", opts, () => {
  const d = new ChunkedDecoder();
  const bytes = encoder.encode(CHUNKED);
  const doneAt: boolean[] = [];
  let pending = new Uint8Array(0);
  let out = "";
  let used = 0;
  for (const byte of bytes) {
    const joined = new Uint8Array([...pending, byte]);
    const r = d.push(joined);
    for (const c of r.data) out += decoder.decode(c);
    used += r.used;
    pending = joined.slice(r.used);
    doneAt.push(d.done);
  }
  assert.equal(out, "hello world");
  assert.equal(used, bytes.length);
  assert.equal(pending.length, 0);
  assert.deepEqual(doneAt.map((x, i) => x ? i : -1).filter((i) => i >= 0), [bytes.length - 1]);
  // Data bytes are handed over as they arrive, not held back until the chunk is whole.
  const e = new ChunkedDecoder();
  const first = e.push(encoder.encode("5\r\nhe"));
  assert.deepEqual(first.data.map((b) => decoder.decode(b)), ["he"]);
  assert.equal(first.used, 5);
  const second = e.push(encoder.encode("l"));
  assert.deepEqual(second.data.map((b) => decoder.decode(b)), ["l"]);
  assert.equal(second.used, 1);
  // A line cut between CR and LF waits for the LF.
  const f = new ChunkedDecoder();
  assert.deepEqual(f.push(encoder.encode("5\r")), { data: [], used: 0 });
  assert.equal(decoder.decode(feed(f, [encoder.encode("5\r\nhello\r\n0\r\n\r\n")]).out), "hello");
  assert.equal(f.done, true);
});

Deno.test("ChunkedDecoder accepts upper- and lower-case sizes, extensions, whitespace before them", opts, () => {
  const d = new ChunkedDecoder();
  const body = `A;name=value\r\n0123456789\r\nb ;x="y;z"\r\nhello world\r\n5\t;a;b=c\r\nabcde\r\n0;last\r\n\r\n`;
  const r = feed(d, [encoder.encode(body)]);
  assert.equal(decoder.decode(r.out), "0123456789hello worldabcde");
  assert.equal(r.used, body.length);
  assert.equal(d.done, true);
  const lead = new ChunkedDecoder();
  assert.equal(decoder.decode(feed(lead, [encoder.encode("0005\r\nhello\r\n000\r\n\r\n")]).out), "hello");
  assert.equal(lead.done, true);
});

Deno.test("ChunkedDecoder reads and drops trailers", opts, () => {
  const d = new ChunkedDecoder();
  const body = "3\r\nabc\r\n0\r\nX-Trailer: one\r\nX-Other: two\r\n\r\nNEXT";
  const r = d.push(encoder.encode(body));
  assert.deepEqual(r.data.map((b) => decoder.decode(b)), ["abc"]);
  assert.equal(r.used, body.length - 4);
  assert.equal(d.done, true);
  // Without the blank line the body is not done.
  const e = new ChunkedDecoder();
  const partial = e.push(encoder.encode("0\r\nX-Trailer: one\r\n"));
  assert.equal(e.done, false);
  assert.equal(partial.used, 19);
  assert.equal(e.push(encoder.encode("\r\n")).used, 2);
  assert.equal(e.done, true);
  // Only an empty line ends the trailers, not a blank-looking one.
  const f = new ChunkedDecoder();
  assert.equal(f.push(encoder.encode("0\r\n \r\n\t\r\n")).used, 9);
  assert.equal(f.done, false);
  assert.equal(f.push(encoder.encode("\r\nrest")).used, 2);
  assert.equal(f.done, true);
});

Deno.test("ChunkedDecoder refuses malformed chunk sizes with a one-line message", opts, () => {
  const cases: [string, string][] = [
    ["zz\r\n", "malformed chunked body: chunk size 'zz'"],
    ["\r\n", "malformed chunked body: chunk size ''"],
    ["-1\r\n", "malformed chunked body: chunk size '-1'"],
    ["0x5\r\n", "malformed chunked body: chunk size '0x5'"],
    [" 5\r\n", "malformed chunked body: chunk size ' 5'"],
    ["5 x\r\n", "malformed chunked body: chunk size '5 x'"],
    ["1234567890abc\r\n", "malformed chunked body: chunk size '1234567890abc'"],
    ["5\x1b[2J\r\n", "malformed chunked body: chunk size '5\\x1b[2J'"],
    ["5;a\nb\r\n", "malformed chunked body: chunk size '5;a\\nb'"],
    ["5\n\r\n", "malformed chunked body: chunk size '5\\n'"],
    [`${"z".repeat(100)}\r\n`, `malformed chunked body: chunk size '${"z".repeat(80)}…'`],
    ["5\r\nhello\r\nq\r\n", "malformed chunked body: chunk size 'q'"],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => new ChunkedDecoder().push(latin1Bytes(text)), { name: "Error", message }, JSON.stringify(text));
  }
});

Deno.test("ChunkedDecoder refuses a chunk not followed by CRLF", opts, () => {
  const message = "malformed chunked body: no CRLF after a chunk";
  for (const text of ["5\r\nhelloXY", "5\r\nhello\n0", "5\r\nhello\rX", "5\r\nhelloo\r\n"]) {
    assert.throws(() => new ChunkedDecoder().push(encoder.encode(text)), { message }, JSON.stringify(text));
  }
  // One byte after the data is not enough to tell: it waits.
  const d = new ChunkedDecoder();
  assert.equal(d.push(encoder.encode("5\r\nhelloX")).used, 8);
  assert.throws(() => d.push(encoder.encode("XY")), { message });
});

Deno.test("ChunkedDecoder bounds a line at 4096 bytes", opts, () => {
  const message = "malformed chunked body: a line too long";
  // 4096 bytes of a size line without its CRLF: not yet too long, nothing used.
  const atLimit = `5;${"x".repeat(4094)}`;
  assert.deepEqual(new ChunkedDecoder().push(encoder.encode(atLimit)), { data: [], used: 0 });
  // One more byte without a CRLF is too long.
  assert.throws(() => new ChunkedDecoder().push(encoder.encode(`${atLimit}x`)), { message });
  assert.throws(() => new ChunkedDecoder().push(encoder.encode("1".repeat(10_000))), { message });
  // A 4096-byte line with its CRLF is accepted; a 4097-byte one is not.
  const d = new ChunkedDecoder();
  assert.equal(decoder.decode(feed(d, [encoder.encode(`${atLimit}\r\nhello\r\n0\r\n\r\n`)]).out), "hello");
  assert.equal(d.done, true);
  assert.throws(() => new ChunkedDecoder().push(encoder.encode(`${atLimit}x\r\nhello\r\n0\r\n\r\n`)), { message });
  // Also a trailer line.
  assert.throws(() => new ChunkedDecoder().push(encoder.encode(`0\r\nX: ${"t".repeat(5000)}`)), { message });
});

// Found by these tests: a 4096-byte line was refused when the stream was cut between its CR and its LF.
Deno.test({
  name: "ChunkedDecoder accepts a 4096-byte line cut between its CR and LF",
  ...opts,
  fn() {
    const line = `5;${"x".repeat(4094)}`;
    const d = new ChunkedDecoder();
    const r = feed(d, [encoder.encode(`${line}\r`), encoder.encode("\nhello\r\n0\r\n\r\n")]);
    assert.equal(decoder.decode(r.out), "hello");
    assert.equal(d.done, true);
    // The byte after that CR must be its LF.
    const e = new ChunkedDecoder();
    assert.deepEqual(e.push(encoder.encode(`${line}\r`)), { data: [], used: 0 });
    assert.throws(() => e.push(encoder.encode(`${line}\rX`)), { message: "malformed chunked body: a line too long" });
    // A 4097-byte line is refused at every cut.
    assert.throws(() => new ChunkedDecoder().push(encoder.encode(`${line}y\r`)), {
      message: "malformed chunked body: a line too long",
    });
  },
});

Deno.test("ChunkedDecoder bounds the trailers at MAX_HEAD_BYTES", opts, () => {
  const message = "malformed chunked body: trailers too large";
  // Trailer lines of 4096 bytes each (4094 + CRLF): 15 of them plus one of 4094 and the blank line is exactly 65536.
  const line = (n: number) => `X: ${"t".repeat(n - 5)}\r\n`;
  const exact = `0\r\n${line(4096).repeat(15)}${line(4094)}\r\n`;
  assert.equal(exact.length - 3, MAX_HEAD_BYTES);
  const ok = new ChunkedDecoder();
  assert.equal(ok.push(encoder.encode(exact)).used, exact.length);
  assert.equal(ok.done, true);
  const over = `0\r\n${line(4096).repeat(15)}${line(4095)}\r\n`;
  assert.throws(() => new ChunkedDecoder().push(encoder.encode(over)), { message });
  // Endless trailers fail once past the limit, fed a line at a time.
  const d = new ChunkedDecoder();
  d.push(encoder.encode("0\r\n"));
  let threw: unknown;
  for (let i = 0; i < 100 && threw === undefined; i++) {
    try {
      assert.equal(d.push(encoder.encode(line(1000))).used, 1000);
    } catch (e) {
      threw = e;
    }
  }
  assert.ok(threw instanceof Error);
  assert.equal(threw.message, message);
  assert.equal(d.done, false);
});

// ---------------------------------------------------------------------------------------------------------------
// Http1Conn against a scripted peer

/** A request as `Http1Conn.send` takes it. */
function get(path = "/", method = "GET") {
  return { method, bytes: encoder.encode(`${method} ${path} HTTP/1.1\r\nHost: kubernetes\r\n\r\n`) };
}

/** Reads one request head (up to its blank line); `null` at EOF before any byte. Bounded by EOF. */
async function readRequest(c: Deno.Conn): Promise<string | null> {
  let text = "";
  const buf = new Uint8Array(4096);
  while (!text.includes("\r\n\r\n")) {
    const n = await c.read(buf);
    if (n === null) return text === "" ? null : text;
    text += latin1(buf.subarray(0, n));
  }
  return text;
}

/** Waits for EOF (the client closing), discarding what arrives; errors count as EOF. */
async function untilClosed(c: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(4096);
  try {
    while ((await c.read(buf)) !== null) { /* discard */ }
  } catch { /* closed */ }
}

async function writeAll(c: Deno.Conn, data: string | Uint8Array): Promise<void> {
  const bytes = typeof data === "string" ? latin1Bytes(data) : data;
  for (let off = 0; off < bytes.length;) off += await c.write(bytes.subarray(off));
}

function closeQuietly(c: { close(): void } | undefined): void {
  try {
    c?.close();
  } catch { /* closed */ }
}

/** A peer that reads one request, answers `response` and waits for the client to close. */
function answering(response: string): (c: Deno.TcpConn) => Promise<void> {
  return async (c) => {
    await readRequest(c);
    await writeAll(c, response);
    await untilClosed(c);
  };
}

interface Peer<T> {
  readonly http: Http1Conn;
  /** The script's result: what it returned, once it ended. */
  readonly done: Promise<T>;
}

/**
 * Runs `script` on the server side of a loopback TCP connection and `body` with an `Http1Conn` on the client side;
 * closes the client, the server connection and the listener at the end, then waits for the script.
 */
async function withPeer<T>(
  script: (server: Deno.TcpConn) => Promise<T>,
  body: (peer: Peer<T>) => Promise<void>,
): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let server: Deno.TcpConn | undefined;
  let http: Http1Conn | undefined;
  let done: Promise<T> | undefined;
  try {
    const accepted = listener.accept();
    http = new Http1Conn(await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }));
    server = await accepted;
    done = script(server);
    // Keep an unobserved failure of the script from surfacing as an unhandled rejection; a test that cares awaits it.
    done.catch(() => {});
    await body({ http, done });
  } finally {
    http?.close();
    closeQuietly(server);
    listener.close();
    if (done !== undefined) await withDeadline(done.catch(() => {}), "the peer script to end");
  }
}

const OK_HELLO = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello";

Deno.test("Http1Conn reads a content-length body and keeps the connection", opts, async () => {
  await withPeer(async (c) => {
    const req = await readRequest(c);
    await writeAll(c, OK_HELLO);
    await untilClosed(c);
    return req;
  }, async ({ http, done }) => {
    const { response, settled } = await http.send(get("/api/v1"), new AbortController().signal, 5000);
    assert.equal(response.status, 200);
    assert.equal(response.statusText, "OK");
    assert.equal(response.headers.get("x-a"), "b");
    assert.equal(response.headers.get("content-length"), "5");
    assert.equal(await text(response), "hello");
    assert.equal(await withDeadline(settled, "settled"), true);
    assert.equal(http.closed, false);
    http.close();
    assert.equal(http.closed, true);
    assert.equal(await done, "GET /api/v1 HTTP/1.1\r\nHost: kubernetes\r\n\r\n");
  });
});

Deno.test("Http1Conn streams a chunked body written in small pieces with pauses", opts, async () => {
  const payload = Array.from({ length: 120 }, (_, i) => String.fromCharCode(33 + (i % 90))).join("");
  const encoded = `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n` +
    `7\r\n${payload.slice(0, 7)}\r\n1;ext=1\r\n${payload.slice(7, 8)}\r\n` +
    `${(payload.length - 8).toString(16)}\r\n${payload.slice(8)}\r\n0\r\nX-Trailer: t\r\n\r\n`;
  await withPeer(async (c) => {
    await readRequest(c);
    const bytes = latin1Bytes(encoded);
    for (let off = 0, i = 0; off < bytes.length; off += 3, i++) {
      await writeAll(c, bytes.subarray(off, off + 3));
      if (i % 8 === 0) await sleep(2);
    }
    await untilClosed(c);
  }, async ({ http }) => {
    const { response, settled } = await http.send(get(), new AbortController().signal, 5000);
    assert.equal(response.headers.get("transfer-encoding"), "chunked");
    const reader = response.body!.getReader();
    let text = "";
    let reads = 0;
    for (let i = 0; i < 1000; i++) {
      const r = await withDeadline(reader.read(), "a chunk");
      if (r.done) break;
      assert.ok(r.value.length > 0, "no empty chunks");
      text += decoder.decode(r.value);
      reads++;
    }
    assert.equal(text, payload);
    assert.ok(reads > 1, `streamed in ${reads} reads`);
    assert.equal(await withDeadline(settled, "settled"), true);
    assert.equal(http.closed, false);
  });
});

Deno.test(
  "Http1Conn reads a body without length until the server closes, then drops the connection",
  opts,
  async () => {
    await withPeer(async (c) => {
      await readRequest(c);
      await writeAll(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst ");
      await sleep(10);
      await writeAll(c, "second");
      c.close();
    }, async ({ http }) => {
      const { response, settled } = await http.send(get(), new AbortController().signal, 5000);
      assert.equal(await withDeadline(text(response), "the body"), "first second");
      assert.equal(await withDeadline(settled, "settled"), false);
      assert.equal(http.closed, true);
    });
  },
);

Deno.test("Http1Conn carries two requests on one connection", opts, async () => {
  await withPeer(async (c) => {
    const first = await readRequest(c);
    await writeAll(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
    const second = await readRequest(c);
    await writeAll(c, "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nsecond\r\n0\r\n\r\n");
    await untilClosed(c);
    return [first, second];
  }, async ({ http, done }) => {
    const one = await http.send(get("/one"), new AbortController().signal, 5000);
    assert.equal(await text(one.response), "first");
    assert.equal(await withDeadline(one.settled, "settled"), true);
    const two = await http.send(get("/two"), new AbortController().signal, 5000);
    assert.equal(two.response.status, 201);
    assert.equal(await text(two.response), "second");
    assert.equal(await withDeadline(two.settled, "settled"), true);
    assert.equal(http.closed, false);
    http.close();
    const [first, second] = await done;
    assert.match(first ?? "", /^GET \/one /);
    assert.match(second ?? "", /^GET \/two /);
  });
});

Deno.test("Http1Conn skips 100 Continue and 103 Early Hints before the response", opts, async () => {
  await withPeer(async (c) => {
    await readRequest(c);
    await writeAll(c, "HTTP/1.1 100 Continue\r\n\r\n");
    await sleep(5);
    await writeAll(c, "HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n" + OK_HELLO);
    await untilClosed(c);
  }, async ({ http }) => {
    const { response, settled } = await http.send(get(), new AbortController().signal, 5000);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("link"), null);
    assert.equal(await text(response), "hello");
    assert.equal(await withDeadline(settled, "settled"), true);
  });
});

Deno.test("Http1Conn refuses a response head larger than MAX_HEAD_BYTES", opts, async () => {
  await withPeer(async (c) => {
    await readRequest(c);
    try {
      await writeAll(c, "HTTP/1.1 200 OK\r\n");
      const line = `X-Filler: ${"f".repeat(1000)}\r\n`;
      for (let i = 0; i < 200; i++) await writeAll(c, line);
    } catch { /* the client closed */ }
    await untilClosed(c);
  }, async ({ http }) => {
    await assert.rejects(http.send(get(), new AbortController().signal, 5000), {
      name: "Error",
      message: `response head larger than ${MAX_HEAD_BYTES} bytes`,
    });
    assert.equal(MAX_HEAD_BYTES, 65536);
    assert.equal(http.closed, true);
  });
});

// Found by these tests: the limit was checked only before the end of the head was found, so a 70 000-byte head
// arriving at once passed (the buffer went from 65 536 to 81 920 bytes in one read).
Deno.test("Http1Conn holds the response head to MAX_HEAD_BYTES however it arrives", opts, async () => {
  const start = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Big: ";
  /** A head of `n` bytes (before its blank line). */
  const headOf = (n: number) => start + "b".repeat(n - start.length);
  const cases: [number, boolean][] = [[70_000, false], [MAX_HEAD_BYTES + 1, false], [MAX_HEAD_BYTES, true]];
  for (const [size, accepted] of cases) {
    await withPeer(async (c) => {
      await readRequest(c);
      try {
        await writeAll(c, `${headOf(size)}\r\n\r\n`);
      } catch { /* the client closed */ }
      await untilClosed(c);
    }, async ({ http }) => {
      const sent = http.send(get(), new AbortController().signal, 5000);
      if (accepted) {
        const { response, settled } = await sent;
        assert.equal(response.headers.get("x-big")?.length, size - start.length);
        assert.equal(await withDeadline(settled, "settled"), true, `${size} bytes`);
      } else {
        await assert.rejects(sent, { message: `response head larger than ${MAX_HEAD_BYTES} bytes` }, `${size} bytes`);
      }
    });
  }
});

// Found by these tests: a head of exactly MAX_HEAD_BYTES was refused when the stream was cut after the CR LF CR of its
// blank line (65 539 bytes held without a complete "\r\n\r\n").
Deno.test({
  name: "Http1Conn accepts a head of MAX_HEAD_BYTES whose blank line is cut after its CR LF CR",
  ...opts,
  async fn() {
    const start = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Big: ";
    const head = start + "b".repeat(MAX_HEAD_BYTES - start.length);
    await withPeer(async (c) => {
      await readRequest(c);
      try {
        await writeAll(c, `${head}\r\n\r`);
        await sleep(50);
        await writeAll(c, "\n");
      } catch { /* the client closed */ }
      await untilClosed(c);
    }, async ({ http }) => {
      const { response, settled } = await http.send(get(), new AbortController().signal, 5000);
      assert.equal(response.status, 200);
      assert.equal(await withDeadline(settled, "settled"), true);
    });
  },
});

Deno.test("Http1Conn fails the body read when the server closes mid-body", opts, async () => {
  for (
    const response of [
      "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nhalf",
    ]
  ) {
    await withPeer(async (c) => {
      await readRequest(c);
      await writeAll(c, response);
      c.close();
    }, async ({ http }) => {
      const ex = await http.send(get(), new AbortController().signal, 5000);
      await assert.rejects(withDeadline(text(ex.response), "the body"), {
        name: "Error",
        message: "the connection closed before the end of the response body",
      });
      assert.equal(await withDeadline(ex.settled, "settled"), false);
      assert.equal(http.closed, true);
    });
  }
});

Deno.test("Http1Conn fails a malformed chunked body and drops the connection", opts, async () => {
  await withPeer(
    answering("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n"),
    async ({ http }) => {
      const ex = await http.send(get(), new AbortController().signal, 5000);
      await assert.rejects(withDeadline(text(ex.response), "the body"), {
        message: "malformed chunked body: chunk size 'zz'",
      });
      assert.equal(await withDeadline(ex.settled, "settled"), false);
      assert.equal(http.closed, true);
    },
  );
});

Deno.test(
  "Http1Conn fails a malformed head, framing or status with one message and drops the connection",
  opts,
  async () => {
    const cases: [string, string][] = [
      ["HTTP/2 200 OK\r\n\r\n", "malformed status line 'HTTP/2 200 OK'"],
      ["HTTP/1.1 200 OK\r\nBad Header\r\n\r\n", "malformed header line 'Bad Header'"],
      ["HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "unsupported transfer-encoding 'gzip'"],
      ["HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", "malformed content-length '1, 2'"],
      ["HTTP/1.1 200 OK\r\nX: y\r\n", "the connection closed before a complete response head"],
      ["", "the connection closed before a complete response head"],
      [
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        "unexpected 101 Switching Protocols",
      ],
      // Content in a 205 is an error, and the connection is dropped.
      [
        "HTTP/1.1 205 Reset Content\r\nContent-Length: 3\r\n\r\nabc",
        "unexpected content in a 205 Reset Content response",
      ],
    ];
    for (const [response, message] of cases) {
      await withPeer(async (c) => {
        await readRequest(c);
        await writeAll(c, response);
        await c.closeWrite();
        await untilClosed(c);
      }, async ({ http }) => {
        await assert.rejects(http.send(get(), new AbortController().signal, 5000), (e) => {
          assert.ok(!(e instanceof StaleConnectionError), "a first exchange is never stale");
          assert.equal((e as Error).message, message);
          return true;
        });
        assert.equal(http.closed, true);
      });
    }
  },
);

Deno.test("Http1Conn gives up on the head after the head timeout", opts, async () => {
  await withPeer(async (c) => {
    await readRequest(c);
    await untilClosed(c);
  }, async ({ http }) => {
    const start = performance.now();
    await assert.rejects(withDeadline(http.send(get(), new AbortController().signal, 200), "the timeout"), {
      name: "Error",
      message: "no response headers within 200 ms",
    });
    assert.ok(performance.now() - start >= 199, `after ${performance.now() - start} ms`);
    assert.equal(http.closed, true);
  });
});

Deno.test("Http1Conn's head timeout also covers a head that trickles in", opts, async () => {
  await withPeer(async (c) => {
    await readRequest(c);
    try {
      await writeAll(c, "HTTP/1.1 200 OK\r\n");
      for (let i = 0; i < 100; i++) {
        await sleep(20);
        await writeAll(c, "X: y\r\n");
      }
    } catch { /* the client closed */ }
    await untilClosed(c);
  }, async ({ http }) => {
    await assert.rejects(withDeadline(http.send(get(), new AbortController().signal, 150), "the timeout"), {
      message: "no response headers within 150 ms",
    });
  });
});

Deno.test("Http1Conn rejects with the signal's reason when aborted before the head", opts, async () => {
  const received = Promise.withResolvers<void>();
  await withPeer(async (c) => {
    await readRequest(c);
    received.resolve();
    await untilClosed(c);
  }, async ({ http }) => {
    const controller = new AbortController();
    const reason = new Error("stop now");
    const sent = http.send(get(), controller.signal, 5000);
    await withDeadline(received.promise, "the request");
    controller.abort(reason);
    await assert.rejects(withDeadline(sent, "the abort"), (e) => e === reason);
    assert.equal(http.closed, true);
  });
});

Deno.test("Http1Conn rejects an already aborted signal without writing or closing", opts, async () => {
  await withPeer(async (c) => await readRequest(c), async ({ http, done }) => {
    const reason = new Error("too late");
    await assert.rejects(http.send(get(), AbortSignal.abort(reason), 5000), (e) => e === reason);
    assert.equal(http.closed, false);
    // The connection is still free for a request.
    http.close();
    assert.equal(await done, null);
  });
});

Deno.test("Http1Conn aborted while streaming a chunked body fails the pending read", opts, async () => {
  await withPeer(answering("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n"), async ({ http }) => {
    const controller = new AbortController();
    const { response, settled } = await http.send(get(), controller.signal, 5000);
    const reader = response.body!.getReader();
    const first = await withDeadline(reader.read(), "the first chunk");
    assert.equal(decoder.decode(first.value), "first");
    const pending = reader.read();
    await sleep(10);
    const reason = new Error("aborted mid-body");
    controller.abort(reason);
    await assert.rejects(withDeadline(pending, "the pending read"), (e) => e === reason);
    assert.equal(await withDeadline(settled, "settled"), false);
    assert.equal(http.closed, true);
  });
});

Deno.test("Http1Conn settles false when aborted or closed while nobody reads the body", opts, async () => {
  for (const how of ["abort", "close"] as const) {
    await withPeer(answering("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"), async ({ http }) => {
      const controller = new AbortController();
      const { response, settled } = await http.send(get(), controller.signal, 5000);
      if (how === "abort") controller.abort(new Error("abandoned"));
      else http.close();
      assert.equal(http.closed, true);
      try {
        assert.equal(await withDeadline(settled, `settled after ${how}`, 2000), false);
      } finally {
        await response.body?.cancel();
      }
    });
  }
});

// Found by these tests: bytes buffered before the abort were still handed out by the next read.
Deno.test({
  name: "Http1Conn: reading the body after the signal aborted rejects with its reason",
  ...opts,
  async fn() {
    await withPeer(answering("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"), async ({ http }) => {
      const controller = new AbortController();
      const { response, settled } = await http.send(get(), controller.signal, 5000);
      await sleep(20);
      const reason = new Error("abandoned");
      controller.abort(reason);
      assert.equal(await withDeadline(settled, "settled"), false);
      const reader = response.body!.getReader();
      await assert.rejects(withDeadline(reader.read(), "the read"), (e) => e === reason);
    });
  },
});

Deno.test("Http1Conn: cancelling the body drops the connection", opts, async () => {
  await withPeer(answering("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nsome of it"), async ({ http }) => {
    const { response, settled } = await http.send(get(), new AbortController().signal, 5000);
    const reader = response.body!.getReader();
    assert.equal(decoder.decode((await withDeadline(reader.read(), "a chunk")).value), "some of it");
    await reader.cancel();
    assert.equal(await withDeadline(settled, "settled"), false);
    assert.equal(http.closed, true);
  });
  // Cancelled before any read, and with a read pending.
  for (const pendingRead of [false, true]) {
    await withPeer(answering("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), async ({ http }) => {
      const { response, settled } = await http.send(get(), new AbortController().signal, 5000);
      const reader = response.body!.getReader();
      const pending = pendingRead ? reader.read() : undefined;
      await reader.cancel();
      if (pending !== undefined) assert.equal((await withDeadline(pending, "the read")).done, true);
      assert.equal(await withDeadline(settled, "settled"), false);
      assert.equal(http.closed, true);
    });
  }
});

Deno.test("Http1Conn reports a kept-alive connection the server closed as stale", opts, async () => {
  await withPeer(async (c) => {
    await readRequest(c);
    await writeAll(c, OK_HELLO);
    c.close();
  }, async ({ http, done }) => {
    const one = await http.send(get(), new AbortController().signal, 5000);
    assert.equal(await text(one.response), "hello");
    assert.equal(await withDeadline(one.settled, "settled"), true);
    await done;
    await assert.rejects(withDeadline(http.send(get(), new AbortController().signal, 5000), "stale"), (e) => {
      assert.ok(e instanceof StaleConnectionError, String(e));
      assert.equal(e.name, "StaleConnectionError");
      assert.ok(e.message !== "", "a reason");
      return true;
    });
    assert.equal(http.closed, true);
  });
});

Deno.test(
  "Http1Conn: a large request on a kept-alive connection the server closed fails, not hangs",
  opts,
  async () => {
    await withPeer(async (c) => {
      await readRequest(c);
      await writeAll(c, OK_HELLO);
      c.close();
    }, async ({ http, done }) => {
      const one = await http.send(get(), new AbortController().signal, 5000);
      assert.equal(await text(one.response), "hello");
      assert.equal(await withDeadline(one.settled, "settled"), true);
      await done;
      const big = new Uint8Array(16 << 20).fill(0x61);
      big.set(encoder.encode("PUT /x HTTP/1.1\r\nHost: k\r\nContent-Length: 16777183\r\n\r\n"));
      await assert.rejects(
        withDeadline(http.send({ method: "PUT", bytes: big }, new AbortController().signal, 5000), "the error"),
        Error,
      );
      assert.equal(http.closed, true);
    });
  },
);

// Found by these tests (the second case): a close after an interim response on a reused connection was reported as
// stale, and the transport would have resent the request.
Deno.test("Http1Conn: a reused connection closed after part of an answer is not stale", opts, async () => {
  for (const partial of ["HTTP/1.1 200 O", "HTTP/1.1 100 Continue\r\n\r\n"]) {
    await withPeer(async (c) => {
      await readRequest(c);
      await writeAll(c, OK_HELLO);
      await readRequest(c);
      await writeAll(c, partial);
      c.close();
    }, async ({ http }) => {
      const one = await http.send(get(), new AbortController().signal, 5000);
      assert.equal(await text(one.response), "hello");
      assert.equal(await withDeadline(one.settled, "settled"), true);
      await assert.rejects(withDeadline(http.send(get(), new AbortController().signal, 5000), "the error"), (e) => {
        assert.ok(!(e instanceof StaleConnectionError), `${JSON.stringify(partial)}: ${e}`);
        assert.equal((e as Error).message, "the connection closed before a complete response head");
        return true;
      });
    });
  }
});

Deno.test("Http1Conn does not reuse a connection with bytes after the body", opts, async () => {
  const cases: [string, string][] = [
    [`${OK_HELLO}HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n`, "hello"],
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nX", "hello"],
    ["HTTP/1.1 204 No Content\r\n\r\nunasked", ""],
    ["HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nunasked", ""],
  ];
  for (const [response, body] of cases) {
    await withPeer(answering(response), async ({ http }) => {
      const { response: r, settled } = await http.send(get(), new AbortController().signal, 5000);
      assert.equal(await withDeadline(text(r), "the body"), body);
      assert.equal(await withDeadline(settled, "settled"), false, JSON.stringify(response));
      assert.equal(http.closed, true);
    });
  }
});

Deno.test("Http1Conn does not reuse HTTP/1.0 or Connection: close responses", opts, async () => {
  for (
    const response of [
      "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello",
      "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
    ]
  ) {
    await withPeer(answering(response), async ({ http }) => {
      const ex = await http.send(get(), new AbortController().signal, 5000);
      assert.equal(await text(ex.response), "hello");
      assert.equal(await withDeadline(ex.settled, "settled"), false);
      assert.equal(http.closed, true);
    });
  }
});

Deno.test("Http1Conn: HEAD, 204, 304 and Content-Length: 0 have no body and keep the connection", opts, async () => {
  // [method, response, body, whether the Response has a null body]
  const exchanges: [string, string, string, boolean][] = [
    ["HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "", true],
    ["GET", "HTTP/1.1 204 No Content\r\n\r\n", "", true],
    ["GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 12\r\n\r\n", "", true],
    ["GET", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "", false],
    ["GET", OK_HELLO, "hello", false],
  ];
  await withPeer(async (c) => {
    for (const [, response] of exchanges) {
      await readRequest(c);
      await writeAll(c, response);
    }
    await untilClosed(c);
  }, async ({ http }) => {
    for (const [method, , body, nullBody] of exchanges) {
      const { response, settled } = await http.send(get("/", method), new AbortController().signal, 5000);
      assert.equal(response.body === null, nullBody, `${method} ${response.status}`);
      assert.equal(await text(response), body);
      assert.equal(await withDeadline(settled, "settled"), true, `${method} ${response.status}`);
      assert.equal(http.closed, false);
    }
  });
});

Deno.test("Http1Conn drops a reason phrase the Response constructor would refuse", opts, async () => {
  await withPeer(async (c) => {
    await readRequest(c);
    await writeAll(c, "HTTP/1.1 200 \x1b[31mred\r\nContent-Length: 0\r\n\r\n");
    await readRequest(c);
    await writeAll(c, "HTTP/1.1 200 caf\xe9\r\nContent-Length: 0\r\n\r\n");
    await untilClosed(c);
  }, async ({ http }) => {
    for (let i = 0; i < 2; i++) {
      const { response, settled } = await http.send(get(), new AbortController().signal, 5000);
      assert.equal(response.status, 200);
      assert.equal(response.statusText, "");
      assert.equal(await withDeadline(settled, "settled"), true);
    }
  });
});

// Found by these tests: a 205 was given a body stream, and the Response constructor threw a TypeError.
Deno.test({
  name: "Http1Conn answers 205 Reset Content without a crash",
  ...opts,
  async fn() {
    await withPeer(answering("HTTP/1.1 205 Reset Content\r\nContent-Length: 0\r\n\r\n"), async ({ http }) => {
      const { response, settled } = await http.send(get(), new AbortController().signal, 5000);
      assert.equal(response.status, 205);
      assert.equal(response.body, null);
      assert.equal(await withDeadline(settled, "settled"), true);
      assert.equal(http.closed, false);
    });
  },
});

Deno.test("Http1Conn refuses send on a busy or closed connection", opts, async () => {
  await withPeer(answering("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345"), async ({ http }) => {
    const signal = new AbortController().signal;
    const first = http.send(get(), signal, 5000);
    // Busy while the head is awaited...
    await assert.rejects(http.send(get(), signal, 5000), {
      message: "the connection is carrying another request",
    });
    const { response, settled } = await first;
    // ...and while the body streams.
    await assert.rejects(http.send(get(), signal, 5000), {
      message: "the connection is carrying another request",
    });
    await response.body!.cancel();
    assert.equal(await withDeadline(settled, "settled"), false);
    await assert.rejects(http.send(get(), signal, 5000), { message: "the connection is closed" });
  });
  await withPeer(async (c) => await readRequest(c), async ({ http, done }) => {
    http.close();
    await assert.rejects(http.send(get(), new AbortController().signal, 5000), {
      name: "Error",
      message: "the connection is closed",
    });
    assert.equal(await done, null, "nothing was written");
  });
});
