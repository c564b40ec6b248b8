/**
 * Framing on a peer connection after the hello (DESIGN §6): each frame is a uint32 big-endian
 * length followed by that many bytes, a raftpb.Message on a message stream and a payload chunk on
 * a snapshot stream. Two length words are reserved for control frames with an 8-byte payload:
 * PING_WORD (dialer -> acceptor) and PONG_WORD (the acceptor's echo), used for the round-trip
 * metric and to keep an idle connection alive (etcd sends link heartbeats for the same reason,
 * rafthttp/stream.go). Every real frame is therefore shorter than MAX_FRAME_BYTES_LIMIT.
 */
import { PeerConnectionError, TransportInvariantError } from "./errors.js";

/** Bytes of a frame's length word. */
export const FRAME_HEADER_BYTES = 4;
/** Length word of a ping: an 8-byte float64 (the sender's clock, ms) follows. */
export const PING_WORD = 0xffffffff;
/** Length word of a pong: the ping's 8 bytes, echoed. */
export const PONG_WORD = 0xfffffffe;
/** Bytes of a control frame (word + payload). */
export const CONTROL_FRAME_BYTES = 12;
/** Frame lengths at or above this are reserved; maxFrameBytes must stay below it. */
export const MAX_FRAME_BYTES_LIMIT = 0xffffff00;

/**
 * Bytes received but not yet parsed: a list of chunks as they came off the socket. Bounded by
 * its users (they parse as soon as a frame is whole and refuse frames over their limit).
 */
export class ByteQueue {
  #chunks: Uint8Array[] = [];
  /** Offset of the first unread byte in #chunks[0]. */
  #offset = 0;
  #length = 0;

  /** Unread bytes. */
  get length(): number {
    return this.#length;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  /** The big-endian uint32 at the read position; needs length >= 4. */
  peekUint32(): number {
    const first = this.#chunks[0]!;
    const o = this.#offset;
    if (first.length - o >= 4) {
      return (
        ((first[o]! << 24) | (first[o + 1]! << 16) | (first[o + 2]! << 8) | first[o + 3]!) >>> 0
      );
    }
    let v = 0;
    let i = 0;
    let off = o;
    for (let c = 0; i < 4; c++) {
      const chunk = this.#chunks[c]!;
      for (; i < 4 && off < chunk.length; i++, off++) v = v * 256 + chunk[off]!;
      off = 0;
    }
    return v;
  }

  /**
   * Removes and returns the next n bytes (n <= length). With copy, the result is a fresh array
   * of exactly n bytes that shares nothing, so decoded messages may keep views into it; without,
   * it may be a view into a received chunk.
   */
  read(n: number, copy: boolean): Uint8Array {
    const first = this.#chunks[0];
    if (n === 0 || first === undefined) return new Uint8Array(0);
    if (first.length - this.#offset >= n) {
      const view = first.subarray(this.#offset, this.#offset + n);
      this.#advance(n);
      if (!copy) return view;
      // Not view.slice(): on a Buffer that is a view, not a copy.
      const out = new Uint8Array(n);
      out.set(view);
      return out;
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.#chunks[0]!;
      const take = Math.min(chunk.length - this.#offset, n - filled);
      out.set(chunk.subarray(this.#offset, this.#offset + take), filled);
      filled += take;
      this.#advance(take);
    }
    return out;
  }

  /**
   * When the first chunk holds, at the read position, a length word below `maxBodyBytes` (so not
   * a control word) and the whole body after it: removes that frame and returns the chunk, the
   * body being bytes [frontBodyStart, frontBodyEnd) of it. Otherwise undefined, nothing removed.
   */
  takeFrontFrame(maxBodyBytes: number): Uint8Array | undefined {
    const first = this.#chunks[0];
    const o = this.#offset;
    if (first === undefined || first.length - o < FRAME_HEADER_BYTES) return undefined;
    const n =
      ((first[o]! << 24) | (first[o + 1]! << 16) | (first[o + 2]! << 8) | first[o + 3]!) >>> 0;
    if (n > maxBodyBytes || first.length - o - FRAME_HEADER_BYTES < n) return undefined;
    this.frontBodyStart = o + FRAME_HEADER_BYTES;
    this.frontBodyEnd = this.frontBodyStart + n;
    this.#advance(FRAME_HEADER_BYTES + n);
    return first;
  }

  /** Where the body takeFrontFrame found lies in the chunk it returned. */
  frontBodyStart = 0;
  frontBodyEnd = 0;

  /** Drops the next n bytes (n <= length). */
  skip(n: number): void {
    while (n > 0) {
      const take = Math.min(this.#chunks[0]!.length - this.#offset, n);
      this.#advance(take);
      n -= take;
    }
  }

  #advance(n: number): void {
    this.#offset += n;
    this.#length -= n;
    if (this.#offset === this.#chunks[0]!.length) {
      this.#chunks.shift();
      this.#offset = 0;
    }
  }
}

/** One parsed frame. */
export type Frame =
  | { kind: "data"; body: Uint8Array }
  | { kind: "ping"; stampMs: number }
  | { kind: "pong"; stampMs: number };

/**
 * Parses frames out of a byte stream. push() what arrives, then call next() until it returns
 * undefined. A length word of maxFrameBytes or more (other than the control words) throws
 * PeerConnectionError("frame-too-large") before anything of the frame is buffered beyond what
 * already arrived; the caller closes the connection.
 */
export class FrameDecoder {
  readonly #bytes = new ByteQueue();
  readonly #maxFrameBytes: number;
  readonly #copyBodies: boolean;

  /**
   * `maxFrameBytes`: the largest body accepted. `copyBodies`: hand out bodies that own their
   * memory (message streams; see ByteQueue.read) rather than views into received chunks.
   */
  constructor(maxFrameBytes: number, copyBodies: boolean) {
    if (!(maxFrameBytes > 0 && maxFrameBytes < MAX_FRAME_BYTES_LIMIT))
      throw new RangeError(`maxFrameBytes ${maxFrameBytes} out of range`);
    this.#maxFrameBytes = maxFrameBytes;
    this.#copyBodies = copyBodies;
  }

  /** Bytes received and not yet handed out. */
  get bufferedBytes(): number {
    return this.#bytes.length;
  }

  push(chunk: Uint8Array): void {
    this.#bytes.push(chunk);
  }

  /**
   * The next data frame when it lies whole in one received chunk (the common case), without a
   * Frame or a view made: returns that chunk, the body being bytes [bodyStart, bodyEnd) of it
   * until the next call. Undefined when the next frame is not such a frame: call next() for it.
   * Only for a decoder whose bodies may be views (copyBodies false).
   */
  nextInChunk(): Uint8Array | undefined {
    if (this.#copyBodies) return undefined;
    const q = this.#bytes;
    const chunk = q.takeFrontFrame(this.#maxFrameBytes);
    if (chunk !== undefined) {
      this.bodyStart = q.frontBodyStart;
      this.bodyEnd = q.frontBodyEnd;
    }
    return chunk;
  }

  /** The body of the frame nextInChunk returned last: [bodyStart, bodyEnd) of its chunk. */
  bodyStart = 0;
  bodyEnd = 0;

  /** The next whole frame, or undefined until more bytes arrive. Throws on an oversized frame. */
  next(): Frame | undefined {
    const q = this.#bytes;
    if (q.length < FRAME_HEADER_BYTES) return undefined;
    const word = q.peekUint32();
    if (word === PING_WORD || word === PONG_WORD) {
      if (q.length < CONTROL_FRAME_BYTES) return undefined;
      q.skip(FRAME_HEADER_BYTES);
      const stamp = Buffer.from(q.read(8, true)).readDoubleBE(0);
      return { kind: word === PING_WORD ? "ping" : "pong", stampMs: stamp };
    }
    if (word > this.#maxFrameBytes) {
      throw new PeerConnectionError(
        "frame-too-large",
        `frame of ${word} bytes exceeds the limit of ${this.#maxFrameBytes} bytes`,
      );
    }
    if (q.length < FRAME_HEADER_BYTES + word) return undefined;
    q.skip(FRAME_HEADER_BYTES);
    return { kind: "data", body: q.read(word, this.#copyBodies) };
  }
}

/** A ping or pong frame carrying `stampMs`. */
export function encodeControlFrame(
  word: typeof PING_WORD | typeof PONG_WORD,
  stampMs: number,
): Buffer {
  const b = Buffer.allocUnsafe(CONTROL_FRAME_BYTES);
  b.writeUInt32BE(word, 0);
  b.writeDoubleBE(stampMs, 4);
  return b;
}

/**
 * Frames bodies[from..to) into one buffer (length word + body each); `totalBytes` is their
 * framed size, computed by the caller while choosing the batch.
 */
export function encodeFrames(
  bodies: readonly Uint8Array[],
  from: number,
  to: number,
  totalBytes: number,
): Buffer {
  const out = Buffer.allocUnsafe(totalBytes);
  let off = 0;
  for (let i = from; i < to; i++) {
    const body = bodies[i]!;
    out.writeUInt32BE(body.length, off);
    out.set(body, off + FRAME_HEADER_BYTES);
    off += FRAME_HEADER_BYTES + body.length;
  }
  if (off !== totalBytes)
    throw new TransportInvariantError(`framed ${off} bytes, expected ${totalBytes}`);
  return out;
}

/** One frame (length word + body) in a fresh buffer. */
export function encodeFrame(body: Uint8Array): Buffer {
  return encodeFrames([body], 0, 1, FRAME_HEADER_BYTES + body.length);
}
