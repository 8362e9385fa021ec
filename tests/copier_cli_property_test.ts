/**
 * Properties of the endpoint copier's flags and EP_* values: whatever they hold, the result is a one-line ConfigError
 * or a config keeping its invariants (leader-election timing, distinct ports, Kubernetes names).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { ConfigError } from "../lib/errors.ts";
import { resolveRaw } from "../lib/config/flags.ts";
import { MAX_DURATION_MS } from "../lib/config/values.ts";
import { bindAddress } from "../lib/config/copier_values.ts";
import { buildCopierConfig, COPIER_FLAGS, parseCopierCommandLine } from "../lib/config/copier_flags.ts";
import { anyText, check, returnsOr, RUNS } from "./support/properties.ts";

const duration = fc.oneof(
  fc.tuple(fc.nat(100), fc.constantFrom("ms", "s", "m")).map(([n, u]) => `${n}${u}`),
  anyText,
);
const address = fc.oneof(
  fc.tuple(fc.constantFrom("", "127.0.0.1", "[::1]", "localhost", "0.0.0.0", "[::]", "example"), fc.nat(70_000))
    .map(([h, p]) => `${h}:${p}`),
  fc.constant("0"),
  anyText,
);
const name = fc.oneof(fc.stringMatching(/^[a-z][a-z0-9-]{0,70}$/), fc.constantFrom("kubernetes", "default"), anyText);

function valueFor(kind: string | undefined): fc.Arbitrary<string> {
  switch (kind) {
    case "duration":
      return duration;
    case "address":
      return address;
    case "bool":
      return fc.oneof(fc.constantFrom("true", "false", "1", "0"), anyText);
    case "port":
      return fc.oneof(fc.integer({ min: -1, max: 70_000 }).map(String), anyText);
    case "name":
    case "namespace":
      return name;
    default:
      return fc.oneof(fc.constantFrom("info", "debug", "json", "console", "tcp", "TCP", "2", "panic"), anyText);
  }
}

const values = fc.record(
  Object.fromEntries(
    COPIER_FLAGS.map((f) => [
      f.name,
      fc.oneof({ arbitrary: fc.constant(undefined), weight: 6 }, { arbitrary: valueFor(f.valueName), weight: 1 }),
    ]),
  ),
) as fc.Arbitrary<Record<string, string | undefined>>;
const envOf = (v: Record<string, string | undefined>) =>
  Object.fromEntries(COPIER_FLAGS.map((f) => [f.env, v[f.name]]));
const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

Deno.test("endpoint copier flag and EP_* properties", async (t) => {
  await t.step("any flags and environment give a one-line ConfigError or a config keeping its invariants", () => {
    let valid = 0;
    check(fc.property(values, values, (cli, env) => {
      let c;
      try {
        c = buildCopierConfig(resolveRaw(COPIER_FLAGS, cli, envOf(env)));
      } catch (e) {
        assert.ok(e instanceof ConfigError, String(e));
        assert.doesNotMatch(e.message, /\n/);
        return;
      }
      valid++;
      assert.ok(c.renewDeadlineMs < c.leaseDurationMs);
      assert.ok(c.retryPeriodMs * 1.2 < c.renewDeadlineMs);
      for (const ms of [c.leaseDurationMs, c.renewDeadlineMs, c.retryPeriodMs, c.resyncPeriodMs]) {
        assert.ok(ms > 0 && ms <= MAX_DURATION_MS);
      }
      for (const a of [c.healthProbeBindAddress, c.metricsBindAddress]) {
        if (a !== undefined) assert.ok(Number.isInteger(a.port) && a.port >= 0 && a.port <= 65535);
      }
      for (
        const n of [c.defaultSource.namespace, c.managedTarget.namespace, c.defaultSource.name, c.managedTarget.name]
      ) {
        assert.ok(n.length <= 63 && LABEL.test(n), n);
      }
    }));
    assert.ok(valid > 0, "some generated configurations are valid");
  });
  await t.step("a bind address is undefined (off), or a port 0..65535 on an IP address or every address", () => {
    check(fc.property(address, (text) => {
      const a = returnsOr(RangeError, () => bindAddress(text));
      if (a === undefined) return;
      assert.ok(a.port >= 0 && a.port <= 65535);
      assert.ok(a.host === "" || /^[\d.]+$/.test(a.host) || a.host.includes(":"), a.host);
    }));
  });
  await t.step("any argv is a config or an exit, never a throw", () => {
    const arg = fc.oneof(
      fc.constantFrom(...COPIER_FLAGS).chain((f) => valueFor(f.valueName).map((v) => `-${f.name}=${v}`)),
      anyText,
    );
    check(
      fc.property(fc.array(arg, { maxLength: 5 }), (argv) => {
        const r = parseCopierCommandLine(argv, {}, { version: "0.0.0" });
        if (r.kind === "exit" && r.code === 2) assert.match(r.stderr, /^error: [^\n]*\n$/);
      }),
      RUNS / 5,
    );
  });
});
