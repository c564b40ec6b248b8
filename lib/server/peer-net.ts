/**
 * The member's side of the peer network (etcd 3.4's rafthttp wiring in etcdserver: Transport,
 * Raft.Process, ReportUnreachable / ReportSnapshot, the snapshot handler, and the peer HTTP
 * endpoints): one PeerTransport on --listen-peer-urls with the --peer-* TLS flags, whose peers
 * follow the member list as ConfChanges apply; raft messages in and out; MsgSnap out with the
 * member's db file, in to `<index>.snap.db` before raft sees it; the peer HTTP endpoints
 * (peer-http.ts) on the same listeners, and calls to other members' endpoints.
 */
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { ConfState, Message } from "../proto/gen/raftpb/raft.js";
import { PeerTransport, loadPeerTls } from "../transport/index.js";

type PeerTls = NonNullable<ReturnType<typeof loadPeerTls>>;
import type { MemberChange } from "./cluster.js";
import type { TlsFiles } from "./config.js";
import type { DbFileState } from "./db-file.js";
import type { MemberRecord } from "./membership.js";
import {
  createPeerHttpHandler,
  peerHttpRequest,
  type PeerHttpHost,
  type PeerHttpResponse,
} from "./peer-http.js";
import { dbFileChunks, receiveDbFile } from "./snapshot-transfer.js";

/** Bound on one call to another member's peer endpoint. */
export const peerRequestTimeoutMs = 5_000;

/** What the peer network needs of its member. */
export interface PeerNetHost {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  readonly dataDir: string;
  readonly logger: Logger;
  readonly registry: Registry;
  /** A raft message from a peer (etcd's Raft.Process). */
  step(m: Message): void;
  reportUnreachable(id: bigint): void;
  reportSnapshot(id: bigint, status: "finish" | "failure"): void;
  /** Our connection to peer `id` was lost and its peer port refuses connections (PeerTransportOptions.onPeerRefusing). */
  peerRefusing(id: bigint): void;
  /** The state to send with a MsgSnap: a capture at the applied index, its term and conf state. */
  captureForSnapshot(): { state: DbFileState; term: number; confState: ConfState };
  /** A peer refused this member as removed from the cluster. */
  onRemoved(): void;
  /** The peer HTTP endpoints' answers. */
  readonly http: PeerHttpHost;
}

/** Options of PeerNet.start. */
export interface PeerNetOptions {
  listenPeerUrls: string[];
  peerTls: TlsFiles;
}

/** The peer network of one member (see the module comment). */
export class PeerNet {
  readonly transport: PeerTransport;
  readonly #host: PeerNetHost;
  readonly #tls: PeerTls | undefined;
  readonly #http: ReturnType<typeof createPeerHttpHandler>;

  private constructor(host: PeerNetHost, o: PeerNetOptions) {
    this.#host = host;
    const files = {
      certFile: o.peerTls.certFile,
      keyFile: o.peerTls.keyFile,
      trustedCaFile: o.peerTls.trustedCaFile,
      clientCertAuth: o.peerTls.clientCertAuth,
      allowedCn: o.peerTls.allowedCn,
    };
    this.#tls = loadPeerTls(files);
    this.#http = createPeerHttpHandler(host.http);
    this.transport = new PeerTransport({
      memberId: host.memberId,
      clusterId: host.clusterId,
      listenUrls: o.listenPeerUrls,
      tls: files,
      logger: host.logger,
      registry: host.registry,
      onMessage: (m) => host.step(m),
      onSnapshot: (m, payload) => this.#receiveSnapshot(m, payload),
      reportUnreachable: (id) => host.reportUnreachable(id),
      reportSnapshot: (id, status) => host.reportSnapshot(id, status),
      onPeerRefusing: (id) => host.peerRefusing(id),
      onRemoved: () => host.onRemoved(),
      onHttpConnection: (socket) => this.#http.handle(socket),
    });
  }

  /**
   * Listens on the peer URLs. Throws PeerTlsConfigError / PeerUrlError for bad flags, the listen
   * error (EADDRINUSE, …) when a port cannot be bound.
   */
  static async start(host: PeerNetHost, o: PeerNetOptions): Promise<PeerNet> {
    const net = new PeerNet(host, o);
    await net.transport.start();
    return net;
  }

  /** Keeps the transport's peers in step with the member list (etcd's AddPeer / RemovePeer). */
  onMemberChange(change: MemberChange): void {
    const t = this.transport;
    if (change.kind === "removed") {
      if (change.id !== this.#host.memberId) t.removePeer(change.id);
      return;
    }
    const m = change.member;
    if (m.id === this.#host.memberId || m.peerUrls.length === 0) return;
    try {
      if (t.hasPeer(m.id)) t.updatePeer(m.id, m.peerUrls);
      else t.addPeer(m.id, m.peerUrls);
    } catch (err) {
      this.#host.logger.warn(
        { peer: m.id.toString(16), urls: m.peerUrls, err: (err as Error).message },
        "cannot add peer",
      );
    }
  }

  /**
   * Raft messages to peers, written to the sockets now (one corked write per peer): a Ready's
   * MsgApp must leave before the leader's own fsync, which may block the event loop (lib/wal
   * syncWriteMaxEntries), and a follower's MsgAppResp as soon as its entries are durable.
   */
  send(messages: Message[]): void {
    if (messages.length === 0) return;
    this.transport.sendNow(messages);
  }

  /**
   * A MsgSnap: the member's db as of now goes with it, and the message's snapshot metadata says
   * that state's index, term and conf state (etcd's createMergedSnapshotMessage).
   */
  sendSnapshot(m: Message): void {
    const cap = this.#host.captureForSnapshot();
    const msg: Message = {
      ...m,
      snapshot: {
        data: new Uint8Array(0),
        metadata: {
          index: cap.state.consistentIndex,
          term: cap.term,
          confState: cap.confState,
        },
      },
    };
    this.#host.logger.info(
      { to: m.to.toString(16), index: cap.state.consistentIndex },
      "sending database snapshot",
    );
    this.transport.sendSnapshot(msg, dbFileChunks(cap.state));
  }

  /** Writes a received db file, then hands the MsgSnap to raft (etcd's snapshotHandler). */
  async #receiveSnapshot(m: Message, payload: AsyncIterable<Uint8Array>): Promise<void> {
    const index = m.snapshot?.metadata?.index ?? 0;
    const bytes = await receiveDbFile(this.#host.dataDir, index, payload);
    this.#host.logger.info(
      { from: m.from.toString(16), index, bytes },
      "received and saved database snapshot",
    );
    this.#host.step(m);
  }

  /**
   * One call to a member's peer endpoint, trying its peer URLs in turn. Rejects with the last
   * connection error when none answers.
   */
  async request(
    member: MemberRecord,
    method: "GET" | "POST",
    path: string,
    body?: Uint8Array,
  ): Promise<PeerHttpResponse> {
    return requestAny(member.peerUrls, method, path, body, this.#tls);
  }

  /** True when the outbound connection to `id` is up (etcd's transport ActiveSince != 0). */
  isConnected(id: bigint): boolean {
    return this.transport.peerStatus(id)?.connected === true;
  }

  async stop(): Promise<void> {
    this.#http.close();
    await this.transport.stop();
  }
}

/** Tries `urls` in turn; the first answer wins. */
export async function requestAny(
  urls: readonly string[],
  method: "GET" | "POST",
  path: string,
  body: Uint8Array | undefined,
  tls: PeerTls | undefined,
): Promise<PeerHttpResponse> {
  let last: Error = new Error("no peer URLs");
  for (const u of urls) {
    try {
      return await peerHttpRequest(u, method, path, body, tls?.client, peerRequestTimeoutMs);
    } catch (err) {
      last = err as Error;
    }
  }
  throw last;
}
