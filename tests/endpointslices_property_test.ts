/**
 * Properties of the EndpointSlice mapping: any JSON (from a hostile or broken API server) gives a sorted, deduplicated
 * list of canonical endpoints with ports 1..65535, and never a throw. Nothing mapped here is dialled.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { endpointKey, isIpv4, parseEndpoint } from "../lib/endpoint.ts";
import { endpointsFromSlices } from "../lib/discovery/kubernetes/endpointslices.ts";
import { check } from "./support/properties.ts";

const junk = fc.jsonValue({ maxDepth: 2 });
const field = <T>(a: fc.Arbitrary<T>) => fc.oneof({ arbitrary: a, weight: 5 }, { arbitrary: junk, weight: 1 });
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255)).map(([a, b, c]) => `127.${a}.${b}.${c}`);
const ipv6 = fc.constantFrom("::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1", "0::1", "::0:1");
const address = fc.oneof(ipv4, ipv6, fc.constantFrom("127.0.0.01", "127.1", "::1%eth0", "", "localhost"));
const slice = fc.record({
  metadata: field(fc.record({ name: field(fc.constantFrom("a", "b", "")), namespace: field(fc.constant("default")) })),
  addressType: field(fc.constantFrom("IPv4", "IPv6", "FQDN", "ipv4")),
  ports: field(fc.array(
    field(fc.record({
      name: field(fc.constantFrom("https", "http", "")),
      port: field(fc.oneof(fc.integer({ min: -1, max: 70_000 }), fc.constant(null), fc.double())),
    }, { requiredKeys: [] })),
    { maxLength: 3 },
  )),
  endpoints: field(fc.array(
    field(fc.record({
      addresses: field(fc.array(field(address), { maxLength: 3 })),
      conditions: field(fc.record({ ready: field(fc.boolean()), terminating: field(fc.boolean()) }, {
        requiredKeys: [],
      })),
    }, { requiredKeys: [] })),
    { maxLength: 4 },
  )),
}, { requiredKeys: [] });

Deno.test("EndpointSlice properties", async (t) => {
  await t.step("any list of JSON values maps to sorted, unique, canonical endpoints on valid ports", () => {
    let found = 0;
    check(
      fc.property(
        fc.array(fc.oneof(slice, junk), { maxLength: 4 }),
        fc.integer({ min: 1, max: 65535 }),
        (slices, fallback) => {
          const eps = endpointsFromSlices(slices, fallback);
          found += eps.length;
          const keys = eps.map(endpointKey);
          assert.equal(new Set(keys).size, keys.length, "no duplicates");
          for (const e of eps) {
            assert.deepEqual(parseEndpoint(endpointKey(e)), e);
            assert.ok(isIpv4(e.host) || e.host.includes(":"), e.host);
            assert.ok(Number.isInteger(e.port) && e.port >= 1 && e.port <= 65535);
          }
          assert.deepEqual(
            endpointsFromSlices([...slices].reverse(), fallback),
            eps,
            "order of slices does not matter",
          );
        },
      ),
    );
    assert.ok(found > 0, "some generated slices hold endpoints");
  });
  await t.step("every ready address of a well-formed slice is kept", () => {
    check(
      fc.property(fc.array(ipv4, { minLength: 1, maxLength: 5 }), fc.integer({ min: 1, max: 65535 }), (ips, port) => {
        const eps = endpointsFromSlices([{
          metadata: { name: "kubernetes" },
          addressType: "IPv4",
          ports: [{ name: "https", port }],
          endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
        }], 6443);
        assert.deepEqual(new Set(eps.map(endpointKey)), new Set(ips.map((ip) => `${ip}:${port}`)));
      }),
    );
  });
});
