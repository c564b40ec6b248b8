/**
 * A bbolt-format db file reader (bbolt v1.3.6's layout, see bolt-format.ts): opens a file held in
 * memory, or one read page by page through a BoltByteSource (lib/server reads a member's db from
 * disk that way, so a restart never holds the whole file: issue 13, memory at scale), validates the meta pages as bbolt's meta.validate does (magic, version, FNV-64a
 * checksum; the valid meta with the higher txid wins), and iterates buckets, nested and inline
 * ones included. Every page it visits is checked (its header id is where it sits, leaf or branch
 * type, elements inside the page, keys strictly ascending, child ids below the high-water mark,
 * bounded depth), and `check()` adds bbolt's tx.Check: every page below the high-water mark is
 * reached exactly once or is free. Anything wrong throws BoltCorruptError; nothing is guessed.
 *
 * Keys and values handed out are views into the file buffer or into the block read for their page
 * (no copies): do not mutate them.
 */
import { BoltAppendBase, type BoltKeptLeaf } from "./bolt.js";
import { BoltCorruptError } from "./bolt-errors.js";
import {
  boltMagic,
  boltVersion,
  branchElementBytes,
  branchPageFlag,
  bucketHeaderBytes,
  bucketLeafFlag,
  fnv64a,
  freelistPageFlag,
  leafElementBytes,
  leafPageFlag,
  metaChecksummedBytes,
  metaPageFlag,
  noFreelistPgid,
  pageHeaderBytes,
} from "./bolt-format.js";

/** Deepest tree the reader follows; deeper means a cycle (bbolt trees are a few levels deep). */
export const boltMaxTreeDepth = 64;

/** What the chosen meta page says. */
export interface BoltMeta {
  pageSizeBytes: number;
  /** transaction id of the meta in use */
  txid: number;
  /** pages in use (meta.pgid, the high-water mark) */
  pageCount: number;
  /** root page of the root bucket */
  rootPgid: number;
  /** freelist page, or undefined when the file records none (NoFreelistSync) */
  freelistPgid: number | undefined;
  /** which meta page (0 or 1) is in use */
  metaPage: number;
}

interface Meta extends BoltMeta {
  rootSequence: bigint;
}

/** One leaf element as stored. */
interface LeafElement {
  flags: number;
  key: Buffer;
  value: Buffer;
}

/**
 * Random access to a db file's bytes, for files not held in memory (BoltFile.open reads pages
 * through it as it walks). lib/server implements it with positioned reads of the file.
 */
export interface BoltByteSource {
  /** The file's size in bytes. */
  readonly byteLength: number;
  /**
   * `length` bytes from byte `offset` (the caller stays inside byteLength), in a Buffer the
   * reader may keep: views into it outlive the call.
   */
  read(offset: number, length: number): Buffer;
}

/** Most pages one read-ahead block holds (256 KiB of 4 KiB pages). */
export const boltReadAheadMaxPages = 64;

/**
 * Where the reader gets page bytes: the whole file in memory, or blocks read from a source with
 * read-ahead: a read that starts where the previous block ended doubles the block (up to
 * boltReadAheadMaxPages); any other starts again at one page, so a file whose pages lie in tree
 * order (as our writer lays them out) costs a few large reads, and a scattered one (etcd's, after
 * many transactions) reads no more than it uses.
 */
class Pager {
  readonly #file: Buffer | undefined;
  readonly #src: BoltByteSource | undefined;
  #ps = 4096;
  #pageCount = 0;
  #block: Buffer = Buffer.alloc(0);
  #blockStart = 0;
  #blockPages = 0;
  #nextPages = 1;
  /** Out-parameters of page(): the buffer and where the page starts in it. */
  buf: Buffer = Buffer.alloc(0);
  off = 0;

  constructor(file: Buffer | undefined, src: BoltByteSource | undefined) {
    this.#file = file;
    this.#src = src;
  }

  get byteLength(): number {
    return this.#file?.length ?? this.#src!.byteLength;
  }

  /** Bytes [offset, offset + length) (the meta pages, before the geometry is known). */
  bytes(offset: number, length: number): Buffer {
    const n = Math.max(0, Math.min(length, this.byteLength - offset));
    if (this.#file !== undefined) return this.#file.subarray(offset, offset + n);
    return this.#src!.read(offset, n);
  }

  setGeometry(pageSizeBytes: number, pageCount: number): void {
    this.#ps = pageSizeBytes;
    this.#pageCount = pageCount;
  }

  /** Makes `buf`/`off` point at pages [pgid, pgid + pages) (the caller checked the bounds). */
  page(pgid: number, pages: number): void {
    const ps = this.#ps;
    if (this.#file !== undefined) {
      this.buf = this.#file;
      this.off = pgid * ps;
      return;
    }
    const start = this.#blockStart;
    if (pgid >= start && pgid + pages <= start + this.#blockPages) {
      this.buf = this.#block;
      this.off = (pgid - start) * ps;
      return;
    }
    const sequential = pgid === start + this.#blockPages;
    this.#nextPages = sequential ? Math.min(this.#nextPages * 2, boltReadAheadMaxPages) : 1;
    const count = Math.min(Math.max(pages, this.#nextPages), this.#pageCount - pgid);
    this.#block = this.#src!.read(pgid * ps, count * ps);
    this.#blockStart = pgid;
    this.#blockPages = count;
    this.buf = this.#block;
    this.off = 0;
  }
}

function u64(buf: Buffer, off: number, what: string, pgid?: number): number {
  const v = buf.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER))
    throw new BoltCorruptError(`${what} ${v} out of range`, pgid);
  return Number(v);
}

function parseMeta(pager: Pager, pageOff: number, metaPage: number): Meta | string {
  if (pager.byteLength < pageOff + pageHeaderBytes + 64) return `meta ${metaPage}: file too short`;
  const file = pager.bytes(pageOff, pageHeaderBytes + 64);
  const flags = file.readUInt16LE(8);
  const m = pageHeaderBytes;
  if (file.readUInt32LE(m) !== boltMagic) return `meta ${metaPage}: bad magic`;
  if (file.readUInt32LE(m + 4) !== boltVersion) {
    return `meta ${metaPage}: version ${file.readUInt32LE(m + 4)}, want ${boltVersion}`;
  }
  const sum = file.readBigUInt64LE(m + 56);
  if (sum !== 0n && sum !== fnv64a(file.subarray(m, m + metaChecksummedBytes))) {
    return `meta ${metaPage}: checksum mismatch`;
  }
  if ((flags & metaPageFlag) === 0) return `meta ${metaPage}: page flags 0x${flags.toString(16)}`;
  const ps = file.readUInt32LE(m + 8);
  if (ps < 512 || ps > 1 << 20 || (ps & (ps - 1)) !== 0) return `meta ${metaPage}: page size ${ps}`;
  const fl = file.readBigUInt64LE(m + 32);
  const pageCount = file.readBigUInt64LE(m + 40);
  const txid = file.readBigUInt64LE(m + 48);
  const root = file.readBigUInt64LE(m + 16);
  const max = BigInt(Number.MAX_SAFE_INTEGER);
  if (pageCount > max || txid > max) return `meta ${metaPage}: page count or txid out of range`;
  if (root < 2n || root >= pageCount) {
    return `meta ${metaPage}: root page ${root} outside [2, ${pageCount})`;
  }
  if (fl !== noFreelistPgid && (fl < 2n || fl >= pageCount)) {
    return `meta ${metaPage}: freelist page ${fl} outside [2, ${pageCount})`;
  }
  return {
    pageSizeBytes: ps,
    txid: Number(txid),
    pageCount: Number(pageCount),
    rootPgid: Number(root),
    rootSequence: file.readBigUInt64LE(m + 24),
    freelistPgid: fl === noFreelistPgid ? undefined : Number(fl),
    metaPage,
  };
}

/** A bucket of an open BoltFile: its plain entries and its nested buckets. */
export class BoltBucket {
  readonly #file: BoltFile;
  /** root page, or 0 for an inline bucket */
  readonly #rootPgid: number;
  readonly #inlinePage: Buffer | undefined;
  /** the bucket's sequence (bbolt NextSequence) */
  readonly sequence: bigint;

  /** @internal built by BoltFile */
  constructor(file: BoltFile, rootPgid: number, sequence: bigint, inlinePage?: Buffer) {
    this.#file = file;
    this.#rootPgid = rootPgid;
    this.sequence = sequence;
    this.#inlinePage = inlinePage;
  }

  /** True when the bucket is stored inside its parent's leaf (bbolt inline bucket). */
  get isInline(): boolean {
    return this.#rootPgid === 0;
  }

  /** The bucket's root page id (0 when inline). */
  get rootPgid(): number {
    return this.#rootPgid;
  }

  /** Plain (non-bucket) entries in key order, as views into the file. */
  *entries(): IterableIterator<[Buffer, Buffer]> {
    for (const e of this.#elements()) {
      if ((e.flags & bucketLeafFlag) === 0) yield [e.key, e.value];
    }
  }

  /**
   * The plain entries of entries(), in key order, without an object per entry: `fn` gets the
   * buffer holding the entry's page, the key at [keyStart, keyEnd) and the value at [keyEnd,
   * valueEnd), and where buf[0] is in the file (-1 when the bytes are not the file's: an inline
   * bucket's copy), so buf[i] is byte bufPosition + i of the file. The buffer is the file or a
   * block read for the page; views of it may be kept.
   */
  forEachEntry(
    fn: (
      buf: Buffer,
      keyStart: number,
      keyEnd: number,
      valueEnd: number,
      bufPosition: number,
    ) => void,
  ): void {
    this.#file.forEachElement(
      this.#rootPgid,
      this.#inlinePage,
      undefined,
      (buf, f, k, v, end, bufPosition) => {
        if ((f & bucketLeafFlag) === 0) fn(buf, k, v, end, bufPosition);
      },
    );
  }

  /** Nested buckets in name order. */
  *buckets(): IterableIterator<[Buffer, BoltBucket]> {
    for (const e of this.#elements()) {
      if ((e.flags & bucketLeafFlag) !== 0) yield [e.key, this.#file.openBucket(e.value, e.key)];
    }
  }

  /** The nested bucket `name`, or undefined. */
  bucket(name: string | Uint8Array): BoltBucket | undefined {
    const want = typeof name === "string" ? Buffer.from(name) : Buffer.from(name);
    for (const [k, b] of this.buckets()) if (k.equals(want)) return b;
    return undefined;
  }

  /** Plain entries and nested bucket entries, in key order. */
  #elements(): IterableIterator<LeafElement> {
    return this.#file.walk(this.#rootPgid, this.#inlinePage, undefined);
  }

  /** @internal visits this bucket's pages and its nested buckets' (BoltFile.check). */
  visitPages(onPage: (pgid: number, pages: number) => void): void {
    const file = this.#file;
    file.forEachElement(this.#rootPgid, this.#inlinePage, onPage, (buf, f, k, v, end) => {
      if ((f & bucketLeafFlag) !== 0) {
        file.openBucket(buf.subarray(v, end), buf.subarray(k, v)).visitPages(onPage);
      }
    });
  }
}

/**
 * An open bbolt-format file. `BoltFile.open(bytes)` validates the meta pages (throws
 * BoltCorruptError when neither is valid or the file is shorter than the meta's high-water mark);
 * pages are validated as they are read, and `check()` validates the whole file.
 */
export class BoltFile {
  readonly #pager: Pager;
  readonly #meta: Meta;

  private constructor(pager: Pager, meta: Meta) {
    this.#pager = pager;
    this.#meta = meta;
  }

  /**
   * Opens a file held in memory, or one read through `source` as pages are needed (a trailing
   * sha256 as etcdctl snapshot save appends may follow the pages: bytes past the high-water mark
   * are ignored). Errors of the source (an I/O error) pass through as they are.
   * @throws BoltCorruptError naming what is wrong with each meta page, or a short file.
   */
  static open(bytes: Uint8Array | BoltByteSource): BoltFile {
    const pager =
      bytes instanceof Uint8Array
        ? new Pager(
            Buffer.isBuffer(bytes)
              ? bytes
              : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
            undefined,
          )
        : new Pager(undefined, bytes);
    const m0 = parseMeta(pager, 0, 0);
    // bbolt reads the page size from meta 0 and falls back to the OS page size when it is bad
    const ps = typeof m0 === "string" ? 4096 : m0.pageSizeBytes;
    const m1 = parseMeta(pager, ps, 1);
    let meta: Meta;
    if (typeof m0 === "string" && typeof m1 === "string") {
      throw new BoltCorruptError(`no valid meta page (${m0}; ${m1})`);
    } else if (typeof m0 === "string") meta = m1 as Meta;
    else if (typeof m1 === "string") meta = m0;
    else meta = m1.txid > m0.txid ? m1 : m0;
    if (typeof m0 !== "string" && typeof m1 !== "string" && m0.pageSizeBytes !== m1.pageSizeBytes) {
      throw new BoltCorruptError(`meta pages disagree on the page size`);
    }
    const need = meta.pageCount * meta.pageSizeBytes;
    if (pager.byteLength < need) {
      throw new BoltCorruptError(
        `file is ${pager.byteLength} bytes, its meta says ${meta.pageCount} pages of ${meta.pageSizeBytes} bytes`,
      );
    }
    pager.setGeometry(meta.pageSizeBytes, meta.pageCount);
    return new BoltFile(pager, meta);
  }

  /** The meta page in use. */
  get meta(): BoltMeta {
    const { rootSequence: _rootSequence, ...m } = this.#meta;
    return m;
  }

  /** The root bucket (its nested buckets are the file's top-level buckets). */
  root(): BoltBucket {
    return new BoltBucket(this, this.#meta.rootPgid, this.#meta.rootSequence);
  }

  /** The top-level bucket `name`, or undefined. */
  bucket(name: string | Uint8Array): BoltBucket | undefined {
    return this.root().bucket(name);
  }

  /** Top-level buckets in name order. */
  buckets(): IterableIterator<[Buffer, BoltBucket]> {
    return this.root().buckets();
  }

  /** The page ids the freelist page lists (empty when the file records no freelist). */
  freePages(): number[] {
    const fl = this.#meta.freelistPgid;
    if (fl === undefined) return [];
    const { buf, off, end } = this.#page(fl);
    const flags = buf.readUInt16LE(off + 8);
    if ((flags & freelistPageFlag) === 0) {
      throw new BoltCorruptError(`freelist page has flags 0x${flags.toString(16)}`, fl);
    }
    let count = buf.readUInt16LE(off + 10);
    let first = off + pageHeaderBytes;
    if (count === 0xffff) {
      count = u64(buf, first, "freelist count", fl);
      first += 8;
    }
    if (first + 8 * count > end)
      throw new BoltCorruptError(`${count} free ids run past the page`, fl);
    const ids: number[] = [];
    for (let i = 0; i < count; i++) {
      const id = u64(buf, first + 8 * i, "free page id", fl);
      if (id < 2 || id >= this.#meta.pageCount) {
        throw new BoltCorruptError(`free page id ${id} outside [2, ${this.#meta.pageCount})`, fl);
      }
      ids.push(id);
    }
    return ids;
  }

  /**
   * What an in-place commit on this file needs (BoltFileWriter.planAppendInSteps), read from the
   * file rather than kept from its writer: how a member that restarts from its db file extends
   * that file at its first snapshot instead of rewriting it. The kept bucket `bucketName` (a
   * top-level one) keeps its leaves; every other page the meta in use reaches is replaceable,
   * every page below the high-water mark it does not reach is free (bbolt finds its free pages
   * the same way when the file records no freelist). Undefined when the file records a freelist
   * page, or when the bucket is absent, inline, empty or holds nested buckets. The kept bucket's
   * values are not read (a restart has just read them): its leaves' first keys come from the
   * branch elements above them, its entry count is its leaves' element counts (the caller checks
   * it against what it loaded). A generator that yields after about every `pagesPerStep` pages
   * visited, so the caller can spread the walk over event-loop turns.
   * @throws BoltCorruptError for a bad page met on the way, or a page reached twice.
   */
  *appendBaseInSteps(
    bucketName: Uint8Array,
    pagesPerStep: number,
  ): Generator<void, BoltAppendBase | undefined, void> {
    const meta = this.#meta;
    if (meta.freelistPgid !== undefined) return undefined;
    const ps = meta.pageSizeBytes;
    const reached = new Uint8Array(meta.pageCount);
    reached[0] = 1;
    reached[1] = 1;
    let pagesSinceYield = 0;
    const mark = (pgid: number, pages: number): void => {
      for (let i = 0; i < pages; i++) {
        if (reached[pgid + i] !== 0)
          throw new BoltCorruptError(`page ${pgid + i} reached twice`, pgid);
        reached[pgid + i] = 1;
      }
      pagesSinceYield += pages;
    };
    // the root bucket's own pages, then every other top-level bucket's (small: etcd's meta,
    // lease, members, auth buckets); the kept one is walked leaf by leaf below
    for (const _ of this.leaves(meta.rootPgid, undefined, mark)) {
      // the pages are marked as they are read
    }
    const name = Buffer.from(bucketName);
    let kept: BoltBucket | undefined;
    for (const [k, b] of this.root().buckets()) {
      if (k.equals(name)) kept = b;
      else if (!b.isInline) b.visitPages(mark);
    }
    if (kept === undefined || kept.isInline) return undefined;
    // The kept bucket, without reading its values: its branch pages whole; of each leaf its page
    // header and its element headers (flags, and where the last element ends: the leaf's size),
    // its first key taken from the branch element that points at it (what bbolt puts there; the
    // new branch level above the kept leaves is built from the same keys, so it seeks as the
    // old one did). The elements themselves were read and checked when the member loaded the file.
    const pager = this.#pager;
    const leaves: BoltKeptLeaf[] = [];
    const leafPages: number[] = [];
    let entryCount = 0;
    let lastLeaf = 0;
    /**
     * Adds leaf `pgid` (its first key `firstKey`, or read from the leaf when undefined); false
     * when it holds a nested bucket or nothing.
     */
    const addLeaf = (pgid: number, firstKey: Buffer | undefined): boolean => {
      const h = pager.bytes(pgid * ps, pageHeaderBytes);
      if (h.length < pageHeaderBytes || u64(h, 0, "page id", pgid) !== pgid) {
        throw new BoltCorruptError(`header is not page ${pgid}`, pgid);
      }
      const flags = h.readUInt16LE(8);
      if (flags !== leafPageFlag) {
        throw new BoltCorruptError(`expected a leaf page, flags 0x${flags.toString(16)}`, pgid);
      }
      const count = h.readUInt16LE(10);
      const pages = 1 + h.readUInt32LE(12);
      if (count === 0) return false; // an empty bucket: nothing to keep
      if (pgid + pages > meta.pageCount) {
        throw new BoltCorruptError(
          `${pages - 1} overflow pages run past the high-water mark`,
          pgid,
        );
      }
      const els = pager.bytes(pgid * ps + pageHeaderBytes, leafElementBytes * count);
      if (els.length < leafElementBytes * count) {
        throw new BoltCorruptError(`${count} elements run past the file`, pgid);
      }
      for (let i = 0; i < count; i++) {
        if ((els.readUInt32LE(leafElementBytes * i) & bucketLeafFlag) !== 0) return false;
      }
      const e = leafElementBytes * (count - 1);
      // bytes from the page's start to the end of the last element's value
      const bytes =
        pageHeaderBytes +
        e +
        els.readUInt32LE(e + 4) +
        els.readUInt32LE(e + 8) +
        els.readUInt32LE(e + 12);
      if (bytes > pages * ps) throw new BoltCorruptError(`leaf runs past its ${pages} pages`, pgid);
      if (firstKey === undefined) {
        const { buf, off, end } = this.#page(pgid);
        const el = new ElementAt();
        el.read(buf, off, end, 0, "leaf", pgid);
        firstKey = buf.subarray(el.keyStart, el.keyEnd);
      }
      mark(pgid, pages);
      leaves.push({ pgid, bytes, count, firstKey: Buffer.from(firstKey) });
      for (let i = 0; i < pages; i++) leafPages.push(pgid + i);
      entryCount += count;
      lastLeaf = pgid;
      return true;
    };
    const flagsOf = (pgid: number): number => pager.bytes(pgid * ps + 8, 2).readUInt16LE(0);
    if (flagsOf(kept.rootPgid) === leafPageFlag) {
      if (!addLeaf(kept.rootPgid, undefined)) return undefined;
    } else {
      // a stack of branch pages and the next child of each, as leaves() walks them
      const stack = [this.#frame(kept.rootPgid, 0, mark)];
      while (stack.length > 0) {
        const top = stack[stack.length - 1]!;
        if (top.next >= top.count) {
          stack.pop();
          continue;
        }
        const { key, child } = nextChild(top);
        if (child < 2 || child >= meta.pageCount) {
          throw new BoltCorruptError(
            `child page ${child} outside [2, ${meta.pageCount})`,
            top.pgid,
          );
        }
        if (flagsOf(child) === branchPageFlag) stack.push(this.#frame(child, stack.length, mark));
        else if (!addLeaf(child, key)) return undefined;
        if (pagesSinceYield >= pagesPerStep) {
          pagesSinceYield = 0;
          yield;
        }
      }
    }
    let last: { buf: Buffer; start: number; end: number } | undefined;
    if (entryCount > 0) {
      const { buf, off, end } = this.#page(lastLeaf);
      const el = new ElementAt();
      el.read(buf, off, end, leafHeader(buf, off, end, "leaf", lastLeaf) - 1, "leaf", lastLeaf);
      last = { buf, start: el.keyStart, end: el.keyEnd };
    }
    if (entryCount === 0 || last === undefined) return undefined;
    const isLeaf = new Uint8Array(meta.pageCount);
    for (const id of leafPages) isLeaf[id] = 1;
    const freePages: number[] = [];
    const replaceablePages: number[] = [];
    for (let id = 2; id < meta.pageCount; id++) {
      if (reached[id] === 0) freePages.push(id);
      else if (isLeaf[id] === 0) replaceablePages.push(id);
    }
    return BoltAppendBase.fromFile({
      leaves,
      bucketName: name,
      entryCount,
      lastKey: last.buf.subarray(last.start, last.end),
      pageCount: meta.pageCount,
      pageSizeBytes: ps,
      txid: meta.txid,
      metaPage: meta.metaPage,
      freePages,
      replaceablePages,
    });
  }

  /**
   * bbolt's tx.Check: every page of every bucket is readable and valid, no page is reached twice
   * or is both reached and free, no free id repeats, and (when the file stores a freelist) every
   * page below the high-water mark is reached or free. Returns the pages the meta in use reaches
   * (its two meta pages and its freelist page included): what bbolt counts as in use, its free
   * pages being the others below the high-water mark, whether or not the file lists them.
   * @throws BoltCorruptError on the first problem found.
   */
  check(): number {
    const { pageCount, freelistPgid } = this.#meta;
    let reached = 2;
    const state = new Uint8Array(pageCount); // 0 unseen, 1 reached, 2 free
    state[0] = 1;
    state[1] = 1;
    const reach = (pgid: number, pages: number) => {
      for (let i = 0; i < pages; i++) {
        const id = pgid + i;
        if (id >= pageCount) throw new BoltCorruptError(`runs past the high-water mark`, pgid);
        if (state[id] === 1) throw new BoltCorruptError(`page ${id} reached twice`, pgid);
        if (state[id] === 2) throw new BoltCorruptError(`page ${id} is reached and free`, pgid);
        state[id] = 1;
        reached++;
      }
    };
    if (freelistPgid !== undefined) {
      for (const id of this.freePages()) {
        if (state[id] === 2) throw new BoltCorruptError(`page ${id} freed twice`, freelistPgid);
        state[id] = 2;
      }
      const { pages } = this.#page(freelistPgid);
      reach(freelistPgid, pages);
    }
    this.root().visitPages(reach);
    if (freelistPgid === undefined) return reached;
    for (let id = 0; id < pageCount; id++) {
      if (state[id] === 0) throw new BoltCorruptError(`unreachable and not free`, id);
    }
    return reached;
  }

  /**
   * Page `pgid` with its overflow pages, checked against the file: the buffer holding it, where
   * it starts and ends there, and how many pages it spans.
   */
  #page(pgid: number): { buf: Buffer; off: number; end: number; pages: number } {
    const { pageSizeBytes: ps, pageCount } = this.#meta;
    if (pgid < 2 || pgid >= pageCount) {
      throw new BoltCorruptError(`page id ${pgid} outside [2, ${pageCount})`);
    }
    const pager = this.#pager;
    pager.page(pgid, 1);
    const id = pager.buf.readBigUInt64LE(pager.off);
    if (id !== BigInt(pgid)) throw new BoltCorruptError(`header says page ${id}`, pgid);
    const pages = 1 + pager.buf.readUInt32LE(pager.off + 12);
    if (pgid + pages > pageCount) {
      throw new BoltCorruptError(`${pages - 1} overflow pages run past the high-water mark`, pgid);
    }
    if (pages > 1) pager.page(pgid, pages);
    const { buf, off } = pager;
    return { buf, off, end: off + pages * ps, pages };
  }

  /** @internal a nested bucket from its leaf value (header, plus the page when inline). */
  openBucket(value: Buffer, name: Buffer): BoltBucket {
    const what = `bucket "${name.toString("latin1")}"`;
    if (value.length < bucketHeaderBytes) throw new BoltCorruptError(`${what}: value too short`);
    const root = u64(value, 0, `${what}: root page`);
    const seq = value.readBigUInt64LE(8);
    if (root !== 0) return new BoltBucket(this, root, seq);
    if (value.length < bucketHeaderBytes + pageHeaderBytes) {
      throw new BoltCorruptError(`${what}: inline bucket without a page`);
    }
    return new BoltBucket(this, 0, seq, value.subarray(bucketHeaderBytes));
  }

  /**
   * @internal the leaf elements of the tree at `rootPgid` (or of the inline page), in key order,
   * validating each page; `onPage` sees each page id visited and its page count.
   */
  *walk(
    rootPgid: number,
    inlinePage: Buffer | undefined,
    onPage: ((pgid: number, pages: number) => void) | undefined,
  ): IterableIterator<LeafElement> {
    let prev: Buffer | undefined;
    for (const p of this.leaves(rootPgid, inlinePage, onPage)) {
      for (const e of leafElements(p.buf, p.off, p.end, p.where, p.pgid)) {
        if (prev !== undefined && Buffer.compare(prev, e.key) >= 0) {
          throw new BoltCorruptError(`${p.where}: keys out of order`, p.pgid);
        }
        prev = e.key;
        yield e;
      }
    }
  }

  /**
   * @internal walk() without an object per element: `fn` gets the buffer of the element's page,
   * its flags, and where its key and value lie (key [keyStart, keyEnd), value [keyEnd,
   * valueEnd)). Same checks as walk(); `onPage` as walk's.
   */
  forEachElement(
    rootPgid: number,
    inlinePage: Buffer | undefined,
    onPage: ((pgid: number, pages: number) => void) | undefined,
    fn: (
      buf: Buffer,
      flags: number,
      keyStart: number,
      keyEnd: number,
      valueEnd: number,
      bufPosition: number,
    ) => void,
  ): void {
    // the previous key where it lies (page buffers are never reused, so it stays valid)
    let prev: Buffer | undefined;
    let prevStart = 0;
    let prevEnd = 0;
    const el = new ElementAt();
    for (const p of this.leaves(rootPgid, inlinePage, onPage)) {
      const { buf, off, end, where, pgid } = p;
      const count = leafHeader(buf, off, end, where, pgid);
      // the page starts at pgid * pageSize of the file and at `off` of buf (-1: not the file's)
      const bufPosition = pgid === undefined ? -1 : pgid * this.#meta.pageSizeBytes - off;
      for (let i = 0; i < count; i++) {
        el.read(buf, off, end, i, where, pgid);
        const k = el.keyStart;
        if (prev !== undefined && compareRanges(prev, prevStart, prevEnd, buf, k, el.keyEnd) >= 0) {
          throw new BoltCorruptError(`${where}: keys out of order`, pgid);
        }
        prev = buf;
        prevStart = k;
        prevEnd = el.keyEnd;
        fn(buf, el.flags, k, el.keyEnd, el.valueEnd, bufPosition);
      }
    }
  }

  /**
   * @internal the leaf pages of the tree at `rootPgid` (or the inline page) in key order: the
   * buffer holding each, where it starts and ends there. Branch pages are checked on the way
   * (element bounds, key order); leaves are checked by their readers.
   */
  *leaves(
    rootPgid: number,
    inlinePage: Buffer | undefined,
    onPage: ((pgid: number, pages: number) => void) | undefined,
  ): IterableIterator<LeafPage> {
    if (rootPgid === 0) {
      const page = inlinePage!;
      yield { buf: page, off: 0, end: page.length, where: "inline bucket", pgid: undefined };
      return;
    }
    // explicit stack of (page, next child index) so a deep tree does not recurse
    const stack = [this.#frame(rootPgid, 0, onPage)];
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      if (top.count === -1) {
        stack.pop();
        yield { buf: top.buf, off: top.off, end: top.end, where: "leaf", pgid: top.pgid };
        continue;
      }
      if (top.next >= top.count) {
        stack.pop();
        continue;
      }
      stack.push(this.#frame(nextChild(top).child, stack.length, onPage));
    }
  }

  /**
   * Page `pgid` at `depth` of a walk as a frame: a branch (its elements checked to fit the page)
   * with its next child 0, or a leaf (count -1); `onPage` sees the page id and its page count.
   */
  #frame(
    pgid: number,
    depth: number,
    onPage: ((pgid: number, pages: number) => void) | undefined,
  ): WalkFrame {
    if (depth >= boltMaxTreeDepth) {
      throw new BoltCorruptError(`tree deeper than ${boltMaxTreeDepth} levels (a cycle?)`, pgid);
    }
    const { buf, off, end, pages } = this.#page(pgid);
    onPage?.(pgid, pages);
    const flags = buf.readUInt16LE(off + 8);
    const count = buf.readUInt16LE(off + 10);
    if (flags === leafPageFlag) return { pgid, buf, off, end, count: -1, next: 0 };
    if (flags !== branchPageFlag) {
      throw new BoltCorruptError(
        `expected a leaf or branch page, flags 0x${flags.toString(16)}`,
        pgid,
      );
    }
    if (count === 0) throw new BoltCorruptError(`empty branch page`, pgid);
    if (off + pageHeaderBytes + branchElementBytes * count > end) {
      throw new BoltCorruptError(`${count} branch elements run past the page`, pgid);
    }
    return { pgid, buf, off, end, count, next: 0 };
  }
}

/** A page on a tree walk's stack: a branch and the next of its children to visit, or a leaf (count -1). */
interface WalkFrame {
  pgid: number;
  buf: Buffer;
  off: number;
  end: number;
  count: number;
  next: number;
  /** the key of the child visited before */
  prevKey?: Buffer;
}

/**
 * The next child of branch frame `top`, which it moves past: the key of its element (checked to
 * lie inside the page and to follow the one before) and the child's page id.
 */
function nextChild(top: WalkFrame): { key: Buffer; child: number } {
  const buf = top.buf;
  const e = top.off + pageHeaderBytes + branchElementBytes * top.next;
  const pos = buf.readUInt32LE(e);
  const ksize = buf.readUInt32LE(e + 4);
  if (e + pos + ksize > top.end || ksize === 0) {
    throw new BoltCorruptError(`branch element ${top.next} key runs past the page`, top.pgid);
  }
  const key = buf.subarray(e + pos, e + pos + ksize);
  if (top.prevKey !== undefined && Buffer.compare(top.prevKey, key) >= 0) {
    throw new BoltCorruptError(`branch keys out of order at element ${top.next}`, top.pgid);
  }
  top.prevKey = key;
  const child = u64(buf, e + 8, "child page id", top.pgid);
  top.next++;
  return { key, child };
}

/** A leaf page as BoltFile.leaves() hands it out. */
interface LeafPage {
  buf: Buffer;
  off: number;
  end: number;
  /** "leaf" or "inline bucket", for errors */
  where: string;
  pgid: number | undefined;
}

/** Byte-order comparison of a[aStart, aEnd) with b[bStart, bEnd) (JS for short keys). */
function compareRanges(
  a: Buffer,
  aStart: number,
  aEnd: number,
  b: Buffer,
  bStart: number,
  bEnd: number,
): number {
  const an = aEnd - aStart;
  const bn = bEnd - bStart;
  const n = an < bn ? an : bn;
  if (n > 32) return a.compare(b, bStart, bEnd, aStart, aEnd);
  for (let i = 0; i < n; i++) {
    const x = a[aStart + i]!;
    const y = b[bStart + i]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return an - bn;
}

/** Checks a leaf page's header and that its elements fit; returns the element count. */
function leafHeader(
  buf: Buffer,
  off: number,
  end: number,
  where: string,
  pgid: number | undefined,
): number {
  const flags = buf.readUInt16LE(off + 8);
  if (flags !== leafPageFlag) {
    throw new BoltCorruptError(
      `${where}: expected a leaf page, flags 0x${flags.toString(16)}`,
      pgid,
    );
  }
  const count = buf.readUInt16LE(off + 10);
  if (off + pageHeaderBytes + leafElementBytes * count > end) {
    throw new BoltCorruptError(`${where}: ${count} elements run past the page`, pgid);
  }
  return count;
}

/** Leaf element `i` of a page, read and checked (reused: no object per element). */
class ElementAt {
  flags = 0;
  keyStart = 0;
  keyEnd = 0;
  valueEnd = 0;

  /** Reads element `i` of the leaf page at `off`; checks it lies inside `end`, flags known. */
  read(buf: Buffer, off: number, end: number, i: number, where: string, pgid?: number): void {
    const e = off + pageHeaderBytes + leafElementBytes * i;
    const flags = buf.readUInt32LE(e);
    const k = e + buf.readUInt32LE(e + 4);
    const ksize = buf.readUInt32LE(e + 8);
    const vsize = buf.readUInt32LE(e + 12);
    if (ksize === 0 || k + ksize + vsize > end) {
      throw new BoltCorruptError(`${where}: element ${i} runs past the page`, pgid);
    }
    if ((flags & ~bucketLeafFlag) !== 0) {
      throw new BoltCorruptError(`${where}: element ${i} has flags 0x${flags.toString(16)}`, pgid);
    }
    this.flags = flags;
    this.keyStart = k;
    this.keyEnd = k + ksize;
    this.valueEnd = k + ksize + vsize;
  }
}

/** The elements of the leaf page at `off` (extent up to `end`), checked to lie inside it. */
function* leafElements(
  buf: Buffer,
  off: number,
  end: number,
  where: string,
  pgid: number | undefined,
): IterableIterator<LeafElement> {
  const count = leafHeader(buf, off, end, where, pgid);
  const el = new ElementAt();
  for (let i = 0; i < count; i++) {
    el.read(buf, off, end, i, where, pgid);
    yield {
      flags: el.flags,
      key: buf.subarray(el.keyStart, el.keyEnd),
      value: buf.subarray(el.keyEnd, el.valueEnd),
    };
  }
}
