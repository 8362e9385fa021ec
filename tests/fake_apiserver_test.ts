import assert from "node:assert/strict";
import { DEFAULT_TOKEN_USER, endpointSlice, type FakeApiServer, startFakeApiServer } from "./support/fake_apiserver.ts";
import { createTestPki, TEST_NODE_GROUP, TEST_NODE_USER, type TestPki } from "./support/test_pki.ts";

const TOKEN = "token-one";
const SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";
const LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases";
const SELECTOR = "labelSelector=" + encodeURIComponent("kubernetes.io/service-name=kubernetes");

// deno-lint-ignore no-explicit-any
type AnyJson = any;

function test(name: string, fn: (t: Deno.TestContext) => Promise<void>): void {
  Deno.test({ name, sanitizeOps: true, sanitizeResources: true, fn });
}

interface Call {
  token?: string | null;
  body?: unknown;
  contentType?: string;
  client?: Deno.HttpClient;
}

/** One request with the bearer token (unless `token: null`); returns status and parsed JSON (or text). */
async function call(
  env: Env,
  method: string,
  path: string,
  options: Call = {},
): Promise<{ status: number; body: AnyJson }> {
  const headers = new Headers();
  const token = options.token === undefined ? TOKEN : options.token;
  if (token !== null) headers.set("authorization", `Bearer ${token}`);
  if (options.contentType !== undefined) headers.set("content-type", options.contentType);
  const init: RequestInit & { client: Deno.HttpClient } = { method, headers, client: options.client ?? env.client };
  if (options.body !== undefined) {
    init.body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
    if (options.contentType === undefined) headers.set("content-type", "application/json");
  }
  // A bounded call: a server that wrongly starts a watch must fail the test, not hang it.
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(new Error(`no complete answer to ${method} ${path} within 5 s`)), 5000);
  init.signal = abort.signal;
  try {
    const res = await fetch(env.api.url + path, init);
    const text = await res.text();
    const json = res.headers.get("content-type")?.startsWith("application/json") ?? false;
    return { status: res.status, body: json ? JSON.parse(text) : text };
  } finally {
    clearTimeout(timer);
  }
}

interface Env extends AsyncDisposable {
  pki: TestPki;
  api: FakeApiServer;
  client: Deno.HttpClient;
}

async function setup(options: { bookmarkIntervalMs?: number; serverCert?: "ip" | "dns" } = {}): Promise<Env> {
  const pki = await createTestPki();
  const api = await startFakeApiServer({ pki, tokens: [TOKEN], ...options });
  const client = Deno.createHttpClient({ caCerts: [pki.ca.cert] });
  return {
    pki,
    api,
    client,
    async [Symbol.asyncDispose]() {
      client.close();
      await api.close();
      await pki.cleanup();
    },
  };
}

/** Reads newline-delimited JSON watch events from a streaming response. */
class EventReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #decoder = new TextDecoder();
  #buffer = "";
  #pending: Promise<ReadableStreamReadResult<Uint8Array>> | undefined;

  constructor(res: Response) {
    assert.ok(res.body);
    this.#reader = res.body.getReader();
  }

  /** The next line, or undefined at a clean end of stream; rejects on a broken stream or after `timeoutMs`. */
  async line(timeoutMs = 5000): Promise<string | undefined> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no watch line within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      while (!this.#buffer.includes("\n")) {
        this.#pending ??= this.#reader.read();
        const r = await Promise.race([this.#pending, deadline]);
        this.#pending = undefined;
        if (r.done) return this.#buffer === "" ? undefined : this.#take(this.#buffer.length);
        this.#buffer += this.#decoder.decode(r.value, { stream: true });
      }
      return this.#take(this.#buffer.indexOf("\n") + 1).trimEnd();
    } finally {
      clearTimeout(timer);
    }
  }

  /** Text received but not yet returned as a line. */
  get buffered(): string {
    return this.#buffer;
  }

  /**
   * Whether data or the end of the stream has arrived, without waiting. The first call starts a read; a later call
   * sees anything that read received in between.
   */
  async hasData(): Promise<boolean> {
    if (this.#buffer.length > 0) return true;
    this.#pending ??= this.#reader.read();
    const marker = Symbol();
    const r = await Promise.race([this.#pending, Promise.resolve(marker)]);
    return r !== marker;
  }

  /** The next event, parsed. */
  async event(timeoutMs?: number): Promise<AnyJson> {
    const line = await this.line(timeoutMs);
    assert.ok(line !== undefined, "expected an event, got the end of the stream");
    return JSON.parse(line);
  }

  /** The next event that is not a BOOKMARK. */
  async change(timeoutMs?: number): Promise<AnyJson> {
    for (;;) {
      const e = await this.event(timeoutMs);
      if (e.type !== "BOOKMARK") return e;
    }
  }

  #take(n: number): string {
    const out = this.#buffer.slice(0, n);
    this.#buffer = this.#buffer.slice(n);
    return out;
  }

  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
    await this.#pending?.catch(() => {});
  }
}

async function openWatch(env: Env, query: string, options: Call = {}): Promise<EventReader> {
  const headers = new Headers({ authorization: `Bearer ${TOKEN}` });
  const res = await fetch(`${env.api.url}${SLICES}?watch=1&${query}`, {
    headers,
    client: options.client ?? env.client,
  });
  assert.equal(res.status, 200, await (res.status === 200 ? "" : res.text()));
  assert.equal(res.headers.get("content-type"), "application/json");
  return new EventReader(res);
}

function names(list: AnyJson): string[] {
  return list.items.map((i: AnyJson) => i.metadata.name);
}

test("list filters by label selector and pages with an opaque continue token", async (t) => {
  await using env = await setup();
  const { api } = env;
  for (const [name, service] of [["a", "kubernetes"], ["b", "other"], ["c", "kubernetes"], ["d", "kubernetes"]]) {
    api.upsert(endpointSlice(name ?? "", ["127.0.0.1"], 6443, { serviceName: service ?? "" }));
  }
  api.upsert({ ...endpointSlice("e", ["127.0.0.2"], 6443), metadata: { name: "e", namespace: "default" } });
  api.upsert(endpointSlice("z", ["127.0.0.3"], 6443, { namespace: "elsewhere" }));

  await t.step("a selector list has the real List shape and no kind on items", async () => {
    const { status, body } = await call(env, "GET", `${SLICES}?${SELECTOR}`);
    assert.equal(status, 200);
    assert.equal(body.kind, "EndpointSliceList");
    assert.equal(body.apiVersion, "discovery.k8s.io/v1");
    assert.equal(body.metadata.resourceVersion, api.resourceVersion);
    assert.deepEqual(names(body), ["a", "c", "d"]);
    assert.equal(body.items[0].kind, undefined);
    assert.equal(body.items[0].apiVersion, undefined);
    assert.equal(body.items[0].addressType, "IPv4");
    assert.match(body.items[0].metadata.uid, /^[0-9a-f-]{36}$/);
    assert.match(body.items[0].metadata.creationTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.equal(body.items[0].metadata.generation, 1);
  });

  await t.step("every selector operator filters as the API server does", async () => {
    const cases: [string, string[]][] = [
      ["kubernetes.io/service-name!=kubernetes", ["b", "e"]],
      ["kubernetes.io/service-name", ["a", "b", "c", "d"]],
      ["!kubernetes.io/service-name", ["e"]],
      ["kubernetes.io/service-name==other", ["b"]],
      ["kubernetes.io/service-name in (other,nope)", ["b"]],
      ["kubernetes.io/service-name notin (kubernetes)", ["b", "e"]],
      ["kubernetes.io/service-name=kubernetes,endpointslice.kubernetes.io/managed-by", ["a", "c", "d"]],
    ];
    for (const [selector, want] of cases) {
      const { status, body } = await call(env, "GET", `${SLICES}?labelSelector=${encodeURIComponent(selector)}`);
      assert.equal(status, 200, selector);
      assert.deepEqual(names(body), want, selector);
    }
    const byName = await call(env, "GET", `${SLICES}?fieldSelector=metadata.name%3Dc`);
    assert.deepEqual(names(byName.body), ["c"]);
  });

  await t.step("the cluster-wide collection lists every namespace", async () => {
    const { body } = await call(env, "GET", `/apis/discovery.k8s.io/v1/endpointslices?${SELECTOR}`);
    assert.deepEqual(body.items.map((i: AnyJson) => `${i.metadata.namespace}/${i.metadata.name}`), [
      "default/a",
      "default/c",
      "default/d",
      "elsewhere/z",
    ]);
  });

  await t.step("limit and continue page through a consistent snapshot", async () => {
    const first = await call(env, "GET", `${SLICES}?limit=2`);
    assert.deepEqual(names(first.body), ["a", "b"]);
    assert.equal(first.body.metadata.remainingItemCount, 3);
    const token = first.body.metadata.continue;
    assert.equal(typeof token, "string");
    api.upsert(endpointSlice("bb", ["127.0.0.9"], 6443));
    const second = await call(env, "GET", `${SLICES}?limit=2&continue=${encodeURIComponent(token)}`);
    assert.deepEqual(names(second.body), ["c", "d"]);
    assert.equal(second.body.metadata.resourceVersion, first.body.metadata.resourceVersion);
    const third = await call(
      env,
      "GET",
      `${SLICES}?limit=2&continue=${encodeURIComponent(second.body.metadata.continue)}`,
    );
    assert.deepEqual(names(third.body), ["e"]);
    assert.equal(third.body.metadata.continue, undefined);
  });

  await t.step("a continue token older than the history is 410 Expired", async () => {
    const first = await call(env, "GET", `${SLICES}?limit=1`);
    api.expireHistory();
    const next = await call(
      env,
      "GET",
      `${SLICES}?limit=1&continue=${encodeURIComponent(first.body.metadata.continue)}`,
    );
    assert.equal(next.status, 410);
    assert.equal(next.body.reason, "Expired");
  });

  await t.step("a malformed selector is 400 BadRequest", async () => {
    const { status, body } = await call(env, "GET", `${SLICES}?labelSelector=${encodeURIComponent("a=(b")}`);
    assert.equal(status, 400);
    assert.equal(body.kind, "Status");
    assert.equal(body.reason, "BadRequest");
  });
});

test("watch from a resourceVersion delivers the later events in order", async () => {
  await using env = await setup();
  const { api } = env;
  api.upsert(endpointSlice("one", ["127.0.0.1"], 6443));
  api.upsert(endpointSlice("two", ["127.0.0.2"], 6443));
  const list = await call(env, "GET", `${SLICES}?${SELECTOR}`);
  const rv = Number(list.body.metadata.resourceVersion);
  api.upsert(endpointSlice("one", ["127.0.0.1", "127.0.0.3"], 6443));
  api.remove("endpointslices", "default", "two");
  api.upsert(endpointSlice("other", ["127.0.0.4"], 6443, { serviceName: "not-kubernetes" }));
  const watch = await openWatch(env, `${SELECTOR}&resourceVersion=${rv}`);
  try {
    const modified = await watch.event();
    assert.equal(modified.type, "MODIFIED");
    assert.equal(modified.object.kind, "EndpointSlice");
    assert.equal(modified.object.apiVersion, "discovery.k8s.io/v1");
    assert.equal(modified.object.metadata.resourceVersion, String(rv + 1));
    assert.equal(modified.object.metadata.generation, 2);
    assert.equal(modified.object.endpoints.length, 2);
    const deleted = await watch.event();
    assert.deepEqual([deleted.type, deleted.object.metadata.name], ["DELETED", "two"]);
    assert.equal(deleted.object.metadata.resourceVersion, String(rv + 2));

    api.upsert(endpointSlice("three", ["127.0.0.5"], 6443));
    const added = await watch.event();
    assert.deepEqual([added.type, added.object.metadata.name], ["ADDED", "three"]);
    assert.equal(added.object.metadata.resourceVersion, String(rv + 4));

    api.upsert(endpointSlice("three", ["127.0.0.5"], 6443, { serviceName: "moved-away" }));
    const left = await watch.event();
    assert.deepEqual([left.type, left.object.metadata.name], ["DELETED", "three"]);
    assert.equal(left.object.metadata.resourceVersion, String(rv + 5));
  } finally {
    await watch.cancel();
  }
});

test("watch without a resourceVersion starts with the current objects as ADDED", async () => {
  await using env = await setup();
  env.api.upsert(endpointSlice("one", ["127.0.0.1"], 6443));
  const watch = await openWatch(env, SELECTOR);
  try {
    const e = await watch.event();
    assert.deepEqual([e.type, e.object.metadata.name], ["ADDED", "one"]);
    await env.api.waitForOpenWatches(1);
    assert.equal(env.api.openWatches, 1);
  } finally {
    await watch.cancel();
  }
  await env.api.waitForRequest((r) => r.watch && r.status === 200);
});

test("watch from a resourceVersion older than the history answers 200 and one ERROR event with a 410 Status", async () => {
  await using env = await setup();
  const { api } = env;
  api.upsert(endpointSlice("one", ["127.0.0.1"], 6443));
  const old = Number(api.resourceVersion);
  api.upsert(endpointSlice("one", ["127.0.0.2"], 6443));
  api.expireHistory();
  const res = await fetch(`${api.url}${SLICES}?watch=true&resourceVersion=${old}`, {
    client: env.client,
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  assert.equal(res.status, 200);
  const lines = (await res.text()).split("\n").filter((l) => l !== "");
  assert.equal(lines.length, 1, "one event, then the stream ends");
  const event = JSON.parse(lines[0] ?? "");
  assert.equal(event.type, "ERROR");
  assert.equal(event.object.code, 410);
  assert.equal(event.object.reason, "Expired");
  assert.match(event.object.message, /^too old resource version: \d+ \(\d+\)$/);
});

test("faultExpiredWatchAsHttp410: the too-old watch is answered with an HTTP 410 Status instead", async () => {
  await using pki = await createTestPki();
  await using api = await startFakeApiServer({ pki, tokens: [TOKEN], faultExpiredWatchAsHttp410: true });
  using client = Deno.createHttpClient({ caCerts: [pki.ca.cert] });
  const env = { pki, api, client, [Symbol.asyncDispose]: async () => {} };
  api.upsert(endpointSlice("one", ["127.0.0.1"], 6443));
  const old = Number(api.resourceVersion);
  api.upsert(endpointSlice("one", ["127.0.0.2"], 6443));
  api.expireHistory();
  const { status, body } = await call(env, "GET", `${SLICES}?watch=true&resourceVersion=${old}`);
  assert.equal(status, 410);
  assert.deepEqual(
    { kind: body.kind, apiVersion: body.apiVersion, metadata: body.metadata, status: body.status },
    { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure" },
  );
  assert.equal(body.reason, "Expired");
  assert.equal(body.code, 410);
  assert.match(body.message, /^too old resource version: \d+ \(\d+\)$/);
  const current = await openWatch(env, `resourceVersion=${api.resourceVersion}`);
  await current.cancel();
});

test("a bounded history expires the oldest resourceVersions by itself", async () => {
  await using pki = await createTestPki();
  await using api = await startFakeApiServer({
    pki,
    tokens: [TOKEN],
    historySize: 2,
    faultExpiredWatchAsHttp410: true,
  });
  using client = Deno.createHttpClient({ caCerts: [pki.ca.cert] });
  const start = Number(api.resourceVersion);
  for (let i = 1; i <= 3; i++) api.upsert(endpointSlice("one", [`127.0.0.${i}`], 6443));
  const env = { pki, api, client, [Symbol.asyncDispose]: async () => {} };
  assert.equal((await call(env, "GET", `${SLICES}?watch=1&resourceVersion=${start}`)).status, 410);
  const ok = await openWatch(env, `resourceVersion=${start + 1}`);
  try {
    assert.equal((await ok.event()).object.metadata.resourceVersion, String(start + 2));
  } finally {
    await ok.cancel();
  }
});

test("sendGoneEvent sends an ERROR event with a 410 Status, then ends the stream", async () => {
  await using env = await setup();
  const watch = await openWatch(env, `resourceVersion=${env.api.resourceVersion}`);
  try {
    await env.api.waitForOpenWatches(1);
    env.api.sendGoneEvent();
    const e = await watch.event();
    assert.equal(e.type, "ERROR");
    assert.equal(e.object.kind, "Status");
    assert.equal(e.object.apiVersion, "v1");
    assert.equal(e.object.status, "Failure");
    assert.equal(e.object.code, 410);
    assert.equal(e.object.reason, "Expired");
    assert.equal(await watch.line(), undefined);
  } finally {
    await watch.cancel();
  }
});

test("bookmarks carry only the resourceVersion, and it advances", async () => {
  await using env = await setup({ bookmarkIntervalMs: 20 });
  const { api } = env;
  const watch = await openWatch(env, `${SELECTOR}&allowWatchBookmarks=true&resourceVersion=${api.resourceVersion}`);
  try {
    const first = await watch.event();
    assert.deepEqual(first, {
      type: "BOOKMARK",
      object: {
        kind: "EndpointSlice",
        apiVersion: "discovery.k8s.io/v1",
        metadata: { resourceVersion: api.resourceVersion },
      },
    });
    api.upsert(endpointSlice("unrelated", ["127.0.0.1"], 6443, { serviceName: "other" }));
    const target = api.resourceVersion;
    let seen = first.object.metadata.resourceVersion;
    while (seen !== target) {
      const e = await watch.event();
      assert.equal(e.type, "BOOKMARK", "a non-matching write must not reach this watch");
      assert.ok(Number(e.object.metadata.resourceVersion) >= Number(seen));
      seen = e.object.metadata.resourceVersion;
    }
  } finally {
    await watch.cancel();
  }
});

test("timeoutSeconds ends the watch with a clean end of stream", async () => {
  await using env = await setup();
  const watch = await openWatch(env, `timeoutSeconds=1&resourceVersion=${env.api.resourceVersion}`);
  try {
    assert.equal(await watch.line(3000), undefined);
  } finally {
    await watch.cancel();
  }
});

test("a wrong or missing token is 401, a missing grant is 403", async (t) => {
  await using env = await setup();
  const { api } = env;

  await t.step("no credentials and a wrong token get the Unauthorized Status", async () => {
    for (const token of [null, "wrong"]) {
      const { status, body } = await call(env, "GET", SLICES, { token });
      assert.equal(status, 401);
      assert.deepEqual(body, {
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message: "Unauthorized",
        reason: "Unauthorized",
        code: 401,
      });
    }
  });

  await t.step("a rotated token takes effect at once", async () => {
    api.tokens.add("token-two");
    api.tokens.delete(TOKEN);
    assert.equal((await call(env, "GET", SLICES)).status, 401);
    assert.equal((await call(env, "GET", SLICES, { token: "token-two" })).status, 200);
    api.tokens.add(TOKEN);
  });

  await t.step("an identity with grants may do only what they name", async () => {
    api.rbac.set(DEFAULT_TOKEN_USER, [{ verb: "list", resource: "endpointslices" }]);
    assert.equal((await call(env, "GET", SLICES)).status, 200);
    const watch = await call(env, "GET", `${SLICES}?watch=1`);
    assert.equal(watch.status, 403);
    assert.equal(watch.body.reason, "Forbidden");
    assert.equal(
      watch.body.message,
      `endpointslices.discovery.k8s.io is forbidden: User "${DEFAULT_TOKEN_USER}" cannot watch resource ` +
        `"endpointslices" in API group "discovery.k8s.io" in the namespace "default"`,
    );
    assert.deepEqual(watch.body.details, { group: "discovery.k8s.io", kind: "endpointslices" });
    const lease = await call(env, "GET", `${LEASES}/x`);
    assert.equal(lease.status, 403);
    assert.match(
      lease.body.message,
      /^leases\.coordination\.k8s\.io "x" is forbidden: .* cannot get resource "leases"/,
    );
    api.rbac.set("system:serviceaccounts", [{ verb: "*", resource: "leases" }]);
    assert.equal((await call(env, "GET", `${LEASES}/x`)).status, 404);
    api.rbac.clear();
  });

  await t.step("the request log records user, status and remote address", () => {
    const denied = api.requests.find((r) => r.status === 403);
    assert.ok(denied);
    assert.equal(denied.user, DEFAULT_TOKEN_USER);
    assert.equal(denied.method, "GET");
    assert.equal(denied.path, `${SLICES}?watch=1`);
    assert.equal(denied.remoteAddress, "127.0.0.1");
    assert.equal(api.requests[0]?.user, undefined);
    assert.equal(api.requests[0]?.status, 401);
  });
});

test("client certificates: the cluster CA's is accepted, another CA's is refused", async (t) => {
  await using env = await setup();
  const { api, pki } = env;

  await t.step("the test client certificate authenticates as its CN and O", async () => {
    using client = Deno.createHttpClient({ caCerts: [pki.ca.cert], cert: pki.client.cert, key: pki.client.key });
    const { status } = await call(env, "GET", SLICES, { token: null, client });
    assert.equal(status, 200);
    assert.equal(api.requests.at(-1)?.user, TEST_NODE_USER);
    api.rbac.set(TEST_NODE_GROUP, [{ verb: "get", resource: "*" }]);
    const denied = await call(env, "GET", SLICES, { token: null, client });
    assert.equal(denied.status, 403);
    assert.match(denied.body.message, new RegExp(`User "${TEST_NODE_USER}" cannot list`));
    api.rbac.clear();
  });

  await t.step("the combined cert+key PEM works as both cert and key", async () => {
    const combined = pki.client.combined;
    using client = Deno.createHttpClient({ caCerts: [pki.ca.cert], cert: combined, key: combined });
    assert.equal((await call(env, "GET", SLICES, { token: null, client })).status, 200);
  });

  await t.step("a certificate from another CA is 401", async () => {
    const other = pki.otherClient;
    using client = Deno.createHttpClient({ caCerts: [pki.ca.cert], cert: other.cert, key: other.key });
    assert.equal((await call(env, "GET", SLICES, { token: null, client })).status, 401);
  });

  await t.step("a newly issued certificate carries its own identity", async () => {
    const issued = await pki.issueClientCert({ commonName: "system:node:rotated", organizations: ["system:nodes"] });
    assert.notEqual(issued.cert, pki.client.cert);
    using client = Deno.createHttpClient({ caCerts: [pki.ca.cert], cert: issued.cert, key: issued.key });
    assert.equal((await call(env, "GET", SLICES, { token: null, client })).status, 200);
    assert.equal(api.requests.at(-1)?.user, "system:node:rotated");
  });
});

test("the DNS-only server certificate fails verification for 127.0.0.1", async () => {
  await using env = await setup({ serverCert: "dns" });
  await assert.rejects(call(env, "GET", "/readyz"));
  assert.equal(env.api.requests.length, 0);
});

test("server-side apply creates, then updates, and records the field manager", async (t) => {
  await using env = await setup();
  const path = `${SLICES}/applied`;
  const apply = (body: unknown, query = "fieldManager=copier&force=true") =>
    call(env, "PATCH", `${path}?${query}`, {
      body: typeof body === "string" ? body : JSON.stringify(body),
      contentType: "application/apply-patch+yaml",
    });
  const slice = endpointSlice("applied", ["127.0.0.1"], 6443);

  await t.step("an apply without fieldManager is 422", async () => {
    const { status, body } = await apply(slice, "force=true");
    assert.equal(status, 422);
    assert.equal(body.reason, "Invalid");
  });

  let uid = "";
  await t.step("the first apply creates the object (201)", async () => {
    const { status, body } = await apply(slice);
    assert.equal(status, 201);
    uid = body.metadata.uid;
    assert.equal(body.metadata.generation, 1);
    assert.deepEqual(body.metadata.managedFields.map((m: AnyJson) => [m.manager, m.operation, m.fieldsType]), [
      ["copier", "Apply", "FieldsV1"],
    ]);
    assert.ok(body.metadata.managedFields[0].fieldsV1["f:endpoints"]);
  });

  await t.step("a changed apply (YAML text) updates it in place", async () => {
    const before = env.api.resourceVersion;
    const yaml = [
      "apiVersion: discovery.k8s.io/v1",
      "kind: EndpointSlice",
      "metadata:",
      "  name: applied",
      "  labels: {kubernetes.io/service-name: kubernetes}",
      "addressType: IPv4",
      "endpoints:",
      "  - addresses: [127.0.0.2]",
      "ports:",
      "  - {name: https, port: 6443, protocol: TCP}",
    ].join("\n");
    const { status, body } = await apply(yaml);
    assert.equal(status, 200);
    assert.equal(body.metadata.uid, uid);
    assert.equal(body.metadata.generation, 2);
    assert.equal(body.metadata.resourceVersion, String(Number(before) + 1));
    assert.deepEqual(body.endpoints, [{ addresses: ["127.0.0.2"] }]);
    assert.deepEqual(body.metadata.labels, { "kubernetes.io/service-name": "kubernetes" });
  });

  await t.step("the same apply again stores nothing", async () => {
    const before = env.api.resourceVersion;
    const { status, body } = await apply(slice);
    assert.equal(status, 200);
    const again = await apply(slice);
    assert.equal(again.status, 200);
    assert.equal(again.body.metadata.resourceVersion, body.metadata.resourceVersion);
    assert.equal(env.api.resourceVersion, String(Number(before) + 1));
  });

  await t.step("another manager's different value conflicts unless forced", async () => {
    const other = endpointSlice("applied", ["127.0.0.9"], 6443);
    const conflict = await apply(other, "fieldManager=intruder");
    assert.equal(conflict.status, 409);
    assert.equal(conflict.body.reason, "Conflict");
    assert.match(conflict.body.message, /^Apply failed with \d+ conflicts?: /);
    assert.match(conflict.body.message, /conflict with "copier"/);
    const forced = await apply(other, "fieldManager=intruder&force=true");
    assert.equal(forced.status, 200);
    assert.deepEqual(forced.body.endpoints, [{ addresses: ["127.0.0.9"], conditions: { ready: true } }]);
  });

  await t.step("merge patch changes one field and keeps the others", async () => {
    const { status, body } = await call(env, "PATCH", path, {
      body: { metadata: { labels: { extra: "yes" } } },
      contentType: "application/merge-patch+json",
    });
    assert.equal(status, 200);
    assert.equal(body.metadata.labels.extra, "yes");
    assert.equal(body.metadata.labels["kubernetes.io/service-name"], "kubernetes");
    assert.equal(body.metadata.uid, uid);
  });
});

test("create, update with a stale resourceVersion, and delete answer as the API server", async (t) => {
  await using env = await setup();
  const slice = endpointSlice("crud", ["127.0.0.1"], 6443);
  let created: AnyJson;

  await t.step("POST creates (201) and a second POST is 409 AlreadyExists", async () => {
    const first = await call(env, "POST", SLICES, { body: slice });
    assert.equal(first.status, 201);
    created = first.body;
    assert.equal(created.kind, "EndpointSlice");
    const again = await call(env, "POST", SLICES, { body: slice });
    assert.equal(again.status, 409);
    assert.equal(again.body.reason, "AlreadyExists");
    assert.equal(again.body.message, 'endpointslices.discovery.k8s.io "crud" already exists');
  });

  await t.step("PUT with the current resourceVersion succeeds, with a stale one is 409 Conflict", async () => {
    const next = { ...created, endpoints: [{ addresses: ["127.0.0.2"] }] };
    const ok = await call(env, "PUT", `${SLICES}/crud`, { body: next });
    assert.equal(ok.status, 200);
    assert.notEqual(ok.body.metadata.resourceVersion, created.metadata.resourceVersion);
    const stale = await call(env, "PUT", `${SLICES}/crud`, { body: next });
    assert.equal(stale.status, 409);
    assert.equal(stale.body.reason, "Conflict");
    assert.match(stale.body.message, /the object has been modified; please apply your changes to the latest version/);
  });

  await t.step("an invalid EndpointSlice is 422 Invalid", async () => {
    const bad = { ...endpointSlice("bad", ["not-an-ip"], 6443) };
    const { status, body } = await call(env, "POST", SLICES, { body: bad });
    assert.equal(status, 422);
    assert.equal(body.reason, "Invalid");
  });

  await t.step("DELETE answers a Success Status, then GET and DELETE are 404", async () => {
    const del = await call(env, "DELETE", `${SLICES}/crud`);
    assert.equal(del.status, 200);
    assert.equal(del.body.kind, "Status");
    assert.equal(del.body.status, "Success");
    assert.equal(del.body.details.name, "crud");
    const get = await call(env, "GET", `${SLICES}/crud`);
    assert.equal(get.status, 404);
    assert.equal(get.body.reason, "NotFound");
    assert.equal((await call(env, "DELETE", `${SLICES}/crud`)).status, 404);
  });
});

test("lease times must be MicroTime with exactly six fractional digits", async () => {
  await using env = await setup();
  const lease = (renewTime: string) => ({
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: { name: "copier" },
    spec: {
      holderIdentity: "node-a",
      leaseDurationSeconds: 15,
      acquireTime: "2026-01-01T00:00:00.000000Z",
      renewTime,
    },
  });
  const rejected = await call(env, "POST", LEASES, { body: lease(new Date(0).toISOString()) });
  assert.equal(rejected.status, 400);
  assert.equal(rejected.body.reason, "BadRequest");
  assert.match(rejected.body.message, /cannot parse "\.000Z" as "\.000000"/);
  for (const bad of ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.000000000Z"]) {
    assert.equal((await call(env, "POST", LEASES, { body: lease(bad) })).status, 400, bad);
  }
  const ok = await call(env, "POST", LEASES, { body: lease("2026-01-01T00:00:01.123456Z") });
  assert.equal(ok.status, 201);
  assert.equal(ok.body.spec.renewTime, "2026-01-01T00:00:01.123456Z");
  const zeroDuration = { ...lease("2026-01-01T00:00:01.123456Z"), spec: { leaseDurationSeconds: 0 } };
  zeroDuration.metadata = { name: "other" };
  assert.equal((await call(env, "POST", LEASES, { body: zeroDuration })).status, 422);
});

test("failNext answers the injected status for the matching requests only", async () => {
  await using env = await setup();
  env.api.failNext(2, 503, { match: (r) => r.path.startsWith(SLICES) });
  assert.equal((await call(env, "GET", "/readyz")).status, 200);
  const first = await call(env, "GET", SLICES);
  assert.equal(first.status, 503);
  assert.equal(first.body.reason, "ServiceUnavailable");
  assert.equal((await call(env, "GET", SLICES)).status, 503);
  assert.equal((await call(env, "GET", SLICES)).status, 200);
  env.api.failNext(1, 500);
  assert.equal((await call(env, "GET", "/readyz")).status, 500);
  env.api.readyz = 503;
  assert.equal((await call(env, "GET", "/readyz", { token: null })).status, 503);
});

test("stream faults: a dropped stream, half an event, garbage and silence", async (t) => {
  await using env = await setup({ bookmarkIntervalMs: 20 });
  const { api } = env;
  const rv = () => `resourceVersion=${api.resourceVersion}`;

  await t.step("dropStreams breaks the body mid-stream", async () => {
    const watch = await openWatch(env, rv());
    await api.waitForOpenWatches(1);
    api.dropStreams();
    await assert.rejects(watch.line());
    await watch.cancel();
  });

  await t.step("dropMidEvent leaves half a JSON line, then breaks", async () => {
    const watch = await openWatch(env, rv());
    await api.waitForOpenWatches(1);
    api.dropMidEvent();
    await assert.rejects(watch.line());
    assert.match(watch.buffered, /^\{"type":"MODIFIED","object":\{/);
    assert.throws(() => JSON.parse(watch.buffered));
    await watch.cancel();
  });

  await t.step("sendGarbage writes a non-JSON line and keeps the stream open", async () => {
    const watch = await openWatch(env, rv());
    await api.waitForOpenWatches(1);
    api.sendGarbage();
    assert.equal(await watch.line(), "this is not json");
    api.upsert(endpointSlice("after-garbage", ["127.0.0.1"], 6443));
    assert.equal((await watch.change()).type, "ADDED");
    await watch.cancel();
  });

  await t.step("silence holds events and bookmarks back, then delivers them in order", async () => {
    await api.waitForOpenWatches(0);
    const silent = await openWatch(env, rv());
    await api.waitForOpenWatches(1);
    api.silence(true);
    assert.equal(await silent.hasData(), false); // starts a read that anything sent from now on would complete
    const witness = await openWatch(env, `allowWatchBookmarks=true&${rv()}`);
    api.upsert(endpointSlice("held", ["127.0.0.1"], 6443));
    api.upsert(endpointSlice("held", ["127.0.0.2"], 6443));
    assert.equal((await witness.change()).type, "ADDED");
    assert.equal((await witness.change()).type, "MODIFIED");
    for (let i = 0; i < 3; i++) assert.equal((await witness.event()).type, "BOOKMARK");
    assert.equal(await silent.hasData(), false, "a silenced watch sent something");
    api.silence(false);
    assert.equal((await silent.event()).type, "ADDED");
    assert.equal((await silent.event()).type, "MODIFIED");
    await silent.cancel();
    await witness.cancel();
  });
});

test("close ends open watches and every connection", async () => {
  const pki = await createTestPki();
  const api = await startFakeApiServer({ pki, tokens: [TOKEN] });
  const client = Deno.createHttpClient({ caCerts: [pki.ca.cert] });
  const env = { pki, api, client, [Symbol.asyncDispose]: async () => {} };
  const watch = await openWatch(env, `resourceVersion=${api.resourceVersion}`);
  await api.waitForOpenWatches(1);
  const waiting = api.waitForRequest((r) => r.method === "DELETE", 10_000);
  await api.close();
  await assert.rejects(waiting, /before the fake API server closed/);
  await assert.rejects(watch.line());
  await watch.cancel();
  assert.equal(api.openWatches, 0);
  client.close();
  await pki.cleanup();
});

test("waitForRequest sees past requests and waits for future ones", async () => {
  await using env = await setup();
  await call(env, "GET", "/version");
  const past = await env.api.waitForRequest((r) => r.path === "/version", 1000);
  assert.equal(past.status, 200);
  const future = env.api.waitForRequest((r) => r.path === "/livez", 5000, { since: env.api.requests.length });
  await call(env, "GET", "/livez");
  assert.equal((await future).index, 1);
  await assert.rejects(env.api.waitForRequest((r) => r.path === "/never", 10), /within 10 ms/);
});

test("services, leases and events are served at their real paths", async (t) => {
  await using env = await setup();
  const service = (namespace: string, name: string) => ({
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace },
    spec: { ports: [{ name: "https", port: 443, targetPort: 6443 }] },
    status: { loadBalancer: { ingress: [{ ip: "192.0.2.1" }] } },
  });

  await t.step(
    "services: namespaced create drops status; the cluster-wide list and watch see every namespace",
    async () => {
      const created = await call(env, "POST", "/api/v1/namespaces/a/services", { body: service("a", "api") });
      assert.equal(created.status, 201);
      assert.equal(created.body.status, undefined);
      assert.equal(
        (await call(env, "POST", "/api/v1/namespaces/b/services", { body: service("b", "api") })).status,
        201,
      );
      const list = await call(env, "GET", "/api/v1/services");
      assert.equal(list.body.kind, "ServiceList");
      assert.equal(list.body.apiVersion, "v1");
      assert.deepEqual(list.body.items.map((i: AnyJson) => i.metadata.namespace), ["a", "b"]);
      const res = await fetch(`${env.api.url}/api/v1/services?watch=true&resourceVersion=0`, {
        headers: { authorization: `Bearer ${TOKEN}` },
        client: env.client,
      });
      const watch = new EventReader(res);
      try {
        assert.deepEqual([(await watch.event()).object.metadata.namespace, (await watch.event()).object.kind], [
          "a",
          "Service",
        ]);
      } finally {
        await watch.cancel();
      }
      assert.equal((await call(env, "POST", "/api/v1/services", { body: service("a", "x") })).status, 405);
    },
  );

  await t.step("leases: create, read, then update with the read resourceVersion", async () => {
    const body = {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: { name: "leader" },
      spec: { holderIdentity: "node-a", leaseDurationSeconds: 15, renewTime: "2026-01-01T00:00:00.000000Z" },
    };
    assert.equal((await call(env, "GET", `${LEASES}/leader`)).status, 404);
    assert.equal((await call(env, "POST", LEASES, { body })).status, 201);
    const read = await call(env, "GET", `${LEASES}/leader`);
    assert.equal(read.body.kind, "Lease");
    assert.equal(read.body.metadata.namespace, "kube-system");
    const renewed = { ...read.body, spec: { ...read.body.spec, renewTime: "2026-01-01T00:00:10.000000Z" } };
    const put = await call(env, "PUT", `${LEASES}/leader`, { body: renewed });
    assert.equal(put.status, 200);
    assert.equal(put.body.spec.renewTime, "2026-01-01T00:00:10.000000Z");
    assert.deepEqual(env.api.get("leases", "kube-system", "leader")?.spec, put.body.spec);
    assert.equal((await call(env, "PUT", `${LEASES}/leader`, { body: renewed })).status, 409);
  });

  await t.step("events: create answers 201 with the stored event", async () => {
    const event = {
      apiVersion: "v1",
      kind: "Event",
      metadata: { generateName: "extractedprism-" },
      involvedObject: { kind: "Node", name: "test-node" },
      reason: "UpstreamDown",
      message: "upstream 127.0.0.1:6443 failed its probe",
      type: "Warning",
    };
    const { status, body } = await call(env, "POST", "/api/v1/namespaces/default/events", { body: event });
    assert.equal(status, 201);
    assert.match(body.metadata.name, /^extractedprism-[a-z0-9]{5}$/);
    assert.equal(env.api.list("events", "default").length, 1);
  });

  await t.step("remove reports whether the object existed", () => {
    assert.equal(env.api.remove("services", "a", "api"), true);
    assert.equal(env.api.remove("services", "a", "api"), false);
  });
});
