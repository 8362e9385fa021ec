/** Properties of endpoint parsing: any text is a TypeError or a valid, canonical endpoint that round-trips. */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  endpointKey,
  isHostname,
  isIpv4,
  normaliseHost,
  normaliseIpv6,
  parseEndpoint,
  parsePort,
} from "../lib/endpoint.ts";
import { anyText, check, returnsOr } from "./support/properties.ts";

/** Endpoint text as an operator might write it, valid or nearly so. */
const endpointText = fc.oneof(
  anyText,
  fc.tuple(fc.oneof(fc.ipV4(), fc.domain(), anyText), fc.oneof(fc.nat(70_000).map(String), anyText))
    .map(([h, p]) => `${h}:${p}`),
  fc.tuple(fc.oneof(fc.ipV6(), anyText), fc.oneof(fc.nat(70_000).map(String), anyText))
    .map(([h, p]) => `[${h}]:${p}`),
);

function assertValid(e: { host: string; port: number }, text: string): void {
  assert.ok(Number.isInteger(e.port) && e.port >= 1 && e.port <= 65535, `port of '${text}'`);
  assert.equal(normaliseHost(e.host), e.host, `host of '${text}' is canonical`);
  assert.ok(isIpv4(e.host) || normaliseIpv6(e.host) === e.host || isHostname(e.host), `host of '${text}'`);
  assert.deepEqual(parseEndpoint(endpointKey(e)), e, `'${text}' round-trips through its key`);
}

Deno.test("endpoint properties", async (t) => {
  await t.step("any text is a TypeError or a valid endpoint whose key parses back to it", () => {
    check(fc.property(endpointText, (text) => {
      const e = returnsOr(TypeError, () => parseEndpoint(text));
      if (e !== undefined) assertValid(e, text);
    }));
  });
  await t.step("IPv4, IPv6 and DNS endpoints with a port 1..65535 parse", () => {
    const host = fc.oneof(fc.ipV4(), fc.ipV6().map((h) => `[${h}]`), fc.domain());
    check(fc.property(host, fc.integer({ min: 1, max: 65535 }), (h, port) => {
      const e = parseEndpoint(`${h}:${port}`);
      assert.equal(e.port, port);
      assertValid(e, `${h}:${port}`);
    }));
  });
  await t.step("a normalised IPv6 address normalises to itself, and any text is an address or undefined", () => {
    check(fc.property(fc.oneof(fc.ipV6(), anyText), (text) => {
      const n = normaliseIpv6(text);
      if (n !== undefined) assert.equal(normaliseIpv6(n), n, `'${text}' → '${n}'`);
    }));
    check(fc.property(fc.ipV6(), (text) => assert.notEqual(normaliseIpv6(text), undefined, text)));
  });
  await t.step("a port is 1..65535 written in at most 5 digits, or undefined", () => {
    check(fc.property(fc.oneof(fc.nat(100_000).map(String), anyText), (text) => {
      const p = parsePort(text);
      if (p !== undefined) {
        assert.ok(Number.isInteger(p) && p >= 1 && p <= 65535);
        assert.equal(Number(text), p);
      }
    }));
  });
});
