/**
 * gRPC over lib/h2 (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md): 5-byte
 * length-prefixed messages, `grpc-status` / `grpc-message` trailers, `grpc-timeout`, identity
 * encoding only, unary and streaming methods, cancellation when the client resets the stream.
 *
 * Methods are transport-independent handlers (lib/api's EtcdApi) bound by path in a Map; message
 * codecs come from the generated protobuf-ts types (`fromBinary` / `toBinary`).
 */
import type { Duplex } from "node:stream";
import {
  H2Connection,
  type H2ConnectionErrorInfo,
  type H2ConnectionHandler,
  type H2Limits,
  type H2Stream,
  type H2StreamHandler,
  defaultH2Limits,
} from "./connection.js";
import { H2ErrorCode } from "./errors.js";
import { type Header, encodeHeaderBlock } from "./hpack.js";

/** gRPC status codes (the numbers on the wire), the subset lib/h2 itself produces. */
export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

/** A status for the trailers: `code` a gRPC status number, `message` sent percent-encoded. */
export interface GrpcStatusInfo {
  code: number;
  message: string;
}

/** A message codec: the generated protobuf-ts MessageType satisfies it. */
export interface MessageCodec<T> {
  fromBinary(bytes: Uint8Array): T;
  toBinary(message: T): Uint8Array;
}

/** What a call knows about itself. */
export interface CallContext {
  /** the method path, e.g. "/etcdserverpb.KV/Put" */
  readonly path: string;
  /** request metadata (lower-case names; binary `-bin` values left base64) */
  readonly metadata: ReadonlyMap<string, string>;
  /** true once the client cancelled, the deadline passed or the connection went */
  readonly cancelled: boolean;
}

/**
 * One side of a client (or bidi) stream as the handler sees it. The shape matches lib/api's
 * BidiStream so EtcdApi's stream methods take it unchanged.
 */
export interface GrpcBidiStream<Req, Res> {
  onMessage(fn: (req: Req) => void): void;
  /**
   * The client half-closed (it sends no more). With such a callback the call stays open until the
   * handler ends it; without one it ends at once with OK.
   */
  onEnd(fn: () => void): void;
  onClose(fn: () => void): void;
  onDrain(fn: () => void): void;
  send(res: Res): boolean;
  end(err?: Error): void;
}

/** The server side of a server-streaming call. */
export interface GrpcServerStream<Res> {
  onClose(fn: () => void): void;
  onDrain(fn: () => void): void;
  send(res: Res): boolean;
  end(err?: Error): void;
}

/** A method: unary, server streaming or bidi streaming, with its codecs. */
export type MethodHandler =
  | {
      kind: "unary";
      requestCodec: MessageCodec<unknown>;
      responseCodec: MessageCodec<unknown>;
      handle(req: unknown, ctx: CallContext): Promise<unknown>;
    }
  | {
      kind: "serverStream";
      requestCodec: MessageCodec<unknown>;
      responseCodec: MessageCodec<unknown>;
      handle(req: unknown, stream: GrpcServerStream<unknown>, ctx: CallContext): void;
    }
  | {
      kind: "bidi";
      requestCodec: MessageCodec<unknown>;
      responseCodec: MessageCodec<unknown>;
      handle(stream: GrpcBidiStream<unknown, unknown>, ctx: CallContext): void;
    };

/** Builds a typed unary method entry. */
export function unaryMethod<Req, Res>(
  requestCodec: MessageCodec<Req>,
  responseCodec: MessageCodec<Res>,
  handle: (req: Req, ctx: CallContext) => Promise<Res>,
): MethodHandler {
  return { kind: "unary", requestCodec, responseCodec, handle } as MethodHandler;
}

/** Builds a typed server-streaming method entry. */
export function serverStreamMethod<Req, Res>(
  requestCodec: MessageCodec<Req>,
  responseCodec: MessageCodec<Res>,
  handle: (req: Req, stream: GrpcServerStream<Res>, ctx: CallContext) => void,
): MethodHandler {
  return { kind: "serverStream", requestCodec, responseCodec, handle } as MethodHandler;
}

/** Builds a typed bidi-streaming method entry. */
export function bidiMethod<Req, Res>(
  requestCodec: MessageCodec<Req>,
  responseCodec: MessageCodec<Res>,
  handle: (stream: GrpcBidiStream<Req, Res>, ctx: CallContext) => void,
): MethodHandler {
  return { kind: "bidi", requestCodec, responseCodec, handle } as MethodHandler;
}

/** Bounds of the gRPC layer (STYLE §2). */
export interface GrpcLimits {
  /** largest request message accepted (etcd: --max-request-bytes + 512 KiB), else RESOURCE_EXHAUSTED */
  maxReceiveMessageBytes: number;
  /** largest response message sent, else RESOURCE_EXHAUSTED */
  maxSendMessageBytes: number;
  /** messages buffered for a streaming handler before the call fails RESOURCE_EXHAUSTED */
  maxPendingMessages: number;
}

/** Defaults as grpc-go's server: 4 MiB receive (lib/api raises it to etcd's), unlimited send. */
export const defaultGrpcLimits: GrpcLimits = {
  maxReceiveMessageBytes: 4 * 1024 * 1024,
  maxSendMessageBytes: 2 ** 31 - 1,
  maxPendingMessages: 10_000,
};

/** Maps a handler's error to a status; lib/api passes its toApiStatus here. */
export type ErrorMapper = (err: unknown) => GrpcStatusInfo;

const defaultErrorMapper: ErrorMapper = (err) => ({
  code: GrpcCode.UNKNOWN,
  message: err instanceof Error ? err.message : String(err),
});

/** Options of H2GrpcServer. */
export interface H2GrpcServerOptions {
  h2?: Partial<H2Limits>;
  grpc?: Partial<GrpcLimits>;
  mapError?: ErrorMapper;
  /** called with unexpected handler failures (after mapping) for logging */
  onHandlerError?: (path: string, err: unknown) => void;
  /**
   * Takes over a stream that is not a gRPC call (not POST with an application/grpc content
   * type), e.g. lib/api's JSON gateway and ops endpoints for curl, nghttp or a browser. The
   * handler owns the stream: it sets its callbacks and answers it. Unset: such streams get a
   * bare 405 (not POST) or 415 (not gRPC), as current grpc-go answers (the grpc-go in etcd 3.4
   * resets them with PROTOCOL_ERROR).
   */
  onHttpStream?: (stream: H2Stream, headers: Header[]) => void;
  /**
   * Hears every connection that ends for an error (H2ConnectionHandler.onConnectionError), with
   * the client's address: lib/api logs and counts them by reason.
   */
  onConnectionError?: (info: H2ConnectionErrorInfo, remoteAddress: string) => void;
}

// constant header blocks, encoded once
const responseHeadersBlock = encodeHeaderBlock([
  [":status", "200"],
  ["content-type", "application/grpc"],
]);
const okTrailersBlock = encodeHeaderBlock([["grpc-status", "0"]]);

/**
 * Percent-encodes a grpc-message value as the gRPC HTTP/2 spec requires: UTF-8 bytes outside
 * printable ASCII (0x20–0x7E) and '%' itself become %XX.
 */
export function percentEncodeGrpcMessage(message: string): string {
  let simple = true;
  for (let i = 0; i < message.length; i++) {
    const c = message.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      simple = false;
      break;
    }
  }
  if (simple) return message;
  let out = "";
  for (const b of Buffer.from(message, "utf8")) {
    if (b < 0x20 || b > 0x7e || b === 0x25)
      out += `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
    else out += String.fromCharCode(b);
  }
  return out;
}

/** The trailers of a status (with `:status` + content-type first when `trailersOnly`). */
function statusBlock(status: GrpcStatusInfo, trailersOnly: boolean): Buffer {
  if (status.code === GrpcCode.OK && !trailersOnly) return okTrailersBlock;
  const h: Header[] = trailersOnly
    ? [
        [":status", "200"],
        ["content-type", "application/grpc"],
      ]
    : [];
  h.push(["grpc-status", String(status.code)]);
  if (status.message !== "") h.push(["grpc-message", percentEncodeGrpcMessage(status.message)]);
  return encodeHeaderBlock(h);
}

/** grpc-timeout (e.g. "100m", "5S") in ms; undefined when absent or malformed. */
export function parseGrpcTimeoutMs(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(v);
  if (m === null) return undefined;
  const n = Number(m[1]);
  const unitMs: Record<string, number> = {
    H: 3_600_000,
    M: 60_000,
    S: 1000,
    m: 1,
    u: 0.001,
    n: 0.000001,
  };
  return n * unitMs[m[2]];
}

/** One gRPC call on one H2 stream. */
class Call implements CallContext, H2StreamHandler {
  cancelled = false;
  #headersSent = false;
  #done = false;
  #buf: Buffer | undefined;
  /** request messages not yet handed over (arrays made on first use: a unary call has one) */
  #messages: Buffer[] | null = null;
  #onMessage: ((m: Buffer) => void) | undefined;
  #closeFns: (() => void)[] | null = null;
  #endFns: (() => void)[] | null = null;
  #drainFns: (() => void)[] | null = null;
  #metadata: Map<string, string> | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly stream: H2Stream,
    readonly path: string,
    /** the request's header list; metadata is derived from it on first use */
    readonly headers: Header[],
    readonly method: MethodHandler,
    readonly server: H2GrpcServer,
  ) {}

  /** Request metadata: the headers other than pseudo-headers, content-type, grpc-encoding and
   * grpc-timeout, the first value of a repeated name as etcd reads it (md.Get(k)[0]); built on
   * first use (most calls never read it). */
  get metadata(): ReadonlyMap<string, string> {
    if (this.#metadata === undefined) {
      const m = new Map<string, string>();
      for (const [n, v] of this.headers) {
        if (n.charCodeAt(0) === 58 /* ':' */) continue;
        if (n === "content-type" || n === "grpc-encoding" || n === "grpc-timeout") continue;
        if (!m.has(n)) m.set(n, v);
      }
      this.#metadata = m;
    }
    return this.#metadata;
  }

  start(timeoutMs: number | undefined): void {
    this.stream.handler = this;
    if (timeoutMs !== undefined) {
      this.#timer = setTimeout(() => {
        this.finish({ code: GrpcCode.DEADLINE_EXCEEDED, message: "Deadline Exceeded" });
        this.#cancel();
      }, timeoutMs);
    }
    const m = this.method;
    if (m.kind === "bidi") {
      const stream: GrpcBidiStream<unknown, unknown> = {
        onMessage: (fn) => {
          this.#onMessage = (b) => fn(m.requestCodec.fromBinary(b));
          const pending = this.#messages;
          this.#messages = null;
          if (pending !== null) for (const b of pending) this.#deliver(b);
        },
        onEnd: (fn) => (this.#endFns ??= []).push(fn),
        onClose: (fn) => (this.#closeFns ??= []).push(fn),
        onDrain: (fn) => (this.#drainFns ??= []).push(fn),
        send: (res) => this.send(res),
        end: (err) => this.finish(err === undefined ? okStatus : this.server.mapError(err)),
      };
      try {
        m.handle(stream, this);
      } catch (err) {
        this.fail(err);
      }
    }
  }

  /** @internal H2StreamHandler */
  onStreamData(chunk: Buffer): void {
    this.#onData(chunk);
  }

  /** @internal H2StreamHandler */
  onStreamEnd(): void {
    this.#onEnd();
  }

  /** @internal H2StreamHandler */
  onStreamAbort(): void {
    this.#cancel();
  }

  /** @internal H2StreamHandler */
  onStreamDrain(): void {
    if (this.#drainFns !== null) for (const fn of this.#drainFns) fn();
  }

  #deliver(b: Buffer): void {
    try {
      this.#onMessage?.(b);
    } catch (err) {
      this.fail(err);
    }
  }

  #onData(chunk: Buffer): void {
    if (this.#done) return;
    let buf = this.#buf === undefined ? chunk : Buffer.concat([this.#buf, chunk]);
    const maxBytes = this.server.grpcLimits.maxReceiveMessageBytes;
    while (buf.length >= 5) {
      const flag = buf[0];
      const len = buf.readUInt32BE(1);
      if (len > maxBytes) {
        this.finish({
          code: GrpcCode.RESOURCE_EXHAUSTED,
          message: `grpc: received message larger than max (${len} vs. ${maxBytes})`,
        });
        return;
      }
      if (flag !== 0) {
        this.finish({
          code: GrpcCode.INTERNAL,
          message: "compressed message without grpc-encoding",
        });
        return;
      }
      if (buf.length < 5 + len) break;
      const msg = buf.subarray(5, 5 + len);
      buf = buf.subarray(5 + len);
      this.#message(msg);
      if (this.#done) return;
    }
    this.#buf = buf.length === 0 ? undefined : buf;
  }

  #message(msg: Buffer): void {
    if (this.method.kind === "bidi") {
      if (this.#onMessage !== undefined) this.#deliver(msg);
      else if ((this.#messages?.length ?? 0) >= this.server.grpcLimits.maxPendingMessages) {
        this.finish({ code: GrpcCode.RESOURCE_EXHAUSTED, message: "too many pending messages" });
      } else (this.#messages ??= []).push(msg);
      return;
    }
    if (this.#messages !== null) {
      this.finish({
        code: GrpcCode.UNIMPLEMENTED,
        message: "more than one request message for a unary call",
      });
      return;
    }
    this.#messages = [msg];
  }

  #onEnd(): void {
    if (this.#done) return;
    if (this.#buf !== undefined) {
      this.finish({ code: GrpcCode.INTERNAL, message: "truncated message at end of stream" });
      return;
    }
    const m = this.method;
    if (m.kind === "bidi") {
      // the client half-closed: the handler ends the call when it is done (etcd's LeaseKeepAlive
      // answers what it read first), or it ends now
      const fns = this.#endFns;
      if (fns === null) this.finish(okStatus);
      else {
        try {
          for (const fn of fns) fn();
        } catch (err) {
          this.fail(err);
        }
      }
      return;
    }
    if (this.#messages === null || this.#messages.length !== 1) {
      this.finish({
        code: GrpcCode.UNIMPLEMENTED,
        message: "unary call without exactly one request message",
      });
      return;
    }
    let req: unknown;
    try {
      req = m.requestCodec.fromBinary(this.#messages[0]);
    } catch (err) {
      this.finish({
        code: GrpcCode.INTERNAL,
        message: `grpc: error unmarshalling request: ${(err as Error).message}`,
      });
      return;
    }
    this.#messages = null;
    if (m.kind === "unary") {
      let p: Promise<unknown>;
      try {
        p = m.handle(req, this);
      } catch (err) {
        p = Promise.reject(err);
      }
      p.then(
        (res) => this.#unaryReply(res),
        (err: unknown) => this.fail(err),
      );
      return;
    }
    const stream: GrpcServerStream<unknown> = {
      onClose: (fn) => (this.#closeFns ??= []).push(fn),
      onDrain: (fn) => (this.#drainFns ??= []).push(fn),
      send: (res) => this.send(res),
      end: (err) => this.finish(err === undefined ? okStatus : this.server.mapError(err)),
    };
    try {
      m.handle(req, stream, this);
    } catch (err) {
      this.fail(err);
    }
  }

  #encode(res: unknown): Buffer | undefined {
    let bytes: Uint8Array;
    try {
      bytes = this.method.responseCodec.toBinary(res);
    } catch (err) {
      this.fail(err);
      return undefined;
    }
    if (bytes.length > this.server.grpcLimits.maxSendMessageBytes) {
      this.finish({
        code: GrpcCode.RESOURCE_EXHAUSTED,
        message: "response message larger than max",
      });
      return undefined;
    }
    const out = Buffer.allocUnsafe(5 + bytes.length);
    out[0] = 0;
    out.writeUInt32BE(bytes.length, 1);
    out.set(bytes, 5);
    return out;
  }

  #unaryReply(res: unknown): void {
    if (this.#done) return;
    let bytes: Uint8Array;
    try {
      bytes = this.method.responseCodec.toBinary(res);
    } catch (err) {
      this.fail(err);
      return;
    }
    if (bytes.length > this.server.grpcLimits.maxSendMessageBytes) {
      this.finish({
        code: GrpcCode.RESOURCE_EXHAUSTED,
        message: "response message larger than max",
      });
      return;
    }
    this.#done = true;
    this.#clearTimer();
    const prefix = Buffer.allocUnsafe(5);
    prefix[0] = 0;
    prefix.writeUInt32BE(bytes.length, 1);
    this.stream.sendResponse(responseHeadersBlock, prefix, bytes, okTrailersBlock);
    this.#fireClose();
  }

  send(res: unknown): boolean {
    if (this.#done) return true;
    const framed = this.#encode(res);
    if (framed === undefined) return true;
    if (!this.#headersSent) {
      this.#headersSent = true;
      this.stream.sendHeaders(responseHeadersBlock, false);
    }
    return this.stream.sendData(framed);
  }

  fail(err: unknown): void {
    const status = this.server.mapError(err);
    this.server.reportError(this.path, err, status);
    this.finish(status);
  }

  /** Ends the call with trailers (or a trailers-only response). */
  finish(status: GrpcStatusInfo): void {
    if (this.#done) return;
    this.#done = true;
    this.#clearTimer();
    const trailersOnly = !this.#headersSent;
    this.#headersSent = true;
    this.stream.sendHeaders(statusBlock(status, trailersOnly), true);
    this.#fireClose();
  }

  #cancel(): void {
    this.cancelled = true;
    this.#done = true;
    this.#clearTimer();
    this.#fireClose();
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #fireClose(): void {
    const fns = this.#closeFns;
    if (fns === null) return;
    this.#closeFns = null;
    for (const fn of fns) {
      try {
        fn();
      } catch {
        // a close callback's failure concerns that handler only
      }
    }
  }
}

const okStatus: GrpcStatusInfo = { code: GrpcCode.OK, message: "" };

/** Answers a call that will not run with a trailers-only status. */
function refuseStream(stream: H2Stream, code: number, message: string): void {
  stream.sendHeaders(statusBlock({ code, message }, true), true);
}

/**
 * A gRPC server on lib/h2. Sockets come from the client listener (which sniffed "PRI " or ALPN
 * h2) through handleConnection; the server owns them from then on.
 *
 * `handlers` maps a method path ("/etcdserverpb.KV/Range") to its MethodHandler; other paths
 * answer UNIMPLEMENTED, as grpc-go does.
 */
export class H2GrpcServer implements H2ConnectionHandler {
  readonly h2Limits: H2Limits;
  readonly grpcLimits: GrpcLimits;
  readonly #handlers: ReadonlyMap<string, MethodHandler>;
  readonly #connections = new Set<H2Connection>();
  readonly #mapError: ErrorMapper;
  readonly #onHandlerError: ((path: string, err: unknown) => void) | undefined;
  readonly #onHttpStream: ((stream: H2Stream, headers: Header[]) => void) | undefined;
  readonly #onConnectionError: H2GrpcServerOptions["onConnectionError"];
  #ticker: NodeJS.Timeout | undefined;
  #closing = false;
  #closedWaiters: (() => void)[] = [];

  constructor(handlers: ReadonlyMap<string, MethodHandler>, options: H2GrpcServerOptions = {}) {
    this.#handlers = handlers;
    this.h2Limits = { ...defaultH2Limits, ...options.h2 };
    this.grpcLimits = { ...defaultGrpcLimits, ...options.grpc };
    this.#mapError = options.mapError ?? defaultErrorMapper;
    this.#onHandlerError = options.onHandlerError;
    this.#onHttpStream = options.onHttpStream;
    this.#onConnectionError = options.onConnectionError;
  }

  /** Number of open connections. */
  get connections(): number {
    return this.#connections.size;
  }

  /** Number of open streams over all connections (a leak check for tests and a metric). */
  get openStreams(): number {
    let n = 0;
    for (const c of this.#connections) n += c.openStreams;
    return n;
  }

  /**
   * Takes over a socket whose first bytes are (or will be) the HTTP/2 client preface.
   * `firstBytes` are bytes a sniffer already consumed from it.
   */
  handleConnection(socket: Duplex, firstBytes?: Buffer): void {
    if (this.#closing) {
      socket.destroy();
      return;
    }
    const conn = new H2Connection(socket, this, this.h2Limits, firstBytes);
    if (conn.destroyed) return;
    this.#connections.add(conn);
    if (this.#ticker === undefined) {
      // one timer for all connections' timeouts
      this.#ticker = setInterval(() => {
        const now = Date.now();
        for (const c of this.#connections) c.tick(now);
      }, 250);
      this.#ticker.unref();
    }
  }

  /** @internal */
  mapError(err: unknown): GrpcStatusInfo {
    return this.#mapError(err);
  }

  /** @internal */
  reportError(path: string, err: unknown, _status: GrpcStatusInfo): void {
    this.#onHandlerError?.(path, err);
  }

  /** @internal H2ConnectionHandler */
  onStream(stream: H2Stream, headers: Header[]): void {
    let method = "";
    let path = "";
    let contentType = "";
    let encoding: string | undefined;
    let timeout: string | undefined;
    for (const [n, v] of headers) {
      if (n.charCodeAt(0) === 58 /* ':' */) {
        if (n === ":method") method = v;
        else if (n === ":path") path = v;
        continue;
      }
      if (n === "content-type") contentType = v;
      else if (n === "grpc-encoding") encoding = v;
      else if (n === "grpc-timeout") timeout = v;
    }
    if (method !== "POST" || !contentType.startsWith("application/grpc")) {
      if (this.#onHttpStream !== undefined) {
        this.#onHttpStream(stream, headers);
        return;
      }
      // not a gRPC request: a plain HTTP answer (grpc-go answers 415 for a wrong content type)
      const status = method !== "POST" ? "405" : "415";
      stream.sendHeaders(encodeHeaderBlock([[":status", status]]), true);
      return;
    }
    const handler = this.#handlers.get(path);
    if (handler === undefined) {
      refuseStream(stream, GrpcCode.UNIMPLEMENTED, `unknown method ${path}`);
      return;
    }
    if (encoding !== undefined && encoding !== "identity") {
      refuseStream(
        stream,
        GrpcCode.UNIMPLEMENTED,
        `grpc: Decompressor is not installed for grpc-encoding "${encoding}"`,
      );
      return;
    }
    const call = new Call(stream, path, headers, handler, this);
    call.start(parseGrpcTimeoutMs(timeout));
  }

  /** @internal H2ConnectionHandler */
  onConnectionError(conn: H2Connection, info: H2ConnectionErrorInfo): void {
    this.#onConnectionError?.(info, conn.remoteAddress);
  }

  /** @internal H2ConnectionHandler */
  onClose(conn: H2Connection): void {
    this.#connections.delete(conn);
    if (this.#connections.size === 0) {
      if (this.#ticker !== undefined) clearInterval(this.#ticker);
      this.#ticker = undefined;
      const w = this.#closedWaiters;
      this.#closedWaiters = [];
      for (const fn of w) fn();
    }
  }

  /**
   * Graceful shutdown: GOAWAY on every connection, open calls may finish within `graceMs`
   * (default gracefulCloseTimeoutMs; long-lived Watch streams will use all of it), then sockets
   * are destroyed. Resolves when all connections are gone.
   */
  close(graceMs: number = this.h2Limits.gracefulCloseTimeoutMs): Promise<void> {
    this.#closing = true;
    if (this.#connections.size === 0) return Promise.resolve();
    const done = new Promise<void>((r) => this.#closedWaiters.push(r));
    for (const c of this.#connections) c.shutdown(graceMs);
    const force = setTimeout(() => {
      for (const c of this.#connections) c.destroy();
    }, graceMs + 500);
    force.unref();
    return done.finally(() => clearTimeout(force));
  }

  /** Destroys every connection now. */
  forceClose(): void {
    this.#closing = true;
    for (const c of this.#connections) c.destroy();
  }
}

export { H2ErrorCode };
