/**
 * The systems compared: a direct connection to the backend, extractedprism started exactly like `deno task start`,
 * the Deno floor relay (alone, and with a readyz probe), HAProxy (`mode tcp`) and nginx `stream`. Each start gives a
 * fresh process pinned to the proxy core, ready to relay.
 *
 * @module
 */
import { haproxyConf, NGINX_STREAM_MODULE, nginxStreamConf } from "./_configs.ts";
import { type Child, type Children, delay, freePort, lastLines, which } from "./_process.ts";

/** The columns of the report, in order. */
export type SystemKey = "direct" | "extractedprism" | "floor" | "floor-probe" | "haproxy" | "nginx";

/** A started system: where clients connect, and the process to measure (none for `direct`). */
export interface Running {
  /** Where clients connect. */
  readonly port: number;
  /** The process (none for `direct`). */
  readonly child: Child | undefined;
  /** Stops the process (no-op for `direct`). */
  stop(): Promise<void>;
}

/** What starting a system needs. */
export interface StartContext {
  /** Registry the process is started in. */
  readonly children: Children;
  /** Temp dir for configs. */
  readonly dir: string;
  /** `taskset` CPU list of the proxies. */
  readonly proxyCpus: string | undefined;
  /** Aborts when the bench is interrupted. */
  readonly signal: AbortSignal;
  /** How much of each process's output to keep (bench/gc.ts reads V8's GC trace from it). @default 65536 */
  readonly outputLimit?: number;
}

/** How a backend can be health-checked. */
export interface StartOptions {
  /**
   * The backend cannot answer an HTTPS `GET /readyz` (iperf3, plain HTTP): extractedprism gets `--health-check=tcp`
   * on top of the start task's flags, or it would never call the upstream healthy. Ignored by the other systems.
   */
  readonly tcpHealthCheck?: boolean;
}

/** One column of the report. */
export interface System {
  /** The column. */
  readonly key: SystemKey;
  /** Why the system is skipped, or `undefined` when it can run. */
  readonly absent: string | undefined;
  /** Starts a fresh instance relaying to `backendPort`, resolved once it accepts (and, for extractedprism, is ready). */
  start(backendPort: number, ctx: StartContext, opts?: StartOptions): Promise<Running>;
  /** Spawns a fresh instance without waiting, for the start-up measurement; `undefined` when not applicable. */
  spawn?(backendPort: number, ctx: StartContext, opts?: StartOptions): Running;
  /**
   * Measured only where the backend speaks HTTPS and only for its memory (the small-request and 512-connection
   * workloads): the floor with a probe, whose probe needs the HTTPS backend. @default false
   */
  readonly memoryOnly?: boolean;
}

let configCount = 0;

/** Splits a task string like `deno run -q -P --v8-flags=a,b main.ts` into words (single or double quotes group). */
export function splitCommand(text: string): string[] {
  const words: string[] = [];
  const re = /"([^"]*)"|'([^']*)'|(\S+)/g;
  for (const m of text.matchAll(re)) words.push(m[1] ?? m[2] ?? m[3] ?? "");
  return words;
}

/** A command as argv plus the `NAME=value` assignments written before it. */
export interface Command {
  /** The command as written. */
  readonly text: string;
  /** Program and arguments. */
  readonly argv: string[];
  /** Variables set for the program. */
  readonly env: Record<string, string>;
}

/**
 * Parses a task-style command line: leading `NAME=value` words become environment variables (as `deno task` does),
 * the rest is argv with `deno` resolved to this binary.
 */
export function parseCommand(text: string): Command {
  const words = splitCommand(text);
  const env: Record<string, string> = {};
  while (words.length > 0 && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[0]!)) {
    const w = words.shift()!;
    const eq = w.indexOf("=");
    env[w.slice(0, eq)] = w.slice(eq + 1);
  }
  if (words[0] === "deno") words[0] = Deno.execPath();
  if (words.length === 0) throw new TypeError(`Cannot parse command '${text}': expected a program to run`);
  return { text, argv: words, env };
}

/** Reads the `start` task of the repository's `deno.json` and parses it (see `parseCommand`). */
export async function startTask(denoJsonPath: string): Promise<Command> {
  const json = JSON.parse(await Deno.readTextFile(denoJsonPath)) as { tasks?: Record<string, unknown> };
  const task = json.tasks?.["start"];
  const text = typeof task === "string" ? task : (task as { command?: unknown } | undefined)?.command;
  if (typeof text !== "string" || !/(^|\s)deno\s+run\s/.test(text)) {
    throw new TypeError(`Cannot read the start task of '${denoJsonPath}': expected a string 'deno run ... main.ts'`);
  }
  return parseCommand(text);
}

async function waitUntil(what: string, child: Child, ok: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (child.exited) {
      const { status, stderr, stdout } = await child.output();
      throw new Error(`Cannot start ${child.name}: it exited with code ${status.code}: ${lastLines(stderr || stdout)}`);
    }
    if (await ok()) return;
    await delay(10);
  }
  await child.stop();
  throw new Error(`Cannot start ${child.name}: ${what} not reached within ${timeoutMs} ms`);
}

/**
 * Whether something listens on TCP `port` (IPv4), read from `/proc/net/tcp` rather than by connecting: a test
 * connection would be relayed to the backend, and an iperf3 server restarts its listener after such a stray
 * connection, resetting the real client that connects next.
 */
export function listening(port: number): Promise<boolean> {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  const table = Deno.readTextFileSync("/proc/net/tcp");
  return Promise.resolve(
    table.split("\n").some((line) => {
      const f = line.trim().split(/\s+/);
      return f[1]?.endsWith(hex) === true && f[3] === "0A";
    }),
  );
}

function running(port: number, child: Child): Running {
  return { port, child, stop: () => child.stop() };
}

/** The backend itself, no proxy: the ceiling the others are compared with. */
export const direct: System = {
  key: "direct",
  absent: undefined,
  start: (backendPort) => Promise.resolve({ port: backendPort, child: undefined, stop: () => Promise.resolve() }),
};

/** extractedprism, spawned from the `start` task's command plus the bench's flags, in the repository's root. */
export function extractedprism(command: Command, repoRoot: string): System {
  const spawnEp = (backendPort: number, ctx: StartContext, opts?: StartOptions) => {
    const port = freePort();
    const healthPort = freePort();
    const argv = [
      ...command.argv,
      `--endpoints=127.0.0.1:${backendPort}`,
      `--bind-port=${port}`,
      `--health-port=${healthPort}`,
      "--log-level=warn",
      // The configuration the README recommends: the readyz probe verifies with a CA (Deno's TLS, not node:tls).
      ...(opts?.tcpHealthCheck
        ? ["--health-check=tcp"]
        : [`--health-ca-file=${ctx.dir}/cert.pem`, "--health-tls-server-name=localhost"]),
    ];
    const child = ctx.children.spawn("extractedprism", argv, {
      cpus: ctx.proxyCpus,
      cwd: repoRoot,
      env: command.env,
      ...(ctx.outputLimit === undefined ? {} : { outputLimit: ctx.outputLimit }),
    });
    return { port, healthPort, child };
  };
  return {
    key: "extractedprism",
    absent: undefined,
    async start(backendPort, ctx, opts) {
      const { port, healthPort, child } = spawnEp(backendPort, ctx, opts);
      await waitUntil("GET /readyz = 200", child, async () => {
        try {
          const res = await fetch(`http://127.0.0.1:${healthPort}/readyz`, { signal: ctx.signal });
          await res.body?.cancel();
          return res.status === 200;
        } catch {
          return false;
        }
      }, 15_000);
      return running(port, child);
    },
    spawn(backendPort, ctx, opts) {
      const { port, child } = spawnEp(backendPort, ctx, opts);
      return running(port, child);
    },
  };
}

/** What the floor relay's readyz probe verifies the backend with. */
export interface FloorProbe {
  /** The CA file (the backend's self-signed certificate). */
  readonly caFile: string;
  /** The name the certificate must carry. */
  readonly serverName: string;
}

/**
 * The floor relay's command line: the same `deno` with `command`'s `--v8-flags`, listening on `port`; with `probe`,
 * it also probes the backend's `/readyz` over Deno's TLS once a second.
 */
export function floorArgv(command: Command, port: number, backendPort: number, probe?: FloorProbe): string[] {
  const script = new URL("./_floor_relay.ts", import.meta.url).pathname;
  const v8 = command.argv.filter((a) => a.startsWith("--v8-flags="));
  return [
    Deno.execPath(),
    "run",
    "-q",
    "--no-config",
    "--allow-net=127.0.0.1",
    ...(probe ? [`--allow-read=${probe.caFile}`] : []),
    ...v8,
    script,
    String(port),
    String(backendPort),
    ...(probe ? [probe.caFile, probe.serverName] : []),
  ];
}

/**
 * The Deno floor: `bench/_floor_relay.ts`, the smallest correct Deno relay, run by the same `deno` with the start
 * task's `--v8-flags`. What extractedprism costs over it is its own work; what it costs over HAProxy is Deno's.
 *
 * With `withProbe`, the floor of the job (`floor-probe`): the same relay plus a readyz probe once a second on Deno's
 * TLS, verified with the backend's certificate (`cert.pem` in the bench's directory) as extractedprism's probe is in
 * the bench. Every Deno proxy that follows issue 14's decision on probes pays that; the rest is extractedprism's.
 */
export function floorRelay(command: Command, withProbe = false): System {
  const key: SystemKey = withProbe ? "floor-probe" : "floor";
  const spawnFloor = (backendPort: number, ctx: StartContext) => {
    const port = freePort();
    const probe = withProbe ? { caFile: `${ctx.dir}/cert.pem`, serverName: "localhost" } : undefined;
    const child = ctx.children.spawn(key, floorArgv(command, port, backendPort, probe), {
      cpus: ctx.proxyCpus,
      env: command.env,
      ...(ctx.outputLimit === undefined ? {} : { outputLimit: ctx.outputLimit }),
    });
    return running(port, child);
  };
  return {
    key,
    absent: undefined,
    async start(backendPort, ctx) {
      const r = spawnFloor(backendPort, ctx);
      await waitUntil("a listening port", r.child!, () => listening(r.port), 10_000);
      return r;
    },
    spawn: spawnFloor,
    memoryOnly: withProbe,
  };
}

/** HAProxy in `mode tcp`, foreground, one thread. */
export function haproxy(): System {
  const bin = which("haproxy");
  const spawnHa = (backendPort: number, ctx: StartContext) => {
    const port = freePort();
    const conf = `${ctx.dir}/haproxy_${++configCount}.cfg`;
    Deno.writeTextFileSync(conf, haproxyConf(port, backendPort));
    const child = ctx.children.spawn("haproxy", [bin!, "-db", "-f", conf], { cpus: ctx.proxyCpus });
    return running(port, child);
  };
  return {
    key: "haproxy",
    absent: bin ? undefined : "haproxy not installed (apt-get install -y haproxy)",
    async start(backendPort, ctx) {
      const r = spawnHa(backendPort, ctx);
      await waitUntil("a listening port", r.child!, () => listening(r.port), 10_000);
      return r;
    },
    spawn: spawnHa,
  };
}

/** nginx with the `stream` module: one worker, TCP passthrough. */
export function nginxStream(): System {
  const bin = which("nginx");
  let absent: string | undefined;
  if (!bin) absent = "nginx not installed (apt-get install -y nginx libnginx-mod-stream)";
  else {
    try {
      Deno.statSync(NGINX_STREAM_MODULE);
    } catch {
      absent = `nginx stream module missing at ${NGINX_STREAM_MODULE} (apt-get install -y libnginx-mod-stream)`;
    }
  }
  const spawnNginx = (backendPort: number, ctx: StartContext) => {
    const port = freePort();
    const name = `nginx_${++configCount}`;
    const conf = `${ctx.dir}/${name}.conf`;
    Deno.writeTextFileSync(conf, nginxStreamConf(ctx.dir, name, port, backendPort));
    const child = ctx.children.spawn("nginx", [bin!, "-e", `${ctx.dir}/${name}_early.log`, "-p", ctx.dir, "-c", conf], {
      cpus: ctx.proxyCpus,
    });
    return running(port, child);
  };
  return {
    key: "nginx",
    absent,
    async start(backendPort, ctx) {
      const r = spawnNginx(backendPort, ctx);
      await waitUntil("a listening port", r.child!, () => listening(r.port), 10_000);
      return r;
    },
    spawn: spawnNginx,
  };
}
