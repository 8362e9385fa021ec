import assert from "node:assert/strict";
import { parseRequestHead, refusal, responseHead, scanHead } from "../lib/net/_http_head.ts";

Deno.test("scanHead finds a whole head within the size limit", async (t) => {
  await t.step("a head and the pipelined bytes after it, empty lines before it dropped", () => {
    assert.deepEqual(scanHead("\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\nGET /x", 100), {
      kind: "head",
      head: "GET / HTTP/1.1\r\nHost: a",
      rest: "GET /x",
    });
    assert.deepEqual(scanHead("GET / HTTP/1.0\n\n", 100), { kind: "head", head: "GET / HTTP/1.0", rest: "" });
  });

  await t.step("an unfinished head asks for more and keeps it without the leading empty lines", () => {
    assert.deepEqual(scanHead("\r\n\r\nGET / HTT", 100), { kind: "more", buffered: "GET / HTT" });
    // Empty lines alone never reach the limit: they are not part of a head.
    assert.deepEqual(scanHead("\r\n".repeat(100), 16), { kind: "more", buffered: "" });
  });

  await t.step("the limit counts the head and its blank line, and nothing before or after", () => {
    const head = "GET / HTTP/1.0\r\n\r\n"; // 18 bytes
    assert.equal(scanHead(head + "x".repeat(50), 18).kind, "head");
    assert.equal(scanHead(head, 17).kind, "too large");
    assert.equal(scanHead("GET / HTTP/1.0\r\nX: 12345", 24).kind, "more");
    assert.equal(scanHead("GET / HTTP/1.0\r\nX: 123456", 24).kind, "too large");
  });
});

Deno.test("parseRequestHead answers a well-formed head with a request", async (t) => {
  await t.step("GET over HTTP/1.1 keeps the connection open", () => {
    const parsed = parseRequestHead("GET /readyz?verbose HTTP/1.1\r\nHost: h\r\nX-A: 1 \t");
    assert.ok(typeof parsed !== "number");
    assert.equal(parsed.request.path, "/readyz");
    assert.equal(parsed.request.headers.get("x-a"), "1");
    assert.deepEqual([parsed.request.head, parsed.close], [false, false]);
  });

  await t.step("HEAD is asked as GET and marked as HEAD", () => {
    const parsed = parseRequestHead("HEAD / HTTP/1.1\r\nHost: h");
    assert.ok(typeof parsed !== "number");
    assert.deepEqual([parsed.request.method, parsed.request.head], ["GET", true]);
  });

  await t.step("HTTP/1.0 and Connection: close close the connection after the answer", () => {
    for (const head of ["GET / HTTP/1.0", "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Close"]) {
      const parsed = parseRequestHead(head);
      assert.ok(typeof parsed !== "number", head);
      assert.equal(parsed.close, true, head);
    }
  });

  await t.step("an absolute target and a zero Content-Length are accepted", () => {
    const parsed = parseRequestHead("GET http://127.0.0.1:8080/healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 0");
    assert.ok(typeof parsed !== "number");
    assert.equal(parsed.request.path, "/healthz");
  });

  await t.step("methods are upper-cased as fetch does, others kept; repeated fields are joined", () => {
    const parsed = parseRequestHead("get / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2");
    assert.ok(typeof parsed !== "number");
    assert.equal(parsed.request.method, "GET");
    assert.equal(parsed.request.headers.get("x-a"), "1, 2");
    const odd = parseRequestHead("Purge / HTTP/1.1\r\nHost: h");
    assert.ok(typeof odd !== "number");
    assert.equal(odd.request.method, "Purge");
  });

  await t.step("the path of every target form, without query or fragment", () => {
    const cases: [string, string][] = [
      ["/readyz?x#y", "/readyz"],
      ["http://h", "/"],
      ["http://h?x", "/"],
      ["HTTPS://user@[::1]:7446/metrics?x", "/metrics"],
      ["http://127.0.0.1:7446/a/../b", "/a/../b"],
    ];
    for (const [target, path] of cases) {
      const parsed = parseRequestHead(`GET ${target} HTTP/1.1\r\nHost: h`);
      assert.ok(typeof parsed !== "number", target);
      assert.equal(parsed.request.path, path, target);
    }
  });
});

Deno.test("parseRequestHead refuses what a server must not guess at, with the fitting status", () => {
  const cases: [string, number][] = [
    ["GET /", 400],
    ["GET  / HTTP/1.1\r\nHost: h", 400],
    ["G(T / HTTP/1.1\r\nHost: h", 400],
    ["GET /\x7f HTTP/1.1\r\nHost: h", 400],
    ["GET / HTTP/2", 505],
    ["GET / HTTP/1.2", 505],
    ["GET / HTTPS/1.1", 400],
    ["GET / HTTP/1.1", 400], // no Host
    ["GET / HTTP/1.1\r\nHost: a\r\nHost: b", 400],
    ["GET / HTTP/1.1\r\nHost: h\r\nX-A : 1", 400],
    ["GET / HTTP/1.1\r\nHost: h\r\n folded", 400],
    ["GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x01b", 400],
    ["GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 2", 400],
    ["GET / HTTP/1.1\r\nHost: h\r\nContent-Length: -1", 400],
    ["GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3", 413],
    ["POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked", 413],
    ["GET * HTTP/1.1\r\nHost: h", 400],
    ["GET ftp://h/ HTTP/1.1\r\nHost: h", 400],
    ["GET http://[::1/ HTTP/1.1\r\nHost: h", 400],
    ["GET http:///x HTTP/1.1\r\nHost: h", 400],
    ["GET http://h:x/ HTTP/1.1\r\nHost: h", 400],
    ["GET readyz HTTP/1.1\r\nHost: h", 400],
    ["TRACE / HTTP/1.1\r\nHost: h", 405],
    ["connect / HTTP/1.1\r\nHost: h", 405],
    ["Track / HTTP/1.1\r\nHost: h", 405],
  ];
  for (const [head, status] of cases) assert.equal(parseRequestHead(head), status, JSON.stringify(head));
});

Deno.test("response heads carry the server's framing, never the handler's", () => {
  const headers = {
    "Content-Type": "text/plain",
    "content-length": "999",
    "transfer-encoding": "chunked",
    connection: "keep-alive",
    date: "yesterday",
  };
  const head = responseHead(404, headers, { bodyLength: 10, close: false });
  const lines = head.split("\r\n");
  assert.equal(lines[0], "HTTP/1.1 404 Not Found");
  assert.match(lines[1] ?? "", /^date: \w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
  assert.deepEqual(lines.slice(2), ["content-type: text/plain", "content-length: 10", "", ""]);
  assert.ok(responseHead(200, {}, { bodyLength: 0, close: true }).endsWith("connection: close\r\n\r\n"));
});

Deno.test("a refusal is a whole plain-text answer that closes, with Allow on a 405", () => {
  assert.equal(
    refusal(405),
    "HTTP/1.1 405 Method Not Allowed\r\ncontent-type: text/plain; charset=utf-8\r\nallow: GET, HEAD\r\n" +
      "content-length: 19\r\nconnection: close\r\n\r\nmethod not allowed\n",
  );
  assert.ok(
    refusal(503, "too many connections").endsWith(
      "content-length: 21\r\nconnection: close\r\n\r\n" +
        "too many connections\n",
    ),
  );
});
