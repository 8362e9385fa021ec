/**
 * The line protocol of the suite's helper processes: JSON commands with an `id` on stdin, one JSON answer per command
 * on stdout (`{"id", "ok", "result" | "error"}`), and unasked events (`{"event": ...}`) in between.
 *
 * @module
 */

const encoder = new TextEncoder();

/** Writes one JSON line to stdout, all of it (a pipe may take a long line in parts). */
export function emit(obj: unknown): void {
  const bytes = encoder.encode(JSON.stringify(obj) + "\n");
  for (let off = 0; off < bytes.length;) off += Deno.stdout.writeSync(bytes.subarray(off));
}

/** The first line of an error's message. */
export function message(e: unknown): string {
  return e instanceof Error ? e.message.split("\n")[0] ?? "" : String(e);
}

/** One command as it arrives: its `id`, its `op`, and the op's own fields. */
export type Command = { readonly id: number; readonly op: string } & Record<string, unknown>;

/**
 * Reads commands from stdin until it closes, runs each with `handle` (concurrently) and answers each; resolves once
 * stdin has closed and every command has been answered.
 */
export async function serveCommands(handle: (cmd: Command) => Promise<unknown>): Promise<void> {
  const pending = new Set<Promise<void>>();
  let rest = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) {
      if (line.trim() === "") continue;
      const cmd = JSON.parse(line) as Command;
      const p: Promise<void> = handle(cmd).then(
        (result) => emit({ id: cmd.id, ok: true, result }),
        (e) => emit({ id: cmd.id, ok: false, error: message(e) }),
      ).finally(() => pending.delete(p));
      pending.add(p);
    }
  }
  await Promise.all(pending);
}

/** A number field of a command, or `fallback` when absent. */
export function num(cmd: Command, field: string, fallback?: number): number {
  const v = cmd[field] ?? fallback;
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new TypeError(`Cannot read '${field}' of command '${cmd.op}': expected a number`);
  }
  return v;
}
