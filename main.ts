/**
 * extractedprism: composition only. Command line -> logging -> pool -> providers -> proxy -> status -> signals.
 *
 * @module
 */
import { formatJsonLine, formatTextLine, StreamSink } from "./lib/log_output.ts";
import { ConfigError, errorMessage } from "./lib/errors.ts";
import { configureLogging, getLogger } from "./lib/log.ts";
import denoJson from "./deno.json" with { type: "json" };
import { readBuildInfo } from "./deploy/build_info.ts";
import { ProxyApp } from "./lib/app.ts";
import { sleep } from "./lib/clock.ts";
import type { VersionInfo } from "./lib/config/command_line.ts";
import type { CopierConfig } from "./lib/config/copier_flags.ts";
import { describeConfig } from "./lib/config/describe.ts";
import type { ParseOutcome } from "./lib/config/flags.ts";
import { parseProxyCommandLine, PROXY_FLAGS, type ProxyConfig } from "./lib/config/proxy_flags.ts";
import type { LogFormat, LogLevel } from "./lib/config/values.ts";
import { endpointKey } from "./lib/endpoint.ts";
import { installLastResort } from "./lib/internal_errors.ts";

const log = getLogger(["extractedprism", "main"]);

/** Routes the program's records to stderr; dispose of the sink to write what is queued. */
function startLogging(level: LogLevel, format: LogFormat): StreamSink {
  const sink = new StreamSink(format === "json" ? formatJsonLine : formatTextLine);
  configureLogging([{
    category: ["extractedprism"],
    lowestLevel: level === "warn" ? "warning" : level,
    sinks: [sink.sink],
  }]);
  return sink;
}

/** The start-up line's fields: the version, both listeners, then every configured value (no secrets: paths only). */
function effectiveConfig(c: ProxyConfig): Record<string, unknown> {
  return {
    version: denoJson.version,
    listen: endpointKey({ host: c.bindAddress, port: c.bindPort }),
    health: endpointKey({ host: c.healthBindAddress, port: c.healthPort }),
    ...describeConfig(c),
  };
}

async function runProxy(config: ProxyConfig): Promise<number> {
  const app = ProxyApp.start(config);
  // From here a signal drains: the listener is open while discovery loads.
  const signalled = untilSignal();
  ignoreSignals();
  // Discovery's code loads at the app's quiet moment after listening: the first relayed connection never waits for it.
  const early = await Promise.race([signalled, app.quiet()]);
  if (early !== undefined) {
    await app.shutdown(`${early} received`);
    return 0;
  }
  const { startDiscovery } = await import("./lib/discovery/discovery.ts");
  const discovery = startDiscovery(config, {
    // Healthy upstreams first: discovery dials API servers directly, never through this proxy.
    endpoints: () => app.knownEndpoints(),
    ...(clusterIp() !== undefined ? { clusterIp: clusterIp() as string } : {}),
  });
  app.feed(discovery.providers);
  // Once discovery's code is in: whoever waits for this line (tests) finds every module of the proxy loaded.
  log.info("extractedprism {version} listening on {listen}, health on {health}", effectiveConfig(config));
  const sig = await signalled;
  await app.shutdown(`${sig} received`);
  // Bounded: a stop must not hang on a socket to the API server that will not close.
  const timer = new AbortController();
  // The app waited up to 1 s for the endpoint feed: together at most 2 s past the drain.
  await Promise.race([discovery.close(), sleep(1000, timer.signal).catch(() => {})]);
  timer.abort();
  return 0;
}

async function runEndpointCopier(config: CopierConfig): Promise<number> {
  // Loaded only in this mode: the proxy's start-up time and memory do not pay for the copier.
  const { inClusterApiServer, runCopier } = await import("./lib/copier/run.ts");
  const apiServer = inClusterApiServer(
    Deno.env.get("KUBERNETES_SERVICE_HOST"),
    Deno.env.get("KUBERNETES_SERVICE_PORT"),
  );
  const handle = await runCopier(config, apiServer ? { apiServer } : {});
  const signalled = untilSignal();
  ignoreSignals();
  const sig = await signalled;
  await handle.stop(`${sig} received`);
  return 0;
}

/**
 * Resolves with the first SIGTERM or SIGINT; a second one exits at once (143 / 130). The listeners stay installed
 * for the rest of the process's life, so that the second signal is always caught.
 */
function untilSignal(): Promise<Deno.Signal> {
  const signalled = Promise.withResolvers<Deno.Signal>();
  let signals = 0;
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(sig, () => {
      if (++signals > 1) {
        log.warn("Second {signal}: exiting at once", { signal: sig });
        Deno.exit(sig === "SIGINT" ? 130 : 143);
      }
      signalled.resolve(sig);
    });
  }
  return signalled.promise;
}

/**
 * SIGHUP (a closed terminal, a reload habit) and SIGUSR2 would end the process without a drain: both are logged and
 * ignored. With Deno's `DENO_USR2_MEMORY_TRIM` set, SIGUSR2 still reaches this listener and the process runs on; whether
 * Deno's trim also runs then was not measured.
 */
function ignoreSignals(): void {
  for (const sig of ["SIGHUP", "SIGUSR2"] as const) {
    Deno.addSignalListener(
      sig,
      () => log.warn("{signal} received: ignored (SIGTERM stops the proxy)", { signal: sig }),
    );
  }
}

/** The `kubernetes` Service's ClusterIP, which discovery must never dial (it needs the CNI). */
function clusterIp(): string | undefined {
  return Deno.env.get("KUBERNETES_SERVICE_HOST") || undefined;
}

/** Parses, configures logging, runs, and turns errors into exit statuses: 2 for configuration, 1 for the rest. */
async function execute<C extends { readonly logLevel: LogLevel; readonly logFormat: LogFormat }>(
  outcome: ParseOutcome<C>,
  run: (config: C) => Promise<number>,
): Promise<number> {
  if (outcome.kind === "exit") {
    if (outcome.stdout) await Deno.stdout.write(new TextEncoder().encode(outcome.stdout));
    if (outcome.stderr) await Deno.stderr.write(new TextEncoder().encode(outcome.stderr));
    return outcome.code;
  }
  const sink = startLogging(outcome.config.logLevel, outcome.config.logFormat);
  // Boot-critical: a bug that escapes every guard is logged with its stack and counted; the proxy serves on.
  installLastResort();
  try {
    return await run(outcome.config);
  } catch (e) {
    if (e instanceof ConfigError) {
      await Deno.stderr.write(new TextEncoder().encode(`error: ${e.message}\n`));
      return 2;
    }
    log.fatal("{error}", { error: errorMessage(e) });
    return 1;
  } finally {
    // Bounded: a stderr that is not read (a stuck pipe) must not keep a stopped proxy alive.
    const timer = new AbortController();
    await Promise.race([sink.flush(), sleep(1000, timer.signal).catch(() => {})]);
    timer.abort();
  }
}

function envOf(flags: readonly { readonly env: string }[]): Record<string, string | undefined> {
  return Object.fromEntries(flags.map((f) => [f.env, Deno.env.get(f.env)]));
}

async function main(): Promise<number> {
  const info: VersionInfo = {
    version: denoJson.version,
    // Read when `--version` asks, not at every start: the first relayed connection does not wait for the disk.
    get revision() {
      return readBuildInfo()?.revision;
    },
  };
  if (Deno.args[0] === "endpoint-copier") {
    // Loaded only in this mode, like the copier itself.
    const { COPIER_FLAGS, parseCopierCommandLine } = await import("./lib/config/copier_flags.ts");
    return execute(parseCopierCommandLine(Deno.args.slice(1), envOf(COPIER_FLAGS), info), runEndpointCopier);
  }
  if (Deno.args[0] === "status") {
    // A look at the proxy on this node: no logging, no signals; loaded only in this mode.
    const { STATUS_FLAGS, parseStatusCommandLine } = await import("./lib/config/status_flags.ts");
    const { runStatus } = await import("./lib/status/status_command.ts");
    const outcome = parseStatusCommandLine(Deno.args.slice(1), envOf(STATUS_FLAGS), info);
    const result = outcome.kind === "exit" ? outcome : await runStatus(outcome.config);
    for (const [out, text] of [[Deno.stdout, result.stdout], [Deno.stderr, result.stderr]] as const) {
      if (text) await out.write(new TextEncoder().encode(text));
    }
    return result.code;
  }
  return execute(parseProxyCommandLine(Deno.args, envOf(PROXY_FLAGS), info), runProxy);
}

if (import.meta.main) Deno.exit(await main());
