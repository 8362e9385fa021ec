/**
 * TLS client connections over Deno's own TLS (rustls), for the readyz probe and the Kubernetes API client: the socket
 * goes to an address, the certificate is verified against a name (sent as SNI) that the address need not carry, and
 * aborting closes the connection at any step.
 *
 * The first TLS handshake of a process initialises process-wide crypto state synchronously on the event loop's
 * thread: about 40 ms of CPU (35-110 ms of stall on a loaded 2-core VM), during which no client connection is relayed.
 * WebCrypto's EC key generation runs on Deno's blocking thread pool and initialises the same state there; after it,
 * the first handshake costs the loop's thread 10-17 ms of CPU. {@linkcode connectTls} waits for that warm-up first.
 * Measured with `deno run -A bench/probe_tls.ts --only=probe`; `tests/probe_first_test.ts` checks that it stays so.
 *
 * @module
 */
import { abortable } from "../abortable.ts";
import { closeQuietly, connectTcp } from "./connect_tcp.ts";

let warming: Promise<void> | undefined;

/**
 * Initialises TLS crypto off the event loop, once per process; resolves when done (never rejects: at worst the first
 * handshake pays as it would have anyway).
 *
 * @example
 * ```ts
 * import { warmTls } from "./connect_tls.ts";
 * await warmTls();
 * ```
 */
export function warmTls(): Promise<void> {
  warming ??= crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]).then(
    () => {},
    () => {},
  );
  return warming;
}

/** What a TLS client connection verifies and presents. */
export interface TlsClientOptions {
  /** The name the server certificate must carry, sent as SNI; an IP address is checked against IP SANs. */
  readonly serverName: string;
  /** PEM CA certificates to trust instead of none (an empty list means Deno's default roots). */
  readonly caCerts: readonly string[];
  /** A client certificate chain and its key (PEM), both or neither. */
  readonly cert?: string;
  readonly key?: string;
  /** ALPN protocols to offer. @default {["http/1.1"]} */
  readonly alpnProtocols?: readonly string[];
}

/** The TCP connection was made, the TLS handshake on it failed (a certificate refused, the peer not speaking TLS). */
export class TlsHandshakeError extends Error {
  override name = "TlsHandshakeError";
}

/** The option of `Deno.connectTls` that verifies a name apart from the address dialled (what `node:tls` uses). */
const SERVER_NAME = Symbol.for("unstableServerName");

/**
 * Opens a TLS connection to `addr`, verified as `options.serverName`, with the handshake done.
 *
 * Without a client certificate: `Deno.startTls` on a TCP connection that `signal` aborts. With one: `Deno.connectTls`
 * and its server-name option (`startTls` takes no certificate); its TCP connect cannot be cancelled, so on abort it
 * is abandoned and closed when it completes. A pending handshake is cancelled by closing the connection.
 *
 * @throws {TlsHandshakeError} When the handshake fails after the TCP connection was made.
 * @throws The connect error (refused, unreachable) before that, or `signal`'s reason once it aborts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { connectTls } from "./connect_tls.ts";
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const { port } = listener.addr;
 * listener.close(); // nothing listens there now
 * const failed = await connectTls({ hostname: "127.0.0.1", port }, { serverName: "localhost", caCerts: [] },
 *   AbortSignal.timeout(2000)).catch((e) => e);
 * assert(failed instanceof Deno.errors.ConnectionRefused);
 * ```
 */
export async function connectTls(
  addr: { readonly hostname: string; readonly port: number },
  options: TlsClientOptions,
  signal: AbortSignal,
): Promise<Deno.TlsConn> {
  await abortable(warmTls(), signal);
  const tls = options.cert !== undefined && options.key !== undefined
    ? await connectWithCertificate(addr, options, signal)
    : await startTlsOn(addr, options, signal);
  // `startTls` consumed the TCP connection: from here only closing the TLS one cancels a handshake (a frozen server
  // completes TCP handshakes from its backlog but never answers TLS).
  const close = () => closeQuietly(tls);
  signal.addEventListener("abort", close, { once: true });
  try {
    if (signal.aborted) throw signal.reason;
    await tls.handshake();
    if (signal.aborted) throw signal.reason;
    return tls;
  } catch (e) {
    close();
    if (signal.aborted) throw signal.reason;
    throw new TlsHandshakeError(e instanceof Error ? e.message : String(e), { cause: e });
  } finally {
    signal.removeEventListener("abort", close);
  }
}

async function startTlsOn(
  addr: { readonly hostname: string; readonly port: number },
  options: TlsClientOptions,
  signal: AbortSignal,
): Promise<Deno.TlsConn> {
  const tcp = await connectTcp(addr, signal);
  try {
    return await Deno.startTls(tcp, {
      hostname: options.serverName,
      caCerts: [...options.caCerts],
      alpnProtocols: [...(options.alpnProtocols ?? ["http/1.1"])],
    });
  } catch (e) {
    closeQuietly(tcp);
    throw e;
  }
}

async function connectWithCertificate(
  addr: { readonly hostname: string; readonly port: number },
  options: TlsClientOptions,
  signal: AbortSignal,
): Promise<Deno.TlsConn> {
  signal.throwIfAborted();
  const pending = Deno.connectTls(
    {
      hostname: addr.hostname,
      port: addr.port,
      caCerts: [...options.caCerts],
      cert: options.cert,
      key: options.key,
      alpnProtocols: [...(options.alpnProtocols ?? ["http/1.1"])],
      [SERVER_NAME]: options.serverName,
    } as Deno.ConnectTlsOptions & Deno.TlsCertifiedKeyPem,
  );
  return await abortable(pending, signal, (late) => late.close());
}
