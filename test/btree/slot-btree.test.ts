import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  BTreeInvalidDegreeError,
  BTreeInvariantError,
  SlotBTree,
  headOfKey,
  type SlotKeys,
} from "../../lib/btree/index.js";
import { Slabs } from "../../lib/mvcc/slabs.js";

// Replay a failure with SEED=<n> node tools/run-tests.mjs slot-btree
const seed = process.env.SEED !== undefined ? Number(process.env.SEED) : Date.now() % 2 ** 31;
console.log(`slot-btree tests: SEED=${seed}`);

/** Keys by slot, as the tree's owner keeps them; also counts full compares. */
class Keys implements SlotKeys {
  readonly keys: Buffer[] = [];
  compares = 0;
  add(k: Buffer): number {
    this.keys.push(k);
    return this.keys.length - 1;
  }
  compare(slot: number, key: Uint8Array, start: number, end: number): number {
    this.compares++;
    return Buffer.compare(this.keys[slot]!, key.subarray(start, end));
  }
  head(slot: number): number {
    return headOfKey(this.keys[slot]!);
  }
  key(slot: number): Uint8Array {
    return this.keys[slot]!;
  }
}

function slotsIn(t: SlotBTree, gte?: Buffer, lt?: Buffer, stopAfter = Infinity): number[] {
  const out: number[] = [];
  t.ascend(gte, lt, (s) => {
    out.push(s);
    return out.length < stopAfter;
  });
  return out;
}

// Short alphabets make shared prefixes (equal heads: the full compare decides), long keys pass
// the 32-byte JS compare limit, and keys shorter than a head (6 bytes) pad with zeros.
const keyArb = fc.oneof(
  fc.uint8Array({ minLength: 0, maxLength: 8 }).map((u) => Buffer.from(u)),
  fc.array(fc.constantFrom(0, 1, 0xff), { minLength: 0, maxLength: 10 }).map((a) => Buffer.from(a)),
  fc
    .tuple(fc.constantFrom("/registry/pods/", "/registry/", "k"), fc.string({ maxLength: 40 }))
    .map(([p, s]) => Buffer.from(p + s)),
);

test("inserts in any order: find, ascend over any bounds and the invariants agree with a sorted model", () => {
  fc.assert(
    fc.property(
      fc.array(keyArb, { maxLength: 400 }),
      fc.array(fc.tuple(keyArb, keyArb, fc.integer({ min: 1, max: 50 })), { maxLength: 20 }),
      fc.constantFrom(4, 5, 8, 128),
      (inserted, ranges, cap) => {
        const keys = new Keys();
        const t = new SlotBTree(keys, { nodeCapacity: cap });
        const model = new Map<string, number>();
        for (let i = 0; i < inserted.length; i++) {
          const k = inserted[i]!;
          const hex = k.toString("hex");
          // the key inside a larger buffer, as restore passes it
          const padded = Buffer.concat([Buffer.from([0xff]), k, Buffer.from([0])]);
          const found = t.find(padded, 1, 1 + k.length);
          assert.equal(found, model.get(hex) ?? -1);
          assert.equal(t.find(k), found);
          if (found >= 0) {
            assert.throws(() => t.insert(k, found), BTreeInvariantError);
            assert.equal(t.insertOrFind(padded, keys.keys.length, 1, 1 + k.length), found);
            continue;
          }
          let slot: number;
          if (i % 2 === 0) {
            slot = keys.add(k);
            t.insert(k, slot);
          } else {
            // restore's way: insert the next free slot, then record its key
            slot = keys.keys.length;
            assert.equal(t.insertOrFind(padded, slot, 1, 1 + k.length), slot);
            keys.add(k);
          }
          model.set(hex, slot);
        }
        t.checkInvariants();
        assert.equal(t.size, model.size);
        const sorted = [...model.entries()].sort((a, b) =>
          Buffer.compare(Buffer.from(a[0], "hex"), Buffer.from(b[0], "hex")),
        );
        assert.deepEqual(
          slotsIn(t),
          sorted.map(([, s]) => s),
        );
        for (const [gte, lt, stop] of ranges) {
          const want = sorted
            .filter(([h]) => {
              const k = Buffer.from(h, "hex");
              return Buffer.compare(k, gte) >= 0 && Buffer.compare(k, lt) < 0;
            })
            .map(([, s]) => s);
          assert.deepEqual(slotsIn(t, gte, lt), want);
          assert.deepEqual(slotsIn(t, gte, lt, stop), want.slice(0, stop));
          const from = sorted.filter(([h]) => Buffer.compare(Buffer.from(h, "hex"), gte) >= 0);
          assert.deepEqual(
            slotsIn(t, gte, undefined),
            from.map(([, s]) => s),
          );
          const below = sorted.filter(([h]) => Buffer.compare(Buffer.from(h, "hex"), lt) < 0);
          assert.deepEqual(
            slotsIn(t, undefined, lt),
            below.map(([, s]) => s),
          );
        }
        // build() from the sorted slots and repacked() hold the same entries in full nodes
        // nodes carved from shared slabs, as mvcc's index takes them
        const built = SlotBTree.build(
          keys,
          sorted.map(([, s]) => s),
          { nodeCapacity: cap, memory: new Slabs(4096) },
        );
        built.checkInvariants();
        // and builder(), given them one at a time
        const builder = SlotBTree.builder(keys, { nodeCapacity: cap, memory: new Slabs(4096) });
        for (const [, s] of sorted) builder.add(s);
        const streamed = builder.finish();
        streamed.checkInvariants();
        assert.equal(streamed.height, built.height);
        const repacked = t.repacked();
        repacked.checkInvariants();
        t.checkInvariants();
        for (const tree of [built, streamed, repacked, t]) {
          assert.deepEqual(
            slotsIn(tree),
            sorted.map(([, s]) => s),
          );
          for (const [h, s] of sorted) assert.equal(tree.find(Buffer.from(h, "hex")), s);
        }
        // and keep taking inserts
        const extra = Buffer.from("zzzz-extra");
        if (!model.has(extra.toString("hex"))) {
          built.insert(extra, keys.add(extra));
          built.checkInvariants();
        }
      },
    ),
    { seed, numRuns: 150 },
  );
});

test("ascending inserts fill nodes (the split leaves a full left node) and keep the tree shallow", () => {
  const keys = new Keys();
  const t = new SlotBTree(keys, { nodeCapacity: 4 });
  const n = 4 ** 4; // four full levels of 4
  for (let i = 0; i < n; i++) {
    const k = Buffer.alloc(4);
    k.writeUInt32BE(i);
    t.insert(k, keys.add(k));
  }
  t.checkInvariants();
  // full nodes: 64 leaves under 16, 4 and 1 inner nodes; half-full ones would need a 5th level
  assert.equal(t.height, 4);
  // heads decide every step but the final exact check
  keys.compares = 0;
  const k = Buffer.alloc(4);
  k.writeUInt32BE(n - 1);
  assert.equal(t.find(k), n - 1);
  assert.ok(keys.compares <= 1, `${keys.compares} full compares for keys with distinct heads`);
});

test("build refuses slots out of key order; the node capacity is validated", () => {
  const keys = new Keys();
  const a = keys.add(Buffer.from("a"));
  const b = keys.add(Buffer.from("b"));
  assert.throws(() => SlotBTree.build(keys, [b, a]), BTreeInvariantError);
  assert.throws(() => SlotBTree.build(keys, [a, a]), BTreeInvariantError);
  SlotBTree.build(keys, [a, b]).checkInvariants();
  for (const cap of [3, 4097, 4.5]) {
    assert.throws(() => new SlotBTree(keys, { nodeCapacity: cap }), BTreeInvalidDegreeError);
  }
  const empty = SlotBTree.build(keys, []);
  empty.checkInvariants();
  assert.equal(empty.find(Buffer.from("a")), -1);
  assert.deepEqual(slotsIn(empty), []);
});

test("builder() makes build()'s tree at every level boundary, and refuses a head out of order", () => {
  const keys = new Keys();
  const slots: number[] = [];
  for (let i = 0; i < 4 ** 4 + 1; i++) {
    const k = Buffer.alloc(4);
    k.writeUInt32BE(i);
    slots.push(keys.add(k));
  }
  for (const n of [0, 1, 3, 4, 5, 15, 16, 17, 63, 64, 65, 255, 256, 257]) {
    const builder = SlotBTree.builder(keys, { nodeCapacity: 4 });
    for (let i = 0; i < n; i++) builder.add(slots[i]!);
    const t = builder.finish();
    t.checkInvariants();
    const built = SlotBTree.build(keys, slots.slice(0, n), { nodeCapacity: 4 });
    assert.equal(t.height, built.height, `height at ${n}`);
    assert.equal(t.size, n);
    assert.deepEqual(slotsIn(t), slots.slice(0, n));
    // and keep taking inserts
    const extra = Buffer.from("zzzz");
    t.insert(extra, keys.add(extra));
    t.checkInvariants();
  }
  const builder = SlotBTree.builder(keys);
  builder.add(slots[5]!);
  assert.throws(() => builder.add(slots[4]!), BTreeInvariantError);
});
