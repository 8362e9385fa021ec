/**
 * Build facts of a compiled binary. `deno task compile` writes them to `dist/build_info.json` and embeds that file
 * in the binary with `--include`; the program reads it back for `--version`. Under `deno run` the file is absent or
 * not readable (the program has no read permission for it), and the program shows its version alone.
 *
 * @module
 */

/** What `--version` shows besides the version from deno.json. */
export interface BuildInfo {
  /** The version in deno.json when the binary was built. */
  readonly version: string;
  /** The git revision the binary was built from: a short commit hash, `-dirty` when the tree had changes. */
  readonly revision: string;
}

/** Where the compile step writes the build facts, and where the binary finds them (inside its embedded files). */
export const BUILD_INFO_URL: URL = new URL("../dist/build_info.json", import.meta.url);

/**
 * Reads the build facts, or `undefined` when there are none to read: not a compiled binary, no read permission, or a
 * file that does not hold a version and a revision. The permission is queried first, so a terminal never gets a
 * permission prompt for this optional file.
 *
 * @param url Where to read from (default: {@linkcode BUILD_INFO_URL}).
 *
 * @example
 * ```ts
 * import { readBuildInfo } from "./build_info.ts";
 * const missing = new URL("file:///nonexistent/build_info.json");
 * console.assert(readBuildInfo(missing) === undefined);
 * ```
 */
export function readBuildInfo(url: URL = BUILD_INFO_URL): BuildInfo | undefined {
  let value: unknown;
  try {
    if (Deno.permissions.querySync({ name: "read", path: url }).state !== "granted") return undefined;
    value = JSON.parse(Deno.readTextFileSync(url));
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const { version, revision } = value as Record<string, unknown>;
  if (typeof version !== "string" || typeof revision !== "string" || revision === "") return undefined;
  return { version, revision };
}

/**
 * Writes the build facts atomically (a temporary file renamed into place).
 *
 * @param url Where to write (default: {@linkcode BUILD_INFO_URL}).
 *
 * @example
 * ```ts
 * import { readBuildInfo, writeBuildInfo } from "./build_info.ts";
 * const dir = await Deno.makeTempDir();
 * const url = new URL(`file://${dir}/build_info.json`);
 * await writeBuildInfo({ version: "1.2.3", revision: "0123456789ab" }, url);
 * console.assert(readBuildInfo(url)?.revision === "0123456789ab");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeBuildInfo(info: BuildInfo, url: URL = BUILD_INFO_URL): Promise<void> {
  const dir = new URL(".", url);
  await Deno.mkdir(dir, { recursive: true });
  const tmp = new URL(`.build_info.${crypto.randomUUID()}.tmp`, dir);
  await Deno.writeTextFile(tmp, `${JSON.stringify(info, null, 2)}\n`);
  await Deno.rename(tmp, url);
}
