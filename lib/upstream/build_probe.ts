/**
 * The health probe the configuration asks for: TCP connect, or HTTPS `GET /readyz` with its CA bundle, client
 * certificate and bearer token read from files. The flags' files are read at start, so a wrong path fails at once; the
 * CA is `--health-ca-file`, else the kubeconfig's cluster CA, else the service-account CA.
 *
 * @module
 */
import { ConfigError, describeError } from "../errors.ts";
import { getLogger } from "../log.ts";
import { WatchedFile } from "../watched_file.ts";
import { sleep } from "../clock.ts";
import type { Endpoint } from "../endpoint.ts";
import { abortable } from "../abortable.ts";
import type { Probe, ProbeResult } from "./probe.ts";
import { ReadyzProbe, type ReadyzProbeOptions } from "./probe_readyz.ts";
import { TcpProbe } from "./probe_tcp.ts";

const log = getLogger(["extractedprism", "probe"]);

/** Where a pod's service-account CA is mounted; the readyz probe verifies with it when no other CA is found. */
export const SERVICE_ACCOUNT_CA = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";

/** The part of the proxy's configuration that chooses and equips the probe (the `--health-*` flags). */
export interface ProbeConfig {
  readonly healthCheck: "readyz" | "tcp";
  readonly healthCaFile: string | undefined;
  readonly healthTlsServerName: string;
  readonly healthClientCert: string | undefined;
  readonly healthClientKey: string | undefined;
  readonly healthTokenFile: string | undefined;
}

function readFlagFile(path: string, flag: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (e) {
    throw new ConfigError(`Cannot read --${flag} '${path}': ${describeError(e)}`);
  }
}

function hasCertificate(pem: string): boolean {
  return /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----/.test(pem);
}

/** A CA bundle must hold at least one PEM certificate: an empty or garbled file would fail every probe for good. */
function checkCaBundle(pem: string, path: string): string {
  if (!hasCertificate(pem)) {
    const found = pem.trim() === "" ? "an empty file" : "no PEM certificate";
    throw new ConfigError(`Cannot use --health-ca-file '${path}': expected PEM certificates, found ${found}`);
  }
  return pem;
}

/**
 * The `--health-token-file` token for each probe: re-read every time (a projected token rotates; the file is tiny
 * beside a TLS handshake), the last token read kept when a read fails. A failure is logged once per change (when it
 * starts, or when its error changes), not on every probe.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tokenFile } from "./build_probe.ts";
 * const token = tokenFile("/nonexistent/extractedprism-token");
 * assert(await token() === undefined);
 * ```
 */
export function tokenFile(path: string): () => Promise<string | undefined> {
  const file = new WatchedFile(path, "--health-token-file", 0, () => performance.now());
  let failing: string | undefined;
  return async () => {
    const { text, error } = await file.poll();
    if (error === undefined && failing !== undefined) {
      log.info("--health-token-file {path} is readable again", { path });
    } else if (error !== undefined && error !== failing) {
      log.warn("Cannot read --health-token-file {path}: {error}{keeping}", {
        path,
        error,
        keeping: text === undefined ? "" : "; keeping the last token read",
      });
    }
    failing = error;
    return text?.trim();
  };
}

/** The kubeconfig's cluster CA as PEM text with where it came from, or why there is none. */
export type KubeconfigCa =
  | { readonly ca: string; readonly origin: string }
  | { readonly ca?: undefined; readonly reason: string };

/** Where the readyz probe finds a CA when `--health-ca-file` is not given, in this order. */
export interface CaSources {
  /**
   * The cluster CA of the kubeconfig discovery uses (`--kubeconfig`): read once, when the check loops first prepare
   * (it loads the YAML parser: not while the proxy starts); the first probe waits for it, outside its timeout.
   */
  readonly kubeconfigCa?: () => Promise<KubeconfigCa>;
  /** How long the probe waits for the kubeconfig's CA before it goes on with the next source. @default {5000} */
  readonly kubeconfigCaWaitMs?: number;
  /** The service-account CA file, read if it exists. @default {SERVICE_ACCOUNT_CA} */
  readonly serviceAccountCa?: string;
}

/**
 * Builds the health probe from the configuration, reading its files now so that a wrong path fails at start.
 *
 * The readyz probe's CA: `--health-ca-file`; else the cluster CA of the kubeconfig (when `sources.kubeconfigCa` is
 * given); else the service-account CA; else none, and the probe does not verify (one warning). With a CA the probe
 * uses Deno's TLS (a client certificate too); `node:tls` is loaded only without a CA.
 *
 * @throws {ConfigError} When a file cannot be read, or the CA file holds no certificate.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildProbe } from "./build_probe.ts";
 * const probe = buildProbe({
 *   healthCheck: "tcp",
 *   healthCaFile: undefined,
 *   healthTlsServerName: "kubernetes.default.svc",
 *   healthClientCert: undefined,
 *   healthClientKey: undefined,
 *   healthTokenFile: undefined,
 * });
 * assert(probe.name === "tcp");
 * ```
 */
export function buildProbe(config: ProbeConfig, sources: CaSources = {}): Probe {
  if (config.healthCheck === "tcp") return new TcpProbe();
  const flagCa = config.healthCaFile === undefined
    ? undefined
    : checkCaBundle(readFlagFile(config.healthCaFile, "health-ca-file"), config.healthCaFile);
  const rest: ReadyzProbeOptions = {
    serverName: config.healthTlsServerName,
    ...(config.healthClientCert !== undefined
      ? {
        cert: readFlagFile(config.healthClientCert, "health-client-cert"),
        key: readFlagFile(config.healthClientKey ?? "", "health-client-key"),
      }
      : {}),
    ...(config.healthTokenFile !== undefined ? { token: tokenFile(config.healthTokenFile) } : {}),
  };
  const serviceAccountCa = sources.serviceAccountCa ?? SERVICE_ACCOUNT_CA;
  if (flagCa !== undefined) return new ReadyzProbe({ ...rest, ca: flagCa });
  const kubeconfigCa = sources.kubeconfigCa;
  if (kubeconfigCa === undefined) return new ReadyzProbe({ ...rest, ...fallbackCa(serviceAccountCa, config) });
  return new LateProbe(async () => {
    const found = await withinWait(kubeconfigCa(), sources.kubeconfigCaWaitMs ?? 5000);
    if (found.ca !== undefined && hasCertificate(found.ca)) {
      log.info("Readyz probes verify upstream certificates with {origin} as {name}", {
        origin: found.origin,
        name: config.healthTlsServerName,
      });
      return new ReadyzProbe({ ...rest, ca: found.ca });
    }
    // Info: the next source decides, and only a probe left without any CA warns.
    log.info("Readyz probes cannot use the kubeconfig's cluster CA: {reason}", {
      reason: found.ca === undefined ? found.reason : `${found.origin} holds no PEM certificate`,
    });
    return new ReadyzProbe({ ...rest, ...fallbackCa(serviceAccountCa, config) });
  });
}

/** The service-account CA if it can be read; else none, said once. */
function fallbackCa(path: string, config: ProbeConfig): { ca?: string } {
  try {
    const ca = Deno.readTextFileSync(path);
    log.info("Readyz probes verify upstream certificates with the service-account CA as {name}", {
      name: config.healthTlsServerName,
    });
    return { ca };
  } catch {
    log.warn(
      "No --health-ca-file: readyz probes do not verify upstream certificates. They only decide routing; " +
        "clients verify their own TLS end to end. Without a CA the probes also run on Node's TLS module, about 7 " +
        "MiB more memory: give the cluster CA with --health-ca-file",
    );
    return {};
  }
}

/** A source that has not answered within `waitMs` (a stuck file system) is passed over. */
async function withinWait(found: Promise<KubeconfigCa>, waitMs: number): Promise<KubeconfigCa> {
  const timer = new AbortController();
  try {
    return await Promise.race([
      found.catch((e): KubeconfigCa => ({ reason: describeError(e) })),
      sleep(waitMs, timer.signal).then(
        (): KubeconfigCa => ({ reason: `not read within ${waitMs} ms` }),
      ),
    ]);
  } finally {
    timer.abort();
  }
}

/**
 * A probe whose CA is found on first use (the kubeconfig's YAML parser loads then, not while the proxy starts): every
 * check waits for it (within its own timeout), and the check loops wait in {@linkcode Probe.prepare}, outside it.
 */
class LateProbe implements Probe {
  readonly name = "readyz";
  readonly #find: () => Promise<ReadyzProbe>;
  #ready: Promise<ReadyzProbe> | undefined;
  #probe: ReadyzProbe | undefined;

  constructor(find: () => Promise<ReadyzProbe>) {
    this.#find = find;
  }

  #found(): Promise<ReadyzProbe> {
    return this.#ready ??= this.#find().then((p) => (this.#probe = p));
  }

  async prepare(): Promise<void> {
    await (await this.#found()).prepare();
  }

  async check(endpoint: Endpoint, signal: AbortSignal): Promise<ProbeResult> {
    try {
      const probe = this.#probe ?? await abortable(this.#found(), signal);
      return await probe.check(endpoint, signal);
    } catch (e) {
      return { ok: false, reason: signal.aborted ? "timeout" : describeError(e) };
    }
  }

  release(endpoint: Endpoint): void {
    this.#probe?.release(endpoint);
  }
}
