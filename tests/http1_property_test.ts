/**
 * Properties of the readyz probe's HTTP/1.1 response reader: any bytes are "more", an error, or a response within the
 * limits, never a throw; a well-formed response parses the same at every cut, and every shorter prefix asks for more.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseResponse } from "../lib/upstream/_http1.ts";
import { check, RUNS } from "./support/properties.ts";

const MAX = 64 * 1024;
const latin1 = (bytes: Uint8Array) => String.fromCharCode(...bytes);

const headerName = fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,12}$/)
  .filter((n) => !["content-length", "transfer-encoding", "connection"].includes(n.toLowerCase()));
const headerValue = fc.stringMatching(/^[ -~]{0,20}$/).map((v) => v.trim());
const body = fc.string({ maxLength: 200 });
/** A well-formed response: status, headers, body framed by Content-Length or as chunks of the given sizes. */
const response = fc.record({
  version: fc.constantFrom("1.1", "1.0"),
  status: fc.integer({ min: 100, max: 599 }).filter((s) => s !== 204 && s !== 304),
  reason: fc.constantFrom("", " OK", " Service Unavailable"),
  headers: fc.array(fc.tuple(headerName, headerValue), { maxLength: 4 }),
  body,
  chunked: fc.boolean(),
  chunkSizes: fc.array(fc.integer({ min: 1, max: 50 }), { maxLength: 6 }),
  close: fc.boolean(),
});

type Resp = typeof response extends fc.Arbitrary<infer T> ? T : never;

function render(r: Resp): string {
  const head = [`HTTP/${r.version} ${r.status}${r.reason}`, ...r.headers.map(([n, v]) => `${n}: ${v}`)];
  if (r.close) head.push("Connection: close");
  if (!r.chunked) return `${[...head, `Content-Length: ${r.body.length}`].join("\r\n")}\r\n\r\n${r.body}`;
  let rest = r.body;
  let chunks = "";
  for (const n of [...r.chunkSizes, Infinity]) {
    if (rest === "") break;
    const c = rest.slice(0, n);
    rest = rest.slice(c.length);
    chunks += `${c.length.toString(16)}\r\n${c}\r\n`;
  }
  return `${[...head, "Transfer-Encoding: chunked"].join("\r\n")}\r\n\r\n${chunks}0\r\n\r\n`;
}

Deno.test("HTTP/1.1 response reader properties", async (t) => {
  await t.step("any bytes are more, an error, or a response within the limits", () => {
    const text = fc.oneof(
      fc.uint8Array({ maxLength: 300 }).map(latin1),
      response.map(render).chain((r) => fc.nat(r.length).map((n) => r.slice(0, n) + "\r\n\r\n" + r.slice(n))),
      fc.tuple(response.map(render), fc.nat(), fc.uint8Array({ maxLength: 20 }))
        .map(([r, at, junk]) => r.slice(0, at % (r.length + 1)) + latin1(junk) + r.slice(at % (r.length + 1))),
    );
    check(fc.property(text, fc.boolean(), (data, ended) => {
      const r = parseResponse(data, ended);
      if (r.kind === "error") assert.doesNotMatch(r.message, /[\r\n]/);
      if (r.kind !== "done") return;
      assert.ok(Number.isInteger(r.response.status) && r.response.status >= 100 && r.response.status <= 999);
      assert.ok(r.response.body.length <= MAX);
      assert.ok(data.endsWith(r.rest), "rest is what follows the response");
    }));
  });
  await t.step("a well-formed response parses whole, and every shorter prefix asks for more", () => {
    check(
      fc.property(response, fc.string({ maxLength: 10 }), (r, after) => {
        const text = render(r);
        const whole = parseResponse(text + after, false);
        assert.equal(whole.kind, "done", text);
        if (whole.kind !== "done") return;
        assert.equal(whole.response.status, r.status);
        assert.equal(whole.response.body, r.body);
        assert.equal(whole.rest, after);
        assert.equal(whole.response.reusable, r.version === "1.1" && !r.close);
        for (let n = 0; n < text.length; n++) {
          assert.equal(parseResponse(text.slice(0, n), false).kind, "more", `prefix ${n} of ${JSON.stringify(text)}`);
        }
      }),
      RUNS / 5,
    );
  });
});

Deno.test("a garbage status line or content-length gives a printable one-line reason (found by the properties)", () => {
  const r = parseResponse("\nHTTP/1.1 200 OK\r\n\u001b[31m\r\n\r\n", false);
  assert.deepEqual(r, { kind: "error", message: "not an HTTP/1.1 response: '?HTTP/1.1 200 OK'" });
  // Header lines end at CRLF only: a bare LF inside a value reached the reason too.
  const cl = parseResponse("HTTP/1.1 200 OK\r\nContent-Length:\u0000\n 4\r\n\r\nbody", false);
  assert.deepEqual(cl, { kind: "error", message: "bad content-length '?? 4'" });
});
