/**
 * deploy/systemd/upgrade, exercised as far as a machine without systemd allows: `systemctl`, `ss` and `journalctl` are
 * stand-ins that keep the units' state in files and record every call, so the test checks the order of the hand-over
 * (start the other colour, wait for its own listener and a healthy upstream, enable it, stop the old one) and the
 * rollback when the new version never comes up.
 */
import assert from "node:assert/strict";
import { CHILD_MS } from "./support/deadline.ts";
import { REPO_ROOT } from "./support/main_process.ts";

const SCRIPT = new URL("deploy/systemd/upgrade", REPO_ROOT).pathname;

/** The stand-ins: units are files in $STATE; `start` makes a "process" that listens and logs as $BEHAVIOUR says. */
const STUBS: Record<string, string> = {
  systemctl: `#!/bin/bash
echo "systemctl $*" >> "$STATE/calls"
q=""; [ "$2" = "-q" ] && q=1
case $1 in
  is-active) u=\${3:-$2}; [ -e "$STATE/active-$u" ] ;;
  start)
    echo 4242 > "$STATE/active-$2"
    if [ "$BEHAVIOUR" != crash ]; then echo "users:((\\"extractedprism\\",pid=4242,fd=10))" >> "$STATE/listening"; fi
    if [ "$BEHAVIOUR" = healthy ]; then
      echo '{"level":"INFO","message":"Upstream 127.0.0.1:6443 is healthy (was unknown)","to":"healthy"}' > "$STATE/journal-$2"
    fi
    if [ "$BEHAVIOUR" = crash ]; then rm -f "$STATE/active-$2"; fi ;;
  stop) rm -f "$STATE/active-$2" ;;
  show) cat "$STATE/active-$5" 2>/dev/null || echo 0 ;;
  enable|disable) : ;;
  *) exit 3 ;;
esac
`,
  ss: `#!/bin/bash
echo "ss $*" >> "$STATE/calls"
echo 'LISTEN 0 4096 127.0.0.1:7445 0.0.0.0:* users:(("extractedprism",pid=1111,fd=10))'
cat "$STATE/listening" 2>/dev/null || true
`,
  journalctl: `#!/bin/bash
echo "journalctl $*" >> "$STATE/calls"
cat "$STATE/journal-$3" 2>/dev/null || true
`,
};

interface Run {
  readonly code: number;
  readonly stderr: string;
  readonly calls: string[];
  readonly binary: string;
  readonly previous: string | undefined;
}

async function upgrade(active: string, behaviour: "healthy" | "never" | "crash", timeout = 2): Promise<Run> {
  const dir = await Deno.makeTempDir({ prefix: "ep_upgrade_" });
  try {
    const bin = `${dir}/bin`;
    const state = `${dir}/state`;
    await Deno.mkdir(bin);
    await Deno.mkdir(state);
    for (const [name, text] of Object.entries(STUBS)) {
      await Deno.writeTextFile(`${bin}/${name}`, text);
      await Deno.chmod(`${bin}/${name}`, 0o755);
    }
    await Deno.writeTextFile(`${state}/active-${active}`, "1111\n");
    await Deno.writeTextFile(`${dir}/extractedprism`, "old\n");
    await Deno.writeTextFile(`${dir}/new-extractedprism`, "new\n");
    await Deno.chmod(`${dir}/new-extractedprism`, 0o755);
    await Deno.writeTextFile(`${dir}/extractedprism.env`, "EP_ENDPOINTS=127.0.0.1:6443\n");
    const r = await new Deno.Command("bash", {
      args: [SCRIPT, `${dir}/new-extractedprism`, String(timeout)],
      clearEnv: true,
      env: {
        PATH: `${bin}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
        STATE: state,
        BEHAVIOUR: behaviour,
        EP_UPGRADE_BINARY: `${dir}/extractedprism`,
        EP_UPGRADE_ENV_FILE: `${dir}/extractedprism.env`,
      },
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(CHILD_MS),
    }).output();
    const calls = (await Deno.readTextFile(`${state}/calls`)).split("\n").filter((l) =>
      l.startsWith("systemctl ") && !l.startsWith("systemctl is-active") && !l.startsWith("systemctl show")
    );
    const previous = await Deno.readTextFile(`${dir}/extractedprism.previous`).catch(() => undefined);
    return {
      code: r.code,
      stderr: new TextDecoder().decode(r.stderr),
      calls,
      binary: await Deno.readTextFile(`${dir}/extractedprism`),
      previous,
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("the first zero-gap upgrade moves from extractedprism.service to @blue: start, wait, enable, stop the old", async () => {
  const r = await upgrade("extractedprism.service", "healthy");
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.calls, [
    "systemctl start extractedprism@blue.service",
    "systemctl enable -q extractedprism@blue.service",
    "systemctl disable -q extractedprism.service",
    "systemctl stop extractedprism.service",
  ]);
  assert.equal(r.binary, "new\n");
  assert.equal(r.previous, "old\n", "the previous binary is kept beside it");
});

Deno.test("the next upgrade alternates: @blue hands over to @green", async () => {
  const r = await upgrade("extractedprism@blue.service", "healthy");
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.calls[0], "systemctl start extractedprism@green.service");
  assert.deepEqual(r.calls.at(-1), "systemctl stop extractedprism@blue.service");
});

Deno.test("a new version that never finds a healthy upstream is stopped, the old binary put back, the old unit untouched", async () => {
  const r = await upgrade("extractedprism@green.service", "never");
  assert.equal(r.code, 1);
  assert.match(r.stderr, /extractedprism@blue\.service did not become ready within 2 s/);
  assert.match(r.stderr, /extractedprism@green\.service serves on, unchanged/);
  assert.deepEqual(r.calls, [
    "systemctl start extractedprism@blue.service",
    "systemctl stop extractedprism@blue.service",
  ]);
  assert.equal(r.binary, "old\n");
});

Deno.test("a new version that exits at once is rolled back without waiting for the timeout", async () => {
  const started = performance.now();
  const r = await upgrade("extractedprism.service", "crash", 30);
  assert.equal(r.code, 1);
  assert.ok(performance.now() - started < 20_000, "it did not wait the 30 s");
  assert.equal(r.binary, "old\n");
});

Deno.test("with no extractedprism unit running the upgrade changes nothing and says why", async () => {
  const r = await upgrade("something-else.service", "healthy");
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no extractedprism unit is running/);
  assert.deepEqual(r.calls, []);
  assert.equal(r.binary, "old\n");
});
