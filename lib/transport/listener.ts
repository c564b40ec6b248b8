/**
 * The peer listener (one per --listen-peer-urls entry): accepts TCP or TLS connections, checks
 * the allowed CN, reads the dialer's hello within helloTimeoutMs and checks it as etcd's rafthttp
 * handlers check their headers (http.go: protocol version, cluster id — "cluster ID mismatch",
 * a removed sender — "the member has been permanently removed from the cluster", an unknown
 * sender, the "to" member), then answers Ok or a refusal with its reason and hands the socket to
 * a message stream or a snapshot receive. Every refusal is logged here and seen by the dialer.
 */
import net from "node:net";
import tls from "node:tls";
import { ByteQueue } from "./frame.js";
import {
  HELLO_BYTES,
  HELLO_MAGIC,
  type Hello,
  HelloStatus,
  PROTOCOL_VERSION,
  StreamKind,
  decodeHello,
  encodeHelloReply,
  memberIdHex,
} from "./hello.js";
import type { TransportContext } from "./options.js";
import { type PeerUrl, checkAllowedCn } from "./tls.js";

/** Where an accepted, hello-checked connection goes. */
export interface AcceptedStreamHandler {
  onMessageStream(socket: net.Socket, hello: Hello, rest: ByteQueue): void;
  onSnapshotStream(socket: net.Socket, hello: Hello, rest: ByteQueue): void;
}

/** A refusal decided by the acceptor. */
interface Refusal {
  status: HelloStatus;
  reason: string;
}

/** The acceptor's checks, in etcd's order (version, cluster, receiver, removed, unknown). */
export function checkHello(ctx: TransportContext, h: Hello): Refusal | undefined {
  if (h.version !== PROTOCOL_VERSION)
    return {
      status: HelloStatus.VersionMismatch,
      reason: `protocol version ${h.version} is not supported (this member speaks ${PROTOCOL_VERSION})`,
    };
  if (h.clusterId !== ctx.clusterId)
    return {
      status: HelloStatus.ClusterMismatch,
      reason: `cluster ID mismatch: local cluster id=${memberIdHex(ctx.clusterId)}, remote cluster id=${memberIdHex(h.clusterId)}`,
    };
  if (h.to !== ctx.memberId)
    return {
      status: HelloStatus.WrongReceiver,
      reason: `to field mismatch: this member is ${ctx.memberIdHex}, the hello is for ${memberIdHex(h.to)}`,
    };
  const standing = ctx.standing(h.from);
  if (standing === "removed")
    return {
      status: HelloStatus.MemberRemoved,
      reason: "the member has been permanently removed from the cluster",
    };
  if (standing === "unknown")
    return {
      status: HelloStatus.UnknownMember,
      reason: `member ${memberIdHex(h.from)} is not a peer of member ${ctx.memberIdHex}`,
    };
  return undefined;
}

/**
 * One listening socket for peers: accepts, runs the hello (refusing with a logged reason), and
 * hands accepted connections to the AcceptedStreamHandler. At most maxInboundConnections open.
 */
/** An HTTP/1.x request line starts with an upper-case method and a space ("GET /members"). */
function looksLikeHttp(bytes: ByteQueue): boolean {
  const word = bytes.peekUint32();
  const c0 = word >>> 24;
  return c0 >= 0x41 && c0 <= 0x5a;
}

export class PeerListener {
  readonly #ctx: TransportContext;
  readonly #url: PeerUrl;
  readonly #handler: AcceptedStreamHandler;
  readonly #server: net.Server;
  /** Every accepted socket still open (in the hello, refused and closing, or streaming). */
  readonly #sockets = new Set<net.Socket>();
  #boundUrl: string;

  constructor(ctx: TransportContext, url: PeerUrl, handler: AcceptedStreamHandler) {
    this.#ctx = ctx;
    this.#url = url;
    this.#handler = handler;
    this.#boundUrl = url.url;
    if (url.secure) {
      // requirePeerTls ran for this URL, so peerTls is set.
      const server = tls.createServer(ctx.peerTls!.server);
      server.on("secureConnection", (s: tls.TLSSocket) => this.#onSocket(s));
      server.on("tlsClientError", (err, s) => {
        ctx.logger.warn(
          {
            "local-member-id": ctx.memberIdHex,
            "remote-address": s.remoteAddress,
            error: err.message,
          },
          "rejected peer connection: TLS handshake failed",
        );
        s.destroy();
      });
      this.#server = server;
    } else {
      this.#server = net.createServer();
    }
    // Raw TCP connections, before any TLS handshake: counted against the bound and tracked so
    // close() can end them.
    this.#server.on("connection", (raw: net.Socket) => this.#onConnection(raw));
    this.#server.on("error", (err) =>
      ctx.logger.error(
        { "local-member-id": ctx.memberIdHex, error: err.message },
        "peer listener error",
      ),
    );
  }

  /** The URL as bound (port 0 replaced by the port the kernel chose). */
  get url(): string {
    return this.#boundUrl;
  }

  /** Starts listening; rejects with the listen error (e.g. EADDRINUSE). */
  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.#server.once("error", onError);
      this.#server.listen(this.#url.port, this.#url.host, () => {
        this.#server.removeListener("error", onError);
        const addr = this.#server.address() as net.AddressInfo;
        const u = new URL(this.#url.url);
        u.port = String(addr.port);
        this.#boundUrl = u.origin;
        resolve();
      });
    });
  }

  /**
   * Stops accepting and destroys every accepted connection (net.Server.close alone would wait
   * for them to end).
   */
  close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    return new Promise((resolve) => {
      if (!this.#server.listening) {
        resolve();
        return;
      }
      this.#server.close(() => resolve());
    });
  }

  #onConnection(raw: net.Socket): void {
    const ctx = this.#ctx;
    raw.on("error", () => {}); // every failure also closes the socket, which we handle
    if (this.#sockets.size >= ctx.limits.maxInboundConnections) {
      ctx.logger.warn(
        {
          "local-member-id": ctx.memberIdHex,
          "remote-address": raw.remoteAddress,
          limit: ctx.limits.maxInboundConnections,
        },
        "rejected peer connection: too many open peer connections",
      );
      raw.destroy();
      return;
    }
    this.#sockets.add(raw);
    raw.once("close", () => this.#sockets.delete(raw));
    raw.setNoDelay(true);
    if (!this.#url.secure) this.#onSocket(raw);
  }

  /** A connection ready for the hello: plain TCP, or TLS past the handshake. */
  #onSocket(socket: net.Socket): void {
    const ctx = this.#ctx;
    if (socket.destroyed) return;
    socket.on("error", () => {});
    if (socket instanceof tls.TLSSocket) {
      const refused = checkAllowedCn(socket, ctx.peerTls!.allowedCn);
      if (refused !== undefined) {
        this.#refuse(socket, undefined, {
          status: HelloStatus.CertificateNotAllowed,
          reason: refused,
        });
        return;
      }
    }
    const bytes = new ByteQueue();
    const timer = setTimeout(() => {
      this.#refuse(socket, undefined, {
        status: HelloStatus.BadHello,
        reason: `no hello within ${ctx.limits.helloTimeoutMs} ms`,
      });
    }, ctx.limits.helloTimeoutMs);
    const onData = (chunk: Buffer): void => {
      bytes.push(chunk);
      // Not one of us (an HTTP client, a port scanner): refuse as soon as the magic is wrong.
      const wrongMagic = bytes.length >= 4 && bytes.peekUint32() !== HELLO_MAGIC;
      if (bytes.length < HELLO_BYTES && !wrongMagic) return;
      clearTimeout(timer);
      socket.removeListener("data", onData);
      socket.pause();
      if (wrongMagic && ctx.onHttpConnection !== undefined && looksLikeHttp(bytes)) {
        socket.unshift(Buffer.from(bytes.read(bytes.length, true)));
        ctx.onHttpConnection(socket);
        return;
      }
      this.#onHello(socket, bytes);
    };
    socket.on("data", onData);
    socket.once("close", () => clearTimeout(timer));
  }

  #onHello(socket: net.Socket, bytes: ByteQueue): void {
    const ctx = this.#ctx;
    const h = decodeHello(bytes.read(Math.min(HELLO_BYTES, bytes.length), true));
    if (typeof h === "string") {
      this.#refuse(socket, undefined, { status: HelloStatus.BadHello, reason: h });
      return;
    }
    const refusal = checkHello(ctx, h);
    if (refusal !== undefined) {
      this.#refuse(socket, h, refusal);
      return;
    }
    socket.write(
      encodeHelloReply({
        version: PROTOCOL_VERSION,
        status: HelloStatus.Ok,
        clusterId: ctx.clusterId,
        memberId: ctx.memberId,
        reason: "",
      }),
    );
    if (h.kind === StreamKind.Message) this.#handler.onMessageStream(socket, h, bytes);
    else this.#handler.onSnapshotStream(socket, h, bytes);
  }

  /** Answers a refusal, logs it, and closes the connection once the reply is out. */
  #refuse(socket: net.Socket, h: Hello | undefined, r: Refusal): void {
    const ctx = this.#ctx;
    ctx.logger.warn(
      {
        "local-member-id": ctx.memberIdHex,
        "remote-address": socket.remoteAddress,
        ...(h === undefined
          ? {}
          : {
              "remote-peer-id": memberIdHex(h.from),
              "remote-cluster-id": memberIdHex(h.clusterId),
            }),
        reason: r.reason,
      },
      "rejected peer connection",
    );
    if (h !== undefined && ctx.standing(h.from) === "peer")
      ctx.metrics.peer(memberIdHex(h.from)).receivedFailures++;
    socket.end(
      encodeHelloReply({
        version: PROTOCOL_VERSION,
        status: r.status,
        clusterId: ctx.clusterId,
        memberId: ctx.memberId,
        reason: r.reason,
      }),
    );
    // A dialer that never reads its reply must not hold the connection open.
    socket.setTimeout(ctx.limits.helloTimeoutMs, () => socket.destroy());
  }
}
