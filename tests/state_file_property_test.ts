/**
 * Properties of the state file reader: any bytes on disk give a one-line Error naming the file, or a non-empty list of
 * canonical endpoints. Nothing read here is dialled.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { endpointKey, parseEndpoint } from "../lib/endpoint.ts";
import { readStateFile, writeStateFile } from "../lib/discovery/state_file.ts";
import { anyText, checkAsync, RUNS } from "./support/properties.ts";

const loopback = fc.oneof(
  fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.integer({ min: 1, max: 65535 }))
    .map(([a, b, c, p]) => ({ host: `127.${a}.${b}.${c}`, port: p })),
  fc.integer({ min: 1, max: 65535 }).map((port) => ({ host: "::1", port })),
);
const endpointText = fc.oneof(
  loopback.map(endpointKey),
  anyText,
  fc.constantFrom("[::1]:0", "127.0.0.1", "localhost:6443"),
);
const json = fc.oneof(
  fc.record({
    version: fc.oneof({ arbitrary: fc.constant(1), weight: 4 }, fc.jsonValue({ maxDepth: 1 })),
    endpoints: fc.oneof(
      { arbitrary: fc.array(endpointText, { maxLength: 4 }), weight: 4 },
      fc.jsonValue({ maxDepth: 2 }),
    ),
    updated: fc.string(),
  }, { requiredKeys: [] }).map((o) => JSON.stringify(o)),
  fc.jsonValue().map((v) => JSON.stringify(v)),
);
/** File contents: JSON that is nearly a state file, cut anywhere, or arbitrary bytes. */
const contents = fc.oneof(
  json.map((t) => new TextEncoder().encode(t)),
  fc.tuple(json, fc.nat()).map(([t, n]) => new TextEncoder().encode(t.slice(0, n % (t.length + 1)))),
  fc.uint8Array({ maxLength: 200 }),
);

Deno.test("state file properties", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "state_prop_" });
  const path = `${dir}/endpoints.json`;
  try {
    await t.step("any bytes give a one-line Error naming the file, or canonical endpoints", async () => {
      let read = 0;
      await checkAsync(fc.asyncProperty(contents, async (bytes) => {
        await Deno.writeFile(path, bytes);
        let eps;
        try {
          eps = await readStateFile(path);
        } catch (e) {
          assert.ok(e instanceof Error, String(e));
          assert.ok(e.message.startsWith(`Cannot read state file '${path}': `), e.message);
          assert.doesNotMatch(e.message, /\n/);
          return;
        }
        read++;
        assert.ok(eps.length > 0);
        for (const e of eps) assert.deepEqual(parseEndpoint(endpointKey(e)), e);
      }));
      assert.ok(read > 0, "some generated files are valid");
    });
    await t.step("what writeStateFile writes, readStateFile reads back", async () => {
      await checkAsync(
        fc.asyncProperty(fc.array(loopback, { minLength: 1, maxLength: 8 }), async (eps) => {
          await writeStateFile(path, eps);
          assert.deepEqual(await readStateFile(path), eps);
        }),
        RUNS / 10,
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
