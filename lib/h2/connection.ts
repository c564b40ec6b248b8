/**
 * One HTTP/2 server connection (RFC 9113) over any Duplex (net.Socket, tls.TLSSocket): frame
 * parsing, stream states, flow control in both directions, SETTINGS/PING/GOAWAY, and the defences
 * against hostile clients (rapid reset, CONTINUATION floods, HPACK bombs, SETTINGS/PING floods,
 * window overflow, slowloris). A connection error closes this connection only.
 *
 * Batching (DESIGN §2, issue 6): every frame of one read is parsed before streams are dispatched,
 * and everything queued for the socket during one event-loop turn goes out in one write.
 */
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import {
  type H2CloseReason,
  H2ConnectionError,
  H2ErrorCode,
  H2StreamError,
  HeaderListTooLargeError,
  HpackError,
} from "./errors.js";
import {
  Flag,
  FrameType,
  SettingId,
  buildFrame,
  buildGoaway,
  buildHeaders,
  buildRstStream,
  buildSettings,
  buildWindowUpdate,
  clientPreface,
  defaultWindowBytes,
  frameHeaderBytes,
  maxMaxFrameSizeBytes,
  maxWindowBytes,
  minMaxFrameSizeBytes,
  settingsAckFrame,
  writeFrameHeader,
} from "./frames.js";
import { type Header, HpackDecoder } from "./hpack.js";
import { SocketWriteOffload } from "./write-offload.js";

/** Bounds of one connection (STYLE §2). Times in ms; 0 disables a timeout. */
export interface H2Limits {
  /** SETTINGS_MAX_CONCURRENT_STREAMS we advertise and enforce (REFUSED_STREAM beyond it) */
  maxConcurrentStreams: number;
  /** SETTINGS_MAX_FRAME_SIZE we advertise: larger frames are a FRAME_SIZE_ERROR */
  maxFrameSizeBytes: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE we advertise (decoded bytes, name + value + 32 per field) */
  maxHeaderListBytes: number;
  /** SETTINGS_HEADER_TABLE_SIZE we advertise: our HPACK decoder's dynamic table bound */
  headerTableSizeBytes: number;
  /** encoded bytes of one header block across HEADERS + CONTINUATION */
  maxHeaderBlockBytes: number;
  /** CONTINUATION frames of one header block (empty CONTINUATION floods) */
  maxContinuationFrames: number;
  /** SETTINGS_INITIAL_WINDOW_SIZE we advertise for each stream's receive window */
  initialStreamWindowBytes: number;
  /** the connection receive window we open up to right after the preface */
  connectionWindowBytes: number;
  /** stream resets by the client (and streams we had to refuse) allowed per window (CVE-2023-44487) */
  maxResetsPerWindow: number;
  /**
   * Keepalive enforcement as grpc-go's server (keepalive.EnforcementPolicy.MinTime; etcd's
   * --grpc-keepalive-min-time, 5 s): a client PING that arrives sooner than this after the previous
   * one, while we have sent no HEADERS or DATA in between, is a strike. A PING after a response
   * (grpc-go's BDP estimator pings each time it receives data) never is.
   */
  keepaliveMinTimeMs: number;
  /**
   * grpc-go's EnforcementPolicy.PermitWithoutStream (etcd: false): when false, a PING on a
   * connection without open streams is a strike if it comes within pingWithoutStreamMinTimeMs of
   * the previous one.
   */
  keepalivePermitWithoutStream: boolean;
  /** strikes allowed; one more closes the connection with GOAWAY ENHANCE_YOUR_CALM "too_many_pings" */
  maxPingStrikes: number;
  /** SETTINGS frames allowed per window */
  maxSettingsPerWindow: number;
  /**
   * Frames that cost us work without progress, per window: empty DATA without END_STREAM,
   * PRIORITY, and WINDOW_UPDATEs beyond two per DATA frame we sent (one for its stream, one for
   * the connection: they give back credit for what the client read). A grpc-go client sends a
   * connection WINDOW_UPDATE before each of its BDP pings, so one per response read; counted, a
   * single connection past 10,000 responses/s was closed as a flood (issue 12, etcd's benchmark
   * tool, range at 1 client).
   */
  maxControlFramesPerWindow: number;
  floodWindowMs: number;
  /** bytes the socket may hold unsent before we give up on a client that does not read */
  maxOutboundBufferBytes: number;
  /** preface + first SETTINGS must arrive within this */
  handshakeTimeoutMs: number;
  /** a started header block must complete within this (slowloris) */
  headersTimeoutMs: number;
  /** a connection without open streams is closed (GOAWAY NO_ERROR) after this */
  idleTimeoutMs: number;
  /** after GOAWAY on close(), streams get this long before the socket is destroyed */
  gracefulCloseTimeoutMs: number;
  /** a stream's send() reports backpressure (false) once this many bytes wait for the window */
  streamHighWaterBytes: number;
  /**
   * A PING ACK waits at most this long for the next frames we write (a response), and goes out
   * first in that write instead of in a socket write of its own. grpc-go clients ping after
   * every response they read (their BDP estimator), so a unary call at a time per connection cost
   * two writes, each waking the client; with the delay it costs one. A grpc-go client only reads
   * the ACK's delay as a longer round trip (a smaller bandwidth estimate); keepalive timeouts are
   * seconds. 0 sends every ACK at once in the next write (RFC 9113 §6.7).
   */
  pingAckDelayMs: number;
}

/**
 * grpc-go's defaultPingTimeout (2 h): without open streams and without PermitWithoutStream, a
 * client has no reason to ping more often than this.
 */
const pingWithoutStreamMinIntervalMs = 2 * 60 * 60 * 1000;

/** After held PING ACKs went out alone twice in a row, one in this many is held again. */
const pingAckRetryEvery = 16;

/**
 * "No time yet" for the connection's millisecond timestamps. Every such field holds a double
 * (Date.now()) from its initializer on: a field that started as 0 (a small integer to V8) and
 * took Date.now() later made V8 replace the connection's hidden class, the first time it
 * happened, so the next connection had another class and the optimized h2 code deoptimized on it
 * ("wrong map"), once per field. -Infinity is a double: now - noTimeMs is never below a limit.
 */
const noTimeMs = -Infinity;

/**
 * _flushSoon's bursts: flushes queued in the current job (soonQueued), and, while they run, how
 * many there were (burstSize) and how many are left (burstLeft). A burst of two or more is a
 * fan-out, whose writes may go to the thread pool (write-offload.ts). It counts flushes asked
 * for, not writes made: a connection with nothing to send after all (its window closed) still
 * counts, so now and then a lone write goes to the pool; watchers notified across an await fall
 * into separate bursts and stay on the main thread. Either way the bytes are the same.
 */
let soonQueued = 0;
let burstSize = 0;
let burstLeft = 0;

/**
 * Defaults: etcd (grpc-go) advertises unlimited concurrent streams; 10,000 per connection bounds
 * memory while no real client comes near it. The flood limits are per floodWindowMs.
 */
export const defaultH2Limits: H2Limits = {
  maxConcurrentStreams: 10_000,
  maxFrameSizeBytes: 16_384,
  maxHeaderListBytes: 64 * 1024,
  headerTableSizeBytes: 4096,
  maxHeaderBlockBytes: 128 * 1024,
  maxContinuationFrames: 64,
  initialStreamWindowBytes: 1024 * 1024,
  connectionWindowBytes: 16 * 1024 * 1024,
  maxResetsPerWindow: 1000,
  keepaliveMinTimeMs: 5_000,
  keepalivePermitWithoutStream: false,
  maxPingStrikes: 2,
  maxSettingsPerWindow: 100,
  maxControlFramesPerWindow: 10_000,
  floodWindowMs: 1000,
  maxOutboundBufferBytes: 64 * 1024 * 1024,
  handshakeTimeoutMs: 10_000,
  headersTimeoutMs: 10_000,
  idleTimeoutMs: 10 * 60_000,
  gracefulCloseTimeoutMs: 5_000,
  // grpc-go's per-stream write quota (transport defaultWriteQuota) is 64 KiB: a stream whose
  // client does not read pins about that much plus the client's window
  streamHighWaterBytes: 64 * 1024,
  pingAckDelayMs: 0,
};

type QueueItem =
  { kind: "data"; buf: Buffer; end: boolean } | { kind: "headers"; block: Buffer; end: boolean };

/**
 * Per-stream defaults shared by every stream: most gRPC streams never queue a frame nor see DATA
 * before dispatch, and their callbacks are replaced at once, so allocating these per stream only
 * fed the garbage collector. The arrays are frozen: code that pushes to them instead of replacing
 * them fails loudly.
 */
const noop = (): void => {};
const noQueueItems: QueueItem[] = Object.freeze([]) as unknown as QueueItem[];
const noChunks: Buffer[] = Object.freeze([]) as unknown as Buffer[];
/** The read buffer when nothing is left over (only read, never written). */
const noBytes = Buffer.alloc(0);

/**
 * What the application hears of one stream. An object with methods rather than four callbacks:
 * the application's per-call object is the handler, so a stream costs no closures.
 */
export interface H2StreamHandler {
  /** request body bytes of this stream (DATA payload, padding removed) */
  onStreamData(chunk: Buffer): void;
  /** the client sent END_STREAM */
  onStreamEnd(): void;
  /** the stream ended without a response: client RST_STREAM, stream error or the connection went */
  onStreamAbort(h2Code: number): void;
  /** queued bytes fell below the high-water mark after send() returned false */
  onStreamDrain(): void;
}

const noopHandler: H2StreamHandler = Object.freeze({
  onStreamData: noop,
  onStreamEnd: noop,
  onStreamAbort: noop,
  onStreamDrain: noop,
});

/**
 * One HTTP/2 stream on the server side. The application (lib/h2/grpc.ts) sets `handler` and
 * answers with sendHeaders / sendData / reset. Once `closed`, further calls are ignored.
 */
export class H2Stream {
  handler: H2StreamHandler = noopHandler;

  /** peer's window for our DATA on this stream */
  sendWindow: number;
  /** our window for the peer's DATA on this stream */
  recvWindow: number;
  remoteEnded = false;
  localEnded = false;
  closed = false;
  /** frames waiting for the window; the shared frozen `noQueueItems` until the first one */
  queue: QueueItem[] = noQueueItems;
  queuedBytes = 0;
  /** false until the application saw the headers; DATA of the same read waits in `early` */
  dispatched = false;
  /** the shared frozen `noChunks` until a chunk arrives before dispatch */
  early: Buffer[] = noChunks;
  wantDrain = false;
  /**
   * What happens when the response ends while the client is still sending: true (gRPC) sends
   * RST_STREAM(NO_ERROR) at once (RFC 9113 §8.1, as grpc-go); false leaves the stream half-closed
   * (local) until the client's END_STREAM, its further DATA still going to the handler, for
   * clients (curl) that count such a reset as a failure while they are still uploading. The application
   * then bounds what it takes and may reset() the stream itself.
   */
  resetOnEarlyEnd = true;

  constructor(
    readonly id: number,
    readonly conn: H2Connection,
    sendWindow: number,
    recvWindow: number,
  ) {
    this.sendWindow = sendWindow;
    this.recvWindow = recvWindow;
  }

  #queueItem(item: QueueItem): void {
    if (this.queue === noQueueItems) this.queue = [item];
    else this.queue.push(item);
  }

  /** Sends a (pre-encoded HPACK) header block; `end` sets END_STREAM (trailers). */
  sendHeaders(block: Buffer, end: boolean): void {
    if (this.closed || this.localEnded) return;
    if (end) this.localEnded = true;
    if (this.queue.length === 0) this.conn._writeHeaders(this, block, end);
    else this.#queueItem({ kind: "headers", block, end });
  }

  /**
   * Sends DATA, subject to flow control; returns false when more than streamHighWaterBytes wait
   * for the client's window (then handler.onStreamDrain is called once they have gone). What the
   * window lets out is written at the end of the current job (H2Connection._flushSoon).
   */
  sendData(buf: Buffer, end = false): boolean {
    if (this.closed || this.localEnded) return true;
    if (end) this.localEnded = true;
    this.#queueItem({ kind: "data", buf, end });
    this.queuedBytes += buf.length;
    this.conn._flushStream(this);
    this.conn._flushSoon();
    if (this.queuedBytes > this.conn.limits.streamHighWaterBytes) {
      this.wantDrain = true;
      return false;
    }
    return true;
  }

  /**
   * A whole response in one go: headers, one DATA frame with `prefix` + `body`, trailers with
   * END_STREAM. Built as one buffer when the windows and frame size allow (the common unary
   * case), else sent piecewise through the flow-controlled queue.
   */
  sendResponse(
    headersBlock: Buffer,
    prefix: Buffer,
    body: Uint8Array,
    trailersBlock: Buffer,
  ): void {
    if (this.closed || this.localEnded) return;
    if (!this.conn._sendWhole(this, headersBlock, prefix, body, trailersBlock)) {
      this.sendHeaders(headersBlock, false);
      this.sendData(Buffer.concat([prefix, body]));
      this.sendHeaders(trailersBlock, true);
    }
  }

  /** Resets the stream (RST_STREAM with an RFC 9113 §7 code). */
  reset(h2Code: number): void {
    this.conn._resetStream(this, h2Code, false);
  }
}

/** What a connection tells its owner. */
export interface H2ConnectionHandler {
  /**
   * A new stream's request headers arrived. Called after the whole read was parsed; the
   * stream.handler set here then receives the body (including DATA of that same read).
   */
  onStream(stream: H2Stream, headers: Header[]): void;
  /** the connection is gone (socket closed); all streams were aborted before */
  onClose(conn: H2Connection): void;
  /**
   * The connection ends for an error, called once, before onClose: either we close it (GOAWAY
   * with `h2Code`, or a destroy for a slow reader) or its socket failed ("socket_error": the
   * client reset or broke the connection; `h2Code` undefined).
   */
  onConnectionError?(conn: H2Connection, info: H2ConnectionErrorInfo): void;
}

/** Why a connection ended for an error (see H2ConnectionHandler.onConnectionError). */
export interface H2ConnectionErrorInfo {
  reason: H2CloseReason | "socket_error";
  /** the RFC 9113 §7 code of our GOAWAY; undefined when we sent none */
  h2Code: number | undefined;
  /** the GOAWAY debug data, or the socket error's message */
  message: string;
}

/**
 * An HTTP/2 server connection on `socket`. `firstBytes` are bytes already read from the socket
 * by a protocol sniffer (they must start with the client preface).
 */
export class H2Connection {
  readonly limits: H2Limits;
  readonly #socket: Duplex;
  /** pool writes of fan-out bursts; undefined for sockets without an fd of their own (TLS) */
  readonly #offload: SocketWriteOffload | undefined;
  readonly #handler: H2ConnectionHandler;
  readonly #decoder: HpackDecoder;
  readonly #streams = new Map<number, H2Stream>();

  #buf: Buffer = noBytes;
  #prefaceDone = false;
  #settingsSeen = false;
  #lastStreamId = 0;
  #goawaySent = false;
  #destroyed = false;

  // header block in progress (HEADERS without END_HEADERS)
  #hbStreamId = 0;
  #hbParts: Buffer[] = [];
  #hbBytes = 0;
  #hbFrames = 0;
  #hbEndStream = false;
  /** When the header block in progress began (noTimeMs while none is). */
  #hbStartedMs = noTimeMs;

  // flow control: peer's settings and windows
  #peerMaxFrameBytes = minMaxFrameSizeBytes;
  #peerInitialWindow = defaultWindowBytes;
  #connSendWindow = defaultWindowBytes;
  #connRecvWindow = defaultWindowBytes;
  #connRecvConsumed = 0;
  #blocked = new Set<H2Stream>();

  // output batching
  /**
   * Frames to write this turn: #out[0, #outCount). The array is kept from turn to turn (a new one
   * per flush cost an array and its backing store per response); written slots go back to
   * undefined so no sent frame stays reachable.
   */
  #out: (Buffer | undefined)[] = [];
  #outCount = 0;
  #outBytes = 0;
  #flushScheduled = false;

  // flood accounting per window
  #windowStartMs = Date.now();
  #resets = 0;
  #settingsCount = 0;
  #controlFrames = 0;
  /**
   * WINDOW_UPDATEs the client may still send without counting as control frames: two per
   * non-empty DATA frame we sent, at most maxControlFramesPerWindow banked.
   */
  #windowUpdateCredits = 0;

  // keepalive enforcement (grpc-go http2Server.handlePing): strikes since the last reset, the
  // previous PING's time, and whether we sent HEADERS or DATA since that PING (grpc-go's
  // resetPingStrikes)
  #pingStrikes = 0;
  #pingAcks: Buffer[] = [];
  #pingAckTimer: NodeJS.Timeout | undefined;
  /** held ACKs in a row that went out alone when their delay ran out */
  #pingAckMisses = 0;
  /** ACKs sent at once since the last one held while misses >= 2 */
  #pingAcksSentAtOnce = 0;
  /** noTimeMs before the first PING, so that one is never a strike. */
  #lastPingAtMs = noTimeMs;
  #sentSinceLastPing = false;

  // timeouts (checked by tick())
  readonly #createdMs = Date.now();
  #idleSinceMs = this.#createdMs;
  /** When a graceful close gives up on the open streams: Infinity until shutdown() sets it. */
  #closeDeadlineMs = Infinity;

  // new streams of the current read, dispatched after all its frames are parsed
  #pendingStreams: { stream: H2Stream; headers: Header[] }[] = [];

  constructor(socket: Duplex, handler: H2ConnectionHandler, limits: H2Limits, firstBytes?: Buffer) {
    this.#socket = socket;
    this.#offload = SocketWriteOffload.for(socket);
    this.#handler = handler;
    this.limits = limits;
    this.#decoder = new HpackDecoder({
      maxTableSizeBytes: limits.headerTableSizeBytes,
      maxHeaderListBytes: limits.maxHeaderListBytes,
      maxStringBytes: limits.maxHeaderListBytes,
    });

    this.#queue(
      buildSettings([
        [SettingId.MAX_CONCURRENT_STREAMS, limits.maxConcurrentStreams],
        [SettingId.INITIAL_WINDOW_SIZE, limits.initialStreamWindowBytes],
        [SettingId.MAX_FRAME_SIZE, limits.maxFrameSizeBytes],
        [SettingId.MAX_HEADER_LIST_SIZE, limits.maxHeaderListBytes],
        [SettingId.HEADER_TABLE_SIZE, limits.headerTableSizeBytes],
        [SettingId.ENABLE_PUSH, 0],
      ]),
    );
    if (limits.connectionWindowBytes > defaultWindowBytes) {
      this.#queue(buildWindowUpdate(0, limits.connectionWindowBytes - defaultWindowBytes));
      this.#connRecvWindow = limits.connectionWindowBytes;
    }

    socket.on("data", (chunk: Buffer) => this.#onRead(chunk));
    socket.on("error", (err: Error) => {
      if (!this.#destroyed) {
        this.#reportError({ reason: "socket_error", h2Code: undefined, message: err.message });
      }
      this.#teardown();
    });
    socket.on("close", () => this.#teardown());
    socket.on("end", () => this.#teardown());
    if (firstBytes !== undefined && firstBytes.length > 0) this.#onRead(firstBytes);
  }

  /** The client's address and port ("ip:port"), for logs; "" when the socket does not say. */
  get remoteAddress(): string {
    const s = this.#socket as Partial<Socket>;
    return s.remoteAddress === undefined ? "" : `${s.remoteAddress}:${s.remotePort}`;
  }

  /** Streams currently open (for tests and metrics). */
  get openStreams(): number {
    return this.#streams.size;
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  /**
   * Graceful shutdown: GOAWAY(NO_ERROR) with the last stream id we accepted; open streams may
   * finish within `graceMs` (default gracefulCloseTimeoutMs), then the socket is destroyed
   * (RFC 9113 §6.8).
   */
  shutdown(graceMs: number = this.limits.gracefulCloseTimeoutMs): void {
    if (this.#destroyed) return;
    if (!this.#goawaySent) {
      this.#goawaySent = true;
      this.#queue(buildGoaway(this.#lastStreamId, H2ErrorCode.NO_ERROR));
    }
    this.#closeDeadlineMs = Date.now() + graceMs;
    if (this.#streams.size === 0) this.#endSoon();
  }

  /** Destroys the socket now; open streams are aborted. */
  destroy(): void {
    this.#teardown();
    this.#socket.destroy();
  }

  /** Checks timeouts; the owner calls this about once a second for all its connections. */
  tick(nowMs: number): void {
    if (this.#destroyed) return;
    const l = this.limits;
    if (
      !this.#settingsSeen &&
      l.handshakeTimeoutMs > 0 &&
      nowMs - this.#createdMs > l.handshakeTimeoutMs
    ) {
      this.#connectionError(
        new H2ConnectionError(H2ErrorCode.SETTINGS_TIMEOUT, "handshake timeout"),
      );
      return;
    }
    if (
      this.#hbStreamId !== 0 &&
      l.headersTimeoutMs > 0 &&
      nowMs - this.#hbStartedMs > l.headersTimeoutMs
    ) {
      this.#connectionError(
        new H2ConnectionError(
          H2ErrorCode.ENHANCE_YOUR_CALM,
          "header block timeout",
          "header_block_timeout",
        ),
      );
      return;
    }
    if (
      this.#streams.size === 0 &&
      l.idleTimeoutMs > 0 &&
      nowMs - this.#idleSinceMs > l.idleTimeoutMs
    ) {
      this.shutdown();
      return;
    }
    if (nowMs > this.#closeDeadlineMs) this.destroy();
  }

  // ---------------------------------------------------------------- reading

  #onRead(chunk: Buffer): void {
    if (this.#destroyed) return;
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    try {
      this.#parse();
    } catch (err) {
      if (err instanceof H2ConnectionError) this.#connectionError(err);
      else if (err instanceof HpackError) {
        this.#connectionError(new H2ConnectionError(H2ErrorCode.COMPRESSION_ERROR, err.message));
      } else {
        this.#connectionError(new H2ConnectionError(H2ErrorCode.INTERNAL_ERROR, String(err)));
      }
      return;
    }
    this.#dispatch();
  }

  #dispatch(): void {
    const pending = this.#pendingStreams;
    if (pending.length === 0) return;
    this.#pendingStreams = [];
    for (const p of pending) {
      const s = p.stream;
      if (s.closed) continue;
      try {
        this.#handler.onStream(s, p.headers);
        s.dispatched = true;
        const early = s.early;
        s.early = noChunks;
        for (const chunk of early) if (!s.closed) s.handler.onStreamData(chunk);
        if (s.remoteEnded && !s.closed) s.handler.onStreamEnd();
      } catch {
        this.#resetStream(s, H2ErrorCode.INTERNAL_ERROR, true);
      }
    }
  }

  #parse(): void {
    let buf = this.#buf;
    let off = 0;
    if (!this.#prefaceDone) {
      const n = Math.min(buf.length, clientPreface.length);
      if (!buf.subarray(0, n).equals(clientPreface.subarray(0, n))) {
        throw new H2ConnectionError(H2ErrorCode.PROTOCOL_ERROR, "bad connection preface");
      }
      if (buf.length < clientPreface.length) return;
      this.#prefaceDone = true;
      off = clientPreface.length;
    }
    while (!this.#destroyed && buf.length - off >= frameHeaderBytes) {
      const len = (buf[off] << 16) | (buf[off + 1] << 8) | buf[off + 2];
      if (len > this.limits.maxFrameSizeBytes) {
        throw new H2ConnectionError(H2ErrorCode.FRAME_SIZE_ERROR, `frame of ${len} bytes`);
      }
      if (buf.length - off < frameHeaderBytes + len) break;
      const type = buf[off + 3];
      const flags = buf[off + 4];
      const streamId = buf.readUInt32BE(off + 5) & 0x7fffffff;
      const payload = buf.subarray(off + frameHeaderBytes, off + frameHeaderBytes + len);
      off += frameHeaderBytes + len;
      try {
        this.#frame(type, flags, streamId, payload);
      } catch (err) {
        if (!(err instanceof H2StreamError)) throw err;
        const s = this.#streams.get(err.streamId);
        if (s !== undefined) this.#resetStream(s, err.h2Code, true);
        else this.#queue(buildRstStream(err.streamId, err.h2Code));
      }
    }
    if (off === buf.length) {
      this.#buf = noBytes; // the common case: every frame read whole, no view or buffer made
      return;
    }
    buf = buf.subarray(off);
    // keep a copy of a small tail so the big read buffer can be freed
    this.#buf = buf.length < 4096 ? Buffer.from(buf) : buf;
  }

  #frame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (!this.#settingsSeen && type !== FrameType.SETTINGS) {
      throw new H2ConnectionError(H2ErrorCode.PROTOCOL_ERROR, "first frame is not SETTINGS");
    }
    if (this.#hbStreamId !== 0 && type !== FrameType.CONTINUATION) {
      throw new H2ConnectionError(H2ErrorCode.PROTOCOL_ERROR, "frame inside a header block");
    }
    switch (type) {
      case FrameType.DATA:
        return this.#onDataFrame(flags, streamId, payload);
      case FrameType.HEADERS:
        return this.#onHeadersFrame(flags, streamId, payload);
      case FrameType.CONTINUATION:
        return this.#onContinuation(flags, streamId, payload);
      case FrameType.PRIORITY:
        if (streamId === 0)
          throw new H2ConnectionError(H2ErrorCode.PROTOCOL_ERROR, "PRIORITY on stream 0");
        if (payload.length !== 5)
          throw new H2StreamError(streamId, H2ErrorCode.FRAME_SIZE_ERROR, "PRIORITY size");
        this.#countControl();
        return; // RFC 9113 §5.3.2: priority signals are ignored
      case FrameType.RST_STREAM:
        return this.#onRstStream(streamId, payload);
      case FrameType.SETTINGS:
        return this.#onSettings(flags, streamId, payload);
      case FrameType.PUSH_PROMISE:
        throw new H2ConnectionError(H2ErrorCode.PROTOCOL_ERROR, "PUSH_PROMISE from a client");
      case FrameType.PING:
        return this.#onPing(flags, streamId, payload);
      case FrameType.GOAWAY:
        if (streamId !== 0)
          throw new H2ConnectionError(H2ErrorCode.PROTOCOL_ERROR, "GOAWAY on a stream");
        if (payload.length < 8)
          throw new H2ConnectionError(H2ErrorCode.FRAME_SIZE_ERROR, "GOAWAY size");
        // the client leaves: finish what is open, then close
        this.#goawaySent = true;
        if (this.#streams.size === 0) this.#endSoon();
        return;
      case FrameType.WINDOW_UPDATE:
        return this.#onWindowUpdate(streamId, payload);
      default:
        return; // §5.5: unknown frame types are ignored
    }
  }

  #floodWindow(): void {
    const now = Date.now();
    if (now - this.#windowStartMs >= this.limits.floodWindowMs) {
      this.#windowStartMs = now;
      this.#resets = 0;
      this.#settingsCount = 0;
      this.#controlFrames = 0;
    }
  }

  #countControl(): void {
    this.#floodWindow();
    if (++this.#controlFrames > this.limits.maxControlFramesPerWindow) {
      throw new H2ConnectionError(
        H2ErrorCode.ENHANCE_YOUR_CALM,
        "control frame flood",
        "control_frame_flood",
      );
    }
  }

  /** A non-empty DATA frame went out: the client may answer it with two WINDOW_UPDATEs. */
  #creditWindowUpdates(): void {
    if (this.#windowUpdateCredits < this.limits.maxControlFramesPerWindow) {
      this.#windowUpdateCredits += 2;
    }
  }

  #countReset(): void {
    this.#floodWindow();
    if (++this.#resets > this.limits.maxResetsPerWindow) {
      // CVE-2023-44487 (rapid reset): the client makes us start and drop work faster than allowed
      throw new H2ConnectionError(
        H2ErrorCode.ENHANCE_YOUR_CALM,
        "too many stream resets",
        "rapid_reset",
      );
    }
  }

  /** strips padding (§6.1, §6.2); returns [start, end) of the content */
  #unpad(flags: number, streamId: number, payload: Buffer, start: number): [number, number] {
    if ((flags & Flag.PADDED) === 0) return [start, payload.length];
    if (payload.length < 1)
      throw new H2ConnectionError(H2ErrorCode.FRAME_SIZE_ERROR, "padded frame too short");
    const pad = payload[0];
    const s = start + 1;
    if (s + pad > payload.length) {
      throw new H2ConnectionError(
        H2ErrorCode.PROTOCOL_ERROR,
        `padding too long on stream ${streamId}`,
      );
    }
    return [s, payload.length - pad];
  }

  #onDataFrame(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new H2ConnectionError(H2ErrorCode.PROTOCOL_ERROR, "DATA on stream 0");
    // connection flow control counts the whole payload, padding included (§6.9.1)
    if (payload.length > this.#connRecvWindow) {
      throw new H2ConnectionError(
        H2ErrorCode.FLOW_CONTROL_ERROR,
        "DATA beyond the connection window",
      );
    }
    this.#connRecvWindow -= payload.length;
    this.#connRecvConsumed += payload.length;
    if (this.#connRecvConsumed >= this.limits.connectionWindowBytes / 2) {
      this.#queue(buildWindowUpdate(0, this.#connRecvConsumed));
      this.#connRecvWindow += this.#connRecvConsumed;
      this.#connRecvConsumed = 0;
    }
    const s = this.#streams.get(streamId);
    if (s === undefined) {
      if (streamId > this.#lastStreamId) {
        throw new H2ConnectionError(H2ErrorCode.PROTOCOL_ERROR, `DATA on idle stream ${streamId}`);
      }
      return; // a stream we closed or reset: ignored (§5.1 closed state)
    }
    if (s.remoteEnded)
      throw new H2StreamError(streamId, H2ErrorCode.STREAM_CLOSED, "DATA after END_STREAM");
    if (payload.length > s.recvWindow) {
      throw new H2StreamError(
        streamId,
        H2ErrorCode.FLOW_CONTROL_ERROR,
        "DATA beyond the stream window",
      );
    }
    if (payload.length === 0 && (flags & Flag.END_STREAM) === 0) this.#countControl();
    s.recvWindow -= payload.length;
    const [a, b] = this.#unpad(flags, streamId, payload, 0);
    // the application consumes each chunk at once (it bounds message sizes itself), so the stream
    // window is given back as soon as half of it is used
    const used = this.limits.initialStreamWindowBytes - s.recvWindow;
    if (used >= this.limits.initialStreamWindowBytes / 2 && (flags & Flag.END_STREAM) === 0) {
      this.#queue(buildWindowUpdate(streamId, used));
      s.recvWindow += used;
    }
    if (b > a) {
      if (s.dispatched) s.handler.onStreamData(payload.subarray(a, b));
      else if (s.early === noChunks) s.early = [payload.subarray(a, b)];
      else s.early.push(payload.subarray(a, b));
    }
    if (flags & Flag.END_STREAM) this.#remoteEnd(s);
  }

  #remoteEnd(s: H2Stream): void {
    s.remoteEnded = true;
    if (!s.closed && s.dispatched) s.handler.onStreamEnd();
    if (s.localEnded && s.queue.length === 0) this.#closeStream(s);
  }

  #onHeadersFrame(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0)
      throw new H2ConnectionError(H2ErrorCode.PROTOCOL_ERROR, "HEADERS on stream 0");
    let [a, b] = this.#unpad(flags, streamId, payload, 0);
    if (flags & Flag.PRIORITY) {
      if (b - a < 5)
        throw new H2ConnectionError(H2ErrorCode.FRAME_SIZE_ERROR, "HEADERS priority too short");
      const dep = payload.readUInt32BE(a) & 0x7fffffff;
      if (dep === streamId)
        throw new H2StreamError(streamId, H2ErrorCode.PROTOCOL_ERROR, "stream depends on itself");
      a += 5;
    }
    const fragment = payload.subarray(a, b);
    this.#hbEndStream = (flags & Flag.END_STREAM) !== 0;
    if (flags & Flag.END_HEADERS) {
      this.#headerBlock(streamId, fragment);
      return;
    }
    this.#hbStreamId = streamId;
    this.#hbParts = [Buffer.from(fragment)];
    this.#hbBytes = fragment.length;
    this.#hbFrames = 0;
    this.#hbStartedMs = Date.now();
  }

  #onContinuation(flags: number, streamId: number, payload: Buffer): void {
    if (this.#hbStreamId === 0 || streamId !== this.#hbStreamId) {
      throw new H2ConnectionError(H2ErrorCode.PROTOCOL_ERROR, "unexpected CONTINUATION");
    }
    this.#hbBytes += payload.length;
    if (
      ++this.#hbFrames > this.limits.maxContinuationFrames ||
      this.#hbBytes > this.limits.maxHeaderBlockBytes
    ) {
      // CONTINUATION flood: the block can never be decoded within our limits
      throw new H2ConnectionError(
        H2ErrorCode.ENHANCE_YOUR_CALM,
        "header block too large",
        "header_block_too_large",
      );
    }
    this.#hbParts.push(Buffer.from(payload));
    if (flags & Flag.END_HEADERS) {
      const block = Buffer.concat(this.#hbParts);
      this.#hbStreamId = 0;
      this.#hbParts = [];
      this.#headerBlock(streamId, block);
    }
  }

  #headerBlock(streamId: number, block: Buffer): void {
    const endStream = this.#hbEndStream;
    let headers: Header[] | undefined;
    let tooLarge = false;
    try {
      headers = this.#decoder.decode(block);
    } catch (err) {
      if (!(err instanceof HeaderListTooLargeError)) throw err;
      tooLarge = true;
    }
    const existing = this.#streams.get(streamId);
    if (existing !== undefined) {
      // trailers from the client: only valid as the end of the request
      if (!endStream || existing.remoteEnded) {
        throw new H2StreamError(
          streamId,
          H2ErrorCode.PROTOCOL_ERROR,
          "HEADERS after the request headers",
        );
      }
      this.#remoteEnd(existing);
      return;
    }
    if (streamId <= this.#lastStreamId) {
      if (streamId % 2 === 1) return; // a stream we closed: the block was decoded to keep HPACK in sync
      throw new H2ConnectionError(H2ErrorCode.PROTOCOL_ERROR, `HEADERS on stream ${streamId}`);
    }
    if (streamId % 2 === 0)
      throw new H2ConnectionError(H2ErrorCode.PROTOCOL_ERROR, "even stream id from a client");
    this.#lastStreamId = streamId;
    if (this.#goawaySent) {
      this.#queue(buildRstStream(streamId, H2ErrorCode.REFUSED_STREAM));
      return;
    }
    if (tooLarge || headers === undefined) {
      this.#queue(buildRstStream(streamId, H2ErrorCode.ENHANCE_YOUR_CALM));
      this.#countReset();
      return;
    }
    if (this.#streams.size >= this.limits.maxConcurrentStreams) {
      this.#queue(buildRstStream(streamId, H2ErrorCode.REFUSED_STREAM));
      this.#countReset();
      return;
    }
    const s = new H2Stream(
      streamId,
      this,
      this.#peerInitialWindow,
      this.limits.initialStreamWindowBytes,
    );
    this.#streams.set(streamId, s);
    if (endStream) s.remoteEnded = true;
    this.#pendingStreams.push({ stream: s, headers });
  }

  #onRstStream(streamId: number, payload: Buffer): void {
    if (streamId === 0)
      throw new H2ConnectionError(H2ErrorCode.PROTOCOL_ERROR, "RST_STREAM on stream 0");
    if (payload.length !== 4)
      throw new H2ConnectionError(H2ErrorCode.FRAME_SIZE_ERROR, "RST_STREAM size");
    if (streamId > this.#lastStreamId) {
      throw new H2ConnectionError(
        H2ErrorCode.PROTOCOL_ERROR,
        `RST_STREAM on idle stream ${streamId}`,
      );
    }
    this.#countReset();
    const s = this.#streams.get(streamId);
    if (s === undefined) return;
    const code = payload.readUInt32BE(0);
    this.#abortStream(s, code);
  }

  #onSettings(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0)
      throw new H2ConnectionError(H2ErrorCode.PROTOCOL_ERROR, "SETTINGS on a stream");
    if (flags & Flag.ACK) {
      if (payload.length !== 0)
        throw new H2ConnectionError(H2ErrorCode.FRAME_SIZE_ERROR, "SETTINGS ack with payload");
      return;
    }
    if (payload.length % 6 !== 0)
      throw new H2ConnectionError(H2ErrorCode.FRAME_SIZE_ERROR, "SETTINGS size");
    this.#floodWindow();
    if (++this.#settingsCount > this.limits.maxSettingsPerWindow) {
      throw new H2ConnectionError(
        H2ErrorCode.ENHANCE_YOUR_CALM,
        "SETTINGS flood",
        "settings_flood",
      );
    }
    this.#settingsSeen = true;
    for (let i = 0; i < payload.length; i += 6) {
      const id = payload.readUInt16BE(i);
      const v = payload.readUInt32BE(i + 2);
      switch (id) {
        case SettingId.ENABLE_PUSH:
          if (v > 1)
            throw new H2ConnectionError(H2ErrorCode.PROTOCOL_ERROR, "ENABLE_PUSH not 0 or 1");
          break;
        case SettingId.INITIAL_WINDOW_SIZE: {
          if (v > maxWindowBytes)
            throw new H2ConnectionError(H2ErrorCode.FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE");
          const delta = v - this.#peerInitialWindow;
          this.#peerInitialWindow = v;
          // §6.9.2: the change applies to every open stream's send window
          for (const s of this.#streams.values()) {
            s.sendWindow += delta;
            if (s.sendWindow > maxWindowBytes) {
              throw new H2ConnectionError(H2ErrorCode.FLOW_CONTROL_ERROR, "stream window overflow");
            }
          }
          if (delta > 0) this.#unblock();
          break;
        }
        case SettingId.MAX_FRAME_SIZE:
          if (v < minMaxFrameSizeBytes || v > maxMaxFrameSizeBytes) {
            throw new H2ConnectionError(H2ErrorCode.PROTOCOL_ERROR, "MAX_FRAME_SIZE out of range");
          }
          this.#peerMaxFrameBytes = v;
          break;
        default:
          // HEADER_TABLE_SIZE: our encoder never indexes; MAX_CONCURRENT_STREAMS: we never push;
          // MAX_HEADER_LIST_SIZE: our headers are tiny; unknown ids are ignored (§6.5.2)
          break;
      }
    }
    this.#queue(settingsAckFrame);
  }

  #onPing(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new H2ConnectionError(H2ErrorCode.PROTOCOL_ERROR, "PING on a stream");
    if (payload.length !== 8)
      throw new H2ConnectionError(H2ErrorCode.FRAME_SIZE_ERROR, "PING size");
    if (flags & Flag.ACK) return;
    const ack = buildFrame(FrameType.PING, Flag.ACK, 0, payload);
    const delayMs = this.limits.pingAckDelayMs;
    if (delayMs > 0 && !this.#flushScheduled && this.#holdNextPingAck()) {
      // held for the next write (see H2Limits.pingAckDelayMs), at most delayMs
      this.#pingAcks.push(ack);
      if (this.#pingAcks.length === 1) {
        if (this.#pingAckTimer === undefined) {
          this.#pingAckTimer = setTimeout(() => this.#releasePingAcks(), delayMs);
          this.#pingAckTimer.unref();
        } else this.#pingAckTimer.refresh();
      }
    } else this.#queue(ack);
    this.#enforceKeepalive(Date.now());
  }

  /**
   * grpc-go's server keepalive enforcement (internal/transport/http2_server.go handlePing): a PING
   * after we sent HEADERS or DATA clears the strikes; otherwise one sooner than the policy's
   * interval after the previous PING is a strike, and more than maxPingStrikes close the
   * connection with GOAWAY ENHANCE_YOUR_CALM and debug data "too_many_pings" (which grpc-go
   * clients read as "double your keepalive time"). Unlike a per-second cap, this never closes a
   * busy connection, however many BDP pings it carries.
   */
  #enforceKeepalive(nowMs: number): void {
    const lastMs = this.#lastPingAtMs;
    this.#lastPingAtMs = nowMs;
    if (this.#sentSinceLastPing) {
      this.#sentSinceLastPing = false;
      this.#pingStrikes = 0;
      return;
    }
    const l = this.limits;
    const minIntervalMs =
      this.#streams.size === 0 && !l.keepalivePermitWithoutStream
        ? pingWithoutStreamMinIntervalMs
        : l.keepaliveMinTimeMs;
    if (nowMs - lastMs < minIntervalMs) this.#pingStrikes++;
    if (this.#pingStrikes > l.maxPingStrikes) {
      throw new H2ConnectionError(
        H2ErrorCode.ENHANCE_YOUR_CALM,
        "too_many_pings",
        "too_many_pings",
      );
    }
  }

  #onWindowUpdate(streamId: number, payload: Buffer): void {
    if (payload.length !== 4)
      throw new H2ConnectionError(H2ErrorCode.FRAME_SIZE_ERROR, "WINDOW_UPDATE size");
    const inc = payload.readUInt32BE(0) & 0x7fffffff;
    if (this.#windowUpdateCredits > 0) this.#windowUpdateCredits--;
    else this.#countControl();
    if (streamId === 0) {
      if (inc === 0) throw new H2ConnectionError(H2ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE of 0");
      this.#connSendWindow += inc;
      if (this.#connSendWindow > maxWindowBytes) {
        throw new H2ConnectionError(H2ErrorCode.FLOW_CONTROL_ERROR, "connection window overflow");
      }
      this.#unblock();
      return;
    }
    const s = this.#streams.get(streamId);
    if (s === undefined) {
      if (streamId > this.#lastStreamId) {
        throw new H2ConnectionError(
          H2ErrorCode.PROTOCOL_ERROR,
          `WINDOW_UPDATE on idle stream ${streamId}`,
        );
      }
      return;
    }
    if (inc === 0)
      throw new H2StreamError(streamId, H2ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE of 0");
    s.sendWindow += inc;
    if (s.sendWindow > maxWindowBytes) {
      throw new H2StreamError(streamId, H2ErrorCode.FLOW_CONTROL_ERROR, "stream window overflow");
    }
    this._flushStream(s);
  }

  // ---------------------------------------------------------------- writing

  /** @internal used by H2Stream */
  _writeHeaders(s: H2Stream, block: Buffer, end: boolean): void {
    this.#sentSinceLastPing = true;
    this.#queue(buildHeaders(s.id, block, end, this.#peerMaxFrameBytes));
    if (end) this.#localEnd(s);
  }

  /** @internal the one-buffer fast path of H2Stream.sendResponse; false when it does not apply */
  _sendWhole(s: H2Stream, hb: Buffer, prefix: Buffer, body: Uint8Array, tb: Buffer): boolean {
    const dataLen = prefix.length + body.length;
    const max = this.#peerMaxFrameBytes;
    if (s.queue.length > 0 || hb.length > max || tb.length > max || dataLen > max) return false;
    if (dataLen > s.sendWindow || dataLen > this.#connSendWindow) return false;
    const out = Buffer.allocUnsafe(3 * frameHeaderBytes + hb.length + dataLen + tb.length);
    let o = 0;
    writeFrameHeader(out, o, hb.length, FrameType.HEADERS, Flag.END_HEADERS, s.id);
    o += frameHeaderBytes;
    o += hb.copy(out, o);
    writeFrameHeader(out, o, dataLen, FrameType.DATA, 0, s.id);
    o += frameHeaderBytes;
    o += prefix.copy(out, o);
    out.set(body, o);
    o += body.length;
    writeFrameHeader(
      out,
      o,
      tb.length,
      FrameType.HEADERS,
      Flag.END_HEADERS | Flag.END_STREAM,
      s.id,
    );
    o += frameHeaderBytes;
    tb.copy(out, o);
    s.sendWindow -= dataLen;
    this.#connSendWindow -= dataLen;
    this.#sentSinceLastPing = true;
    this.#creditWindowUpdates();
    this.#queue(out);
    this.#localEnd(s);
    return true;
  }

  /** @internal moves as much of the stream's queue to the socket as the windows allow */
  _flushStream(s: H2Stream): void {
    if (s.closed) return;
    while (s.queue.length > 0) {
      const item = s.queue[0];
      if (item.kind === "headers") {
        s.queue.shift();
        this._writeHeaders(s, item.block, item.end);
        continue;
      }
      const window = Math.min(s.sendWindow, this.#connSendWindow);
      if (item.buf.length > 0 && window <= 0) {
        this.#blocked.add(s);
        return;
      }
      const n = Math.min(item.buf.length, window, this.#peerMaxFrameBytes);
      const last = n === item.buf.length;
      const hdr = Buffer.allocUnsafe(frameHeaderBytes);
      writeFrameHeader(hdr, 0, n, FrameType.DATA, last && item.end ? Flag.END_STREAM : 0, s.id);
      this.#queue(hdr);
      if (n > 0) {
        this.#queue(item.buf.subarray(0, n));
        this.#creditWindowUpdates();
      }
      this.#sentSinceLastPing = true;
      s.sendWindow -= n;
      this.#connSendWindow -= n;
      s.queuedBytes -= n;
      if (last) {
        s.queue.shift();
        if (item.end) this.#localEnd(s);
      } else {
        item.buf = item.buf.subarray(n);
      }
    }
    this.#blocked.delete(s);
    if (s.wantDrain && s.queuedBytes <= this.limits.streamHighWaterBytes / 2) {
      s.wantDrain = false;
      s.handler.onStreamDrain();
    }
  }

  #unblock(): void {
    for (const s of [...this.#blocked]) {
      if (this.#connSendWindow <= 0) return;
      this._flushStream(s);
    }
  }

  #localEnd(s: H2Stream): void {
    s.localEnded = true;
    if (s.remoteEnded) {
      this.#closeStream(s);
      return;
    }
    if (!s.resetOnEarlyEnd) return; // half-closed (local): #remoteEnd closes it
    // the response is complete but the client still sends: tell it to stop (as grpc-go does)
    this.#queue(buildRstStream(s.id, H2ErrorCode.NO_ERROR));
    this.#closeStream(s);
  }

  /** @internal */
  _resetStream(s: H2Stream, code: number, _fromPeer: boolean): void {
    this.#resetStream(s, code, true);
  }

  #resetStream(s: H2Stream, code: number, notify: boolean): void {
    if (s.closed) return;
    this.#queue(buildRstStream(s.id, code));
    if (notify) this.#abortStream(s, code);
    else this.#closeStream(s);
  }

  #abortStream(s: H2Stream, code: number): void {
    if (s.closed) return;
    this.#closeStream(s);
    try {
      s.handler.onStreamAbort(code);
    } catch {
      // the application's abort handler must not take the connection down
    }
  }

  #closeStream(s: H2Stream): void {
    if (s.closed) return;
    s.closed = true;
    s.queue = noQueueItems;
    s.queuedBytes = 0;
    this.#streams.delete(s.id);
    this.#blocked.delete(s);
    if (this.#streams.size === 0) {
      this.#idleSinceMs = Date.now();
      if (this.#goawaySent) this.#endSoon();
    }
  }

  #flushSoonQueued = false;

  /**
   * @internal Writes what is queued at the end of the current job (a microtask) instead of in the
   * loop's check phase (setImmediate, see #queue). H2Stream.sendData calls it: streamed messages
   * (watch events, lease keep-alive answers) go out as soon as the job that made them ends, while
   * unary responses still leave together in the check phase. A put's watchers then get its event
   * before the put's own response leaves: with etcd's tool (100 watchers on 10 connections, 100
   * puts/s), watch latency p50 0.13-0.16 -> 0.11-0.14 ms, etcd 0.14-0.15 in the same runs.
   * When the job flushes two connections or more, their writes may go to the thread pool
   * (write-offload.ts).
   */
  _flushSoon(): void {
    if (this.#flushSoonQueued) return;
    this.#flushSoonQueued = true;
    soonQueued++;
    queueMicrotask(() => {
      this.#flushSoonQueued = false;
      if (burstLeft === 0) {
        burstSize = burstLeft = soonQueued;
        soonQueued = 0;
      }
      burstLeft--;
      this.#flush(burstSize >= 2);
    });
  }

  #queue(frame: Buffer): void {
    if (this.#destroyed) return;
    this.#out[this.#outCount++] = frame;
    this.#outBytes += frame.length;
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(this.#flushTurn);
    }
  }

  /** #flush as a callback made once (#queue schedules it for every response). */
  readonly #flushTurn = (): void => this.#flush();

  /** Held PING ACKs whose delay ran out with nothing else to write: they go out alone. */
  #releasePingAcks(): void {
    const acks = this.#pingAcks;
    if (acks.length === 0) return;
    this.#pingAcks = [];
    this.#pingAckMisses++;
    for (const a of acks) this.#queue(a);
  }

  /**
   * Whether to hold this PING ACK: yes while held ACKs have been going out with responses; after
   * two in a row went out alone (a connection that mostly receives, e.g. watch streams, whose
   * client pings after each event), only every pingAckRetryEvery-th one is held, to notice when
   * the connection carries requests again. A held ACK that goes out alone costs a timer as well
   * as its write.
   */
  #holdNextPingAck(): boolean {
    if (this.#pingAckMisses < 2) return true;
    if (++this.#pingAcksSentAtOnce < pingAckRetryEvery) return false;
    this.#pingAcksSentAtOnce = 0;
    return true;
  }

  /** Writes what is queued, in one socket write; `fanOut`: a write a pool thread may make. */
  #flush(fanOut = false): void {
    this.#flushScheduled = false;
    if (this.#destroyed || this.#outCount === 0) return;
    let frames = this.#out;
    let n = this.#outCount;
    if (this.#pingAcks.length > 0) {
      // held PING ACKs go first in this write (RFC 9113 §6.7: PING responses take priority)
      for (const a of this.#pingAcks) this.#outBytes += a.length;
      frames = [...this.#pingAcks, ...frames.slice(0, n)];
      n = frames.length;
      this.#pingAcks = []; // the timer, left running, then finds nothing to send
      this.#pingAckMisses = 0;
    }
    const bytes = this.#outBytes;
    // one write per turn: small batches are copied into one buffer, large ones go as a writev
    let one: Buffer | undefined;
    let many: Buffer[] | undefined;
    if (n === 1) one = frames[0]!;
    else if (bytes <= 256 * 1024) {
      one = Buffer.allocUnsafe(bytes);
      for (let i = 0, pos = 0; i < n; i++) {
        const f = frames[i]!;
        one.set(f, pos);
        pos += f.length;
      }
    } else many = frames.slice(0, n) as Buffer[];
    this.#out.fill(undefined, 0, this.#outCount);
    this.#outCount = 0;
    this.#outBytes = 0;
    const offload = this.#offload;
    if (offload?.busy === true) {
      // behind the connection's running pool write, in order
      if (one !== undefined) offload.queue(one);
      else for (const b of many!) offload.queue(b);
    } else if (fanOut && one !== undefined && offload?.tryWrite(one) === true) {
      // a pool thread writes it
    } else if (one !== undefined) this.#socket.write(one);
    else {
      this.#socket.cork();
      for (const b of many!) this.#socket.write(b);
      this.#socket.uncork();
    }
    const unsent = this.#socket.writableLength + (offload?.waitingBytes ?? 0);
    if (unsent > this.limits.maxOutboundBufferBytes) {
      // a client that does not read while making us answer (PING/SETTINGS acks, resets)
      this.#reportError({
        reason: "slow_reader",
        h2Code: undefined,
        message: `over ${this.limits.maxOutboundBufferBytes} bytes unsent`,
      });
      this.destroy();
    }
  }

  #endSoon(): void {
    // flush what is queued (GOAWAY, last responses), then end the socket
    setImmediate(() => {
      if (this.#destroyed) return;
      this.#flush();
      this.#endSocket();
    });
  }

  /** socket.end(), after a running pool write and the writes behind it. */
  #endSocket(): void {
    if (this.#offload !== undefined) this.#offload.end();
    else this.#socket.end();
  }

  #reportError(info: H2ConnectionErrorInfo): void {
    try {
      this.#handler.onConnectionError?.(this, info);
    } catch {
      // logging or metrics must not take the connection's teardown down with them
    }
  }

  #connectionError(err: H2ConnectionError): void {
    if (this.#destroyed) return;
    this.#reportError({ reason: err.reason, h2Code: err.h2Code, message: err.message });
    const goaway = buildGoaway(this.#lastStreamId, err.h2Code, err.message);
    this.#out[this.#outCount++] = goaway;
    this.#outBytes += goaway.length;
    this.#goawaySent = true;
    this.#flush();
    this.#teardown();
    this.#endSocket();
    // a client that never reads must not keep the socket
    const t = setTimeout(() => this.#socket.destroy(), 1000);
    t.unref();
  }

  #teardown(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#out = [];
    this.#outCount = 0;
    this.#outBytes = 0;
    this.#pingAcks = [];
    clearTimeout(this.#pingAckTimer);
    for (const s of [...this.#streams.values()]) this.#abortStream(s, H2ErrorCode.CANCEL);
    this.#streams.clear();
    this.#handler.onClose(this);
  }
}
