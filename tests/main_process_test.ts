/**
 * The real program (`deno task start`'s command line) against the hardening items it owns: its own listener as an
 * endpoint, signals that must not end it, the internal-error metric, and a stall (SIGSTOP) counted and logged.
 */
import assert from "node:assert/strict";
import { httpStatus } from "./support/http_status.ts";
import { withDeadline } from "./support/deadline.ts";
import { freePorts, MainProcess, runMain, startCommand } from "./support/main_process.ts";
import { EchoServer, waitFor } from "./support/net.ts";

async function statusOf(port: number, path: string): Promise<number> {
  try {
    return await httpStatus(port, path);
  } catch {
    return 0;
  }
}

Deno.test("the proxy's own listener as an endpoint exits 2 with one line naming it", async () => {
  const [bind, health] = freePorts(2) as [number, number];
  const r = await runMain([
    `--bind-port=${bind}`,
    `--health-port=${health}`,
    `--endpoints=127.0.0.1:${bind},127.0.0.1:1`,
    "--enable-discovery=false",
  ]);
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stdout, "");
  assert.equal(
    r.stderr,
    `error: Invalid --endpoints '127.0.0.1:${bind},127.0.0.1:1': expected API servers, found 127.0.0.1:${bind}, ` +
      `this proxy's own listener (127.0.0.1:${bind}): each connection would dial itself\n`,
  );
});

/** The real program on `bind` and `health` in front of `upstream`, once ready (`/readyz` 200). */
async function startReady(upstream: EchoServer, bind: number, health: number): Promise<MainProcess> {
  const proc = MainProcess.start([
    `--bind-port=${bind}`,
    `--health-port=${health}`,
    `--endpoints=127.0.0.1:${upstream.port}`,
    "--enable-discovery=false",
    "--health-check=tcp",
    "--health-interval=100ms",
    "--health-timeout=50ms",
    "--health-rise=1",
  ]);
  await waitFor(
    async () => {
      if (proc.status !== undefined) throw new Error(`The program exited early:\n${proc.lines.join("\n")}`);
      return (await statusOf(health, "/readyz")) === 200;
    },
    15_000,
    "/readyz 200",
  );
  return proc;
}

Deno.test("SIGHUP and SIGUSR2 are logged and ignored: the program keeps serving, and SIGTERM still stops it", async () => {
  await using upstream = new EchoServer();
  const [bind, health] = freePorts(2) as [number, number];
  await using proc = await startReady(upstream, bind, health);
  for (const sig of ["SIGHUP", "SIGUSR2"] as const) {
    proc.kill(sig);
    const line = await proc.waitForLine((l) => l.includes(sig) && l.includes("ignored"), 10_000);
    assert.equal(JSON.parse(line).level, "WARN");
  }
  assert.equal(proc.status, undefined, "still running");
  assert.equal(await statusOf(health, "/readyz"), 200, "still ready");
  const metrics = await fetch(`http://127.0.0.1:${health}/metrics`).then((r) => r.text());
  assert.match(metrics, /^extractedprism_internal_errors_total 0$/m, "the metric is exposed, and nothing went wrong");
  proc.kill("SIGTERM");
  const r = await proc.exited(10_000);
  assert.equal(r.code, 0, r.stderr);
});

Deno.test("stopped by SIGSTOP for 2 s (as a CPU limit, a thrashing memory limit or a paused machine holds it), the program counts the stall in /metrics and logs it", async () => {
  await using upstream = new EchoServer();
  const [bind, health] = freePorts(2) as [number, number];
  await using proc = await startReady(upstream, bind, health);
  const counters = async () => {
    const text = await fetch(`http://127.0.0.1:${health}/metrics`).then((r) => r.text());
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1]);
    return {
      stalls: value("extractedprism_event_loop_stalls_total"),
      seconds: value("extractedprism_event_loop_stalled_seconds_total"),
    };
  };
  const before = await counters();
  assert.ok(Number.isFinite(before.stalls) && Number.isFinite(before.seconds), "both counters are exposed");
  proc.kill("SIGSTOP");
  await new Promise((r) => setTimeout(r, 2000));
  proc.kill("SIGCONT");
  const line = await proc.waitForLine((l) => l.includes("did not run for"), 10_000);
  const record = JSON.parse(line);
  assert.equal(record.level, "WARN");
  assert.ok(record.ms >= 1000 && record.ms < 10_000, line);
  const after = await counters();
  // At least: on a busy machine another stall of 100 ms may come between.
  assert.ok(after.stalls >= before.stalls + 1, JSON.stringify({ before, after }));
  assert.ok(after.seconds - before.seconds >= 1.5, JSON.stringify({ before, after }));
  proc.kill("SIGTERM");
  assert.equal((await proc.exited(10_000)).code, 0);
});

Deno.test("a proxy whose stderr reader went away keeps serving and stops on SIGTERM", async () => {
  await using upstream = new EchoServer();
  const [bind, health] = freePorts(2) as [number, number];
  const start = startCommand();
  const child = new Deno.Command(start.command, {
    args: [
      ...start.args,
      `--bind-port=${bind}`,
      `--health-port=${health}`,
      `--endpoints=127.0.0.1:${upstream.port}`,
      "--enable-discovery=false",
      "--health-check=tcp",
      "--health-interval=100ms",
      "--health-timeout=50ms",
      "--health-rise=1",
    ],
    cwd: new URL("../", import.meta.url),
    clearEnv: true,
    env: {
      ...start.env,
      ...Object.fromEntries(
        ["HOME", "DENO_DIR"].flatMap((n) => Deno.env.get(n) ? [[n, Deno.env.get(n) as string]] : []),
      ),
    },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let exited = false;
  try {
    // Read the first line, then close the pipe's read end, as `... 2>&1 | head -1` does.
    const reader = child.stderr.getReader();
    await withDeadline(reader.read(), "the first log line");
    await reader.cancel();
    await waitFor(async () => (await statusOf(health, "/readyz")) === 200, 15_000, "/readyz 200");
    // More lines go to the broken pipe: an upstream state change, and SIGHUP's warning.
    child.kill("SIGHUP");
    assert.equal(await statusOf(health, "/healthz"), 200, "still serving with a broken stderr");
    child.kill("SIGTERM");
    const status = await withDeadline(child.status, "the program to exit after SIGTERM", 10_000);
    exited = true;
    assert.equal(status.code, 0);
  } finally {
    if (!exited) {
      child.kill("SIGKILL");
      await child.status;
    }
  }
});

Deno.test("startCommand puts extra deno run flags right after run, and keeps the task's own words in order", () => {
  const plain = startCommand();
  const flagged = startCommand(["--inspect=127.0.0.1:9229"]);
  assert.equal(plain.args[0], "run");
  assert.deepEqual(flagged.args, ["run", "--inspect=127.0.0.1:9229", ...plain.args.slice(1)]);
  assert.equal(flagged.args.at(-1), "main.ts");
  assert.deepEqual(flagged.env, plain.env);
});
