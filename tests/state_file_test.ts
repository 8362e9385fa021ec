import assert from "node:assert/strict";
import { type Endpoint, endpointKey } from "../lib/endpoint.ts";
import { persistToStateFile, readStateFile, stateFileProvider, writeStateFile } from "../lib/discovery/state_file.ts";
import { staticProvider } from "../lib/discovery/static.ts";
import { LogCapture } from "./support/log_capture.ts";
import { ManualProvider } from "./support/manual_provider.ts";
import { waitFor } from "./support/net.ts";
import { withDeadline } from "./support/deadline.ts";
import { readInChild } from "./support/read_in_child.ts";

const STATE_FILE_MODULE = new URL("../lib/discovery/state_file.ts", import.meta.url).href;

const A: Endpoint = { host: "10.0.0.1", port: 6443 };
const B: Endpoint = { host: "fd00::2", port: 6443 };
const C: Endpoint = { host: "10.0.0.3", port: 443 };

async function tempDir(): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir({ prefix: "ep_state_" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

/** Runs a provider until it has yielded `count` sets or logged a warning, then stops it; returns what it yielded. */
async function collect(
  run: (signal: AbortSignal) => AsyncIterable<readonly Endpoint[]>,
  logs: LogCapture,
  count: number,
): Promise<string[][]> {
  const ctrl = new AbortController();
  const sets: string[][] = [];
  void logs.waitFor((r) => r.level === "warning", 5000).then(() => ctrl.abort(), () => ctrl.abort());
  await withDeadline(
    (async () => {
      for await (const set of run(ctrl.signal)) {
        sets.push(set.map(endpointKey));
        if (sets.length >= count) ctrl.abort();
      }
    })(),
    "the provider's sets",
  );
  return sets;
}

Deno.test("the state file round-trips endpoints in a versioned JSON document", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/endpoints.json`;
  await writeStateFile(path, [A, B], { now: () => new Date("2026-01-02T03:04:05.000Z") });
  const json = JSON.parse(await Deno.readTextFile(path));
  assert.deepEqual(json, {
    version: 1,
    endpoints: ["10.0.0.1:6443", "[fd00::2]:6443"],
    updated: "2026-01-02T03:04:05.000Z",
  });
  assert.deepEqual((await readStateFile(path)).map(endpointKey), ["10.0.0.1:6443", "[fd00::2]:6443"]);
});

Deno.test("writeStateFile replaces the file atomically and leaves no temporary file", async (t) => {
  await using dir = await tempDir();
  const path = `${dir.path}/endpoints.json`;
  await t.step("a second write replaces the first", async () => {
    await writeStateFile(path, [A]);
    await writeStateFile(path, [C]);
    assert.deepEqual((await readStateFile(path)).map(endpointKey), ["10.0.0.3:443"]);
    const names = [];
    for await (const e of Deno.readDir(dir.path)) names.push(e.name);
    assert.deepEqual(names, ["endpoints.json"]);
  });
  await t.step("an empty set is refused and the saved file is kept", async () => {
    await assert.rejects(
      writeStateFile(path, []),
      (e: unknown) =>
        e instanceof RangeError && e.message === `Cannot write state file '${path}': expected at least one endpoint`,
    );
    assert.deepEqual((await readStateFile(path)).map(endpointKey), ["10.0.0.3:443"]);
  });
  await t.step("a failed write names the file, keeps the old one and removes its temporary file", async () => {
    await Deno.mkdir(`${dir.path}/blocker.json`);
    await assert.rejects(writeStateFile(`${dir.path}/blocker.json`, [A]), /Cannot write state file '.*blocker\.json'/);
    const names = [];
    for await (const e of Deno.readDir(dir.path)) names.push(e.name);
    assert.deepEqual(names.sort(), ["blocker.json", "endpoints.json"]);
    await assert.rejects(writeStateFile(`${dir.path}/missing/endpoints.json`, [A]), /Cannot write state file/);
  });
});

Deno.test("a corrupt or missing state file is refused with a clear message", async (t) => {
  await using dir = await tempDir();
  const cases: [string, string | undefined, RegExp][] = [
    ["missing", undefined, /it does not exist/],
    ["empty", "", /found an empty file/],
    ["whitespace", " \n", /found an empty file/],
    ["null", "null", /found null/],
    ["truncated", '{"version":1,"endpoints":["10.0.0.1:64', /does not parse \(truncated or garbage\)/],
    ["garbage", "\u0000\u0001garbage", /does not parse/],
    ["array", '["10.0.0.1:6443"]', /found an array/],
    ["number", "42", /found number/],
    ["no version", '{"endpoints":["10.0.0.1:6443"]}', /expected version 1, found undefined/],
    ["other version", '{"version":2,"endpoints":["10.0.0.1:6443"]}', /expected version 1, found 2/],
    ["empty list", '{"version":1,"endpoints":[]}', /non-empty 'endpoints' list/],
    ["null list", '{"version":1,"endpoints":null}', /non-empty 'endpoints' list/],
    ["bad endpoint", '{"version":1,"endpoints":["10.0.0.1"]}', /expected 'host:port'/],
    ["non-string endpoint", '{"version":1,"endpoints":[{"host":"10.0.0.1"}]}', /found \{"host":"10.0.0.1"\}/],
    ["too large", `{"version":1,"endpoints":["127.0.0.1:6443"],"pad":"${"x".repeat(1 << 20)}"}`, /more than 1048576/],
  ];
  for (const [name, content, message] of cases) {
    await t.step(name, async () => {
      const path = `${dir.path}/${name.replaceAll(" ", "_")}.json`;
      if (content !== undefined) await Deno.writeTextFile(path, content);
      await assert.rejects(readStateFile(path), (e: unknown) => {
        assert.ok(e instanceof Error);
        assert.ok(e.message.startsWith(`Cannot read state file '${path}': `), e.message);
        assert.match(e.message, message);
        assert.ok(!e.message.includes("\n"));
        return true;
      });
    });
  }
});

Deno.test("stateFileProvider yields a valid file once and stays until stopped", async () => {
  await using logs = await LogCapture.start();
  await using dir = await tempDir();
  const path = `${dir.path}/endpoints.json`;
  await writeStateFile(path, [A, B]);
  const ctrl = new AbortController();
  const it = stateFileProvider(path).run(ctrl.signal)[Symbol.asyncIterator]();
  const first = await it.next();
  assert.deepEqual(first.value?.map(endpointKey), ["10.0.0.1:6443", "[fd00::2]:6443"]);
  let ended = false;
  const rest = it.next().then((r) => (ended = true, r));
  await Promise.resolve();
  assert.equal(ended, false);
  ctrl.abort();
  assert.equal((await rest).done, true);
  assert.deepEqual(logs.messages("warning"), []);
});

Deno.test("stateFileProvider ignores every corrupt form with exactly one warning and yields nothing", async (t) => {
  await using dir = await tempDir();
  const forms: [string, string | undefined][] = [
    ["missing", undefined],
    ["empty", ""],
    ["null", "null"],
    ["truncated", '{"version":1,"endpoints":["10.0.0.1:6443","10.0'],
    ["garbage", "not json at all"],
  ];
  for (const [name, content] of forms) {
    await t.step(name, async () => {
      await using logs = await LogCapture.start();
      const path = `${dir.path}/${name}.json`;
      if (content !== undefined) await Deno.writeTextFile(path, content);
      const sets = await collect((s) => stateFileProvider(path).run(s), logs, 1);
      assert.deepEqual(sets, []);
      const warnings = logs.messages("warning");
      assert.equal(warnings.length, 1);
      assert.match(warnings[0] ?? "", /^Ignoring the state file: Cannot read state file/);
    });
  }
});

Deno.test("persistToStateFile saves every new set beside the stream and survives a failed write", async (t) => {
  await using logs = await LogCapture.start();
  await using dir = await tempDir();
  const path = `${dir.path}/endpoints.json`;
  const source = new ManualProvider("kubernetes");
  const ctrl = new AbortController();
  const p = persistToStateFile(source, path);
  assert.equal(p.name, "kubernetes");
  const it = p.run(ctrl.signal)[Symbol.asyncIterator]();
  const saves = () => logs.records.filter((r) => r.message[0] === "Saved ").length;
  const failures = () => logs.messages("warning").filter((m) => m.startsWith("Cannot save the endpoints")).length;
  const savedKeys = async () => (await readStateFile(path)).map(endpointKey);

  await t.step("a set is passed on at once and saved", async () => {
    source.push([A, B]);
    assert.deepEqual((await it.next()).value?.map(endpointKey), ["10.0.0.1:6443", "[fd00::2]:6443"]);
    await waitFor(() => saves() === 1, 5000, "the first save");
    assert.deepEqual(await savedKeys(), ["10.0.0.1:6443", "[fd00::2]:6443"]);
  });
  await t.step("an empty set is passed on but never saved", async () => {
    source.push([]);
    assert.deepEqual((await it.next()).value, []);
    source.push([C]);
    assert.deepEqual((await it.next()).value?.map(endpointKey), ["10.0.0.3:443"]);
    await waitFor(() => saves() === 2, 5000, "the second save");
    assert.deepEqual(await savedKeys(), ["10.0.0.3:443"]);
  });
  await t.step("the same set in another order is not rewritten", async () => {
    source.push([B, A]);
    await it.next();
    await waitFor(() => saves() === 3, 5000, "the third save");
    const before = await Deno.readTextFile(path);
    source.push([A, B]);
    await it.next();
    source.push([C]);
    await it.next();
    await waitFor(() => saves() === 4, 5000, "the fourth save");
    assert.deepEqual(await savedKeys(), ["10.0.0.3:443"]);
    assert.notEqual(before, await Deno.readTextFile(path));
    assert.equal(saves(), 4);
  });
  await t.step("a failed write is a warning and the stream goes on", async () => {
    await Deno.remove(path);
    await Deno.mkdir(path);
    source.push([A]);
    assert.deepEqual((await it.next()).value?.map(endpointKey), ["10.0.0.1:6443"]);
    await waitFor(() => failures() === 1, 5000, "the failed save");
    await Deno.remove(path);
    source.push([B]);
    assert.deepEqual((await it.next()).value?.map(endpointKey), ["[fd00::2]:6443"]);
    await waitFor(() => saves() === 5, 5000, "the save after the failure");
    assert.deepEqual(await savedKeys(), ["[fd00::2]:6443"]);
  });
  await t.step("stopping finishes the pending save", async () => {
    source.push([C, A]);
    await it.next();
    ctrl.abort();
    assert.equal((await it.next()).done, true);
    assert.deepEqual(await savedKeys(), ["10.0.0.3:443", "10.0.0.1:6443"]);
    assert.equal(source.stopped, 1);
  });
});

Deno.test("persistToStateFile ends when aborted while its consumer holds a set", async () => {
  await using dir = await tempDir();
  const ctrl = new AbortController();
  const it = persistToStateFile(staticProvider([A]), `${dir.path}/endpoints.json`).run(ctrl.signal)[
    Symbol.asyncIterator
  ]();
  assert.deepEqual((await it.next()).value?.map(endpointKey), ["10.0.0.1:6443"]);
  ctrl.abort();
  assert.equal((await it.next()).done, true);
  assert.deepEqual((await readStateFile(`${dir.path}/endpoints.json`)).map(endpointKey), ["10.0.0.1:6443"]);
});

Deno.test("a state file that is a device, a FIFO, a directory or too large is refused at once with one line", async (t) => {
  await using dir = await tempDir();
  const fifo = `${dir.path}/fifo.json`;
  const made = await new Deno.Command("mkfifo", { args: [fifo], stdout: "null", stderr: "null" }).output();
  assert.ok(made.success, "mkfifo");
  const big = `${dir.path}/big.json`;
  await Deno.writeTextFile(big, `{"version":1,"endpoints":["127.0.0.1:6443"],"pad":"${"x".repeat(2 << 20)}"}`);
  await Deno.mkdir(`${dir.path}/dir.json`);
  await Deno.symlink("/dev/zero", `${dir.path}/zero.json`);
  const cases: [string, string, RegExp][] = [
    ["/dev/zero", "/dev/zero", /expected a regular file, found a character device/],
    ["a symbolic link to /dev/zero", `${dir.path}/zero.json`, /expected a regular file, found a character device/],
    ["a FIFO", fifo, /expected a regular file, found a FIFO/],
    ["a directory", `${dir.path}/dir.json`, /expected a regular file, found a directory/],
    ["a 2 MiB regular file", big, /more than 1048576/],
  ];
  let passed = true;
  for (const [name, path, message] of cases) {
    passed = await t.step(name, async () => {
      // A child process, so that a read that never ends or a blocked open fails this test instead of hanging it.
      const { message: line, peakRssKiB } = await readInChild(STATE_FILE_MODULE, "(m, p) => m.readStateFile(p)", path);
      assert.ok(line.startsWith(`Cannot read state file '${path}': `), line);
      assert.match(line, message);
      assert.ok(!line.includes("\n"), line);
      assert.ok(peakRssKiB < 256 * 1024, `peak RSS ${peakRssKiB} KiB`);
    }) && passed;
  }
  // In this process only once each is known to end: a blocked open could not be cancelled.
  if (passed) {
    await t.step("stateFileProvider ignores each with exactly one warning", async () => {
      for (const [, path] of cases) {
        await using logs = await LogCapture.start();
        const sets = await collect((s) => stateFileProvider(path).run(s), logs, 1);
        assert.deepEqual(sets, []);
        const warnings = logs.messages("warning");
        assert.equal(warnings.length, 1);
        assert.match(warnings[0] ?? "", /^Ignoring the state file: Cannot read state file/);
      }
    });
  }
});

Deno.test("writeStateFile never writes in place: a hard link to the old file keeps the old content", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/endpoints.json`;
  await writeStateFile(path, [A]);
  const before = await Deno.readTextFile(path);
  // An in-place write (truncate, then write) would change the content seen through every link to the inode; only a
  // new file renamed over the name leaves the old inode, and so a reader that opened it, untouched.
  await Deno.link(path, `${dir.path}/old.json`);
  const oldIno = (await Deno.stat(path)).ino;
  await writeStateFile(path, [B, C]);
  assert.equal(await Deno.readTextFile(`${dir.path}/old.json`), before);
  assert.notEqual((await Deno.stat(path)).ino, oldIno);
  assert.deepEqual((await readStateFile(path)).map(endpointKey), ["[fd00::2]:6443", "10.0.0.3:443"]);
});
