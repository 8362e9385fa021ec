/**
 * One HTTP/1.1 GET on a fresh loopback connection that the server closes: no client pool keeps a socket open, so a
 * server's graceful shutdown is never held up by the test and nothing outlives the call.
 *
 * @module
 */

/**
 * Returns the status code of `GET path` on 127.0.0.1:`port`.
 *
 * @throws When the connection is refused or the answer is not HTTP, or after `timeoutMs`.
 */
export async function httpStatus(port: number, path: string, timeoutMs = 2000): Promise<number> {
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(new Error(`GET ${path} timed out after ${timeoutMs} ms`)), timeoutMs);
  try {
    using conn = await Deno.connect({ hostname: "127.0.0.1", port, signal: timeout.signal });
    // A stalled read ends when the socket is closed under it.
    timeout.signal.addEventListener("abort", () => conn.close(), { once: true });
    const request = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`;
    const bytes = new TextEncoder().encode(request);
    for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
    let head = "";
    const buf = new Uint8Array(4096);
    const decoder = new TextDecoder();
    while (!head.includes("\r\n")) {
      const n = await conn.read(buf);
      if (n === null) break;
      head += decoder.decode(buf.subarray(0, n), { stream: true });
    }
    const m = /^HTTP\/1\.[01] (\d{3}) /.exec(head);
    if (m === null) {
      throw new Error(`Cannot read the status of GET ${path}: expected an HTTP status line, got '${head}'`);
    }
    return Number(m[1]);
  } finally {
    clearTimeout(timer);
  }
}
