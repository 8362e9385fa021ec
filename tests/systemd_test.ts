/**
 * The systemd unit, its EnvironmentFile example and its readiness wait: parsed and checked against the flag table,
 * verified with `systemd-analyze` where it runs, and the system call filter checked against the system calls the
 * running program makes (under strace, where it is installed).
 *
 * @module
 */
import assert from "node:assert/strict";
import { PROXY_FLAGS } from "../lib/config/proxy_flags.ts";
import { startCommand } from "./support/main_process.ts";
import denoJson from "../deno.json" with { type: "json" };
import { startTaskRuntimeEnv } from "../deploy/compile.ts";
import { parseEnvFile, parseUnitFile, value, values } from "./support/deploy_unit_file.ts";
import { EchoServer } from "./support/net.ts";
import { freePorts, REPO_ROOT } from "./support/main_process.ts";
import { CHILD_MS, WAIT_MS, withDeadline } from "./support/deadline.ts";

const DIR = new URL("deploy/systemd/", REPO_ROOT);
const unitText = await Deno.readTextFile(new URL("extractedprism.service", DIR));
const unit = parseUnitFile(unitText);
const envText = await Deno.readTextFile(new URL("extractedprism.env", DIR));
const WAIT_READY = new URL("wait-ready", DIR).pathname;
const decoder = new TextDecoder();

async function which(name: string): Promise<boolean> {
  try {
    const r = await new Deno.Command("sh", {
      args: ["-c", `command -v ${name}`],
      stdout: "null",
      stderr: "null",
      signal: AbortSignal.timeout(CHILD_MS),
    })
      .output();
    return r.success;
  } catch {
    return false;
  }
}

const hasSystemdAnalyze = await which("systemd-analyze");
const hasStrace = await which("strace");
if (!hasSystemdAnalyze) console.error("systemd_test: systemd-analyze is not installed; the verify checks are skipped");
if (!hasStrace) console.error("systemd_test: strace is not installed; the system call filter check is skipped");

Deno.test("the unit starts before kubelet, restarts always and keeps its state in its state directory", () => {
  assert.equal(value(unit, "Unit", "Before"), "kubelet.service");
  assert.equal(value(unit, "Unit", "Wants"), "network-online.target");
  assert.equal(value(unit, "Unit", "After"), "network-online.target");
  assert.equal(value(unit, "Service", "ExecStart"), "/usr/local/bin/extractedprism", "all settings come from the env");
  assert.equal(value(unit, "Service", "EnvironmentFile"), "/etc/extractedprism/extractedprism.env");
  assert.equal(value(unit, "Service", "Restart"), "always");
  assert.equal(value(unit, "Service", "RestartSec"), "1");
  assert.equal(value(unit, "Service", "DynamicUser"), "yes");
  assert.equal(value(unit, "Service", "StateDirectory"), "extractedprism");
  assert.equal(value(unit, "Install", "WantedBy"), "multi-user.target");
  const stateFile = parseEnvFile(envText).find((l) => l.name === "EP_STATE_FILE");
  assert.ok(stateFile && !stateFile.commented, "the example sets the state file");
  assert.match(stateFile.value, /^\/var\/lib\/extractedprism\/[^/]+$/, "inside StateDirectory=extractedprism");
});

Deno.test("readiness is a bounded ExecStartPost wait whose failure does not block kubelet", () => {
  assert.equal(value(unit, "Service", "Type"), "exec");
  const post = value(unit, "Service", "ExecStartPost");
  const m = /^-\/usr\/local\/lib\/extractedprism\/wait-ready (\d+)$/.exec(post);
  assert.ok(m, `ExecStartPost ignores a failure ("-") and bounds the wait: ${post}`);
  const timeoutStart = Number(value(unit, "Service", "TimeoutStartSec"));
  assert.ok(Number(m[1]) < timeoutStart, "the wait ends before systemd's start timeout would kill the proxy");
});

Deno.test("the unit is hardened: no privileges, a read-only system, few address families and system calls", () => {
  const expected: Record<string, string> = {
    NoNewPrivileges: "yes",
    CapabilityBoundingSet: "",
    AmbientCapabilities: "",
    ProtectSystem: "strict",
    ProtectHome: "yes",
    PrivateTmp: "yes",
    PrivateDevices: "yes",
    ProtectKernelTunables: "yes",
    ProtectKernelModules: "yes",
    ProtectControlGroups: "yes",
    RestrictAddressFamilies: "AF_INET AF_INET6 AF_UNIX",
    RestrictNamespaces: "yes",
    RestrictSUIDSGID: "yes",
    LockPersonality: "yes",
    SystemCallArchitectures: "native",
    SystemCallFilter: "@system-service @pkey",
    MemoryMax: "64M",
    UMask: "0077",
  };
  for (const [key, want] of Object.entries(expected)) assert.equal(value(unit, "Service", key), want, key);
});

Deno.test("the environment example sets or shows every flag of the program, a shown value being the default", () => {
  const lines = parseEnvFile(envText);
  const byName = new Map<string, typeof lines>();
  for (const l of lines) byName.set(l.name, [...(byName.get(l.name) ?? []), l]);
  for (const flag of PROXY_FLAGS) {
    const found = byName.get(flag.env) ?? [];
    assert.equal(found.length, 1, `${flag.env} (--${flag.name}) appears once`);
    if (found[0]!.commented) {
      assert.equal(found[0]!.value, flag.default ?? "", `#${flag.env} shows the default of --${flag.name}`);
    }
  }
  const known = new Set(PROXY_FLAGS.map((f) => f.env));
  for (const name of byName.keys()) assert.ok(known.has(name), `${name} is the variable of a flag`);
  assert.equal(lines.find((l) => l.name === "EP_ENDPOINTS")?.commented, false, "the required endpoints are set");
  for (const env of values(unit, "Service", "Environment")) {
    const name = env.split("=")[0]!;
    assert.ok(!name.startsWith("EP_") || known.has(name), `Environment=${env} names a flag`);
  }
});

/** The unit with its programs replaced by stand-ins that exist, in a temporary directory, for systemd-analyze. */
async function verifiableUnit(
  text = unitText,
  name = "extractedprism.service",
): Promise<{ dir: string; path: string }> {
  const dir = await Deno.makeTempDir({ prefix: "ep_unit_" });
  const standIn = `${dir}/stand-in`;
  await Deno.writeTextFile(standIn, "#!/bin/sh\n");
  await Deno.chmod(standIn, 0o755);
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(
    path,
    text.replaceAll("/usr/local/bin/extractedprism", standIn).replaceAll(
      "/usr/local/lib/extractedprism/wait-ready",
      standIn,
    ),
  );
  return { dir, path };
}

async function analyze(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await new Deno.Command("systemd-analyze", {
    args,
    cwd,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(CHILD_MS),
  }).output();
  return { code: r.code, stdout: decoder.decode(r.stdout), stderr: decoder.decode(r.stderr) };
}

Deno.test({
  name: "systemd-analyze verifies the unit without a warning and rates its exposure OK",
  ignore: !hasSystemdAnalyze,
  async fn() {
    const { dir, path } = await verifiableUnit();
    try {
      const verify = await analyze(["verify", path], dir);
      assert.equal(verify.code, 0, verify.stderr);
      assert.equal(verify.stderr, "", "no unknown key, bad value or missing program");
      const security = await analyze(["security", "--offline=yes", "--no-pager", path], dir);
      const m = /Overall exposure level for \S+: (\d+\.\d+) /.exec(security.stdout + security.stderr);
      assert.ok(m, security.stdout + security.stderr);
      assert.ok(Number(m[1]) <= 2, `exposure ${m[1]} is at most 2.0 (systemd calls up to 3.9 "OK")`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const templateText = await Deno.readTextFile(new URL("extractedprism@.service", DIR));

Deno.test("both units set the environment the start task gives the process (a binary cannot carry one)", () => {
  const runtimeEnv = Object.entries(startTaskRuntimeEnv(denoJson.tasks.start));
  assert.ok(runtimeEnv.length > 0, "the start task sets MALLOC_ARENA_MAX");
  for (const [file, text] of [["extractedprism.service", unitText], ["extractedprism@.service", templateText]]) {
    const set = values(parseUnitFile(text!), "Service", "Environment");
    for (const [k, v] of runtimeEnv) assert.ok(set.includes(`${k}=${v}`), `${file} sets Environment=${k}=${v}`);
  }
});

Deno.test("the blue/green template is the unit itself, with its own header and description, under one user", () => {
  const body = (text: string) =>
    text.split("\n").filter((l) => !l.startsWith("#") && !l.startsWith("Description=")).join("\n");
  assert.equal(body(templateText), body(unitText), "every setting but the Description is the unit's");
  const template = parseUnitFile(templateText);
  assert.match(value(template, "Unit", "Description") ?? "", /%i/);
  // SO_REUSEPORT shares a port only between sockets of one user: @blue, @green and the plain unit must run as one.
  assert.equal(value(unit, "Service", "User"), "extractedprism");
  assert.equal(value(template, "Service", "User"), "extractedprism");
});

Deno.test({
  name: "systemd-analyze verifies an instance of the template without a warning",
  ignore: !hasSystemdAnalyze,
  async fn() {
    const { dir, path } = await verifiableUnit(templateText, "extractedprism@blue.service");
    try {
      const verify = await analyze(["verify", path], dir);
      assert.equal(verify.code, 0, verify.stderr);
      assert.equal(verify.stderr, "", "no unknown key, bad value or missing program");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** A health port stand-in whose /readyz answers 503 until `readyAfter` requests have been made. */
function fakeHealth(readyAfter: number): { server: Deno.HttpServer<Deno.NetAddr>; requests: () => number } {
  let n = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    if (new URL(req.url).pathname !== "/readyz") return new Response("not found\n", { status: 404 });
    n++;
    return new Response(n > readyAfter ? "ok\n" : "no healthy upstream\n", { status: n > readyAfter ? 200 : 503 });
  });
  return { server, requests: () => n };
}

async function waitReady(timeout: number, env: Record<string, string>) {
  const r = await new Deno.Command("bash", {
    args: [WAIT_READY, String(timeout)],
    clearEnv: true,
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", ...env },
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(CHILD_MS),
  }).output();
  return { code: r.code, stderr: decoder.decode(r.stderr) };
}

Deno.test("wait-ready returns once /readyz answers 200, and gives up after its timeout", async (t) => {
  await t.step("ready after two 503 answers", async () => {
    const { server, requests } = fakeHealth(2);
    try {
      const r = await waitReady(10, { EP_HEALTH_PORT: String(server.addr.port) });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(requests(), 3);
    } finally {
      await server.shutdown();
    }
  });
  await t.step("a wildcard health address is reached through loopback", async () => {
    const { server } = fakeHealth(0);
    try {
      const r = await waitReady(10, { EP_HEALTH_BIND_ADDRESS: "0.0.0.0", EP_HEALTH_PORT: String(server.addr.port) });
      assert.equal(r.code, 0, r.stderr);
    } finally {
      await server.shutdown();
    }
  });
  await t.step("never ready: exit 1 with one line after the timeout", async () => {
    const { server, requests } = fakeHealth(Number.MAX_SAFE_INTEGER);
    try {
      const port = server.addr.port;
      const started = performance.now();
      const r = await waitReady(1, { EP_BIND_ADDRESS: "127.0.0.1", EP_HEALTH_PORT: String(port) });
      const elapsed = performance.now() - started;
      assert.equal(r.code, 1);
      assert.ok(elapsed >= 1000 && elapsed < 4000, `waited ${elapsed.toFixed(0)} ms for a 1 s timeout`);
      assert.equal(
        r.stderr,
        `extractedprism is not ready after 1s (GET http://127.0.0.1:${port}/readyz); going on without it\n`,
      );
      assert.ok(requests() >= 2, "it kept asking");
    } finally {
      await server.shutdown();
    }
  });
  await t.step("nothing listening: exit 1", async () => {
    const [port] = freePorts(1);
    const r = await waitReady(1, { EP_HEALTH_PORT: String(port) });
    assert.equal(r.code, 1);
  });
});

/** System calls named by the filter entries of a unit, expanded through `systemd-analyze syscall-filter`. */
async function expandFilter(entries: readonly string[]): Promise<Set<string>> {
  const out = new Set<string>();
  const pending = [...entries];
  const seen = new Set<string>();
  while (pending.length > 0) {
    const name = pending.pop()!;
    if (seen.has(name)) continue;
    seen.add(name);
    if (!name.startsWith("@")) {
      out.add(name);
      continue;
    }
    const r = await analyze(["syscall-filter", name], "/");
    assert.equal(r.code, 0, r.stderr);
    for (const line of r.stdout.split("\n").map((l) => l.trim())) {
      if (line === "" || line.startsWith("#") || line === name) continue;
      pending.push(line);
    }
  }
  return out;
}

/** The traced program's process id: the first line of strace's output names it. */
async function tracedPid(trace: string): Promise<number | undefined> {
  try {
    const m = /^(\d+)\s+execve\(/.exec(await Deno.readTextFile(trace));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

async function until<T>(what: string, deadlineMs: number, get: () => Promise<T | undefined>): Promise<T> {
  const deadline = performance.now() + deadlineMs;
  for (;;) {
    const v = await withDeadline(get(), what, Math.max(1, deadline - performance.now()));
    if (v !== undefined) return v;
    assert.ok(performance.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test({
  name: "every system call the running program makes passes the unit's SystemCallFilter",
  ignore: !hasStrace || !hasSystemdAnalyze,
  async fn() {
    const filter = values(unit, "Service", "SystemCallFilter");
    const allowed = await expandFilter(filter.filter((f) => !f.startsWith("~")).flatMap((f) => f.split(" ")));
    const denied = await expandFilter(filter.filter((f) => f.startsWith("~")).flatMap((f) => f.slice(1).split(" ")));
    const dir = await Deno.makeTempDir({ prefix: "ep_strace_" });
    await using echo = new EchoServer();
    const [bindPort, healthPort] = freePorts(2);
    const start = startCommand();
    const env: Record<string, string> = { NO_COLOR: "1", ...start.env };
    for (const name of ["HOME", "DENO_DIR", "XDG_CACHE_HOME"]) {
      const v = Deno.env.get(name);
      if (v !== undefined) env[name] = v;
    }
    const strace = new Deno.Command("strace", {
      args: [
        "-f",
        "-qq",
        "-o",
        `${dir}/trace`,
        start.command,
        ...start.args,
        `--bind-port=${bindPort}`,
        `--health-port=${healthPort}`,
        `--endpoints=127.0.0.1:${echo.port}`,
        "--health-check=tcp",
        "--health-interval=100ms",
        "--health-timeout=50ms",
        "--enable-discovery=false",
      ],
      cwd: REPO_ROOT,
      clearEnv: true,
      env,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    let program: number | undefined;
    try {
      program = await until("the program to start", 10_000, () => tracedPid(`${dir}/trace`));
      await until("a relayed connection", 30_000, async () => {
        try {
          using conn = await Deno.connect({ hostname: "127.0.0.1", port: bindPort! });
          await conn.write(new TextEncoder().encode("ping"));
          const buf = new Uint8Array(4);
          return (await conn.read(buf)) === 4 ? true : undefined;
        } catch {
          return undefined;
        }
      });
      const status = async (path: string) => {
        const res = await fetch(`http://127.0.0.1:${healthPort}${path}`, { signal: AbortSignal.timeout(WAIT_MS) });
        await res.body?.cancel();
        return res.status;
      };
      await until("/readyz to answer 200", 30_000, async () => (await status("/readyz")) === 200 ? true : undefined);
      for (const path of ["/healthz", "/upstreams"]) assert.equal(await status(path), 200, path);
      Deno.kill(program, "SIGTERM");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const exit = await Promise.race([
        strace.status,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error("the program did not stop within 15 s of SIGTERM")), 15_000);
        }),
      ]).finally(() => clearTimeout(timer));
      assert.equal(exit.code, 0, "the program stopped cleanly on SIGTERM");
      const used = new Set<string>();
      for (const line of (await Deno.readTextFile(`${dir}/trace`)).split("\n")) {
        const m = /^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)(?:\(| resumed>)/.exec(line);
        if (m) used.add(m[1]!);
      }
      assert.ok(used.has("accept4") && used.has("connect"), "the trace covers the proxy at work");
      const refused = [...used].filter((s) => !allowed.has(s) || denied.has(s)).sort();
      assert.deepEqual(refused, [], "system calls the filter would refuse");
    } finally {
      if (program !== undefined) {
        try {
          Deno.kill(program, "SIGKILL");
        } catch { /* exited */ }
      }
      try {
        strace.kill("SIGKILL");
      } catch { /* exited */ }
      await withDeadline(strace.status, "strace to exit after SIGKILL");
      await Deno.remove(dir, { recursive: true });
    }
  },
});
