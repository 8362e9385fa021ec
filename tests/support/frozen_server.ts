/**
 * An HTTPS `/readyz` server in a child process that a test can freeze (`SIGSTOP`: the kernel still completes TCP
 * handshakes from the backlog, nothing answers TLS) and thaw (`SIGCONT`), as a hung API server behaves. No root needed.
 *
 * @module
 */
import type { Endpoint } from "../../lib/endpoint.ts";
import type { TestPki } from "./test_pki.ts";

const SCRIPT = new URL("./_readyz_tls_server.ts", import.meta.url);

/** A running child HTTPS server. */
export interface FrozenServer extends AsyncDisposable {
  readonly endpoint: Endpoint;
  /** Sends SIGSTOP. */
  freeze(): void;
  /** Sends SIGCONT. */
  thaw(): void;
  /** Kills the child and waits for it. Safe to call twice. */
  close(): Promise<void>;
}

/** Starts the child with `pki.serverDns` (valid for `kubernetes.default.svc`), failing after `timeoutMs`. */
export async function startFrozenServer(pki: TestPki, timeoutMs = 20_000): Promise<FrozenServer> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-q",
      "--no-config",
      "--allow-net=127.0.0.1",
      `--allow-read=${pki.dir}`,
      SCRIPT.pathname,
      pki.serverDns.certPath,
      pki.serverDns.keyPath,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let closed: Promise<void> | undefined;
  const close = () =>
    closed ??= (async () => {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      await child.status;
    })();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const deadline = setTimeout(() => void reader.cancel(), timeoutMs);
  try {
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`Cannot start the frozen server: no port within ${timeoutMs} ms`);
      text += value;
    }
  } catch (e) {
    await close();
    throw e;
  } finally {
    clearTimeout(deadline);
    await reader.cancel().catch(() => {});
  }
  const port = Number(text.trim());
  return {
    endpoint: { host: "127.0.0.1", port },
    freeze: () => child.kill("SIGSTOP"),
    thaw: () => child.kill("SIGCONT"),
    close,
    [Symbol.asyncDispose]: close,
  };
}
