/**
 * The lessor: lease bookkeeping as a pure state machine (no timers, no I/O). Time comes in as
 * `nowMs` arguments; the server drives expiry and checkpoints and applies every state change
 * (grant, revoke, checkpoint, key attach/detach) from the raft log, in log order, on every member.
 *
 * Behaviour follows etcd v3.4 lease/lessor.go:
 * - Only the primary lessor (the raft leader) tracks expiries. A follower's leases never expire
 *   ("forever"); promote() gives every lease an expiry, demote() takes them away again.
 * - A lease's time left after promote is `extendMs` + its RemainingTTL: the last checkpointed
 *   remaining TTL if one was applied and is > 0, else the full granted TTL (etcd Lease.refresh).
 *   So after a restart (the server replays grants, revokes and checkpoints from the log, or
 *   restores records from the db file) and a new election, a lease gets its full TTL again unless
 *   a checkpoint recorded less. Checkpoints replayed from the log make this equal to etcd with
 *   `--experimental-enable-lease-checkpoint-persist` (the default from etcd 3.6).
 * - With 1000+ leases, promote() spreads expiries that pile up in the same second so that at
 *   most 3/4 of the revoke rate expire per second (etcd Promote).
 * - Checkpointing (etcd `--experimental-enable-lease-checkpoint`, off by default in 3.4) is on
 *   when `checkpointIntervalMs` > 0: the primary schedules a checkpoint every interval for leases
 *   whose RemainingTTL exceeds the interval, and a keep-alive on a lease with a recorded
 *   remaining TTL queues a clearing checkpoint (remaining 0), as etcd's Renew does.
 */
import {
  LeaseExistsError,
  LeaseExpiredError,
  LeaseInvalidOptionError,
  LeaseInvariantError,
  LeaseNotFoundError,
  LeaseNotPrimaryError,
  LeaseTtlTooLargeError,
} from "./errors.js";
import { LeaseTimeQueue } from "./time-queue.js";

/** etcd's MaxLeaseTTL: grants above this many seconds fail with LeaseTtlTooLargeError. */
export const maxLeaseTtlSeconds = 9_000_000_000;

/** etcd defaultLeaseCheckpointInterval (5 min), used when checkpoints are enabled without an interval. */
export const defaultLeaseCheckpointIntervalMs = 5 * 60 * 1000;

/** etcd leaseRevokeRate: leases revoked per second at most. */
export const defaultLeaseRevokeRatePerSecond = 1000;

/** etcd defaultExpiredleaseRetryInterval: an expired lease is offered again after this long. */
export const defaultExpiredLeaseRetryMs = 3000;

/**
 * etcd's minimum lease TTL for a cluster: ceil(floor(3 * electionTicks / 2) * heartbeatMs / 1000)
 * seconds (etcdserver/server.go: a lease must outlive one leader election).
 * @param electionTicks election timeout in heartbeat ticks (etcd: election-timeout / heartbeat-interval)
 * @param heartbeatMs heartbeat interval in ms (etcd --heartbeat-interval, default 100)
 */
export function computeMinLeaseTtlSeconds(electionTicks: number, heartbeatMs: number): number {
  return Math.ceil((Math.floor((3 * electionTicks) / 2) * heartbeatMs) / 1000);
}

/** A lease as seen by callers. */
export interface LeaseInfo {
  id: bigint;
  /** Granted TTL in seconds (after raising to the minimum). */
  ttlSeconds: number;
  /**
   * etcd Lease.RemainingTTL(): the last checkpointed remaining TTL in seconds if one is recorded
   * (> 0), else the granted TTL. It is what promote() gives the lease, not the live countdown:
   * use timeToLive() for that.
   */
  remainingTtlSeconds: number;
  /** Attached keys in byte order. */
  keys: Buffer[];
  /** Expiry time in ms (the server's clock), Infinity while this lessor is not primary. */
  expiryMs: number;
}

/** A lease as persisted (etcd leasepb.Lease: ID, TTL, RemainingTTL); see exportRecords(). */
export interface LeaseRecord {
  id: bigint;
  ttlSeconds: number;
  /** 0 = no checkpoint recorded. */
  remainingTtlSeconds: number;
}

/** Answer of timeToLive() (etcd LeaseTimeToLiveResponse fields). */
export interface LeaseTimeToLive {
  id: bigint;
  /** Seconds left, truncated toward zero (etcd: int64(Remaining().Seconds())). */
  ttlSeconds: number;
  grantedTtlSeconds: number;
  /** Attached keys in byte order; empty unless asked for. */
  keys: Buffer[];
}

/** A checkpoint to propose through raft (etcd pb.LeaseCheckpoint). */
export interface LeaseCheckpoint {
  id: bigint;
  remainingTtlSeconds: number;
}

/** Options of the Lessor. */
export interface LessorOptions {
  /**
   * Grants below this many seconds are raised to it (etcd minLeaseTTL; see
   * computeMinLeaseTtlSeconds). A positive integer.
   */
  minLeaseTtlSeconds: number;
  /**
   * Lease checkpoint interval; > 0 enables checkpointing (etcd --experimental-enable-lease-checkpoint
   * with --experimental-lease-checkpoint-interval). Omitted or 0: off, as etcd 3.4's default.
   */
  checkpointIntervalMs?: number;
  /**
   * Upper bound on ids one expired() call returns, whatever limit it is given (default 500:
   * etcd revokes at most leaseRevokeRate / 2 per 500 ms loop).
   */
  maxExpiredPerTick?: number;
  /** etcd leaseRevokeRate (default 1000/s); promote() spreads pile-ups to 3/4 of it. */
  revokeRatePerSecond?: number;
  /** An id returned by expired() is not returned again for this long (default 3000 ms). */
  expiredRetryMs?: number;
}

class LeaseState {
  readonly id: bigint;
  readonly ttlSeconds: number;
  /** Checkpointed remaining TTL in seconds; 0 = unset (use the full TTL). */
  remainingTtlSeconds = 0;
  /** Expiry in ms on the server's clock; Infinity = never (not primary). */
  expiryMs = Infinity;
  /** latin1 view of the key bytes (1:1) -> the key */
  readonly keys = new Map<string, Buffer>();

  constructor(id: bigint, ttlSeconds: number) {
    this.id = id;
    this.ttlSeconds = ttlSeconds;
  }

  /** etcd Lease.RemainingTTL: the checkpointed remaining TTL if set, else the granted TTL. */
  effectiveRemainingTtlSeconds(): number {
    return this.remainingTtlSeconds > 0 ? this.remainingTtlSeconds : this.ttlSeconds;
  }
}

function keyId(key: Buffer): string {
  return key.toString("latin1");
}

function sortedKeys(l: LeaseState): Buffer[] {
  return [...l.keys.values()].sort(Buffer.compare);
}

function positiveInteger(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v <= 0) {
    throw new LeaseInvalidOptionError(`${name} must be a positive integer, got ${v}`);
  }
  return v;
}

/**
 * Lease state of one member: leases, their attached keys, expiries (on the primary) and
 * checkpoint schedule. Every method is synchronous and O(log n) in the number of leases unless
 * noted. See the module comment for the etcd behaviour followed.
 */
export class Lessor {
  readonly #minLeaseTtlSeconds: number;
  readonly #checkpointIntervalMs: number;
  readonly #maxExpiredPerTick: number;
  readonly #revokeRatePerSecond: number;
  readonly #expiredRetryMs: number;

  #leases = new Map<bigint, LeaseState>();
  /** key (latin1) -> lease id it is attached to (etcd itemMap) */
  #keyLeases = new Map<string, bigint>();
  /** Primary only: when each lease is next looked at for expiry. */
  #expiries = new LeaseTimeQueue();
  /** Primary only: when each lease's next checkpoint is due. */
  #checkpoints = new LeaseTimeQueue();
  /** Primary only: leases whose recorded remaining TTL a keep-alive must clear (etcd Renew). */
  #pendingClears = new Set<bigint>();
  #primary = false;
  /** Latest `nowMs` seen, for calls that carry no time (applyCheckpoint without nowMs). */
  #lastNowMs = 0;

  /** @throws LeaseInvalidOptionError when an option is out of range. */
  constructor(opts: LessorOptions) {
    this.#minLeaseTtlSeconds = positiveInteger("minLeaseTtlSeconds", opts.minLeaseTtlSeconds);
    const interval = opts.checkpointIntervalMs ?? 0;
    if (!Number.isSafeInteger(interval) || interval < 0) {
      throw new LeaseInvalidOptionError(`checkpointIntervalMs must be >= 0, got ${interval}`);
    }
    this.#checkpointIntervalMs = interval;
    this.#maxExpiredPerTick = positiveInteger(
      "maxExpiredPerTick",
      opts.maxExpiredPerTick ?? defaultLeaseRevokeRatePerSecond / 2,
    );
    this.#revokeRatePerSecond = positiveInteger(
      "revokeRatePerSecond",
      opts.revokeRatePerSecond ?? defaultLeaseRevokeRatePerSecond,
    );
    this.#expiredRetryMs = positiveInteger(
      "expiredRetryMs",
      opts.expiredRetryMs ?? defaultExpiredLeaseRetryMs,
    );
  }

  /** Number of leases. */
  get size(): number {
    return this.#leases.size;
  }

  /** Whether this lessor is primary (promoted and not demoted since). */
  get isPrimary(): boolean {
    return this.#primary;
  }

  /** Whether checkpointing is enabled (checkpointIntervalMs > 0). */
  get checkpointsEnabled(): boolean {
    return this.#checkpointIntervalMs > 0;
  }

  /**
   * Applies a committed LeaseGrant (etcd lessor.Grant). A TTL below the minimum is raised to it;
   * on the primary the lease expires at nowMs + ttl, elsewhere never.
   * @param id lease id, non-zero (the server picks one before proposing)
   * @param ttlSeconds requested TTL in seconds
   * @param nowMs apply time on the server's clock
   * @throws LeaseNotFoundError for id 0 (as etcd), LeaseTtlTooLargeError above
   *   maxLeaseTtlSeconds, LeaseExistsError if the id is taken (checked in that order, as etcd).
   */
  grant(id: bigint, ttlSeconds: number, nowMs: number): LeaseInfo {
    this.#observe(nowMs);
    if (id === 0n) throw new LeaseNotFoundError(id);
    if (ttlSeconds > maxLeaseTtlSeconds) throw new LeaseTtlTooLargeError(ttlSeconds);
    if (this.#leases.has(id)) throw new LeaseExistsError(id);
    const l = new LeaseState(id, Math.max(Math.trunc(ttlSeconds), this.#minLeaseTtlSeconds));
    this.#leases.set(id, l);
    if (this.#primary) {
      this.#refresh(l, nowMs, 0);
      this.#scheduleCheckpoint(l, nowMs);
    }
    return this.#info(l);
  }

  /**
   * Applies a committed LeaseRevoke (etcd lessor.Revoke): removes the lease and detaches its keys.
   * @returns the keys that were attached, in byte order (etcd sorts them so every member
   *   deletes in the same order); the server deletes them in the same mvcc txn.
   * @throws LeaseNotFoundError when absent.
   */
  revoke(id: bigint): Buffer[] {
    const l = this.#leases.get(id);
    if (l === undefined) throw new LeaseNotFoundError(id);
    const keys = sortedKeys(l);
    for (const k of l.keys.keys()) {
      if (this.#keyLeases.get(k) === id) this.#keyLeases.delete(k);
    }
    this.#leases.delete(id);
    this.#expiries.remove(id);
    this.#checkpoints.remove(id);
    this.#pendingClears.delete(id);
    return keys;
  }

  /**
   * Keep-alive on the primary (etcd lessor.Renew): the lease now expires at nowMs + its granted
   * TTL. If a checkpoint recorded a remaining TTL and checkpointing is on, a clearing checkpoint
   * (remaining 0) is queued for checkpointDue(), as etcd proposes one before refreshing; etcd
   * refreshes after that clear is applied, so the full TTL is used here.
   * @returns the granted TTL in seconds.
   * @throws LeaseNotPrimaryError when not primary (forward to the leader), LeaseNotFoundError,
   *   LeaseExpiredError when past expiry but not yet revoked (etcd waits for the revoke and then
   *   answers lease not found).
   */
  renew(id: bigint, nowMs: number): number {
    this.#observe(nowMs);
    if (!this.#primary) throw new LeaseNotPrimaryError();
    const l = this.#leases.get(id);
    if (l === undefined) throw new LeaseNotFoundError(id);
    if (l.expiryMs <= nowMs) throw new LeaseExpiredError(id);
    if (this.checkpointsEnabled && l.remainingTtlSeconds > 0) this.#pendingClears.add(id);
    l.expiryMs = nowMs + l.ttlSeconds * 1000;
    this.#expiries.upsert(id, l.expiryMs);
    return l.ttlSeconds;
  }

  /** Whether a lease with this id exists. O(1): for existence checks on hot paths, not lookup(). */
  has(id: bigint): boolean {
    return this.#leases.has(id);
  }

  /** The lease with this id, or undefined (etcd lessor.Lookup). Keys in byte order. O(k log k). */
  lookup(id: bigint): LeaseInfo | undefined {
    const l = this.#leases.get(id);
    return l === undefined ? undefined : this.#info(l);
  }

  /** The lease `key` is attached to, or undefined (etcd lessor.GetLease). */
  leaseOfKey(key: Buffer): bigint | undefined {
    return this.#keyLeases.get(keyId(key));
  }

  /**
   * Attaches `key` to lease `id` (applying a put with a lease). A key is attached to one lease at
   * most: if it was attached to another one, it is detached from it first (mvcc detaches before
   * attaching anyway; etcd's itemMap keeps one lease per key too). The key is kept as given, not
   * copied: callers (lib/mvcc's LeaseHooks) pass their own unchanging copy, and a copy here would
   * pin a pooled 8 KiB slab per key.
   * @throws LeaseNotFoundError when the lease is absent (etcd Attach).
   */
  attach(id: bigint, key: Buffer): void {
    const l = this.#leases.get(id);
    if (l === undefined) throw new LeaseNotFoundError(id);
    const k = keyId(key);
    const previous = this.#keyLeases.get(k);
    if (previous !== undefined && previous !== id) this.#leases.get(previous)?.keys.delete(k);
    if (!l.keys.has(k)) l.keys.set(k, key);
    this.#keyLeases.set(k, id);
  }

  /**
   * Detaches `key` from lease `id` (applying a delete, or a put that moves the key off the
   * lease). A key not attached to it is ignored.
   * @throws LeaseNotFoundError when the lease is absent (etcd Detach).
   */
  detach(id: bigint, key: Buffer): void {
    const l = this.#leases.get(id);
    if (l === undefined) throw new LeaseNotFoundError(id);
    const k = keyId(key);
    l.keys.delete(k);
    if (this.#keyLeases.get(k) === id) this.#keyLeases.delete(k);
  }

  /**
   * Leases whose expiry is <= nowMs, oldest expiry first, at most min(limit, maxExpiredPerTick)
   * ids (etcd findExpiredLeases). Primary only: returns [] otherwise. Each id returned stays
   * listed until revoked but is not returned again until expiredRetryMs have passed, so one
   * expiry leads to one LeaseRevoke proposal, retried if it is lost (etcd
   * expiredLeaseRetryInterval). O(r log n) for r ids returned.
   */
  expired(nowMs: number, limit: number): bigint[] {
    this.#observe(nowMs);
    const out: bigint[] = [];
    if (!this.#primary) return out;
    const max = Math.min(limit, this.#maxExpiredPerTick);
    while (out.length < max) {
      const id = this.#expiries.peekId();
      const atMs = this.#expiries.peekTimeMs();
      if (id === undefined || atMs === undefined || atMs > nowMs) break;
      const l = this.#leases.get(id);
      if (l === undefined) throw new LeaseInvariantError(`expiry queued for missing lease ${id}`);
      // Look again after the retry interval in case the revoke proposal is lost.
      this.#expiries.upsert(id, nowMs + this.#expiredRetryMs);
      if (l.expiryMs <= nowMs) out.push(id);
    }
    return out;
  }

  /**
   * This member became leader (etcd lessor.Promote, called with the election timeout as
   * `extendMs` once the new leader has applied its log): every lease expires at nowMs + extendMs
   * + RemainingTTL (checkpointed remaining if recorded, else the full TTL), and checkpoints are
   * scheduled. With at least revokeRatePerSecond leases, expiries bunched within a second beyond
   * 3/4 of the revoke rate are pushed later (etcd's pile-up rule). O(n log n).
   */
  promote(nowMs: number, extendMs: number): void {
    this.#observe(nowMs);
    this.#primary = true;
    for (const l of this.#leases.values()) {
      this.#refresh(l, nowMs, extendMs);
      this.#scheduleCheckpoint(l, nowMs);
    }
    if (this.#leases.size < this.#revokeRatePerSecond) return;
    this.#spreadPileUps(nowMs, extendMs);
  }

  /**
   * This member lost leadership (etcd lessor.Demote): no lease expires here any more, and the
   * expiry and checkpoint schedules are dropped.
   */
  demote(): void {
    this.#primary = false;
    for (const l of this.#leases.values()) l.expiryMs = Infinity;
    this.#expiries.clear();
    this.#checkpoints.clear();
    this.#pendingClears.clear();
  }

  /**
   * LeaseTimeToLive on the leader: seconds left truncated toward zero (etcd:
   * int64(Remaining().Seconds()); an expired, not yet revoked lease can show 0 or less). On a
   * non-primary lessor leases have no expiry, so its RemainingTTL is reported instead (etcd would
   * forward the request to the leader).
   * @returns undefined when absent (the API answers etcd's lease not found).
   */
  timeToLive(id: bigint, nowMs: number, withKeys: boolean): LeaseTimeToLive | undefined {
    this.#observe(nowMs);
    const l = this.#leases.get(id);
    if (l === undefined) return undefined;
    const ttlSeconds = Number.isFinite(l.expiryMs)
      ? Math.trunc((l.expiryMs - nowMs) / 1000)
      : l.effectiveRemainingTtlSeconds();
    return {
      id,
      ttlSeconds,
      grantedTtlSeconds: l.ttlSeconds,
      keys: withKeys ? sortedKeys(l) : [],
    };
  }

  /** Every lease id, soonest expiry first, ties by id (etcd Leases sorts by expiry). O(n log n). */
  leases(): bigint[] {
    return [...this.#leases.values()]
      .sort((a, b) =>
        a.expiryMs !== b.expiryMs
          ? a.expiryMs < b.expiryMs
            ? -1
            : 1
          : a.id < b.id
            ? -1
            : a.id > b.id
              ? 1
              : 0,
      )
      .map((l) => l.id);
  }

  /**
   * Checkpoints the primary should propose now, at most `limit` (etcd
   * findDueScheduledCheckpoints; etcd batches up to 1000 per LeaseCheckpointRequest): first the
   * clears queued by renew(), then leases whose scheduled time has come, with the live remaining
   * TTL rounded up to whole seconds. A due lease already expired, or whose remaining TTL is not
   * below its granted TTL, yields nothing. A due entry is taken off the schedule; applying the
   * checkpoint schedules the next one. [] when not primary or checkpointing is off.
   */
  checkpointDue(nowMs: number, limit: number): LeaseCheckpoint[] {
    this.#observe(nowMs);
    const out: LeaseCheckpoint[] = [];
    if (!this.#primary || !this.checkpointsEnabled) return out;
    for (const id of this.#pendingClears) {
      if (out.length >= limit) return out;
      this.#pendingClears.delete(id);
      if (this.#leases.has(id)) out.push({ id, remainingTtlSeconds: 0 });
    }
    while (out.length < limit) {
      const id = this.#checkpoints.peekId();
      const atMs = this.#checkpoints.peekTimeMs();
      if (id === undefined || atMs === undefined || atMs > nowMs) break;
      this.#checkpoints.remove(id);
      const l = this.#leases.get(id);
      if (l === undefined) continue;
      if (nowMs >= l.expiryMs) continue;
      const remainingTtlSeconds = Math.ceil((l.expiryMs - nowMs) / 1000);
      if (remainingTtlSeconds >= l.ttlSeconds) continue;
      out.push({ id, remainingTtlSeconds });
    }
    return out;
  }

  /**
   * Applies a committed LeaseCheckpoint (etcd lessor.Checkpoint): records the remaining TTL that
   * promote() will use (0 clears it). The lease's current expiry is not changed. On the primary
   * the next checkpoint is scheduled from `nowMs` (default: the latest time this lessor was
   * given). An unknown id is ignored, as etcd.
   */
  applyCheckpoint(id: bigint, remainingTtlSeconds: number, nowMs?: number): void {
    if (nowMs !== undefined) this.#observe(nowMs);
    const l = this.#leases.get(id);
    if (l === undefined) return;
    l.remainingTtlSeconds = remainingTtlSeconds;
    if (this.#primary) this.#scheduleCheckpoint(l, this.#lastNowMs);
  }

  /**
   * Every lease as persisted in etcd's `lease` bucket (leasepb.Lease: ID, TTL, RemainingTTL),
   * ordered by id, for writing a db snapshot. Attached keys are not included: they are restored
   * from the mvcc keys' lease fields, as etcd does.
   */
  exportRecords(): LeaseRecord[] {
    return [...this.#leases.values()]
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map((l) => ({
        id: l.id,
        ttlSeconds: l.ttlSeconds,
        remainingTtlSeconds: l.remainingTtlSeconds,
      }));
  }

  /**
   * Replaces all state with `records` (loading a db snapshot; etcd initAndRecover): TTLs below
   * the minimum are raised, no lease has an expiry and the lessor is demoted; reattach keys with
   * attach() and call promote() when leading.
   * @throws LeaseExistsError on a duplicate id, LeaseNotFoundError on id 0.
   */
  restore(records: readonly LeaseRecord[]): void {
    this.demote();
    this.#leases.clear();
    this.#keyLeases.clear();
    for (const r of records) {
      if (r.id === 0n) throw new LeaseNotFoundError(r.id);
      if (this.#leases.has(r.id)) throw new LeaseExistsError(r.id);
      const l = new LeaseState(r.id, Math.max(r.ttlSeconds, this.#minLeaseTtlSeconds));
      l.remainingTtlSeconds = r.remainingTtlSeconds;
      this.#leases.set(r.id, l);
    }
  }

  /**
   * Checks internal consistency: every attached key maps back to its lease, queues index only
   * live leases, expiries are set exactly when primary. For tests: O(n + keys).
   * @throws LeaseInvariantError naming the first broken invariant.
   */
  checkInvariants(): void {
    this.#expiries.checkInvariants();
    this.#checkpoints.checkInvariants();
    let attached = 0;
    for (const l of this.#leases.values()) {
      if (l.ttlSeconds < this.#minLeaseTtlSeconds)
        throw new LeaseInvariantError(`lease ${l.id} ttl below minimum`);
      for (const k of l.keys.keys()) {
        if (this.#keyLeases.get(k) !== l.id)
          throw new LeaseInvariantError(`key attached to ${l.id} maps elsewhere`);
      }
      attached += l.keys.size;
      if (this.#primary !== Number.isFinite(l.expiryMs))
        throw new LeaseInvariantError(
          `lease ${l.id} expiry ${l.expiryMs} vs primary ${this.#primary}`,
        );
      if (this.#primary && this.#expiries.timeOf(l.id) === undefined)
        throw new LeaseInvariantError(`lease ${l.id} missing from the expiry queue`);
    }
    if (attached !== this.#keyLeases.size)
      throw new LeaseInvariantError(
        `${this.#keyLeases.size} key entries for ${attached} attachments`,
      );
    if (this.#expiries.size !== (this.#primary ? this.#leases.size : 0))
      throw new LeaseInvariantError(`expiry queue holds ${this.#expiries.size} ids`);
  }

  #observe(nowMs: number): void {
    if (nowMs > this.#lastNowMs) this.#lastNowMs = nowMs;
  }

  #info(l: LeaseState): LeaseInfo {
    return {
      id: l.id,
      ttlSeconds: l.ttlSeconds,
      remainingTtlSeconds: l.effectiveRemainingTtlSeconds(),
      keys: sortedKeys(l),
      expiryMs: l.expiryMs,
    };
  }

  /** etcd Lease.refresh: expiry = now + extend + RemainingTTL. */
  #refresh(l: LeaseState, nowMs: number, extendMs: number): void {
    l.expiryMs = nowMs + extendMs + l.effectiveRemainingTtlSeconds() * 1000;
    this.#expiries.upsert(l.id, l.expiryMs);
  }

  /** etcd scheduleCheckpointIfNeeded: only leases with RemainingTTL above the interval. */
  #scheduleCheckpoint(l: LeaseState, nowMs: number): void {
    if (!this.checkpointsEnabled) return;
    // etcd compares with int64(checkpointInterval.Seconds()), i.e. whole seconds.
    if (l.effectiveRemainingTtlSeconds() > Math.trunc(this.#checkpointIntervalMs / 1000)) {
      this.#checkpoints.upsert(l.id, nowMs + this.#checkpointIntervalMs);
    }
  }

  /**
   * etcd Promote's pile-up rule: walk leases by time left; within a one-second window at most
   * 3/4 of the revoke rate may expire; later ones in the window are delayed in proportion, and the
   * window moves on with them.
   */
  #spreadPileUps(nowMs: number, extendMs: number): void {
    const leases = [...this.#leases.values()].sort((a, b) => a.expiryMs - b.expiryMs);
    const targetPerSecond = Math.floor((3 * this.#revokeRatePerSecond) / 4);
    let baseWindowMs = leases[0].expiryMs - nowMs;
    let nextWindowMs = baseWindowMs + 1000;
    let expires = 0;
    for (const l of leases) {
      const remainingMs = l.expiryMs - nowMs;
      if (remainingMs > nextWindowMs) {
        baseWindowMs = remainingMs;
        nextWindowMs = baseWindowMs + 1000;
        expires = 1;
        continue;
      }
      expires++;
      if (expires <= targetPerSecond) continue;
      // A lease already `remaining - base` into the window needs that much less delay.
      const delayMs = Math.trunc(1000 * (expires / targetPerSecond) - (remainingMs - baseWindowMs));
      nextWindowMs = baseWindowMs + delayMs;
      this.#refresh(l, nowMs, delayMs + extendMs);
      this.#scheduleCheckpoint(l, nowMs);
    }
  }
}
