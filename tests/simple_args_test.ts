import assert from "node:assert/strict";
import { parseCommandLine } from "../lib/config/cli.ts";
import { buildProxyConfig, configOutcome, resolveRaw } from "../lib/config/config.ts";
import { PROXY_FLAGS } from "../lib/config/flags.ts";
import { simpleArgs } from "../lib/config/simple_args.ts";

const INFO = { version: "0.0.0" };

/** What main does on the fast path, in the shape of parseCommandLine's outcome. */
function fastPath(argv: string[], env: Record<string, string>) {
  const simple = simpleArgs(argv, PROXY_FLAGS);
  if (simple === undefined) return undefined;
  const r = configOutcome(() => buildProxyConfig(resolveRaw(PROXY_FLAGS, simple, env)));
  return r.kind === "ok" ? { kind: "proxy", config: r.config } : r;
}

Deno.test("the fast path reads the usual command lines exactly as the full parser does", () => {
  const ep = "--endpoints=10.0.0.1:6443,[::1]:6443";
  const cases: [string[], Record<string, string>][] = [
    [[ep], {}],
    [[ep, "--enable-discovery"], {}],
    [[ep, "--enable-discovery=false", "--close-on-unhealthy=0"], {}],
    [[ep, "--bind-port=9000", "--health-port=9001", "--log-format=text"], { EP_LOG_LEVEL: "debug" }],
    [[], { EP_ENDPOINTS: "10.0.0.2:6443", EP_HEALTH_INTERVAL: "2s" }],
    [[ep, "--health-timeout=1s"], {}], // an error: same line
    [[ep, "--bind-port=0"], {}],
    [["--endpoints="], {}],
    [[ep, "--kube-context= "], {}],
    [[ep, "--health-check=tcp", "--upstream-selection=round-robin", "--state-file=/var/lib/x/s.json"], {}],
    [[], {}],
  ];
  for (const [argv, env] of cases) {
    const fast = fastPath(argv, env);
    assert.ok(fast !== undefined, `fast path taken for ${argv.join(" ")}`);
    assert.deepEqual(fast, parseCommandLine(argv, env, INFO), argv.join(" "));
  }
});

Deno.test("everything else goes to the full parser", () => {
  for (
    const argv of [
      ["--help"],
      ["-h"],
      ["--version"],
      ["--endpoints", "10.0.0.1:6443"],
      ["--bind-port=1", "--bind-port=2"],
      ["--bogus=1"],
      ["positional"],
      ["--bind-port"],
      ["-kubeconfig=x"],
    ]
  ) assert.equal(simpleArgs(argv, PROXY_FLAGS), undefined, argv.join(" "));
});
