/**
 * Hostile input from the API server: endless bodies, endless watch lines, event floods. Every test feeds an
 * in-process transport, so the bytes the client pulls are counted exactly.
 */
import assert from "node:assert/strict";
import { endpointKey } from "../lib/endpoint.ts";
import { readLines } from "../lib/kubernetes/_watch_stream.ts";
import { listWatch, type ListWatchRetry } from "../lib/kubernetes/list_watch.ts";
import { kubernetesProvider } from "../lib/discovery/kubernetes/provider.ts";
import type { KubeRequest, KubeTransport } from "../lib/kubernetes/transport.ts";
import { LogCapture } from "./support/log_capture.ts";
import { waitFor } from "./support/net.ts";

const PATH = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";
const CHUNK = 64 << 10;

/** A body that never ends (bytes of `fill`), counting what the client pulled; it errors past `cap` bytes. */
function endlessBody(fill: number, cap: number): { stream: ReadableStream<Uint8Array>; pulled: () => number } {
  let pulled = 0;
  const chunk = new Uint8Array(CHUNK).fill(fill);
  const stream = new ReadableStream<Uint8Array>({
    pull(ctrl) {
      // An unbounded reader fails here instead of growing memory until the machine swaps.
      if (pulled >= cap) return ctrl.error(new Error(`the client pulled more than ${cap} bytes`));
      pulled += chunk.length;
      ctrl.enqueue(chunk.slice());
    },
  }, { highWaterMark: 0 });
  return { stream, pulled: () => pulled };
}

/** A transport whose every request is answered by `answer`. */
function transportOf(answer: (req: KubeRequest) => Response): KubeTransport & { requests: KubeRequest[] } {
  const requests: KubeRequest[] = [];
  return {
    requests,
    request: (req) => {
      requests.push(req);
      return Promise.resolve(answer(req));
    },
    close: () => {},
  };
}

/** Runs listWatch until `count` retries, then stops it; returns the retries. */
async function retriesOf(transport: KubeTransport, count: number): Promise<ListWatchRetry[]> {
  const retries: ListWatchRetry[] = [];
  const ctrl = new AbortController();
  const run = (async () => {
    for await (const _ of listWatch({ transport, path: PATH, onRetry: (r) => retries.push(r), ...FAST }, ctrl.signal));
  })();
  try {
    await waitFor(() => retries.length >= count, 20_000, `${count} retries`);
  } finally {
    ctrl.abort();
    await run;
  }
  return retries;
}

const FAST = { random: () => 0.5, backoffBaseMs: 10, backoffMaxMs: 40, idleTimeoutMs: 10_000 } as const;

Deno.test("an endless LIST body fails the LIST at 32 MiB with one clear line, and the LIST is retried", async () => {
  const bodies: ReturnType<typeof endlessBody>[] = [];
  const transport = transportOf(() => {
    const b = endlessBody(0x20, 64 << 20);
    bodies.push(b);
    return new Response(b.stream, { status: 200 });
  });
  const retries = await retriesOf(transport, 2);
  for (const r of retries.slice(0, 2)) {
    assert.equal(r.phase, "list");
    assert.equal(r.reason, `Cannot list '${PATH}': expected a response body of at most 33554432 bytes, found more`);
  }
  for (const b of bodies.slice(0, 2)) assert.ok(b.pulled() <= (32 << 20) + CHUNK, `pulled ${b.pulled()} bytes`);
});

Deno.test("an endless error body is read only up to 64 KiB and the status is reported", async () => {
  const bodies: ReturnType<typeof endlessBody>[] = [];
  const transport = transportOf(() => {
    const b = endlessBody(0x20, 64 << 20);
    bodies.push(b);
    return new Response(b.stream, { status: 500 });
  });
  const retries = await retriesOf(transport, 2);
  assert.equal(retries[0]?.reason, `Cannot list '${PATH}': expected 200, found 500`);
  for (const b of bodies.slice(0, 2)) assert.ok(b.pulled() <= (64 << 10) + CHUNK, `pulled ${b.pulled()} bytes`);
});

/** A body of the given chunks, then the end. */
function bodyOf(chunks: readonly Uint8Array[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(ctrl) {
      const c = chunks[i++];
      if (c === undefined) ctrl.close();
      else ctrl.enqueue(c);
    },
  }, { highWaterMark: 0 });
}

/** Feeds one line of `size` bytes (no newline) in 64 KiB chunks; returns the bytes searched and the error. */
async function scanEndlessLine(size: number, maxLineBytes: number): Promise<{ scanned: number; error: unknown }> {
  const chunks: Uint8Array[] = [];
  const chunk = new Uint8Array(CHUNK).fill(0x61);
  for (let n = 0; n < size; n += CHUNK) chunks.push(chunk);
  let scanned = 0;
  let error: unknown;
  try {
    for await (const _ of readLines(bodyOf(chunks), { maxLineBytes, onScanned: (n) => scanned += n }));
  } catch (e) {
    error = e;
  }
  return { scanned, error };
}

Deno.test("an endless watch line costs time linear in its size: each byte is searched once", async () => {
  // 17 MiB against the 16 MiB default: the RangeError comes after at most 16 MiB + one chunk searched.
  const { scanned, error } = await scanEndlessLine(17 << 20, 16 << 20);
  assert.ok(error instanceof RangeError, String(error));
  assert.equal(error.message, `Cannot read watch stream: expected lines under ${16 << 20} bytes`);
  assert.ok(scanned >= 16 << 20 && scanned <= (16 << 20) + CHUNK, `searched ${scanned} bytes`);
  // And with many lines per chunk, every byte still once.
  const text = "x".repeat(1000) + "\n";
  const data = new TextEncoder().encode(text.repeat(4096));
  let total = 0;
  let lines = 0;
  const chunks = [];
  for (let at = 0; at < data.length; at += 777) chunks.push(data.subarray(at, at + 777));
  for await (const line of readLines(bodyOf(chunks), { onScanned: (n) => total += n })) {
    assert.equal(line, "x".repeat(1000));
    lines++;
  }
  assert.equal(lines, 4096);
  assert.equal(total, data.length);
});

Deno.test("lines split at any chunk boundary, inside multi-byte characters too, come out whole", async () => {
  const lines = ['{"a":"héllo wörld"}', "", "日本語のテキスト", "emoji 🎉🎉 done", "x".repeat(300), "ü"];
  const data = new TextEncoder().encode(lines.map((l) => l + "\n").join("") + "partial, dropped");
  // Deterministic pseudo-random cut points (no seed-dependent flakes), plus every single-byte split.
  let seed = 12345;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const cutSets: number[][] = [];
  for (let at = 1; at < data.length; at++) cutSets.push([at]);
  for (let k = 0; k < 200; k++) {
    const cuts = new Set<number>();
    const n = 1 + Math.floor(next() * 20);
    for (let i = 0; i < n; i++) cuts.add(1 + Math.floor(next() * (data.length - 1)));
    cutSets.push([...cuts].sort((a, b) => a - b));
  }
  cutSets.push(Array.from({ length: data.length - 1 }, (_, i) => i + 1)); // one byte per chunk
  for (const cuts of cutSets) {
    const chunks: Uint8Array[] = [];
    let from = 0;
    for (const c of [...cuts, data.length]) {
      chunks.push(data.slice(from, c));
      from = c;
    }
    const got: string[] = [];
    for await (const line of readLines(bodyOf(chunks))) got.push(line);
    assert.deepEqual(got, lines, `cuts ${cuts.join(",")}`);
  }
});

/** A slice of the `kubernetes` Service with one loopback endpoint (never dialled here). */
function slice(i: number, rv: number): Record<string, unknown> {
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name: "kubernetes", namespace: "default", resourceVersion: String(rv) },
    addressType: "IPv4",
    endpoints: [{ addresses: [`127.${1 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`], conditions: { ready: true } }],
    ports: [{ name: "https", port: 6443, protocol: "TCP" }],
  };
}

/** Runs the provider on a LIST of event 0 and a watch of `events` MODIFIED events (`sliceOf(1..events)`). */
async function flood(
  events: number,
  sliceOf: (i: number) => Record<string, unknown>,
  final: string | { abortAfterMs: number },
): Promise<{ sets: string[]; lines: number; sent: number }> {
  const ctrl = new AbortController();
  let sent = 0;
  await using logs = await LogCapture.start();
  let watchBody: ReadableStream<Uint8Array> | undefined;
  const transport = transportOf((req) => {
    if (!req.path.includes("watch=1")) {
      return Response.json({ metadata: { resourceVersion: "1" }, items: [sliceOf(0)] });
    }
    if (watchBody !== undefined) return new Response(null, { status: 500 }); // one flood only
    // Chunks of 1,000 events, then the stream stays open, as a live watch does.
    if (typeof final !== "string") setTimeout(() => ctrl.abort(), final.abortAfterMs);
    let abort = () => {};
    req.signal.addEventListener("abort", () => abort(), { once: true });
    watchBody = new ReadableStream<Uint8Array>({
      start(ctrl) {
        // As fetch does: the request's signal ends its streaming body.
        abort = () => ctrl.error(req.signal.reason);
      },
      pull(ctrl) {
        if (sent >= events) return new Promise<void>(() => {});
        let text = "";
        for (let k = 0; k < 1000 && sent < events; k++) {
          sent++;
          text += JSON.stringify({ type: "MODIFIED", object: sliceOf(sent) }) + "\n";
        }
        ctrl.enqueue(new TextEncoder().encode(text));
      },
    }, { highWaterMark: 0 });
    return new Response(watchBody);
  });
  const sets: string[] = [];
  const run = (async () => {
    for await (const set of kubernetesProvider({ transport, fallbackPort: 6443, ...FAST }).run(ctrl.signal)) {
      sets.push(set.map(endpointKey).join(","));
    }
  })();
  try {
    if (typeof final === "string") {
      await waitFor(() => sets.at(-1) === final, 60_000, `the final set ${final} (last: ${sets.at(-1)})`);
    } else {
      await waitFor(() => ctrl.signal.aborted, 60_000, "the timer's abort");
    }
  } finally {
    ctrl.abort();
    // Stops within a deadline (not a timing assertion: a hang fails here instead of blocking the suite).
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      run,
      new Promise((_, reject) => timer = setTimeout(() => reject(new Error("the provider did not stop")), 10_000)),
    ]).finally(() => clearTimeout(timer));
  }
  // Trace (one line per event, by design) is for debugging only.
  return { sets, lines: logs.records.filter((r) => r.level !== "trace").length, sent };
}

Deno.test("a flood of 100,000 MODIFIED events gives few sets, the last one final, and stops at once", async () => {
  const EVENTS = 100_000;
  const final = `127.${1 + (EVENTS >> 16)}.${(EVENTS >> 8) & 255}.${EVENTS & 255}:6443`;
  const { sets, lines } = await flood(EVENTS, (i) => slice(i, i + 1), final);
  assert.ok(sets.length < 50, `${sets.length} sets`);
  assert.equal(sets.at(-1), final);
  assert.ok(lines <= 2 * sets.length + 10, `${lines} log lines`);
});

Deno.test("a timer fires during a flood: an abort 50 ms in stops the provider long before the flood ends", async () => {
  // The events are always ready (no I/O wait): without a turn of the event loop now and then, the timer that
  // aborts (as shutdown's would) could only run once all 100,000 were handled.
  const EVENTS = 100_000;
  const { sent } = await flood(EVENTS, (i) => slice(i, i + 1), { abortAfterMs: 50 });
  assert.ok(sent < EVENTS, `all ${sent} events were handled before the timer ran`);
});

Deno.test("a flood of 50,000 events that leave no ready endpoint logs a handful of warnings", async () => {
  const EVENTS = 50_000;
  const notReady = (i: number) => {
    const s = slice(i, i + 1) as { endpoints: { conditions: { ready: boolean } }[] };
    if (i > 0 && i < EVENTS) { for (const e of s.endpoints) e.conditions.ready = false; }
    return s;
  };
  const final = `127.${1 + (EVENTS >> 16)}.${(EVENTS >> 8) & 255}.${EVENTS & 255}:6443`;
  const { sets, lines } = await flood(EVENTS, notReady, final);
  assert.deepEqual(sets, ["127.1.0.0:6443", final]);
  assert.ok(lines <= 10, `${lines} log lines`);
});

Deno.test("over real HTTP on loopback, an endless LIST body is cut at 32 MiB and the LIST retried", async () => {
  const sent: number[] = [];
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    const i = sent.push(0) - 1;
    const chunk = new Uint8Array(CHUNK).fill(0x20);
    return new Response(
      new ReadableStream<Uint8Array>({
        pull(ctrl) {
          // Socket buffers hold a few MiB beyond what the client read; past 128 MiB the reader is unbounded.
          if ((sent[i] ?? 0) >= 128 << 20) return ctrl.error(new Error("the client read more than 128 MiB"));
          sent[i] = (sent[i] ?? 0) + chunk.length;
          ctrl.enqueue(chunk.slice());
        },
      }, { highWaterMark: 0 }),
      { status: 200 },
    );
  });
  using client = Deno.createHttpClient({});
  const transport: KubeTransport = {
    request: (req) => fetch(`http://127.0.0.1:${server.addr.port}${req.path}`, { signal: req.signal, client }),
    close: () => {},
  };
  const retries = await retriesOf(transport, 2);
  for (const r of retries.slice(0, 2)) {
    assert.equal(r.reason, `Cannot list '${PATH}': expected a response body of at most 33554432 bytes, found more`);
  }
  for (const n of sent.slice(0, 2)) assert.ok(n < 64 << 20, `the server sent ${n} bytes`);
});
