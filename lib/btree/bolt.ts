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
 * - write (chunks()): walks the sources again and yields the file in page order, in fresh
 *   zero-filled buffers of about `chunkBytes`.
 *
 * Page order: meta 0, meta 1, [freelist], then for each non-inline bucket in name order its
 * leaves left to right and its branch levels bottom-up (so its root page is its last), and last
 * the root bucket's pages (meta.root). Every page below the high-water mark is reachable, so the
 * freelist is empty.
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
  /** The bucket's sequence (bbolt NextSequence); 0 when omitted. */
  readonly sequence?: bigint;
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

/** Passed to the constructor by planInSteps: plan later, in steps. */
const deferPlanning: unique symbol = Symbol("deferPlanning");

/** One planned node: where it goes, how big it is, and its first key (for the level above). */
interface NodePlan {
  pgid: number;
  /** node size in bytes (header + elements + keys + values) */
  bytes: number;
  count: number;
  firstKey: Buffer;
}

/** A planned bucket. `inline` set: no pages of its own. */
interface BucketPlan {
  source: BoltBucketSource;
  name: Buffer;
  flags: number;
  inline: Buffer | undefined;
  leaves: NodePlan[];
  /** branch levels bottom-up; levels[i] are the parents of levels[i-1] (or of the leaves) */
  levels: NodePlan[][];
  rootPgid: number;
  entryCount: number;
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
  readonly nodes: NodePlan[] = [];
  #cur: NodePlan | undefined;

  constructor(thresholdBytes: number) {
    this.#thresholdBytes = thresholdBytes;
  }

  /** Adds one element of `elementBytes` (element header + key + value) whose key is `key`. */
  add(elementBytes: number, key: Uint8Array): void {
    const cur = this.#cur;
    if (
      cur === undefined ||
      cur.count >= maxElementsPerPage ||
      (cur.count >= minKeysPerPage && cur.bytes + elementBytes > this.#thresholdBytes)
    ) {
      const n: NodePlan = { pgid: 0, bytes: pageHeaderBytes, count: 0, firstKey: copyBytes(key) };
      this.nodes.push(n);
      this.#cur = n;
    }
    const n = this.#cur!;
    n.bytes += elementBytes;
    n.count++;
  }
}

/**
 * Writes a bbolt-format file from top-level buckets. The constructor plans the layout (one pass
 * over every source; throws BoltInputError on unsorted or oversized input or a duplicate bucket
 * name); `sizeBytes` is then the exact file size and `chunks()` yields the file.
 */
export class BoltFileWriter {
  readonly #opts: BoltWriteOptions;
  readonly #sources: BoltBucketSource[];
  #buckets: BucketPlan[] = [];
  #root: BucketPlan | undefined;
  #freelistPgid: number | undefined;
  #highWaterPgid = 0;

  /**
   * Plans the whole file now (O(entries) on the calling turn). For a large store use
   * planInSteps, which does the same work in bounded steps.
   */
  constructor(
    buckets: readonly BoltBucketSource[],
    options: Partial<BoltWriteOptions> = {},
    planning: typeof deferPlanning | undefined = undefined,
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

  *#planAll(entriesPerStep: number): Generator<void, void, void> {
    const o = this.#opts;
    let next = o.writeFreelist ? 3 : 2;
    this.#freelistPgid = o.writeFreelist ? 2 : undefined;
    const budget = { left: entriesPerStep, perStep: entriesPerStep };
    for (const src of this.#sources) {
      const plan: BucketPlan = yield* this.#plan(src, 0, true, budget);
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
  ): Generator<void, BucketPlan, void> {
    const ps = this.#opts.pageSizeBytes;
    const packer = new NodePacker(Math.floor(ps * this.#opts.fillPercent));
    const inlineMaxBytes = ps / 4;
    // entries kept while the bucket may still be inline (at most pageSize / 4 bytes of them)
    let small: [Buffer, Buffer][] | undefined = mayInline ? [] : undefined;
    let inlineBytes = pageHeaderBytes;
    // the previous key, copied (the source's arrays may be reused views)
    let prev = Buffer.alloc(64);
    let prevBytes = -1;
    let count = 0;
    const name = view(src.name);
    for (const [k, v] of src.entries()) {
      const key = view(k);
      if (key.length === 0 || key.length > boltMaxKeyBytes) {
        throw new BoltInputError(`bucket "${name.toString("latin1")}": key of ${key.length} bytes`);
      }
      if (v.length > boltMaxValueBytes) {
        throw new BoltInputError(`bucket "${name.toString("latin1")}": value of ${v.length} bytes`);
      }
      if (prevBytes >= 0 && prev.compare(key, 0, key.length, 0, prevBytes) >= 0) {
        throw new BoltInputError(
          `bucket "${name.toString("latin1")}": keys not strictly ascending at entry ${count}`,
        );
      }
      const elementBytes = leafElementBytes + key.length + v.length;
      packer.add(elementBytes, key);
      if (small !== undefined) {
        inlineBytes += elementBytes;
        if (inlineBytes > inlineMaxBytes) small = undefined;
        else small.push([copyBytes(key), copyBytes(v)]);
      }
      if (key.length > prev.length) prev = Buffer.alloc(Math.max(key.length, 2 * prev.length));
      key.copy(prev, 0);
      prevBytes = key.length;
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
      leaves: [],
      levels: [],
      rootPgid: 0,
      entryCount: count,
    };
    if (small !== undefined) {
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
    if (plan.leaves.length === 0) {
      // an empty bucket that may not be inline (the root bucket): one empty leaf page
      plan.leaves.push({ pgid: 0, bytes: pageHeaderBytes, count: 0, firstKey: Buffer.alloc(0) });
    }
    let level = plan.leaves;
    while (level.length > 1) {
      const up = new NodePacker(Math.floor(ps * this.#opts.fillPercent));
      for (const child of level) up.add(branchElementBytes + child.firstKey.length, child.firstKey);
      plan.levels.push(up.nodes);
      level = up.nodes;
    }
    return plan;
  }

  /** Gives a planned bucket's pages their ids from `next`; returns the next free id. */
  #assign(plan: BucketPlan, next: number): number {
    if (plan.inline !== undefined) return next;
    const ps = this.#opts.pageSizeBytes;
    for (const nodes of [plan.leaves, ...plan.levels]) {
      for (const n of nodes) {
        n.pgid = next;
        next += Math.ceil(n.bytes / ps);
      }
    }
    const top = plan.levels.length > 0 ? plan.levels[plan.levels.length - 1]! : plan.leaves;
    plan.rootPgid = top[0]!.pgid;
    return next;
  }

  /**
   * Pass 2: the file in page order as zero-filled buffers of about `chunkBytes` (a node bigger
   * than that comes in one buffer of its own). Each yielded buffer is fresh; the caller may keep
   * it. Throws BoltInputError if a source yields different entries than it did while planning.
   */
  *chunks(): Generator<Buffer, void, void> {
    const root = this.#planned();
    const o = this.#opts;
    const ps = o.pageSizeBytes;
    const out = new ChunkOut(o.chunkBytes);
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

  *#writeBucket(b: BucketPlan, out: ChunkOut): Generator<Buffer, void, void> {
    if (b.inline !== undefined) return;
    const ps = this.#opts.pageSizeBytes;
    const what = `bucket "${b.name.toString("latin1")}"`;
    const it = b.source.entries()[Symbol.iterator]();
    const batch: [Uint8Array, Uint8Array][] = [];
    let seen = 0;
    for (const leaf of b.leaves) {
      batch.length = 0;
      let bytes = pageHeaderBytes;
      for (let i = 0; i < leaf.count; i++) {
        const r = it.next();
        if (r.done === true) throw new BoltInputError(`${what}: fewer entries than planned`);
        const [k, v] = r.value;
        bytes += leafElementBytes + k.length + v.length;
        batch.push([k, v]);
        seen++;
      }
      if (bytes !== leaf.bytes) {
        throw new BoltInputError(`${what}: entries changed between the plan and the write`);
      }
      const pages = Math.ceil(leaf.bytes / ps);
      const p = out.take(pages * ps);
      writeLeaf(p.buf, p.off, leaf.pgid, batch, b.flags);
      p.buf.writeUInt32LE(pages - 1, p.off + 12);
      yield* out.drain();
    }
    if (it.next().done !== true || seen !== b.entryCount) {
      throw new BoltInputError(`${what}: more entries than planned`);
    }
    let children = b.leaves;
    for (const level of b.levels) {
      let c = 0;
      for (const node of level) {
        const pages = Math.ceil(node.bytes / ps);
        const p = out.take(pages * ps);
        writeBranch(p.buf, p.off, node.pgid, children.slice(c, c + node.count), pages - 1);
        c += node.count;
        yield* out.drain();
      }
      children = level;
    }
  }
}

/** Chunked output: page-aligned regions handed out of zero-filled buffers. */
class ChunkOut {
  readonly #chunkBytes: number;
  #buf: Buffer;
  #used = 0;
  #ready: Buffer[] = [];

  constructor(chunkBytes: number) {
    this.#chunkBytes = chunkBytes;
    this.#buf = Buffer.alloc(chunkBytes);
  }

  /** A zeroed region of `bytes` to write a node into. */
  take(bytes: number): { buf: Buffer; off: number } {
    if (this.#used + bytes > this.#buf.length) {
      if (this.#used > 0) this.#ready.push(this.#buf.subarray(0, this.#used));
      this.#buf = Buffer.alloc(Math.max(this.#chunkBytes, bytes));
      this.#used = 0;
    }
    const off = this.#used;
    this.#used += bytes;
    return { buf: this.#buf, off };
  }

  /** Chunks that are complete. */
  *drain(): Generator<Buffer, void, void> {
    while (this.#ready.length > 0) yield this.#ready.shift()!;
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

function writeBranch(
  buf: Buffer,
  off: number,
  pgid: number,
  children: readonly NodePlan[],
  overflow: number,
): void {
  writeHeader(buf, off, pgid, branchPageFlag, children.length, overflow);
  let data = off + pageHeaderBytes + branchElementBytes * children.length;
  for (let i = 0; i < children.length; i++) {
    const c = children[i]!;
    const e = off + pageHeaderBytes + branchElementBytes * i;
    buf.writeUInt32LE(data - e, e);
    buf.writeUInt32LE(c.firstKey.length, e + 4);
    buf.writeBigUInt64LE(BigInt(c.pgid), e + 8);
    c.firstKey.copy(buf, data);
    data += c.firstKey.length;
  }
}
