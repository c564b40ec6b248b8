/**
 * A bbolt-format db file writer (DESIGN §1 "snapshot / db file"): given top-level buckets as
 * sorted (key, value) sources, it lays out the file bbolt (go.etcd.io/bbolt v1.3.6, etcd 3.4's)
 * opens, checks (`tx.Check`) and modifies: two meta pages, an optional freelist page, leaf and
 * branch pages, overflow pages for nodes larger than a page, and inline buckets where bbolt would
 * inline them (a bucket of no nested buckets whose one leaf takes at most pageSize / 4 bytes,
 * bbolt's Bucket.inlineable). See bolt-format.ts for the byte layout.
 *
 * Two passes over each bucket, so memory stays bounded by the chunk size and not the data:
 * - plan (constructor): walks every source once, checks order and sizes, decides which entries
 *   go on which page (bbolt's split rule: a page takes entries up to pageSize * fillPercent,
 *   at least minKeysPerPage of them) and keeps only the first key of each page for the branch
 *   levels above; so the file size is known before the first byte, as etcd's Snapshot RPC needs
 *   (it sends remaining_bytes from the first message).
 * - write (chunks()): walks the sources again and yields the file in page order, in zero-filled
 *   buffers of about `chunkBytes` (fresh ones, or a few reused ones for a caller that is done with
 *   each before the next).
 *
 * Page order: meta 0, meta 1, [freelist], then for each non-inline bucket in name order its
 * leaves left to right and its branch levels bottom-up (so its root page is its last), and last
 * the root bucket's pages (meta.root). Every page below the high-water mark is reachable, so the
 * freelist is empty.
 *
 * In place (planAppendInSteps), as a bbolt transaction commits into its file: one bucket whose
 * keys only ever grow at the end (mvcc's key bucket: revisions) keeps every leaf page it has, and
 * its new entries go on new leaves after the file's high-water mark; its branch pages, every other
 * bucket and the root bucket are laid out again. Their new pages take pages no longer reachable
 * from the meta in use (bbolt's freelist, pages freed by the commit before it) or go after the
 * high-water mark, so nothing the meta in use reaches is overwritten; the new meta goes last, on
 * the other meta page, with the next txid (bbolt's Tx.Commit: pages, fdatasync, meta,
 * fdatasync). A crash before the meta is durable leaves the previous commit whole, and a torn meta
 * fails its checksum, so bbolt (and BoltFile) open the previous one. Free pages are recorded as
 * etcd 3.4 records them: not at all (no freelist page; bbolt finds them by walking the tree).
 */
import { BoltInputError } from "./bolt-errors.js";
import {
  boltMagic,
  boltMaxKeyBytes,
  boltMaxValueBytes,
  boltVersion,
  branchElementBytes,
  branchPageFlag,
  bucketHeaderBytes,
  bucketLeafFlag,
  defaultBoltPageSizeBytes,
  fnv64a,
  freelistPageFlag,
  leafElementBytes,
  leafPageFlag,
  maxElementsPerPage,
  metaChecksummedBytes,
  metaPageFlag,
  minKeysPerPage,
  noFreelistPgid,
  pageHeaderBytes,
} from "./bolt-format.js";

/**
 * A bucket's entries one at a time without an object per entry: after next() returns true, the
 * entry's key is keyBuf[keyStart, keyEnd) and its value valueBuf[valueStart, valueEnd), until the
 * next call (the buffers may be reused: the writer copies what it keeps).
 */
export interface BoltEntryCursor {
  next(): boolean;
  readonly keyBuf: Buffer;
  readonly keyStart: number;
  readonly keyEnd: number;
  readonly valueBuf: Buffer;
  readonly valueStart: number;
  readonly valueEnd: number;
  /**
   * Called by chunks() once the current entry's value is laid out in the file: valueBuf[valueStart]
   * lands at byte `filePosition` of the file (not called for an inline bucket's entries, nor while
   * planning). Lets a source read its values back from the file it was written to (lib/mvcc).
   */
  placed?(filePosition: number): void;
}

/** One top-level bucket to write. */
export interface BoltBucketSource {
  /** The bucket's name (its key in the root bucket); non-empty. */
  readonly name: Uint8Array;
  /**
   * A fresh iterator over the bucket's entries in strictly ascending key order (byte order, as
   * bytes.Compare). Called twice (plan, then write); both walks must yield the same entries. The
   * arrays may be reused views: the writer copies what it keeps.
   */
  entries(): Iterable<readonly [Uint8Array, Uint8Array]>;
  /**
   * The same entries through a fresh cursor, which the writer then uses instead of entries(): a
   * large bucket (mvcc's key bucket at 1M keys) costs no object per entry and per walk. With
   * `forPlanning` the writer reads only the keys and each value's length (valueEnd − valueStart),
   * so the cursor may leave the value bytes unwritten (a store whose values are encoded, or read
   * from a file, then does that once per write instead of twice).
   */
  cursor?(forPlanning?: boolean): BoltEntryCursor;
  /** The bucket's sequence (bbolt NextSequence); 0 when omitted. */
  readonly sequence?: bigint;
}

/** entries() as a BoltEntryCursor. */
class IteratorCursor implements BoltEntryCursor {
  readonly #it: Iterator<readonly [Uint8Array, Uint8Array]>;
  keyBuf: Buffer = Buffer.alloc(0);
  keyStart = 0;
  keyEnd = 0;
  valueBuf: Buffer = Buffer.alloc(0);
  valueStart = 0;
  valueEnd = 0;

  constructor(entries: Iterable<readonly [Uint8Array, Uint8Array]>) {
    this.#it = entries[Symbol.iterator]();
  }

  next(): boolean {
    const r = this.#it.next();
    if (r.done === true) return false;
    const [k, v] = r.value;
    this.keyBuf = view(k);
    this.keyEnd = k.length;
    this.valueBuf = view(v);
    this.valueEnd = v.length;
    return true;
  }
}

function cursorOf(src: BoltBucketSource, forPlanning = false): BoltEntryCursor {
  return src.cursor !== undefined ? src.cursor(forPlanning) : new IteratorCursor(src.entries());
}

/**
 * The entries of a bucket small enough to be inline (at most a quarter page), copied, from a full
 * cursor: the planning walk read only value lengths. Throws BoltInputError when the walk does not
 * give the `count` entries planned.
 */
function inlineEntriesOf(cur: BoltEntryCursor, count: number, name: Buffer): [Buffer, Buffer][] {
  const out: [Buffer, Buffer][] = [];
  while (cur.next()) {
    out.push([
      copyBytes(cur.keyBuf.subarray(cur.keyStart, cur.keyEnd)),
      copyBytes(cur.valueBuf.subarray(cur.valueStart, cur.valueEnd)),
    ]);
  }
  if (out.length !== count) {
    throw new BoltInputError(
      `bucket "${name.toString("latin1")}": entries changed between the plan and the write`,
    );
  }
  return out;
}

/**
 * Copies from[start, end) to `to` at `at`. Node 20's Buffer.copy makes a view of the source
 * range; a byte loop is cheaper for short keys, a Uint8Array view + set() for the rest.
 */
function copyRange(to: Buffer, at: number, from: Buffer, start: number, end: number): void {
  const n = end - start;
  if (n <= 32) for (let i = 0; i < n; i++) to[at + i] = from[start + i]!;
  else to.set(new Uint8Array(from.buffer, from.byteOffset + start, n), at);
}

/** Options of BoltFileWriter. */
export interface BoltWriteOptions {
  /** Page size in bytes, a power of two in [1024, 65536]; etcd's files use 4096. */
  pageSizeBytes: number;
  /**
   * How full the writer packs a page before starting the next, in (0.1, 1] (bbolt's
   * Bucket.FillPercent; bbolt's default is 0.5, etcd's defrag uses 0.9). 1 gives the smallest file.
   */
  fillPercent: number;
  /** Target size of the buffers chunks() yields (a node larger than this gets its own buffer). */
  chunkBytes: number;
  /** The txid of meta page 0; meta page 1 gets txid - 1, as bbolt's Tx.WriteTo. At least 1. */
  txid: number;
  /**
   * Write a freelist page (empty: the file has no free pages). false records "no freelist" in the
   * meta, as etcd 3.4's backend (bbolt NoFreelistSync) does; bbolt then rebuilds it by scanning.
   */
  writeFreelist: boolean;
}

/** Defaults: etcd's page size, full pages, 1 MiB chunks, no freelist page (as etcd 3.4). */
export const defaultBoltWriteOptions: BoltWriteOptions = {
  pageSizeBytes: defaultBoltPageSizeBytes,
  fillPercent: 1,
  chunkBytes: 1 << 20,
  txid: 2,
  writeFreelist: false,
};

/**
 * The layout of one commit of a file, for the next in-place commit (planAppendInSteps): the kept
 * bucket's leaves (pgids and first keys), its entry count and last key, the high-water mark, the
 * meta in use, the pages free now and the pages the next commit frees. Made only by
 * BoltFileWriter.appendBase; opaque otherwise.
 */
export class BoltAppendBase {
  /** @internal */
  readonly leaves: NodeList;
  /** name of the bucket whose leaves are kept */
  readonly bucketName: Buffer;
  /** entries in that bucket */
  readonly entryCount: number;
  /** its last key (every key of the next commit's new entries must be greater) */
  readonly lastKey: Buffer;
  /** pages in the file (meta.pgid, the high-water mark) */
  readonly pageCount: number;
  readonly pageSizeBytes: number;
  /** txid of the meta in use, and its page (0 or 1) */
  readonly txid: number;
  readonly metaPage: number;
  /** pages below the high-water mark the meta in use does not reach, ascending */
  readonly freePages: readonly number[];
  /** pages the meta in use reaches other than the kept leaves: free once the next commit is */
  readonly replaceablePages: readonly number[];

  /** @internal */
  constructor(f: BoltAppendBaseCounts & { leaves: NodeList; bucketName: Buffer; lastKey: Buffer }) {
    this.leaves = f.leaves;
    this.bucketName = f.bucketName;
    this.entryCount = f.entryCount;
    this.lastKey = f.lastKey;
    this.pageCount = f.pageCount;
    this.pageSizeBytes = f.pageSizeBytes;
    this.txid = f.txid;
    this.metaPage = f.metaPage;
    this.freePages = f.freePages;
    this.replaceablePages = f.replaceablePages;
  }

  /** Bytes of the file the meta in use reaches (etcd's dbSizeInUse): pages not free. */
  get sizeInUseBytes(): number {
    return (this.pageCount - this.freePages.length) * this.pageSizeBytes;
  }

  /**
   * @internal The base of a file as read back from it (BoltFile.appendBaseInSteps) rather than as
   * its writer planned it: the same fields, the kept bucket's leaves given one by one in key
   * order (their page ids, node bytes, element counts and first keys).
   */
  static fromFile(
    f: BoltAppendBaseCounts & {
      leaves: readonly BoltKeptLeaf[];
      bucketName: Uint8Array;
      lastKey: Uint8Array;
    },
  ): BoltAppendBase {
    const leaves = new NodeList();
    for (const l of f.leaves) {
      leaves.push(l.bytes, l.count, view(l.firstKey), 0, l.firstKey.length, l.pgid);
    }
    return new BoltAppendBase({
      ...f,
      leaves,
      bucketName: copyBytes(view(f.bucketName)),
      lastKey: copyBytes(view(f.lastKey)),
    });
  }
}

/** A BoltAppendBase's fields other than its leaves, bucket name and last key. */
type BoltAppendBaseCounts = Pick<
  BoltAppendBase,
  | "entryCount"
  | "pageCount"
  | "pageSizeBytes"
  | "txid"
  | "metaPage"
  | "freePages"
  | "replaceablePages"
>;

/** One leaf of a file's kept bucket as BoltFile.appendBaseInSteps reads it (BoltAppendBase.fromFile). */
export interface BoltKeptLeaf {
  pgid: number;
  /** the node's bytes: page header, element headers, keys and values */
  bytes: number;
  /** its elements */
  count: number;
  firstKey: Uint8Array;
}

/** One positioned write of an in-place commit (BoltFileWriter.pageWrites). */
export interface BoltPageWrite {
  /** byte offset in the file */
  position: number;
  bytes: Buffer;
}

/** Passed to the constructor by planInSteps: plan later, in steps. */
const deferPlanning: unique symbol = Symbol("deferPlanning");

/**
 * The planned nodes of one level, in columns: where each goes (pgid), how big it is in bytes
 * (header + elements + keys + values), how many elements it holds, and its first key (for the
 * level above), the keys back to back in one buffer. A 1M-key bucket plans ~75k leaves; as
 * objects with a key Buffer each they were ~13 MiB of V8 heap for every snapshot.
 */
class NodeList {
  #n = 0;
  #pgid = new Float64Array(16);
  #bytes = new Float64Array(16);
  #count = new Int32Array(16);
  #keyStart = new Int32Array(17);
  #keys = Buffer.alloc(256);

  get length(): number {
    return this.#n;
  }

  /**
   * Adds a node of `bytes` and `count` elements whose first key is key[start, end), at page `pgid`
   * (0: not placed yet).
   */
  push(bytes: number, count: number, key: Buffer, start: number, end: number, pgid = 0): void {
    const i = this.#n;
    if (i === this.#count.length) this.#grow();
    const at = this.#keyStart[i]!;
    const len = end - start;
    if (at + len > this.#keys.length) {
      const keys = Buffer.alloc(Math.max(at + len, 2 * this.#keys.length));
      this.#keys.copy(keys, 0, 0, at);
      this.#keys = keys;
    }
    copyRange(this.#keys, at, key, start, end);
    this.#keyStart[i + 1] = at + len;
    this.#pgid[i] = pgid;
    this.#bytes[i] = bytes;
    this.#count[i] = count;
    this.#n = i + 1;
  }

  /** Adds `bytes` and one element to the last node. */
  addToLast(bytes: number): void {
    this.#bytes[this.#n - 1]! += bytes;
    this.#count[this.#n - 1]!++;
  }

  pgid(i: number): number {
    return this.#pgid[i]!;
  }

  setPgid(i: number, pgid: number): void {
    this.#pgid[i] = pgid;
  }

  bytes(i: number): number {
    return this.#bytes[i]!;
  }

  count(i: number): number {
    return this.#count[i]!;
  }

  /** The buffer holding the first keys: node i's is [keyStart(i), keyEnd(i)). */
  get keys(): Buffer {
    return this.#keys;
  }

  keyStart(i: number): number {
    return this.#keyStart[i]!;
  }

  keyEnd(i: number): number {
    return this.#keyStart[i + 1]!;
  }

  /**
   * A new list of `a`'s nodes then `b`'s (pgids, sizes, counts and first keys copied; neither is
   * changed).
   */
  static concat(a: NodeList, b: NodeList): NodeList {
    const out = new NodeList();
    for (const from of [a, b]) {
      for (let i = 0; i < from.length; i++) {
        const start = from.keyStart(i);
        out.push(from.bytes(i), from.count(i), from.keys, start, from.keyEnd(i), from.pgid(i));
      }
    }
    return out;
  }

  #grow(): void {
    const n = this.#count.length * 2;
    const pgid = new Float64Array(n);
    pgid.set(this.#pgid);
    this.#pgid = pgid;
    const bytes = new Float64Array(n);
    bytes.set(this.#bytes);
    this.#bytes = bytes;
    const count = new Int32Array(n);
    count.set(this.#count);
    this.#count = count;
    const keyStart = new Int32Array(n + 1);
    keyStart.set(this.#keyStart);
    this.#keyStart = keyStart;
  }
}

/** A planned bucket. `inline` set: no pages of its own. */
interface BucketPlan {
  source: BoltBucketSource;
  name: Buffer;
  flags: number;
  inline: Buffer | undefined;
  leaves: NodeList;
  /** branch levels bottom-up; levels[i] are the parents of levels[i-1] (or of the leaves) */
  levels: NodeList[];
  rootPgid: number;
  entryCount: number;
  /** leaves already in the file (an in-place commit's kept bucket): not written again */
  keptLeaves: number;
  /** the last key walked (a copy), for BoltAppendBase */
  lastKey: Buffer | undefined;
}

function copyBytes(u: Uint8Array): Buffer {
  return Buffer.from(u);
}

function view(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** Greedy page packing with bbolt's split rule. */
class NodePacker {
  readonly #thresholdBytes: number;
  readonly nodes = new NodeList();

  constructor(thresholdBytes: number) {
    this.#thresholdBytes = thresholdBytes;
  }

  /**
   * Adds one element of `elementBytes` (element header + key + value) whose key is
   * key[start, end).
   */
  add(elementBytes: number, key: Buffer, start = 0, end = key.length): void {
    const nodes = this.nodes;
    const last = nodes.length - 1;
    if (
      last < 0 ||
      nodes.count(last) >= maxElementsPerPage ||
      (nodes.count(last) >= minKeysPerPage &&
        nodes.bytes(last) + elementBytes > this.#thresholdBytes)
    ) {
      nodes.push(pageHeaderBytes, 0, key, start, end);
    }
    nodes.addToLast(elementBytes);
  }
}

/**
 * Writes a bbolt-format file from top-level buckets. The constructor plans the layout (one pass
 * over every source; throws BoltInputError on unsorted or oversized input or a duplicate bucket
 * name); `sizeBytes` is then the exact file size and `chunks()` yields the file. An in-place
 * commit (planAppendInSteps) yields its pages with pageWrites() and its meta with metaWrite().
 */
export class BoltFileWriter {
  readonly #opts: BoltWriteOptions;
  readonly #sources: BoltBucketSource[];
  #buckets: BucketPlan[] = [];
  #root: BucketPlan | undefined;
  #freelistPgid: number | undefined;
  #highWaterPgid = 0;
  /** the commit this one is made in place on (planAppendInSteps), else undefined */
  readonly #base: BoltAppendBase | undefined;
  /** free pages an in-place commit may take (ascending), and how many it took */
  #free: readonly number[] = [];
  #freeTaken = 0;
  /** the meta page this writer's meta goes on and its txid */
  #metaPage = 0;
  #txid: number;

  /**
   * Plans the whole file now (O(entries) on the calling turn). For a large store use
   * planInSteps, which does the same work in bounded steps.
   */
  constructor(
    buckets: readonly BoltBucketSource[],
    options: Partial<BoltWriteOptions> = {},
    planning: typeof deferPlanning | undefined = undefined,
    base: BoltAppendBase | undefined = undefined,
  ) {
    const o = { ...defaultBoltWriteOptions, ...options };
    const ps = o.pageSizeBytes;
    if (!Number.isInteger(ps) || ps < 1024 || ps > 65536 || (ps & (ps - 1)) !== 0) {
      throw new BoltInputError(`page size must be a power of two in [1024, 65536], got ${ps}`);
    }
    if (!(o.fillPercent > 0.1 && o.fillPercent <= 1)) {
      throw new BoltInputError(`fillPercent must be in (0.1, 1], got ${o.fillPercent}`);
    }
    if (!Number.isSafeInteger(o.txid) || o.txid < 1) {
      throw new BoltInputError(`txid must be a positive integer, got ${o.txid}`);
    }
    if (!Number.isInteger(o.chunkBytes) || o.chunkBytes < ps) {
      throw new BoltInputError(
        `chunkBytes must be an integer >= the page size, got ${o.chunkBytes}`,
      );
    }
    this.#opts = o;
    this.#base = base;
    this.#txid = o.txid;
    if (base !== undefined) {
      if (base.pageSizeBytes !== ps) {
        throw new BoltInputError(`page size ${ps} differs from the file's ${base.pageSizeBytes}`);
      }
      if (o.writeFreelist) {
        throw new BoltInputError("an in-place commit writes no freelist page (writeFreelist)");
      }
      if (!buckets.some((b) => Buffer.compare(view(b.name), base.bucketName) === 0)) {
        throw new BoltInputError(`no bucket "${base.bucketName.toString("latin1")}" to append to`);
      }
      this.#free = base.freePages;
      this.#metaPage = 1 - base.metaPage;
      this.#txid = base.txid + 1;
    }

    const sorted = [...buckets].sort((a, b) => Buffer.compare(view(a.name), view(b.name)));
    for (let i = 0; i < sorted.length; i++) {
      const name = sorted[i]!.name;
      if (name.length === 0 || name.length > boltMaxKeyBytes) {
        throw new BoltInputError(`bucket name of ${name.length} bytes`);
      }
      if (i > 0 && Buffer.compare(view(sorted[i - 1]!.name), view(name)) === 0) {
        throw new BoltInputError(`duplicate bucket name "${view(name).toString("latin1")}"`);
      }
    }
    this.#sources = sorted;
    if (planning !== deferPlanning) {
      for (const _ of this.#planAll(Number.POSITIVE_INFINITY));
    }
  }

  /**
   * The same writer as `new BoltFileWriter(buckets, options)`, planned in steps: each next()
   * walks at most `entriesPerStep` entries, so a caller can yield the event loop in between
   * (the Snapshot RPC on a large store). The generator's return value is the planned writer.
   * Throws BoltInputError as the constructor does, from next().
   */
  static *planInSteps(
    buckets: readonly BoltBucketSource[],
    options: Partial<BoltWriteOptions>,
    entriesPerStep: number,
  ): Generator<void, BoltFileWriter, void> {
    if (!(entriesPerStep >= 1)) {
      throw new BoltInputError(`entriesPerStep must be at least 1, got ${entriesPerStep}`);
    }
    const w = new BoltFileWriter(buckets, options, deferPlanning);
    yield* w.#planAll(entriesPerStep);
    return w;
  }

  /**
   * An in-place commit on the file whose current commit `base` describes (module comment): the
   * bucket named base.bucketName gets, from its source, only its new entries (every key greater
   * than base.lastKey; they go on new leaves after base's leaves), the other buckets all of
   * theirs. Planned in steps as planInSteps; the generator returns the writer, whose pageWrites()
   * go to the file first (then fdatasync) and metaWrite() last (then fdatasync). Throws
   * BoltInputError as planInSteps does, and when a new key is not greater than base.lastKey.
   */
  static *planAppendInSteps(
    buckets: readonly BoltBucketSource[],
    options: Partial<BoltWriteOptions>,
    base: BoltAppendBase,
    entriesPerStep: number,
  ): Generator<void, BoltFileWriter, void> {
    if (!(entriesPerStep >= 1)) {
      throw new BoltInputError(`entriesPerStep must be at least 1, got ${entriesPerStep}`);
    }
    const w = new BoltFileWriter(buckets, options, deferPlanning, base);
    yield* w.#planAll(entriesPerStep);
    return w;
  }

  *#planAll(entriesPerStep: number): Generator<void, void, void> {
    const o = this.#opts;
    const base = this.#base;
    let next = base !== undefined ? base.pageCount : o.writeFreelist ? 3 : 2;
    this.#freelistPgid = o.writeFreelist ? 2 : undefined;
    const budget = { left: entriesPerStep, perStep: entriesPerStep };
    for (const src of this.#sources) {
      const kept =
        base !== undefined && Buffer.compare(view(src.name), base.bucketName) === 0
          ? base
          : undefined;
      const plan: BucketPlan = yield* this.#plan(src, 0, true, budget, kept);
      next = this.#assign(plan, next);
      this.#buckets.push(plan);
    }
    // The root bucket: one bucket-flagged entry per bucket, never inline (meta.root is a page).
    const rootSource: BoltBucketSource = {
      name: Buffer.from("root"),
      entries: () => this.#rootEntries(),
    };
    const root: BucketPlan = yield* this.#plan(rootSource, bucketLeafFlag, false, budget);
    this.#root = root;
    next = this.#assign(root, next);
    this.#highWaterPgid = next;
  }

  #planned(): BucketPlan {
    if (this.#root === undefined) {
      throw new BoltInputError("the writer is not planned yet (run planInSteps to its end)");
    }
    return this.#root;
  }

  /** The file's exact size in bytes (high-water mark × page size). */
  get sizeBytes(): number {
    this.#planned();
    return this.#highWaterPgid * this.#opts.pageSizeBytes;
  }

  /** Pages in the file (bbolt's meta.pgid, the high-water mark). */
  get pageCount(): number {
    this.#planned();
    return this.#highWaterPgid;
  }

  /** The page holding the root bucket's root node (meta.root.root). */
  get rootPgid(): number {
    return this.#planned().rootPgid;
  }

  *#rootEntries(): Generator<readonly [Uint8Array, Uint8Array]> {
    for (const b of this.#buckets) yield [b.name, this.#bucketValue(b)];
  }

  #bucketValue(b: BucketPlan): Buffer {
    if (b.inline !== undefined) return b.inline;
    const v = Buffer.alloc(bucketHeaderBytes);
    v.writeBigUInt64LE(BigInt(b.rootPgid), 0);
    v.writeBigUInt64LE(b.source.sequence ?? 0n, 8);
    return v;
  }

  /** Pass 1 over one bucket: order and size checks, page packing, inline decision. */
  *#plan(
    src: BoltBucketSource,
    flags: number,
    mayInline: boolean,
    budget: { left: number; perStep: number },
    kept?: BoltAppendBase,
  ): Generator<void, BucketPlan, void> {
    const ps = this.#opts.pageSizeBytes;
    const packer = new NodePacker(Math.floor(ps * this.#opts.fillPercent));
    const inlineMaxBytes = ps / 4;
    // entries kept while the bucket may still be inline (at most pageSize / 4 bytes of them)
    let small: [Buffer, Buffer][] | undefined = mayInline && kept === undefined ? [] : undefined;
    let inlineBytes = pageHeaderBytes;
    // the previous key, copied (the source's buffers may be reused); in place, the file's last
    let prev = Buffer.alloc(Math.max(64, kept?.lastKey.length ?? 0));
    let prevBytes = -1;
    if (kept !== undefined) {
      kept.lastKey.copy(prev);
      prevBytes = kept.lastKey.length;
    }
    let count = 0;
    const name = view(src.name);
    // keys and value lengths only: an inline bucket's values are read again below
    const cur = cursorOf(src, true);
    while (cur.next()) {
      const key = cur.keyBuf;
      const ks = cur.keyStart;
      const keyBytes = cur.keyEnd - ks;
      const valueBytes = cur.valueEnd - cur.valueStart;
      if (keyBytes === 0 || keyBytes > boltMaxKeyBytes) {
        throw new BoltInputError(`bucket "${name.toString("latin1")}": key of ${keyBytes} bytes`);
      }
      if (valueBytes > boltMaxValueBytes) {
        throw new BoltInputError(
          `bucket "${name.toString("latin1")}": value of ${valueBytes} bytes`,
        );
      }
      if (prevBytes >= 0 && prev.compare(key, ks, cur.keyEnd, 0, prevBytes) >= 0) {
        throw new BoltInputError(
          `bucket "${name.toString("latin1")}": keys not strictly ascending at entry ${count}`,
        );
      }
      const elementBytes = leafElementBytes + keyBytes + valueBytes;
      packer.add(elementBytes, key, ks, cur.keyEnd);
      if (small !== undefined) {
        inlineBytes += elementBytes;
        if (inlineBytes > inlineMaxBytes) small = undefined;
        else {
          small.push([
            copyBytes(key.subarray(ks, cur.keyEnd)),
            copyBytes(cur.valueBuf.subarray(cur.valueStart, cur.valueEnd)),
          ]);
        }
      }
      if (keyBytes > prev.length) prev = Buffer.alloc(Math.max(keyBytes, 2 * prev.length));
      copyRange(prev, 0, key, ks, cur.keyEnd);
      prevBytes = keyBytes;
      count++;
      if (--budget.left <= 0) {
        budget.left = budget.perStep;
        yield;
      }
    }
    const plan: BucketPlan = {
      source: src,
      name: copyBytes(name),
      flags,
      inline: undefined,
      leaves: new NodeList(),
      levels: [],
      rootPgid: 0,
      entryCount: count,
      keptLeaves: 0,
      lastKey: prevBytes >= 0 ? copyBytes(prev.subarray(0, prevBytes)) : undefined,
    };
    if (small !== undefined) {
      if (src.cursor !== undefined) small = inlineEntriesOf(cursorOf(src), count, name);
      // bbolt's inline bucket value: header with root 0, then the leaf page itself
      const page = Buffer.alloc(inlineBytes);
      writeLeaf(page, 0, 0, small, flags);
      const value = Buffer.alloc(bucketHeaderBytes + inlineBytes);
      value.writeBigUInt64LE(src.sequence ?? 0n, 8);
      page.copy(value, bucketHeaderBytes);
      plan.inline = value;
      return plan;
    }
    plan.leaves = packer.nodes;
    if (kept !== undefined) {
      plan.leaves = NodeList.concat(kept.leaves, packer.nodes);
      plan.keptLeaves = kept.leaves.length;
    }
    if (plan.leaves.length === 0) {
      // an empty bucket that may not be inline (the root bucket): one empty leaf page
      plan.leaves.push(pageHeaderBytes, 0, Buffer.alloc(0), 0, 0);
    }
    let level = plan.leaves;
    while (level.length > 1) {
      const up = new NodePacker(Math.floor(ps * this.#opts.fillPercent));
      const keys = level.keys;
      for (let i = 0; i < level.length; i++) {
        const start = level.keyStart(i);
        const end = level.keyEnd(i);
        up.add(branchElementBytes + end - start, keys, start, end);
      }
      plan.levels.push(up.nodes);
      level = up.nodes;
    }
    return plan;
  }

  /**
   * Gives a planned bucket's pages their ids from `next`; returns the next id after them. In place,
   * kept leaves keep theirs, new leaves go at `next` (together, in order), and other one-page
   * nodes take the free pages first (this.#free).
   */
  #assign(plan: BucketPlan, next: number): number {
    if (plan.inline !== undefined) return next;
    const ps = this.#opts.pageSizeBytes;
    const keptBucket = plan.keptLeaves > 0;
    const inPlace = this.#base !== undefined;
    for (const nodes of [plan.leaves, ...plan.levels]) {
      const isLeaves = nodes === plan.leaves;
      for (let i = isLeaves ? plan.keptLeaves : 0; i < nodes.length; i++) {
        const pages = Math.ceil(nodes.bytes(i) / ps);
        if (
          inPlace &&
          !(keptBucket && isLeaves) &&
          pages === 1 &&
          this.#freeTaken < this.#free.length
        ) {
          nodes.setPgid(i, this.#free[this.#freeTaken++]!);
        } else {
          nodes.setPgid(i, next);
          next += pages;
        }
      }
    }
    const top = plan.levels.length > 0 ? plan.levels[plan.levels.length - 1]! : plan.leaves;
    plan.rootPgid = top.pgid(0);
    return next;
  }

  /**
   * Pass 2: the file in page order as zero-filled buffers of about `chunkBytes` (a node bigger
   * than that comes in one buffer of its own). Each yielded buffer is fresh and the caller may
   * keep it, unless `reuse`: then a yielded buffer is valid only until the caller asks for the next
   * one (its memory is written again), for a caller that writes each chunk out before going on.
   * Throws BoltInputError if a source yields different entries than it did while planning.
   */
  *chunks(reuse = false): Generator<Buffer, void, void> {
    const root = this.#planned();
    if (this.#base !== undefined) {
      throw new BoltInputError("an in-place commit is written with pageWrites() and metaWrite()");
    }
    const o = this.#opts;
    const ps = o.pageSizeBytes;
    const out = new ChunkOut(o.chunkBytes, reuse);
    for (let i = 0; i < 2; i++) {
      const p = out.take(ps);
      this.#writeMeta(p.buf, p.off, i, o.txid - i);
      yield* out.drain();
    }
    if (this.#freelistPgid !== undefined) {
      const p = out.take(ps);
      writeHeader(p.buf, p.off, this.#freelistPgid, freelistPageFlag, 0, 0);
    }
    for (const b of this.#buckets) yield* this.#writeBucket(b, out);
    yield* this.#writeBucket(root, out);
    yield* out.flush();
  }

  /**
   * An in-place commit's pages (planAppendInSteps), as positioned writes of about `chunkBytes`
   * each (consecutive pages together), every buffer fresh: the new leaves of the kept bucket, and
   * every page of the rest. None of them is a page the meta in use reaches. Throws
   * BoltInputError if a source yields other entries than it did while planning.
   */
  *pageWrites(): Generator<BoltPageWrite, void, void> {
    const root = this.#planned();
    if (this.#base === undefined) throw new BoltInputError("not an in-place commit");
    const out = new RunOut(this.#opts.chunkBytes, this.#opts.pageSizeBytes);
    for (const b of this.#buckets) yield* this.#writeBucket(b, out);
    yield* this.#writeBucket(root, out);
    yield* out.flush();
  }

  /**
   * The meta page of an in-place commit: written after pageWrites() are durable, on the meta page
   * the meta in use is not on, with the next txid.
   */
  metaWrite(): BoltPageWrite {
    this.#planned();
    if (this.#base === undefined) throw new BoltInputError("not an in-place commit");
    const ps = this.#opts.pageSizeBytes;
    const bytes = Buffer.alloc(ps);
    this.#writeMeta(bytes, 0, this.#metaPage, this.#txid);
    return { position: this.#metaPage * ps, bytes };
  }

  /**
   * What a next in-place commit on the file this writer wrote needs (once this one is durable):
   * undefined when `bucketName` is inline or absent, or the file has a freelist page. For an
   * in-place commit, `bucketName` must be its kept bucket.
   */
  appendBase(bucketName: Uint8Array): BoltAppendBase | undefined {
    const root = this.#planned();
    const name = view(bucketName);
    const base = this.#base;
    if (this.#opts.writeFreelist) return undefined;
    if (base !== undefined && Buffer.compare(name, base.bucketName) !== 0) {
      throw new BoltInputError("an in-place commit keeps the leaves of its own bucket only");
    }
    const plan = this.#buckets.find((b) => Buffer.compare(b.name, name) === 0);
    if (plan === undefined || plan.inline !== undefined) return undefined;
    const ps = this.#opts.pageSizeBytes;
    const replaceable: number[] = [];
    for (const p of [...this.#buckets, root]) {
      if (p.inline !== undefined) continue;
      for (const nodes of p === plan ? p.levels : [p.leaves, ...p.levels]) {
        for (let i = 0; i < nodes.length; i++) {
          const pages = Math.ceil(nodes.bytes(i) / ps);
          for (let k = 0; k < pages; k++) replaceable.push(nodes.pgid(i) + k);
        }
      }
    }
    replaceable.sort((a, b) => a - b);
    const free =
      base === undefined
        ? []
        : [...this.#free.slice(this.#freeTaken), ...base.replaceablePages].sort((a, b) => a - b);
    return new BoltAppendBase({
      leaves: plan.leaves,
      bucketName: copyBytes(name),
      entryCount: (base?.entryCount ?? 0) + plan.entryCount,
      lastKey: plan.lastKey ?? base?.lastKey ?? Buffer.alloc(0),
      pageCount: this.#highWaterPgid,
      pageSizeBytes: ps,
      txid: this.#txid,
      metaPage: this.#metaPage,
      freePages: free,
      replaceablePages: replaceable,
    });
  }

  #writeMeta(buf: Buffer, off: number, pgid: number, txid: number): void {
    writeHeader(buf, off, pgid, metaPageFlag, 0, 0);
    const m = off + pageHeaderBytes;
    buf.writeUInt32LE(boltMagic, m);
    buf.writeUInt32LE(boltVersion, m + 4);
    buf.writeUInt32LE(this.#opts.pageSizeBytes, m + 8);
    buf.writeUInt32LE(0, m + 12);
    buf.writeBigUInt64LE(BigInt(this.#planned().rootPgid), m + 16);
    buf.writeBigUInt64LE(0n, m + 24);
    buf.writeBigUInt64LE(
      this.#freelistPgid === undefined ? noFreelistPgid : BigInt(this.#freelistPgid),
      m + 32,
    );
    buf.writeBigUInt64LE(BigInt(this.#highWaterPgid), m + 40);
    buf.writeBigUInt64LE(BigInt(txid), m + 48);
    buf.writeBigUInt64LE(fnv64a(buf.subarray(m, m + metaChecksummedBytes)), m + 56);
  }

  *#writeBucket<T>(b: BucketPlan, out: PageOut<T>): Generator<T, void, void> {
    if (b.inline !== undefined) return;
    const ps = this.#opts.pageSizeBytes;
    const what = `bucket "${b.name.toString("latin1")}"`;
    const cur = cursorOf(b.source);
    let seen = 0;
    const leaves = b.leaves;
    for (let l = b.keptLeaves; l < leaves.length; l++) {
      const count = leaves.count(l);
      const pages = Math.ceil(leaves.bytes(l) / ps);
      const p = out.take(pages * ps, leaves.pgid(l));
      // the leaf in place, as writeLeaf lays it out: elements first, then keys and values
      writeHeader(p.buf, p.off, leaves.pgid(l), leafPageFlag, count, pages - 1);
      const leafPosition = leaves.pgid(l) * ps;
      let data = p.off + pageHeaderBytes + leafElementBytes * count;
      const end = p.off + leaves.bytes(l);
      for (let i = 0; i < count; i++) {
        if (!cur.next()) throw new BoltInputError(`${what}: fewer entries than planned`);
        const keyBytes = cur.keyEnd - cur.keyStart;
        const valueBytes = cur.valueEnd - cur.valueStart;
        if (data + keyBytes + valueBytes > end) {
          throw new BoltInputError(`${what}: entries changed between the plan and the write`);
        }
        const e = p.off + pageHeaderBytes + leafElementBytes * i;
        p.buf.writeUInt32LE(b.flags, e);
        p.buf.writeUInt32LE(data - e, e + 4);
        p.buf.writeUInt32LE(keyBytes, e + 8);
        p.buf.writeUInt32LE(valueBytes, e + 12);
        copyRange(p.buf, data, cur.keyBuf, cur.keyStart, cur.keyEnd);
        data += keyBytes;
        copyRange(p.buf, data, cur.valueBuf, cur.valueStart, cur.valueEnd);
        cur.placed?.(leafPosition + (data - p.off));
        data += valueBytes;
        seen++;
      }
      if (data !== end) {
        throw new BoltInputError(`${what}: entries changed between the plan and the write`);
      }
      yield* out.drain();
    }
    if (cur.next() || seen !== b.entryCount) {
      throw new BoltInputError(`${what}: more entries than planned`);
    }
    let children = b.leaves;
    for (const level of b.levels) {
      let c = 0;
      for (let i = 0; i < level.length; i++) {
        const pages = Math.ceil(level.bytes(i) / ps);
        const p = out.take(pages * ps, level.pgid(i));
        writeBranch(p.buf, p.off, level.pgid(i), children, c, level.count(i), pages - 1);
        c += level.count(i);
        yield* out.drain();
      }
      children = level;
    }
  }
}

/** Where #writeBucket lays its nodes: a zeroed region of `bytes` for the node at page `pgid`. */
interface PageOut<T> {
  take(bytes: number, pgid: number): { buf: Buffer; off: number };
  /** What is complete so far. */
  drain(): Generator<T, void, void>;
}

/**
 * Positioned output of an in-place commit: nodes on consecutive pages share a buffer (up to
 * `chunkBytes`), each buffer yielded with the file position of its first page.
 */
class RunOut implements PageOut<BoltPageWrite> {
  readonly #chunkBytes: number;
  readonly #pageBytes: number;
  #buf = Buffer.alloc(0);
  #position = 0;
  #used = 0;
  readonly #ready: BoltPageWrite[] = [];

  constructor(chunkBytes: number, pageBytes: number) {
    this.#chunkBytes = chunkBytes;
    this.#pageBytes = pageBytes;
  }

  take(bytes: number, pgid: number): { buf: Buffer; off: number } {
    const position = pgid * this.#pageBytes;
    if (position !== this.#position + this.#used || this.#used + bytes > this.#buf.length) {
      this.#retire();
      this.#buf = Buffer.alloc(Math.max(this.#chunkBytes, bytes));
      this.#position = position;
    }
    const off = this.#used;
    this.#used += bytes;
    return { buf: this.#buf, off };
  }

  *drain(): Generator<BoltPageWrite, void, void> {
    while (this.#ready.length > 0) yield this.#ready.shift()!;
  }

  *flush(): Generator<BoltPageWrite, void, void> {
    this.#retire();
    yield* this.drain();
  }

  #retire(): void {
    if (this.#used > 0) {
      this.#ready.push({ position: this.#position, bytes: this.#buf.subarray(0, this.#used) });
    }
    this.#buf = Buffer.alloc(0);
    this.#used = 0;
  }
}

/**
 * Chunked output: page-aligned regions handed out of zero-filled buffers. With `reuse`, a buffer
 * of `chunkBytes` that drain() or flush() yielded is zero-filled and handed out again once the
 * consumer asks for the next chunk (issue 13: a 1M-key snapshot wrote ~4,000 fresh 64 KiB
 * buffers, each a malloc below glibc's mmap threshold whose hole could stay resident).
 */
class ChunkOut implements PageOut<Buffer> {
  readonly #chunkBytes: number;
  readonly #reuse: boolean;
  #buf: Buffer;
  #used = 0;
  #ready: Buffer[] = [];
  /** Yielded buffers of chunkBytes the consumer is done with (reuse only). */
  readonly #spare: Buffer[] = [];

  constructor(chunkBytes: number, reuse: boolean) {
    this.#chunkBytes = chunkBytes;
    this.#reuse = reuse;
    this.#buf = Buffer.alloc(chunkBytes);
  }

  /** A zeroed region of `bytes` to write a node into (the next in page order). */
  take(bytes: number, _pgid?: number): { buf: Buffer; off: number } {
    if (this.#used + bytes > this.#buf.length) {
      if (this.#used > 0) this.#ready.push(this.#buf.subarray(0, this.#used));
      const spare = bytes <= this.#chunkBytes ? this.#spare.pop() : undefined;
      this.#buf =
        spare === undefined ? Buffer.alloc(Math.max(this.#chunkBytes, bytes)) : spare.fill(0);
      this.#used = 0;
    }
    const off = this.#used;
    this.#used += bytes;
    return { buf: this.#buf, off };
  }

  /** Chunks that are complete. */
  *drain(): Generator<Buffer, void, void> {
    while (this.#ready.length > 0) {
      const c = this.#ready.shift()!;
      yield c;
      this.#recycle(c);
    }
  }

  /** Everything left, including the partly filled chunk. */
  *flush(): Generator<Buffer, void, void> {
    yield* this.drain();
    if (this.#used > 0) {
      const last = this.#buf.subarray(0, this.#used);
      this.#used = 0;
      this.#buf = Buffer.alloc(0);
      yield last;
    }
    this.#spare.length = 0;
  }

  /** After the consumer asked for the chunk after `c`: keeps c's buffer for take() (reuse). */
  #recycle(c: Buffer): void {
    if (!this.#reuse || c.buffer.byteLength !== this.#chunkBytes || c.byteOffset !== 0) return;
    this.#spare.push(Buffer.from(c.buffer, 0, this.#chunkBytes));
  }
}

function writeHeader(
  buf: Buffer,
  off: number,
  pgid: number,
  flags: number,
  count: number,
  overflow: number,
): void {
  buf.writeBigUInt64LE(BigInt(pgid), off);
  buf.writeUInt16LE(flags, off + 8);
  buf.writeUInt16LE(count, off + 10);
  buf.writeUInt32LE(overflow, off + 12);
}

/** Writes a leaf node (header with overflow 0, elements, keys and values) at `off`. */
function writeLeaf(
  buf: Buffer,
  off: number,
  pgid: number,
  entries: readonly (readonly [Uint8Array, Uint8Array])[],
  elementFlags: number,
): void {
  writeHeader(buf, off, pgid, leafPageFlag, entries.length, 0);
  let data = off + pageHeaderBytes + leafElementBytes * entries.length;
  for (let i = 0; i < entries.length; i++) {
    const [k, v] = entries[i]!;
    const e = off + pageHeaderBytes + leafElementBytes * i;
    buf.writeUInt32LE(elementFlags, e);
    buf.writeUInt32LE(data - e, e + 4);
    buf.writeUInt32LE(k.length, e + 8);
    buf.writeUInt32LE(v.length, e + 12);
    buf.set(k, data);
    data += k.length;
    buf.set(v, data);
    data += v.length;
  }
}

/** Writes a branch node over children [from, from + count) of the level below at `off`. */
function writeBranch(
  buf: Buffer,
  off: number,
  pgid: number,
  children: NodeList,
  from: number,
  count: number,
  overflow: number,
): void {
  writeHeader(buf, off, pgid, branchPageFlag, count, overflow);
  let data = off + pageHeaderBytes + branchElementBytes * count;
  for (let i = 0; i < count; i++) {
    const c = from + i;
    const start = children.keyStart(c);
    const end = children.keyEnd(c);
    const e = off + pageHeaderBytes + branchElementBytes * i;
    buf.writeUInt32LE(data - e, e);
    buf.writeUInt32LE(end - start, e + 4);
    buf.writeBigUInt64LE(BigInt(children.pgid(c)), e + 8);
    copyRange(buf, data, children.keys, start, end);
    data += end - start;
  }
}
