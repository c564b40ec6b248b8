/**
 * A hand-written encoder for the proposal a KV.Put becomes: InternalRaftRequest{put, header{ID}}
 * (etcd's raft_internal.proto), the hottest write of the server. protobuf-ts's BinaryWriter forks
 * a chunk list per nested message and joins them; this sizes the message first and writes it into
 * one buffer. The bytes equal InternalRaftRequest.toBinary's (a property test checks it), so the
 * WAL and the apply path do not know which encoder made an entry.
 */
import { UnknownFieldHandler } from "@protobuf-ts/runtime";
import type { PutRequest } from "../proto/gen/etcdserverpb/rpc.js";
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
  return UnknownFieldHandler.list(put).length === 0;
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
