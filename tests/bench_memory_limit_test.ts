/** bench/memory_limit.ts's pure parts: when a run under a limit serves as well as without one, and the bisection. */
import assert from "node:assert/strict";
import {
  deviceNumbers,
  failure,
  type LimitRun,
  readAheadKib,
  smallestHolding,
  verdict,
} from "../bench/memory_limit.ts";

const MIB = 1048576;

function run(over: Partial<LimitRun> = {}): LimitRun {
  return {
    subject: "extractedprism",
    limitMib: 24,
    rps: 20_000,
    p99Ms: 2.5,
    errors: 0,
    idlePeak: 20 * MIB,
    peak: 24 * MIB,
    anonPeak: 19 * MIB,
    fileEnd: 3 * MIB,
    limitHits: 1000,
    majorFaultsPerSecond: 0,
    stalledSeconds: 0,
    oomKills: 0,
    servesAfter: true,
    exitCode: 0,
    ...over,
  };
}

const base = { rps: 21_000, p99Ms: 2.4 };

Deno.test("a run under a limit serves when nothing failed and speed and latency stay near the unconstrained run", () => {
  assert.equal(verdict(run(), base), undefined);
  // Reclaims alone are not a failure: they are what the limit is for.
  assert.equal(verdict(run({ limitHits: 100_000 }), base), undefined);
  // 90 % of the requests per second is enough; less is not.
  assert.equal(verdict(run({ rps: 18_900 }), base), undefined);
  assert.match(verdict(run({ rps: 18_899 }), base) ?? "", /18899 req\/s < 90 % of 21000/);
  // The p99 bound is the larger of 2× and +2 ms: 4.8 ms here.
  assert.equal(verdict(run({ p99Ms: 4.8 }), base), undefined);
  assert.match(verdict(run({ p99Ms: 4.81 }), base) ?? "", /p99 4\.81 ms > 4\.80 ms/);
  assert.equal(verdict(run({ p99Ms: 60 }), { rps: 21_000, p99Ms: 40 }), undefined);
  // A limit never reached cannot have slowed it: speed and latency are not held against it then.
  assert.equal(verdict(run({ limitHits: 0, rps: 10_000, p99Ms: 90 }), base), undefined);
  assert.match(verdict(run({ limitHits: 0, errors: 1 }), base) ?? "", /1 errors/);
  assert.match(verdict(run({ p99Ms: 80.5 }), { rps: 21_000, p99Ms: 40 }) ?? "", /> 80\.00 ms/);
});

Deno.test("an OOM kill, an error, a dead or unready process, or a bad exit fails whatever the speed", () => {
  assert.match(verdict(run({ oomKills: 1 }), base) ?? "", /1 OOM kill/);
  assert.match(verdict(run({ errors: 3 }), base) ?? "", /3 errors/);
  assert.match(verdict(run({ servesAfter: false }), base) ?? "", /not serving after/);
  assert.match(verdict(run({ notStarted: true, servesAfter: false, rps: 0 }), base) ?? "", /not relaying 15 s after/);
  assert.match(verdict(run({ exitCode: 1 }), base) ?? "", /exit 1 after SIGTERM/);
  // The floor relay has no SIGTERM handler: the signal's status is its normal end.
  assert.equal(verdict(run({ subject: "floor", exitCode: 143 }), base), undefined);
  // The first failure found is the one reported.
  assert.match(verdict(run({ oomKills: 1, errors: 9, rps: 1 }), base) ?? "", /OOM/);
  // The same failures, without a reference: what makes a run without a limit useless as one. Speed is not among them.
  assert.equal(failure(run()), undefined);
  assert.equal(failure(run({ rps: 1, p99Ms: 9_000 })), undefined);
  assert.match(failure(run({ errors: 2 })) ?? "", /2 errors/);
  assert.match(failure(run({ notStarted: true, servesAfter: false })) ?? "", /not relaying/);
  assert.equal(failure(run({ subject: "floor", exitCode: 143 })), undefined);
});

Deno.test("the bisection finds the smallest holding value with few tries, and says when even the top fails", async () => {
  for (const threshold of [1, 2, 17, 23, 24, 63, 64]) {
    const tried: number[] = [];
    const found = await smallestHolding(0, 64, (n) => {
      tried.push(n);
      return Promise.resolve(n >= threshold);
    });
    assert.equal(found, threshold);
    assert.equal(tried[0], 64, "the top is tried first");
    assert.ok(tried.length <= 7, `${tried.length} tries for ${threshold}`);
    assert.equal(new Set(tried).size, tried.length, "no value is tried twice");
  }
  const tried: number[] = [];
  assert.equal(
    await smallestHolding(0, 64, (n) => {
      tried.push(n);
      return Promise.resolve(false);
    }),
    undefined,
  );
  assert.deepEqual(tried, [64]);
  await assert.rejects(smallestHolding(5, 5, () => Promise.resolve(true)), RangeError);
  await assert.rejects(smallestHolding(0, 2.5, () => Promise.resolve(true)), RangeError);
});

/** glibc's makedev, the inverse of deviceNumbers. */
function makedev(major: number, minor: number): number {
  const M = BigInt(major);
  const m = BigInt(minor);
  return Number(((M & 0xfffn) << 8n) | ((M & 0xfffff000n) << 32n) | (m & 0xffn) | ((m & 0xffffff00n) << 12n));
}

Deno.test("device numbers are decoded as glibc does, small and large, for the read-ahead's sysfs path", () => {
  assert.deepEqual(deviceNumbers(65024), { major: 254, minor: 0 });
  for (const [major, minor] of [[8, 1], [259, 3], [254, 300], [4095, 1048575], [4096, 5]] as const) {
    assert.deepEqual(deviceNumbers(makedev(major, minor)), { major, minor });
  }
  // No such file, or no permission for /sys: unknown, never a throw.
  assert.equal(readAheadKib("/nonexistent/extractedprism"), undefined);
});
