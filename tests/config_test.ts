import assert from "node:assert/strict";
import { ConfigError, escapeControls } from "../lib/errors.ts";
import { describeConfig } from "../lib/config/describe.ts";
import { parseProxyCommandLine as parseCommandLine, PROXY_FLAGS } from "../lib/config/proxy_flags.ts";

const INFO = { version: "1.2.3" };
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;

function stderrOf(argv: readonly string[], env: Record<string, string> = {}): string {
  const r = parseCommandLine(argv, env, INFO);
  if (r.kind !== "exit") assert.fail(`expected an error for ${JSON.stringify(argv)}, got a config`);
  assert.equal(r.code, 2);
  return r.stderr;
}

Deno.test("a value with control characters is escaped in the one-line error", async (t) => {
  const cases: [string, string][] = [
    ["a newline", "\n"],
    ["an escape sequence", "\x1b[31m"],
    ["a carriage return", "\r"],
  ];
  for (const [what, bad] of cases) {
    await t.step(`${what}, from the command line`, () => {
      const err = stderrOf([`--endpoints=127.0.0.1:6443`, `--bind-port=7${bad}445`]);
      assert.match(err, /^error: [^\n]+\n$/);
      assert.doesNotMatch(err.slice(0, -1), CONTROL, JSON.stringify(err));
      assert.equal(
        err,
        `error: Invalid --bind-port '7${escapeControls(bad)}445': expected a port number from 1 to 65535\n`,
      );
    });
    await t.step(`${what}, in an endpoint from the environment`, () => {
      const err = stderrOf([], { EP_ENDPOINTS: `127.0.0.1${bad}:6443` });
      assert.match(err, /^error: [^\n]+\n$/);
      assert.doesNotMatch(err.slice(0, -1), CONTROL, JSON.stringify(err));
      assert.ok(err.includes(`'127.0.0.1${escapeControls(bad)}:6443'`), err);
    });
    await t.step(`${what}, in an unknown flag`, () => {
      const err = stderrOf([`--bogus${bad}x`, "--endpoints=127.0.0.1:6443"]);
      assert.match(err, /^error: [^\n]+\n$/);
      assert.doesNotMatch(err.slice(0, -1), CONTROL, JSON.stringify(err));
    });
  }
});

Deno.test("escapeControls escapes C0, DEL, C1 and the Unicode line separators, and nothing else", () => {
  assert.equal(escapeControls("a\nb\rc\td"), "a\\nb\\rc\\td");
  assert.equal(escapeControls("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
  assert.equal(escapeControls("\x00\x7f\x9b\u2028"), "\\x00\\x7f\\x9b\\u2028");
  assert.equal(escapeControls("plain 'text' ü €"), "plain 'text' ü €");
});

Deno.test("every ConfigError escapes its message", () => {
  assert.equal(new ConfigError("Cannot read --x 'a\nb'").message, "Cannot read --x 'a\\nb'");
});

Deno.test("the start-up log fields name every flag of the table, written as the flag takes it", () => {
  const r = parseCommandLine(["--endpoints=127.0.0.1:6443,[::1]:6443", "--drain-timeout=90s"], {}, INFO);
  if (r.kind !== "ok") assert.fail(r.stderr);
  const fields = describeConfig(r.config);
  for (const f of PROXY_FLAGS) {
    const key = f.name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    assert.ok(Object.hasOwn(fields, key), `--${f.name} is logged as ${key}`);
  }
  assert.equal(fields.endpoints, "127.0.0.1:6443,[::1]:6443");
  assert.equal(fields.drainTimeout, "1m30s");
  assert.equal(fields.healthCaFile, null);
  assert.equal(fields.closeOnUnhealthy, true);
});
