/**
 * The leanest gRPC client connection: HTTP/2 spoken directly over a node:net socket (RFC 9113),
 * using lib/h2's frame constants and HPACK codec. Per call it writes one pre-encoded HEADERS
 * block and one DATA frame, batched with every other frame of the same event-loop turn into one
 * socket write, and parses responses without per-stream objects beyond a small record. This is
 * what keeps the generator off the critical path at 1000 clients (node:http2 costs ~80 µs of CPU
 * per call here, @grpc/grpc-js ~250 µs). Plaintext h2c only. Same surface as H2GrpcConnection.
 */
import * as net from "node:net";
import {
  clientPreface,
  defaultWindowBytes,
  Flag,
  frameHeaderBytes,
  FrameType,
  SettingId,
  writeFrameHeader,
} from "../../lib/h2/frames.js";
import { HpackDecoder, type Header } from "../../lib/h2/hpack.js";
import { IndexingHeaderEncoder } from "./hpack-indexing.js";
import { ConnectionLostError, GrpcCallError } from "./errors.js";
import { GrpcMessageParser, GRPC_PREFIX_BYTES } from "./grpc-frame.js";
import type { BidiHandlers, BidiStream } from "./h2-connection.js";

/** Receive window we advertise per stream (SETTINGS_INITIAL_WINDOW_SIZE), bytes. */
export const RAW_STREAM_WINDOW_BYTES = 16 * 1024 * 1024;
/** Receive window of the whole connection, bytes. */
export const RAW_CONNECTION_WINDOW_BYTES = 1024 * 1024 * 1024;
/** Longest header block (HEADERS + CONTINUATION) accepted from the server, bytes. */
export const RAW_MAX_HEADER_BLOCK_BYTES = 1024 * 1024;
/** Longest connect may take, ms. */
export const RAW_CONNECT_TIMEOUT_MS = 10_000;
/** Highest client stream id (RFC 9113 §5.1.1); past it the connection refuses new calls. */
const MAX_STREAM_ID = 2 ** 31 - 1;
const GRPC_UNAVAILABLE = 14;
const RST_CANCEL = 0x8;

interface Stream {
  id: number;
  path: string;
  sendWindow: number;
  recvUnacked: number;
  status: number | null;
  message: string;
  /** unary: the response body chunks. */
  chunks: Buffer[] | null;
  /** bidi: message parser and handlers. */
  parser: GrpcMessageParser | null;
  handlers: BidiHandlers | null;
  resolve: ((b: Buffer) => void) | null;
  reject: ((e: Error) => void) | null;
}

interface PendingData {
  stream: Stream;
  payload: Buffer;
  end: boolean;
}

function grpcHeaders(headers: Header[], st: Stream): void {
  for (const [name, value] of headers) {
    if (name === "grpc-status") st.status = Number(value);
    else if (name === "grpc-message") {
      try {
        st.message = decodeURIComponent(value);
      } catch {
        st.message = value;
      }
    }
  }
}

/**
 * One h2c connection to one endpoint carrying any number of concurrent gRPC calls. Respects the
 * server's flow-control windows, SETTINGS_MAX_CONCURRENT_STREAMS (calls beyond it wait) and
 * SETTINGS_MAX_FRAME_SIZE. Calls after the socket failed reject with ConnectionLostError.
 */
export class RawH2Connection {
  readonly endpoint: string;
  #sock: net.Socket;
  #authority: string;
  #streams = new Map<number, Stream>();
  #nextId = 1;
  #lost: Error | null = null;
  #decoder = new HpackDecoder({
    maxTableSizeBytes: 4096,
    maxHeaderListBytes: RAW_MAX_HEADER_BLOCK_BYTES,
    maxStringBytes: RAW_MAX_HEADER_BLOCK_BYTES,
  });
  #headerEncoder = new IndexingHeaderEncoder();
  #token: string | null = null;
  #out: Buffer[] = [];
  #flushScheduled = false;
  #in: Buffer | null = null;
  #connSendWindow = defaultWindowBytes;
  #peerInitialWindow = defaultWindowBytes;
  #peerMaxFrameBytes = 16_384;
  #peerMaxStreams = Infinity;
  #recvConnUnacked = 0;
  #pending: PendingData[] = [];
  #waitingOpens: (() => void)[] = [];
  /** A header block being continued: stream id, flags of its HEADERS frame, chunks so far. */
  #cont: { id: number; flags: number; chunks: Buffer[]; bytes: number } | null = null;

  private constructor(endpoint: string, sock: net.Socket, authority: string) {
    this.endpoint = endpoint;
    this.#sock = sock;
    this.#authority = authority;
  }

  /** Connects and waits for the server's first SETTINGS. Rejects with ConnectionLostError. */
  static connect(endpoint: string): Promise<RawH2Connection> {
    const hostPort = endpoint.replace(/^http:\/\//, "").replace(/\/.*$/, "");
    if (endpoint.startsWith("https://")) {
      return Promise.reject(
        new ConnectionLostError(endpoint, "TLS endpoints are not supported by the load generator"),
      );
    }
    const colon = hostPort.lastIndexOf(":");
    const host = hostPort.slice(0, colon).replace(/^\[|\]$/g, "");
    const port = Number(hostPort.slice(colon + 1));
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host, port, noDelay: true });
      const conn = new RawH2Connection(endpoint, sock, hostPort);
      let settled = false;
      const timer = setTimeout(
        () => fail(new Error(`no SETTINGS within ${RAW_CONNECT_TIMEOUT_MS} ms`)),
        RAW_CONNECT_TIMEOUT_MS,
      );
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        sock.destroy();
        reject(new ConnectionLostError(endpoint, err.message));
      };
      conn.#onSettings = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(conn);
      };
      sock.on("connect", () => conn.#start());
      sock.on("data", (chunk: Buffer) => conn.#onData(chunk));
      sock.on("error", (err) => {
        fail(err);
        conn.#fail(new ConnectionLostError(endpoint, err.message));
      });
      sock.on("close", () => {
        fail(new Error("connection closed"));
        conn.#fail(new ConnectionLostError(endpoint, "connection closed"));
      });
    });
  }

  #onSettings: (() => void) | null = null;

  #start(): void {
    const settings = Buffer.alloc(frameHeaderBytes + 18);
    writeFrameHeader(settings, 0, 18, FrameType.SETTINGS, 0, 0);
    settings.writeUInt16BE(SettingId.ENABLE_PUSH, 9);
    settings.writeUInt32BE(0, 11);
    settings.writeUInt16BE(SettingId.INITIAL_WINDOW_SIZE, 15);
    settings.writeUInt32BE(RAW_STREAM_WINDOW_BYTES, 17);
    settings.writeUInt16BE(SettingId.MAX_HEADER_LIST_SIZE, 21);
    settings.writeUInt32BE(RAW_MAX_HEADER_BLOCK_BYTES, 23);
    this.#push(clientPreface);
    this.#push(settings);
    this.#push(this.#windowUpdate(0, RAW_CONNECTION_WINDOW_BYTES - defaultWindowBytes));
  }

  #windowUpdate(id: number, inc: number): Buffer {
    const f = Buffer.allocUnsafe(frameHeaderBytes + 4);
    writeFrameHeader(f, 0, 4, FrameType.WINDOW_UPDATE, 0, id);
    f.writeUInt32BE(inc, 9);
    return f;
  }

  #push(frame: Buffer): void {
    this.#out.push(frame);
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    // After the current microtask drain: every call the client loops start in this turn rides one write.
    process.nextTick(() => this.#flush());
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.#out.length === 0 || this.#sock.destroyed) {
      this.#out = [];
      return;
    }
    const buf = this.#out.length === 1 ? this.#out[0]! : Buffer.concat(this.#out);
    this.#out = [];
    this.#sock.write(buf);
  }

  #block(path: string): Buffer {
    const cached = this.#headerEncoder.cached(path);
    if (cached !== undefined) return cached;
    const headers: Header[] = [
      [":method", "POST"],
      [":scheme", "http"],
      [":path", path],
      [":authority", this.#authority],
      ["content-type", "application/grpc"],
      ["te", "trailers"],
    ];
    // etcd's rpctypes.TokenFieldNameGRPC, indexed like the rest: once the server holds its
    // entry, a call with a token still sends one cached block, one index byte longer
    if (this.#token !== null) headers.push(["token", this.#token]);
    return this.#headerEncoder.encode(path, headers);
  }

  /**
   * Sends `token` as `token` metadata on every call opened from now on (null: none), as etcd's
   * clientv3 does after Authenticate.
   */
  setToken(token: string | null): void {
    this.#token = token;
    this.#headerEncoder.forgetBlocks();
  }

  /** Opens a stream once the server's stream limit allows; `then` runs with it. */
  #open(path: string, init: (st: Stream) => void, onRefused: (e: Error) => void): void {
    if (this.#lost !== null) {
      onRefused(this.#lost);
      return;
    }
    if (this.#streams.size >= this.#peerMaxStreams) {
      this.#waitingOpens.push(() => this.#open(path, init, onRefused));
      return;
    }
    if (this.#nextId > MAX_STREAM_ID) {
      onRefused(new ConnectionLostError(this.endpoint, "stream ids exhausted"));
      return;
    }
    const id = this.#nextId;
    this.#nextId += 2;
    const st: Stream = {
      id,
      path,
      sendWindow: this.#peerInitialWindow,
      recvUnacked: 0,
      status: null,
      message: "",
      chunks: null,
      parser: null,
      handlers: null,
      resolve: null,
      reject: null,
    };
    this.#streams.set(id, st);
    const block = this.#block(path);
    const h = Buffer.allocUnsafe(frameHeaderBytes + block.length);
    writeFrameHeader(h, 0, block.length, FrameType.HEADERS, Flag.END_HEADERS, id);
    block.copy(h, frameHeaderBytes);
    this.#push(h);
    init(st);
  }

  /** Queues `payload` as DATA on `st`, sending what the flow-control windows allow now. */
  #sendData(st: Stream, payload: Buffer, end: boolean): void {
    if (this.#pending.length > 0) {
      this.#pending.push({ stream: st, payload, end });
      return;
    }
    if (!this.#trySend(st, payload, end)) return;
  }

  /** Sends as much of payload as allowed; queues the rest. Returns true when all went. */
  #trySend(st: Stream, payload: Buffer, end: boolean): boolean {
    let off = 0;
    for (;;) {
      const left = payload.length - off;
      const n = Math.min(left, this.#connSendWindow, st.sendWindow, this.#peerMaxFrameBytes);
      if (n < left && n <= 0) {
        this.#pending.push({ stream: st, payload: payload.subarray(off), end });
        return false;
      }
      const last = n === left;
      const f = Buffer.allocUnsafe(frameHeaderBytes + n);
      writeFrameHeader(f, 0, n, FrameType.DATA, last && end ? Flag.END_STREAM : 0, st.id);
      payload.copy(f, frameHeaderBytes, off, off + n);
      this.#push(f);
      this.#connSendWindow -= n;
      st.sendWindow -= n;
      off += n;
      if (last) return true;
    }
  }

  #drainPending(): void {
    while (this.#pending.length > 0) {
      const p = this.#pending.shift()!;
      if (!this.#streams.has(p.stream.id)) continue;
      if (!this.#trySend(p.stream, p.payload, p.end)) {
        // trySend re-queued the remainder at the end: move it back to the front to keep order.
        this.#pending.unshift(this.#pending.pop()!);
        return;
      }
    }
  }

  /**
   * One unary call on `path` with a framed request; resolves with the response message bytes.
   * Rejects with GrpcCallError (non-zero grpc-status, reset stream) or ConnectionLostError.
   */
  unary(path: string, frame: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.#open(
        path,
        (st) => {
          st.chunks = [];
          st.resolve = resolve;
          st.reject = reject;
          this.#sendData(st, frame, true);
        },
        reject,
      );
    });
  }

  /** Opens a bidirectional stream on `path` (Watch, LeaseKeepAlive). */
  bidi(path: string, handlers: BidiHandlers): BidiStream {
    let stream: Stream | null = null;
    let queued: Buffer[] = [];
    let ended = false;
    this.#open(
      path,
      (st) => {
        st.parser = new GrpcMessageParser();
        st.handlers = handlers;
        stream = st;
        for (const f of queued) this.#sendData(st, f, false);
        queued = [];
      },
      (err) => handlers.onEnd(err),
    );
    return {
      write: (frame) => {
        if (ended) return;
        if (stream === null) queued.push(frame);
        else if (this.#streams.has(stream.id)) this.#sendData(stream, frame, false);
      },
      end: () => {
        if (ended || stream === null) return;
        ended = true;
        if (this.#streams.has(stream.id)) this.#sendData(stream, Buffer.alloc(0), true);
      },
      cancel: () => {
        if (stream === null || !this.#streams.has(stream.id)) return;
        ended = true;
        const f = Buffer.allocUnsafe(frameHeaderBytes + 4);
        writeFrameHeader(f, 0, 4, FrameType.RST_STREAM, 0, stream.id);
        f.writeUInt32BE(RST_CANCEL, 9);
        this.#push(f);
        this.#finish(stream, new GrpcCallError(path, 1, "cancelled by client"));
      },
    };
  }

  /** Ends stream `st`: resolves/rejects its call or tells its bidi handlers. */
  #finish(st: Stream, err: Error | null): void {
    if (!this.#streams.delete(st.id)) return;
    if (err === null && st.status !== 0) {
      err =
        st.status === null
          ? new GrpcCallError(st.path, GRPC_UNAVAILABLE, "stream ended without grpc-status")
          : new GrpcCallError(st.path, st.status, st.message);
    }
    if (st.handlers !== null) st.handlers.onEnd(err);
    else if (err !== null) st.reject?.(err);
    else {
      const chunks = st.chunks!;
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      st.resolve!(
        body.length < GRPC_PREFIX_BYTES
          ? Buffer.alloc(0)
          : body.subarray(GRPC_PREFIX_BYTES, GRPC_PREFIX_BYTES + body.readUInt32BE(1)),
      );
    }
    const next = this.#waitingOpens.shift();
    if (next !== undefined) next();
  }

  #fail(err: Error): void {
    if (this.#lost === null) this.#lost = err;
    for (const st of [...this.#streams.values()]) this.#finish(st, err);
    const waiting = this.#waitingOpens;
    this.#waitingOpens = [];
    for (const w of waiting) w();
  }

  #onData(chunk: Buffer): void {
    let buf = this.#in === null ? chunk : Buffer.concat([this.#in, chunk]);
    this.#in = null;
    let off = 0;
    try {
      while (buf.length - off >= frameHeaderBytes) {
        const len = (buf[off]! << 16) | (buf[off + 1]! << 8) | buf[off + 2]!;
        if (buf.length - off - frameHeaderBytes < len) break;
        const type = buf[off + 3]!;
        const flags = buf[off + 4]!;
        const id = buf.readUInt32BE(off + 5) & 0x7fffffff;
        const payload = buf.subarray(off + frameHeaderBytes, off + frameHeaderBytes + len);
        off += frameHeaderBytes + len;
        this.#onFrame(type, flags, id, payload);
      }
    } catch (err) {
      const e = new ConnectionLostError(this.endpoint, `protocol error: ${(err as Error).message}`);
      this.#fail(e);
      this.#sock.destroy();
      return;
    }
    if (off < buf.length) this.#in = Buffer.from(buf.subarray(off));
  }

  #unpad(flags: number, payload: Buffer): Buffer {
    if ((flags & Flag.PADDED) === 0) return payload;
    const pad = payload[0]!;
    return payload.subarray(1, payload.length - pad);
  }

  #onFrame(type: number, flags: number, id: number, payload: Buffer): void {
    switch (type) {
      case FrameType.DATA: {
        this.#recvConnUnacked += payload.length;
        if (this.#recvConnUnacked >= RAW_CONNECTION_WINDOW_BYTES / 2) {
          this.#push(this.#windowUpdate(0, this.#recvConnUnacked));
          this.#recvConnUnacked = 0;
        }
        const st = this.#streams.get(id);
        if (st === undefined) return;
        st.recvUnacked += payload.length;
        if (st.recvUnacked >= RAW_STREAM_WINDOW_BYTES / 2 && (flags & Flag.END_STREAM) === 0) {
          this.#push(this.#windowUpdate(id, st.recvUnacked));
          st.recvUnacked = 0;
        }
        const data = this.#unpad(flags, payload);
        if (st.chunks !== null) {
          if (data.length > 0) st.chunks.push(Buffer.from(data));
        } else if (st.parser !== null && data.length > 0) {
          for (const m of st.parser.push(Buffer.from(data))) st.handlers!.onMessage(m);
        }
        if ((flags & Flag.END_STREAM) !== 0) this.#finish(st, null);
        return;
      }
      case FrameType.HEADERS: {
        let p = this.#unpad(flags, payload);
        if ((flags & Flag.PRIORITY) !== 0) p = p.subarray(5);
        if ((flags & Flag.END_HEADERS) !== 0) this.#onHeaderBlock(id, flags, p);
        else this.#cont = { id, flags, chunks: [Buffer.from(p)], bytes: p.length };
        return;
      }
      case FrameType.CONTINUATION: {
        const c = this.#cont;
        if (c === null || c.id !== id) throw new Error("CONTINUATION without HEADERS");
        c.chunks.push(Buffer.from(payload));
        c.bytes += payload.length;
        if (c.bytes > RAW_MAX_HEADER_BLOCK_BYTES) throw new Error("header block too large");
        if ((flags & Flag.END_HEADERS) !== 0) {
          this.#cont = null;
          this.#onHeaderBlock(id, c.flags, Buffer.concat(c.chunks));
        }
        return;
      }
      case FrameType.RST_STREAM: {
        const st = this.#streams.get(id);
        if (st !== undefined)
          this.#finish(
            st,
            new GrpcCallError(
              st.path,
              GRPC_UNAVAILABLE,
              `stream reset by server (code ${payload.readUInt32BE(0)})`,
            ),
          );
        return;
      }
      case FrameType.SETTINGS: {
        if ((flags & Flag.ACK) !== 0) return;
        for (let i = 0; i + 6 <= payload.length; i += 6) {
          const k = payload.readUInt16BE(i);
          const v = payload.readUInt32BE(i + 2);
          if (k === SettingId.INITIAL_WINDOW_SIZE) {
            const delta = v - this.#peerInitialWindow;
            this.#peerInitialWindow = v;
            for (const st of this.#streams.values()) st.sendWindow += delta;
          } else if (k === SettingId.MAX_FRAME_SIZE) this.#peerMaxFrameBytes = v;
          else if (k === SettingId.MAX_CONCURRENT_STREAMS) this.#peerMaxStreams = v;
        }
        const ack = Buffer.allocUnsafe(frameHeaderBytes);
        writeFrameHeader(ack, 0, 0, FrameType.SETTINGS, Flag.ACK, 0);
        this.#push(ack);
        this.#drainPending();
        this.#onSettings?.();
        this.#onSettings = null;
        return;
      }
      case FrameType.WINDOW_UPDATE: {
        const inc = payload.readUInt32BE(0) & 0x7fffffff;
        if (id === 0) this.#connSendWindow += inc;
        else {
          const st = this.#streams.get(id);
          if (st !== undefined) st.sendWindow += inc;
        }
        this.#drainPending();
        return;
      }
      case FrameType.PING: {
        if ((flags & Flag.ACK) !== 0) return;
        const f = Buffer.allocUnsafe(frameHeaderBytes + 8);
        writeFrameHeader(f, 0, 8, FrameType.PING, Flag.ACK, 0);
        payload.copy(f, frameHeaderBytes, 0, 8);
        this.#push(f);
        return;
      }
      case FrameType.GOAWAY: {
        const last = payload.readUInt32BE(0) & 0x7fffffff;
        this.#lost ??= new ConnectionLostError(
          this.endpoint,
          `GOAWAY code ${payload.readUInt32BE(4)}`,
        );
        for (const st of [...this.#streams.values()])
          if (st.id > last) this.#finish(st, this.#lost);
        return;
      }
      default:
        return; // PRIORITY, unknown types: ignored (RFC 9113 §4.1)
    }
  }

  #onHeaderBlock(id: number, flags: number, block: Buffer): void {
    const headers = this.#decoder.decode(block); // always decode: the HPACK table must stay in sync
    const st = this.#streams.get(id);
    if (st === undefined) return;
    grpcHeaders(headers, st);
    if ((flags & Flag.END_STREAM) !== 0) this.#finish(st, null);
  }

  /** Sends GOAWAY and closes the socket; calls still open fail with ConnectionLostError. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.#sock.destroyed) {
        resolve();
        return;
      }
      const g = Buffer.alloc(frameHeaderBytes + 8);
      writeFrameHeader(g, 0, 8, FrameType.GOAWAY, 0, 0);
      this.#flush();
      this.#sock.end(g);
      const t = setTimeout(() => this.#sock.destroy(), 1000);
      t.unref();
      this.#sock.once("close", () => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}
