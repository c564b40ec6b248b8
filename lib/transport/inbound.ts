/**
 * The receiving end of a peer's message stream (etcd's streamReader, rafthttp/stream.go): parses
 * frames, answers pings, checks every message and hands it to the member. A peer that sends
 * garbage, an oversized frame, a message that is not from it or not for us, or a message type
 * that never crosses the network is disconnected with a logged reason and a receive failure
 * counted (DESIGN §8: a peer that speaks garbage is disconnected, not crashed on).
 */
import type net from "node:net";
import { type Message, MessageType, Message as MessageCodec } from "../proto/gen/raftpb/raft.js";
import { failpoint } from "../failpoint/index.js";
import { PeerConnectionError } from "./errors.js";
import {
  type ByteQueue,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  PONG_WORD,
  encodeControlFrame,
} from "./frame.js";
import { memberIdHex } from "./hello.js";
import { readMessage } from "./message-codec.js";
import type { PeerCounts } from "./metrics.js";
import type { TransportContext } from "./options.js";

/**
 * Message types raft handles only locally (etcd-io/raft IsLocalMsg); a peer sending one is
 * broken or hostile. Values past the last known type are refused too.
 */
const localOnlyTypes = new Set<number>([
  MessageType.MsgHup,
  MessageType.MsgBeat,
  MessageType.MsgUnreachable,
  MessageType.MsgSnapStatus,
  MessageType.MsgCheckQuorum,
]);
const lastMessageType = MessageType.MsgPreVoteResp;

/**
 * Decodes and checks one message body from peer `from`. Throws PeerConnectionError("bad-frame")
 * for bytes that are not a raftpb.Message or a type that does not cross the network, and
 * ("wrong-member-id") when `from`/`to` do not match the connection's hello.
 */
export function decodePeerMessage(body: Uint8Array, from: bigint, to: bigint): Message {
  return decodePeerMessageIn(body, 0, body.length, from, to);
}

/** decodePeerMessage of the body at bytes [start, end) of `buf` (no view made on the fast path). */
export function decodePeerMessageIn(
  buf: Uint8Array,
  start: number,
  end: number,
  from: bigint,
  to: bigint,
): Message {
  let m: Message;
  try {
    // the hand decoder reads what the hand encoder writes; anything else is protobuf-ts's to judge
    m = readMessage(buf, from, to, start, end) ?? MessageCodec.fromBinary(buf.subarray(start, end));
  } catch (err) {
    throw new PeerConnectionError(
      "bad-frame",
      `undecodable raft message (${end - start} bytes): ${(err as Error).message}`,
      { cause: err },
    );
  }
  if (localOnlyTypes.has(m.type) || m.type < 0 || m.type > lastMessageType)
    throw new PeerConnectionError("bad-frame", `message type ${m.type} does not cross the network`);
  if (m.from !== from)
    throw new PeerConnectionError(
      "wrong-member-id",
      `message from ${memberIdHex(m.from)} on the connection of member ${memberIdHex(from)}`,
    );
  if (m.to !== to)
    throw new PeerConnectionError(
      "wrong-member-id",
      `message to ${memberIdHex(m.to)} received by member ${memberIdHex(to)}`,
    );
  return m;
}

/** One accepted message stream from peer `from`, open until close() or a protocol error. */
export class InboundStream {
  readonly from: bigint;
  readonly fromHex: string;
  readonly #ctx: TransportContext;
  readonly #socket: net.Socket;
  readonly #counts: PeerCounts;
  readonly #decoder: FrameDecoder;
  readonly #onClosed: (s: InboundStream) => void;
  #closed = false;

  /**
   * Takes over `socket` (paused, past the hello; `rest` holds bytes already read) and starts
   * reading. `onClosed` is called once when the stream ends for any reason.
   */
  constructor(
    ctx: TransportContext,
    socket: net.Socket,
    from: bigint,
    rest: ByteQueue,
    onClosed: (s: InboundStream) => void,
  ) {
    this.#ctx = ctx;
    this.#socket = socket;
    this.from = from;
    this.fromHex = memberIdHex(from);
    this.#counts = ctx.metrics.peer(this.fromHex);
    // Bodies are views into the received chunks (no copy per frame): socket reads hand out
    // fresh buffers that nothing writes to again. A kept entry keeps its chunk (at most 64 KiB,
    // mostly entries the member keeps anyway) alive.
    this.#decoder = new FrameDecoder(ctx.limits.maxFrameBytes, false);
    this.#onClosed = onClosed;
    socket.setTimeout(ctx.limits.connReadTimeoutMs);
    socket.on("timeout", () =>
      this.#fail(
        new PeerConnectionError(
          "timeout",
          `nothing received for ${ctx.limits.connReadTimeoutMs} ms`,
        ),
      ),
    );
    socket.on("data", (chunk: Buffer) => this.#onBytes(chunk));
    socket.on("error", (err) => this.close(`connection error: ${err.message}`));
    socket.on("close", () => this.close("connection closed by peer"));
    if (rest.length > 0) this.#onBytes(rest.read(rest.length, false));
    socket.resume();
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Closes the stream (peer removed, replaced by a newer stream, transport stopped). */
  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.destroy();
    this.#ctx.logger.debug(
      { "local-member-id": this.#ctx.memberIdHex, "remote-peer-id": this.fromHex, reason },
      "closed inbound peer stream",
    );
    this.#onClosed(this);
  }

  #onBytes(chunk: Uint8Array): void {
    if (this.#closed) return;
    const d = this.#decoder;
    d.push(chunk);
    let pongs: Buffer[] | undefined;
    try {
      while (!this.#closed) {
        // a frame that lies whole in one chunk is decoded where it is (no Frame, no view)
        const c = d.nextInChunk();
        const f = c === undefined ? d.next() : undefined;
        if (c === undefined && f === undefined) break;
        if (f?.kind === "ping") {
          (pongs ??= []).push(encodeControlFrame(PONG_WORD, f.stampMs));
          continue;
        }
        if (f?.kind === "pong")
          throw new PeerConnectionError("bad-frame", "unexpected pong from the dialing side");
        const bodyBytes = f === undefined ? d.bodyEnd - d.bodyStart : f.body.length;
        this.#counts.receivedBytes += FRAME_HEADER_BYTES + bodyBytes;
        // a drop loses the message as a network would; an error closes the connection
        if (failpoint("peerBeforeReceive")) continue;
        const m =
          f === undefined
            ? decodePeerMessageIn(c!, d.bodyStart, d.bodyEnd, this.from, this.#ctx.memberId)
            : decodePeerMessage(f.body, this.from, this.#ctx.memberId);
        this.#ctx.deliver(m);
      }
    } catch (err) {
      this.#fail(err as PeerConnectionError);
      return;
    }
    if (pongs !== undefined)
      this.#socket.write(pongs.length === 1 ? pongs[0]! : Buffer.concat(pongs));
  }

  #fail(err: PeerConnectionError): void {
    if (this.#closed) return;
    this.#counts.receivedFailures++;
    this.#ctx.logger.warn(
      {
        "local-member-id": this.#ctx.memberIdHex,
        "remote-peer-id": this.fromHex,
        "remote-address": this.#socket.remoteAddress,
        code: err.code,
        error: err.message,
      },
      "closing peer connection: protocol error",
    );
    this.close(err.message);
  }
}
