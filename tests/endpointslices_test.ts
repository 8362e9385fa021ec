import assert from "node:assert/strict";
import { endpointKey } from "../lib/endpoint.ts";
import { endpointsFromSlices } from "../lib/discovery/kubernetes/endpointslices.ts";
import { LogCapture } from "./support/log_capture.ts";
import { LogLimit } from "../lib/log_limit.ts";

type Ep = { addresses: unknown; conditions?: Record<string, unknown> | null };

function slice(name: string, endpoints: Ep[], opts: { addressType?: unknown; ports?: unknown } = {}): unknown {
  return {
    metadata: { name, namespace: "default" },
    addressType: opts.addressType ?? "IPv4",
    endpoints,
    ...("ports" in opts ? { ports: opts.ports } : { ports: [{ name: "https", port: 6443, protocol: "TCP" }] }),
  };
}

const keys = (slices: unknown[], fallback = 443) => endpointsFromSlices(slices, fallback).map(endpointKey);

Deno.test("endpointsFromSlices unions several slices, dedupes and sorts numerically", () => {
  const got = keys([
    slice("a", [{ addresses: ["10.0.0.10"] }, { addresses: ["10.0.0.9"] }]),
    slice("b", [{ addresses: ["10.0.0.9"] }, { addresses: ["10.0.0.2", "10.0.0.3"] }]),
    slice("c", [{ addresses: ["fd00::2"] }, { addresses: ["fd00::1"] }], { addressType: "IPv6" }),
  ]);
  assert.deepEqual(got, [
    "10.0.0.2:6443",
    "10.0.0.3:6443",
    "10.0.0.9:6443",
    "10.0.0.10:6443",
    "[fd00::1]:6443",
    "[fd00::2]:6443",
  ]);
});

Deno.test("endpointsFromSlices filters on the ready and terminating conditions", async (t) => {
  await t.step("ready false is skipped; missing, null or true counts as ready", () => {
    const got = keys([slice("a", [
      { addresses: ["10.0.0.1"], conditions: { ready: false } },
      { addresses: ["10.0.0.2"] },
      { addresses: ["10.0.0.3"], conditions: null },
      { addresses: ["10.0.0.4"], conditions: { ready: null } },
      { addresses: ["10.0.0.5"], conditions: { ready: true } },
    ])]);
    assert.deepEqual(got, ["10.0.0.2:6443", "10.0.0.3:6443", "10.0.0.4:6443", "10.0.0.5:6443"]);
  });
  await t.step("terminating true is skipped even when ready or serving", () => {
    const got = keys([slice("a", [
      { addresses: ["10.0.0.1"], conditions: { ready: true, serving: true, terminating: true } },
      { addresses: ["10.0.0.2"], conditions: { ready: true, terminating: false } },
    ])]);
    assert.deepEqual(got, ["10.0.0.2:6443"]);
  });
});

Deno.test("endpointsFromSlices picks the port named https, else the first, else the fallback", async (t) => {
  await t.step("the https port wins over an earlier port", () => {
    const ports = [{ name: "metrics", port: 9000 }, { name: "https", port: 6443 }];
    assert.deepEqual(keys([slice("a", [{ addresses: ["10.0.0.1"] }], { ports })]), ["10.0.0.1:6443"]);
  });
  await t.step("without an https port the first port is used", () => {
    const ports = [{ name: "api", port: 8443 }, { name: "other", port: 9000 }];
    assert.deepEqual(keys([slice("a", [{ addresses: ["10.0.0.1"] }], { ports })]), ["10.0.0.1:8443"]);
  });
  await t.step("missing, null or empty ports, or a port without a number, use the fallback port", () => {
    for (const ports of [undefined, null, [], [{ name: "https" }], [{ name: "https", port: null }]]) {
      const raw = slice("a", [{ addresses: ["10.0.0.1"] }], { ports }) as Record<string, unknown>;
      if (ports === undefined) delete raw.ports;
      assert.deepEqual(keys([raw], 7443), ["10.0.0.1:7443"], JSON.stringify(ports));
    }
  });
  await t.step("each slice uses its own port", () => {
    const got = keys([
      slice("a", [{ addresses: ["10.0.0.1"] }], { ports: [{ name: "https", port: 6443 }] }),
      slice("b", [{ addresses: ["10.0.0.1"] }], { ports: [{ name: "https", port: 443 }] }),
    ]);
    assert.deepEqual(got, ["10.0.0.1:443", "10.0.0.1:6443"]);
  });
});

Deno.test("endpointsFromSlices normalises IPv6 and checks addresses against the address type", () => {
  const got = keys([
    slice("v6", [{ addresses: ["FD00:0:0:0:0:0:0:1"] }, { addresses: ["fd00::1"] }, { addresses: ["10.0.0.7"] }], {
      addressType: "IPv6",
    }),
    slice("v4", [{ addresses: ["fd00::9"] }, { addresses: ["10.0.0.8"] }, { addresses: ["010.0.0.1"] }]),
  ]);
  assert.deepEqual(got, ["10.0.0.8:6443", "[fd00::1]:6443"]);
});

Deno.test("endpointsFromSlices skips FQDN slices with a debug log", async () => {
  await using logs = await LogCapture.start();
  const got = keys([
    slice("names", [{ addresses: ["api.example.com"] }], { addressType: "FQDN" }),
    slice("ips", [{ addresses: ["10.0.0.1"] }]),
  ]);
  assert.deepEqual(got, ["10.0.0.1:6443"]);
  assert.equal(logs.messages("debug").filter((m) => m.includes("FQDN")).length, 1);
  assert.deepEqual(logs.messages("warning"), []);
});

Deno.test("endpointsFromSlices logs and skips malformed slices and addresses, keeping the rest", async () => {
  await using logs = await LogCapture.start();
  const good = slice("good", [{ addresses: ["10.0.0.1"] }]);
  const bad: unknown[] = [
    null,
    "text",
    [],
    { addressType: "IPv4", endpoints: [{ addresses: ["10.0.0.99"] }] },
    { metadata: { name: "" }, addressType: "IPv4", endpoints: [{ addresses: ["10.0.0.99"] }] },
    slice("weird-type", [{ addresses: ["10.0.0.99"] }], { addressType: "IPv5" }),
    slice("port-zero", [{ addresses: ["10.0.0.99"] }], { ports: [{ name: "https", port: 0 }] }),
    slice("port-big", [{ addresses: ["10.0.0.99"] }], { ports: [{ name: "https", port: 65536 }] }),
    slice("port-text", [{ addresses: ["10.0.0.99"] }], { ports: [{ name: "https", port: "6443" }] }),
    slice("port-frac", [{ addresses: ["10.0.0.99"] }], { ports: [{ name: "https", port: 64.5 }] }),
    slice("ports-object", [{ addresses: ["10.0.0.99"] }], { ports: { https: 6443 } }),
    slice("port-null-entry", [{ addresses: ["10.0.0.99"] }], { ports: [null] }),
    { metadata: { name: "eps-object" }, addressType: "IPv4", endpoints: { a: 1 } },
    slice("mixed", [
      { addresses: "10.0.0.99" },
      { addresses: [42, "not-an-ip", "10.0.0.2"] },
      null as unknown as Ep,
    ]),
  ];
  assert.deepEqual(keys([...bad, good]), ["10.0.0.1:6443", "10.0.0.2:6443"]);
  // One warning per bad slice (13) plus one per bad endpoint or address in "mixed" (4).
  assert.equal(logs.messages("warning").length, 13 + 4);
  assert.ok(logs.messages("warning").some((m) => m.includes("port '0' is not a number from 1 to 65535")));
});

Deno.test("endpointsFromSlices returns an empty list when nothing is ready", () => {
  assert.deepEqual(keys([slice("a", [{ addresses: ["10.0.0.1"], conditions: { ready: false } }]), slice("b", [])]), []);
  assert.deepEqual(keys([]), []);
});

Deno.test("with a limit, a slice of 1,000 bad addresses read again and again is one warning a minute", async () => {
  await using logs = await LogCapture.start();
  let now = 0;
  const limit = new LogLimit({ intervalMs: 60_000, now: () => now });
  const bad = {
    metadata: { name: "kubernetes", namespace: "default" },
    addressType: "IPv4",
    endpoints: [{ addresses: Array.from({ length: 1000 }, (_, i) => `not-an-ip-${i}`) }],
    ports: [{ name: "https", port: 6443 }],
  };
  const good = { ...bad, metadata: { name: "kubernetes-2" }, endpoints: [{ addresses: ["127.0.0.1"] }] };
  for (let look = 0; look < 10; look++) {
    assert.deepEqual(endpointsFromSlices([bad, good], 443, limit).map(endpointKey), ["127.0.0.1:6443"]);
  }
  assert.equal(logs.messages("warning").length, 1);
  now = 60_000;
  endpointsFromSlices([bad, good], 443, limit);
  const lines = logs.messages("warning");
  assert.equal(lines.length, 2);
  assert.match(lines[1] ?? "", /9999 more like it not logged/);
});
