/**
 * Keeps the first TLS handshake of the process off the event loop. The first `Deno.startTls` initialises process-wide
 * crypto state synchronously on the event loop's thread: about 40 ms of CPU (35–110 ms of stall on a loaded 2-core
 * VM), during which no client connection is relayed. WebCrypto's EC key generation runs on Deno's blocking thread pool
 * and initialises the same state there; after it, the first probe costs the loop's thread 10–17 ms of CPU. Measured
 * with `deno run -A bench/probe_tls.ts --only=probe`; `tests/probe_first_test.ts` checks that it stays so on this Deno.
 * (Node's TLS module costs about 80 ms of module loading on first use whatever this does: it is loaded only without a
 * CA or with a client certificate.)
 *
 * @module
 */

let warming: Promise<void> | undefined;

/**
 * Initialises TLS crypto off the event loop, once per process; resolves when done (never rejects: at worst the first
 * handshake pays as it would have anyway).
 *
 * @example
 * ```ts
 * import { warmTls } from "./_tls_warmup.ts";
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
