import assert from "node:assert/strict";
import { freePorts, LimitedProgram } from "./support/main_process.ts";
import { CopierEnv, service } from "./support/copier_env.ts";
import { endpointSlice } from "./support/fake_apiserver.ts";
import { tempDir } from "./support/kube_client_fixtures.ts";
import { waitFor } from "./support/net.ts";
import { probeHandler, serveHttp } from "../lib/copier/http.ts";

const hasPrlimit = new Deno.Command("prlimit", { args: ["--version"], stdout: "null", stderr: "null" }).outputSync()
  .success;

/** The real program in endpoint-copier mode on free ports, under `prlimit`. */
class CopierProgram extends LimitedProgram {
  readonly probe: number;
  readonly metrics: number;

  constructor(kubeconfig: string, nofile: number) {
    const [probe, metrics] = freePorts(2) as [number, number];
    super([
      "endpoint-copier",
      `--kubeconfig=${kubeconfig}`,
      `--health-probe-bind-address=127.0.0.1:${probe}`,
      `--metrics-bind-address=127.0.0.1:${metrics}`,
      "--log-level=warn",
    ], nofile);
    this.probe = probe;
    this.metrics = metrics;
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

const request = (path: string) =>
  new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
const HEALTHZ = request("/healthz");

/** Sends GET `path` on a fresh connection and returns the status line, or `undefined` when none came. */
async function get(port: number, path = "/healthz"): Promise<string | undefined> {
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await c.write(request(path));
      return await statusLine(c);
    } finally {
      closeQuietly(c);
    }
  } catch {
    return undefined;
  }
}

Deno.test({
  name: "the copier's probe port survives running out of file descriptors (EMFILE) and answers again afterwards",
  ignore: !hasPrlimit,
  async fn() {
    await using env = await CopierEnv.start();
    await using dir = await tempDir("copier_http_");
    env.api.tokens.add("emfile-token");
    env.api.upsert(endpointSlice("kubernetes", ["127.0.0.1"], 6443));
    env.api.upsert(service("kubernetes-vip"));
    const kubeconfig = `${dir.path}/config`;
    await Deno.writeTextFile(
      kubeconfig,
      [
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        `- {name: c, cluster: {server: "${env.api.url}", certificate-authority: "${env.pki.ca.certPath}"}}`,
        "users:",
        "- {name: u, user: {token: emfile-token}}",
        "contexts:",
        "- {name: x, context: {cluster: c, user: u}}",
        "current-context: x",
      ].join("\n"),
    );
    // A small descriptor limit for the copier only: Deno needs about 30 to start; idle clients exhaust the rest.
    const copier = new CopierProgram(kubeconfig, 64);
    const { probe: port } = copier;
    const held: Deno.TcpConn[] = [];
    let code: number | undefined;
    try {
      await waitFor(async () => (await get(port)) === "HTTP/1.1 200 OK", 10_000, "the probe port to answer");
      await env.until(() => env.copies().get("kubernetes-vip-kubernetes"), "the copy", 10_000);
      // Connections that send nothing, held until the copier cannot accept any more: at most 100, bounded.
      for (let i = 0; i < 100; i++) {
        try {
          held.push(await Deno.connect({ hostname: "127.0.0.1", port }));
        } catch {
          break;
        }
      }
      const alive = () => {
        if (copier.exited) throw new Error(`The copier exited under EMFILE:\n${copier.log}`);
        // Deno.serve's accept loop rejected (the program logs an unhandled rejection as an internal error) and ended.
        if (/Internal error|Uncaught/.test(copier.log)) throw new Error(`An accept error escaped:\n${copier.log}`);
      };
      const failures = () => copier.log.match(/Accept failed/g)?.length ?? 0;
      await waitFor(
        () => (alive(),
          /Accept failed on the \S*probes\S* listener \S*127\.0\.0\.1:\d+\S*, retrying in/.test(copier.log)),
        10_000,
        "accept to fail with EMFILE and be logged",
      );
      // A probe waits in the listener's backlog while every accept fails: Deno.serve's accept loop ended here, and
      // the port refused connections until a restart. Ours keeps retrying.
      const before = failures();
      const probe = await Deno.connect({ hostname: "127.0.0.1", port });
      held.push(probe);
      await probe.write(HEALTHZ);
      await waitFor(() => (alive(), failures() >= before + 3), 10_000, "more accept failures while the probe waits");
      held.splice(held.indexOf(probe), 1);
      for (const c of held.splice(0)) c.close();
      // Once descriptors are free again, the waiting probe is answered, and so are new ones on both ports.
      try {
        assert.equal(await statusLine(probe), "HTTP/1.1 200 OK", "the waiting probe is answered");
      } finally {
        closeQuietly(probe);
      }
      await waitFor(async () => (await get(port)) === "HTTP/1.1 200 OK", 10_000, "/healthz to answer 200");
      await waitFor(
        async () => (await get(copier.metrics, "/metrics")) === "HTTP/1.1 200 OK",
        10_000,
        "/metrics to answer 200",
      );
      assert.equal(copier.exited, false);
    } finally {
      for (const c of held) closeQuietly(c);
      code = await copier.stop();
    }
    assert.equal(code, 0, copier.log);
    assert.match(copier.log, /Too many open files/, "the accept errors were EMFILE");
  },
});

Deno.test("an empty host (Go's ':8081') serves every interface: IPv4 and IPv6 loopback both answer", async () => {
  await using server = serveHttp({ host: "", port: 0 }, "probes", probeHandler({ notReadyReason: () => undefined }));
  assert.ok(["::", "0.0.0.0"].includes(server.addr.hostname), `bound to '${server.addr.hostname}'`);
  assert.equal(await get(server.addr.port), "HTTP/1.1 200 OK");
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
    () => serveHttp({ host: "127.0.0.1", port: taken.addr.port }, "metrics", () => ({ status: 200 })),
    new RegExp(`^Error: Cannot listen on '127\\.0\\.0\\.1:${taken.addr.port}' for the metrics: `),
  );
});
