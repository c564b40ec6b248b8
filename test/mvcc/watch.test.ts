import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { MvccStore, WatchStreamOverloadedError } from "../../lib/mvcc/index.js";
import {
  WatchCreateRequest_FilterType as F,
  WatchRequest,
} from "../../lib/proto/gen/etcdserverpb/rpc.js";
import { Event_EventType as E } from "../../lib/proto/gen/mvccpb/kv.js";
import { b, createWatch, delReq, opDel, opPut, putReq, TestSink, txnReq } from "./helpers.js";

const PUT = E.PUT;
const DEL = E.DELETE;
const cancelReq = (watchId: bigint) =>
  WatchRequest.create({ requestUnion: { oneofKind: "cancelRequest", cancelRequest: { watchId } } });
const progressReq = () =>
  WatchRequest.create({ requestUnion: { oneofKind: "progressRequest", progressRequest: {} } });

function setup(opts?: ConstructorParameters<typeof MvccStore>[0]) {
  const store = new MvccStore(opts);
  const sink = new TestSink();
  const ws = store.newWatchStream(sink);
  return { store, sink, ws };
}

describe("watch", () => {
  test("create answers created with an auto-assigned id and the current revision; events follow", () => {
    const { store, sink, ws } = setup();
    store.put(putReq("x", "0"));
    ws.handle(createWatch({ key: b("k") }));
    assert.equal(sink.got.length, 1);
    const c = sink.got[0]!;
    assert.equal(c.created, true);
    assert.equal(c.canceled, false);
    assert.equal(c.watchId, 0n);
    assert.equal(c.header!.revision, 2);
    store.put(putReq("k", "1"));
    store.put(putReq("other", "1"));
    store.deleteRange(delReq("k"));
    assert.deepEqual(sink.events(), [
      { type: PUT, key: "k", rev: 3, value: "1" },
      { type: DEL, key: "k", rev: 5, value: "" },
    ]);
    assert.equal(sink.got[1]!.header!.revision, 3);
    ws.handle(createWatch({ key: b("j") }));
    assert.equal(sink.got.at(-1)!.watchId, 1n);
    assert.equal(store.watcherCount, 2);
  });

  test("range and prefix watchers; range_end \\0 watches every key >= key", () => {
    const { store, sink, ws } = setup();
    ws.handle(createWatch({ key: b("a"), rangeEnd: b("c") }));
    ws.handle(createWatch({ key: b("b"), rangeEnd: Buffer.from([0]) }));
    store.put(putReq("a1", "v"));
    store.put(putReq("c", "v"));
    const byWatcher = sink.got
      .filter((r) => r.events.length > 0)
      .map((r) => [Number(r.watchId), r.events[0]!.kv!.key.toString()]);
    assert.deepEqual(byWatcher, [
      [0, "a1"],
      [1, "c"],
    ]);
  });

  test("a txn's changes arrive in one response at one revision", () => {
    const { store, sink, ws } = setup();
    ws.handle(createWatch({ key: b("a"), rangeEnd: b("z") }));
    store.deleteKeys([]);
    store.put(putReq("a", "1"));
    store.put(putReq("b", "1"));
    store.deleteKeys([b("a"), b("b")]);
    const last = sink.got.at(-1)!;
    assert.equal(last.events.length, 2);
    assert.deepEqual(
      last.events.map((e) => e.kv!.modRevision),
      [4, 4],
    );
  });

  test("start_revision in the past replays history, then continues live", () => {
    const { store, sink, ws } = setup();
    store.put(putReq("k", "1")); // 2
    store.put(putReq("k", "2")); // 3
    store.deleteRange(delReq("k")); // 4
    store.put(putReq("k", "3")); // 5
    ws.handle(createWatch({ key: b("k"), startRevision: 3 }));
    assert.equal(sink.got[0]!.created, true);
    store.put(putReq("k", "4")); // 6
    assert.deepEqual(sink.events(), [
      { type: PUT, key: "k", rev: 3, value: "2" },
      { type: DEL, key: "k", rev: 4, value: "" },
      { type: PUT, key: "k", rev: 5, value: "3" },
      { type: PUT, key: "k", rev: 6, value: "4" },
    ]);
  });

  test("a range watcher replays from the revision log", () => {
    const { store, sink, ws } = setup();
    for (let i = 0; i < 10; i++) store.put(putReq(`p/${i}`, String(i)));
    store.put(putReq("q", "no"));
    ws.handle(createWatch({ key: b("p/"), rangeEnd: b("p0"), startRevision: 5 }));
    assert.deepEqual(
      sink.events().map((e) => e.rev),
      [5, 6, 7, 8, 9, 10, 11],
    );
  });

  test("a compacted start_revision gets created, then compact_revision with canceled", () => {
    const { store, sink, ws } = setup();
    for (let i = 0; i < 5; i++) store.put(putReq("k", String(i)));
    store.compact(4);
    ws.handle(createWatch({ key: b("k"), startRevision: 2 }));
    assert.equal(sink.got.length, 2);
    assert.equal(sink.got[0]!.created, true);
    const r = sink.got[1]!;
    assert.equal(r.compactRevision, 4);
    assert.equal(r.canceled, true);
    assert.equal(r.watchId, 0n);
    assert.equal(store.watcherCount, 0);
    // watching from the compaction revision itself is allowed
    ws.handle(createWatch({ key: b("k"), startRevision: 4 }));
    assert.deepEqual(
      sink.events().map((e) => e.rev),
      [4, 5, 6],
    );
  });

  test("a future start_revision waits for that revision", () => {
    const { store, sink, ws } = setup();
    ws.handle(createWatch({ key: b("k"), startRevision: 4 }));
    store.put(putReq("k", "1")); // 2
    store.put(putReq("k", "2")); // 3
    store.put(putReq("k", "3")); // 4
    assert.deepEqual(
      sink.events().map((e) => e.rev),
      [4],
    );
  });

  test("filters NOPUT and NODELETE", () => {
    const { store, sink, ws } = setup();
    ws.handle(createWatch({ key: b("k"), filters: [F.NOPUT] }));
    ws.handle(createWatch({ key: b("k"), filters: [F.NODELETE] }));
    store.put(putReq("k", "1"));
    store.deleteRange(delReq("k"));
    const got = sink.got
      .filter((r) => r.events.length > 0)
      .map((r) => [Number(r.watchId), r.events[0]!.type]);
    assert.deepEqual(got, [
      [1, PUT],
      [0, DEL],
    ]);
  });

  test("prev_kv on updates and deletes, not on creates", () => {
    const { store, sink, ws } = setup();
    ws.handle(createWatch({ key: b("k"), prevKv: true }));
    store.put(putReq("k", "1"));
    store.put(putReq("k", "2"));
    store.deleteRange(delReq("k"));
    assert.deepEqual(sink.events(), [
      { type: PUT, key: "k", rev: 2, value: "1" },
      { type: PUT, key: "k", rev: 3, value: "2", prev: "1" },
      { type: DEL, key: "k", rev: 4, value: "", prev: "2" },
    ]);
  });

  test("cancel answers canceled and stops events; cancel of an unknown id answers nothing", () => {
    const { store, sink, ws } = setup();
    ws.handle(createWatch({ key: b("k") }));
    ws.handle(cancelReq(0n));
    const c = sink.got.at(-1)!;
    assert.equal(c.canceled, true);
    assert.equal(c.watchId, 0n);
    const n = sink.got.length;
    ws.handle(cancelReq(42n));
    store.put(putReq("k", "1"));
    assert.equal(sink.got.length, n);
    assert.equal(store.watcherCount, 0);
  });

  test("bad creates are answered created+canceled with watch_id -1 and etcd's reason", () => {
    const { sink, ws } = setup({ maxWatchersPerStream: 2 });
    ws.handle(createWatch({ key: b("b"), rangeEnd: b("a") }));
    assert.equal(sink.got[0]!.cancelReason, "mvcc: watcher range is empty");
    ws.handle(createWatch({ key: b("k"), watchId: 7n }));
    assert.equal(sink.got[1]!.watchId, 7n);
    ws.handle(createWatch({ key: b("k"), watchId: 7n }));
    const dup = sink.got[2]!;
    assert.deepEqual([dup.watchId, dup.created, dup.canceled], [-1n, true, true]);
    assert.equal(dup.cancelReason, "mvcc: duplicate watch ID provided on the WatchStream");
    ws.handle(createWatch({ key: b("k") }));
    ws.handle(createWatch({ key: b("k") }));
    assert.equal(sink.got[4]!.canceled, true);
    assert.match(sink.got[4]!.cancelReason, /too many watchers/);
  });

  test("an empty key watches from \\0", () => {
    const { store, sink, ws } = setup();
    ws.handle(createWatch({ key: Buffer.alloc(0), rangeEnd: Buffer.from([0]) }));
    store.put(putReq("anything", "1"));
    assert.equal(sink.events().length, 1);
  });

  test("progress request answers watch_id -1 with the current revision", () => {
    const { store, sink, ws } = setup();
    store.put(putReq("a", "1"));
    ws.handle(progressReq());
    const r = sink.got[0]!;
    assert.equal(r.watchId, -1n);
    assert.equal(r.header!.revision, 2);
    assert.equal(r.events.length, 0);
  });

  test("progressNotify reaches progress_notify watchers that got no events since the last tick", () => {
    const { store, sink, ws } = setup();
    ws.handle(createWatch({ key: b("k"), progressNotify: true }));
    ws.handle(createWatch({ key: b("j") }));
    store.progressNotify();
    assert.equal(sink.got.length, 3);
    assert.equal(sink.got[2]!.watchId, 0n);
    store.put(putReq("k", "1"));
    store.progressNotify(); // elided: events went out since the last tick
    assert.equal(sink.got.length, 4);
    store.progressNotify();
    assert.equal(sink.got.length, 5);
    assert.equal(sink.got[4]!.header!.revision, 2);
  });

  test("a slow sink: nothing buffered while full, every event delivered in order after resume", () => {
    const { store, sink, ws } = setup({ maxEventsPerWatchResponse: 7 });
    ws.handle(createWatch({ key: b("k"), rangeEnd: b("l") }));
    ws.handle(createWatch({ key: b("k5") }));
    sink.full = true;
    for (let i = 0; i < 100; i++) store.put(putReq(`k${i % 10}`, String(i)));
    // the first send was taken (it returned false); nothing more while full
    assert.equal(sink.got.length, 3);
    sink.full = false;
    ws.resume();
    const range = sink.got
      .filter((r) => r.watchId === 0n)
      .flatMap((r) => r.events.map((e) => e.kv!.modRevision));
    assert.deepEqual(
      range,
      Array.from({ length: 100 }, (_, i) => i + 2),
    );
    const single = sink.got
      .filter((r) => r.watchId === 1n)
      .flatMap((r) => r.events.map((e) => e.kv!.modRevision));
    assert.deepEqual(
      single,
      Array.from({ length: 10 }, (_, i) => 5 + 2 + i * 10),
    );
    for (const r of sink.got) {
      const revs = new Set(r.events.map((e) => e.kv!.modRevision));
      assert.ok(
        revs.size <= 7,
        "a catch-up response holds at most maxEventsPerWatchResponse revisions",
      );
    }
    // live again
    store.put(putReq("k5", "live"));
    assert.equal(sink.got.at(-1)!.events[0]!.kv!.modRevision, 102);
  });

  test("a slow sink that stays full only gets what it takes, one response per resume", () => {
    const { store, sink, ws } = setup({ maxEventsPerWatchResponse: 10 });
    ws.handle(createWatch({ key: b("k") }));
    sink.full = true;
    for (let i = 0; i < 50; i++) store.put(putReq("k", String(i)));
    let rounds = 0;
    while (rounds < 100) {
      const before = sink.got.length;
      ws.resume();
      if (sink.got.length === before) break;
      rounds++;
    }
    const revs = sink.events().map((e) => e.rev);
    assert.deepEqual(
      revs,
      Array.from({ length: 50 }, (_, i) => i + 2),
    );
    assert.ok(rounds >= 5);
  });

  test("a slow watcher whose history was compacted meanwhile gets the compacted response", () => {
    const { store, sink, ws } = setup();
    ws.handle(createWatch({ key: b("k") }));
    sink.full = true;
    store.put(putReq("k", "1")); // 2, taken
    store.put(putReq("k", "2")); // 3, not sent: watcher unsynced at 3
    store.put(putReq("k", "3")); // 4
    store.compact(4);
    sink.full = false;
    ws.resume();
    const last = sink.got.at(-1)!;
    assert.equal(last.compactRevision, 4);
    assert.equal(last.canceled, true);
  });

  test("deletes at exactly the compaction revision still reach a watcher catching up from it", () => {
    const seen = (watch: Record<string, unknown>) => {
      const { store, sink, ws } = setup();
      ws.handle(createWatch(watch));
      sink.full = true;
      store.txn(txnReq({ success: [opPut("a", "1"), opPut("b", "1")] })); // 2, taken
      store.txn(txnReq({ success: [opDel("b"), opPut("c", "1"), opDel("a")] })); // 3, unsynced at 3
      store.compact(3); // etcd drops the tombstones at 3 from its history
      sink.full = false;
      for (let i = 0; i < 10 && store.syncWatchers(); i++);
      ws.resume();
      assert.ok(sink.got.every((r) => r.compactRevision === 0 && !r.canceled));
      return sink.got
        .flatMap((r) => r.events)
        .map((e) => [e.type, e.kv!.key.toString(), e.kv!.modRevision]);
    };
    assert.deepEqual(seen({ key: b("a"), rangeEnd: b("z") }), [
      [PUT, "a", 2],
      [PUT, "b", 2],
      [DEL, "b", 3], // sub 0
      [PUT, "c", 3], // sub 1
      [DEL, "a", 3], // sub 2
    ]);
    assert.deepEqual(seen({ key: b("a") }), [
      [PUT, "a", 2],
      [DEL, "a", 3],
    ]);
    // a new watch from the compaction revision gets them too; one from below it is compacted
    const late = setup();
    late.store.put(putReq("x", "1")); // 2
    late.store.deleteRange(delReq("x")); // 3
    late.store.put(putReq("y", "1")); // 4
    late.store.deleteRange(delReq("y")); // 5
    late.store.put(putReq("y", "2")); // 6: y lives again after the compaction revision
    late.store.compact(5);
    late.ws.handle(createWatch({ key: b("x"), rangeEnd: b("z"), startRevision: 5 }));
    late.ws.handle(createWatch({ key: b("x"), startRevision: 2 }));
    late.ws.handle(createWatch({ key: b("y"), startRevision: 5 }));
    for (let i = 0; i < 10 && late.store.syncWatchers(); i++);
    const events = (id: bigint) =>
      late.sink.got
        .filter((r) => r.watchId === id)
        .flatMap((r) => r.events)
        .map((e) => [e.type, e.kv!.key.toString(), e.kv!.modRevision]);
    assert.deepEqual(events(0n), [
      [DEL, "y", 5],
      [PUT, "y", 6],
    ]);
    assert.deepEqual(events(2n), [
      [DEL, "y", 5],
      [PUT, "y", 6],
    ]);
    const second = late.sink.got.find((r) => r.watchId === 1n && r.compactRevision > 0);
    assert.equal(second?.compactRevision, 5);
  });

  test("control responses wait while the sink is full, in order, and are bounded", () => {
    const { sink, ws } = setup({ maxPendingResponsesPerStream: 3 });
    sink.full = true;
    ws.handle(createWatch({ key: b("a") })); // sent (taken) -> paused
    ws.handle(createWatch({ key: b("b") }));
    ws.handle(progressReq());
    ws.handle(progressReq()); // coalesced
    ws.handle(cancelReq(0n));
    assert.equal(sink.got.length, 1);
    // three responses wait (created 1, one coalesced progress, canceled 0): the next overflows
    assert.throws(() => ws.handle(createWatch({ key: b("c") })), WatchStreamOverloadedError);
    sink.full = false;
    ws.resume();
    const kinds = sink.got.map((r) =>
      r.created ? `created ${r.watchId}` : r.canceled ? `canceled ${r.watchId}` : `progress`,
    );
    assert.deepEqual(kinds, ["created 0", "created 1", "progress", "canceled 0"]);
  });

  test("fragment splits a large response under maxRequestBytes, the last part unflagged", () => {
    const { store, sink, ws } = setup({ maxRequestBytes: 1000 });
    ws.handle(createWatch({ key: b("a"), rangeEnd: b("z"), fragment: true }));
    ws.handle(createWatch({ key: b("a"), rangeEnd: b("z") }));
    for (let i = 0; i < 10; i++) store.put(putReq(`k${i}`, "x".repeat(300)));
    ws.handle(createWatch({ key: b("a"), rangeEnd: b("z"), startRevision: 1, fragment: true }));
    const parts = sink.got.filter((r) => r.watchId === 2n && r.events.length > 0);
    assert.ok(parts.length >= 4, `got ${parts.length} fragments`);
    assert.deepEqual(
      parts.map((p) => p.fragment),
      [...parts.slice(1).map(() => true), false],
    );
    assert.equal(parts.flatMap((p) => p.events).length, 10);
    for (const p of parts.slice(0, -1)) assert.ok(p.events.length >= 1);
    // the unfragmented watcher got single-event responses live
    assert.ok(sink.got.filter((r) => r.watchId === 1n).every((r) => !r.fragment));
  });

  test("close removes every watcher; later requests are ignored", () => {
    const { store, sink, ws } = setup();
    ws.handle(createWatch({ key: b("a") }));
    ws.handle(createWatch({ key: b("b"), startRevision: 1 }));
    ws.close();
    assert.equal(store.watcherCount, 0);
    const n = sink.got.length;
    ws.handle(createWatch({ key: b("a") }));
    store.put(putReq("a", "1"));
    assert.equal(sink.got.length, n);
  });
});

test("a sink that throws closes its own stream only; other streams still hear the write", () => {
  const store = new MvccStore();
  const good = new TestSink();
  const bad = store.newWatchStream({
    send: (r) => {
      if (r.events.length > 0) throw new Error("broken transport");
      return true;
    },
  });
  const ok = store.newWatchStream(good);
  bad.handle(createWatch({ key: b("k") }));
  ok.handle(createWatch({ key: b("k") }));
  store.put(putReq("k", "1"));
  assert.equal(good.events().length, 1);
  assert.equal(store.watcherCount, 1);
  store.put(putReq("k", "2"));
  assert.equal(good.events().length, 2);
});

test("catch-up is bounded per call; syncWatchers() and later writes continue it", () => {
  const store = new MvccStore({ maxEventsPerWatchResponse: 2, maxSyncStepsPerCall: 3 });
  for (let i = 0; i < 20; i++) store.put(putReq("k", String(i))); // revs 2..21
  const sink = new TestSink();
  const ws = store.newWatchStream(sink);
  ws.handle(createWatch({ key: b("k"), startRevision: 2 }));
  assert.equal(sink.events().length, 6);
  assert.equal(store.syncWatchers(), true);
  assert.equal(sink.events().length, 8);
  store.put(putReq("other", "x")); // a write runs one round too
  assert.equal(sink.events().length, 10);
  for (let i = 0; i < 100 && store.syncWatchers(); i++);
  assert.deepEqual(
    sink.events().map((e) => e.rev),
    Array.from({ length: 20 }, (_, i) => i + 2),
  );
  store.put(putReq("k", "live"));
  assert.equal(sink.events().at(-1)!.rev, 23);
});

test("a progress request waits until every watcher of the stream caught up (etcd #15220)", () => {
  // found by etcd-ts-util torture --members 3: a member that caught up by snapshot answered a
  // progress request with its new revision before its resumed watch had the events up to it
  const store = new MvccStore({ maxEventsPerWatchResponse: 2, maxSyncStepsPerCall: 3 });
  for (let i = 0; i < 20; i++) store.put(putReq("k", String(i))); // revs 2..21
  const sink = new TestSink();
  const ws = store.newWatchStream(sink);
  ws.handle(createWatch({ key: b("k"), startRevision: 2 }));
  ws.handle(progressReq()); // one more catch-up call; still unsynced: no answer yet
  const isProgress = (r: { watchId: bigint; created: boolean }) => r.watchId === -1n && !r.created;
  assert.equal(sink.got.filter(isProgress).length, 0);
  for (let i = 0; i < 100 && store.syncWatchers(); i++);
  const at = sink.got.findIndex(isProgress);
  assert.ok(at > 0, "answered once synced");
  assert.equal(sink.got[at]!.header!.revision, 21);
  assert.deepEqual(
    sink.got.slice(0, at).flatMap((r) => r.events.map((e) => e.kv!.modRevision)),
    Array.from({ length: 20 }, (_, i) => i + 2),
    "every event up to the progress revision came before it",
  );
  assert.equal(sink.got.filter(isProgress).length, 1);
});

test("a progress request is answered when a catching-up watcher syncs with no event to send (etcd #17507)", () => {
  const store = new MvccStore({ maxEventsPerWatchResponse: 2, maxSyncStepsPerCall: 1 });
  for (let i = 0; i < 10; i++) store.put(putReq("k", String(i))); // revs 2..11, puts only
  const sink = new TestSink();
  const ws = store.newWatchStream(sink);
  ws.handle(createWatch({ key: b("k"), startRevision: 2, filters: [F.NOPUT] }));
  ws.handle(progressReq());
  for (let i = 0; i < 100 && store.syncWatchers(); i++);
  const progress = sink.got.filter((r) => r.watchId === -1n && !r.created);
  assert.equal(progress.length, 1);
  assert.equal(progress[0]!.header!.revision, 11);
  assert.equal(sink.events().length, 0);
});

test("a sink that throws on the created response leaves no watcher behind", () => {
  const store = new MvccStore();
  const ws = store.newWatchStream({
    send: () => {
      throw new Error("broken transport");
    },
  });
  ws.handle(createWatch({ key: b("k") }));
  ws.handle(createWatch({ key: b("k"), startRevision: 1 }));
  assert.equal(store.watcherCount, 0);
  store.put(putReq("k", "1"));
});

test("a key with a history longer than the chain walk (4096 records) catches up whole and in order, with prev_kv", () => {
  const { store, sink, ws } = setup();
  const n = 4096 + 500;
  for (let i = 0; i < n; i++) {
    store.put(putReq("hot", String(i)));
    if (i % 3 === 0) store.put(putReq(`cold${i}`, "x"));
  }
  // from revision 2: every record of "hot" is wanted, so the catch-up reads the log forward
  ws.handle(createWatch({ key: b("hot"), startRevision: 2, prevKv: true }));
  for (let i = 0; i < 20 && store.syncWatchers(); i++);
  const events = sink.events();
  assert.equal(events.length, n);
  for (let i = 0; i < n; i++) {
    assert.equal(events[i]!.value, String(i));
    assert.equal(events[i]!.prev, i === 0 ? undefined : String(i - 1));
    if (i > 0) assert.ok(events[i]!.rev > events[i - 1]!.rev);
  }
  store.checkInvariants();
});
