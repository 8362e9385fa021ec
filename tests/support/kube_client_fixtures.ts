/**
 * Small fixtures for the Kubernetes client tests: a listener that records (and holds, without answering) every
 * connection, for "never dialled" and "no response headers" cases, a temporary directory, and a runner for scripts
 * that must run in a network namespace of their own.
 *
 * @module
 */
import type { ByteStream } from "../../lib/kubernetes/transport.ts";
import { readStreamLimited } from "../../lib/kubernetes/read_body.ts";
import assert from "node:assert/strict";
import { EchoServer } from "./net.ts";

/**
 * A TCP listener that accepts connections and never writes: each connection stays open until the peer closes it or
 * the listener is disposed. `accepted` counts them.
 */
export class SilentListener extends EchoServer {
  /** @param hostname A loopback address, e.g. `127.0.0.2` to stand for another host. */
  constructor(hostname = "127.0.0.1") {
    super(0, hostname, false);
  }

  get hostname(): string {
    return this.listener.addr.hostname;
  }
}

/**
 * A TLS server that completes the handshake with the given certificate, then reads requests and never answers: an
 * API server that hangs after TLS.
 */
export class MuteTlsListener implements AsyncDisposable {
  readonly #listener: Deno.TlsListener;
  readonly #conns = new Set<Deno.TlsConn>();
  readonly #done: Promise<void>;
  /** Connections accepted (TLS completed). */
  handshakes = 0;

  constructor(pair: { readonly cert: string; readonly key: string }) {
    this.#listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: pair.cert, key: pair.key });
    this.#done = this.#serve();
  }

  get port(): number {
    return this.#listener.addr.port;
  }

  async #serve(): Promise<void> {
    const tasks: Promise<void>[] = [];
    for (;;) {
      let c: Deno.TlsConn;
      try {
        c = await this.#listener.accept();
      } catch {
        break;
      }
      this.#conns.add(c);
      tasks.push((async () => {
        try {
          await c.handshake();
          this.handshakes++;
          const buf = new Uint8Array(4096);
          while (await c.read(buf) !== null) { /* swallow */ }
        } catch { /* closed */ }
      })());
    }
    await Promise.allSettled(tasks);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    for (const c of this.#conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await this.#done;
  }
}

/** Whether this machine lets an unprivileged user create network and mount namespaces (`unshare -rnm`). */
export async function canUnshare(): Promise<boolean> {
  try {
    const out = await new Deno.Command("unshare", { args: ["-rnm", "true"], stdout: "null", stderr: "null" }).output();
    return out.success;
  } catch {
    return false;
  }
}

/**
 * Runs `body` in a new Deno process inside network and mount namespaces of its own: only loopback is up, `setup`
 * shell commands run first, and `/etc/resolv.conf` is `resolvConf` (by default a resolver on 127.0.0.1 where none
 * listens, so lookups fail at once and nothing leaves the machine). Tests that set environment variables, give DNS
 * names as TLS names or blackhole addresses run here, where nothing can leave the machine. `body` may use `HttpKubeTransport`,
 * `createCredentialSource`, `connectKubernetes`, `createTestPki` and `startFakeApiServer`. Returns its stdout lines.
 */
export async function runInOwnNetns(
  body: string[],
  options: { env?: Record<string, string>; setup?: string; resolvConf?: string } = {},
): Promise<string[]> {
  await using dir = await tempDir();
  const script = `${dir.path}/probe.ts`;
  const resolv = `${dir.path}/resolv.conf`;
  await Deno.writeTextFile(resolv, options.resolvConf ?? "nameserver 127.0.0.1\n");
  const lib = new URL("../../lib/kubernetes/", import.meta.url).href;
  const support = new URL("./", import.meta.url).href;
  await Deno.writeTextFile(
    script,
    [
      `import { HttpKubeTransport } from "${lib}http_transport.ts";`,
      `import { createCredentialSource } from "${lib}credentials.ts";`,
      `import { connectKubernetes } from "${lib}connect.ts";`,
      `import { createTestPki } from "${support}test_pki.ts";`,
      `import { startFakeApiServer } from "${support}fake_apiserver.ts";`,
      ...body,
    ].join("\n"),
  );
  const out = await new Deno.Command("unshare", {
    args: [
      "-rnm",
      "sh",
      "-c",
      `mount --bind "$2" /etc/resolv.conf && ip link set lo up ${options.setup ?? ""} && ` +
      `exec "${Deno.execPath()}" run -A --config "$1" "$0"`,
      script,
      new URL("../../deno.json", import.meta.url).pathname,
      resolv,
    ],
    env: options.env ?? {},
    cwd: new URL("../..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).trim().split("\n");
}

/** A temporary directory, removed on dispose. */
export async function tempDir(prefix = "kube_client_"): Promise<{ readonly path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

/** The whole of a response body, as text (a transport's body is a `ByteStream`, not a `ReadableStream`). */
export async function bodyText(body: ByteStream | null): Promise<string> {
  if (body === null) return "";
  return new TextDecoder().decode(await readStreamLimited(body, 64 << 20, "read a test response body"));
}
