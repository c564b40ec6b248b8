/**
 * The hello exchange that opens every peer connection (DESIGN §6). etcd's rafthttp carries the
 * same checks in HTTP headers (X-Etcd-Cluster-ID, X-Server-From, the stream path's member id and
 * X-Server-Version, checked in rafthttp/http.go); here they are one fixed-size binary frame each
 * way, so a connection is accepted or refused before any raft message is read.
 *
 * Dialer -> acceptor, HELLO_BYTES (32) bytes, integers big-endian:
 *   magic "ETSP" (4) | protocol version u16 | stream kind u8 | reserved u8 (0)
 *   | cluster id u64 | from member id u64 | to member id u64
 * Acceptor -> dialer, HELLO_REPLY_HEADER_BYTES (26) bytes + reason:
 *   magic "ETSP" (4) | protocol version u16 | status u8 | reserved u8 (0)
 *   | acceptor's cluster id u64 | acceptor's member id u64 | reason length u16 | reason (UTF-8)
 * A refusal (status != Ok) is followed by the acceptor closing the connection; the dialer logs
 * the reason and reports it in peerStatus(id).lastError, so a refusal is seen on both sides.
 */
import type { PeerErrorCode } from "./errors.js";

/** "ETSP" (etcd-ts peer). */
export const HELLO_MAGIC = 0x45545350;
/** The only protocol version spoken so far. A new version must still understand this hello. */
export const PROTOCOL_VERSION = 1;
/** Size of the dialer's hello. */
export const HELLO_BYTES = 32;
/** Size of the acceptor's reply before its reason text. */
export const HELLO_REPLY_HEADER_BYTES = 26;
/** Longest reason text sent in a reply (longer reasons are cut). */
export const MAX_REASON_BYTES = 1024;

/** What a connection carries after the hello. */
export enum StreamKind {
  /** Raft messages, dialer to acceptor; the acceptor answers pings with pongs. */
  Message = 1,
  /** One MsgSnap and its payload in chunks, then the acceptor's status (snapshot.ts). */
  Snapshot = 2,
}

/** The acceptor's answer to a hello. Values are on the wire: never renumber. */
export enum HelloStatus {
  Ok = 0,
  VersionMismatch = 1,
  ClusterMismatch = 2,
  WrongReceiver = 3,
  UnknownMember = 4,
  MemberRemoved = 5,
  CertificateNotAllowed = 6,
  BadHello = 7,
  Unavailable = 8,
}

/** The error code a refusal is reported under (PeerTransport.peerStatus, logs). */
export function refusalCode(status: HelloStatus): PeerErrorCode {
  switch (status) {
    case HelloStatus.VersionMismatch:
      return "protocol-version-mismatch";
    case HelloStatus.ClusterMismatch:
      return "cluster-id-mismatch";
    case HelloStatus.WrongReceiver:
      return "wrong-receiver";
    case HelloStatus.UnknownMember:
      return "unknown-member";
    case HelloStatus.MemberRemoved:
      return "member-removed";
    case HelloStatus.CertificateNotAllowed:
      return "certificate-cn-not-allowed";
    case HelloStatus.Unavailable:
      return "unavailable";
    default:
      return "bad-hello";
  }
}

/** The dialer's hello. */
export interface Hello {
  version: number;
  kind: StreamKind;
  clusterId: bigint;
  from: bigint;
  to: bigint;
}

/** The acceptor's reply. */
export interface HelloReply {
  version: number;
  status: HelloStatus;
  clusterId: bigint;
  memberId: bigint;
  reason: string;
}

/** A member id as etcd prints it (types.ID.String(): lower-case hex, no padding). */
export function memberIdHex(id: bigint): string {
  return id.toString(16);
}

/** Encodes the dialer's hello (HELLO_BYTES bytes). */
export function encodeHello(h: Hello): Buffer {
  const b = Buffer.alloc(HELLO_BYTES);
  b.writeUInt32BE(HELLO_MAGIC, 0);
  b.writeUInt16BE(h.version, 4);
  b.writeUInt8(h.kind, 6);
  b.writeBigUInt64BE(h.clusterId, 8);
  b.writeBigUInt64BE(h.from, 16);
  b.writeBigUInt64BE(h.to, 24);
  return b;
}

/**
 * Decodes a dialer's hello from HELLO_BYTES bytes (or fewer, to report a bad magic early).
 * Returns a string saying what is wrong when the bytes are not a hello (bad magic, short,
 * unknown stream kind, non-zero reserved byte).
 */
export function decodeHello(b: Uint8Array): Hello | string {
  const v = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (v.length >= 4 && v.readUInt32BE(0) !== HELLO_MAGIC)
    return "not an etcd-ts peer hello (bad magic)";
  if (v.length !== HELLO_BYTES) return `hello is ${v.length} bytes, want ${HELLO_BYTES}`;
  const kind = v.readUInt8(6);
  if (kind !== StreamKind.Message && kind !== StreamKind.Snapshot)
    return `unknown stream kind ${kind}`;
  if (v.readUInt8(7) !== 0) return "reserved hello byte is not zero";
  return {
    version: v.readUInt16BE(4),
    kind,
    clusterId: v.readBigUInt64BE(8),
    from: v.readBigUInt64BE(16),
    to: v.readBigUInt64BE(24),
  };
}

/** Encodes the acceptor's reply; the reason is cut to MAX_REASON_BYTES. */
export function encodeHelloReply(r: HelloReply): Buffer {
  let reason = Buffer.from(r.reason, "utf8");
  if (reason.length > MAX_REASON_BYTES) reason = reason.subarray(0, MAX_REASON_BYTES);
  const b = Buffer.alloc(HELLO_REPLY_HEADER_BYTES + reason.length);
  b.writeUInt32BE(HELLO_MAGIC, 0);
  b.writeUInt16BE(r.version, 4);
  b.writeUInt8(r.status, 6);
  b.writeBigUInt64BE(r.clusterId, 8);
  b.writeBigUInt64BE(r.memberId, 16);
  b.writeUInt16BE(reason.length, 24);
  reason.copy(b, HELLO_REPLY_HEADER_BYTES);
  return b;
}

/**
 * Decodes the fixed header of a reply (HELLO_REPLY_HEADER_BYTES bytes): the reply without its
 * reason plus the reason's length, or a string saying what is wrong.
 */
export function decodeHelloReplyHeader(
  b: Uint8Array,
): { reply: Omit<HelloReply, "reason">; reasonBytes: number } | string {
  const v = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (v.readUInt32BE(0) !== HELLO_MAGIC) return "not an etcd-ts peer (bad magic in hello reply)";
  const reasonBytes = v.readUInt16BE(24);
  if (reasonBytes > MAX_REASON_BYTES) return `hello reply reason of ${reasonBytes} bytes`;
  return {
    reply: {
      version: v.readUInt16BE(4),
      status: v.readUInt8(6) as HelloStatus,
      clusterId: v.readBigUInt64BE(8),
      memberId: v.readBigUInt64BE(16),
    },
    reasonBytes,
  };
}
