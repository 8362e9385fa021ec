import assert from "node:assert/strict";
import { freePorts, REPO_ROOT, startCommand } from "./support/main_process.ts";
import { EchoServer, waitFor } from "./support/net.ts";
import { withDeadline } from "./support/deadline.ts";

const hasPrlimit = new Deno.Command("prlimit", { args: ["--version"], stdout: "null", stderr: "null" }).outputSync()
  .success;

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

Deno.test({
  name: "the real program survives running out of file descriptors (EMFILE) and accepts again afterwards",
  ignore: !hasPrlimit,
  async fn() {
    await using upstream = new EchoServer();
    const [bind, health] = freePorts(2) as [number, number];
    const start = startCommand();
    // A small descriptor limit for the program only: Deno needs about 30 to start; 40 clients exhaust the rest.
    const child = new Deno.Command("prlimit", {
      args: [
        "--nofile=64:64",
        start.command,
        ...start.args,
        `--endpoints=127.0.0.1:${upstream.port}`,
        `--bind-port=${bind}`,
        `--health-port=${health}`,
        "--health-check=tcp",
        "--enable-discovery=false",
        "--log-level=warn",
      ],
      cwd: REPO_ROOT,
      env: start.env,
      stdout: "null",
      stderr: "piped",
    }).spawn();
    // Collect stderr as it comes, so the test can wait for the accept error itself.
    let log = "";
    const reading = (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) log += chunk;
    })();
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
        () => /Accept failed, retrying in \d+ ms/.test(log),
        10_000,
        "accept to fail with EMFILE and be logged",
      );
      for (const c of held.splice(0)) c.close();
      // Once descriptors are free again, new clients are relayed.
      await waitFor(() => relays(bind), 10_000, "the proxy to relay again after EMFILE");
    } finally {
      for (const c of held) c.close();
      child.kill("SIGTERM");
      assert.equal((await withDeadline(child.status, "the program to exit on SIGTERM")).code, 0);
    }
    await withDeadline(reading, "the end of the program's stderr");
    assert.match(log, /Too many open files/, "the accept errors were EMFILE");
  },
});
