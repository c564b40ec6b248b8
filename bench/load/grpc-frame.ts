/**
 * gRPC message framing over HTTP/2 DATA (gRPC's PROTOCOL-HTTP2 "Length-Prefixed-Message"): one
 * byte compressed flag (always 0 here: we never negotiate compression) and a 4-byte big-endian
 * length, then the protobuf bytes.
 */
import { GrpcFramingError } from "./errors.js";

/** Bytes of the gRPC message prefix (flag + uint32 length). */
export const GRPC_PREFIX_BYTES = 5;

/** Largest response message the parser accepts; etcd's default max-recv is 2 GiB but ours is bounded. */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/** Prefixes `payload` (protobuf bytes) with the uncompressed gRPC message header. */
export function frameMessage(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(GRPC_PREFIX_BYTES + payload.length);
  out[0] = 0;
  out.writeUInt32BE(payload.length, 1);
  out.set(payload, GRPC_PREFIX_BYTES);
  return out;
}

/**
 * Reassembles gRPC messages from DATA chunks in arrival order. `push` returns every message the
 * chunk completed (as views or copies of the input; valid until the caller drops them).
 * Throws GrpcFramingError on a compressed message or one longer than `maxMessageBytes`.
 */
export class GrpcMessageParser {
  #pending: Buffer | null = null;
  readonly #maxMessageBytes: number;

  constructor(maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES) {
    this.#maxMessageBytes = maxMessageBytes;
  }

  /** Bytes held for an incomplete message. */
  get pendingBytes(): number {
    return this.#pending === null ? 0 : this.#pending.length;
  }

  push(chunk: Buffer): Buffer[] {
    let buf = this.#pending === null ? chunk : Buffer.concat([this.#pending, chunk]);
    this.#pending = null;
    const out: Buffer[] = [];
    let off = 0;
    while (buf.length - off >= GRPC_PREFIX_BYTES) {
      if (buf[off] !== 0)
        throw new GrpcFramingError(`compressed gRPC message (flag ${buf[off]}) not negotiated`);
      const len = buf.readUInt32BE(off + 1);
      if (len > this.#maxMessageBytes) {
        throw new GrpcFramingError(`gRPC message of ${len} bytes exceeds ${this.#maxMessageBytes}`);
      }
      if (buf.length - off - GRPC_PREFIX_BYTES < len) break;
      out.push(buf.subarray(off + GRPC_PREFIX_BYTES, off + GRPC_PREFIX_BYTES + len));
      off += GRPC_PREFIX_BYTES + len;
    }
    if (off < buf.length) this.#pending = Buffer.from(buf.subarray(off));
    return out;
  }
}
