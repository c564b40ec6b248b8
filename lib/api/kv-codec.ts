/**
 * Hand-written encoders for the KV responses every Put and Range returns (etcd's rpc.proto
 * PutResponse, RangeResponse, ResponseHeader and mvccpb.KeyValue). protobuf-ts's BinaryWriter
 * forks a chunk list per nested message and joins them; these size the message first and write
 * it once into one buffer, and keep the encoded cluster_id/member_id pair of the last header
 * (constant for a member). The bytes equal protobuf-ts's toBinary (fields in number order, proto3
 * defaults omitted; test/api/kv-codec.test.ts checks it on random messages), so a client cannot
 * tell which encoder answered.
 */
import * as rpc from "../proto/gen/etcdserverpb/rpc.js";
import type { KeyValue } from "../proto/gen/mvccpb/kv.js";
import { putVarint, putVarint64, varintSize, varintSize64 } from "../proto/varint.js";
import { decodePutRequest, hasNoUnknownFields } from "../server/raft-request-codec.js";

/** Encoded `cluster_id` and `member_id` fields of the last header seen. */
let idsCluster = -1n;
let idsMember = -1n;
let idsBytes: Uint8Array = new Uint8Array(0);

function headerIds(h: rpc.ResponseHeader): Uint8Array {
  if (h.clusterId === idsCluster && h.memberId === idsMember) return idsBytes;
  let n = 0;
  if (h.clusterId !== 0n) n += 1 + varintSize64(h.clusterId);
  if (h.memberId !== 0n) n += 1 + varintSize64(h.memberId);
  const b = new Uint8Array(n);
  let p = 0;
  if (h.clusterId !== 0n) {
    b[p++] = 0x08;
    p = putVarint64(b, p, h.clusterId);
  }
  if (h.memberId !== 0n) {
    b[p++] = 0x10;
    p = putVarint64(b, p, h.memberId);
  }
  idsCluster = h.clusterId;
  idsMember = h.memberId;
  idsBytes = b;
  return b;
}

function headerSize(h: rpc.ResponseHeader): number {
  let n = headerIds(h).length;
  if (h.revision !== 0) n += 1 + varintSize(h.revision);
  if (h.raftTerm !== 0) n += 1 + varintSize(h.raftTerm);
  return n;
}

function writeHeader(out: Uint8Array, p: number, h: rpc.ResponseHeader): number {
  const ids = headerIds(h);
  out.set(ids, p);
  p += ids.length;
  if (h.revision !== 0) {
    out[p++] = 0x18;
    p = putVarint(out, p, h.revision);
  }
  if (h.raftTerm !== 0) {
    out[p++] = 0x20;
    p = putVarint(out, p, h.raftTerm);
  }
  return p;
}

function keyValueSize(kv: KeyValue): number {
  let n = 0;
  if (kv.key.length > 0) n += 1 + varintSize(kv.key.length) + kv.key.length;
  if (kv.createRevision !== 0) n += 1 + varintSize(kv.createRevision);
  if (kv.modRevision !== 0) n += 1 + varintSize(kv.modRevision);
  if (kv.version !== 0) n += 1 + varintSize(kv.version);
  if (kv.value.length > 0) n += 1 + varintSize(kv.value.length) + kv.value.length;
  if (kv.lease !== 0n) n += 1 + varintSize64(BigInt.asUintN(64, kv.lease));
  return n;
}

function writeKeyValue(out: Uint8Array, p: number, kv: KeyValue): number {
  if (kv.key.length > 0) {
    out[p++] = 0x0a;
    p = putVarint(out, p, kv.key.length);
    out.set(kv.key, p);
    p += kv.key.length;
  }
  if (kv.createRevision !== 0) {
    out[p++] = 0x10;
    p = putVarint(out, p, kv.createRevision);
  }
  if (kv.modRevision !== 0) {
    out[p++] = 0x18;
    p = putVarint(out, p, kv.modRevision);
  }
  if (kv.version !== 0) {
    out[p++] = 0x20;
    p = putVarint(out, p, kv.version);
  }
  if (kv.value.length > 0) {
    out[p++] = 0x2a;
    p = putVarint(out, p, kv.value.length);
    out.set(kv.value, p);
    p += kv.value.length;
  }
  if (kv.lease !== 0n) {
    out[p++] = 0x30;
    p = putVarint64(out, p, BigInt.asUintN(64, kv.lease));
  }
  return p;
}

/** True when protobuf-ts would write nothing beyond the known fields (no unknown fields kept). */
function plain(m: object): boolean {
  return hasNoUnknownFields(m);
}

/**
 * Encodes a PutResponse (header = 1, prev_kv = 2) as protobuf-ts's toBinary does. Values must be
 * in range: revisions, terms and versions non-negative safe integers (as the store makes them).
 */
export function encodePutResponse(m: rpc.PutResponse): Uint8Array {
  const h = m.header;
  const kv = m.prevKv;
  if ((h !== undefined && !plain(h)) || (kv !== undefined && !plain(kv)) || !plain(m)) {
    return rpc.PutResponse.toBinary(m);
  }
  const hs = h === undefined ? -1 : headerSize(h);
  const ks = kv === undefined ? -1 : keyValueSize(kv);
  const total = (hs < 0 ? 0 : 1 + varintSize(hs) + hs) + (ks < 0 ? 0 : 1 + varintSize(ks) + ks);
  const out = new Uint8Array(total);
  let p = 0;
  if (h !== undefined) {
    out[p++] = 0x0a;
    p = putVarint(out, p, hs);
    p = writeHeader(out, p, h);
  }
  if (kv !== undefined) {
    out[p++] = 0x12;
    p = putVarint(out, p, ks);
    p = writeKeyValue(out, p, kv);
  }
  return out;
}

/** Encodes a RangeResponse (header = 1, kvs = 2, more = 3, count = 4) as protobuf-ts does. */
export function encodeRangeResponse(m: rpc.RangeResponse): Uint8Array {
  const h = m.header;
  if ((h !== undefined && !plain(h)) || !plain(m)) return rpc.RangeResponse.toBinary(m);
  const kvs = m.kvs;
  const sizes = new Array<number>(kvs.length);
  const hs = h === undefined ? -1 : headerSize(h);
  let total = hs < 0 ? 0 : 1 + varintSize(hs) + hs;
  for (let i = 0; i < kvs.length; i++) {
    const kv = kvs[i]!;
    if (!plain(kv)) return rpc.RangeResponse.toBinary(m);
    const s = keyValueSize(kv);
    sizes[i] = s;
    total += 1 + varintSize(s) + s;
  }
  if (m.more) total += 2;
  if (m.count !== 0) total += 1 + varintSize(m.count);
  const out = new Uint8Array(total);
  let p = 0;
  if (h !== undefined) {
    out[p++] = 0x0a;
    p = putVarint(out, p, hs);
    p = writeHeader(out, p, h);
  }
  for (let i = 0; i < kvs.length; i++) {
    out[p++] = 0x12;
    p = putVarint(out, p, sizes[i]!);
    p = writeKeyValue(out, p, kvs[i]!);
  }
  if (m.more) {
    out[p++] = 0x18;
    out[p++] = 1;
  }
  if (m.count !== 0) {
    out[p++] = 0x20;
    p = putVarint(out, p, m.count);
  }
  return out;
}

/**
 * PutRequest's codec for the transports: the hand-written decoder of raft-request-codec.ts for
 * the plain form, protobuf-ts for the rest and for encoding.
 */
export const putRequestCodec = {
  fromBinary: (b: Uint8Array) => decodePutRequest(b) ?? rpc.PutRequest.fromBinary(b),
  toBinary: (m: rpc.PutRequest) => rpc.PutRequest.toBinary(m),
};

/** Codecs with protobuf-ts's shape for the transports: generated decoder, hand-written encoder. */
export const putResponseCodec = {
  fromBinary: (b: Uint8Array) => rpc.PutResponse.fromBinary(b),
  toBinary: encodePutResponse,
};
export const rangeResponseCodec = {
  fromBinary: (b: Uint8Array) => rpc.RangeResponse.fromBinary(b),
  toBinary: encodeRangeResponse,
};
