import assert from "node:assert/strict";
import { REPO_ROOT } from "./support/main_process.ts";
import { waitFor } from "./support/net.ts";
import { withDeadline } from "./support/deadline.ts";
import { probeHandler, serveHttp } from "../lib/copier/http.ts";

const hasPrlimit = new Deno.Command("prlimit", { args: ["--version"], stdout: "null", stderr: "null" }).outputSync()
  .success;

/** The copier's probe server alone, in a child under `prlimit --nofile`, its stderr collected as it comes. */
class ProbeChild {
  log = "";
  exited = false;
  readonly port: Promise<number>;
  readonly #child: Deno.ChildProcess;
  readonly #reading: Promise<unknown>;

  constructor(nofile: number) {
    const child = this.#child = new Deno.Command("prlimit", {
      args: [
        `--nofile=${nofile}:${nofile}`,
        Deno.execPath(),
        "run",
        "-q",
        "--frozen",
        "--allow-net=127.0.0.1",
        "tests/support/copier_http_child.ts",
      ],
      cwd: REPO_ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    child.status.then(() => this.exited = true);
    const port = Promise.withResolvers<number>();
    this.port = port.promise;
    let out = "";
    this.#reading = Promise.all([
      (async () => {
        for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
          out += chunk;
          if (out.includes("\n")) port.resolve(Number(out.slice(0, out.indexOf("\n"))));
        }
        port.reject(new Error(`The child printed no port: '${out}'`));
      })(),
      (async () => {
        for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) this.log += chunk;
      })(),
    ]);
  }

  /** Sends SIGTERM (unless it exited already) and returns the exit code once its output has ended. */
  async stop(): Promise<number> {
    try {
      this.#child.kill("SIGTERM");
    } catch { /* it exited already: the status says how */ }
    const { code } = await withDeadline(this.#child.status, "the child to exit on SIGTERM");
    await withDeadline(this.#reading, "the end of the child's output");
    this.port.catch(() => {});
    return code;
  }
}

function closeQuietly(c: Deno.Conn): void {
  try {
    c.close();
  } catch { /* closed already */ }
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

const HEALTHZ = new TextEncoder().encode("GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");

/** Sends GET /healthz on a fresh connection and returns the status line, or `undefined` when none came. */
async function healthz(port: number): Promise<string | undefined> {
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await c.write(HEALTHZ);
      return await statusLine(c);
    } finally {
      closeQuietly(c);
    }
  } catch {
    return undefined;
  }
}

Deno.test({
  name: "the copier's probe server survives running out of file descriptors (EMFILE) and answers again afterwards",
  ignore: !hasPrlimit,
  async fn() {
    // Deno needs about 20 descriptors to start this child; 64 leaves a few dozen for accepted connections.
    const child = new ProbeChild(64);
    const held: Deno.TcpConn[] = [];
    let code: number | undefined;
    try {
      const port = await withDeadline(child.port, "the child's port");
      assert.equal(await healthz(port), "HTTP/1.1 200 OK");
      // Connections that send nothing, held until the child cannot accept any more: at most 100, bounded.
      for (let i = 0; i < 100; i++) {
        try {
          held.push(await Deno.connect({ hostname: "127.0.0.1", port }));
        } catch {
          break;
        }
      }
      const alive = () => {
        if (child.exited) throw new Error(`The probe server's process exited under EMFILE:\n${child.log}`);
      };
      const failures = () => child.log.match(/Accept failed/g)?.length ?? 0;
      await waitFor(
        () => (alive(),
          /Accept failed on the \S*probes\S* listener \S*127\.0\.0\.1:\d+\S*, retrying in/.test(child.log)),
        10_000,
        "accept to fail with EMFILE and be logged",
      );
      // A probe waits in the listener's backlog while every accept fails; the loop keeps retrying.
      const before = failures();
      const probe = await Deno.connect({ hostname: "127.0.0.1", port });
      held.push(probe);
      await probe.write(HEALTHZ);
      await waitFor(() => (alive(), failures() >= before + 3), 10_000, "more accept failures while the probe waits");
      held.splice(held.indexOf(probe), 1);
      for (const c of held.splice(0)) c.close();
      // Once descriptors are free again, the waiting probe is answered, and so is a new one.
      try {
        assert.equal(await statusLine(probe), "HTTP/1.1 200 OK", "the waiting probe is answered");
      } finally {
        closeQuietly(probe);
      }
      await waitFor(async () => (await healthz(port)) === "HTTP/1.1 200 OK", 10_000, "/healthz to answer 200");
      assert.equal(child.exited, false);
    } finally {
      for (const c of held) closeQuietly(c);
      code = await child.stop();
    }
    assert.equal(code, 0, child.log);
    assert.match(child.log, /Too many open files/, "the accept errors were EMFILE");
  },
});

Deno.test("an empty host (Go's ':8081') serves every interface: IPv4 and IPv6 loopback both answer", async () => {
  await using server = serveHttp({ host: "", port: 0 }, "probes", probeHandler({ notReadyReason: () => undefined }));
  assert.ok(["::", "0.0.0.0"].includes(server.addr.hostname), `bound to '${server.addr.hostname}'`);
  assert.equal(await healthz(server.addr.port), "HTTP/1.1 200 OK");
  if (server.addr.hostname === "::") {
    const c = await Deno.connect({ hostname: "::1", port: server.addr.port });
    try {
      await c.write(HEALTHZ);
      assert.equal(await statusLine(c), "HTTP/1.1 200 OK");
    } finally {
      closeQuietly(c);
    }
  }
});

Deno.test("an address that cannot be bound is one line naming it and the face", () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  assert.throws(
    () => serveHttp({ host: "127.0.0.1", port: taken.addr.port }, "metrics", () => new Response()),
    new RegExp(`^Error: Cannot listen on '127\\.0\\.0\\.1:${taken.addr.port}' for the metrics: `),
  );
});
