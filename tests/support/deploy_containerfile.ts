/**
 * A small Containerfile (Dockerfile) reader for tests: instructions with continuations joined and comments dropped,
 * grouped into stages, plus COPY arguments and `.dockerignore` matching. It covers the syntax the project's
 * Containerfile uses, not every corner of the format.
 *
 * @module
 */

/** One instruction: `COPY --from=x a b /c/` is `{ keyword: "COPY", args: "--from=x a b /c/" }`. */
export interface Instruction {
  readonly keyword: string;
  readonly args: string;
}

/** One build stage: its `FROM` and the instructions after it. */
export interface Stage {
  /** The `AS` name, or `undefined` for an unnamed stage. */
  readonly name: string | undefined;
  /** The image or stage it starts from, as written (ARGs not expanded). */
  readonly base: string;
  /** The `--platform` of the `FROM`, if any. */
  readonly platform: string | undefined;
  readonly instructions: readonly Instruction[];
}

/** A parsed Containerfile. */
export interface Containerfile {
  /** `ARG name=value` lines before the first `FROM`. */
  readonly globalArgs: ReadonlyMap<string, string | undefined>;
  readonly stages: readonly Stage[];
}

/** The parts of a `COPY` instruction. */
export interface Copy {
  readonly from: string | undefined;
  readonly sources: readonly string[];
  readonly dest: string;
}

/** Splits a Containerfile into instructions: joins `\` continuations, drops comment lines and blank lines. */
export function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = "";
  for (const raw of text.split("\n")) {
    const line = raw.trimEnd();
    if (/^\s*#/.test(line) || (pending === "" && line.trim() === "")) continue;
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = "";
    if (full === "") continue;
    const m = /^(\S+)\s*(.*)$/s.exec(full)!;
    out.push({ keyword: m[1]!.toUpperCase(), args: m[2]!.replace(/\s+/g, " ").trim() });
  }
  if (pending.trim() !== "") {
    throw new SyntaxError(`Cannot parse the Containerfile: expected a line after '${pending}'`);
  }
  return out;
}

/** Parses a Containerfile into global ARGs and stages. */
export function parseContainerfile(text: string): Containerfile {
  const globalArgs = new Map<string, string | undefined>();
  const stages: {
    name: string | undefined;
    base: string;
    platform: string | undefined;
    instructions: Instruction[];
  }[] = [];
  for (const ins of instructions(text)) {
    if (ins.keyword === "FROM") {
      const words = ins.args.split(" ");
      const platform = words.find((w) => w.startsWith("--platform="))?.slice("--platform=".length);
      const rest = words.filter((w) => !w.startsWith("--"));
      const as = rest.findIndex((w) => w.toUpperCase() === "AS");
      stages.push({ name: as >= 0 ? rest[as + 1] : undefined, base: rest[0]!, platform, instructions: [] });
    } else if (stages.length === 0) {
      if (ins.keyword !== "ARG") throw new SyntaxError(`Cannot parse '${ins.keyword}' before FROM: expected ARG`);
      const [name, ...value] = ins.args.split("=");
      globalArgs.set(name!, value.length > 0 ? value.join("=") : undefined);
    } else {
      stages.at(-1)!.instructions.push(ins);
    }
  }
  return { globalArgs, stages };
}

/** The stage with a name. */
export function stage(file: Containerfile, name: string): Stage {
  const s = file.stages.find((s) => s.name === name);
  if (s === undefined) throw new Error(`The Containerfile has no stage '${name}'`);
  return s;
}

/** The arguments of a `COPY` (shell form or JSON form). */
export function parseCopy(ins: Instruction): Copy {
  if (ins.keyword !== "COPY") throw new TypeError(`Cannot read '${ins.keyword}' as COPY`);
  const words = ins.args.split(" ");
  const flags = words.filter((w) => w.startsWith("--"));
  const rest = ins.args.slice(flags.join(" ").length).trim();
  const paths: string[] = rest.startsWith("[") ? JSON.parse(rest) : rest.split(" ");
  const from = flags.find((f) => f.startsWith("--from="))?.slice("--from=".length);
  return { from, sources: paths.slice(0, -1), dest: paths.at(-1)! };
}

/** Where each source of a COPY lands: the destination itself, or inside it when it ends with `/`. */
export function copyTargets(copy: Copy): [source: string, target: string][] {
  return copy.sources.map((s) => [s, copy.dest.endsWith("/") ? `${copy.dest}${s.split("/").at(-1)}` : copy.dest]);
}

function globToRegExp(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*" && pattern[i + 1] === "*") {
      re += ".*";
      i++;
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/**
 * Whether `.dockerignore` lets a path (relative, `/`-separated) into the build context: the last pattern that matches
 * the path or one of its parent folders decides; `!` patterns let it back in.
 */
export function inBuildContext(dockerignore: string, path: string): boolean {
  const rules = dockerignore.split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#")).map((l) => {
    const negate = l.startsWith("!");
    const body = (negate ? l.slice(1) : l).replace(/^\/+/, "").replace(/\/+$/, "");
    return { negate, re: globToRegExp(body) };
  });
  const parts = path.split("/");
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join("/"));
  let included = true;
  for (const rule of rules) {
    if (prefixes.some((p) => rule.re.test(p))) included = rule.negate;
  }
  return included;
}
