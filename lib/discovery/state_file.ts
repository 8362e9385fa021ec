/**
 * The state file: the last discovered endpoint set, kept on disk so that a node that reboots after the control plane
 * moved still finds it. Written atomically; a bad file is ignored with one warning, never an outage.
 *
 * @module
 */
import { isoTimestamp } from "../time_format.ts";
import { describeError } from "../errors.ts";
import { getLogger } from "../log.ts";
import { type Endpoint, endpointKey, parseEndpoint } from "../endpoint.ts";
import { type EndpointProvider, untilAborted } from "./provider.ts";
import { readRegularFile } from "../read_file.ts";

const log = getLogger(["extractedprism", "discovery", "state"]);

/** The version written in, and required of, the file's `version` field. */
export const STATE_FILE_VERSION = 1;

/** A file larger than this is not a state file this program wrote. */
const MAX_BYTES = 1 << 20;

/** The file's JSON: `{"version":1,"endpoints":["10.0.0.1:6443","[fd00::1]:6443"],"updated":"2026-01-01T00:00:00.000Z"}`. */
export interface StateFileContent {
  /** The format version, {@linkcode STATE_FILE_VERSION}. */
  readonly version: number;
  /** Endpoints as `host:port`, IPv6 in brackets; never empty. */
  readonly endpoints: readonly string[];
  /** When the file was written (ISO 8601), for operators. */
  readonly updated: string;
}

/**
 * Reads and validates a state file.
 *
 * @returns The saved endpoints (never empty).
 * @throws {Error} With a one-line message when the file is missing, empty, `null`, truncated, too large, of another
 *   version, or holds an endpoint that does not parse.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readStateFile, writeStateFile } from "./state_file.ts";
 * const dir = await Deno.makeTempDir();
 * await writeStateFile(`${dir}/endpoints.json`, [{ host: "10.0.0.1", port: 6443 }]);
 * const eps = await readStateFile(`${dir}/endpoints.json`);
 * assert(eps[0]?.host === "10.0.0.1");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readStateFile(path: string): Promise<Endpoint[]> {
  let text: string;
  try {
    text = await readRegularFile(path, MAX_BYTES);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "it does not exist" : describeError(e);
    throw new Error(`Cannot read state file '${path}': ${why}`);
  }
  const bad = (why: string) => new Error(`Cannot read state file '${path}': expected ${why}`);
  if (text.trim() === "") throw bad(`a JSON object, found an empty file`);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw bad(`a JSON object, found text that does not parse (truncated or garbage)`);
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw bad(`a JSON object, found ${data === null ? "null" : Array.isArray(data) ? "an array" : typeof data}`);
  }
  const { version, endpoints } = data as Record<string, unknown>;
  if (version !== STATE_FILE_VERSION) throw bad(`version ${STATE_FILE_VERSION}, found ${JSON.stringify(version)}`);
  if (!Array.isArray(endpoints) || endpoints.length === 0) throw bad(`a non-empty 'endpoints' list`);
  return endpoints.map((text: unknown) => {
    if (typeof text !== "string") throw bad(`endpoints as 'host:port' strings, found ${JSON.stringify(text)}`);
    try {
      return parseEndpoint(text);
    } catch (e) {
      throw bad(`endpoints as 'host:port' strings: ${describeError(e)}`);
    }
  });
}

/**
 * Writes `endpoints` to `path` atomically: a temporary file in the same directory, fsync, rename, then fsync of the
 * directory. A reader sees the old file or the new one, never a mix.
 *
 * @throws {RangeError} When `endpoints` is empty: an empty set is never saved.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { writeStateFile } from "./state_file.ts";
 * const dir = await Deno.makeTempDir();
 * await writeStateFile(`${dir}/endpoints.json`, [{ host: "10.0.0.1", port: 6443 }]);
 * assert(JSON.parse(await Deno.readTextFile(`${dir}/endpoints.json`)).version === 1);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeStateFile(
  path: string,
  endpoints: readonly Endpoint[],
  options: { readonly now?: () => Date } = {},
): Promise<void> {
  if (endpoints.length === 0) {
    throw new RangeError(`Cannot write state file '${path}': expected at least one endpoint`);
  }
  const content: StateFileContent = {
    version: STATE_FILE_VERSION,
    endpoints: endpoints.map(endpointKey),
    updated: isoTimestamp((options.now?.() ?? new Date()).getTime()),
  };
  const data = new TextEncoder().encode(JSON.stringify(content) + "\n");
  const slash = path.lastIndexOf("/");
  const dir = slash < 0 ? "." : slash === 0 ? "/" : path.slice(0, slash);
  const tmp = `${dir}/.${path.slice(slash + 1)}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    {
      using file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o644 });
      let written = 0;
      while (written < data.length) written += await file.write(data.subarray(written));
      await file.sync();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`Cannot write state file '${path}': ${describeError(e)}`);
  }
  // Make the rename itself durable; a directory that cannot be opened (some file systems) only loses that guarantee.
  try {
    using d = await Deno.open(dir, { read: true });
    await d.sync();
  } catch {
    // Best effort.
  }
}

/**
 * A provider that yields the saved set once if the file is valid, else logs one warning and yields nothing; either
 * way it then waits until `signal` aborts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stateFileProvider, writeStateFile } from "./state_file.ts";
 * const dir = await Deno.makeTempDir();
 * await writeStateFile(`${dir}/s.json`, [{ host: "10.0.0.1", port: 6443 }]);
 * const ctrl = new AbortController();
 * for await (const set of stateFileProvider(`${dir}/s.json`).run(ctrl.signal)) {
 *   assert(set.length === 1);
 *   ctrl.abort();
 * }
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function stateFileProvider(path: string): EndpointProvider {
  return {
    name: "state-file",
    async *run(signal: AbortSignal) {
      if (signal.aborted) return;
      let endpoints: Endpoint[] | undefined;
      try {
        endpoints = await readStateFile(path);
      } catch (e) {
        log.warn("Ignoring the state file: {error}", { path, error: describeError(e) });
      }
      if (endpoints !== undefined && !signal.aborted) {
        log.info("Loaded {count} endpoints from state file {path}", { count: endpoints.length, path });
        yield endpoints;
      }
      await untilAborted(signal);
    },
  };
}

/**
 * Wraps `provider` so that every set it yields is also saved to the state file at `path` (when non-empty and different
 * from the last one saved). Saving runs beside the stream, latest set wins: a slow disk never delays endpoints. A
 * failed write is logged and never stops discovery; when the stream stops, the pending save is finished first.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { persistToStateFile, readStateFile } from "./state_file.ts";
 * import { staticProvider } from "./static.ts";
 * const dir = await Deno.makeTempDir();
 * const ctrl = new AbortController();
 * const p = persistToStateFile(staticProvider([{ host: "10.0.0.9", port: 6443 }]), `${dir}/s.json`);
 * for await (const _ of p.run(ctrl.signal)) ctrl.abort();
 * assert((await readStateFile(`${dir}/s.json`))[0]?.host === "10.0.0.9");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function persistToStateFile(
  provider: EndpointProvider,
  path: string,
  options: { readonly now?: () => Date } = {},
): EndpointProvider {
  return {
    name: provider.name,
    async *run(signal: AbortSignal) {
      let saved = "";
      let pending: readonly Endpoint[] | undefined;
      let writing: Promise<void> | undefined;
      const kick = (): void => {
        if (writing !== undefined) return;
        writing = writeLoop().finally(() => {
          writing = undefined;
          if (pending !== undefined) kick();
        });
      };
      const writeLoop = async () => {
        while (pending !== undefined) {
          const set = pending;
          pending = undefined;
          const key = set.map(endpointKey).sort().join(",");
          if (key === saved) continue;
          try {
            await writeStateFile(path, set, options);
            saved = key;
            log.debug("Saved {count} endpoints to state file {path}", { count: set.length, path });
          } catch (e) {
            log.warn("Cannot save the endpoints: {error}", { path, error: describeError(e) });
          }
        }
      };
      try {
        for await (const set of provider.run(signal)) {
          if (set.length > 0) {
            pending = set;
            kick();
          }
          yield set;
          // A source parked at a yield may not notice an abort that came meanwhile: do not ask it for more.
          if (signal.aborted) break;
        }
      } finally {
        while (writing !== undefined) await writing;
      }
    },
  };
}
