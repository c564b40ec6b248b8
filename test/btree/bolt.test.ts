// The bbolt-format writer and reader (lib/btree/bolt.ts, bolt-reader.ts): what the writer lays out
// the reader reads back exactly (property test over random buckets, page sizes and fill), with
// bbolt's inline rule and a clean tx.Check; corrupt files and bad input fail with typed errors.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  BoltAppendBase,
  BoltCorruptError,
  BoltFile,
  BoltFileWriter,
  BoltInputError,
  fnv64a,
  type BoltBucketSource,
  type BoltEntryCursor,
  type BoltWriteOptions,
} from "../../lib/btree/index.js";

const SEED = process.env.SEED !== undefined ? Number(process.env.SEED) : Date.now() % 2 ** 31;
console.log(`bolt.test SEED=${SEED}`);

type Entries = [Buffer, Buffer][];

function source(name: string | Buffer, entries: Entries): BoltBucketSource {
  return { name: typeof name === "string" ? Buffer.from(name) : name, entries: () => entries };
}

/**
 * The same bucket through a cursor: each entry copied into one reused scratch buffer (after a
 * byte of padding, so ranges do not start at 0), as mvcc's snapshot hands its records out.
 */
function cursorSource(name: string | Buffer, entries: Entries): BoltBucketSource {
  return {
    ...source(name, entries),
    cursor(): BoltEntryCursor {
      let i = -1;
      const c = {
        keyBuf: Buffer.alloc(0),
        keyStart: 1,
        keyEnd: 1,
        valueBuf: Buffer.alloc(0),
        valueStart: 0,
        valueEnd: 0,
        next(): boolean {
          if (++i >= entries.length) return false;
          const [k, v] = entries[i]!;
          const scratch = Buffer.alloc(1 + k.length + v.length, 0xee);
          k.copy(scratch, 1);
          v.copy(scratch, 1 + k.length);
          c.keyBuf = c.valueBuf = scratch;
          c.keyEnd = c.valueStart = 1 + k.length;
          c.valueEnd = scratch.length;
          return true;
        },
      };
      return c;
    },
  };
}

function build(buckets: BoltBucketSource[], opts: Partial<BoltWriteOptions> = {}): Buffer {
  const w = new BoltFileWriter(buckets, opts);
  const chunks = [...w.chunks()];
  const file = Buffer.concat(chunks);
  assert.equal(file.length, w.sizeBytes, "chunks add up to sizeBytes");
  assert.equal(file.length, w.pageCount * (opts.pageSizeBytes ?? 4096));
  return file;
}

/** chunks(true) of `w`, each copied before the next is asked for (what reuse allows). */
function copiedChunks(w: BoltFileWriter): Buffer[] {
  const out: Buffer[] = [];
  for (const c of w.chunks(true)) out.push(Buffer.from(c));
  return out;
}

function readAll(file: Buffer): Map<string, Entries> {
  const f = BoltFile.open(file);
  f.check();
  const out = new Map<string, Entries>();
  for (const [name, b] of f.buckets()) {
    out.set(
      name.toString("latin1"),
      [...b.entries()].map(([k, v]) => [Buffer.from(k), Buffer.from(v)]),
    );
  }
  return out;
}

/** bbolt's Bucket.inlineable for a bucket of plain entries. */
function bboltWouldInline(entries: Entries, pageSizeBytes: number): boolean {
  let size = 16;
  for (const [k, v] of entries) size += 16 + k.length + v.length;
  return size <= pageSizeBytes / 4;
}

const arbEntries = (maxKeys: number) =>
  fc
    .uniqueArray(fc.uint8Array({ minLength: 1, maxLength: 40 }), {
      maxLength: maxKeys,
      selector: (k) => Buffer.from(k).toString("hex"),
    })
    .chain((keys) =>
      fc.tuple(
        fc.constant(keys.map((k) => Buffer.from(k)).sort(Buffer.compare)),
        fc.array(
          fc.oneof(
            { weight: 8, arbitrary: fc.integer({ min: 0, max: 200 }) },
            { weight: 1, arbitrary: fc.integer({ min: 200, max: 12_000 }) },
          ),
          { minLength: keys.length, maxLength: keys.length },
        ),
      ),
    )
    .map(([keys, sizes]): Entries =>
      keys.map((k, i) => [k, Buffer.alloc(sizes[i]!, (i * 7 + k[0]!) & 0xff)]),
    );

describe("bolt writer → reader", () => {
  test("random buckets round-trip exactly, inline where bbolt would inline, tx.Check clean", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 12 }), { minLength: 0, maxLength: 6 }),
        fc.array(arbEntries(300), { minLength: 6, maxLength: 6 }),
        fc.constantFrom(1024, 4096),
        fc.double({ min: 0.3, max: 1, noNaN: true }),
        fc.boolean(),
        fc.integer({ min: 1, max: 16 }),
        (names, entryLists, pageSizeBytes, fillPercent, writeFreelist, chunkPages) => {
          const buckets = names.map((n, i) => source(n, entryLists[i]!));
          const file = build(buckets, {
            pageSizeBytes,
            fillPercent,
            writeFreelist,
            chunkBytes: chunkPages * pageSizeBytes,
          });
          const got = readAll(file);
          assert.deepEqual(
            [...got.keys()],
            names.map((n) => Buffer.from(n).toString("latin1")).sort(),
          );
          const f = BoltFile.open(file);
          for (let i = 0; i < names.length; i++) {
            const want = entryLists[i]!;
            assert.deepEqual(got.get(Buffer.from(names[i]!).toString("latin1")), want);
            const b = f.bucket(names[i]!)!;
            assert.equal(b.isInline, bboltWouldInline(want, pageSizeBytes), names[i]);
          }
          assert.equal(f.meta.freelistPgid, writeFreelist ? 2 : undefined);
          assert.deepEqual(f.freePages(), []);
          // a cursor source writes the same bytes; forEachEntry reads what entries() reads
          const viaCursor = build(
            names.map((n, i) => cursorSource(n, entryLists[i]!)),
            { pageSizeBytes, fillPercent, writeFreelist, chunkBytes: chunkPages * pageSizeBytes },
          );
          assert.ok(viaCursor.equals(file), "cursor and entries() give the same file");
          // reused chunk buffers, each copied before the next is asked for, give the same file
          const w = new BoltFileWriter(buckets, {
            pageSizeBytes,
            fillPercent,
            writeFreelist,
            chunkBytes: chunkPages * pageSizeBytes,
          });
          const copies = copiedChunks(w);
          assert.ok(Buffer.concat(copies).equals(file), "chunks(true) gives the same file");
          for (let i = 0; i < names.length; i++) {
            const raw: Entries = [];
            f.bucket(names[i]!)!.forEachEntry((buf, ks, ke, ve) => {
              raw.push([Buffer.from(buf.subarray(ks, ke)), Buffer.from(buf.subarray(ke, ve))]);
            });
            assert.deepEqual(raw, entryLists[i]!);
          }
        },
      ),
      { seed: SEED, numRuns: 60 },
    );
  });

  test("20k keys on 1 KiB pages need three branch levels and read back in order", () => {
    const entries: Entries = [];
    for (let i = 0; i < 20_000; i++) {
      const k = Buffer.alloc(17);
      k.writeBigUInt64BE(BigInt(i + 1), 0);
      k[8] = 0x5f;
      entries.push([k, Buffer.from(`value-${i}`)]);
    }
    const file = build([source("key", entries)], { pageSizeBytes: 1024 });
    const f = BoltFile.open(file);
    f.check();
    const got = [...f.bucket("key")!.entries()];
    assert.equal(got.length, entries.length);
    for (let i = 0; i < got.length; i += 997) {
      assert.ok(got[i]![0].equals(entries[i]![0]));
      assert.ok(got[i]![1].equals(entries[i]![1]));
    }
    // root page of the bucket is a branch whose child is a branch
    const root = f.bucket("key")!.rootPgid;
    assert.equal(file.readUInt16LE(root * 1024 + 8), 0x01);
    const firstChild = Number(file.readBigUInt64LE(root * 1024 + 16 + 8));
    assert.equal(file.readUInt16LE(firstChild * 1024 + 8), 0x01);
  });

  test("chunks stay within chunkBytes unless one node is larger", () => {
    const entries: Entries = [];
    for (let i = 0; i < 2000; i++) entries.push([Buffer.from(`k${1e6 + i}`), Buffer.alloc(100)]);
    entries.push([Buffer.from("z-big"), Buffer.alloc(50_000, 1)]);
    const w = new BoltFileWriter([source("b", entries)], { chunkBytes: 16_384 });
    let total = 0;
    for (const c of w.chunks()) {
      assert.ok(c.length <= 16_384 || c.length === 53_248, `chunk of ${c.length}`);
      assert.equal(c.length % 4096, 0);
      total += c.length;
    }
    assert.equal(total, w.sizeBytes);
  });

  test("chunks(true) hands the same few buffers out again and writes the same bytes", () => {
    const entries: Entries = [];
    for (let i = 0; i < 5000; i++) entries.push([Buffer.from(`k${1e6 + i}`), Buffer.alloc(200, i)]);
    entries.push([Buffer.from("z-big"), Buffer.alloc(50_000, 1)]);
    const w = new BoltFileWriter([source("b", entries)], { chunkBytes: 16_384 });
    const memories = new Set<ArrayBufferLike>();
    let chunkCount = 0;
    const copies: Buffer[] = [];
    for (const c of w.chunks(true)) {
      chunkCount++;
      memories.add(c.buffer);
      copies.push(Buffer.from(c));
    }
    assert.ok(chunkCount > 50, `${chunkCount} chunks`);
    // two 16 KiB buffers alternate (one being filled while the other is out), plus the big node's
    assert.ok(memories.size <= 4, `${memories.size} distinct buffers for ${chunkCount} chunks`);
    assert.ok(Buffer.concat(copies).equals(Buffer.concat([...w.chunks()])));
  });

  test("planInSteps yields between steps and writes the same bytes as the constructor", () => {
    const entries: Entries = Array.from({ length: 5000 }, (_, i) => [
      Buffer.from(`k${100_000 + i}`),
      Buffer.from(`v${i}`),
    ]);
    const buckets = [source("a", entries), source("b", entries.slice(0, 10))];
    const planner = BoltFileWriter.planInSteps(buckets, {}, 1000);
    let steps = 0;
    let r = planner.next();
    for (; r.done !== true; r = planner.next()) steps++;
    assert.ok(steps >= 5, `${steps} steps`);
    assert.deepEqual(Buffer.concat([...r.value.chunks()]), build(buckets));
    assert.throws(() => [...BoltFileWriter.planInSteps([], {}, 0)].length, BoltInputError);
  });

  test("meta pages carry bbolt's magic, version, FNV-64a checksum and txids T and T-1", () => {
    const file = build([source("a", [[Buffer.from("k"), Buffer.from("v")]])], { txid: 7 });
    for (const [page, txid] of [
      [0, 7n],
      [1, 6n],
    ] as const) {
      const m = page * 4096 + 16;
      assert.equal(file.readBigUInt64LE(page * 4096), BigInt(page));
      assert.equal(file.readUInt16LE(page * 4096 + 8), 0x04);
      assert.equal(file.readUInt32LE(m), 0xed0cdaed);
      assert.equal(file.readUInt32LE(m + 4), 2);
      assert.equal(file.readUInt32LE(m + 8), 4096);
      assert.equal(file.readBigUInt64LE(m + 32), 0xffffffffffffffffn);
      assert.equal(file.readBigUInt64LE(m + 48), txid);
      assert.equal(file.readBigUInt64LE(m + 56), fnv64a(file.subarray(m, m + 56)));
    }
    assert.equal(BoltFile.open(file).meta.txid, 7);
  });

  test("fnv64a matches Go's hash/fnv New64a", () => {
    assert.equal(fnv64a(Buffer.alloc(0)), 0xcbf29ce484222325n);
    assert.equal(fnv64a(Buffer.from("a")), 0xaf63dc4c8601ec8cn);
    assert.equal(fnv64a(Buffer.from("foobar")), 0x85944171f73967e8n);
  });
});

/** Applies positioned writes to a copy of `file` (grown as needed). */
function applyWrites(file: Buffer, writes: { position: number; bytes: Buffer }[]): Buffer {
  let size = file.length;
  for (const w of writes) size = Math.max(size, w.position + w.bytes.length);
  const out = Buffer.alloc(size);
  file.copy(out);
  for (const w of writes) w.bytes.copy(out, w.position);
  return out;
}

/** An in-place commit of `buckets` on `base`: the writer, its page writes and its meta write. */
function commitInPlace(
  buckets: BoltBucketSource[],
  base: BoltAppendBase,
  opts: Partial<BoltWriteOptions>,
  entriesPerStep = 7,
) {
  const steps = BoltFileWriter.planAppendInSteps(buckets, opts, base, entriesPerStep);
  let r = steps.next();
  while (r.done !== true) r = steps.next();
  const w = r.value;
  return { w, pages: [...w.pageWrites()], meta: w.metaWrite() };
}

/** The base BoltFile.appendBaseInSteps reads back from `file` (steps of `pages` pages). */
function readBase(file: Buffer, pages = 2): BoltAppendBase | undefined {
  const steps = BoltFile.open(file).appendBaseInSteps(Buffer.from("key"), pages);
  let r = steps.next();
  while (r.done !== true) r = steps.next();
  return r.value;
}

describe("bolt in-place commits", () => {
  // Commits in a row on one file: each appends entries to "key" (keys only grow) and rewrites the
  // other buckets with random contents. After the page writes alone the file still reads as the
  // previous commit (nothing the meta in use reaches was overwritten); with the meta, as the new
  // one; a torn (zeroed) new meta falls back to the previous commit.
  test("appended key bucket, rewritten others: old state intact until the meta, new after", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(1024, 4096),
        fc.double({ min: 0.5, max: 1, noNaN: true }),
        fc.integer({ min: 1, max: 8 }),
        fc.array(
          fc.record({
            added: fc.integer({ min: 0, max: 400 }),
            bigValueEvery: fc.integer({ min: 0, max: 50 }),
            other: arbEntries(120),
            small: arbEntries(3),
          }),
          { minLength: 1, maxLength: 8 },
        ),
        fc.integer({ min: 60, max: 300 }),
        (pageSizeBytes, fillPercent, chunkPages, rounds, firstKeys) => {
          const opts = { pageSizeBytes, fillPercent, chunkBytes: chunkPages * pageSizeBytes };
          let nextKey = 0;
          const keyEntries = (n: number, bigEvery: number): Entries =>
            Array.from({ length: n }, () => {
              const k = Buffer.alloc(17);
              k.writeBigUInt64BE(BigInt(++nextKey), 0);
              const size = bigEvery > 0 && nextKey % bigEvery === 0 ? 3 * pageSizeBytes : 40;
              return [k, Buffer.alloc(size, nextKey & 0xff)];
            });
          let key = keyEntries(firstKeys, 0);
          const fullBuckets = [cursorSource("key", key), source("other", []), source("small", [])];
          const full = new BoltFileWriter(fullBuckets, opts);
          let file: Buffer = Buffer.concat([...full.chunks()]);
          let base = full.appendBase(Buffer.from("key"));
          assert.ok(base !== undefined, "a key bucket of pages gives a base");
          let want = readAll(file);
          for (const round of rounds) {
            const added = keyEntries(round.added, round.bigValueEvery);
            key = [...key, ...added];
            const buckets = [
              cursorSource("key", added),
              source("other", round.other),
              source("small", round.small),
            ];
            const { w, pages, meta } = commitInPlace(buckets, base, opts);
            // the base read back from the file (a member restarting from it) is the writer's:
            // the same fields, and the same commit planned on it, byte for byte
            const read = readBase(file);
            assert.ok(read !== undefined, "the file's own layout gives a base");
            for (const f of [
              "entryCount",
              "lastKey",
              "pageCount",
              "pageSizeBytes",
              "txid",
              "metaPage",
              "freePages",
              "replaceablePages",
            ] as const) {
              assert.deepEqual(read[f], base[f], `read-back base's ${f}`);
            }
            const viaRead = commitInPlace(buckets, read, opts);
            assert.deepEqual(viaRead.pages, pages, "the same page writes from the read-back base");
            assert.deepEqual(viaRead.meta, meta, "the same meta from the read-back base");
            for (const p of pages) {
              assert.ok(p.position >= 2 * pageSizeBytes, "no page write lands on a meta page");
              assert.equal(p.bytes.length % pageSizeBytes, 0, "whole pages");
            }
            const before = applyWrites(file, pages);
            assert.deepEqual(readAll(before), want, "page writes leave the previous commit whole");
            const after = applyWrites(before, [meta]);
            const got = readAll(after);
            assert.deepEqual(got.get("key"), key);
            assert.deepEqual(got.get("other"), round.other);
            assert.deepEqual(got.get("small"), round.small);
            assert.equal(BoltFile.open(after).meta.txid, base.txid + 1);
            // torn: the new meta's txid and checksum did not reach the disk (its page size did:
            // bbolt reads meta 0's page size to find meta 1, and guesses 4096 when it is bad)
            const torn = Buffer.from(after);
            torn.fill(0, meta.position + 16 + 48, meta.position + 16 + 64);
            assert.deepEqual(readAll(torn), want, "a torn meta opens the previous commit");
            const next = w.appendBase(Buffer.from("key"))!;
            assert.equal(next.entryCount, key.length);
            assert.equal(next.pageCount * pageSizeBytes, w.sizeBytes);
            assert.ok(after.length >= w.sizeBytes);
            // free pages are exactly the pages the new meta does not reach
            const reached = new Set<number>([0, 1]);
            BoltFile.open(after)
              .root()
              .visitPages((pgid, n) => {
                for (let i = 0; i < n; i++) reached.add(pgid + i);
              });
            const unreached: number[] = [];
            for (let id = 0; id < next.pageCount; id++) if (!reached.has(id)) unreached.push(id);
            assert.deepEqual([...next.freePages], unreached);
            assert.equal(next.sizeInUseBytes, reached.size * pageSizeBytes);
            // what check() counts as reached: a restart's dbSizeInUse (recovery.ts)
            assert.equal(BoltFile.open(after).check(), reached.size);
            file = after;
            base = next;
            want = got;
          }
        },
      ),
      { seed: SEED, numRuns: 40 },
    );
  });

  test("free pages are reused: the file grows by the new leaves, not by the rewritten pages", () => {
    const opts = { pageSizeBytes: 1024, chunkBytes: 8192 };
    const other: Entries = Array.from({ length: 200 }, (_, i) => [
      Buffer.from(`o${String(i).padStart(4, "0")}`),
      Buffer.alloc(60, i),
    ]);
    let n = 0;
    const keys = (count: number): Entries =>
      Array.from({ length: count }, () => {
        const k = Buffer.alloc(17);
        k.writeBigUInt64BE(BigInt(++n), 0);
        return [k, Buffer.alloc(100, n & 0xff)];
      });
    const full = new BoltFileWriter([source("key", keys(2000)), source("other", other)], opts);
    let file: Buffer = Buffer.concat([...full.chunks()]);
    let base = full.appendBase(Buffer.from("key"))!;
    const sizes: number[] = [];
    for (let round = 0; round < 20; round++) {
      const added = keys(10);
      const { w, pages, meta } = commitInPlace(
        [source("key", added), source("other", other)],
        base,
        opts,
      );
      file = applyWrites(applyWrites(file, pages), [meta]);
      base = w.appendBase(Buffer.from("key"))!;
      sizes.push(base.pageCount);
    }
    assert.equal(readAll(file).get("key")!.length, 2200);
    // 10 entries of 133 bytes a round fill 2 pages of 1 KiB; the rewritten branch pages and the
    // "other" bucket (~20 pages) go on the pages the commit before the last one freed
    const growth = sizes[sizes.length - 1]! - sizes[1]!;
    assert.ok(growth <= 18 * 3, `grew ${growth} pages over 18 rounds: ${sizes.join(",")}`);
  });

  test("a base read back from a three-level key bucket plans the writer's own commit", () => {
    const opts = { pageSizeBytes: 1024, chunkBytes: 8192 };
    const keys: Entries = Array.from({ length: 20_000 }, (_, i) => {
      const k = Buffer.alloc(17);
      k.writeBigUInt64BE(BigInt(i + 1), 0);
      return [k, Buffer.alloc(20 + (i % 90), i & 0xff)];
    });
    const full = new BoltFileWriter([source("key", keys), source("meta", keys.slice(0, 40))], opts);
    const file = Buffer.concat([...full.chunks()]);
    const base = full.appendBase(Buffer.from("key"))!;
    const read = readBase(file, 5)!;
    assert.equal(read.entryCount, 20_000);
    assert.deepEqual(
      [read.pageCount, read.txid, read.metaPage],
      [base.pageCount, base.txid, base.metaPage],
    );
    assert.deepEqual(read.replaceablePages, base.replaceablePages);
    const added: Entries = [[Buffer.alloc(17, 0xff), Buffer.from("last")]];
    const buckets = [source("key", added), source("meta", keys.slice(0, 41))];
    const a = commitInPlace(buckets, base, opts);
    const b = commitInPlace(buckets, read, opts);
    assert.deepEqual(b.pages, a.pages);
    assert.deepEqual(b.meta, a.meta);
    const after = applyWrites(applyWrites(file, b.pages), [b.meta]);
    BoltFile.open(after).check();
    assert.equal(readAll(after).get("key")!.length, 20_001);
  });

  test("no base is read back from a file with a freelist page, or a key bucket that is inline or holds buckets", () => {
    const keys: Entries = Array.from({ length: 300 }, (_, i) => {
      const k = Buffer.alloc(17);
      k.writeBigUInt64BE(BigInt(i + 1), 0);
      return [k, Buffer.alloc(50, i)];
    });
    const file = (buckets: BoltBucketSource[], o: Partial<BoltWriteOptions> = {}) =>
      Buffer.concat([...new BoltFileWriter(buckets, { pageSizeBytes: 1024, ...o }).chunks()]);
    assert.ok(readBase(file([source("key", keys)])) !== undefined, "a plain key bucket gives one");
    assert.equal(readBase(file([source("key", keys)], { writeFreelist: true })), undefined);
    assert.equal(readBase(file([source("key", keys.slice(0, 2))])), undefined, "inline");
    assert.equal(readBase(file([source("other", keys)])), undefined, "no key bucket");
    // a key bucket holding a nested bucket (its first element flagged as one): the walk stops
    const nested = file([source("key", keys)]);
    const f = BoltFile.open(nested);
    const first = f.leaves(f.bucket("key")!.rootPgid, undefined, undefined).next().value!;
    nested.writeUInt32LE(1, first.pgid! * 1024 + 16);
    assert.equal(readBase(nested), undefined, "nested bucket");
  });

  test("a new key not above the kept bucket's last key, or a base of another bucket, is refused", () => {
    const full = new BoltFileWriter([source("key", arbitraryKeys(300))], { pageSizeBytes: 1024 });
    const base = full.appendBase(Buffer.from("key"))!;
    const old = Buffer.alloc(17); // below every key written
    assert.throws(
      () =>
        commitInPlace([source("key", [[old, Buffer.from("v")]])], base, { pageSizeBytes: 1024 }),
      BoltInputError,
    );
    assert.throws(
      () => commitInPlace([source("other", [])], base, { pageSizeBytes: 1024 }),
      BoltInputError,
    );
    assert.throws(
      () => commitInPlace([source("key", [])], base, { pageSizeBytes: 4096 }),
      BoltInputError,
    );
    assert.equal(
      new BoltFileWriter([source("key", [[old, Buffer.from("v")]])]).appendBase(Buffer.from("key")),
      undefined,
      "an inline bucket gives no base",
    );
    assert.throws(() => [...full.pageWrites()], BoltInputError);
    assert.throws(() => full.metaWrite(), BoltInputError);
  });
});

function arbitraryKeys(n: number): Entries {
  return Array.from({ length: n }, (_, i) => {
    const k = Buffer.alloc(17);
    k.writeBigUInt64BE(BigInt(i + 1), 0);
    return [k, Buffer.alloc(30, i & 0xff)];
  });
}

describe("bolt writer input errors", () => {
  const kv = (k: string, v = "v"): [Buffer, Buffer] => [Buffer.from(k), Buffer.from(v)];

  test("keys out of order or repeated are refused", () => {
    for (const entries of [
      [kv("b"), kv("a")],
      [kv("a"), kv("a")],
    ]) {
      assert.throws(
        () => new BoltFileWriter([source("x", entries)]),
        (e: unknown) => e instanceof BoltInputError && e.code === "BOLT_BAD_INPUT",
      );
    }
  });

  test("an empty key, an empty or duplicate bucket name are refused", () => {
    assert.throws(() => new BoltFileWriter([source("x", [kv("")])]), BoltInputError);
    assert.throws(() => new BoltFileWriter([source("", [])]), BoltInputError);
    assert.throws(() => new BoltFileWriter([source("x", []), source("x", [])]), BoltInputError);
  });

  test("a source that changes between the two passes is caught", () => {
    let calls = 0;
    const src: BoltBucketSource = {
      name: Buffer.from("x"),
      entries: () => {
        calls++;
        const n = calls === 1 ? 400 : 401;
        return Array.from({ length: n }, (_, i) => kv(`k${1000 + i}`, "value"));
      },
    };
    const w = new BoltFileWriter([src]);
    assert.throws(() => [...w.chunks()], /more entries than planned/);
  });
});

describe("bolt reader refuses corrupt files", () => {
  const entries: Entries = Array.from({ length: 3000 }, (_, i) => [
    Buffer.from(`key-${100_000 + i}`),
    Buffer.from(`value-${i}`),
  ]);
  const good = build(
    [source("key", entries), source("meta", [[Buffer.from("a"), Buffer.from("b")]])],
    {
      writeFreelist: true,
    },
  );
  const corrupt = (fn: (b: Buffer) => void): Buffer => {
    const b = Buffer.from(good);
    fn(b);
    return b;
  };
  const readsAll = (b: Buffer) => {
    const f = BoltFile.open(b);
    f.check();
    for (const [, bucket] of f.buckets()) for (const _ of bucket.entries());
  };
  const rootOfKey = BoltFile.open(good).bucket("key")!.rootPgid;

  test("both meta pages bad: no valid meta page", () => {
    const b = corrupt((b) => {
      b.writeUInt32LE(0, 16);
      b.writeUInt32LE(0, 4096 + 16 + 56);
    });
    assert.throws(
      () => BoltFile.open(b),
      (e: unknown) => {
        assert.ok(e instanceof BoltCorruptError);
        assert.equal(e.code, "BOLT_CORRUPT");
        assert.match(
          e.message,
          /no valid meta page \(meta 0: bad magic; meta 1: checksum mismatch\)/,
        );
        return true;
      },
    );
  });

  test("one bad meta checksum: the other meta is used, as bbolt does", () => {
    const b = corrupt((b) => b.writeUInt32LE(12345, 16 + 40));
    const f = BoltFile.open(b);
    assert.equal(f.meta.metaPage, 1);
    readsAll(b);
  });

  test("a truncated file names its size and the page count", () => {
    assert.throws(
      () => BoltFile.open(good.subarray(0, good.length - 4096)),
      /file is \d+ bytes, its meta says/,
    );
  });

  test("a page whose header id is wrong", () => {
    const b = corrupt((b) => b.writeBigUInt64LE(999n, rootOfKey * 4096));
    assert.throws(
      () => readsAll(b),
      (e: unknown) =>
        e instanceof BoltCorruptError &&
        e.pgid === rootOfKey &&
        /header says page 999/.test(e.message),
    );
  });

  test("a leaf element pointing past its page", () => {
    const b = corrupt((b) => b.writeUInt32LE(100_000, 3 * 4096 + 16 + 4));
    assert.throws(() => readsAll(b), /page 3: leaf: element 0 runs past the page/);
  });

  test("keys out of order across leaves", () => {
    // swap the first key bytes of leaf 3 so it sorts before leaf 2's keys
    const b = corrupt((b) => {
      const e = 4 * 4096 + 16;
      const pos = b.readUInt32LE(e + 4);
      b.write("a", e + pos, "latin1");
    });
    assert.throws(() => readsAll(b), /keys out of order/);
  });

  test("a branch that points at itself (a cycle) is cut off", () => {
    const b = corrupt((b) => b.writeBigUInt64LE(BigInt(rootOfKey), rootOfKey * 4096 + 16 + 8));
    assert.throws(() => readsAll(b), BoltCorruptError);
  });

  test("a page neither reachable nor free fails check()", () => {
    // point the root's second child at the first child's page: page 4 is then unreachable
    const b = corrupt((b) => {
      const first = b.readBigUInt64LE(rootOfKey * 4096 + 16 + 8);
      b.writeBigUInt64LE(first, rootOfKey * 4096 + 16 + 16 + 8);
    });
    assert.throws(() => BoltFile.open(b).check(), BoltCorruptError);
  });

  test("random byte damage never escapes as anything but BoltCorruptError", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.oneof(
              fc.nat(good.length - 1),
              // page headers and element tables, where damage matters most
              fc
                .tuple(fc.nat(good.length / 4096 - 1), fc.nat(96))
                .map(([page, off]) => page * 4096 + off),
            ),
            fc.integer({ min: 0, max: 255 }),
          ),
          {
            minLength: 1,
            maxLength: 8,
          },
        ),
        (edits) => {
          const b = corrupt((b) => {
            for (const [off, v] of edits) b[off] = v;
          });
          try {
            readsAll(b);
          } catch (e) {
            if (!(e instanceof BoltCorruptError)) throw e;
          }
        },
      ),
      { seed: SEED, numRuns: 300 },
    );
  });
});
