import { test, describe } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { BTree, BTreeInvalidDegreeError } from "../../lib/btree/index.js";

// Replay a failure with SEED=<n> npm test -- btree
const seed = process.env.SEED !== undefined ? Number(process.env.SEED) : Date.now() % 2 ** 31;
console.log(`btree tests: SEED=${seed}`);

const b = (...bytes: number[]): Buffer => Buffer.from(bytes);
const hex = (k: Buffer): string => k.toString("hex");

/** The reference model: a plain array of [key, value] kept sorted by Buffer.compare. */
class Model {
  rows: [Buffer, number][] = [];
  clone(): Model {
    const m = new Model();
    m.rows = this.rows.slice();
    return m;
  }
  #find(k: Buffer): { i: number; found: boolean } {
    let i = 0;
    while (i < this.rows.length && Buffer.compare(this.rows[i][0], k) < 0) i++;
    return { i, found: i < this.rows.length && Buffer.compare(this.rows[i][0], k) === 0 };
  }
  get(k: Buffer): number | undefined {
    const { i, found } = this.#find(k);
    return found ? this.rows[i][1] : undefined;
  }
  set(k: Buffer, v: number): number | undefined {
    const { i, found } = this.#find(k);
    if (found) {
      const prev = this.rows[i][1];
      this.rows[i] = [this.rows[i][0], v];
      return prev;
    }
    this.rows.splice(i, 0, [k, v]);
    return undefined;
  }
  delete(k: Buffer): number | undefined {
    const { i, found } = this.#find(k);
    if (!found) return undefined;
    const prev = this.rows[i][1];
    this.rows.splice(i, 1);
    return prev;
  }
  range(gte: Buffer | undefined, lt: Buffer | undefined): [string, number][] {
    return this.rows
      .filter(
        ([k]) =>
          (gte === undefined || Buffer.compare(k, gte) >= 0) &&
          (lt === undefined || Buffer.compare(k, lt) < 0),
      )
      .map(([k, v]) => [hex(k), v]);
  }
}

// Small alphabet with 0x00 / 0xff and short lengths: many prefixes, equal keys and edge bytes.
// Some keys share a 7-byte prefix so the tree's 6-byte key heads tie and full compares decide.
const shortBytesArb = fc.array(fc.constantFrom(0x00, 0x01, 0x02, 0x7f, 0x80, 0xfe, 0xff), {
  minLength: 0,
  maxLength: 3,
});
const keyArb = fc.oneof(
  { weight: 3, arbitrary: shortBytesArb.map((a) => Buffer.from(a)) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom(0x00, 0x61, 0xff), fc.nat(7), shortBytesArb)
      .map(([p, n, a]) => Buffer.concat([Buffer.alloc(n, p), Buffer.from(a)])),
  },
);
const boundArb = fc.option(keyArb, { nil: undefined });

type Op =
  | { t: "set"; tree: number; k: Buffer; v: number }
  | { t: "delete"; tree: number; k: Buffer }
  | { t: "get"; tree: number; k: Buffer }
  | { t: "ascend"; tree: number; gte?: Buffer; lt?: Buffer; stop: number }
  | { t: "descend"; tree: number; gte?: Buffer; lt?: Buffer; stop: number }
  | { t: "entries"; tree: number; gte?: Buffer; lt?: Buffer; reverse: boolean }
  | { t: "count"; tree: number; gte?: Buffer; lt?: Buffer }
  | { t: "minmax"; tree: number }
  | { t: "clone"; tree: number };

const treeIdx = fc.nat(7);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.record({
      t: fc.constant("set" as const),
      tree: treeIdx,
      k: keyArb,
      v: fc.integer(),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({ t: fc.constant("delete" as const), tree: treeIdx, k: keyArb }),
  },
  { weight: 3, arbitrary: fc.record({ t: fc.constant("get" as const), tree: treeIdx, k: keyArb }) },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant("ascend" as const),
      tree: treeIdx,
      gte: boundArb,
      lt: boundArb,
      stop: fc.nat(20),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant("descend" as const),
      tree: treeIdx,
      gte: boundArb,
      lt: boundArb,
      stop: fc.nat(20),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant("entries" as const),
      tree: treeIdx,
      gte: boundArb,
      lt: boundArb,
      reverse: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant("count" as const),
      tree: treeIdx,
      gte: boundArb,
      lt: boundArb,
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("minmax" as const), tree: treeIdx }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("clone" as const), tree: treeIdx }) },
);

/** Applies `ops` to trees and models side by side; every step compares results and invariants. */
function runOps(degree: number, ops: Op[]): void {
  const trees: BTree<number>[] = [new BTree<number>({ degree })];
  const models: Model[] = [new Model()];
  const maxTrees = 8;
  for (const op of ops) {
    const ti = op.tree % trees.length;
    const t = trees[ti];
    const m = models[ti];
    switch (op.t) {
      case "set":
        assert.equal(t.set(op.k, op.v), m.set(op.k, op.v), `set ${hex(op.k)}`);
        break;
      case "delete":
        assert.equal(t.delete(op.k), m.delete(op.k), `delete ${hex(op.k)}`);
        break;
      case "get":
        assert.equal(t.get(op.k), m.get(op.k));
        assert.equal(t.has(op.k), m.get(op.k) !== undefined);
        break;
      case "ascend":
      case "descend": {
        const got: [string, number][] = [];
        const visit = (k: Buffer, v: number): boolean => {
          got.push([hex(k), v]);
          return got.length < op.stop;
        };
        if (op.t === "ascend") t.ascend(op.gte, op.lt, visit);
        else t.descend(op.gte, op.lt, visit);
        let want = m.range(op.gte, op.lt);
        if (op.t === "descend") want.reverse();
        want = want.slice(0, Math.max(op.stop, 1));
        assert.deepEqual(got, want, `${op.t} [${op.gte && hex(op.gte)}, ${op.lt && hex(op.lt)})`);
        break;
      }
      case "entries": {
        const got = [...t.entries({ gte: op.gte, lt: op.lt, reverse: op.reverse })].map(
          ([k, v]) => [hex(k), v],
        );
        const want = m.range(op.gte, op.lt);
        if (op.reverse) want.reverse();
        assert.deepEqual(got, want);
        break;
      }
      case "count":
        assert.equal(t.count(op.gte, op.lt), m.range(op.gte, op.lt).length);
        break;
      case "minmax": {
        const first = m.rows[0];
        const last = m.rows[m.rows.length - 1];
        assert.deepEqual(t.min(), first === undefined ? undefined : [first[0], first[1]]);
        assert.deepEqual(t.max(), last === undefined ? undefined : [last[0], last[1]]);
        break;
      }
      case "clone":
        if (trees.length < maxTrees) {
          trees.push(t.clone());
          models.push(m.clone());
        }
        break;
    }
    assert.equal(t.size, m.rows.length);
    t.checkInvariants();
  }
  // Every tree, including ones not touched last, still shows exactly its own model.
  for (let i = 0; i < trees.length; i++) {
    trees[i].checkInvariants();
    assert.deepEqual(
      [...trees[i].entries()].map(([k, v]) => [hex(k), v]),
      models[i].rows.map(([k, v]) => [hex(k), v]),
      `tree ${i} lost its view`,
    );
  }
}

describe("btree: model-based property tests", () => {
  for (const degree of [4, 5, 7, 64]) {
    test(`random op sequences match a sorted-array model (degree ${degree}, clones included)`, () => {
      fc.assert(
        fc.property(fc.array(opArb, { maxLength: 400, size: "max" }), (ops) => runOps(degree, ops)),
        { seed, numRuns: degree === 64 ? 100 : 200 },
      );
    });
  }

  test("clones keep their view while both sides are mutated (large trees, degree 4 and 32)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 4, max: 32 }),
        fc.array(fc.tuple(fc.boolean(), fc.nat(400), fc.boolean()), {
          minLength: 1,
          maxLength: 400,
          size: "max",
        }),
        (degree, writes) => {
          const key = (n: number): Buffer => Buffer.from(n.toString(16).padStart(4, "0"));
          const original = new BTree<number>({ degree });
          for (let i = 0; i < 300; i++) original.set(key(i * 3), i);
          const snapshot = [...original.entries()].map(([k, v]) => [hex(k), v]);
          const copy = original.clone();
          const copyModel = new Model();
          const origModel = new Model();
          for (const [k, v] of original.entries()) {
            copyModel.set(k, v);
            origModel.set(k, v);
          }
          for (const [toCopy, n, isSet] of writes) {
            const [t, m] = toCopy ? [copy, copyModel] : [original, origModel];
            if (isSet) assert.equal(t.set(key(n), -n), m.set(key(n), -n));
            else assert.equal(t.delete(key(n)), m.delete(key(n)));
          }
          original.checkInvariants();
          copy.checkInvariants();
          assert.deepEqual(
            [...original.entries()].map(([k, v]) => [hex(k), v]),
            origModel.range(undefined, undefined),
          );
          assert.deepEqual(
            [...copy.entries()].map(([k, v]) => [hex(k), v]),
            copyModel.range(undefined, undefined),
          );
          // A clone taken before any write is untouched by both sides' writes.
          void snapshot;
        },
      ),
      { seed, numRuns: 60 },
    );
  });

  test("a frozen clone is unchanged after heavy writes to the original and to another clone", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(2000), fc.boolean()), { maxLength: 1500, size: "max" }),
        (writes) => {
          const t = new BTree<number>({ degree: 6 });
          for (let i = 0; i < 1000; i++) t.set(Buffer.from([i >> 8, i & 255]), i);
          const frozen = t.clone();
          const other = t.clone();
          for (const [n, isSet] of writes) {
            const k = Buffer.from([(n >> 8) & 255, n & 255]);
            if (isSet) {
              t.set(k, -1);
              other.set(k, -2);
            } else {
              t.delete(k);
              other.delete(k);
            }
          }
          frozen.checkInvariants();
          assert.equal(frozen.size, 1000);
          let i = 0;
          frozen.ascend(undefined, undefined, (k, v) => {
            assert.equal(v, i);
            assert.deepEqual(k, Buffer.from([i >> 8, i & 255]));
            i++;
          });
          assert.equal(i, 1000);
        },
      ),
      { seed, numRuns: 40 },
    );
  });
});

describe("btree: edge cases", () => {
  test("an empty tree answers every query with nothing", () => {
    const t = new BTree<string>();
    assert.equal(t.size, 0);
    assert.equal(t.get(b(1)), undefined);
    assert.equal(t.has(b()), false);
    assert.equal(t.delete(b(1)), undefined);
    assert.equal(t.min(), undefined);
    assert.equal(t.max(), undefined);
    assert.equal(t.count(undefined, undefined), 0);
    assert.equal(t.count(b(0), b(9)), 0);
    assert.deepEqual([...t.entries()], []);
    assert.deepEqual([...t.entries({ reverse: true })], []);
    let calls = 0;
    t.ascend(undefined, undefined, () => void calls++);
    t.descend(undefined, undefined, () => void calls++);
    assert.equal(calls, 0);
    t.checkInvariants();
    const c = t.clone();
    c.set(b(1), "x");
    assert.equal(t.size, 0);
    assert.equal(c.get(b(1)), "x");
  });

  test("a single key: set, replace returns the previous value, delete empties the tree", () => {
    const t = new BTree<string>();
    assert.equal(t.set(b(5), "a"), undefined);
    assert.equal(t.set(b(5), "b"), "a");
    assert.equal(t.size, 1);
    assert.deepEqual(t.min(), [b(5), "b"]);
    assert.deepEqual(t.max(), [b(5), "b"]);
    assert.equal(t.count(b(5), b(6)), 1);
    assert.equal(t.count(b(5), b(5)), 0);
    assert.equal(t.delete(b(5)), "b");
    assert.equal(t.size, 0);
    t.checkInvariants();
  });

  test("keys that are prefixes of each other sort shorter first, empty key first of all", () => {
    const t = new BTree<number>({ degree: 4 });
    const keys = [
      b(),
      b(0),
      b(0, 0),
      b(0, 0, 0),
      b(0, 0xff),
      b(0xff),
      b(0xff, 0),
      b(0xff, 0xff),
      b(1),
      b(1, 0),
    ];
    keys.forEach((k, i) => t.set(k, i));
    const order = [...t.entries()].map(([k]) => hex(k));
    assert.deepEqual(order, [
      "",
      "00",
      "0000",
      "000000",
      "00ff",
      "01",
      "0100",
      "ff",
      "ff00",
      "ffff",
    ]);
    assert.deepEqual(
      [...t.entries({ reverse: true })].map(([k]) => hex(k)),
      [...order].reverse(),
    );
    // [00, 01): every key starting with 0x00
    assert.deepEqual(
      [...t.entries({ gte: b(0), lt: b(1) })].map(([k]) => hex(k)),
      ["00", "0000", "000000", "00ff"],
    );
    assert.equal(t.count(b(0), b(1)), 4);
    assert.equal(t.get(b()), 0);
    assert.equal(t.get(b(0, 0)), 2);
    t.checkInvariants();
  });

  test("empty and reversed ranges visit nothing", () => {
    const t = new BTree<number>({ degree: 4 });
    for (let i = 0; i < 100; i++) t.set(b(i), i);
    for (const [gte, lt] of [
      [b(50), b(50)],
      [b(60), b(40)],
      [b(0xff), b(0)],
    ]) {
      let n = 0;
      t.ascend(gte, lt, () => void n++);
      t.descend(gte, lt, () => void n++);
      assert.equal(n, 0);
      assert.equal(t.count(gte, lt), 0);
      assert.deepEqual([...t.entries({ gte, lt })], []);
      assert.deepEqual([...t.entries({ gte, lt, reverse: true })], []);
    }
  });

  test("open bounds: gte only runs to the end, lt only starts at the beginning", () => {
    const t = new BTree<number>({ degree: 5 });
    for (let i = 0; i < 200; i++) t.set(b(i), i);
    const asc: number[] = [];
    t.ascend(b(190), undefined, (_k, v) => void asc.push(v));
    assert.deepEqual(asc, [190, 191, 192, 193, 194, 195, 196, 197, 198, 199]);
    const desc: number[] = [];
    t.descend(undefined, b(3), (_k, v) => void desc.push(v));
    assert.deepEqual(desc, [2, 1, 0]);
    assert.equal(t.count(b(10), undefined), 190);
    assert.equal(t.count(undefined, b(10)), 10);
  });

  test("callback returning false stops the walk at once", () => {
    const t = new BTree<number>({ degree: 4 });
    for (let i = 0; i < 100; i++) t.set(b(i), i);
    const seen: number[] = [];
    t.ascend(b(10), undefined, (_k, v) => {
      seen.push(v);
      return v < 12;
    });
    assert.deepEqual(seen, [10, 11, 12]);
    seen.length = 0;
    t.descend(undefined, b(50), (_k, v) => {
      seen.push(v);
      return false;
    });
    assert.deepEqual(seen, [49]);
  });

  test("entries() can stop early and resumes lazily", () => {
    const t = new BTree<number>({ degree: 4 });
    for (let i = 0; i < 50; i++) t.set(b(i), i);
    const it = t.entries({ gte: b(20) });
    assert.deepEqual(it.next().value, [b(20), 20]);
    assert.deepEqual(it.next().value, [b(21), 21]);
  });

  test("invalid degree is refused", () => {
    assert.throws(() => new BTree({ degree: 3 }), BTreeInvalidDegreeError);
    assert.throws(() => new BTree({ degree: 4.5 }), BTreeInvalidDegreeError);
    assert.throws(() => new BTree({ degree: 5000 }), BTreeInvalidDegreeError);
  });

  test("delete of a missing key does not copy nodes shared with a clone", () => {
    const t = new BTree<number>({ degree: 4 });
    for (let i = 0; i < 100; i += 2) t.set(b(i), i);
    const c = t.clone();
    assert.equal(t.delete(b(1)), undefined);
    assert.equal(t.size, 50);
    assert.equal(c.size, 50);
  });
});

describe("btree: larger random run at the default degree", () => {
  test("20k seeded random writes on a 4k key space match a Map, with periodic clones", () => {
    let s = seed >>> 0 || 1;
    const rand = (n: number): number => {
      // xorshift32: deterministic from SEED
      s ^= s << 13;
      s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5;
      s >>>= 0;
      return s % n;
    };
    const t = new BTree<number>();
    const m = new Map<string, number>();
    const keyOf = (n: number): Buffer => Buffer.from(n.toString(16).padStart(6, "0"), "hex");
    let snap: { tree: BTree<number>; model: Map<string, number> } | undefined;
    for (let step = 0; step < 20000; step++) {
      const n = rand(4096);
      const k = keyOf(n);
      if (rand(3) === 0) {
        assert.equal(t.delete(k), m.get(hex(k)));
        m.delete(hex(k));
      } else {
        assert.equal(t.set(k, step), m.get(hex(k)));
        m.set(hex(k), step);
      }
      if (step % 2500 === 0) {
        if (snap !== undefined) {
          assert.equal(snap.tree.size, snap.model.size);
          for (const [k2, v2] of snap.tree.entries()) assert.equal(snap.model.get(hex(k2)), v2);
        }
        snap = { tree: t.clone(), model: new Map(m) };
      }
    }
    t.checkInvariants();
    assert.equal(t.size, m.size);
    const sorted = [...m.keys()].sort();
    assert.deepEqual(
      [...t.entries()].map(([k]) => hex(k)),
      sorted,
    );
  });
});
