/**
 * Properties of watch streams: line framing does not depend on how the bytes are chunked, and any watch body
 * (valid events, garbage, cut anywhere) leaves list+watch running with a cache that follows the valid events.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { type KubeObject } from "../lib/kubernetes/types.ts";
import { readLines } from "../lib/kubernetes/_watch_stream.ts";
import { listWatch, listWatchDeltas, type ListWatchSnapshot } from "../lib/kubernetes/list_watch.ts";
import type { KubeRequest, KubeTransport } from "../lib/kubernetes/transport.ts";
import { withDeadline } from "./support/deadline.ts";
import { ManualClock } from "./support/manual_clock.ts";
import { waitFor } from "./support/net.ts";
import { checkAsync, RUNS } from "./support/properties.ts";

/** `bytes` cut at the given points (taken modulo its length). */
function chunk(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const c of [...at, bytes.length]) {
    out.push(bytes.slice(from, c));
    from = c;
  }
  return out;
}

function streamOf(chunks: readonly Uint8Array[]): ReadableStream<Uint8Array> {
  return ReadableStream.from(chunks);
}

async function linesOf(chunks: readonly Uint8Array[]): Promise<string[]> {
  const out: string[] = [];
  for await (const line of readLines(streamOf(chunks))) out.push(line);
  return out;
}

const cuts = fc.array(fc.nat(), { maxLength: 20 });
const noNewline = fc.string({ unit: "binary", maxLength: 30 }).map((s) => s.replaceAll("\n", ""));

/** A transport whose first LIST is empty and whose first WATCH answers `body`; later requests wait for the abort. */
class OneWatch implements KubeTransport {
  #watches = 0;
  constructor(readonly body: readonly Uint8Array[]) {}
  request(req: KubeRequest): Promise<Response> {
    if (!req.path.includes("watch=1")) {
      return Promise.resolve(Response.json({ metadata: { resourceVersion: "1" }, items: [] }));
    }
    if (this.#watches++ === 0) return Promise.resolve(new Response(streamOf(this.body)));
    return new Promise((_, reject) => req.signal.addEventListener("abort", () => reject(req.signal.reason)));
  }
  close(): void {}
}

/**
 * Runs list+watch over `body` until the watch ends or fails, and returns the retry reason; with `names`, also waits
 * until the consumer holds a snapshot of exactly those object names (nothing changes after the retry: the reflector
 * is parked in its frozen backoff).
 */
async function watchOnce(body: readonly Uint8Array[], names?: readonly string[]): Promise<string> {
  const ctrl = new AbortController();
  const retried = Promise.withResolvers<string>();
  const it = listWatch({
    transport: new OneWatch(body),
    path: "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
    clock: new ManualClock(), // never advanced: time stands still
    random: () => 0.5,
    onRetry: (r) => retried.resolve(r.reason),
  }, ctrl.signal);
  let last: ListWatchSnapshot<KubeObject> | undefined;
  const pumping = (async () => {
    for await (const s of it) last = s;
  })();
  try {
    const reason = await withDeadline(retried.promise, "the watch to end");
    if (names !== undefined) {
      const want = names.join(",");
      await waitFor(() => last?.items.map((i) => i.metadata.name).join(",") === want, 1000, `the snapshot '${want}'`);
    }
    return reason;
  } finally {
    ctrl.abort();
    await withDeadline(pumping, "list+watch to stop");
  }
}

type Event = { type: "ADDED" | "MODIFIED" | "DELETED"; name: string; rv: number } | { type: "BOOKMARK"; rv: number };
const event: fc.Arbitrary<Event> = fc.oneof(
  fc.record({
    type: fc.constantFrom("ADDED" as const, "MODIFIED" as const, "DELETED" as const),
    name: fc.constantFrom("a", "b", "c", "d"),
    rv: fc.nat(1000),
  }),
  fc.record({ type: fc.constant("BOOKMARK" as const), rv: fc.nat(1000) }),
);

function eventLine(e: Event): string {
  const object = e.type === "BOOKMARK"
    ? { metadata: { resourceVersion: String(e.rv) } }
    : { metadata: { name: e.name, namespace: "default", resourceVersion: String(e.rv) } };
  return JSON.stringify({ type: e.type, object });
}

/** What the cache must hold after `events`: names by ADDED/MODIFIED, minus DELETED. */
function model(events: readonly Event[]): string[] {
  const names = new Set<string>();
  for (const e of events) {
    if (e.type === "ADDED" || e.type === "MODIFIED") names.add(e.name);
    else if (e.type === "DELETED") names.delete(e.name);
  }
  return [...names].sort();
}

/** What the cache must hold after `events`, with each object's resourceVersion: `name@rv`, sorted. */
function modelVersions(events: readonly Event[]): string[] {
  const held = new Map<string, number>();
  for (const e of events) {
    if (e.type === "ADDED" || e.type === "MODIFIED") held.set(e.name, e.rv);
    else if (e.type === "DELETED") held.delete(e.name);
  }
  return [...held].map(([name, rv]) => `${name}@${rv}`).sort();
}

/**
 * Runs list+watch in delta mode over `body` and folds every delta into a map; a `slow` consumer takes the first
 * delta, then nothing until the watch has ended (every change waits, coalesced). The folded `name@rv`s must come
 * to equal `expected`.
 */
async function foldDeltasOnce(body: readonly Uint8Array[], slow: boolean, expected: readonly string[]): Promise<void> {
  const ctrl = new AbortController();
  const retried = Promise.withResolvers<void>();
  const it = listWatchDeltas({
    transport: new OneWatch(body),
    path: "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
    clock: new ManualClock(), // never advanced: time stands still
    random: () => 0.5,
    onRetry: () => retried.resolve(),
  }, ctrl.signal);
  const held = new Map<string, KubeObject>();
  let taken = 0;
  const pumping = (async () => {
    for await (const d of it) {
      if (d.kind === "synced") {
        held.clear();
        for (const o of d.items) held.set(o.metadata.name, o);
      } else if (d.kind === "upsert") held.set(d.object.metadata.name, d.object);
      else held.delete(d.object.metadata.name);
      if (taken++ === 0 && slow) await retried.promise;
    }
  })();
  const folded = () => [...held.values()].map((o) => `${o.metadata.name}@${o.metadata.resourceVersion}`).sort();
  try {
    await withDeadline(retried.promise, "the watch to end");
    // Parked in the frozen backoff, nothing changes any more: the consumer only takes what waited.
    const want = expected.join(",");
    await waitFor(() => folded().join(",") === want, 1000, "the deltas to be folded").catch(() => {});
    assert.deepEqual(folded(), expected);
  } finally {
    ctrl.abort();
    await withDeadline(pumping, "list+watch to stop");
  }
}

Deno.test("watch stream properties", async (t) => {
  await t.step("any bytes split into lines the same way however they are chunked", async () => {
    await checkAsync(fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), cuts, async (bytes, at) => {
      assert.deepEqual(await linesOf(chunk(bytes, at)), await linesOf([bytes]));
    }));
  });
  await t.step("newline-terminated lines come back exactly, a cut-off last line is dropped", async () => {
    await checkAsync(
      fc.asyncProperty(fc.array(noNewline, { maxLength: 8 }), noNewline, cuts, async (lines, tail, at) => {
        const bytes = new TextEncoder().encode(lines.map((l) => `${l}\n`).join("") + tail);
        const expected = lines.map((l) => new TextDecoder().decode(new TextEncoder().encode(l)));
        assert.deepEqual(await linesOf(chunk(bytes, at)), expected);
      }),
    );
  });
  await t.step("valid events in any chunking leave the cache as the events say", async () => {
    await checkAsync(
      fc.asyncProperty(fc.array(event, { maxLength: 12 }), cuts, async (events, at) => {
        const body = new TextEncoder().encode(events.map((e) => `${eventLine(e)}\n`).join(""));
        assert.equal(await watchOnce(chunk(body, at), model(events)), "the watch stream ended");
      }),
      RUNS / 10,
    );
  });
  await t.step("folding the deltas of any valid events gives the cache the snapshots give, fast or slow", async () => {
    await checkAsync(
      fc.asyncProperty(fc.array(event, { maxLength: 12 }), cuts, fc.boolean(), async (events, at, slow) => {
        const body = new TextEncoder().encode(events.map((e) => `${eventLine(e)}\n`).join(""));
        await foldDeltasOnce(chunk(body, at), slow, modelVersions(events));
      }),
      RUNS / 10,
    );
  });
  await t.step("any watch body (garbage, wrong shapes, cut anywhere) ends in a one-line retry reason", async () => {
    const line = fc.oneof(
      event.map(eventLine),
      fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
      fc.record({ type: fc.constantFrom("ERROR", "ADDED", "X"), object: fc.jsonValue({ maxDepth: 2 }) })
        .map((v) => JSON.stringify(v)),
      fc.string({ unit: "binary", maxLength: 20 }),
    );
    await checkAsync(
      fc.asyncProperty(
        fc.array(line, { maxLength: 6 }),
        fc.uint8Array({ maxLength: 20 }),
        cuts,
        async (ls, tail, at) => {
          const text = new TextEncoder().encode(ls.map((l) => `${l}\n`).join(""));
          const body = new Uint8Array(text.length + tail.length);
          body.set(text);
          body.set(tail, text.length);
          assert.doesNotMatch(await watchOnce(chunk(body, at)), /\n/);
        },
      ),
      RUNS / 10,
    );
  });
});
