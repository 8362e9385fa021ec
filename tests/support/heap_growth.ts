/**
 * Measures how much of V8's heap a repeated action leaves behind: a scenario runs in a child Deno with `--expose-gc`,
 * a warm-up first (code, caches and pools reach their size), then the measured rounds; the heap is compared after
 * full collections. A leak of a few hundred bytes per round shows as a per-round figure far above the noise of a
 * correct program (a warm-up that was too short, a collection that left a little), which is what the tests assert.
 * This is a count of bytes, not a timing: load on the machine does not change it.
 *
 * @module
 */

/** Per-round growth of the live heap, and the heap before and after the measured rounds. */
export interface HeapGrowth {
  readonly bytesPerRound: number;
  readonly beforeBytes: number;
  readonly afterBytes: number;
}

/**
 * Runs `scenario`, module source text that defines `async function round(i)` and optionally `async function setup()`
 * and `async function teardown()`, in a child (all permissions, as `deno eval`); `round` runs `warmup` times, then
 * `rounds` times measured. Module URLs in the scenario must be absolute (`new URL(..., import.meta.url).href`).
 *
 * @throws {Error} When the child fails or prints no figure: its stderr is in the message.
 */
export async function heapGrowth(
  scenario: string,
  { warmup, rounds }: { readonly warmup: number; readonly rounds: number },
): Promise<HeapGrowth> {
  const script = `${scenario}
const heap = () => { for (let i = 0; i < 4; i++) globalThis.gc(); return Deno.memoryUsage().heapUsed; };
if (typeof setup === "function") await setup();
for (let i = 0; i < ${warmup}; i++) await round(i);
const beforeBytes = heap();
for (let i = 0; i < ${rounds}; i++) await round(${warmup} + i);
const afterBytes = heap();
if (typeof teardown === "function") await teardown();
console.log(JSON.stringify({ bytesPerRound: (afterBytes - beforeBytes) / ${rounds}, beforeBytes, afterBytes }));
`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "-q", "--no-check", "--v8-flags=--expose-gc", script],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "";
  if (!out.success || !text.startsWith("{")) {
    throw new Error(
      `Cannot measure heap growth: the scenario exited ${out.code}; stderr: ${
        new TextDecoder().decode(out.stderr).slice(-2000)
      }`,
    );
  }
  return JSON.parse(text) as HeapGrowth;
}
