/**
 * PeerTransport: the member's links to its peers (DESIGN §6; the role of etcd's
 * rafthttp.Transport). Raft messages go out through send(), one queue and one dialed connection
 * per peer, written in batches once per event-loop turn; MsgSnap goes out on a connection of its
 * own (snapshot.ts). Messages from peers arrive on connections they dialed, each opened with a
 * hello checked on both sides, and are handed to onMessage / onSnapshot.
 *
 * Lifecycle: construct (validates URLs and TLS; throws), start() (listens), addPeer() for every
 * other member, send() from the ready loop, removePeer() when a member leaves, stop().
 */
import type net from "node:net";
import client from "prom-client";
import { type Message, MessageType, Message as MessageCodec } from "../proto/gen/raftpb/raft.js";
import { PeerIdError, TransportStoppedError } from "./errors.js";
import { type ByteQueue, MAX_FRAME_BYTES_LIMIT } from "./frame.js";
import { type Hello, memberIdHex } from "./hello.js";
import { InboundStream } from "./inbound.js";
import { handEncodable, messageSize } from "./message-codec.js";
import { PeerLink, type PeerStatus } from "./link.js";
import { PeerListener } from "./listener.js";
import { TransportMetrics } from "./metrics.js";
import {
  type PeerStanding,
  type PeerTransportOptions,
  type TransportContext,
  type TransportLimits,
  defaultTransportLimits,
} from "./options.js";
import { SnapshotReceive, SnapshotSend, type SnapshotPayload } from "./snapshot.js";
import { type PeerTls, type PeerUrl, loadPeerTls, parsePeerUrl, requirePeerTls } from "./tls.js";

const maxMemberId = (1n << 64n) - 1n;

function checkMemberId(id: bigint, what: string): void {
  if (id <= 0n || id > maxMemberId)
    throw new PeerIdError(`${what} ${id} is not a member id (non-zero uint64)`);
}

/**
 * A member's peer transport (see the file comment for the lifecycle). Delivery problems are never
 * thrown: they are logged, counted in the etcd_network_* metrics, reported to raft through
 * reportUnreachable / reportSnapshot, and shown by peerStatus(id).
 */
export class PeerTransport {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  /** The transport's metrics (registered in options.registry). */
  readonly metrics: TransportMetrics;
  readonly #opts: PeerTransportOptions;
  readonly #ctx: TransportContext;
  readonly #peerTls: PeerTls | undefined;
  readonly #listeners: PeerListener[];
  readonly #links = new Map<bigint, PeerLink>();
  readonly #removed = new Set<bigint>();
  readonly #inbound = new Map<bigint, InboundStream>();
  readonly #snapshotSends = new Map<bigint, SnapshotSend>();
  readonly #snapshotReceives = new Set<SnapshotReceive>();
  readonly #dirty = new Set<PeerLink>();
  #flushScheduled = false;
  #toldRemoved = false;
  #state: "new" | "started" | "stopped" = "new";

  /**
   * Validates the options: member and cluster ids, listen URLs (http(s)://host:port), and peer
   * TLS (files readable and matching; required when any listen URL is https://). Throws
   * PeerIdError, PeerUrlError or PeerTlsConfigError. Nothing listens until start().
   */
  constructor(opts: PeerTransportOptions) {
    checkMemberId(opts.memberId, "member id");
    checkMemberId(opts.clusterId, "cluster id");
    const limits: TransportLimits = { ...defaultTransportLimits, ...opts.limits };
    if (!(limits.maxFrameBytes > 0 && limits.maxFrameBytes < MAX_FRAME_BYTES_LIMIT))
      throw new RangeError(`maxFrameBytes ${limits.maxFrameBytes} out of range`);
    this.memberId = opts.memberId;
    this.clusterId = opts.clusterId;
    this.#opts = opts;
    this.#peerTls = loadPeerTls(opts.tls);
    const listenUrls = opts.listenUrls.map(parsePeerUrl);
    for (const u of listenUrls) requirePeerTls(u, this.#peerTls, "peer listener");
    this.metrics = new TransportMetrics(opts.registry ?? new client.Registry());
    const memberIdHexStr = memberIdHex(opts.memberId);
    this.#ctx = {
      memberId: opts.memberId,
      memberIdHex: memberIdHexStr,
      clusterId: opts.clusterId,
      limits,
      logger: opts.logger,
      metrics: this.metrics,
      peerTls: this.#peerTls,
      standing: (id) => this.#standing(id),
      deliver: (m) => this.#deliver(m),
      onSnapshot: opts.onSnapshot,
      onHttpConnection: opts.onHttpConnection,
      reportUnreachable: (id) =>
        this.#report(() => opts.reportUnreachable(id), "reportUnreachable"),
      reportSnapshot: (id, status) =>
        this.#report(() => opts.reportSnapshot(id, status), "reportSnapshot"),
      peerRefusing: (id) => {
        const cb = opts.onPeerRefusing;
        if (cb !== undefined) this.#report(() => cb(id), "onPeerRefusing");
      },
      removedBy: (id) => {
        // Once: every later refusal says the same, and the member stops on the first.
        const cb = opts.onRemoved;
        if (cb === undefined || this.#toldRemoved) return;
        this.#toldRemoved = true;
        this.#opts.logger.error(
          { "local-member-id": this.#ctx.memberIdHex, "remote-peer-id": memberIdHex(id) },
          "the member has been permanently removed from the cluster",
        );
        this.#report(() => cb(id), "onRemoved");
      },
    };
    this.#listeners = listenUrls.map(
      (u) =>
        new PeerListener(this.#ctx, u, {
          onMessageStream: (s, h, rest) => this.#onMessageStream(s, h, rest),
          onSnapshotStream: (s, h, rest) => this.#onSnapshotStream(s, h, rest),
        }),
    );
  }

  /** Starts listening on every listen URL. Rejects with the first listen error (all closed then). */
  async start(): Promise<void> {
    if (this.#state !== "new") throw new TransportStoppedError("start again (start() runs once)");
    this.#state = "started";
    try {
      await Promise.all(this.#listeners.map((l) => l.listen()));
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.#opts.logger.info(
      {
        "local-member-id": this.#ctx.memberIdHex,
        "cluster-id": memberIdHex(this.clusterId),
        "listen-peer-urls": this.listenUrls,
        tls: this.#peerTls !== undefined,
      },
      "started peer transport",
    );
  }

  /** The listen URLs as bound (a port 0 replaced by the chosen port), after start(). */
  get listenUrls(): string[] {
    return this.#listeners.map((l) => l.url);
  }

  /**
   * Adds peer `id` reachable at `urls` (its advertised peer URLs) and starts dialing it. Adding a
   * known peer updates its URLs. Throws PeerIdError for 0, our own id or a removed member,
   * PeerUrlError for a bad URL, PeerTlsConfigError for an https:// URL without peer TLS.
   */
  addPeer(id: bigint, urls: string[]): void {
    if (this.#state === "stopped") throw new TransportStoppedError("add a peer");
    checkMemberId(id, "peer id");
    if (id === this.memberId) throw new PeerIdError(`peer id ${memberIdHex(id)} is this member`);
    if (this.#removed.has(id))
      throw new PeerIdError(`member ${memberIdHex(id)} was removed and cannot be added again`);
    const parsed = this.#parseUrls(urls);
    const existing = this.#links.get(id);
    if (existing !== undefined) {
      existing.setUrls(parsed);
      return;
    }
    this.#links.set(id, new PeerLink(this.#ctx, id, parsed));
    this.#opts.logger.info(
      { "local-member-id": this.#ctx.memberIdHex, "remote-peer-id": memberIdHex(id), urls },
      "added remote peer",
    );
  }

  /** Replaces peer `id`'s URLs (etcd's UpdatePeer). Throws as addPeer; unknown ids throw PeerIdError. */
  updatePeer(id: bigint, urls: string[]): void {
    const link = this.#links.get(id);
    if (link === undefined) throw new PeerIdError(`member ${memberIdHex(id)} is not a peer`);
    link.setUrls(this.#parseUrls(urls));
  }

  /**
   * Removes peer `id`: closes its links and any snapshot in flight, drops what is queued for it,
   * and from now on refuses its connections as removed (it learns it was removed and stops, as
   * in etcd). A no-op for an unknown id.
   */
  removePeer(id: bigint): void {
    const link = this.#links.get(id);
    if (link === undefined) return;
    this.#links.delete(id);
    this.#removed.add(id);
    this.#dirty.delete(link);
    link.close();
    this.#inbound.get(id)?.close("peer removed");
    this.#snapshotSends.get(id)?.abort();
    this.#snapshotSends.delete(id);
    this.#opts.logger.info(
      { "local-member-id": this.#ctx.memberIdHex, "remote-peer-id": memberIdHex(id) },
      "removed remote peer",
    );
  }

  /** True when `id` is a current peer. */
  hasPeer(id: bigint): boolean {
    return this.#links.has(id);
  }

  /**
   * Sends raft messages (a Ready's `messages`). Each is queued for its peer (`to`); queues are
   * written once per event-loop turn. Messages to unknown peers are dropped (etcd logs and
   * ignores them); a full queue drops and reports the peer unreachable. MsgSnap goes to
   * sendSnapshot with its snapshot.data as the payload. Never throws for delivery problems;
   * ignored before start() and after stop().
   */
  send(msgs: readonly Message[]): void {
    if (this.#state !== "started") return;
    this.#enqueue(msgs);
    this.#scheduleFlush();
  }

  /**
   * send() and flush() at once: the messages are queued and written now, without the end-of-turn
   * flush send() schedules (which would find nothing left: a timer object per Ready for nothing).
   */
  sendNow(msgs: readonly Message[]): void {
    if (this.#state !== "started") return;
    this.#enqueue(msgs);
    this.flush();
  }

  /** Queues each message on its peer's link (see send). */
  #enqueue(msgs: readonly Message[]): void {
    for (const m of msgs) {
      const link = this.#links.get(m.to);
      if (link === undefined) {
        this.#opts.logger.debug(
          {
            "local-member-id": this.#ctx.memberIdHex,
            "remote-peer-id": memberIdHex(m.to),
            type: m.type,
          },
          "ignored message send request; unknown remote peer target",
        );
        continue;
      }
      if (m.type === MessageType.MsgSnap) {
        this.sendSnapshot(m, m.snapshot?.data ?? new Uint8Array(0));
        continue;
      }
      if (handEncodable(m)) link.enqueue(m, messageSize(m));
      else {
        const bytes = MessageCodec.toBinary(m);
        link.enqueue(bytes, bytes.length);
      }
      this.#dirty.add(link);
    }
  }

  /**
   * Sends a MsgSnap on its own connection with `payload` streamed after it in chunks (e.g. the db
   * file; the message's own snapshot.data is not sent — pass it as the payload, as send() does).
   * The result reaches raft through reportSnapshot (and reportUnreachable on failure). One
   * snapshot per peer at a time: a second one while the first is in flight is refused at once
   * with reportSnapshot(failure).
   */
  sendSnapshot(msg: Message, payload: SnapshotPayload): void {
    if (this.#state !== "started") return;
    const link = this.#links.get(msg.to);
    if (link === undefined) return;
    if (this.#snapshotSends.has(msg.to)) {
      this.#opts.logger.warn(
        { "local-member-id": this.#ctx.memberIdHex, "remote-peer-id": link.idHex },
        "dropped snapshot message: a snapshot to this peer is already in flight",
      );
      this.metrics.snapshotSendFailures.inc({ To: link.idHex });
      link.noteUndeliverable();
      this.#dirty.add(link);
      this.#scheduleFlush();
      this.#ctx.reportSnapshot(msg.to, "failure");
      return;
    }
    const send = new SnapshotSend(this.#ctx, msg.to, link.currentUrl, msg, payload);
    this.#snapshotSends.set(msg.to, send);
    void send.run().finally(() => {
      if (this.#snapshotSends.get(msg.to) === send) this.#snapshotSends.delete(msg.to);
    });
  }

  /** The outbound link's state for `id`, or undefined for an unknown peer. */
  peerStatus(id: bigint): PeerStatus | undefined {
    return this.#links.get(id)?.status();
  }

  /**
   * Closes the listeners and every connection; queued messages and snapshots in flight are
   * dropped without callbacks. Idempotent.
   */
  async stop(): Promise<void> {
    if (this.#state === "stopped") return;
    this.#state = "stopped";
    for (const link of this.#links.values()) link.close();
    this.#links.clear();
    this.#dirty.clear();
    for (const s of this.#inbound.values()) s.close("transport stopped");
    this.#inbound.clear();
    for (const s of this.#snapshotSends.values()) s.abort();
    this.#snapshotSends.clear();
    for (const r of [...this.#snapshotReceives]) r.close();
    this.#snapshotReceives.clear();
    await Promise.all(this.#listeners.map((l) => l.close()));
  }

  #parseUrls(urls: string[]): PeerUrl[] {
    if (urls.length === 0) throw new PeerIdError("a peer needs at least one URL");
    const parsed = urls.map(parsePeerUrl);
    for (const u of parsed) requirePeerTls(u, this.#peerTls, "peer");
    return parsed;
  }

  #standing(id: bigint): PeerStanding {
    if (this.#links.has(id)) return "peer";
    return this.#removed.has(id) ? "removed" : "unknown";
  }

  /**
   * Writes every queued message now (each peer's queue as one corked write) instead of at the end
   * of the event-loop turn. The ready loop calls it once per Ready, before a blocking WAL fsync
   * or after a follower's acknowledgement is durable, so a message on a put's critical path does
   * not wait for a later turn (etcd's peers write as soon as raft hands them a message).
   */
  flush(): void {
    if (this.#dirty.size === 0) return;
    const links = [...this.#dirty];
    this.#dirty.clear();
    for (const l of links) l.flush();
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#dirty.size === 0) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      this.flush();
    });
  }

  #deliver(m: Message): void {
    try {
      this.#opts.onMessage(m);
    } catch (err) {
      this.#opts.logger.error(
        {
          "local-member-id": this.#ctx.memberIdHex,
          "remote-peer-id": memberIdHex(m.from),
          type: m.type,
          error: (err as Error)?.stack ?? String(err),
        },
        "onMessage threw; message dropped",
      );
    }
  }

  /** Runs a member callback; what it throws is logged, never thrown into the transport. */
  #report(call: () => void, what: string): void {
    try {
      call();
    } catch (err) {
      this.#opts.logger.error(
        { "local-member-id": this.#ctx.memberIdHex, error: (err as Error)?.stack ?? String(err) },
        `${what} callback threw`,
      );
    }
  }

  #onMessageStream(socket: net.Socket, hello: Hello, rest: ByteQueue): void {
    if (this.#state !== "started") {
      socket.destroy();
      return;
    }
    // A newer stream from the same peer replaces the old one (the peer reconnected).
    this.#inbound.get(hello.from)?.close("replaced by a new connection");
    const stream = new InboundStream(this.#ctx, socket, hello.from, rest, (s) => {
      if (this.#inbound.get(s.from) === s) this.#inbound.delete(s.from);
    });
    if (!stream.closed) this.#inbound.set(hello.from, stream);
    // the peer is up: our own link to it need not wait out its backoff
    this.#links.get(hello.from)?.peerIsUp();
  }

  #onSnapshotStream(socket: net.Socket, hello: Hello, rest: ByteQueue): void {
    if (this.#state !== "started") {
      socket.destroy();
      return;
    }
    const r = new SnapshotReceive(this.#ctx, socket, hello.from, rest, (done) =>
      this.#snapshotReceives.delete(done),
    );
    if (!r.done) this.#snapshotReceives.add(r);
  }
}
