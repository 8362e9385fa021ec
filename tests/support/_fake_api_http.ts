/**
 * Request parsing helpers of the fake API server: verbs, boolean query parameters, selectors, bodies.
 *
 * @module
 */

import type { IncomingMessage } from "node:http";
import { parse as parseYaml } from "yaml";
import type { Json } from "./_fake_api_fields.ts";
import { type ObjectPredicate, parseFieldSelector, parseLabelSelector } from "./_fake_api_selectors.ts";
import { ApiError, badRequest, failureStatus } from "./_fake_api_status.ts";

const MAX_BODY = 3 * 1024 * 1024;

/** The RBAC verb of a request, or undefined when the method is not allowed on that path. */
export function verbOf(method: string, named: boolean, watch: boolean): string | undefined {
  if (method === "GET") return named ? "get" : watch ? "watch" : "list";
  if (method === "POST") return named ? undefined : "create";
  if (method === "PUT") return named ? "update" : undefined;
  if (method === "PATCH") return named ? "patch" : undefined;
  if (method === "DELETE") return named ? "delete" : undefined;
  return undefined;
}

/** Go's strconv.ParseBool, as the API server parses boolean query parameters. */
export function parseBool(q: URLSearchParams, name: string): boolean {
  const v = q.get(name);
  if (v === null || v === "") return false;
  if (["1", "t", "T", "TRUE", "true", "True"].includes(v)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(v)) return false;
  badRequest(`${name}: Invalid value: "${v}": strconv.ParseBool: parsing "${v}": invalid syntax`);
}

/** The predicate of the `labelSelector` and `fieldSelector` query parameters. */
export function selectorOf(q: URLSearchParams): ObjectPredicate {
  const labels = parseLabelSelector(q.get("labelSelector") ?? "");
  const fields = parseFieldSelector(q.get("fieldSelector") ?? "");
  return (o) => labels(o) && fields(o);
}

/** Reads a request body (at most 3 MiB, else 413) as text. */
export async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of req) {
    const bytes = typeof chunk === "string" ? new TextEncoder().encode(chunk) : chunk as Uint8Array;
    size += bytes.length;
    if (size > MAX_BODY) {
      throw new ApiError(failureStatus(413, "RequestEntityTooLarge", "the request body is too large"));
    }
    chunks.push(bytes);
  }
  const all = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    all.set(c, off);
    off += c.length;
  }
  return new TextDecoder().decode(all);
}

/** Parses a JSON (or `application/yaml`) body; 400 if it does not parse. */
export function parseJson(text: string, req: IncomingMessage): Json {
  const contentType = (req.headers["content-type"] ?? "application/json").split(";")[0]?.trim() ?? "";
  try {
    if (contentType === "application/yaml") return parseYaml(text) as Json;
    return JSON.parse(text) as Json;
  } catch (e) {
    badRequest(`couldn't get version/kind; json parse error: ${e instanceof Error ? e.message : e}`);
  }
}
