/**
 * The seam between the Kubernetes API logic (list, watch, apply) and how requests reach an API server (credentials,
 * TLS, which address is dialled). Watch code and the endpoint copier depend only on this interface.
 *
 * @module
 */

/** One request to the Kubernetes API. */
export interface KubeRequest {
  readonly method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** Absolute API path with query, e.g. `/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?watch=1`. */
  readonly path: string;
  readonly body?: string;
  readonly contentType?: string;
  /** Aborts the request, including a streaming response body. */
  readonly signal: AbortSignal;
}

/** The reader of a {@linkcode ByteStream}: what the API logic uses of a `ReadableStreamDefaultReader`. */
export interface ByteReader {
  /** The next chunk, or `done` at the end; rejects when the stream failed or was aborted. One read at a time. */
  read(): Promise<ReadableStreamReadResult<Uint8Array>>;
  /** Stops the stream: the connection under it is closed. */
  cancel(reason?: unknown): Promise<void>;
  releaseLock(): void;
}

/**
 * A body read one chunk at a time by one reader: the part of `ReadableStream<Uint8Array>` the API logic uses, so that
 * a real stream (a test's `Response`, a child's stdout) fits, while the HTTP transport answers with a lighter object
 * (a `ReadableStream`'s first use costs the process about 1 MiB: `_http1_client.ts`).
 */
export interface ByteStream {
  getReader(): ByteReader;
  cancel(reason?: unknown): Promise<void>;
}

/**
 * A response as the API logic reads it: the part of fetch's `Response` it uses, so that a test's transport can answer
 * with a real `Response` while the HTTP transport answers with a plain object (`_http1_client.ts`: lighter).
 */
export interface KubeResponse {
  readonly status: number;
  /** Whether the status is 2xx. */
  readonly ok: boolean;
  readonly headers: { get(name: string): string | null };
  /** The body, streamed; cancelling it closes the connection. */
  readonly body: ByteStream | null;
}

/**
 * Sends requests to an API server. Implementations refresh credentials (a 401 re-reads the token or exec credential
 * and retries once), verify TLS, and choose the address to dial (rotating on connection failure). A non-2xx status is
 * returned, not thrown; network failures throw.
 */
export interface KubeTransport {
  request(req: KubeRequest): Promise<KubeResponse>;
  /** Releases connections and timers. */
  close(): void;
}
