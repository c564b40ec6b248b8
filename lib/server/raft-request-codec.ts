/**
 * A hand-written encoder for the proposal a KV.Put becomes: InternalRaftRequest{put, header{ID}}
 * (etcd's raft_internal.proto), the hottest write of the server. protobuf-ts's BinaryWriter forks
 * a chunk list per nested message and joins them; this sizes the message first and writes it into
 * one buffer. The bytes equal InternalRaftRequest.toBinary's (a property test checks it), so the
 * WAL and the apply path do not know which encoder made an entry.
 *
 * And hand-written decoders for the same two messages (a PutRequest from a client, the put
 * proposal every member applies): protobuf-ts's reader makes a [fieldNo, wireType] array per
 * field, a PbLong per 64-bit varint, and its PutRequest.create two empty Uint8Arrays that the
 * read replaces at once, ~0.5-1 KB of garbage per put. They read only the plain form (known fields
 * with their wire types, values in range) and return undefined for anything else, which the caller
 * then hands to protobuf-ts: same objects (prototype, fields, byte views into the input), same
 * errors (property tests compare them on valid and random bytes).
 */
import { UnknownFieldHandler } from "@protobuf-ts/runtime";
import { InternalRaftRequest, RequestHeader } from "../proto/gen/etcdserverpb/raft_internal.js";
import { PutRequest } from "../proto/gen/etcdserverpb/rpc.js";
import {
  putVarint,
  putVarint64,
  putVarint64Parts,
  varintSize,
  varintSize64,
  varintSize64Parts,
} from "../proto/varint.js";

/** True when `put` can take the hand-written path: it carries no unknown fields to re-emit. */
export function isPlainPutRequest(put: PutRequest): boolean {
  return hasNoUnknownFields(put);
}

/**
 * True when protobuf-ts keeps no unknown fields on message `m` (UnknownFieldHandler.list(m) is
 * empty), without the new empty array list() returns for a message that has none.
 */
export function hasNoUnknownFields(m: object): boolean {
  const kept = (m as Record<symbol, unknown>)[UnknownFieldHandler.symbol];
  return !Array.isArray(kept) || kept.length === 0;
}

/**
 * Encodes InternalRaftRequest{ iD: 0, put, header: { iD: requestId, username: "",
 * authRevision: 0 } } as protobuf-ts would (fields in number order, proto3 defaults omitted:
 * put = 4, header = 100; PutRequest key = 1, value = 2, lease = 3 as an int64 varint, prev_kv = 4,
 * ignore_value = 5, ignore_lease = 6; RequestHeader ID = 1). The uint64 request id is given as
 * its high and low 32-bit words (the server makes ids from numbers; no BigInt on this path);
 * `put` must satisfy isPlainPutRequest.
 */
export function encodePutProposal(
  requestIdHi: number,
  requestIdLo: number,
  put: PutRequest,
): Uint8Array {
  const key = put.key;
  const value = put.value;
  const lease = put.lease === 0n ? 0n : BigInt.asUintN(64, put.lease);
  let putBytes = 0;
  if (key.length > 0) putBytes += 1 + varintSize(key.length) + key.length;
  if (value.length > 0) putBytes += 1 + varintSize(value.length) + value.length;
  if (lease !== 0n) putBytes += 1 + varintSize64(lease);
  if (put.prevKv) putBytes += 2;
  if (put.ignoreValue) putBytes += 2;
  if (put.ignoreLease) putBytes += 2;
  const hasId = requestIdHi !== 0 || requestIdLo !== 0;
  const headerBytes = hasId ? 1 + varintSize64Parts(requestIdHi, requestIdLo) : 0;
  const total = 1 + varintSize(putBytes) + putBytes + 2 + varintSize(headerBytes) + headerBytes;
  const out = Buffer.allocUnsafe(total);
  let p = 0;
  out[p++] = 0x22; // field 4, length-delimited
  p = putVarint(out, p, putBytes);
  if (key.length > 0) {
    out[p++] = 0x0a;
    p = putVarint(out, p, key.length);
    out.set(key, p);
    p += key.length;
  }
  if (value.length > 0) {
    out[p++] = 0x12;
    p = putVarint(out, p, value.length);
    out.set(value, p);
    p += value.length;
  }
  if (lease !== 0n) {
    out[p++] = 0x18;
    p = putVarint64(out, p, lease);
  }
  if (put.prevKv) {
    out[p++] = 0x20;
    out[p++] = 1;
  }
  if (put.ignoreValue) {
    out[p++] = 0x28;
    out[p++] = 1;
  }
  if (put.ignoreLease) {
    out[p++] = 0x30;
    out[p++] = 1;
  }
  out[p++] = 0xa2; // field 100, length-delimited: varint 802
  out[p++] = 0x06;
  p = putVarint(out, p, headerBytes);
  if (hasId) {
    out[p++] = 0x08;
    p = putVarint64Parts(out, p, requestIdHi, requestIdLo);
  }
  if (p !== total) throw new Error(`encodePutProposal: wrote ${p} bytes, sized ${total}`);
  return out;
}

/** The read position of the decoders below (module state: no tuple per field read). */
let at = 0;
/** The halves of the last varint readVarint64 read, as uint32s. */
let varLo = 0;
let varHi = 0;

/**
 * Reads the varint at `at` (before `end`) into varLo / varHi and moves `at` past it; false when it
 * is cut off, longer than 10 bytes, or above 2^64 - 1 (left to protobuf-ts).
 */
function readVarint64(buf: Uint8Array, end: number): boolean {
  let lo = 0;
  let hi = 0;
  for (let i = 0; i < 10; i++) {
    if (at >= end) return false;
    const b = buf[at++]!;
    const bits = b & 0x7f;
    if (i < 4) lo |= bits << (7 * i);
    else if (i === 4) {
      lo |= (bits & 0x0f) << 28;
      hi = bits >>> 4;
    } else if (i < 9) hi |= bits << (7 * i - 32);
    else if (bits > 1) return false;
    else hi |= bits << 31;
    if (b < 0x80) {
      varLo = lo >>> 0;
      varHi = hi >>> 0;
      return true;
    }
  }
  return false;
}

/** varLo / varHi as an unsigned 64-bit bigint. */
function varUint64(): bigint {
  if (varHi < 0x20_0000) return BigInt(varHi * 0x1_0000_0000 + varLo);
  return (BigInt(varHi) << 32n) | BigInt(varLo);
}

/** The length of a length-delimited field at `at` (moved past it); -1 when past `end`. */
function readLength(buf: Uint8Array, end: number): number {
  if (!readVarint64(buf, end) || varHi !== 0 || varLo > end - at) return -1;
  return varLo;
}

/** protobuf-ts's message prototypes (they carry its MESSAGE_TYPE mark). */
const putRequestPrototype = PutRequest.messagePrototype!;
const requestHeaderPrototype = RequestHeader.messagePrototype!;
const internalRaftRequestPrototype = InternalRaftRequest.messagePrototype!;

/**
 * Reads the PutRequest fields in `buf[at, end)` as PutRequest.internalBinaryRead would, or
 * undefined (see the module comment). Key and value are views into `buf`.
 */
function readPutRequest(buf: Uint8Array, end: number): PutRequest | undefined {
  let key: Uint8Array | undefined;
  let value: Uint8Array | undefined;
  let lease = 0n;
  let prevKv = false;
  let ignoreValue = false;
  let ignoreLease = false;
  while (at < end) {
    const tag = buf[at++]!;
    if (tag === 0x0a || tag === 0x12) {
      const n = readLength(buf, end);
      if (n < 0) return undefined;
      const bytes = buf.subarray(at, at + n);
      at += n;
      if (tag === 0x0a) key = bytes;
      else value = bytes;
      continue;
    }
    if (tag !== 0x18 && tag !== 0x20 && tag !== 0x28 && tag !== 0x30) return undefined;
    if (!readVarint64(buf, end)) return undefined;
    if (tag === 0x18) lease = BigInt.asIntN(64, varUint64());
    else if (tag === 0x20) prevKv = (varLo | varHi) !== 0;
    else if (tag === 0x28) ignoreValue = (varLo | varHi) !== 0;
    else ignoreLease = (varLo | varHi) !== 0;
  }
  if (at !== end) return undefined;
  const m = Object.create(putRequestPrototype) as PutRequest;
  m.key = key ?? new Uint8Array(0);
  m.value = value ?? new Uint8Array(0);
  m.lease = lease;
  m.prevKv = prevKv;
  m.ignoreValue = ignoreValue;
  m.ignoreLease = ignoreLease;
  return m;
}

/**
 * A client's PutRequest (etcd's rpc.proto) as PutRequest.fromBinary would read it, or undefined
 * when it is not in the plain form (see the module comment): then use PutRequest.fromBinary.
 */
export function decodePutRequest(buf: Uint8Array): PutRequest | undefined {
  at = 0;
  return readPutRequest(buf, buf.length);
}

/**
 * A raft entry's data as InternalRaftRequest.fromBinary would read it when it is a put proposal
 * in the plain form (fields ID, put and header{ID, auth_revision}, each at most once, as
 * encodePutProposal and etcd write them), or undefined (see the module comment): then use
 * InternalRaftRequest.fromBinary.
 */
export function decodePutProposal(buf: Uint8Array): InternalRaftRequest | undefined {
  const end = buf.length;
  at = 0;
  // fields assigned in the order they come, as protobuf-ts does (same property order)
  const r = Object.create(internalRaftRequestPrototype) as InternalRaftRequest;
  r.iD = 0n;
  while (at < end) {
    const tag = buf[at++]!;
    if (tag === 0x08) {
      if (!readVarint64(buf, end)) return undefined;
      r.iD = varUint64();
    } else if (tag === 0x22 && r.put === undefined) {
      const n = readLength(buf, end);
      if (n < 0) return undefined;
      r.put = readPutRequest(buf, at + n);
      if (r.put === undefined) return undefined;
    } else if (tag === 0xa2 && at < end && buf[at] === 0x06 && r.header === undefined) {
      at++;
      const n = readLength(buf, end);
      if (n < 0) return undefined;
      r.header = readRequestHeader(buf, at + n);
      if (r.header === undefined) return undefined;
    } else return undefined;
  }
  return r.put === undefined ? undefined : r;
}

/** A RequestHeader without a username (ID, auth_revision) in `buf[at, end)`, or undefined. */
function readRequestHeader(buf: Uint8Array, end: number): RequestHeader | undefined {
  let id = 0n;
  let authRevision = 0;
  while (at < end) {
    const tag = buf[at++]!;
    if (tag !== 0x08 && tag !== 0x18) return undefined;
    if (!readVarint64(buf, end)) return undefined;
    if (tag === 0x08) id = varUint64();
    else {
      if (varHi >= 0x20_0000) return undefined; // protobuf-ts refuses an unsafe number
      authRevision = varHi * 0x1_0000_0000 + varLo;
    }
  }
  if (at !== end) return undefined;
  const h = Object.create(requestHeaderPrototype) as RequestHeader;
  h.iD = id;
  h.username = "";
  h.authRevision = authRevision;
  return h;
}
