/**
 * Request bodies of the load workloads, protobuf-encoded by hand for the hot paths (put, range,
 * txn-put): a few tagged length-delimited fields, written straight into the framed buffer so one
 * request costs one allocation. Field numbers are etcd v3.4's rpc.proto (PutRequest key=1 value=2
 * lease=3; RangeRequest key=1 range_end=2 serializable=7; TxnRequest success=2; RequestOp
 * request_put=2); test/bench checks them against the generated lib/proto codecs.
 */
import { GRPC_PREFIX_BYTES } from "./grpc-frame.js";
import { putVarint, varintSize } from "../../lib/proto/varint.js";

/** gRPC paths of the calls the generator makes. */
export const GrpcPath = {
  put: "/etcdserverpb.KV/Put",
  range: "/etcdserverpb.KV/Range",
  txn: "/etcdserverpb.KV/Txn",
  watch: "/etcdserverpb.Watch/Watch",
  leaseGrant: "/etcdserverpb.Lease/LeaseGrant",
  leaseKeepAlive: "/etcdserverpb.Lease/LeaseKeepAlive",
  deleteRange: "/etcdserverpb.KV/DeleteRange",
  authenticate: "/etcdserverpb.Auth/Authenticate",
} as const;

function lenField(tag: number, len: number): number {
  return 1 + varintSize(len) + len;
}

function writeBytesField(buf: Buffer, off: number, tag: number, bytes: Uint8Array): number {
  buf[off++] = tag;
  off = putVarint(buf, off, bytes.length);
  buf.set(bytes, off);
  return off + bytes.length;
}

function putBodyBytes(key: Uint8Array, value: Uint8Array, leaseId: number): number {
  let n = lenField(0x0a, key.length) + lenField(0x12, value.length);
  if (leaseId > 0) n += 1 + varintSize(leaseId);
  return n;
}

function writePutBody(
  buf: Buffer,
  off: number,
  key: Uint8Array,
  value: Uint8Array,
  leaseId: number,
): number {
  off = writeBytesField(buf, off, 0x0a, key);
  off = writeBytesField(buf, off, 0x12, value);
  if (leaseId > 0) {
    buf[off++] = 0x18;
    off = putVarint(buf, off, leaseId);
  }
  return off;
}

function framed(bodyBytes: number): Buffer {
  const buf = Buffer.allocUnsafe(GRPC_PREFIX_BYTES + bodyBytes);
  buf[0] = 0;
  buf.writeUInt32BE(bodyBytes, 1);
  return buf;
}

/** A framed PutRequest{key, value, lease}. `leaseId` 0 means none (ids above 2^53 unsupported). */
export function framePut(key: Uint8Array, value: Uint8Array, leaseId = 0): Buffer {
  const n = putBodyBytes(key, value, leaseId);
  const buf = framed(n);
  writePutBody(buf, GRPC_PREFIX_BYTES, key, value, leaseId);
  return buf;
}

/** A framed RangeRequest{key, range_end, serializable}. Empty `rangeEnd` means a single key. */
export function frameRange(key: Uint8Array, rangeEnd: Uint8Array, serializable: boolean): Buffer {
  let n = lenField(0x0a, key.length);
  if (rangeEnd.length > 0) n += lenField(0x12, rangeEnd.length);
  if (serializable) n += 2;
  const buf = framed(n);
  let off = writeBytesField(buf, GRPC_PREFIX_BYTES, 0x0a, key);
  if (rangeEnd.length > 0) off = writeBytesField(buf, off, 0x12, rangeEnd);
  if (serializable) {
    buf[off++] = 0x38;
    buf[off++] = 1;
  }
  return buf;
}

/** A framed TxnRequest with no compares and one RequestOp{request_put} per pair in `success`. */
export function frameTxnPut(puts: readonly { key: Uint8Array; value: Uint8Array }[]): Buffer {
  let n = 0;
  const sizes: number[] = [];
  for (const p of puts) {
    const putBytes = putBodyBytes(p.key, p.value, 0);
    const opBytes = lenField(0x12, putBytes);
    sizes.push(putBytes, opBytes);
    n += lenField(0x12, opBytes);
  }
  const buf = framed(n);
  let off = GRPC_PREFIX_BYTES;
  for (let i = 0; i < puts.length; i++) {
    buf[off++] = 0x12; // TxnRequest.success
    off = putVarint(buf, off, sizes[2 * i + 1]!);
    buf[off++] = 0x12; // RequestOp.request_put
    off = putVarint(buf, off, sizes[2 * i]!);
    off = writePutBody(buf, off, puts[i]!.key, puts[i]!.value, 0);
  }
  return buf;
}

/**
 * Writes `n` as Go's binary.PutVarint does (zig-zag, then base-128 varint) at the start of a
 * zeroed key of `keySizeBytes` bytes — the key shape etcd's benchmark tool generates.
 */
export function benchKey(n: number, keySizeBytes: number): Buffer {
  const key = Buffer.alloc(Math.max(keySizeBytes, varintSize(2 * n)));
  putVarint(key, 0, 2 * n);
  return key;
}
