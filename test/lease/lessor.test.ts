import { test, describe } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  Lessor,
  LeaseExistsError,
  LeaseExpiredError,
  LeaseNotFoundError,
  LeaseNotPrimaryError,
  LeaseTtlTooLargeError,
  computeMinLeaseTtlSeconds,
  maxLeaseTtlSeconds,
} from "../../lib/lease/index.js";

// Replay a failure with SEED=<n> npm test -- lease
const seed = process.env.SEED !== undefined ? Number(process.env.SEED) : Date.now() % 2 ** 31;
console.log(`lease tests: SEED=${seed}`);

const k = (s: string): Buffer => Buffer.from(s);
const strs = (keys: Buffer[]): string[] => keys.map((b) => b.toString());

describe("lessor: grant, lookup, revoke, renew", () => {
  test("grant on the primary sets expiry now + ttl; lookup shows it; revoke removes it", () => {
    const l = new Lessor({ minLeaseTtlSeconds: 2 });
    l.promote(0, 0);
    const info = l.grant(7n, 10, 1000);
    assert.deepEqual(info, {
      id: 7n,
      ttlSeconds: 10,
      remainingTtlSeconds: 10,
      keys: [],
      expiryMs: 11000,
    });
    assert.equal(l.size, 1);
    assert.deepEqual(l.lookup(7n)?.expiryMs, 11000);
    assert.deepEqual(l.revoke(7n), []);
    assert.equal(l.lookup(7n), undefined);
    assert.equal(l.size, 0);
    assert.throws(() => l.revoke(7n), LeaseNotFoundError);
    l.checkInvariants();
  });

  test("grant below the minimum TTL is raised to it (etcd minLeaseTTL)", () => {
    const minTtl = computeMinLeaseTtlSeconds(10, 100); // etcd defaults: 1000 ms election, 100 ms heartbeat
    assert.equal(minTtl, 2);
    const l = new Lessor({ minLeaseTtlSeconds: minTtl });
    assert.equal(l.grant(1n, 1, 0).ttlSeconds, 2);
    assert.equal(l.grant(2n, 0, 0).ttlSeconds, 2);
    assert.equal(l.grant(3n, -5, 0).ttlSeconds, 2);
    assert.equal(l.grant(4n, 3, 0).ttlSeconds, 3);
    assert.equal(computeMinLeaseTtlSeconds(50, 100), 8); // floor(75) * 100 ms = 7.5 s -> 8
  });

  test("grant refuses id 0, too large TTL and an existing id, in etcd's order", () => {
    const l = new Lessor({ minLeaseTtlSeconds: 1 });
    assert.throws(() => l.grant(0n, 10, 0), LeaseNotFoundError);
    l.grant(1n, 10, 0);
    assert.throws(() => l.grant(1n, maxLeaseTtlSeconds + 1, 0), LeaseTtlTooLargeError);
    assert.throws(() => l.grant(1n, 10, 0), LeaseExistsError);
    assert.equal(l.grant(2n, maxLeaseTtlSeconds, 0).ttlSeconds, maxLeaseTtlSeconds);
  });

  test("renew extends expiry to now + granted ttl and returns the ttl", () => {
    const l = new Lessor({ minLeaseTtlSeconds: 1 });
    l.promote(0, 0);
    l.grant(1n, 10, 0);
    assert.equal(l.renew(1n, 4000), 10);
    assert.equal(l.lookup(1n)?.expiryMs, 14000);
    assert.deepEqual(l.expired(13999, 10), []);
    assert.deepEqual(l.expired(14000, 10), [1n]);
  });

  test("renew errors: not primary, unknown lease, lease past expiry", () => {
    const l = new Lessor({ minLeaseTtlSeconds: 1 });
    l.grant(1n, 5, 0);
    assert.throws(() => l.renew(1n, 0), LeaseNotPrimaryError);
    l.promote(0, 0);
    assert.throws(() => l.renew(9n, 0), LeaseNotFoundError);
    assert.throws(() => l.renew(1n, 5000), LeaseExpiredError);
    assert.equal(l.renew(1n, 4999), 5);
  });
});

describe("lessor: expiry", () => {
  test("expired() returns leases oldest expiry first and honours the limit", () => {
    const l = new Lessor({ minLeaseTtlSeconds: 1, maxExpiredPerTick: 10_000 });
    l.promote(0, 0);
    // 3000 leases with scattered TTLs; ids are not in expiry order.
    const n = 3000;
    for (let i = 1; i <= n; i++) l.grant(BigInt(i), 1 + ((i * 7919) % 500), 0);
    l.checkInvariants();
    const now = 250_000;
    const want = [...Array(n).keys()]
      .map((i) => i + 1)
      .filter((i) => (1 + ((i * 7919) % 500)) * 1000 <= now)
      .sort((a, b) => 1 + ((a * 7919) % 500) - (1 + ((b * 7919) % 500)) || a - b)
      .map(BigInt);
    const got: bigint[] = [];
    for (;;) {
      const batch = l.expired(now, 100);
      assert.ok(batch.length <= 100);
      if (batch.length === 0) break;
      got.push(...batch);
    }
    assert.deepEqual(got, want);
    l.checkInvariants();
  });

  test("maxExpiredPerTick caps the limit (etcd revokes leaseRevokeRate/2 per loop)", () => {
    const l = new Lessor({ minLeaseTtlSeconds: 1, maxExpiredPerTick: 3 });
    l.promote(0, 0);
    for (let i = 1; i <= 10; i++) l.grant(BigInt(i), 1, 0);
    assert.equal(l.expired(1000, 100).length, 3);
  });

  test("an expired lease is not offered again within the retry interval, then again until revoked", () => {
    const l = new Lessor({ minLeaseTtlSeconds: 1, expiredRetryMs: 3000 });
    l.promote(0, 0);
    l.grant(1n, 1, 0);
    l.grant(2n, 2, 0);
    assert.deepEqual(l.expired(1000, 10), [1n]);
    assert.deepEqual(l.expired(2500, 10), [2n]);
    assert.deepEqual(l.expired(3999, 10), []);
    assert.deepEqual(l.expired(4000, 10), [1n]); // the revoke proposal was lost: retry
    l.revoke(1n);
    assert.deepEqual(l.expired(10_000, 10), [2n]);
    l.checkInvariants();
  });

  test("a follower never expires leases; grant on a follower has no expiry", () => {
    const l = new Lessor({ minLeaseTtlSeconds: 1 });
    l.grant(1n, 1, 0);
    assert.equal(l.lookup(1n)?.expiryMs, Infinity);
    assert.deepEqual(l.expired(1e12, 10), []);
    l.promote(0, 0);
    l.demote();
    assert.deepEqual(l.expired(1e12, 10), []);
    assert.equal(l.lookup(1n)?.expiryMs, Infinity);
    l.grant(2n, 1, 0);
    assert.deepEqual(l.expired(1e12, 10), []);
    l.checkInvariants();
  });

  test("promote gives every lease now + extend + its full TTL", () => {
    const l = new Lessor({ minLeaseTtlSeconds: 1 });
    l.grant(1n, 10, 0);
    l.grant(2n, 20, 0);
    l.promote(50_000, 1000);
    assert.equal(l.lookup(1n)?.expiryMs, 61_000);
    assert.equal(l.lookup(2n)?.expiryMs, 71_000);
    // A new leader later: the countdown starts over (etcd: no checkpoint = full TTL again).
    l.demote();
    l.promote(65_000, 1000);
    assert.equal(l.lookup(1n)?.expiryMs, 76_000);
    assert.deepEqual(l.leases(), [1n, 2n]);
    l.checkInvariants();
  });

  test("promote with 2000 leases expiring together spreads them to 3/4 of the revoke rate per second", () => {
    const l = new Lessor({ minLeaseTtlSeconds: 1 });
    for (let i = 1; i <= 2000; i++) l.grant(BigInt(i), 10, 0);
    l.promote(0, 0);
    const expiries = l.leases().map((id) => l.lookup(id)?.expiryMs as number);
    assert.ok(expiries.every((e) => e >= 10_000));
    const inFirstSecond = expiries.filter((e) => e < 11_000).length;
    assert.ok(inFirstSecond <= 750, `${inFirstSecond} leases expire within the first second`);
    assert.ok(Math.max(...expiries) < 14_000, "spread stays within a few seconds");
    l.checkInvariants();
  });
});

describe("lessor: promote pile-up rule", () => {
  test("with revoke rate 10, 200 leases of TTL 10 and 11 s expire 5..10 per second over 20 s", () => {
    // The scenario of etcd's TestLessorRenewExtendPileup, restated: recovered leases all
    // promoted at once must not all expire in the same second.
    const rate = 10;
    const l = new Lessor({ minLeaseTtlSeconds: 1, revokeRatePerSecond: rate });
    for (let i = 1; i <= rate * 10; i++) {
      l.grant(BigInt(2 * i), 10, 0);
      l.grant(BigInt(2 * i + 1), 11, 0);
    }
    l.promote(0, 0);
    const perSecond = new Map<number, number>();
    for (const id of l.leases()) {
      const s = Math.trunc((l.lookup(id)?.expiryMs as number) / 1000 + 0.1);
      perSecond.set(s, (perSecond.get(s) ?? 0) + 1);
    }
    for (let s = 10; s < 30; s++) {
      const c = perSecond.get(s) ?? 0;
      assert.ok(c <= rate, `${c} leases expire in second ${s}`);
      assert.ok(c >= rate / 2, `only ${c} leases expire in second ${s}`);
    }
    l.checkInvariants();
  });
});

describe("lessor: keys", () => {
  test("attach/detach keep both directions in step; revoke returns the keys in byte order", () => {
    const l = new Lessor({ minLeaseTtlSeconds: 1 });
    l.grant(1n, 10, 0);
    l.grant(2n, 10, 0);
    l.attach(1n, k("b"));
    l.attach(1n, k("a"));
    l.attach(1n, k("c"));
    l.attach(1n, k("a")); // twice: once
    assert.deepEqual(strs(l.lookup(1n)?.keys ?? []), ["a", "b", "c"]);
    assert.equal(l.leaseOfKey(k("a")), 1n);
    l.detach(1n, k("b"));
    l.detach(1n, k("zz")); // not attached: ignored
    assert.equal(l.leaseOfKey(k("b")), undefined);
    // a put moving "c" to lease 2
    l.attach(2n, k("c"));
    assert.deepEqual(strs(l.lookup(1n)?.keys ?? []), ["a"]);
    assert.equal(l.leaseOfKey(k("c")), 2n);
    l.checkInvariants();
    assert.deepEqual(strs(l.revoke(1n)), ["a"]);
    assert.equal(l.leaseOfKey(k("a")), undefined);
    assert.deepEqual(strs(l.revoke(2n)), ["c"]);
    l.checkInvariants();
  });

  test("attach/detach on an unknown lease throw LeaseNotFoundError", () => {
    const l = new Lessor({ minLeaseTtlSeconds: 1 });
    assert.throws(() => l.attach(5n, k("a")), LeaseNotFoundError);
    assert.throws(() => l.detach(5n, k("a")), LeaseNotFoundError);
  });

  test("attached keys are kept as given, not copied (mvcc passes its own unchanging key)", () => {
    const l = new Lessor({ minLeaseTtlSeconds: 1 });
    l.grant(1n, 10, 0);
    const buf = k("key1");
    l.attach(1n, buf);
    const keys = l.revoke(1n);
    assert.deepEqual(strs(keys), ["key1"]);
    assert.equal(keys[0], buf, "no copy: a copy would pin a pooled 8 KiB slab per leased key");
  });

  test("binary keys with 0x00 and 0xff bytes are distinct", () => {
    const l = new Lessor({ minLeaseTtlSeconds: 1 });
    l.grant(1n, 10, 0);
    for (const key of [Buffer.from([0]), Buffer.from([0, 0]), Buffer.from([0xff]), Buffer.from([])])
      l.attach(1n, key);
    assert.deepEqual(
      l.revoke(1n).map((b) => b.toString("hex")),
      ["", "00", "0000", "ff"],
    );
  });
});

describe("lessor: timeToLive", () => {
  test("seconds left are truncated toward zero, as etcd's int64(Remaining().Seconds())", () => {
    const l = new Lessor({ minLeaseTtlSeconds: 1 });
    l.promote(0, 0);
    l.grant(1n, 10, 0);
    l.attach(1n, k("y"));
    l.attach(1n, k("x"));
    assert.deepEqual(l.timeToLive(1n, 0, false), {
      id: 1n,
      ttlSeconds: 10,
      grantedTtlSeconds: 10,
      keys: [],
    });
    assert.equal(l.timeToLive(1n, 1, false)?.ttlSeconds, 9);
    assert.equal(l.timeToLive(1n, 9999, false)?.ttlSeconds, 0);
    assert.equal(l.timeToLive(1n, 11_500, false)?.ttlSeconds, -1);
    assert.deepEqual(strs(l.timeToLive(1n, 0, true)?.keys ?? []), ["x", "y"]);
    assert.equal(l.timeToLive(2n, 0, true), undefined);
  });

  test("on a follower timeToLive reports the remaining TTL it would get on promote", () => {
    const l = new Lessor({ minLeaseTtlSeconds: 1 });
    l.grant(1n, 30, 0);
    assert.equal(l.timeToLive(1n, 99_000, false)?.ttlSeconds, 30);
    l.applyCheckpoint(1n, 12);
    assert.equal(l.timeToLive(1n, 99_000, false)?.ttlSeconds, 12);
  });
});

describe("lessor: checkpoints", () => {
  test("checkpoint round trip: due remaining TTL, applied, used by the next promote", () => {
    const l = new Lessor({ minLeaseTtlSeconds: 1, checkpointIntervalMs: 60_000 });
    assert.ok(l.checkpointsEnabled);
    l.promote(0, 0);
    l.grant(1n, 600, 0);
    l.grant(2n, 30, 0); // TTL not above the interval: never checkpointed (etcd)
    assert.deepEqual(l.checkpointDue(59_999, 10), []);
    assert.deepEqual(l.checkpointDue(60_000, 10), [{ id: 1n, remainingTtlSeconds: 540 }]);
    assert.deepEqual(l.checkpointDue(60_001, 10), []); // taken off the schedule until applied
    l.applyCheckpoint(1n, 540, 60_100);
    assert.equal(l.lookup(1n)?.remainingTtlSeconds, 540);
    assert.equal(l.lookup(1n)?.expiryMs, 600_000); // applying does not move the expiry
    assert.deepEqual(l.checkpointDue(120_099, 10), []);
    assert.deepEqual(l.checkpointDue(120_100, 10), [{ id: 1n, remainingTtlSeconds: 480 }]);
    // Leader change (or restart + replay): the new leader counts from the checkpoint.
    l.demote();
    assert.deepEqual(l.checkpointDue(1e9, 10), []);
    l.promote(200_000, 1000);
    assert.equal(l.lookup(1n)?.expiryMs, 200_000 + 1000 + 540_000);
    assert.equal(l.lookup(2n)?.expiryMs, 200_000 + 1000 + 30_000);
    l.checkInvariants();
  });

  test("renew of a checkpointed lease queues a clearing checkpoint and uses the full TTL", () => {
    const l = new Lessor({ minLeaseTtlSeconds: 1, checkpointIntervalMs: 60_000 });
    l.promote(0, 0);
    l.grant(1n, 600, 0);
    l.applyCheckpoint(1n, 100, 10);
    assert.equal(l.renew(1n, 1000), 600);
    assert.equal(l.lookup(1n)?.expiryMs, 601_000);
    assert.deepEqual(l.checkpointDue(1000, 10), [{ id: 1n, remainingTtlSeconds: 0 }]);
    l.applyCheckpoint(1n, 0, 1000);
    assert.equal(l.lookup(1n)?.remainingTtlSeconds, 600);
    assert.equal(l.renew(1n, 2000), 600);
    assert.deepEqual(l.checkpointDue(2000, 10), []); // nothing recorded: nothing to clear
  });

  test("checkpointDue respects its limit and skips expired leases; off when not configured", () => {
    const l = new Lessor({ minLeaseTtlSeconds: 1, checkpointIntervalMs: 1000 });
    l.promote(0, 0);
    for (let i = 1; i <= 5; i++) l.grant(BigInt(i), 10, 0);
    l.grant(6n, 2, 0); // expires at 2000, TTL above 1 s interval
    const first = l.checkpointDue(2500, 3);
    assert.equal(first.length, 3);
    const rest = l.checkpointDue(2500, 10);
    assert.deepEqual(
      [...first, ...rest].map((c) => c.id),
      [1n, 2n, 3n, 4n, 5n],
    );
    assert.ok([...first, ...rest].every((c) => c.remainingTtlSeconds === 8));
    const off = new Lessor({ minLeaseTtlSeconds: 1 });
    off.promote(0, 0);
    off.grant(1n, 1000, 0);
    assert.equal(off.checkpointsEnabled, false);
    assert.deepEqual(off.checkpointDue(1e9, 10), []);
  });

  test("exportRecords / restore round trip (db snapshot), restored leases need promote", () => {
    const a = new Lessor({ minLeaseTtlSeconds: 1 });
    a.grant(3n, 100, 0);
    a.grant(1n, 50, 0);
    a.applyCheckpoint(3n, 40);
    const records = a.exportRecords();
    assert.deepEqual(records, [
      { id: 1n, ttlSeconds: 50, remainingTtlSeconds: 0 },
      { id: 3n, ttlSeconds: 100, remainingTtlSeconds: 40 },
    ]);
    const b = new Lessor({ minLeaseTtlSeconds: 60 });
    b.promote(0, 0);
    b.grant(9n, 100, 0);
    b.restore(records);
    assert.equal(b.isPrimary, false);
    assert.equal(b.lookup(9n), undefined);
    assert.equal(b.lookup(1n)?.ttlSeconds, 60); // raised to this member's minimum, as etcd's recover
    b.promote(1000, 0);
    assert.equal(b.lookup(3n)?.expiryMs, 41_000);
    b.checkInvariants();
  });
});

// ---------------------------------------------------------------------------------------------
// Model test: random operations with a simulated clock against a straightforward model.

interface ModelLease {
  ttl: number;
  remaining: number;
  expiry: number;
  /** when expired() may next look at it */
  nextLook: number;
  keys: Set<string>;
}

type LeaseOp =
  | { t: "grant"; id: number; ttl: number }
  | { t: "revoke"; id: number }
  | { t: "renew"; id: number }
  | { t: "attach"; id: number; key: string }
  | { t: "detach"; id: number; key: string }
  | { t: "tick"; ms: number }
  | { t: "expired"; limit: number; revokeSome: boolean }
  | { t: "promote"; extendMs: number }
  | { t: "demote" }
  | { t: "checkpoint"; id: number; remaining: number }
  | { t: "ttl"; id: number };

const idArb = fc.integer({ min: 1, max: 12 });
const leaseOpArb: fc.Arbitrary<LeaseOp> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      t: fc.constant("grant" as const),
      id: idArb,
      ttl: fc.integer({ min: -1, max: 20 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("revoke" as const), id: idArb }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant("renew" as const), id: idArb }) },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant("attach" as const),
      id: idArb,
      key: fc.constantFrom("a", "b", "c", "d", "\u0000", "\u00ff"),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant("detach" as const),
      id: idArb,
      key: fc.constantFrom("a", "b", "c", "d", "\u0000", "\u00ff"),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      t: fc.constant("tick" as const),
      ms: fc.integer({ min: 0, max: 4000 }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constant("expired" as const),
      limit: fc.integer({ min: 1, max: 5 }),
      revokeSome: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("promote" as const),
      extendMs: fc.integer({ min: 0, max: 2000 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("demote" as const) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("checkpoint" as const),
      id: idArb,
      remaining: fc.integer({ min: 0, max: 20 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("ttl" as const), id: idArb }) },
);

function runLeaseModel(ops: LeaseOp[]): void {
  const minTtl = 2;
  const retryMs = 3000;
  const maxPerTick = 4;
  const l = new Lessor({
    minLeaseTtlSeconds: minTtl,
    expiredRetryMs: retryMs,
    maxExpiredPerTick: maxPerTick,
  });
  const model = new Map<number, ModelLease>();
  const keyOwner = new Map<string, number>();
  let primary = false;
  let now = 1_000_000;
  const effective = (m: ModelLease): number => (m.remaining > 0 ? m.remaining : m.ttl);
  const revoke = (id: number): void => {
    const m = model.get(id);
    assert.ok(m !== undefined);
    const got = l.revoke(BigInt(id)).map((b) => b.toString("latin1"));
    const want = [...m.keys].sort((a, b) =>
      Buffer.compare(Buffer.from(a, "latin1"), Buffer.from(b, "latin1")),
    );
    assert.deepEqual(got, want);
    for (const key of m.keys) keyOwner.delete(key);
    model.delete(id);
  };
  for (const op of ops) {
    const id = "id" in op ? BigInt(op.id) : 0n;
    const m = "id" in op ? model.get(op.id) : undefined;
    switch (op.t) {
      case "grant": {
        if (m !== undefined) {
          assert.throws(() => l.grant(id, op.ttl, now), LeaseExistsError);
          break;
        }
        const ttl = Math.max(op.ttl, minTtl);
        const info = l.grant(id, op.ttl, now);
        assert.equal(info.ttlSeconds, ttl);
        const expiry = primary ? now + ttl * 1000 : Infinity;
        model.set(op.id, { ttl, remaining: 0, expiry, nextLook: expiry, keys: new Set() });
        break;
      }
      case "revoke":
        if (m === undefined) assert.throws(() => l.revoke(id), LeaseNotFoundError);
        else revoke(op.id);
        break;
      case "renew":
        if (!primary) assert.throws(() => l.renew(id, now), LeaseNotPrimaryError);
        else if (m === undefined) assert.throws(() => l.renew(id, now), LeaseNotFoundError);
        else if (m.expiry <= now) assert.throws(() => l.renew(id, now), LeaseExpiredError);
        else {
          assert.equal(l.renew(id, now), m.ttl);
          m.expiry = m.nextLook = now + m.ttl * 1000;
        }
        break;
      case "attach":
        if (m === undefined) {
          assert.throws(() => l.attach(id, Buffer.from(op.key, "latin1")), LeaseNotFoundError);
          break;
        }
        l.attach(id, Buffer.from(op.key, "latin1"));
        {
          const prev = keyOwner.get(op.key);
          if (prev !== undefined) model.get(prev)?.keys.delete(op.key);
        }
        m.keys.add(op.key);
        keyOwner.set(op.key, op.id);
        break;
      case "detach":
        if (m === undefined) {
          assert.throws(() => l.detach(id, Buffer.from(op.key, "latin1")), LeaseNotFoundError);
          break;
        }
        l.detach(id, Buffer.from(op.key, "latin1"));
        m.keys.delete(op.key);
        if (keyOwner.get(op.key) === op.id) keyOwner.delete(op.key);
        break;
      case "tick":
        now += op.ms;
        break;
      case "expired": {
        const got = l.expired(now, op.limit);
        const want: number[] = primary
          ? [...model.entries()]
              .filter(([, x]) => x.nextLook <= now)
              .sort(([ia, a], [ib, b]) => a.nextLook - b.nextLook || ia - ib)
              .slice(0, Math.min(op.limit, maxPerTick))
              .map(([i]) => i)
          : [];
        assert.deepEqual(got, want.map(BigInt), `expired at ${now}`);
        for (const i of want) {
          const x = model.get(i) as ModelLease;
          assert.ok(x.expiry <= now);
          x.nextLook = now + retryMs;
        }
        // The server proposes revokes; some get applied, some are lost.
        if (op.revokeSome) for (const i of want.filter((_, j) => j % 2 === 0)) revoke(i);
        break;
      }
      case "promote":
        l.promote(now, op.extendMs);
        primary = true;
        for (const x of model.values())
          x.expiry = x.nextLook = now + op.extendMs + effective(x) * 1000;
        break;
      case "demote":
        l.demote();
        primary = false;
        for (const x of model.values()) x.expiry = x.nextLook = Infinity;
        break;
      case "checkpoint":
        l.applyCheckpoint(id, op.remaining, now);
        if (m !== undefined) m.remaining = op.remaining;
        break;
      case "ttl": {
        const got = l.timeToLive(id, now, true);
        if (m === undefined) {
          assert.equal(got, undefined);
          break;
        }
        const left: number = primary ? Math.trunc((m.expiry - now) / 1000) : effective(m);
        assert.equal(got?.ttlSeconds, left);
        assert.equal(got?.grantedTtlSeconds, m.ttl);
        assert.deepEqual(new Set(got?.keys.map((b) => b.toString("latin1"))), m.keys);
        break;
      }
    }
    l.checkInvariants();
    assert.equal(l.size, model.size);
    assert.equal(l.isPrimary, primary);
  }
  for (const [i, x] of model) {
    const info = l.lookup(BigInt(i));
    assert.equal(info?.expiryMs, x.expiry);
    assert.equal(info?.remainingTtlSeconds, effective(x));
  }
  for (const [key, owner] of keyOwner)
    assert.equal(l.leaseOfKey(Buffer.from(key, "latin1")), BigInt(owner));
}

describe("lessor: model-based property test", () => {
  test("random grant/revoke/renew/attach/expiry/promote/demote sequences with a simulated clock match a model", () => {
    fc.assert(
      fc.property(
        fc.array(leaseOpArb, { minLength: 1, maxLength: 200, size: "max" }),
        runLeaseModel,
      ),
      { seed, numRuns: 300 },
    );
  });
});

test("has() tells whether a lease exists without building its key list", () => {
  const l = new Lessor({ minLeaseTtlSeconds: 1 });
  assert.equal(l.has(1n), false);
  l.grant(1n, 10, 0);
  assert.equal(l.has(1n), true);
  l.revoke(1n);
  assert.equal(l.has(1n), false);
});
