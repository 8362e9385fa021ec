/**
 * Bounded reads of the files the program is pointed at (state file, kubeconfig, token, CA, client certificate and key,
 * for discovery, the probes and the copier alike): only a regular file is read, so a FIFO can never block the read and a device (`/dev/zero`) can never grow memory
 * without end, and a file larger than its bound is refused.
 *
 * @module
 */

function describeKind(info: Deno.FileInfo): string {
  if (info.isDirectory) return "a directory";
  if (info.isSymlink) return "a symbolic link";
  if (info.isFifo) return "a FIFO";
  if (info.isCharDevice) return "a character device";
  if (info.isBlockDevice) return "a block device";
  if (info.isSocket) return "a socket";
  return "not a regular file";
}

function checkRegular(info: Deno.FileInfo, max: number): void {
  if (!info.isFile) throw new Error(`expected a regular file, found ${describeKind(info)}`);
  if (info.size > max) throw new Error(`it is ${info.size} bytes, more than ${max}`);
}

/**
 * Reads a regular file of at most `max` bytes as UTF-8. Anything else is refused before it is opened (a FIFO would
 * block the open, a device would never end); the opened handle is checked again, and the read stops at `max + 1`
 * bytes whatever `stat` said (a file that grows meanwhile).
 *
 * @throws {Error} The reason without the path (`expected a regular file, found a FIFO`, `it is 2097152 bytes, more
 *   than 1048576`), or the file system's error (`Deno.errors.NotFound`, ...): callers name the file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readRegularFile } from "./read_file.ts";
 * const failed = await readRegularFile("/dev/zero", 1024).catch((e) => e.message);
 * assert(failed === "expected a regular file, found a character device");
 * ```
 */
export async function readRegularFile(path: string, max: number): Promise<string> {
  checkRegular(await Deno.stat(path), max);
  using file = await Deno.open(path, { read: true });
  checkRegular(await file.stat(), max);
  const buf = new Uint8Array(max + 1);
  let length = 0;
  while (length < buf.length) {
    const n = await file.read(buf.subarray(length));
    if (n === null) break;
    length += n;
  }
  if (length > max) throw new Error(`it holds more than ${max} bytes`);
  return new TextDecoder().decode(buf.subarray(0, length));
}

/**
 * {@linkcode readRegularFile}, synchronously.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readRegularFileSync } from "./read_file.ts";
 * const failed = (() => { try { readRegularFileSync("/dev/zero", 1024); } catch (e) { return (e as Error).message; } })();
 * assert(failed === "expected a regular file, found a character device");
 * ```
 */
export function readRegularFileSync(path: string, max: number): string {
  checkRegular(Deno.statSync(path), max);
  using file = Deno.openSync(path, { read: true });
  checkRegular(file.statSync(), max);
  const buf = new Uint8Array(max + 1);
  let length = 0;
  while (length < buf.length) {
    const n = file.readSync(buf.subarray(length));
    if (n === null) break;
    length += n;
  }
  if (length > max) throw new Error(`it holds more than ${max} bytes`);
  return new TextDecoder().decode(buf.subarray(0, length));
}
