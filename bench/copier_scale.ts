/**
 * What the copier's watches cost in a large cluster: its caches (the Services watch, the managed-copies watch and
 * the source watches, as `lib/copier/caches.ts` runs them) listing 10,000 Services and then following a stream of
 * Service updates, one at a time (each applied before the next is sent, so nothing coalesces: a steady trickle, the
 * common case). Reports CPU per update, the list's CPU, and resident memory: the peak while updates flow and after
 * them (after a full GC). The API server is an in-process stub, so only the copier's side is measured; each run is
 * its own process, so peaks do not mix.
 *
 * `--before=DIR` measures another tree's `lib/` in the same session, interleaved with this one; extract it with
 * `git archive`, e.g. the commit before the delta mode:
 *
 * ```sh
 * mkdir -p /tmp/before && git archive c28e19b lib | tar -x -C /tmp/before
 * deno task bench:copier --before=/tmp/before      # 3 rounds, 10,000 Services, 2,000 updates, medians
 * deno task bench:copier --services=1000 --updates=200 --rounds=1
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import process from "node:process";
import { fileURLToPath as fromFileUrl } from "node:url";
import { median } from "./_report.ts";

const HELP = `Usage: deno task bench:copier [options]

CPU per Service update and RSS of the copier's caches with many Services (in-process API stub).

Options:
  --services=N   Services in the cluster (default 10000)
  --updates=N    Service updates streamed after the list (default 2000)
  --rounds=N     runs per tree, interleaved; the table shows medians (default 3)
  --before=DIR   also measure DIR/lib (another commit's tree, from git archive)
  -h, --help     this text
`;

/** The figures of one run. */
export interface ScaleResult {
  /** Services listed. */
  readonly services: number;
  /** Updates applied. */
  readonly updates: number;
  /** CPU (user + system) from the start of the watches to the end of the first list, in ms. */
  readonly listCpuMs: number;
  /** CPU per update, in µs. */
  readonly cpuUsPerUpdate: number;
  /** Largest RSS sampled while the updates flowed, in MiB. */
  readonly rssPeakMiB: number;
  /** RSS after the updates (after a full GC when `gc` is exposed), in MiB. */
  readonly rssAfterMiB: number;
}

const ROOT = fromFileUrl(new URL("..", import.meta.url));
const SERVICES_PATH = "/api/v1/services";
/** Every 100th Service is a target that copies `default/kubernetes`, as the copier's annotation asks. */
const TARGET_EVERY = 100;

interface Caches {
  run(signal: AbortSignal): Promise<void>;
  readonly baseSynced: boolean;
}
type CachesCtor = new (o: {
  transport: unknown;
  defaults: unknown;
  onChange: (keys: readonly string[]) => void;
}) => Caches;

function service(i: number, rv: number): Record<string, unknown> {
  const target = i % TARGET_EVERY === 0;
  return {
    metadata: {
      name: `svc-${i}`,
      namespace: `ns-${i % 100}`,
      uid: `uid-${i}`,
      resourceVersion: String(rv),
      annotations: target ? { "endpoint-copier/enabled": "true", generation: String(rv) } : { generation: String(rv) },
    },
    spec: target ? { ports: [{ port: 443 }] } : { selector: { app: `app-${i}` }, ports: [{ name: "http", port: 80 }] },
  };
}

/** An API server stub: lists from memory, and one Services watch whose events the bench sends. */
class StubApi {
  readonly #services: number;
  #events: ReadableStreamDefaultController<Uint8Array> | undefined;
  readonly watching = Promise.withResolvers<void>();
  readonly #encoder = new TextEncoder();

  constructor(services: number) {
    this.#services = services;
  }

  request(req: { path: string; signal: AbortSignal }): Promise<Response> {
    const url = new URL(req.path, "https://stub.invalid");
    const q = url.searchParams;
    if (q.get("watch") === "1") {
      if (url.pathname === SERVICES_PATH && this.#events === undefined) {
        const body = new ReadableStream<Uint8Array>({ start: (c) => void (this.#events = c) });
        // As a real transport does: aborting the request ends its body.
        req.signal.addEventListener("abort", () => this.#events?.error(req.signal.reason), { once: true });
        this.watching.resolve();
        return Promise.resolve(new Response(body));
      }
      // Every other watch stays open and silent until the run stops.
      return new Promise((_, reject) => req.signal.addEventListener("abort", () => reject(req.signal.reason)));
    }
    if (url.pathname === SERVICES_PATH) {
      const limit = Number(q.get("limit") ?? "500");
      const from = Number(q.get("continue") || "0");
      const to = Math.min(this.#services, from + limit);
      const items = [];
      for (let i = from; i < to; i++) items.push(service(i, 1));
      return Promise.resolve(Response.json({
        metadata: { resourceVersion: "1", ...(to < this.#services ? { continue: String(to) } : {}) },
        items,
      }));
    }
    if (url.pathname.endsWith("/namespaces/default/endpointslices")) {
      const slice = {
        metadata: { name: "kubernetes", namespace: "default", resourceVersion: "1", uid: "u-slice" },
        addressType: "IPv4",
        endpoints: [{ addresses: ["127.0.0.1"], conditions: { ready: true } }],
        ports: [{ name: "https", port: 6443, protocol: "TCP" }],
      };
      const labelled = {
        ...slice,
        metadata: { ...slice.metadata, labels: { "kubernetes.io/service-name": "kubernetes" } },
      };
      return Promise.resolve(Response.json({ metadata: { resourceVersion: "1" }, items: [labelled] }));
    }
    return Promise.resolve(Response.json({ metadata: { resourceVersion: "1" }, items: [] }));
  }

  /** Sends one MODIFIED event of Service `i`. */
  modify(i: number, rv: number): void {
    const line = JSON.stringify({ type: "MODIFIED", object: service(i, rv) });
    this.#events?.enqueue(this.#encoder.encode(`${line}\n`));
  }

  close(): void {}
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function rssMiB(): number {
  return Deno.memoryUsage().rss / (1 << 20);
}

/**
 * One run in this process: the caches of `root`'s `lib/copier/caches.ts` list `services` Services, then follow
 * `updates` updates (each Service updated at most once more than the others: a stride walks them all).
 */
export async function measure(
  options: { readonly services: number; readonly updates: number; readonly root?: string },
): Promise<ScaleResult> {
  const root = options.root ?? ROOT;
  const mod = await import(`file://${root.replace(/\/$/, "")}/lib/copier/caches.ts`) as { CopierCaches: CachesCtor };
  const api = new StubApi(options.services);
  let changes = 0;
  let wake = Promise.withResolvers<void>();
  const caches = new mod.CopierCaches({
    transport: api,
    defaults: {
      defaultSource: { namespace: "default", name: "kubernetes" },
      managedTarget: { namespace: "default", name: "kubernetes-vip" },
    },
    onChange: () => {
      changes++;
      wake.resolve();
    },
  });
  const ctrl = new AbortController();
  const cpu0 = cpuMs();
  const running = caches.run(ctrl.signal);
  const deadline = performance.now() + 120_000;
  const until = async (cond: () => boolean, what: string) => {
    while (!cond()) {
      if (performance.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([wake.promise, new Promise((r) => timer = setTimeout(r, 50))]);
      clearTimeout(timer);
      wake = Promise.withResolvers<void>();
    }
  };
  try {
    await until(() => caches.baseSynced, "the first list");
    await api.watching.promise;
    const listCpuMs = cpuMs() - cpu0;
    let peak = rssMiB();
    const stride = 7919; // a prime: walks every Service before any repeats (when it does not divide the count)
    const cpu1 = cpuMs();
    for (let n = 0; n < options.updates; n++) {
      const before = changes;
      api.modify((n * stride) % options.services, 2 + n);
      await until(() => changes > before, `update ${n}`);
      if (n % 50 === 0) peak = Math.max(peak, rssMiB());
    }
    const cpuUsPerUpdate = ((cpuMs() - cpu1) * 1000) / Math.max(1, options.updates);
    peak = Math.max(peak, rssMiB());
    (globalThis as { gc?: () => void }).gc?.();
    const after = rssMiB();
    peak = Math.max(peak, after);
    return {
      services: options.services,
      updates: options.updates,
      listCpuMs,
      cpuUsPerUpdate,
      rssPeakMiB: peak,
      rssAfterMiB: after,
    };
  } finally {
    ctrl.abort();
    await running;
  }
}

/** The results table: medians per tree. */
export function renderScaleTable(runs: ReadonlyMap<string, readonly ScaleResult[]>): string {
  const lines = [
    "| tree | Services | updates | list CPU (ms) | CPU per update (µs) | RSS peak (MiB) | RSS after (MiB) |",
    "|---|---:|---:|---:|---:|---:|---:|",
  ];
  for (const [name, rs] of runs) {
    const m = (f: (r: ScaleResult) => number) => median(rs.map(f));
    lines.push(
      `| ${name} | ${rs[0]?.services ?? 0} | ${rs[0]?.updates ?? 0} | ${m((r) => r.listCpuMs).toFixed(0)} | ` +
        `${m((r) => r.cpuUsPerUpdate).toFixed(0)} | ${m((r) => r.rssPeakMiB).toFixed(1)} | ` +
        `${m((r) => r.rssAfterMiB).toFixed(1)} |`,
    );
  }
  return lines.join("\n");
}

async function child(root: string, services: number, updates: number): Promise<ScaleResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--frozen",
      "--v8-flags=--expose-gc",
      fromFileUrl(import.meta.url),
      "--child",
      `--root=${root}`,
      `--services=${services}`,
      `--updates=${updates}`,
    ],
    stdout: "piped",
    stderr: "inherit",
    signal: AbortSignal.timeout(300_000),
  }).output();
  if (!out.success) throw new Error(`Cannot measure '${root}': the run exited with ${out.code}`);
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "") as ScaleResult;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      services: { type: "string", default: "10000" },
      updates: { type: "string", default: "2000" },
      rounds: { type: "string", default: "3" },
      before: { type: "string" },
      root: { type: "string" },
      child: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    Deno.exit(0);
  }
  const services = Number(values.services);
  const updates = Number(values.updates);
  const rounds = Number(values.rounds);
  for (const [k, v] of [["services", services], ["updates", updates], ["rounds", rounds]] as const) {
    if (!Number.isInteger(v) || v < 1) {
      console.error(`Invalid --${k} '${values[k]}': expected a positive integer`);
      Deno.exit(2);
    }
  }
  if (values.child) {
    console.log(JSON.stringify(await measure({ services, updates, root: values.root ?? ROOT })));
    Deno.exit(0);
  }
  const trees = new Map<string, string>([["this tree", ROOT]]);
  if (values.before !== undefined) trees.set(`before (${values.before})`, values.before);
  const runs = new Map<string, ScaleResult[]>([...trees.keys()].map((k) => [k, []]));
  for (let round = 0; round < rounds; round++) {
    for (const [name, root] of trees) {
      const r = await child(root, services, updates);
      runs.get(name)?.push(r);
      console.error(
        `round ${round + 1} ${name}: ${r.cpuUsPerUpdate.toFixed(0)} µs/update, list ${r.listCpuMs.toFixed(0)} ms, ` +
          `RSS peak ${r.rssPeakMiB.toFixed(1)} MiB, after ${r.rssAfterMiB.toFixed(1)} MiB`,
      );
    }
  }
  console.log(renderScaleTable(runs));
}
