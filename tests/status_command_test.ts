import assert from "node:assert/strict";
import { parseStatusCommandLine, STATUS_FLAGS } from "../lib/config/status_flags.ts";
import { runStatus } from "../lib/status/status_command.ts";
import { withDeadline } from "./support/deadline.ts";
import { freePorts, MainProcess, runMain } from "./support/main_process.ts";
import { EchoServer, waitFor } from "./support/net.ts";

const INFO = { version: "0.0.0" };

function config(argv: string[], env: Record<string, string> = {}) {
  const r = parseStatusCommandLine(argv, env, INFO);
  if (r.kind !== "ok") assert.fail(`expected a config, got: ${r.stderr}`);
  return r.config;
}

Deno.test("status reads the health address the way the proxy binds it", async (t) => {
  await t.step("defaults: 127.0.0.1:7446, 3 s, a table", () => {
    assert.deepEqual(config([]), { host: "127.0.0.1", port: 7446, timeoutMs: 3000, output: "table" });
  });
  await t.step("EP_HEALTH_BIND_ADDRESS, else EP_BIND_ADDRESS, and EP_HEALTH_PORT, as the proxy reads them", () => {
    assert.equal(config([], { EP_BIND_ADDRESS: "127.0.0.2" }).host, "127.0.0.2");
    assert.equal(config([], { EP_BIND_ADDRESS: "127.0.0.2", EP_HEALTH_BIND_ADDRESS: "127.0.0.3" }).host, "127.0.0.3");
    assert.equal(config([], { EP_HEALTH_PORT: "9446" }).port, 9446);
    assert.equal(config(["--health-port=1"], { EP_HEALTH_PORT: "9446" }).port, 1, "the flag wins");
  });
  await t.step("a wildcard address is reached through loopback; IPv6 may be bracketed", () => {
    assert.equal(config(["--bind-address=0.0.0.0"]).host, "127.0.0.1");
    assert.equal(config(["--health-bind-address=::"]).host, "::1");
    assert.equal(config(["--health-bind-address=[::]"]).host, "::1");
    assert.equal(config(["--health-bind-address=[fd00::1]"]).host, "fd00::1");
  });
  await t.step("-o wide, -o=json, -owide and --output all choose the output", () => {
    assert.equal(config(["-o", "wide"]).output, "wide");
    assert.equal(config(["-o=json"]).output, "json");
    assert.equal(config(["-owide"]).output, "wide");
    assert.equal(config(["--output", "JSON"]).output, "json");
  });
  await t.step("mistakes are one line with exit status 2", () => {
    const cases: [string[], string | undefined][] = [
      [["-o", "yaml"], "error: Invalid --output 'yaml': expected one of 'table', 'wide', 'json'\n"],
      [
        ["--timeout=0s"],
        "error: Invalid --timeout '0s': expected a duration greater than zero, such as '500ms' or '2s'\n",
      ],
      [["--health-port=65536"], undefined],
      [["extra"], "error: unexpected argument 'extra'\n"],
    ];
    for (const [argv, want] of cases) {
      const r = parseStatusCommandLine(argv, {}, INFO);
      assert.ok(r.kind === "exit" && r.code === 2, argv.join(" "));
      assert.match(r.stderr, /^error: [^\n]+\n$/);
      if (want !== undefined) assert.equal(r.stderr, want);
    }
  });
  await t.step("every flag has its EP_ variable", () => {
    for (const f of STATUS_FLAGS) assert.equal(f.env, `EP_${f.name.toUpperCase().replaceAll("-", "_")}`);
  });
});

/** A listener on loopback that answers each connection with `reply` (or never, when `reply` is undefined). */
async function withServer(
  reply: string | undefined,
  body: (port: number) => Promise<void>,
): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const serving = (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      if (reply === undefined) continue;
      await conn.read(new Uint8Array(4096));
      await conn.write(new TextEncoder().encode(reply));
      conn.close();
    }
  })().catch(() => {});
  try {
    await body(listener.addr.port);
  } finally {
    listener.close();
    await serving;
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed after its reply */ }
    }
  }
}

Deno.test("a port that does not answer like a health port is reported in one line with status 2", async (t) => {
  const base = { host: "127.0.0.1", output: "table" } as const;
  await t.step("no answer within the timeout", async () => {
    await withServer(undefined, async (port) => {
      const started = performance.now();
      const r = await runStatus({ ...base, port, timeoutMs: 200 });
      assert.deepEqual(r, {
        code: 2,
        stdout: "",
        stderr: `Cannot reach the health port at 127.0.0.1:${port}: no answer within 200ms\n`,
      });
      assert.ok(performance.now() - started < 2000, "bounded by the timeout");
    });
  });
  await t.step("an HTTP server that has no /upstreams", async () => {
    await withServer("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n", async (port) => {
      const r = await runStatus({ ...base, port, timeoutMs: 2000 });
      assert.equal(r.code, 2);
      assert.equal(
        r.stderr,
        `Cannot reach the health port at 127.0.0.1:${port}: GET /upstreams answered 404: is this the proxy's ` +
          "health port?\n",
      );
    });
  });
  await t.step("something that does not speak HTTP", async () => {
    await withServer("SSH-2.0-OpenSSH_9.6\r\n", async (port) => {
      const r = await runStatus({ ...base, port, timeoutMs: 2000 });
      assert.equal(r.code, 2);
      assert.match(
        r.stderr,
        /^Cannot reach the health port at 127\.0\.0\.1:\d+: the answer to GET \/\w+ is not HTTP\n$/,
      );
    });
  });
  await t.step("an answer that is not the upstreams' JSON", async () => {
    await withServer("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n<html>", async (port) => {
      const r = await runStatus({ ...base, port, timeoutMs: 2000 });
      assert.equal(r.code, 2);
      assert.equal(r.stderr, `Cannot reach the health port at 127.0.0.1:${port}: its /upstreams answer is not JSON\n`);
    });
  });
  await t.step("a ready proxy without upstreams says so on stderr, with no table", async () => {
    await withServer('HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{"upstreams":[]}\n', async (port) => {
      assert.deepEqual(await runStatus({ ...base, port, timeoutMs: 2000 }), {
        code: 0,
        stdout: "",
        stderr: "No upstreams\n",
      });
    });
  });
  await t.step("an IPv6 address is written in brackets", async () => {
    const [port] = freePorts(1) as [number];
    const r = await runStatus({ ...base, host: "::1", port, timeoutMs: 2000 });
    assert.equal(r.code, 2);
    assert.match(r.stderr, new RegExp(`^Cannot reach the health port at \\[::1\\]:${port}: `));
  });
});

Deno.test("status against the real program: 0 and the table when ready, 1 and why when not, 2 when unreachable", async (t) => {
  await using upstream = new EchoServer();
  const [bind, health, closed] = freePorts(3) as [number, number, number];
  await using proxy = MainProcess.start([
    `--bind-port=${bind}`,
    `--health-port=${health}`,
    `--endpoints=127.0.0.1:${upstream.port},127.0.0.1:${closed}`,
    "--enable-discovery=false",
    "--health-check=tcp",
    "--health-interval=100ms",
    "--health-timeout=50ms",
    "--health-rise=1",
  ]);
  const states = async () => {
    if (proxy.status !== undefined) throw new Error(`The proxy exited early:\n${proxy.lines.join("\n")}`);
    const r = await runMain(["status", `--health-port=${health}`, "-o", "json"]);
    if (r.code === 2) return [];
    return (JSON.parse(r.stdout) as { upstreams: { state: string }[] }).upstreams.map((u) => u.state);
  };
  await waitFor(async () => (await states()).join() === "healthy,unhealthy", 30_000, "one healthy, one unhealthy");

  await t.step("ready: exit 0, the table on stdout, nothing on stderr", async () => {
    // The environment the proxy's unit file sets is enough: no flag needed.
    const r = await runMain(["status"], { env: { EP_HEALTH_PORT: String(health) } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "");
    const lines = r.stdout.trimEnd().split("\n").map((l) => l.split(/\s{3,}/));
    assert.deepEqual(lines[0], ["UPSTREAM", "STATE", "TIER", "RTT", "CONNS", "REASON", "SINCE"]);
    const [address, state, tier, rtt, conns, reason, since] = lines[1] ?? [];
    assert.deepEqual([address, state, tier, conns, reason], [
      `127.0.0.1:${upstream.port}`,
      "healthy",
      "0",
      "0",
      "first probe succeeded",
    ]);
    assert.match(rtt ?? "", /^[\d.]+m?s$/);
    assert.match(since ?? "", /^\d+s$/);
    assert.equal(lines[2]?.[0], `127.0.0.1:${closed}`);
    assert.equal(lines[2]?.[1], "unhealthy");
    assert.match(lines[2]?.[5] ?? "", /tcp probe: .*refused/i);
  });
  await t.step("-o wide adds the columns; -o json is the /upstreams body", async () => {
    const wide = await runMain(["status", `--health-port=${health}`, "-o", "wide"]);
    assert.equal(wide.code, 0, wide.stderr);
    assert.match(
      wide.stdout,
      /^UPSTREAM .* SINCE {3}TOTAL {3}BYTES-IN {3}BYTES-OUT {3}DRAINING {3}LAST-RTT {3}LAST-RESULT\n/,
    );
    const json = await runMain(["status", `--health-port=${health}`, "--output=json"]);
    assert.equal(json.code, 0, json.stderr);
    assert.equal(JSON.parse(json.stdout).upstreams.length, 2);
  });
  await t.step("--help of the mode, under the program's permission set", async () => {
    const r = await runMain(["status", "--help"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Usage: extractedprism status \[options\]\n/);
    for (const f of STATUS_FLAGS) assert.ok(r.stdout.includes(`--${f.name} `) && r.stdout.includes(f.env), f.name);
  });
  await t.step("not ready: exit 1, the table, and the /readyz text on stderr", async () => {
    await upstream[Symbol.asyncDispose]();
    await waitFor(async () => (await states()).join() === "unhealthy,unhealthy", 30_000, "both unhealthy");
    const r = await runMain(["status", `--health-port=${health}`]);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr, "Not ready: no healthy upstream\n");
    assert.match(r.stdout, /^UPSTREAM /);
    assert.equal(r.stdout.trimEnd().split("\n").length, 3);
  });
  await t.step("unreachable: exit 2 and one line saying where it looked", async () => {
    const r = await withDeadline(runMain(["status", `--health-port=${closed}`, "--timeout=2s"]), "status", 20_000);
    assert.deepEqual(r, {
      code: 2,
      signal: null,
      stdout: "",
      stderr: `Cannot reach the health port at 127.0.0.1:${closed}: connection refused\n`,
    });
  });
});
