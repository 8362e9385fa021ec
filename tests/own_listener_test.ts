import assert from "node:assert/strict";
import { ConfigError } from "../lib/errors.ts";
import { resolveRaw } from "../lib/config/flags.ts";
import { buildProxyConfig, parseProxyCommandLine as parseCommandLine, PROXY_FLAGS } from "../lib/config/proxy_flags.ts";
import { isOwnListener, localAddresses } from "../lib/config/own_listener.ts";

const INFO = { version: "1.2.3" };

/** Parses and expects a configuration error: status 2, exactly one line on stderr. */
function failure(argv: readonly string[]): string {
  const r = parseCommandLine(argv, {}, INFO);
  if (r.kind !== "exit") assert.fail(`expected an error for ${JSON.stringify(argv)}, got a config`);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, "");
  assert.match(r.stderr, /^error: [^\n]+\n$/);
  return r.stderr.slice(0, -1);
}

Deno.test("a static endpoint that is the proxy's own listener is refused with one line naming it", async (t) => {
  await t.step("the default bind address", () => {
    assert.equal(
      failure(["--endpoints=127.0.0.1:7445,127.0.0.1:1"]),
      "error: Invalid --endpoints '127.0.0.1:7445,127.0.0.1:1': expected API servers, found 127.0.0.1:7445, " +
        "this proxy's own listener (127.0.0.1:7445): each connection would dial itself",
    );
  });
  await t.step("another port and bind address", () => {
    assert.match(
      failure(["--bind-address=127.0.0.2", "--bind-port=9000", "--endpoints=127.0.0.2:9000"]),
      /found 127\.0\.0\.2:9000, this proxy's own listener \(127\.0\.0\.2:9000\)/,
    );
  });
  await t.step("a wildcard bind address: any loopback address on that port", () => {
    assert.match(
      failure(["--bind-address=0.0.0.0", "--endpoints=127.0.0.5:7445"]),
      /found 127\.0\.0\.5:7445, this proxy's own listener \(0\.0\.0\.0:7445\)/,
    );
    assert.match(
      failure(["--bind-address=::", "--endpoints=[::1]:7445"]),
      /found \[::1\]:7445, this proxy's own listener \(\[::\]:7445\)/,
    );
    assert.match(failure(["--bind-address=::", "--endpoints=localhost:7445"]), /found localhost:7445/);
  });
  await t.step("a wildcard bind address: the node's own addresses", () => {
    // The node's addresses are injected: a test never puts a non-loopback address where it could be dialled, and
    // this one is only compared.
    const raw = resolveRaw(PROXY_FLAGS, { "bind-address": "0.0.0.0", endpoints: "192.0.2.7:7445" }, {});
    assert.throws(() => buildProxyConfig(raw, () => ["192.0.2.7"]), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /found 192\.0\.2\.7:7445, this proxy's own listener \(0\.0\.0\.0:7445\)/);
      return true;
    });
    assert.equal(buildProxyConfig(raw, () => []).endpoints.length, 1, "not one of the node's addresses");
  });
  await t.step("what is not the listener is accepted", () => {
    for (
      const argv of [
        ["--endpoints=127.0.0.1:6443"], // another port
        ["--bind-address=127.0.0.2", "--endpoints=127.0.0.1:7445"], // another address, not a wildcard
        ["--endpoints=[::1]:7445"], // IPv6 loopback while bound to 127.0.0.1
        ["--bind-address=0.0.0.0", "--endpoints=[::1]:7445"], // an IPv4-only wildcard
      ]
    ) {
      const r = parseCommandLine(argv, {}, INFO);
      assert.equal(r.kind, "ok", `${argv.join(" ")}: ${r.kind === "exit" ? r.stderr : ""}`);
    }
  });
});

Deno.test("isOwnListener compares canonical addresses", () => {
  const none = () => [];
  assert.ok(isOwnListener({ host: "::ffff:127.0.0.1", port: 7445 }, { host: "127.0.0.1", port: 7445 }, none));
  assert.ok(isOwnListener({ host: "0:0::1", port: 7445 }, { host: "::1", port: 7445 }, none));
  assert.ok(isOwnListener({ host: "0.0.0.0", port: 7445 }, { host: "0.0.0.0", port: 7445 }, none));
  assert.ok(!isOwnListener({ host: "127.0.0.1", port: 7446 }, { host: "0.0.0.0", port: 7445 }, none));
  let asked = 0;
  const counting = () => {
    asked++;
    return [];
  };
  isOwnListener({ host: "127.0.0.2", port: 7445 }, { host: "127.0.0.1", port: 7445 }, counting);
  assert.equal(asked, 0, "the node's addresses are read only for a wildcard bind address");
});

Deno.test("localAddresses lists loopback under the program's permission set", () => {
  const list = localAddresses();
  assert.ok(list.includes("127.0.0.1"), list.join(","));
});
