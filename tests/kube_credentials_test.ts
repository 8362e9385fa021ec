import assert from "node:assert/strict";
import type { ExecConfig } from "../lib/kubernetes/connection.ts";
import { createCredentialSource } from "../lib/kubernetes/credentials.ts";
import { ExecPlugin } from "../lib/kubernetes/exec_credential.ts";
import { tempDir } from "./support/kube_client_fixtures.ts";
import { createTestPki } from "./support/test_pki.ts";
import { withDeadline } from "./support/deadline.ts";
import { ManualClock } from "./support/manual_clock.ts";

/** Fails unless process `pid` is gone or a zombie (killed, not yet reaped). */
async function assertGone(pid: number): Promise<void> {
  const state = await Deno.readTextFile(`/proc/${pid}/stat`).then(
    (stat) => stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3),
    () => "gone",
  );
  assert.ok(state === "gone" || state === "Z", `the plugin's child is still running (state ${state})`);
}

const opts = { sanitizeOps: true, sanitizeResources: true };
const V1 = "client.authentication.k8s.io/v1";
const signal = () => new AbortController().signal;

Deno.test("a token file is re-read at once after a 401 and otherwise at most every recheckMs", opts, async (t) => {
  await using dir = await tempDir();
  const file = `${dir.path}/token`;
  await Deno.writeTextFile(file, "first\n");
  const clock = new ManualClock();
  const creds = createCredentialSource({ origin: "test", auth: { tokenFile: file } }, {
    recheckMs: 5000,
    monotonicNow: () => clock.now(),
  });
  assert.equal((await creds.current(signal())).token, "first");

  await t.step("a rotated file is not re-read before recheckMs", async () => {
    await Deno.writeTextFile(file, "second");
    await clock.advance(4999);
    assert.equal((await creds.current(signal())).token, "first");
  });
  await t.step("it is re-read once recheckMs has passed", async () => {
    await clock.advance(1);
    assert.equal((await creds.current(signal())).token, "second");
  });
  await t.step("after invalidate() (a 401) it is re-read at once", async () => {
    await Deno.writeTextFile(file, "third");
    creds.invalidate();
    assert.equal((await creds.current(signal())).token, "third");
  });
  await t.step("a file that disappears keeps the last token; an empty one is an error", async () => {
    await Deno.remove(file);
    creds.invalidate();
    assert.equal((await creds.current(signal())).token, "third");
    await Deno.writeTextFile(file, "  \n");
    creds.invalidate();
    await assert.rejects(creds.current(signal()), { message: `Cannot use token file '${file}': it is empty` });
  });
  creds.close();
});

Deno.test("a token file that cannot be read at first is an error naming it", opts, async () => {
  const creds = createCredentialSource({ origin: "test", auth: { tokenFile: "/nonexistent/token" } });
  await assert.rejects(creds.current(signal()), /^Error: Cannot read token file '\/nonexistent\/token': No such file/);
  creds.close();
});

Deno.test("client certificate files are reloaded when they change, bumping the TLS version", opts, async (t) => {
  await using pki = await createTestPki();
  await using dir = await tempDir();
  const combined = `${dir.path}/kubelet-client-current.pem`;
  await Deno.writeTextFile(combined, pki.client.combined);
  const clock = new ManualClock();
  const creds = createCredentialSource({
    origin: "test",
    ca: { file: pki.ca.certPath },
    auth: { clientCert: { cert: { file: combined }, key: { file: combined } } },
  }, { recheckMs: 1000, monotonicNow: () => clock.now() });

  const first = await creds.current(signal());
  await t.step("one combined PEM file yields the certificate and the key", () => {
    assert.equal(first.tls.certPem?.trim(), pki.client.cert.trim());
    assert.match(first.tls.keyPem ?? "", /^-----BEGIN EC PRIVATE KEY-----/);
    assert.equal(first.tls.caPem?.trim(), pki.ca.cert.trim());
    assert.equal(first.token, undefined);
  });
  await t.step("unchanged files keep the version", async () => {
    await clock.advance(1000);
    assert.equal((await creds.current(signal())).tls.version, first.tls.version);
  });
  await t.step("a rotated file is picked up after recheckMs with a new version", async () => {
    const next = await pki.issueClientCert({ commonName: "system:node:rotated" });
    await Deno.writeTextFile(combined, next.combined);
    const before = await creds.current(signal());
    assert.equal(before.tls.version, first.tls.version, "not before recheckMs");
    await clock.advance(1000);
    const after = await creds.current(signal());
    assert.equal(after.tls.certPem?.trim(), next.cert.trim());
    assert.notEqual(after.tls.version, first.tls.version);
  });
  await t.step("a file without a certificate is refused by name", async () => {
    await Deno.writeTextFile(combined, "garbage");
    creds.invalidate();
    await assert.rejects(creds.current(signal()), {
      message: `Cannot use client-certificate '${combined}': expected a PEM certificate`,
    });
  });
  creds.close();
});

Deno.test("inline certificate data is used as given", opts, async () => {
  await using pki = await createTestPki();
  const creds = createCredentialSource({
    origin: "kubeconfig 'k'",
    ca: { data: pki.ca.cert },
    auth: { clientCert: { cert: { data: pki.client.cert }, key: { data: "no key here" } }, token: "t" },
  });
  await assert.rejects(creds.current(signal()), {
    message: "Cannot use client-key-data of kubeconfig 'k': expected a PEM private key",
  });
  creds.close();
});

/** Writes an exec plugin script that counts its runs in `count` and prints the token `tok-N`. */
async function writePlugin(dir: string, body: string): Promise<string> {
  const path = `${dir}/plugin.sh`;
  await Deno.writeTextFile(
    path,
    `#!/bin/sh\nn=$(cat "${dir}/count" 2>/dev/null || echo 0); n=$((n+1)); echo "$n" > "${dir}/count"\n${body}\n`,
    { mode: 0o755 },
  );
  return path;
}

const credential = (status: string, apiVersion = V1) =>
  `printf '%s' '{"apiVersion":"${apiVersion}","kind":"ExecCredential","status":${status}}'`;

Deno.test("an exec plugin's credential is cached until its expirationTimestamp", opts, async (t) => {
  await using dir = await tempDir();
  const script = await writePlugin(
    dir.path,
    `printf '{"apiVersion":"${V1}","kind":"ExecCredential","status":{"token":"tok-%s","expirationTimestamp":"2030-01-01T00:00:00Z"}}' "$n"`,
  );
  let wall = Date.UTC(2029, 11, 31, 23, 59, 0);
  const config: ExecConfig = { apiVersion: V1, command: script, args: [], env: [] };
  const creds = createCredentialSource({ origin: "test", auth: { exec: config } }, { wallNow: () => wall });
  const runs = async () => Number(await Deno.readTextFile(`${dir.path}/count`));

  await t.step("the first request runs the plugin", async () => {
    assert.equal((await creds.current(signal())).token, "tok-1");
    assert.equal(await runs(), 1);
  });
  await t.step("before the expiry the cached token is used", async () => {
    wall = Date.UTC(2029, 11, 31, 23, 59, 59);
    assert.equal((await creds.current(signal())).token, "tok-1");
    assert.equal(await runs(), 1);
  });
  await t.step("at the expiry the plugin runs again", async () => {
    wall = Date.UTC(2030, 0, 1);
    assert.equal((await creds.current(signal())).token, "tok-2");
    assert.equal(await runs(), 2);
  });
  await t.step("after a 401 it runs again even before the expiry", async () => {
    wall = Date.UTC(2029, 0, 1);
    creds.invalidate();
    assert.equal((await creds.current(signal())).token, "tok-3");
    assert.equal(await runs(), 3);
  });
  await t.step("concurrent requests share one run", async () => {
    creds.invalidate();
    const got = await Promise.all([creds.current(signal()), creds.current(signal()), creds.current(signal())]);
    assert.deepEqual(got.map((c) => c.token), ["tok-4", "tok-4", "tok-4"]);
    assert.equal(await runs(), 4);
  });
  creds.close();
});

Deno.test("an exec plugin gets its args, env and KUBERNETES_EXEC_INFO", opts, async () => {
  await using dir = await tempDir();
  const script = await writePlugin(
    dir.path,
    `printf '%s\\n' "$1" "$GREETING" "$KUBERNETES_EXEC_INFO" > "${dir.path}/seen"\n` +
      credential('{"token":"t"}', "client.authentication.k8s.io/v1beta1"),
  );
  const plugin = new ExecPlugin({
    apiVersion: "client.authentication.k8s.io/v1beta1",
    command: script,
    args: ["--first"],
    env: [{ name: "GREETING", value: "hello" }],
    cluster: { server: "https://10.0.0.1:6443" },
  });
  assert.equal((await plugin.get(signal())).token, "t");
  const [arg, env, info] = (await Deno.readTextFile(`${dir.path}/seen`)).split("\n");
  assert.equal(arg, "--first");
  assert.equal(env, "hello");
  assert.deepEqual(JSON.parse(info ?? ""), {
    apiVersion: "client.authentication.k8s.io/v1beta1",
    kind: "ExecCredential",
    spec: { interactive: false, cluster: { server: "https://10.0.0.1:6443" } },
  });
  plugin.close();
});

Deno.test("an exec plugin may return a client certificate instead of a token", opts, async () => {
  await using pki = await createTestPki();
  await using dir = await tempDir();
  const status = JSON.stringify({ clientCertificateData: pki.client.cert, clientKeyData: pki.client.key });
  await Deno.writeTextFile(`${dir.path}/status.json`, status);
  const script = await writePlugin(
    dir.path,
    `printf '{"apiVersion":"${V1}","kind":"ExecCredential","status":%s}' "$(cat "${dir.path}/status.json")"`,
  );
  const creds = createCredentialSource({
    origin: "test",
    auth: { exec: { apiVersion: V1, command: script, args: [], env: [] } },
  });
  const c = await creds.current(signal());
  assert.equal(c.token, undefined);
  assert.equal(c.tls.certPem, pki.client.cert);
  assert.equal(c.tls.keyPem, pki.client.key);
  creds.close();
});

Deno.test("exec plugin failures are one-line errors naming the command", opts, async (t) => {
  await using dir = await tempDir();
  const run = async (body: string, extra: Partial<ExecConfig> = {}) => {
    const script = await writePlugin(dir.path, body);
    const plugin = new ExecPlugin({ apiVersion: V1, command: script, args: [], env: [], ...extra });
    try {
      await plugin.get(signal());
    } catch (e) {
      return (e as Error).message.replaceAll(script, "PLUGIN");
    } finally {
      plugin.close();
    }
    assert.fail("expected an error");
  };
  await t.step("a missing command shows the install hint", async () => {
    const plugin = new ExecPlugin({
      apiVersion: V1,
      command: `${dir.path}/missing`,
      args: [],
      env: [],
      installHint: "Install it with: apt install cred",
    });
    await assert.rejects(plugin.get(signal()), {
      message: `Cannot run exec credential plugin '${dir.path}/missing': not found\nInstall it with: apt install cred`,
    });
    plugin.close();
  });
  await t.step("a non-zero exit shows the last line of stderr", async () => {
    assert.equal(
      await run("echo 'first' >&2; echo 'login required' >&2; exit 3"),
      "Cannot get credentials from exec plugin 'PLUGIN': exited with status 3: login required",
    );
  });
  await t.step("output that is not JSON", async () => {
    assert.equal(
      await run("echo hello"),
      "Cannot use the output of exec plugin 'PLUGIN': expected ExecCredential JSON on stdout",
    );
  });
  await t.step("another apiVersion than the kubeconfig's", async () => {
    assert.equal(
      await run(credential('{"token":"t"}', "client.authentication.k8s.io/v1beta1")),
      `Cannot use the output of exec plugin 'PLUGIN': expected apiVersion '${V1}' as in the kubeconfig, got ` +
        "'client.authentication.k8s.io/v1beta1'",
    );
  });
  await t.step("neither a token nor a certificate", async () => {
    assert.equal(
      await run(credential("{}")),
      "Cannot use the output of exec plugin 'PLUGIN': expected status.token or status.clientCertificateData and " +
        "status.clientKeyData",
    );
  });
  await t.step("a bad expirationTimestamp", async () => {
    assert.equal(
      await run(credential('{"token":"t","expirationTimestamp":"soon"}')),
      "Cannot use the output of exec plugin 'PLUGIN': status.expirationTimestamp 'soon': expected an RFC 3339 time",
    );
  });
  await t.step("a plugin that hangs is killed after its time limit", async () => {
    const script = await writePlugin(dir.path, "exec sleep 30");
    const plugin = new ExecPlugin({ apiVersion: V1, command: script, args: [], env: [] }, { timeoutMs: 200 });
    await assert.rejects(plugin.get(signal()), {
      message: `Cannot get credentials from exec plugin '${script}': it did not finish in 200 ms`,
    });
    plugin.close();
  });
  await t.step("a plugin whose child holds stdout open is killed with that child at its time limit", async () => {
    const pidFile = `${dir.path}/grandchild.pid`;
    const script = await writePlugin(dir.path, `sleep 1000 & echo $! > "${pidFile}"; wait`);
    const plugin = new ExecPlugin({ apiVersion: V1, command: script, args: [], env: [] }, { timeoutMs: 300 });
    const grandchild = async () => Number((await Deno.readTextFile(pidFile)).trim());
    try {
      await withDeadline(
        assert.rejects(plugin.get(signal()), {
          message: `Cannot get credentials from exec plugin '${script}': it did not finish in 300 ms`,
        }),
        "the plugin run to end",
      );
      await assertGone(await grandchild());
    } finally {
      // On a failure, end the child here so that the run (and this test) can finish.
      try {
        Deno.kill(await grandchild(), "SIGKILL");
      } catch {
        // Gone, as it should be.
      }
      plugin.close();
    }
  });
  await t.step(
    "a plugin that answers and leaves a child holding stdout is done at once, the child killed",
    async () => {
      const pidFile = `${dir.path}/leftover.pid`;
      const script = await writePlugin(dir.path, `sleep 1000 & echo $! > "${pidFile}"\n${credential('{"token":"t"}')}`);
      // A long timeout: the answer must come from the plugin's exit, not from the timeout.
      const plugin = new ExecPlugin({ apiVersion: V1, command: script, args: [], env: [] }, { timeoutMs: 30_000 });
      const leftover = async () => Number((await Deno.readTextFile(pidFile)).trim());
      try {
        assert.equal((await withDeadline(plugin.get(signal()), "the plugin run to end")).token, "t");
        await assertGone(await leftover());
      } finally {
        try {
          Deno.kill(await leftover(), "SIGKILL");
        } catch {
          // Gone, as it should be.
        }
        plugin.close();
      }
    },
  );
  await t.step("stdout past 1 MiB is refused", async () => {
    assert.equal(
      await run("head -c 3000000 /dev/zero"),
      "Cannot get credentials from exec plugin 'PLUGIN': expected at most 1048576 bytes on stdout, found more",
    );
  });
});
