/**
 * Properties of kubeconfig parsing: any text is a KubeconfigError (one line naming the file) or a connection to an
 * https server on a port 1..65535. Nothing is dialled: only the parser runs.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { stringify } from "yaml";
import { KubeconfigError, parseKubeconfig } from "../lib/kubernetes/kubeconfig.ts";
import { anyText, checkAsync } from "./support/properties.ts";

const PATH = "/nonexistent-kubeconfig-dir/config";

/** Loopback servers only, valid or not. */
const server = fc.oneof(
  fc.tuple(
    fc.oneof({ arbitrary: fc.constant("https"), weight: 6 }, fc.constantFrom("http", "HTTPS", "")),
    fc.constantFrom("127.0.0.1", "[::1]", "localhost", "[::ffff:127.0.0.1]", ""),
    fc.option(fc.oneof(fc.integer({ min: 0, max: 70_000 }), fc.constantFrom(0, 1, 6443, 65535, 65536)), {
      nil: undefined,
    }),
    fc.oneof({ arbitrary: fc.constantFrom("", "/", "/prefix/"), weight: 6 }, fc.constantFrom("?q=1", "#f")),
  )
    .map(([s, h, p, rest]) => `${s}://${h}${p === undefined ? "" : `:${p}`}${rest}`),
  anyText,
);
const field = <T>(a: fc.Arbitrary<T>) =>
  fc.oneof({ arbitrary: a, weight: 4 }, { arbitrary: fc.anything({ maxDepth: 1 }), weight: 1 });
const b64 = fc.oneof(fc.string().map((s) => btoa(unescape(encodeURIComponent(s)))), anyText);

/** Kubeconfig documents, mostly well-formed, with random holes and wrong types. */
const document = fc.record({
  "current-context": field(fc.constantFrom("x", "y", "")),
  clusters: field(fc.array(
    fc.record({
      name: field(fc.constantFrom("c", "d")),
      cluster: field(fc.record({
        server: field(server),
        "certificate-authority-data": field(b64),
        "tls-server-name": field(fc.constantFrom("kubernetes", "")),
        "insecure-skip-tls-verify": field(fc.boolean()),
      }, { requiredKeys: [] })),
    }, { requiredKeys: [] }),
    { maxLength: 2 },
  )),
  contexts: field(fc.array(
    fc.record({
      name: field(fc.constantFrom("x", "y")),
      context: field(fc.record({
        cluster: field(fc.constantFrom("c", "d")),
        user: field(fc.constantFrom("u", "v")),
        namespace: field(fc.constantFrom("default", "")),
      }, { requiredKeys: [] })),
    }, { requiredKeys: [] }),
    { maxLength: 2 },
  )),
  users: field(fc.array(
    fc.record({
      name: field(fc.constantFrom("u", "v")),
      user: field(fc.record({
        token: field(fc.string()),
        tokenFile: field(fc.constantFrom("token", "/abs/token", "./t")),
        "client-certificate-data": field(b64),
        "client-key-data": field(b64),
        exec: field(fc.record({
          apiVersion: field(
            fc.constantFrom("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1", "v2"),
          ),
          command: field(fc.constantFrom("plugin", "./bin/plugin", "")),
          args: field(fc.array(fc.string(), { maxLength: 2 })),
          env: field(fc.array(fc.record({ name: field(fc.string()), value: field(fc.string()) }), { maxLength: 2 })),
          interactiveMode: field(fc.constantFrom("Never", "IfAvailable", "Always")),
        }, { requiredKeys: [] })),
      }, { requiredKeys: [] })),
    }, { requiredKeys: [] }),
    { maxLength: 2 },
  )),
}, { requiredKeys: [] });

/** A usable kubeconfig but for its server URL and token. */
const usable = fc.tuple(server, fc.string()).map(([url, token]) => ({
  "current-context": "x",
  clusters: [{ name: "c", cluster: { server: url } }],
  contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
  users: [{ name: "u", user: { token } }],
}));

/** YAML text: a usable document, a generated document, garbage, or YAML syntax fragments (anchors, aliases, tags, flow collections). */
const yamlText = fc.oneof(
  usable.map((d) => stringify(d)),
  document.map((d) => stringify(d)),
  anyText,
  fc.array(
    fc.constantFrom(
      "a: ",
      "&x ",
      "*x",
      "*y",
      "!!binary ",
      "!!int ",
      "[",
      "]",
      "{",
      "}",
      "- ",
      "\n",
      "  ",
      "clusters",
      "? ",
      "|",
      "%YAML 1.1\n---\n",
      "x",
    ),
    { maxLength: 12 },
  ).map((p) => p.join("")),
);

let parsed = 0;

async function assertParses(text: string): Promise<void> {
  try {
    const c = await parseKubeconfig(text, PATH);
    parsed++;
    const s = c.server;
    assert.ok(s !== undefined, "a connection has a server");
    assert.ok(Number.isInteger(s.port) && s.port >= 1 && s.port <= 65535, `port ${s.port} of ${s.url}`);
    assert.ok(s.host !== "", `host of ${s.url}`);
    assert.ok(s.url.toLowerCase().startsWith("https://"), s.url);
  } catch (e) {
    if (!(e instanceof KubeconfigError)) throw e;
    assert.ok(e.message.startsWith(`Cannot use kubeconfig '${PATH}': `), e.message);
  }
}

Deno.test("kubeconfig properties", async (t) => {
  await t.step("any YAML text is a KubeconfigError or a connection to an https server on a valid port", async () => {
    await checkAsync(fc.asyncProperty(yamlText, assertParses));
    assert.ok(parsed > 0, "some generated kubeconfigs are usable");
  });
});

Deno.test("kubeconfig: an alias without its anchor and a server on port 0 are KubeconfigErrors (found by the properties)", async () => {
  await assert.rejects(
    parseKubeconfig("current-context: *x\n", PATH),
    (e) =>
      e instanceof KubeconfigError && /expected YAML, got an error: unidentified alias "x" \(1:20\)$/.test(e.message),
  );
  const doc = (server: string) =>
    stringify({
      "current-context": "x",
      clusters: [{ name: "c", cluster: { server } }],
      contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
      users: [{ name: "u", user: { token: "t" } }],
    });
  await assert.rejects(parseKubeconfig(doc("https://127.0.0.1:0"), PATH), {
    name: "KubeconfigError",
    message:
      `Cannot use kubeconfig '${PATH}': cluster 'c' has server 'https://127.0.0.1:0': expected a port from 1 to 65535`,
  });
  assert.equal((await parseKubeconfig(doc("https://127.0.0.1:6443"), PATH)).server?.port, 6443);
});
