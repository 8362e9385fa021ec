/**
 * Bounded reads of what the API server or an exec plugin sends: a response body or a child's output is read up to a
 * size that fits its job, and the request fails with one clear line past it, instead of growing memory for as long
 * as the peer keeps sending.
 *
 * @module
 */

import type { ByteStream, KubeResponse } from "./transport.ts";

/** A LIST page (`limit=500`) of EndpointSlices or Services. */
export const MAX_LIST_BODY_BYTES = 32 << 20;
/** A single object (an EndpointSlice, a Lease, an Event) in a response; etcd stores at most 1.5 MiB per object. */
export const MAX_OBJECT_BODY_BYTES = 4 << 20;
/** A Lease: a few hundred bytes in practice. */
export const MAX_LEASE_BODY_BYTES = 1 << 20;
/** The `Status` of a failed request, or a plugin's stderr: only the message is used. */
export const MAX_ERROR_BODY_BYTES = 64 << 10;
/** An exec plugin's stdout: an `ExecCredential` with a token or a certificate and key. */
export const MAX_EXEC_STDOUT_BYTES = 1 << 20;

/**
 * Reads `stream` to its end as bytes, refusing more than `max` bytes: the stream is cancelled at the first byte past
 * `max`.
 *
 * @param what What is being done, for the message: `list '/api/v1/services'`.
 * @throws {Error} `Cannot <what>: expected at most <max> bytes, found more`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readStreamLimited } from "./read_body.ts";
 * const bytes = await readStreamLimited(new Blob(["hello"]).stream(), 16, "read a greeting");
 * assert(bytes.length === 5);
 * const failed = await readStreamLimited(new Blob(["x".repeat(17)]).stream(), 16, "read a greeting").catch((e) => e);
 * assert(failed.message === "Cannot read a greeting: expected at most 16 bytes, found more");
 * ```
 */
export async function readStreamLimited(
  stream: ByteStream,
  max: number,
  what: string,
): Promise<Uint8Array> {
  const bytes = await readUpTo(stream, max);
  if (bytes === undefined) throw new Error(`Cannot ${what}: expected at most ${max} bytes, found more`);
  return bytes;
}

/** The whole stream, or `undefined` (and the stream cancelled) at the first byte past `max`. */
async function readUpTo(stream: ByteStream, max: number): Promise<Uint8Array | undefined> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      length += value.length;
      if (length > max) {
        await reader.cancel().catch(() => {});
        return undefined;
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  if (chunks.length === 1 && chunks[0] !== undefined) return chunks[0];
  const out = new Uint8Array(length);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * Reads a response body as text, refusing more than `max` bytes (a `content-length` over it fails before reading).
 *
 * @param what What is being done, for the message: `list '/api/v1/services'`.
 * @throws {Error} `Cannot <what>: expected a response body of at most <max> bytes, found more`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readBodyLimited } from "./read_body.ts";
 * assert(await readBodyLimited(new Response("{}"), 1024, "read an object") === "{}");
 * const failed = await readBodyLimited(new Response("x".repeat(2000)), 1024, "read an object").catch((e) => e);
 * assert(failed.message === "Cannot read an object: expected a response body of at most 1024 bytes, found more");
 * ```
 */
export async function readBodyLimited(res: KubeResponse, max: number, what: string): Promise<string> {
  if (res.body === null) return "";
  const tooLarge = () => new Error(`Cannot ${what}: expected a response body of at most ${max} bytes, found more`);
  const declared = Number(res.headers.get("content-length") ?? "");
  if (Number.isFinite(declared) && declared > max) {
    await res.body.cancel().catch(() => {});
    throw tooLarge();
  }
  const bytes = await readUpTo(res.body, max);
  if (bytes === undefined) throw tooLarge();
  return new TextDecoder().decode(bytes);
}
