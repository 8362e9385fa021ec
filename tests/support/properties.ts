/**
 * Shared settings of the property tests (fast-check): a bounded number of runs per property, so that every property
 * file finishes in seconds on a 2-core CI runner. The seed is random on every run; fast-check prints it (and the
 * shrunk counterexample) on a failure, to replay with `fc.assert(..., { seed, path })`.
 *
 * @module
 */
import fc from "fast-check";

/** Runs per property. */
export const RUNS = 1000;

/** `fc.assert` with the shared run count. */
export function check<Ts extends [unknown, ...unknown[]]>(property: fc.IPropertyWithHooks<Ts>, runs = RUNS): void {
  fc.assert(property, { numRuns: runs });
}

/** `fc.assert` of an async property with the shared run count. */
export function checkAsync<Ts extends [unknown, ...unknown[]]>(
  property: fc.IAsyncPropertyWithHooks<Ts>,
  runs = RUNS,
): Promise<void> {
  return fc.assert(property, { numRuns: runs });
}

/** Any string: ASCII-heavy text mixed with arbitrary UTF-16 (lone surrogates included). */
export const anyText: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: fc.constantFrom(..."0123456789abcdefABCDEF:.[]-_ %/\t\n"), maxLength: 40 }),
);

/** Asserts that `f` returns, or throws an instance of `type` (the module's documented error); returns the value. */
export function returnsOr<T>(type: new (...args: never[]) => Error, f: () => T): T | undefined {
  try {
    return f();
  } catch (e) {
    if (e instanceof type) return undefined;
    throw e;
  }
}
