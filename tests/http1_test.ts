import assert from "node:assert/strict";
import { parseResponse } from "../lib/upstream/_http1.ts";

Deno.test("http/1 responses parse by content-length, chunked, and until close", () => {
  const cl = parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", false);
  assert.equal(cl.kind, "done");
  if (cl.kind === "done") {
    assert.equal(cl.response.body, "ok");
    assert.equal(cl.response.reusable, true);
    assert.equal(cl.rest, "EXTRA");
  }
  const ch = parseResponse(
    "HTTP/1.1 500 x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    false,
  );
  assert.equal(ch.kind === "done" && ch.response.body, "abcde");
  assert.equal(parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok", false).kind, "more");
  assert.equal(parseResponse("HTTP/1.1 200 OK\r\nContent-Len", false).kind, "more");
  const eof = parseResponse("HTTP/1.0 200 OK\r\n\r\nall of it", true);
  assert.equal(eof.kind === "done" && eof.response.body, "all of it");
  assert.equal(eof.kind === "done" && eof.response.reusable, false);
  const close = parseResponse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false);
  assert.equal(close.kind === "done" && close.response.reusable, false);
});

Deno.test("malformed or oversized responses are errors, not crashes", () => {
  const bad = [
    ["SSH-2.0-OpenSSH\r\n\r\n", false],
    ["HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", false],
    ["HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false],
    ["HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n", false],
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false],
    ["HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok", true],
    ["HTTP/1.1 200", true],
    ["x".repeat(70_000), false],
  ] as const;
  for (const [text, ended] of bad) {
    assert.equal(parseResponse(text, ended).kind, "error", JSON.stringify(text.slice(0, 40)));
  }
});
