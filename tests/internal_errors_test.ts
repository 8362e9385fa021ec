/**
 * No detached promise, timer callback or handler may end the process: each bug is reported as an internal error and
 * the proxy keeps serving. Deno's test runner fails a test on an unhandled rejection or an uncaught exception, so a
 * test that passes proves the error was caught.
 */
import assert from "node:assert/strict";
import { ProxyApp } from "../lib/app.ts";
import { guard, installLastResort, internalErrorCount, reportInternalError } from "../lib/internal_errors.ts";
import { AcceptLoop, type AcceptSource } from "../lib/net/accept_loop.ts";
import { CoarseTimer } from "../lib/proxy/coarse_timer.ts";
import { relayBuffers, startRelay } from "../lib/proxy/relay.ts";
import { IdleDeadline } from "../lib/kubernetes/_watch_stream.ts";
import { systemClock } from "../lib/clock.ts";
import type { Probe } from "../lib/upstream/probe.ts";
import { LogCapture } from "./support/log_capture.ts";
import { ManualClock } from "./support/manual_clock.ts";
import { REPO_ROOT } from "./support/main_process.ts";
import { EchoServer, testConfig, waitFor } from "./support/net.ts";

/** Waits until `n` more internal errors than `before` were reported. */
function reported(before: number, n = 1): Promise<void> {
  return waitFor(() => internalErrorCount() >= before + n, 5000, `${n} internal error(s)`);
}

Deno.test("an internal error is logged at error level with its stack and counted", async () => {
  await using cap = await LogCapture.start();
  const before = internalErrorCount();
  guard(Promise.reject(new Error("guarded boom")), "a test promise");
  await reported(before);
  reportInternalError("a test callback", "a string, not an Error");
  assert.equal(internalErrorCount(), before + 2);
  const lines = cap.messages("error");
  assert.equal(lines.length, 2, lines.join("\n"));
  assert.match(lines[0] as string, /Internal error in a test promise .*guarded boom/s);
  assert.match(lines[0] as string, /at .*internal_errors_test\.ts:\d+/, "with the stack");
  assert.match(lines[1] as string, /a string, not an Error/);
});

Deno.test("a relay whose onEnd throws does not produce an unhandled rejection", async () => {
  using server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  using front = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({ hostname: "127.0.0.1", port: front.addr.port });
  const [inner, upstream, backend] = await Promise.all([
    front.accept(),
    Deno.connect({ hostname: "127.0.0.1", port: server.addr.port }),
    server.accept(),
  ]);
  const before = internalErrorCount();
  startRelay(inner, upstream, {
    buffers: relayBuffers(),
    onEnd: () => {
      throw new Error("onEnd boom");
    },
  });
  // Both ends close: the pumps end and close the relay, which calls onEnd from inside a pump.
  client.close();
  backend.close();
  await reported(before);
});

Deno.test("a throwing connection handler neither ends the accept loop nor escapes a self-check", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const gate = Promise.withResolvers<void>();
  let calls = 0;
  const source: AcceptSource = {
    addr: listener.addr,
    accept: async () => {
      if (calls++ === 0) await gate.promise; // the first accept waits until a self-check is under way
      return listener.accept();
    },
    close: () => listener.close(),
  };
  let handled = 0;
  const loop = new AcceptLoop(source, (c) => {
    handled++;
    c.close();
    throw new Error("handler boom");
  });
  const running = loop.run();
  const before = internalErrorCount();
  // An ordinary client waits in the backlog; it is accepted while the self-check runs (the handler's path through
  // the self-check's matching), and the self-check's own connection after it.
  const first = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const check = loop.selfCheck(5000);
  gate.resolve();
  assert.equal(await check, true);
  await reported(before);
  // And on the plain path: the loop still accepts after the handler threw.
  const second = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  await waitFor(() => handled === 2, 5000, "the second client to be handed over");
  await reported(before, 2);
  assert.equal(loop.running, true);
  first.close();
  second.close();
  loop.stop();
  await running;
});

Deno.test("a check loop that throws is reported and started again, and the proxy keeps serving", async () => {
  await using echo = new EchoServer();
  // A throwing probe is only a failed probe (the checker catches it); the loop itself throws when a dependency it
  // calls between probes does: here the random source behind the interval's jitter, twice.
  let draws = 0;
  const random = () => {
    if (++draws <= 2) throw new TypeError("random boom");
    return 0.5;
  };
  const probe: Probe = { name: "ok", check: () => Promise.resolve({ ok: true as const, rttMs: 1 }) };
  const before = internalErrorCount();
  await using app = ProxyApp.start(testConfig([echo.endpoint], { healthRise: 1 }), { probe, random });
  await reported(before, 2);
  await waitFor(() => app.ready, 5000, "the upstream to become healthy once the probe stops throwing");
  const metrics = await (await fetch(`http://127.0.0.1:${app.healthAddr.port}/metrics`)).text();
  const m = /^extractedprism_internal_errors_total (\d+)$/m.exec(metrics);
  assert.ok(m, metrics);
  assert.ok(Number(m[1]) >= before + 2, `the metric counts them: ${m[1]}`);
});

Deno.test("a timer callback that throws is reported, and the timer goes on", async () => {
  const clock = new ManualClock();
  const timer = new CoarseTimer(clock, 1);
  const before = internalErrorCount();
  let fired = false;
  timer.at(timer.now(), () => {
    throw new Error("timer boom");
  });
  timer.at(timer.now(), () => (fired = true));
  await clock.advance(1);
  assert.ok(fired);
  assert.equal(internalErrorCount(), before + 1);
  assert.equal(clock.pending, 0, "nothing pending: the tick stopped");
});

Deno.test("a watch idle deadline whose callback throws is reported", async () => {
  const before = internalErrorCount();
  const deadline = new IdleDeadline(systemClock, 0, () => {
    throw new Error("expire boom");
  });
  await reported(before);
  deadline.stop();
});

Deno.test("the last-resort handler logs and counts an unhandled rejection and an uncaught exception; the process serves on", async () => {
  const dir = await Deno.makeTempDir({ prefix: "extractedprism_lastresort_" });
  try {
    const script = `${dir}/last_resort.ts`;
    const lib = new URL("lib/", REPO_ROOT).href;
    await Deno.writeTextFile(
      script,
      `import { configureLogging } from "${lib}log.ts";
import { formatTextLine } from "${lib}log_output.ts";
import { installLastResort, internalErrorCount } from "${lib}internal_errors.ts";
configureLogging([{ category: ["extractedprism"], lowestLevel: "error", sinks: [(r) => console.error(formatTextLine(r))] }]);
installLastResort();
const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
Promise.reject(new Error("unhandled boom"));
setTimeout(() => {
  throw new Error("uncaught boom");
}, 0);
// Serves after both: each connection gets the count, then the server closes.
setTimeout(async () => {
  console.log("port", server.addr.port);
  const conn = await server.accept();
  await conn.write(new TextEncoder().encode(String(internalErrorCount())));
  conn.close();
  server.close();
}, 50);
`,
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-q", "--config", new URL("deno.json", REPO_ROOT).pathname, "--allow-net=127.0.0.1", script],
      cwd: REPO_ROOT,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    try {
      while (!/port \d+\n/.test(out)) {
        const r = await lines.read();
        if (r.done) break;
        out += r.value;
      }
      const port = Number(/port (\d+)/.exec(out)?.[1]);
      assert.ok(port > 0, `the script printed its port: ${out}`);
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      const buf = new Uint8Array(16);
      const n = await conn.read(buf);
      conn.close();
      assert.equal(new TextDecoder().decode(buf.subarray(0, n ?? 0)), "2", "both errors counted, and it still served");
      for (let r = await lines.read(); !r.done; r = await lines.read()) out += r.value;
      const status = await child.status;
      const stderr = await new Response(child.stderr).text();
      assert.equal(status.code, 0, stderr);
      assert.match(out + stderr, /Internal error in "?an unhandled promise rejection.*unhandled boom/s);
      assert.match(out + stderr, /Internal error in "?an uncaught exception.*uncaught boom/s);
      assert.match(out + stderr, /at .*last_resort\.ts:\d+/, "with the stack");
    } finally {
      clearTimeout(timer);
      lines.releaseLock();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("installLastResort returns a function that removes its handlers", () => {
  const target = new EventTarget();
  const uninstall = installLastResort(target);
  const before = internalErrorCount();
  const event = new Event("unhandledrejection", { cancelable: true });
  Object.defineProperty(event, "reason", { value: new Error("fake") });
  target.dispatchEvent(event);
  assert.equal(event.defaultPrevented, true);
  assert.equal(internalErrorCount(), before + 1);
  uninstall();
  target.dispatchEvent(new Event("unhandledrejection", { cancelable: true }));
  assert.equal(internalErrorCount(), before + 1);
});
