import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  existsSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { WAL, WalCorruptError, WalError, WalMissingSegmentError } from "../../lib/wal/index.js";
import {
  captureLogger,
  copyWalDir,
  entry,
  hardState,
  listRecords,
  plain,
  runSeed,
  tempDataDir,
} from "./harness.js";

const SEGMENT_BYTES = 2048;

/** Builds a WAL of several small segments whose very last record is entry `lastIndex`. */
async function buildWal(
  walDir: string,
  lastDataBytes = 150,
  segmentSizeBytes = SEGMENT_BYTES,
): Promise<{ lastIndex: number; segments: string[] }> {
  const wal = await WAL.create(walDir, Buffer.from("meta"), { segmentSizeBytes });
  let i = 0;
  while (i < 40) {
    i++;
    await wal.save(hardState(1, 1n, i - 1), [entry(i, 1, 90)]);
  }
  i++;
  await wal.save(undefined, [entry(i, 1, lastDataBytes)]); // the tail record: an entry
  await wal.close();
  return {
    lastIndex: i,
    segments: readdirSync(walDir)
      .filter((n) => n.endsWith(".wal"))
      .sort(),
  };
}

describe("torn tail of the last segment", () => {
  const base = tempDataDir();
  let lastIndex = 0;
  let segments: string[] = [];
  let lastRec: { offsetBytes: number; endBytes: number; type: number };
  before(async () => {
    ({ lastIndex, segments } = await buildWal(base.walDir));
    assert.ok(segments.length >= 3);
    const recs = await listRecords(join(base.walDir, segments.at(-1)!));
    lastRec = recs.at(-1)!;
    assert.equal(lastRec.type, 2);
  });
  after(() => base.cleanup());

  async function checkRepaired(walDir: string, cut: number, zeroFill: boolean): Promise<void> {
    const tailName = segments.at(-1)!;
    const tailPath = join(walDir, tailName);
    const log = captureLogger();
    const opts = { segmentSizeBytes: SEGMENT_BYTES, logger: log };
    const r = await WAL.open(walDir, opts);
    const where = `cut at ${cut} (${zeroFill ? "zero-filled" : "truncated"})`;
    const torn = cut > lastRec.offsetBytes && !(zeroFill && cut === lastRec.offsetBytes);
    assert.deepEqual(
      r.entries.map((e) => e.index),
      Array.from({ length: lastIndex - 1 }, (_, k) => k + 1),
      where,
    );
    if (torn) {
      const warn = log.lines.find((l) => l.level === "warn" && l.msg.includes("torn tail"));
      assert.ok(warn, `${where}: repair logged`);
      assert.ok(
        warn.msg.includes(tailPath) && warn.msg.includes(String(lastRec.offsetBytes)),
        `${where}: ${warn.msg}`,
      );
      assert.ok(existsSync(`${tailPath}.broken`), `${where}: .broken copy kept`);
    }
    // Appending after the repair works and survives another reopen.
    await r.wal.save(hardState(2, 1n, lastIndex - 1), [
      entry(lastIndex, 2, 40),
      entry(lastIndex + 1, 2, 40),
    ]);
    await r.wal.close();
    const r2 = await WAL.open(walDir, opts);
    assert.deepEqual(
      r2.entries.map((e) => [e.index, e.term]),
      [
        ...Array.from({ length: lastIndex - 1 }, (_, k) => [k + 1, 1]),
        [lastIndex, 2],
        [lastIndex + 1, 2],
      ],
      where,
    );
    assert.deepEqual(r2.hardState, hardState(2, 1n, lastIndex - 1));
    await r2.wal.close();
  }

  test("WAL.read reports a torn tail with file and offset and changes nothing", async () => {
    const c = copyWalDir(base.walDir);
    try {
      const p = join(c.walDir, segments.at(-1)!);
      truncateSync(p, lastRec.endBytes - 3);
      const before = readFileSync(p);
      const r = await WAL.read(c.walDir);
      assert.equal(r.entries.length, lastIndex - 1);
      assert.deepEqual(
        r.tornTail && { file: r.tornTail.file, offsetBytes: r.tornTail.offsetBytes },
        {
          file: p,
          offsetBytes: lastRec.offsetBytes,
        },
      );
      assert.ok(readFileSync(p).equals(before), "file untouched");
      assert.ok(!existsSync(`${p}.broken`));
      const clean = await WAL.read(base.walDir);
      assert.equal(clean.tornTail, null);
      assert.equal(clean.entries.length, lastIndex);
    } finally {
      c.cleanup();
    }
  });

  test("truncating the last record at every byte offset repairs to the previous record, logs it, and appends work", async () => {
    for (let cut = lastRec.offsetBytes; cut < lastRec.endBytes; cut++) {
      const c = copyWalDir(base.walDir);
      try {
        truncateSync(join(c.walDir, segments.at(-1)!), cut);
        await checkRepaired(c.walDir, cut, false);
      } finally {
        c.cleanup();
      }
    }
  });

  test("zeroing whole 512-byte sectors of a large last record (a torn write at sector granularity) repairs the same way", async () => {
    // Disks write 512-byte sectors atomically (etcd's minSectorSize assumption), so a torn write
    // leaves some of the record's sectors as they were before: zeros in the preallocated tail. The
    // same-sector byte-granular case is the truncation test above.
    const big = tempDataDir();
    try {
      const bigSegmentBytes = 16384;
      const built = await buildWal(big.walDir, 1800, bigSegmentBytes);
      const tailName = built.segments.at(-1)!;
      const rec = (await listRecords(join(big.walDir, tailName))).at(-1)!;
      assert.equal(rec.type, 2);
      const firstSector = Math.floor(rec.offsetBytes / 512) * 512;
      let cases = 0;
      for (let s = firstSector; s < rec.endBytes; s += 512) {
        for (const onlyThisSector of [false, true]) {
          const c = copyWalDir(big.walDir);
          try {
            const p = join(c.walDir, tailName);
            const b = readFileSync(p);
            const from = Math.max(s, rec.offsetBytes); // bytes before the record were written earlier
            const to = onlyThisSector ? Math.min(s + 512, b.length) : b.length;
            b.fill(0, from, to);
            writeFileSync(p, b);
            const log = captureLogger();
            const r = await WAL.open(c.walDir, { segmentSizeBytes: bigSegmentBytes, logger: log });
            const where = `zeroed [${from}, ${to})`;
            assert.equal(r.entries.length, built.lastIndex - 1, where);
            if (from >= rec.offsetBytes + 8) {
              assert.ok(
                log.lines.some(
                  (l) => l.msg.includes("torn tail") && l.msg.includes(String(rec.offsetBytes)),
                ),
                where,
              );
            }
            await r.wal.save(undefined, [entry(built.lastIndex, 2, 30)]);
            await r.wal.close();
            const r2 = await WAL.open(c.walDir, { segmentSizeBytes: bigSegmentBytes });
            assert.deepEqual(r2.entries.at(-1)!.index, built.lastIndex, where);
            assert.equal(r2.entries.at(-1)!.term, 2, where);
            await r2.wal.close();
            cases++;
          } finally {
            c.cleanup();
          }
        }
      }
      assert.ok(cases >= 8, `record spans several sectors (${cases} cases)`);
    } finally {
      big.cleanup();
    }
  });
});

describe("corruption is refused", () => {
  const base = tempDataDir();
  let segments: string[] = [];
  before(async () => {
    ({ segments } = await buildWal(base.walDir));
  });
  after(() => base.cleanup());

  async function flipAndOpen(segment: string, offset: number, mask = 0xff): Promise<unknown> {
    const c = copyWalDir(base.walDir);
    try {
      const p = join(c.walDir, segment);
      const b = readFileSync(p);
      b[offset]! ^= mask;
      writeFileSync(p, b);
      try {
        const r = await WAL.open(c.walDir, { segmentSizeBytes: SEGMENT_BYTES });
        await r.wal.close();
        return null;
      } catch (err) {
        return err;
      }
    } finally {
      c.cleanup();
    }
  }

  test("a flipped byte in an entry of a middle segment: WalCorruptError naming the file and the record's offset", async () => {
    const seg = segments[1]!;
    const recs = await listRecords(join(base.walDir, seg));
    const rec = recs.find((r) => r.type === 2)!;
    const err = await flipAndOpen(seg, rec.endBytes - 20);
    assert.ok(err instanceof WalCorruptError, String(err));
    assert.ok(err.file.endsWith(seg));
    assert.equal(err.offsetBytes, rec.offsetBytes);
    assert.match(err.message, new RegExp(`${seg}.*byte offset ${rec.offsetBytes}`));
    assert.equal(err.code, "WAL_CORRUPT");
  });

  test("a flipped byte mid-file in the LAST segment (not its tail) is corruption, not a torn tail", async () => {
    const seg = segments.at(-1)!;
    const recs = await listRecords(join(base.walDir, seg));
    const entries = recs.filter((r) => r.type === 2);
    assert.ok(entries.length >= 3);
    const rec = entries[1]!;
    const err = await flipAndOpen(seg, rec.offsetBytes + 30);
    assert.ok(err instanceof WalCorruptError, String(err));
    assert.equal(err.offsetBytes, rec.offsetBytes);
  });

  test("a flipped padding byte is corruption (etcd never checks padding; we do)", async () => {
    const seg = segments[0]!;
    const recs = await listRecords(join(base.walDir, seg));
    const rec = recs.find(
      (r) => r.type === 2 && r.endBytes - r.offsetBytes - 8 !== r.data.length + 10,
    )!;
    const b = readFileSync(join(base.walDir, seg));
    const hi = b.readUInt32LE(rec.offsetBytes + 4);
    assert.ok(hi & 0x80000000, "record is padded");
    const err = await flipAndOpen(seg, rec.endBytes - 1, 0x01);
    assert.ok(err instanceof WalCorruptError, String(err));
  });

  test("property: a flipped byte anywhere in a non-last segment's records is never opened silently", async () => {
    const seed = runSeed("wal flipped byte");
    const sizes = await Promise.all(
      segments
        .slice(0, -1)
        .map(async (s) => (await listRecords(join(base.walDir, s))).at(-1)!.endBytes),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: segments.length - 2 }),
        fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
        fc.integer({ min: 1, max: 255 }),
        async (segIdx, where, mask) => {
          const offset = Math.floor(where * sizes[segIdx]!);
          const err = await flipAndOpen(segments[segIdx]!, offset, mask);
          assert.ok(
            err instanceof WalError,
            `flip ${segments[segIdx]}@${offset}^${mask}: ${String(err)}`,
          );
        },
      ),
      { seed, numRuns: 150 },
    );
  });

  test("a missing middle segment: WalMissingSegmentError", async () => {
    const c = copyWalDir(base.walDir);
    try {
      rmSync(join(c.walDir, segments[1]!));
      await assert.rejects(WAL.open(c.walDir), (err: unknown) => {
        assert.ok(err instanceof WalMissingSegmentError);
        assert.equal(err.expectedSeq, 1);
        assert.equal(err.foundSeq, 2);
        assert.match(err.message, /missing segment/);
        return true;
      });
    } finally {
      c.cleanup();
    }
  });

  test("a torn record in a non-last segment (cut short) is corruption, not repaired", async () => {
    const c = copyWalDir(base.walDir);
    try {
      const seg = segments[0]!;
      const recs = await listRecords(join(c.walDir, seg));
      truncateSync(join(c.walDir, seg), recs.at(-1)!.endBytes - 5);
      await assert.rejects(WAL.open(c.walDir), WalCorruptError);
    } finally {
      c.cleanup();
    }
  });

  test("the undamaged WAL opens with every entry", async () => {
    const c = copyWalDir(base.walDir);
    try {
      const r = await WAL.open(c.walDir, { segmentSizeBytes: SEGMENT_BYTES });
      assert.equal(r.entries.length, 41);
      assert.deepEqual(plain(r.entries.slice(0, 1)), plain([entry(1, 1, 90)]));
      await r.wal.close();
    } finally {
      c.cleanup();
    }
  });
});
