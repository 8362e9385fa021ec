import assert from "node:assert/strict";
import type { KubeRequest, KubeResponse, KubeTransport } from "../lib/kubernetes/transport.ts";
import { LeaderElector } from "../lib/copier/leader_election.ts";
import { microTime } from "../lib/copier/lease.ts";
import { endpointSlice, type KubeObject } from "./support/fake_apiserver.ts";
import { addressesOf, CopierEnv, enabled, service } from "./support/copier_env.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };
const LEASE = "f668ae63.endpoint-copier-operator";
const SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";
const MICRO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

function specOf(lease: KubeObject | undefined): Record<string, unknown> {
  return (lease?.spec ?? {}) as Record<string, unknown>;
}

/** A transport that can be cut off: then every request fails as if the network were gone. */
class CuttableTransport implements KubeTransport {
  cut = false;
  constructor(readonly inner: KubeTransport) {}
  request(req: KubeRequest): Promise<KubeResponse> {
    if (this.cut) return Promise.reject(new TypeError("error sending request: connection refused"));
    return this.inner.request(req);
  }
  close(): void {}
}

Deno.test("MicroTime has exactly six fractional digits", () => {
  assert.equal(microTime(Date.UTC(2026, 0, 2, 3, 4, 5, 678)), "2026-01-02T03:04:05.678000Z");
  assert.equal(microTime(Date.UTC(2026, 0, 1) + 0.25), "2026-01-01T00:00:00.000250Z");
});

Deno.test("lease timings that let two leaders overlap are refused", () => {
  const transport = { request: () => Promise.reject(new Error("unused")), close: () => {} };
  const base = { transport, namespace: "kube-system", name: "lock", identity: "a" };
  assert.throws(
    () => new LeaderElector({ ...base, leaseDurationMs: 10_000, renewDeadlineMs: 10_000 }),
    /expected lease duration > renew deadline > 1.2 × retry period/,
  );
  assert.throws(() => new LeaderElector({ ...base, renewDeadlineMs: 2000, retryPeriodMs: 2000 }), RangeError);
});

Deno.test(
  "two copiers with one Lease: only the leader writes, and the other takes over when it stops",
  opts,
  async (t) => {
    await using env = await CopierEnv.start();
    env.api.upsert(endpointSlice("kubernetes", ["127.0.0.1"], 6443));
    env.api.upsert(service("vip", { annotations: enabled() }));
    // A Lease far longer than the handover step waits: a follower that leads within that wait can only have been let
    // in by the leader's release, never by the Lease's expiry, however slow the machine (a 1 s Lease and a 1 s wait
    // failed once in CI).
    const election = { leaderElect: true, leaseDurationMs: 30_000, renewDeadlineMs: 20_000, retryPeriodMs: 100 };
    const one = await env.copier(election, { hostname: "node-1" });
    const two = await env.copier(election, { hostname: "node-1" });
    await env.until(() => (one.leading() || two.leading()) && env.copies().get("vip-kubernetes"), "a leader's copy");
    const [leader, follower] = one.leading() ? [one, two] : [two, one];
    const [leaderUser, followerUser] = leader === one ? ["copier-1", "copier-2"] : ["copier-2", "copier-1"];
    const writers = (since: number) =>
      new Set(
        env.api.requests.slice(since).filter((r) => r.path.startsWith(SLICES) && r.method !== "GET").map((r) => r.user),
      );

    await t.step("identities are unique per process on one host", () => {
      assert.notEqual(one.identity, two.identity);
      assert.match(one.identity, /^node-1_[0-9a-f-]{36}$/);
      assert.match(two.identity, /^node-1_[0-9a-f-]{36}$/);
    });

    await t.step("the Lease names the leader, with MicroTime stamps", async () => {
      const lease = env.api.get("leases", "kube-system", LEASE);
      const spec = specOf(lease);
      assert.equal(spec.holderIdentity, leader.identity);
      assert.equal(spec.leaseDurationSeconds, 30);
      assert.match(String(spec.acquireTime), MICRO_TIME);
      assert.match(String(spec.renewTime), MICRO_TIME);
      assert.equal(leader.leading() && !follower.leading(), true);
      // The follower is ready: its caches are synced and it follows a live leader.
      await env.until(() => follower.notReadyReason() === undefined, "the follower ready");
    });

    await t.step("a source change is written by the leader alone", async () => {
      const since = env.api.requests.length;
      env.api.upsert(endpointSlice("kubernetes", ["127.0.0.1", "127.0.0.2"], 6443));
      await env.until(() => addressesOf(env.copies().get("vip-kubernetes")).length === 2, "the updated copy");
      assert.deepEqual([...writers(0)], [leaderUser]);
      assert.deepEqual([...writers(since)], [leaderUser]);
    });

    await t.step("stopping the leader releases the Lease and the other leads before it could expire", async () => {
      const stopped = performance.now();
      await env.stop(leader);
      assert.equal(leader.leading(), false);
      await env.until(() => follower.leading(), "the follower leading", 10_000);
      assert.ok(performance.now() - stopped < 30_000, "before the 30 s Lease could expire");
      const spec = specOf(env.api.get("leases", "kube-system", LEASE));
      assert.equal(spec.holderIdentity, follower.identity);
      assert.equal(spec.leaseTransitions, 1);
      const released = env.api.requests.filter((r) => r.path.includes(`/leases/${LEASE}`) && r.method === "PUT");
      assert.ok(released.some((r) => r.user === leaderUser && r.status === 200));

      const since = env.api.requests.length;
      env.api.upsert(endpointSlice("kubernetes", ["127.0.0.3"], 6443));
      await env.until(
        () => addressesOf(env.copies().get("vip-kubernetes")).join() === "127.0.0.3",
        "the new leader's copy",
      );
      assert.deepEqual([...writers(since)], [followerUser]);
    });
  },
);

Deno.test(
  "a leader that cannot renew steps down before another takes over, after the lease expires",
  opts,
  async () => {
    await using env = await CopierEnv.start();
    const timings = { leaseDurationMs: 1000, renewDeadlineMs: 600, retryPeriodMs: 100 };
    const base = { namespace: "kube-system", name: "lock", ...timings };
    const transportA = new CuttableTransport(env.transport);
    const a = new LeaderElector({ ...base, transport: transportA, identity: "a" });
    const b = new LeaderElector({ ...base, transport: env.transport, identity: "b" });
    const spans: { who: string; from: number; to: number }[] = [];
    const lead = (who: string) => async (signal: AbortSignal) => {
      const from = performance.now();
      await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
      spans.push({ who, from, to: performance.now() });
    };
    const ctrl = new AbortController();
    const runA = a.run(ctrl.signal, lead("a"));
    await env.until(() => a.leading, "a leading");
    const runB = b.run(ctrl.signal, lead("b"));
    await env.until(() => b.holder === "a", "b seeing a");
    assert.equal(b.followingLiveLeader(), true);

    const cut = performance.now();
    transportA.cut = true;
    await env.until(() => !a.leading, "a stepping down", 2000);
    const steppedDown = performance.now() - cut;
    await env.until(() => b.leading, "b leading", 3000);
    const tookOver = performance.now() - cut;
    ctrl.abort();
    await Promise.all([runA, runB]);

    // a steps down at its renew deadline; b waits for the whole lease duration since it last saw a renewal.
    assert.ok(steppedDown < 1000, `a stepped down after ${Math.round(steppedDown)} ms`);
    // a's last renewal was at most a retry period (and a request) before the cut.
    assert.ok(tookOver >= 1000 - 2 * 100 - 100, `b took over after ${Math.round(tookOver)} ms`);
    assert.ok(tookOver < 1000 + 2 * 2.2 * 100 + 500, `b took over after ${Math.round(tookOver)} ms`);
    const spanA = spans.find((s) => s.who === "a");
    const spanB = spans.find((s) => s.who === "b");
    assert.ok(spanA !== undefined && spanB !== undefined && spanB.from >= spanA.to, "the two never led together");
    // b released on stop.
    assert.equal(specOf(env.api.get("leases", "kube-system", "lock")).holderIdentity, "");
  },
);

Deno.test(
  "a Lease GET whose 200 body is not a JSON object is an error to retry, never a free Lease",
  opts,
  async (t) => {
    let pulled = 0;
    const endless = () =>
      new ReadableStream<Uint8Array>({
        pull(ctrl) {
          if (pulled > 64 << 20) return ctrl.error(new Error("the client pulled more than 64 MiB"));
          pulled += 64 << 10;
          ctrl.enqueue(new Uint8Array(64 << 10).fill(0x20));
        },
      }, { highWaterMark: 0 });
    const bodies: [string, () => BodyInit][] = [
      ["garbage", () => "<html>proxy error</html>"],
      ["empty", () => ""],
      ["a JSON array", () => "[]"],
      ["an endless body (read up to 1 MiB only)", endless],
    ];
    for (const [name, makeBody] of bodies) {
      await t.step(name, async () => {
        const requests: KubeRequest[] = [];
        let errors = 0;
        const transport: KubeTransport = {
          request: (req) => {
            requests.push(req);
            if (req.method === "GET") return Promise.resolve(new Response(makeBody(), { status: 200 }));
            // A create or an update would make this candidate the leader: it must never be sent.
            return Promise.resolve(Response.json({ metadata: { resourceVersion: "2" }, spec: {} }, { status: 201 }));
          },
          close: () => {},
        };
        const elector = new LeaderElector({
          transport,
          namespace: "kube-system",
          name: "lock",
          identity: "a",
          leaseDurationMs: 1000,
          renewDeadlineMs: 600,
          retryPeriodMs: 20,
          onError: () => errors++,
        });
        const ctrl = new AbortController();
        let led = false;
        const run = elector.run(ctrl.signal, async (signal) => {
          led = true;
          await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
        });
        const deadline = performance.now() + 10_000;
        try {
          while (requests.filter((r) => r.method === "GET").length < 3 && requests.every((r) => r.method === "GET")) {
            if (performance.now() > deadline) throw new Error("Timed out waiting for three Lease reads");
            await new Promise((r) => setTimeout(r, 10));
          }
        } finally {
          ctrl.abort();
          await run;
        }
        assert.deepEqual(requests.map((r) => r.method).filter((m) => m !== "GET"), []);
        assert.equal(led, false);
        // The third read may still be in flight when the test stops: two are counted for sure.
        assert.ok(errors >= 2, `${errors} Lease errors counted for ${requests.length} failed reads`);
        const gets = requests.filter((r) => r.method === "GET").length;
        assert.ok(pulled <= gets * ((1 << 20) + (64 << 10)), `pulled ${pulled} bytes in ${gets} reads`);
      });
    }
  },
);
