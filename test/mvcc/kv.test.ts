import { test, describe } from "node:test";
import assert from "node:assert/strict";
import {
  MvccStore,
  MvccCompactedError,
  MvccFutureRevError,
  KeyNotFoundError,
  LeaseNotFoundError,
} from "../../lib/mvcc/index.js";
import {
  Compare_CompareResult as R,
  Compare_CompareTarget as T,
  RangeRequest_SortOrder as Order,
  RangeRequest_SortTarget as Target,
} from "../../lib/proto/gen/etcdserverpb/rpc.js";
import {
  b,
  cmp,
  delReq,
  keysOf,
  opDel,
  opPut,
  opRange,
  opTxn,
  putReq,
  rangeReq,
  storeWithLeases,
  txnReq,
} from "./helpers.js";

/** a=1 (rev 2), b=2 (rev 3), c=3 (rev 4), a=11 (rev 5), d=4 (rev 6) */
function sample(): MvccStore {
  const s = new MvccStore();
  s.put(putReq("a", "1"));
  s.put(putReq("b", "2"));
  s.put(putReq("c", "3"));
  s.put(putReq("a", "11"));
  s.put(putReq("d", "4"));
  return s;
}

describe("revision model", () => {
  test("an empty store is at revision 1 with compactRevision -1 as etcd", () => {
    const s = new MvccStore();
    assert.equal(s.currentRevision, 1);
    assert.equal(s.compactRevision, -1);
    assert.deepEqual(s.range(rangeReq("a")).kvs, []);
  });

  test("put sets create/mod revision and version; delete starts a new generation", () => {
    const s = new MvccStore();
    s.put(putReq("k", "v1"));
    s.put(putReq("k", "v2"));
    let kv = s.range(rangeReq("k")).kvs[0]!;
    assert.deepEqual([kv.createRevision, kv.modRevision, kv.version], [2, 3, 2]);
    s.deleteRange(delReq("k"));
    assert.equal(s.currentRevision, 4);
    s.put(putReq("k", "v3"));
    kv = s.range(rangeReq("k")).kvs[0]!;
    assert.deepEqual([kv.createRevision, kv.modRevision, kv.version], [5, 5, 1]);
  });

  test("a put's stored key and value are copies: mutating the request later changes nothing", () => {
    const s = new MvccStore();
    const req = putReq("k", "value");
    s.put(req);
    (req.value as Buffer).fill(0x41);
    (req.key as Buffer).fill(0x41);
    assert.equal(Buffer.from(s.range(rangeReq("k")).kvs[0]!.value).toString(), "value");
  });
});

describe("range options", () => {
  test("single key when range_end is empty", () => {
    assert.deepEqual(keysOf(sample().range(rangeReq("b")).kvs), ["b"]);
  });

  test("range_end gives [key, range_end) and a prefix range", () => {
    const s = sample();
    s.put(putReq("ab", "x"));
    assert.deepEqual(keysOf(s.range(rangeReq("a", { rangeEnd: b("c") })).kvs), ["a", "ab", "b"]);
    assert.deepEqual(keysOf(s.range(rangeReq("a", { rangeEnd: b("b") })).kvs), ["a", "ab"]);
  });

  test('range_end "\\0" means every key >= key; key "\\0" with it means all keys', () => {
    const s = sample();
    const z = Buffer.from([0]);
    assert.deepEqual(keysOf(s.range(rangeReq("b", { rangeEnd: z })).kvs), ["b", "c", "d"]);
    assert.deepEqual(keysOf(s.range({ ...rangeReq(""), key: z, rangeEnd: z }).kvs), [
      "a",
      "b",
      "c",
      "d",
    ]);
  });

  test("range_end below key returns nothing", () => {
    assert.deepEqual(sample().range(rangeReq("c", { rangeEnd: b("a") })).kvs, []);
  });

  test("limit truncates and sets more=true when keys remain; count is the whole range", () => {
    const s = sample();
    const r = s.range(rangeReq("a", { rangeEnd: b("z"), limit: 2 }));
    assert.deepEqual(keysOf(r.kvs), ["a", "b"]);
    assert.equal(r.more, true);
    assert.equal(r.count, 4);
    const all = s.range(rangeReq("a", { rangeEnd: b("z"), limit: 4 }));
    assert.equal(all.more, false);
    assert.equal(all.kvs.length, 4);
  });

  test("revision reads the past", () => {
    const s = sample();
    const r = s.range(rangeReq("a", { rangeEnd: b("z"), revision: 3 }));
    assert.deepEqual(keysOf(r.kvs), ["a", "b"]);
    assert.equal(Buffer.from(r.kvs[0]!.value).toString(), "1");
    assert.equal(s.range(rangeReq("a", { revision: 1 })).kvs.length, 0);
  });

  test("a future revision throws MvccFutureRevError with etcd's string", () => {
    assert.throws(
      () => sample().range(rangeReq("a", { revision: 7 })),
      (e: unknown) =>
        e instanceof MvccFutureRevError &&
        e.message === "etcdserver: mvcc: required revision is a future revision" &&
        e.code === "ErrFutureRev",
    );
  });

  test("a compacted revision throws MvccCompactedError; the compaction revision itself reads", () => {
    const s = sample();
    s.compact(4);
    assert.throws(
      () => s.range(rangeReq("a", { revision: 3 })),
      (e: unknown) =>
        e instanceof MvccCompactedError &&
        e.message === "etcdserver: mvcc: required revision has been compacted",
    );
    const r = s.range(rangeReq("a", { rangeEnd: b("z"), revision: 4 }));
    assert.deepEqual(keysOf(r.kvs), ["a", "b", "c"]);
  });

  const sortCases: [string, Target, Order, string[]][] = [
    ["key descend", Target.KEY, Order.DESCEND, ["d", "c", "b", "a"]],
    ["key ascend", Target.KEY, Order.ASCEND, ["a", "b", "c", "d"]],
    ["version descend", Target.VERSION, Order.DESCEND, ["a", "b", "c", "d"]],
    ["create ascend", Target.CREATE, Order.ASCEND, ["a", "b", "c", "d"]],
    ["create descend", Target.CREATE, Order.DESCEND, ["d", "c", "b", "a"]],
    ["mod ascend", Target.MOD, Order.ASCEND, ["b", "c", "a", "d"]],
    ["mod descend", Target.MOD, Order.DESCEND, ["d", "a", "c", "b"]],
    ["value ascend", Target.VALUE, Order.ASCEND, ["a", "b", "c", "d"]],
    ["value descend", Target.VALUE, Order.DESCEND, ["d", "c", "b", "a"]],
    ["mod with order NONE sorts ascending", Target.MOD, Order.NONE, ["b", "c", "a", "d"]],
  ];
  for (const [name, sortTarget, sortOrder, want] of sortCases) {
    test(`sort ${name}`, () => {
      const r = sample().range(rangeReq("a", { rangeEnd: b("z"), sortTarget, sortOrder }));
      const got = keysOf(r.kvs);
      if (sortTarget === Target.VERSION) {
        assert.equal(got[0], "a"); // only a has version 2; ties are in any order as etcd
      } else {
        assert.deepEqual(got, want);
      }
    });
  }

  test("sort then limit: limit applies after sorting", () => {
    const r = sample().range(
      rangeReq("a", {
        rangeEnd: b("z"),
        sortTarget: Target.MOD,
        sortOrder: Order.DESCEND,
        limit: 2,
      }),
    );
    assert.deepEqual(keysOf(r.kvs), ["d", "a"]);
    assert.equal(r.more, true);
    assert.equal(r.count, 4);
  });

  test("keys_only drops values", () => {
    const r = sample().range(rangeReq("a", { rangeEnd: b("z"), keysOnly: true }));
    assert.equal(r.kvs.length, 4);
    for (const kv of r.kvs) assert.equal(kv.value.length, 0);
    assert.equal(r.kvs[0]!.modRevision, 5);
  });

  test("count_only returns the count and no kvs", () => {
    const r = sample().range(rangeReq("a", { rangeEnd: b("z"), countOnly: true }));
    assert.equal(r.count, 4);
    assert.deepEqual(r.kvs, []);
  });

  test("min/max mod revision filter", () => {
    const s = sample();
    assert.deepEqual(keysOf(s.range(rangeReq("a", { rangeEnd: b("z"), minModRevision: 4 })).kvs), [
      "a",
      "c",
      "d",
    ]);
    assert.deepEqual(keysOf(s.range(rangeReq("a", { rangeEnd: b("z"), maxModRevision: 4 })).kvs), [
      "b",
      "c",
    ]);
  });

  test("min/max create revision filter; count is before filtering as etcd", () => {
    const s = sample();
    const r = s.range(
      rangeReq("a", { rangeEnd: b("z"), minCreateRevision: 3, maxCreateRevision: 4 }),
    );
    assert.deepEqual(keysOf(r.kvs), ["b", "c"]);
    assert.equal(r.count, 4);
  });

  test("the response header is left for the server", () => {
    assert.equal(sample().range(rangeReq("a")).header, undefined);
  });
});

describe("put options", () => {
  test("prev_kv returns the previous key-value", () => {
    const s = sample();
    const r = s.put(putReq("a", "111", { prevKv: true }));
    assert.equal(Buffer.from(r.prevKv!.value).toString(), "11");
    assert.equal(s.put(putReq("new", "x", { prevKv: true })).prevKv, undefined);
  });

  test("ignore_value keeps the value and bumps the version", () => {
    const s = sample();
    s.put(putReq("a", "", { ignoreValue: true }));
    const kv = s.range(rangeReq("a")).kvs[0]!;
    assert.equal(Buffer.from(kv.value).toString(), "11");
    assert.equal(kv.version, 3);
  });

  test("ignore_value / ignore_lease on a missing key throws KeyNotFoundError and changes nothing", () => {
    const s = sample();
    assert.throws(() => s.put(putReq("zz", "", { ignoreValue: true })), KeyNotFoundError);
    assert.throws(() => s.put(putReq("zz", "v", { ignoreLease: true })), KeyNotFoundError);
    assert.equal(s.currentRevision, 6);
  });

  test("lease: unknown lease throws LeaseNotFoundError; known lease attaches; ignore_lease keeps it", () => {
    const { store, attached } = storeWithLeases([7n, 8n]);
    assert.throws(
      () => store.put(putReq("k", "v", { lease: 9n })),
      (e: unknown) =>
        e instanceof LeaseNotFoundError && e.message === "etcdserver: requested lease not found",
    );
    assert.equal(store.currentRevision, 1);
    store.put(putReq("k", "v", { lease: 7n }));
    assert.deepEqual([...attached.get(7n)!], ["k"]);
    store.put(putReq("k", "v2", { ignoreLease: true }));
    assert.equal(store.range(rangeReq("k")).kvs[0]!.lease, 7n);
    store.put(putReq("k", "v3", { lease: 8n }));
    assert.deepEqual([...attached.get(7n)!], []);
    assert.deepEqual([...attached.get(8n)!], ["k"]);
    store.deleteRange(delReq("k"));
    assert.deepEqual([...attached.get(8n)!], []);
  });

  test("without lease hooks a non-zero lease is unknown", () => {
    assert.throws(() => new MvccStore().put(putReq("k", "v", { lease: 1n })), LeaseNotFoundError);
  });
});

describe("delete range", () => {
  test("deletes a range in one revision with prev_kvs", () => {
    const s = sample();
    const r = s.deleteRange(delReq("a", { rangeEnd: b("c"), prevKv: true }));
    assert.equal(r.deleted, 2);
    assert.deepEqual(keysOf(r.prevKvs), ["a", "b"]);
    assert.equal(s.currentRevision, 7);
    assert.deepEqual(keysOf(s.range(rangeReq("a", { rangeEnd: b("z") })).kvs), ["c", "d"]);
    assert.deepEqual(keysOf(s.range(rangeReq("a", { rangeEnd: b("z"), revision: 6 })).kvs), [
      "a",
      "b",
      "c",
      "d",
    ]);
  });

  test("deleting nothing does not advance the revision", () => {
    const s = sample();
    assert.equal(s.deleteRange(delReq("zz")).deleted, 0);
    assert.equal(s.currentRevision, 6);
  });

  test('range_end "\\0" deletes every key >= key', () => {
    const s = sample();
    assert.equal(s.deleteRange(delReq("b", { rangeEnd: Buffer.from([0]) })).deleted, 3);
    assert.deepEqual(keysOf(s.range(rangeReq("a", { rangeEnd: b("z") })).kvs), ["a"]);
  });

  test("deleteKeys deletes many keys in one revision and counts those that existed", () => {
    const s = sample();
    assert.equal(s.deleteKeys([b("a"), b("c"), b("nope"), b("a")]), 2);
    assert.equal(s.currentRevision, 7);
    assert.deepEqual(keysOf(s.range(rangeReq("a", { rangeEnd: b("z") })).kvs), ["b", "d"]);
  });
});

describe("txn compares", () => {
  // sample(): a: create 2, mod 5, version 2, value "11"
  const cases: [string, T, R, number | string, boolean][] = [
    ["version equal", T.VERSION, R.EQUAL, 2, true],
    ["version not equal", T.VERSION, R.NOT_EQUAL, 2, false],
    ["version greater", T.VERSION, R.GREATER, 1, true],
    ["version less", T.VERSION, R.LESS, 2, false],
    ["create equal", T.CREATE, R.EQUAL, 2, true],
    ["create greater", T.CREATE, R.GREATER, 2, false],
    ["create less", T.CREATE, R.LESS, 3, true],
    ["create not equal", T.CREATE, R.NOT_EQUAL, 3, true],
    ["mod equal", T.MOD, R.EQUAL, 5, true],
    ["mod greater", T.MOD, R.GREATER, 4, true],
    ["mod less", T.MOD, R.LESS, 5, false],
    ["mod not equal", T.MOD, R.NOT_EQUAL, 5, false],
    ["value equal", T.VALUE, R.EQUAL, "11", true],
    ["value greater", T.VALUE, R.GREATER, "10", true],
    ["value less", T.VALUE, R.LESS, "2", true],
    ["value not equal", T.VALUE, R.NOT_EQUAL, "11", false],
    ["lease equal 0", T.LEASE, R.EQUAL, 0, true],
    ["lease greater", T.LEASE, R.GREATER, 0, false],
    ["lease less", T.LEASE, R.LESS, 1, true],
    ["lease not equal", T.LEASE, R.NOT_EQUAL, 5, true],
  ];
  for (const [name, target, result, v, want] of cases) {
    test(`compare ${name} is ${want}`, () => {
      const s = sample();
      const r = s.txn(txnReq({ compare: [cmp("a", target, result, v)] }));
      assert.equal(r.succeeded, want);
    });
  }

  test("a missing key compares as zero, but a value compare on it always fails", () => {
    const s = sample();
    assert.equal(s.txn(txnReq({ compare: [cmp("zz", T.VERSION, R.EQUAL, 0)] })).succeeded, true);
    assert.equal(s.txn(txnReq({ compare: [cmp("zz", T.CREATE, R.EQUAL, 0)] })).succeeded, true);
    assert.equal(s.txn(txnReq({ compare: [cmp("zz", T.VALUE, R.EQUAL, "")] })).succeeded, false);
    assert.equal(
      s.txn(txnReq({ compare: [cmp("zz", T.VALUE, R.NOT_EQUAL, "x")] })).succeeded,
      false,
    );
  });

  test("a compare with range_end must hold for every key in the range", () => {
    const s = sample();
    assert.equal(
      s.txn(txnReq({ compare: [cmp("a", T.VERSION, R.GREATER, 0, "z")] })).succeeded,
      true,
    );
    assert.equal(
      s.txn(txnReq({ compare: [cmp("a", T.VERSION, R.EQUAL, 1, "z")] })).succeeded,
      false,
    );
    assert.equal(
      s.txn(txnReq({ compare: [cmp("b", T.VERSION, R.EQUAL, 1, "z")] })).succeeded,
      true,
    );
    assert.equal(s.txn(txnReq({ compare: [cmp("b", T.MOD, R.LESS, 6, "z")] })).succeeded, false);
  });

  test("a lease compare sees the attached lease", () => {
    const { store } = storeWithLeases([0x694d7b4f7a6b1c2dn]);
    store.put(putReq("k", "v", { lease: 0x694d7b4f7a6b1c2dn }));
    const r = store.txn(txnReq({ compare: [cmp("k", T.LEASE, R.EQUAL, 0x694d7b4f7a6b1c2dn)] }));
    assert.equal(r.succeeded, true);
  });
});

describe("txn ops", () => {
  test("success branch: every op kind in one revision with sub-revisions", () => {
    const s = sample();
    const r = s.txn(
      txnReq({
        compare: [cmp("a", T.VALUE, R.EQUAL, "11")],
        success: [
          opPut("x", "1"),
          opPut("y", "2", { prevKv: true }),
          opDel("b"),
          opRange("a", { rangeEnd: b("z") }),
        ],
        failure: [opPut("f", "1")],
      }),
    );
    assert.equal(r.succeeded, true);
    assert.equal(s.currentRevision, 7);
    assert.equal(r.responses.length, 4);
    const rr = r.responses[3]!.response;
    assert.equal(rr.oneofKind, "responseRange");
    if (rr.oneofKind === "responseRange") {
      assert.deepEqual(keysOf(rr.responseRange.kvs), ["a", "c", "d", "x", "y"]);
      assert.equal(rr.responseRange.header!.revision, 7);
    }
    const x = s.range(rangeReq("x")).kvs[0]!;
    const y = s.range(rangeReq("y")).kvs[0]!;
    assert.equal(x.modRevision, 7);
    assert.equal(y.modRevision, 7);
    assert.equal(s.range(rangeReq("f")).kvs.length, 0);
  });

  test("failure branch runs when a compare fails", () => {
    const s = sample();
    const r = s.txn(
      txnReq({
        compare: [cmp("a", T.VALUE, R.EQUAL, "nope")],
        success: [opPut("s", "1")],
        failure: [opPut("f", "1")],
      }),
    );
    assert.equal(r.succeeded, false);
    assert.deepEqual(keysOf(s.range(rangeReq("a", { rangeEnd: b("z") })).kvs), [
      "a",
      "b",
      "c",
      "d",
      "f",
    ]);
  });

  test("a read-only txn does not advance the revision", () => {
    const s = sample();
    s.txn(txnReq({ success: [opRange("a")] }));
    assert.equal(s.currentRevision, 6);
  });

  test("nested txns: compares see the state before the txn; all writes share one revision", () => {
    const s = sample();
    const r = s.txn(
      txnReq({
        success: [
          opPut("a", "new"),
          opTxn({
            // evaluated before the outer put: a is still "11"
            compare: [cmp("a", T.VALUE, R.EQUAL, "11")],
            success: [opPut("n1", "yes")],
            failure: [opPut("n1", "no")],
          }),
          opTxn({
            compare: [cmp("zz", T.VERSION, R.GREATER, 0)],
            success: [opPut("n2", "s")],
            failure: [opPut("n2", "f")],
          }),
        ],
      }),
    );
    assert.equal(r.succeeded, true);
    const n1 = r.responses[1]!.response;
    assert.ok(n1.oneofKind === "responseTxn" && n1.responseTxn.succeeded === true);
    const n2 = r.responses[2]!.response;
    assert.ok(n2.oneofKind === "responseTxn" && n2.responseTxn.succeeded === false);
    assert.equal(Buffer.from(s.range(rangeReq("n1")).kvs[0]!.value).toString(), "yes");
    assert.equal(Buffer.from(s.range(rangeReq("n2")).kvs[0]!.value).toString(), "f");
    assert.equal(s.currentRevision, 7);
    assert.equal(s.range(rangeReq("n2")).kvs[0]!.modRevision, 7);
  });

  test("a txn whose put fails its lease or ignore check changes nothing", () => {
    const { store } = storeWithLeases([1n]);
    store.put(putReq("k", "v"));
    assert.throws(
      () => store.txn(txnReq({ success: [opPut("a", "1"), opPut("b", "1", { lease: 2n })] })),
      LeaseNotFoundError,
    );
    assert.throws(
      () =>
        store.txn(txnReq({ success: [opPut("a", "1"), opPut("zz", "", { ignoreValue: true })] })),
      KeyNotFoundError,
    );
    assert.throws(
      () =>
        store.txn(
          txnReq({
            success: [opPut("a", "1"), opTxn({ success: [opPut("c", "1", { lease: 3n })] })],
          }),
        ),
      LeaseNotFoundError,
    );
    assert.equal(store.currentRevision, 2);
    assert.equal(store.range(rangeReq("a")).kvs.length, 0);
  });

  test("a txn range at a future or compacted revision fails before any write", () => {
    const s = sample();
    assert.throws(
      () => s.txn(txnReq({ success: [opPut("x", "1"), opRange("a", { revision: 99 })] })),
      MvccFutureRevError,
    );
    s.compact(5);
    assert.throws(
      () => s.txn(txnReq({ success: [opPut("x", "1"), opRange("a", { revision: 3 })] })),
      MvccCompactedError,
    );
    assert.equal(s.range(rangeReq("x")).kvs.length, 0);
  });
});

describe("compaction", () => {
  test("old revisions become unreadable, the latest version is kept, tombstones are removed", () => {
    const s = sample(); // a@2,b@3,c@4,a@5,d@6
    s.deleteRange(delReq("b")); // rev 7
    s.put(putReq("e", "5")); // rev 8
    const before = s.stats();
    s.compact(7);
    assert.equal(s.compactRevision, 7);
    assert.throws(() => s.range(rangeReq("a", { revision: 6 })), MvccCompactedError);
    const r = s.range(rangeReq("a", { rangeEnd: b("z"), revision: 7 }));
    assert.deepEqual(keysOf(r.kvs), ["a", "c", "d"]);
    assert.equal(Buffer.from(r.kvs[0]!.value).toString(), "11");
    const after = s.stats();
    // a@2 dropped, b@3 and its tombstone dropped
    assert.equal(before.revisions - after.revisions, 3);
    assert.equal(after.keys, 4);
    assert.ok(after.approximateBytes < before.approximateBytes);
  });

  test("compacting at or below the compaction point or in the future throws", () => {
    const s = sample();
    s.compact(3);
    assert.throws(() => s.compact(3), MvccCompactedError);
    assert.throws(() => s.compact(2), MvccCompactedError);
    assert.throws(() => s.compact(7), MvccFutureRevError);
    s.compact(6);
    assert.equal(s.compactRevision, 6);
  });

  test("a key deleted before the compaction point leaves the index", () => {
    const s = new MvccStore();
    s.put(putReq("k", "v"));
    s.deleteRange(delReq("k"));
    s.compact(3);
    assert.deepEqual(s.stats(), { keys: 0, revisions: 0, approximateBytes: 0 });
    s.put(putReq("k", "again"));
    assert.equal(s.range(rangeReq("k")).kvs[0]!.createRevision, 4);
  });
});

describe("hashKV", () => {
  test("matches real etcd 3.4.23: empty store and after put a=1, put b=2", () => {
    // etcdctl endpoint hashkv against a fresh etcd 3.4.23: 1084519789 at rev 1,
    // 1827592406 at rev 3 after `put a 1; put b 2`, and the same after `compact 2`.
    const s = new MvccStore();
    assert.deepEqual(s.hashKV(0), { hash: 1084519789, compactRevision: -1, revision: 1 });
    s.put(putReq("a", "1"));
    s.put(putReq("b", "2"));
    assert.equal(s.hashKV(0).hash, 1827592406);
    s.compact(2);
    assert.deepEqual(s.hashKV(0), { hash: 1827592406, compactRevision: 2, revision: 3 });
    assert.throws(() => s.hashKV(2), MvccCompactedError);
    assert.throws(() => s.hashKV(4), MvccFutureRevError);
  });

  test("matches real etcd 3.4.23 with a lease, deletes, a past revision and a compaction", () => {
    // etcdctl against a fresh etcd 3.4.23: put a 1; put b 2; put a 3; del b; lease grant 600;
    // put c 4 --lease=694da2015d8c1809; del a; put a 7; endpoint hashkv [--rev=5]; compact 6;
    // endpoint hashkv.
    const lease = 0x694da2015d8c1809n;
    const { store: s } = storeWithLeases([lease]);
    s.put(putReq("a", "1"));
    s.put(putReq("b", "2"));
    s.put(putReq("a", "3"));
    s.deleteRange(delReq("b"));
    s.put(putReq("c", "4", { lease }));
    s.deleteRange(delReq("a"));
    s.put(putReq("a", "7"));
    assert.equal(s.currentRevision, 8);
    assert.equal(s.hashKV(0).hash, 2818931958);
    assert.equal(s.hashKV(5).hash, 1125682900);
    s.compact(6);
    assert.deepEqual(s.hashKV(0), { hash: 1914963568, compactRevision: 6, revision: 8 });
    assert.equal(s.hashKV(8).hash, 1914963568);
  });

  test("hash at a past revision equals the hash the store had then", () => {
    const s = sample();
    const h4 = new MvccStore();
    h4.put(putReq("a", "1"));
    h4.put(putReq("b", "2"));
    h4.put(putReq("c", "3"));
    assert.equal(s.hashKV(4).hash, h4.hashKV(0).hash);
  });
});

describe("binary keys and values", () => {
  test("every byte value round-trips through put, range, txn value compare and sort", () => {
    const s = new MvccStore();
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const hi = Buffer.from([0xff, 0x00, 0x80]);
    // the request's bytes stay the caller's: the store keeps its own copy (decoded requests are
    // views into transport buffers; returned values are views of the store's, never mutated)
    const wire = Buffer.from(all);
    s.put({ ...putReq("k1", ""), value: wire });
    wire.fill(0);
    s.put({ ...putReq("k2", ""), value: hi });
    s.put({ ...putReq("", ""), key: Buffer.from([0xfe, 0x00]), value: Buffer.from([0x7f]) });
    const got = s.range(rangeReq("k1")).kvs[0]!;
    assert.ok(Buffer.from(got.value).equals(all));
    const eq = cmp("k2", T.VALUE, R.EQUAL, "");
    eq.targetUnion = { oneofKind: "value", value: hi };
    assert.equal(s.txn(txnReq({ compare: [eq] })).succeeded, true);
    const gt = cmp("k2", T.VALUE, R.GREATER, "");
    gt.targetUnion = { oneofKind: "value", value: Buffer.from([0xff, 0x00, 0x7f]) };
    assert.equal(s.txn(txnReq({ compare: [gt] })).succeeded, true);
    const sorted = s.range(
      rangeReq("k", { rangeEnd: b("l"), sortTarget: Target.VALUE, sortOrder: Order.ASCEND }),
    );
    assert.deepEqual(keysOf(sorted.kvs), ["k1", "k2"]);
    const from = s.range({ ...rangeReq(""), key: Buffer.from([0xfe]), rangeEnd: Buffer.from([0]) });
    assert.deepEqual(
      from.kvs.map((kv) => Buffer.from(kv.key).toString("hex")),
      ["fe00"],
    );
  });
});
