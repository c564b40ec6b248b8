/**
 * One stored revision of one key: etcd's bbolt "key" bucket entry (revision -> KeyValue) held in
 * memory. A record is immutable once written; the key Buffer is shared by every record of that key
 * and by the key index, so a key's bytes are held once however many revisions it has.
 */
import { type KeyValue, Event_EventType, type Event } from "../proto/gen/mvccpb/kv.js";

/** The empty value shared by tombstones and empty puts. */
export const emptyBuffer: Buffer = Buffer.alloc(0);

/**
 * Node's own latin1 fast paths (Buffer.prototype.latin1Slice / latin1Write, present since Node 6
 * but not in the typings): ~140 ns and ~80 ns for 256 bytes where toString("latin1") and
 * Buffer.from(s, "latin1") cost ~450 ns, with their argument checks.
 */
interface Latin1Fast {
  latin1Slice(start: number, end: number): string;
  latin1Write(s: string, offset: number, length: number): number;
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

/** Bytes [start, end) of `b` as a latin1 string. */
export function latin1Slice(b: Buffer, start: number, end: number): string {
  return (b as unknown as Latin1Fast).latin1Slice(start, end);
}

/** Writes latin1 string `s` into `b` at `offset` (the caller made room). */
export function latin1Write(b: Buffer, s: string, offset: number): void {
  (b as unknown as Latin1Fast).latin1Write(s, offset, s.length);
}

/** A fresh Buffer holding the bytes of latin1 string `s`. */
export function latin1ToBuffer(s: string): Buffer {
  if (s.length === 0) return emptyBuffer;
  const b = Buffer.allocUnsafe(s.length);
  (b as unknown as Latin1Fast).latin1Write(s, 0, s.length);
  return b;
}

/**
 * Copies keys into large chunks that hold nothing but keys. A key copied with Buffer.allocUnsafe
 * lands in Node's shared 8 KiB pool slab next to short-lived request and response bytes, so each
 * stored key pinned a whole slab: measured ~200 bytes of dead slab per key at 100k keys
 * (DESIGN §7). Keys from one chunk die together only rarely, so a deleted key's bytes stay until
 * every key of its chunk is gone, which bounds the waste by the chunk size per surviving key.
 */
export class KeyArena {
  readonly #chunkBytes: number;
  /** Keys larger than this get their own allocation so one key cannot waste most of a chunk. */
  readonly #maxSharedKeyBytes: number;
  #chunk: Buffer = emptyBuffer;
  #used = 0;

  /** `chunkBytes`: bytes per shared chunk (>= 64). Throws RangeError otherwise. */
  constructor(chunkBytes: number) {
    if (!Number.isInteger(chunkBytes) || chunkBytes < 64) {
      throw new RangeError(`key arena chunk must be an integer >= 64 bytes, got ${chunkBytes}`);
    }
    this.#chunkBytes = chunkBytes;
    this.#maxSharedKeyBytes = chunkBytes >>> 3;
  }

  /** A Buffer owned by the store holding a copy of `u`; never mutate it. */
  copy(u: Uint8Array): Buffer {
    const n = u.length;
    if (n === 0) return emptyBuffer;
    if (n > this.#maxSharedKeyBytes) {
      const own = Buffer.allocUnsafeSlow(n);
      own.set(u);
      return own;
    }
    if (this.#used + n > this.#chunk.length) {
      this.#chunk = Buffer.allocUnsafeSlow(this.#chunkBytes);
      this.#used = 0;
    }
    const start = this.#used;
    this.#chunk.set(u, start);
    this.#used = start + n;
    return this.#chunk.subarray(start, start + n);
  }
}

/**
 * A put (createRevision > 0) or a tombstone (createRevision === 0: the key was deleted at
 * revision {main, sub}). etcd's revision.go: `main` is the store revision of the write, `sub` its
 * position among the changes of that revision (txn ops share one main revision).
 */
export class Rec {
  constructor(
    readonly key: Buffer,
    /**
     * The value as a latin1 string (one char per byte, lossless). A one-byte V8 string costs a
     * 16-byte header where a Buffer costs a ~96-byte object plus a share of a pooled slab that
     * compaction could not free; strings are also immutable, so sharing them is safe.
     */
    readonly valueLatin1: string,
    readonly main: number,
    readonly sub: number,
    /** create_revision of the key's current generation; 0 marks a tombstone. */
    readonly createRevision: number,
    /** version within the generation (1 on create); 0 for a tombstone. */
    readonly version: number,
    readonly lease: bigint,
  ) {}

  /**
   * Where the store's revision log holds this record while it is the newest of its key (the
   * store's bookkeeping: it packs the record into its ColdLog at that slot once superseded).
   */
  logPos = -1;

  /** Approximate bytes of a record in etcd's backend (bbolt key + marshaled value). */
  static approximateBytesOf(keyBytes: number, valueBytes: number): number {
    return revKeyBytes + keyBytes + valueBytes + recordOverheadBytes;
  }

  /** The value bytes (a fresh Buffer each call). */
  get value(): Buffer {
    return latin1ToBuffer(this.valueLatin1);
  }

  get isTombstone(): boolean {
    return this.createRevision === 0;
  }

  /** Approximate bytes this record costs in etcd's backend (bbolt key + marshaled value). */
  get approximateBytes(): number {
    return Rec.approximateBytesOf(this.key.length, this.valueLatin1.length);
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

/** Orders records by revision (main, then sub). */
export function compareRecRevision(a: Rec, b: Rec): number {
  return a.main - b.main || a.sub - b.sub;
}
