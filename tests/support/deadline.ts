/**
 * Deadlines for waits in tests: a bug must fail the test fast with a message naming what never came, never hang the
 * suite until CI kills it.
 *
 * @module
 */

/** The default deadline of a wait: generous for a loaded 2-core CI runner, short next to CI's time limit. */
export const WAIT_MS = 10_000;

/**
 * The deadline of a child process (`signal: AbortSignal.timeout(CHILD_MS)` on its `Deno.Command`: it is killed, and the
 * test fails on its exit status instead of hanging). Generous: `deno compile` and `deno info` on a loaded runner.
 */
export const CHILD_MS = 300_000;

/**
 * Resolves as `promise` does, or rejects with "Timed out after `ms` ms waiting for `what`" when it has not settled
 * by then. The timer is cleared either way (the op sanitizer stays quiet).
 */
export function withDeadline<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timedOut]).finally(() => clearTimeout(timer));
}
