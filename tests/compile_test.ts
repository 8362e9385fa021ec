/**
 * The compile step (`deploy/compile.ts`): the binary gets the start task's permission set and V8 flags, embeds the
 * build facts, refuses a wrong `DENORT_BIN`, and says what to do when denort cannot be downloaded. No `denort` can be
 * had here, so the binary is compiled with the `deno` CLI as its base and its embedded data section is read back.
 *
 * @module
 */
import assert from "node:assert/strict";
import denoJson from "../deno.json" with { type: "json" };
import { BUILD_INFO_URL, readBuildInfo } from "../deploy/build_info.ts";
import {
  compileArgs,
  defaultOutput,
  elfArchitecture,
  gitRevision,
  NPM_FLAGS,
  REPO_ROOT,
  RUN_ONLY_FLAGS,
  startTaskFlags,
  startTaskRuntimeEnv,
  targetArchitecture,
  TARGETS,
} from "../deploy/compile.ts";
import { type CompiledBinary, readCompiledBinary } from "./support/deploy_compiled_binary.ts";
import { code, libFiles } from "./support/lib_files.ts";
import { freePorts } from "./support/main_process.ts";
import { EchoServer } from "./support/net.ts";
import { CHILD_MS, withDeadline } from "./support/deadline.ts";

/** The permissions the compile task's `deno run` gets (the task proposed for deno.json uses the same). */
const COMPILE_SCRIPT_FLAGS = ["--allow-read", "--allow-write=dist", "--allow-run", "--allow-env"];

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the compile script as `deno task compile` does, with only the environment given (plus Deno's cache). */
async function runCompileScript(args: string[], env: Record<string, string>): Promise<Run> {
  const base: Record<string, string> = { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" };
  for (const name of ["HOME", "DENO_DIR", "XDG_CACHE_HOME", "PATH"]) {
    const v = Deno.env.get(name);
    if (v !== undefined) base[name] = v;
  }
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-q", ...COMPILE_SCRIPT_FLAGS, "deploy/compile.ts", ...args],
    cwd: REPO_ROOT,
    clearEnv: true,
    env: { ...base, ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(CHILD_MS),
  }).output();
  const text = new TextDecoder();
  return { code: r.code, stdout: text.decode(r.stdout), stderr: text.decode(r.stderr) };
}

/** The allow/deny/ignore lists Deno's compile metadata holds for a deno.json permission set. */
function metadataPermissions(set: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const list = (v: unknown): unknown => v === true ? [] : Array.isArray(v) ? v : null;
  const out: Record<string, unknown> = {};
  // `import` is left out: Deno fills in its default import hosts whatever the set says, and a compiled binary can
  // load only its embedded modules anyway.
  for (const kind of ["env", "net", "ffi", "read", "run", "sys", "write"]) {
    const v = set[kind];
    const o = typeof v === "object" && v !== null && !Array.isArray(v) ? v as Record<string, unknown> : { allow: v };
    out[`allow_${kind}`] = list(o["allow"]);
    out[`deny_${kind}`] = list(o["deny"]);
    if (kind === "env" || kind === "read") out[`ignore_${kind}`] = list(o["ignore"]);
  }
  return out;
}

function permissionSetName(flags: readonly string[]): string {
  for (const [i, f] of flags.entries()) {
    const m = /^(?:-P|--permission-set)(?:=(.+))?$/.exec(f);
    if (m) return m[1] ?? (flags[i + 1]?.startsWith("-") === false ? flags[i + 1]! : "default");
  }
  throw new Error("The start task has no -P: expected the permission set of deno.json");
}

function v8Flags(flags: readonly string[]): string[] {
  return flags.filter((f) => f.startsWith("--v8-flags=")).flatMap((f) => f.slice("--v8-flags=".length).split(","));
}

const hostArch = Deno.build.arch;
const otherTarget = TARGETS.find((t) => targetArchitecture(t) !== hostArch)!;
const startFlags = startTaskFlags(denoJson.tasks.start);

/** `main.ts` and every file of `lib/`: path (absolute) and code without comments. */
async function programSources(): Promise<{ path: string; code: string }[]> {
  const paths = [new URL("main.ts", REPO_ROOT).pathname, ...await libFiles()];
  return await Promise.all(paths.map(async (path) => ({ path, code: code(await Deno.readTextFile(path)) })));
}

/**
 * Every module the program loads on use: the local targets of the dynamic imports of `main.ts` and `lib/`, relative
 * to the repository root. `deno run` loads them lazily (`--unstable-lazy-dynamic-imports`); a binary without one of
 * them would fail only when that code is first needed (discovery's, at start).
 */
async function lazilyLoadedModules(): Promise<string[]> {
  const found = new Set<string>();
  for (const { path, code } of await programSources()) {
    for (const m of code.matchAll(/\bimport\("(\.{1,2}\/[^"]+\.ts)"\)/g)) {
      found.add(new URL(m[1]!, `file://${path}`).href.slice(REPO_ROOT.href.length));
    }
  }
  return [...found].sort();
}

/** The npm packages of deno.json's import map that `lib/` and `main.ts` import (the rest are the tests'). */
async function programNpmPackages(): Promise<{ used: string[]; testOnly: string[] }> {
  const npm = Object.keys(denoJson.imports).filter((name) =>
    (denoJson.imports as Record<string, string>)[name]!.startsWith("npm:")
  );
  const sources = await programSources();
  const imported = (name: string) =>
    sources.some(({ code }) => code.includes(`from "${name}"`) || code.includes(`import("${name}")`));
  return { used: npm.filter(imported), testOnly: npm.filter((name) => !imported(name)) };
}

/** Compiles with the deno CLI as denort into a temporary directory and reads back what the binary embeds. */
async function compileAndRead(args: string[], revision: string): Promise<{ run: Run; binary: CompiledBinary }> {
  const dir = await Deno.makeTempDir({ prefix: "ep_compile_" });
  try {
    const out = `${dir}/extractedprism`;
    const run = await runCompileScript([...args, `--output=${out}`], {
      DENORT_BIN: Deno.execPath(),
      EXTRACTEDPRISM_REVISION: revision,
    });
    assert.equal(run.code, 0, run.stderr);
    assert.match(
      run.stdout,
      new RegExp(`^Compiled ${out} \\(${Deno.build.target}, ${denoJson.version}, revision ${revision}\\)$`, "m"),
    );
    return { run, binary: readCompiledBinary(await Deno.readFile(out)) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Checks that a binary holds the permission set and V8 flags of a start task. */
function assertBakedFrom(binary: CompiledBinary, task: string): void {
  const flags = startTaskFlags(task);
  const permissions = binary.metadata["permissions"] as Record<string, unknown>;
  const set = (denoJson.permissions as Record<string, Record<string, unknown>>)[permissionSetName(flags)];
  assert.ok(set, `the permission set of '${task}' exists in deno.json`);
  const expected = metadataPermissions(set);
  const baked = Object.fromEntries(Object.keys(expected).map((k) => [k, permissions[k]]));
  assert.deepEqual(baked, expected, "the binary's permissions are the start task's set");
  const v8 = v8Flags(flags);
  assert.ok(v8.length > 0, "the start task sets V8 flags");
  assert.deepEqual((binary.metadata["v8_flags"] as string[]).slice(-v8.length), v8, "the start task's V8 flags");
  assert.equal(binary.metadata["entrypoint_key"], "main.ts");
}

Deno.test("the compile task bakes in the start task's permission set and V8 flags, and the build facts", async (t) => {
  await t.step("the default build", async () => {
    const revision = `test-${crypto.randomUUID().slice(0, 8)}`;
    const { run, binary } = await compileAndRead([], revision);
    assert.match(
      run.stderr,
      /^Warning: DENORT_BIN '.+' is the deno CLI, not denort: /m,
      "the CLI as denort is flagged",
    );
    assertBakedFrom(binary, denoJson.tasks.start);
    const relative = BUILD_INFO_URL.href.slice(REPO_ROOT.href.length);
    const embedded = binary.readFile(relative);
    assert.ok(embedded, `${relative} is embedded where the program looks for it`);
    assert.deepEqual(JSON.parse(new TextDecoder().decode(embedded)), { version: denoJson.version, revision });
    await assert.rejects(Deno.stat(BUILD_INFO_URL), Deno.errors.NotFound, "no generated file is left in the tree");
    const lazy = await lazilyLoadedModules();
    assert.ok(lazy.includes("lib/discovery/discovery.ts"), `found the dynamic imports: ${lazy.join(", ")}`);
    const missing = lazy.filter((m) => binary.readFile(m) === undefined);
    assert.deepEqual(missing, [], "every module the program loads on use is embedded");
    // Only the npm packages the program imports, not the tests' (from node_modules: 62 MiB more).
    const { used, testOnly } = await programNpmPackages();
    assert.deepEqual(used, ["js-yaml"]);
    const npmDirs = binary.list(".deno_compile_node_modules/localhost") ?? [];
    assert.ok(npmDirs.includes("js-yaml"), `embedded npm packages: ${npmDirs.join(", ")}`);
    for (const name of testOnly) {
      assert.ok(!npmDirs.includes(name.split("/")[0]!), `the test-only package ${name} is not embedded`);
    }
    assert.equal(binary.list("node_modules"), undefined, "no node_modules directory is embedded");
  });

  for (const variant of Object.keys(denoJson.tasks).filter((k) => k.startsWith("start:")).map((k) => k.slice(6))) {
    await t.step(`the ${variant} build`, async () => {
      const { binary } = await compileAndRead([`--variant=${variant}`], "test-variant");
      assertBakedFrom(binary, (denoJson.tasks as Record<string, string>)[`start:${variant}`]!);
    });
  }
});

Deno.test("compile arguments are the start task's flags, the build facts, the target and the output", () => {
  assert.ok(startFlags.includes("--unstable-lazy-dynamic-imports"), "the start task loads dynamic imports lazily");
  assert.deepEqual(compileArgs({ runtimeFlags: startFlags, output: defaultOutput(undefined) }), [
    "compile",
    ...startFlags.filter((f) => !RUN_ONLY_FLAGS.has(f)),
    ...NPM_FLAGS,
    "--include=dist/build_info.json",
    "--output=dist/extractedprism",
    "main.ts",
  ]);
  assert.deepEqual(
    compileArgs({
      runtimeFlags: ["-P"],
      output: defaultOutput("aarch64-unknown-linux-gnu"),
      target: "aarch64-unknown-linux-gnu",
    }),
    [
      "compile",
      "-P",
      "--node-modules-dir=none",
      "--exclude-unused-npm",
      "--include=dist/build_info.json",
      "--target=aarch64-unknown-linux-gnu",
      "--output=dist/extractedprism-aarch64-unknown-linux-gnu",
      "main.ts",
    ],
  );
  assert.deepEqual(startTaskFlags("A=1 B_2=x deno run -P main.ts"), ["-P"], "assignments before deno are not flags");
  assert.throws(() => startTaskFlags("deno run -A main.ts && echo"), {
    message:
      "Cannot read the start task 'deno run -A main.ts && echo': expected '[NAME=value ...] deno run <flags> main.ts'",
  });
  assert.equal(defaultOutput("x86_64-unknown-linux-gnu", "exec"), "dist/extractedprism-exec-x86_64-unknown-linux-gnu");
});

Deno.test("the start tasks give the process one malloc arena; the deno CLI's own variables are not the process's", () => {
  assert.deepEqual(startTaskRuntimeEnv("A=1 DENO_DIR=/x B_2= deno run -P main.ts"), { A: "1", B_2: "" });
  assert.deepEqual(startTaskRuntimeEnv("deno run -P main.ts"), {});
  assert.throws(() => startTaskRuntimeEnv("A=1 deno run -A main.ts && echo"), { name: "TypeError" });
  assert.deepEqual(startTaskRuntimeEnv(denoJson.tasks.start), { MALLOC_ARENA_MAX: "1" });
  assert.deepEqual(startTaskRuntimeEnv(denoJson.tasks["start:exec"]), { MALLOC_ARENA_MAX: "1" });
});

Deno.test("a DENORT_BIN of another architecture is refused before anything is compiled", async () => {
  assert.equal(await elfArchitecture(Deno.execPath()), hostArch);
  const r = await runCompileScript([`--target=${otherTarget}`], { DENORT_BIN: Deno.execPath() });
  assert.equal(r.code, 1);
  assert.equal(
    r.stderr,
    `error: Cannot use DENORT_BIN '${Deno.execPath()}': expected a denort binary for ${otherTarget}, found ${hostArch}\n`,
  );
  await assert.rejects(Deno.stat(BUILD_INFO_URL), Deno.errors.NotFound);
});

Deno.test("a target or option the compile task does not know is a usage error", async (t) => {
  await t.step("an unknown target", async () => {
    const r = await runCompileScript(["--target=x86_64-pc-windows-msvc"], {});
    assert.equal(r.code, 2);
    assert.equal(r.stderr, `error: Invalid --target 'x86_64-pc-windows-msvc': expected one of ${TARGETS.join(", ")}\n`);
  });
  await t.step("a variant without a start task", async () => {
    const r = await runCompileScript(["--variant=nope"], {});
    assert.equal(r.code, 2);
    const known = Object.keys(denoJson.tasks).filter((k) => k.startsWith("start:")).map((k) => k.slice(6));
    assert.equal(r.stderr, `error: Invalid --variant 'nope': expected one of ${known.join(", ") || "(none)"}\n`);
  });
  await t.step("one output for two targets", async () => {
    const r = await runCompileScript([...TARGETS.map((t) => `--target=${t}`), "--output=x"], {});
    assert.equal(r.code, 2);
    assert.equal(r.stderr, "error: Invalid --output 'x': expected one target\n");
  });
});

/** A proxy on loopback that refuses every request and remembers the request lines: the download never leaves. */
class RefusingProxy {
  readonly listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  readonly requests: string[] = [];
  readonly #serving = this.#serve();

  async #serve(): Promise<void> {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.listener.accept();
      } catch {
        return;
      }
      try {
        const buf = new Uint8Array(8192);
        let head = "";
        while (!head.includes("\r\n\r\n")) {
          const n = await conn.read(buf);
          if (n === null) break;
          head += new TextDecoder().decode(buf.subarray(0, n));
        }
        this.requests.push(head.split("\r\n")[0] ?? "");
        await conn.write(
          new TextEncoder().encode("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
        );
      } catch { /* the client gave up */ }
      conn.close();
    }
  }

  async close(): Promise<void> {
    this.listener.close();
    await this.#serving;
  }
}

Deno.test("without DENORT_BIN, a download host that cannot be reached fails with a hint to set DENORT_BIN", async () => {
  const proxy = new RefusingProxy();
  const denoDir = await Deno.makeTempDir({ prefix: "ep_denodir_" });
  const out = await Deno.makeTempDir({ prefix: "ep_compile_" });
  try {
    const url = `http://127.0.0.1:${proxy.listener.addr.port}`;
    const r = await runCompileScript([`--output=${out}/extractedprism`], {
      DENO_DIR: denoDir,
      HTTPS_PROXY: url,
      HTTP_PROXY: url,
      https_proxy: url,
      http_proxy: url,
    });
    assert.equal(r.code, 1, r.stderr);
    assert.ok(
      r.stderr.endsWith(
        `error: Cannot compile for ${Deno.build.target}: deno compile could not download denort; ` +
          `set DENORT_BIN to an unzipped denort ${Deno.version.deno} for ${Deno.build.target}\n`,
      ),
      r.stderr,
    );
    assert.ok(
      proxy.requests.some((l) => /^CONNECT \S+:443 HTTP\/1\.1$/.test(l)),
      `a download was tried: ${proxy.requests}`,
    );
    await assert.rejects(Deno.stat(`${out}/extractedprism`), Deno.errors.NotFound);
    await assert.rejects(Deno.stat(BUILD_INFO_URL), Deno.errors.NotFound);
  } finally {
    await proxy.close();
    await Deno.remove(denoDir, { recursive: true });
    await Deno.remove(out, { recursive: true });
  }
});

async function git(dir: string, ...args: string[]): Promise<string> {
  const r = await new Deno.Command("git", {
    args: ["-c", "user.name=test", "-c", "user.email=test@localhost", "-c", "commit.gpgsign=false", ...args],
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(CHILD_MS),
  }).output();
  assert.ok(r.success, new TextDecoder().decode(r.stderr));
  return new TextDecoder().decode(r.stdout).trim();
}

Deno.test("the revision is the short commit hash, marked -dirty when tracked files changed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ep_git_" });
  try {
    const url = new URL(`file://${dir}/`);
    assert.equal(await gitRevision(url), undefined, "not a checkout");
    await git(dir, "init", "-q");
    assert.equal(await gitRevision(url), undefined, "no commit yet");
    await Deno.writeTextFile(`${dir}/a.txt`, "one\n");
    await git(dir, "add", "a.txt");
    await git(dir, "commit", "-q", "-m", "one");
    const commit = await git(dir, "rev-parse", "--short=12", "HEAD");
    assert.equal(await gitRevision(url), commit);
    await Deno.writeTextFile(`${dir}/untracked.txt`, "x\n");
    assert.equal(await gitRevision(url), commit, "an untracked file does not make the tree dirty");
    await Deno.writeTextFile(`${dir}/a.txt`, "two\n");
    assert.equal(await gitRevision(url), `${commit}-dirty`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("build facts are read only from a well-formed file the program may read", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ep_build_info_" });
  try {
    const url = new URL(`file://${dir}/build_info.json`);
    assert.equal(readBuildInfo(url), undefined, "no file");
    await Deno.writeTextFile(url, '{"version":"1.0.0","revision":"0123456789ab"}');
    assert.deepEqual(readBuildInfo(url), { version: "1.0.0", revision: "0123456789ab" });
    await Deno.writeTextFile(url, '{"version":"1.0.0"}');
    assert.equal(readBuildInfo(url), undefined, "no revision");
    await Deno.writeTextFile(url, "{");
    assert.equal(readBuildInfo(url), undefined, "not JSON");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const tasks = denoJson.tasks as Readonly<Record<string, string | undefined>>;

Deno.test({
  name: "the compile task in deno.json runs deploy/compile.ts with the flags this test uses",
  ignore: tasks["compile"] === undefined,
  fn() {
    assert.equal(tasks["compile"], `deno run ${COMPILE_SCRIPT_FLAGS.join(" ")} deploy/compile.ts`);
  },
});

/** A real compiled binary to time, if one was built here with a real denort. */
async function realBinary(): Promise<string | undefined> {
  const path = new URL(defaultOutput(undefined), REPO_ROOT).pathname;
  try {
    const bytes = await Deno.readFile(path);
    readCompiledBinary(bytes);
    const marker = new TextEncoder().encode("Compile the script into a self contained executable");
    const text = new TextDecoder("latin1").decode(bytes);
    return text.includes(new TextDecoder("latin1").decode(marker)) ? undefined : path;
  } catch {
    return undefined;
  }
}

const binary = await realBinary();

Deno.test({
  name: "the compiled binary starts and relays its first connection within 50 ms",
  ignore: binary === undefined,
  async fn() {
    await using echo = new EchoServer();
    const timings: number[] = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      const [bindPort, healthPort] = freePorts(2);
      const started = performance.now();
      const child = new Deno.Command(binary!, {
        args: [
          `--bind-port=${bindPort}`,
          `--health-port=${healthPort}`,
          `--endpoints=127.0.0.1:${echo.port}`,
          "--enable-discovery=false",
        ],
        clearEnv: true,
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      try {
        const deadline = started + 5_000;
        for (;;) {
          assert.ok(performance.now() < deadline, "the binary relays within 5 s at all");
          try {
            using conn = await Deno.connect({ hostname: "127.0.0.1", port: bindPort! });
            await conn.write(new TextEncoder().encode("ping"));
            const buf = new Uint8Array(4);
            if ((await withDeadline(conn.read(buf), "the first relayed bytes")) === 4) break;
          } catch { /* not listening yet */ }
          await new Promise((r) => setTimeout(r, 1));
        }
        timings.push(performance.now() - started);
      } finally {
        child.kill("SIGKILL");
        await withDeadline(child.status, "the binary to exit after SIGKILL");
      }
    }
    assert.ok(
      Math.min(...timings) <= 50,
      `fastest start to first relayed byte: ${timings.map((t) => t.toFixed(1))} ms`,
    );
  },
});
