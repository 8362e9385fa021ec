/**
 * A minimal {@linkcode KubeTransport} for tests: `fetch` to one base URL, verified against a given CA, with a bearer
 * token. No credential refresh and no address rotation (the real transport does both).
 *
 * @module
 */
import type { KubeRequest, KubeTransport } from "../../lib/kubernetes/transport.ts";

/** Options of {@linkcode SimpleTransport}. */
export interface SimpleTransportOptions {
  /** E.g. `https://127.0.0.1:43211`, without a trailing slash. */
  readonly baseUrl: string;
  /** PEM of the CA that signed the server certificate. */
  readonly caCert: string;
  /** Sent as `Authorization: Bearer <token>` when set. */
  readonly token?: string;
}

/** `fetch` over a private HTTP client; `close()` releases its connections. */
export class SimpleTransport implements KubeTransport {
  readonly #client: Deno.HttpClient;
  readonly #baseUrl: string;
  readonly #token: string | undefined;
  /** Every request path, in order. */
  readonly paths: string[] = [];

  constructor(options: SimpleTransportOptions) {
    this.#client = Deno.createHttpClient({ caCerts: [options.caCert] });
    this.#baseUrl = options.baseUrl;
    this.#token = options.token;
  }

  request(req: KubeRequest): Promise<Response> {
    this.paths.push(req.path);
    const headers = new Headers({ accept: "application/json" });
    if (this.#token !== undefined) headers.set("authorization", `Bearer ${this.#token}`);
    if (req.contentType !== undefined) headers.set("content-type", req.contentType);
    const init: RequestInit & { client: Deno.HttpClient } = {
      method: req.method,
      headers,
      signal: req.signal,
      client: this.#client,
    };
    if (req.body !== undefined) init.body = req.body;
    return fetch(`${this.#baseUrl}${req.path}`, init);
  }

  close(): void {
    this.#client.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
