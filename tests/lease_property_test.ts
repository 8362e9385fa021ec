/** Properties of reading a Lease: any JSON gives a well-typed record, and what leaseBody writes reads back the same. */
import assert from "node:assert/strict";
import fc from "fast-check";
import { leaseBody, microTime, readLease } from "../lib/copier/lease.ts";
import { check } from "./support/properties.ts";

const junk = fc.jsonValue({ maxDepth: 2 });
const field = <T>(a: fc.Arbitrary<T>) => fc.oneof({ arbitrary: a, weight: 4 }, { arbitrary: junk, weight: 1 });
const lease = fc.record({
  metadata: field(fc.record({ resourceVersion: field(fc.string()), name: field(fc.string()) }, { requiredKeys: [] })),
  spec: field(fc.record({
    holderIdentity: field(fc.string()),
    leaseDurationSeconds: field(fc.integer()),
    acquireTime: field(fc.string()),
    renewTime: field(fc.string()),
    leaseTransitions: field(fc.nat()),
  }, { requiredKeys: [] })),
}, { requiredKeys: [] });

Deno.test("Lease properties", async (t) => {
  await t.step("any JSON reads as a well-typed record, and leaseBody of it reads back the same", () => {
    check(fc.property(fc.oneof(lease, junk), (raw) => {
      const { record, resourceVersion } = readLease(raw);
      assert.equal(typeof resourceVersion, "string");
      assert.equal(typeof record.holderIdentity, "string");
      for (const n of [record.leaseDurationSeconds, record.leaseTransitions]) assert.ok(Number.isFinite(n));
      for (const s of [record.acquireTime, record.renewTime]) {
        assert.ok(s === undefined || (typeof s === "string" && s !== ""));
      }
      const body = leaseBody({ namespace: "default", name: "lease", record, resourceVersion });
      // JSON has no -0: a -0 from the API reads back as 0.
      const same = {
        ...record,
        leaseDurationSeconds: record.leaseDurationSeconds + 0,
        leaseTransitions: record.leaseTransitions + 0,
      };
      assert.deepEqual(readLease(JSON.parse(JSON.stringify(body))), { record: same, resourceVersion });
    }));
  });
  await t.step("microTime has six fractional digits and names the same millisecond", () => {
    check(fc.property(fc.double({ min: 0, max: 253402300799999, noNaN: true }), (ms) => {
      const text = microTime(ms);
      assert.match(text, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
      assert.equal(Date.parse(text), Math.floor(ms));
    }));
  });
});
