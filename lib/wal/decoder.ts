/**
 * Reads framed WAL records from one segment file in bounded chunks, checking the chained CRC,
 * and tells a torn tail from corruption the way etcd v3.4 wal/decoder.go does:
 *
 * - a zero length word, or end of file at a record boundary, ends the segment (preallocated
 *   space; a fixture trimmed of its zeros reads the same);
 * - a record cut short by end of file is torn;
 * - a record that fails to parse or fails its CRC is torn only if it lies in the last segment and
 *   one of its 512-byte sector chunks is all zeros (a write that never reached the disk), and is
 *   corruption otherwise.
 *
 * Stricter than etcd in two respects: padding bytes must be zero (etcd writes zeros but never
 * checks them), so a flipped padding byte is caught too; and the all-zero-sector test looks at the
 * record bytes only, not its padding (a sector chunk holding only padding is zero in a whole
 * record as well, so etcd would call a bad CRC there torn and cut the log).
 */
import type { FileHandle } from "node:fs/promises";
import type { Entry, HardState } from "../proto/gen/raftpb/raft.js";
import type { Snapshot as WalSnapshot } from "../proto/gen/walpb/record.js";
import { crc32c, FRAME_HEADER_BYTES, RecordType } from "./encoder.js";

/** etcd's maxWALEntrySizeLimit: no record may be 10 MiB or larger. */
export const MAX_RECORD_BYTES = 10 * 1024 * 1024;

/** etcd's minSectorSize: the unit a torn write is detected in. */
const SECTOR_BYTES = 512;

/** Bytes read from the file per chunk while decoding. */
const READ_CHUNK_BYTES = 1024 * 1024;

/** A malformed protobuf. Internal: the decoder turns it into a torn or corrupt outcome. */
export class ProtoDecodeError extends Error {}

/**
 * Minimal protobuf reader for the few fixed messages the WAL holds. One instance is reused for
 * every message (decoding is synchronous), so a replay of a million entries allocates no readers.
 */
class ProtoReader {
  buf: Uint8Array = new Uint8Array(0);
  pos = 0;
  end = 0;
  /** Bounds of the last length-delimited field read. */
  fieldStart = 0;
  fieldEnd = 0;

  reset(buf: Uint8Array, start: number, end: number): this {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    return this;
  }

  /** A varint that must fit a safe integer (uint64 fields holding terms, indexes, types, crcs). */
  varint(): number {
    const b = this.buf;
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new ProtoDecodeError("truncated varint");
      const byte = b[this.pos++]!;
      result += (byte & 0x7f) * mul;
      if (byte < 0x80) {
        if (!Number.isSafeInteger(result)) throw new ProtoDecodeError("varint exceeds 2^53");
        return result;
      }
      mul *= 128;
    }
    throw new ProtoDecodeError("varint longer than 10 bytes");
  }

  varintBig(): bigint {
    const b = this.buf;
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new ProtoDecodeError("truncated varint");
      const byte = b[this.pos++]!;
      result |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return result & 0xffffffffffffffffn;
      shift += 7n;
    }
    throw new ProtoDecodeError("varint longer than 10 bytes");
  }

  /** Reads a length-delimited field; its bytes are [fieldStart, fieldEnd). */
  lengthDelimited(): void {
    const len = this.varint();
    const start = this.pos;
    if (start + len > this.end) throw new ProtoDecodeError("length-delimited field past end");
    this.pos = start + len;
    this.fieldStart = start;
    this.fieldEnd = this.pos;
  }

  skip(wireType: number): void {
    switch (wireType) {
      case 0:
        this.varintBig();
        return;
      case 1:
        this.pos += 8;
        break;
      case 2:
        this.lengthDelimited();
        return;
      case 5:
        this.pos += 4;
        break;
      default:
        throw new ProtoDecodeError(`unsupported wire type ${wireType}`);
    }
    if (this.pos > this.end) throw new ProtoDecodeError("field past end");
  }

  /** A field tag, as `field * 8 + wireType`; field 0 is illegal. */
  tag(): number {
    const t = this.varint();
    if (t < 8) throw new ProtoDecodeError("illegal tag 0");
    return t;
  }
}

const reader = new ProtoReader();

/** Field 1..4 varint / bytes tags as they appear on the wire. */
const TAG_1_VARINT = 0x08;
const TAG_2_VARINT = 0x10;
const TAG_3_VARINT = 0x18;
const TAG_3_BYTES = 0x1a;
const TAG_4_BYTES = 0x22;

/** A field with a known number but the wrong wire type is malformed, not unknown. */
function checkKnown(t: number, maxField: number): void {
  if (t >>> 3 <= maxField)
    throw new ProtoDecodeError(`field ${t >>> 3} has wrong wire type ${t & 7}`);
}

/**
 * Decodes a raftpb.Entry. `data` is a view into `buf` (no copy): SegmentDecoder never reuses its
 * read windows, so views of them stay valid.
 */
export function decodeEntry(buf: Uint8Array): Entry {
  const r = reader.reset(buf, 0, buf.length);
  let type = 0;
  let term = 0;
  let index = 0;
  let data: Uint8Array = EMPTY;
  while (r.pos < r.end) {
    const t = r.tag();
    if (t === TAG_1_VARINT) type = r.varint();
    else if (t === TAG_2_VARINT) term = r.varint();
    else if (t === TAG_3_VARINT) index = r.varint();
    else if (t === TAG_4_BYTES) {
      r.lengthDelimited();
      data = buf.subarray(r.fieldStart, r.fieldEnd);
    } else {
      checkKnown(t, 4);
      r.skip(t & 7);
    }
  }
  return { type, term, index, data } as Entry;
}

const EMPTY = new Uint8Array(0);

/** Decodes a raftpb.HardState. */
export function decodeHardState(buf: Uint8Array): HardState {
  const r = reader.reset(buf, 0, buf.length);
  let term = 0;
  let vote = 0n;
  let commit = 0;
  while (r.pos < r.end) {
    const t = r.tag();
    if (t === TAG_1_VARINT) term = r.varint();
    else if (t === TAG_2_VARINT) vote = r.varintBig();
    else if (t === TAG_3_VARINT) commit = r.varint();
    else {
      checkKnown(t, 3);
      r.skip(t & 7);
    }
  }
  return { term, vote, commit };
}

/** Decodes a walpb.Snapshot. */
export function decodeSnapshot(buf: Uint8Array): WalSnapshot {
  const r = reader.reset(buf, 0, buf.length);
  let index = 0;
  let term = 0;
  while (r.pos < r.end) {
    const t = r.tag();
    if (t === TAG_1_VARINT) index = r.varint();
    else if (t === TAG_2_VARINT) term = r.varint();
    else {
      checkKnown(t, 2);
      r.skip(t & 7);
    }
  }
  return { index, term };
}

/** One decoded record. `data` is a view into one of the reader's windows (never overwritten). */
export interface RawRecord {
  type: number;
  crc: number;
  data: Uint8Array;
  /** File offset of the record's length word. */
  offsetBytes: number;
}

/** Result of one `SegmentDecoder.next()` call. */
export type DecodeOutcome =
  | { kind: "record"; record: RawRecord }
  | { kind: "eof" }
  | { kind: "torn"; offsetBytes: number; reason: string }
  | { kind: "corrupt"; offsetBytes: number; reason: string };

/**
 * Sequential reader of one segment. `crc` is the running CRC-32C: set it from the previous segment
 * (or let a crc record reset it, see WAL.open); every non-crc record's data is chained into it.
 * `lastValidOffsetBytes` is the offset just past the last whole, valid record (etcd's
 * lastValidOff): where appends continue and where a torn tail is cut.
 */
export class SegmentDecoder {
  crc = 0;
  lastValidOffsetBytes = 0;
  #fh: FileHandle;
  #isLast: boolean;
  #buf: Buffer = Buffer.alloc(0);
  /** File offset of #buf[0]. */
  #bufFileOffset = 0;
  /** Valid bytes in #buf. */
  #bufBytes = 0;
  #eof = false;

  /** `isLast`: this is the last segment, the only one where a torn record may be repaired. */
  constructor(fh: FileHandle, isLast: boolean) {
    this.#fh = fh;
    this.#isLast = isLast;
  }

  /**
   * Makes bytes [off, off+n) resident if the file has them; returns how many are available.
   * A refill moves to a NEW window (the unread tail is copied over) instead of compacting the old
   * one, so record data handed out earlier (and entries decoded from it) stay valid without a copy.
   */
  async #ensure(off: number, n: number): Promise<number> {
    const have = this.#bufFileOffset + this.#bufBytes - off;
    if (have >= n || this.#eof) return Math.max(0, Math.min(have, n));
    const keepFrom = off - this.#bufFileOffset;
    const keep = this.#bufBytes - keepFrom;
    const next = Buffer.allocUnsafe(Math.max(n, READ_CHUNK_BYTES));
    this.#buf.copy(next, 0, keepFrom, this.#bufBytes);
    this.#buf = next;
    this.#bufFileOffset = off;
    this.#bufBytes = keep;
    while (this.#bufBytes < n) {
      const { bytesRead } = await this.#fh.read(
        this.#buf,
        this.#bufBytes,
        this.#buf.length - this.#bufBytes,
        this.#bufFileOffset + this.#bufBytes,
      );
      if (bytesRead === 0) {
        this.#eof = true;
        break;
      }
      this.#bufBytes += bytesRead;
    }
    return Math.min(this.#bufBytes, n);
  }

  /** A failure at `offsetBytes`: torn if this is the last segment and `torn` holds, else corrupt. */
  #fail(offsetBytes: number, reason: string, torn: boolean): DecodeOutcome {
    if (this.#isLast && torn) return { kind: "torn", offsetBytes, reason };
    return { kind: "corrupt", offsetBytes, reason };
  }

  /** etcd's isTornEntry: does any 512-byte sector chunk of the frame body read as all zeros? */
  #hasZeroSector(bodyFileOffset: number, body: Uint8Array): boolean {
    let cur = 0;
    let fileOff = bodyFileOffset;
    while (cur < body.length) {
      const chunk = Math.min(SECTOR_BYTES - (fileOff % SECTOR_BYTES), body.length - cur);
      let zero = true;
      for (let i = cur; i < cur + chunk; i++) {
        if (body[i] !== 0) {
          zero = false;
          break;
        }
      }
      if (zero) return true;
      cur += chunk;
      fileOff += chunk;
    }
    return false;
  }

  /** Decodes the next record, or says why it cannot. */
  async next(): Promise<DecodeOutcome> {
    const off = this.lastValidOffsetBytes;
    const got = await this.#ensure(off, FRAME_HEADER_BYTES);
    if (got === 0) return { kind: "eof" };
    if (got < FRAME_HEADER_BYTES)
      return this.#fail(off, "length word cut short by end of file", true);
    const at = off - this.#bufFileOffset;
    const lo = this.#buf.readUInt32LE(at);
    const hi = this.#buf.readUInt32LE(at + 4);
    if (lo === 0 && hi === 0) return { kind: "eof" }; // preallocated space
    const recBytes = lo + (hi & 0x00ffffff) * 0x100000000;
    const padBytes = hi & 0x80000000 ? (hi >>> 24) & 0x7 : 0;
    if (recBytes >= MAX_RECORD_BYTES - padBytes) {
      return this.#fail(
        off,
        `record length ${recBytes} exceeds the ${MAX_RECORD_BYTES}-byte limit`,
        false,
      );
    }
    const frameBytes = FRAME_HEADER_BYTES + recBytes + padBytes;
    const avail = await this.#ensure(off, frameBytes);
    if (avail < frameBytes) return this.#fail(off, "record cut short by end of file", true);
    const buf = this.#buf;
    const bodyAt = off - this.#bufFileOffset + FRAME_HEADER_BYTES;
    const recEnd = bodyAt + recBytes;
    // Padding is excluded from the zero-sector test (etcd includes it): a chunk holding only
    // padding is zero in a whole record too, so it says nothing about a torn write.
    const torn = (): boolean =>
      this.#hasZeroSector(off + FRAME_HEADER_BYTES, buf.subarray(bodyAt, recEnd));

    let type = 0;
    let crc = 0;
    let dataStart = bodyAt;
    let dataEnd = bodyAt;
    try {
      const r = reader.reset(buf, bodyAt, recEnd);
      while (r.pos < r.end) {
        const t = r.tag();
        if (t === TAG_1_VARINT) type = r.varint();
        else if (t === TAG_2_VARINT) {
          crc = r.varint();
          if (crc > 0xffffffff) throw new ProtoDecodeError("crc exceeds uint32");
        } else if (t === TAG_3_BYTES) {
          r.lengthDelimited();
          dataStart = r.fieldStart;
          dataEnd = r.fieldEnd;
        } else {
          checkKnown(t, 3);
          r.skip(t & 7);
        }
      }
    } catch (err) {
      if (!(err instanceof ProtoDecodeError)) throw err;
      return this.#fail(off, `record does not parse: ${err.message}`, torn());
    }
    for (let i = recEnd; i < recEnd + padBytes; i++) {
      if (buf[i] !== 0) return this.#fail(off, "non-zero padding", torn());
    }
    const data = buf.subarray(dataStart, dataEnd);
    // etcd skips the check for crc records: WAL.open compares them with the running crc itself.
    if (type !== RecordType.crc) {
      const want = crc32c(data, this.crc);
      if (want !== crc) {
        return this.#fail(
          off,
          `crc mismatch: record has ${crc.toString(16)}, computed ${want.toString(16)}`,
          torn(),
        );
      }
      this.crc = want;
    }
    this.lastValidOffsetBytes = off + frameBytes;
    return { kind: "record", record: { type, crc, data, offsetBytes: off } };
  }
}
