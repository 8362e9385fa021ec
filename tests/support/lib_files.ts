/**
 * The program's own source files, for tests that read the code itself (the layout's arrows, what a compiled binary
 * must embed).
 *
 * @module
 */

/** The `lib/` folder. */
export const LIB: URL = new URL("../../lib/", import.meta.url);

/** Every `.ts` file below `dir` (default `lib/`), as absolute paths, sorted. */
export async function libFiles(dir: URL = LIB): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const url = new URL(e.isDirectory ? `${e.name}/` : e.name, dir);
    if (e.isDirectory) out.push(...await libFiles(url));
    else if (e.name.endsWith(".ts")) out.push(url.pathname);
  }
  return out.sort();
}

/** The file's code without its comments (doc examples import freely). */
export function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
}
