/**
 * Where a process's RSS is: starts a command, optionally asks one URL of it, waits, and splits the resident set from
 * `/proc/<pid>/smaps` into anonymous memory (heap, stacks), pages of the `deno` binary (the runtime code and data a
 * process has touched: what a feature costs even when it allocates nothing), and other files. The figures of
 * docs/performance.md's "Where the idle memory goes" come from it. Loopback only; the process is killed at the end.
 *
 * Usage: deno run -A bench/rss_parts.ts [--runs=N] [--wait=MS] [--get=URL] [--label=TEXT] -- COMMAND [ARGS...]
 *
 * @module
 */

const sep = Deno.args.indexOf("--");
if (sep < 0 || sep === Deno.args.length - 1) {
  console.error("usage: rss_parts.ts [--runs=N] [--wait=MS] [--get=URL] [--label=TEXT] -- COMMAND [ARGS...]");
  Deno.exit(2);
}
const opts = Deno.args.slice(0, sep);
const command = Deno.args.slice(sep + 1);
const opt = (name: string) => opts.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const runs = Math.max(1, Math.min(20, Number(opt("runs") ?? 3) || 3));
const waitMs = Math.max(500, Math.min(60_000, Number(opt("wait") ?? 4000) || 4000));
const get = opt("get");
if (get !== undefined && !/^http:\/\/(127\.\d+\.\d+\.\d+|\[::1\]|localhost)(:\d+)?\//.test(get)) {
  console.error(`--get must be a loopback http URL, got '${get}'`);
  Deno.exit(2);
}
const label = opt("label") ?? command.join(" ");

interface Parts {
  total: number;
  anon: number;
  binary: number;
}

function parts(pid: number): Parts {
  let name = "";
  const p: Parts = { total: 0, anon: 0, binary: 0 };
  for (const line of Deno.readTextFileSync(`/proc/${pid}/smaps`).split("\n")) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+(?:\s+(.*))?$/.exec(line);
    if (head !== null) {
      name = head[1] ?? "";
      continue;
    }
    const kib = /^(Rss|Anonymous):\s+(\d+) kB/.exec(line);
    if (kib === null) continue;
    const n = Number(kib[2]);
    if (kib[1] === "Anonymous") p.anon += n;
    else {
      p.total += n;
      if (/\/deno$|\/denort$/.test(name)) p.binary += n;
    }
  }
  return p;
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (kib: number) => (kib / 1024).toFixed(1);
const results: Parts[] = [];
for (let i = 0; i < runs; i++) {
  const child = new Deno.Command(command[0]!, { args: command.slice(1), stdout: "null", stderr: "null" }).spawn();
  try {
    if (get !== undefined) {
      await delay(1500);
      await fetch(get).then((r) => r.body?.cancel(), () => {});
      await delay(waitMs - 1500);
    } else await delay(waitMs);
    results.push(parts(child.pid));
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
}
const median = (f: (p: Parts) => number) => results.map(f).sort((a, b) => a - b)[Math.floor(results.length / 2)]!;
console.log(
  `${label}: total ${mib(median((p) => p.total))} MiB, anonymous ${mib(median((p) => p.anon))}, deno binary ${
    mib(median((p) => p.binary))
  }, other files ${
    mib(Math.max(0, median((p) => p.total - p.anon - p.binary)))
  } (median of ${runs}, ${waitMs} ms after start)`,
);
