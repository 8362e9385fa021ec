/**
 * Leader election on a `coordination.k8s.io/v1` Lease, as client-go's: a candidate tries every retry period
 * (jittered) to take a Lease that is free, released, or not renewed for its duration; the leader renews it every
 * retry period and steps down when it could not renew within the renew deadline (shorter than the lease duration, so
 * no other candidate can take over while it still acts); on stop it releases the Lease so the next candidate takes
 * over at once. Expiry is judged on this process's monotonic clock from when the record last changed, never by
 * comparing another host's timestamps with ours.
 *
 * @module
 */
import { describeError } from "../errors.ts";
import { getLogger } from "../log.ts";
import { type Clock, type Random, systemClock } from "../clock.ts";
import type { KubeTransport } from "../kubernetes/transport.ts";
import { MAX_LEASE_BODY_BYTES } from "../kubernetes/read_body.ts";
import { getObject, KubeApiError, requestJson } from "../kubernetes/api.ts";
import { leaseBody, type LeaseRecord, microTime, readLease } from "./lease.ts";

const log = getLogger(["extractedprism", "copier", "leader"]);

/** Options of {@linkcode LeaderElector}. */
export interface LeaderElectorOptions {
  /** How requests reach the API server. */
  readonly transport: KubeTransport;
  /** The Lease's namespace. */
  readonly namespace: string;
  /** The Lease's name (`--leader-election-id`). */
  readonly name: string;
  /** This process's identity: unique per process (hostname + a random suffix). */
  readonly identity: string;
  /** How long a Lease not renewed keeps others out. @default {15000} */
  readonly leaseDurationMs?: number;
  /** How long the leader keeps trying to renew before it steps down. @default {10000} */
  readonly renewDeadlineMs?: number;
  /** Time between tries (candidates: jittered up to +120 %). @default {2000} */
  readonly retryPeriodMs?: number;
  /** Monotonic time and sleeps. @default {systemClock} */
  readonly clock?: Clock;
  /** Randomness of the candidates' jitter. @default {Math.random} */
  readonly random?: Random;
  /** Wall-clock milliseconds for the Lease's MicroTime fields. @default {Date.now} */
  readonly wallClock?: () => number;
  /** Called whenever this process starts or stops leading. */
  readonly onLeadingChange?: (leading: boolean) => void;
  /** Called after every Lease request that failed (a race lost to another candidate aside): for the metrics. */
  readonly onError?: () => void;
}

interface ObservedLease {
  readonly record: LeaseRecord;
  readonly resourceVersion: string;
  /** Monotonic time when the record was seen to change. */
  readonly observedAt: number;
}

/**
 * Campaigns for a Lease and runs `lead` while this process holds it.
 *
 * @example
 * ```ts ignore
 * const elector = new LeaderElector({ transport, namespace: "kube-system", name: "my-lock", identity: "host_1" });
 * await elector.run(signal, async (leading) => { await doWorkUntil(leading); });
 * ```
 */
export class LeaderElector {
  readonly #o: LeaderElectorOptions;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #wall: () => number;
  readonly #leaseMs: number;
  readonly #renewMs: number;
  readonly #retryMs: number;
  #observed: ObservedLease | undefined;
  #leading = false;

  /**
   * Builds an elector; nothing is sent before {@linkcode LeaderElector.run}.
   *
   * @throws {RangeError} When the timings would let two leaders overlap.
   */
  constructor(options: LeaderElectorOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#wall = options.wallClock ?? Date.now;
    this.#leaseMs = options.leaseDurationMs ?? 15_000;
    this.#renewMs = options.renewDeadlineMs ?? 10_000;
    this.#retryMs = options.retryPeriodMs ?? 2000;
    if (!(this.#leaseMs > this.#renewMs && this.#renewMs > this.#retryMs * 1.2)) {
      throw new RangeError(
        `Cannot elect with lease ${this.#leaseMs} ms, renew deadline ${this.#renewMs} ms, retry ${this.#retryMs} ms: ` +
          "expected lease duration > renew deadline > 1.2 \u00d7 retry period",
      );
    }
  }

  /** This process's identity. */
  get identity(): string {
    return this.#o.identity;
  }

  /** Whether this process leads now. */
  get leading(): boolean {
    return this.#leading;
  }

  /** The holder of the Lease as last seen (`""` when free), or `undefined` before the first read. */
  get holder(): string | undefined {
    return this.#observed?.record.holderIdentity;
  }

  /** Whether another process holds the Lease and renewed it within its duration, as last seen. */
  followingLiveLeader(): boolean {
    const o = this.#observed;
    if (o === undefined || o.record.holderIdentity === "" || o.record.holderIdentity === this.#o.identity) return false;
    return this.#clock.now() < o.observedAt + this.#durationOf(o.record);
  }

  /**
   * Campaigns until `signal` aborts. Each time this process gains the Lease, `lead` is called with a signal that
   * aborts when leadership ends; the Lease is renewed meanwhile, and released after `lead` has returned when `signal`
   * aborts. Never rejects.
   */
  async run(signal: AbortSignal, lead: (leading: AbortSignal) => Promise<void>): Promise<void> {
    const lease = `${this.#o.namespace}/${this.#o.name}`;
    log.info("Campaigning for the Lease {lease} as {identity}", { lease, identity: this.#o.identity });
    while (!signal.aborted) {
      if (!(await this.#tryAcquireOrRenew(signal))) {
        // client-go's JitterUntil with factor 1.2: uniform in [retry, 2.2 * retry].
        await this.#clock.sleep(this.#retryMs * (1 + 1.2 * this.#random()), signal).catch(() => {});
        continue;
      }
      log.info("Leading: holding the Lease {lease} as {identity}", { lease, identity: this.#o.identity });
      const leadership = new AbortController();
      this.#setLeading(true);
      const working = lead(leadership.signal).catch((e) => {
        log.error("The leader's work failed: {error}", { error: describeError(e) });
      });
      const why = await this.#renewLoop(signal, working);
      leadership.abort();
      this.#setLeading(false);
      await working;
      if (signal.aborted) {
        await this.#release();
        return;
      }
      log.warn("Stopped leading the Lease {lease}: {reason}", { lease, reason: why });
      await this.#clock.sleep(this.#retryMs, signal).catch(() => {});
    }
  }

  #setLeading(on: boolean): void {
    this.#leading = on;
    try {
      this.#o.onLeadingChange?.(on);
    } catch {
      // An observer's failure must not stop the election.
    }
  }

  /** Renews every retry period until `signal` aborts or a renewal cannot be made within the renew deadline. */
  async #renewLoop(signal: AbortSignal, working: Promise<void>): Promise<string> {
    let workEnded = false;
    void working.then(() => (workEnded = true));
    while (!signal.aborted) {
      await this.#clock.sleep(this.#retryMs, signal).catch(() => {});
      if (signal.aborted) return "stopping";
      if (workEnded) return "the leader's work ended";
      const deadline = this.#clock.now() + this.#renewMs;
      let renewed = false;
      while (!renewed && !signal.aborted) {
        renewed = await this.#tryAcquireOrRenew(signal, deadline);
        if (renewed || signal.aborted) break;
        if (this.followingLiveLeader()) return `the Lease is held by ${this.holder}`;
        const left = deadline - this.#clock.now();
        if (left <= 0) return `no renewal within the renew deadline of ${this.#renewMs} ms`;
        await this.#clock.sleep(Math.min(this.#retryMs, left), signal).catch(() => {});
      }
    }
    return "stopping";
  }

  #durationOf(r: LeaseRecord): number {
    return r.leaseDurationSeconds > 0 ? r.leaseDurationSeconds * 1000 : this.#leaseMs;
  }

  #path(withName: boolean): string {
    const base = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(this.#o.namespace)}/leases`;
    return withName ? `${base}/${encodeURIComponent(this.#o.name)}` : base;
  }

  #timeout(deadline: number | undefined): number {
    const left = deadline === undefined ? this.#renewMs : deadline - this.#clock.now();
    return Math.max(1, Math.min(this.#renewMs, left));
  }

  /** One attempt; true when this process holds the Lease afterwards. Never throws. */
  async #tryAcquireOrRenew(signal: AbortSignal, deadline?: number): Promise<boolean> {
    const what = `update the Lease '${this.#o.namespace}/${this.#o.name}'`;
    try {
      const now = microTime(this.#wall());
      const mine = this.#o.identity;
      // The leader renews from the Lease it wrote last; any conflict sends it through a fresh read.
      if (this.#leading && this.#observed !== undefined && this.#observed.record.holderIdentity === mine) {
        const renewed = { ...this.#observed.record, renewTime: now };
        try {
          await this.#write("PUT", renewed, this.#observed.resourceVersion, signal, deadline);
          return true;
        } catch (e) {
          if (!(e instanceof KubeApiError && e.status === 409)) throw e;
        }
      }
      const raw = await getObject(this.#o.transport, this.#path(true), {
        what: `read the Lease '${this.#o.namespace}/${this.#o.name}'`,
        signal,
        timeoutMs: this.#timeout(deadline),
        maxBodyBytes: MAX_LEASE_BODY_BYTES,
      });
      const seconds = Math.max(1, Math.ceil(this.#leaseMs / 1000));
      if (raw === undefined) {
        const created = { holderIdentity: mine, leaseDurationSeconds: seconds, acquireTime: now, renewTime: now };
        await this.#write("POST", { ...created, leaseTransitions: 0 }, undefined, signal, deadline);
        return true;
      }
      const { record, resourceVersion } = readLease(raw);
      this.#observe(record, resourceVersion);
      if (this.followingLiveLeader()) return false;
      const held = record.holderIdentity === mine;
      const next: LeaseRecord = {
        holderIdentity: mine,
        leaseDurationSeconds: seconds,
        acquireTime: held ? record.acquireTime ?? now : now,
        renewTime: now,
        leaseTransitions: held ? record.leaseTransitions : record.leaseTransitions + 1,
      };
      await this.#write("PUT", next, resourceVersion, signal, deadline);
      return true;
    } catch (e) {
      if (signal.aborted) return false;
      const conflict = e instanceof KubeApiError && (e.status === 409 || e.reason === "AlreadyExists");
      if (!conflict) this.#reportError();
      log[conflict ? "debug" : "warn"]("Cannot {what}: {error}", { what, error: describeError(e) });
      return false;
    }
  }

  #reportError(): void {
    try {
      this.#o.onError?.();
    } catch {
      // An observer's failure must not stop the election.
    }
  }

  #observe(record: LeaseRecord, resourceVersion: string): void {
    const before = this.#observed;
    const same = before !== undefined && before.resourceVersion === resourceVersion;
    this.#observed = { record, resourceVersion, observedAt: same ? before.observedAt : this.#clock.now() };
  }

  async #write(
    method: "POST" | "PUT",
    record: LeaseRecord,
    resourceVersion: string | undefined,
    signal: AbortSignal,
    deadline: number | undefined,
  ): Promise<void> {
    const body = leaseBody({ namespace: this.#o.namespace, name: this.#o.name, record, resourceVersion });
    const stored = await requestJson(this.#o.transport, {
      method,
      path: this.#path(method === "PUT"),
      body,
    }, {
      what: `${method === "POST" ? "create" : "update"} the Lease '${this.#o.namespace}/${this.#o.name}'`,
      signal,
      timeoutMs: this.#timeout(deadline),
      maxBodyBytes: MAX_LEASE_BODY_BYTES,
    });
    const read = readLease(stored);
    this.#observed = { record: read.record, resourceVersion: read.resourceVersion, observedAt: this.#clock.now() };
  }

  /** Gives the Lease up (holder `""`, duration 1 s) if this process still holds it, so a candidate takes over now. */
  async #release(): Promise<void> {
    const o = this.#observed;
    if (o === undefined || o.record.holderIdentity !== this.#o.identity) return;
    const now = microTime(this.#wall());
    const released: LeaseRecord = {
      holderIdentity: "",
      leaseDurationSeconds: 1,
      acquireTime: now,
      renewTime: now,
      leaseTransitions: o.record.leaseTransitions,
    };
    try {
      await this.#write("PUT", released, o.resourceVersion, new AbortController().signal, undefined);
      log.info("Released the Lease {lease}", { lease: `${this.#o.namespace}/${this.#o.name}` });
    } catch (e) {
      this.#reportError();
      log.warn("Cannot release the Lease {lease}: {error}; the next leader takes over when it expires", {
        lease: `${this.#o.namespace}/${this.#o.name}`,
        error: describeError(e),
      });
    }
  }
}
