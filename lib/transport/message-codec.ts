/**
 * A hand-written encoder for the raft messages on a message stream: the same bytes as
 * protobuf-ts's Message.toBinary (fields in number order, proto3 defaults left out), written
 * straight into the batch buffer a flush sends. protobuf-ts builds each message in a
 * BinaryWriter of its own and copies it out, which with the garbage it leaves was most of the
 * send path's CPU (bench/transport.bench.ts). Messages with a snapshot (MsgSnap, which travels on
 * its own connection anyway) and unknown fields are not handled here: callers check
 * `handEncodable` and use Message.toBinary for the rest.
 */
import type { Entry, Message } from "../proto/gen/raftpb/raft.js";
import { putVarint, putVarint64, varintSize, varintSize64 } from "../proto/varint.js";

/** True when putMessage writes `m` exactly as Message.toBinary would. */
export function handEncodable(m: Message): boolean {
  return m.snapshot === undefined && m.type >= 0;
}

function entrySize(e: Entry): number {
  const d = e.data.length;
  return (
    (e.type !== 0 ? 1 + varintSize(e.type) : 0) +
    (e.term !== 0 ? 1 + varintSize(e.term) : 0) +
    (e.index !== 0 ? 1 + varintSize(e.index) : 0) +
    (d > 0 ? 1 + varintSize(d) + d : 0)
  );
}

/** Encoded size of `m` (handEncodable), bytes. */
export function messageSize(m: Message): number {
  let n = 0;
  if (m.type !== 0) n += 1 + varintSize(m.type);
  // member ids through idVarint: a BigInt split costs two BigInt allocations per id per message
  if (m.to !== 0n) n += 1 + idVarint(m.to).length;
  if (m.from !== 0n) n += 1 + idVarint(m.from).length;
  if (m.term !== 0) n += 1 + varintSize(m.term);
  if (m.logTerm !== 0) n += 1 + varintSize(m.logTerm);
  if (m.index !== 0) n += 1 + varintSize(m.index);
  for (const e of m.entries) {
    const s = entrySize(e);
    n += 1 + varintSize(s) + s;
  }
  if (m.commit !== 0) n += 1 + varintSize(m.commit);
  if (m.reject) n += 2;
  if (m.rejectHint !== 0) n += 1 + varintSize(m.rejectHint);
  if (m.context.length > 0) n += 1 + varintSize(m.context.length) + m.context.length;
  return n;
}

/** Writes `m` (handEncodable) at `pos` of `buf`; returns the position after it. */
export function putMessage(buf: Uint8Array, pos: number, m: Message): number {
  if (m.type !== 0) {
    buf[pos++] = 0x08;
    pos = putVarint(buf, pos, m.type);
  }
  if (m.to !== 0n) {
    buf[pos++] = 0x10;
    pos = putBytes(buf, pos, idVarint(m.to));
  }
  if (m.from !== 0n) {
    buf[pos++] = 0x18;
    pos = putBytes(buf, pos, idVarint(m.from));
  }
  if (m.term !== 0) {
    buf[pos++] = 0x20;
    pos = putVarint(buf, pos, m.term);
  }
  if (m.logTerm !== 0) {
    buf[pos++] = 0x28;
    pos = putVarint(buf, pos, m.logTerm);
  }
  if (m.index !== 0) {
    buf[pos++] = 0x30;
    pos = putVarint(buf, pos, m.index);
  }
  for (const e of m.entries) {
    buf[pos++] = 0x3a;
    pos = putVarint(buf, pos, entrySize(e));
    if (e.type !== 0) {
      buf[pos++] = 0x08;
      pos = putVarint(buf, pos, e.type);
    }
    if (e.term !== 0) {
      buf[pos++] = 0x10;
      pos = putVarint(buf, pos, e.term);
    }
    if (e.index !== 0) {
      buf[pos++] = 0x18;
      pos = putVarint(buf, pos, e.index);
    }
    if (e.data.length > 0) {
      buf[pos++] = 0x22;
      pos = putVarint(buf, pos, e.data.length);
      buf.set(e.data, pos);
      pos += e.data.length;
    }
  }
  if (m.commit !== 0) {
    buf[pos++] = 0x40;
    pos = putVarint(buf, pos, m.commit);
  }
  if (m.reject) {
    buf[pos++] = 0x50;
    buf[pos++] = 1;
  }
  if (m.rejectHint !== 0) {
    buf[pos++] = 0x58;
    pos = putVarint(buf, pos, m.rejectHint);
  }
  if (m.context.length > 0) {
    buf[pos++] = 0x62;
    pos = putVarint(buf, pos, m.context.length);
    buf.set(m.context, pos);
    pos += m.context.length;
  }
  return pos;
}

/** The read position of readVarint and skipBytes (module state: no tuple per field read). */
let at = 0;

/**
 * Reads the varint at `at` of `buf` (before `end`) as a safe integer and moves `at` past it; -1
 * when it is cut off, longer than 8 bytes, or above Number.MAX_SAFE_INTEGER (the caller then
 * leaves the message to protobuf-ts, which reports the error or reads the value as it does).
 */
function readVarint(buf: Uint8Array, end: number): number {
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 8 && at < end; i++) {
    const b = buf[at++]!;
    v += (b & 0x7f) * mul;
    if (b < 0x80) return v <= Number.MAX_SAFE_INTEGER ? v : -1;
    mul *= 128;
  }
  return -1;
}

/** Varint encodings of member ids (few per member; bounded, STYLE §2). */
const idVarints = new Map<bigint, Uint8Array>();
const maxIdVarints = 64;

function idVarint(id: bigint): Uint8Array {
  let v = idVarints.get(id);
  if (v === undefined) {
    if (idVarints.size >= maxIdVarints) idVarints.clear();
    v = new Uint8Array(varintSize64(id));
    putVarint64(v, 0, id);
    idVarints.set(id, v);
  }
  return v;
}

/** Copies `bytes` to `pos` of `buf`; returns the position after them. */
function putBytes(buf: Uint8Array, pos: number, bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length; i++) buf[pos + i] = bytes[i]!;
  return pos + bytes.length;
}

/** True (and `at` moved past it) when the bytes at `at` are `want`. */
function skipBytes(buf: Uint8Array, end: number, want: Uint8Array): boolean {
  const n = want.length;
  if (at + n > end) return false;
  for (let i = 0; i < n; i++) if (buf[at + i] !== want[i]) return false;
  at += n;
  return true;
}

function readEntry(buf: Uint8Array, end: number): Entry | undefined {
  const e: Entry = { type: 0, term: 0, index: 0, data: emptyBytes };
  while (at < end) {
    const tag = buf[at++]!;
    const wire = tag & 7;
    const field = tag >>> 3;
    if (tag >= 0x80) return undefined;
    if (field === 4 && wire === 2) {
      const n = readVarint(buf, end);
      if (n < 0 || at + n > end) return undefined;
      e.data = buf.subarray(at, at + n);
      at += n;
      continue;
    }
    if (wire !== 0 || field < 1 || field > 3) return undefined;
    const v = readVarint(buf, end);
    // an enum is an int32: a value past 2^31 is a negative one, left to protobuf-ts
    if (v < 0 || (field === 1 && v > 0x7fffffff)) return undefined;
    if (field === 1) e.type = v;
    else if (field === 2) e.term = v;
    else e.index = v;
  }
  return e;
}

const emptyBytes = new Uint8Array(0);

/**
 * Decodes a raftpb.Message as Message.fromBinary would, for the messages putMessage writes on a
 * link from member `from` to member `to`: known fields only, no snapshot, every integer a safe
 * one, and `to` / `from` (when present) exactly those ids, the only ones such a link carries (they
 * are compared in their encoded form, which costs no BigInt per message). Returns undefined for
 * anything else (other ids, a snapshot, an unknown field, a negative enum, an integer past 2^53,
 * bytes that do not parse): the caller then decodes with protobuf-ts, which gives its answer or
 * its error. Bytes fields are views into `buf`, as protobuf-ts's. The message is bytes
 * [start, end) of `buf` (all of it by default).
 */
export function readMessage(
  buf: Uint8Array,
  from: bigint,
  to: bigint,
  start = 0,
  end = buf.length,
): Message | undefined {
  const m: Message = {
    type: 0,
    to: 0n,
    from: 0n,
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    snapshot: undefined,
    reject: false,
    rejectHint: 0,
    context: emptyBytes,
  };
  at = start;
  while (at < end) {
    const tag = buf[at++]!;
    if (tag >= 0x80) return undefined;
    const wire = tag & 7;
    const field = tag >>> 3;
    if (wire === 2 && (field === 7 || field === 12)) {
      const n = readVarint(buf, end);
      if (n < 0 || at + n > end) return undefined;
      const stop = at + n;
      if (field === 12) {
        m.context = buf.subarray(at, stop);
        at = stop;
        continue;
      }
      const e = readEntry(buf, stop);
      if (e === undefined) return undefined;
      // a one-element literal has a backing store of one slot; the first push makes one of 17
      if (m.entries.length === 0) m.entries = [e];
      else m.entries.push(e);
      continue;
    }
    if (wire !== 0) return undefined;
    if (field === 2) {
      if (!skipBytes(buf, end, idVarint(to))) return undefined;
      m.to = to;
      continue;
    }
    if (field === 3) {
      if (!skipBytes(buf, end, idVarint(from))) return undefined;
      m.from = from;
      continue;
    }
    const v = readVarint(buf, end);
    if (v < 0) return undefined;
    switch (field) {
      case 1:
        if (v > 0x7fffffff) return undefined;
        m.type = v;
        break;
      case 4:
        m.term = v;
        break;
      case 5:
        m.logTerm = v;
        break;
      case 6:
        m.index = v;
        break;
      case 8:
        m.commit = v;
        break;
      case 10:
        m.reject = v !== 0;
        break;
      case 11:
        m.rejectHint = v;
        break;
      default:
        return undefined;
    }
  }
  return m;
}
