/**
 * Typed errors of lib/h2 with stable codes. HTTP/2 error codes are RFC 9113 §7; a connection error
 * ends one connection with GOAWAY, a stream error resets one stream with RST_STREAM (§5.4).
 */

/** RFC 9113 §7 error codes, as sent in RST_STREAM and GOAWAY. */
export const H2ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

/**
 * Why the member ended a client connection: a small fixed set, so it can label a metric. The
 * defences (a client that floods or stalls us) are the ENHANCE_YOUR_CALM family plus
 * "slow_reader"; the rest name the RFC 9113 §7 code of a protocol violation.
 */
export type H2CloseReason =
  | "too_many_pings"
  | "rapid_reset"
  | "settings_flood"
  | "control_frame_flood"
  | "header_block_too_large"
  | "header_block_timeout"
  | "handshake_timeout"
  | "slow_reader"
  | "protocol_error"
  | "internal_error"
  | "flow_control_error"
  | "frame_size_error"
  | "compression_error"
  | "other_error";

/** The close reasons that are defences against a hostile or broken client (logged at warn). */
export const h2DefenceReasons: ReadonlySet<H2CloseReason> = new Set<H2CloseReason>([
  "too_many_pings",
  "rapid_reset",
  "settings_flood",
  "control_frame_flood",
  "header_block_too_large",
  "header_block_timeout",
  "handshake_timeout",
  "slow_reader",
]);

/** The default close reason of an RFC 9113 §7 code (for errors that do not name one). */
export function h2CloseReasonOf(h2Code: number): H2CloseReason {
  switch (h2Code) {
    case H2ErrorCode.PROTOCOL_ERROR:
      return "protocol_error";
    case H2ErrorCode.INTERNAL_ERROR:
      return "internal_error";
    case H2ErrorCode.FLOW_CONTROL_ERROR:
      return "flow_control_error";
    case H2ErrorCode.FRAME_SIZE_ERROR:
      return "frame_size_error";
    case H2ErrorCode.COMPRESSION_ERROR:
      return "compression_error";
    case H2ErrorCode.SETTINGS_TIMEOUT:
      return "handshake_timeout";
    default:
      return "other_error";
  }
}

/**
 * A connection error (RFC 9113 §5.4.1): the connection is closed with GOAWAY carrying `h2Code`
 * and `message` as its debug data. `reason` is the metric label (h2CloseReasonOf(h2Code) unless
 * the thrower names a defence).
 */
export class H2ConnectionError extends Error {
  readonly code = "ErrH2Connection";
  readonly reason: H2CloseReason;
  constructor(
    readonly h2Code: number,
    message: string,
    reason?: H2CloseReason,
  ) {
    super(message);
    this.reason = reason ?? h2CloseReasonOf(h2Code);
  }
}

/** A stream error (RFC 9113 §5.4.2): the stream is reset with RST_STREAM carrying `h2Code`. */
export class H2StreamError extends Error {
  readonly code = "ErrH2Stream";
  constructor(
    readonly streamId: number,
    readonly h2Code: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A header block that cannot be decoded (RFC 7541): a COMPRESSION_ERROR for the connection, since
 * the decoder's dynamic table can no longer be trusted.
 */
export class HpackError extends Error {
  readonly code = "ErrHpack";
}

/** A header list larger than the advertised SETTINGS_MAX_HEADER_LIST_SIZE (decoded bytes, §6.5.2). */
export class HeaderListTooLargeError extends Error {
  readonly code = "ErrHeaderListTooLarge";
}
