/**
 * The Containerfile, checked without a container engine: its stages read as intended, the image stage of this
 * machine's architecture names exactly the libraries `ldd` lists, and those files alone run `deno` (same libraries
 * as `denort`) in an empty root with chroot. The build context lets through every module the compile needs.
 *
 * @module
 */
import assert from "node:assert/strict";
import denoJson from "../deno.json" with { type: "json" };
import { startTaskRuntimeEnv, TARGETS } from "../deploy/compile.ts";
import {
  type Containerfile,
  copyTargets,
  inBuildContext,
  parseContainerfile,
  parseCopy,
  stage,
} from "./support/deploy_containerfile.ts";
import { REPO_ROOT } from "./support/main_process.ts";
import { CHILD_MS } from "./support/deadline.ts";

const containerfile: Containerfile = parseContainerfile(
  await Deno.readTextFile(new URL("Containerfile", REPO_ROOT)),
);
const dockerignore = await Deno.readTextFile(new URL(".dockerignore", REPO_ROOT));

/** The Containerfile's name for this machine's architecture. */
const ARCH = ({ x86_64: "amd64", aarch64: "arm64" } as Record<string, string>)[Deno.build.arch]!;

const decoder = new TextDecoder();

async function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(CHILD_MS),
  }).output();
  return { code: r.code, stdout: decoder.decode(r.stdout), stderr: decoder.decode(r.stderr) };
}

/** `ldd` of a binary: the loader's path and the libraries by name. */
async function ldd(path: string): Promise<{ loader: string; libraries: Map<string, string> }> {
  const r = await run("ldd", [path]);
  assert.equal(r.code, 0, r.stderr);
  const libraries = new Map<string, string>();
  let loader: string | undefined;
  for (const line of r.stdout.split("\n").map((l) => l.trim()).filter((l) => l !== "")) {
    const arrow = /^(\S+) => (\S+) \(0x[0-9a-f]+\)$/.exec(line);
    const plain = /^(\S+) \(0x[0-9a-f]+\)$/.exec(line);
    if (arrow) libraries.set(arrow[1]!, arrow[2]!);
    else if (plain && plain[1]!.startsWith("/")) loader = plain[1]!;
    else if (!plain || !plain[1]!.startsWith("linux-vdso")) throw new Error(`Cannot read the ldd line '${line}'`);
  }
  assert.ok(loader, "ldd names the loader");
  return { loader, libraries };
}

/** The files an image stage copies from the target's userland: target path in the image → source path. */
function stageFiles(name: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const ins of stage(containerfile, name).instructions) {
    assert.equal(ins.keyword, "COPY", `stage ${name} only copies files: ${ins.keyword} ${ins.args}`);
    const copy = parseCopy(ins);
    assert.equal(copy.from, "target-libs", `stage ${name} copies from the target's userland`);
    for (const [source, target] of copyTargets(copy)) out.set(target, source);
  }
  return out;
}

const basename = (p: string) => p.split("/").at(-1)!;

Deno.test("the image ends FROM scratch: binary, CA certificates, user 65534, entrypoint and ports", () => {
  const final = containerfile.stages.at(-1)!;
  assert.equal(final.name, undefined, "the last stage is the image");
  assert.equal(final.base, "image-${TARGETARCH}");
  for (const arch of ["amd64", "arm64"]) assert.equal(stage(containerfile, `image-${arch}`).base, "scratch");
  assert.ok(containerfile.globalArgs.has("TARGETARCH"), "TARGETARCH is declared before the first FROM");

  const copies = final.instructions.filter((i) => i.keyword === "COPY").flatMap((i) => copyTargets(parseCopy(i)));
  const targets = new Map(copies.map(([s, t]) => [t, s]));
  assert.equal(targets.get("/extractedprism"), "/out/extractedprism");
  assert.equal(targets.get("/etc/ssl/certs/ca-certificates.crt"), "/etc/ssl/certs/ca-certificates.crt");
  assert.equal(targets.get("/etc/passwd"), "/out/etc/passwd");
  assert.equal(targets.get("/etc/group"), "/out/etc/group");
  assert.deepEqual(
    final.instructions.filter((i) => i.keyword !== "COPY").map((i) => `${i.keyword} ${i.args}`),
    [
      "USER 65534:65534",
      ...Object.entries(startTaskRuntimeEnv(denoJson.tasks.start)).map(([k, v]) => `ENV ${k}=${v}`),
      "EXPOSE 7445 7446",
      'ENTRYPOINT ["/extractedprism"]',
    ],
    "the image sets the environment the start task gives the process (a binary cannot carry one)",
  );

  const build = stage(containerfile, "build").instructions.map((i) => i.args).join("\n");
  assert.match(build, /echo 'nobody:x:65534:65534:nobody:\/nonexistent:\/sbin\/nologin' > \/out\/etc\/passwd/);
  assert.match(build, /echo 'nogroup:x:65534:' > \/out\/etc\/group/);
  assert.match(build, /apt-get install -y --no-install-recommends ca-certificates/);
});

Deno.test("the build stage is the official Deno image pinned by digest, and runs the compile task", async () => {
  const image = containerfile.globalArgs.get("DENO_IMAGE");
  assert.match(image ?? "", /^docker\.io\/denoland\/deno:[\w.-]+@sha256:[0-9a-f]{64}$/);
  assert.equal(/:([\w.-]+)@/.exec(image!)![1], Deno.version.deno, "the image's Deno is the Deno the tests run");
  const ci = await Deno.readTextFile(new URL(".ci/run", REPO_ROOT));
  assert.match(ci, new RegExp(`^DENO_VERSION=${Deno.version.deno.replaceAll(".", "\\.")}$`, "m"), "CI's Deno too");

  const build = stage(containerfile, "build");
  assert.equal(build.base, "${DENO_IMAGE}");
  assert.equal(build.platform, "$BUILDPLATFORM", "the compile runs natively and cross-compiles");
  assert.equal(stage(containerfile, "target-libs").base, "${DENO_IMAGE}");
  assert.equal(stage(containerfile, "target-libs").instructions.length, 0, "nothing runs under emulation");
  const script = build.instructions.map((i) => i.args).join("\n");
  assert.match(script, /deno task compile --target="\$target" --output=\/out\/extractedprism/);
  assert.match(script, /EXTRACTEDPRISM_REVISION="\$REVISION"/);
  assert.match(script, /export DENORT_BIN="\/denort\/denort-\$target"/);
  assert.equal(stage(containerfile, "denort").base, "scratch", "an empty default for --build-context denort=DIR");
  for (const [arch, triple] of [["amd64", TARGETS[0]], ["arm64", TARGETS[1]]]) {
    assert.match(script, new RegExp(`${arch}\\) target=${triple} ;;`), `${arch} compiles for ${triple}`);
  }
});

Deno.test("each image stage names exactly the loader and the libraries ldd lists", async () => {
  const { loader, libraries } = await ldd(Deno.execPath());
  const files = stageFiles(`image-${ARCH}`);
  assert.ok(files.has(loader), `the loader ${loader} is where the binary asks for it`);
  const libs = [...files.keys()].filter((t) => t !== loader);
  assert.deepEqual(libs.map(basename).sort(), [...libraries.keys()].sort(), "exactly the libraries ldd lists");
  for (const target of libs) assert.equal(target, `/lib/${Deno.build.arch}-linux-gnu/${basename(target)}`);

  const triples: Record<string, [string, string]> = {
    amd64: ["x86_64-linux-gnu", "/lib64/ld-linux-x86-64.so.2"],
    arm64: ["aarch64-linux-gnu", "/lib/ld-linux-aarch64.so.1"],
  };
  for (const [arch, [triple, interp]] of Object.entries(triples)) {
    const other = stageFiles(`image-${arch}`);
    assert.deepEqual(
      [...other.keys()].sort(),
      [interp, ...[...libraries.keys()].map((l) => `/lib/${triple}/${l}`)].sort(),
      `image-${arch} holds the same set for ${triple}`,
    );
    for (const [target, source] of other) {
      assert.equal(source, `/usr/lib/${triple}/${basename(target)}`, "copied from the merged-/usr real path");
    }
  }
});

const isRoot = Deno.uid() === 0;
if (!isRoot) console.error("containerfile_test: not root, so the chroot test is skipped (it needs chroot)");

Deno.test({
  name: "the files the image stage names run deno in an empty root, as user 65534",
  ignore: !isRoot,
  async fn(t) {
    const root = await Deno.makeTempDir({ prefix: "ep_rootfs_" });
    try {
      await Deno.chmod(root, 0o755);
      for (const [target, source] of stageFiles(`image-${ARCH}`)) {
        await Deno.mkdir(`${root}${target.slice(0, target.lastIndexOf("/"))}`, { recursive: true });
        await Deno.copyFile(source, `${root}${target}`);
      }
      await Deno.copyFile(Deno.execPath(), `${root}/extractedprism`);
      await Deno.chmod(`${root}/extractedprism`, 0o755);
      await Deno.mkdir(`${root}/etc`);
      await Deno.writeTextFile(`${root}/etc/passwd`, "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n");
      await Deno.writeTextFile(`${root}/etc/hosts`, "127.0.0.1 localhost apiserver.test\n");

      await t.step("the loader finds every library", async () => {
        const r = await run("chroot", ["--userspec=65534:65534", root, "/extractedprism", "--version"]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, new RegExp(`^deno ${Deno.version.deno.replaceAll(".", "\\.")} `));
      });

      await t.step("the runtime listens, resolves a name and connects on loopback", async () => {
        // /proc is mounted in a private mount namespace, as a container runtime does; it goes when the namespace does.
        await Deno.mkdir(`${root}/proc`);
        const script = 'const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });' +
          'const c = await Deno.connect({ hostname: "apiserver.test", port: l.addr.port });' +
          "const s = await l.accept(); console.log(c.remoteAddr.hostname, Deno.uid()); c.close(); s.close(); l.close();";
        const r = await run("unshare", [
          "--mount",
          "--propagation=private",
          "sh",
          "-c",
          `mount -t proc proc "$0/proc" && exec env DENO_NO_UPDATE_CHECK=1 chroot --userspec=65534:65534 "$0" /extractedprism eval "$1"`,
          root,
          script,
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, "127.0.0.1 65534\n");
      });

      await t.step("without one of the libraries it does not start", async () => {
        const gcc = [...stageFiles(`image-${ARCH}`).keys()].find((p) => basename(p) === "libgcc_s.so.1")!;
        await Deno.remove(`${root}${gcc}`);
        const r = await run("chroot", [root, "/extractedprism", "--version"]);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /error while loading shared libraries: libgcc_s\.so\.1/);
      });
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

/** Local files in the module graph of an entry point (`deno info --json`). */
async function localModules(entry: string): Promise<string[]> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: REPO_ROOT,
    env: { DENO_NO_UPDATE_CHECK: "1" },
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(CHILD_MS),
  }).output();
  assert.ok(r.success, decoder.decode(r.stderr));
  const info = JSON.parse(decoder.decode(r.stdout)) as { modules: { specifier: string }[] };
  return info.modules.map((m) => m.specifier).filter((s) => s.startsWith(REPO_ROOT.href)).map((s) =>
    s.slice(REPO_ROOT.href.length)
  );
}

Deno.test("the build context and the build stage hold every module main.ts and the compile step load", async () => {
  const files = [...new Set([...await localModules("main.ts"), ...await localModules("deploy/compile.ts")])];
  assert.ok(
    files.includes("main.ts") && files.includes("deploy/compile.ts") && files.some((f) => f.startsWith("lib/")),
  );
  const copied = stage(containerfile, "build").instructions.filter((i) => i.keyword === "COPY").flatMap((i) =>
    parseCopy(i).sources
  );
  for (const file of [...files, "deno.lock"]) {
    assert.ok(inBuildContext(dockerignore, file), `.dockerignore lets ${file} into the build context`);
    assert.ok(
      copied.some((s) => s === file || (s.endsWith("/") && file.startsWith(s))),
      `the build stage copies ${file}`,
    );
  }
  for (const file of [".git/HEAD", "node_modules/.deno/x", "dist/extractedprism", "tests/compile_test.ts"]) {
    assert.ok(!inBuildContext(dockerignore, file), `.dockerignore keeps ${file} out`);
  }
});
