/**
 * The tree tells the truth: every import inside `lib/` follows the rooms' one-way arrows (README "Where things are"),
 * no file of `lib/` imports `main.ts` or reads `Deno.args`/`Deno.env`, and npm packages are used only where named.
 * And what a real start loads: nothing the first relayed connection does not need (YAML, the copier, the EndpointSlice
 * provider load on use).
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { freePorts, MainProcess } from "./support/main_process.ts";
import { EchoServer, readAll, writeAll } from "./support/net.ts";
import { sampleInChild, startReadyzServer } from "./support/first_probe.ts";
import { createTestPki } from "./support/test_pki.ts";
import { code, LIB, libFiles } from "./support/lib_files.ts";
import { kubectlKubeconfig } from "./support/kubeconfig_text.ts";

/** Which rooms a room may import (besides itself). */
const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  foundation: [],
  net: ["foundation"],
  config: ["foundation"],
  kubernetes: ["foundation", "net"],
  upstream: ["foundation", "net"],
  proxy: ["foundation", "net", "upstream"],
  status: ["foundation", "net", "upstream"],
  discovery: ["foundation", "net", "kubernetes", "config"],
  copier: ["foundation", "net", "kubernetes", "config"],
  app: ["foundation", "net", "config", "discovery", "upstream", "proxy", "status"],
};

/**
 * Packages and Node modules, and the rooms that may load them: YAML for kubeconfigs; `node:tls` for a readyz probe
 * that has no CA (loaded on use only: the program otherwise stays off Node's layer; the
 * last tests below hold it to that).
 */
const PACKAGES: Readonly<Record<string, readonly string[]>> = { "js-yaml": ["kubernetes"], "node:tls": ["upstream"] };

function roomOf(path: string): string {
  const rel = path.slice(LIB.pathname.length).split("/");
  if (rel.length === 1) return rel[0] === "app.ts" ? "app" : "foundation";
  return rel[0] as string;
}

Deno.test("every import inside lib/ follows the rooms' arrows", async () => {
  const wrong: string[] = [];
  const files = await libFiles();
  assert.ok(files.length > 50, `found ${files.length} files`);
  for (const file of files) {
    const from = roomOf(file);
    assert.ok(from in ALLOWED, `a room the layout does not know: ${from} (${file})`);
    for (const m of code(await Deno.readTextFile(file)).matchAll(/(?:from|import)\s*\(?\s*"([^"]+)"/g)) {
      const spec = m[1] as string;
      const where = file.slice(LIB.pathname.length);
      if (!spec.startsWith(".")) {
        if (!(PACKAGES[spec] ?? []).includes(from)) wrong.push(`${where} loads the package ${spec}`);
      } else {
        const target = new URL(spec, `file://${file}`).pathname;
        if (!target.startsWith(LIB.pathname)) wrong.push(`${where} imports ${spec}, outside lib/`);
        else if (roomOf(target) !== from && !(ALLOWED[from] ?? []).includes(roomOf(target))) {
          wrong.push(`${where} (${from}) imports ${spec} (${roomOf(target)})`);
        }
      }
    }
  }
  assert.deepEqual(wrong, []);
});

Deno.test("no file of lib/ reads Deno.args or Deno.env", async () => {
  const wrong: string[] = [];
  for (const file of await libFiles()) {
    if (/Deno\.(args|env)\b/.test(code(await Deno.readTextFile(file)))) wrong.push(file.slice(LIB.pathname.length));
  }
  assert.deepEqual(wrong, []);
});

/**
 * V8 keeps each module's text for as long as the process lives. Under `deno run` that text carries Deno's inline
 * source map, which holds the TypeScript again, at one byte a character when every character is Latin-1 and at two
 * otherwise; a two-byte module is also read by V8's two-byte scanner, code a one-byte program does not page in. One
 * arrow in a comment is enough. Making the 19 modules that had such characters Latin-1 cut discovery's idle cost from
 * +3.1 and +3.2 MiB to +2.8 and +2.7 (`bench/discovery_cost.ts --runs=5 --health-check=readyz`, fresh worktrees;
 * docs/performance.md). The compiled binary asks more: it hands V8 a module that is all ASCII as an external string
 * that stays in the binary's own pages, and copies any other into V8's heap (deno_core's `FastString::v8`; the
 * binary's section holds each module's JavaScript, comments included, apart from its source map). So: ASCII, with
 * `\uXXXX` escapes where a string needs another character.
 */
Deno.test("every module of the program is ASCII text, which V8 keeps at one byte a character or not at all", async () => {
  const wrong: string[] = [];
  // main.ts also imports deno.json and deploy/build_info.ts: they are modules of the binary too.
  const outside = ["../main.ts", "../deno.json", "../deploy/build_info.ts"].map((f) =>
    new URL(f, import.meta.url).pathname
  );
  for (const file of [...await libFiles(), ...outside]) {
    const lines = (await Deno.readTextFile(file)).split("\n");
    lines.forEach((line, i) => {
      const wide = line.match(/[\u0080-\u{10ffff}]/gu);
      if (wide !== null) {
        wrong.push(
          `${file.slice(LIB.pathname.length - 4)}:${i + 1}: ${wide.join(" ")} (write "->", "-", "+/-", "x", ` +
            `"section", "..." or \\uXXXX)`,
        );
      }
    });
  }
  assert.deepEqual(wrong, []);
});

Deno.test("node:tls is loaded on use only: lib/ names it in type imports and dynamic imports alone", async () => {
  const wrong: string[] = [];
  for (const file of await libFiles()) {
    for (const m of code(await Deno.readTextFile(file)).matchAll(/^\s*import\s+(?!type\b)[^;]*?from\s*"node:tls"/gm)) {
      wrong.push(`${file.slice(LIB.pathname.length)}: ${m[0].trim()}`);
    }
  }
  assert.deepEqual(wrong, []);
});

Deno.test("a readyz probe with a CA (the flag's or the kubeconfig's, with a client certificate or not) never loads node:tls", async () => {
  await using pki = await createTestPki();
  await using server = await startReadyzServer(pki);
  for (const path of ["deno-tls (CA)", "deno-tls (kubeconfig CA)", "deno-tls (client cert)"] as const) {
    const s = await sampleInChild(path, server.port, pki);
    assert.deepEqual({ ok: s.ok, nodeTlsLoaded: s.nodeTlsLoaded }, { ok: true, nodeTlsLoaded: false }, path);
  }
  // The detector itself: without a CA the probe needs node:tls, and the same check sees it loaded.
  const s = await sampleInChild("node:tls (no CA)", server.port, pki);
  assert.deepEqual({ ok: s.ok, nodeTlsLoaded: s.nodeTlsLoaded }, { ok: true, nodeTlsLoaded: true });
});

/**
 * The modules a real start evaluated, from V8's own log (`--log-function-events` names every script it compiles):
 * the start task's command line, one relayed connection once `ready` has been logged, then SIGTERM. The program's
 * files relative to the repository, and the runtime's Node modules (`ext:deno_node/…`), which Deno loads on first use.
 */
async function modulesLoaded(args: readonly string[], ready: (line: string) => boolean): Promise<string[]> {
  const dir = await Deno.makeTempDir({ prefix: "ep_layout_" });
  try {
    const logFile = `${dir}/v8.log`;
    await using upstream = new EchoServer();
    const [bind, health] = freePorts(2) as [number, number];
    const flags = `--log-function-events,--logfile=${logFile},--no-logfile-per-isolate`;
    await using proc = MainProcess.start(
      [`--bind-port=${bind}`, `--health-port=${health}`, `--endpoints=127.0.0.1:${upstream.port}`, ...args],
      { env: { DENO_V8_FLAGS: flags } },
    );
    await proc.waitForLine(ready);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: bind });
    try {
      await writeAll(conn, new TextEncoder().encode("ping"));
      await conn.closeWrite();
      assert.equal(new TextDecoder().decode(await readAll(conn)), "ping", "relayed");
    } finally {
      conn.close();
    }
    proc.kill("SIGTERM");
    const r = await proc.exited();
    assert.equal(r.code, 0, r.stderr);
    const text = await Deno.readTextFile(logFile);
    const root = new URL("../", import.meta.url).href;
    return [
      ...new Set([...text.matchAll(/(?:file:\/\/\/|ext:deno_node\/)[^,\s"]+/g)].map((m) => m[0].replace(root, ""))),
    ]
      .sort();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The runtime's Node modules in `modules`, but for the one its bootstrap loads (in bench/_floor_relay.ts too). */
function nodeModules(modules: readonly string[]): string[] {
  return modules.filter((m) => m.startsWith("ext:deno_node/") && m !== "ext:deno_node/02_register_cloneable.js");
}

/** What the first relayed connection does not need: the YAML parser, the copier, the EndpointSlice provider. */
function offStartPath(modules: readonly string[]): string[] {
  return modules.filter((m) => /\/(js-)?yaml@|^lib\/copier\/|^lib\/discovery\/kubernetes\//.test(m));
}

const LISTENING = (l: string) => l.includes("listening on");

Deno.test("a start with discovery off loads neither YAML, nor the copier, nor discovery's API client", async () => {
  const modules = await modulesLoaded(["--enable-discovery=false", "--health-check=tcp"], LISTENING);
  assert.ok(modules.includes("lib/app.ts"), `the log names the program's modules: ${modules.join(" ")}`);
  assert.deepEqual(offStartPath(modules), []);
  assert.deepEqual(modules.filter((m) => m.startsWith("lib/kubernetes/")), []);
});

Deno.test("a start loads nothing of Node's compatibility layer: its timers alone cost about 3 MiB (lib/clock.ts)", async () => {
  const modules = await modulesLoaded(["--enable-discovery=false", "--health-check=tcp"], LISTENING);
  assert.deepEqual(nodeModules(modules), []);
});

Deno.test({
  name: "a start with discovery on that finds no credentials loads neither the API client, nor YAML, nor the copier",
  ignore: existsSync("/var/run/secrets/kubernetes.io/serviceaccount/token"),
  fn: async () => {
    const modules = await modulesLoaded(["--health-check=tcp"], (l) => l.includes("Kubernetes discovery is off"));
    assert.ok(modules.includes("lib/kubernetes/connect.ts"), "discovery looked for credentials");
    for (const client of ["http_transport.ts", "credentials.ts", "kubeconfig.ts"]) {
      assert.ok(!modules.includes(`lib/kubernetes/${client}`), `${client} is loaded only with credentials`);
    }
    assert.deepEqual(offStartPath(modules), []);
  },
});

Deno.test("discovery with a kubeconfig loads the provider on use, and js-yaml only for YAML beyond kubectl's", async (t) => {
  const cases = [
    {
      style: "as kubectl writes it: the subset parser, no js-yaml",
      text: kubectlKubeconfig({ server: "https://127.0.0.1:1", token: "t" }),
      jsYaml: false,
    },
    {
      style: "flow mappings: js-yaml (the check above can see it)",
      text: [
        "apiVersion: v1",
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]",
        "users: [{name: u, user: {token: t}}]",
        "contexts: [{name: x, context: {cluster: c, user: u}}]",
        "current-context: x",
      ].join("\n"),
      jsYaml: true,
    },
  ];
  for (const { style, text, jsYaml } of cases) {
    await t.step(style, async () => {
      const dir = await Deno.makeTempDir({ prefix: "ep_layout_kc_" });
      try {
        const kubeconfig = `${dir}/kubeconfig`;
        await Deno.writeTextFile(kubeconfig, text);
        const modules = await modulesLoaded(
          [`--kubeconfig=${kubeconfig}`, "--health-check=tcp"],
          (l) => l.includes("Retrying the list"),
        );
        assert.equal(modules.some((m) => m.includes("/js-yaml@")), jsYaml, modules.join(" "));
        assert.ok(modules.includes("lib/kubernetes/_yaml_subset.ts"), modules.join(" "));
        // The `yaml` package's Node build is CommonJS: Deno would load it through Node's layer, 14 MiB (kubeconfig.ts).
        assert.deepEqual(nodeModules(modules), []);
        assert.ok(modules.includes("lib/discovery/kubernetes/provider.ts"), modules.join(" "));
        assert.deepEqual(modules.filter((m) => m.startsWith("lib/copier/")), []);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  }
});
