/**
 * lib/wal's failpoints (issue 16): each is reached, and drop / error do what the registry says
 * (lib/failpoint/points.ts). A panic at a WAL point is tested with a child process in
 * power-loss.test.ts.
 */
import { test, afterEach } from "node:test";
import assert from "node:assert/strict";
import type { Entry } from "../../lib/proto/gen/raftpb/raft.js";
import { WAL, WalIoError } from "../../lib/wal/index.js";
import {
  clearAllFailpoints,
  failpointCount,
  FailpointInjectedError,
  setFailpoint,
} from "../../lib/failpoint/index.js";
import { tempDataDir } from "./harness.js";

afterEach(() => clearAllFailpoints());

function entries(from: number, n: number, bytes = 100): Entry[] {
  return Array.from({ length: n }, (_, i) => ({
    type: 0,
    term: 1,
    index: from + i,
    data: Buffer.alloc(bytes, (from + i) & 0xff),
  }));
}

for (const syncWriteMaxEntries of [0, 1000]) {
  const mode = syncWriteMaxEntries === 0 ? "async write" : "blocking write";
  test(`each write and sync point is reached (${mode}), in order`, async (t) => {
    const d = tempDataDir();
    t.after(d.cleanup);
    const wal = await WAL.create(d.walDir, Buffer.from("m"), { syncWriteMaxEntries });
    for (const p of ["walBeforeWrite", "walBeforeSync", "walAfterWrite", "walAfterSync"]) {
      setFailpoint(p, "off");
    }
    await wal.save({ term: 1, vote: 1n, commit: 0 }, entries(1, 3));
    for (const p of ["walBeforeWrite", "walBeforeSync", "walAfterWrite", "walAfterSync"]) {
      assert.equal(failpointCount(p), 1, p);
    }
    // a commit-only hardState is written, not synced
    await wal.save({ term: 1, vote: 1n, commit: 3 }, []);
    assert.equal(failpointCount("walBeforeWrite"), 2);
    assert.equal(failpointCount("walBeforeSync"), 1);
    await wal.close();
  });
}

test("walBeforeWrite=drop loses the write while reporting it done; reopen ends before it", async (t) => {
  const d = tempDataDir();
  t.after(d.cleanup);
  const wal = await WAL.create(d.walDir, Buffer.from("m"));
  await wal.save({ term: 1, vote: 1n, commit: 0 }, entries(1, 2));
  setFailpoint("walBeforeWrite", "1*drop");
  await wal.save(undefined, entries(3, 2)); // resolves: a disk that lies
  await wal.save(undefined, entries(5, 2)); // written past a hole of zeros
  await wal.close();
  const r = await WAL.read(d.walDir);
  assert.deepEqual(
    r.entries.map((e) => e.index),
    [1, 2],
  );
  // the hole's zero length word reads as the end of the log (etcd's decoder: a zero frame ends it)
  assert.equal(r.tornTail, null);
});

test("walBeforeWrite / walAfterSync error fails the save with WalIoError and poisons the WAL", async (t) => {
  for (const point of ["walBeforeWrite", "walAfterSync"] as const) {
    const d = tempDataDir();
    t.after(d.cleanup);
    const wal = await WAL.create(d.walDir, Buffer.from("m"));
    setFailpoint(point, 'error("injected")');
    await assert.rejects(
      wal.save({ term: 1, vote: 1n, commit: 0 }, entries(1, 1)),
      (e: unknown) => e instanceof WalIoError && e.cause instanceof FailpointInjectedError,
    );
    clearAllFailpoints();
    await assert.rejects(wal.save(undefined, entries(2, 1)), WalIoError);
    await wal.close();
  }
});

test("segment rollover reaches walBeforeSegmentRename and walAfterSegmentRename; purge reaches walBeforePurge", async (t) => {
  const d = tempDataDir();
  t.after(d.cleanup);
  const wal = await WAL.create(d.walDir, Buffer.from("m"), {
    segmentSizeBytes: 4096,
    maxWalFiles: 1,
  });
  setFailpoint("walBeforeSegmentRename", "off");
  setFailpoint("walAfterSegmentRename", "off");
  setFailpoint("walBeforePurge", "off");
  for (let i = 0; i < 12; i++)
    await wal.save({ term: 1, vote: 1n, commit: 0 }, entries(1 + i * 10, 10));
  assert.ok(failpointCount("walBeforeSegmentRename") >= 2);
  assert.equal(failpointCount("walAfterSegmentRename"), failpointCount("walBeforeSegmentRename"));
  await wal.releaseLockTo(115);
  assert.equal(failpointCount("walBeforePurge"), 1);
  await wal.close();
  const r = await WAL.read(d.walDir, { snapshot: { index: 0, term: 0 } }).catch((e: Error) => e);
  // purged down to one file: reading from the start finds no first segment
  assert.ok(r instanceof Error);
});

test("a slow durable write sends the next small batches through the thread pool until one is fast", async (t) => {
  const d = tempDataDir();
  t.after(d.cleanup);
  const wal = await WAL.create(d.walDir, Buffer.from("m"), {
    syncWriteMaxEntries: 1,
    syncWriteMaxLastSyncMs: 150,
  });
  await wal.save({ term: 1, vote: 1n, commit: 0 }, entries(1, 1));
  assert.equal(wal.stats.blockingWrites, 1, "a single entry on a fast disk: blocking calls");
  // the next durable write takes 300 ms (a busy disk): it blocked, the one after it does not
  setFailpoint("walBeforeSync", "1*sleep(300)");
  await wal.save(undefined, entries(2, 1));
  assert.equal(wal.stats.blockingWrites, 2);
  assert.ok(wal.stats.lastFsyncSeconds >= 0.29, `slow write took ${wal.stats.lastFsyncSeconds} s`);
  await wal.save(undefined, entries(3, 1));
  assert.equal(wal.stats.blockingWrites, 2, "after a slow durable write: asynchronous");
  // that one was fast again (well under 150 ms): the blocking path is back
  assert.ok(wal.stats.lastFsyncSeconds < 0.15, `took ${wal.stats.lastFsyncSeconds} s`);
  await wal.save(undefined, entries(4, 1));
  assert.equal(wal.stats.blockingWrites, 3);
  await wal.close();
  const r = await WAL.open(d.walDir);
  assert.deepEqual(
    r.entries.map((e) => e.index),
    [1, 2, 3, 4],
  );
  await r.wal.close();
});
