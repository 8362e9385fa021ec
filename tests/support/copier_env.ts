/**
 * The setup of the endpoint-copier tests: the fake API server, a {@linkcode SimpleTransport} for the test's own
 * writes, copiers started with {@linkcode runCopier} (each with a transport of its own, fast retries and short
 * timings), fixtures for Services and slices, and waits on the stored copies. Disposing stops every copier first.
 *
 * @module
 */
import type { CopierConfig } from "../../lib/config/copier_flags.ts";
import { type CopierDeps, type CopierHandle, runCopier } from "../../lib/copier/run.ts";
import type { FakeApiServer, KubeObject } from "./fake_apiserver.ts";
import { SimpleTransport } from "./simple_transport.ts";
import type { TestPki } from "./test_pki.ts";
import { startWatchEnv, type WatchEnv } from "./watch_env.ts";

/** The managed-by label value of our copies. */
export const MANAGED_BY = "extractedprism-endpoint-copier";

/** An object the fake API server stores. */
type JsonObject = Parameters<FakeApiServer["upsert"]>[0];
/** One entry of a Service's `spec.ports`. */
type ServicePortJson = JsonObject;

/** A copier's configuration for tests: no listeners, no election, the Go operator's defaults otherwise. */
export function copierConfig(overrides: Partial<CopierConfig> = {}): CopierConfig {
  return {
    defaultSource: { namespace: "default", name: "kubernetes" },
    managedTarget: { namespace: "default", name: "kubernetes-vip" },
    leaderElect: false,
    leaderElectionId: "f668ae63.endpoint-copier-operator",
    leaderElectionNamespace: "kube-system",
    leaseDurationMs: 1000,
    renewDeadlineMs: 600,
    retryPeriodMs: 100,
    healthProbeBindAddress: undefined,
    metricsBindAddress: undefined,
    kubeconfig: undefined,
    kubeContext: undefined,
    resyncPeriodMs: 60_000,
    logLevel: "error",
    logFormat: "json",
    ...overrides,
  };
}

/** A Service for {@linkcode FakeApiServer.upsert}. */
export function service(
  name: string,
  options: {
    namespace?: string;
    annotations?: Record<string, string>;
    ports?: ServicePortJson[];
    selector?: Record<string, string>;
  } = {},
): JsonObject {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: {
      name,
      namespace: options.namespace ?? "default",
      ...(options.annotations ? { annotations: options.annotations } : {}),
    },
    spec: {
      type: "LoadBalancer",
      ports: options.ports ?? [{ name: "https", port: 443, protocol: "TCP", targetPort: 6443 }],
      ...(options.selector ? { selector: options.selector } : {}),
    },
  };
}

/** The annotations that make a Service a target of `source` (default: the flag default). */
export function enabled(source?: { name: string; namespace?: string }): Record<string, string> {
  return {
    "endpoint-copier/enabled": "true",
    ...(source ? { "endpoint-copier/default-service-name": source.name } : {}),
    ...(source?.namespace ? { "endpoint-copier/default-service-namespace": source.namespace } : {}),
  };
}

/** A fake API server and the copiers started against it. */
export class CopierEnv implements AsyncDisposable {
  readonly #env: WatchEnv;
  readonly #copiers: { handle: CopierHandle; transport: SimpleTransport }[] = [];
  #started = 0;

  private constructor(env: WatchEnv) {
    this.#env = env;
  }

  /** Starts the fake API server (bookmarks every 50 ms). */
  static async start(): Promise<CopierEnv> {
    return new CopierEnv(await startWatchEnv());
  }

  /** The PKI whose CA signed the fake API server's certificate. */
  get pki(): TestPki {
    return this.#env.pki;
  }

  get api(): FakeApiServer {
    return this.#env.api;
  }

  /** A transport for the test's own requests (user `system:serviceaccount:kube-system:extractedprism`). */
  get transport(): SimpleTransport {
    return this.#env.transport;
  }

  /**
   * Starts a copier with its own transport and token, so that the request log's `user` tells copiers apart
   * (`copier-1`, `copier-2`, ... in start order); stopped when the env is disposed.
   */
  async copier(config: Partial<CopierConfig> = {}, deps: Partial<CopierDeps> = {}): Promise<CopierHandle> {
    const user = `copier-${++this.#started}`;
    this.api.tokens.add(`${user}-token`);
    this.api.tokenUsers.set(`${user}-token`, user);
    const transport = new SimpleTransport({
      baseUrl: this.api.url,
      caCert: this.#env.pki.ca.cert,
      token: `${user}-token`,
    });
    try {
      const handle = await runCopier(copierConfig(config), {
        transport,
        retryBaseMs: 20,
        retryMaxMs: 200,
        watch: { backoffBaseMs: 10, backoffMaxMs: 100, idleTimeoutMs: 5000 },
        ...deps,
      });
      this.#copiers.push({ handle, transport });
      return handle;
    } catch (e) {
      transport.close();
      throw e;
    }
  }

  /** Stops one copier (also done at disposal). */
  async stop(handle: CopierHandle): Promise<void> {
    const i = this.#copiers.findIndex((c) => c.handle === handle);
    if (i < 0) return;
    const [c] = this.#copiers.splice(i, 1);
    await c?.handle.stop("test");
    c?.transport.close();
  }

  /** Our copies in a namespace, by name. */
  copies(namespace = "default"): Map<string, KubeObject> {
    return new Map(
      this.api.list("endpointslices", namespace)
        .filter((s) => labelsOf(s)["endpointslice.kubernetes.io/managed-by"] === MANAGED_BY)
        .map((s) => [String(s.metadata.name), s]),
    );
  }

  /** Waits until `probe` returns a value (polled every 10 ms); fails after `timeoutMs`. */
  async until<T>(probe: () => T | undefined | false, what: string, timeoutMs = 5000): Promise<T> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const v = probe();
      if (v !== undefined && v !== false) return v;
      if (performance.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const c of [...this.#copiers].reverse()) await this.stop(c.handle);
    await this.#env[Symbol.asyncDispose]();
  }
}

/** The labels of a stored object. */
export function labelsOf(o: KubeObject): Record<string, string> {
  const l = o.metadata.labels;
  return (typeof l === "object" && l !== null && !Array.isArray(l) ? l : {}) as Record<string, string>;
}

/** The addresses of a stored slice, in order. */
export function addressesOf(o: KubeObject | undefined): string[] {
  const eps = o?.endpoints;
  if (!Array.isArray(eps)) return [];
  return eps.flatMap((e) => {
    const a = typeof e === "object" && e !== null && !Array.isArray(e) ? e.addresses : undefined;
    return Array.isArray(a) ? a.map(String) : [];
  });
}
