/**
 * The new-connection workload that `bench/instructions.ts` and `bench/cpu_profile.ts` share: a plain HTTP/1.0
 * backend, connections through a proxy (connect → `GET /` → the whole answer → close, a few clients at once), and the
 * two subjects, extractedprism (started as `deno task start` does, `--health-check=tcp`) and the floor relay
 * (`bench/_floor_relay.ts`). Loopback only.
 *
 * @module
 */
import { startCommand } from "../tests/support/main_process.ts";
import { delay, freePort } from "./_process.ts";
import { closeQuietly } from "../lib/net/connect_tcp.ts";

const REPO = new URL("../", import.meta.url).pathname;
const encoder = new TextEncoder();
const ANSWER = encoder.encode("HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
const REQUEST = encoder.encode("GET / HTTP/1.0\r\nHost: bench\r\n\r\n");

/** A plain HTTP/1.0 backend: answers each request once and closes; a connection without a request (a probe) too. */
export function startBackend(): { port: number; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const conn of listener) {
      (async () => {
        const buf = new Uint8Array(4096);
        try {
          let seen = "";
          for (;;) {
            const n = await conn.read(buf);
            if (n === null) {
              if (seen !== "") console.error(`backend: a connection ended after ${JSON.stringify(seen)}`);
              return;
            }
            seen += new TextDecoder().decode(buf.subarray(0, n));
            if (seen.includes("\r\n\r\n")) break;
          }
          for (let off = 0; off < ANSWER.length;) off += await conn.write(ANSWER.subarray(off));
        } catch {
          /* the client went away */
        } finally {
          closeQuietly(conn);
        }
      })();
    }
  })().catch(() => {});
  return { port: listener.addr.port, close: () => listener.close() };
}

/** One connection through the proxy; throws unless the backend's whole answer came back. */
export async function oneConnection(port: number): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    for (let off = 0; off < REQUEST.length;) off += await conn.write(REQUEST.subarray(off));
    const buf = new Uint8Array(256);
    let got = 0;
    for (;;) {
      const n = await conn.read(buf.subarray(got));
      if (n === null) break;
      got += n;
    }
    if (got !== ANSWER.length) {
      throw new Error(
        `a connection from port ${(conn.localAddr as Deno.NetAddr).port} got ${got} of ${ANSWER.length} bytes`,
      );
    }
  } finally {
    conn.close();
  }
}

/**
 * Waits until one connection through `port` comes back whole (the program under test has started); throws after
 * `timeoutMs` with the last connection's error and `detail()` (such as the program's output).
 */
export async function untilRelaying(
  port: number,
  timeoutMs: number,
  name: string,
  detail: () => string = () => "",
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      await oneConnection(port);
      return;
    } catch (e) {
      if (performance.now() > deadline) {
        throw new Error(`${name} did not relay in ${timeoutMs / 1000} s: ${e}${detail()}`);
      }
      await delay(100);
    }
  }
}

/**
 * `count` connections from `clients` clients at once; each client's connections one after another. Returns the
 * failures (each with its reason): a handful are reported, not fatal, more than one in a hundred is.
 */
export async function load(port: number, count: number, clients: number): Promise<string[]> {
  let left = count;
  const failures: string[] = [];
  await Promise.all(Array.from({ length: clients }, async () => {
    while (left > 0) {
      left--;
      try {
        await oneConnection(port);
      } catch (e) {
        failures.push(e instanceof Error ? e.message : String(e));
        if (failures.length > count / 100) throw new Error(`${failures.length} connections failed: ${failures[0]}`);
      }
    }
  }));
  return failures;
}

/** One program under test. */
export interface Subject {
  readonly name: "extractedprism" | "floor";
  /**
   * Its command, given the port to listen on, the backend's, and flags for `deno run` itself (such as `--inspect`).
   * Its timeouts suit a process slowed some 50 times (valgrind); at full speed they only make probes rarer.
   */
  argv(port: number, backendPort: number, denoFlags?: readonly string[]): string[];
  readonly cwd: string;
  readonly env: Record<string, string>;
}

const start = startCommand();
const v8Flags = start.args.filter((a) => a.startsWith("--v8-flags="));

/** extractedprism and the floor relay, in that order. */
export const SUBJECTS: readonly Subject[] = [
  {
    name: "extractedprism",
    argv: (port, backendPort, denoFlags = []) => [
      Deno.execPath(),
      ...startCommand(denoFlags).args,
      `--endpoints=127.0.0.1:${backendPort}`,
      `--bind-port=${port}`,
      `--health-port=${freePort()}`,
      "--health-check=tcp",
      // Under valgrind the process runs some 50 times slower: a probe must not time out and take the only upstream
      // (and its connections, --close-on-unhealthy) away. Fewer probes also count less against the connections.
      "--health-interval=10s",
      "--health-timeout=5s",
      "--health-fall=10",
      // Nor may a dial: the rare client closed with no byte was a dial whose 2 s budget ran out while valgrind ran
      // another thread ("none within the dial budget (2000 ms)" in the proxy's log).
      "--dial-timeout=60s",
      "--log-level=warn",
    ],
    cwd: REPO,
    env: start.env,
  },
  {
    name: "floor",
    argv: (port, backendPort, denoFlags = []) => [
      Deno.execPath(),
      "run",
      ...denoFlags,
      "-q",
      "--no-config",
      "--allow-net=127.0.0.1",
      ...v8Flags,
      `${REPO}bench/_floor_relay.ts`,
      String(port),
      String(backendPort),
    ],
    cwd: "/",
    env: start.env,
  },
];
