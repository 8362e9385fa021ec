/**
 * One `GET` to a health port on a fresh connection that the server closes: a raw HTTP/1.1 request rather than
 * `fetch`, which would follow `HTTP_PROXY` from the environment to a loopback port and keep a pooled socket open.
 *
 * @module
 */
import { bracketHost } from "../endpoint.ts";
import { connectTcp } from "./connect_tcp.ts";

/** The status and body of one answer. */
export interface HealthAnswer {
  /** The HTTP status code. */
  readonly status: number;
  /** Everything after the head, as text. */
  readonly body: string;
}

/** More than 64 upstreams' JSON needs: a port that sends more is not the health port. */
const MAX_BYTES = 4 << 20;

/**
 * Sends `GET path` to `host:port` and reads the answer to its end.
 *
 * @throws A `Deno.errors` connect error, the signal's reason when it aborts, or an `Error` when the answer is not
 *   HTTP or too long.
 */
export async function healthGet(
  where: { readonly host: string; readonly port: number },
  path: string,
  signal: AbortSignal,
): Promise<HealthAnswer> {
  try {
    return await exchange(where, path, signal);
  } catch (e) {
    // An abort (the caller's timeout) is reported as its reason, whether it stopped the connect or a read.
    signal.throwIfAborted();
    throw e;
  }
}

async function exchange(
  where: { readonly host: string; readonly port: number },
  path: string,
  signal: AbortSignal,
): Promise<HealthAnswer> {
  signal.throwIfAborted();
  const conn = await connectTcp({ hostname: where.host, port: where.port }, signal);
  let closed = false;
  const close = () => {
    if (!closed) conn.close();
    closed = true;
  };
  // A stalled write or read ends when the socket is closed under it.
  const onAbort = () => close();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const request = `GET ${path} HTTP/1.1\r\nHost: ${bracketHost(where.host)}:${where.port}\r\n` +
      "Accept: */*\r\nConnection: close\r\n\r\n";
    const bytes = new TextEncoder().encode(request);
    for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
    const chunks: Uint8Array[] = [];
    let size = 0;
    const buf = new Uint8Array(16 * 1024);
    for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
      size += n;
      if (size > MAX_BYTES) throw new Error(`the answer to GET ${path} is longer than ${MAX_BYTES} bytes`);
      chunks.push(buf.slice(0, n));
    }
    return parseAnswer(new TextDecoder().decode(concat(chunks, size)), path);
  } finally {
    signal.removeEventListener("abort", onAbort);
    close();
  }
}

function concat(chunks: readonly Uint8Array[], size: number): Uint8Array {
  const all = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    all.set(c, off);
    off += c.length;
  }
  return all;
}

function parseAnswer(text: string, path: string): HealthAnswer {
  const end = text.indexOf("\r\n\r\n");
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  if (end < 0 || m === null) throw new Error(`the answer to GET ${path} is not HTTP`);
  // `Connection: close`: the body is everything up to the end of the stream.
  return { status: Number(m[1]), body: text.slice(end + 4) };
}
