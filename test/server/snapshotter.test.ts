// The periodic snapshot never captures state past the local WAL (lib/server/snapshotter.ts): a
// follower applies committed entries while its own write of them is in flight, so a snapshot due
// then waits until the save ends (etcd 3.4's applyAll waits on the raft loop's notifyc).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Snapshotter } from "../../lib/server/snapshotter.js";
import type { DbFileState } from "../../lib/server/db-file.js";

/**
 * A Snapshotter over a fake member: `applied` and `durable` are set by the test; each capture
 * records the applied index and hands over a state the db writer refuses, so the snapshot then
 * fails as with a disk error (logged, nothing written) and only the capture is looked at.
 */
function fixture(o: { dbSizeBytes?: number; walPercentOfDb?: number } = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), "etcd-snapshotter-"));
  mkdirSync(join(dataDir, "member", "snap"), { recursive: true });
  const m = { applied: 0, durable: 0, replayingDb: false, captures: [] as number[] };
  const s = new Snapshotter({
    dataDir,
    snapshotCount: 10,
    maxSnapshots: 5,
    logger: { info() {}, warn() {} },
    startIndex: 0,
    dbSizeBytes: o.dbSizeBytes ?? 0,
    dbSizeInUseBytes: o.dbSizeBytes ?? 0,
    walPercentOfDb: o.walPercentOfDb,
    host: {
      capture: () => {
        m.captures.push(m.applied);
        return { state: {} as DbFileState, term: 1, confState: { voters: [1n] } as never };
      },
      appliedIndex: () => m.applied,
      replayingDb: () => m.replayingDb,
      durableIndex: () => m.durable,
      saveWalSnapshot: async () => {},
      releaseTo: async () => {},
    },
  });
  const cleanup = async () => {
    await s.stop();
    rmSync(dataDir, { recursive: true, force: true });
  };
  return { s, m, cleanup };
}

test("a snapshot due past the durable index captures only once the WAL holds the applied entries", async () => {
  const { s, m, cleanup } = fixture();
  try {
    m.applied = 30;
    m.durable = 25;
    s.maybeTrigger(30);
    assert.deepEqual(m.captures, [], "no capture while entries 26..30 are unwritten");
    m.durable = 28;
    s.durableAdvanced(28);
    assert.deepEqual(m.captures, []);
    m.durable = 30;
    s.durableAdvanced(30);
    assert.deepEqual(m.captures, [30], "captured at once when the save ended");
    s.maybeTrigger(30);
    assert.deepEqual(m.captures, [30], "one snapshot at a time");
  } finally {
    await cleanup();
  }
});

test("a snapshot due within the durable index captures at once", async () => {
  const { s, m, cleanup } = fixture();
  try {
    m.applied = 30;
    m.durable = 40;
    s.maybeTrigger(30);
    assert.deepEqual(m.captures, [30]);
  } finally {
    await cleanup();
  }
});

test("stop releases a snapshot waiting for the WAL without capturing", async () => {
  const { s, m, cleanup } = fixture();
  m.applied = 30;
  m.durable = 20;
  const waiting = s.trigger();
  await cleanup();
  await waiting;
  assert.deepEqual(m.captures, []);
});

// Found by the Raft simulator's member mode (tools/sim, tested in test/raft/sim): a restart from a db ahead of the last
// .snap replays the entries between them; a snapshot captured in that window wrote a
// consistent_index below the db's contents, and a later restart applied those entries twice.
test("a snapshot due while the member replays entries its db holds waits until the replay passes the db", async () => {
  const { s, m, cleanup } = fixture();
  try {
    m.durable = 100;
    m.applied = 30;
    m.replayingDb = true;
    s.maybeTrigger(30);
    assert.deepEqual(m.captures, [], "no capture while the state is ahead of the applied index");
    m.applied = 45;
    m.replayingDb = false;
    s.maybeTrigger(45);
    assert.deepEqual(m.captures, [45], "captured at the first batch after the replay");
  } finally {
    await cleanup();
  }
});

test("on a large db a periodic snapshot also waits for walPercentOfDb of its size in entry bytes", async () => {
  // 25% of the db beyond its first 16 MiB: 100,000 bytes
  const dbSizeBytes = 16 * 1024 * 1024 + 400_000;
  const deferred = fixture({ dbSizeBytes, walPercentOfDb: 25 });
  try {
    deferred.m.applied = deferred.m.durable = 30;
    deferred.s.maybeTrigger(30, 99_999);
    assert.deepEqual(deferred.m.captures, [], "20 entries past snapshotCount, 99,999 bytes: wait");
    deferred.m.applied = deferred.m.durable = 31;
    deferred.s.maybeTrigger(31, 100_000);
    assert.deepEqual(deferred.m.captures, [31], "captured once the bytes reach 25% of the db");
  } finally {
    await deferred.cleanup();
  }
  const capped = fixture({ dbSizeBytes, walPercentOfDb: 25 });
  try {
    capped.m.applied = capped.m.durable = 100_000;
    capped.s.maybeTrigger(100_000, 10);
    assert.deepEqual(capped.m.captures, [], "up to 100,000 entries are deferred");
    capped.m.applied = capped.m.durable = 100_001;
    capped.s.maybeTrigger(100_001, 11);
    assert.deepEqual(capped.m.captures, [100_001], "never past etcd 3.4's 100,000 entries");
  } finally {
    await capped.cleanup();
  }
  for (const o of [
    { dbSizeBytes, walPercentOfDb: 0 },
    { dbSizeBytes: 16 * 1024 * 1024, walPercentOfDb: 25 },
  ]) {
    const f = fixture(o);
    try {
      f.m.applied = f.m.durable = 11;
      f.s.maybeTrigger(11, 1);
      assert.deepEqual(f.m.captures, [11], `every snapshotCount entries with ${JSON.stringify(o)}`);
    } finally {
      await f.cleanup();
    }
  }
});
