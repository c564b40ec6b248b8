/**
 * One stored revision of one key (etcd's bbolt "key" bucket entry, revision -> KeyValue) as the
 * store hands it out, and the arenas that own the stored bytes.
 */
import { type KeyValue, Event_EventType, type Event } from "../proto/gen/mvccpb/kv.js";
import type { Slabs } from "./slabs.js";

/** The empty value shared by tombstones and empty puts. */
export const emptyBuffer: Buffer = Buffer.alloc(0);

/**
 * Node's own latin1 fast path (Buffer.prototype.latin1Slice, present since Node 6 but not in the
 * typings): ~140 ns for 256 bytes where toString("latin1") costs ~450 ns, with its argument checks.
 */
interface Latin1Fast {
  latin1Slice(start: number, end: number): string;
}
if (typeof (emptyBuffer as unknown as Latin1Fast).latin1Slice !== "function") {
  throw new Error("lib/mvcc needs Buffer.prototype.latin1Slice (Node >= 20)");
}

/** The bytes of `u` as a latin1 string (one char per byte; lossless). */
export function bytesToLatin1(u: Uint8Array): string {
  if (u.length === 0) return "";
  const b = Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
  return (b as unknown as Latin1Fast).latin1Slice(0, b.length);
}

/**
 * Copies the bytes the store keeps (keys; values) into large chunks that hold nothing else, outside
 * the V8 heap, and names each chunk by a small integer id (its index in the arena's chunk list),
 * so a record can point at its bytes with two int32s instead of a Buffer object. Measured reasons:
 * - A key or value copied with Buffer.allocUnsafe lands in Node's shared 8 KiB pool slab next to
 *   short-lived request and response bytes, so each stored one pinned a whole slab: ~200 bytes of
 *   dead slab per key at 100k keys (DESIGN §7).
 * - Values held as V8 strings made every put leave ~270 bytes in the young generation that each
 *   scavenge copied into the old one, where it became garbage once the key was overwritten.
 * - A view (Buffer) per stored key is a ~96-byte V8 object: 96 MB of heap at 1M keys.
 * Chunks are append-only and never reused: a chunk lives while its arena (or a view into it) does;
 * a compaction copies the survivors into a fresh arena and drops the old one.
 */
export class ByteArena {
  readonly #chunkBytes: number;
  /** Larger copies get their own allocation so one of them cannot waste most of a chunk. */
  readonly #maxSharedBytes: number;
  /** Every chunk this arena handed out, by id. */
  readonly #chunks: (Buffer | undefined)[] = [];
  #chunk: Buffer = emptyBuffer;
  #chunkId = -1;
  #used = 0;
  #placedOffset = 0;

  readonly #slabs: Slabs | undefined;

  /**
   * `chunkBytes`: bytes per shared chunk (>= 64); throws RangeError otherwise. Shared chunks come
   * from `slabs` when given (a record log's; see slabs.ts), else each is its own allocation.
   */
  constructor(chunkBytes: number, slabs?: Slabs) {
    if (!Number.isInteger(chunkBytes) || chunkBytes < 64) {
      throw new RangeError(`arena chunk must be an integer >= 64 bytes, got ${chunkBytes}`);
    }
    this.#chunkBytes = chunkBytes;
    this.#maxSharedBytes = chunkBytes >>> 3;
    this.#slabs = slabs;
  }

  /** A Buffer owned by the arena holding a copy of `u`; never mutate it. */
  copy(u: Uint8Array): Buffer {
    const n = u.length;
    if (n === 0) return emptyBuffer;
    const id = this.place(u, 0, n);
    return this.view(id, this.#placedOffset, n);
  }

  /**
   * Copies bytes [start, end) of `u` into the arena; returns the id of the chunk that holds the
   * copy (-1 for no bytes), which begins at `placedOffset`. A caller that keeps (id, offset,
   * length) needs no object per copy.
   */
  place(u: Uint8Array, start: number, end: number): number {
    const n = end - start;
    if (n === 0) {
      this.#placedOffset = 0;
      return -1;
    }
    if (n > this.#maxSharedBytes) {
      const own = Buffer.allocUnsafeSlow(n);
      copyInto(own, 0, u, start, end);
      this.#placedOffset = 0;
      this.#chunks.push(own);
      return this.#chunks.length - 1;
    }
    if (this.#used + n > this.#chunk.length) {
      const slabs = this.#slabs;
      this.#chunk =
        slabs === undefined
          ? Buffer.allocUnsafeSlow(this.#chunkBytes)
          : Buffer.from(slabs.take(this.#chunkBytes), slabs.takenOffset, this.#chunkBytes);
      this.#chunks.push(this.#chunk);
      this.#chunkId = this.#chunks.length - 1;
      this.#used = 0;
    }
    const at = this.#used;
    const chunk = this.#chunk;
    copyInto(chunk, at, u, start, end);
    this.#used = at + n;
    this.#placedOffset = at;
    return this.#chunkId;
  }

  /** Where the last place() put its copy in its chunk. */
  get placedOffset(): number {
    return this.#placedOffset;
  }

  /** The chunk with id `id` (emptyBuffer for -1). */
  chunk(id: number): Buffer {
    return id < 0 ? emptyBuffer : this.#chunks[id]!;
  }

  /** A view of `length` bytes at `offset` of chunk `id` (a new Buffer object; never mutate). */
  view(id: number, offset: number, length: number): Buffer {
    if (length === 0) return emptyBuffer;
    const c = this.#chunks[id]!;
    return offset === 0 && c.length === length ? c : c.subarray(offset, offset + length);
  }

  /** The id of the shared chunk place() is filling (-1 before the first). */
  get currentChunkId(): number {
    return this.#chunkId;
  }

  /**
   * Forgets chunk `id` (no row points into it any more, RecordLog): its memory goes once no view
   * of it is left (a response still holding one keeps it alive). Reading it afterwards is a bug.
   */
  drop(id: number): void {
    // undefined, not an empty Buffer: a read of a dropped chunk throws instead of reading nothing
    this.#chunks[id] = undefined;
  }

  /** Bytes of the chunks held (not dropped). */
  get allocatedBytes(): number {
    let n = 0;
    for (const c of this.#chunks) n += c?.length ?? 0;
    return n;
  }
}

/**
 * Copies u[start, end) to `to` at `at`. Measured on Node 20 for 1M copies: a byte loop costs
 * ~30 ms at 17 bytes and ~400 ms at 256; a Uint8Array view + set() ~80 ms at either (the view is
 * young garbage; Buffer.copy and subarray make one too, slower). Short keys go by the loop.
 */
export function copyInto(to: Buffer, at: number, u: Uint8Array, start: number, end: number): void {
  const n = end - start;
  if (start === 0 && end === u.length) to.set(u, at);
  else if (n <= 32) for (let i = 0; i < n; i++) to[at + i] = u[start + i]!;
  else to.set(new Uint8Array(u.buffer, u.byteOffset + start, n), at);
}

/**
 * A put (createRevision > 0) or a tombstone (createRevision === 0: the key was deleted at
 * revision {main, sub}), as read from the store: a short-lived object the store makes for a read,
 * a watch event or a write's changes from its record log (record-log.ts), where records are held
 * as table rows, not objects. etcd's revision.go: `main` is the store revision of the write, `sub`
 * its position among the changes of that revision (txn ops share one main revision).
 */
export class Rec {
  constructor(
    /** The stored key: a view into the store's key arena (shared: never mutate it). */
    readonly key: Buffer,
    /** The value is bytes [valueOffset, valueOffset + valueLength) of this chunk. */
    readonly valueChunk: Buffer,
    readonly valueOffset: number,
    readonly valueLength: number,
    readonly main: number,
    readonly sub: number,
    /** create_revision of the key's current generation; 0 marks a tombstone. */
    readonly createRevision: number,
    /** version within the generation (1 on create); 0 for a tombstone. */
    readonly version: number,
    readonly lease: bigint,
    /** The row of `log` this record was read from (-1: none), for a cheap recordBefore. */
    readonly row = -1,
    /** The record log the row belongs to (a compaction starts a new one). */
    readonly log: object | undefined = undefined,
  ) {}

  /** Approximate bytes of a record in etcd's backend (bbolt key + marshaled value). */
  static approximateBytesOf(keyBytes: number, valueBytes: number): number {
    return revKeyBytes + keyBytes + valueBytes + recordOverheadBytes;
  }

  /** The value bytes: a view shared with the store, so never mutate it. */
  get value(): Buffer {
    const n = this.valueLength;
    if (n === 0) return emptyBuffer;
    const c = this.valueChunk;
    const at = this.valueOffset;
    return at === 0 && c.length === n ? c : c.subarray(at, at + n);
  }

  get isTombstone(): boolean {
    return this.createRevision === 0;
  }

  /** Approximate bytes this record costs in etcd's backend (bbolt key + marshaled value). */
  get approximateBytes(): number {
    return Rec.approximateBytesOf(this.key.length, this.valueLength);
  }
}

/** etcd's revision key: 8 bytes main, '_', 8 bytes sub (big-endian), plus 't' on tombstones. */
const revKeyBytes = 17;
/** Protobuf tags, lengths and varint revisions of a marshaled KeyValue, roughly. */
const recordOverheadBytes = 24;

/** The KeyValue clients see for a put record (Buffers are shared with the store: never mutate). */
export function recToKeyValue(r: Rec, keysOnly = false): KeyValue {
  return {
    key: r.key,
    createRevision: r.createRevision,
    modRevision: r.main,
    version: r.version,
    value: keysOnly ? emptyBuffer : r.value,
    lease: r.lease,
  };
}

/**
 * The watch event for a record. A delete carries only the key and mod_revision, as etcd's
 * watchable store patches the tombstone's revision in (watchable_store_txn.go, kvsToEvents).
 */
export function recToEvent(r: Rec): Event {
  if (r.isTombstone) {
    return {
      type: Event_EventType.DELETE,
      kv: {
        key: r.key,
        createRevision: 0,
        modRevision: r.main,
        version: 0,
        value: emptyBuffer,
        lease: 0n,
      },
    };
  }
  return { type: Event_EventType.PUT, kv: recToKeyValue(r) };
}

/** Orders records by value bytes (etcd's SortByValue compares bytes). */
export function compareRecValues(a: Rec, b: Rec): number {
  return a.valueChunk.compare(
    b.valueChunk,
    b.valueOffset,
    b.valueOffset + b.valueLength,
    a.valueOffset,
    a.valueOffset + a.valueLength,
  );
}

/** Orders records by revision (main, then sub). */
export function compareRecRevision(a: Rec, b: Rec): number {
  return a.main - b.main || a.sub - b.sub;
}
