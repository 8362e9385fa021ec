/**
 * Starts the endpoint copier from its configuration: the API connection, the probe and metrics servers, the
 * controller's watches, and either leader election (only the leader writes) or writing at once. `stop()` stops the
 * writes, releases the Lease (so the next replica takes over at once), then the watches and the servers.
 *
 * @module
 */
import { ConfigError } from "../errors.ts";
import { getLogger } from "../log.ts";
import { type Clock, type Random, systemClock } from "../clock.ts";
import { LoopStallWatch } from "../loop_stall.ts";
import type { CopierConfig } from "../config/copier_flags.ts";
import { bracketHost, type Endpoint, endpointKey, parseEndpoint } from "../endpoint.ts";
import { SERVICE_ACCOUNT_DIR } from "../kubernetes/in_cluster.ts";
import type { KubeTransport } from "../kubernetes/transport.ts";
import type { WatchTuning } from "./caches.ts";
import { CopierController } from "./controller.ts";
import { metricsHandler, probeHandler, serveHttp } from "./http.ts";
import type { HttpServer } from "../net/http_server.ts";
import { LeaderElector } from "./leader_election.ts";
import { CopierMetrics } from "./metrics.ts";
import { WarningReporter } from "./warnings.ts";
import { readRegularFileSync } from "../read_file.ts";

const log = getLogger(["extractedprism", "copier"]);

/** What the copier needs beyond its configuration. */
export interface CopierDeps {
  /** A transport to use instead of connecting (tests); the caller closes it. */
  readonly transport?: KubeTransport;
  /** The service-account directory (token, CA, namespace). @default {SERVICE_ACCOUNT_DIR} */
  readonly serviceAccountDir?: string;
  /** In-cluster, the API server to dial: `KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT`. */
  readonly apiServer?: Endpoint;
  /** The host name, the first part of the identity. @default {Deno.hostname(), else /etc/hostname} */
  readonly hostname?: string;
  /** The whole leader-election identity (tests). @default {`<hostname>_<random UUID>`} */
  readonly identity?: string;
  /** Monotonic time and sleeps. */
  readonly clock?: Clock;
  /** Randomness for backoff and jitter. */
  readonly random?: Random;
  /** Wall-clock milliseconds for Lease and Event timestamps. @default {Date.now} */
  readonly wallClock?: () => number;
  /** Retry delay caps of a failed target. @default {250 and 30000} */
  readonly retryBaseMs?: number;
  /** The largest retry delay cap of a failed target. @default {30000} */
  readonly retryMaxMs?: number;
  /** Tuning of the watches. */
  readonly watch?: WatchTuning;
}

/** A running copier. */
export interface CopierHandle {
  /** The leader-election identity of this process. */
  readonly identity: string;
  /** Where `/healthz` and `/readyz` are served, unless turned off. */
  readonly probeAddress: Deno.NetAddr | undefined;
  /** Where `/metrics` is served, unless turned off. */
  readonly metricsAddress: Deno.NetAddr | undefined;
  /** The process's counters and gauges. */
  readonly metrics: CopierMetrics;
  /** Whether this process writes now (it leads, or runs without election). */
  leading(): boolean;
  /** `undefined` when ready, else why not. */
  notReadyReason(): string | undefined;
  /** Stops writing, releases the Lease, stops watching and serving. Idempotent. */
  stop(reason?: string): Promise<void>;
  /** Resolves when everything has stopped. */
  readonly done: Promise<void>;
}

/**
 * Runs the endpoint copier until `stop()`.
 *
 * @throws {ConfigError} When there is no way to reach the API (neither `--kubeconfig` nor a service account).
 * @throws {Error} When a listener cannot be bound.
 */
export async function runCopier(config: CopierConfig, deps: CopierDeps = {}): Promise<CopierHandle> {
  const saDir = deps.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  const ownTransport = deps.transport === undefined;
  const transport = deps.transport ?? await connect(config, deps, saDir);
  const identity = deps.identity ?? `${deps.hostname ?? hostname()}_${crypto.randomUUID()}`;
  const metrics = new CopierMetrics();
  const warnings = new WarningReporter({
    transport,
    instance: identity,
    onEvent: (ok) => ok || metrics.error("event"),
    ...(deps.clock !== undefined ? { clock: deps.clock } : {}),
    ...(deps.wallClock !== undefined ? { wallClock: deps.wallClock } : {}),
  });
  const controller = new CopierController({
    transport,
    defaults: { defaultSource: config.defaultSource, managedTarget: config.managedTarget },
    metrics,
    warnings,
    resyncPeriodMs: config.resyncPeriodMs,
    ...pick(deps, ["clock", "random", "retryBaseMs", "retryMaxMs", "watch"]),
  });
  const leaseNamespace = config.leaderElectionNamespace ?? serviceAccountNamespace(saDir) ?? "kube-system";
  const elector = config.leaderElect
    ? new LeaderElector({
      transport,
      namespace: leaseNamespace,
      name: config.leaderElectionId,
      identity,
      leaseDurationMs: config.leaseDurationMs,
      renewDeadlineMs: config.renewDeadlineMs,
      retryPeriodMs: config.retryPeriodMs,
      onLeadingChange: (on) => metrics.leader(on),
      onError: () => metrics.error("lease"),
      ...pick(deps, ["clock", "random", "wallClock"]),
    })
    : undefined;
  let stopping = false;
  const notReadyReason = (): string | undefined => {
    if (stopping) return "stopping";
    if (!controller.synced) return "the caches are not synced yet";
    if (elector !== undefined && !elector.leading && !elector.followingLiveLeader()) {
      return "not leading, and no live leader seen on the Lease";
    }
    return undefined;
  };
  const stalls = new LoopStallWatch({
    clock: deps.clock ?? systemClock,
    what: "endpoint copier",
    waiting: "its watches, writes and Lease renewals",
  });
  const servers: HttpServer[] = [];
  try {
    if (config.healthProbeBindAddress !== undefined) {
      servers.push(serveHttp(config.healthProbeBindAddress, "probes", probeHandler({ notReadyReason })));
    }
    if (config.metricsBindAddress !== undefined) {
      const render = () => {
        controller.updateGauges();
        metrics.stalls(stalls.stalls, stalls.stalledMs);
        return metrics.render();
      };
      servers.push(serveHttp(config.metricsBindAddress, "metrics", metricsHandler(render)));
    }
  } catch (e) {
    await Promise.all(servers.map((s) => s.shutdown()));
    if (ownTransport) transport.close();
    throw e;
  }
  const probeServer = config.healthProbeBindAddress !== undefined ? servers[0] : undefined;
  const metricsServer = config.metricsBindAddress !== undefined ? servers[servers.length - 1] : undefined;

  stalls.start();
  const watching = new AbortController();
  const writing = new AbortController();
  const watched = controller.run(watching.signal);
  let led: Promise<void>;
  if (elector !== undefined) {
    led = elector.run(writing.signal, (signal) => controller.lead(signal));
  } else {
    metrics.leader(true);
    led = controller.lead(writing.signal);
  }
  log.info(
    "Endpoint copier started as {identity}: target {target} (and annotated Services), default source {source}, " +
      "{election}",
    {
      identity,
      target: `${config.managedTarget.namespace}/${config.managedTarget.name}`,
      source: `${config.defaultSource.namespace}/${config.defaultSource.name}`,
      election: elector === undefined
        ? "no leader election"
        : `leader election on the Lease ${leaseNamespace}/${config.leaderElectionId}`,
      probes: probeServer === undefined ? "off" : addressText(probeServer.addr),
      metrics: metricsServer === undefined ? "off" : addressText(metricsServer.addr),
    },
  );
  const finished = Promise.withResolvers<void>();
  let stopped: Promise<void> | undefined;
  const stop = (reason = "stop requested"): Promise<void> => {
    stopped ??= (async () => {
      stopping = true;
      log.info("Stopping the endpoint copier: {reason}", { reason });
      writing.abort();
      await led;
      metrics.leader(false);
      watching.abort();
      await watched;
      await Promise.all(servers.map((s) => s.shutdown()));
      if (ownTransport) transport.close();
      stalls.stop();
      finished.resolve();
    })();
    return stopped;
  };
  return {
    identity,
    probeAddress: probeServer?.addr,
    metricsAddress: metricsServer?.addr,
    metrics,
    leading: () => elector === undefined ? !writing.signal.aborted : elector.leading,
    notReadyReason,
    stop,
    done: finished.promise,
  };
}

/**
 * The in-cluster API server address from `KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT` (443 when unset),
 * or `undefined` outside a pod.
 *
 * @throws {ConfigError} When the variables do not form an address.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { inClusterApiServer } from "./run.ts";
 * assert(inClusterApiServer("fd00::1", "6443")?.host === "fd00::1");
 * assert(inClusterApiServer(undefined, undefined) === undefined);
 * ```
 */
export function inClusterApiServer(host: string | undefined, port: string | undefined): Endpoint | undefined {
  if (host === undefined || host.trim() === "") return undefined;
  const h = host.trim();
  try {
    return parseEndpoint(`${bracketHost(h)}:${port?.trim() || "443"}`);
  } catch (e) {
    throw new ConfigError(
      `Invalid KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT '${h}'/'${port ?? ""}': ${(e as Error).message}`,
    );
  }
}

async function connect(config: CopierConfig, deps: CopierDeps, saDir: string): Promise<KubeTransport> {
  if (config.kubeconfig === undefined && deps.apiServer === undefined) {
    throw new ConfigError(
      "Cannot reach the Kubernetes API: expected --kubeconfig, or KUBERNETES_SERVICE_HOST in a pod",
    );
  }
  const { connectKubernetes } = await import("../kubernetes/connect.ts");
  const api = deps.apiServer;
  const transport = await connectKubernetes({
    ...(config.kubeconfig !== undefined ? { kubeconfigPath: config.kubeconfig } : {}),
    ...(config.kubeContext !== undefined ? { context: config.kubeContext } : {}),
    serviceAccountDir: saDir,
    // A normal Deployment with a working CNI: the kubernetes ClusterIP is the right address to dial in-cluster, and,
    // as client-go's in-cluster config does, the certificate is verified against that IP (API server certificates
    // always carry it), so no DNS lookup is needed.
    endpoints: () => (api === undefined ? [] : [api]),
    ...(api !== undefined ? { tlsServerName: api.host } : {}),
  });
  if (transport === undefined) {
    throw new ConfigError(
      `Cannot reach the Kubernetes API: expected --kubeconfig or a service-account token in ${saDir}`,
    );
  }
  return transport;
}

/** The pod's namespace from the service-account files, if readable. */
function serviceAccountNamespace(dir: string): string | undefined {
  try {
    return readRegularFileSync(`${dir}/namespace`, 4096).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The host name: `Deno.hostname()` (needs `--allow-sys=hostname`), else `/etc/hostname`, else `endpoint-copier`. */
function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    try {
      return readRegularFileSync("/etc/hostname", 4096).trim() || "endpoint-copier";
    } catch {
      return "endpoint-copier";
    }
  }
}

function addressText(a: Deno.NetAddr): string {
  return endpointKey({ host: a.hostname, port: a.port });
}

function pick<T extends object, K extends keyof T>(o: T, keys: readonly K[]): { [P in K]?: Exclude<T[P], undefined> } {
  const out: { [P in K]?: Exclude<T[P], undefined> } = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k] as Exclude<T[K], undefined>;
  return out;
}
