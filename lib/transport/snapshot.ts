/**
 * Snapshots on their own connection (DESIGN §6; etcd's snapshotSender and snapshotHandler,
 * rafthttp/snapshot_sender.go and http.go): a MsgSnap and its payload never share a socket with
 * heartbeats, so a large snapshot cannot delay them.
 *
 * After the hello (StreamKind.Snapshot) the sender writes:
 *   frame(raftpb.Message MsgSnap with snapshot.data emptied)
 *   frame(chunk)* — the payload, each chunk at most snapshotChunkBytes
 *   frame(empty)  — end of payload
 * and the receiver answers once: status u8 (0 finish, 1 failure) | reason length u16 | reason.
 * Flow control both ways: the sender writes the next chunk only after the socket drains, and the
 * receiver pauses the socket while its consumer is more than snapshotReceiveBufferedBytes behind.
 * The sender reports SnapshotFinish to its raft on status 0 and SnapshotFailure (plus unreachable,
 * as etcd) on anything else.
 */
import type net from "node:net";
import { type Message, MessageType, Message as MessageCodec } from "../proto/gen/raftpb/raft.js";
import { failpoint } from "../failpoint/index.js";
import { PeerConnectionError } from "./errors.js";
import { ByteQueue, FRAME_HEADER_BYTES, FrameDecoder, encodeFrame } from "./frame.js";
import { MAX_REASON_BYTES, StreamKind, memberIdHex } from "./hello.js";
import { dialPeer } from "./dial.js";
import { decodePeerMessage } from "./inbound.js";
import type { TransportContext } from "./options.js";
import type { PeerUrl } from "./tls.js";

/** The payload of a snapshot: one buffer, or chunks from e.g. a db file read stream. */
export type SnapshotPayload = Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

const STATUS_HEADER_BYTES = 3;
const STATUS_FINISH = 0;
const STATUS_FAILURE = 1;
const emptyBytes = new Uint8Array(0);

function encodeStatus(ok: boolean, reason: string): Buffer {
  let r = Buffer.from(reason, "utf8");
  if (r.length > MAX_REASON_BYTES) r = r.subarray(0, MAX_REASON_BYTES);
  const b = Buffer.alloc(STATUS_HEADER_BYTES + r.length);
  b.writeUInt8(ok ? STATUS_FINISH : STATUS_FAILURE, 0);
  b.writeUInt16BE(r.length, 1);
  r.copy(b, STATUS_HEADER_BYTES);
  return b;
}

/** Resolves on 'drain'; rejects when the socket closes first. */
function drained(socket: net.Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = (): void => {
      socket.removeListener("close", onClose);
      resolve();
    };
    const onClose = (): void => {
      socket.removeListener("drain", onDrain);
      reject(new PeerConnectionError("connection-lost", "snapshot connection closed"));
    };
    socket.once("drain", onDrain);
    socket.once("close", onClose);
  });
}

/** One MsgSnap being sent to a peer. run() settles after reporting the result to raft. */
export class SnapshotSend {
  readonly #ctx: TransportContext;
  readonly #to: bigint;
  readonly #toHex: string;
  readonly #url: PeerUrl;
  readonly #message: Message;
  readonly #payload: SnapshotPayload;
  #socket: net.Socket | undefined;
  #aborted = false;
  /** The receiver's status once read; its reason explains a connection it then closed. */
  #status: { ok: boolean; reason: string } | undefined;
  /** Set when the stall or status timer closed the connection. */
  #stallError: PeerConnectionError | undefined;

  constructor(
    ctx: TransportContext,
    to: bigint,
    url: PeerUrl,
    message: Message,
    payload: SnapshotPayload,
  ) {
    this.#ctx = ctx;
    this.#to = to;
    this.#toHex = memberIdHex(to);
    this.#url = url;
    this.#message = message;
    this.#payload = payload;
  }

  /**
   * Stops the send without reporting to raft (the peer was removed or the transport stopped).
   */
  abort(): void {
    this.#aborted = true;
    this.#socket?.destroy();
  }

  /** Sends, then reports finish or failure through the context. Never rejects. */
  async run(): Promise<void> {
    const ctx = this.#ctx;
    const labels = { To: this.#toHex };
    const startedMs = performance.now();
    ctx.metrics.snapshotSendInflights.inc(labels);
    let sentBytes = 0;
    try {
      sentBytes = await this.#send();
      ctx.metrics.snapshotSendSuccess.inc(labels);
      ctx.metrics.snapshotSendSeconds.observe(labels, (performance.now() - startedMs) / 1000);
      ctx.logger.info(
        {
          "local-member-id": ctx.memberIdHex,
          "remote-peer-id": this.#toHex,
          "snapshot-index": this.#message.snapshot?.metadata?.index ?? 0,
          "payload-bytes": sentBytes,
        },
        "sent database snapshot to remote peer",
      );
      if (!this.#aborted) ctx.reportSnapshot(this.#to, "finish");
    } catch (e) {
      const err = this.#stallError ?? (e as PeerConnectionError);
      ctx.metrics.snapshotSendFailures.inc(labels);
      ctx.metrics.peer(this.#toHex).sentFailures++;
      const reason =
        this.#status !== undefined && !this.#status.ok
          ? `receiver failed: ${this.#status.reason}`
          : err.message;
      ctx.logger.warn(
        {
          "local-member-id": ctx.memberIdHex,
          "remote-peer-id": this.#toHex,
          "remote-peer-url": this.#url.url,
          code: err.code ?? "snapshot-failed",
          error: reason,
        },
        "failed to send database snapshot",
      );
      if (!this.#aborted) {
        ctx.reportUnreachable(this.#to);
        ctx.reportSnapshot(this.#to, "failure");
      }
    } finally {
      ctx.metrics.snapshotSendInflights.dec(labels);
      this.#socket?.destroy();
    }
  }

  /** The whole exchange; returns the payload bytes sent. Throws PeerConnectionError. */
  async #send(): Promise<number> {
    const ctx = this.#ctx;
    const { limits } = ctx;
    const dialed = await dialPeer(ctx, this.#to, this.#url, StreamKind.Snapshot);
    const socket = dialed.socket;
    this.#socket = socket;
    if (this.#aborted) throw new PeerConnectionError("connection-lost", "snapshot send aborted");
    const status = this.#readStatus(socket, dialed.rest);
    status.catch(() => {}); // observed below; a failure before then shows as a lost connection
    socket.setTimeout(limits.snapshotStallTimeoutMs);
    socket.on("timeout", () => {
      this.#stallError = new PeerConnectionError(
        "timeout",
        `snapshot stream made no progress for ${socket.timeout} ms`,
      );
      socket.destroy();
    });
    socket.on("error", () => {}); // reported through 'close' and the pending write/drain
    socket.resume();

    const m = this.#message;
    const header = MessageCodec.toBinary({
      ...m,
      snapshot: m.snapshot === undefined ? undefined : { ...m.snapshot, data: emptyBytes },
    });
    if (header.length > limits.maxFrameBytes)
      throw new PeerConnectionError(
        "frame-too-large",
        `snapshot message header of ${header.length} bytes exceeds ${limits.maxFrameBytes}`,
      );
    await this.#write(socket, [encodeFrame(header)]);
    let total = 0;
    const p = this.#payload;
    const chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array> =
      p instanceof Uint8Array ? [p] : p;
    for await (const chunk of chunks) {
      total += chunk.length;
      if (total > limits.maxSnapshotBytes)
        throw new PeerConnectionError(
          "snapshot-failed",
          `snapshot payload exceeds maxSnapshotBytes ${limits.maxSnapshotBytes}`,
        );
      for (let off = 0; off < chunk.length; off += limits.snapshotChunkBytes) {
        const piece = chunk.subarray(off, Math.min(chunk.length, off + limits.snapshotChunkBytes));
        const word = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
        word.writeUInt32BE(piece.length, 0);
        await this.#write(socket, [word, piece]);
      }
    }
    await this.#write(socket, [encodeFrame(emptyBytes)]);
    socket.setTimeout(limits.snapshotStatusTimeoutMs);
    const result = await status;
    if (!result.ok)
      throw new PeerConnectionError("snapshot-failed", `receiver failed: ${result.reason}`);
    ctx.metrics.peer(this.#toHex).sentBytes += total;
    return total;
  }

  /** Writes buffers under one cork; waits for 'drain' when the socket is backed up. */
  async #write(socket: net.Socket, bufs: Uint8Array[]): Promise<void> {
    if (this.#aborted || socket.destroyed)
      throw new PeerConnectionError("connection-lost", "snapshot connection closed");
    // The receiver answers early only to fail the snapshot: stop sending the rest.
    if (this.#status !== undefined)
      throw new PeerConnectionError("snapshot-failed", `receiver failed: ${this.#status.reason}`);
    socket.cork();
    let ok = true;
    for (const b of bufs) ok = socket.write(b);
    socket.uncork();
    if (!ok) await drained(socket);
  }

  /** Reads the receiver's status; rejects if the connection closes first. */
  #readStatus(socket: net.Socket, bytes: ByteQueue): Promise<{ ok: boolean; reason: string }> {
    return new Promise((resolve, reject) => {
      let head: Buffer | undefined;
      const onData = (chunk?: Buffer): void => {
        if (chunk !== undefined) bytes.push(chunk);
        if (head === undefined) {
          if (bytes.length < STATUS_HEADER_BYTES) return;
          head = Buffer.from(bytes.read(STATUS_HEADER_BYTES, true));
        }
        const reasonBytes = head.readUInt16BE(1);
        if (bytes.length < reasonBytes) return;
        const reason = Buffer.from(bytes.read(reasonBytes, true)).toString("utf8");
        this.#status = { ok: head.readUInt8(0) === STATUS_FINISH, reason };
        socket.removeListener("data", onData);
        resolve(this.#status);
      };
      socket.on("data", onData);
      socket.once("close", () =>
        reject(
          this.#stallError ??
            new PeerConnectionError("connection-lost", "snapshot connection closed before status"),
        ),
      );
      onData();
    });
  }
}

/**
 * Chunks handed to an onSnapshot consumer as an AsyncIterable, with flow control: past
 * `highWaterBytes` buffered the socket is paused, and resumed once the consumer has taken half.
 * A consumer that stops iterating early (break / return) abandons the rest, which is discarded.
 */
class ChunkChannel implements AsyncIterable<Uint8Array> {
  #chunks: Uint8Array[] = [];
  #bufferedBytes = 0;
  #ended = false;
  #error: Error | undefined;
  #abandoned = false;
  #paused = false;
  #waiter:
    { resolve: (r: IteratorResult<Uint8Array>) => void; reject: (e: Error) => void } | undefined;
  readonly #highWaterBytes: number;
  readonly #socket: net.Socket;

  constructor(socket: net.Socket, highWaterBytes: number) {
    this.#socket = socket;
    this.#highWaterBytes = highWaterBytes;
  }

  /** True while the socket is paused for this consumer (the stall timer then does not count). */
  get paused(): boolean {
    return this.#paused;
  }

  push(chunk: Uint8Array): void {
    if (this.#abandoned) return;
    const w = this.#waiter;
    if (w !== undefined) {
      this.#waiter = undefined;
      w.resolve({ value: chunk, done: false });
      return;
    }
    this.#chunks.push(chunk);
    this.#bufferedBytes += chunk.length;
    if (!this.#paused && this.#bufferedBytes >= this.#highWaterBytes) {
      this.#paused = true;
      this.#socket.pause();
    }
  }

  end(): void {
    this.#ended = true;
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.resolve({ value: undefined, done: true });
  }

  fail(err: Error): void {
    this.#error ??= err;
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.reject(err);
  }

  abandon(): void {
    this.#abandoned = true;
    this.#chunks = [];
    this.#bufferedBytes = 0;
    this.#resume();
  }

  #resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#socket.resume();
  }

  #next(): Promise<IteratorResult<Uint8Array>> {
    const c = this.#chunks.shift();
    if (c !== undefined) {
      this.#bufferedBytes -= c.length;
      if (this.#bufferedBytes <= this.#highWaterBytes / 2) this.#resume();
      return Promise.resolve({ value: c, done: false });
    }
    if (this.#error !== undefined) return Promise.reject(this.#error);
    if (this.#ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => (this.#waiter = { resolve, reject }));
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return {
      next: () => this.#next(),
      return: () => {
        this.abandon();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

/**
 * The receiving end of one snapshot connection from peer `from` (socket paused, past the hello;
 * `rest` holds bytes already read). Reads the MsgSnap, feeds the payload to ctx.onSnapshot (or
 * collects it into snapshot.data for ctx.deliver), and answers with the status.
 */
export class SnapshotReceive {
  readonly #ctx: TransportContext;
  readonly #socket: net.Socket;
  readonly #from: bigint;
  readonly #fromHex: string;
  readonly #decoder: FrameDecoder;
  readonly #onClosed: (r: SnapshotReceive) => void;
  readonly #startedMs = performance.now();
  #message: Message | undefined;
  #channel: ChunkChannel | undefined;
  /** Chunks collected when there is no onSnapshot consumer. */
  #inline: Uint8Array[] | undefined;
  #totalBytes = 0;
  #payloadEnded = false;
  /** undefined while the consumer runs; its outcome once settled. */
  #consumerResult: { ok: boolean; reason: string } | undefined;
  #finished = false;

  constructor(
    ctx: TransportContext,
    socket: net.Socket,
    from: bigint,
    rest: ByteQueue,
    onClosed: (r: SnapshotReceive) => void,
  ) {
    this.#ctx = ctx;
    this.#socket = socket;
    this.#from = from;
    this.#fromHex = memberIdHex(from);
    this.#decoder = new FrameDecoder(ctx.limits.maxFrameBytes, false);
    this.#onClosed = onClosed;
    ctx.metrics.snapshotReceiveInflights.inc({ From: this.#fromHex });
    socket.setTimeout(ctx.limits.snapshotStallTimeoutMs);
    socket.on("timeout", () => {
      if (this.#finished) {
        socket.destroy();
        return;
      }
      // A paused socket (slow consumer) or a consumer still applying is not a stalled sender.
      if (this.#channel?.paused === true || this.#payloadEnded) return;
      this.#fail(
        new PeerConnectionError(
          "timeout",
          `snapshot stream made no progress for ${ctx.limits.snapshotStallTimeoutMs} ms`,
        ),
      );
    });
    socket.on("data", (chunk: Buffer) => this.#onBytes(chunk));
    socket.on("error", () => {});
    socket.on("close", () =>
      this.#fail(new PeerConnectionError("connection-lost", "snapshot connection closed by peer")),
    );
    if (rest.length > 0) this.#onBytes(rest.read(rest.length, false));
    socket.resume();
  }

  /** True once the status is sent or the receive failed. */
  get done(): boolean {
    return this.#finished;
  }

  /** Ends the receive without a status (transport stopped or peer removed). */
  close(): void {
    this.#fail(new PeerConnectionError("connection-lost", "snapshot receive aborted"));
  }

  #onBytes(chunk: Uint8Array): void {
    if (this.#finished) return;
    this.#ctx.metrics.peer(this.#fromHex).receivedBytes += chunk.length;
    this.#decoder.push(chunk);
    try {
      for (let f = this.#decoder.next(); f !== undefined; f = this.#decoder.next()) {
        if (f.kind !== "data")
          throw new PeerConnectionError("bad-frame", `unexpected ${f.kind} on a snapshot stream`);
        if (this.#payloadEnded)
          throw new PeerConnectionError("bad-frame", "data after the end of the snapshot payload");
        if (this.#message === undefined) this.#onHeader(f.body);
        else if (f.body.length === 0) this.#onPayloadEnd();
        else this.#onChunk(f.body);
        if (this.#finished) return;
      }
    } catch (err) {
      this.#fail(err as PeerConnectionError);
    }
  }

  #onHeader(body: Uint8Array): void {
    const ctx = this.#ctx;
    failpoint("snapshotBeforeReceive");
    const m = decodePeerMessage(body, this.#from, ctx.memberId);
    if (m.type !== MessageType.MsgSnap || m.snapshot?.metadata === undefined)
      throw new PeerConnectionError(
        "bad-frame",
        `snapshot stream opened with message type ${m.type}`,
      );
    this.#message = m;
    const handler = ctx.onSnapshot;
    if (handler === undefined) {
      this.#inline = [];
      return;
    }
    const channel = new ChunkChannel(this.#socket, ctx.limits.snapshotReceiveBufferedBytes);
    this.#channel = channel;
    let started: Promise<void>;
    try {
      started = handler(m, channel);
    } catch (err) {
      started = Promise.reject(err);
    }
    started.then(
      () => {
        this.#consumerResult = { ok: true, reason: "" };
        channel.abandon();
        this.#maybeFinish();
      },
      (err: unknown) => {
        this.#consumerResult = { ok: false, reason: (err as Error)?.message ?? String(err) };
        channel.abandon();
        this.#maybeFinish();
      },
    );
  }

  #onChunk(body: Uint8Array): void {
    const { limits } = this.#ctx;
    this.#totalBytes += body.length;
    const limit =
      this.#inline === undefined ? limits.maxSnapshotBytes : limits.maxInlineSnapshotBytes;
    if (this.#totalBytes > limit)
      throw new PeerConnectionError("snapshot-failed", `snapshot payload exceeds ${limit} bytes`);
    if (this.#inline !== undefined) this.#inline.push(body);
    else this.#channel!.push(body);
  }

  #onPayloadEnd(): void {
    this.#payloadEnded = true;
    if (this.#inline !== undefined) {
      const m = this.#message!;
      const data = new Uint8Array(this.#totalBytes);
      let off = 0;
      for (const c of this.#inline) {
        data.set(c, off);
        off += c.length;
      }
      m.snapshot!.data = data;
      this.#inline = [];
      this.#ctx.deliver(m);
      this.#consumerResult = { ok: true, reason: "" };
    } else {
      this.#channel!.end();
    }
    this.#maybeFinish();
  }

  /** Answers once the payload has ended and the consumer is done, or at once on its failure. */
  #maybeFinish(): void {
    const r = this.#consumerResult;
    if (this.#finished || r === undefined || (r.ok && !this.#payloadEnded)) return;
    this.#finished = true;
    const ctx = this.#ctx;
    const labels = { From: this.#fromHex };
    ctx.metrics.snapshotReceiveInflights.dec(labels);
    const fields = {
      "local-member-id": ctx.memberIdHex,
      "remote-peer-id": this.#fromHex,
      "snapshot-index": this.#message?.snapshot?.metadata?.index ?? 0,
      "payload-bytes": this.#totalBytes,
    };
    if (r.ok) {
      ctx.metrics.snapshotReceiveSuccess.inc(labels);
      ctx.metrics.snapshotReceiveSeconds.observe(
        labels,
        (performance.now() - this.#startedMs) / 1000,
      );
      ctx.logger.info(fields, "received and saved database snapshot");
    } else {
      ctx.metrics.snapshotReceiveFailures.inc(labels);
      ctx.logger.warn(
        { ...fields, error: r.reason },
        "failed to process received database snapshot",
      );
    }
    this.#socket.setTimeout(ctx.limits.helloTimeoutMs);
    this.#socket.end(encodeStatus(r.ok, r.reason));
    this.#onClosed(this);
  }

  #fail(err: PeerConnectionError): void {
    if (this.#finished) return;
    this.#finished = true;
    const ctx = this.#ctx;
    const labels = { From: this.#fromHex };
    ctx.metrics.snapshotReceiveInflights.dec(labels);
    ctx.metrics.snapshotReceiveFailures.inc(labels);
    ctx.metrics.peer(this.#fromHex).receivedFailures++;
    this.#channel?.fail(err);
    ctx.logger.warn(
      {
        "local-member-id": ctx.memberIdHex,
        "remote-peer-id": this.#fromHex,
        code: err.code,
        error: err.message,
      },
      "failed to receive database snapshot",
    );
    if (!this.#socket.destroyed) this.#socket.end(encodeStatus(false, err.message));
    this.#socket.setTimeout(ctx.limits.helloTimeoutMs);
    this.#onClosed(this);
  }
}
