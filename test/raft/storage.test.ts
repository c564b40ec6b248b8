import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { ConfState, type Entry, EntryType } from "../../lib/proto/gen/raftpb/raft.js";
import {
  ErrCompacted,
  ErrSnapOutOfDate,
  ErrUnavailable,
  MemoryStorage,
} from "../../lib/raft/index.js";
import { Unstable } from "../../lib/raft/log-unstable.js";
import { Inflights } from "../../lib/raft/tracker/inflights.js";
import { committedIndex, voteResult, VoteResult } from "../../lib/raft/quorum/majority.js";
import { limitSize } from "../../lib/raft/entry-size.js";

const ent = (index: number, term: number, size = 0): Entry => ({
  type: EntryType.EntryNormal,
  index,
  term,
  data: new Uint8Array(size),
});

function storageWith(...ents: Entry[]): MemoryStorage {
  const s = new MemoryStorage();
  s.append(ents);
  return s;
}

describe("MemoryStorage", () => {
  test("term, firstIndex and lastIndex follow the dummy-entry convention", () => {
    const s = storageWith(ent(1, 1), ent(2, 1), ent(3, 2));
    assert.equal(s.firstIndex(), 1);
    assert.equal(s.lastIndex(), 3);
    assert.equal(s.term(0), 0);
    assert.equal(s.term(3), 2);
    assert.throws(() => s.term(4), ErrUnavailable);
  });

  test("entries [lo, hi) honour maxSizeBytes but return at least one entry", () => {
    const s = storageWith(ent(1, 1, 100), ent(2, 1, 100), ent(3, 1, 100));
    assert.equal(s.entries(1, 4, Number.MAX_SAFE_INTEGER).length, 3);
    assert.equal(s.entries(1, 4, 1).length, 1);
    assert.equal(s.entries(1, 4, 240).length, 2);
  });

  test("append truncates a conflicting suffix", () => {
    const s = storageWith(ent(1, 1), ent(2, 1), ent(3, 1));
    s.append([ent(2, 2)]);
    assert.equal(s.lastIndex(), 2);
    assert.equal(s.term(2), 2);
  });

  test("compact drops entries and makes them ErrCompacted", () => {
    const s = storageWith(ent(1, 1), ent(2, 1), ent(3, 2), ent(4, 2));
    s.compact(2);
    assert.equal(s.firstIndex(), 3);
    assert.equal(s.term(2), 1);
    assert.throws(() => s.term(1), ErrCompacted);
    assert.throws(() => s.entries(2, 4, 1000), ErrCompacted);
    assert.throws(() => s.compact(2), ErrCompacted);
  });

  test("createSnapshot and applySnapshot refuse older snapshots", () => {
    const s = storageWith(ent(1, 1), ent(2, 1), ent(3, 2));
    const cs = ConfState.create({ voters: [1n] });
    const snap = s.createSnapshot(2, cs, new Uint8Array([1]));
    assert.equal(snap.metadata?.index, 2);
    assert.equal(snap.metadata?.term, 1);
    assert.throws(() => s.createSnapshot(1, cs, new Uint8Array()), ErrSnapOutOfDate);
    const s2 = new MemoryStorage();
    s2.applySnapshot(snap);
    assert.equal(s2.firstIndex(), 3);
    assert.equal(s2.lastIndex(), 2);
    assert.deepEqual(s2.initialState().confState.voters, [1n]);
    assert.throws(() => s2.applySnapshot(snap), ErrSnapOutOfDate);
  });
});

describe("Unstable", () => {
  test("stableTo drops persisted entries only when the term still matches", () => {
    const u = new Unstable(5);
    u.truncateAndAppend([ent(5, 1), ent(6, 1), ent(7, 1)]);
    u.acceptInProgress();
    assert.equal(u.nextEntries().length, 0);
    u.stableTo(6, 2); // wrong term: ignored
    assert.equal(u.offset, 5);
    u.stableTo(6, 1);
    assert.equal(u.offset, 7);
    assert.equal(u.entries.length, 1);
  });

  test("a conflicting append re-exposes the replaced entries", () => {
    const u = new Unstable(5);
    u.truncateAndAppend([ent(5, 1), ent(6, 1), ent(7, 1)]);
    u.acceptInProgress();
    u.truncateAndAppend([ent(6, 2)]);
    assert.deepEqual(
      u.nextEntries().map((e) => [e.index, e.term]),
      [[6, 2]],
    );
  });
});

describe("Inflights", () => {
  test("fills to maxCount, frees by index, wraps around", () => {
    const f = new Inflights(3, 0);
    f.add(1, 10);
    f.add(2, 10);
    f.add(3, 10);
    assert.ok(f.full());
    f.freeLE(2);
    assert.equal(f.count(), 1);
    f.add(4, 10);
    f.add(5, 10);
    assert.ok(f.full());
    f.freeLE(5);
    assert.equal(f.count(), 0);
    assert.equal(f.totalBytes(), 0);
  });

  test("is full when the byte limit is reached", () => {
    const f = new Inflights(100, 25);
    f.add(1, 10);
    assert.ok(!f.full());
    f.add(2, 20);
    assert.ok(f.full());
    f.freeFirstOne();
    assert.ok(!f.full());
  });
});

describe("quorum", () => {
  test("committed index is the highest index on a majority", () => {
    const m = new Map([
      [1n, 5],
      [2n, 3],
      [3n, 9],
    ]);
    assert.equal(
      committedIndex(new Set([1n, 2n, 3n]), (id) => m.get(id)),
      5,
    );
    assert.equal(
      committedIndex(new Set([1n]), (id) => m.get(id)),
      5,
    );
    assert.equal(
      committedIndex(new Set([1n, 2n, 3n, 4n]), (id) => m.get(id)),
      3,
    );
  });

  test("committed index: the majority's index for every order of up to 7 voters (seeded)", () => {
    const seed = Number(process.env.SEED ?? Date.now() % 1_000_000);
    let x = seed;
    const rand = (n: number) => {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      return x % n;
    };
    for (let round = 0; round < 500; round++) {
      const n = 1 + rand(7);
      const m = new Map<bigint, number>();
      for (let i = 1; i <= n; i++) if (rand(5) > 0) m.set(BigInt(i), rand(10));
      const ids = new Set([...Array(n).keys()].map((i) => BigInt(i + 1)));
      const sorted = [...ids].map((id) => m.get(id) ?? 0).sort((a, b) => b - a);
      const got = committedIndex(ids, (id) => m.get(id));
      assert.equal(got, sorted[n >> 1], `seed ${seed} round ${round}: ${String([...m])}`);
    }
  });

  test("vote result: won, pending, lost", () => {
    const v = new Set([1n, 2n, 3n]);
    assert.equal(
      voteResult(
        v,
        new Map([
          [1n, true],
          [2n, true],
        ]),
      ),
      VoteResult.Won,
    );
    assert.equal(
      voteResult(
        v,
        new Map([
          [1n, true],
          [2n, false],
        ]),
      ),
      VoteResult.Pending,
    );
    assert.equal(
      voteResult(
        v,
        new Map([
          [1n, false],
          [2n, false],
        ]),
      ),
      VoteResult.Lost,
    );
  });

  test("limitSize always keeps the first entry", () => {
    assert.equal(limitSize([ent(1, 1, 1000), ent(2, 1)], 10).length, 1);
  });
});
