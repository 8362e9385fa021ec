/**
 * The e2e suite's own client, run inside the node namespace (the test process cannot enter it). Line protocol of the
 * fault suite (`_lines.ts`): JSON commands with an `id` on stdin, answers on stdout, `progress` events while a load
 * runs. Each request is a fresh TCP+TLS connection (SNI and verification as `kubernetes.default.svc`, the cluster CA)
 * with a bearer token and `Connection: close`: one request, one upstream choice by the proxy.
 *
 * Commands:
 * - `{"op":"upstreams"}`: the proxy's `/upstreams` JSON.
 * - `{"op":"get","host":H,"port":P,"path":X,"auth":bool,"method":M,"body":B,"contentType":C}`: one request (GET
 *   unless `method` says otherwise); `{status, body}` (body cut at 4 KiB).
 * - `{"op":"load","count":N,"spacingMs":S,"timeoutMs":T}`: N requests through the proxy to
 *   `/api/v1/namespaces/default`, one every S ms (each may overlap the next); one result per request.
 *
 * Usage: `client.ts <proxy-port> <health-port> <ca-file> <server-name> <token>`
 *
 * @module
 */
import { type Command, num, serveCommands } from "../../faults/support/_lines.ts";
import { paced, type RequestResult } from "./_paced.ts";

/** One request's outcome; `start` and `end` are wall-clock milliseconds. */
export type { RequestResult } from "./_paced.ts";

const MAX_REQUESTS = 5000;
const [proxyPort, healthPort, caFile, serverName, token] = Deno.args;
const caCert = Deno.readTextFileSync(caFile ?? "");

async function request(
  host: string,
  port: number,
  path: string,
  auth: boolean,
  timeoutMs: number,
  send: { method: string; body: string; contentType: string } = { method: "GET", body: "", contentType: "" },
): Promise<{ status: number; body: string }> {
  const signal = AbortSignal.timeout(timeoutMs);
  const tcp = await Deno.connect({ hostname: host, port, signal });
  let conn: Deno.Conn = tcp;
  const onAbort = () => {
    try {
      conn.close();
    } catch { /* closed already */ }
  };
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    conn = await Deno.startTls(tcp, { hostname: serverName ?? "kubernetes.default.svc", caCerts: [caCert] });
    const body = new TextEncoder().encode(send.body);
    const head = `${send.method} ${path} HTTP/1.1\r\nHost: ${serverName}\r\nUser-Agent: extractedprism-e2e\r\n` +
      `Accept: application/json\r\n${auth ? `Authorization: Bearer ${token}\r\n` : ""}` +
      (send.method === "GET" ? "" : `Content-Type: ${send.contentType}\r\nContent-Length: ${body.length}\r\n`) +
      "Connection: close\r\n\r\n";
    await conn.write(new TextEncoder().encode(head));
    for (let off = 0; off < body.length;) off += await conn.write(body.subarray(off));
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(16384);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
    if (signal.aborted) throw new Error("timeout");
    const text = new TextDecoder().decode(concat(chunks));
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
    if (m === null) throw new Error(`no HTTP status line in ${JSON.stringify(text.slice(0, 80))}`);
    const bodyAt = text.indexOf("\r\n\r\n");
    return { status: Number(m[1]), body: bodyAt < 0 ? "" : text.slice(bodyAt + 4, bodyAt + 4 + 4096) };
  } catch (e) {
    throw signal.aborted ? new Error(`timeout after ${timeoutMs} ms`) : e;
  } finally {
    signal.removeEventListener("abort", onAbort);
    try {
      conn.close();
    } catch { /* closed already */ }
  }
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

function load(id: number, count: number, spacingMs: number, timeoutMs: number): Promise<RequestResult[]> {
  return paced(
    { id, count, max: MAX_REQUESTS, spacingMs, now: Date.now },
    async () => (await request("127.0.0.1", Number(proxyPort), "/api/v1/namespaces/default", true, timeoutMs)).status,
  );
}

async function handle(cmd: Command): Promise<unknown> {
  switch (cmd.op) {
    case "upstreams": {
      const res = await fetch(`http://127.0.0.1:${healthPort}/upstreams`, { signal: AbortSignal.timeout(2000) });
      return await res.json();
    }
    case "get": {
      const host = String(cmd.host ?? "127.0.0.1");
      const port = num(cmd, "port", Number(proxyPort));
      const send = {
        method: String(cmd.method ?? "GET"),
        body: String(cmd.body ?? ""),
        contentType: String(cmd.contentType ?? "application/json"),
      };
      const path = String(cmd.path ?? "/readyz");
      return await request(host, port, path, cmd.auth !== false, num(cmd, "timeoutMs", 5000), send);
    }
    case "load":
      return {
        results: await load(cmd.id, num(cmd, "count"), num(cmd, "spacingMs"), num(cmd, "timeoutMs", 5000)),
      };
    default:
      throw new Error(`Cannot run command '${cmd.op}': expected upstreams, get or load`);
  }
}

await serveCommands(handle);
