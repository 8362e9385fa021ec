import assert from "node:assert/strict";
import { ConfigError } from "../lib/errors.ts";
import { buildProbe, tokenFile } from "../lib/upstream/build_probe.ts";
import { LogCapture } from "./support/log_capture.ts";
import { freePorts, runMain } from "./support/main_process.ts";
import { testConfig } from "./support/net.ts";
import { createTestPki } from "./support/test_pki.ts";

Deno.test("a --health-ca-file that holds no certificate is a configuration error naming the file", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const cases: [string, string, string][] = [
      ["empty", "", "an empty file"],
      ["blank", "\n  \n", "an empty file"],
      ["text", "not a certificate\n", "no PEM certificate"],
      ["a key only", "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n", "no PEM certificate"],
    ];
    for (const [name, text, found] of cases) {
      await t.step(name, async () => {
        const path = `${dir}/${name.replaceAll(" ", "-")}.crt`;
        await Deno.writeTextFile(path, text);
        assert.throws(
          () => buildProbe(testConfig([], { healthCheck: "readyz", healthCaFile: path })),
          (e: unknown) =>
            e instanceof ConfigError &&
            e.message === `Cannot use --health-ca-file '${path}': expected PEM certificates, found ${found}`,
        );
      });
    }
    await t.step("a bundle with a certificate is accepted", async () => {
      await using pki = await createTestPki();
      const probe = buildProbe(testConfig([], { healthCheck: "readyz", healthCaFile: pki.ca.certPath }));
      assert.equal(probe.name, "readyz");
    });
    await t.step("the program exits 2 with that one line", async () => {
      const path = `${dir}/empty.crt`;
      const [bind, health] = freePorts(2) as [number, number];
      const r = await runMain([
        "--endpoints=127.0.0.1:6443",
        `--bind-port=${bind}`,
        `--health-port=${health}`,
        "--enable-discovery=false",
        "--log-level=error",
        `--health-ca-file=${path}`,
      ]);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(
        r.stderr,
        `error: Cannot use --health-ca-file '${path}': expected PEM certificates, found an empty file\n`,
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a missing --health-token-file is logged once per change, not on every probe", async () => {
  await using logs = await LogCapture.start();
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/token`;
    const token = tokenFile(path);
    const warnings = () => logs.messages("warning").filter((m) => m.includes("--health-token-file"));
    for (let i = 0; i < 3; i++) assert.equal(await token(), undefined);
    assert.equal(warnings().length, 1, "once while it stays missing");
    await Deno.writeTextFile(path, "secret\n");
    assert.equal(await token(), "secret");
    await Deno.remove(path);
    for (let i = 0; i < 3; i++) assert.equal(await token(), "secret", "the last token stays in use");
    assert.equal(warnings().length, 2, "again once it went missing again");
    assert.match(warnings()[1] ?? "", /keeping the last token read/);
    await Deno.mkdir(path);
    for (let i = 0; i < 3; i++) await token();
    assert.equal(warnings().length, 3, "again when its error changes");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
