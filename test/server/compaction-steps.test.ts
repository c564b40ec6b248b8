// A compaction applied through raft is logical at once and physical in steps (issue 13: at 100k
// keys the one-piece copy blocked the event loop 110-180 ms, the puts' longest stall in the
// defragment benchmark). In-process member: puts go on while a compaction of 20k keys runs; reads
// below the revision fail as soon as the Compact call answers; Compact with physical answers once
// the store dropped the compacted records; the event loop's longest gap is printed; a db written
// right after a compaction and a restart from it give the same HashKV.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { EtcdServer, defaultConfig, type ServerConfig } from "../../lib/server/index.js";
import { RangeRequest } from "../../lib/proto/gen/etcdserverpb/rpc.js";
import { createDbFileWriter, parseEtcdDbFile } from "../../lib/server/db-file.js";
import { MvccStore } from "../../lib/mvcc/index.js";

const KEYS = 20_000;
const value = Buffer.alloc(100, 0x61);

function config(dataDir: string): ServerConfig {
  const peer = "http://127.0.0.1:1";
  return {
    ...defaultConfig(),
    name: "cs",
    dataDir,
    initialCluster: `cs=${peer}`,
    listenPeerUrls: [peer],
    initialAdvertisePeerUrls: [peer],
    snapshotCount: 1_000_000,
  };
}

function put(s: EtcdServer, i: number): Promise<unknown> {
  return s.put({
    key: Buffer.from(`k/${String(i % KEYS).padStart(6, "0")}`),
    value,
    lease: 0n,
    prevKv: false,
    ignoreValue: false,
    ignoreLease: false,
  });
}

describe("stepped compaction in a member", { timeout: 120_000 }, () => {
  let dir: string;
  let s: EtcdServer;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "compaction-steps-"));
    s = await EtcdServer.start({ config: config(dir), logger: pino({ level: "warn" }) });
  });
  after(async () => {
    await s?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("puts go on while a compaction runs; physical waits for it; a restart hashes the same", async () => {
    for (let i = 0; i < 2 * KEYS; i += 500) {
      await Promise.all(Array.from({ length: 500 }, (_, j) => put(s, i + j)));
    }
    let writing = true;
    let n = 0;
    const writers = Array.from({ length: 16 }, async () => {
      while (writing && n < 1_000_000) await put(s, n++);
    });
    let last = performance.now();
    let longestGapMs = 0;
    const monitor = setInterval(() => {
      const now = performance.now();
      longestGapMs = Math.max(longestGapMs, now - last);
      last = now;
    }, 2);
    try {
      const rev = s.store.currentRevision;
      await s.compact({ revision: rev, physical: false });
      // the logical part is done: reads below fail at once, whatever the physical part's state
      await assert.rejects(
        s.range(RangeRequest.create({ key: Buffer.from("k/"), revision: rev - 1 })),
        /required revision has been compacted/,
      );
      const rev2 = s.store.currentRevision;
      assert.ok(rev2 > rev, "puts went on");
      await s.compact({ revision: rev2, physical: true });
      clearInterval(monitor);
      assert.equal(s.store.compactionPending, false, "physical answers once the copy is done");
      s.store.checkInvariants();
      // each key's newest record at or below rev2, and the records written since
      assert.ok(s.store.stats().revisions <= KEYS + s.store.currentRevision - rev2);
    } finally {
      writing = false;
      await Promise.all(writers);
      clearInterval(monitor);
    }
    console.log(
      `# longest event loop gap while puts and two compactions ran (a lone voter's blocking WAL writes included): ${longestGapMs.toFixed(1)} ms`,
    );

    // a db captured while a compaction's physical part runs holds records it drops: its meta says
    // so (finishedCompactRev below scheduledCompactRev), and loading it compacts again
    const rev3 = s.store.currentRevision;
    await s.compact({ revision: rev3, physical: false });
    assert.equal(s.store.compactionPending, true, "20k keys take many steps");
    const db = parseEtcdDbFile(Buffer.concat([...createDbFileWriter(s).chunks()]));
    assert.equal(db.scheduledCompactRevision, rev3);
    assert.ok(db.compactRevision < rev3, `finished ${db.compactRevision}`);
    const loaded = new MvccStore();
    loaded.restore(db.keyRecords(), db.compactRevision);
    loaded.compact(db.scheduledCompactRevision);
    loaded.checkInvariants();
    assert.deepEqual(loaded.hashKV(0), s.store.hashKV(0));

    await s.defragment();
    const want = s.hashKV(0);
    await s.stop();
    s = await EtcdServer.start({ config: config(dir), logger: pino({ level: "warn" }) });
    const got = s.hashKV(0);
    assert.equal(got.hash, want.hash);
    assert.equal(got.compactRevision, want.compactRevision);
    assert.equal(s.store.compactionPending, false);
    s.store.checkInvariants();
  });

  test("a member stopping during a compaction drops it and settles a physical Compact waiting for it", async () => {
    for (let i = 0; i < KEYS; i += 500) {
      await Promise.all(Array.from({ length: 500 }, (_, j) => put(s, i + j)));
    }
    const rev = s.store.currentRevision;
    await put(s, 0);
    await s.compact({ revision: rev, physical: false });
    // the Compact answers in the turn that applied it, before any step of the physical part
    assert.equal(s.store.compactionPending, true, "40k records take many steps");
    // a second compaction whose caller waits for the physical part; the member stops at once (the
    // proposal may fail as stopped, or apply and wait): it must settle either way
    const waiting = s.compact({ revision: rev + 1, physical: true }).then(
      () => "answered",
      (err: Error) => err.message,
    );
    await s.stop();
    assert.equal(s.store.compactionPending, false);
    const settled = await Promise.race([
      waiting,
      new Promise((r) => setTimeout(() => r("still waiting"), 5000).unref()),
    ]);
    assert.notEqual(settled, "still waiting");
    console.log(`# the physical Compact waiting when the member stopped: ${String(settled)}`);
  });
});
