/**
 * Credentials that change while the program runs: token files (projected service-account tokens rotate), client
 * certificate files (kubelet rotates `kubelet-client-current.pem`), CA files and exec plugins. Files are re-read at
 * most every `recheckMs`, and at once after a 401; a change of the TLS material bumps `tls.version` so that the
 * transport makes a new `Deno.HttpClient`.
 *
 * @module
 */
import { ExecPlugin } from "./exec_credential.ts";
import type { KubeConnection, PemSource } from "./connection.ts";
import { pemCertificates, pemPrivateKey } from "./_pem.ts";
import { WatchedFile } from "../watched_file.ts";

/** The TLS side of the credentials: what a `Deno.HttpClient` is built from. */
export interface TlsMaterial {
  /** The CA bundle; `undefined` means the system roots. */
  readonly caPem?: string;
  /** The client certificate chain, with `keyPem`. */
  readonly certPem?: string;
  /** The client certificate's private key, with `certPem`. */
  readonly keyPem?: string;
  /** Changes whenever any of the above changes. */
  readonly version: number;
}

/** Everything one request needs to authenticate. */
export interface Credentials {
  /** Sent as `Authorization: Bearer ...`. */
  readonly token?: string;
  /** What the HTTP client is built from. */
  readonly tls: TlsMaterial;
}

/** A source of up-to-date credentials. */
export interface CredentialSource {
  /** The credentials to use now (re-reading files or running the exec plugin when needed). */
  current(signal: AbortSignal): Promise<Credentials>;
  /** The API server answered 401: the next `current` re-reads every file and re-runs the exec plugin. */
  invalidate(): void;
  /** Stops a running exec plugin. */
  close(): void;
}

/** Options of {@linkcode createCredentialSource}. */
export interface CredentialSourceOptions {
  /** Least time between two reads of the same file, unless a 401 forces one. @default {5000} */
  readonly recheckMs?: number;
  /** Monotonic clock in milliseconds, for `recheckMs`. @default {performance.now} */
  readonly monotonicNow?: () => number;
  /** Wall clock in milliseconds since the epoch, for exec credential expiry. @default {Date.now} */
  readonly wallNow?: () => number;
  /** Exec plugin time limit. @default {60000} */
  readonly execTimeoutMs?: number;
}

type Pem = WatchedFile | { readonly data: string; readonly what: string };

/**
 * Builds the credential source of a connection.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createCredentialSource } from "./credentials.ts";
 * const creds = createCredentialSource({ origin: "example", auth: { token: "abc" } });
 * const c = await creds.current(new AbortController().signal);
 * assert(c.token === "abc" && c.tls.caPem === undefined);
 * creds.close();
 * ```
 */
export function createCredentialSource(
  conn: Pick<KubeConnection, "origin" | "ca" | "auth">,
  options: CredentialSourceOptions = {},
): CredentialSource {
  return new FileCredentials(conn, options);
}

class FileCredentials implements CredentialSource {
  readonly #origin: string;
  readonly #ca: Pem | undefined;
  readonly #token: string | undefined;
  readonly #tokenFile: WatchedFile | undefined;
  readonly #cert: Pem | undefined;
  readonly #key: Pem | undefined;
  readonly #exec: ExecPlugin | undefined;
  #stale = false;
  #tlsKey: string | undefined;
  #version = 0;

  constructor(conn: Pick<KubeConnection, "origin" | "ca" | "auth">, options: CredentialSourceOptions) {
    const recheck = options.recheckMs ?? 5000;
    const now = options.monotonicNow ?? (() => performance.now());
    const files = new Map<string, WatchedFile>();
    const source = (s: PemSource | undefined, what: string): Pem | undefined => {
      if (s === undefined) return undefined;
      if ("data" in s) return { data: s.data, what: `${what}-data of ${conn.origin}` };
      // One file may hold both the certificate and the key: read it once.
      let f = files.get(s.file);
      if (f === undefined) files.set(s.file, f = new WatchedFile(s.file, what, recheck, now));
      return f;
    };
    const { auth } = conn;
    this.#origin = conn.origin;
    this.#ca = source(conn.ca, "certificate-authority");
    this.#token = auth.token;
    this.#tokenFile = auth.tokenFile !== undefined
      ? new WatchedFile(auth.tokenFile, "token file", recheck, now)
      : undefined;
    this.#cert = source(auth.clientCert?.cert, "client-certificate");
    this.#key = source(auth.clientCert?.key, "client-key");
    this.#exec = auth.exec !== undefined
      ? new ExecPlugin(auth.exec, {
        ...(options.wallNow ? { now: options.wallNow } : {}),
        ...(options.execTimeoutMs ? { timeoutMs: options.execTimeoutMs } : {}),
      })
      : undefined;
  }

  async current(signal: AbortSignal): Promise<Credentials> {
    const force = this.#stale;
    this.#stale = false;
    const read = async (
      p: Pem | undefined,
    ) => (p === undefined ? undefined : "data" in p ? p.data : await p.read(force));
    const [ca, certText, keyText, tokenText, exec] = await Promise.all([
      read(this.#ca),
      read(this.#cert),
      read(this.#key),
      this.#tokenFile?.read(force),
      this.#exec?.get(signal),
    ]);
    let token = this.#token;
    if (tokenText !== undefined) {
      token = tokenText.trim();
      if (token === "") throw new Error(`Cannot use token file '${this.#tokenFile?.path}': it is empty`);
    }
    let certPem = certText === undefined ? undefined : pemPart(certText, this.#cert, "certificate", pemCertificates);
    let keyPem = keyText === undefined ? undefined : pemPart(keyText, this.#key, "private key", pemPrivateKey);
    if (exec?.token !== undefined) token = exec.token;
    if (exec?.certPem !== undefined && exec.keyPem !== undefined) {
      certPem = exec.certPem;
      keyPem = exec.keyPem;
    }
    const caPem = ca === undefined ? undefined : pemPart(ca, this.#ca, "certificate", pemCertificates);
    const key = `${caPem ?? ""}\0${certPem ?? ""}\0${keyPem ?? ""}`;
    if (key !== this.#tlsKey) {
      this.#tlsKey = key;
      this.#version++;
    }
    return {
      ...(token !== undefined ? { token } : {}),
      tls: {
        ...(caPem !== undefined ? { caPem } : {}),
        ...(certPem !== undefined && keyPem !== undefined ? { certPem, keyPem } : {}),
        version: this.#version,
      },
    };
  }

  invalidate(): void {
    this.#stale = true;
    this.#exec?.invalidate();
  }

  close(): void {
    this.#exec?.close();
  }

  /** For messages only. */
  toString(): string {
    return `credentials of ${this.#origin}`;
  }
}

function pemPart(text: string, from: Pem | undefined, what: string, pick: (pem: string) => string | undefined): string {
  const part = pick(text);
  if (part !== undefined) return part;
  const name = from === undefined ? "?" : "data" in from ? from.what : `${from.what} '${from.path}'`;
  throw new Error(`Cannot use ${name}: expected a PEM ${what}`);
}
