/**
 * An in-process HTTP CONNECT hop on loopback that pins each tunnel to a chosen address. Deno's `fetch` has no SNI
 * override, so the transport asks for `https://kubernetes.default.svc/...` through this hop: `fetch` verifies the
 * certificate against that name (and sends it as SNI) while the hop ignores the requested host and dials the
 * endpoint of the route named in `Proxy-Authorization`. The hop also enforces the connect timeout and records dial
 * failures, so the transport can tell "refused" from "failed after connecting".
 *
 * Routes are named by a random id and the hop by a random secret: another local process cannot use it as a relay.
 *
 * @module
 */
import { errorMessage } from "../errors.ts";
import { getLogger } from "../log.ts";
import { clearTimer, setTimer, sleep } from "../clock.ts";
import { type Endpoint, endpointKey } from "../endpoint.ts";
import { connectTcp } from "../net/connect_tcp.ts";

const log = getLogger(["extractedprism", "kubernetes"]);
const MAX_HEAD = 8192;
const HEAD_TIMEOUT_MS = 10_000;
const BUFFER = 16 * 1024;
/** The subdomain of a name that {@linkcode ConnectHop.isUsedFor} asks for; fixed, so a scoped --allow-net can list it. */
const CANARY_LABEL = "extractedprism-hop-check";

/** One pinned destination, and what happened to the tunnels asked for it. */
export interface HopRoute {
  /** The route's name, sent as the proxy user name. */
  readonly id: string;
  /** The address every tunnel of this route goes to; `undefined` for a canary route, which never dials. */
  readonly endpoint: Endpoint | undefined;
  /** The `proxy` option of `Deno.createHttpClient` that selects this route. */
  readonly proxy: Deno.Proxy;
  /** CONNECT requests received. */
  connects: number;
  /** Failed dials (refused, unreachable, timed out). */
  dialFailures: number;
  /** The last dial failure, as `cannot connect to 10.0.0.1:6443: Connection refused`. */
  lastDialError: string | undefined;
}

/** The hop: a loopback listener and its routes. */
export class ConnectHop {
  readonly #listener: Deno.TcpListener;
  readonly #secret = crypto.randomUUID();
  readonly #routes = new Map<string, HopRoute>();
  readonly #conns = new Set<Deno.Conn>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #stop = new AbortController();
  readonly #connectTimeoutMs: number;
  readonly #accepting: Promise<void>;

  /**
   * Listens on `127.0.0.1`, on a port the system picks.
   *
   * @param connectTimeoutMs How long one dial may take.
   */
  constructor(connectTimeoutMs: number) {
    this.#connectTimeoutMs = connectTimeoutMs;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#acceptLoop();
  }

  /** Adds a route to `endpoint`, or a canary route (no endpoint) that answers 502 without dialling. */
  addRoute(endpoint: Endpoint | undefined): HopRoute {
    const id = crypto.randomUUID();
    const route: HopRoute = {
      id,
      endpoint,
      proxy: {
        url: `http://127.0.0.1:${this.#listener.addr.port}`,
        basicAuth: { username: id, password: this.#secret },
      },
      connects: 0,
      dialFailures: 0,
      lastDialError: undefined,
    };
    this.#routes.set(id, route);
    return route;
  }

  /** Removes a route: new tunnels for it are refused; open tunnels go on until their client closes them. */
  removeRoute(route: HopRoute): void {
    this.#routes.delete(route.id);
  }

  /**
   * Whether `fetch` sends requests for `name` through this hop: `NO_PROXY` makes it skip an explicit proxy for the
   * hosts it matches. Asks for `https://extractedprism-hop-check.<name>/` through a canary route, which answers 502
   * without dialling, and reports whether the hop saw the tunnel request. `NO_PROXY` entries match a name's
   * subdomains, so the answer holds for `name` itself, and nothing leaves this process when the answer is yes.
   *
   * @param timeoutMs How long to wait; fetch looks the name up in DNS first, which an unreachable resolver makes slow.
   * @throws {Error} When a permission denies the canary or it times out (no answer either way), or `signal` aborts.
   */
  async isUsedFor(name: string, timeoutMs: number, signal: AbortSignal): Promise<boolean> {
    const route = this.addRoute(undefined);
    const http = Deno.createHttpClient({ proxy: route.proxy });
    const timeout = new AbortController();
    const timer = setTimer(timeoutMs, () => timeout.abort(new Error(`no answer within ${timeoutMs} ms`)));
    try {
      const res = await fetch(`https://${CANARY_LABEL}.${name}/`, {
        client: http,
        signal: AbortSignal.any([signal, timeout.signal]),
      });
      await res.body?.cancel();
    } catch (e) {
      // Expected: the canary gets a 502. A denied permission or a timeout is no answer either way.
      if (e instanceof Deno.errors.NotCapable) {
        throw new Error(`Cannot check that fetch uses the in-process hop: ${e.message}`, { cause: e });
      }
      if (timeout.signal.aborted && route.connects === 0 && !signal.aborted) {
        throw new Error(
          `Cannot check that fetch uses the in-process hop: no answer within ${timeoutMs} ms ` +
            `(fetch looks '${name}' up in DNS first: is the resolver reachable?)`,
        );
      }
    } finally {
      clearTimer(timer);
      http.close();
      this.removeRoute(route);
    }
    if (signal.aborted) throw signal.reason;
    return route.connects > 0;
  }

  /** Closes the listener and every tunnel; resolves when every task has ended. */
  async close(): Promise<void> {
    this.#stop.abort();
    try {
      this.#listener.close();
    } catch { /* closed */ }
    for (const c of this.#conns) closeQuietly(c);
    await this.#accepting;
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
  }

  async #acceptLoop(): Promise<void> {
    while (!this.#stop.signal.aborted) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (e) {
        if (this.#stop.signal.aborted || e instanceof Deno.errors.BadResource) return;
        log.warn("CONNECT hop cannot accept: {error}", { error: errorMessage(e) });
        await sleep(100, this.#stop.signal).catch(() => {});
        continue;
      }
      const task = this.#serve(conn).finally(() => this.#tasks.delete(task));
      this.#tasks.add(task);
    }
  }

  async #serve(client: Deno.TcpConn): Promise<void> {
    this.#conns.add(client);
    let upstream: Deno.TcpConn | undefined;
    try {
      // Without it Nagle and delayed ACKs add ~40 ms to small request/response exchanges through the hop.
      client.setNoDelay(true);
      const head = await this.#readHead(client);
      if (head === undefined) return;
      const route = this.#route(head.text);
      if (route === undefined) {
        await writeAll(client, "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n");
        return;
      }
      route.connects++;
      if (route.endpoint === undefined) {
        await writeAll(client, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return;
      }
      upstream = await this.#dial(route, route.endpoint);
      if (upstream === undefined) {
        await writeAll(client, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return;
      }
      this.#conns.add(upstream);
      await writeAll(client, "HTTP/1.1 200 Connection established\r\n\r\n");
      if (head.rest.length > 0) await writeAllBytes(upstream, head.rest);
      await relay(client, upstream);
    } catch {
      // A tunnel ends with whatever error its sockets report; the fetch that used it sees the failure.
    } finally {
      for (const c of [client, upstream]) {
        if (c === undefined) continue;
        closeQuietly(c);
        this.#conns.delete(c);
      }
    }
  }

  async #readHead(conn: Deno.Conn): Promise<{ text: string; rest: Uint8Array } | undefined> {
    const buf = new Uint8Array(MAX_HEAD);
    let len = 0;
    const timer = setTimer(HEAD_TIMEOUT_MS, () => closeQuietly(conn));
    try {
      while (len < MAX_HEAD) {
        const n = await conn.read(buf.subarray(len));
        if (n === null) return undefined;
        len += n;
        const end = headEnd(buf, len);
        if (end >= 0) return { text: new TextDecoder().decode(buf.subarray(0, end)), rest: buf.slice(end + 4, len) };
      }
      return undefined;
    } finally {
      clearTimer(timer);
    }
  }

  #route(head: string): HopRoute | undefined {
    const [first, ...headers] = head.split("\r\n");
    if (!/^CONNECT \S+ HTTP\/1\.[01]$/.test(first ?? "")) return undefined;
    for (const h of headers) {
      const m = h.match(/^proxy-authorization:\s*basic\s+(\S+)\s*$/i);
      if (!m) continue;
      let decoded: string;
      try {
        decoded = atob(m[1] ?? "");
      } catch {
        return undefined;
      }
      const colon = decoded.indexOf(":");
      if (colon < 0 || decoded.slice(colon + 1) !== this.#secret) return undefined;
      return this.#routes.get(decoded.slice(0, colon));
    }
    return undefined;
  }

  async #dial(route: HopRoute, ep: Endpoint): Promise<Deno.TcpConn | undefined> {
    const timeout = new AbortController();
    const timer = setTimer(
      this.#connectTimeoutMs,
      () => timeout.abort(new Error(`no answer within ${this.#connectTimeoutMs} ms`)),
    );
    const signal = AbortSignal.any([timeout.signal, this.#stop.signal]);
    try {
      const conn = await connectTcp({ hostname: ep.host, port: ep.port }, signal);
      conn.setNoDelay(true);
      return conn;
    } catch (e) {
      const why = timeout.signal.aborted
        ? String((timeout.signal.reason as Error).message)
        : e instanceof Error
        ? e.message
        : String(e);
      route.dialFailures++;
      route.lastDialError = `cannot connect to ${endpointKey(ep)}: ${why}`;
      return undefined;
    } finally {
      clearTimer(timer);
    }
  }
}

/** The index of the `\r\n\r\n` that ends an HTTP head within the first `len` bytes, or -1. */
function headEnd(buf: Uint8Array, len: number): number {
  for (let i = 0; i + 3 < len; i++) {
    if (buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i;
  }
  return -1;
}

async function relay(a: Deno.TcpConn, b: Deno.TcpConn): Promise<void> {
  const pump = async (src: Deno.TcpConn, dst: Deno.TcpConn) => {
    const buf = new Uint8Array(BUFFER);
    try {
      for (;;) {
        const n = await src.read(buf);
        if (n === null) break;
        await writeAllBytes(dst, buf.subarray(0, n));
      }
      await dst.closeWrite();
    } catch {
      // One side failed: end both directions at once.
      closeQuietly(a);
      closeQuietly(b);
    }
  };
  await Promise.all([pump(a, b), pump(b, a)]);
}

async function writeAll(conn: Deno.Conn, text: string): Promise<void> {
  await writeAllBytes(conn, new TextEncoder().encode(text));
}

async function writeAllBytes(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

function closeQuietly(c: Deno.Conn): void {
  try {
    c.close();
  } catch { /* already closed */ }
}
