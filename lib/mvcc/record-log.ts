/**
 * Every record the store holds, as rows of typed arrays (no object per record or per key):
 * etcd's bbolt "key" bucket (revision -> KeyValue) in memory.
 *
 * Memory at scale (issue 13): with a Rec object (~104 bytes on Node 20's 64-bit heap) and a key
 * Buffer view (~96 bytes) per key, plus the key index's arrays, 1M keys of 256 B cost ~255 bytes
 * of V8 heap per key on top of their bytes. Here a record is one 48-byte row and a key one
 * 16-byte KeyTable slot plus its entry in the key index (lib/btree SlotBTree, 12 bytes in a
 * mostly full node), in typed arrays the garbage collector does not scan; each row or slot is
 * contiguous, so reading one costs a cache miss or two, not one per field. Reads make short-lived
 * Rec objects.
 *
 * Rows are appended in revision order (the store writes revisions in order, restore sorts first),
 * so the row number is the record's position in revision order and the log needs no separate
 * ordering. Rows never change once appended: a snapshot (MvccStore.snapshot) keeps reading rows
 * [0, count) of the log it captured while new rows are added. A compaction builds a new log (and
 * key table, with fresh arenas) from the survivors instead of editing this one (compaction.ts).
 *
 * Each row links to the previous record of its key (`prevRow`), and the key table holds each
 * key's newest row, so a key's history is a chain from newest to oldest.
 */
import { ByteArena, Rec, copyInto, emptyBuffer } from "./record.js";
import type { KeyValue } from "../proto/gen/mvccpb/kv.js";
import { Slabs } from "./slabs.js";
import { mvccAssert } from "./errors.js";
import type { SlotKeys } from "../btree/index.js";

/**
 * A db file that holds the values of rows (see "Values in a db file" on RecordLog): lib/mvcc only
 * reads it through this; the server opens it and owns its descriptor (lib/server value-file.ts).
 */
export interface ValueFile {
  /**
   * Reads `length` bytes at byte `position` of the file into out[at, at + length), all of them.
   * Never returns with fewer: a failed read (EIO, a short file) ends the member, as a SIGBUS on a
   * bad mmapped page ends etcd, rather than hand out wrong bytes.
   */
  read(out: Uint8Array, at: number, length: number, position: number): void;
  /** The file's size in bytes (reads stay below it). */
  readonly sizeBytes: number;
}

/**
 * Readers that visit rows in row order (the snapshot writer's cursor, HashKV) read a value file
 * through one block read ahead: a file written from rows in order holds their values in the same
 * order, so one read of readAheadBytes serves hundreds of 256-byte values instead of one pread
 * each (~2 µs with Node's binding). One block for the process, allocated on first use and kept
 * (no allocation per snapshot); interleaved readers just read their block again.
 */
const readAheadBytes = 256 * 1024;
const readAhead = {
  file: undefined as ValueFile | undefined,
  start: 0,
  length: 0,
  block: Buffer.alloc(0),
};

/**
 * Point reads (a range, a watch event, a prev_kv) go through a small cache of 4 KiB blocks of the
 * value files, direct-mapped by block number: a block is read once for all the values in it (16
 * of 256 bytes), so a range over keys written together costs a read per block, not per value, and
 * a hot key's value is a copy from the cache, not a system call (measured in the store, best of
 * 9 on a busy box, 256-byte values written in key order: a range of 100 keys 95 -> 39 µs, 20 in
 * memory; of one key 1.07 -> 0.54 µs, 0.39 in memory). Files never change once durable, so a cached
 * block is never stale. A value crossing a block boundary is read directly.
 */
const cacheBlockBytes = 4096;
const cacheBlockCount = 256;
const blockCache = {
  files: new Array<ValueFile | undefined>(cacheBlockCount).fill(undefined),
  /** File position of each cached block (a multiple of cacheBlockBytes). */
  starts: new Float64Array(cacheBlockCount),
  mem: Buffer.alloc(0),
};

/** Reads `length` bytes at `position` of `file` into out[at, ...) through the block cache. */
function readCached(
  file: ValueFile,
  position: number,
  length: number,
  out: Buffer,
  at: number,
): void {
  const start = position - (position % cacheBlockBytes);
  if (position + length > start + cacheBlockBytes) {
    file.read(out, at, length, position);
    return;
  }
  const c = blockCache;
  const i = (start / cacheBlockBytes) % cacheBlockCount;
  const base = i * cacheBlockBytes;
  if (c.files[i] !== file || c.starts[i] !== start) {
    if (c.mem.length === 0) c.mem = Buffer.allocUnsafeSlow(cacheBlockCount * cacheBlockBytes);
    // the slot is invalid until the read succeeds (a failed read throws)
    c.files[i] = undefined;
    file.read(c.mem, base, Math.min(cacheBlockBytes, file.sizeBytes - start), start);
    c.files[i] = file;
    c.starts[i] = start;
  }
  const from = base + position - start;
  copyInto(out, at, c.mem, from, from + length);
}

/**
 * Drops the block read ahead and the cached blocks (their file may be one no row points into any
 * more, whose descriptor can then close).
 */
export function forgetValueFileCaches(): void {
  readAhead.file = undefined;
  readAhead.length = 0;
  blockCache.files.fill(undefined);
}

/**
 * A row's value chunk word: >= 0 an arena chunk id, -1 no bytes, <= -2 a value file:
 * -2 - (file slot * 8 + position bits 32-34), the offset word then holding position bits 0-31.
 */
const noChunk = -1;
const filePositionHighValues = 8;
/** Largest position of a value in a value file: 32 GiB (etcd's quota is at most 8 GiB). */
export const maxValueFilePosition = filePositionHighValues * 0x100000000 - 1;

/** Rows (slots) per block: the tables grow a block at a time, so growing never copies them. */
const blockBits = 12;
const blockRows = 1 << blockBits;
const blockMask = blockRows - 1;

/** Keys at most this long (the shorter of two) are compared byte by byte in JS (see BTree). */
const jsCompareMaxBytes = 32;

/**
 * A KeyTable slot is 4 int32s side by side (one cache line holds four slots): the arena chunk
 * id, offset and length of the key's bytes, and the key's newest row (-1 before its first).
 */
const kChunk = 0;
const kOffset = 1;
const kLength = 2;
const kNewest = 3;
const keyStride = 4;

/**
 * The distinct keys of a record log: slot -> key bytes (in a ByteArena) and the key's newest row.
 * Slots are dense ints from 0; a slot and its bytes never change (only `newest` does). Implements
 * SlotKeys so the key index (SlotBTree) can compare through it.
 */
export class KeyTable implements SlotKeys {
  readonly #blocks: Int32Array[] = [];
  readonly #arena: ByteArena;
  readonly #slabs: Slabs;
  #count = 0;

  /**
   * `chunkBytes`: the key arena's chunk size (ByteArena; RangeError if < 64). Blocks and chunks
   * come from `slabs` (see slabs.ts).
   */
  constructor(chunkBytes: number, slabs: Slabs = new Slabs()) {
    this.#slabs = slabs;
    this.#arena = new ByteArena(chunkBytes, slabs);
  }

  /** Slots held. */
  get length(): number {
    return this.#count;
  }

  /** Copies key[start, end) into the arena and gives it the next slot (its newest row: -1). */
  add(key: Uint8Array, start = 0, end = key.length): number {
    const slot = this.#count;
    if ((slot & blockMask) === 0) {
      const n = blockRows * keyStride;
      this.#blocks.push(new Int32Array(this.#slabs.take(n * 4), this.#slabs.takenOffset, n));
    }
    const b = this.#blocks[slot >>> blockBits]!;
    const i = (slot & blockMask) * keyStride;
    b[i + kChunk] = this.#arena.place(key, start, end);
    b[i + kOffset] = this.#arena.placedOffset;
    b[i + kLength] = end - start;
    b[i + kNewest] = -1;
    this.#count = slot + 1;
    return slot;
  }

  /** add() of the key of `slot` of `from` (no Buffer made): a compaction's copy of a key. */
  addFrom(from: KeyTable, slot: number): number {
    const b = from.#blocks[slot >>> blockBits]!;
    const i = (slot & blockMask) * keyStride;
    const at = b[i + kOffset]!;
    return this.add(from.#arena.chunk(b[i + kChunk]!), at, at + b[i + kLength]!);
  }

  /** The key of `slot`: a view into the arena (a new Buffer object; never mutate it). */
  key(slot: number): Buffer {
    const b = this.#blocks[slot >>> blockBits]!;
    const i = (slot & blockMask) * keyStride;
    return this.#arena.view(b[i + kChunk]!, b[i + kOffset]!, b[i + kLength]!);
  }

  /** Copies the key of `slot` into `out` at `at`; returns the offset after it. No allocation. */
  writeKey(slot: number, out: Buffer, at: number): number {
    const b = this.#blocks[slot >>> blockBits]!;
    const i = (slot & blockMask) * keyStride;
    const start = b[i + kOffset]!;
    const len = b[i + kLength]!;
    copyInto(out, at, this.#arena.chunk(b[i + kChunk]!), start, start + len);
    return at + len;
  }

  keyLength(slot: number): number {
    return this.#blocks[slot >>> blockBits]![(slot & blockMask) * keyStride + kLength]!;
  }

  newest(slot: number): number {
    return this.#blocks[slot >>> blockBits]![(slot & blockMask) * keyStride + kNewest]!;
  }

  setNewest(slot: number, row: number): void {
    this.#blocks[slot >>> blockBits]![(slot & blockMask) * keyStride + kNewest] = row;
  }

  /**
   * Byte-order comparison of the key of `slot` with key[start, end) (as Buffer.compare), no
   * allocation.
   */
  compare(slot: number, key: Uint8Array, start: number, end: number): number {
    const b = this.#blocks[slot >>> blockBits]!;
    const i = (slot & blockMask) * keyStride;
    const chunk = this.#arena.chunk(b[i + kChunk]!);
    const at = b[i + kOffset]!;
    const len = b[i + kLength]!;
    const keyLen = end - start;
    const n = len < keyLen ? len : keyLen;
    if (n > jsCompareMaxBytes) return chunk.compare(key, start, end, at, at + len);
    for (let j = 0; j < n; j++) {
      const x = chunk[at + j]!;
      const y = key[start + j]!;
      if (x !== y) return x < y ? -1 : 1;
    }
    return len - keyLen;
  }

  /** headOfKey of the key of `slot`, no allocation. */
  head(slot: number): number {
    const b = this.#blocks[slot >>> blockBits]!;
    const i = (slot & blockMask) * keyStride;
    const chunk = this.#arena.chunk(b[i + kChunk]!);
    const at = b[i + kOffset]!;
    const len = b[i + kLength]!;
    let h = 0;
    for (let j = 0; j < 6; j++) h = h * 256 + (j < len ? chunk[at + j]! : 0);
    return h;
  }
}

/**
 * A record is one 48-byte row of a block, seen through two views of the same memory: float64
 * words 0-1 (main, create_revision) and int32 words 4-11 (sub, lease, value chunk id, value
 * offset, value length, key slot, previous row of the same key, version). The lease is an index
 * into the log's lease table (0 = none): a lease id is 8 bytes, but a store holds few distinct
 * ones (keys share leases), and a row without one makes no BigInt on read. The version (etcd's
 * int64, the key's put count since its creation) is held as a uint32; one of 2^32 - 1 or more
 * (billions of puts to one key without a delete) is kept in a side map by row (issue 13: 8 bytes
 * less per record than a float64 version, 7.6 MiB at 1M records).
 */
const rowBytes = 48;
const f64PerRow = rowBytes / 8;
const i32PerRow = rowBytes / 4;
const fMain = 0;
const fCreate = 1;
const iSub = 4;
const iLease = 5;
const iValueChunk = 6;
const iValueOffset = 7;
const iValueLength = 8;
const iKeySlot = 9;
const iPrevRow = 10;
const iVersion = 11;
/** A row's version word holding this (as uint32) means: look the version up in bigVersions. */
const versionInSideMap = 0xffffffff;

/** Largest sub revision a row holds (int32; a revision has at most one change per row). */
export const maxSubRevision = 0x7fffffff;

class RecordBlock {
  readonly f64: Float64Array;
  readonly i32: Int32Array;
  constructor(slabs: Slabs) {
    const mem = slabs.take(blockRows * rowBytes);
    const at = slabs.takenOffset;
    this.f64 = new Float64Array(mem, at, blockRows * f64PerRow);
    this.i32 = new Int32Array(mem, at, blockRows * i32PerRow);
  }
}

/** The distinct lease ids of a log's rows: index i + 1 in a row names leaseIds[i]. */
class LeaseTable {
  #ids: bigint[] = [];
  readonly #index = new Map<bigint, number>();

  /** The row value for `lease` (0 for none), adding it on first use. */
  indexOf(lease: bigint): number {
    if (lease === 0n) return 0;
    let i = this.#index.get(lease);
    if (i === undefined) {
      this.#ids.push(lease);
      i = this.#ids.length;
      this.#index.set(lease, i);
    }
    return i;
  }

  /** The lease id a row value names (the shared 0n for none). */
  id(i: number): bigint {
    return i === 0 ? noLease : this.#ids[i - 1]!;
  }
}

/** Shared zero lease: a BigInt64Array read makes a fresh BigInt each time. */
const noLease = 0n;

/**
 * Every record held, in revision order (see the module comment).
 *
 * Values in a db file (issue 13): a row's value is either in the log's value arena or, once a db
 * (snapshot) file holding it is durable, at a byte position of that file (moveValueToFile), read
 * with one positioned read each time (ValueFile), so its bytes sit in the kernel's page cache and
 * not in the process, as etcd's sit in its mmapped bbolt file. The log counts the rows pointing
 * into each arena chunk and each file: a chunk no row points into is dropped (its slab goes when
 * all its chunks have: the values have slabs of their own), and a file no row points into leaves
 * the log's file table (its descriptor closes once no log or reader holds it, lib/server).
 */
export class RecordLog {
  readonly #blocks: RecordBlock[] = [];
  #rows = 0;
  /** The keys the rows name by slot. */
  readonly keys: KeyTable;
  /** Owns the value bytes of the rows that are not in a file. */
  readonly values: ByteArena;
  /** Rows pointing into each value arena chunk, by chunk id. */
  readonly #chunkRows: number[] = [];
  /** The value files rows point into, by file slot (undefined: a free slot). */
  readonly #files: (ValueFile | undefined)[] = [];
  /** Rows pointing into each value file, by file slot. */
  readonly #fileRows: number[] = [];
  /** The chunk being filled when its row count fell to 0 (dropped once another is filled). */
  #idleCurrentChunk = -1;

  /** Where the log's blocks, key arena and key index nodes get their memory (see slabs.ts). */
  readonly slabs = new Slabs();
  /** The value arena's own slabs, so one can go when the values in it moved to a file. */
  readonly #valueSlabs = new Slabs();
  readonly #leases = new LeaseTable();
  /** Versions of rows whose version word is versionInSideMap (see the row layout). */
  readonly #bigVersions = new Map<number, number>();

  /** Arena chunk sizes in bytes (ByteArena: RangeError if < 64). */
  constructor(keyChunkBytes: number, valueChunkBytes: number) {
    this.keys = new KeyTable(keyChunkBytes, this.slabs);
    this.values = new ByteArena(valueChunkBytes, this.#valueSlabs);
  }

  /** Rows held. */
  get length(): number {
    return this.#rows;
  }

  /**
   * Appends a record of key `slot` whose value is already in `values` (chunk id, offset, length;
   * see ByteArena.place) as the key's newest row, linked to its previous newest. Returns the row.
   * The caller appends in revision order.
   */
  append(
    slot: number,
    valueChunk: number,
    valueOffset: number,
    valueLength: number,
    main: number,
    sub: number,
    createRevision: number,
    version: number,
    lease: bigint,
  ): number {
    const row = this.#rows;
    if ((row & blockMask) === 0) this.#blocks.push(new RecordBlock(this.slabs));
    const b = this.#blocks[row >>> blockBits]!;
    const f = (row & blockMask) * f64PerRow;
    const i = (row & blockMask) * i32PerRow;
    b.f64[f + fMain] = main;
    b.f64[f + fCreate] = createRevision;
    const i32 = b.i32;
    if (version < versionInSideMap) i32[i + iVersion] = version;
    else {
      i32[i + iVersion] = versionInSideMap;
      this.#bigVersions.set(row, version);
    }
    i32[i + iSub] = sub;
    i32[i + iLease] = this.#leases.indexOf(lease);
    i32[i + iValueChunk] = valueChunk;
    i32[i + iValueOffset] = valueOffset;
    i32[i + iValueLength] = valueLength;
    if (valueChunk !== noChunk) this.#ref(valueChunk);
    i32[i + iKeySlot] = slot;
    i32[i + iPrevRow] = this.keys.newest(slot);
    this.keys.setNewest(slot, row);
    this.#rows = row + 1;
    return row;
  }

  /**
   * Appends row `row` of `from` as a record of key `slot` of this log, copying its value bytes
   * into this log's arena (compaction). Returns the new row.
   */
  copyRow(from: RecordLog, row: number, slot: number): number {
    const off = from.valueOffset(row);
    const len = from.valueLength(row);
    let chunk = from.valueChunkId(row);
    let at = off;
    if (chunk >= 0) {
      chunk = this.values.place(from.values.chunk(chunk), off, off + len);
      at = this.values.placedOffset;
    } else if (chunk !== noChunk) {
      // a value in a file stays there: this log takes the file into the same slot
      const fileSlot = fileSlotOf(chunk);
      const file = from.#files[fileSlot]!;
      const mine = this.#files[fileSlot];
      if (mine === undefined) this.#files[fileSlot] = file;
      else mvccAssert(mine === file, `value file slot ${fileSlot} taken`);
    }
    return this.append(
      slot,
      chunk,
      at,
      len,
      from.main(row),
      from.sub(row),
      from.createRevision(row),
      from.version(row),
      from.lease(row),
    );
  }

  main(row: number): number {
    return this.#blocks[row >>> blockBits]!.f64[(row & blockMask) * f64PerRow + fMain]!;
  }

  sub(row: number): number {
    return this.#i32(row, iSub);
  }

  createRevision(row: number): number {
    return this.#blocks[row >>> blockBits]!.f64[(row & blockMask) * f64PerRow + fCreate]!;
  }

  version(row: number): number {
    return this.#versionAt(
      this.#blocks[row >>> blockBits]!.i32,
      (row & blockMask) * i32PerRow,
      row,
    );
  }

  /** The version of `row`, whose int32 words start at `i` of block words `i32`. */
  #versionAt(i32: Int32Array, i: number, row: number): number {
    const v = i32[i + iVersion]! >>> 0;
    return v === versionInSideMap ? this.#bigVersions.get(row)! : v;
  }

  isTombstone(row: number): boolean {
    return this.createRevision(row) === 0;
  }

  lease(row: number): bigint {
    return this.#leases.id(this.#i32(row, iLease));
  }

  #i32(row: number, field: number): number {
    return this.#blocks[row >>> blockBits]!.i32[(row & blockMask) * i32PerRow + field]!;
  }

  keySlot(row: number): number {
    return this.#i32(row, iKeySlot);
  }

  prevRow(row: number): number {
    return this.#i32(row, iPrevRow);
  }

  valueChunkId(row: number): number {
    return this.#i32(row, iValueChunk);
  }

  valueOffset(row: number): number {
    return this.#i32(row, iValueOffset);
  }

  valueLength(row: number): number {
    return this.#i32(row, iValueLength);
  }

  /**
   * The value bytes of `row`: a view (a new Buffer object) into the arena, or a fresh Buffer read
   * from its file; never mutate it.
   */
  value(row: number): Buffer {
    return this.#valueOf(this.valueChunkId(row), this.valueOffset(row), this.valueLength(row));
  }

  #valueOf(chunk: number, offset: number, length: number): Buffer {
    if (chunk >= noChunk) return this.values.view(chunk, offset, length);
    const out = Buffer.allocUnsafe(length);
    this.#readFile(chunk, offset, length, out, 0);
    return out;
  }

  /** Reads a value of `length` bytes in a file (chunk and offset words) into out[at, ...). */
  #readFile(chunk: number, offset: number, length: number, out: Buffer, at: number): void {
    readCached(this.#files[fileSlotOf(chunk)]!, filePositionOf(chunk, offset), length, out, at);
  }

  /**
   * Copies the value of `row` into `out` at `at`; returns the offset after it. No allocation (one
   * positioned read for a value in a file).
   */
  writeValue(row: number, out: Buffer, at: number): number {
    const chunk = this.valueChunkId(row);
    const start = this.valueOffset(row);
    const len = this.valueLength(row);
    if (chunk >= noChunk) copyInto(out, at, this.values.chunk(chunk), start, start + len);
    else this.#readFile(chunk, start, len, out, at);
    return at + len;
  }

  /**
   * writeValue for a reader that visits rows in row order: a value in a file comes from the block
   * read ahead (see readAhead), read again when the value is not in it.
   */
  writeValueInOrder(row: number, out: Buffer, at: number): number {
    const chunk = this.valueChunkId(row);
    if (chunk >= noChunk) return this.writeValue(row, out, at);
    const len = this.valueLength(row);
    const position = filePositionOf(chunk, this.valueOffset(row));
    const file = this.#files[fileSlotOf(chunk)]!;
    const ra = readAhead;
    if (ra.file !== file || position < ra.start || position + len > ra.start + ra.length) {
      if (len > readAheadBytes) {
        file.read(out, at, len, position);
        return at + len;
      }
      if (ra.block.length === 0) ra.block = Buffer.allocUnsafeSlow(readAheadBytes);
      // the block is invalid until the read succeeds (a failed read throws)
      ra.file = undefined;
      const n = Math.min(readAheadBytes, file.sizeBytes - position);
      file.read(ra.block, 0, n, position);
      ra.file = file;
      ra.start = position;
      ra.length = n;
    }
    const from = position - ra.start;
    copyInto(out, at, ra.block, from, from + len);
    return at + len;
  }

  /** True when the value of `row` is read from a value file (not held in memory). */
  valueInFile(row: number): boolean {
    return this.valueChunkId(row) < noChunk;
  }

  /**
   * Gives `file` a slot in this log's file table, for moveValueToFile (the slot it has, if rows
   * still point into it); the slot leaves the table once no row points into the file.
   */
  addFile(file: ValueFile): number {
    // a file written to again in place (lib/btree's in-place commits) keeps its slot
    const live = this.#files.indexOf(file);
    if (live >= 0) return live;
    // appended, never reusing a freed slot: a compaction copies rows with their slots first
    const slot = this.#files.length;
    this.#files.push(file);
    this.#fileRows[slot] = 0;
    mvccAssert((slot + 1) * filePositionHighValues < 0x7ffffffe, "too many value files");
    return slot;
  }

  /**
   * Points the value of `row` at `position` of the file in `fileSlot` (addFile), which holds the
   * same bytes durably; the arena chunk (or file) it was in loses a row and goes when it has none.
   * A row without value bytes is left alone. Rows are otherwise unchanged: the row's value reads
   * the same bytes before and after.
   */
  moveValueToFile(row: number, fileSlot: number, position: number): void {
    const b = this.#blocks[row >>> blockBits]!;
    const i = (row & blockMask) * i32PerRow;
    const i32 = b.i32;
    const old = i32[i + iValueChunk]!;
    if (old === noChunk) return;
    const chunk = fileChunkWord(fileSlot, position);
    i32[i + iValueChunk] = chunk;
    i32[i + iValueOffset] = fileOffsetWord(position);
    this.#ref(chunk);
    this.#unref(old);
  }

  /** One more row points into arena chunk or file `chunk` (a chunk word, not noChunk). */
  #ref(chunk: number): void {
    if (chunk >= 0) {
      this.#chunkRows[chunk] = (this.#chunkRows[chunk] ?? 0) + 1;
      // the chunk that was being filled when its last row left may be done with now
      const idle = this.#idleCurrentChunk;
      if (idle >= 0 && idle !== this.values.currentChunkId) {
        this.#idleCurrentChunk = -1;
        if (this.#chunkRows[idle] === 0) this.values.drop(idle);
      }
    } else {
      const slot = fileSlotOf(chunk);
      this.#fileRows[slot] = (this.#fileRows[slot] ?? 0) + 1;
    }
  }

  /** One row less points into `chunk`: a chunk (not the one being filled) or file with none goes. */
  #unref(chunk: number): void {
    if (chunk >= 0) {
      const n = --this.#chunkRows[chunk]!;
      if (n !== 0) return;
      if (chunk !== this.values.currentChunkId) this.values.drop(chunk);
      else this.#idleCurrentChunk = chunk;
      return;
    }
    const slot = fileSlotOf(chunk);
    if (--this.#fileRows[slot]! === 0) this.#files[slot] = undefined;
  }

  /** Value files this log's rows point into now. */
  get fileCount(): number {
    let n = 0;
    for (const f of this.#files) if (f !== undefined) n++;
    return n;
  }

  /** The key of `row` (a view; see KeyTable.key). */
  key(row: number): Buffer {
    return this.keys.key(this.keySlot(row));
  }

  /** Approximate backend bytes of the row, as Rec.approximateBytes. */
  approximateBytes(row: number): number {
    return Rec.approximateBytesOf(this.keys.keyLength(this.keySlot(row)), this.valueLength(row));
  }

  /** The row as the KeyValue clients see (recToKeyValue of rec(row), without the Rec). */
  keyValue(row: number, keysOnly: boolean): KeyValue {
    const b = this.#blocks[row >>> blockBits]!;
    const f = (row & blockMask) * f64PerRow;
    const i = (row & blockMask) * i32PerRow;
    const i32 = b.i32;
    const f64 = b.f64;
    return {
      key: this.keys.key(i32[i + iKeySlot]!),
      createRevision: f64[f + fCreate]!,
      modRevision: f64[f + fMain]!,
      version: this.#versionAt(i32, i, row),
      value: keysOnly
        ? emptyBuffer
        : this.#valueOf(i32[i + iValueChunk]!, i32[i + iValueOffset]!, i32[i + iValueLength]!),
      lease: this.#leases.id(i32[i + iLease]!),
    };
  }

  /** The row as a Rec (`key`: a view; pass it when the caller has one of the same bytes). */
  rec(row: number, key?: Buffer): Rec {
    const b = this.#blocks[row >>> blockBits]!;
    const f = (row & blockMask) * f64PerRow;
    const i = (row & blockMask) * i32PerRow;
    const i32 = b.i32;
    const f64 = b.f64;
    const len = i32[i + iValueLength]!;
    const chunk = i32[i + iValueChunk]!;
    const inFile = chunk < noChunk;
    return new Rec(
      key ?? this.keys.key(i32[i + iKeySlot]!),
      len === 0
        ? emptyBuffer
        : inFile
          ? this.#valueOf(chunk, i32[i + iValueOffset]!, len)
          : this.values.chunk(chunk),
      inFile ? 0 : i32[i + iValueOffset]!,
      len,
      f64[f + fMain]!,
      i32[i + iSub]!,
      f64[f + fCreate]!,
      this.#versionAt(i32, i, row),
      this.#leases.id(i32[i + iLease]!),
      row,
      this,
    );
  }

  /** First row whose main revision is >= `rev` (length if none). O(log rows). */
  firstRowAtOrAfter(rev: number): number {
    let lo = 0;
    let hi = this.#rows;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.main(mid) < rev) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** The file position a value chunk word <= -2 and its offset word name. */
function filePositionOf(chunk: number, offset: number): number {
  return ((-2 - chunk) & (filePositionHighValues - 1)) * 0x100000000 + (offset >>> 0);
}

/** The file slot a value chunk word <= -2 names. */
function fileSlotOf(chunk: number): number {
  return (-2 - chunk) >>> 3;
}

/**
 * The value chunk word of a value at `position` of the value file in `fileSlot` (see noChunk);
 * with fileOffsetWord(position), what append() takes for a value left in a file (a restore).
 * Throws RangeError for a position past maxValueFilePosition.
 */
export function fileChunkWord(fileSlot: number, position: number): number {
  if (!(position >= 0 && position <= maxValueFilePosition && Number.isInteger(position))) {
    throw new RangeError(`value file position ${position} out of range`);
  }
  return -2 - (fileSlot * filePositionHighValues + Math.floor(position / 0x100000000));
}

/** The value offset word of a value at `position` of a value file (bits 0-31, as an int32). */
export function fileOffsetWord(position: number): number {
  return (position >>> 0) | 0;
}
