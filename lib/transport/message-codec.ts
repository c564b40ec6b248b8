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
  if (m.to !== 0n) n += 1 + varintSize64(m.to);
  if (m.from !== 0n) n += 1 + varintSize64(m.from);
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
    pos = putVarint64(buf, pos, m.to);
  }
  if (m.from !== 0n) {
    buf[pos++] = 0x18;
    pos = putVarint64(buf, pos, m.from);
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
