import assert from "node:assert/strict";
import denoJson from "../deno.json" with { type: "json" };
import { PROXY_FLAGS } from "../lib/config/proxy_flags.ts";
import { httpStatus } from "./support/http_status.ts";
import { freePorts, MainProcess, REPO_ROOT, runMain, startCommand } from "./support/main_process.ts";
import { EchoServer, waitFor } from "./support/net.ts";
import { CHILD_MS, withDeadline } from "./support/deadline.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Command line for a proxy on fixed free ports in front of one upstream, with fast probes. */
function proxyArgs(ports: { bind: number; health: number }, upstream: number, ...extra: string[]): string[] {
  return [
    `--bind-port=${ports.bind}`,
    `--health-port=${ports.health}`,
    `--endpoints=127.0.0.1:${upstream}`,
    "--enable-discovery=false",
    "--health-check=tcp", // the upstream is a plain echo server, not an API server
    "--health-interval=100ms",
    "--health-timeout=50ms",
    "--health-rise=1",
    ...extra,
  ];
}

function newPorts(): { bind: number; health: number } {
  const [bind, health] = freePorts(2) as [number, number];
  return { bind, health };
}

/** The status of GET path, or 0 when the health server does not answer. */
async function statusOf(port: number, path: string): Promise<number> {
  try {
    return await httpStatus(port, path);
  } catch {
    return 0;
  }
}

async function waitForReadyz(proc: MainProcess, port: number, want: number): Promise<void> {
  await waitFor(
    async () => {
      if (proc.status !== undefined) throw new Error(`The program exited early:\n${proc.lines.join("\n")}`);
      return (await statusOf(port, "/readyz")) === want;
    },
    15_000,
    `/readyz ${want}`,
  );
}

/** Sends `text` and reads its echo back. */
function echo(conn: Deno.Conn, text: string): Promise<string> {
  return withDeadline(echoNow(conn, text), `the echo of '${text}'`, 5000);
}

async function echoNow(conn: Deno.Conn, text: string): Promise<string> {
  const bytes = encoder.encode(text);
  for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
  const got = new Uint8Array(bytes.length);
  for (let off = 0; off < got.length;) {
    const n = await conn.read(got.subarray(off));
    if (n === null) throw new Error(`EOF after ${off} of ${got.length} echoed bytes`);
    off += n;
  }
  return decoder.decode(got);
}

/**
 * Whether a new connection to the port is refused; a connection that does get through is closed at once. A reset
 * is "not yet": the kernel resets a connection that was still in the accept queue when the listener closed, and the
 * next attempt is refused.
 */
async function refuses(port: number): Promise<boolean> {
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    c.close();
    return false;
  } catch (e) {
    if (e instanceof Deno.errors.ConnectionRefused) return true;
    if (e instanceof Deno.errors.ConnectionReset) return false;
    throw e;
  }
}

/** Reads until the peer ends the connection: "eof" for a clean close, "reset" for an abort. */
function readUntilEnd(conn: Deno.Conn, timeoutMs = 10_000): Promise<"eof" | "reset"> {
  return withDeadline(readToEnd(conn), "the connection to end", timeoutMs);
}

async function readToEnd(conn: Deno.Conn): Promise<"eof" | "reset"> {
  const buf = new Uint8Array(1024);
  try {
    while ((await conn.read(buf)) !== null) { /* nothing is expected, keep reading */ }
    return "eof";
  } catch (e) {
    if (e instanceof Deno.errors.ConnectionReset || e instanceof Deno.errors.BrokenPipe) return "reset";
    throw e;
  }
}

function assertOneErrorLine(stderr: string): void {
  assert.match(stderr, /^error: [^\n]+\n$/, `one line on stderr, got:\n${stderr}`);
  assert.doesNotMatch(stderr, /\n\s+at /, "no stack trace");
}

Deno.test("the start task runs main.ts with the permission set and V8 flags of deno.json", () => {
  const start = startCommand();
  assert.equal(start.command, Deno.execPath());
  assert.equal(start.args[0], "run");
  assert.ok(start.args.includes("-P"), "the permission set comes from deno.json");
  assert.ok(!start.args.some((a) => a === "-A" || a.startsWith("--allow")), "no permission outside deno.json");
  assert.ok(start.args.some((a) => a.startsWith("--v8-flags=")), "the measured V8 flags are used");
  assert.equal(start.args.at(-1), "main.ts");
  for (const name of Object.keys(start.env)) assert.ok(!name.startsWith("EP_"), `the task does not set ${name}`);
});

Deno.test("a configuration error exits 2 with exactly one line on stderr and no stack trace", async (t) => {
  await t.step("a port out of range", async () => {
    const r = await runMain(["--endpoints=127.0.0.1:6443", "--bind-port=65536"]);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, "");
    assert.equal(r.stderr, "error: Invalid --bind-port '65536': expected a port number from 1 to 65535\n");
  });
  await t.step("no endpoints", async () => {
    const r = await runMain([]);
    assert.equal(r.code, 2);
    assertOneErrorLine(r.stderr);
    assert.equal(
      r.stderr,
      "error: Missing --endpoints: required: API servers as comma-separated host:port, IPv6 as [::1]:6443\n",
    );
  });
  await t.step("an unknown flag", async () => {
    const r = await runMain(["--endpoints=127.0.0.1:6443", "--bogus"]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, "error: unknown option '--bogus'\n");
  });
  await t.step("a bad value from the environment names the variable", async () => {
    const r = await runMain([], { env: { EP_ENDPOINTS: "127.0.0.1:6443", EP_BIND_PORT: "abc" } });
    assert.equal(r.code, 2);
    assert.equal(
      r.stderr,
      "error: Invalid --bind-port (from EP_BIND_PORT) 'abc': expected a port number from 1 to 65535\n",
    );
  });
});

Deno.test("a port already in use exits 1 with a fatal log line naming it, and no stack trace", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [health] = freePorts(1) as [number];
  const r = await runMain([
    "--endpoints=127.0.0.1:6443",
    `--bind-port=${taken.addr.port}`,
    `--health-port=${health}`,
    "--enable-discovery=false",
    "--health-check=tcp",
  ]);
  assert.equal(r.code, 1);
  const entries = r.stderr.trimEnd().split("\n").map((line) => JSON.parse(line));
  const fatal = entries.filter((e) => e.level === "FATAL");
  assert.equal(fatal.length, 1, r.stderr);
  assert.equal(entries.at(-1), fatal[0], "the fatal line is the last");
  assert.match(
    fatal[0].message,
    new RegExp(`Cannot listen on 127\\.0\\.0\\.1:${taken.addr.port} \\(--bind-address/--bind-port\\)`),
  );
  assert.doesNotMatch(r.stderr, /\bat .*\.ts:\d+/, "no stack trace");
});

Deno.test("--version prints the version from deno.json", async () => {
  const r = await runMain(["--version"]);
  assert.deepEqual({ code: r.code, stdout: r.stdout, stderr: r.stderr }, {
    code: 0,
    stdout: `${denoJson.version}\n`,
    stderr: "",
  });
});

Deno.test("--help prints every flag and its variable on stdout", async () => {
  // Plain text of a fixed width: --help reads no colour or terminal variable (those are outside the permission set).
  const r = await runMain(["--help"]);
  assert.equal(r.code, 0);
  assert.equal(r.stderr, "");
  for (const f of PROXY_FLAGS) {
    assert.ok(r.stdout.includes(`--${f.name} `), `--${f.name} in --help`);
    assert.ok(r.stdout.includes(f.env), `${f.env} in --help`);
  }
});

Deno.test("endpoint-copier --help works under the program's permission set", async () => {
  const r = await runMain(["endpoint-copier", "--help"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Usage: extractedprism endpoint-copier/);
  assert.match(r.stdout, /--leader-elect/);
});

Deno.test("endpoint-copier without a way to the API exits 2 with one line", async () => {
  const r = await runMain(["endpoint-copier", "--health-probe-bind-address=127.0.0.1:0", "--metrics-bind-address=0"]);
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  assert.match(r.stderr, /^error: /);
});

Deno.test("the environment configures the real process when no flag is given", async () => {
  await using upstream = new EchoServer();
  const ports = newPorts();
  await using proc = MainProcess.start([], {
    env: {
      EP_BIND_PORT: String(ports.bind),
      EP_HEALTH_PORT: String(ports.health),
      EP_ENDPOINTS: `127.0.0.1:${upstream.port}`,
      EP_ENABLE_DISCOVERY: "false",
      EP_HEALTH_CHECK: "tcp",
      EP_HEALTH_INTERVAL: "100ms",
      EP_HEALTH_TIMEOUT: "50ms",
      EP_HEALTH_RISE: "1",
      EP_LOG_FORMAT: "text",
    },
  });
  await waitForReadyz(proc, ports.health, 200);
  {
    using client = await Deno.connect({ hostname: "127.0.0.1", port: ports.bind });
    assert.equal(await echo(client, "through EP_BIND_PORT"), "through EP_BIND_PORT");
  }
  assert.throws(() => JSON.parse(proc.lines[0] ?? "{}"), "EP_LOG_FORMAT=text was applied");
  proc.kill("SIGTERM");
  assert.equal((await proc.exited()).code, 0);
});

Deno.test("deno.json's default permission set is scoped: no subprocess, a list of env names", () => {
  const p = denoJson.permissions.default as Record<string, unknown>;
  assert.equal(p.run, false, "run is denied");
  assert.equal(p.ffi, false, "ffi is denied");
  // `{ allow: [...] }`: the names the program reads, and no others.
  const envSet = p.env as { allow?: unknown; ignore?: unknown };
  assert.ok(typeof envSet === "object" && Array.isArray(envSet.allow), "env is a list of allowed names, not true");
  const env = envSet.allow as unknown[];
  assert.ok(env.length > 0);
  for (const name of env) {
    assert.equal(typeof name, "string");
    assert.match(name as string, /^[A-Z][A-Z0-9_]*\*?$/, `'${String(name)}' is a variable name or a PREFIX_* pattern`);
  }
  const allows = (v: string) =>
    (env as string[]).some((n) => (n.endsWith("*") ? v.startsWith(n.slice(0, -1)) : v === n));
  for (const f of PROXY_FLAGS) assert.ok(allows(f.env), `${f.env} is readable`);
  assert.ok(!allows("PATH") && !allows("HOME") && !allows("AWS_SECRET_ACCESS_KEY"), "unrelated variables are not");
  assert.ok(p.sys === false || Array.isArray(p.sys), "sys is denied or a list of calls");
});

Deno.test("code under the program's permission set cannot read other env vars or spawn a process", async () => {
  const dir = await Deno.makeTempDir({ prefix: "extractedprism_perm_" });
  try {
    const script = `${dir}/probe.ts`;
    await Deno.writeTextFile(
      script,
      `const out: Record<string, string> = {};
const attempt = async (key: string, f: () => unknown) => {
  try { out[key] = String(await f()); } catch (e) { out[key] = (e as Error).constructor.name; }
};
await attempt("ep", () => Deno.env.get("EP_BIND_PORT"));
await attempt("path", () => Deno.env.get("PATH"));
await attempt("all", () => Object.keys(Deno.env.toObject()).filter((k) => !k.startsWith("EP_")).join(",") || "none");
await attempt("run", async () => (await new Deno.Command("true").output()).code);
console.log(JSON.stringify(out));
`,
    );
    // The start task's own words, with the probe in place of main.ts and deno.json named (the probe is outside the repo).
    const start = startCommand();
    const config = new URL("deno.json", REPO_ROOT).pathname;
    const args = ["run", "--config", config, ...start.args.slice(1, -1), script];
    const out = await new Deno.Command(start.command, {
      args,
      cwd: REPO_ROOT,
      clearEnv: true,
      env: { ...start.env, EP_BIND_PORT: "7", PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(CHILD_MS),
    }).output();
    assert.equal(out.code, 0, decoder.decode(out.stderr));
    const result = JSON.parse(decoder.decode(out.stdout));
    // toObject() sees only the allowed names (or throws): never PATH.
    assert.ok(result.all === "NotCapable" || result.all === "none", `toObject leaked ${result.all}`);
    assert.deepEqual({ ...result, all: undefined }, { ep: "7", path: "NotCapable", all: undefined, run: "NotCapable" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SIGTERM: health port, then proxy listener closed, a live connection finishes, then exit 0", async () => {
  await using upstream = new EchoServer();
  const ports = newPorts();
  await using proc = MainProcess.start(proxyArgs(ports, upstream.port, "--drain-timeout=20s"));
  await waitForReadyz(proc, ports.health, 200);
  using client = await Deno.connect({ hostname: "127.0.0.1", port: ports.bind });
  assert.equal(await echo(client, "before"), "before");

  const signalledAt = performance.now();
  proc.kill("SIGTERM");
  // The health port closes first (a next instance sharing it answers the probes), then the proxy port.
  await waitFor(() => refuses(ports.health), 5000, "the health port to refuse new connections");
  await waitFor(() => refuses(ports.bind), 5000, "the listener to refuse new connections");
  assert.equal(await echo(client, "during the drain"), "during the drain");
  assert.equal(proc.status, undefined, "the program waits for the live connection");

  await client.closeWrite();
  assert.equal(await readUntilEnd(client), "eof");
  const r = await proc.exited(10_000);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(performance.now() - signalledAt < 20_000, "it did not wait for the drain timeout");
});

Deno.test("SIGTERM: a connection still open at the drain timeout is closed and the program exits 0", async () => {
  await using upstream = new EchoServer();
  const ports = newPorts();
  await using proc = MainProcess.start(proxyArgs(ports, upstream.port, "--drain-timeout=500ms"));
  await waitForReadyz(proc, ports.health, 200);
  using client = await Deno.connect({ hostname: "127.0.0.1", port: ports.bind });
  assert.equal(await echo(client, "hello"), "hello");

  const signalledAt = performance.now();
  proc.kill("SIGTERM");
  const ending = await readUntilEnd(client);
  const closedAfter = performance.now() - signalledAt;
  assert.ok(["eof", "reset"].includes(ending));
  assert.ok(closedAfter >= 450, `the connection lived through the drain (closed after ${closedAfter.toFixed(0)} ms)`);
  const r = await proc.exited(10_000);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(performance.now() - signalledAt < 10_000);
});

Deno.test("a second SIGTERM during the drain exits at once with a non-zero status", async () => {
  await using upstream = new EchoServer();
  const ports = newPorts();
  await using proc = MainProcess.start(proxyArgs(ports, upstream.port, "--drain-timeout=30s"));
  await waitForReadyz(proc, ports.health, 200);
  using client = await Deno.connect({ hostname: "127.0.0.1", port: ports.bind });
  assert.equal(await echo(client, "hello"), "hello");

  proc.kill("SIGTERM");
  await waitFor(() => refuses(ports.bind), 5000, "the first signal handled: draining");
  const secondAt = performance.now();
  proc.kill("SIGTERM");
  const r = await proc.exited(10_000);
  assert.ok(performance.now() - secondAt < 5000, "exited long before the 30 s drain timeout");
  assert.notEqual(r.code, 0);
  assert.equal(r.code, 143, "128 + SIGTERM");
});

Deno.test("the default log format is one JSON object per stderr line, each with a level and a message", async () => {
  await using upstream = new EchoServer();
  const ports = newPorts();
  await using proc = MainProcess.start(proxyArgs(ports, upstream.port));
  await waitForReadyz(proc, ports.health, 200);
  const atStart = proc.lines.length;
  assert.ok(atStart >= 1, "the program logs at start");
  proc.kill("SIGTERM");
  const r = await proc.exited();
  assert.equal(r.code, 0);
  const lines = r.stderr.split("\n");
  assert.equal(lines.pop(), "", "the last line ends with a newline");
  assert.ok(lines.length > atStart, "the program logs its stop too");
  for (const line of lines) {
    let entry: unknown;
    assert.doesNotThrow(() => (entry = JSON.parse(line)), `valid JSON: ${line}`);
    assert.ok(typeof entry === "object" && entry !== null && !Array.isArray(entry), `an object: ${line}`);
    const e = entry as Record<string, unknown>;
    assert.equal(typeof e.level, "string", `a level: ${line}`);
    assert.equal(typeof e.message, "string", `a message: ${line}`);
    assert.ok((e.message as string).length > 0);
  }
});

Deno.test("--log-format=text writes lines that are not JSON", async () => {
  await using upstream = new EchoServer();
  const ports = newPorts();
  await using proc = MainProcess.start(proxyArgs(ports, upstream.port, "--log-format=text"));
  await waitForReadyz(proc, ports.health, 200);
  proc.kill("SIGTERM");
  const r = await proc.exited();
  assert.equal(r.code, 0);
  const lines = r.stderr.trimEnd().split("\n");
  assert.ok(lines.length >= 2, r.stderr);
  for (const line of lines) {
    assert.ok(line.length > 0);
    assert.throws(() => JSON.parse(line), `not JSON: ${line}`);
  }
});
