/**
 * A fast path for the usual command line: when every argument is `--name=value` (or a bare boolean flag) of a known
 * flag, given once, the values are read here, without loading commander. commander, and with it Node's compatibility
 * layer, adds start-up time (`deno task bench --only=startup` measures start → first relayed response), and the proxy
 * is on every node's boot path. Anything else (help, version, other spellings, unknown flags, repeats) returns
 * `undefined`, and the caller uses the full parser, which gives the same values and the proper messages.
 *
 * @module
 */
import type { FlagSpec } from "./flags.ts";

/**
 * Reads `--name=value` arguments of known flags, or returns `undefined` when the full parser is needed.
 *
 * @example
 * ```ts
 * import { simpleArgs } from "./simple_args.ts";
 * import { PROXY_FLAGS } from "./flags.ts";
 * console.assert(simpleArgs(["--endpoints=10.0.0.1:6443"], PROXY_FLAGS)?.endpoints === "10.0.0.1:6443");
 * console.assert(simpleArgs(["--help"], PROXY_FLAGS) === undefined);
 * ```
 */
export function simpleArgs(argv: readonly string[], flags: readonly FlagSpec[]): Record<string, string> | undefined {
  const known = new Map(flags.map((f) => [f.name, f]));
  const out: Record<string, string> = {};
  for (const arg of argv) {
    const m = /^--([a-z][a-z0-9-]*)(?:=([\s\S]*))?$/.exec(arg);
    if (m === null) return undefined;
    const name = m[1] as string;
    const spec = known.get(name);
    if (spec === undefined || Object.hasOwn(out, name)) return undefined;
    if (m[2] === undefined) {
      if (spec.valueName !== "bool") return undefined; // `--flag value`: let commander pair them
      out[name] = "true";
    } else out[name] = m[2];
  }
  return out;
}
