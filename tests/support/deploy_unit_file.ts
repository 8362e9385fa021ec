/**
 * A systemd unit file reader for tests: sections of `Key=value` lines, keys that repeat kept in order, `\`
 * continuations joined, `#` and `;` comment lines dropped. Also the `KEY=value` lines of an EnvironmentFile.
 *
 * @module
 */

/** A parsed unit: section name → key → every value given, in order. */
export type UnitFile = ReadonlyMap<string, ReadonlyMap<string, readonly string[]>>;

/** Parses a unit file. */
export function parseUnitFile(text: string): UnitFile {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  let pending = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (pending === "" && (line === "" || line.startsWith("#") || line.startsWith(";"))) continue;
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = pending + line;
    pending = "";
    const section = /^\[(.+)\]$/.exec(full);
    if (section) {
      current = new Map();
      sections.set(section[1]!, current);
      continue;
    }
    const kv = /^([A-Za-z0-9]+)=(.*)$/.exec(full);
    if (!kv || current === undefined) throw new SyntaxError(`Cannot parse the unit line '${full}': expected Key=value`);
    const values = current.get(kv[1]!) ?? [];
    values.push(kv[2]!.trim());
    current.set(kv[1]!, values);
  }
  return sections;
}

/** Every value of a key, or an empty list. */
export function values(unit: UnitFile, section: string, key: string): readonly string[] {
  return unit.get(section)?.get(key) ?? [];
}

/** The single value of a key; fails when it is missing or given more than once. */
export function value(unit: UnitFile, section: string, key: string): string {
  const all = values(unit, section, key);
  if (all.length !== 1) throw new Error(`[${section}] ${key} is given ${all.length} times: expected once`);
  return all[0]!;
}

/** One variable line of an EnvironmentFile example: set (`KEY=v`) or shown commented (`#KEY=v`). */
export interface EnvLine {
  readonly name: string;
  readonly value: string;
  readonly commented: boolean;
}

/** The variable lines of an EnvironmentFile, commented ones included; prose comments are skipped. */
export function parseEnvFile(text: string): EnvLine[] {
  const out: EnvLine[] = [];
  for (const line of text.split("\n")) {
    const m = /^(#?)([A-Z][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) out.push({ name: m[2]!, value: m[3]!, commented: m[1] === "#" });
  }
  return out;
}
