/**
 * The request loop both e2e clients run: one request started every `spacingMs` (bounded in count), each one's result
 * kept and reported as a `progress` line as it finishes.
 *
 * @module
 */
import { emit, message } from "../../faults/support/_lines.ts";

/** One request's outcome, with its start and end on the caller's clock. */
export interface RequestResult {
  readonly start: number;
  readonly end: number;
  readonly ok: boolean;
  readonly status: number | null;
  readonly error: string | null;
}

/**
 * Starts `min(count, max)` requests, one every `spacingMs`, and returns their results in start order once all ended.
 * `one` answers with the HTTP status (200 is a success) or throws.
 */
export async function paced(
  o: { id: number; count: number; max: number; spacingMs: number; now: () => number },
  one: () => Promise<number>,
): Promise<RequestResult[]> {
  const results: RequestResult[] = [];
  const running: Promise<void>[] = [];
  for (let i = 0; i < Math.min(o.count, o.max); i++) {
    const start = o.now();
    running.push(
      one().then(
        (status) => ({ start, end: o.now(), ok: status === 200, status, error: null }),
        (e) => ({ start, end: o.now(), ok: false, status: null, error: message(e) }),
      ).then((r) => {
        results.push(r);
        emit({ event: "progress", id: o.id, done: results.length });
      }),
    );
    await new Promise((r) => setTimeout(r, o.spacingMs));
  }
  await Promise.all(running);
  return results.sort((a, b) => a.start - b.start);
}
