import assert from "node:assert/strict";
import {
  dedupeEndpoints,
  endpointKey,
  isHostname,
  isIpv4,
  normaliseHost,
  normaliseIpv6,
  parseEndpoint,
  parsePort,
} from "../lib/endpoint.ts";

function assertRefused(text: string, reason: string): void {
  assert.throws(() => parseEndpoint(text), (e: unknown) => {
    assert.ok(e instanceof TypeError, `'${text}' should throw a TypeError, got ${String(e)}`);
    assert.equal(e.message, `Cannot parse endpoint '${text}': ${reason}`);
    return true;
  });
}

const notAHost = (host: string) => `'${host}' is not an IP address or an RFC 1123 host name`;
const badPort = (port: string) => `port '${port}' is not a number from 1 to 65535`;

Deno.test("an IPv4 endpoint parses to its host and port", () => {
  assert.deepEqual(parseEndpoint("10.0.0.1:6443"), { host: "10.0.0.1", port: 6443 });
  assert.deepEqual(parseEndpoint("0.0.0.0:1"), { host: "0.0.0.0", port: 1 });
  assert.deepEqual(parseEndpoint("255.255.255.255:65535"), { host: "255.255.255.255", port: 65535 });
  assert.deepEqual(parseEndpoint("  10.0.0.1:6443\t"), { host: "10.0.0.1", port: 6443 });
});

Deno.test("IPv4 is strict: out-of-range octets, leading zeros and wrong octet counts are refused", () => {
  for (const host of ["256.1.1.1", "1.2.3.256", "01.2.3.4", "1.2.3.04", "1.2.3", "1.2.3.4.5", "1.2.3.-4"]) {
    assert.equal(isIpv4(host), false, host);
    assertRefused(`${host}:6443`, notAHost(host));
  }
  for (const host of ["0.0.0.0", "9.99.199.255", "127.0.0.1"]) assert.equal(isIpv4(host), true, host);
});

Deno.test("IPv6 in brackets is normalised so that one address has one key", async (t) => {
  await t.step("the long and the short form of ::1 are equal", () => {
    const short = parseEndpoint("[::1]:6443");
    const long = parseEndpoint("[0:0:0:0:0:0:0:1]:6443");
    assert.deepEqual(long, short);
    assert.deepEqual(short, { host: "::1", port: 6443 });
    assert.equal(endpointKey(long), "[::1]:6443");
  });
  await t.step("upper case and leading zeros are folded", () => {
    assert.deepEqual(parseEndpoint("[FE80:0000::000A]:443"), { host: "fe80::a", port: 443 });
    assert.equal(normaliseIpv6("2001:DB8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
  });
  await t.step("an embedded IPv4 address is accepted", () => {
    assert.equal(
      endpointKey(parseEndpoint("[::ffff:10.0.0.1]:6443")),
      endpointKey(parseEndpoint("[::ffff:a00:1]:6443")),
    );
  });
});

Deno.test("broken bracketed endpoints are refused with the reason", () => {
  assertRefused("[::1]", "expected '[ipv6]:port'");
  assertRefused("[::1]6443", "expected '[ipv6]:port'");
  assertRefused("[::1:6443", "expected '[ipv6]:port'");
  assertRefused("[::1]:", badPort(""));
  assertRefused("[::1]:6443x", badPort("6443x"));
  assertRefused("[10.0.0.1]:6443", "'10.0.0.1' is not an IPv6 address");
  assertRefused("[example.com]:6443", "'example.com' is not an IPv6 address");
  assertRefused("[1:2:3:4:5:6:7:8:9]:6443", "'1:2:3:4:5:6:7:8:9' is not an IPv6 address");
  assertRefused("[:::1]:6443", "':::1' is not an IPv6 address");
  assertRefused("[fe80::1%eth0]:6443", "'fe80::1%eth0' is not an IPv6 address");
  assertRefused("[]:6443", "'' is not an IPv6 address");
});

Deno.test("a bare IPv6 address without brackets is refused with a hint", () => {
  const hint = "an IPv6 address must be in brackets, as '[::1]:6443'";
  assertRefused("::1:6443", hint);
  assertRefused("fe80::1:443", hint);
  assertRefused("a:1:2", hint);
});

Deno.test("a missing port is refused", () => {
  assertRefused("10.0.0.1", "expected 'host:port'");
  assertRefused("example.com", "expected 'host:port'");
  assertRefused("", "expected 'host:port'");
  assertRefused("10.0.0.1:", badPort(""));
});

Deno.test("ports 1 and 65535 are the bounds; 0, 65536 and non-digits are refused", () => {
  assert.equal(parseEndpoint("10.0.0.1:1").port, 1);
  assert.equal(parseEndpoint("10.0.0.1:65535").port, 65535);
  for (const port of ["0", "65536", "99999", "123456", "-1", "+1", " 1", "0x10", "1e3", "6443a", "６４４３"]) {
    assertRefused(`10.0.0.1:${port}`, badPort(port));
  }
  assert.equal(parsePort("0"), undefined);
  assert.equal(parsePort("1"), 1);
  assert.equal(parsePort("65535"), 65535);
  assert.equal(parsePort("65536"), undefined);
});

Deno.test("RFC 1123 host names are accepted and lower-cased, a trailing dot dropped", () => {
  assert.deepEqual(parseEndpoint("Kube-API.Example.COM:6443"), { host: "kube-api.example.com", port: 6443 });
  assert.deepEqual(parseEndpoint("example.com.:6443"), { host: "example.com", port: 6443 });
  assert.deepEqual(parseEndpoint("localhost:6443"), { host: "localhost", port: 6443 });
  assert.deepEqual(parseEndpoint("1node.example:6443"), { host: "1node.example", port: 6443 });
  assert.deepEqual(parseEndpoint("xn--80ak6aa92e.com:443"), { host: "xn--80ak6aa92e.com", port: 443 });
});

Deno.test("host names that break RFC 1123 limits are refused", async (t) => {
  await t.step("bad characters and hyphens at a label's edge", () => {
    for (const host of ["a_b", "-a", "a-", "a..b", "a b", "пример.рф", "a.-b.c", "*.example.com"]) {
      assert.equal(isHostname(host), false, host);
      assertRefused(`${host}:6443`, notAHost(host));
    }
    assertRefused(":6443", notAHost(""));
  });
  await t.step("a label of 63 characters is the longest", () => {
    assert.equal(parseEndpoint(`${"a".repeat(63)}.com:1`).host, `${"a".repeat(63)}.com`);
    const tooLong = `${"a".repeat(64)}.com`;
    assertRefused(`${tooLong}:1`, notAHost(tooLong));
  });
  await t.step("a name of 253 characters is the longest", () => {
    const labels = (last: number) => ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(last)].join(".");
    assert.equal(labels(61).length, 253);
    assert.equal(parseEndpoint(`${labels(61)}:1`).host, labels(61));
    assertRefused(`${labels(62)}:1`, notAHost(labels(62)));
  });
  await t.step("an all-numeric last label is not a name (it would be a broken IPv4 address)", () => {
    assert.equal(isHostname("example.123"), false);
    assertRefused("example.123:1", notAHost("example.123"));
  });
});

Deno.test("normaliseHost names what it refuses", () => {
  assert.equal(normaliseHost("0:0:0:0:0:0:0:1"), "::1");
  assert.equal(normaliseHost("EXAMPLE.com"), "example.com");
  assert.throws(() => normaliseHost("a_b"), {
    name: "TypeError",
    message: "Cannot parse host 'a_b': expected an IP address or an RFC 1123 host name",
  });
});

Deno.test("endpointKey writes IPv6 in brackets and everything else as host:port", () => {
  assert.equal(endpointKey({ host: "::1", port: 6443 }), "[::1]:6443");
  assert.equal(endpointKey({ host: "10.0.0.1", port: 6443 }), "10.0.0.1:6443");
  assert.equal(endpointKey({ host: "example.com", port: 443 }), "example.com:443");
});

Deno.test("dedupe removes repeats by canonical key and keeps the first occurrence's order", () => {
  const list = [
    "10.0.0.2:6443",
    "[::1]:6443",
    "10.0.0.1:6443",
    "[0:0:0:0:0:0:0:1]:6443",
    "10.0.0.2:6443",
    "Example.COM:443",
    "example.com.:443",
    "10.0.0.1:6444",
  ].map(parseEndpoint);
  const unique = dedupeEndpoints(list);
  assert.deepEqual(unique.map(endpointKey), [
    "10.0.0.2:6443",
    "[::1]:6443",
    "10.0.0.1:6443",
    "example.com:443",
    "10.0.0.1:6444",
  ]);
  assert.equal(unique[0], list[0], "the first object is kept, not a later equal one");
  assert.equal(unique[1], list[1]);
  assert.deepEqual(dedupeEndpoints([]), []);
});
