/**
 * Reads what `deno compile` (Deno 2.9) embedded in a binary: the metadata (permissions, V8 flags, entry point) and
 * the embedded files. This lets a test check the baked permission set without running the binary, so it works
 * where no `denort` can be had: compile with `DENORT_BIN` pointing at the `deno` CLI (a valid ELF file of the right
 * architecture; the result does not run as the program, but its data section is the real one).
 *
 * Layout read here: after the magic `d3n0l4ndd3n0l4nd`, a little-endian u64 length and the metadata JSON; further on,
 * a u64 length and the JSON list of the virtual file system's root entries, then a u64 length and the files' bytes,
 * which each file entry addresses as `"o": [offset, length]`.
 *
 * @module
 */

/** One entry of the embedded virtual file system. */
type VfsEntry =
  | { readonly File: { readonly n: string; readonly o: readonly [number, number] } }
  | { readonly Dir: { readonly n: string; readonly e: readonly VfsEntry[] } }
  | Readonly<Record<string, unknown>>;

/** The parts of a compiled binary a test looks at. */
export interface CompiledBinary {
  /** The metadata JSON: `permissions`, `v8_flags`, `entrypoint_key`, ... */
  readonly metadata: Readonly<Record<string, unknown>>;
  /** The embedded file at a path relative to the embedded root (the repository root), or `undefined`. */
  readFile(path: string): Uint8Array | undefined;
  /** The names in an embedded directory (`""` for the root), or `undefined` when there is no such directory. */
  list(path: string): string[] | undefined;
}

function entryName(e: VfsEntry): string | undefined {
  if ("File" in e) return (e.File as { n: string }).n;
  if ("Dir" in e) return (e.Dir as { n: string }).n;
  return undefined;
}

const MAGIC = new TextEncoder().encode("d3n0l4ndd3n0l4nd");

function lastIndexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = haystack.length - needle.length; i >= 0; i--) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function u64(bytes: Uint8Array, at: number): number {
  return Number(new DataView(bytes.buffer, bytes.byteOffset + at, 8).getBigUint64(0, true));
}

function tryJson(bytes: Uint8Array, at: number): unknown {
  if (at < 8) return undefined;
  const n = u64(bytes, at - 8);
  if (n <= 0 || at + n > bytes.length) return undefined;
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(at, at + n)));
  } catch {
    return undefined;
  }
}

/**
 * Parses a binary built by `deno compile`.
 *
 * @throws {TypeError} When the bytes hold no data section that this reader understands.
 */
export function readCompiledBinary(bytes: Uint8Array): CompiledBinary {
  const start = lastIndexOf(bytes, MAGIC);
  if (start < 0) throw new TypeError("Cannot read the compiled binary: expected a 'd3n0l4nd' data section");
  const metadataAt = start + MAGIC.length + 8;
  const metadata = tryJson(bytes, metadataAt);
  if (typeof metadata !== "object" || metadata === null || !("permissions" in metadata)) {
    throw new TypeError("Cannot read the compiled binary: expected metadata JSON after the magic");
  }
  const metadataEnd = metadataAt + u64(bytes, metadataAt - 8);
  let root: VfsEntry[] | undefined;
  let rootAt = -1;
  const open = new TextEncoder().encode('[{"');
  for (let i = bytes.indexOf(open[0]!, metadataEnd); i >= 0; i = bytes.indexOf(open[0]!, i + 1)) {
    if (bytes[i + 1] !== open[1] || bytes[i + 2] !== open[2]) continue;
    const v = tryJson(bytes, i);
    if (Array.isArray(v) && v.some((e) => typeof e === "object" && e !== null && ("Dir" in e || "File" in e))) {
      root = v as VfsEntry[];
      rootAt = i;
      break;
    }
  }
  if (root === undefined) throw new TypeError("Cannot read the compiled binary: expected a virtual file system");
  const dataAt = rootAt + u64(bytes, rootAt - 8) + 8;
  const entries = root;
  return {
    metadata: metadata as Record<string, unknown>,
    readFile(path: string): Uint8Array | undefined {
      let level: readonly VfsEntry[] = entries;
      const parts = path.split("/");
      for (const [i, name] of parts.entries()) {
        const last = i === parts.length - 1;
        const found = level.find((e) =>
          last ? "File" in e && (e.File as { n: string }).n === name : "Dir" in e && (e.Dir as { n: string }).n === name
        );
        if (found === undefined) return undefined;
        if (last) {
          const [offset, length] = (found as { File: { o: [number, number] } }).File.o;
          return bytes.slice(dataAt + offset, dataAt + offset + length);
        }
        level = (found as { Dir: { e: VfsEntry[] } }).Dir.e;
      }
      return undefined;
    },
    list(path: string): string[] | undefined {
      let level: readonly VfsEntry[] = entries;
      for (const name of path === "" ? [] : path.split("/")) {
        const found = level.find((e) => "Dir" in e && (e.Dir as { n: string }).n === name);
        if (found === undefined) return undefined;
        level = (found as { Dir: { e: VfsEntry[] } }).Dir.e;
      }
      return level.map(entryName).filter((n): n is string => n !== undefined);
    },
  };
}
