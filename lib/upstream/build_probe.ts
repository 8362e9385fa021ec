/**
 * The health probe the configuration asks for: TCP connect, or HTTPS `GET /readyz` with its CA bundle, client
 * certificate and bearer token read from files. The files are read at start, so a wrong path fails at once.
 *
 * @module
 */
import { ConfigError, describeError } from "../errors.ts";
import { getLogger } from "../log.ts";
import { WatchedFile } from "../watched_file.ts";
import type { Probe } from "./probe.ts";
import { ReadyzProbe } from "./probe_readyz.ts";
import { TcpProbe } from "./probe_tcp.ts";

const log = getLogger(["extractedprism", "probe"]);

/** Where a pod's service-account CA is mounted; the readyz probe verifies with it when no CA is given. */
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

/** A CA bundle must hold at least one PEM certificate: an empty or garbled file would fail every probe for good. */
function checkCaBundle(pem: string, path: string): string {
  if (!/-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----/.test(pem)) {
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

/**
 * Builds the health probe from the configuration, reading its files now so that a wrong path fails at start.
 *
 * @param serviceAccountCa The CA used when `--health-ca-file` is not given, if it can be read.
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
export function buildProbe(config: ProbeConfig, serviceAccountCa: string = SERVICE_ACCOUNT_CA): Probe {
  if (config.healthCheck === "tcp") return new TcpProbe();
  let ca: string | undefined;
  if (config.healthCaFile !== undefined) {
    ca = checkCaBundle(readFlagFile(config.healthCaFile, "health-ca-file"), config.healthCaFile);
  } else {
    try {
      ca = Deno.readTextFileSync(serviceAccountCa);
      log.info("Readyz probes verify upstream certificates with the service-account CA as {name}", {
        name: config.healthTlsServerName,
      });
    } catch {
      log.warn(
        "No --health-ca-file: readyz probes do not verify upstream certificates. They only decide routing; " +
          "clients verify their own TLS end to end",
      );
    }
  }
  return new ReadyzProbe({
    ...(ca !== undefined ? { ca } : {}),
    serverName: config.healthTlsServerName,
    ...(config.healthClientCert !== undefined
      ? {
        cert: readFlagFile(config.healthClientCert, "health-client-cert"),
        key: readFlagFile(config.healthClientKey ?? "", "health-client-key"),
      }
      : {}),
    ...(config.healthTokenFile !== undefined ? { token: tokenFile(config.healthTokenFile) } : {}),
  });
}
