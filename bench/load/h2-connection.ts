/**
 * A lean gRPC client connection: one `node:http2` session carrying many concurrent streams, with
 * gRPC framing done by hand (bench/load/grpc-frame.ts). It skips everything @grpc/grpc-js does per
 * call (interceptors, metadata objects, call objects, status objects, deadlines), which is what
 * made grpc-js cost ~250 µs of CPU per unary call in the load generator. Plaintext h2c only.
 */
import * as http2 from "node:http2";
import { ConnectionLostError, GrpcCallError } from "./errors.js";
import { GrpcMessageParser } from "./grpc-frame.js";

/** HTTP/2 per-stream receive window we advertise, bytes (large so watch streams never stall). */
export const STREAM_WINDOW_BYTES = 4 * 1024 * 1024;
/** HTTP/2 connection receive window we advertise, bytes. */
export const SESSION_WINDOW_BYTES = 64 * 1024 * 1024;
/** Longest connect() may take before it fails, ms. */
export const CONNECT_TIMEOUT_MS = 10_000;

/** gRPC status 14 UNAVAILABLE: what a reset or lost stream is reported as. */
const GRPC_UNAVAILABLE = 14;

/** Turns "127.0.0.1:2379" or "http://127.0.0.1:2379" into an h2c authority URL. */
export function endpointUrl(endpoint: string): string {
  if (endpoint.startsWith("https://")) {
    throw new ConnectionLostError(
      endpoint,
      "TLS endpoints are not supported by the load generator",
    );
  }
  return endpoint.startsWith("http://") ? endpoint : `http://${endpoint}`;
}

function statusOf(headers: http2.IncomingHttpHeaders): number | null {
  const s = headers["grpc-status"];
  if (s === undefined) return null;
  return Number(Array.isArray(s) ? s[0] : s);
}

function messageOf(headers: http2.IncomingHttpHeaders): string {
  const m = headers["grpc-message"];
  const v = Array.isArray(m) ? m[0] : m;
  if (v === undefined) return "";
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

/** Handlers of a bidirectional stream opened by {@link H2GrpcConnection.bidi}. */
export interface BidiHandlers {
  /** Each whole response message, in order (protobuf bytes without the gRPC prefix). */
  onMessage(message: Buffer): void;
  /** The stream ended: `error` is null on grpc-status 0. Called once. */
  onEnd(error: Error | null): void;
}

/** The sending half of a bidi stream. */
export interface BidiStream {
  /** Sends one framed message (see frameMessage). */
  write(frame: Buffer): void;
  /** Half-closes our side. */
  end(): void;
  /** Resets the stream (RST_STREAM CANCEL). */
  cancel(): void;
}

/**
 * One HTTP/2 session to one endpoint. `unary` and `bidi` may be called concurrently; each opens
 * a stream. Calls made after the session failed reject with ConnectionLostError.
 */
export class H2GrpcConnection {
  readonly endpoint: string;
  #session: http2.ClientHttp2Session;
  #lost: Error | null = null;
  #token: string | null = null;

  private constructor(endpoint: string, session: http2.ClientHttp2Session) {
    this.endpoint = endpoint;
    this.#session = session;
    session.on("error", (err: Error) => {
      this.#lost = new ConnectionLostError(endpoint, err.message);
    });
    session.on("close", () => {
      this.#lost ??= new ConnectionLostError(endpoint, "session closed");
    });
    session.on("goaway", (code: number) => {
      this.#lost ??= new ConnectionLostError(endpoint, `GOAWAY ${code}`);
    });
  }

  /**
   * Opens an h2c session and waits for the server's SETTINGS. Rejects with ConnectionLostError
   * when it cannot connect within CONNECT_TIMEOUT_MS.
   */
  static connect(endpoint: string): Promise<H2GrpcConnection> {
    const url = endpointUrl(endpoint);
    return new Promise((resolve, reject) => {
      const session = http2.connect(url, {
        settings: { enablePush: false, initialWindowSize: STREAM_WINDOW_BYTES },
        // Node caps streams before the peer's SETTINGS arrive; etcd/grpc-go allow far more.
        peerMaxConcurrentStreams: 1 << 20,
        maxSessionMemory: 1024,
      });
      const timer = setTimeout(() => {
        session.destroy();
        reject(
          new ConnectionLostError(endpoint, `no HTTP/2 SETTINGS within ${CONNECT_TIMEOUT_MS} ms`),
        );
      }, CONNECT_TIMEOUT_MS);
      const onError = (err: Error): void => {
        clearTimeout(timer);
        reject(new ConnectionLostError(endpoint, err.message));
      };
      session.once("error", onError);
      session.once("remoteSettings", () => {
        clearTimeout(timer);
        session.off("error", onError);
        session.setLocalWindowSize(SESSION_WINDOW_BYTES);
        resolve(new H2GrpcConnection(endpoint, session));
      });
    });
  }

  #headers(path: string): http2.OutgoingHttpHeaders {
    const h: http2.OutgoingHttpHeaders = {
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
    };
    if (this.#token !== null) h["token"] = this.#token;
    return h;
  }

  /** Sends `token` as `token` metadata on every call opened from now on (null: none). */
  setToken(token: string | null): void {
    this.#token = token;
  }

  /**
   * One unary call: sends `frame` (a framed request) on `path` ("/etcdserverpb.KV/Put") and
   * resolves with the response message bytes. Rejects with GrpcCallError on a non-zero
   * grpc-status or a broken stream, ConnectionLostError when the session is gone.
   */
  unary(path: string, frame: Buffer): Promise<Buffer> {
    if (this.#lost !== null) return Promise.reject(this.#lost);
    return new Promise((resolve, reject) => {
      let stream: http2.ClientHttp2Stream;
      try {
        stream = this.#session.request(this.#headers(path), { endStream: false });
      } catch (err) {
        reject(new ConnectionLostError(this.endpoint, (err as Error).message));
        return;
      }
      let body: Buffer | null = null;
      let status: number | null = null;
      let message = "";
      stream.on("response", (h) => {
        const s = statusOf(h); // trailers-only responses carry the status in the headers
        if (s !== null) {
          status = s;
          message = messageOf(h);
        }
      });
      stream.on("trailers", (h) => {
        status = statusOf(h);
        message = messageOf(h);
      });
      stream.on("data", (chunk: Buffer) => {
        body = body === null ? chunk : Buffer.concat([body, chunk]);
      });
      stream.on("error", () => {
        /* reported through close below */
      });
      stream.on("close", () => {
        if (status === null) {
          reject(
            new GrpcCallError(path, GRPC_UNAVAILABLE, `stream closed (rst ${stream.rstCode})`),
          );
        } else if (status !== 0) {
          reject(new GrpcCallError(path, status, message));
        } else if (body === null || body.length < 5) {
          resolve(Buffer.alloc(0));
        } else {
          resolve(body.subarray(5, 5 + body.readUInt32BE(1)));
        }
      });
      stream.end(frame);
    });
  }

  /** Opens a bidirectional stream on `path` (Watch, LeaseKeepAlive). */
  bidi(path: string, handlers: BidiHandlers): BidiStream {
    if (this.#lost !== null) throw this.#lost;
    const stream = this.#session.request(this.#headers(path), { endStream: false });
    const parser = new GrpcMessageParser();
    let status: number | null = null;
    let message = "";
    let ended = false;
    const finish = (err: Error | null): void => {
      if (ended) return;
      ended = true;
      handlers.onEnd(err);
    };
    stream.on("response", (h) => {
      const s = statusOf(h);
      if (s !== null) {
        status = s;
        message = messageOf(h);
      }
    });
    stream.on("trailers", (h) => {
      status = statusOf(h);
      message = messageOf(h);
    });
    stream.on("data", (chunk: Buffer) => {
      try {
        for (const m of parser.push(chunk)) handlers.onMessage(m);
      } catch (err) {
        stream.close(http2.constants.NGHTTP2_PROTOCOL_ERROR);
        finish(err as Error);
      }
    });
    stream.on("error", () => {
      /* reported through close below */
    });
    stream.on("close", () => {
      if (status === 0) finish(null);
      else if (status === null)
        finish(new GrpcCallError(path, GRPC_UNAVAILABLE, `stream closed (rst ${stream.rstCode})`));
      else finish(new GrpcCallError(path, status, message));
    });
    return {
      write: (frame) => {
        if (!stream.closed && !stream.destroyed) stream.write(frame);
      },
      end: () => {
        if (!stream.closed && !stream.destroyed) stream.end();
      },
      cancel: () => {
        if (!stream.closed && !stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
      },
    };
  }

  /** Closes the session (in-flight streams finish first, then it closes). */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.#session.closed || this.#session.destroyed) {
        resolve();
        return;
      }
      const t = setTimeout(() => {
        this.#session.destroy();
        resolve();
      }, 2000);
      this.#session.close(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}
