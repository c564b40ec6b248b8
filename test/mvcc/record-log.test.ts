import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { headOfKey } from "../../lib/btree/index.js";
import { RecordLog, maxSubRevision } from "../../lib/mvcc/record-log.js";
import type { Rec } from "../../lib/mvcc/record.js";
import { testSeed } from "./helpers.js";

const recArb = fc.record({
  // few distinct keys, so keys repeat and rows chain; some past the 32-byte JS compare
  key: fc.oneof(
    fc
      .constantFrom("a", "b", "ab", "\u0000", "k".repeat(40), "k".repeat(41))
      .map((s) => Buffer.from(s)),
    fc.uint8Array({ minLength: 1, maxLength: 12 }).map((u) => Buffer.from(u)),
  ),
  // mostly small values, sometimes one larger than a shared chunk's share (own allocation)
  value: fc.oneof(
    { weight: 9, arbitrary: fc.uint8Array({ maxLength: 300 }) },
    {
      weight: 1,
      arbitrary: fc
        .integer({ min: 128 * 1024 + 1, max: 200 * 1024 })
        .map((n) => new Uint8Array(n).fill(n & 0xff)),
    },
  ),
  main: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  sub: fc.integer({ min: 0, max: maxSubRevision }),
  createRevision: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  // a row holds versions below 2^32 - 1 itself, others in a side map: both sides of the edge
  version: fc.oneof(
    fc.integer({ min: 0, max: 1000 }),
    fc.integer({ min: 2 ** 31 - 2, max: 2 ** 31 + 2 }),
    fc.integer({ min: 2 ** 32 - 3, max: 2 ** 32 + 3 }),
    fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  ),
  lease: fc.oneof(fc.constant(0n), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n })),
});

type RawRec = typeof recArb extends fc.Arbitrary<infer T> ? T : never;

function assertRec(r: Rec, want: RawRec, what: string): void {
  assert.ok(r.key.equals(want.key), `${what}: key`);
  assert.ok(r.value.equals(Buffer.from(want.value)), `${what}: value`);
  assert.deepEqual(
    [r.main, r.sub, r.createRevision, r.version, r.lease, r.isTombstone],
    [want.main, want.sub, want.createRevision, want.version, want.lease, want.createRevision === 0],
    what,
  );
}

/** Row `row` of `log` read through every accessor (version(), keyValue(), rec()) agrees. */
function assertRowReads(log: RecordLog, row: number, want: RawRec, what: string): void {
  assertRec(log.rec(row), want, what);
  assert.equal(log.version(row), want.version, `${what}: version()`);
  const kv = log.keyValue(row, false);
  assert.deepEqual(
    [kv.modRevision, kv.createRevision, kv.version, kv.lease],
    [want.main, want.createRevision, want.version, want.lease],
    `${what}: keyValue()`,
  );
}

test("a row reads back equal in every field, chains to its key's previous row, and copies to a new log", () => {
  const seed = testSeed("record log");
  fc.assert(
    fc.property(fc.array(recArb, { maxLength: 1500 }), (raw) => {
      const log = new RecordLog(64, 1024 * 1024);
      const slots = new Map<string, number>();
      const rows: number[] = [];
      for (const r of raw) {
        const hex = r.key.toString("hex");
        let slot = slots.get(hex);
        if (slot === undefined) {
          slot = log.keys.add(r.key);
          slots.set(hex, slot);
        }
        const chunk = log.values.place(r.value, 0, r.value.length);
        rows.push(
          log.append(
            slot,
            chunk,
            log.values.placedOffset,
            r.value.length,
            r.main,
            r.sub,
            r.createRevision,
            r.version,
            r.lease,
          ),
        );
      }
      assert.equal(log.length, raw.length);
      assert.equal(log.keys.length, slots.size);
      const lastOf = new Map<number, number>();
      for (let i = 0; i < raw.length; i++) {
        const row = rows[i]!;
        const want = raw[i]!;
        assert.equal(row, i, "rows are numbered in append order");
        assertRowReads(log, row, want, `row ${row}`);
        assert.equal(log.main(row), want.main);
        assert.equal(log.lease(row), want.lease);
        assert.ok(log.value(row).equals(Buffer.from(want.value)));
        assert.ok(log.key(row).equals(want.key));
        const slot = log.keySlot(row);
        assert.equal(log.prevRow(row), lastOf.get(slot) ?? -1, "links the key's previous row");
        lastOf.set(slot, row);
      }
      for (const [slot, row] of lastOf) assert.equal(log.keys.newest(slot), row);
      // the key table compares and heads as Buffer.compare and headOfKey do
      const keys = [...slots.keys()].map((h) => Buffer.from(h, "hex"));
      for (const [hex, slot] of slots) {
        const k = Buffer.from(hex, "hex");
        assert.equal(log.keys.head(slot), headOfKey(k));
        for (const other of keys.slice(0, 20)) {
          // the compared key lies inside a larger buffer, as restore passes it
          const padded = Buffer.concat([Buffer.from([9]), other, Buffer.from([7])]);
          assert.equal(
            Math.sign(log.keys.compare(slot, padded, 1, 1 + other.length)),
            Math.sign(Buffer.compare(k, other)),
          );
        }
      }
      // compaction's path: every other row into a fresh log; the old log still reads the same
      const next = new RecordLog(64, 1024 * 1024);
      const nextSlots = new Map<number, number>();
      for (let i = 0; i < raw.length; i += 2) {
        const oldSlot = log.keySlot(rows[i]!);
        let slot = nextSlots.get(oldSlot);
        if (slot === undefined) {
          slot = next.keys.add(log.keys.key(oldSlot));
          nextSlots.set(oldSlot, slot);
        }
        const copiedRow = next.copyRow(log, rows[i]!, slot);
        assertRowReads(next, copiedRow, raw[i]!, `copied row ${i}`);
        const copied = next.rec(copiedRow);
        if (copied.valueLength > 0) {
          assert.notEqual(copied.valueChunk, log.rec(rows[i]!).valueChunk, "the value moved");
        }
      }
      for (let i = 0; i < raw.length; i++) assertRec(log.rec(rows[i]!), raw[i]!, `old row ${i}`);
    }),
    { seed, numRuns: 60 },
  );
});

test("firstRowAtOrAfter finds the first row of a revision by binary search", () => {
  const log = new RecordLog(64, 1024);
  const slot = log.keys.add(Buffer.from("k"));
  const mains = [2, 2, 3, 7, 7, 7, 9];
  for (let i = 0; i < mains.length; i++) log.append(slot, -1, 0, 0, mains[i]!, i, 1, 1, 0n);
  assert.deepEqual(
    [0, 2, 3, 4, 7, 8, 9, 10].map((rev) => log.firstRowAtOrAfter(rev)),
    [0, 0, 2, 3, 3, 6, 6, 7],
  );
});
