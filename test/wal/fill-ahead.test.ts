/**
 * lib/wal's zero-fill ahead of the tail (fillAheadBytes, lib/wal/fill-ahead.ts): the space past
 * the write position is allocated in the background, and no fill ever lands on a record, however
 * the saves, the writes in flight, the blocking path and segment cuts interleave with the fills.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Entry } from "../../lib/proto/gen/raftpb/raft.js";
import { WAL } from "../../lib/wal/index.js";
import { prng, runSeed, tempDataDir } from "./harness.js";

const segmentSizeBytes = 256 * 1024;
const fillAheadBytes = 64 * 1024;

/** Saves of 1-6 entries of 20-4,000 bytes each turn, not awaited; returns the entries saved. */
async function randomSaves(wal: WAL, rnd: () => number, saves: number): Promise<Entry[]> {
  const all: Entry[] = [];
  const pending: Promise<void>[] = [];
  for (let k = 0; k < saves; k++) {
    const batch: Entry[] = [];
    for (let n = 1 + Math.floor(rnd() * 6); n > 0; n--) {
      const index = all.length + 1;
      const data = Buffer.alloc(20 + Math.floor(rnd() * 4000), index & 0xff);
      data.writeUInt32BE(index, 0);
      const e = { type: 0, term: 1, index, data };
      batch.push(e);
      all.push(e);
    }
    pending.push(wal.save({ term: 1, vote: 1n, commit: 0 }, batch));
    if (rnd() < 0.7) await new Promise((r) => setImmediate(r));
  }
  await Promise.all(pending);
  return all;
}

for (const mode of [
  { name: "two writes in flight", opts: { maxWritesInFlight: 2 } },
  { name: "one write at a time", opts: { maxWritesInFlight: 1 } },
  { name: "the blocking path", opts: { maxWritesInFlight: 1, syncWriteMaxEntries: 4 } },
]) {
  test(`fills never land on records (${mode.name}), across segment cuts`, async (t) => {
    const seed = runSeed(`wal fill-ahead ${mode.name}`);
    const rnd = prng(seed);
    const d = tempDataDir();
    t.after(d.cleanup);
    const wal = await WAL.create(d.walDir, Buffer.from("m"), {
      segmentSizeBytes,
      fillAheadBytes,
      maxWalFiles: 0,
      // queued saves merge into one write up to this: small, so there are many writes and cuts
      maxBatchBytes: 32 * 1024,
      ...mode.opts,
    });
    const saved = await randomSaves(wal, rnd, 300);
    const stats = wal.fillAheadStats;
    await wal.close();
    const segments = readdirSync(d.walDir).filter((f) => f.endsWith(".wal"));
    assert.ok(segments.length >= 3, `${segments.length} segments (seed ${seed})`);
    assert.ok(stats.filledBytes > 0, `filled ${stats.filledBytes} (seed ${seed})`);
    const r = await WAL.read(d.walDir);
    assert.equal(r.entries.length, saved.length, `seed ${seed}`);
    for (const [i, e] of r.entries.entries()) {
      assert.equal(e.index, i + 1, `seed ${seed}`);
      assert.deepEqual(Buffer.from(e.data), saved[i]!.data, `entry ${e.index} (seed ${seed})`);
    }
  });
}

test("some WAL writes meet a fill in flight and wait for it", async (t) => {
  // the same workload as above, repeated until the overlap path ran (bounded: 5 rounds)
  let waited = 0;
  for (let round = 0; round < 5 && waited === 0; round++) {
    const d = tempDataDir();
    t.after(d.cleanup);
    const wal = await WAL.create(d.walDir, Buffer.from("m"), { segmentSizeBytes, fillAheadBytes });
    await randomSaves(wal, prng(round + 1), 300);
    waited = wal.fillAheadStats.writesWaited;
    await wal.close();
    const r = await WAL.read(d.walDir);
    assert.ok(r.entries.length > 0);
  }
  assert.ok(waited > 0, "no write met a fill in flight in 5 rounds");
});

test("the tail is allocated ahead of the write position; 0 turns it off", async (t) => {
  for (const ahead of [fillAheadBytes, 0]) {
    const d = tempDataDir();
    t.after(d.cleanup);
    const wal = await WAL.create(d.walDir, Buffer.from("m"), {
      segmentSizeBytes: 4 * 1024 * 1024,
      fillAheadBytes: ahead,
    });
    const data = Buffer.alloc(8 * 1024, 1);
    for (let i = 1; i <= 4; i++)
      await wal.save({ term: 1, vote: 1n, commit: 0 }, [{ type: 0, term: 1, index: i, data }]);
    // the fills run in the background: wait (bounded) until the whole window is allocated
    const tail = join(
      d.walDir,
      readdirSync(d.walDir).find((f) => f.endsWith(".wal"))!,
    );
    const written = wal.stats.bytes;
    const deadline = Date.now() + 5000;
    const allocated = () => statSync(tail).blocks * 512;
    while (ahead > 0 && allocated() < written + ahead && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    const got = allocated();
    await wal.close();
    if (ahead > 0) {
      assert.ok(got >= written + ahead, `allocated ${got} < written ${written} + ${ahead}`);
      assert.ok(wal.fillAheadStats.filledBytes >= ahead - 256 * 1024);
    } else {
      // sparse: only what was written (and its last block) is allocated
      assert.ok(got < written + 16 * 1024, `allocated ${got} with the filler off`);
      assert.equal(wal.fillAheadStats.filledBytes, 0);
    }
  }
});
