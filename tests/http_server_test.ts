import assert from "node:assert/strict";
import {
  type HttpAnswer,
  type HttpHandler,
  type HttpListener,
  HttpServer,
  type HttpServerOptions,
} from "../lib/net/http_server.ts";
import { statusHandler } from "../lib/status/server.ts";
import { ProxyApp } from "../lib/app.ts";
import { testConfig, waitFor } from "./support/net.ts";
import { LogCapture, render } from "./support/log_capture.ts";

const DEADLINE_MS = 5000;

/** The real status handler over a fixed source. */
const status: HttpHandler = statusHandler({
  live: () => Promise.resolve(true),
  ready: () => true,
  upstreams: () => [],
  metrics: () => "extractedprism_ready 1\n",
});

function start(options: Partial<HttpServerOptions> = {}, handler: HttpHandler = status): HttpServer {
  return new HttpServer({ hostname: "127.0.0.1", port: 0, ...options }, handler);
}

/** Rejects after the deadline unless `p` settles first; the timer never outlives the call. */
async function within<T>(p: Promise<T>, what: string, ms = DEADLINE_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) =>
        timer = setTimeout(() => reject(new Error(`Timed out waiting for ${what}`)), ms)
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

interface Answer {
  readonly status: number;
  readonly headers: Map<string, string>;
  readonly body: string;
}

/** A raw HTTP/1.1 client over one TCP connection, reading answers byte-exactly. */
class Client {
  readonly conn: Deno.TcpConn;
  #buffered = "";
  #eof = false;

  private constructor(conn: Deno.TcpConn) {
    this.conn = conn;
  }

  static async open(server: HttpServer): Promise<Client> {
    return new Client(await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port }));
  }

  async send(text: string): Promise<void> {
    let bytes = new TextEncoder().encode(text);
    while (bytes.length > 0) bytes = bytes.subarray(await this.conn.write(bytes));
  }

  /** Reads more bytes; false at end of stream (or a reset). */
  async #more(): Promise<boolean> {
    if (this.#eof) return false;
    const chunk = new Uint8Array(4096);
    let n: number | null;
    try {
      n = await within(this.conn.read(chunk), "bytes from the server");
    } catch (e) {
      if (e instanceof Error && e.message.startsWith("Timed out")) throw e;
      n = null; // a reset counts as the end
    }
    if (n === null) {
      this.#eof = true;
      return false;
    }
    this.#buffered += String.fromCharCode(...chunk.subarray(0, n));
    return true;
  }

  /** Reads one answer; `head` says there is no body whatever Content-Length says. */
  async answer(head = false): Promise<Answer> {
    while (!this.#buffered.includes("\r\n\r\n")) {
      if (!(await this.#more())) throw new Error(`Connection ended before an answer: '${this.#buffered}'`);
    }
    const end = this.#buffered.indexOf("\r\n\r\n");
    const [statusLine = "", ...lines] = this.#buffered.slice(0, end).split("\r\n");
    const headers = new Map<string, string>();
    for (const line of lines) {
      const colon = line.indexOf(":");
      headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
    }
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(statusLine);
    assert.ok(m, `a status line, found '${statusLine}'`);
    const length = Number(headers.get("content-length"));
    assert.ok(Number.isInteger(length), "every answer has a Content-Length");
    this.#buffered = this.#buffered.slice(end + 4);
    const bodyLength = head ? 0 : length;
    while (this.#buffered.length < bodyLength) {
      if (!(await this.#more())) throw new Error("Connection ended within a body");
    }
    const body = this.#buffered.slice(0, bodyLength);
    this.#buffered = this.#buffered.slice(bodyLength);
    return { status: Number(m[1]), headers, body };
  }

  /** Waits until the server closes the connection; returns what came before that and was not read. */
  async ended(): Promise<string> {
    while (await this.#more());
    return this.#buffered;
  }

  close(): void {
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }
}

const GET = (path: string, extra = "") => `GET ${path} HTTP/1.1\r\nHost: localhost\r\n${extra}\r\n`;

Deno.test("the health http server speaks HTTP/1.1 to the real status handler", async (t) => {
  await using server = start();

  await t.step("a 1.1 connection stays open across requests until Connection: close", async () => {
    const c = await Client.open(server);
    try {
      await c.send(GET("/readyz"));
      const a = await c.answer();
      assert.equal(a.status, 200);
      assert.equal(a.body, "ok\n");
      assert.equal(a.headers.get("content-length"), "3");
      assert.equal(a.headers.get("connection"), undefined);
      await c.send(GET("/healthz"));
      assert.equal((await c.answer()).status, 200);
      await c.send(GET("/readyz", "Connection: close\r\n"));
      const last = await c.answer();
      assert.equal(last.status, 200);
      assert.equal(last.headers.get("connection"), "close");
      assert.equal(await c.ended(), "");
    } finally {
      c.close();
    }
  });

  await t.step("an HTTP/1.0 request is answered and the connection closed", async () => {
    const c = await Client.open(server);
    try {
      await c.send("GET /readyz HTTP/1.0\r\n\r\n");
      const a = await c.answer();
      assert.equal(a.status, 200);
      assert.equal(a.headers.get("connection"), "close");
      assert.equal(await c.ended(), "");
    } finally {
      c.close();
    }
  });

  await t.step("HEAD gets GET's status and Content-Length and no body", async () => {
    const c = await Client.open(server);
    try {
      await c.send("HEAD /readyz HTTP/1.1\r\nHost: localhost\r\n\r\n");
      const a = await c.answer(true);
      assert.equal(a.status, 200);
      assert.equal(a.headers.get("content-length"), "3");
      // No body was sent: the next answer on the connection starts right away.
      await c.send(GET("/nope"));
      const next = await c.answer();
      assert.equal(next.status, 404);
      assert.equal(next.body, "not found\n");
    } finally {
      c.close();
    }
  });

  await t.step("404 and 405 come from the handler, 405 with Allow", async () => {
    const c = await Client.open(server);
    try {
      await c.send(GET("/nope"));
      assert.equal((await c.answer()).status, 404);
      await c.send("POST /readyz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n");
      const a = await c.answer();
      assert.equal(a.status, 405);
      assert.equal(a.headers.get("allow"), "GET, HEAD");
      await c.send("TRACE /readyz HTTP/1.1\r\nHost: localhost\r\n\r\n");
      const trace = await c.answer();
      assert.equal(trace.status, 405);
      assert.equal(trace.headers.get("allow"), "GET, HEAD");
      assert.equal(await c.ended(), "");
    } finally {
      c.close();
    }
  });

  await t.step("pipelined requests are answered in order", async () => {
    const c = await Client.open(server);
    try {
      await c.send(GET("/readyz") + GET("/nope") + GET("/metrics", "Connection: close\r\n"));
      assert.deepEqual(
        [(await c.answer()).status, (await c.answer()).status, (await c.answer()).body],
        [200, 404, "extractedprism_ready 1\n"],
      );
      assert.equal(await c.ended(), "");
    } finally {
      c.close();
    }
  });

  await t.step("malformed requests get 400 and a close, and the server keeps serving", async () => {
    const cases = [
      "GARBAGE\r\n\r\n",
      "GET /readyz\r\n\r\n",
      "GET /readyz HTTP/1.1 extra\r\nHost: x\r\n\r\n",
      "GET readyz HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /readyz HTTP/1.1\r\n\r\n", // no Host
      "GET /readyz HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
      "GET /readyz HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n",
      "GET /readyz HTTP/1.1\r\nHost: x\r\n folded: line\r\n\r\n",
      "GET /readyz HTTP/1.1\r\nHost : x\r\n\r\n",
      "GET /readyz HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n",
      "GET /readyz HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
      "GET /readyz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "GET /re\x7fadyz HTTP/1.1\r\nHost: x\r\n\r\n",
      "\x00\x01\x02\xff\r\n\r\n",
    ];
    for (const request of cases) {
      const c = await Client.open(server);
      try {
        await c.send(request);
        const a = await c.answer();
        assert.equal(a.status, 400, JSON.stringify(request));
        assert.equal(a.headers.get("connection"), "close");
        assert.equal(await c.ended(), "");
      } finally {
        c.close();
      }
    }
    const c = await Client.open(server);
    try {
      await c.send("GET /readyz HTTP/2.0\r\nHost: x\r\n\r\n");
      assert.equal((await c.answer()).status, 505);
    } finally {
      c.close();
    }
  });

  await t.step("a request with a body is refused with 413 and a close", async () => {
    for (
      const request of [
        "POST /readyz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        "POST /readyz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      ]
    ) {
      const c = await Client.open(server);
      try {
        await c.send(request);
        assert.equal((await c.answer()).status, 413);
        assert.equal(await c.ended(), "");
      } finally {
        c.close();
      }
    }
  });

  await t.step("a head over the size limit gets 431 and a close", async () => {
    const c = await Client.open(server);
    try {
      await c.send(GET("/readyz", `X-Big: ${"a".repeat(9000)}\r\n`));
      assert.equal((await c.answer()).status, 431);
      assert.equal(await c.ended(), "");
    } finally {
      c.close();
    }
  });

  await t.step("after all that, a new connection is served", async () => {
    const c = await Client.open(server);
    try {
      await c.send(GET("/healthz"));
      assert.equal((await c.answer()).status, 200);
    } finally {
      c.close();
    }
  });
});

Deno.test("random bytes as a request never crash the server: each gets an answer or a close", async () => {
  await using server = start({ headerTimeoutMs: 300, idleTimeoutMs: 300 });
  let seed = 12345;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const pieces = [
    "GET",
    "HEAD",
    " ",
    "/",
    "/readyz",
    "HTTP/1.1",
    "HTTP/1.0",
    "\r\n",
    "\n",
    ":",
    "Host",
    "x",
    "\t",
    "\0",
  ];
  for (let i = 0; i < 100; i++) {
    let request = "";
    for (let j = Math.floor(random() * 12); j > 0; j--) {
      request += random() < 0.7
        ? pieces[Math.floor(random() * pieces.length)]
        : String.fromCharCode(Math.floor(random() * 256));
    }
    const c = await Client.open(server);
    try {
      await c.send(`${request}\r\n\r\n`);
      await c.ended(); // an answer, then a close (or a close at the header timeout)
    } finally {
      c.close();
    }
  }
  const c = await Client.open(server);
  try {
    await c.send(GET("/readyz"));
    assert.equal((await c.answer()).status, 200);
  } finally {
    c.close();
  }
});

Deno.test("a request head that never completes is closed at the header timeout, trickling or not", async () => {
  await using server = start({ headerTimeoutMs: 200, idleTimeoutMs: 60_000 });
  const silent = await Client.open(server);
  const trickle = await Client.open(server);
  try {
    await silent.send("GET /heal");
    // One byte every 20 ms would keep a per-read timeout alive forever; the header timeout counts from the start.
    const trickling = (async () => {
      for (let i = 0; i < 250; i++) {
        try {
          await trickle.send("X");
        } catch {
          return;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    assert.equal(await silent.ended(), "");
    assert.equal(await within(trickle.ended(), "the trickling connection to close", 10_000), "");
    await trickling;
    await waitFor(() => server.connections === 0, DEADLINE_MS, "the server to drop both");
  } finally {
    silent.close();
    trickle.close();
  }
});

Deno.test("an idle keep-alive connection is closed at the idle timeout", async () => {
  await using server = start({ idleTimeoutMs: 200, headerTimeoutMs: 60_000 });
  const c = await Client.open(server);
  try {
    await c.send(GET("/readyz"));
    assert.equal((await c.answer()).status, 200);
    assert.equal(await c.ended(), "");
  } finally {
    c.close();
  }
});

Deno.test("beyond the connection cap a new connection gets 503 and a close, the others keep working", async () => {
  await using server = start({ maxConnections: 2, evictAfterMs: 60_000 });
  const a = await Client.open(server);
  const b = await Client.open(server);
  try {
    for (const c of [a, b]) {
      await c.send(GET("/readyz"));
      assert.equal((await c.answer()).status, 200);
    }
    const third = await Client.open(server);
    try {
      const refused = await third.answer();
      assert.equal(refused.status, 503);
      assert.equal(refused.headers.get("connection"), "close");
      assert.equal(await third.ended(), "");
    } finally {
      third.close();
    }
    assert.equal(server.refused, 1);
    for (const c of [a, b]) {
      await c.send(GET("/healthz"));
      assert.equal((await c.answer()).status, 200);
    }
  } finally {
    a.close();
    b.close();
  }
  await waitFor(() => server.connections === 0, DEADLINE_MS, "the server to see both close");
  const d = await Client.open(server);
  try {
    await d.send(GET("/readyz"));
    assert.equal((await d.answer()).status, 200);
  } finally {
    d.close();
  }
});

Deno.test("at the cap a newcomer takes the place of the connection that waited longest for a request", async () => {
  await using server = start({ maxConnections: 2, evictAfterMs: 0 });
  const idle = await Client.open(server);
  let half: Client | undefined;
  try {
    await idle.send(GET("/readyz"));
    assert.equal((await idle.answer()).status, 200);
    half = await Client.open(server);
    await half.send("GET /rea");
    await waitFor(() => server.connections === 2, DEADLINE_MS, "both to be served");
    // The idle one has waited since its answer, the half-sent one only since its accept, which came after.
    const late = await Client.open(server);
    try {
      assert.equal(await idle.ended(), "", "the longest waiting is dropped");
      await late.send(GET("/healthz", "Connection: close\r\n"));
      assert.equal((await late.answer()).status, 200);
    } finally {
      late.close();
    }
    assert.equal(server.evicted, 1);
    assert.equal(server.refused, 0);
    await half.send("dyz HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert.equal((await half.answer()).status, 200, "the other one is still served");
  } finally {
    idle.close();
    half?.close();
  }
});

Deno.test("the health http server survives accept errors such as EMFILE and keeps accepting", async () => {
  const real = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let failuresLeft = 3;
  const listener: HttpListener = {
    addr: real.addr,
    accept: () => {
      if (failuresLeft-- > 0) return Promise.reject(new Error("Too many open files (os error 24)"));
      return real.accept();
    },
    close: () => real.close(),
  };
  await using server = start({ listener });
  const c = await Client.open(server);
  try {
    await c.send(GET("/readyz"));
    assert.equal((await c.answer()).status, 200);
    assert.equal(server.acceptErrors, 3);
  } finally {
    c.close();
  }
});

Deno.test("shutdown lets the request being answered finish, closes idle connections and refuses new ones", async () => {
  const gate = Promise.withResolvers<void>();
  const entered = Promise.withResolvers<void>();
  const server = start({}, async (req) => {
    if (req.path === "/slow") {
      entered.resolve();
      await gate.promise;
    }
    return await status(req);
  });
  const idle = await Client.open(server);
  const busy = await Client.open(server);
  try {
    await idle.send(GET("/readyz"));
    assert.equal((await idle.answer()).status, 200);
    await busy.send(GET("/slow"));
    await within(entered.promise, "the slow request to reach the handler");
    let done = false;
    const stopping = server.shutdown().then(() => done = true);
    assert.equal(await idle.ended(), "", "the idle connection is closed at once");
    await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: server.addr.port }));
    assert.equal(done, false, "shutdown waits for the request being answered");
    gate.resolve();
    const a = await busy.answer();
    assert.equal(a.status, 404);
    assert.equal(a.headers.get("connection"), "close");
    assert.equal(await busy.ended(), "");
    await within(stopping, "shutdown to resolve");
  } finally {
    idle.close();
    busy.close();
  }
});

Deno.test("a handler that never answers is cut off at the response timeout", async () => {
  const never = Promise.withResolvers<HttpAnswer>();
  await using server = start({ responseTimeoutMs: 200 }, () => never.promise);
  const c = await Client.open(server);
  try {
    await c.send(GET("/readyz"));
    assert.equal(await c.ended(), "");
    await waitFor(() => server.connections === 0, DEADLINE_MS, "the server to drop it");
  } finally {
    c.close();
  }
});

Deno.test("a handler that throws gets a 500 and the connection stays usable", async () => {
  await using server = start({}, (req) => {
    if (req.path === "/boom") return Promise.reject(new Error("boom"));
    return status(req);
  });
  const c = await Client.open(server);
  try {
    await c.send(GET("/boom"));
    assert.equal((await c.answer()).status, 500);
    await c.send(GET("/readyz"));
    assert.equal((await c.answer()).status, 200);
  } finally {
    c.close();
  }
});

Deno.test("a server answers a plain handler and logs a throw under its own name and log category", async () => {
  await using logs = await LogCapture.start();
  await using server = start({ name: "probes", logCategory: ["extractedprism", "copier"] }, (req) => {
    if (req.path === "/boom") throw new Error("boom");
    return { status: 200, body: "ok\n" };
  });
  const c = await Client.open(server);
  try {
    await c.send(GET("/boom"));
    assert.equal((await c.answer()).status, 500);
    await c.send(GET("/"));
    const ok = await c.answer();
    assert.equal(ok.status, 200);
    assert.equal(ok.body, "ok\n");
  } finally {
    c.close();
  }
  const line = await logs.waitFor((r) => r.level === "error");
  assert.deepEqual(line.category, ["extractedprism", "copier"]);
  assert.match(render(line), /^The probes server's handler failed: .*boom/);
});

Deno.test("a health port that cannot be bound is one line naming the address and the flags", () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  assert.throws(
    () => ProxyApp.start(testConfig([], { healthPort: taken.addr.port })),
    new RegExp(
      `^Error: Cannot listen on 127\\.0\\.0\\.1:${taken.addr.port} \\(--health-bind-address/--health-port\\): ` +
        "AddrInUse: ",
    ),
  );
});
