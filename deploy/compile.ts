/**
 * `deno task compile`: builds `dist/extractedprism` with `deno compile`.
 *
 * The runtime flags are not written here: they are the words of the `start` task in deno.json (`-P` for the
 * permission set, `--v8-flags=...`), the same words the tests use to spawn the program. So the binary gets exactly
 * the permission set and V8 flags that the tests exercise with `deno run`.
 *
 * Usage: `deno task compile [--target <triple>]... [--output <path>] [--variant <name>]`. `--target` may be given
 * for each of {@linkcode TARGETS}; without it the binary is built for this host. `--variant exec` builds with the
 * flags of the `start:exec` task instead (the permission set that lets kubeconfig exec credential plugins run). The git revision is embedded for `--version`
 * (`EXTRACTEDPRISM_REVISION` overrides it where there is no git checkout, such as a container build).
 *
 * `deno compile` downloads Deno's runtime (`denort`) for the target. Where the download host cannot be reached, set
 * `DENORT_BIN` to an unzipped `denort` of the same Deno version and the target's architecture.
 *
 * @module
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import denoJson from "../deno.json" with { type: "json" };
import { BUILD_INFO_URL, writeBuildInfo } from "./build_info.ts";

/** The Linux targets the compile task builds besides the host. */
export const TARGETS = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"] as const;

/** One of {@linkcode TARGETS}. */
export type Target = typeof TARGETS[number];

/** The repository root: where deno.json and main.ts live. */
export const REPO_ROOT: URL = new URL("../", import.meta.url);

/** The program's entry point, relative to {@linkcode REPO_ROOT}. */
export const ENTRY_POINT = "main.ts";

/**
 * The runtime flags of a start task: the words between `deno run` and `main.ts`. `NAME=value` words before `deno`
 * set the environment: those named `DENO_*` concern only the `deno` CLI; the others the process itself (see
 * {@linkcode startTaskRuntimeEnv}).
 *
 * @example
 * ```ts
 * import { startTaskFlags } from "./compile.ts";
 * const flags = startTaskFlags("DENO_NO_UPDATE_CHECK=1 deno run -q -P --v8-flags=--max-semi-space-size=2 main.ts");
 * console.assert(flags.join(" ") === "-q -P --v8-flags=--max-semi-space-size=2");
 * ```
 */
export function startTaskFlags(task: string): string[] {
  return readStartTask(task).flags;
}

const ASSIGNMENT = /^([A-Za-z_][A-Za-z0-9_]*)=(\S*)$/;

/**
 * A start task read once: its leading `NAME=value` words, and its flags between `deno run` and `main.ts`. The one
 * reading behind {@linkcode startTaskFlags}, {@linkcode startTaskRuntimeEnv} and the tests' `startCommand`.
 *
 * @throws {TypeError} When the task is not a plain `[NAME=value ...] deno run <flags> main.ts` (no other shell syntax).
 */
export function readStartTask(task: string): { env: [string, string][]; flags: string[] } {
  const words = task.trim().split(/\s+/);
  const env: [string, string][] = [];
  for (let m = ASSIGNMENT.exec(words[0] ?? ""); m !== null; m = ASSIGNMENT.exec(words[0] ?? "")) {
    env.push([m[1]!, m[2]!]);
    words.shift();
  }
  if (/[;&|<>$`'"\\]/.test(task) || words[0] !== "deno" || words[1] !== "run" || words.at(-1) !== ENTRY_POINT) {
    throw new TypeError(
      `Cannot read the start task '${task}': expected '[NAME=value ...] deno run <flags> ${ENTRY_POINT}'`,
    );
  }
  return { env, flags: words.slice(2, -1) };
}

/**
 * The environment a start task gives the process itself, not the `deno` CLI: its leading `NAME=value` words whose
 * name does not start with `DENO_` (`MALLOC_ARENA_MAX=1`: glibc's malloc reads it at start). A compiled binary
 * cannot carry an environment, so the systemd unit and the image set these (tests check that they match).
 *
 * @example
 * ```ts
 * import { startTaskRuntimeEnv } from "./compile.ts";
 * const env = startTaskRuntimeEnv("MALLOC_ARENA_MAX=1 DENO_NO_UPDATE_CHECK=1 deno run -q -P main.ts");
 * console.assert(JSON.stringify(env) === '{"MALLOC_ARENA_MAX":"1"}');
 * ```
 */
export function startTaskRuntimeEnv(task: string): Record<string, string> {
  return Object.fromEntries(readStartTask(task).env.filter(([name]) => !name.startsWith("DENO_")));
}

/**
 * The start task of a build variant: `start` for the default build, `start:<variant>` for another (`exec` is the
 * build whose permission set lets kubeconfig exec credential plugins run).
 *
 * @throws {TypeError} When deno.json has no such task.
 */
export function startTask(tasks: Readonly<Record<string, string | undefined>>, variant: string | undefined): string {
  const name = variant === undefined ? "start" : `start:${variant}`;
  const task = tasks[name];
  if (task === undefined) {
    const known = Object.keys(tasks).filter((t) => t.startsWith("start:")).map((t) => t.slice("start:".length));
    throw new TypeError(`Invalid --variant '${variant}': expected one of ${known.join(", ") || "(none)"}`);
  }
  return task;
}

/** The `deno compile` arguments for one binary. */
export interface CompileOptions {
  /** Runtime flags, from {@linkcode startTaskFlags}. */
  readonly runtimeFlags: readonly string[];
  /** Where the binary goes, relative to the repository root or absolute. */
  readonly output: string;
  /** The target triple; the host when absent. */
  readonly target?: Target;
}

/**
 * Start-task flags that only `deno run` gets. `--unstable-lazy-dynamic-imports` keeps `deno run` from reading and
 * analysing every module that a dynamic import names before the program starts (discovery, the copier, `status`: 48
 * modules, 7 ms of start-up); given to `deno compile`, it would leave those modules out of the binary.
 */
export const RUN_ONLY_FLAGS: ReadonlySet<string> = new Set(["--unstable-lazy-dynamic-imports"]);

/**
 * Where the binary's npm packages come from: Deno's own cache, and only the packages the program's module graph
 * reaches (js-yaml). From the project's `node_modules` directory, `deno compile` embeds every package in it, the
 * test-only ones too (@kubernetes/client-node and 70 more: 62 MiB of a 165 MB binary; 101 MB without them).
 */
export const NPM_FLAGS: readonly string[] = ["--node-modules-dir=none", "--exclude-unused-npm"];

/**
 * The full `deno compile` argument list: the start task's runtime flags (but {@linkcode RUN_ONLY_FLAGS}), how npm
 * packages are embedded ({@linkcode NPM_FLAGS}), the build facts file, the target and the output, then the entry point.
 *
 * @example
 * ```ts
 * import { compileArgs } from "./compile.ts";
 * const args = compileArgs({ runtimeFlags: ["-P"], output: "dist/extractedprism" });
 * console.assert(args[0] === "compile" && args.at(-1) === "main.ts");
 * ```
 */
export function compileArgs(options: CompileOptions): string[] {
  const buildInfo = BUILD_INFO_URL.href.slice(REPO_ROOT.href.length);
  return [
    "compile",
    ...options.runtimeFlags.filter((f) => !RUN_ONLY_FLAGS.has(f)),
    ...NPM_FLAGS,
    `--include=${buildInfo}`,
    ...(options.target === undefined ? [] : [`--target=${options.target}`]),
    `--output=${options.output}`,
    ENTRY_POINT,
  ];
}

/**
 * Where `deno task compile` puts a binary: `dist/extractedprism` for the host, with the variant and the triple
 * appended when given (`dist/extractedprism-exec-aarch64-unknown-linux-gnu`).
 */
export function defaultOutput(target: Target | undefined, variant?: string): string {
  return ["dist/extractedprism", variant, target].filter((p) => p !== undefined).join("-");
}

const ELF_MACHINES: Readonly<Record<number, string>> = { 62: "x86_64", 183: "aarch64" };

/**
 * The CPU architecture of an ELF file (`x86_64`, `aarch64`, or `machine <n>` for others).
 *
 * @throws {TypeError} When the file is not an ELF file.
 */
export async function elfArchitecture(path: string): Promise<string> {
  using file = await Deno.open(path);
  const head = new Uint8Array(20);
  let got = 0;
  while (got < head.length) {
    const n = await file.read(head.subarray(got));
    if (n === null) break;
    got += n;
  }
  if (got < head.length || head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c || head[3] !== 0x46) {
    throw new TypeError(`Cannot read '${path}': expected an ELF executable`);
  }
  const machine = head[18]! | (head[19]! << 8);
  return ELF_MACHINES[machine] ?? `machine ${machine}`;
}

/** The architecture part of a target triple. */
export function targetArchitecture(target: string): string {
  return target.split("-")[0] ?? target;
}

/** Text that only the full `deno` CLI holds (its compile help), never `denort`. */
const CLI_MARKER = new TextEncoder().encode("Compile the script into a self contained executable");

/** Whether a file holds the full deno CLI; such a file compiles, but the result runs as the plain CLI. */
export async function isDenoCli(path: string): Promise<boolean> {
  using file = await Deno.open(path);
  const chunk = new Uint8Array(1 << 20);
  const window = new Uint8Array(chunk.length + CLI_MARKER.length);
  let carry = 0;
  for (;;) {
    const n = await file.read(chunk);
    if (n === null) return false;
    window.set(chunk.subarray(0, n), carry);
    const text = window.subarray(0, carry + n);
    if (indexOf(text, CLI_MARKER) >= 0) return true;
    carry = Math.min(CLI_MARKER.length - 1, text.length);
    window.copyWithin(0, text.length - carry, text.length);
  }
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  const first = needle[0]!;
  for (
    let i = haystack.indexOf(first);
    i >= 0 && i <= haystack.length - needle.length;
    i = haystack.indexOf(first, i + 1)
  ) {
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
}

async function output(cmd: string, args: string[], cwd: URL, signal?: AbortSignal): Promise<string | undefined> {
  try {
    const options: Deno.CommandOptions = { args, cwd, stdin: "null", stdout: "piped", stderr: "null" };
    const r = await new Deno.Command(cmd, signal === undefined ? options : { ...options, signal }).output();
    return r.success ? new TextDecoder().decode(r.stdout).trim() : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The git revision of a checkout: the short commit hash, with `-dirty` when tracked files have changes; `undefined`
 * when `dir` is not in a git checkout with a commit, or git is missing.
 */
export async function gitRevision(dir: URL, signal?: AbortSignal): Promise<string | undefined> {
  const commit = await output("git", ["rev-parse", "--short=12", "HEAD"], dir, signal);
  if (commit === undefined || commit === "") return undefined;
  const changes = await output("git", ["status", "--porcelain", "--untracked-files=no"], dir, signal);
  return changes === undefined || changes === "" ? commit : `${commit}-dirty`;
}

/** Refuses a `DENORT_BIN` that cannot produce a working binary for `target`; warns about the full CLI. */
async function checkDenort(denort: string, target: string): Promise<void> {
  const arch = await elfArchitecture(denort);
  if (arch !== targetArchitecture(target)) {
    throw new TypeError(`Cannot use DENORT_BIN '${denort}': expected a denort binary for ${target}, found ${arch}`);
  }
  if (await isDenoCli(denort)) {
    console.error(
      `Warning: DENORT_BIN '${denort}' is the deno CLI, not denort: the binary will run as the plain deno CLI`,
    );
  }
}

async function compileOne(
  runtimeFlags: readonly string[],
  { target, out, signal }: { target: Target | undefined; out: string; signal: AbortSignal | undefined },
): Promise<void> {
  const shown = target ?? Deno.build.target;
  const denort = Deno.env.get("DENORT_BIN");
  if (denort !== undefined && denort !== "") await checkDenort(denort, shown);
  const child = new Deno.Command(Deno.execPath(), {
    args: compileArgs({ runtimeFlags, output: out, ...(target === undefined ? {} : { target }) }),
    cwd: REPO_ROOT,
    env: { DENO_NO_UPDATE_CHECK: "1" },
    stdin: "null",
    stdout: "inherit",
    stderr: "piped",
    ...(signal === undefined ? {} : { signal }),
  }).spawn();
  let stderr = "";
  for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
    stderr += text;
    await Deno.stderr.write(new TextEncoder().encode(text));
  }
  const status = await child.status;
  if (status.success) return;
  if ((denort === undefined || denort === "") && /denort/.test(stderr)) {
    throw new Error(
      `Cannot compile for ${shown}: deno compile could not download denort; ` +
        `set DENORT_BIN to an unzipped denort ${Deno.version.deno} for ${shown}`,
    );
  }
  throw new Error(`Cannot compile for ${shown}: deno compile exited with status ${status.code}`);
}

/**
 * Runs the compile step; returns the exit status (0 done, 1 failed, 2 usage error).
 *
 * @param signal Stops a running compile (its `deno compile` child is killed).
 */
export async function main(args: readonly string[], signal?: AbortSignal): Promise<number> {
  let targets: Target[];
  let out: string | undefined;
  let variant: string | undefined;
  let runtimeFlags: string[];
  let runtimeEnv = "";
  try {
    const { values } = parseArgs({
      args: [...args],
      options: {
        target: { type: "string", multiple: true },
        output: { type: "string" },
        variant: { type: "string" },
      },
      strict: true,
      allowPositionals: false,
    });
    targets = (values.target ?? []).map((t) => {
      if (!(TARGETS as readonly string[]).includes(t)) {
        throw new TypeError(`Invalid --target '${t}': expected one of ${TARGETS.join(", ")}`);
      }
      return t as Target;
    });
    out = values.output;
    if (out !== undefined && targets.length > 1) throw new TypeError(`Invalid --output '${out}': expected one target`);
    variant = values.variant;
    const task = startTask(denoJson.tasks, variant);
    runtimeFlags = startTaskFlags(task);
    runtimeEnv = Object.entries(startTaskRuntimeEnv(task)).map(([k, v]) => `${k}=${v}`).join(" ");
  } catch (e) {
    console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
    return 2;
  }
  const revision = Deno.env.get("EXTRACTEDPRISM_REVISION") || await gitRevision(REPO_ROOT, signal) || "unknown";
  try {
    await writeBuildInfo({ version: denoJson.version, revision });
    for (const target of targets.length === 0 ? [undefined] : targets) {
      const path = out === undefined ? defaultOutput(target, variant) : resolve(out);
      await compileOne(runtimeFlags, { target, out: path, signal });
      console.log(`Compiled ${path} (${target ?? Deno.build.target}, ${denoJson.version}, revision ${revision})`);
    }
    if (runtimeEnv) console.log(`Run it with ${runtimeEnv} in its environment (the systemd unit and the image set it)`);
    return 0;
  } catch (e) {
    console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  } finally {
    await Deno.remove(BUILD_INFO_URL).catch(() => {});
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
