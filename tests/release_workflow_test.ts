/**
 * `.github/workflows/release.yml` cannot drift from the repository: it runs the README's test command, deno.json's
 * compile task for both Linux targets, builds the `Containerfile` for the architectures it supports, and names the
 * image, the binaries and the chart after the tag, refusing a tag that is not deno.json's and the chart's version.
 * The version step's own script is run here (bash and sed, no network).
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import denoJson from "../deno.json" with { type: "json" };
import { defaultOutput, TARGETS } from "../deploy/compile.ts";
import { REPO_ROOT } from "./support/main_process.ts";

type Obj = Record<string, unknown>;
interface Step {
  readonly id?: string;
  readonly name?: string;
  readonly uses?: string;
  readonly run?: string;
  readonly with?: Obj;
  readonly env?: Record<string, string>;
}

const text = await Deno.readTextFile(new URL(".github/workflows/release.yml", REPO_ROOT));
const workflow = parse(text) as Obj;
const jobs = Object.values(workflow["jobs"] as Record<string, { steps: Step[] }>);
const steps = jobs.flatMap((j) => j.steps);
const readme = await Deno.readTextFile(new URL("README.md", REPO_ROOT));

function stepRunning(command: string): Step {
  const found = steps.filter((s) => s.run?.trim() === command);
  assert.equal(found.length, 1, `one step runs exactly '${command}'`);
  return found[0]!;
}

function stepUsing(action: string): Step {
  const found = steps.filter((s) => s.uses?.startsWith(`${action}@`));
  assert.equal(found.length, 1, `one step uses ${action}`);
  return found[0]!;
}

/** The README's one test command: `npx --yes deno@<version> task test`. */
function readmeTestCommand(): { line: string; deno: string } {
  const lines = readme.split("\n").map((l) => l.trim()).filter((l) => /^npx --yes deno@\S+ task test$/.test(l));
  assert.equal(new Set(lines).size, 1, `the README has one test command, found: ${lines.join(" | ")}`);
  return { line: lines[0]!, deno: /deno@(\S+)/.exec(lines[0]!)![1]! };
}

Deno.test("the workflow runs on version tags only, with write access only where it publishes", () => {
  assert.deepEqual(workflow["on"], { push: { tags: ["v*"] } });
  assert.deepEqual(workflow["permissions"], { contents: "read" });
  assert.equal(jobs.length, 1);
});

Deno.test("the workflow runs the README's test command and the compile task with the same Deno", () => {
  const { line, deno } = readmeTestCommand();
  const test = stepRunning(line);
  const compile = stepRunning(`npx --yes deno@${deno} task compile:linux`);
  assert.ok(steps.indexOf(test) < steps.indexOf(compile), "tests first");
  const task = denoJson.tasks["compile:linux"];
  for (const target of TARGETS) assert.ok(task.includes(`--target=${target}`), `compile:linux builds ${target}`);
  // The copy step takes each binary where the compile task puts it.
  const copy = steps.find((s) => s.run?.includes('cp "dist/extractedprism-$target"'));
  assert.ok(copy, "a step copies the compiled binaries");
  assert.match(copy.run!, new RegExp(`for target in ${TARGETS.join(" ")}; do`));
  for (const target of TARGETS) assert.equal(defaultOutput(target), `dist/extractedprism-${target}`);
});

Deno.test("the image is built from the Containerfile for the architectures it knows, tagged with the version", async () => {
  const build = stepUsing("docker/build-push-action");
  assert.equal(build.with?.["file"], "Containerfile");
  await Deno.stat(new URL("Containerfile", REPO_ROOT));
  const containerfile = await Deno.readTextFile(new URL("Containerfile", REPO_ROOT));
  const arches = [...containerfile.matchAll(/^\s+(\w+)\) target=/gm)].map((m) => m[1]);
  assert.deepEqual(arches, ["amd64", "arm64"]);
  assert.equal(build.with?.["platforms"], arches.map((a) => `linux/${a}`).join(","));
  assert.equal(build.with?.["push"], true);
  assert.equal(build.with?.["tags"], "${{ steps.version.outputs.image }}:${{ steps.version.outputs.version }}");
  assert.match(String(build.with?.["build-args"]), /^REVISION=\$\{\{ github\.sha \}\}$/m, "the Containerfile's ARG");
  assert.match(containerfile, /^ARG REVISION=/m);
});

Deno.test("the release carries both binaries, their SHA-256 sums, an SPDX SBOM and the chart at the tag's version", () => {
  const sbom = stepUsing("anchore/sbom-action");
  assert.equal(sbom.with?.["format"], "spdx-json");
  assert.equal(sbom.with?.["output-file"], "release/extractedprism-${{ steps.version.outputs.version }}.spdx.json");
  const sums = steps.findIndex((s) => s.run?.includes("sha256sum -- * > SHA256SUMS"));
  assert.ok(sums > steps.indexOf(sbom), "the sums cover the SBOM too");
  const chart = steps.find((s) => s.run?.includes("helm package"))!;
  assert.match(chart.run!, /--version "\$VERSION" --app-version "\$VERSION" --destination release/);
  assert.equal(chart.env?.["VERSION"], "${{ steps.version.outputs.version }}");
  const publish = steps.at(-1)!;
  assert.match(publish.run!, /gh release create "\$TAG" "\$\{flags\[@\]\}" release\/\*$/m);
  assert.equal(publish.env?.["TAG"], "${{ github.ref_name }}");
});

Deno.test("every action is pinned by a full commit SHA, its version in a comment", () => {
  const uses = [...text.matchAll(/^\s*(?:- )?uses: (\S+)(.*)$/gm)];
  assert.ok(uses.length >= 6);
  for (const [, ref, comment] of uses) {
    assert.match(ref!, /^[\w-]+\/[\w-]+@[0-9a-f]{40}$/, `${ref} is pinned by commit`);
    assert.match(comment!, /^ # v\d+\.\d+\.\d+$/, `${ref} names its version`);
  }
});

/** Runs the version step's script as the runner would, in a directory with the given versions. */
async function versionStep(tag: string, program: string, app: string): Promise<{ code: number; out: string }> {
  const step = steps.find((s) => s.id === "version")!;
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/deploy/helm/extractedprism`, { recursive: true });
    await Deno.writeTextFile(`${dir}/deno.json`, JSON.stringify({ ...denoJson, version: program }, null, 2));
    const chart = await Deno.readTextFile(new URL("deploy/helm/extractedprism/Chart.yaml", REPO_ROOT));
    await Deno.writeTextFile(
      `${dir}/deploy/helm/extractedprism/Chart.yaml`,
      chart.replace(/^appVersion: .*$/m, `appVersion: "${app}"`),
    );
    await Deno.writeTextFile(`${dir}/output`, "");
    const r = await new Deno.Command("bash", {
      args: ["-c", step.run!],
      cwd: dir,
      clearEnv: true,
      env: {
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
        TAG: tag,
        REPOSITORY: "Example/ExtractedPrism",
        GITHUB_OUTPUT: `${dir}/output`,
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(r.stdout) + await Deno.readTextFile(`${dir}/output`);
    return { code: r.code, out };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("the version step passes a tag equal to deno.json's and the chart's version, and refuses the rest", async () => {
  assert.equal(
    (await Deno.readTextFile(new URL("deploy/helm/extractedprism/Chart.yaml", REPO_ROOT))).match(
      /^appVersion: "(.*)"$/m,
    )?.[1],
    denoJson.version,
    "today's chart and program agree",
  );
  const ok = await versionStep(`v${denoJson.version}`, denoJson.version, denoJson.version);
  assert.equal(ok.code, 0, ok.out);
  assert.equal(
    ok.out,
    `version=${denoJson.version}\nimage=ghcr.io/example/extractedprism\nprerelease=false\n`,
  );
  const rc = await versionStep("v1.2.3-rc.1", "1.2.3-rc.1", "1.2.3-rc.1");
  assert.match(rc.out, /prerelease=true/);
  const program = await versionStep("v9.9.9", "0.1.0", "9.9.9");
  assert.equal(program.code, 1);
  assert.match(program.out, /::error::Tag 'v9\.9\.9' is version '9\.9\.9', but deno\.json says '0\.1\.0'/);
  const chart = await versionStep("v9.9.9", "9.9.9", "0.1.0");
  assert.equal(chart.code, 1);
  assert.match(chart.out, /Chart\.yaml's appVersion '0\.1\.0'/);
  const bad = await versionStep("vnext", "0.1.0", "0.1.0");
  assert.equal(bad.code, 1);
  assert.match(bad.out, /Cannot release 'vnext': expected a tag such as v1\.2\.3/);
});
