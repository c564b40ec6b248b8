import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { ColdLog } from "../../lib/mvcc/cold-log.js";
import { ByteArena, Rec } from "../../lib/mvcc/record.js";
import { testSeed } from "./helpers.js";

const recArb = fc.record({
  key: fc.uint8Array({ minLength: 1, maxLength: 40 }),
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
  sub: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  createRevision: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  version: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  lease: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
});

type RawRec = typeof recArb extends fc.Arbitrary<infer T> ? T : never;

function toRec(r: RawRec, values: ByteArena): Rec {
  const chunk = values.place(r.value, 0, r.value.length);
  return new Rec(
    Buffer.from(r.key),
    chunk,
    values.placedOffset,
    r.value.length,
    r.main,
    r.sub,
    r.createRevision,
    r.version,
    r.lease,
  );
}

function assertSame(a: Rec, b: Rec): void {
  assert.ok(a.key.equals(b.key));
  assert.ok(a.value.equals(b.value));
  assert.deepEqual(
    [a.main, a.sub, a.createRevision, a.version, a.lease, a.isTombstone, a.approximateBytes],
    [b.main, b.sub, b.createRevision, b.version, b.lease, b.isTombstone, b.approximateBytes],
  );
}

test("a packed record reads back equal in every field, also after rows are copied to a new log", () => {
  const seed = testSeed("cold log");
  fc.assert(
    fc.property(fc.array(recArb, { maxLength: 1500 }), (raw) => {
      const values = new ByteArena(1024 * 1024);
      const recs = raw.map((r) => toRec(r, values));
      const log = new ColdLog();
      const rows = recs.map((r) => log.append(r));
      assert.equal(log.length, recs.length);
      for (let i = 0; i < recs.length; i++) {
        const row = rows[i]!;
        assertSame(log.rec(row), recs[i]!);
        assert.equal(log.main(row), recs[i]!.main);
        assert.equal(log.sub(row), recs[i]!.sub);
        assert.equal(log.key(row), recs[i]!.key, "the key Buffer is shared, not copied");
        assert.equal(log.isTombstone(row), recs[i]!.isTombstone);
        assert.equal(log.approximateBytes(row), recs[i]!.approximateBytes);
      }
      // compaction's path: every other row into a fresh log; the old log still reads the same
      const next = new ColdLog();
      const fresh = new ByteArena(1024 * 1024);
      for (let i = 0; i < recs.length; i += 2) {
        const copied = next.rec(next.copyRow(log, rows[i]!, fresh));
        assertSame(copied, recs[i]!);
        if (copied.valueLength > 0) {
          assert.notEqual(
            copied.valueChunk,
            recs[i]!.valueChunk,
            "the value moved to the new arena",
          );
        }
      }
      for (let i = 0; i < recs.length; i++) assertSame(log.rec(rows[i]!), recs[i]!);
    }),
    { seed, numRuns: 60 },
  );
});
