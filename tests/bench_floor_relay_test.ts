/**
 * The bench's floor of the job (`bench/_floor_relay.ts` with a CA): it probes `/readyz` once before it listens and
 * then once a second on the same TLS connection, verified with the CA for the given name; a first probe that fails
 * ends it with one line. Loopback only.
 *
 * @module
 */
import assert from "node:assert/strict";
import { floorArgv, parseCommand } from "../bench/_systems.ts";
import { freePort, waitFor } from "./support/net.ts";
import { createTestPki } from "./support/test_pki.ts";

/** An HTTPS server with the PKI's DNS-named certificate that counts `/readyz` requests and the connections they came on. */
function readyzServer(cert: string, key: string) {
  const seen = { readyz: 0, connections: new Set<string>() };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, cert, key, onListen: () => {} }, (req, info) => {
    if (new URL(req.url).pathname === "/readyz") {
      seen.readyz++;
      seen.connections.add(`${info.remoteAddr.hostname}:${info.remoteAddr.port}`);
    }
    return new Response("ok");
  });
  return { server, seen };
}

/** Whether the floor accepts on `port` (the connection is relayed to the backend and closed at once). */
async function accepting(port: number): Promise<boolean> {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    return true;
  } catch {
    return false;
  }
}

Deno.test("the floor with a probe has probed once when it listens, then probes each second on one connection", async () => {
  await using pki = await createTestPki();
  const { server, seen } = readyzServer(pki.serverDns.cert, pki.serverDns.key);
  const port = freePort();
  const argv = floorArgv(parseCommand("deno run main.ts"), port, server.addr.port, {
    caFile: pki.ca.certPath,
    serverName: "kubernetes.default.svc",
  });
  const child = new Deno.Command(argv[0]!, { args: argv.slice(1), stdout: "null", stderr: "piped" }).spawn();
  try {
    await waitFor(() => accepting(port), 15_000, "the floor to listen");
    assert(seen.readyz >= 1, "a listening floor has probed once");
    const first = seen.readyz;
    await waitFor(() => seen.readyz >= first + 2, 10_000, "two more probes");
    assert.equal(seen.connections.size, 1, "one kept-alive connection");
  } finally {
    child.kill("SIGKILL");
    await child.output();
    await server.shutdown();
  }
});

Deno.test("the floor with a probe it cannot verify exits with one line instead of measuring a floor without TLS", async () => {
  await using pki = await createTestPki();
  const { server, seen } = readyzServer(pki.serverDns.cert, pki.serverDns.key);
  const argv = floorArgv(parseCommand("deno run main.ts"), freePort(), server.addr.port, {
    caFile: pki.otherCa.certPath,
    serverName: "kubernetes.default.svc",
  });
  try {
    const out = await new Deno.Command(argv[0]!, { args: argv.slice(1), stdout: "null", stderr: "piped" }).output();
    assert.equal(out.code, 1);
    const stderr = new TextDecoder().decode(out.stderr);
    assert.match(stderr, /^The floor's first readyz probe failed: .*certificate/);
    assert.equal(stderr.trim().split("\n").length, 1);
    assert.equal(seen.readyz, 0);
  } finally {
    await server.shutdown();
  }
});
