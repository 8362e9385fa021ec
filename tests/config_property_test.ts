/**
 * Properties of the proxy's flags and EP_* values: whatever the command line and environment hold, the result is a
 * ConfigError (one line, exit 2) or a config that keeps every documented invariant; every spelling of a command line
 * (`--name=value`, `--name value`, `-name=value`) decides the same.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { ConfigError } from "../lib/errors.ts";
import { configOutcome, type FlagSpec, resolveRaw } from "../lib/config/flags.ts";
import { buildProxyConfig, parseProxyCommandLine as parseCommandLine, PROXY_FLAGS } from "../lib/config/proxy_flags.ts";
import { MAX_DURATION_MS } from "../lib/config/values.ts";
import { endpointKey, parseEndpoint } from "../lib/endpoint.ts";
import { anyText, check, returnsOr, RUNS } from "./support/properties.ts";

/** Loopback endpoints only: nothing here is dialled, but no other address goes into a test input. */
const anyPort = fc.oneof(
  { arbitrary: fc.integer({ min: 1, max: 65535 }), weight: 9 },
  fc.constantFrom(0, 65536, 99999),
);
const loopbackEndpoint = fc.oneof(
  fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), anyPort).map(([a, b, c, p]) => `127.${a}.${b}.${c}:${p}`),
  anyPort.map((p) => `[::1]:${p}`),
  anyPort.map((p) => `localhost:${p}`),
);

const duration = fc.oneof(
  fc.tuple(fc.nat(5000), fc.constantFrom("ns", "us", "ms", "s", "m", "h", "")).map(([n, u]) => `${n}${u}`),
  fc.constantFrom("0", "1.5s", "596h31m23.647s", "596h31m23.648s", "1h1m1s", ".5s", "5.s", "-1s"),
  anyText,
);

/** A plausible or garbage value for a flag, by its kind. */
function valueFor(f: FlagSpec): fc.Arbitrary<string> {
  switch (f.valueName) {
    case "duration":
      return duration;
    case "port":
    case "count":
      return fc.oneof({ arbitrary: fc.integer({ min: -1, max: 70_000 }).map(String), weight: 3 }, anyText);
    case "bool":
      return fc.oneof(fc.constantFrom("true", "false", "1", "0", "t", "f", "yes", "no", "TRUE", " no "), anyText);
    case "list":
      return fc.oneof(fc.array(loopbackEndpoint, { maxLength: 4 }).map((l) => l.join(",")), anyText);
    case "ip":
      return fc.oneof(fc.constantFrom("127.0.0.1", "::1", "[::1]", "0.0.0.0", "::", "localhost"), anyText);
    default:
      return fc.oneof(
        fc.constantFrom("readyz", "tcp", "round-robin", "debug", "text", "kubernetes.default.svc"),
        anyText,
      );
  }
}

/** Per flag: mostly absent (the default applies), else a value; so that a fair share of the configs is valid. */
const values = fc.record(
  Object.fromEntries(
    PROXY_FLAGS.map((f) => [
      f.name,
      fc.oneof({ arbitrary: fc.constant(undefined), weight: 40 }, { arbitrary: valueFor(f), weight: 1 }),
    ]),
  ),
) as fc.Arbitrary<Record<string, string | undefined>>;

/** Loopback endpoint lists, present in most runs: `--endpoints` is required. */
const endpoints = fc.oneof(
  { arbitrary: fc.array(loopbackEndpoint, { minLength: 1, maxLength: 4 }).map((l) => l.join(",")), weight: 4 },
  { arbitrary: fc.constant(undefined), weight: 1 },
);

const envOf = (v: Record<string, string | undefined>) => Object.fromEntries(PROXY_FLAGS.map((f) => [f.env, v[f.name]]));

Deno.test("proxy flag and EP_* properties", async (t) => {
  await t.step("any command line and environment give a ConfigError or a config keeping its invariants", () => {
    let valid = 0;
    check(fc.property(values, values, endpoints, (cli, env, list) => {
      const c = returnsOr(
        ConfigError,
        () => buildProxyConfig(resolveRaw(PROXY_FLAGS, { ...cli, endpoints: cli.endpoints ?? list }, envOf(env))),
      );
      if (c === undefined) return;
      valid++;
      for (const p of [c.bindPort, c.healthPort]) assert.ok(Number.isInteger(p) && p >= 1 && p <= 65535);
      assert.notEqual(c.bindPort, c.healthPort);
      assert.ok(c.endpoints.length > 0);
      const keys = c.endpoints.map(endpointKey);
      assert.equal(new Set(keys).size, keys.length, "endpoints are deduplicated");
      for (const e of c.endpoints) assert.deepEqual(parseEndpoint(endpointKey(e)), e);
      for (const ms of [c.healthIntervalMs, c.healthTimeoutMs, c.dialTimeoutMs, c.hedgeDelayMs, c.drainTimeoutMs]) {
        assert.ok(ms > 0 && ms <= MAX_DURATION_MS, `duration ${ms}`);
      }
      assert.ok(c.healthTimeoutMs < c.healthIntervalMs);
      for (const n of [c.healthRise, c.healthFall]) assert.ok(Number.isInteger(n) && n >= 1 && n <= 100);
      assert.equal(c.healthClientCert === undefined, c.healthClientKey === undefined);
    }));
    assert.ok(valid > 0, "some generated configurations are valid");
  });
  await t.step("a ConfigError is one line naming the flag", () => {
    check(fc.property(values, (cli) => {
      try {
        buildProxyConfig(resolveRaw(PROXY_FLAGS, cli, {}));
      } catch (e) {
        assert.ok(e instanceof ConfigError, String(e));
        assert.doesNotMatch(e.message, /\n/);
        assert.match(e.message, /--[a-z-]+/);
      }
    }));
  });
  await t.step("every spelling of a flag decides as --name=value does, which decides as the table's values do", () => {
    const given = fc.array(
      fc.constantFrom(...PROXY_FLAGS).chain((f) => valueFor(f).map((v) => [f, v] as const)),
      { maxLength: 6 },
    );
    const spellings = [
      (name: string, v: string) => [`--${name}=${v}`],
      (name: string, v: string) => [`-${name}=${v}`],
      (name: string, v: string) => [`--${name}`, v],
      (name: string, v: string) => [`-${name}`, v],
    ];
    check(
      fc.property(given, fc.nat(spellings.length - 1), values, (pairs, pick, env) => {
        // A bool flag takes a separate value only when it is a boolean word: that form is covered in cli_test.ts.
        const spell = (f: FlagSpec, v: string) => {
          const by = f.valueName === "bool" ? undefined : spellings[pick];
          return by === undefined ? [`--${f.name}=${v}`] : by(f.name, v);
        };
        const argv = pairs.flatMap(([f, v]) => spell(f, v));
        const last = Object.fromEntries(pairs.map(([f, v]) => [f.name, v])); // a repeated flag: the last one wins
        const direct = configOutcome(() => buildProxyConfig(resolveRaw(PROXY_FLAGS, last, envOf(env))));
        const parsed = parseCommandLine(argv, envOf(env), { version: "0.0.0" });
        // A value that looks like -h or --version is still the flag's value, never help: same outcome.
        assert.deepEqual(parsed, direct, JSON.stringify(argv));
      }),
      RUNS / 5,
    );
  });
  await t.step("the parser never throws: any argv is a config or an exit with one line", () => {
    check(
      fc.property(
        fc.array(fc.oneof(anyText, fc.constantFrom("--endpoints", "-h", "--", "-v")), { maxLength: 5 }),
        (argv) => {
          const r = parseCommandLine(argv, { EP_ENDPOINTS: "127.0.0.1:6443" }, { version: "0.0.0" });
          if (r.kind === "exit" && r.code === 2) assert.match(r.stderr, /^error: [^\n]*\n$/);
        },
      ),
      RUNS / 5,
    );
  });
});

Deno.test("a value with a newline or an escape sequence gives a one-line error (found by the properties)", () => {
  const r = configOutcome(() =>
    buildProxyConfig(resolveRaw(PROXY_FLAGS, { "bind-address": "\n", endpoints: "127.0.0.1:6443" }, {}))
  );
  assert.deepEqual(r, {
    kind: "exit",
    code: 2,
    stdout: "",
    stderr: "error: Invalid --bind-address '\\n': expected an IP address such as 127.0.0.1 or ::1\n",
  });
  const e = configOutcome(() =>
    buildProxyConfig(resolveRaw(PROXY_FLAGS, {}, { EP_ENDPOINTS: "127.0.0.1:6443\n\u001b[31mforged" }))
  );
  assert.equal(e.kind === "exit" && e.stderr.split("\n").length, 2, "one line and its newline");
  assert.match(e.kind === "exit" ? e.stderr : "", /'127\.0\.0\.1:6443\\n\\x1b\[31mforged'/);
});
