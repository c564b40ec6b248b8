/**
 * HTTP/2 frame layout (RFC 9113 §4.1, §6): the 9-byte header, type and flag constants, and
 * builders for the frames a server sends. Builders return the whole frame as one Buffer.
 */

/** The client connection preface (RFC 9113 §3.4). */
export const clientPreface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/** Every frame starts with a 9-byte header: length (24 bits), type, flags, stream id (31 bits). */
export const frameHeaderBytes = 9;

/** Frame type codes (RFC 9113 §6). */
export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

/** Frame flags (RFC 9113 §6); END_STREAM and ACK share a bit on different frame types. */
export const Flag = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

/** SETTINGS parameter ids (RFC 9113 §6.5.2). */
export const SettingId = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

/** RFC 9113 §6.9.1: a flow-control window never exceeds 2^31 - 1. */
export const maxWindowBytes = 2 ** 31 - 1;
/** RFC 9113 §6.9.2: the initial window of a stream and of the connection. */
export const defaultWindowBytes = 65_535;
/** RFC 9113 §4.2: SETTINGS_MAX_FRAME_SIZE lies in [2^14, 2^24 - 1]. */
export const minMaxFrameSizeBytes = 16_384;
export const maxMaxFrameSizeBytes = 2 ** 24 - 1;

/** Writes a frame header into `buf` at `off`. */
export function writeFrameHeader(
  buf: Buffer,
  off: number,
  length: number,
  type: number,
  flags: number,
  streamId: number,
): void {
  buf[off] = (length >>> 16) & 0xff;
  buf[off + 1] = (length >>> 8) & 0xff;
  buf[off + 2] = length & 0xff;
  buf[off + 3] = type;
  buf[off + 4] = flags;
  buf.writeUInt32BE(streamId & 0x7fffffff, off + 5);
}

/** A frame with the given payload. */
export function buildFrame(
  type: number,
  flags: number,
  streamId: number,
  payload: Uint8Array,
): Buffer {
  const out = Buffer.allocUnsafe(frameHeaderBytes + payload.length);
  writeFrameHeader(out, 0, payload.length, type, flags, streamId);
  out.set(payload, frameHeaderBytes);
  return out;
}

/** SETTINGS with [id, value] pairs (RFC 9113 §6.5). */
export function buildSettings(settings: readonly [number, number][]): Buffer {
  const payload = Buffer.allocUnsafe(settings.length * 6);
  settings.forEach(([id, v], i) => {
    payload.writeUInt16BE(id, i * 6);
    payload.writeUInt32BE(v, i * 6 + 2);
  });
  return buildFrame(FrameType.SETTINGS, 0, 0, payload);
}

/** SETTINGS with ACK and no payload (RFC 9113 §6.5.3). */
export const settingsAckFrame = buildFrame(FrameType.SETTINGS, Flag.ACK, 0, Buffer.alloc(0));

/** WINDOW_UPDATE (RFC 9113 §6.9) raising `streamId`'s window (0: the connection) by 1..2^31-1 bytes. */
export function buildWindowUpdate(streamId: number, incrementBytes: number): Buffer {
  const p = Buffer.allocUnsafe(4);
  p.writeUInt32BE(incrementBytes, 0);
  return buildFrame(FrameType.WINDOW_UPDATE, 0, streamId, p);
}

/** RST_STREAM (RFC 9113 §6.4) with an H2ErrorCode. */
export function buildRstStream(streamId: number, code: number): Buffer {
  const p = Buffer.allocUnsafe(4);
  p.writeUInt32BE(code, 0);
  return buildFrame(FrameType.RST_STREAM, 0, streamId, p);
}

/** GOAWAY (RFC 9113 §6.8): the last stream id we processed, an H2ErrorCode and debug text. */
export function buildGoaway(lastStreamId: number, code: number, debug = ""): Buffer {
  const d = Buffer.from(debug, "utf8");
  const p = Buffer.allocUnsafe(8 + d.length);
  p.writeUInt32BE(lastStreamId & 0x7fffffff, 0);
  p.writeUInt32BE(code, 4);
  d.copy(p, 8);
  return buildFrame(FrameType.GOAWAY, 0, 0, p);
}

/**
 * A header block as HEADERS followed by CONTINUATION frames, none larger than `maxFrameBytes`
 * (RFC 9113 §6.2, §6.10).
 */
export function buildHeaders(
  streamId: number,
  block: Buffer,
  endStream: boolean,
  maxFrameBytes: number,
): Buffer {
  const es = endStream ? Flag.END_STREAM : 0;
  if (block.length <= maxFrameBytes) {
    const out = Buffer.allocUnsafe(frameHeaderBytes + block.length);
    writeFrameHeader(out, 0, block.length, FrameType.HEADERS, es | Flag.END_HEADERS, streamId);
    block.copy(out, frameHeaderBytes);
    return out;
  }
  const parts: Buffer[] = [];
  for (let off = 0; off < block.length; off += maxFrameBytes) {
    const chunk = block.subarray(off, off + maxFrameBytes);
    const last = off + maxFrameBytes >= block.length;
    const type = off === 0 ? FrameType.HEADERS : FrameType.CONTINUATION;
    const flags = (off === 0 ? es : 0) | (last ? Flag.END_HEADERS : 0);
    parts.push(buildFrame(type, flags, streamId, chunk));
  }
  return Buffer.concat(parts);
}
