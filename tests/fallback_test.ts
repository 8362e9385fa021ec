import assert from "node:assert/strict";
import { type Endpoint, endpointKey } from "../lib/endpoint.ts";
import { withFallback } from "../lib/discovery/fallback.ts";
import { mergeProviders } from "../lib/discovery/merge.ts";
import { stateFileProvider, writeStateFile } from "../lib/discovery/state_file.ts";
import { staticProvider } from "../lib/discovery/static.ts";
import { LogCapture } from "./support/log_capture.ts";
import { ManualProvider } from "./support/manual_provider.ts";
import { waitFor } from "./support/net.ts";
import { withDeadline } from "./support/deadline.ts";

const ep = (host: string, port = 6443): Endpoint => ({ host, port });
const keys = (r: IteratorResult<readonly Endpoint[]>) => r.done ? "done" : r.value.map(endpointKey).join(",");

Deno.test("withFallback yields the fallback's sets until the primary speaks, then only the primary's", async () => {
  const primary = new ManualProvider("kubernetes");
  const fallback = new ManualProvider("state-file");
  const p = withFallback(primary, fallback);
  assert.equal(p.name, "kubernetes");
  const ctrl = new AbortController();
  const it = p.run(ctrl.signal)[Symbol.asyncIterator]();
  fallback.push([ep("10.0.0.1")]);
  assert.equal(keys(await withDeadline(it.next(), "the next set")), "10.0.0.1:6443");
  fallback.push([ep("10.0.0.1"), ep("10.0.0.2")]);
  assert.equal(keys(await withDeadline(it.next(), "the next set")), "10.0.0.1:6443,10.0.0.2:6443");
  primary.push([ep("10.0.0.3")]);
  assert.equal(keys(await withDeadline(it.next(), "the next set")), "10.0.0.3:6443");
  // The fallback was stopped when the primary spoke; nothing it could say is passed on.
  assert.equal(fallback.stopped, 1);
  assert.equal(fallback.signal?.aborted, true);
  primary.push([ep("10.0.0.4")]);
  assert.equal(keys(await withDeadline(it.next(), "the next set")), "10.0.0.4:6443");
  ctrl.abort();
  assert.equal(keys(await withDeadline(it.next(), "the next set")), "done");
  assert.equal(primary.stopped, 1);
});

Deno.test("withFallback drops a failing fallback and still passes on the primary", async () => {
  await using logs = await LogCapture.start();
  const primary = new ManualProvider("kubernetes");
  const fallback = new ManualProvider("state-file");
  const ctrl = new AbortController();
  const it = withFallback(primary, fallback).run(ctrl.signal)[Symbol.asyncIterator]();
  const next = it.next();
  fallback.fail(new Error("disk gone"));
  await logs.waitFor((r) => r.level === "warning");
  primary.push([ep("10.0.0.3")]);
  assert.equal(keys(await withDeadline(next, "the next set")), "10.0.0.3:6443");
  ctrl.abort();
  assert.equal(keys(await withDeadline(it.next(), "the next set")), "done");
});

Deno.test("withFallback fails when the primary fails, after stopping the fallback", async () => {
  const primary = new ManualProvider("kubernetes");
  const fallback = new ManualProvider("state-file");
  const it = withFallback(primary, fallback).run(new AbortController().signal)[Symbol.asyncIterator]();
  fallback.push([ep("10.0.0.1")]);
  assert.equal(keys(await withDeadline(it.next(), "the next set")), "10.0.0.1:6443");
  primary.fail(new Error("broken"));
  await assert.rejects(withDeadline(it.next(), "the failure"), /broken/);
  assert.equal(fallback.stopped, 1);
});

Deno.test("withFallback stops both sources when its consumer stops without aborting", async () => {
  const primary = new ManualProvider("kubernetes");
  const fallback = new ManualProvider("state-file");
  const ctrl = new AbortController();
  const it = withFallback(primary, fallback).run(ctrl.signal)[Symbol.asyncIterator]();
  fallback.push([ep("10.0.0.1")]);
  await withDeadline(it.next(), "the next set");
  await it.return?.();
  assert.equal(primary.stopped, 1);
  assert.equal(fallback.stopped, 1);
  assert.equal(ctrl.signal.aborted, false);
});

Deno.test("merged with static endpoints, the state file's set is dropped once discovery has a set", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ep_fallback_" });
  try {
    const path = `${dir}/endpoints.json`;
    await writeStateFile(path, [ep("10.0.0.8"), ep("10.0.0.9")]);
    const discovery = new ManualProvider("kubernetes");
    const ctrl = new AbortController();
    const it = mergeProviders([
      staticProvider([ep("10.0.0.1")]),
      withFallback(discovery, stateFileProvider(path)),
    ], ctrl.signal);
    // The static set and the saved set are both in use at boot (in whichever order they arrive).
    let r = await withDeadline(it.next(), "the next set");
    if (keys(r) === "10.0.0.1:6443") r = await withDeadline(it.next(), "the next set");
    assert.equal(keys(r), "10.0.0.1:6443,10.0.0.8:6443,10.0.0.9:6443");
    discovery.push([ep("10.0.0.9"), ep("10.0.0.10")]);
    // 10.0.0.8 is gone from the cluster: it must not live on through the file.
    assert.equal(keys(await withDeadline(it.next(), "the next set")), "10.0.0.1:6443,10.0.0.9:6443,10.0.0.10:6443");
    ctrl.abort();
    assert.equal(keys(await withDeadline(it.next(), "the next set")), "done");
    await waitFor(() => discovery.stopped === 1, 1000, "discovery stopped");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("withFallback ends when aborted while its consumer holds a set, without asking the sources for more", async () => {
  // staticProvider, parked at its yield, would wait forever for an abort that already happened if asked for more.
  const ctrl = new AbortController();
  const it = withFallback(staticProvider([ep("10.0.0.2")]), staticProvider([ep("10.0.0.1")])).run(ctrl.signal)[
    Symbol.asyncIterator
  ]();
  const first = keys(await withDeadline(it.next(), "the next set"));
  assert.ok(first === "10.0.0.2:6443" || first === "10.0.0.1:6443", first);
  ctrl.abort();
  assert.equal(keys(await withDeadline(it.next(), "the next set")), "done");
});

Deno.test("withFallback tolerates a primary that rejects on abort after its consumer left", async () => {
  const primary = new ManualProvider("kubernetes");
  const it = withFallback(
    {
      name: "kubernetes",
      async *run(signal) {
        yield* primary.run(signal);
        throw new Error("aborted rudely");
      },
    },
    staticProvider([ep("10.0.0.1")]),
  ).run(new AbortController().signal)[Symbol.asyncIterator]();
  assert.equal(keys(await withDeadline(it.next(), "the next set")), "10.0.0.1:6443");
  await it.return?.();
  await waitFor(() => primary.stopped === 1, 1000, "the primary stopped");
});
