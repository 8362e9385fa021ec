/**
 * Runs one file-reading call of a lib module in a child process that is killed at a deadline or once its RSS passes a
 * bound, so that a test of a hostile file (`/dev/zero`, a FIFO) fails instead of hanging or eating the machine.
 *
 * @module
 */

/** What the child printed (the error message, or `read`), and its peak RSS. */
export interface ChildRead {
  readonly message: string;
  readonly peakRssKiB: number;
}

/**
 * Runs `await (call)(module, path)` in a child; the child prints the error message it got, or `read` on success.
 *
 * @param module A module URL relative to this file's caller, already resolved (`new URL(..., import.meta.url).href`).
 * @param call The body of the call as source text: `(m, p) => m.readStateFile(p)`.
 * @throws {Error} When the child is killed: past `deadlineMs`, or past `maxRssKiB` (an unbounded read).
 */
export async function readInChild(
  module: string,
  call: string,
  path: string,
  { deadlineMs = 10_000, maxRssKiB = 256 * 1024 }: { deadlineMs?: number; maxRssKiB?: number } = {},
): Promise<ChildRead> {
  const script = `import * as m from ${JSON.stringify(module)};
    try { await (${call})(m, Deno.args[0]); console.log("read"); } catch (e) { console.log(e.message); }`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-check", "-q", script, path],
    stdout: "piped",
    stderr: "null",
    stdin: "null",
  }).spawn();
  let peakRssKiB = 0;
  let why = "";
  const deadline = Date.now() + deadlineMs;
  // An unbounded read of /dev/zero grows by hundreds of MB a second: stop it early, not at the deadline.
  const watch = setInterval(() => {
    try {
      const rss = Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${child.pid}/status`))?.[1] ?? 0);
      peakRssKiB = Math.max(peakRssKiB, rss);
      if (rss > maxRssKiB) why = `its RSS reached ${rss} KiB`;
    } catch {
      // Exited.
    }
    if (Date.now() > deadline) why ||= `it did not end within ${deadlineMs} ms`;
    if (why !== "") {
      try {
        child.kill("SIGKILL");
      } catch {
        // Exited meanwhile.
      }
    }
  }, 50);
  try {
    const out = await child.output();
    if (why !== "") throw new Error(`Reading '${path}' failed: ${why}`);
    return { message: new TextDecoder().decode(out.stdout).trimEnd(), peakRssKiB };
  } finally {
    clearInterval(watch);
  }
}
