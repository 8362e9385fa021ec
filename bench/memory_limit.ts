/**
 * Does extractedprism keep serving inside the memory limit it ships with (the chart's 64Mi, systemd's MemoryMax=64M)?
 * Runs the `start` task in a fresh memory cgroup with that limit, loads it with `wrk -c512` over HTTPS keep-alive on
 * loopback, and reports throughput, peak usage (anonymous and file pages), how often the limit forced reclaim, OOM
 * kills, and whether the proxy is still alive and ready afterwards. Page caches are dropped first, so that the
 * program's file pages are charged to its own cgroup as on a fresh node. Root only; cgroup v1 or v2.
 *
 * ```sh
 * deno run -A bench/memory_limit.ts [--limit-mib=64] [--connections=512] [--seconds=10]
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { makeCertificate, startBackend } from "./_backend.ts";
import { WRK_REPORT_LUA } from "./_configs.ts";
import { runWrk } from "./_load.ts";
import { Children, delay, freePort, lastLines, parseCount, which } from "./_process.ts";
import { startTask } from "./_systems.ts";

/** A memory cgroup made for one run. */
interface MemoryCgroup {
  readonly path: string;
  /** Peak usage, bytes. */
  peak(): number;
  /** Anonymous and file-backed bytes now. */
  usage(): { anon: number; file: number };
  /** How many times usage hit the limit (v1 failcnt, v2 events `max`). */
  limitHits(): number;
  /** Processes the kernel killed for memory. */
  oomKills(): number;
}

function fieldOf(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\d+)$`, "m").exec(text);
  return Number(m?.[1] ?? 0);
}

function read(path: string): string {
  return Deno.readTextFileSync(path);
}

/** Creates a cgroup with `limit` bytes of memory (v2 when the unified hierarchy has the memory controller, else v1). */
function createCgroup(limit: number): MemoryCgroup {
  const name = `extractedprism_memlimit_${Deno.pid}`;
  let v2 = false;
  try {
    v2 = read("/sys/fs/cgroup/cgroup.controllers").split(/\s+/).includes("memory");
  } catch { /* not v2 */ }
  if (v2) {
    const path = `/sys/fs/cgroup/${name}`;
    Deno.mkdirSync(path);
    Deno.writeTextFileSync(`${path}/memory.max`, String(limit));
    return {
      path,
      peak: () => Number(read(`${path}/memory.peak`).trim()),
      usage: () => {
        const s = read(`${path}/memory.stat`);
        return { anon: fieldOf(s, "anon"), file: fieldOf(s, "file") };
      },
      limitHits: () => fieldOf(read(`${path}/memory.events`), "max"),
      oomKills: () => fieldOf(read(`${path}/memory.events`), "oom_kill"),
    };
  }
  const path = `/sys/fs/cgroup/memory/${name}`;
  Deno.mkdirSync(path);
  Deno.writeTextFileSync(`${path}/memory.limit_in_bytes`, String(limit));
  return {
    path,
    peak: () => Number(read(`${path}/memory.max_usage_in_bytes`).trim()),
    usage: () => {
      const s = read(`${path}/memory.stat`);
      return { anon: fieldOf(s, "rss"), file: fieldOf(s, "cache") };
    },
    limitHits: () => Number(read(`${path}/memory.failcnt`).trim()),
    oomKills: () => fieldOf(read(`${path}/memory.oom_control`), "oom_kill"),
  };
}

async function ready(healthPort: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${healthPort}/readyz`);
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  }
}

const mib = (bytes: number) => (bytes / 1048576).toFixed(1);

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      "limit-mib": { type: "string", default: "64" },
      connections: { type: "string", default: "512" },
      seconds: { type: "string", default: "10" },
    },
  });
  let limitMib: number, connections: number, seconds: number;
  try {
    limitMib = parseCount("limit-mib", values["limit-mib"], 4096);
    connections = parseCount("connections", values.connections, 4096);
    seconds = parseCount("seconds", values.seconds, 120);
  } catch (e) {
    console.error(`error: ${e instanceof Error ? e.message : e}`);
    return 2;
  }
  if (Deno.uid() !== 0) {
    console.error("Skipping: a memory cgroup needs root");
    return 0;
  }
  if (!which("wrk") || !which("openssl")) {
    console.error("error: wrk and openssl are needed (apt-get install -y wrk openssl)");
    return 1;
  }
  const start = await startTask(new URL("../deno.json", import.meta.url).pathname);
  const children = new Children();
  const dir = await Deno.makeTempDir({ prefix: "ep_memlimit_" });
  let cgroup: MemoryCgroup | undefined;
  try {
    await makeCertificate(children, dir); // the backend's HTTPS certificate
    const backend = await startBackend(children, { dir, cpus: "0" });
    const script = `${dir}/report.lua`;
    await Deno.writeTextFile(script, WRK_REPORT_LUA);
    try {
      cgroup = createCgroup(limitMib * 1048576);
    } catch (e) {
      console.error(`Skipping: cannot create a memory cgroup: ${e instanceof Error ? e.message : e}`);
      return 0;
    }
    let dropped = true;
    try {
      Deno.writeTextFileSync("/proc/sys/vm/drop_caches", "1");
    } catch {
      dropped = false;
    }
    const port = freePort();
    const healthPort = freePort();
    // The shell joins the cgroup, then becomes the proxy: nothing else is charged to it.
    const argv = [
      "sh",
      "-c",
      `echo $$ > ${cgroup.path}/cgroup.procs && exec "$@"`,
      "sh",
      ...start.argv,
      `--endpoints=127.0.0.1:${backend.tlsPort}`,
      `--bind-port=${port}`,
      `--health-port=${healthPort}`,
      "--log-level=warn",
    ];
    const proxy = children.spawn("extractedprism", argv, {
      cpus: "1",
      cwd: new URL("../", import.meta.url).pathname,
      env: start.env,
    });
    const deadline = performance.now() + 15_000;
    while (!(await ready(healthPort))) {
      if (proxy.exited || performance.now() > deadline) {
        await proxy.stop();
        const { stderr } = await proxy.output();
        throw new Error(`extractedprism did not become ready: ${lastLines(stderr)}`);
      }
      await delay(20);
    }
    const idle = cgroup.peak();
    // The cgroup keeps no peak per kind: anonymous memory (what reclaim cannot drop) is sampled every 50 ms.
    let anonPeak = cgroup.usage().anon;
    const sampler = setInterval(() => {
      anonPeak = Math.max(anonPeak, cgroup?.usage().anon ?? 0);
    }, 50);
    const wrk = await runWrk(children, {
      url: `https://127.0.0.1:${port}/`,
      connections,
      seconds,
      script,
      cpus: "0",
    });
    clearInterval(sampler);
    const usage = cgroup.usage();
    anonPeak = Math.max(anonPeak, usage.anon);
    const alive = !proxy.exited;
    const readyAfter = alive && await ready(healthPort);
    await proxy.stop(5000);
    const { status } = await proxy.output();
    console.log(
      `Memory limit ${limitMib} MiB (cgroup ${cgroup.path}), page caches ${dropped ? "dropped" : "NOT dropped"} first`,
    );
    console.log(`extractedprism: \`${start.text}\`; wrk -c${connections} -d${seconds}s over HTTPS keep-alive`);
    console.log(`| measure | value |\n|---|---:|`);
    console.log(`| req/s | ${Math.round(wrk.rps)} |`);
    console.log(`| p99 latency (ms) | ${wrk.p99Ms.toFixed(2)} |`);
    console.log(`| errors (socket + non-2xx) | ${wrk.errors} |`);
    console.log(`| peak usage at idle (MiB) | ${mib(idle)} |`);
    console.log(`| peak usage under load (MiB) | ${mib(cgroup.peak())} |`);
    console.log(`| anonymous peak, sampled every 50 ms (MiB) | ${mib(anonPeak)} |`);
    console.log(`| anonymous at the end of the load (MiB) | ${mib(usage.anon)} |`);
    console.log(`| file pages at the end of the load (MiB) | ${mib(usage.file)} |`);
    console.log(`| times the limit forced reclaim | ${cgroup.limitHits()} |`);
    console.log(`| OOM kills | ${cgroup.oomKills()} |`);
    console.log(`| alive and ready after the load | ${alive && readyAfter ? "yes" : "NO"} |`);
    console.log(`| exit status after SIGTERM | ${status.code} |`);
    const oom = cgroup.oomKills();
    const pass = alive && readyAfter && oom === 0 && wrk.errors === 0 && status.code === 0;
    console.log(
      `\n${pass ? "PASS" : "FAIL"} ${limitMib} MiB limit, ${connections} connections: no OOM kill, no error, ready ` +
        `after: ${oom} OOM kills, ${wrk.errors} errors, ${alive && readyAfter ? "ready" : "NOT ready"}, exit ` +
        `${status.code}; anonymous peak ${mib(anonPeak)} MiB, peak usage ${mib(cgroup.peak())} MiB`,
    );
    return pass ? 0 : 1;
  } finally {
    await children.close();
    if (cgroup) {
      // The directory can go once its processes have exited.
      for (let i = 0; i < 50; i++) {
        try {
          Deno.removeSync(cgroup.path);
          break;
        } catch {
          await delay(100);
        }
      }
    }
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.exit(await main());
