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

/** A connection error (RFC 9113 §5.4.1): the connection is closed with GOAWAY carrying `h2Code`. */
export class H2ConnectionError extends Error {
  readonly code = "ErrH2Connection";
  constructor(
    readonly h2Code: number,
    message: string,
  ) {
    super(message);
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
