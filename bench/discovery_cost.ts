/**
 * What discovery costs: idle RSS of the proxy with discovery on (kubeconfig to a local fake API server) and off, and
 * the time from process start to the first discovered upstream. Loopback only; bounded; run with
 * `deno run -A bench/discovery_cost.ts [--runs=N]`.
 *
 * @module
 */
import { EchoServer } from "../tests/support/net.ts";
import { endpointSlice, startFakeApiServer } from "../tests/support/fake_apiserver.ts";
import { createTestPki } from "../tests/support/test_pki.ts";
import { startCommand } from "../tests/support/main_process.ts";

const runs = Number(Deno.args.find((a) => a.startsWith("--runs="))?.slice(7) ?? "5");

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = l.addr.port;
  l.close();
  return p;
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
  return Number(m?.[1] ?? 0);
}

async function upstreams(port: number): Promise<{ address: string; state: string }[]> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/upstreams`);
    return (await r.json()).upstreams;
  } catch {
    return [];
  }
}

async function once(discovery: boolean, kubeconfig: string, staticPort: number, discoveredKey: string) {
  const start = startCommand();
  const bind = freePort();
  const health = freePort();
  const args = [
    ...start.args.slice(0, -1),
    "main.ts",
    `--endpoints=127.0.0.1:${staticPort}`,
    `--bind-port=${bind}`,
    `--health-port=${health}`,
    "--health-check=tcp",
    "--log-level=error",
    `--enable-discovery=${discovery}`,
    `--kubeconfig=${kubeconfig}`,
  ];
  const t0 = performance.now();
  const child = new Deno.Command(start.command, {
    args,
    cwd: new URL("../", import.meta.url),
    env: start.env,
    stdout: "null",
    stderr: "null",
  }).spawn();
  let firstDiscoveredMs: number | undefined;
  const deadline = t0 + 10_000;
  while (performance.now() < deadline) {
    const ups = await upstreams(health);
    if (!discovery && ups.length > 0) break;
    if (discovery && ups.some((u) => u.address === discoveredKey)) {
      firstDiscoveredMs = performance.now() - t0;
      break;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  await new Promise((r) => setTimeout(r, 3000)); // idle
  const rss = rssKiB(child.pid);
  child.kill("SIGTERM");
  await child.status;
  return { rssMiB: rss / 1024, firstDiscoveredMs };
}

await using pki = await createTestPki();
await using api = await startFakeApiServer({ pki, tokens: ["bench"] });
await using staticUp = new EchoServer();
await using discovered = new EchoServer(0, "127.0.0.2");
api.upsert(endpointSlice("kubernetes", ["127.0.0.2"], discovered.port));
const dir = await Deno.makeTempDir();
const kubeconfig = `${dir}/kubeconfig`;
await Deno.writeTextFile(
  kubeconfig,
  JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "c", cluster: { server: api.url, "certificate-authority-data": btoa(pki.ca.cert) } }],
    users: [{ name: "u", user: { token: "bench" } }],
    contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
    "current-context": "x",
  }),
);
const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
try {
  const on: { rssMiB: number; firstDiscoveredMs: number | undefined }[] = [];
  const off: { rssMiB: number }[] = [];
  for (let i = 0; i < runs; i++) {
    off.push(await once(false, kubeconfig, staticUp.port, `127.0.0.2:${discovered.port}`));
    on.push(await once(true, kubeconfig, staticUp.port, `127.0.0.2:${discovered.port}`));
  }
  console.log(`| | discovery off | discovery on (kubeconfig) |`);
  console.log(`|---|---|---|`);
  console.log(
    `| idle RSS (median of ${runs}) | ${median(off.map((r) => r.rssMiB)).toFixed(1)} MiB | ${
      median(on.map((r) => r.rssMiB)).toFixed(1)
    } MiB |`,
  );
  console.log(
    `| process start → first discovered upstream in the pool (median) | — | ${
      median(on.map((r) => r.firstDiscoveredMs ?? NaN)).toFixed(0)
    } ms |`,
  );
} finally {
  await Deno.remove(dir, { recursive: true });
}
