/**
 * etcd's JSON gateway and ops endpoints (/v3/*, /health, /version, /metrics) over HTTP/2, for
 * clients that speak HTTP/2 but not gRPC: curl --http2 / --http2-prior-knowledge, nghttp, h2load,
 * browsers. The same Gateway that serves HTTP/1.1 answers them, through a GatewayExchange over:
 *
 * - a lib/h2 stream (the fast transport): H2GrpcServer hands over every stream that is not a gRPC
 *   call (its `onHttpStream` option), so it stays on the lib/h2 connection with lib/h2's flow
 *   control in both directions;
 * - a node:http2 stream (the grpc-js transport): the streams of @grpc/grpc-js's HTTP/2 server
 *   that are not gRPC calls are taken before grpc-js answers them 415.
 *
 * etcd 3.4 does this over TLS (its https server sends a request to gRPC only when it is HTTP/2
 * with an application/grpc content type, embed/serve.go grpcHandlerFunc). On cleartext, etcd's
 * cmux gives every HTTP/2 connection to grpc-go, which resets non-gRPC streams (PROTOCOL_ERROR);
 * etcd-ts serves the gateway there too: a superset, since no client can rely on that reset.
 */
import type http2 from "node:http2";
import { constants as http2constants } from "node:http2";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import {
  H2ErrorCode,
  type H2GrpcServerOptions,
  type H2Stream,
  type H2StreamHandler,
  type Header,
  encodeHeaderBlock,
} from "../h2/index.js";
import type { Gateway, GatewayExchange } from "./gateway.js";

const emptyBuffer = Buffer.alloc(0);

/** The request line parts of an HTTP/2 header list (RFC 9113 §8.3.1). */
function requestTarget(headers: readonly Header[]): {
  method: string;
  url: string;
  authorization: string | undefined;
} {
  let method = "GET";
  let url = "/";
  let authorization: string | undefined;
  for (const [n, v] of headers) {
    if (n === ":method") method = v;
    else if (n === ":path") url = v;
    else if (n === "authorization") authorization = v;
  }
  return { method, url, authorization };
}

/**
 * A GatewayExchange on one lib/h2 stream. Body bytes that arrive before the gateway starts
 * reading (DATA in the same read as HEADERS) are held, at most `maxEarlyBodyBytes` of them;
 * beyond that the stream is reset (ENHANCE_YOUR_CALM), as the gateway would refuse the body. Body
 * bytes after a refusal or after the answer are dropped, up to the same bound, then the stream is
 * reset (NO_ERROR).
 * Sending goes through H2Stream.sendData, so a response waits for the client's stream and
 * connection windows, and write() returns false once the stream's high-water mark is passed.
 */
export class H2StreamExchange implements GatewayExchange, H2StreamHandler {
  readonly method: string;
  readonly url: string;
  readonly authorization: string | undefined;
  readonly #stream: H2Stream;
  readonly #maxEarlyBodyBytes: number;
  #head: Header[] | undefined;
  #headersSent = false;
  #early: Buffer[] = [];
  #earlyBytes = 0;
  #droppedBytes = 0;
  #remoteEnded = false;
  #reading = false;
  #stopped = false;
  #onData: (chunk: Buffer) => void = () => {};
  #onEnd: () => void = () => {};
  #drainFns: (() => void)[] = [];
  #closeFns: (() => void)[] = [];
  #closed = false;

  constructor(stream: H2Stream, headers: readonly Header[], maxEarlyBodyBytes: number) {
    this.#stream = stream;
    this.#maxEarlyBodyBytes = maxEarlyBodyBytes;
    const t = requestTarget(headers);
    this.method = t.method;
    this.url = t.url;
    this.authorization = t.authorization;
    // an answer that needs no body (404, 405, /health) may go before the body has arrived: the
    // stream then takes the rest of it instead of a reset that curl reports as a failure
    stream.resetOnEarlyEnd = false;
    stream.handler = this;
  }

  /** @internal H2StreamHandler */
  onStreamData(chunk: Buffer): void {
    this.#data(chunk);
  }

  /** @internal H2StreamHandler */
  onStreamEnd(): void {
    this.#remoteEnded = true;
    if (this.#reading && !this.#stopped) this.#onEnd();
  }

  /** @internal H2StreamHandler */
  onStreamAbort(): void {
    this.#close();
  }

  /** @internal H2StreamHandler */
  onStreamDrain(): void {
    for (const fn of this.#drainFns) fn();
  }

  get headersSent(): boolean {
    return this.#head !== undefined;
  }

  #data(chunk: Buffer): void {
    if (this.#stopped || this.#closed) {
      // the body is refused or the answer is out: drop the rest, up to a bound
      this.#droppedBytes += chunk.length;
      if (this.#droppedBytes > this.#maxEarlyBodyBytes) this.#stream.reset(H2ErrorCode.NO_ERROR);
      return;
    }
    if (this.#reading) {
      this.#onData(chunk);
      return;
    }
    this.#earlyBytes += chunk.length;
    if (this.#earlyBytes > this.#maxEarlyBodyBytes) {
      this.#stopped = true;
      this.#early = [];
      this.#droppedBytes = this.#earlyBytes;
      this.#stream.reset(H2ErrorCode.ENHANCE_YOUR_CALM);
      this.#close();
      return;
    }
    this.#early.push(chunk);
  }

  readBody(onData: (chunk: Buffer) => void, onEnd: () => void): void {
    assert(!this.#reading, "H2StreamExchange.readBody called twice");
    this.#reading = true;
    this.#onData = onData;
    this.#onEnd = onEnd;
    const early = this.#early;
    this.#early = [];
    for (const chunk of early) {
      if (this.#stopped) return;
      onData(chunk);
    }
    if (this.#remoteEnded && !this.#stopped) onEnd();
  }

  stopReading(): void {
    this.#stopped = true;
    this.#early = [];
  }

  writeHead(status: number, headers: Record<string, string>): void {
    if (this.#head !== undefined) return;
    const h: Header[] = [[":status", String(status)]];
    for (const [n, v] of Object.entries(headers)) h.push([n.toLowerCase(), v]);
    this.#head = h;
  }

  #sendHead(end: boolean): void {
    if (this.#headersSent) return;
    this.#headersSent = true;
    this.#stream.sendHeaders(encodeHeaderBlock(this.#head ?? [[":status", "200"]]), end);
  }

  flushHeaders(): void {
    this.#sendHead(false);
  }

  write(chunk: string): boolean {
    if (this.#closed) return true;
    if (this.method === "HEAD") return true; // RFC 9110 §9.3.2: no content in an answer to HEAD
    this.#sendHead(false);
    return this.#stream.sendData(Buffer.from(chunk, "utf8"));
  }

  end(chunk?: string): void {
    if (this.#closed) return;
    const body = chunk === undefined || chunk === "" ? emptyBuffer : Buffer.from(chunk, "utf8");
    if (!this.#headersSent && this.#head !== undefined) {
      // a whole answer in one go: say its length, as Go's server does for a small body
      if (!this.#head.some(([n]) => n === "content-length")) {
        this.#head.push(["content-length", String(body.length)]);
      }
    }
    if (this.method === "HEAD" || (!this.#headersSent && body.length === 0)) {
      if (this.#headersSent) this.#stream.sendData(emptyBuffer, true);
      else this.#sendHead(true);
    } else {
      this.#sendHead(false);
      this.#stream.sendData(body, true);
    }
    this.#close();
  }

  onDrain(fn: () => void): void {
    this.#drainFns.push(fn);
  }

  onClose(fn: () => void): void {
    if (this.#closed) fn();
    else this.#closeFns.push(fn);
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const fns = this.#closeFns;
    this.#closeFns = [];
    for (const fn of fns) fn();
  }
}

/**
 * The H2GrpcServer option that serves `gateway` on lib/h2 streams that are not gRPC calls.
 * Pass its result in the options of createH2Server / new H2GrpcServer.
 */
export function h2GatewayOption(gateway: Gateway): Pick<H2GrpcServerOptions, "onHttpStream"> {
  return {
    onHttpStream: (stream, headers) =>
      gateway.serve(new H2StreamExchange(stream, headers, gateway.maxBodyBytes)),
  };
}

/**
 * A GatewayExchange on one node:http2 server stream (the grpc-js transport). node:http2 does the
 * flow control; write() returns the stream's backpressure signal. An answer that ends while the
 * client is still sending keeps the stream open until the client's END_STREAM (dropping at most
 * `maxDroppedBodyBytes` more, then a NO_ERROR reset), as H2StreamExchange does.
 */
export class NodeHttp2Exchange implements GatewayExchange {
  readonly method: string;
  readonly url: string;
  readonly authorization: string | undefined;
  readonly #stream: http2.ServerHttp2Stream;
  readonly #maxDroppedBodyBytes: number;
  #head: http2.OutgoingHttpHeaders | undefined;
  #responded = false;
  #stopped = false;
  #ended = false;

  constructor(
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    maxDroppedBodyBytes: number,
  ) {
    this.#stream = stream;
    this.#maxDroppedBodyBytes = maxDroppedBodyBytes;
    this.method = typeof headers[":method"] === "string" ? headers[":method"] : "GET";
    this.url = typeof headers[":path"] === "string" ? headers[":path"] : "/";
    this.authorization = headers.authorization;
    // a reset or a connection error ends the stream; 'close' tells the gateway
    stream.on("error", () => {});
  }

  get headersSent(): boolean {
    return this.#head !== undefined;
  }

  readBody(onData: (chunk: Buffer) => void, onEnd: () => void): void {
    this.#stream.on("data", (chunk: Buffer) => {
      if (!this.#stopped) onData(chunk);
    });
    this.#stream.on("end", () => {
      if (!this.#stopped) onEnd();
    });
  }

  stopReading(): void {
    this.#stopped = true;
  }

  writeHead(status: number, headers: Record<string, string>): void {
    if (this.#head !== undefined) return;
    this.#head = { ":status": status, ...headers };
  }

  #respond(end: boolean): void {
    if (this.#responded || this.#stream.destroyed) return;
    this.#responded = true;
    this.#stream.respond(this.#head ?? { ":status": 200 }, { endStream: end });
  }

  flushHeaders(): void {
    this.#respond(false);
  }

  write(chunk: string): boolean {
    if (this.#stream.destroyed || this.#ended || this.method === "HEAD") return true;
    this.#respond(false);
    return this.#stream.write(chunk);
  }

  end(chunk?: string): void {
    if (this.#stream.destroyed || this.#ended) return;
    this.#ended = true;
    const body = this.method === "HEAD" || chunk === undefined ? "" : chunk;
    if (
      !this.#responded &&
      this.#head !== undefined &&
      this.#head["content-length"] === undefined
    ) {
      // a whole answer in one go: say its length, as Go's server does for a small body
      this.#head["content-length"] = chunk === undefined ? 0 : Buffer.byteLength(chunk);
    }
    const s = this.#stream;
    if (s.readableEnded) {
      if (!this.#responded && body === "") this.#respond(true);
      else {
        this.#respond(false);
        s.end(body);
      }
      return;
    }
    // the client still sends: answer now, END_STREAM once it has finished
    this.#stopped = true;
    this.#respond(false);
    if (body !== "") s.write(body);
    let droppedBytes = 0;
    s.on("data", (c: Buffer) => {
      droppedBytes += c.length;
      if (droppedBytes > this.#maxDroppedBodyBytes && !s.closed) {
        s.close(http2constants.NGHTTP2_NO_ERROR);
      }
    });
    s.once("end", () => {
      if (!s.destroyed) s.end();
    });
    s.resume();
  }

  onDrain(fn: () => void): void {
    this.#stream.on("drain", fn);
  }

  onClose(fn: () => void): void {
    if (this.#stream.closed) fn();
    else this.#stream.on("close", fn);
  }
}

/** Servers already given the gateway (a second call must not wrap their listeners twice). */
const wrappedServers = new WeakSet<object>();

/**
 * Serves `gateway` on the streams of @grpc/grpc-js's HTTP/2 servers (those of its connection
 * injectors) that are not gRPC calls; gRPC calls still go to grpc-js. grpc-js keeps those servers
 * in a private map (`http2Servers`, @grpc/grpc-js 1.14): when it is not there this returns false
 * and changes nothing, and non-gRPC HTTP/2 requests get grpc-js's 415 as before.
 *
 * Follows etcd 3.4's grpcHandlerFunc: gRPC when the content type starts with application/grpc.
 */
export function serveGatewayBesideGrpcJs(grpcServer: object, gateway: Gateway): boolean {
  const servers = (grpcServer as { http2Servers?: unknown }).http2Servers;
  if (!(servers instanceof Map)) return false;
  let wrapped = 0;
  for (const srv of servers.keys()) {
    if (!(srv instanceof EventEmitter)) continue;
    if (wrappedServers.has(srv)) {
      wrapped++;
      continue;
    }
    const grpcListeners = srv.listeners("stream") as ((...args: unknown[]) => void)[];
    if (grpcListeners.length === 0) continue;
    srv.removeAllListeners("stream");
    srv.on("stream", (...args: unknown[]) => {
      const stream = args[0] as http2.ServerHttp2Stream;
      const headers = args[1] as http2.IncomingHttpHeaders;
      const ct = headers["content-type"];
      if (typeof ct === "string" && ct.startsWith("application/grpc")) {
        for (const l of grpcListeners) l.apply(srv, args);
        return;
      }
      gateway.serve(new NodeHttp2Exchange(stream, headers, gateway.maxBodyBytes));
    });
    wrappedServers.add(srv);
    wrapped++;
  }
  return wrapped > 0;
}
