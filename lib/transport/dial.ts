/**
 * Opening a connection to a peer: TCP (http://) or TLS (https://) connect, the allowed-CN check
 * on the peer's certificate, our hello, and the checks on its reply (DESIGN §6, "checked on both
 * sides"): the acceptor must answer Ok, speak our protocol version, be in our cluster and be the
 * member we meant to reach. Shared by message links (link.ts) and snapshot sends (snapshot.ts).
 */
import net from "node:net";
import tls from "node:tls";
import { PeerConnectionError } from "./errors.js";
import { ByteQueue } from "./frame.js";
import {
  HELLO_REPLY_HEADER_BYTES,
  HelloStatus,
  PROTOCOL_VERSION,
  type StreamKind,
  decodeHelloReplyHeader,
  encodeHello,
  memberIdHex,
  refusalCode,
} from "./hello.js";
import type { TransportContext } from "./options.js";
import { type PeerUrl, checkAllowedCn } from "./tls.js";

/** An open, accepted connection. The socket is paused; `rest` holds bytes read past the reply. */
export interface DialedPeer {
  socket: net.Socket;
  rest: ByteQueue;
}

/**
 * Connects to `peerId` at `url` and exchanges hellos for a stream of `kind`. Resolves with the
 * paused socket; rejects with PeerConnectionError: "dial-failed" (connect or TLS error),
 * "timeout" (dialTimeoutMs / helloTimeoutMs), "connection-lost" (closed before the reply), a
 * refusal's code (the acceptor said no: its reason is in the message), or "bad-hello",
 * "cluster-id-mismatch", "wrong-receiver", "protocol-version-mismatch",
 * "certificate-cn-not-allowed" when this side finds the acceptor wrong.
 */
export function dialPeer(
  ctx: TransportContext,
  peerId: bigint,
  url: PeerUrl,
  kind: StreamKind,
): Promise<DialedPeer> {
  return new Promise<DialedPeer>((resolve, reject) => {
    const { limits } = ctx;
    const peerHex = memberIdHex(peerId);
    let socket: net.Socket;
    if (url.secure) {
      // requirePeerTls ran when the URL was added, so peerTls is set for https:// URLs.
      socket = tls.connect({
        ...ctx.peerTls!.client,
        host: url.host,
        port: url.port,
        ...(net.isIP(url.host) === 0 ? { servername: url.host } : {}),
      });
    } else {
      socket = net.connect({ host: url.host, port: url.port });
    }
    socket.setNoDelay(true);
    const bytes = new ByteQueue();
    let settled = false;
    let timer = setTimeout(
      () =>
        fail(new PeerConnectionError("timeout", `dial timed out after ${limits.dialTimeoutMs} ms`)),
      limits.dialTimeoutMs,
    );

    function cleanup(): void {
      clearTimeout(timer);
      socket.removeListener("data", onData);
      socket.removeListener("error", onError);
      socket.removeListener("close", onClose);
      socket.removeListener(url.secure ? "secureConnect" : "connect", onConnect);
    }
    function fail(err: PeerConnectionError): void {
      if (settled) return;
      settled = true;
      cleanup();
      socket.on("error", () => {}); // a late error on the dead socket must not go unhandled
      socket.destroy();
      reject(err);
    }
    function onError(err: Error): void {
      fail(new PeerConnectionError("dial-failed", err.message, { cause: err }));
    }
    function onClose(): void {
      fail(new PeerConnectionError("connection-lost", "connection closed before the hello reply"));
    }
    function onConnect(): void {
      if (url.secure) {
        const refused = checkAllowedCn(socket as tls.TLSSocket, ctx.peerTls!.allowedCn);
        if (refused !== undefined) {
          fail(
            new PeerConnectionError("certificate-cn-not-allowed", `peer ${url.url}: ${refused}`),
          );
          return;
        }
      }
      clearTimeout(timer);
      timer = setTimeout(
        () =>
          fail(
            new PeerConnectionError("timeout", `no hello reply within ${limits.helloTimeoutMs} ms`),
          ),
        limits.helloTimeoutMs,
      );
      socket.write(
        encodeHello({
          version: PROTOCOL_VERSION,
          kind,
          clusterId: ctx.clusterId,
          from: ctx.memberId,
          to: peerId,
        }),
      );
    }
    type ReplyHeader = Exclude<ReturnType<typeof decodeHelloReplyHeader>, string>;
    let header: ReplyHeader | undefined;
    function onData(chunk: Buffer): void {
      bytes.push(chunk);
      if (header === undefined) {
        if (bytes.length < HELLO_REPLY_HEADER_BYTES) return;
        const h = decodeHelloReplyHeader(bytes.read(HELLO_REPLY_HEADER_BYTES, true));
        if (typeof h === "string") {
          fail(new PeerConnectionError("bad-hello", `peer ${url.url}: ${h}`));
          return;
        }
        header = h;
      }
      if (bytes.length >= header.reasonBytes) finish(header);
    }
    function finish(header: ReplyHeader): void {
      const reason = Buffer.from(bytes.read(header.reasonBytes, true)).toString("utf8");
      const r = header.reply;
      if (r.status !== HelloStatus.Ok) {
        fail(
          new PeerConnectionError(
            refusalCode(r.status),
            `peer ${peerHex} at ${url.url} refused the connection: ${reason}`,
          ),
        );
        return;
      }
      const wrong = checkReply(ctx, peerId, r.version, r.clusterId, r.memberId);
      if (wrong !== undefined) {
        fail(new PeerConnectionError(wrong.code, `peer at ${url.url}: ${wrong.reason}`));
        return;
      }
      settled = true;
      cleanup();
      socket.pause();
      resolve({ socket, rest: bytes });
    }

    socket.once(url.secure ? "secureConnect" : "connect", onConnect);
    socket.on("data", onData);
    socket.on("error", onError);
    socket.on("close", onClose);
  });
}

/** The dialer's side of the hello check on an Ok reply. */
function checkReply(
  ctx: TransportContext,
  peerId: bigint,
  version: number,
  clusterId: bigint,
  memberId: bigint,
):
  | { code: "protocol-version-mismatch" | "cluster-id-mismatch" | "wrong-receiver"; reason: string }
  | undefined {
  if (version !== PROTOCOL_VERSION)
    return {
      code: "protocol-version-mismatch",
      reason: `speaks protocol version ${version}, this member ${PROTOCOL_VERSION}`,
    };
  if (clusterId !== ctx.clusterId)
    return {
      code: "cluster-id-mismatch",
      reason: `cluster ID mismatch: local cluster id=${memberIdHex(ctx.clusterId)}, remote cluster id=${memberIdHex(clusterId)}`,
    };
  if (memberId !== peerId)
    return {
      code: "wrong-receiver",
      reason: `is member ${memberIdHex(memberId)}, expected ${memberIdHex(peerId)}`,
    };
  return undefined;
}
