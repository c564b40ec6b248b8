/**
 * Encodes WAL records straight into one pre-sized Buffer per batch.
 *
 * Frame layout (etcd v3.4 wal/encoder.go): an 8-byte little-endian length word, then a marshalled
 * `walpb.Record{type, crc, data}`, then zero padding up to a multiple of 8 bytes. When padding is
 * present the length word's top byte is `0x80 | padBytes` (bits 56–58 hold the pad count), so the
 * length word itself is always 8-byte aligned and can never be torn across a sector.
 *
 * `crc` is CRC-32C (Castagnoli) over the record's `data` bytes only, chained: each record's crc
 * continues from the previous record's crc (etcd's `crc.New(prevCrc, crcTable)`), across segment
 * boundaries too (each segment opens with a crc-type record carrying the running value).
 *
 * Byte layout of the protobufs follows etcd's gogo-generated marshallers exactly, so files are
 * byte-identical with etcd's: proto2 non-nullable scalars are always written (even when zero),
 * `data` only when non-empty (etcd writes it when non-nil; raft's empty entries carry nil data).
 */
import CRC32C from "crc-32/crc32c.js";
import type { Entry, HardState } from "../proto/gen/raftpb/raft.js";
import type { Snapshot as WalSnapshot } from "../proto/gen/walpb/record.js";
import { WalInvariantError } from "./errors.js";
import { putVarint, putVarint64, varintSize, varintSize64 } from "../proto/varint.js";

/** walpb record types (etcd wal/wal.go: metadataType = iota + 1, …). */
export const RecordType = {
  metadata: 1,
  entry: 2,
  hardState: 3,
  crc: 4,
  snapshot: 5,
} as const;

/** Size of the little-endian length word in front of every record (etcd's frameSizeBytes). */
export const FRAME_HEADER_BYTES = 8;

/** CRC-32C of `data`, continuing from `seed` (a previous CRC-32C value; 0 to start). Unsigned. */
export function crc32c(data: Uint8Array, seed: number): number {
  return CRC32C.buf(data, seed) >>> 0;
}

// varints: one implementation for every hand-written encoder (lib/proto/varint.ts)
export { varintSize, putVarint } from "../proto/varint.js";

function checkUint(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new WalInvariantError(`${name} must be a non-negative safe integer, got ${v}`);
  }
}

/** Marshalled size of a raftpb.Entry as etcd writes it. */
export function entrySize(e: Entry): number {
  const d = e.data.length;
  return (
    3 +
    varintSize(e.type) +
    varintSize(e.term) +
    varintSize(e.index) +
    (d > 0 ? 1 + varintSize(d) + d : 0)
  );
}

/** Writes a raftpb.Entry at `pos` (gogo field order: Type, Term, Index, Data); returns the end. */
export function putEntry(buf: Buffer, pos: number, e: Entry): number {
  buf[pos++] = 0x08;
  pos = putVarint(buf, pos, e.type);
  buf[pos++] = 0x10;
  pos = putVarint(buf, pos, e.term);
  buf[pos++] = 0x18;
  pos = putVarint(buf, pos, e.index);
  const d = e.data.length;
  if (d > 0) {
    buf[pos++] = 0x22;
    pos = putVarint(buf, pos, d);
    buf.set(e.data, pos);
    pos += d;
  }
  return pos;
}

/** Marshalled size of a raftpb.HardState as etcd writes it. */
export function hardStateSize(s: HardState): number {
  return 3 + varintSize(s.term) + varintSize64(s.vote) + varintSize(s.commit);
}

/** Writes a raftpb.HardState at `pos` (term, vote, commit, all always present); returns the end. */
export function putHardState(buf: Buffer, pos: number, s: HardState): number {
  buf[pos++] = 0x08;
  pos = putVarint(buf, pos, s.term);
  buf[pos++] = 0x10;
  pos = putVarint64(buf, pos, s.vote);
  buf[pos++] = 0x18;
  return putVarint(buf, pos, s.commit);
}

/** Marshalled walpb.Snapshot (index, term, both always present). */
export function marshalSnapshot(s: WalSnapshot): Buffer {
  checkUint("snapshot.index", s.index);
  checkUint("snapshot.term", s.term);
  const buf = Buffer.allocUnsafe(2 + varintSize(s.index) + varintSize(s.term));
  let pos = 0;
  buf[pos++] = 0x08;
  pos = putVarint(buf, pos, s.index);
  buf[pos++] = 0x10;
  pos = putVarint(buf, pos, s.term);
  return buf;
}

/** Marshalled raftpb.HardState, standalone. */
export function marshalHardState(s: HardState): Buffer {
  const buf = Buffer.allocUnsafe(hardStateSize(s));
  putHardState(buf, 0, s);
  return buf;
}

/** True when a HardState carries nothing (raft.IsEmptyHardState). */
export function isEmptyHardState(s: HardState): boolean {
  return s.term === 0 && s.vote === 0n && s.commit === 0;
}

/**
 * Upper bound of the framed size of a record whose data is `dataBytes` long: length word, type
 * tag+varint (types are 1..5: 2 bytes), crc tag + up-to-5-byte varint, data tag + length varint +
 * data, and up to 7 bytes of padding.
 */
export function maxFrameSize(dataBytes: number): number {
  return (
    FRAME_HEADER_BYTES + 2 + 6 + (dataBytes > 0 ? 1 + varintSize(dataBytes) + dataBytes : 0) + 7
  );
}

/**
 * Appends framed records to a caller-supplied Buffer, chaining the CRC. One instance lives per
 * batch; `crc` is the running CRC after the last record written.
 *
 * Data is encoded in place: the record header is laid out assuming a 5-byte crc varint, the data
 * is written behind it, its CRC computed, and only when the real crc varint is shorter (1 time in
 * 16 for a uniform crc) is the data moved left. So entry bytes are copied once (twice 1 in 16).
 */
export class FrameWriter {
  /** Running CRC-32C after the last record written. */
  crc: number;
  /** Write position in `buf`. */
  pos: number;
  readonly buf: Buffer;

  constructor(buf: Buffer, pos: number, crc: number) {
    this.buf = buf;
    this.pos = pos;
    this.crc = crc;
  }

  /**
   * Where the data of a record of `dataBytes` bytes goes: behind a header laid out for the widest
   * crc varint, `[len word][08 type][10 crc x5][1a len]`. The caller writes the data there and
   * calls #finish.
   */
  #dataAt(dataBytes: number): number {
    return this.pos + FRAME_HEADER_BYTES + 2 + 6 + (dataBytes > 0 ? 1 + varintSize(dataBytes) : 0);
  }

  /**
   * Completes the record whose `dataBytes` bytes of data sit at `dataAt`: writes the header with
   * `crc`, moves the data left when the crc varint is shorter than 5 bytes, pads to 8 bytes and
   * writes the length word (etcd encodeFrameSize: top byte 0x80|pad when padded).
   */
  #finish(type: number, dataBytes: number, dataAt: number, crc: number): void {
    const buf = this.buf;
    const start = this.pos;
    let p = start + FRAME_HEADER_BYTES;
    buf[p++] = 0x08;
    buf[p++] = type;
    buf[p++] = 0x10;
    p = putVarint(buf, p, crc);
    if (dataBytes > 0) {
      buf[p++] = 0x1a;
      p = putVarint(buf, p, dataBytes);
      if (p !== dataAt) buf.copyWithin(p, dataAt, dataAt + dataBytes);
      p += dataBytes;
    }
    const recBytes = p - start - FRAME_HEADER_BYTES;
    const padBytes = (8 - (recBytes % 8)) % 8;
    for (let i = 0; i < padBytes; i++) buf[p++] = 0;
    buf.writeUInt32LE(recBytes, start);
    buf.writeUInt32LE(padBytes !== 0 ? ((0x80 | padBytes) << 24) >>> 0 : 0, start + 4);
    this.crc = crc;
    this.pos = p;
  }

  /** Chains the CRC over `dataBytes` bytes at `dataAt` and completes the record. */
  #finishChained(type: number, dataBytes: number, dataAt: number): void {
    const crc =
      dataBytes > 0 ? crc32c(this.buf.subarray(dataAt, dataAt + dataBytes), this.crc) : this.crc;
    this.#finish(type, dataBytes, dataAt, crc);
  }

  /** Writes a record carrying raw `data` bytes (metadata, snapshot, hardState already marshalled). */
  bytes(type: number, data: Uint8Array): void {
    const at = this.#dataAt(data.length);
    this.buf.set(data, at);
    this.#finishChained(type, data.length, at);
  }

  /** Writes an entry record (type 2) for `e`. */
  entry(e: Entry): void {
    checkUint("entry.index", e.index);
    checkUint("entry.term", e.term);
    if (!Number.isInteger(e.type) || e.type < 0)
      throw new WalInvariantError(`entry.type must be >= 0, got ${e.type}`);
    const n = entrySize(e);
    const at = this.#dataAt(n);
    const end = putEntry(this.buf, at, e);
    if (end !== at + n)
      throw new WalInvariantError(`entry ${e.index} encoded to ${end - at} bytes, expected ${n}`);
    this.#finishChained(RecordType.entry, n, at);
  }

  /** Writes a hardState record (type 3) for `s`. */
  hardState(s: HardState): void {
    checkUint("hardState.term", s.term);
    checkUint("hardState.commit", s.commit);
    if (s.vote < 0n || s.vote >= 1n << 64n)
      throw new WalInvariantError(`hardState.vote out of uint64 range`);
    const n = hardStateSize(s);
    const at = this.#dataAt(n);
    const end = putHardState(this.buf, at, s);
    if (end !== at + n)
      throw new WalInvariantError(`hardState encoded to ${end - at} bytes, expected ${n}`);
    this.#finishChained(RecordType.hardState, n, at);
  }

  /**
   * Writes the crc record (type 4) that opens a segment: no data, `crc` = the running CRC carried
   * over from the previous segment (0 for the first). The running CRC is unchanged by it.
   */
  crcRecord(prevCrc: number): void {
    this.#finish(RecordType.crc, 0, this.#dataAt(0), prevCrc >>> 0);
  }
}
