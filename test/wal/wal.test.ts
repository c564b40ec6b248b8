import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { closeSync, readdirSync, readlinkSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  WAL,
  WalClosedError,
  WalExistsError,
  WalInvalidArgumentError,
  WalIoError,
  WalSnapshotMismatchError,
  WalSnapshotNotFoundError,
} from "../../lib/wal/index.js";
import { captureLogger, entry, hardState, listRecords, plain, tempDataDir } from "./harness.js";

describe("WAL round trip", () => {
  test("create, save many batches, close, open returns the same metadata, hardState and entries", async () => {
    const t = tempDataDir();
    try {
      const meta = Buffer.from("metadata-bytes");
      const wal = await WAL.create(t.walDir, meta);
      const all = [];
      let index = 0;
      for (let b = 0; b < 50; b++) {
        const es = [];
        for (let k = 0; k < (b % 7) + 1; k++) es.push(entry(++index, 3, 10 + ((b * 13 + k) % 300)));
        all.push(...es);
        await wal.save(hardState(3, 2n, index - 1), es);
      }
      assert.equal(wal.stats.entries, index);
      await wal.close();
      const r = await WAL.open(t.walDir);
      assert.deepEqual(Buffer.from(r.metadata), meta);
      assert.deepEqual(r.hardState, hardState(3, 2n, index - 1));
      assert.deepEqual(plain(r.entries), plain(all));
      assert.deepEqual(r.snapshot, { index: 0, term: 0 });
      await r.wal.close();
    } finally {
      t.cleanup();
    }
  });

  test("a new WAL holds crc 0, metadata and snapshot {0,0} in 0000000000000000-0000000000000000.wal, preallocated", async () => {
    const t = tempDataDir();
    try {
      const wal = await WAL.create(t.walDir, Buffer.from("m"), { segmentSizeBytes: 8192 });
      await wal.close();
      assert.deepEqual(readdirSync(t.walDir), ["0000000000000000-0000000000000000.wal"]);
      const p = join(t.walDir, "0000000000000000-0000000000000000.wal");
      assert.equal(statSync(p).size, 8192);
      const recs = await listRecords(p);
      assert.deepEqual(
        recs.map((r) => r.type),
        [4, 1, 5],
      );
      assert.equal(recs[0]!.crc, 0);
      assert.ok(WAL.exists(t.walDir));
      await assert.rejects(WAL.create(t.walDir, Buffer.from("m")), WalExistsError);
    } finally {
      t.cleanup();
    }
  });

  test("later entries at an index override the log from there on (raft truncation)", async () => {
    const t = tempDataDir();
    try {
      const wal = await WAL.create(t.walDir, Buffer.from("m"));
      await wal.save(hardState(1, 1n, 0), [entry(1, 1), entry(2, 1), entry(3, 1), entry(4, 1)]);
      await wal.save(hardState(2, 2n, 1), [entry(3, 2), entry(4, 2)]);
      await wal.save(undefined, [entry(5, 2)]);
      await wal.close();
      const r = await WAL.open(t.walDir);
      assert.deepEqual(
        r.entries.map((e) => [e.index, e.term]),
        [
          [1, 1],
          [2, 1],
          [3, 2],
          [4, 2],
          [5, 2],
        ],
      );
      await r.wal.close();
    } finally {
      t.cleanup();
    }
  });
});

describe("segments", () => {
  test("small segments are cut with crc, metadata and hardState at their head, named seq-(lastIndex+1), and reopen", async () => {
    const t = tempDataDir();
    const log = captureLogger();
    try {
      const opts = { segmentSizeBytes: 2048, logger: log };
      const wal = await WAL.create(t.walDir, Buffer.from("meta"), opts);
      const all = [];
      for (let i = 1; i <= 120; i++) {
        const e = entry(i, 1, 100);
        all.push(e);
        await wal.save(hardState(1, 1n, i - 1), [e]);
      }
      await wal.close();
      const names = readdirSync(t.walDir).sort();
      assert.ok(names.length >= 6, `expected several segments, got ${names}`);
      assert.ok(
        names.every((n) => /^[0-9a-f]{16}-[0-9a-f]{16}\.wal$/.test(n)),
        `no tmp files left: ${names}`,
      );
      for (let s = 1; s < names.length; s++) {
        assert.equal(parseInt(names[s]!.slice(0, 16), 16), s);
        const firstIndex = parseInt(names[s]!.slice(17, 33), 16);
        const recs = await listRecords(join(t.walDir, names[s]!));
        assert.deepEqual(
          recs.slice(0, 3).map((r) => r.type),
          [4, 1, 3],
        );
        // The segment's name promises the index of its first entry.
        const firstEntry = recs.find((r) => r.type === 2);
        if (firstEntry !== undefined) {
          const { decodeEntry } = await import("../../lib/wal/decoder.js");
          assert.equal(decodeEntry(firstEntry.data).index, firstIndex);
        }
      }
      assert.ok(log.lines.some((l) => l.msg.includes("new WAL segment")));
      const r = await WAL.open(t.walDir, opts);
      assert.deepEqual(plain(r.entries), plain(all));
      assert.deepEqual(r.hardState, hardState(1, 1n, 119));
      // Appending continues the CRC chain across the reopened tail and later cuts.
      for (let i = 121; i <= 150; i++) {
        const e = entry(i, 2, 100);
        all.push(e);
        await r.wal.save(hardState(2, 1n, i - 1), [e]);
      }
      await r.wal.close();
      const r2 = await WAL.open(t.walDir, opts);
      assert.deepEqual(plain(r2.entries), plain(all));
      await r2.wal.close();
    } finally {
      t.cleanup();
    }
  });

  test("saveSnapshot lets open start at the snapshot; a wrong term or unknown index is refused", async () => {
    const t = tempDataDir();
    try {
      const opts = { segmentSizeBytes: 2048, maxWalFiles: 0 };
      const wal = await WAL.create(t.walDir, Buffer.from("meta"), opts);
      for (let i = 1; i <= 60; i++) await wal.save(hardState(1, 1n, i), [entry(i, 1, 100)]);
      await wal.saveSnapshot({ index: 40, term: 1 });
      for (let i = 61; i <= 80; i++) await wal.save(hardState(1, 1n, i), [entry(i, 1, 100)]);
      await wal.close();
      const r = await WAL.open(t.walDir, { ...opts, snapshot: { index: 40, term: 1 } });
      assert.deepEqual(
        r.entries.map((e) => e.index),
        Array.from({ length: 40 }, (_, k) => 41 + k),
      );
      assert.deepEqual(r.snapshot, { index: 40, term: 1 });
      await r.wal.close();
      await assert.rejects(
        WAL.open(t.walDir, { ...opts, snapshot: { index: 40, term: 2 } }),
        WalSnapshotMismatchError,
      );
      await assert.rejects(
        WAL.open(t.walDir, { ...opts, snapshot: { index: 41, term: 1 } }),
        WalSnapshotNotFoundError,
      );
    } finally {
      t.cleanup();
    }
  });

  test("releaseLockTo purges released segments beyond maxWalFiles and the WAL still opens from the snapshot", async () => {
    const t = tempDataDir();
    try {
      const opts = { segmentSizeBytes: 1024, maxWalFiles: 2 };
      const wal = await WAL.create(t.walDir, Buffer.from("meta"), opts);
      for (let i = 1; i <= 60; i++) await wal.save(hardState(1, 1n, i), [entry(i, 1, 100)]);
      await wal.saveSnapshot({ index: 55, term: 1 });
      const before = readdirSync(t.walDir).filter((n) => n.endsWith(".wal")).length;
      assert.ok(before > 4);
      await wal.releaseLockTo(55);
      const after = readdirSync(t.walDir)
        .filter((n) => n.endsWith(".wal"))
        .sort();
      assert.ok(
        after.length <= Math.max(2, before) && after.length < before,
        `${before} -> ${after.length}`,
      );
      await wal.close();
      const r = await WAL.open(t.walDir, { ...opts, snapshot: { index: 55, term: 1 } });
      assert.deepEqual(
        r.entries.map((e) => e.index),
        [56, 57, 58, 59, 60],
      );
      await r.wal.close();
    } finally {
      t.cleanup();
    }
  });
});

describe("group commit", () => {
  test("saves issued while one is in flight share one write and one fdatasync, in call order", async () => {
    const t = tempDataDir();
    try {
      const wal = await WAL.create(t.walDir, Buffer.from("m"));
      const syncs: Array<{ entries: number }> = [];
      wal.onSync = (i) => syncs.push({ entries: i.entries });
      const ps = [];
      for (let i = 1; i <= 200; i++) ps.push(wal.save(hardState(1, 1n, i - 1), [entry(i, 1, 32)]));
      await Promise.all(ps);
      assert.equal(wal.stats.entries, 200);
      assert.ok(wal.stats.fsyncs < 200, `fsyncs ${wal.stats.fsyncs} should be fewer than saves`);
      assert.equal(
        syncs.reduce((a, s) => a + s.entries, 0),
        200,
      );
      assert.ok(wal.stats.lastFsyncSeconds > 0);
      await wal.close();
      const r = await WAL.open(t.walDir);
      assert.deepEqual(
        r.entries.map((e) => e.index),
        Array.from({ length: 200 }, (_, k) => k + 1),
      );
      await r.wal.close();
    } finally {
      t.cleanup();
    }
  });

  test("a commit-only hardState is written without fdatasync (raft.MustSync), a term change is synced", async () => {
    const t = tempDataDir();
    try {
      const wal = await WAL.create(t.walDir, Buffer.from("m"));
      await wal.save(hardState(1, 1n, 0), [entry(1, 1)]);
      const n = wal.stats.fsyncs;
      await wal.save(hardState(1, 1n, 1), []);
      assert.equal(wal.stats.fsyncs, n);
      await wal.save(hardState(2, 1n, 1), []);
      assert.equal(wal.stats.fsyncs, n + 1);
      await wal.save(undefined, []);
      assert.equal(wal.stats.fsyncs, n + 1);
      await wal.close();
      await assert.rejects(wal.save(undefined, [entry(2, 1)]), WalClosedError);
      const r = await WAL.open(t.walDir);
      assert.deepEqual(r.hardState, hardState(2, 1n, 1));
      await r.wal.close();
    } finally {
      t.cleanup();
    }
  });
});

describe("misuse does not poison the log", () => {
  test("a save with a bad index or vote rejects alone; saves around it succeed", async () => {
    const t = tempDataDir();
    try {
      const wal = await WAL.create(t.walDir, Buffer.from("m"));
      const ok1 = wal.save(hardState(1, 1n, 0), [entry(1, 1)]);
      const bad1 = wal.save(undefined, [{ ...entry(2, 1), index: -1 }]);
      const bad2 = wal.save({ term: 1, vote: -1n, commit: 0 }, []);
      const bad3 = wal.save(undefined, [{ ...entry(2, 1), term: 2 ** 60 }]);
      const bad4 = wal.saveSnapshot({ index: 1.5, term: 1 });
      // etcd's decoder refuses records of 10 MiB or more, so such an entry is never written.
      const bad5 = wal.save(undefined, [
        { ...entry(2, 1), data: new Uint8Array(10 * 1024 * 1024) },
      ]);
      const ok2 = wal.save(undefined, [entry(2, 1)]);
      for (const b of [bad1, bad2, bad3, bad4, bad5])
        await assert.rejects(b, WalInvalidArgumentError);
      await ok1;
      await ok2;
      await wal.close();
      const r = await WAL.open(t.walDir);
      assert.deepEqual(
        r.entries.map((e) => e.index),
        [1, 2],
      );
      await r.wal.close();
    } finally {
      t.cleanup();
    }
  });

  test("an onSync hook that throws is logged, not fatal; close() called twice waits for the same close", async () => {
    const t = tempDataDir();
    const log = captureLogger();
    try {
      const wal = await WAL.create(t.walDir, Buffer.from("m"), { logger: log });
      wal.onSync = () => {
        throw new Error("metrics broke");
      };
      await wal.save(hardState(1, 1n, 0), [entry(1, 1)]);
      await wal.save(hardState(1, 1n, 1), [entry(2, 1)]);
      assert.ok(log.lines.some((l) => l.msg.includes("onSync")));
      const pending = wal.save(undefined, [entry(3, 1)]);
      await Promise.all([wal.close(), wal.close(), pending]);
      const r = await WAL.open(t.walDir);
      assert.deepEqual(
        r.entries.map((e) => e.index),
        [1, 2, 3],
      );
      await r.wal.close();
    } finally {
      t.cleanup();
    }
  });
});

describe("snapshot ahead of the log", () => {
  test("after a restart on a snapshot beyond every entry (a follower's InstallSnapshot), later cuts keep the snapshot findable", async () => {
    const t = tempDataDir();
    try {
      const opts = { segmentSizeBytes: 1024, maxWalFiles: 0 };
      const wal = await WAL.create(t.walDir, Buffer.from("m"), opts);
      await wal.save(hardState(1, 1n, 2), [entry(1, 1), entry(2, 1)]);
      await wal.saveSnapshot({ index: 500, term: 3 });
      await wal.save(hardState(3, 1n, 500), []);
      await wal.close();
      const snap = { index: 500, term: 3 };
      const r = await WAL.open(t.walDir, { ...opts, snapshot: snap });
      assert.deepEqual(r.entries, []);
      // Elections with no entries yet: enough hardState records to cut a segment before any entry.
      for (let k = 1; k <= 40; k++) await r.wal.save(hardState(3 + k, 1n, 500), []);
      assert.ok(readdirSync(t.walDir).length >= 2, "a segment was cut before any entry");
      for (let i = 501; i <= 530; i++) await r.wal.save(hardState(43, 1n, i), [entry(i, 43, 100)]);
      await r.wal.close();
      const r2 = await WAL.open(t.walDir, { ...opts, snapshot: snap });
      assert.deepEqual(
        r2.entries.map((e) => e.index),
        Array.from({ length: 30 }, (_, k) => 501 + k),
      );
      await r2.wal.close();
    } finally {
      t.cleanup();
    }
  });
});

describe("disk failure", () => {
  test(
    "a failed write rejects that save and every later one with the same WalIoError",
    { skip: process.platform !== "linux" },
    async () => {
      const t = tempDataDir();
      try {
        const wal = await WAL.create(t.walDir, Buffer.from("m"));
        await wal.save(hardState(1, 1n, 0), [entry(1, 1)]);
        // Pull the segment's descriptors (the file handle and the O_DSYNC one) out from under
        // the WAL: the test's stand-in for EIO.
        const seg = join(t.walDir, "0000000000000000-0000000000000000.wal");
        const fds = readdirSync("/proc/self/fd")
          .map(Number)
          .filter((n) => {
            try {
              return readlinkSync(`/proc/self/fd/${n}`) === seg;
            } catch {
              return false;
            }
          });
        assert.ok(fds.length > 0, "segment descriptor found");
        for (const fd of fds) closeSync(fd);
        const first = wal.save(undefined, [entry(2, 1)]);
        const queued = wal.save(undefined, [entry(3, 1)]);
        const e1 = await first.then(
          () => null,
          (e: unknown) => e,
        );
        assert.ok(e1 instanceof WalIoError, String(e1));
        assert.match(e1.message, /0000000000000000-0000000000000000\.wal/);
        await assert.rejects(queued, (e: unknown) => e === e1);
        await assert.rejects(wal.save(undefined, [entry(4, 1)]), (e: unknown) => e === e1);
        await wal.close();
        const r = await WAL.open(t.walDir);
        assert.deepEqual(
          r.entries.map((e) => e.index),
          [1],
        );
        await r.wal.close();
      } finally {
        t.cleanup();
      }
    },
  );
});

describe("large WALs", () => {
  test("entries read across many 1 MiB read windows and segments keep their own data", async () => {
    const t = tempDataDir();
    try {
      const opts = { segmentSizeBytes: 3 * 1024 * 1024 };
      const wal = await WAL.create(t.walDir, Buffer.from("meta"), opts);
      const all = [];
      let index = 0;
      for (let b = 0; b < 80; b++) {
        const es = [];
        for (let k = 0; k < 100; k++) es.push(entry(++index, 1, 200 + ((index * 37) % 1500)));
        all.push(...es);
        await wal.save(hardState(1, 1n, index), es);
      }
      await wal.close();
      assert.ok(readdirSync(t.walDir).length >= 3, "several segments");
      const r = await WAL.open(t.walDir, opts);
      assert.equal(Buffer.from(r.metadata).toString(), "meta");
      assert.deepEqual(plain(r.entries), plain(all));
      // Appending after the reopen writes the same metadata at the head of later segments.
      for (let b = 0; b < 30; b++) {
        const es = [];
        for (let k = 0; k < 100; k++) es.push(entry(++index, 2, 1000));
        all.push(...es);
        await r.wal.save(hardState(2, 1n, index), es);
      }
      await r.wal.close();
      const r2 = await WAL.open(t.walDir, opts);
      assert.deepEqual(plain(r2.entries), plain(all));
      await r2.wal.close();
    } finally {
      t.cleanup();
    }
  });
});

describe("record size limit", () => {
  test("the largest entry save() accepts (10 MiB - 64 B of data) reads back", async () => {
    const t = tempDataDir();
    try {
      const wal = await WAL.create(t.walDir, Buffer.from("m"));
      const big = new Uint8Array(10 * 1024 * 1024 - 64).fill(7);
      await wal.save(hardState(1, 1n, 1), [{ ...entry(1, 1), data: big }, entry(2, 1)]);
      await wal.close();
      const r = await WAL.open(t.walDir);
      assert.equal(r.entries.length, 2);
      assert.equal(r.entries[0]!.data.length, big.length);
      assert.ok(Buffer.from(r.entries[0]!.data).equals(Buffer.from(big)));
      await r.wal.close();
    } finally {
      t.cleanup();
    }
  });
});

import { WAL as WalForSync } from "../../lib/wal/index.js";

test("syncWriteMaxEntries: small batches written with blocking calls read back the same", async () => {
  const { mkdtempSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const dir = mkdtempSync(join(tmpdir(), "wal-syncwrite-"));
  try {
    const walDir = join(dir, "wal");
    const w = await WalForSync.create(walDir, new Uint8Array([1, 2, 3]), {
      syncWriteMaxEntries: 1,
      segmentSizeBytes: 4096,
    });
    const entries = [];
    for (let i = 1; i <= 198; i++) {
      const e = { type: 0, term: 1, index: i, data: new Uint8Array(40).fill(i % 256) };
      entries.push(e);
      // singles take the blocking path, pairs the asynchronous one; segments are cut on the way
      if (i % 3 === 0)
        await Promise.all([
          w.save({ term: 1, vote: 0n, commit: i - 2 }, [entries[i - 2]!]),
          w.save(undefined, [e]),
        ]);
      else if (i % 3 === 1) await w.save({ term: 1, vote: 0n, commit: i - 1 }, [e]);
    }
    assert.equal(w.stats.entries, 198);
    await w.close();
    const r = await WalForSync.open(walDir);
    assert.deepEqual(
      r.entries.map((e) => e.index),
      entries.map((e) => e.index),
    );
    assert.deepEqual(Buffer.from(r.entries[150]!.data), Buffer.from(entries[150]!.data));
    await r.wal.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
