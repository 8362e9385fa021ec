/**
 * Properties of the Kubernetes API client's HTTP/1.1 parsing (`lib/kubernetes/_http1_client.ts`): the chunked decoder
 * reproduces any payload under any chunking and any cut of the stream into pushes, hands over data as soon as it
 * arrives, and leaves what follows the body alone; hostile bytes give a plain `Error` with a one-line message, never a
 * crash from the internals; any head text parses to a valid head or to a one-line reason.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { bodyFraming, ChunkedDecoder, parseHead } from "../lib/kubernetes/_http1_client.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };
const RUNS = 200;

const latin1Bytes = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);
const latin1 = (b: Uint8Array) => String.fromCharCode(...b);
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** A one-line message: no CR, LF, NEL or Unicode line/paragraph separator. */
function assertOneLine(message: string): void {
  assert.doesNotMatch(message, /[\r\n\x85\u2028\u2029]/, JSON.stringify(message));
}

/** Asserts `e` is a plain `Error` (not a TypeError, RangeError... from the internals) with a one-line message. */
function assertPlainError(e: unknown, prefix: string): void {
  assert.ok(e instanceof Error, `not an Error: ${String(e)}`);
  assert.equal(e.constructor, Error, `${e.name}: ${e.message}`);
  assert.ok(e.message.startsWith(prefix), e.message);
  assertOneLine(e.message);
}

// ---------------------------------------------------------------------------------------------------------------
// A chunked encoding of a payload, with where each payload byte sits in it.

const extension = fc.stringMatching(/^[ \t]{0,2}(;[a-z]{1,5}(=[a-z0-9"]{0,6})?){1,2}$/);
const trailer = fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,10}: [ -~]{0,30}$/);

const encoding = fc.record({
  payload: fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ maxLength: 1500, size: "max" })),
  sizes: fc.array(fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 400 })), { maxLength: 12 }),
  upper: fc.boolean(),
  zeros: fc.nat(3),
  extensions: fc.array(fc.option(extension, { nil: undefined }), { maxLength: 6 }),
  trailers: fc.array(trailer, { maxLength: 4 }),
  after: fc.uint8Array({ maxLength: 40 }),
});
type Encoding = typeof encoding extends fc.Arbitrary<infer T> ? T : never;

interface Encoded {
  /** The chunked body followed by the `after` bytes. */
  readonly bytes: Uint8Array;
  /** Where the chunked body ends (its final CRLF included). */
  readonly bodyEnd: number;
  /** `[offset in bytes, length]` of each chunk's data, in payload order. */
  readonly spans: readonly (readonly [number, number])[];
  /** The longest line (size, extension, trailer) without its CRLF. */
  readonly longestLine: number;
}

function encodeChunked(e: Encoding): Encoded {
  const parts: Uint8Array[] = [];
  const spans: [number, number][] = [];
  let at = 0;
  let longestLine = 0;
  let ext = 0;
  const line = (text: string) => {
    longestLine = Math.max(longestLine, text.length);
    const b = latin1Bytes(`${text}\r\n`);
    parts.push(b);
    at += b.length;
  };
  const sizeLine = (n: number) => {
    const hex = "0".repeat(e.zeros) + (e.upper ? n.toString(16).toUpperCase() : n.toString(16));
    line(hex + (e.extensions[ext++ % Math.max(1, e.extensions.length)] ?? ""));
  };
  let rest = e.payload;
  for (let i = 0; rest.length > 0; i++) {
    const size = e.sizes.length === 0 ? rest.length : e.sizes[i % e.sizes.length] ?? rest.length;
    const data = rest.subarray(0, size);
    rest = rest.subarray(data.length);
    sizeLine(data.length);
    spans.push([at, data.length]);
    parts.push(data, latin1Bytes("\r\n"));
    at += data.length + 2;
  }
  // "0" has at most 12 hex digits with the leading zeros, as any size.
  sizeLine(0);
  for (const t of e.trailers) line(t);
  line("");
  return { bytes: concat([...parts, e.after]), bodyEnd: at, spans, longestLine };
}

/** Cut points of `n` bytes into pushes, from arbitrary numbers: sorted, distinct, inside (0, n). */
const cutsOf = (raw: readonly number[], n: number) =>
  n <= 1 ? [] : [...new Set(raw.map((x) => 1 + (x % (n - 1))))].sort((a, b) => a - b);

Deno.test("ChunkedDecoder reproduces any payload under any chunking and any cut into pushes", opts, () => {
  fc.assert(
    fc.property(
      encoding,
      fc.array(fc.nat(), { maxLength: 40, size: "max" }),
      fc.boolean(),
      (e, rawCuts, byteByByte) => {
        const enc = encodeChunked(e);
        const cuts = byteByByte && enc.bytes.length < 400
          ? Array.from({ length: Math.max(0, enc.bytes.length - 1) }, (_, i) => i + 1)
          : cutsOf(rawCuts, enc.bytes.length);
        const bounds = [0, ...cuts, enc.bytes.length];
        const d = new ChunkedDecoder();
        let pending = new Uint8Array(0);
        let used = 0;
        const out: Uint8Array[] = [];
        let outLength = 0;
        for (let i = 0; i + 1 < bounds.length; i++) {
          const provided = bounds[i + 1] ?? 0;
          const buf = concat([pending, enc.bytes.subarray(bounds[i], provided)]);
          const r = d.push(buf);
          assert.ok(Number.isInteger(r.used) && r.used >= 0 && r.used <= buf.length, `used ${r.used} of ${buf.length}`);
          for (const chunk of r.data) {
            assert.ok(chunk.length > 0, "no empty data");
            out.push(chunk.slice());
            outLength += chunk.length;
          }
          used += r.used;
          pending = buf.slice(r.used);
          assert.deepEqual(
            pending,
            enc.bytes.slice(used, provided),
            "the unused bytes are the tail of what was pushed",
          );
          // Done exactly when the whole body has been pushed.
          assert.equal(d.done, provided >= enc.bodyEnd, `done after ${provided} of ${enc.bodyEnd} bytes`);
          if (d.done) {
            assert.equal(used, enc.bodyEnd, "nothing after the body is used");
          } else {
            // Only an unfinished line, or the CR of a chunk's CRLF, is held back.
            assert.ok(pending.length <= enc.longestLine + 1, `${pending.length} bytes held back`);
          }
          // Data is handed over as soon as it arrives: every payload byte pushed so far, and only those.
          const arrived = enc.spans.reduce((n, [start, len]) => n + Math.max(0, Math.min(len, provided - start)), 0);
          assert.equal(outLength, arrived, `data after ${provided} bytes`);
        }
        assert.deepEqual(concat(out), e.payload);
        assert.equal(d.done, true);
        assert.deepEqual(pending, e.after);
        // A done decoder takes nothing more.
        assert.deepEqual(d.push(pending), { data: [], used: 0 });
      },
    ),
    { numRuns: RUNS },
  );
});

// ---------------------------------------------------------------------------------------------------------------
// Hostile bytes

/** Bytes weighted towards what a chunked body is made of, so that the decoder gets past its first line. */
const chunkyBytes = fc.array(
  fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...'0123456789abcdefABCDEF;= \t\r\n\r\n\r\nxz:"'.split("")) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }).map((b) => String.fromCharCode(b)) },
  ),
  { maxLength: 300, size: "max" },
).map((cs) => latin1Bytes(cs.join("")));

/** A valid encoding with some bytes overwritten, inserted or cut. */
const damagedEncoding = fc.tuple(
  encoding,
  fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat(2)), {
    minLength: 1,
    maxLength: 4,
  }),
).map(([e, edits]) => {
  const bytes = [...encodeChunked(e).bytes];
  for (const [at, byte, op] of edits) {
    const i = bytes.length === 0 ? 0 : at % bytes.length;
    if (op === 0) bytes[i] = byte;
    else if (op === 1) bytes.splice(i, 0, byte);
    else bytes.splice(i, 1);
  }
  return Uint8Array.from(bytes);
});

const hostileBytes = fc.oneof(fc.uint8Array({ maxLength: 300, size: "max" }), chunkyBytes, damagedEncoding);

Deno.test("ChunkedDecoder: any bytes, cut anywhere, decode or fail with a one-line Error", opts, () => {
  fc.assert(
    fc.property(hostileBytes, fc.array(fc.nat(), { maxLength: 20 }), (bytes, rawCuts) => {
      const bounds = [0, ...cutsOf(rawCuts, bytes.length), bytes.length];
      const d = new ChunkedDecoder();
      let pending = new Uint8Array(0);
      for (let i = 0; i + 1 < bounds.length; i++) {
        const buf = concat([pending, bytes.subarray(bounds[i], bounds[i + 1])]);
        let r: { data: Uint8Array[]; used: number };
        try {
          r = d.push(buf);
        } catch (e) {
          assertPlainError(e, "malformed chunked body: ");
          return;
        }
        assert.ok(r.used >= 0 && r.used <= buf.length);
        assert.ok(r.data.reduce((n, c) => n + c.length, 0) <= r.used, "no more data than bytes used");
        pending = buf.slice(r.used);
        // Without an error, what is held back stays bounded (a line of at most 4096 bytes and its CR).
        assert.ok(pending.length <= 4097, `${pending.length} bytes held back`);
      }
    }),
    { numRuns: RUNS },
  );
});

// ---------------------------------------------------------------------------------------------------------------
// parseHead and bodyFraming

const tokenName = fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,12}$/);
const fieldValue = fc.stringMatching(/^[\x21-\x7e\x80-\xff]([\t\x20-\x7e\x80-\xff]{0,20}[\x21-\x7e\x80-\xff])?$/);
const goodHead = fc.record({
  version: fc.constantFrom("1.0", "1.1"),
  status: fc.integer({ min: 100, max: 599 }),
  reason: fc.option(fc.stringMatching(/^[\t\x20-\x7e]{0,20}$/), { nil: undefined }),
  headers: fc.array(
    fc.tuple(
      tokenName,
      fc.constantFrom("", " ", "\t", "  "),
      fc.option(fieldValue, { nil: "" }),
      fc.constantFrom("", " ", "\t"),
    ),
    { maxLength: 8 },
  ),
});

Deno.test("parseHead reads every well-formed head back", opts, () => {
  fc.assert(
    fc.property(goodHead, (h) => {
      const status = String(h.status).padStart(3, "0");
      const lines = [
        `HTTP/${h.version} ${status}${h.reason === undefined ? "" : ` ${h.reason}`}`,
        ...h.headers.map(([n, before, v, after]) => `${n}:${before}${v}${after}`),
      ];
      const parsed = parseHead(lines.join("\r\n"));
      assert.deepEqual(parsed, {
        version: h.version,
        status: h.status,
        statusText: h.reason ?? "",
        headers: h.headers.map(([n, , v]) => [n.toLowerCase(), v]),
      });
    }),
    { numRuns: RUNS },
  );
});

/** Head text: any latin1, any UTF-16, and a good head with junk inserted. */
const headText = fc.oneof(
  fc.uint8Array({ maxLength: 200 }).map(latin1),
  fc.string({ unit: "binary", maxLength: 120 }),
  fc.tuple(goodHead, fc.nat(), fc.string({ unit: "binary", maxLength: 6 })).map(([h, at, junk]) => {
    const text = [`HTTP/${h.version} ${h.status}`, ...h.headers.map(([n, , v]) => `${n}: ${v}`)].join("\r\n");
    const i = at % (text.length + 1);
    return text.slice(0, i) + junk + text.slice(i);
  }),
  fc.tuple(
    fc.constantFrom("HTTP/1.1 200 OK", "HTTP/1.0 204", "HTTP/1.1 101 Switching"),
    fc.array(
      fc.tuple(
        fc.constantFrom("Content-Length", "Transfer-Encoding", "Connection", "content-length", "X"),
        // deno-lint-ignore no-control-regex
        fc.stringMatching(/^[ \t]{0,1}[0-9a-z, \t\x00\x1b\x85\xe9]{0,12}$/),
      ),
      { maxLength: 4 },
    ),
  ).map(([first, hs]) => [first, ...hs.map(([n, v]) => `${n}:${v}`)].join("\r\n")),
);

Deno.test("parseHead and bodyFraming: any text is a valid head or a one-line reason", opts, () => {
  fc.assert(
    fc.property(headText, fc.constantFrom("GET", "HEAD", "POST", "PUT"), (text, method) => {
      let h: ReturnType<typeof parseHead>;
      try {
        h = parseHead(text);
      } catch (e) {
        assert.fail(`parseHead threw ${String(e)} for ${JSON.stringify(text)}`);
      }
      if (typeof h === "string") {
        assert.match(h, /^malformed (status|header) line '.*'$/s);
        assertOneLine(h);
        // The quoted part is at most 80 of the peer's characters, each escaped to at most 6, and the ellipsis.
        assert.ok(h.length <= "malformed status line ''".length + 80 * 6 + 1, `${h.length} characters`);
        return;
      }
      assert.ok(h.version === "1.0" || h.version === "1.1");
      assert.ok(Number.isInteger(h.status) && h.status >= 100 && h.status <= 599, `status ${h.status}`);
      assertOneLine(h.statusText);
      for (const [name, value] of h.headers) {
        assert.match(name, TOKEN);
        assert.match(value, FIELD_VALUE);
        assert.equal(value, value.replace(/^[ \t]+|[ \t]+$/g, ""), "trimmed");
      }
      let f: ReturnType<typeof bodyFraming>;
      try {
        f = bodyFraming(method, h);
      } catch (e) {
        assert.fail(`bodyFraming threw ${String(e)} for ${JSON.stringify(text)}`);
      }
      if (typeof f === "string") {
        assert.match(f, /^(unsupported transfer-encoding|malformed content-length) '.*'$/s);
        assertOneLine(f);
        return;
      }
      assert.equal(typeof f.reusable, "boolean");
      if (h.version === "1.0") assert.equal(f.reusable, false);
      if (method === "HEAD" || h.status < 200 || h.status === 204 || h.status === 304) {
        assert.equal(f.framing.kind, "none");
      }
      if (f.framing.kind === "length") {
        assert.ok(Number.isSafeInteger(f.framing.length) && f.framing.length >= 0, `length ${f.framing.length}`);
      }
      if (f.framing.kind === "close") assert.equal(f.reusable, false);
    }),
    { numRuns: RUNS },
  );
});
