import { test } from "node:test";
import assert from "node:assert/strict";
import { MvccStore, MvccError, type RawKeyRecords } from "../../lib/mvcc/index.js";
import { b, delReq, keysOf, putReq, rangeReq, storeWithLeases } from "./helpers.js";

function history(s: MvccStore): void {
  s.put(putReq("a", "1"));
  s.put(putReq("b", "2", { lease: 7n }));
  s.put(putReq("a", "3"));
  s.deleteRange(delReq("b"));
  s.put(putReq("c", "4", { lease: 7n }));
  s.deleteKeys([b("a")]);
  s.put(putReq("a", "5"));
}

test("snapshot then restore gives the same store: hash, ranges at every revision, leases", () => {
  const { store: src } = storeWithLeases([7n]);
  history(src);
  src.compact(3);
  const snap = src.snapshot();
  assert.equal(snap.revision, 8);
  assert.equal(snap.compactRevision, 3);
  const entries = [...snap.records()];
  assert.equal(entries.length, snap.recordCount);
  // bbolt key order = revision order; tombstones carry the 't' mark
  for (let i = 1; i < entries.length; i++) {
    assert.ok(
      Buffer.compare(entries[i - 1]![0].subarray(0, 17), entries[i]![0].subarray(0, 17)) < 0,
    );
  }
  assert.ok(entries.some(([k]) => k.length === 18 && k[17] === 0x74));
  // the cursor hands out the same entries
  const viaCursor: string[] = [];
  const c = snap.cursor!();
  while (c.next()) {
    viaCursor.push(
      c.keyBuf.subarray(c.keyStart, c.keyEnd).toString("hex") +
        "/" +
        c.valueBuf.subarray(c.valueStart, c.valueEnd).toString("hex"),
    );
  }
  assert.deepEqual(
    viaCursor,
    entries.map(([k, v]) => k.toString("hex") + "/" + v.toString("hex")),
  );

  const { store: dst, attached } = storeWithLeases([7n]);
  dst.restore(entries.reverse(), snap.compactRevision);
  dst.checkInvariants();
  assert.equal(dst.currentRevision, 8);
  assert.equal(dst.compactRevision, 3);
  assert.deepEqual(dst.hashKV(0), src.hashKV(0));
  assert.deepEqual(dst.stats(), src.stats());
  for (let rev = 3; rev <= 8; rev++) {
    const req = rangeReq("a", { rangeEnd: b("z"), revision: rev });
    assert.deepEqual(dst.range(req), src.range(req), `revision ${rev}`);
  }
  assert.deepEqual([...attached.get(7n)!], ["c"]);
  dst.put(putReq("d", "6"));
  assert.equal(dst.currentRevision, 9);
});

test("a planning cursor gives the revision keys and the length of every value the full cursor gives", () => {
  const bigLease = 2n ** 62n + 5n;
  const { store: s } = storeWithLeases([7n, bigLease]);
  history(s);
  // keys and values across varint length boundaries, empty values, a large lease id
  for (const n of [0, 1, 127, 128, 300, 16_383, 16_384]) {
    s.put(putReq("k".repeat(1 + (n % 200)), "v".repeat(n), { lease: n % 2 === 0 ? bigLease : 0n }));
  }
  s.put(putReq("x".repeat(128), ""));
  s.deleteRange(delReq("x".repeat(128)));
  const snap = s.snapshot();
  const full = snap.cursor!();
  const planning = snap.cursor!(true);
  let rows = 0;
  while (full.next()) {
    assert.equal(planning.next(), true, `row ${rows}`);
    assert.deepEqual(
      planning.keyBuf.subarray(planning.keyStart, planning.keyEnd),
      full.keyBuf.subarray(full.keyStart, full.keyEnd),
      `row ${rows}: revision key`,
    );
    assert.equal(
      planning.valueEnd - planning.valueStart,
      full.valueEnd - full.valueStart,
      `row ${rows}: value length`,
    );
    rows++;
  }
  assert.equal(planning.next(), false);
  assert.equal(rows, snap.recordCount);
});

test("a snapshot keeps its point-in-time view while writes and compaction go on", () => {
  const { store: s } = storeWithLeases([7n]);
  history(s);
  const snap = s.snapshot();
  const before = [...snap.records()].map(([k, v]) => k.toString("hex") + v.toString("hex"));
  s.put(putReq("x", "1"));
  s.compact(9);
  s.put(putReq("y", "1"));
  const after = [...snap.records()].map(([k, v]) => k.toString("hex") + v.toString("hex"));
  assert.deepEqual(after, before);
  const fresh = new MvccStore();
  fresh.restore(snap.records(), snap.compactRevision);
  assert.deepEqual(keysOf(fresh.range(rangeReq("a", { rangeEnd: b("z") })).kvs), ["a", "c"]);
});

test("restore refuses a non-empty store and malformed entries; an empty bucket restores to revision 1", () => {
  const s = new MvccStore();
  s.put(putReq("a", "1"));
  assert.throws(() => s.restore([], -1), MvccError);
  assert.throws(() => new MvccStore().restore([[Buffer.alloc(5), Buffer.alloc(0)]], -1), MvccError);
  const e = new MvccStore();
  e.restore([], -1);
  assert.equal(e.currentRevision, 1);
  const c = new MvccStore();
  c.restore([], 5);
  assert.equal(c.currentRevision, 5);
});

/** `entries` as RawKeyRecords: every entry back to back in one buffer, handed out as ranges. */
function rawOf(entries: [Buffer, Buffer][]): RawKeyRecords {
  const buf = Buffer.concat([Buffer.from([0xee]), ...entries.flat()]);
  return {
    forEachRaw(fn) {
      let at = 1;
      for (const [k, v] of entries) {
        fn(buf, at, at + k.length, at + k.length + v.length);
        at += k.length + v.length;
      }
    },
  };
}

test("restore through RawKeyRecords (byte ranges) gives the store the iterable gives, in or out of order", () => {
  const { store: src } = storeWithLeases([7n]);
  history(src);
  src.compact(3);
  const entries = [...src.snapshot().records()].map(([k, v]): [Buffer, Buffer] => [
    Buffer.from(k),
    Buffer.from(v),
  ]);
  for (const order of [entries, [...entries].reverse()]) {
    const { store: dst, attached } = storeWithLeases([7n]);
    dst.restore(rawOf(order), 3);
    dst.checkInvariants();
    assert.deepEqual(dst.hashKV(0), src.hashKV(0));
    assert.deepEqual(dst.stats(), src.stats());
    assert.deepEqual(
      dst.range(rangeReq("a", { rangeEnd: b("z"), revision: 4 })),
      src.range(rangeReq("a", { rangeEnd: b("z"), revision: 4 })),
    );
    assert.deepEqual([...attached.get(7n)!], ["c"]);
  }
});

test("restore refuses a KeyValue that runs past its end (a skipped fixed64 field, a cut varint)", () => {
  const rev = Buffer.alloc(17);
  rev.writeUInt32BE(2, 4);
  rev[8] = 0x5f;
  // a sub revision past 2^31 - 1 (no revision holds that many changes)
  const bigSub = Buffer.from(rev);
  bigSub.writeUInt32BE(0x80000000, 13);
  assert.throws(
    () => new MvccStore().restore([[bigSub, Buffer.from([0x0a, 0x01, 0x61])]], -1),
    MvccError,
  );
  for (const kv of [
    Buffer.from([0x0a, 0x01, 0x61, 0x09, 1, 2, 3]), // key "a", then field 1 fixed64 with 3 bytes
    Buffer.from([0x0a, 0x01, 0x61, 0x10, 0x80]), // create_revision varint cut short
  ]) {
    assert.throws(() => new MvccStore().restore([[rev, kv]], -1), MvccError);
    assert.throws(() => new MvccStore().restore(rawOf([[rev, kv]]), -1), MvccError);
  }
});
