/**
 * The outbound message link to one peer (etcd's peer + streamWriter, rafthttp/peer.go and
 * stream.go): a bounded queue of encoded raft messages, one dialed connection that carries them
 * as frames, pings for the round-trip metric, and reconnection with bounded exponential backoff.
 *
 * Messages queue while the link is dialing; a full queue drops the new message (raft tolerates
 * loss, etcd drops too), counts it (sent failures and the drop counter) and reports the peer
 * unreachable, at most once per flush. A failed dial fails what was queued (counted as sent
 * failures, peer reported unreachable), as etcd's pipeline fails a message whose POST fails: a
 * peer that is down for a while then gets no burst of stale appends when it comes back, and raft
 * resends what it still needs once the peer answers. Writes are batched: the transport flushes
 * every dirty link once per event-loop turn, framing many messages into each write under one cork.
 *
 * A lost connection that had been up for a while is redialed at once, not after the backoff
 * (and twice more shortly after while the redial is reset, see lossProbeDials): if that dial is
 * refused (ECONNREFUSED: nothing listens on the peer's port, its process is gone
 * while its host answers), the link says so through the transport's onPeerRefusing, a failure
 * detector the member uses to forget a dead leader (etcd-io/raft's ForgetLeader).
 */
import type net from "node:net";
import { failpoint } from "../failpoint/index.js";
import { PeerConnectionError } from "./errors.js";
import { type ByteQueue, FrameDecoder, PING_WORD, encodeControlFrame } from "./frame.js";
import { StreamKind, memberIdHex } from "./hello.js";
import { dialPeer } from "./dial.js";
import type { Message } from "../proto/gen/raftpb/raft.js";
import type { PeerCounts } from "./metrics.js";
import type { TransportContext } from "./options.js";
import { SendQueue } from "./send-queue.js";
import type { PeerUrl } from "./tls.js";

/** A peer's link state as PeerTransport.peerStatus reports it. */
export interface PeerStatus {
  id: bigint;
  /** The outbound message connection is open and past the hello. */
  connected: boolean;
  /** Date.now() when the current connection opened; 0 when not connected (etcd's ActiveSince). */
  activeSinceMs: number;
  /** Messages waiting to be written. */
  queuedMessages: number;
  /** The last failure: a refusal from the peer, a dial error, a lost connection. */
  lastError?: { code: string; message: string; atMs: number };
}

type LinkState = "dialing" | "connected" | "backoff" | "closed";

/**
 * Dials made right after a lost connection to learn whether the peer's port refuses: the first at
 * once, the others lossProbeIntervalMs apart while the answer is a reset or a close (not a
 * timeout). Then the usual backoff.
 */
const lossProbeDials = 3;
const lossProbeIntervalMs = 10;

/**
 * The link to one peer: dials at construction, keeps one connection up (redialing with backoff,
 * trying the peer's URLs in turn), and writes its queue when the transport flushes it.
 */
export class PeerLink {
  readonly id: bigint;
  readonly idHex: string;
  readonly #ctx: TransportContext;
  readonly #counts: PeerCounts;
  #urls: PeerUrl[];
  #urlIndex = 0;
  #state: LinkState = "dialing";
  #socket: net.Socket | undefined;
  readonly #queue: SendQueue;
  #attempt = 0;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #pingTimer: NodeJS.Timeout | undefined;
  #lastReadMs = 0;
  #activeSinceMs = 0;
  #lastError: PeerStatus["lastError"];
  #unreachablePending = false;
  #dropsSinceLog = 0;
  #lastDropLogMs = 0;
  /** Quick redials left after a lost connection to learn whether the peer refuses (see #lost). */
  #lossProbesLeft = 0;
  /** performance.now() when the current connection opened. */
  #connectedAtMs = 0;

  /** Starts dialing `urls` (already validated) at once. */
  constructor(ctx: TransportContext, id: bigint, urls: PeerUrl[]) {
    this.#ctx = ctx;
    this.id = id;
    this.idHex = memberIdHex(id);
    this.#counts = ctx.metrics.peer(this.idHex);
    this.#urls = urls;
    this.#queue = new SendQueue(
      ctx.limits.maxQueuedMessagesPerPeer,
      ctx.limits.maxQueuedBytesPerPeer,
    );
    this.#dial();
  }

  /** The peer's URLs, tried in turn (etcd's urlPicker moves on when one is unreachable). */
  get urls(): readonly PeerUrl[] {
    return this.#urls;
  }

  /** The URL the next dial (or snapshot send) uses. */
  get currentUrl(): PeerUrl {
    return this.#urls[this.#urlIndex % this.#urls.length]!;
  }

  /** Replaces the peer's URLs (etcd's MemberUpdate); the open connection stays. */
  setUrls(urls: PeerUrl[]): void {
    this.#urls = urls;
    this.#urlIndex = 0;
  }

  /**
   * Queues one message of `sizeBytes` encoded bytes (see SendQueue.push). Returns false (and
   * counts a drop) when the queue is full; the caller then flushes, which reports the peer
   * unreachable.
   */
  enqueue(item: Message | Uint8Array, sizeBytes: number): boolean {
    if (this.#state === "closed") return false;
    if (this.#queue.push(item, sizeBytes)) return true;
    this.#drop();
    return false;
  }

  /** Marks a message to this peer as undeliverable without queueing it (e.g. a snapshot refused). */
  noteUndeliverable(): void {
    this.#counts.sentFailures++;
    this.#unreachablePending = true;
  }

  /** Writes what is queued, if connected and the socket is not backed up. Called once per turn. */
  flush(): void {
    if (this.#unreachablePending) {
      this.#unreachablePending = false;
      this.#ctx.reportUnreachable(this.id);
    }
    const s = this.#socket;
    if (this.#state !== "connected" || s === undefined) return;
    const { maxSocketBufferedBytes, maxWriteBatchBytes } = this.#ctx.limits;
    if (this.#queue.length === 0 || s.writableLength >= maxSocketBufferedBytes) return;
    if (this.#sendFailpoint(s)) return;
    const first = this.#queue.takeBatch(maxWriteBatchBytes)!;
    this.#counts.sentBytes += first.length;
    if (this.#queue.length === 0) {
      // the usual case (a Ready's messages fit one batch): no cork, whose uncork goes through
      // the stream's writev path and allocates its buffered-request objects for a single chunk
      s.write(first);
      return;
    }
    s.cork();
    s.write(first);
    while (s.writableLength < maxSocketBufferedBytes) {
      const batch = this.#queue.takeBatch(maxWriteBatchBytes);
      if (batch === undefined) break;
      s.write(batch);
      this.#counts.sentBytes += batch.length;
    }
    s.uncork();
  }

  /**
   * The peerBeforeSend failpoint: a drop loses the queued messages as a network would, an error
   * breaks the connection as a failed write does (the link reconnects). True when it fired.
   */
  #sendFailpoint(s: net.Socket): boolean {
    try {
      if (!failpoint("peerBeforeSend")) return false;
      this.#queue.clear();
    } catch (err) {
      this.#lost(s, new PeerConnectionError("connection-lost", (err as Error).message));
    }
    return true;
  }

  /** The link's state for peerStatus. */
  status(): PeerStatus {
    return {
      id: this.id,
      connected: this.#state === "connected",
      activeSinceMs: this.#activeSinceMs,
      queuedMessages: this.#queue.length,
      ...(this.#lastError === undefined ? {} : { lastError: { ...this.#lastError } }),
    };
  }

  /** Closes the link for good (peer removed or transport stopped); queued messages are dropped. */
  close(): void {
    if (this.#state === "closed") return;
    const wasConnected = this.#state === "connected";
    this.#state = "closed";
    clearTimeout(this.#reconnectTimer);
    clearInterval(this.#pingTimer);
    this.#socket?.destroy();
    this.#socket = undefined;
    this.#queue.clear();
    if (wasConnected) this.#ctx.metrics.activePeers.remove(this.#ctx.memberIdHex, this.idHex);
  }

  #drop(): void {
    this.#counts.droppedMessages++;
    this.#counts.sentFailures++;
    this.#unreachablePending = true;
    this.#dropsSinceLog++;
    const now = Date.now();
    if (now - this.#lastDropLogMs < this.#ctx.limits.dropLogIntervalMs) return;
    // etcd logs each drop ("dropped internal Raft message since sending buffer is full"); we sum
    // them per interval so a partitioned peer cannot flood the log.
    this.#ctx.logger.warn(
      {
        "local-member-id": this.#ctx.memberIdHex,
        "remote-peer-id": this.idHex,
        "remote-peer-active": this.#state === "connected",
        dropped: this.#dropsSinceLog,
      },
      "dropped internal Raft message since sending buffer is full",
    );
    this.#dropsSinceLog = 0;
    this.#lastDropLogMs = now;
  }

  /**
   * The peer has just opened a message stream to this member (its hello passed): it is up. A link
   * waiting out its backoff (up to reconnectBackoffMaxMs after a long outage) dials at once and
   * starts its backoff over. In etcd each member pulls its incoming streams from the others, so
   * a member back from a restart or a partition hears from them at once; here each side pushes
   * its own messages, and this keeps that property.
   */
  peerIsUp(): void {
    if (this.#state !== "backoff" || this.#lossProbesLeft > 0) return;
    clearTimeout(this.#reconnectTimer);
    this.#attempt = 0;
    this.#dial();
  }

  #dial(): void {
    if (this.#state === "closed") return;
    this.#state = "dialing";
    const url = this.currentUrl;
    dialPeer(this.#ctx, this.id, url, StreamKind.Message).then(
      (dialed) => {
        if (this.#state === "closed") {
          dialed.socket.destroy();
          return;
        }
        this.#onConnected(dialed.socket, dialed.rest, url);
      },
      (err: PeerConnectionError) => this.#onDialFailed(url, err),
    );
  }

  #onDialFailed(url: PeerUrl, err: PeerConnectionError): void {
    if (this.#state === "closed") return;
    const probing = this.#lossProbesLeft > 0;
    if (probing) this.#lossProbesLeft--;
    const repeated = this.#lastError?.message === err.message;
    this.#setError(err);
    const fields = {
      "local-member-id": this.#ctx.memberIdHex,
      "remote-peer-id": this.idHex,
      "remote-peer-url": url.url,
      code: err.code,
      error: err.message,
    };
    // Every failure is logged; an unchanged one only at debug, so a peer that is down for a
    // long time does not fill the log (etcd's prober reports such peers periodically instead).
    if (repeated) this.#ctx.logger.debug(fields, "failed to dial remote peer");
    else this.#ctx.logger.warn(fields, "failed to dial remote peer");
    if (err.code === "member-removed") this.#ctx.removedBy(this.id);
    const failed = this.#queue.clear();
    if (failed > 0) {
      this.#counts.sentFailures += failed;
      this.#unreachablePending = false;
      this.#ctx.reportUnreachable(this.id);
    }
    if (probing && isConnectionRefused(err)) {
      // only a refusal says the process is gone: a timeout or a reset (a partition, a proxy, a
      // member busy or shutting down its connections) says nothing of the kind
      this.#lossProbesLeft = 0;
      this.#ctx.peerRefusing(this.id);
    } else if (
      probing &&
      this.#lossProbesLeft > 0 &&
      (err.code === "dial-failed" || err.code === "connection-lost")
    ) {
      // a reset on the redial: a dying process may still hold its listening socket for a moment
      // after its connections closed (its accept queue is then reset); ask again shortly
      this.#state = "backoff";
      this.#reconnectTimer = setTimeout(() => this.#dial(), lossProbeIntervalMs);
      this.#reconnectTimer.unref();
      return;
    } else {
      this.#lossProbesLeft = 0;
    }
    this.#urlIndex++;
    this.#scheduleReconnect();
  }

  #onConnected(socket: net.Socket, rest: ByteQueue, url: PeerUrl): void {
    const ctx = this.#ctx;
    this.#lossProbesLeft = 0;
    this.#state = "connected";
    this.#socket = socket;
    this.#attempt = 0;
    this.#activeSinceMs = Date.now();
    this.#connectedAtMs = performance.now();
    this.#lastReadMs = performance.now();
    ctx.metrics.activePeers.set({ Local: ctx.memberIdHex, Remote: this.idHex }, 1);
    ctx.logger.info(
      {
        "local-member-id": ctx.memberIdHex,
        "remote-peer-id": this.idHex,
        "remote-peer-url": url.url,
      },
      "established TCP streaming connection with remote peer",
    );
    // The acceptor only ever sends pongs on a message stream; a pong is 12 bytes.
    const decoder = new FrameDecoder(8, false);
    const onBytes = (chunk: Uint8Array): void => {
      this.#lastReadMs = performance.now();
      decoder.push(chunk);
      try {
        for (let f = decoder.next(); f !== undefined; f = decoder.next()) {
          if (f.kind !== "pong")
            throw new PeerConnectionError("bad-frame", `unexpected ${f.kind} frame from acceptor`);
          const rttMs = performance.now() - f.stampMs;
          if (rttMs >= 0)
            ctx.metrics.roundTripTimeSeconds.observe({ To: this.idHex }, rttMs / 1000);
        }
      } catch (err) {
        this.#lost(socket, err as PeerConnectionError);
      }
    };
    socket.on("data", onBytes);
    socket.on("drain", () => this.flush());
    socket.on("error", (err) =>
      this.#lost(socket, new PeerConnectionError("connection-lost", err.message, { cause: err })),
    );
    socket.on("close", () =>
      this.#lost(socket, new PeerConnectionError("connection-lost", "connection closed by peer")),
    );
    this.#pingTimer = setInterval(() => this.#ping(socket), ctx.limits.pingIntervalMs);
    this.#pingTimer.unref();
    while (rest.length > 0) onBytes(rest.read(rest.length, false));
    socket.resume();
    this.#ping(socket);
    this.flush();
  }

  #ping(socket: net.Socket): void {
    if (this.#socket !== socket) return;
    const idleMs = performance.now() - this.#lastReadMs;
    if (idleMs > this.#ctx.limits.connReadTimeoutMs) {
      this.#lost(
        socket,
        new PeerConnectionError("timeout", `nothing received for ${Math.round(idleMs)} ms`),
      );
      return;
    }
    socket.write(encodeControlFrame(PING_WORD, performance.now()));
  }

  #lost(socket: net.Socket, err: PeerConnectionError): void {
    if (this.#socket !== socket || this.#state !== "connected") return;
    const ctx = this.#ctx;
    this.#socket = undefined;
    socket.destroy();
    clearInterval(this.#pingTimer);
    this.#setError(err);
    this.#activeSinceMs = 0;
    ctx.metrics.activePeers.remove(ctx.memberIdHex, this.idHex);
    ctx.metrics.disconnectedPeersTotal.inc({ Local: ctx.memberIdHex, Remote: this.idHex });
    ctx.logger.warn(
      {
        "local-member-id": ctx.memberIdHex,
        "remote-peer-id": this.idHex,
        code: err.code,
        error: err.message,
      },
      "lost TCP streaming connection with remote peer",
    );
    // Whatever was in flight may be lost: raft should probe the follower again.
    ctx.reportUnreachable(this.id);
    const upMs = performance.now() - this.#connectedAtMs;
    if (upMs >= ctx.limits.reconnectBackoffInitialMs) {
      // redial at once: a refusal now tells the member the peer's process is gone (see the
      // file comment); a connection that keeps dropping right after it opens backs off instead
      this.#lossProbesLeft = lossProbeDials;
      this.#dial();
      return;
    }
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#state === "closed") return;
    this.#state = "backoff";
    const { reconnectBackoffInitialMs, reconnectBackoffMaxMs } = this.#ctx.limits;
    const base = Math.min(reconnectBackoffMaxMs, reconnectBackoffInitialMs * 2 ** this.#attempt);
    // ±20 % jitter so members that lost each other at once do not redial in lockstep.
    const delayMs = Math.min(reconnectBackoffMaxMs, base * (0.8 + 0.4 * Math.random()));
    this.#attempt = Math.min(this.#attempt + 1, 30);
    this.#reconnectTimer = setTimeout(() => this.#dial(), delayMs);
    this.#reconnectTimer.unref();
  }

  #setError(err: PeerConnectionError): void {
    this.#lastError = { code: err.code, message: err.message, atMs: Date.now() };
  }
}

/** True when a dial failed because the peer's host refused the TCP connection (ECONNREFUSED). */
function isConnectionRefused(err: PeerConnectionError): boolean {
  const cause = err.cause as NodeJS.ErrnoException | undefined;
  return err.code === "dial-failed" && cause?.code === "ECONNREFUSED";
}
