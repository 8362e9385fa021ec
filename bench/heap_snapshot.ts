/**
 * Heap snapshots of a running extractedprism over V8's inspector, what grew between two of them, and what holds it:
 * the tool that found the soak's slow leak (docs/performance.md, "Soak"). Start the proxy with
 * `--inspect=127.0.0.1:9229` (the soak: `deno task soak --inspect=127.0.0.1:9229`), then:
 *
 * ```sh
 * deno run -A bench/heap_snapshot.ts take /tmp/a.heapsnapshot [--inspector=127.0.0.1:9229]  # after a forced collection
 * deno run -A bench/heap_snapshot.ts diff /tmp/a.heapsnapshot /tmp/b.heapsnapshot              # what grew, by kind
 * deno run -A bench/heap_snapshot.ts paths /tmp/a.heapsnapshot /tmp/b.heapsnapshot --kind=object:Promise
 * ```
 *
 * `diff` prints the objects that grew most, by count and by size, grouped by V8's node type and constructor name
 * (strings, code and contexts counted together), then the async generators by function name and the pending promises
 * that hold a reaction, by what holds them. `paths` groups the objects of one kind (`type:name`, as `diff` prints
 * them) by their shortest retaining path from the root, `--depth` steps long (a run of one step folded into one), and
 * prints the paths whose count changed most. Loopback only: the inspector address must be on 127.0.0.0/8.
 *
 * @module
 */
import { openInspector } from "./_inspector.ts";

interface Snapshot {
  readonly snapshot: {
    readonly meta: {
      readonly node_fields: string[];
      readonly node_types: [string[], ...unknown[]];
      readonly edge_fields: string[];
      readonly edge_types: [string[], ...unknown[]];
    };
  };
  readonly nodes: number[];
  readonly edges: number[];
  readonly strings: string[];
}

const USAGE = "usage: heap_snapshot.ts take FILE [--inspector=127.0.0.1:9229] | diff BEFORE AFTER | " +
  "paths BEFORE AFTER [--kind=object:Promise] [--depth=12]";

async function take(file: string, inspector: string): Promise<void> {
  const chunks: string[] = [];
  const v8 = await openInspector(inspector, (method, params) => {
    if (method === "HeapProfiler.addHeapSnapshotChunk") chunks.push((params as { chunk: string }).chunk);
  });
  try {
    await v8.call("HeapProfiler.enable");
    await v8.call("HeapProfiler.collectGarbage");
    await v8.call("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
  } finally {
    v8.close();
  }
  await Deno.writeTextFile(file, chunks.join(""));
  console.log(`${file}: ${chunks.reduce((n, c) => n + c.length, 0)} bytes`);
}

/** A snapshot read for queries: node kinds, names, edges. */
class Heap {
  readonly #s: Snapshot;
  readonly #nf: number;
  readonly #ef: number;
  readonly #first: Int32Array;
  /** Offsets of the node fields and edge fields read here, found once. */
  readonly #n: { type: number; name: number; id: number; selfSize: number; edgeCount: number };
  readonly #e: { type: number; name: number; to: number };

  constructor(s: Snapshot) {
    this.#s = s;
    const meta = s.snapshot.meta;
    this.#nf = meta.node_fields.length;
    this.#ef = meta.edge_fields.length;
    const nodeField = (f: string) => meta.node_fields.indexOf(f);
    const edgeField = (f: string) => meta.edge_fields.indexOf(f);
    this.#n = {
      type: nodeField("type"),
      name: nodeField("name"),
      id: nodeField("id"),
      selfSize: nodeField("self_size"),
      edgeCount: nodeField("edge_count"),
    };
    this.#e = { type: edgeField("type"), name: edgeField("name_or_index"), to: edgeField("to_node") };
    const count = s.nodes.length / this.#nf;
    this.#first = new Int32Array(count + 1);
    for (let n = 0, e = 0; n < count; n++) {
      this.#first[n] = e;
      e += s.nodes[n * this.#nf + this.#n.edgeCount]! * this.#ef;
    }
  }

  /** Node offsets (into `nodes`), one per node. */
  *nodes(): Generator<number> {
    for (let i = 0; i < this.#s.nodes.length; i += this.#nf) yield i;
  }

  type(i: number): string {
    return this.#s.snapshot.meta.node_types[0][this.#s.nodes[i + this.#n.type]!]!;
  }

  name(i: number): string {
    return this.#s.strings[this.#s.nodes[i + this.#n.name]!]!;
  }

  /** V8's id of the object: the same object has the same id in every snapshot of one process. */
  id(i: number): number {
    return this.#s.nodes[i + this.#n.id]!;
  }

  /** A short label: `type:name`, with a context's scope id and long names cut. */
  label(i: number): string {
    return `${this.type(i)}:${this.name(i).replace(/ @\d+$/, "").slice(0, 60)}`;
  }

  /**
   * For every node reachable from the root (node 0) over strong edges, the node and edge it was first reached
   * from, breadth first: a shortest retaining path.
   */
  parents(): Map<number, { from: number; edge: string }> {
    const out = new Map<number, { from: number; edge: string }>();
    const seen = new Set<number>([0]);
    let frontier = [0];
    while (frontier.length > 0) {
      const next: number[] = [];
      for (const n of frontier) {
        for (const e of this.edges(n)) {
          if (e.type === "weak" || e.type === "shortcut" || seen.has(e.to)) continue;
          seen.add(e.to);
          out.set(e.to, { from: n, edge: e.type === "element" || e.type === "hidden" ? `[${e.name}]` : e.name });
          next.push(e.to);
        }
      }
      frontier = next;
    }
    return out;
  }

  selfSize(i: number): number {
    return this.#s.nodes[i + this.#n.selfSize]!;
  }

  edges(i: number): { type: string; name: string; to: number }[] {
    const edgeTypes = this.#s.snapshot.meta.edge_types[0];
    const out = [];
    const start = this.#first[i / this.#nf]!;
    const count = this.#s.nodes[i + this.#n.edgeCount]!;
    for (let e = start; e < start + count * this.#ef; e += this.#ef) {
      const type = edgeTypes[this.#s.edges[e + this.#e.type]!]!;
      const raw = this.#s.edges[e + this.#e.name]!;
      out.push({
        type,
        name: type === "element" || type === "hidden" ? String(raw) : this.#s.strings[raw]!,
        to: this.#s.edges[e + this.#e.to]!,
      });
    }
    return out;
  }
}

/** Count and size by `type:name`; strings and code are one bucket each. */
function byKind(h: Heap): Map<string, [number, number]> {
  const out = new Map<string, [number, number]>();
  for (const i of h.nodes()) {
    const type = h.type(i);
    // A context's name carries its scope's node id, which differs between snapshots: count contexts together.
    const name = type.includes("string")
      ? "(string)"
      : type === "code"
      ? "(code)"
      : h.name(i).replace(/ @\d+$/, "").slice(0, 80);
    const k = `${type}:${name}`;
    const v = out.get(k) ?? [0, 0];
    v[0]++;
    v[1] += h.selfSize(i);
    out.set(k, v);
  }
  return out;
}

function generators(h: Heap): Map<string, number> {
  const out = new Map<string, number>();
  for (const i of h.nodes()) {
    if (h.type(i) !== "object" || h.name(i) !== "Generator") continue;
    const fn = h.edges(i).find((e) => e.name === "function")?.to;
    const k = fn === undefined ? "(unknown)" : h.name(fn) || "(anonymous)";
    out.set(k, (out.get(k) ?? 0) + 1);
  }
  return out;
}

function pendingPromiseHolders(h: Heap): Map<string, number> {
  const pending = new Set<number>();
  for (const i of h.nodes()) {
    if (h.type(i) !== "object" || h.name(i) !== "Promise") continue;
    const r = h.edges(i).find((e) => e.name === "reactions_or_result")?.to;
    if (r !== undefined && h.name(r).includes("PromiseReaction")) pending.add(i);
  }
  const out = new Map<string, number>();
  for (const i of h.nodes()) {
    for (const e of h.edges(i)) {
      if (!pending.has(e.to) || e.type === "weak") continue;
      const k = `${h.type(i)}:${h.name(i).replace(/ @\d+$/, "").slice(0, 70)} .${e.name}`;
      out.set(k, (out.get(k) ?? 0) + 1);
    }
  }
  return out;
}

function growth(a: Map<string, number>, b: Map<string, number>): [string, number, number][] {
  return [...new Set([...a.keys(), ...b.keys()])].map((k): [string, number, number] => [
    k,
    (b.get(k) ?? 0) - (a.get(k) ?? 0),
    b.get(k) ?? 0,
  ]).filter((r) => r[1] !== 0).sort((x, y) => y[1] - x[1]);
}

async function diff(beforeFile: string, afterFile: string): Promise<void> {
  const read = async (f: string) => new Heap(JSON.parse(await Deno.readTextFile(f)) as Snapshot);
  const [a, b] = [await read(beforeFile), await read(afterFile)];
  const ka = byKind(a), kb = byKind(b);
  const rows = [...kb].map(([k, [n, size]]) => {
    const [n0, size0] = ka.get(k) ?? [0, 0];
    return { k, dn: n - n0, ds: size - size0, n };
  }).filter((r) => r.dn !== 0 || r.ds !== 0);
  const show = (r: (typeof rows)[number]) =>
    `${String(r.dn).padStart(8)} ${String(r.ds).padStart(10)} B  (now ${r.n})  ${r.k}`;
  console.log("grew most, by count (count, bytes, now, kind):");
  for (const r of [...rows].sort((x, y) => y.dn - x.dn).slice(0, 20)) console.log(show(r));
  console.log("grew most, by size:");
  for (const r of [...rows].sort((x, y) => y.ds - x.ds).slice(0, 12)) console.log(show(r));
  console.log("generators by function (change, now):");
  for (const [k, d, n] of growth(generators(a), generators(b)).slice(0, 12)) {
    console.log(`${String(d).padStart(6)} ${n} ${k}`);
  }
  console.log("pending promises with a reaction, by holder (change, now):");
  for (const [k, d, n] of growth(pendingPromiseHolders(a), pendingPromiseHolders(b)).slice(0, 12)) {
    console.log(`${String(d).padStart(6)} ${n} ${k}`);
  }
}

/** The objects of `kind` (e.g. `object:Promise`) counted by their shortest retaining path from the root. */
function byPath(h: Heap, kind: string, depth: number): Map<string, number> {
  const parents = h.parents();
  const out = new Map<string, number>();
  for (const i of h.nodes()) {
    if (h.label(i) !== kind) continue;
    // A run of the same step (a promise's list of reactions, a linked list) is one step with a count: the holder of
    // a list that grows is what matters, and the run's length would make every path distinct.
    const steps: string[] = [];
    let last = "", run = 0;
    for (let n = i, d = 0; d < depth;) {
      const p = parents.get(n);
      if (p === undefined) break;
      n = p.from;
      const step = `${h.label(p.from)} .${p.edge}`;
      if (step === last) {
        run++;
        continue;
      }
      if (run > 1) steps[steps.length - 1] += ` (×${run})`;
      steps.push(step);
      last = step;
      run = 1;
      d++;
    }
    if (run > 1) steps[steps.length - 1] += " (×n)";
    const k = steps.length === 0 ? "(not reachable from the root)" : steps.join("\n        <- ");
    out.set(k, (out.get(k) ?? 0) + 1);
  }
  return out;
}

/**
 * What holds what grew: the objects of `kind` in each snapshot grouped by their shortest retaining path, and the
 * paths whose count changed most. (Object ids cannot pair objects across snapshots: each `take` is a new inspector
 * session, and V8 numbers the objects anew.)
 */
async function paths(beforeFile: string, afterFile: string, kind: string, depth: number): Promise<void> {
  const read = async (f: string) => new Heap(JSON.parse(await Deno.readTextFile(f)) as Snapshot);
  const [a, b] = [await read(beforeFile), await read(afterFile)];
  const rows = growth(byPath(a, kind, depth), byPath(b, kind, depth));
  console.log(`${kind} by shortest retaining path, nearest holder first (change, now):`);
  for (const [k, d, n] of rows.slice(0, 8)) console.log(`${String(d).padStart(6)} ${String(n).padStart(6)}  ${k}`);
}

const [verb, x, y] = Deno.args;
const flag = (name: string) => Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const inspector = flag("inspector") ?? "127.0.0.1:9229";
try {
  if (verb === "take" && x !== undefined) await take(x, inspector);
  else if (verb === "diff" && x !== undefined && y !== undefined) await diff(x, y);
  else if (verb === "paths" && x !== undefined && y !== undefined) {
    await paths(x, y, flag("kind") ?? "object:Promise", Number(flag("depth") ?? 12));
  } else {
    console.error(USAGE);
    Deno.exit(2);
  }
} catch (e) {
  console.error(`heap_snapshot: ${e instanceof Error ? e.message : e}`);
  Deno.exit(1);
}
