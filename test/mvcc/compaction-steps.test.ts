/**
 * Stepped physical compaction (MvccStore physicalCompaction "stepped", lib/mvcc/compaction.ts)
 * against the synchronous one: random writes, compactions (also one arriving while another runs),
 * steps of random size, snapshots and hashes, interleaved. On every step both stores must give
 * the same reads at every revision from the compaction revision up, the same watch catch-up from
 * the compaction revision (its tombstones included), the same counts, and the stepped store's
 * invariants must hold; at the end the same HashKV and stats, and each snapshot taken on the way
 * (some while a compaction ran) must load into a store equal to the synchronous store's snapshot.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { MvccStore, MvccCompactedError, type MvccSnapshot } from "../../lib/mvcc/index.js";
import { RangeRequest, TxnRequest } from "../../lib/proto/gen/etcdserverpb/rpc.js";
import {
  createWatch,
  delReq,
  opDel,
  opPut,
  putReq,
  rangeReq,
  TestSink,
  testSeed,
} from "./helpers.js";

type Op =
  | { t: "put"; key: string; value: string }
  | { t: "del"; key: string }
  | { t: "txn"; puts: string[]; dels: string[]; value: string }
  | { t: "compact"; back: number }
  | { t: "step"; count: number }
  | { t: "snapshot" }
  | { t: "hash" };

const keyArb = fc.constantFrom("a", "b", "c", "d", "e", "f", "aa", "ab", "ba", "zz");
const valueArb = fc.oneof(fc.string({ maxLength: 4 }), fc.constant("v".repeat(300)));
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({ t: fc.constant("put" as const), key: keyArb, value: valueArb }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("del" as const), key: keyArb }) },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant("txn" as const),
      puts: fc.uniqueArray(keyArb, { maxLength: 3 }),
      dels: fc.uniqueArray(keyArb, { maxLength: 3 }),
      value: valueArb,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant("compact" as const),
      back: fc.integer({ max: 6, min: 0 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant("step" as const),
      count: fc.integer({ min: 1, max: 4 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("snapshot" as const) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("hash" as const) }) },
);

const allKeys = (revision: number): RangeRequest =>
  RangeRequest.create({ key: Buffer.from([0]), rangeEnd: Buffer.from([0]), revision });

function apply(s: MvccStore, op: Op): void {
  switch (op.t) {
    case "put":
      s.put(putReq(op.key, op.value));
      break;
    case "del":
      s.deleteRange(delReq(op.key));
      break;
    case "txn": {
      // puts then deletes of other keys in one revision: changes with sub revisions > 0
      const dels = op.dels.filter((k) => !op.puts.includes(k));
      s.txn(
        TxnRequest.create({
          success: [...op.puts.map((k) => opPut(k, op.value)), ...dels.map((k) => opDel(k))],
        }),
      );
      break;
    }
    default:
  }
}

/** Events a watcher of every key created at `startRevision` gets at once (catch-up). */
function catchUp(s: MvccStore, startRevision: number): unknown[] {
  const sink = new TestSink();
  const ws = s.newWatchStream(sink);
  ws.handle(
    createWatch({ key: Buffer.from([0]), rangeEnd: Buffer.from([0]), startRevision, prevKv: true }),
  );
  for (let i = 0; i < 100 && s.syncWatchers(); i++);
  ws.close();
  return sink.events();
}

/** A fresh store loaded from a snapshot as a member loads a db file (db-load.ts). */
function loaded(snap: MvccSnapshot): MvccStore {
  const s = new MvccStore();
  const finished = snap.finishedCompactRevision ?? snap.compactRevision;
  s.restore(snap.records(), finished);
  if (snap.compactRevision > finished) s.compact(snap.compactRevision);
  s.checkInvariants();
  return s;
}

function assertSameReads(sync: MvccStore, stepped: MvccStore): void {
  assert.equal(stepped.currentRevision, sync.currentRevision);
  assert.equal(stepped.compactRevision, sync.compactRevision);
  assert.equal(stepped.stats().keys, sync.stats().keys);
  const from = Math.max(1, sync.compactRevision);
  for (let rev = from; rev <= sync.currentRevision; rev++) {
    assert.deepEqual(stepped.range(allKeys(rev)), sync.range(allKeys(rev)), `range at ${rev}`);
  }
  if (sync.compactRevision > 1) {
    assert.throws(() => stepped.range(allKeys(sync.compactRevision - 1)), MvccCompactedError);
    assert.deepEqual(
      catchUp(stepped, sync.compactRevision),
      catchUp(sync, sync.compactRevision),
      "watch catch-up from the compaction revision",
    );
  }
}

test("stepped compaction interleaved with writes, snapshots and a second compaction reads, hashes and snapshots as the synchronous one", () => {
  const seed = testSeed("stepped compaction");
  fc.assert(
    fc.property(
      fc.array(opArb, { minLength: 10, maxLength: 80, size: "max" }),
      fc.integer({ min: 1, max: 12 }),
      (ops, stepUnits) => {
        const sync = new MvccStore();
        const stepped = new MvccStore({
          physicalCompaction: "stepped",
          compactionStepUnits: stepUnits,
        });
        const snaps: [MvccSnapshot, MvccSnapshot][] = [];
        for (const op of ops) {
          if (op.t === "compact") {
            const rev = sync.currentRevision - op.back;
            if (rev <= sync.compactRevision || rev < 1) continue;
            sync.compact(rev);
            stepped.compact(rev);
          } else if (op.t === "step") {
            for (let i = 0; i < op.count; i++) stepped.compactionStep();
          } else if (op.t === "snapshot") {
            snaps.push([sync.snapshot(), stepped.snapshot()]);
          } else if (op.t === "hash") {
            // mid-compaction too: the records the compaction drops never count
            assert.deepEqual(stepped.hashKV(0), sync.hashKV(0));
          } else {
            apply(sync, op);
            apply(stepped, op);
          }
          stepped.checkInvariants();
          assertSameReads(sync, stepped);
        }
        for (let i = 0; i < 10_000 && stepped.compactionStep(); i++);
        assert.equal(stepped.compactionPending, false);
        stepped.checkInvariants();
        sync.checkInvariants();
        assertSameReads(sync, stepped);
        assert.deepEqual(stepped.stats(), sync.stats());
        assert.deepEqual(stepped.hashKV(0), sync.hashKV(0));
        for (const [a, c] of snaps) {
          const fromSync = loaded(a);
          const fromStepped = loaded(c);
          assert.deepEqual(fromStepped.hashKV(0), fromSync.hashKV(0));
          assert.deepEqual(
            fromStepped.range(allKeys(0)),
            fromSync.range(allKeys(0)),
            "a snapshot's records after later writes and steps",
          );
        }
      },
    ),
    { seed, numRuns: 60 },
  );
});

test("a compaction's physical part runs in many steps while puts and deletes go on", () => {
  const s = new MvccStore({ physicalCompaction: "stepped", compactionStepUnits: 64 });
  for (let i = 0; i < 3000; i++) s.put(putReq(`k${i % 1000}`, `v${i}`));
  const rev = s.currentRevision;
  let pending = 0;
  s.compact(rev);
  // the logical part is done at once
  assert.throws(() => s.range(allKeys(rev - 1)), MvccCompactedError);
  assert.equal(s.stats().revisions, 3000);
  for (let i = 0; s.compactionStep(); i++) {
    pending++;
    assert.ok(i < 10_000, "the compaction ends");
    s.put(putReq(`new${i % 50}`, `x${i}`));
    if (i % 25 === 0) s.deleteRange(delReq(`k${i % 1000}`));
  }
  assert.ok(pending > 10, `${pending} steps`);
  s.checkInvariants();
  const deletes = Math.ceil(pending / 25);
  // each surviving key's newest record, and every record written since the compaction
  assert.equal(s.stats().revisions, 1000 + s.currentRevision - rev);
  assert.equal(s.stats().keys, 1000 - deletes + Math.min(pending, 50));
});

test("a second compaction during a stepped one is done after it; close drops it; restore is not undone", () => {
  const s = new MvccStore({ physicalCompaction: "stepped", compactionStepUnits: 8 });
  for (let i = 0; i < 200; i++) s.put(putReq(`k${i % 20}`, `v${i}`));
  s.compact(100);
  s.compactionStep();
  s.put(putReq("k0", "later"));
  s.compact(180);
  assert.equal(s.compactRevision, 180);
  assert.throws(() => s.range(allKeys(179)), MvccCompactedError);
  s.finishCompaction();
  s.checkInvariants();
  assert.equal(s.compactionPending, false);
  // 20 keys' newest records at or below 180, and the 22 records since (181-202)
  assert.equal(s.stats().revisions, 20 + 22);

  s.compact(s.currentRevision);
  assert.equal(s.compactionPending, true);
  s.close();
  assert.equal(s.compactionPending, false);
  assert.equal(s.compactionStep(), false);
  s.checkInvariants();
  assert.equal(s.range(rangeReq("k0")).kvs[0]!.value.toString(), "later");

  // a pending compaction of an empty store must not replace what restore() loads
  const empty = new MvccStore({ physicalCompaction: "stepped" });
  empty.compact(1);
  empty.restore(s.snapshot().records(), s.compactRevision);
  assert.equal(empty.compactionPending, false);
  empty.checkInvariants();
  assert.deepEqual(empty.range(allKeys(0)), s.range(allKeys(0)));
});

test("HashKV while a compaction is pending counts only what it keeps, also with no live key", () => {
  const sync = new MvccStore();
  const stepped = new MvccStore({ physicalCompaction: "stepped", compactionStepUnits: 1 });
  for (const s of [sync, stepped]) {
    s.put(putReq("a", "1"));
    s.put(putReq("a", "2"));
    s.put(putReq("b", "1"));
    s.deleteRange(delReq("a"));
    s.deleteRange(delReq("b"));
    // etcd counts every record below the compaction point when no key is live at the revision
    s.compact(4);
  }
  assert.equal(stepped.compactionPending, true);
  assert.deepEqual(stepped.hashKV(0), sync.hashKV(0));
  stepped.put(putReq("c", "1"));
  sync.put(putReq("c", "1"));
  assert.deepEqual(stepped.hashKV(0), sync.hashKV(0));
  assert.equal(stepped.compactionPending, true);
});

test("a compaction finishes however many rows are written between its steps", () => {
  // 16 units a step copy about 2 rows, far fewer than the 40 written between two steps: each
  // step also pays for the rows written since the previous one, so the copy still catches up
  const s = new MvccStore({ physicalCompaction: "stepped", compactionStepUnits: 16 });
  for (let i = 0; i < 400; i++) s.put(putReq(`k${i % 100}`, `v${i}`));
  s.compact(s.currentRevision);
  let steps = 0;
  for (; s.compactionStep(); steps++) {
    assert.ok(steps < 1000, "the compaction ends");
    for (let i = 0; i < 40; i++) s.put(putReq(`k${(steps * 7 + i) % 150}`, "x".repeat(i * 10)));
  }
  s.checkInvariants();
  // about what the same compaction takes with no writes: 400 rows marked, 100 keys walked and
  // copied (400 + 400 + 100 * 5 units = 1,300 units, 82 steps of 16)
  assert.ok(steps <= 120, `${steps} steps`);
});
