import assert from "node:assert/strict";
import { freePorts, LimitedProgram } from "./support/main_process.ts";
import { EchoServer, waitFor } from "./support/net.ts";

const hasPrlimit = new Deno.Command("prlimit", { args: ["--version"], stdout: "null", stderr: "null" }).outputSync()
  .success;

/** Sends a GET on a fresh connection and returns the status line, or `undefined` when none came. */
async function get(port: number, path: string): Promise<string | undefined> {
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await c.write(new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`));
      return await statusLine(c);
    } finally {
      closeQuietly(c);
    }
  } catch {
    return undefined;
  }
}

function closeQuietly(c: Deno.Conn): void {
  try {
    c.close();
  } catch { /* the reader's deadline closed it already */ }
}

/** Reads up to the end of the status line, within 10 s; `undefined` when the connection ends first. */
async function statusLine(c: Deno.Conn): Promise<string | undefined> {
  let text = "";
  const chunk = new Uint8Array(512);
  const timer = setTimeout(() => closeQuietly(c), 10_000);
  try {
    while (!text.includes("\r\n")) {
      const n = await c.read(chunk);
      if (n === null) return undefined;
      text += new TextDecoder().decode(chunk.subarray(0, n));
    }
    return text.slice(0, text.indexOf("\r\n"));
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

async function relays(port: number): Promise<boolean> {
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await c.write(new Uint8Array([7]));
      const b = new Uint8Array(1);
      return (await c.read(b)) === 1 && b[0] === 7;
    } finally {
      c.close();
    }
  } catch {
    return false;
  }
}

/** The real program on free ports with one upstream (under `prlimit` when `nofile` is given). */
class Program extends LimitedProgram {
  readonly bind: number;
  readonly health: number;

  constructor(upstreamPort: number, nofile?: number, logLevel = "warn") {
    const [bind, health] = freePorts(2) as [number, number];
    super([
      `--endpoints=127.0.0.1:${upstreamPort}`,
      `--bind-port=${bind}`,
      `--health-port=${health}`,
      "--health-check=tcp",
      "--enable-discovery=false",
      `--log-level=${logLevel}`,
    ], nofile);
    this.bind = bind;
    this.health = health;
  }
}

Deno.test({
  name:
    "the real program survives running out of file descriptors (EMFILE), on both ports, and serves again afterwards",
  ignore: !hasPrlimit,
  async fn() {
    await using upstream = new EchoServer();
    // A small descriptor limit for the program only: Deno needs about 30 to start; 40 clients exhaust the rest.
    const program = new Program(upstream.port, 64);
    const { bind, health } = program;
    let code: number | undefined;
    const held: Deno.TcpConn[] = [];
    try {
      await waitFor(() => relays(bind), 10_000, "the proxy to relay");
      // Hold connections open until the program cannot accept (or dial) any more: at most 100, bounded.
      for (let i = 0; i < 100; i++) {
        try {
          held.push(await Deno.connect({ hostname: "127.0.0.1", port: bind }));
        } catch {
          break;
        }
      }
      await waitFor(
        () => /Accept failed on the \S*proxy\S* listener \S*127\.0\.0\.1:\d+\S*, retrying in/.test(program.log),
        10_000,
        "accept to fail with EMFILE and be logged",
      );
      // Descriptors are exhausted: a health request waits in the health listener's backlog. Deno.serve dies of
      // this at once (an uncaught EMFILE from its accept loop); our own loop logs, backs off and retries.
      const failures = () => program.log.match(/Accept failed/g)?.length ?? 0;
      const before = failures();
      const probe = await Deno.connect({ hostname: "127.0.0.1", port: health });
      held.push(probe);
      await probe.write(
        new TextEncoder().encode("GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
      );
      await waitFor(
        () => {
          if (program.exited) throw new Error(`The program exited under EMFILE on the health port:\n${program.log}`);
          return failures() >= before + 3;
        },
        10_000,
        "more accept failures while the health request waits",
      );
      held.splice(held.indexOf(probe), 1);
      for (const c of held.splice(0)) c.close();
      // Once descriptors are free again, the waiting health request is answered, and new ones get 200.
      try {
        // 200, or 503 when its self-check ran before the program had closed the relays it lost: an answer either way.
        assert.match(
          await statusLine(probe) ?? "no answer",
          /^HTTP\/1\.1 (200|503) /,
          "the waiting request is answered",
        );
      } finally {
        closeQuietly(probe);
      }
      await waitFor(() => relays(bind), 10_000, "the proxy to relay again after EMFILE");
      // Probes failed while no descriptor was free: readiness comes back once they pass again.
      for (const path of ["/healthz", "/readyz"]) {
        await waitFor(async () => (await get(health, path)) === "HTTP/1.1 200 OK", 10_000, `${path} to answer 200`);
      }
      assert.equal(program.exited, false);
    } finally {
      for (const c of held) c.close();
      code = await program.stop();
    }
    assert.equal(code, 0, program.log);
    assert.match(program.log, /Too many open files/, "the accept errors were EMFILE");
  },
});

Deno.test({
  name: "a storm that exhausts descriptors from the first relayed connection on: discovery's code waits, nothing dies",
  ignore: !hasPrlimit,
  async fn() {
    // Deno 2.9 panics when it loads a module with no descriptor free; the program loads discovery's code after
    // listening (main.ts), so a storm that starts at once must hold that load back, not end the process.
    await using upstream = new EchoServer();
    const program = new Program(upstream.port, 64, "info");
    const { bind } = program;
    let code: number | undefined;
    const held: Deno.TcpConn[] = [];
    try {
      await waitFor(() => relays(bind), 10_000, "the proxy to relay");
      for (let i = 0; i < 100; i++) {
        try {
          held.push(await Deno.connect({ hostname: "127.0.0.1", port: bind }));
        } catch {
          break;
        }
      }
      await waitFor(() => /Accept failed on the \S*proxy/.test(program.log), 10_000, "accept to fail with EMFILE");
      // Longer than the load's delay after listening (100 ms), with the descriptors still exhausted.
      const until = performance.now() + 600;
      await waitFor(() => program.exited || performance.now() > until, 5_000, "the storm to last 600 ms");
      assert.equal(program.exited, false, `the program died in the storm:\n${program.log}`);
      assert.doesNotMatch(program.log, /listening on/, "discovery's code was not loaded during the storm");
      for (const c of held.splice(0)) c.close();
      await waitFor(() => /listening on/.test(program.log), 10_000, "discovery's code to load after the storm");
      await waitFor(() => relays(bind), 10_000, "the proxy to relay after the storm");
      assert.equal(program.exited, false);
    } finally {
      for (const c of held) c.close();
      code = await program.stop();
    }
    assert.equal(code, 0, program.log);
  },
});

/** Reads until the server closes `c` (true) or `ms` pass (false). */
async function closedByServer(c: Deno.Conn, ms: number): Promise<boolean> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    closeQuietly(c);
  }, ms);
  const chunk = new Uint8Array(512);
  try {
    while ((await c.read(chunk)) !== null);
  } catch { /* a reset, or our own close at the deadline */ }
  clearTimeout(timer);
  return !timedOut;
}

Deno.test("slow-loris on the real program's health port: healthz answers, the proxy relays, every unfinished request ends", async () => {
  await using upstream = new EchoServer();
  const program = new Program(upstream.port);
  const { bind, health } = program;
  let code: number | undefined;
  const loris: Deno.TcpConn[] = [];
  try {
    await waitFor(() => relays(bind), 10_000, "the proxy to relay");
    // 100 requests that never finish (more than the cap of 64), held open.
    const half = new TextEncoder().encode("GET /healthz HT");
    for (let i = 0; i < 100; i++) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port: health });
      loris.push(c);
      await c.write(half).catch(() => 0); // a refused one may be closed already
    }
    assert.equal(await relays(bind), true, "the data path does not notice");
    // A prober gets through while they are held: at the cap it takes the place of one that waited 1 s for nothing.
    await waitFor(async () => (await get(health, "/healthz")) === "HTTP/1.1 200 OK", 10_000, "/healthz to answer");
    await waitFor(async () => (await get(health, "/readyz")) === "HTTP/1.1 200 OK", 10_000, "/readyz to answer");
    // Each one ends: refused at once (503), dropped for a newcomer, or closed at the 10 s header timeout.
    const ended = await Promise.all(loris.map((c) => closedByServer(c, 15_000)));
    const open = ended.filter((e) => !e).length;
    assert.equal(open, 0, `${open} of ${loris.length} unfinished requests still open after 15 s`);
    assert.equal(program.exited, false);
    assert.equal(await relays(bind), true);
  } finally {
    for (const c of loris) closeQuietly(c);
    code = await program.stop();
  }
  assert.equal(code, 0, program.log);
});
