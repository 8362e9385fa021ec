/**
 * The fake API server against the answers real servers gave to the parity probes (tests/support/api_parity.ts),
 * recorded by the e2e suite (`EP_PARITY_RECORD=<dir>`, see tests/e2e/scenarios_parity.ts) into
 * tests/support/api_parity_<profile>.json: the fake cannot drift from them even where the e2e suite does not run.
 *
 * @module
 */
import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import { differences, type ProbeAnswer, type ProbeProfile } from "./support/api_parity.ts";
import { runProbesOnFake } from "./support/api_parity_fake.ts";

async function recorded(profile: ProbeProfile): Promise<ProbeAnswer[]> {
  const url = new URL(`./support/api_parity_${profile}.json`, import.meta.url);
  return JSON.parse(await Deno.readTextFile(url)) as ProbeAnswer[];
}

Deno.test("the fake answers the parity probes as kube-apiserver 1.20 and the v1 API server did", async (t) => {
  // Both at once: each script waits on its watches' server-side timeouts (about 8 s).
  const profiles = ["kube120", "v1"] as const;
  const runs = await Promise.all(
    profiles.map(async (p) => ({ p, real: await recorded(p), fake: await runProbesOnFake(p) })),
  );
  for (const { p, real, fake } of runs) {
    await t.step(p, () => {
      const diff = differences(real, fake, isDeepStrictEqual);
      assert.equal(diff.length, 0, `the fake answers as the real server did:\n${diff.join("\n")}`);
    });
  }
});
