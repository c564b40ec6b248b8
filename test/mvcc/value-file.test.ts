import { test } from "node:test";
import assert from "node:assert/strict";
import { MvccStore, type MvccSnapshot, type ValueFile } from "../../lib/mvcc/index.js";
import { BoltFile, BoltFileWriter } from "../../lib/btree/index.js";
import { prng } from "../helpers/server.js";
import {
  RecordLog,
  forgetValueFileCaches,
  maxValueFilePosition,
} from "../../lib/mvcc/record-log.js";
import {
  b,
  createWatch,
  delReq,
  opPut,
  putReq,
  rangeReq,
  TestSink,
  testSeed,
  txnReq,
} from "./helpers.js";

/** A ValueFile over bytes in memory, counting reads; `fail` makes reads throw (an EIO). */
class MemoryValueFile implements ValueFile {
  reads = 0;
  fail = false;
  constructor(readonly bytes: Buffer) {}
  get sizeBytes(): number {
    return this.bytes.length;
  }
  read(out: Uint8Array, at: number, length: number, position: number): void {
    if (this.fail) throw new Error("EIO");
    assert.ok(position + length <= this.bytes.length, "read past the end of the file");
    this.reads++;
    out.set(this.bytes.subarray(position, position + length), at);
  }
}

/**
 * Writes the snapshot's key bucket as a bbolt file (as the snapshotter does) and moves its values;
 * `between` runs after each step of the move (readers in between see some rows moved).
 */
function moveToFile(snap: MvccSnapshot, between: () => void = () => {}): MemoryValueFile {
  snap.recordValuePositions!();
  const w = new BoltFileWriter([
    { name: b("key"), entries: () => snap.records(), cursor: () => snap.cursor!() },
  ]);
  const file = new MemoryValueFile(Buffer.concat([...w.chunks(true)].map((c) => Buffer.from(c))));
  const move = snap.moveValuesTo!(file, 7);
  let r = move.next();
  while (r.done !== true) {
    between();
    r = move.next();
  }
  assert.equal(r.value, true);
  return file;
}

/** Applies `n` random writes to every store (puts of 0-700 B, ignore_value puts, deletes, txns). */
function randomWrites(stores: MvccStore[], next: () => number, n: number): void {
  for (let i = 0; i < n; i++) {
    const key = `k${Math.floor(next() * 40)
      .toString()
      .padStart(2, "0")}`;
    const len = next() < 0.1 ? 0 : Math.floor(next() * 700);
    const value = String.fromCharCode(97 + (i % 26)).repeat(len);
    const op = next();
    for (const s of stores) {
      if (op < 0.6) s.put(putReq(key, value));
      else if (op < 0.7) {
        try {
          s.put(putReq(key, "", { ignoreValue: true }));
        } catch {
          // the key does not exist: the same on every store
        }
      } else if (op < 0.85) s.deleteRange(delReq(key));
      else s.txn(txnReq({ success: [opPut(key, value), opPut(`${key}x`, value.slice(1))] }));
    }
  }
}

/** Every read path agrees between the two stores: ranges at every revision, hashes, snapshot, watch. */
function assertSame(mem: MvccStore, filed: MvccStore): void {
  filed.checkInvariants();
  assert.equal(filed.currentRevision, mem.currentRevision);
  const from = Math.max(1, mem.compactRevision);
  for (let rev = from; rev <= mem.currentRevision; rev++) {
    const req = rangeReq("a", { rangeEnd: b("z"), revision: rev });
    assert.deepEqual(filed.range(req), mem.range(req), `range at ${rev}`);
    if (rev > mem.compactRevision)
      assert.deepEqual(filed.hashKV(rev), mem.hashKV(rev), `hash at ${rev}`);
  }
  const sorted = rangeReq("a", { rangeEnd: b("z"), sortTarget: 4, sortOrder: 1 });
  assert.deepEqual(filed.range(sorted), mem.range(sorted), "sorted by value");
  const enc = (s: MvccStore) =>
    [...s.snapshot().records()].map(([k, v]) => k.toString("hex") + v.toString("hex"));
  assert.deepEqual(enc(filed), enc(mem), "snapshot records");
  const events = (s: MvccStore) => {
    const sink = new TestSink();
    const ws = s.newWatchStream(sink);
    ws.handle(
      createWatch({ key: b("a"), rangeEnd: b("z"), startRevision: from + 1, prevKv: true }),
    );
    for (let i = 0; i < 100 && s.syncWatchers(); i++);
    return sink.events();
  };
  assert.deepEqual(events(filed), events(mem), "watch catch-up");
}

test("values moved to a db file read back the same through every read path, across compactions and generations", () => {
  const seed = testSeed("value-file");
  const next = prng(seed);
  const opts = { valueArenaChunkBytes: 4096 };
  const mem = new MvccStore(opts);
  const filed = new MvccStore(opts);
  randomWrites([mem, filed], next, 400);
  const before = filed.valueMemory().arenaBytes;
  const all = rangeReq("a", { rangeEnd: b("z") });
  const want = mem.range(all);
  let steps = 0;
  const first = moveToFile(filed.snapshot(), () => {
    steps++;
    assert.deepEqual(filed.range(all), want, `a range between steps ${steps} of the move`);
  });
  assert.ok(steps > 10);
  assert.equal(filed.valueMemory().files, 1);
  // the chunks the moved values were in are gone (the one being filled stays)
  assert.ok(
    filed.valueMemory().arenaBytes <= 4096,
    `arena ${filed.valueMemory().arenaBytes} of ${before}`,
  );
  const reads = first.reads;
  assertSame(mem, filed);
  assert.ok(first.reads > reads, "values were read from the file");

  // writes after the move keep their values in memory; ignore_value puts point into the file
  randomWrites([mem, filed], next, 200);
  assertSame(mem, filed);
  // a compaction copies values in the file as references
  const at = mem.currentRevision - 50;
  mem.compact(at);
  filed.compact(at);
  assertSame(mem, filed);
  // a second generation: every value of the first is now in the second
  randomWrites([mem, filed], next, 200);
  const second = moveToFile(filed.snapshot());
  assert.equal(filed.valueMemory().files, 1, "the first file is no longer referenced");
  const firstReads = first.reads;
  assertSame(mem, filed);
  assert.equal(first.reads, firstReads, "nothing reads the first file any more");
  assert.ok(second.reads > 0);
  // a snapshot taken before a move reads the same records after it
  const old = filed.snapshot();
  const oldRecords = [...old.records()].map(([k, v]) => k.toString("hex") + v.toString("hex"));
  moveToFile(filed.snapshot());
  assert.deepEqual(
    [...old.records()].map(([k, v]) => k.toString("hex") + v.toString("hex")),
    oldRecords,
  );
});

test("a failed read of a value file throws: never an empty or wrong value", () => {
  const s = new MvccStore();
  for (let i = 0; i < 100; i++) s.put(putReq(`k${i}`, `value-${i}`.repeat(10)));
  const file = moveToFile(s.snapshot());
  assert.equal(s.range(rangeReq("k7")).kvs[0]!.value.toString(), "value-7".repeat(10));
  file.fail = true;
  // what was read before may still be served from the blocks cached then: start cold
  forgetValueFileCaches();
  assert.throws(() => s.range(rangeReq("k7")), /EIO/);
  assert.throws(() => s.hashKV(0), /EIO/);
  // keys only and counts need no value
  assert.equal(s.range(rangeReq("k", { rangeEnd: b("l"), countOnly: true })).count, 100);
});

test("moveValuesTo moves nothing without a recorded write (a key bucket written inline)", () => {
  const s = new MvccStore();
  s.put(putReq("a", "1"));
  const snap = s.snapshot();
  snap.recordValuePositions!();
  const w = new BoltFileWriter([
    { name: b("key"), entries: () => snap.records(), cursor: () => snap.cursor!() },
  ]);
  for (const _ of w.chunks()); // inline: the entries are not placed in leaves of their own
  const r = snap.moveValuesTo!(new MemoryValueFile(Buffer.alloc(0)), 10).next();
  assert.equal(r.done, true);
  assert.equal(r.value, false);
  assert.equal(s.range(rangeReq("a")).kvs[0]!.value.toString(), "1");
});

test("a restore from a db file leaves the values in it: the same store, nothing copied", () => {
  const seed = testSeed("value-file restore");
  const next = prng(seed);
  const mem = new MvccStore({ valueArenaChunkBytes: 4096 });
  randomWrites([mem], next, 300);
  mem.compact(mem.currentRevision - 100);
  const snap = mem.snapshot();
  const w = new BoltFileWriter([
    { name: b("key"), entries: () => snap.records(), cursor: () => snap.cursor!() },
  ]);
  const file = new MemoryValueFile(Buffer.concat([...w.chunks()]));
  const bucket = BoltFile.open(file.bytes).bucket("key")!;
  const filed = new MvccStore({ valueArenaChunkBytes: 4096 });
  filed.restore({ forEachRaw: (fn) => bucket.forEachEntry(fn) }, mem.compactRevision, file);
  assert.equal(filed.valueMemory().files, 1);
  assert.equal(filed.valueMemory().arenaBytes, 0, "no value was copied into memory");
  assertSame(mem, filed);
  assert.ok(file.reads > 0);
  // and writes go on: new values in memory, compaction keeps the file's as references
  randomWrites([mem, filed], next, 100);
  mem.compact(mem.currentRevision - 20);
  filed.compact(filed.currentRevision - 20);
  assertSame(mem, filed);
});

test("value positions past 4 GiB (up to maxValueFilePosition) read back exactly; past it is refused", () => {
  const log = new RecordLog(4096, 4096);
  const slot = log.keys.add(b("k"));
  // each byte of the file tells its own position (mod 251)
  const byteAt = (position: number) => position % 251;
  const file: ValueFile = {
    sizeBytes: maxValueFilePosition + 1,
    read: (out, at, length, position) => {
      for (let k = 0; k < length; k++) out[at + k] = byteAt(position + k);
    },
  };
  const fileSlot = log.addFile(file);
  const positions = [0, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 5 * 2 ** 32 + 123, maxValueFilePosition - 3];
  for (const [i, p] of positions.entries()) {
    const v = b("xyz!");
    const row = log.append(
      slot,
      log.values.place(v, 0, 4),
      log.values.placedOffset,
      4,
      i + 2,
      0,
      2,
      i + 1,
      0n,
    );
    log.moveValueToFile(row, fileSlot, p);
    assert.deepEqual(
      [...log.value(row)],
      [0, 1, 2, 3].map((k) => byteAt(p + k)),
      `at ${p}`,
    );
  }
  assert.throws(() => log.moveValueToFile(0, fileSlot, maxValueFilePosition + 1), RangeError);
});
